"""Alignment of generated clips with their tracklets on held-out synthetic clips.

    python tools/evaluate_alignment.py configs/trackdiff/synthetic_tiny.py CHECKPOINT \
        [--split test] [--num-clips 32] [--steps 25] [--scheduler NAME] [--out alignment.json]

Samples each clip twice, with its tracklets and with all instances nulled (the same model, no
boxes), and scores both against the clip's boxes with :func:`box_alignment` (foreground of the
synthetic world's saturated objects). The real frames are scored too, as the metric's ceiling.
"""
import argparse
import json

import numpy as np
import torch
from mmengine.config import DictAction
from mmengine.dataset import pseudo_collate
from mmengine.runner import load_checkpoint
from mmengine.utils import ProgressBar

from mmtrackgen.datasets import segment_foreground
from mmtrackgen.evaluation import box_alignment, summarize_alignment
from mmtrackgen.registry import DATASETS, MODELS
from mmtrackgen.utils import load_config


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--split', default='test', help='synthetic split to score')
    parser.add_argument('--num-clips', type=int, default=32)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--steps', type=int, help='sampling steps (default: the config)')
    parser.add_argument(
        '--scheduler', help='a diffusers scheduler class name (default: the config sampler)')
    parser.add_argument('--guidance', type=float, help='guidance scale (default: the config)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='write the figures as JSON here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    torch.manual_seed(args.seed)
    model = MODELS.build(cfg.model)
    load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.eval()
    dataset = DATASETS.build(
        dict(
            cfg.preview_clips,
            ann_file=f'annotations/{args.split}_cocoformat.json',
            data_prefix=dict(img_path=f'{args.split}/')))
    picks = np.linspace(0, len(dataset) - 1, min(args.num_clips, len(dataset))).round()
    picks = picks.astype(int).tolist()
    scores = {'tracklets': [], 'nulled': [], 'real': []}
    bar = ProgressBar(len(picks))
    for start in range(0, len(picks), args.batch_size):
        chunk = picks[start:start + args.batch_size]
        items = [dataset[i] for i in chunk]
        for name in ('tracklets', 'nulled'):
            data = model.data_preprocessor(pseudo_collate(items), False)
            inputs = data['inputs']
            if name == 'nulled':
                inputs['visible'] = torch.zeros_like(inputs['visible'])
            samples = model.predict(
                inputs,
                data['data_samples'],
                num_inference_steps=args.steps,
                guidance_scale=args.guidance,
                scheduler=args.scheduler,
                seed=args.seed + start)
            for sample in samples:
                frames = sample.pred_frames.permute(0, 2, 3, 1).numpy()  # (F, H, W, 3)
                scores[name].append(
                    box_alignment(frames, sample.gt_boxes.numpy(), sample.gt_visible.numpy(),
                                  segment_foreground))
        for item in items:
            sample = item['data_samples']
            scores['real'].append(
                box_alignment(item['inputs'].permute(0, 2, 3, 1).numpy(), sample.gt_boxes.numpy(),
                              sample.gt_visible.numpy(), segment_foreground))
        bar.update(len(chunk))
    result = dict(
        config=args.config,
        checkpoint=args.checkpoint,
        split=args.split,
        clips=len(picks),
        steps=args.steps or model.num_inference_steps,
        scheduler=args.scheduler or model.sampler_cfg,
        guidance=args.guidance if args.guidance is not None else model.guidance_scale)
    for name, per_clip in scores.items():
        result[name] = summarize_alignment(np.concatenate([s.ravel() for s in per_clip]))
    print('\n' + json.dumps(result, indent=2))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
