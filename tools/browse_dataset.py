"""Draw clips of a config's dataset, after its pipeline, with their tracklets: a PNG contact sheet.

    python tools/browse_dataset.py configs/_base_/datasets/synthetic.py --out sheet.png
"""
import argparse
import os
import os.path as osp

import numpy as np
from mmengine.config import DictAction
from mmengine.utils import ProgressBar

from mmtrackgen.registry import DATASETS
from mmtrackgen.utils import load_config
from mmtrackgen.visualization import contact_sheet, draw_tracklets, save_image


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config with train/val/test_dataloader')
    parser.add_argument('--split', default='train', choices=['train', 'val', 'test'])
    parser.add_argument('--num-clips', type=int, default=6)
    parser.add_argument('--upscale', type=int, default=3, help='enlarge small frames')
    parser.add_argument('--out', default='outputs/dataset_sheet.png')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. train_dataloader.dataset.clip_length=4')
    args = parser.parse_args()
    if args.num_clips < 1 or args.upscale < 1:
        parser.error('--num-clips and --upscale must be >= 1')
    return args


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    dataset = DATASETS.build(cfg[f'{args.split}_dataloader']['dataset'])
    classes = dataset.metainfo['classes']
    picks = np.linspace(0, len(dataset) - 1, min(args.num_clips, len(dataset))).round()
    clips, titles = [], []
    bar = ProgressBar(len(picks))
    for idx in picks.astype(int).tolist():
        item = dataset[idx]
        sample = item['data_samples']
        frames = item['inputs'].permute(0, 2, 3, 1).numpy()  # (F, H, W, 3) uint8
        clips.append(
            draw_tracklets(
                frames,
                sample.gt_boxes.numpy(),
                sample.gt_visible.numpy(),
                sample.gt_labels.numpy(),
                sample.gt_instance_ids.numpy(),
                classes,
                upscale=args.upscale))
        ids = sample.frame_ids
        titles.append(f'{sample.video_name} frames {ids[0]}-{ids[-1]}: {sample.caption}')
        bar.update()
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    save_image(args.out, contact_sheet(clips, titles))
    print(f'\nwrote {args.out}: {len(clips)} clips of {args.split} from {len(dataset)}')


if __name__ == '__main__':
    main()
