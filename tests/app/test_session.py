"""One generation of the page on the micro model: the clip tools/generate.py makes from the same
layout and seed, a zip that is a valid CocoVID dataset, scores, progress per sampling step."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mmtrackgen.app import PageInputError, PageModel, keyframes_to_layout, parse_keyframes
from mmtrackgen.app.session import alignment_score
from mmtrackgen.datasets.tracklet_file import load_tracklet_file, write_tracklet_file
from mmtrackgen.datasets.tracklets import validate_cocovid
from tests.conftest import MICRO_CONFIG

ROOT = Path(__file__).resolve().parents[2]
ROWS = [[1, 'square', 0, 1, 1, 6, 6], [1, 'square', 3, 9, 9, 15, 15], [2, 'circle', 1, 2, 8, 7, 14]]


@pytest.fixture(scope='module')
def model(checkpoint, tmp_path_factory):
    return PageModel(MICRO_CONFIG, checkpoint, out_root=str(tmp_path_factory.mktemp('page')))


def test_a_generation_writes_the_dataset_of_tools_generate(model, checkpoint, tmp_path):
    layout = keyframes_to_layout(parse_keyframes(ROWS, model.spec), model.spec)
    steps = []
    result = model.generate(layout, seed=3, progress=lambda done, total: steps.append((done, total)))
    assert steps == [(1, 2), (2, 2)]  # the micro config samples with 2 steps
    assert result.frames.shape == (4, 16, 16, 3) and result.frames.dtype == np.uint8

    with zipfile.ZipFile(result.zip) as archive:
        names = set(archive.namelist())
        assert {'annotations.json', 'tracklets.json', 'page/clip.json',
                'page/img1/000001.jpg', 'page/img1/000004.jpg'} <= names
        assert not any(name.startswith('.partial') for name in names)
        archive.extractall(tmp_path / 'zip')
    ann = json.loads((tmp_path / 'zip/annotations.json').read_text())
    validate_cocovid(ann, file='annotations.json')
    assert [v['name'] for v in ann['videos']] == ['page']
    assert len(ann['annotations']) == int(layout.visible.sum()) == 5
    assert ann['info']['seed'] == 3 and ann['info']['steps'] == 2
    again = load_tracklet_file(str(tmp_path / 'zip/tracklets.json'))[0]
    np.testing.assert_allclose(again.boxes, layout.boxes)



def test_the_page_makes_the_clip_tools_generate_makes(model, checkpoint, tmp_path):
    """The same layout and seed give the same frames on the page and from the command line
    (which names the clip of layout 'page' 'page_000000': the page is given that name)."""
    layout = keyframes_to_layout(parse_keyframes(ROWS, model.spec), model.spec)
    write_tracklet_file(str(tmp_path / 'in.json'), [layout])
    out = tmp_path / 'cli'
    cmd = [
        sys.executable, str(ROOT / 'tools/generate.py'), MICRO_CONFIG, checkpoint, '--tracklets',
        str(tmp_path / 'in.json'), '--out-dir', str(out), '--seed', '3'
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = model.generate(layout.copy(name='page_000000'), seed=3)
    with zipfile.ZipFile(result.zip) as archive:
        archive.extractall(tmp_path / 'zip')
    for t in range(1, 5):
        frame = f'page_000000/img1/{t:06d}.jpg'
        assert (out / frame).read_bytes() == (tmp_path / 'zip' / frame).read_bytes()


def test_scores_are_pluggable_and_fill_the_per_box_table(model):
    layout = keyframes_to_layout(parse_keyframes(ROWS, model.spec), model.spec)

    def boxes_seen(layout, frames, classes):
        return dict(count=int(layout.visible.sum()),
                    per_box={(int(t), int(layout.instance_ids[n])): 1.0
                             for t, n in np.argwhere(layout.visible)})

    model.scores['seen'] = boxes_seen
    try:
        result = model.generate(layout, seed=0)
    finally:
        del model.scores['seen']
    assert set(result.scores) == {'alignment', 'identity', 'seen'}
    assert result.scores['seen'] == dict(count=5)
    assert set(result.scores['identity']) == {'HOTA', 'IDF1', 'MOTA', 'IDSW'}
    assert result.per_box_columns == ['frame', 'instance', 'category', 'alignment', 'seen']
    assert [row[:3] for row in result.per_box] == [[0, 1, 'square'], [1, 1, 'square'],
                                                   [1, 2, 'circle'], [2, 1, 'square'],
                                                   [3, 1, 'square']]
    assert all(row[4] == 1.0 and 0 <= row[3] <= 1 for row in result.per_box)


def test_alignment_score_finds_an_object_in_its_box():
    frames = np.full((1, 16, 16, 3), 128, np.uint8)
    frames[0, 4:8, 2:10] = (255, 0, 0)  # a red object at x 2..10, y 4..8
    layout = keyframes_to_layout(
        parse_keyframes([[5, 'square', 0, 2, 4, 10, 8]], _one_frame()), _one_frame())
    score = alignment_score(layout, frames, ['square'])
    assert score['mean_iou'] == pytest.approx(1.0) and score['per_box'] == {(0, 5): 1.0}


def _one_frame():
    from mmtrackgen.app import PageSpec
    return PageSpec(('square', ), (16, 16), 1, 2)


def test_bad_generation_settings_get_a_page_message(model):
    layout = keyframes_to_layout(parse_keyframes(ROWS, model.spec), model.spec)
    with pytest.raises(PageInputError, match='sampling steps must be >= 1'):
        model.generate(layout, steps=-1)
    with pytest.raises(PageInputError, match='guidance must be a finite number'):
        model.generate(layout, guidance=float('nan'))
