"""Between the keyframe table and the drawing canvas of one frame.

The canvas shows frame t of the current layout enlarged ``scale`` times, one box per instance
visible there (keyframe or interpolated), labelled ``'<category> <id>'``. Setting the frame
from the canvas makes every box on it a keyframe at t and hides at t each instance the user
removed from it. A box drawn with only a category as label is a new instance.
"""
import re
from typing import Optional, Sequence

import numpy as np

from .editor import (KEYFRAME_COLUMNS, PageInputError, PageSpec, check_box, keyframes_to_layout,
                     parse_keyframes)
from .media import CANVAS_GREY, instance_colours

_LABEL = re.compile(r'^\s*(?P<category>.*?)\s*(?:[ #:](?P<id>\d+))?\s*$')


def box_label(category: str, instance: int) -> str:
    return f'{category} {instance}'


def parse_box_label(label: str, classes: Sequence[str]) -> tuple[str, Optional[int]]:
    """``'circle 2'`` -> ('circle', 2); ``'circle'`` -> ('circle', None), a new instance."""
    match = _LABEL.match(label or '')
    category = match.group('category') if match else ''
    if not category:
        raise PageInputError(f'a box on the canvas has no category: label it with one of '
                             f"{list(classes)} (and an instance id, e.g. '{classes[0]} 1')")
    if category not in classes:
        raise PageInputError(f"a box on the canvas is labelled '{label}': unknown category "
                             f"'{category}'; the model knows {list(classes)}")
    return category, None if match.group('id') is None else int(match.group('id'))


def canvas_value(rows: Sequence[Sequence], frame: int, spec: PageSpec, scale: int) -> dict:
    """The annotator's value for frame ``frame``: the empty canvas and the boxes of the layout
    there, in canvas pixels. Rows that do not make a layout yet give an empty canvas."""
    height, width = spec.image_size
    image = np.full((height * scale, width * scale, 3), CANVAS_GREY, np.uint8)
    try:
        layout = keyframes_to_layout(parse_keyframes(rows, spec), spec)
    except PageInputError:
        return dict(image=image, boxes=[])
    colours = instance_colours(layout.num_instances)
    boxes = []
    for n in np.flatnonzero(layout.visible[frame]):
        x1, y1, x2, y2 = (float(v) * scale for v in layout.boxes[frame, n])
        boxes.append(
            dict(
                xmin=int(round(x1)),
                ymin=int(round(y1)),
                xmax=int(round(x2)),
                ymax=int(round(y2)),
                label=box_label(layout.categories[n], int(layout.instance_ids[n])),
                color=colours[n]))
    return dict(image=image, boxes=boxes)


def set_frame_from_canvas(rows: Sequence[Sequence], frame: int, boxes: Sequence[dict],
                          spec: PageSpec, scale: int) -> list[list]:
    """The keyframe rows after making the canvas boxes (canvas pixels) the keyframes of
    ``frame``; the other rows are kept as they are (and must be valid)."""
    keyframes = parse_keyframes(rows, spec)
    category_of = {key.instance: key.category for key in keyframes}
    try:
        before = keyframes_to_layout(keyframes, spec)
        shown_before = {int(before.instance_ids[n]) for n in np.flatnonzero(before.visible[frame])}
    except PageInputError:  # no box yet
        shown_before = set()
    kept = [key for key in keyframes if key.frame != frame]
    next_id = max(list(category_of) + [0]) + 1
    on_canvas, new = {}, []
    for i, box in enumerate(boxes, 1):
        category, instance = parse_box_label(box.get('label', ''), spec.classes)
        if instance is None:
            instance, next_id = next_id, next_id + 1
        elif category_of.setdefault(instance, category) != category:
            raise PageInputError(
                f"canvas box {i} is '{category} {instance}', but instance {instance} is a "
                f"'{category_of[instance]}'; an instance keeps one category")
        if instance in on_canvas:
            raise PageInputError(f'instance {instance} has two boxes on the canvas of frame '
                                 f'{frame}; label the second with another id')
        coords = [box[k] / scale for k in ('xmin', 'ymin', 'xmax', 'ymax')]
        where = f"canvas box {i} ('{category} {instance}', frame {frame})"
        on_canvas[instance] = (category, check_box(coords, spec, where))
        category_of[instance] = category
    for instance, (category, coords) in on_canvas.items():
        new.append([instance, category, frame, *(round(v, 2) for v in coords)])
    for instance in sorted(shown_before - set(on_canvas)):  # removed from the canvas: hidden
        new.append([instance, category_of[instance], frame, None, None, None, None])
    out = [[key.instance, key.category, key.frame, *(key.box or [None] * 4)] for key in kept]
    out += new
    has_box = {row[0] for row in out if row[3] is not None}
    out = [row for row in out if row[0] in has_box]  # instances left with no box at all go
    return sorted(out, key=lambda row: (row[0], row[2]))


def rows_from_table(table) -> list[list]:
    """Rows of the page's keyframe table (a pandas DataFrame, a list, or None)."""
    if table is None:
        return []
    if hasattr(table, 'values') and hasattr(table, 'columns'):
        table = table.values.tolist()
    rows = []
    for row in table:
        row = list(row)[:len(KEYFRAME_COLUMNS)]
        rows.append(row + [None] * (len(KEYFRAME_COLUMNS) - len(row)))
    return rows
