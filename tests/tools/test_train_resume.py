"""tools/train.py killed with SIGKILL mid-run and continued with ``--resume``: the loss curve goes
on with the values of an uninterrupted run (CPU, fixed seed), and every checkpoint it wrote opens
with ``torch.load(weights_only=True)``.

The kill is exact: a wrapper script (written by the test) makes the train loop SIGKILL the
process when iteration 6 starts, after checkpoint 4 was saved and iteration 5 was logged.
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmtrackgen.utils import safe_torch_load
from mmtrackgen.utils.checkpoint import allowlist_names

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'tests/data/trackdiff_micro.py')
MAX_ITERS = 6  # checkpoints at 2, 4, 6; 3 batches per pass over the data
KILLED_IN = 6  # the 1-based iteration the kill interrupts: iteration 5 is lost, 4 is saved

KILLER = f'''
import os
import signal
import sys

from mmengine.runner import IterBasedTrainLoop

from tools.train import main

run_iter = IterBasedTrainLoop.run_iter


def dying_run_iter(self, data_batch):
    if self._iter == {KILLED_IN - 1}:
        os.kill(os.getpid(), signal.SIGKILL)
    return run_iter(self, data_batch)


IterBasedTrainLoop.run_iter = dying_run_iter
sys.argv[0] = 'tools/train.py'
main()
'''


class Custom:
    """Not on the weights_only allow-list: a checkpoint holding one must be refused."""

    def __init__(self, value):
        self.value = value


def train(data_root, work_dir, *extra, script=None, check=True):
    options = [
        f'train_dataloader.dataset.data_root={data_root}',
        f'custom_hooks.2.dataset.data_root={data_root}',
        f'train_cfg.max_iters={MAX_ITERS}',
        'log_processor.window_size=1',  # log each iteration's own loss, not a running mean
        # SelfTrackingHook switches the data to clean clips at iteration 3, before the resume
        # point (4): the resumed run must draw clean clips from its first batch.
        'custom_hooks.0.switch_iter=3',
    ]
    cmd = [sys.executable, script or str(ROOT / 'tools/train.py'), CONFIG]
    cmd += ['--work-dir', str(work_dir), *extra, '--cfg-options', *options]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def logged(work_dir):
    """{iteration: (loss, grad_norm)} of each run in ``work_dir``, oldest run first."""
    runs = []
    for scalars in sorted(Path(work_dir).glob('*/vis_data/scalars.json')):
        records = [json.loads(line) for line in scalars.read_text().splitlines()]
        runs.append({r['iter']: (r['loss'], r['grad_norm']) for r in records if 'loss' in r})
    return runs


@pytest.fixture(scope='module')
def runs(data_root, tmp_path_factory):
    """(uninterrupted work dir, killed-and-resumed work dir, the resumed run's output)."""
    full = tmp_path_factory.mktemp('uninterrupted')
    train(data_root, full)
    resumed = tmp_path_factory.mktemp('killed')
    killer = resumed / 'killer.py'
    killer.write_text(KILLER)
    proc = train(data_root, resumed, script=str(killer), check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-3000:] + proc.stderr[-3000:]
    killer.unlink()
    assert sorted(p.name for p in resumed.glob('*.pth')) == ['iter_2.pth', 'iter_4.pth']
    proc = train(data_root, resumed, '--resume')
    return full, resumed, proc.stdout + proc.stderr


def test_loss_curve_continues_after_kill_and_resume(runs):
    full, resumed, log = runs
    assert 'Advance dataloader 4 steps' in log and 'random states of iteration 4 restored' in log
    (reference, ) = logged(full)
    killed, after = logged(resumed)
    assert sorted(reference) == list(range(1, MAX_ITERS + 1))
    assert sorted(killed) == list(range(1, KILLED_IN))  # iteration 5 was logged, then lost
    assert sorted(after) == list(range(5, MAX_ITERS + 1))  # redone from checkpoint 4
    for it, values in {**killed, **after}.items():
        assert values == reference[it], f'iteration {it}: {values} != {reference[it]}'
    # ... and the weights end where the uninterrupted run's did.
    ours, theirs = (safe_torch_load(str(d / f'iter_{MAX_ITERS}.pth')) for d in (resumed, full))
    for key, value in theirs['state_dict'].items():
        assert torch.equal(ours['state_dict'][key], value), key


def test_every_checkpoint_opens_with_weights_only(runs):
    full, resumed, _ = runs
    paths = sorted(full.glob('*.pth')) + sorted(resumed.glob('*.pth'))
    assert len(paths) == 6
    allowed = set(allowlist_names())
    for path in paths:
        # Only globals of torch's weights_only defaults and the project's short allow-list.
        assert set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path))) <= allowed
        checkpoint = safe_torch_load(str(path), map_location='cpu')
        assert {'state_dict', 'ema_state_dict', 'optimizer', 'random_state'} <= set(checkpoint)


def test_resume_from_a_checkpoint_that_runs_code_is_refused(runs, data_root, tmp_path):
    full, _, _ = runs
    checkpoint = safe_torch_load(str(full / 'iter_2.pth'))
    checkpoint['meta']['evil'] = Custom(3)
    evil = tmp_path / 'evil.pth'
    torch.save(checkpoint, evil)
    proc = train(data_root, tmp_path / 'work', '--resume', str(evil), check=False)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    (line, ) = [line for line in proc.stderr.splitlines() if line.startswith('error: ')]
    assert f"Refused to load checkpoint '{evil}'" in line and 'arbitrary code' in line
    assert f'{__name__}.Custom' in line
    assert not list((tmp_path / 'work').glob('*.pth'))
