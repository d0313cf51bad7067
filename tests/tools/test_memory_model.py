"""The memory model (tools/analysis/memory_model.py) on the micro config, and the full-size
configs on meta."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.registry import init_default_scope

from mmtrackgen.registry import MODELS
from mmtrackgen.utils import load_config

ROOT = Path(__file__).resolve().parents[2]
MICRO = str(ROOT / 'tests/data/trackdiff_micro.py')
FULL_SIZE = ('ytvis', 'mot17', 'got10k', 'ytvis_sd15')


def memory_model():
    from mmtrackgen.benchmarks import memory_model as module
    return module


def test_estimate_counts_the_real_model_and_is_consistent(tmp_path):
    out = tmp_path / 'memory.json'
    result = subprocess.run([
        sys.executable, 'tools/analysis/memory_model.py', MICRO, '--batch-size', '2', '--json',
        str(out)
    ],
                            cwd=ROOT,
                            capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert '| trackdiff_micro.py | 2 x 4 x 16 x 16 |' in result.stdout
    (estimate, ) = json.loads(out.read_text())

    cfg = load_config(MICRO)
    model = MODELS.build(cfg.model)
    params = {id(p): p for p in model.parameters()}.values()
    assert estimate['parameters']['model'] == sum(p.numel() for p in params)
    assert estimate['parameters']['trainable'] == sum(p.numel() for p in params if p.requires_grad)
    assert estimate['parameters']['frozen_encoders'] == 0  # pixel space, no text encoder

    sizes = estimate['bytes']
    assert sizes['weights'] == 4 * estimate['parameters']['model']
    assert sizes['gradients'] == 4 * estimate['parameters']['trainable']
    assert sizes['adamw'] == 2 * sizes['gradients']
    assert sizes['ema'] == sizes['weights']  # the micro config keeps an EMA
    assert 0 < sizes['activations_checkpointed'] < sizes['activations_plain']
    assert sizes['total_checkpointed'] < sizes['total_plain']


@pytest.mark.parametrize('name', FULL_SIZE)
def test_full_size_configs_build_on_the_meta_device(name):
    tool = memory_model()
    cfg = load_config(str(ROOT / f'configs/trackdiff/{name}.py'))
    init_default_scope('mmtrackgen')
    notes = []
    model_cfg, encoders = tool.stand_in_model_cfg(cfg.model, notes)
    with torch.device('meta'):
        model = MODELS.build(model_cfg)
    assert all(p.is_meta for p in model.generator.parameters())
    assert model.generator.config.block_out_channels == (320, 640, 1280, 1280)
    assert encoders['vae'] is not None and encoders['text_encoder'] is not None
    total, trainable = tool.count_parameters(model)
    assert 1.5e9 < total < 2.5e9 and 0 < trainable < total
    assert any('stands in' in note for note in notes)
