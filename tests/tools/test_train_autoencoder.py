"""configs/autoencoder/synthetic_f4.py trains with tools/train.py and exports a diffusers folder."""
import os.path as osp
import subprocess
import sys
from pathlib import Path

from diffusers import AutoencoderKL

ROOT = Path(__file__).resolve().parents[2]


def test_config_trains_with_the_runner_and_exports(tmp_path, data_root):
    work = tmp_path / 'ae'
    proc = subprocess.run([
        sys.executable, 'tools/train.py', 'configs/autoencoder/synthetic_f4.py', '--work-dir',
        str(work), '--cfg-options', f'train_dataloader.dataset.data_root={data_root}',
        'train_dataloader.batch_size=2', 'train_cfg.max_iters=2',
        'model.vae.block_out_channels=[8,16,16]', 'model.vae.norm_num_groups=4',
        'param_scheduler.0.end=1', 'param_scheduler.1.begin=1', 'param_scheduler.1.end=2', 'custom_hooks.0.num_batches=1'
    ], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    vae = AutoencoderKL.from_pretrained(str(work / 'vae'))
    assert vae.config.block_out_channels == [8, 16, 16]
    assert vae.config.scaling_factor != 0.18215  # measured on the data, not diffusers' default
    assert osp.isfile(work / 'iter_2.pth')
