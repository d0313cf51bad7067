"""The recipes' checkpoint hooks together: ``TrimFrozenWeightsHook`` and ``EMAHook`` (the
schedule's custom_hooks). A tiny ytvis.py run is killed after its checkpoint at iteration 4,
continued with ``--resume``, and generates from the averaged weights (issue 20, item 2)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmtrackgen.registry import MODELS
from mmtrackgen.utils import load_config, safe_torch_load
from tests.factories import cli_options, moving_track, tiny_recipe_options, write_cocovid
from tests.tools.test_train_resume import KILLED_IN, KILLER, MAX_ITERS

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'configs/trackdiff/ytvis.py')


def options(folder, data_root):
    opts = tiny_recipe_options(folder, data_root=data_root, ann_file='annotations/train.json')
    opts.update({
        # fp32 on the CPU (the recipe's bf16 AMP needs a GPU); the recipe's hooks unchanged.
        'optim_wrapper._delete_': True,
        'optim_wrapper.type': 'OptimWrapper',
        'optim_wrapper.optimizer.type': 'AdamW',
        'optim_wrapper.optimizer.lr': 1e-3,
        'param_scheduler': None,
        'train_cfg.max_iters': MAX_ITERS,
        'default_hooks.checkpoint.interval': 2,
        'default_hooks.logger.interval': 1,
        # A momentum that moves the average visibly in a few iterations.
        'custom_hooks.1.momentum': 0.5,
    })
    return opts


def run(script, *args):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, script, *args],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('ytvis')
    tracks = {1: moving_track(5, 0, 4, (2, 2), (12, 10), (2, 1))}  # a cat (class 5)
    classes = load_config(str(ROOT / 'configs/_base_/datasets/ytvis2021.py')).classes
    write_cocovid(
        str(root), [dict(name='v', num_frames=4, size=(32, 32), tracks=tracks)], classes=classes)
    return root


def test_killed_recipe_resumes_with_trimmed_ema_checkpoints_and_generates(
        t2v_folder, data_root, tmp_path):
    opts = options(t2v_folder, data_root)
    cfg = load_config(CONFIG, opts)
    assert [h['type'] for h in cfg.custom_hooks] == ['TrimFrozenWeightsHook', 'EMAHook']
    model = MODELS.build(cfg.model)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert frozen and trainable

    work_dir = tmp_path / 'work'
    killer = tmp_path / 'killer.py'
    killer.write_text(KILLER)
    proc = run(str(killer), CONFIG, '--work-dir', str(work_dir), *cli_options(opts))
    assert proc.returncode == -9, proc.stdout[-2000:] + proc.stderr[-2000:]  # SIGKILL
    saved = KILLED_IN - 2
    assert (work_dir / f'iter_{saved}.pth').is_file()
    assert not (work_dir / f'iter_{KILLED_IN}.pth').exists()

    def check(path):
        checkpoint = safe_torch_load(str(path), map_location='cpu')
        state, ema = checkpoint['state_dict'], checkpoint['ema_state_dict']
        # Neither copy keeps the frozen pretrained weights: the trim saves what it should.
        assert not frozen & set(state), sorted(frozen & set(state))[:3]
        ema_params = {k[len('module.'):] for k in ema if k.startswith('module.')}
        assert not frozen & ema_params, sorted(frozen & ema_params)[:3]
        assert trainable <= set(state) and trainable <= ema_params
        # state_dict holds the average (for deployment), ema_state_dict the trained weights.
        assert any(not torch.equal(state[k], ema['module.' + k]) for k in trainable)
        return checkpoint

    check(work_dir / f'iter_{saved}.pth')
    proc = run(str(ROOT / 'tools/train.py'), CONFIG, '--work-dir', str(work_dir), '--resume',
               *cli_options(opts))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'resumed' in (proc.stdout + proc.stderr).lower()
    final = check(work_dir / f'iter_{MAX_ITERS}.pth')
    assert final['meta']['iter'] == MAX_ITERS

    tracklets = write_cocovid(
        str(tmp_path / 'layouts'), [
            dict(name='walk', num_frames=4, size=(32, 32),
                 tracks={3: moving_track(0, 0, 4, (2, 3), (12, 10), (2, 1))})
        ],
        classes=('cat', ),
        write_frames=False)
    out = tmp_path / 'generated'
    proc = run(
        str(ROOT / 'tools/generate.py'), CONFIG, str(work_dir / f'iter_{MAX_ITERS}.pth'),
        '--tracklets', tracklets, '--out-dir', str(out), '--batch-size', '1', '--device', 'cpu',
        *cli_options(tiny_recipe_options(t2v_folder)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(list(out.glob('*/img1/*.jpg'))) == 4
