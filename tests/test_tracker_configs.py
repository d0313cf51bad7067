"""The mmdet tracker configs of configs/trackers: every one parses without downloads; the
synthetic-world ones build, train 2 iterations on CPU and test on one video (QDTrack R18 in its
three data variants, ByteTrack in its real+generated one); mmdet's MOT metric, which the MOT17
configs keep, runs with the installed trackeval."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.structures import InstanceData
from PIL import Image

from mmtrackgen.datasets.synthetic import make_synthetic_dataset
from mmtrackgen.datasets.tracklet_file import layouts_from_cocovid
from mmtrackgen.generation.writer import GeneratedDatasetWriter
from mmtrackgen.registry import DATASETS, MODELS

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.name for p in (ROOT / 'configs/trackers').glob('*.py'))
QDTRACK_SYNTHETIC = {
    'qdtrack_r18_synthetic_real.py': ['data/synthetic/'],
    'qdtrack_r18_synthetic_generated.py': ['data/generated/'],
    'qdtrack_r18_synthetic_real+generated.py': ['data/synthetic/', 'data/generated/'],
}
CLASSES = ('square', 'circle', 'triangle', 'cross')
METRIC_KEYS = {'track/TrackAP', 'track/TrackAP50', 'track/HOTA', 'track/IDF1', 'track/MOTA'}


def load(name):
    return Config.fromfile(str(ROOT / 'configs/trackers' / name))


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    """data/synthetic (2 train videos, 1 val, 1 test) and data/generated, a folder laid out as
    tools/generate.py writes it (its writer, fed rendered clips of 32 px), under one folder."""
    root = tmp_path_factory.mktemp('trackers')
    tiny = dict(novel_videos=0, frames_per_video=4, progress=False)
    make_synthetic_dataset(
        str(root / 'data/synthetic'),
        splits=dict(train=2, val=1, test=1),
        image_size=(64, 64),
        seed=0,
        **tiny)
    source = root / 'clips'
    make_synthetic_dataset(str(source), splits=dict(gen=2), image_size=(32, 32), seed=1, **tiny)
    layouts = layouts_from_cocovid(
        json.loads((source / 'annotations/gen_cocoformat.json').read_text()))
    # A frame without objects, as when they all leave the view: kept by the test loop, dropped
    # from training (mmdet's MOTChallengeDataset would stop at it).
    for field in ('visible', 'visibility', 'boxes'):
        getattr(layouts[0], field)[1] = 0
    writer = GeneratedDatasetWriter(str(root / 'data/generated'))
    for layout in layouts:
        frames = [
            np.asarray(Image.open(source / 'gen' / layout.name / 'img1' / f'{t + 1:06d}.jpg'))
            for t in range(layout.num_frames)
        ]
        writer.submit(layout, np.stack(frames))
    writer.close()
    writer.merge([layout.name for layout in layouts], list(CLASSES), info={})
    return root


@pytest.fixture
def quick_config_text(monkeypatch):
    """The Runner formats its config with yapf four times (log, dump, visualizer, run info),
    seconds for these nested configs: a plain repr is enough here."""
    monkeypatch.setattr(Config, 'pretty_text', property(lambda cfg: repr(cfg.to_dict())))


def train_and_test(cfg, work_dir):
    """2 iterations, no validation or checkpoint, then the test loop (the one test video)."""
    cfg.work_dir = str(work_dir)
    cfg.train_cfg.max_iters = 2
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = None
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner.test()


@pytest.mark.parametrize('name', CONFIGS)
def test_config_parses_and_downloads_nothing(name):
    cfg = load(name)
    assert cfg.model.type in ('QDTrack', 'ByteTrack')
    assert '://' not in str(cfg.model.to_dict())  # weights are local files or none
    evaluators = cfg.test_evaluator
    if not isinstance(evaluators, list):
        evaluators = [evaluators]
    assert 'mmtrackgen.GeneratedTrackMetric' in [e['type'] for e in evaluators]
    if 'synthetic' in name:
        assert tuple(cfg.classes) == CLASSES
        assert cfg.train_cfg.type == 'IterBasedTrainLoop'


@pytest.mark.parametrize('name', sorted(QDTRACK_SYNTHETIC))
def test_synthetic_qdtrack_builds_trains_and_tests(name, world, tmp_path, monkeypatch,
                                                   quick_config_text):
    monkeypatch.chdir(world)  # the configs' relative data/ paths
    cfg = load(name)
    init_default_scope(cfg.default_scope)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(dataset) == 2 * len(QDTRACK_SYNTHETIC[name])  # videos
    parts = [getattr(d, 'dataset', d) for d in getattr(dataset, 'datasets', [dataset])]
    assert [part.data_root for part in parts] == QDTRACK_SYNTHETIC[name]
    for part in parts:
        if part.data_root == 'data/generated/':
            assert part.num_all_imgs == 2 * 4 - 1  # the frame without objects left out
    assert len(DATASETS.build(cfg.test_dataloader.dataset)) == 1
    model = MODELS.build(cfg.model)
    assert model.detector.backbone.depth == 18
    assert model.detector.roi_head.bbox_head.num_classes == len(CLASSES)
    assert sum(p.numel() for p in model.detector.backbone.parameters()) < 12e6

    metrics = train_and_test(cfg, tmp_path)
    assert METRIC_KEYS <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())


def test_synthetic_bytetrack_trains_and_tests(world, tmp_path, monkeypatch, quick_config_text):
    pytest.importorskip('lap', reason='ByteTracker needs lap (requirements/runtime.txt)')
    monkeypatch.chdir(world)
    cfg = load('bytetrack_yolox-tiny_synthetic_real+generated.py')
    metrics = train_and_test(cfg, tmp_path)
    assert METRIC_KEYS <= set(metrics)


def test_mmdet_mot_metric_runs_with_installed_trackeval(tmp_path):
    """mmdet's MOTChallengeMetric (kept by the MOT17 configs) and ours agree on a perfect
    tracker: one 3-frame video, two pedestrians."""
    from mmdet.structures import DetDataSample, TrackDataSample
    init_default_scope('mmtrackgen')
    boxes = {1: [10., 10., 30., 50.], 2: [60., 20., 80., 70.]}
    frames = []
    for t in range(3):
        frame = DetDataSample(
            metainfo=dict(
                img_path=str(tmp_path / 'MOT17-02' / 'img1' / f'{t + 1:06d}.jpg'),
                frame_id=t,
                video_id=1,
                ori_video_length=3,
                instances=[
                    dict(
                        bbox=[x1 + 2 * t, y1, x2 + 2 * t, y2],
                        instance_id=i,
                        bbox_label=0,
                        category_id=1,
                        mot_conf=1.0,
                        visibility=1.0) for i, (x1, y1, x2, y2) in boxes.items()
                ]))
        frame.pred_track_instances = InstanceData(
            instances_id=torch.tensor([7, 9]),
            bboxes=torch.tensor([inst['bbox'] for inst in frame.instances]),
            scores=torch.tensor([0.9, 0.8]),
            labels=torch.tensor([0, 0]))
        frames.append(frame)
    evaluator = Evaluator([dict(type='MOTChallengeMetric'), dict(type='GeneratedTrackMetric')])
    evaluator.dataset_meta = dict(classes=('pedestrian', ))
    evaluator.process([TrackDataSample(video_data_samples=frames)])
    results = evaluator.evaluate(1)
    for key in ('HOTA', 'MOTA', 'IDF1'):
        assert results[f'motchallenge-metric/{key}'] == pytest.approx(1.0)
        assert results[f'generated/{key}'] == pytest.approx(1.0)


def test_tools_test_scores_a_tracker_checkpoint(world, tmp_path, monkeypatch, quick_config_text):
    import argparse

    from tools.test import run
    monkeypatch.chdir(world)
    name = 'qdtrack_r18_synthetic_real.py'
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(load(name).model)
    checkpoint = tmp_path / 'qdtrack.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    args = argparse.Namespace(
        config=str(ROOT / 'configs/trackers' / name),
        checkpoint=str(checkpoint),
        work_dir=str(tmp_path / 'work'),
        cfg_options={'log_level': 'WARNING'},
        launcher='none',
        out_metrics=str(tmp_path / 'metrics.json'))
    metrics = run(args)
    assert METRIC_KEYS <= set(metrics)
    assert json.loads((tmp_path / 'metrics.json').read_text()) == pytest.approx(metrics)
