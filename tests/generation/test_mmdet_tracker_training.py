"""``annotations_train.json`` of a generated set: what mmdet's MOTChallengeDataset trains on (no
box under 1 px, no frame or video without a box), beside the full ``annotations.json``
(issue 20, item 11; training mmdet's own QDTrack config on it is not yet tested)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmtrackgen.generation.runner import training_cocovid
from tests.factories import moving_track, write_cocovid

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'tests/data/trackdiff_micro.py')
CLASSES = ('square', 'circle', 'triangle', 'cross')  # the micro config's classes


@pytest.fixture(scope='module')
def generated(checkpoint, tmp_path_factory):
    """Two 4-frame clips (32x24 layouts, generated at the micro model's 16x16): in 'edge' a
    square enters from the left edge, 1.5 px wide at first (0.75 px at 16x16), and a circle
    appears at frame 1; 'empty' has no instance at all."""
    root = tmp_path_factory.mktemp('generated')
    videos = [
        dict(
            name='edge',
            num_frames=4,
            tracks={
                1: (0, {t: [0, 6, 1.5 + 6 * t, 10] for t in range(4)}),
                2: moving_track(1, 1, 3, (14, 4), (10, 12), (1, 1)),
            }),
        dict(name='empty', num_frames=4, tracks={}),
    ]
    tracklets = write_cocovid(str(root / 'layouts'), videos, classes=CLASSES, write_frames=False)
    out = root / 'out'
    cmd = [
        sys.executable,
        str(ROOT / 'tools/generate.py'), CONFIG, checkpoint, '--tracklets', tracklets,
        '--out-dir',
        str(out), '--batch-size', '2', '--device', 'cpu'
    ]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_training_annotation_drops_slivers_and_empty_frames_only(generated):
    full = json.loads((generated / 'annotations.json').read_text())
    train = json.loads((generated / 'annotations_train.json').read_text())
    assert train == training_cocovid(full)
    assert len(full['images']) == 8 and [v['name'] for v in full['videos']] == ['edge_000000', 'empty_000000']
    assert [v['name'] for v in train['videos']] == ['edge_000000']
    # Frame 0 of 'edge' holds only the 0.75 px sliver: it goes; frames 1-3 keep both boxes.
    assert [im['frame_id'] for im in train['images']] == [1, 2, 3]
    assert all(min(a['bbox'][2:]) >= 1 for a in train['annotations'])
    assert len(train['annotations']) == 6 and train['categories'] == full['categories']
