"""The dataset configs parse, and a missing dataset stops at once naming path and README."""
import re
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmtrackgen.registry import DATASETS

ROOT = Path(__file__).resolve().parents[1]

REAL = {
    'ytvis2021':
    ('data/youtube_vis_2021/annotations/youtube_vis_2021_train.json', 'README.md#youtube-vis-2021'),
    'mot17': ('data/MOT17/annotations/half-train_cocoformat.json', 'README.md#mot17'),
    'got10k': ('data/got10k/annotations/got10k_train_cocoformat.json', 'README.md#got-10k'),
}


def readme_anchors():
    with open(ROOT / 'README.md') as f:
        headings = [line.lstrip('#').strip() for line in f if line.startswith('#')]
    return {re.sub(r'[^a-z0-9 -]', '', h.lower()).replace(' ', '-') for h in headings}


@pytest.mark.parametrize('name', sorted(REAL))
def test_missing_real_dataset_names_path_and_readme_section(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/ here
    cfg = Config.fromfile(str(ROOT / f'configs/_base_/datasets/{name}.py'))
    init_default_scope(cfg.get('default_scope', 'mmtrackgen'))
    path, hint = REAL[name]
    with pytest.raises(FileNotFoundError) as info:
        DATASETS.build(cfg.train_dataloader.dataset)
    assert path in str(info.value) and hint in str(info.value)


def test_readme_has_the_sections_configs_point_to():
    anchors = readme_anchors()
    for _, hint in REAL.values():
        assert hint.split('#')[1] in anchors
    cfg = Config.fromfile(str(ROOT / 'configs/_base_/datasets/synthetic.py'))
    assert cfg.setup_hint.split('#')[1] in anchors


def test_leaf_dataset_configs_keep_their_own_slot_counts():
    mot = Config.fromfile(str(ROOT / 'configs/_base_/datasets/mot17.py'))
    slots = [
        t['num_slots'] for loader in (mot.train_dataloader, mot.val_dataloader)
        for t in loader.dataset.pipeline if t['type'] == 'AssignInstanceSlots'
    ]
    assert slots == [32, 32] and mot.train_dataloader.dataset.metainfo.classes == ('pedestrian', )
    yt = Config.fromfile(str(ROOT / 'configs/_base_/datasets/ytvis2021.py'))
    assert yt.train_dataloader.dataset.clip_length == 16


@pytest.mark.parametrize('name', ['ytvis', 'mot17', 'got10k'])
def test_full_size_configs_stop_at_once_naming_missing_weights(name, tmp_path):
    """Without weights (or data), training stops before any work with the path and the README
    section, as a one-line error and exit code 2."""
    import subprocess
    import sys
    proc = subprocess.run([
        sys.executable,
        str(ROOT / 'tools/train.py'),
        str(ROOT / f'configs/trackdiff/{name}.py'), '--work-dir',
        str(tmp_path / 'wd')
    ],
                          cwd=tmp_path,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert 'data/pretrained/text-to-video-ms-1.7b' in proc.stderr
    assert 'README.md#pretrained-weights' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_coarse_conditioning_config_keeps_the_tracklet_layers_coarse():
    """synthetic_tiny_coarse_conditioning.py: grounding only in the 8x8 and 4x4 latent blocks
    and one enhancer, the rest of the model as in the default; it trains from the same data."""
    from mmtrackgen.models.conditioning import GatedGrounding, InstanceEnhancer
    from mmtrackgen.registry import MODELS
    from mmtrackgen.utils import load_config

    def tracklet_layers(name):
        cfg = load_config(str(ROOT / f'configs/trackdiff/{name}.py'))
        generator = MODELS.build(cfg.model.generator)
        where = {}
        for path, module in generator.named_modules():
            if isinstance(module, (GatedGrounding, InstanceEnhancer)):
                block = '.'.join(path.split('.')[:2]) if path.startswith(('down', 'up')) else \
                    path.split('.')[0]
                where.setdefault(type(module).__name__, set()).add(block)
        return cfg, where

    default_cfg, default = tracklet_layers('synthetic_tiny')
    coarse_cfg, coarse = tracklet_layers('synthetic_tiny_coarse_conditioning')
    assert default['GatedGrounding'] == {
        'down_blocks.0', 'down_blocks.1', 'mid_block', 'up_blocks.1', 'up_blocks.2'
    }
    assert coarse['GatedGrounding'] == {'down_blocks.1', 'mid_block', 'up_blocks.1'}
    assert default['InstanceEnhancer'] == {'up_blocks.1', 'up_blocks.2'}
    assert coarse['InstanceEnhancer'] == {'up_blocks.1'}
    assert coarse_cfg.train_dataloader == default_cfg.train_dataloader


def test_pretrain_config_trains_on_the_pool_with_every_slot_empty(tmp_path):
    """synthetic_tiny_pretrain.py: the tiny model, unchanged, on the unlabelled pool: one clip
    per pool video and no visible instance in any clip, so no box reaches the generator."""
    from mmtrackgen.datasets import make_synthetic_dataset
    from mmtrackgen.utils import load_config
    make_synthetic_dataset(
        str(tmp_path),
        splits={'train': 1},
        novel_videos=0,
        frames_per_video=8,
        pool_videos=3,
        pool_frames=8,
        progress=False)
    pretrain = load_config(str(ROOT / 'configs/trackdiff/synthetic_tiny_pretrain.py'))
    tiny = load_config(str(ROOT / 'configs/trackdiff/synthetic_tiny.py'))
    assert pretrain.model == tiny.model
    dataset_cfg = pretrain.train_dataloader.dataset
    assert dataset_cfg.pipeline == tiny.train_dataloader.dataset.pipeline
    init_default_scope('mmtrackgen')
    clips = DATASETS.build(dict(dataset_cfg, data_root=str(tmp_path) + '/'))
    assert len(clips) == 3
    for i in range(len(clips)):
        sample = clips[i]['data_samples']
        assert sample.gt_visible.shape[0] == 8 and not sample.gt_visible.any()
