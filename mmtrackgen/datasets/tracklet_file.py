"""Tracklet files, the input of generation: reading them as layouts, cutting, writing.

Two formats are read by :func:`load_tracklet_file` (see ``docs/tracklet_format.md``):

* the mmtrackgen tracklet JSON format, ``{"format": "mmtrackgen-tracklets", "version": 1,
  "clips": [...]}``: many clips in one file, per instance one box (or ``null``) per frame;
* CocoVID (COCO plus ``videos``, as mmdet's video datasets read it): each video is one layout.

A whole file is validated before any layout is returned, so a tool that writes per clip writes
nothing for a bad file. Problems raise :class:`TrackletAnnotationError` naming the file, clip
(``video``), frame (the 0-based frame index of the clip; CocoVID: the ``frame_id``) and field.
"""
import json
import math
import os
import os.path as osp
from collections.abc import Sequence
from typing import Optional

import numpy as np

from mmtrackgen.structures import TrackletLayout
from mmtrackgen.utils.files import write_text_atomic
from .tracklets import TrackletAnnotationError, group_annotations, load_json, validate_cocovid

FORMAT_NAME = 'mmtrackgen-tracklets'
FORMAT_VERSION = 1
# How far (pixels) a box of the JSON format may reach past the image border before it is an
# error; within it the box is clipped. Covers rounding and inclusive-pixel conventions, and still
# catches a swapped [W, H] image_size or boxes of another resolution.
BOX_TOLERANCE = 1.0

_TOP_KEYS = ('format', 'version', 'categories', 'clips', 'info')
_CLIP_REQUIRED = ('name', 'image_size', 'num_frames', 'instances')
_CLIP_KEYS = _CLIP_REQUIRED + ('caption', 'frame_ids')
_INSTANCE_REQUIRED = ('id', 'category', 'boxes')
_INSTANCE_KEYS = _INSTANCE_REQUIRED + ('visibility', )


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _type_name(value) -> str:
    return 'null' if value is None else type(value).__name__


# ----------------------------------------------------------------------------------------------
# Reading


def load_tracklet_file(path: str, check_boxes_in_image: bool = True) -> list[TrackletLayout]:
    """Read a tracklet file of either format as layouts, one per clip (JSON) or video (CocoVID).

    Args:
        path (str): a ``.json`` file: the mmtrackgen tracklet format (has ``clips``) or CocoVID
            (has ``videos``/``images``/``annotations``).
        check_boxes_in_image (bool): reject boxes outside the image and clip the rest to it.
            JSON format: a box may reach at most :data:`BOX_TOLERANCE` pixels past the border;
            CocoVID: partly outside is fine (MOT-style full-extent boxes), entirely outside is
            not. With False boxes are kept as given.

    Returns:
        list[TrackletLayout]: in file order, ``source`` set to ``path``.

    Raises:
        FileNotFoundError: no such file.
        TrackletAnnotationError: not JSON, neither format, or any invalid entry.
    """
    ann = load_json(path)
    if tracklet_file_format(ann, file=path) == 'cocovid':
        return layouts_from_cocovid(ann, file=path, check_boxes_in_image=check_boxes_in_image)
    return layouts_from_tracklet_json(ann, file=path, check_boxes_in_image=check_boxes_in_image)


def tracklet_file_format(ann, file: Optional[str] = None) -> str:
    """``'tracklets'`` (mmtrackgen JSON format) or ``'cocovid'``, from the top-level keys."""
    if not isinstance(ann, dict):
        raise TrackletAnnotationError(
            f'expected a JSON object at the top level, got {_type_name(ann)}', file=file)
    is_tracklets = 'clips' in ann or ann.get('format') == FORMAT_NAME
    is_coco = any(key in ann for key in ('videos', 'images', 'annotations'))
    if is_tracklets and is_coco:
        raise TrackletAnnotationError(
            "has both 'clips' (mmtrackgen tracklet format) and CocoVID lists "
            "('videos'/'images'/'annotations'); a file must be one or the other",
            file=file)
    if is_tracklets:
        return 'tracklets'
    if is_coco:
        return 'cocovid'
    raise TrackletAnnotationError(
        "is neither the mmtrackgen tracklet format (top-level 'clips') nor CocoVID "
        f"('videos', 'images', 'annotations'); its top-level keys are {sorted(ann)[:10]}. "
        'See docs/tracklet_format.md',
        file=file)


def layouts_from_tracklet_json(ann: dict,
                               file: Optional[str] = None,
                               check_boxes_in_image: bool = True) -> list[TrackletLayout]:
    """Validate a dict of the mmtrackgen tracklet JSON format and convert it to layouts.

    ``file`` is only used in error messages and as the layouts' ``source``. See
    :func:`load_tracklet_file` for ``check_boxes_in_image``.
    """

    def fail(message, field=None):
        raise TrackletAnnotationError(message, file=file, field=field)

    if not isinstance(ann, dict):
        fail(f'expected a JSON object at the top level, got {_type_name(ann)}')
    unknown = sorted(set(ann) - set(_TOP_KEYS))
    if unknown:
        fail(f'unknown top-level key {unknown[0]!r}; allowed: {list(_TOP_KEYS)}', unknown[0])
    if 'format' in ann and ann['format'] != FORMAT_NAME:
        fail(f'expected {FORMAT_NAME!r}, got {ann["format"]!r}', 'format')
    if 'version' in ann:
        version = ann['version']
        if not _is_int(version) or version < 1:
            fail(f'must be a positive integer, got {version!r}', 'version')
        if version > FORMAT_VERSION:
            fail(
                f'version {version} is newer than this mmtrackgen reads ({FORMAT_VERSION}); '
                'update mmtrackgen', 'version')
    categories = ann.get('categories')
    if categories is not None:
        if not isinstance(categories, list):
            fail(f'expected a list of names, got {_type_name(categories)}', 'categories')
        for i, name in enumerate(categories):
            if not isinstance(name, str) or not name:
                fail(f'expected a non-empty string, got {name!r}', f'categories[{i}]')
            if name in categories[:i]:
                fail(f'category {name!r} is listed twice', f'categories[{i}]')
    if 'clips' not in ann:
        fail("missing the list of clips", 'clips')
    clips = ann['clips']
    if not isinstance(clips, list):
        fail(f'expected a list, got {_type_name(clips)}', 'clips')
    if not clips:
        fail('the file has no clips', 'clips')

    layouts, index_of_name = [], {}
    for i, clip in enumerate(clips):
        layout = _clip_to_layout(clip, i, file, categories, check_boxes_in_image)
        if layout.name in index_of_name:
            raise TrackletAnnotationError(
                f'clip name is also used by clips[{index_of_name[layout.name]}]; names must be '
                'unique (they name the outputs)',
                file=file,
                video=layout.name,
                field=f'clips[{i}].name')
        index_of_name[layout.name] = i
        layouts.append(layout)
    return layouts


def _clip_to_layout(clip, i: int, file, categories, check_boxes_in_image) -> TrackletLayout:
    """One entry of ``clips`` validated and converted."""
    where = f'clips[{i}]'
    name = clip.get('name') if isinstance(clip, dict) else None
    video = name if isinstance(name, str) and name else None

    def fail(message, field=None, frame=None):
        raise TrackletAnnotationError(
            message,
            file=file,
            video=video,
            frame=frame,
            field=f'{where}.{field}' if field else where)

    if not isinstance(clip, dict):
        fail(f'expected an object, got {_type_name(clip)}')
    for key in _CLIP_REQUIRED:
        if key not in clip:
            fail(f'missing {key!r}', key)
    unknown = sorted(set(clip) - set(_CLIP_KEYS))
    if unknown:
        fail(f'unknown key {unknown[0]!r}; allowed: {list(_CLIP_KEYS)}', unknown[0])
    if video is None:
        fail(f'must be a non-empty string, got {name!r}', 'name')
    size = clip['image_size']
    if not (isinstance(size, (list, tuple)) and len(size) == 2
            and all(_is_int(v) and v > 0 for v in size)):
        fail(f'must be two positive integers [height, width], got {size!r}', 'image_size')
    height, width = int(size[0]), int(size[1])
    num_frames = clip['num_frames']
    if not _is_int(num_frames) or num_frames < 1:
        fail(f'must be an integer >= 1, got {num_frames!r}', 'num_frames')
    caption = clip.get('caption')
    if caption is not None and not isinstance(caption, str):
        fail(f'must be a string or null, got {_type_name(caption)}', 'caption')
    frame_ids = clip.get('frame_ids')
    if frame_ids is None:
        frame_ids = list(range(num_frames))
    elif not isinstance(frame_ids, list) or len(frame_ids) != num_frames:
        got = f'{len(frame_ids)} entries' if isinstance(frame_ids, list) else _type_name(frame_ids)
        fail(f'must be a list of num_frames = {num_frames} integers, got {got}', 'frame_ids')
    else:
        for t, value in enumerate(frame_ids):
            if not _is_int(value) or value < 0:
                fail(f'must be a non-negative integer, got {value!r}', f'frame_ids[{t}]', t)
            if t and value <= frame_ids[t - 1]:
                fail(f'frame_ids must increase, got {frame_ids[t - 1]} then {value}',
                     f'frame_ids[{t}]', t)
    instances = clip['instances']
    if not isinstance(instances, list):
        fail(f'expected a list, got {_type_name(instances)}', 'instances')

    num_instances = len(instances)
    boxes = np.zeros((num_frames, num_instances, 4), np.float32)
    visible = np.zeros((num_frames, num_instances), bool)
    visibility = np.zeros((num_frames, num_instances), np.float32)
    ids, names, index_of_id = [], [], {}
    limits = (width, height) if check_boxes_in_image else None
    for j, inst in enumerate(instances):
        path = f'instances[{j}]'
        if not isinstance(inst, dict):
            fail(f'expected an object, got {_type_name(inst)}', path)
        for key in _INSTANCE_REQUIRED:
            if key not in inst:
                fail(f'missing {key!r}', f'{path}.{key}')
        unknown = sorted(set(inst) - set(_INSTANCE_KEYS))
        if unknown:
            fail(f'unknown key {unknown[0]!r}; allowed: {list(_INSTANCE_KEYS)}',
                 f'{path}.{unknown[0]}')
        iid = inst['id']
        if not _is_int(iid):
            fail(f'must be an integer, got {iid!r}', f'{path}.id')
        if iid in index_of_id:
            fail(f'instance id {iid} is also used by instances[{index_of_id[iid]}]', f'{path}.id')
        index_of_id[iid] = j
        category = inst['category']
        if not isinstance(category, str) or not category:
            fail(f'must be a non-empty string, got {category!r}', f'{path}.category')
        if categories is not None and category not in categories:
            fail(f"unknown category {category!r}; the file's categories are {categories}",
                 f'{path}.category')
        track = inst['boxes']
        if not isinstance(track, list) or len(track) != num_frames:
            got = f'{len(track)} entries' if isinstance(track, list) else _type_name(track)
            fail(f'must be a list of num_frames = {num_frames} boxes (or null), got {got}',
                 f'{path}.boxes')
        vis = inst.get('visibility')
        if vis is not None and (not isinstance(vis, list) or len(vis) != num_frames):
            got = f'{len(vis)} entries' if isinstance(vis, list) else _type_name(vis)
            fail(f'must be a list of num_frames = {num_frames} numbers (or null), got {got}',
                 f'{path}.visibility')
        for t, box in enumerate(track):
            v = None if vis is None else vis[t]
            if v is not None and not (_is_number(v) and math.isfinite(v) and 0 <= v <= 1):
                fail(f'must be a number in [0, 1] or null, got {v!r}', f'{path}.visibility[{t}]', t)
            if box is None:
                if v:
                    fail(f'visibility {v} given for a frame without a box (use null or 0)',
                         f'{path}.visibility[{t}]', t)
                continue
            problem, box = _check_box(box, limits, BOX_TOLERANCE)
            if problem:
                fail(problem, f'{path}.boxes[{t}]', t)
            boxes[t, j] = box
            visible[t, j] = True
            visibility[t, j] = 1.0 if v is None else v
        ids.append(int(iid))
        names.append(category)

    return TrackletLayout(
        name=name,
        image_size=(height, width),
        boxes=boxes,
        visible=visible,
        instance_ids=np.array(ids, np.int64),
        categories=names,
        visibility=visibility,
        frame_ids=np.array(frame_ids, np.int64),
        caption=caption,
        source=file or '')


def _check_box(box, limits, tolerance):
    """``(problem, xyxy float32)`` of one box: ``problem`` is None when it is usable.

    ``limits`` (W, H) or None (no image check); boxes reaching past the image by at most
    ``tolerance`` are clipped (``math.inf``: any box with a part inside the image is).
    """
    if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(_is_number(v) for v in box)):
        return f'must be four numbers [x1, y1, x2, y2] or null, got {box!r}', None
    if not all(math.isfinite(v) for v in box):
        return f'box {list(box)} has a non-finite value', None
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 <= x1 or y2 <= y1:
        return f'box {list(box)} has zero or negative area (needs x2 > x1 and y2 > y1)', None
    if limits is not None:
        width, height = limits
        if (x1 < -tolerance or y1 < -tolerance or x2 > width + tolerance
                or y2 > height + tolerance):
            return (f'box {list(box)} reaches more than {tolerance:g} px outside the image of '
                    f'width {width}, height {height} (is image_size [height, width]?)'), None
        x1, x2 = max(x1, 0.0), min(x2, float(width))
        y1, y2 = max(y1, 0.0), min(y2, float(height))
    xyxy = np.array([x1, y1, x2, y2], np.float32)  # (4,)
    if not (xyxy[2] > xyxy[0] and xyxy[3] > xyxy[1]):
        where = (f'inside the image of width {limits[0]}, height {limits[1]}'
                 if limits is not None else 'in float32')
        return f'box {list(box)} has no area left {where}', None
    return None, xyxy


def layouts_from_cocovid(ann: dict,
                         file: Optional[str] = None,
                         check_boxes_in_image: bool = True) -> list[TrackletLayout]:
    """Validate a CocoVID dict (:func:`validate_cocovid`) and convert each video to a layout.

    A video's frames are its images in ``frame_id`` order; gaps in ``frame_id`` are kept as
    they are (no empty frames are inserted), as :class:`TrackletClipDataset` does, and the
    layout's ``frame_ids`` record them. Instances are sorted by ``instance_id``; annotations
    with ``ignore: true`` are skipped. A video's ``caption`` (if any) becomes the layout's. All
    images of a video must share one integer width and height; a video needs at least one image.
    """
    validate_cocovid(ann, file=file, check_boxes_in_image=check_boxes_in_image)
    if not ann['videos']:
        raise TrackletAnnotationError('the file has no videos', file=file, field='videos')
    cat_name = {c['id']: c['name'] for c in ann['categories']}
    layouts = []
    for entry in group_annotations(ann).values():
        layouts.append(
            _video_to_layout(entry['video'], entry['frames'], cat_name, file, check_boxes_in_image))
    return layouts


def _video_to_layout(video, frames, cat_name, file, check_boxes_in_image) -> TrackletLayout:
    name = video['name']
    if not isinstance(name, str) or not name:
        raise TrackletAnnotationError(
            f"video {video['id']}: name must be a non-empty string, got {name!r}",
            file=file,
            field='videos.name')
    if not frames:
        raise TrackletAnnotationError('the video has no images', file=file, video=name)
    caption = video.get('caption')
    if caption is not None and not isinstance(caption, str):
        raise TrackletAnnotationError(
            f'must be a string, got {_type_name(caption)}',
            file=file,
            video=name,
            field='videos.caption')
    first = frames[0][0]
    for img, _ in frames:
        for key in ('width', 'height'):
            if img[key] != int(img[key]) or img[key] != first[key]:
                raise TrackletAnnotationError(
                    f"image {img['id']}: {key} {img[key]!r} must be an integer equal to the "
                    f"video's first image's {first[key]!r} (a layout has one image size)",
                    file=file,
                    video=name,
                    frame=img['frame_id'],
                    field=f'images.{key}')
    width, height = int(first['width']), int(first['height'])

    track_ids = set()
    for img, anns in frames:
        for a in anns:
            if not _is_int(a['instance_id']):
                raise TrackletAnnotationError(
                    f"annotation {a['id']}: instance_id must be an integer, got "
                    f"{a['instance_id']!r}",
                    file=file,
                    video=name,
                    frame=img['frame_id'],
                    field='annotations.instance_id')
            if not a.get('ignore', False):
                track_ids.add(int(a['instance_id']))
    column = {iid: n for n, iid in enumerate(sorted(track_ids))}
    num_frames, num_instances = len(frames), len(column)
    boxes = np.zeros((num_frames, num_instances, 4), np.float32)
    visible = np.zeros((num_frames, num_instances), bool)
    visibility = np.zeros((num_frames, num_instances), np.float32)
    categories = [''] * num_instances
    # validate_cocovid let through boxes partly outside the image (and, unchecked, any box).
    limits = (width, height) if check_boxes_in_image else None
    for t, (img, anns) in enumerate(frames):
        for a in anns:
            if a.get('ignore', False):
                continue
            n = column[int(a['instance_id'])]
            x, y, w, h = a['bbox']
            problem, box = _check_box([x, y, x + w, y + h], limits, math.inf)
            if problem:
                raise TrackletAnnotationError(
                    f"annotation {a['id']} (bbox {a['bbox']}): {problem}",
                    file=file,
                    video=name,
                    frame=img['frame_id'],
                    field='annotations.bbox')
            boxes[t, n] = box
            visible[t, n] = True
            visibility[t, n] = a.get('visibility', 1.0)
            categories[n] = cat_name[a['category_id']]
    return TrackletLayout(
        name=name,
        image_size=(height, width),
        boxes=boxes,
        visible=visible,
        instance_ids=np.array(sorted(column), np.int64),
        categories=categories,
        visibility=visibility,
        frame_ids=np.array([img['frame_id'] for img, _ in frames], np.int64),
        caption=caption,
        source=file or '')


# ----------------------------------------------------------------------------------------------
# Checking and cutting layouts


def check_layout(layout: TrackletLayout) -> None:
    """Raise ``ValueError`` (naming the layout, frame, instance and field) unless ``layout`` is
    one generation can use as is.

    Valid: a non-empty name; ``image_size`` two positive ints; at least one frame; arrays of
    the documented shapes and dtypes; unique instance ids; non-empty category names;
    ``visibility`` in [0, 1]; where visible, finite boxes inside the image with positive width
    and height (``0 <= x1 < x2 <= W``, ``0 <= y1 < y2 <= H``); where not visible, boxes and
    visibility 0. An instance never visible is allowed.
    """
    name = getattr(layout, 'name', None)

    def fail(message, field, frame=None, instance=None):
        where = [f'layout {name!r}']
        if frame is not None:
            where.append(f'frame {frame}')
        if instance is not None:
            where.append(f'instance {instance}')
        where.append(f'field {field!r}')
        raise ValueError(', '.join(where) + ': ' + message)

    if not isinstance(layout, TrackletLayout):
        raise ValueError(f'expected a TrackletLayout, got {_type_name(layout)}')
    if not isinstance(name, str) or not name:
        fail(f'must be a non-empty string, got {name!r}', 'name')
    size = layout.image_size
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(_is_int(v) and v > 0 for v in size)):
        fail(f'must be two positive integers (H, W), got {size!r}', 'image_size')
    arrays = dict(
        visible=(layout.visible, 2, np.bool_),
        boxes=(layout.boxes, 3, np.floating),
        visibility=(layout.visibility, 2, np.floating),
        instance_ids=(layout.instance_ids, 1, np.integer),
        frame_ids=(layout.frame_ids, 1, np.integer))
    for field, (array, ndim, kind) in arrays.items():
        is_array = isinstance(array, np.ndarray)
        if not is_array or array.ndim != ndim or not np.issubdtype(array.dtype, kind):
            got = f'{array.dtype} {array.shape}' if is_array else _type_name(array)
            fail(f'must be a {ndim}-d {kind.__name__} array, got {got}', field)
    num_frames, num_instances = layout.visible.shape
    if num_frames < 1:
        fail('a layout needs at least one frame', 'visible')
    shapes = dict(
        boxes=(num_frames, num_instances, 4),
        visibility=(num_frames, num_instances),
        instance_ids=(num_instances, ),
        frame_ids=(num_frames, ))
    for field, want in shapes.items():
        if getattr(layout, field).shape != want:
            fail(f'has shape {getattr(layout, field).shape}, expected {want}', field)
    categories = layout.categories
    if not isinstance(categories, (list, tuple)) or len(categories) != num_instances:
        fail(f'must be a list of {num_instances} names', 'categories')
    for n, category in enumerate(categories):
        if not isinstance(category, str) or not category:
            fail(
                f'must be a non-empty string, got {category!r}',
                'categories',
                instance=int(layout.instance_ids[n]))
    ids, counts = np.unique(layout.instance_ids, return_counts=True)
    if (counts > 1).any():
        fail(f'instance id {int(ids[counts > 1][0])} is used more than once', 'instance_ids')
    if layout.caption is not None and not isinstance(layout.caption, str):
        fail(f'must be a string or None, got {_type_name(layout.caption)}', 'caption')

    def first(bad):  # (F, N) bool -> (frame, instance id) of the first True
        t, n = np.argwhere(bad)[0]
        return int(t), int(layout.instance_ids[n])

    vis = layout.visibility
    bad = ~(np.isfinite(vis) & (vis >= 0) & (vis <= 1))  # (F, N)
    if bad.any():
        t, iid = first(bad)
        fail(f'must be in [0, 1], got {vis[bad][0]}', 'visibility', t, iid)
    boxes, visible = layout.boxes, layout.visible
    height, width = size
    x1, y1, x2, y2 = (boxes[..., k] for k in range(4))  # each (F, N)
    with np.errstate(invalid='ignore'):
        checks = [
            (np.isfinite(boxes).all(-1), 'is not finite'),
            ((x1 >= 0) & (y1 >= 0), 'starts left of or above the image'),
            ((x2 <= width) & (y2 <= height), f'ends right of or below the {width}x{height} image'),
            ((x2 > x1) & (y2 > y1), 'has zero or negative width or height'),
        ]
    for ok, problem in checks:
        bad = visible & ~ok
        if bad.any():
            t, iid = first(bad)
            fail(f'box {boxes[bad][0].tolist()} {problem}', 'boxes', t, iid)
    hidden = ~visible
    bad = hidden & ((boxes != 0).any(-1) | (vis != 0))
    if bad.any():
        t, iid = first(bad)
        fail('boxes and visibility must be 0 where the instance is not visible', 'boxes', t, iid)


def cut_layout(layout: TrackletLayout,
               clip_length: int,
               stride: Optional[int] = None) -> list[TrackletLayout]:
    """Cut a long layout into clips of ``clip_length`` frames whose starts are ``stride`` apart.

    Clips are named ``f'{name}_{start:06d}'`` (``start``: index of the clip's first frame in
    ``layout``) and keep the source's ``frame_ids``; instances not visible in any frame of a
    clip are left out of it. Frames after the last whole clip are not used. A layout shorter
    than ``clip_length`` gives ``[]`` (the caller reports it).

    Args:
        layout (TrackletLayout): the layout to cut (not changed).
        clip_length (int): frames per clip, >= 1.
        stride (int, optional): frames between clip starts, >= 1; default ``clip_length`` (no
            overlap, no gap).
    """
    stride = clip_length if stride is None else stride
    for key, value in (('clip_length', clip_length), ('stride', stride)):
        if not _is_int(value) or value < 1:
            raise ValueError(f'{key} must be an integer >= 1, got {value!r}')
    clips = []
    for start in range(0, layout.num_frames - clip_length + 1, stride):
        frames = slice(start, start + clip_length)
        keep = np.flatnonzero(layout.visible[frames].any(axis=0))  # (N',)
        clips.append(
            layout.copy(
                name=f'{layout.name}_{start:06d}',
                boxes=layout.boxes[frames][:, keep].copy(),
                visible=layout.visible[frames][:, keep].copy(),
                instance_ids=layout.instance_ids[keep].copy(),
                categories=[layout.categories[n] for n in keep],
                visibility=layout.visibility[frames][:, keep].copy(),
                frame_ids=layout.frame_ids[frames].copy()))
    return clips


# ----------------------------------------------------------------------------------------------
# Writing


def _check_layouts(layouts: Sequence[TrackletLayout]) -> None:
    if isinstance(layouts, TrackletLayout):
        raise ValueError('expected a list of layouts, got one TrackletLayout')
    names = set()
    for layout in layouts:
        check_layout(layout)
        if layout.name in names:
            raise ValueError(f'layout name {layout.name!r} is used twice; names must be unique')
        names.add(layout.name)


def layouts_to_cocovid(layouts: Sequence[TrackletLayout],
                       categories: Optional[Sequence[str]] = None,
                       file_name: str = '{video}/img1/{frame:06d}.jpg',
                       info: Optional[dict] = None,
                       decimals: Optional[int] = 2,
                       mot_fields: bool = False) -> dict:
    """Layouts as a CocoVID dict (mmdet's video datasets and :func:`validate_cocovid` read it).

    Each layout is one video (``id`` from 1, ``name``, ``width``, ``height``, ``caption`` when
    it has one); frame t is an image with ``frame_id`` t (from 0) and ``file_name``
    ``file_name.format(video=name, frame=t + 1)`` (frames numbered from 1, like MOT17); each
    visible box an annotation (ids from 1, frame by frame, instances in layout order) with
    ``bbox`` [x, y, w, h], ``area``, ``iscrowd`` 0, ``visibility``, ``video_id`` and the
    layout's own ``instance_id`` (unique per video). The layouts' ``frame_ids`` are not kept.

    Args:
        layouts: valid layouts (:func:`check_layout`) with unique names.
        categories: category names, ids 1.. in this order; default: every category used,
            sorted by name. A layout using another category is an error.
        file_name: template of image file names (``{video}``, ``{frame}``).
        info: the ``info`` entry (omitted when None).
        decimals: boxes (x, y, x2, y2, hence w and h) and areas rounded to this many decimals,
            visibility to ``decimals + 1``; None writes exact float32 values (exact round trip).
        mot_fields: add MOT17's ``mot_frame_id`` (t + 1) to images and ``mot_conf`` 1.0 and
            ``ignore`` false to annotations, as mmdet's MOT17 conversion has them.
    """
    _check_layouts(layouts)
    if categories is None:
        categories = sorted({c for layout in layouts for c in layout.categories})
    elif isinstance(categories, str) or len(set(categories)) != len(categories):
        raise ValueError(f'categories must be a list of unique names, got {categories!r}')
    cat_ids = {name: i + 1 for i, name in enumerate(categories)}

    def number(value, digits):
        value = float(value)
        return value if digits is None else round(value, digits)

    vis_digits = None if decimals is None else decimals + 1
    coco = dict(
        categories=[dict(id=i, name=name) for name, i in cat_ids.items()],
        videos=[],
        images=[],
        annotations=[])
    if info is not None:
        coco['info'] = info
    for video_id, layout in enumerate(layouts, 1):
        height, width = (int(v) for v in layout.image_size)
        for n, category in enumerate(layout.categories):
            if category not in cat_ids:
                raise ValueError(f"layout {layout.name!r}, instance "
                                 f'{int(layout.instance_ids[n])}: category {category!r} is not '
                                 f'one of {list(categories)}')
        video = dict(id=video_id, name=layout.name, width=width, height=height)
        if layout.caption is not None:
            video['caption'] = layout.caption
        coco['videos'].append(video)
        for t in range(layout.num_frames):
            image_id = len(coco['images']) + 1
            try:
                name = file_name.format(video=layout.name, frame=t + 1)
            except (KeyError, IndexError, ValueError) as e:
                raise ValueError(f'file_name {file_name!r} must use only {{video}} and '
                                 f'{{frame}}: {e!r}') from e
            image = dict(
                id=image_id,
                video_id=video_id,
                frame_id=t,
                file_name=name,
                width=width,
                height=height)
            if mot_fields:
                image['mot_frame_id'] = t + 1
            coco['images'].append(image)
            for n in np.flatnonzero(layout.visible[t]):
                x1, y1, x2, y2 = (number(v, decimals) for v in layout.boxes[t, n])
                w, h = number(x2 - x1, decimals), number(y2 - y1, decimals)
                if w <= 0 or h <= 0:
                    raise ValueError(
                        f'layout {layout.name!r}, frame {t}, instance '
                        f'{int(layout.instance_ids[n])}: box {layout.boxes[t, n].tolist()} '
                        f'has no area at {decimals} decimals; pass decimals=None')
                ann = dict(
                    id=len(coco['annotations']) + 1,
                    image_id=image_id,
                    video_id=video_id,
                    category_id=cat_ids[layout.categories[n]],
                    instance_id=int(layout.instance_ids[n]),
                    bbox=[x1, y1, w, h],
                    area=number(w * h, decimals),
                    iscrowd=0,
                    visibility=number(layout.visibility[t, n], vis_digits))
                if mot_fields:
                    ann.update(mot_conf=1.0, ignore=False)
                coco['annotations'].append(ann)
    return coco


def _short(value) -> float:
    """The shortest decimal that reads back as the same float32 (12.34, not 12.3400001526)."""
    return float(str(np.float32(value)))


def layouts_to_tracklet_json(layouts: Sequence[TrackletLayout],
                             categories: Optional[Sequence[str]] = None) -> dict:
    """Layouts as a dict of the mmtrackgen tracklet JSON format (exact float32 round trip).

    ``categories`` (default: the used ones, sorted) is written as the file's category list.
    ``visibility`` is written only for instances with a visible value other than 1,
    ``frame_ids`` only when they are not 0..F-1, ``caption`` only when set.
    """
    _check_layouts(layouts)
    if categories is None:
        categories = sorted({c for layout in layouts for c in layout.categories})
    categories = list(categories)
    clips = []
    for layout in layouts:
        instances = []
        for n in range(layout.num_instances):
            shown = layout.visible[:, n]  # (F,)
            if layout.categories[n] not in categories:
                raise ValueError(f"layout {layout.name!r}, instance "
                                 f'{int(layout.instance_ids[n])}: category '
                                 f'{layout.categories[n]!r} is not one of {categories}')
            inst = dict(
                id=int(layout.instance_ids[n]),
                category=layout.categories[n],
                boxes=[[_short(v) for v in layout.boxes[t, n]] if shown[t] else None
                       for t in range(layout.num_frames)])
            if (layout.visibility[shown, n] != 1).any():
                inst['visibility'] = [
                    _short(layout.visibility[t, n]) if shown[t] else None
                    for t in range(layout.num_frames)
                ]
            instances.append(inst)
        clip = dict(
            name=layout.name,
            image_size=[int(v) for v in layout.image_size],
            num_frames=layout.num_frames)
        if layout.caption is not None:
            clip['caption'] = layout.caption
        if not np.array_equal(layout.frame_ids, np.arange(layout.num_frames)):
            clip['frame_ids'] = [int(v) for v in layout.frame_ids]
        clip['instances'] = instances
        clips.append(clip)
    return dict(format=FORMAT_NAME, version=FORMAT_VERSION, categories=categories, clips=clips)


def write_tracklet_file(path: str,
                        layouts: Sequence[TrackletLayout],
                        categories: Optional[Sequence[str]] = None) -> str:
    """Write layouts in the mmtrackgen tracklet JSON format; returns ``path``.

    One line per instance, so files stay readable and diffable. The file is written to a
    temporary file next to ``path`` and then renamed over it, so ``path`` is never left
    half-written. Layouts must be valid (:func:`check_layout`) and uniquely named.
    """
    data = layouts_to_tracklet_json(layouts, categories)

    def dumps(value):
        return json.dumps(value, ensure_ascii=False, allow_nan=False)

    clips = []
    for clip in data['clips']:
        head = dumps({k: v for k, v in clip.items() if k != 'instances'})[:-1]  # no closing }
        instances = ',\n  '.join(dumps(inst) for inst in clip['instances'])
        clips.append(head + ', "instances": [' + ('\n  ' + instances if instances else '') + ']}')
    text = (f'{{"format": {dumps(data["format"])}, "version": {data["version"]}, '
            f'"categories": {dumps(data["categories"])},\n"clips": [\n' + ',\n'.join(clips) +
            '\n]}\n')

    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    return write_text_atomic(path, text)
