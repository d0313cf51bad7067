"""What a latent generator could at best reach: real clips passed through its autoencoder.

    python tools/analysis/reconstruct_clips.py work_dirs/synthetic_f4 \
        --ann data/synthetic/annotations/test_cocoformat.json --img-prefix data/synthetic/test/ \
        --out-dir work_dirs/reconstructed_test [--out psnr.json]
    python tools/evaluate_generated.py work_dirs/reconstructed_test --category-classifier FILE

Each clip is encoded and decoded exactly as a latent TrackDiffusion sees and makes it
(``TrackDiffusionDataPreprocessor``: a posterior sample scaled by the folder's
``scaling_factor``) and written as a generated dataset with the clip's own tracklets, so
``tools/evaluate_generated.py`` scores it like generated clips: the ceiling of the generator's
alignment, identity and category accuracy. PSNR is reported over whole frames and inside the
objects' boxes, where the world's small shapes are.
"""
import argparse
import json
import math
import os.path as osp

import numpy as np
import torch
from mmengine.utils import ProgressBar

from mmtrackgen.evaluation.dataset_report import iter_videos
from mmtrackgen.evaluation.statistics import mean_and_sem
from mmtrackgen.generation.writer import GeneratedDatasetWriter
from mmtrackgen.registry import MODELS
from mmtrackgen.utils import exit_with_error, write_json_atomic


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'model', help='a folder with a diffusers AutoencoderKL in its vae/ (as the configs read)')
    parser.add_argument('--ann', required=True, help='CocoVID file of the real clips')
    parser.add_argument('--img-prefix', required=True, help='folder of their frames')
    parser.add_argument('--out-dir', required=True, help='where the reconstructions go')
    parser.add_argument('--out', help='write the PSNR figures as JSON here')
    parser.add_argument('--seed', type=int, default=0, help='of the posterior samples')
    return parser.parse_args(argv)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 arrays (inf where equal)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64))**2)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def box_mask(boxes: np.ndarray, visible: np.ndarray, height: int, width: int) -> np.ndarray:
    """(F, N, 4) pixel boxes and (F, N) visibility -> (F, H, W) bool: inside a visible box."""
    mask = np.zeros((len(boxes), height, width), bool)
    for f, (frame_boxes, frame_visible) in enumerate(zip(boxes, visible)):
        for (x1, y1, x2, y2), seen in zip(frame_boxes, frame_visible):
            if seen:
                mask[f, int(y1):int(math.ceil(y2)), int(x1):int(math.ceil(x2))] = True
    return mask


def reconstruct(preprocessor, frames: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) uint8 RGB -> the same through the autoencoder, (F, H, W, 3) uint8."""
    clip = torch.from_numpy(frames).permute(0, 3, 1, 2)[None].float() / 127.5 - 1  # (1, F, 3, H, W)
    latents = preprocessor.encode_frames(clip)  # (1, F, C, h, w)
    return preprocessor.decode_latents(latents)[0].permute(0, 2, 3, 1).numpy()  # (F, H, W, 3)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if not osp.isfile(osp.join(args.model, 'vae', 'config.json')):
        exit_with_error(f"'{args.model}' holds no diffusers autoencoder (no vae/config.json)")
    torch.manual_seed(args.seed)
    preprocessor = MODELS.build(
        dict(type='TrackDiffusionDataPreprocessor', vae=dict(pretrained=args.model))).eval()
    writer = GeneratedDatasetWriter(args.out_dir)
    with open(args.ann) as f:
        ann = json.load(f)
    categories = [c['name'] for c in sorted(ann['categories'], key=lambda c: c['id'])]
    whole, objects, names = [], [], []
    bar = ProgressBar(len(ann['videos']))
    for layout, frames in iter_videos(args.ann, args.img_prefix):
        recon = reconstruct(preprocessor, frames)
        whole.append(psnr(recon, frames))
        inside = box_mask(layout.boxes, layout.visible, *frames.shape[1:3])
        if inside.any():
            objects.append(psnr(recon[inside], frames[inside]))
        writer.submit(layout, recon)
        names.append(layout.name)
        bar.update()
    writer.wait()
    writer.merge(names, categories, info=dict(description=f'{args.ann} through {args.model}'))
    writer.close()
    result = dict(
        autoencoder=args.model,
        ann=args.ann,
        videos=len(names),
        psnr=mean_and_sem(whole),
        psnr_in_boxes=mean_and_sem(objects),
        out_dir=args.out_dir)
    print('\n' + json.dumps(result, indent=2))
    if args.out:
        write_json_atomic(args.out, result)
    return result


if __name__ == '__main__':
    main()
