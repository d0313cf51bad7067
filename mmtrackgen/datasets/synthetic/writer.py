"""Writing the synthetic world as a CocoVID dataset that mmdet's video datasets read unchanged.

Layout of ``out_dir``::

    <split>/<split>_0000/img1/000001.jpg ...     frames (1-based names, like MOT17)
    annotations/<split>_cocoformat.json          CocoVID, one file per split
    annotations/novel_tracklets.json             tracklets only (no frames): generation input
    annotations/captions.json                    {video_name: caption}, every split and novel
    pool/pool_0000/img1/000001.jpg ...           the unlabelled pool's frames (when asked for)
    annotations/pool_cocoformat.json             its videos and frames, no annotations

The unlabelled pool is the miniature of the web-scale videos a real generator is pretrained on:
many short clips from the same renderer, with their own seeds (new backgrounds and motions) and,
by default, every shape of the renderer (objects the labelled splits never show), whose boxes
are *not* written, so a model trained on it learns appearance and motion without tracklets
(captions only). Its videos are drawn from their own generators, so adding a pool leaves the
other splits' files unchanged (captions.json gains the pool's captions).

Reproducibility: each video is drawn from its own generator seeded by ``(seed, split, index)``,
so it does not depend on which other videos are generated; JPEGs are written by Pillow with a
fixed quality and no metadata; JSON with sorted keys, fixed indentation and rounded floats. The
same arguments give byte-identical files (with the same numpy and Pillow versions).
"""
import json
import os
import os.path as osp
import re
import shutil
import zlib
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from mmtrackgen.structures import TrackletLayout
from ..tracklet_file import layouts_to_cocovid
from .render import RenderedVideo, render_video
from .shapes import SHAPES
from .world import VideoLayout, sample_video

FORMAT_VERSION = '1.0'
GENERATOR = 'mmtrackgen.datasets.synthetic'
NOVEL_SPLIT = 'novel'
POOL_SPLIT = 'pool'
MIN_IMAGE_SIDE = 32  # mmdet's BaseVideoDataset drops frames whose short side is below 32
MAX_INSTANCES = 16
# An object is annotated in a frame only where at least this many of its pixels are visible
# (and its clipped box is at least 1x1 pixel, which mmdet requires); otherwise it is hidden or
# out of view in that frame, and the missing annotation is how the track says so.
MIN_VISIBLE_AREA = 1.0
DEFAULT_CATEGORIES = ('square', 'circle', 'triangle', 'cross')


def video_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one video, independent of generation order."""
    # crc32 rather than hash(): str hashes are salted per Python process.
    return np.random.default_rng([seed, zlib.crc32(split.encode('utf-8')), index])


def frame_annotations(layout: VideoLayout, rendered: RenderedVideo) -> List[List[dict]]:
    """Per frame, the visible tracks: ``dict(track, bbox=[x, y, w, h], visibility)``.

    ``bbox`` is the whole object's box (occluded parts included, as in MOT17) clipped to the
    image and rounded to 2 decimals; ``visibility`` is the visible fraction of the object's
    pixels, after occlusion and truncation, rounded to 3 decimals (kept > 0).
    """
    out = []
    visibility = rendered.visibility
    for t in range(layout.num_frames):
        frame = []
        for k, track in enumerate(layout.tracks):
            if rendered.visible_area[t, k] < MIN_VISIBLE_AREA:
                continue
            x1, y1, x2, y2 = track.box(t)
            x1, y1 = round(max(x1, 0.0), 2), round(max(y1, 0.0), 2)
            x2, y2 = round(min(x2, layout.width), 2), round(min(y2, layout.height), 2)
            w, h = round(x2 - x1, 2), round(y2 - y1, 2)
            if w < 1 or h < 1:
                continue
            vis = max(round(float(visibility[t, k]), 3), 0.001)
            frame.append(dict(track=k, bbox=[x1, y1, w, h], visibility=min(vis, 1.0)))
        out.append(frame)
    return out


def caption_of(layout: VideoLayout, tracks: Sequence[int]) -> str:
    """Template caption, e.g. 'a red striped circle and a blue square moving over a grey
    background'."""
    things = [layout.tracks[k].appearance.describe(layout.tracks[k].category) for k in tracks]
    if not things:
        subject = 'nothing'
    elif len(things) == 1:
        subject = things[0]
    else:
        subject = ', '.join(things[:-1]) + ' and ' + things[-1]
    return f'{subject} moving over a {layout.background.describe()} background'


def _check_args(out_dir, splits, novel_videos, frames_per_video, image_size, num_instances,
                categories, seed, jpeg_quality):
    if not isinstance(out_dir, (str, os.PathLike)) or not str(out_dir):
        raise ValueError(f'out_dir must be a non-empty path, got {out_dir!r}')
    if not isinstance(splits, Mapping):
        raise ValueError(f'splits must map split names to video counts, got {splits!r}')
    for name, count in splits.items():
        if not isinstance(name, str) or not re.fullmatch(r'[A-Za-z0-9_]+', name):
            raise ValueError(f'split name {name!r} must be letters, digits or underscores')
        if name in (NOVEL_SPLIT, POOL_SPLIT, 'annotations'):
            raise ValueError(f"split name {name!r} is reserved (the novel tracklets are set by "
                             "novel_videos, the unlabelled pool by pool_videos; 'annotations' "
                             'holds the JSON files)')
        if not _is_int(count) or count < 0:
            raise ValueError(f'split {name!r}: video count must be an integer >= 0, got {count!r}')
    if not _is_int(novel_videos) or novel_videos < 0:
        raise ValueError(f'novel_videos must be an integer >= 0, got {novel_videos!r}')
    if not _is_int(frames_per_video) or frames_per_video < 1:
        raise ValueError(f'frames_per_video must be an integer >= 1, got {frames_per_video!r}')
    if (not _is_pair(image_size) or not all(_is_int(v) for v in image_size)
            or min(image_size) < MIN_IMAGE_SIDE):
        raise ValueError(f'image_size must be two integers (width, height), each >= '
                         f'{MIN_IMAGE_SIDE} (smaller frames leave no room for objects and mmdet '
                         f'drops them), got {image_size!r}')
    if not _is_pair(num_instances) or not all(_is_int(v) for v in num_instances):
        raise ValueError(f'num_instances must be two integers (min, max), got {num_instances!r}')
    lo, hi = num_instances
    if not 1 <= lo <= hi <= MAX_INSTANCES:
        raise ValueError(f'num_instances (min, max) must satisfy 1 <= min <= max <= '
                         f'{MAX_INSTANCES}, got ({lo}, {hi})')
    if isinstance(categories, str) or not categories:
        raise ValueError(f'categories must be a non-empty sequence of names, got {categories!r}')
    unknown = [c for c in categories if c not in SHAPES]
    if unknown:
        raise ValueError(f'unknown categories {unknown}; choose from {sorted(SHAPES)}')
    if len(set(categories)) != len(categories):
        raise ValueError(f'categories must not repeat, got {list(categories)}')
    if not _is_int(seed) or seed < 0:
        raise ValueError(f'seed must be an integer >= 0, got {seed!r}')
    if not _is_int(jpeg_quality) or not 1 <= jpeg_quality <= 100:
        raise ValueError(f'jpeg_quality must be an integer in [1, 100], got {jpeg_quality!r}')


def _check_pool_args(pool_videos, pool_frames, pool_instances, pool_categories):
    if not _is_int(pool_videos) or pool_videos < 0:
        raise ValueError(f'pool_videos must be an integer >= 0, got {pool_videos!r}')
    if not _is_int(pool_frames) or pool_frames < 1:
        raise ValueError(f'pool_frames must be an integer >= 1, got {pool_frames!r}')
    if (not _is_pair(pool_instances) or not all(_is_int(v) for v in pool_instances)
            or not 1 <= pool_instances[0] <= pool_instances[1] <= MAX_INSTANCES):
        raise ValueError(f'pool_instances (min, max) must be two integers with 1 <= min <= max '
                         f'<= {MAX_INSTANCES}, got {pool_instances!r}')
    if isinstance(pool_categories, str) or not pool_categories:
        raise ValueError(
            f'pool_categories must be a non-empty sequence of names, got {pool_categories!r}')
    unknown = [c for c in pool_categories if c not in SHAPES]
    if unknown or len(set(pool_categories)) != len(pool_categories):
        raise ValueError(f'pool_categories must be distinct names from {sorted(SHAPES)}, got '
                         f'{list(pool_categories)}')


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_pair(value) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2


def _dump_json(obj: dict, path: str):
    """Deterministic JSON, one line per top-level key and per record of a top-level list
    (compact, yet greppable and diffable)."""

    def dumps(value):
        return json.dumps(value, sort_keys=True, separators=(', ', ': '), ensure_ascii=True)

    def entry(key):
        value = obj[key]
        if isinstance(value, list) and value:
            value = '[\n' + ',\n'.join(dumps(item) for item in value) + '\n]'
        else:
            value = dumps(value)
        return f'{dumps(key)}: {value}'

    with open(path, 'w', encoding='utf-8', newline='\n') as f:
        f.write('{\n' + ',\n'.join(entry(key) for key in sorted(obj)) + '\n}\n')


def _save_jpeg(frame: np.ndarray, path: str, quality: int):
    # 4:4:4 (no chroma subsampling): subsampled chroma would bleed object colour into the grey
    # background and grey out thin stripes, blurring what segment_foreground measures.
    Image.fromarray(frame, 'RGB').save(path, format='JPEG', quality=quality, subsampling=0)


def _write_split(out_dir: str, split: str, num_videos: int, write_frames: bool, info: dict,
                 categories: Sequence[str], gen: dict, captions: Dict[str, str], progress) -> dict:
    """Generate one split's videos, write their frames and return the split's CocoVID dict."""
    width, height = gen['image_size']
    layouts = []
    next_instance = 1
    for index in range(num_videos):
        name = f'{split}_{index:04d}'
        layout = sample_video(
            video_rng(gen['seed'], split, index), name, width, height, gen['frames_per_video'],
            tuple(gen['num_instances']), categories)
        rendered = render_video(layout, draw=write_frames)
        per_frame = frame_annotations(layout, rendered)

        # Only tracks seen in some frame get an instance id (and a place in the caption).
        seen = sorted({a['track'] for frame in per_frame for a in frame})
        column = {k: n for n, k in enumerate(seen)}
        captions[name] = caption_of(layout, seen)
        layouts.append(
            _tracklet_layout(name, (height, width), per_frame, column, next_instance,
                             [layout.tracks[k].category for k in seen]))
        next_instance += len(seen)

        if write_frames:
            os.makedirs(osp.join(out_dir, split, name, 'img1'), exist_ok=True)
            for t in range(layout.num_frames):
                _save_jpeg(rendered.frames[t],
                           osp.join(out_dir, split, name, 'img1', f'{t + 1:06d}.jpg'),
                           gen['jpeg_quality'])
        if progress is not None:
            progress.update()
    # Boxes are already rounded to 2 decimals and visibility to 3, which the writer keeps.
    return layouts_to_cocovid(
        layouts,
        categories,
        file_name='{video}/img1/{frame:06d}.jpg',
        info=info,
        decimals=2,
        mot_fields=True)


def _tracklet_layout(name: str, image_size: Tuple[int, int], per_frame: List[List[dict]],
                     column: Dict[int, int], first_id: int, categories: List[str]):
    """One video's :func:`frame_annotations` as a layout; instance ids from ``first_id``."""
    num_frames, num_instances = len(per_frame), len(column)
    boxes = np.zeros((num_frames, num_instances, 4), np.float32)
    visible = np.zeros((num_frames, num_instances), bool)
    visibility = np.zeros((num_frames, num_instances), np.float32)
    for t, frame in enumerate(per_frame):
        for a in frame:
            n = column[a['track']]
            x, y, w, h = a['bbox']
            boxes[t, n] = (x, y, x + w, y + h)
            visible[t, n] = True
            visibility[t, n] = a['visibility']
    return TrackletLayout(
        name=name,
        image_size=image_size,
        boxes=boxes,
        visible=visible,
        instance_ids=np.arange(first_id, first_id + num_instances, dtype=np.int64),
        categories=categories,
        visibility=visibility)


def make_synthetic_dataset(out_dir: str,
                           *,
                           splits: Optional[Mapping[str, int]] = None,
                           novel_videos: int = 32,
                           frames_per_video: int = 24,
                           image_size: Tuple[int, int] = (64, 64),
                           num_instances: Tuple[int, int] = (1, 3),
                           categories: Sequence[str] = DEFAULT_CATEGORIES,
                           seed: int = 0,
                           jpeg_quality: int = 95,
                           pool_videos: int = 0,
                           pool_frames: int = 8,
                           pool_instances: Optional[Tuple[int, int]] = None,
                           pool_categories: Optional[Sequence[str]] = None,
                           progress: bool = True,
                           overwrite: bool = False) -> dict:
    """Generate the procedural multi-object-tracking video world as a CocoVID dataset.

    Args:
        out_dir (str): output folder (see the module docstring for its layout).
        splits (Mapping[str, int]): videos per split with frames on disk. Defaults to
            ``{'train': 96, 'val': 16, 'test': 16}``.
        novel_videos (int): videos of the tracklets-only ``novel`` split (new layouts, no
            frames), written to ``annotations/novel_tracklets.json``; 0 writes none.
        frames_per_video (int): frames per video.
        image_size (tuple[int, int]): ``(width, height)`` in pixels, each >= 32.
        num_instances (tuple[int, int]): ``(min, max)`` objects drawn per video. An object that
            ends up never visible (hidden behind nearer ones all along) is not annotated.
        categories (Sequence[str]): shapes to use, from ``square, circle, triangle, cross,
            diamond, ring``; category ids are 1-based in this order.
        seed (int): the only source of randomness; same arguments, same bytes.
        jpeg_quality (int): Pillow JPEG quality.
        pool_videos (int): videos of the unlabelled ``pool`` split (frames and captions, no
            annotations: the generator's pretraining data, never a tracker's); 0 writes none.
        pool_frames (int): frames per pool video (short clips: many of them, cheaply).
        pool_instances (tuple[int, int], optional): ``(min, max)`` objects per pool video.
            Default: ``num_instances`` with one more at most (busier scenes than the labelled
            splits).
        pool_categories (Sequence[str], optional): shapes of the pool. Default: every shape the
            renderer knows, so the pool holds objects the labelled splits never show.
        progress (bool): show a progress bar (mmengine's) on stdout.
        overwrite (bool): replace the frame folders and annotation files of an earlier run in
            ``out_dir``; without it, existing outputs raise ``FileExistsError``.

    Returns:
        dict: ``out_dir``, ``captions_file`` and, per split (``novel`` included), the number of
        ``videos``, ``frames`` (on disk), ``instances`` and ``annotations``, its ``ann_file``
        and its ``img_dir`` (None for novel). The pool's ``annotations`` and ``instances`` are
        0 (none are written) and its ``drawn_instances`` counts the objects it shows.
    """
    if splits is None:
        splits = {'train': 96, 'val': 16, 'test': 16}
    categories = tuple(categories) if not isinstance(categories, str) else categories
    _check_args(out_dir, splits, novel_videos, frames_per_video, image_size, num_instances,
                categories, seed, jpeg_quality)
    if pool_instances is None:
        pool_instances = (num_instances[0], min(num_instances[1] + 1, MAX_INSTANCES))
    if pool_categories is None:
        pool_categories = tuple(SHAPES)
    pool_categories = (
        tuple(pool_categories) if not isinstance(pool_categories, str) else pool_categories)
    _check_pool_args(pool_videos, pool_frames, pool_instances, pool_categories)
    out_dir = str(out_dir)
    ann_dir = osp.join(out_dir, 'annotations')
    jobs = [(split, count, True, osp.join(ann_dir, f'{split}_cocoformat.json'))
            for split, count in splits.items()]
    if novel_videos:
        jobs.append(
            (NOVEL_SPLIT, novel_videos, False, osp.join(ann_dir, f'{NOVEL_SPLIT}_tracklets.json')))
    if pool_videos:
        jobs.append(
            (POOL_SPLIT, pool_videos, True, osp.join(ann_dir, f'{POOL_SPLIT}_cocoformat.json')))
    captions_file = osp.join(ann_dir, 'captions.json')

    existing = [
        p for p in [captions_file] + [job[3] for job in jobs] +
        [osp.join(out_dir, job[0]) for job in jobs if job[2]] if osp.exists(p)
    ]
    if existing and not overwrite:
        raise FileExistsError(f'{existing[0]} already exists; pass overwrite=True '
                              '(--overwrite) to replace the outputs of the earlier run')
    for split, _, write_frames, _ in jobs:
        if write_frames and osp.isdir(osp.join(out_dir, split)):
            shutil.rmtree(osp.join(out_dir, split))  # stale videos of a larger earlier run
    os.makedirs(ann_dir, exist_ok=True)

    # Everything that determines the content, recorded in every file's `info`.
    gen = dict(
        splits={
            name: int(count)
            for name, count in splits.items()
        },
        novel_videos=int(novel_videos),
        frames_per_video=int(frames_per_video),
        image_size=[int(v) for v in image_size],
        num_instances=[int(v) for v in num_instances],
        categories=list(categories),
        seed=int(seed),
        jpeg_quality=int(jpeg_quality))
    # The pool's settings live in the pool's file only: the other splits keep their bytes.
    split_gen = {
        POOL_SPLIT:
        dict(
            gen,
            pool_videos=int(pool_videos),
            frames_per_video=int(pool_frames),
            num_instances=[int(v) for v in pool_instances],
            categories=list(pool_categories))
    }
    split_categories = {POOL_SPLIT: pool_categories}

    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(sum(job[1] for job in jobs))
    captions: Dict[str, str] = {}
    summary = dict(out_dir=out_dir, captions_file=captions_file, splits={})
    for split, count, write_frames, ann_file in jobs:
        info = dict(
            description='mmtrackgen procedural synthetic multi-object-tracking videos',
            generator=GENERATOR,
            format_version=FORMAT_VERSION,
            seed=int(seed),
            split=split,
            frames_written=write_frames,
            args=split_gen.get(split, gen))
        coco = _write_split(out_dir, split, count, write_frames, info,
                            split_categories.get(split, categories), split_gen.get(split, gen),
                            captions, bar)
        drawn = None
        if split == POOL_SPLIT:  # unlabelled: what the boxes were is not for the generator
            drawn = len({(a['video_id'], a['instance_id']) for a in coco['annotations']})
            coco['annotations'] = []
            coco['info']['annotations_removed'] = True
        _dump_json(coco, ann_file)
        summary['splits'][split] = dict(
            videos=count,
            frames=len(coco['images']) if write_frames else 0,
            instances=len({(a['video_id'], a['instance_id'])
                           for a in coco['annotations']}),
            annotations=len(coco['annotations']),
            ann_file=ann_file,
            img_dir=osp.join(out_dir, split) if write_frames else None)
        if drawn is not None:
            summary['splits'][split]['drawn_instances'] = drawn
    _dump_json(captions, captions_file)
    if bar is not None:
        print(flush=True)  # end the progress bar's line
    return summary
