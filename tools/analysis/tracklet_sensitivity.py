"""How a trained model's samples respond to its tracklets, measured on held-out clips.

    python tools/analysis/tracklet_sensitivity.py CONFIG CHECKPOINT [--num-clips 16] [--out F]

For each clip, with one seed:
- **box move**: one visible instance's box is shifted by a quarter of the frame in every frame;
  ``locality`` is the share of the pixel change inside its old and new boxes over the share of
  the frame those boxes cover (1 = the change is spread evenly; larger = local);
- **slot permutation**: the slots (tracklets with them) are reversed; the mean absolute pixel
  change, against the change between two seeds (sampling noise), tells whether slot order
  matters.
"""
import argparse
import json

import numpy as np
import torch
from mmengine.config import DictAction
from mmengine.dataset import pseudo_collate
from mmengine.runner import load_checkpoint
from mmengine.utils import ProgressBar

from mmtrackgen.evaluation import change_locality
from mmtrackgen.registry import DATASETS, MODELS
from mmtrackgen.utils import load_config


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--split', default='test')
    parser.add_argument('--num-clips', type=int, default=16)
    parser.add_argument('--steps', type=int)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def sample(model, item, seed, steps, edit=None):
    data = model.data_preprocessor(pseudo_collate([item]), False)
    if edit is not None:
        edit(data['inputs'])
    out = model.predict(data['inputs'], data['data_samples'], num_inference_steps=steps,
                        seed=seed)
    return out[0].pred_frames.permute(0, 2, 3, 1).numpy()  # (F, H, W, 3)


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    model = MODELS.build(cfg.model)
    load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.eval()
    dataset = DATASETS.build(dict(cfg.preview_clips,
                                  ann_file=f'annotations/{args.split}_cocoformat.json',
                                  data_prefix=dict(img_path=f'{args.split}/')))
    picks = np.linspace(0, len(dataset) - 1, min(args.num_clips, len(dataset))).round()
    rows = []
    bar = ProgressBar(len(picks))
    for i in picks.astype(int).tolist():
        item = dataset[i]
        s = item['data_samples']
        visible = s.gt_visible.numpy()  # (F, N)
        slot = int(np.argmax(visible.sum(0)))
        if visible[:, slot].sum() == 0:
            bar.update()
            continue
        old = s.gt_boxes[:, slot].clone()  # (F, 4)
        dx = 0.25 if old[visible[:, slot], 2].max() + 0.25 <= 1 else -0.25
        new = old + torch.tensor([dx, 0, dx, 0])
        new[~s.gt_visible[:, slot]] = 0

        def move(inputs, slot=slot, new=new):
            inputs['boxes'][0, :, slot] = new

        def reverse(inputs):
            for key in ('boxes', 'visible'):
                inputs[key] = inputs[key].flip(2)
            inputs['labels'] = inputs['labels'].flip(1)

        base = sample(model, item, args.seed, args.steps)
        moved = sample(model, item, args.seed, args.steps, move)
        permuted = sample(model, item, args.seed, args.steps, reverse)
        other_seed = sample(model, item, args.seed + 1, args.steps)
        old_np = old.numpy() * visible[:, slot, None]
        row = change_locality(base, moved, old_np, new.numpy())
        row['permutation_change'] = float(np.abs(base.astype(float) - permuted).mean())
        row['seed_change'] = float(np.abs(base.astype(float) - other_seed).mean())
        rows.append(row)
        bar.update()
    result = dict(config=args.config, checkpoint=args.checkpoint, clips=len(rows))
    for key in rows[0]:
        values = np.array([r[key] for r in rows])
        result[key] = float(np.nanmean(values))
    print('\n' + json.dumps(result, indent=2))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)


if __name__ == '__main__':
    main()
