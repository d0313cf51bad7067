"""What the page edits: keyframes of boxes, turned into the :class:`TrackletLayout` the model
generates from, and back.

A person does not type a box per frame. The page keeps a table of *keyframes*, one row per
(instance, frame) the user set, with the columns of :data:`KEYFRAME_COLUMNS`; the layout's boxes
between two keyframes of an instance are interpolated linearly. An instance is in the clip from
its first keyframe to its last one, so it can enter late and leave early; a keyframe row with
the four box cells empty says the instance is *not* visible in that frame (it leaves, and comes
back at its next keyframe with a box). Coordinates are pixels of the model's frames
(:class:`PageSpec.image_size`).

Every check of what a user typed, drew or uploaded raises :class:`PageInputError` with a message
meant for the page (it names the row, instance, frame or file), never a traceback.
"""
import math
import os.path as osp
import re
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from mmtrackgen.datasets.tracklet_file import check_layout, cut_layout, load_tracklet_file
from mmtrackgen.datasets.tracklets import TrackletAnnotationError
from mmtrackgen.generation.runner import (GenerationInputError, model_classes,
                                          model_needs_first_frame)
from mmtrackgen.structures import TrackletLayout

KEYFRAME_COLUMNS = ('instance', 'category', 'frame', 'x1', 'y1', 'x2', 'y2')
# Layout files the page reads: the two formats of docs/tracklet_format.md, both JSON.
LAYOUT_FILE_EXTENSIONS = ('.json', )
PAGE_CLIP_NAME = 'page'


class PageInputError(ValueError):
    """Input from the page that cannot be used; the message is shown on the page as it is."""


@dataclass(frozen=True)
class PageSpec:
    """What a layout must fit for the model behind the page.

    Attributes:
        classes: the model's category names.
        image_size: (H, W) of the generated frames, pixels; keyframe boxes are in these pixels.
        num_frames: F, frames per generated clip.
        num_slots: the most instances one clip may hold.
        needs_first_frame: the model generates from a first frame (image-to-video).
    """
    classes: tuple
    image_size: tuple
    num_frames: int
    num_slots: int
    needs_first_frame: bool = False


def page_spec(cfg) -> PageSpec:
    """The :class:`PageSpec` of a model config: ``classes``, ``num_frames`` and, from its
    ``test_pipeline``, the ``ClipResize`` scale (W, H) and the ``AssignInstanceSlots`` count."""
    classes = tuple(model_classes(cfg))
    num_frames = cfg.get('num_frames')
    if not isinstance(num_frames, int) or isinstance(num_frames, bool) or num_frames < 1:
        raise GenerationInputError(
            f'the config needs `num_frames` as an integer >= 1, has {num_frames!r}')
    steps = {step.get('type'): step for step in cfg.get('test_pipeline') or []}
    if 'ClipResize' not in steps or 'AssignInstanceSlots' not in steps:
        raise GenerationInputError(
            'the page needs the frame size and slot count of the model: the config\'s '
            '`test_pipeline` must have ClipResize and AssignInstanceSlots steps')
    width, height = (int(v) for v in steps['ClipResize']['scale'])
    return PageSpec(
        classes=classes,
        image_size=(height, width),
        num_frames=num_frames,
        num_slots=int(steps['AssignInstanceSlots']['num_slots']),
        needs_first_frame=model_needs_first_frame(cfg))


@dataclass(frozen=True)
class Keyframe:
    """One row of the keyframe table: ``box`` is (x1, y1, x2, y2) pixels or None (hidden)."""
    instance: int
    category: str
    frame: int
    box: Optional[tuple]


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or (
        isinstance(value, str) and not value.strip())


def _number(value, row: int, column: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PageInputError(f'keyframe row {row}: {column} must be a number, got {value!r}')
    if not math.isfinite(number):
        raise PageInputError(f'keyframe row {row}: {column} must be a finite number, got {value!r}')
    return number


def _integer(value, row: int, column: str, least: int, most: Optional[int] = None) -> int:
    number = _number(value, row, column)
    if number != int(number) or number < least or (most is not None and number > most):
        span = f'from {least} to {most}' if most is not None else f'>= {least}'
        raise PageInputError(
            f'keyframe row {row}: {column} must be a whole number {span}, got {value!r}')
    return int(number)


def check_box(box: Sequence[float], spec: PageSpec, where: str) -> tuple:
    """A box of the model's frame: finite, positive width and height, inside the frame."""
    x1, y1, x2, y2 = (float(v) for v in box)
    height, width = spec.image_size
    if not (x2 > x1 and y2 > y1):
        raise PageInputError(f'{where}: box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] has zero area '
                             '(needs x2 > x1 and y2 > y1)')
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        raise PageInputError(f'{where}: box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] is outside the '
                             f'{width}x{height} frame (x in 0..{width}, y in 0..{height})')
    return x1, y1, x2, y2


def parse_keyframes(rows: Sequence[Sequence], spec: PageSpec) -> list[Keyframe]:
    """Check the keyframe table (rows of :data:`KEYFRAME_COLUMNS`; rows left blank are skipped)
    and return its keyframes. Rows are numbered from 1 in messages, as the page shows them."""
    keyframes, seen, category_of = [], set(), {}
    last_frame = spec.num_frames - 1
    for row_number, row in enumerate(rows, 1):
        row = list(row) + [None] * (len(KEYFRAME_COLUMNS) - len(row))
        if all(_blank(v) for v in row):
            continue
        instance, category, frame, *box = row[:len(KEYFRAME_COLUMNS)]
        if _blank(instance) or _blank(category) or _blank(frame):
            raise PageInputError(
                f'keyframe row {row_number}: instance, category and frame must all be given')
        instance = _integer(instance, row_number, 'instance', 0)
        frame = _integer(frame, row_number, 'frame', 0, last_frame)
        category = str(category).strip()
        if category not in spec.classes:
            raise PageInputError(f"keyframe row {row_number}: unknown category '{category}'; "
                                 f'the model knows {list(spec.classes)}')
        if category_of.setdefault(instance, category) != category:
            raise PageInputError(
                f"keyframe row {row_number}: instance {instance} is '{category}' here and "
                f"'{category_of[instance]}' in an earlier row; an instance keeps one category")
        if (instance, frame) in seen:
            raise PageInputError(f'keyframe row {row_number}: instance {instance} has two '
                                 f'keyframes at frame {frame}')
        seen.add((instance, frame))
        if all(_blank(v) for v in box):
            keyframes.append(Keyframe(instance, category, frame, None))
            continue
        if any(_blank(v) for v in box):
            raise PageInputError(f'keyframe row {row_number}: give all four of x1, y1, x2, y2, '
                                 'or leave all four empty (instance hidden in that frame)')
        coords = [_number(v, row_number, c) for v, c in zip(box, KEYFRAME_COLUMNS[3:])]
        where = f'keyframe row {row_number} (instance {instance}, frame {frame})'
        keyframes.append(Keyframe(instance, category, frame, check_box(coords, spec, where)))
    return keyframes


def interpolate_track(keys: Sequence[tuple[int, Optional[tuple]]],
                      num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The boxes of one instance from its keyframes.

    Args:
        keys: (frame, box or None) pairs, any order, frames unique in [0, num_frames).
        num_frames: F.
    Returns:
        boxes (F, 4) float32, zero where not visible, and visible (F,) bool: visible at every
        keyframe with a box and, linearly interpolated, between two consecutive keyframes that
        both have one; not visible before the first keyframe, after the last, at keyframes
        without a box and between such a keyframe and its neighbours.
    """
    boxes = np.zeros((num_frames, 4), np.float32)
    visible = np.zeros(num_frames, bool)
    keys = sorted(keys, key=lambda key: key[0])
    for frame, box in keys:
        if box is not None:
            boxes[frame] = box
            visible[frame] = True
    for (start, box_a), (end, box_b) in zip(keys, keys[1:]):
        if box_a is None or box_b is None:
            continue
        a, b = np.asarray(box_a, np.float64), np.asarray(box_b, np.float64)
        for t in range(start + 1, end):
            w = (t - start) / (end - start)
            boxes[t] = (1 - w) * a + w * b
            visible[t] = True
    return boxes, visible


def check_clip_name(name: Optional[str]) -> str:
    """The name of the generated clip (its folder in the zip): letters, digits, ``_ . -``;
    blank gives :data:`PAGE_CLIP_NAME`."""
    name = (name or '').strip() or PAGE_CLIP_NAME
    if not re.fullmatch(r'[A-Za-z0-9_.-]+', name) or name in ('.', '..'):
        raise PageInputError(f"clip name '{name}' can only hold letters, digits, '_', '.' and "
                             "'-' (it names the clip's folder)")
    return name


def keyframes_to_layout(keyframes: Sequence[Keyframe],
                        spec: PageSpec,
                        name: str = PAGE_CLIP_NAME,
                        caption: Optional[str] = None) -> TrackletLayout:
    """The layout of F = ``spec.num_frames`` frames the keyframes describe, instances in order
    of their ids. Refuses an empty layout and more instances than the model has slots."""
    by_instance: dict[int, list[Keyframe]] = {}
    for key in keyframes:
        by_instance.setdefault(key.instance, []).append(key)
    ids = sorted(by_instance)
    if not any(key.box is not None for key in keyframes):
        raise PageInputError('the layout has no box: draw a box on a keyframe, add a keyframe '
                             'row, or load a layout first')
    if len(ids) > spec.num_slots:
        raise PageInputError(
            f'the layout has {len(ids)} instances ({ids}); the model has {spec.num_slots} '
            f'slots, so at most {spec.num_slots} instances per clip: remove '
            f'{len(ids) - spec.num_slots}')
    num_frames = spec.num_frames
    boxes = np.zeros((num_frames, len(ids), 4), np.float32)
    visible = np.zeros((num_frames, len(ids)), bool)
    for n, instance in enumerate(ids):
        keys = [(key.frame, key.box) for key in by_instance[instance]]
        boxes[:, n], visible[:, n] = interpolate_track(keys, num_frames)
    layout = TrackletLayout(
        name=check_clip_name(name),
        image_size=tuple(spec.image_size),
        boxes=boxes,
        visible=visible,
        instance_ids=np.asarray(ids, np.int64),
        categories=[by_instance[i][0].category for i in ids],
        caption=caption)
    check_layout(layout)  # the rules generation holds layouts to; the checks above cover them
    return layout


def layout_to_keyframes(layout: TrackletLayout, tolerance: float = 0.05) -> list[list]:
    """Keyframe table rows (:data:`KEYFRAME_COLUMNS`) that :func:`keyframes_to_layout` turns
    back into ``layout`` (boxes within ``tolerance`` pixels): per instance, the first and last
    frame of each visible run, the frames linear interpolation cannot reproduce, and a hidden
    keyframe after each run that another run follows."""
    rows = []
    for n in range(layout.num_instances):
        visible = layout.visible[:, n]
        boxes = layout.boxes[:, n].astype(np.float64)  # (F, 4)
        frames = np.flatnonzero(visible)
        runs = np.split(frames, np.flatnonzero(np.diff(frames) > 1) + 1) if len(frames) else []
        keys: list[tuple[int, Optional[np.ndarray]]] = []
        for i, run in enumerate(runs):
            kept = _needed_keyframes(boxes, int(run[0]), int(run[-1]), tolerance)
            keys += [(t, boxes[t]) for t in kept]
            if i + 1 < len(runs):
                keys.append((int(run[-1]) + 1, None))
        instance, category = int(layout.instance_ids[n]), layout.categories[n]
        for t, box in keys:
            coords = [None] * 4 if box is None else [round(float(v), 2) for v in box]
            rows.append([instance, category, t, *coords])
    return rows


def _needed_keyframes(boxes: np.ndarray, start: int, end: int, tolerance: float) -> list[int]:
    """Frames of [start, end] to keep so that linear interpolation between them gives
    ``boxes`` within ``tolerance`` (the farthest frame is split on first)."""
    if end - start < 2:
        return sorted({start, end})
    w = (np.arange(start, end + 1) - start)[:, None] / (end - start)
    error = np.abs((1 - w) * boxes[start] + w * boxes[end] - boxes[start:end + 1]).max(1)
    worst = int(np.argmax(error))
    if error[worst] <= tolerance:
        return [start, end]
    middle = start + worst
    return sorted(
        set(_needed_keyframes(boxes, start, middle, tolerance))
        | set(_needed_keyframes(boxes, middle, end, tolerance)))


def fit_layout(layout: TrackletLayout, spec: PageSpec) -> TrackletLayout:
    """A layout read from a file as the page edits it: its first ``num_frames`` frames, boxes
    scaled to the model's frame size (as the model's ClipResize would), instances not in those
    frames dropped. A layout with too few frames is refused."""
    if layout.num_frames < spec.num_frames:
        raise PageInputError(
            f"clip '{layout.name}' has {layout.num_frames} frames; the model makes clips of "
            f'{spec.num_frames}: choose a longer clip')
    clip = cut_layout(layout, spec.num_frames)[0]
    height, width = layout.image_size
    new_height, new_width = spec.image_size
    scale = np.array([new_width / width, new_height / height] * 2, np.float32)
    boxes = np.clip(clip.boxes * scale, 0, [new_width, new_height] * 2) * clip.visible[..., None]
    return clip.copy(name=layout.name, image_size=tuple(spec.image_size), boxes=boxes)


def read_layout_file(path: str, display_name: Optional[str] = None) -> list[TrackletLayout]:
    """The layouts of an uploaded tracklet JSON or CocoVID file (docs/tracklet_format.md), with
    a page message for a file of another kind or one that does not validate."""
    name = display_name or osp.basename(path)
    if osp.splitext(name)[1].lower() not in LAYOUT_FILE_EXTENSIONS:
        raise PageInputError(
            f"'{name}' is not a layout file: upload a tracklet JSON or CocoVID file (.json, "
            'see docs/tracklet_format.md)')
    try:
        layouts = load_tracklet_file(path)
    except (TrackletAnnotationError, FileNotFoundError) as e:
        message = str(e).replace(f"file '{path}'", f"'{name}'")
        raise PageInputError(f'wrong file format: {message}') from e
    if not layouts:
        raise PageInputError(f"'{name}' holds no clip")
    return layouts


def check_categories(layout: TrackletLayout, spec: PageSpec) -> None:
    """Refuse a layout with a category the model does not know (files may name any)."""
    for n, category in enumerate(layout.categories):
        if category not in spec.classes:
            raise PageInputError(
                f"clip '{layout.name}', instance {int(layout.instance_ids[n])}: unknown "
                f"category '{category}'; the model knows {list(spec.classes)}")
