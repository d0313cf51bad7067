"""The main job's steps: a tiny synthetic world through the synthetic config's pipeline."""
import subprocess
import sys
from pathlib import Path

import numpy as np
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from mmtrackgen.datasets import make_synthetic_dataset
from mmtrackgen.registry import DATASETS

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'configs/_base_/datasets/synthetic.py')


def tiny_world(tmp_path):
    out = tmp_path / 'synthetic'
    make_synthetic_dataset(
        str(out),
        splits={
            'train': 2,
            'val': 1
        },
        novel_videos=1,
        frames_per_video=10,
        seed=1,
        progress=False)
    return out


def test_synthetic_config_yields_batches_of_clips(tmp_path):
    root = tiny_world(tmp_path)
    cfg = Config.fromfile(CONFIG)
    init_default_scope('mmtrackgen')
    ds = DATASETS.build(dict(cfg.train_dataloader.dataset, data_root=str(root) + '/'))
    assert len(ds) == 2 * 2  # clips of 8 frames, 2 apart, in videos of 10 frames
    item = ds[0]
    assert item['inputs'].shape == (8, 3, 64, 64)
    sample = item['data_samples']
    assert sample.gt_boxes.shape == (8, 4, 4) and sample.caption  # from captions.json
    boxes = sample.gt_boxes[sample.gt_visible]
    assert ((boxes >= 0) & (boxes <= 1)).all() and (boxes[:, 2:] > boxes[:, :2]).all()


def test_browse_dataset_writes_a_contact_sheet(tmp_path):
    root = tiny_world(tmp_path)
    out = tmp_path / 'sheet.png'
    subprocess.run([
        sys.executable,
        str(ROOT / 'tools/browse_dataset.py'), CONFIG, '--split', 'val', '--num-clips', '2',
        '--out',
        str(out), '--cfg-options', f'val_dataloader.dataset.data_root={root}/'
    ],
                   check=True,
                   cwd=tmp_path)
    sheet = np.asarray(Image.open(out))
    # one val video of 10 frames -> non-overlapping clips of 8: 1 clip, 8 frames x 3 upscale
    assert sheet.shape[1] >= 8 * 64 * 3 and sheet.shape[0] >= 64 * 3
