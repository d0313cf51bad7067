"""Filtering generated clips by their own alignment (and an optional category scorer): which
clips and instances are kept, the CocoVID it writes, the report, and the tool."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

from mmtrackgen.generation.filtering import filter_generated, judge_clip
from mmtrackgen.generation.writer import GeneratedDatasetWriter
from mmtrackgen.structures import TrackletLayout

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CATEGORIES = ['square', 'circle']
BOXES = [(4, 4, 12, 12), (20, 18, 28, 26)]  # pixel xyxy of instance 1 and 2, every frame


def clip(name, drawn, categories=('square', 'circle'), num_frames=3):
    """A 32x32 clip of two instances on a grey background; `drawn` says which are painted (a
    saturated red square exactly in its box), the others are missing from the frames."""
    boxes = np.tile(np.array(BOXES, np.float32), (num_frames, 1, 1))  # (F, 2, 4)
    layout = TrackletLayout(
        name=name,
        image_size=(32, 32),
        boxes=boxes,
        visible=np.ones((num_frames, 2), bool),
        instance_ids=np.array([1, 2]),
        categories=list(categories))
    frames = np.full((num_frames, 32, 32, 3), 128, np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(BOXES):
        if drawn[k]:
            frames[:, y1:y2, x1:x2] = (220, 30, 30)
    return layout, frames


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    """good: both drawn; half: the second instance missing; blank: nothing drawn."""
    root = tmp_path_factory.mktemp('filtering') / 'gen'
    writer = GeneratedDatasetWriter(str(root))
    clips = [clip('good', (True, True)), clip('half', (True, False)), clip('blank', (False, False))]
    for layout, frames in clips:
        writer.submit(layout, frames)
    writer.close()
    writer.merge([layout.name for layout, _ in clips], CATEGORIES, info={})
    return root


def load(path):
    with open(path) as f:
        return json.load(f)


def test_judge_clip_scores_each_instance_and_the_clip():
    layout, frames = clip('half', (True, False))
    verdict = judge_clip(layout, frames, min_iou=0.6)
    assert verdict['instances'][1]['mean_iou'] == pytest.approx(1.0)
    assert verdict['instances'][2]['mean_iou'] == 0.0
    assert verdict['mean_iou'] == pytest.approx(0.5)
    assert not verdict['kept'] and verdict['reasons'] == ['alignment 0.500 < 0.6']
    per_instance = judge_clip(layout, frames, min_iou=0.6, level='instance')
    assert per_instance['kept'] and per_instance['instances'][1]['kept']
    assert per_instance['instances'][2]['reasons'] == ['alignment 0.000 < 0.6']
    assert judge_clip(layout, frames, min_iou=0.4)['kept']


def test_clip_level_keeps_aligned_clips_and_writes_a_dataset(generated, tmp_path):
    out = tmp_path / 'kept'
    report = filter_generated(str(generated), str(out), min_iou=0.6)
    ann = load(out / 'annotations.json')
    assert [v['name'] for v in ann['videos']] == ['good']
    assert len(ann['images']) == 3 and len(ann['annotations']) == 6
    assert ann['info']['filtered']['min_iou'] == 0.6
    for image in ann['images']:  # frames are there, under the same names
        assert (out / image['file_name']).is_file()
    assert not (out / 'half').exists()
    assert (out / 'good' / 'clip.json').is_file()
    assert report['clips'] == dict(total=3, kept=1)
    assert report['boxes'] == dict(total=18, kept=6)
    assert report['dropped'] == {
        'half': ['alignment 0.500 < 0.6'],
        'blank': ['alignment 0.000 < 0.6']
    }
    assert load(out / 'filter_report.json')['per_clip']['good']['mean_iou'] == pytest.approx(1.0)
    # the result reads as the tracker configs read a generated set
    from mmtrackgen.datasets.tracklets import validate_cocovid
    validate_cocovid(ann)


def test_instance_level_drops_the_missing_instance_only(generated, tmp_path):
    out = tmp_path / 'instances'
    report = filter_generated(str(generated), str(out), min_iou=0.6, level='instance')
    ann = load(out / 'annotations.json')
    assert [v['name'] for v in ann['videos']] == ['good', 'half']
    half = next(v['id'] for v in ann['videos'] if v['name'] == 'half')
    assert {a['instance_id'] for a in ann['annotations'] if a['video_id'] == half} == {1}
    assert report['instances'] == dict(total=6, kept=3)
    assert report['dropped'] == {'blank': ['no instance kept']}


def test_category_scorer_drops_instances_that_do_not_look_like_their_category(
        generated, tmp_path):
    calls = []

    def scorer(layout, frames):  # the circles are painted as squares: accuracy 0
        calls.append(layout.name)
        return np.array([0.0 if c == 'circle' else 1.0 for c in layout.categories])

    report = filter_generated(
        str(generated),
        str(tmp_path / 'category'),
        min_iou=0.0,
        min_category_acc=0.8,
        category_scorer=scorer,
        level='instance')
    assert sorted(calls) == ['blank', 'good', 'half']
    good = report['per_clip']['good']['instances']
    assert good[1]['kept'] and not good[2]['kept']
    assert good[2]['reasons'] == ['category accuracy 0.000 < 0.8']
    assert report['instances']['kept'] == 3
    with pytest.raises(ValueError, match='one accuracy per instance'):
        filter_generated(
            str(generated),
            str(tmp_path / 'bad'),
            min_iou=0.0,
            min_category_acc=0.8,
            category_scorer=lambda layout, frames: np.ones(5))


def test_bad_inputs_are_refused(generated, tmp_path):
    with pytest.raises(FileNotFoundError, match='tools/generate.py output'):
        filter_generated(str(tmp_path), str(tmp_path / 'o'), min_iou=0.5)
    with pytest.raises(ValueError, match='needs a category_scorer'):
        filter_generated(str(generated), str(tmp_path / 'o'), min_iou=0.5, min_category_acc=0.5)
    with pytest.raises(ValueError, match='min_iou'):
        filter_generated(str(generated), str(tmp_path / 'o'), min_iou=1.5)
    with pytest.raises(ValueError, match='generated folder itself'):
        filter_generated(str(generated), str(generated), min_iou=0.5)
    filter_generated(str(generated), str(tmp_path / 'o'), min_iou=0.5)
    with pytest.raises(FileExistsError, match='overwrite'):
        filter_generated(str(generated), str(tmp_path / 'o'), min_iou=0.5)
    filter_generated(str(generated), str(tmp_path / 'o'), min_iou=0.9, overwrite=True)


def test_tool(generated, tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    tool = osp.join(REPO, 'tools', 'filter_generated.py')
    out = str(tmp_path / 'cli')
    proc = subprocess.run([sys.executable, tool, str(generated), '--min-iou', '0.6', '--out', out],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'kept 1/3 clips, 2/6 instances, 6/18 boxes' in proc.stdout
    proc = subprocess.run([
        sys.executable, tool,
        str(generated), '--min-iou', '0.6', '--out', out, '--overwrite', '--min-category-acc',
        '0.5', '--category-classifier', str(tmp_path / 'missing.pth')
    ],
                          capture_output=True,
                          text=True,
                          env=env,
                          timeout=120)
    assert proc.returncode == 2 and 'missing.pth' in proc.stderr
