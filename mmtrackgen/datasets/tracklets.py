"""Reading and validating CocoVID tracklet annotations.

mmdet's video datasets trust their input: a NaN box, x2 < x1 or an instance id used twice in a
frame surface much later as a crash inside a loss or a silent drop. Everything that reads
annotations in mmtrackgen validates them here first, and reports the file, video, frame and field
of the first problem so the user can fix the source.
"""
import json
import math
import os.path as osp
from collections import defaultdict
from typing import Optional

REQUIRED_FIELDS = {
    'videos': ('id', 'name'),
    'images': ('id', 'video_id', 'frame_id', 'file_name', 'width', 'height'),
    'annotations': ('id', 'image_id', 'category_id', 'instance_id', 'bbox'),
    'categories': ('id', 'name'),
}


class TrackletAnnotationError(ValueError):
    """An annotation file that cannot be used, with where the problem is."""

    def __init__(self,
                 message: str,
                 file: Optional[str] = None,
                 video: Optional[str] = None,
                 frame: Optional[int] = None,
                 field: Optional[str] = None):
        self.file, self.video, self.frame, self.field = file, video, frame, field
        where = [
            f"file '{file}'" if file else None, f"video '{video}'" if video is not None else None,
            f'frame {frame}' if frame is not None else None, f"field '{field}'" if field else None
        ]
        super().__init__(', '.join(w for w in where if w) + ': ' + message)


def load_json(path: str) -> dict:
    """Load a JSON file, turning a missing or malformed file into a clear error."""
    if osp.isdir(path):
        raise FileNotFoundError(f"annotation file '{path}' is a folder, not a file")
    if not osp.isfile(path):
        raise FileNotFoundError(f"annotation file '{path}' does not exist")
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise TrackletAnnotationError(
            f'not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})', file=path) from e
    except UnicodeDecodeError as e:
        raise TrackletAnnotationError(
            f'not valid JSON: not UTF-8 text (byte {e.start}: {e.reason})', file=path) from e
    except OSError as e:  # e.g. no permission to read it
        raise TrackletAnnotationError(f'cannot be read: {e.strerror or e}', file=path) from e


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_cocovid(ann: dict, file: Optional[str] = None, check_boxes_in_image: bool = True):
    """Check a CocoVID annotation dict; raise :class:`TrackletAnnotationError` on the first problem.

    Checks: the top-level lists and their required fields; unique ids of videos, images,
    annotations and categories; each image refers to a known video, and each (video, frame_id)
    appears once; each annotation refers to a known image and category; boxes ``[x, y, w, h]``
    are four finite numbers with positive width and height, not entirely outside the image
    (partly outside is fine: the pipeline clips); an instance id is used at most once per frame
    and keeps one category over its video.
    """
    if not isinstance(ann, dict):
        raise TrackletAnnotationError(
            f'expected a JSON object at the top level, got {type(ann).__name__}', file=file)
    for key, fields in REQUIRED_FIELDS.items():
        if key not in ann:
            raise TrackletAnnotationError('missing top-level list', file=file, field=key)
        if not isinstance(ann[key], list):
            raise TrackletAnnotationError(
                f'expected a list, got {type(ann[key]).__name__}', file=file, field=key)
        for i, item in enumerate(ann[key]):
            if not isinstance(item, dict):
                raise TrackletAnnotationError(
                    f'entry {i} is a {type(item).__name__}, expected an object',
                    file=file,
                    field=key)
            for name in fields:
                if name not in item:
                    raise TrackletAnnotationError(
                        f'entry {i} (id {item.get("id")}) has no {name!r}',
                        file=file,
                        field=f'{key}.{name}')

    def unique_ids(key):
        seen = {}
        for item in ann[key]:
            if item['id'] in seen:
                raise TrackletAnnotationError(
                    f"id {item['id']} is used twice", file=file, field=f'{key}.id')
            seen[item['id']] = item
        return seen

    videos = unique_ids('videos')
    images = unique_ids('images')
    unique_ids('annotations')
    categories = unique_ids('categories')

    frame_seen = set()
    for img in images.values():
        video = videos.get(img['video_id'])
        if video is None:
            raise TrackletAnnotationError(
                f"image {img['id']} refers to unknown video_id {img['video_id']}",
                file=file,
                frame=img.get('frame_id'),
                field='images.video_id')
        for name in ('width', 'height'):
            if not _is_number(img[name]) or img[name] <= 0:
                raise TrackletAnnotationError(
                    f'image {img["id"]}: {name} must be a positive number, got {img[name]!r}',
                    file=file,
                    video=video['name'],
                    frame=img['frame_id'],
                    field=f'images.{name}')
        if not isinstance(img['frame_id'], int) or img['frame_id'] < 0:
            raise TrackletAnnotationError(
                f"image {img['id']}: frame_id must be a non-negative integer, "
                f"got {img['frame_id']!r}",
                file=file,
                video=video['name'],
                field='images.frame_id')
        key = (img['video_id'], img['frame_id'])
        if key in frame_seen:
            raise TrackletAnnotationError(
                f"two images (second: id {img['id']}) have the same frame_id",
                file=file,
                video=video['name'],
                frame=img['frame_id'],
                field='images.frame_id')
        frame_seen.add(key)

    ids_in_frame = set()
    category_of_instance = {}
    for a in ann['annotations']:
        img = images.get(a['image_id'])
        if img is None:
            raise TrackletAnnotationError(
                f"annotation {a['id']} refers to unknown image_id {a['image_id']}",
                file=file,
                field='annotations.image_id')
        where = dict(file=file, video=videos[img['video_id']]['name'], frame=img['frame_id'])
        prefix = f"annotation {a['id']} (instance {a['instance_id']}): "
        if a['category_id'] not in categories:
            raise TrackletAnnotationError(
                prefix + f"unknown category_id {a['category_id']}",
                **where,
                field='annotations.category_id')
        box = a['bbox']
        if not (isinstance(box,
                           (list, tuple)) and len(box) == 4 and all(_is_number(v) for v in box)):
            raise TrackletAnnotationError(
                prefix + f'bbox must be four numbers [x, y, w, h], got {box!r}',
                **where,
                field='annotations.bbox')
        if not all(math.isfinite(v) for v in box):
            raise TrackletAnnotationError(
                prefix + f'bbox has a non-finite value: {box}', **where, field='annotations.bbox')
        x, y, w, h = box
        if w <= 0 or h <= 0:
            raise TrackletAnnotationError(
                prefix + f'bbox {box} has non-positive width or height (x2 <= x1 or y2 <= y1)',
                **where,
                field='annotations.bbox')
        if check_boxes_in_image and (x >= img['width'] or y >= img['height'] or x + w <= 0
                                     or y + h <= 0):
            raise TrackletAnnotationError(
                prefix + f"bbox {box} lies entirely outside the {img['width']}x{img['height']} "
                'image',
                **where,
                field='annotations.bbox')
        if 'visibility' in a and (not _is_number(a['visibility']) or not 0 <= a['visibility'] <= 1):
            raise TrackletAnnotationError(
                prefix + f"visibility must be a number in [0, 1], got {a['visibility']!r}",
                **where,
                field='annotations.visibility')
        key = (a['image_id'], a['instance_id'])
        if key in ids_in_frame:
            raise TrackletAnnotationError(
                prefix + 'the instance_id is used by two boxes in the same frame',
                **where,
                field='annotations.instance_id')
        ids_in_frame.add(key)
        track = (img['video_id'], a['instance_id'])
        if category_of_instance.setdefault(track, a['category_id']) != a['category_id']:
            raise TrackletAnnotationError(
                prefix + f"category_id {a['category_id']} differs from the instance's earlier "
                f'category_id {category_of_instance[track]}',
                **where,
                field='annotations.category_id')


def load_cocovid(path: str, check_boxes_in_image: bool = True) -> dict:
    """Load and validate a CocoVID annotation file."""
    ann = load_json(path)
    validate_cocovid(ann, file=path, check_boxes_in_image=check_boxes_in_image)
    return ann


def group_annotations(ann: dict) -> dict:
    """Index a validated CocoVID dict: video id -> frames sorted by frame_id, each frame with
    its annotations. Returns ``{video_id: {'video': video, 'frames': [(image, [anns])]}}``."""
    anns_of_image = defaultdict(list)
    for a in ann['annotations']:
        anns_of_image[a['image_id']].append(a)
    out = {v['id']: {'video': v, 'frames': []} for v in ann['videos']}
    for img in sorted(ann['images'], key=lambda im: (im['video_id'], im['frame_id'])):
        out[img['video_id']]['frames'].append((img, anns_of_image[img['id']]))
    return out
