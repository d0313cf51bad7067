"""tools/train.py and tools/dist_train.sh train, checkpoint, preview and resume."""
import glob
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from mmtrackgen.utils import safe_torch_load

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'tests/data/trackdiff_micro.py')


def train(data_root, work_dir, *extra, script='tools/train.py', nproc=None):
    options = [
        f'train_dataloader.dataset.data_root={data_root}',
        f'custom_hooks.2.dataset.data_root={data_root}'
    ]
    if nproc:
        cmd = ['bash', str(ROOT / 'tools/dist_train.sh'), CONFIG, str(nproc)]
    else:
        cmd = [sys.executable, str(ROOT / script), CONFIG]
    cmd += ['--work-dir', str(work_dir), *extra, '--cfg-options', *options]
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def losses(log):
    return [float(x) for x in re.findall(r'Iter\(train\).*?loss: ([0-9.]+)', log)]


def test_train_writes_checkpoints_and_previews_then_resumes(data_root, tmp_path):
    log = train(data_root, tmp_path, '--cfg-options', 'train_cfg.max_iters=2')
    assert len(losses(log)) == 2 and 'stage 2 (clean clips)' not in log
    assert (tmp_path / 'iter_2.pth').exists()
    assert glob.glob(str(tmp_path / '*/vis_data/vis_image/samples_2.png'))
    ckpt = safe_torch_load(str(tmp_path / 'iter_2.pth'), map_location='cpu')
    assert ckpt['meta']['iter'] == 2

    log = train(data_root, tmp_path, '--resume')  # to max_iters=4 from the config
    assert 'resumed' in log.lower() and 'stage 2 (clean clips) from iteration 2' in log
    assert re.search(r'Iter\(train\) \[4/4\]', log) and not re.search(r'Iter\(train\) \[1/4\]', log)
    final = safe_torch_load(str(tmp_path / 'iter_4.pth'), map_location='cpu')
    assert final['meta']['iter'] == 4 and 'ema_state_dict' in final  # EMA resumed and saved
    changed = [
        k for k, v in final['state_dict'].items() if not torch.equal(v, ckpt['state_dict'][k])
    ]
    assert changed  # training went on after the resume


def test_dist_train_with_two_cpu_processes(data_root, tmp_path):
    log = train(data_root, tmp_path, '--cfg-options', 'train_cfg.max_iters=2', nproc=2)
    assert 'Distributed training: True' in log and 'device_ids=None' in log
    assert len(losses(log)) == 2  # rank 0 logs both iterations
    assert (tmp_path / 'iter_2.pth').exists()
