"""The synthetic MOT video world: determinism, CocoVID structure, motion events, appearance,
segmentation, and that mmdet's own video datasets read the files unchanged."""
import json
import os
import os.path as osp
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from mmtrackgen.datasets.synthetic import (FOREGROUND_CHROMA, SHAPES, make_synthetic_dataset,
                                           render_video, sample_video, segment_foreground,
                                           video_rng)
from mmtrackgen.datasets.tracklets import validate_cocovid

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLASSES = ('square', 'circle', 'triangle', 'cross')
TINY = dict(splits={'train': 2, 'val': 1}, novel_videos=2, frames_per_video=6, progress=False)


def load(root, name):
    with open(osp.join(root, 'annotations', name)) as f:
        return json.load(f)


def tree_bytes(root):
    """{relative path: bytes} of every file under root."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = f.read()
    return out


def tracks_of(coco):
    """{(video_id, instance_id): sorted [(frame_id, annotation)]}."""
    frame_of = {im['id']: im['frame_id'] for im in coco['images']}
    tracks = defaultdict(list)
    for a in coco['annotations']:
        tracks[(a['video_id'], a['instance_id'])].append((frame_of[a['image_id']], a))
    return {k: sorted(v, key=lambda fa: fa[0]) for k, v in tracks.items()}


def erode(mask):
    p = np.pad(mask, 1)
    return mask & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    """4 train videos of 12 frames (with frames), 8 novel; generated once for the module."""
    root = str(tmp_path_factory.mktemp('synthetic'))
    summary = make_synthetic_dataset(
        root, splits={'train': 4}, novel_videos=8, frames_per_video=12, progress=False)
    return root, summary


def test_same_seed_gives_identical_bytes_other_seed_differs(tmp_path):
    a = tree_bytes(make_synthetic_dataset(str(tmp_path / 'a'), seed=3, **TINY)['out_dir'])
    b = tree_bytes(make_synthetic_dataset(str(tmp_path / 'b'), seed=3, **TINY)['out_dir'])
    c = tree_bytes(make_synthetic_dataset(str(tmp_path / 'c'), seed=4, **TINY)['out_dir'])
    assert len(a) == 3 * 6 + 4  # 18 frames, 2 split files, novel tracklets, captions
    assert a == b
    assert a.keys() == c.keys()
    frames = [p for p in a if p.endswith('.jpg')]
    assert sum(a[p] != c[p] for p in frames) > len(frames) // 2
    assert a['annotations/train_cocoformat.json'] != c['annotations/train_cocoformat.json']


def test_video_does_not_depend_on_generation_order(tmp_path):
    # Video train_0001 is the same whether 2 or 5 train videos (and other splits) are made.
    few = make_synthetic_dataset(
        str(tmp_path / 'few'),
        splits={'train': 2},
        novel_videos=0,
        frames_per_video=4,
        progress=False)
    many = make_synthetic_dataset(
        str(tmp_path / 'many'),
        splits={
            'val': 1,
            'train': 5
        },
        novel_videos=1,
        frames_per_video=4,
        progress=False)
    rel = osp.join('train', 'train_0001', 'img1')
    for name in sorted(os.listdir(osp.join(few['out_dir'], rel))):
        with open(osp.join(few['out_dir'], rel, name), 'rb') as f1, \
                open(osp.join(many['out_dir'], rel, name), 'rb') as f2:
            assert f1.read() == f2.read()


def test_cocovid_structure(small):
    root, summary = small
    coco = load(root, 'train_cocoformat.json')
    validate_cocovid(coco)  # the project's own reader accepts it

    assert coco['info']['frames_written'] is True
    assert coco['info']['split'] == 'train' and coco['info']['seed'] == 0
    assert coco['info']['args']['frames_per_video'] == 12
    assert coco['categories'] == [dict(id=i + 1, name=n) for i, n in enumerate(CLASSES)]
    assert [v['name'] for v in coco['videos']] == [f'train_{i:04d}' for i in range(4)]
    for key in ('videos', 'images', 'annotations'):
        assert [x['id'] for x in coco[key]] == list(range(1, len(coco[key]) + 1))
    assert summary['splits']['train']['annotations'] == len(coco['annotations']) > 0

    images = {im['id']: im for im in coco['images']}
    videos = {v['id']: v for v in coco['videos']}
    for im in coco['images']:
        assert (im['width'], im['height']) == (64, 64)
        name = videos[im['video_id']]['name']
        assert im['file_name'] == f"{name}/img1/{im['frame_id'] + 1:06d}.jpg"
        assert 0 <= im['frame_id'] < 12
        assert osp.isfile(osp.join(root, 'train', im['file_name']))
    assert len(coco['images']) == 4 * 12

    for a in coco['annotations']:
        im = images[a['image_id']]
        assert a['video_id'] == im['video_id']
        x, y, w, h = a['bbox']
        assert w >= 1 and h >= 1
        assert x >= 0 and y >= 0 and x + w <= im['width'] + 1e-6 and y + h <= im['height'] + 1e-6
        assert a['area'] == pytest.approx(w * h, abs=0.01)
        assert 0 < a['visibility'] <= 1
        assert a['iscrowd'] == 0 and a['mot_conf'] == 1.0 and a['ignore'] is False

    tracks = tracks_of(coco)
    # Instance ids are unique over the split: one video and one category per instance.
    assert len({iid for _, iid in tracks}) == len(tracks)
    for track in tracks.values():
        assert len({a['category_id'] for _, a in track}) == 1
        frames = [t for t, _ in track]
        assert len(frames) == len(set(frames))  # at most one box per frame


def test_captions_and_novel_tracklets(small):
    root, summary = small
    captions = load(root, 'captions.json')
    assert sorted(captions) == sorted([f'train_{i:04d}'
                                       for i in range(4)] + [f'novel_{i:04d}' for i in range(8)])
    coco = load(root, 'train_cocoformat.json')
    names = {c['id']: c['name'] for c in coco['categories']}
    for video in coco['videos']:
        caption = captions[video['name']]
        assert caption.endswith('background') and caption.startswith(('a ', 'an '))
        for a in coco['annotations']:
            if a['video_id'] == video['id']:
                assert names[a['category_id']] in caption

    novel = load(root, 'novel_tracklets.json')
    validate_cocovid(novel)
    assert novel['info']['frames_written'] is False and novel['info']['split'] == 'novel'
    assert len(novel['videos']) == 8 and len(novel['images']) == 8 * 12
    assert len(novel['annotations']) > 0
    assert not osp.exists(osp.join(root, 'novel'))
    assert summary['splits']['novel']['frames'] == 0
    # New layouts: not a copy of the train boxes.
    train_boxes = {tuple(a['bbox']) for a in coco['annotations']}
    novel_boxes = {tuple(a['bbox']) for a in novel['annotations']}
    assert len(train_boxes & novel_boxes) < 0.1 * len(novel_boxes)


def test_motion_events_occur(tmp_path):
    """Entering, leaving, re-appearing (a gap in a track) and occlusion all happen."""
    make_synthetic_dataset(str(tmp_path), splits={}, novel_videos=16, progress=False)
    coco = load(str(tmp_path), 'novel_tracklets.json')
    last = 24 - 1
    tracks = tracks_of(coco)
    enters = [k for k, tr in tracks.items() if tr[0][0] > 0]
    leaves = [k for k, tr in tracks.items() if tr[-1][0] < last]
    gaps = [k for k, tr in tracks.items() if tr[-1][0] - tr[0][0] + 1 > len(tr)]
    assert enters and leaves and gaps

    def inside(box):
        x, y, w, h = box
        return x > 0 and y > 0 and x + w < 64 and y + h < 64

    def overlap(b1, b2):
        return (min(b1[0] + b1[2], b2[0] + b2[2]) > max(b1[0], b2[0])
                and min(b1[1] + b1[3], b2[1] + b2[3]) > max(b1[1], b2[1]))

    by_image = defaultdict(list)
    for a in coco['annotations']:
        by_image[a['image_id']].append(a)
    occluded = [
        a for anns in by_image.values() for a in anns
        if a['visibility'] < 0.9 and inside(a['bbox']) and any(
            overlap(a['bbox'], b['bbox']) for b in anns if b is not a)
    ]
    assert occluded
    # Objects change size (approach / recede) within a track.
    sizes = [
        max(a['bbox'][2] for _, a in tr) / min(a['bbox'][2] for _, a in tr)
        for tr in tracks.values() if all(inside(a['bbox']) for _, a in tr)
    ]
    assert max(sizes) > 1.3


def test_frames_show_the_rendered_world(small):
    """Frames on disk are the renderer's frames (JPEG noise aside); segment_foreground finds the
    drawn objects and stays inside the annotated boxes."""
    root, _ = small
    coco = load(root, 'train_cocoformat.json')
    inter = union = inside_boxes = masked = 0
    for index in range(4):
        name = f'train_{index:04d}'
        layout = sample_video(video_rng(0, 'train', index), name, 64, 64, 12, (1, 3), CLASSES)
        rendered = render_video(layout)
        video_id = index + 1
        for t in range(12):
            disk = np.asarray(
                Image.open(osp.join(root, 'train', name, 'img1',
                                    f'{t + 1:06d}.jpg')).convert('RGB'))
            assert np.abs(disk.astype(int) - rendered.frames[t]).mean() < 2.0
            mask = segment_foreground(disk)
            drawn = rendered.coverage[t] >= 0.5
            inter += (mask & drawn).sum()
            union += (mask | drawn).sum()
            boxes = np.zeros_like(mask)
            image_id = next(im['id'] for im in coco['images']
                            if im['video_id'] == video_id and im['frame_id'] == t)
            for a in coco['annotations']:
                if a['image_id'] == image_id:
                    x, y, w, h = a['bbox']
                    boxes[int(y):int(np.ceil(y + h)), int(x):int(np.ceil(x + w))] = True
            inside_boxes += (mask & boxes).sum()
            masked += mask.sum()
    assert union > 0 and inter / union > 0.9
    assert inside_boxes / masked > 0.98


def test_segment_foreground_on_background_and_bad_input():
    layout = sample_video(video_rng(0, 'check', 0), 'v', 96, 64, 1, (1, 1), CLASSES)
    layout.tracks.clear()  # background only
    frame = render_video(layout).frames[0]
    assert frame.std() > 1.0  # not a flat colour
    chroma = frame.max(-1).astype(int) - frame.min(-1)
    assert chroma.max() < FOREGROUND_CHROMA / 2
    assert not segment_foreground(frame).any()
    with pytest.raises(ValueError, match='uint8'):
        segment_foreground(frame.astype(np.float32))
    with pytest.raises(ValueError, match='H, W, 3'):
        segment_foreground(frame[..., 0])


def test_appearance_is_constant_over_frames(small):
    """An unoccluded object has the same mean colour whenever it is fully visible."""
    root, _ = small
    checked = defaultdict(int)
    for index in range(4):
        name = f'train_{index:04d}'
        layout = sample_video(video_rng(0, 'train', index), name, 64, 64, 12, (1, 3), CLASSES)
        rendered = render_video(layout)
        frames = [
            np.asarray(
                Image.open(osp.join(root, 'train', name, 'img1',
                                    f'{t + 1:06d}.jpg')).convert('RGB')) for t in range(12)
        ]
        for k, track in enumerate(layout.tracks):
            full = [t for t in range(12) if rendered.visibility[t, k] > 0.999]
            means = [frames[t][erode(rendered.labels[t] == k)].mean(axis=0) for t in full]
            if len(means) < 2:
                continue
            spread = np.ptp(np.stack(means), axis=0).max()
            # Patterns are re-sampled at every size and sub-pixel position: looser bound.
            assert spread < (6 if track.appearance.pattern == 'solid' else 20), track
            checked[track.appearance.pattern == 'solid'] += 1
    assert sum(checked.values()) >= 3


@pytest.mark.parametrize('dataset_type', ['BaseVideoDataset', 'MOTChallengeDataset'])
def test_mmdet_video_datasets_read_the_files(small, dataset_type):
    import mmdet.datasets
    root, summary = small
    cls = getattr(mmdet.datasets, dataset_type)
    dataset = cls(
        data_root=root,
        ann_file='annotations/train_cocoformat.json',
        data_prefix=dict(img_path='train'),
        metainfo=dict(classes=CLASSES),
        pipeline=[])
    assert len(dataset) == 4
    coco = load(root, 'train_cocoformat.json')
    item = dataset[0]
    # mmdet drops frames without boxes unless filter_cfg says otherwise.
    assert 0 < item['video_length'] == len(item['images']) <= 12
    assert sum(len(im['instances']) for v in range(4)
               for im in dataset.get_data_info(v)['images']) == len(coco['annotations'])
    for im in item['images']:
        assert osp.isfile(im['img_path'])
        assert im['img_path'].startswith(osp.join(root, 'train'))
        for inst in im['instances']:
            x1, y1, x2, y2 = inst['bbox']
            assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
            assert inst['instance_id'] >= 1 and 0 <= inst['bbox_label'] < len(CLASSES)
            if dataset_type == 'MOTChallengeDataset':
                assert 0 < inst['visibility'] <= 1 and inst['mot_conf'] == 1.0
    frame_ids = [im['frame_id'] for im in item['images']]
    assert frame_ids == sorted(frame_ids) and set(frame_ids) <= set(range(12))


@pytest.mark.parametrize('kwargs, message', [
    (dict(categories=('square', 'hexagon')), 'unknown categories'),
    (dict(categories=()), 'non-empty'),
    (dict(num_instances=(3, 1)), 'min <= max'),
    (dict(num_instances=(0, 2)), 'min <= max'),
    (dict(image_size=(16, 64)), '>= 32'),
    (dict(frames_per_video=0), 'frames_per_video'),
    (dict(splits={'novel': 2}), 'reserved'),
    (dict(splits={'tr/ain': 2}), 'letters'),
    (dict(seed=-1), 'seed'),
])
def test_bad_arguments_raise(tmp_path, kwargs, message):
    args = dict(TINY, **kwargs)
    with pytest.raises(ValueError, match=message):
        make_synthetic_dataset(str(tmp_path), **args)
    assert not osp.exists(osp.join(tmp_path, 'annotations'))


def test_existing_output_needs_overwrite(tmp_path):
    make_synthetic_dataset(str(tmp_path), **TINY)
    with pytest.raises(FileExistsError, match='overwrite'):
        make_synthetic_dataset(str(tmp_path), **TINY)
    make_synthetic_dataset(str(tmp_path), **dict(TINY, splits={'train': 1}), overwrite=True)
    assert sorted(os.listdir(tmp_path / 'train')) == ['train_0000']  # stale videos removed


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    return subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'make_synthetic.py'), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120)


def test_cli(tmp_path):
    out = str(tmp_path / 'syn')
    proc = run_cli('--out', out, '--train', '2', '--val', '1', '--test', '0', '--novel', '1',
                   '--frames', '3', '--size', '48', '32', '--categories', 'ring', 'diamond',
                   '--seed', '5')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith('wrote 9 frames')
    coco = load(out, 'train_cocoformat.json')
    assert [c['name'] for c in coco['categories']] == ['ring', 'diamond']
    assert coco['info']['seed'] == 5 and coco['images'][0]['width'] == 48


@pytest.mark.parametrize(
    'argv, message',
    [
        (['--categories', 'hexagon'], "invalid choice: 'hexagon'"),
        (['--min-instances', '3', '--max-instances', '2'], 'min <= max'),
        (['--size', '16', '16'], '>= 32'),
        (['--frames', '0'], 'frames_per_video'),
        (['--train', '1'], 'overwrite'),  # the output exists and --overwrite is not given
    ])
def test_cli_rejects_bad_arguments(tmp_path, capsys, argv, message):
    """Bad arguments, also those the library finds, are argparse usage errors (exit code 2)."""
    import runpy
    tool = runpy.run_path(osp.join(REPO, 'tools', 'make_synthetic.py'))
    out = str(tmp_path / 'syn')
    os.makedirs(osp.join(out, 'annotations'))
    open(osp.join(out, 'annotations', 'captions.json'), 'w').close()
    with pytest.raises(SystemExit) as exc:
        tool['main'](['--out', out, '--no-progress', *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_unlabelled_pool_has_frames_and_captions_but_no_boxes(tmp_path):
    """The pool: its own videos (new shapes and busier scenes), frames on disk, captions, no
    annotations; deterministic; and adding it changes no other split's file."""
    kwargs = dict(TINY, pool_videos=3, pool_frames=4)
    with_pool = make_synthetic_dataset(str(tmp_path / 'a'), **kwargs)
    again = make_synthetic_dataset(str(tmp_path / 'b'), **kwargs)
    without = make_synthetic_dataset(str(tmp_path / 'c'), **TINY)
    a, b, c = (tree_bytes(s['out_dir']) for s in (with_pool, again, without))
    assert a == b
    pool_files = {p for p in a if p.startswith('pool' + os.sep)}
    assert len(pool_files) == 3 * 4
    assert set(a) - pool_files - {'annotations/pool_cocoformat.json'} == set(c)
    assert all(a[p] == c[p] for p in c if p != 'annotations/captions.json')

    pool = load(with_pool['out_dir'], 'pool_cocoformat.json')
    assert pool['annotations'] == [] and pool['info']['annotations_removed'] is True
    assert len(pool['videos']) == 3 and len(pool['images']) == 12
    assert [c['name'] for c in pool['categories']] == list(SHAPES)  # beyond the 4 labelled
    assert pool['info']['args']['frames_per_video'] == 4
    assert pool['info']['args']['num_instances'] == [1, 4]
    summary = with_pool['splits']['pool']
    assert summary['annotations'] == 0 and summary['drawn_instances'] >= 3
    captions = load(with_pool['out_dir'], 'captions.json')
    assert {v['name'] for v in pool['videos']} <= set(captions)
    # pool videos are not train videos re-rendered: their own generators
    assert a['pool/pool_0000/img1/000001.jpg'] != a['train/train_0000/img1/000001.jpg']
    image = Image.open(osp.join(with_pool['out_dir'], 'pool/pool_0000/img1/000001.jpg'))
    assert image.size == (64, 64)


def test_pool_reads_as_clips_without_instances(tmp_path):
    from mmtrackgen.datasets import TrackletClipDataset
    make_synthetic_dataset(str(tmp_path), **dict(TINY, pool_videos=2, pool_frames=4))
    clips = TrackletClipDataset(
        data_root=str(tmp_path) + '/',
        ann_file='annotations/pool_cocoformat.json',
        data_prefix=dict(img_path='pool/'),
        metainfo=dict(classes=CLASSES),
        captions_file='annotations/captions.json',
        clip_length=4)
    assert len(clips) == 2
    for i in range(2):
        info = clips.get_data_info(i)
        assert all(im['instances'] == [] for im in info['images'])
        assert info['caption'].endswith('background')


@pytest.mark.parametrize('kwargs, message', [
    (dict(pool_videos=-1), 'pool_videos'),
    (dict(pool_videos=2, pool_frames=0), 'pool_frames'),
    (dict(pool_videos=2, pool_instances=(2, 1)), 'pool_instances'),
    (dict(pool_videos=2, pool_categories=('hexagon', )), 'pool_categories'),
    (dict(splits={'pool': 2}), 'reserved'),
])
def test_bad_pool_arguments_raise(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_synthetic_dataset(str(tmp_path), **dict(TINY, **kwargs))
    assert not osp.exists(osp.join(tmp_path, 'annotations'))


def test_cli_pool(tmp_path):
    out = str(tmp_path / 'syn')
    proc = run_cli('--out', out, '--train', '1', '--val', '0', '--test', '0', '--novel', '0',
                   '--frames', '3', '--pool', '2', '--pool-frames', '2', '--pool-categories',
                   'ring', '--no-progress')
    assert proc.returncode == 0, proc.stderr
    assert 'pool 2 videos/0 boxes' in proc.stdout
    pool = load(out, 'pool_cocoformat.json')
    assert [c['name'] for c in pool['categories']] == ['ring'] and len(pool['images']) == 4
