"""Keeping only the generated clips (or instances) that the project's own metrics accept.

Peers report that unfiltered generated clips hurt a tracker and that filtering by the
generator's own alignment is what makes them help (ADGV-Bench, Dream4Drive). A generated clip's
labels are the tracklets it was generated from; where the generator failed to draw an object in
its box, the label is wrong, and a tracker trained on it learns to see objects where there are
none. The filter scores each clip against its own tracklets and writes the accepted part as a
new CocoVID dataset, with a report that says what was dropped and why:

- **alignment** (:func:`~mmtrackgen.evaluation.box_alignment`): the IoU of each visible box with
  the foreground found around it, averaged per instance (``level='instance'``) or per clip;
- **category accuracy** (optional, any :data:`CategoryScorer`): whether each instance looks like
  its category, e.g. a classifier over the instance's crops.

At ``level='clip'`` a clip is kept when its mean IoU (over every visible box) and its mean
category accuracy (over its instances) pass; at ``level='instance'`` each instance is judged
alone, the failing ones lose their annotations, and a clip is kept while any instance is.
"""
import os
import os.path as osp
import shutil
from typing import Callable, Optional

import numpy as np

from mmtrackgen.datasets import segment_foreground
from mmtrackgen.datasets.tracklets import load_cocovid
from mmtrackgen.evaluation.alignment import box_alignment
from mmtrackgen.structures import TrackletLayout
from mmtrackgen.utils import write_json_atomic

ANNOTATIONS = 'annotations.json'
REPORT = 'filter_report.json'
CLIP_RECORD = 'clip.json'
LEVELS = ('clip', 'instance')
# (layout, frames (F, H, W, 3) uint8 RGB) -> (N,) accuracy in [0, 1] per instance of the layout,
# NaN for an instance it cannot score (e.g. never visible).
CategoryScorer = Callable[[TrackletLayout, np.ndarray], np.ndarray]


def instance_alignment(layout: TrackletLayout, frames: np.ndarray) -> np.ndarray:
    """(F, N) IoU of each visible box with the foreground around it (NaN where not visible)."""
    height, width = layout.image_size
    boxes = layout.boxes / np.array([width, height, width, height], np.float32)  # (F, N, 4)
    return box_alignment(frames, boxes, layout.visible, segment_foreground)


def judge_clip(layout: TrackletLayout,
               frames: np.ndarray,
               min_iou: float,
               min_category_acc: Optional[float] = None,
               category_scorer: Optional[CategoryScorer] = None,
               level: str = 'clip') -> dict:
    """Scores and verdict of one clip: ``dict(mean_iou, category_acc, kept, reasons,
    instances={instance_id: dict(mean_iou, category_acc, kept, reasons)})``."""
    ious = instance_alignment(layout, frames)  # (F, N)
    n = layout.num_instances
    visible_any = layout.visible.any(axis=0)  # (N,)
    per_iou = np.full(n, np.nan)
    per_iou[visible_any] = np.nanmean(ious[:, visible_any], axis=0)
    per_acc = np.full(n, np.nan)
    if min_category_acc is not None:
        per_acc = np.asarray(category_scorer(layout, frames), dtype=np.float64)
        if per_acc.shape != (n, ):
            raise ValueError(f"category scorer gave shape {per_acc.shape} for clip "
                             f"'{layout.name}' of {n} instances; it must give one accuracy "
                             'per instance, shape (N,)')

    def verdict(iou: float, acc: float) -> list:
        reasons = []
        if np.isnan(iou):
            reasons.append('no visible box to score')
        elif iou < min_iou:
            reasons.append(f'alignment {iou:.3f} < {min_iou}')
        if min_category_acc is not None and not np.isnan(acc) and acc < min_category_acc:
            reasons.append(f'category accuracy {acc:.3f} < {min_category_acc}')
        return reasons

    instances = {}
    for k in range(n):
        reasons = verdict(per_iou[k], per_acc[k]) if level == 'instance' else []
        instances[int(layout.instance_ids[k])] = dict(
            mean_iou=_number(per_iou[k]),
            category_acc=_number(per_acc[k]),
            kept=not reasons,
            reasons=reasons)
    clip_iou = float(np.nanmean(ious)) if np.isfinite(ious).any() else float('nan')
    clip_acc = float(np.nanmean(per_acc)) if np.isfinite(per_acc).any() else float('nan')
    if level == 'clip':
        reasons = verdict(clip_iou, clip_acc)
        for entry in instances.values():
            entry['kept'] = not reasons
    else:
        reasons = [] if any(e['kept'] for e in instances.values()) else ['no instance kept']
    return dict(
        mean_iou=_number(clip_iou),
        category_acc=_number(clip_acc),
        kept=not reasons,
        reasons=reasons,
        instances=instances)


def filter_generated(gen_dir: str,
                     out_dir: str,
                     min_iou: float,
                     min_category_acc: Optional[float] = None,
                     category_scorer: Optional[CategoryScorer] = None,
                     level: str = 'clip',
                     overwrite: bool = False) -> dict:
    """Write the accepted clips of the generated dataset ``gen_dir`` (``tools/generate.py``'s
    output: ``annotations.json`` and the frames it names) into ``out_dir``.

    ``out_dir`` gets the same layout (the kept frames hard-linked where the file system allows,
    else copied; each clip's ``clip.json``), an ``annotations.json`` holding the kept videos,
    frames and annotations with their ids unchanged, and ``filter_report.json``: the thresholds,
    counts, and every clip's and instance's scores, verdict and reasons. ``annotations.json`` is
    written last, so its presence means the output is complete.

    Returns:
        dict: the report.
    """
    if level not in LEVELS:
        raise ValueError(f'level must be one of {LEVELS}, got {level!r}')
    if not 0 <= min_iou <= 1:
        raise ValueError(f'min_iou must be in [0, 1], got {min_iou}')
    if min_category_acc is not None:
        if not 0 <= min_category_acc <= 1:
            raise ValueError(f'min_category_acc must be in [0, 1], got {min_category_acc}')
        if category_scorer is None:
            raise ValueError('min_category_acc needs a category_scorer: a callable (layout, '
                             'frames) -> (N,) accuracy per instance')
    ann_file = osp.join(gen_dir, ANNOTATIONS)
    if not osp.isfile(ann_file):
        raise FileNotFoundError(f"'{ann_file}' not found: GEN_DIR must be a tools/generate.py "
                                'output folder (its annotations.json is written when every clip '
                                'is done)')
    if osp.realpath(out_dir) == osp.realpath(gen_dir):
        raise ValueError(f"the output folder '{out_dir}' is the generated folder itself")
    if osp.exists(osp.join(out_dir, ANNOTATIONS)) and not overwrite:
        raise FileExistsError(f"'{osp.join(out_dir, ANNOTATIONS)}' exists; pass overwrite=True "
                              '(--overwrite) to replace it')

    from mmtrackgen.evaluation.dataset_report import iter_videos  # frames, checked
    ann = load_cocovid(ann_file)
    judged = {}
    for layout, frames in iter_videos(ann_file, gen_dir):
        judged[layout.name] = judge_clip(layout, frames, min_iou, min_category_acc,
                                         category_scorer, level)

    video_ids = {v['id']: v['name'] for v in ann['videos']}
    kept_videos = {i for i, name in video_ids.items() if judged.get(name, {}).get('kept')}
    kept_images = [im for im in ann['images'] if im['video_id'] in kept_videos]
    image_video = {im['id']: im['video_id'] for im in kept_images}
    kept_annotations = [
        a for a in ann['annotations'] if a['image_id'] in image_video and judged[video_ids[
            image_video[a['image_id']]]]['instances'][a['instance_id']]['kept']
    ]

    os.makedirs(out_dir, exist_ok=True)
    for image in kept_images:
        _place(osp.join(gen_dir, image['file_name']), osp.join(out_dir, image['file_name']))
    for video_id in kept_videos:
        record = osp.join(gen_dir, video_ids[video_id], CLIP_RECORD)
        if osp.isfile(record):
            _place(record, osp.join(out_dir, video_ids[video_id], CLIP_RECORD))

    instances = [e for clip in judged.values() for e in clip['instances'].values()]
    report = dict(
        source=osp.abspath(gen_dir),
        level=level,
        min_iou=min_iou,
        min_category_acc=min_category_acc,
        clips=dict(total=len(judged), kept=len(kept_videos)),
        instances=dict(total=len(instances), kept=sum(e['kept'] for e in instances)),
        boxes=dict(total=len(ann['annotations']), kept=len(kept_annotations)),
        dropped={name: clip['reasons']
                 for name, clip in judged.items() if not clip['kept']},
        per_clip=judged)
    # JSON keys are strings: instance ids become '3'
    write_json_atomic(osp.join(out_dir, REPORT), report, indent=1)
    info = dict(ann.get('info') or {}, filtered=dict(
        source=report['source'], level=level, min_iou=min_iou,
        min_category_acc=min_category_acc))
    filtered = dict(
        ann,
        info=info,
        videos=[v for v in ann['videos'] if v['id'] in kept_videos],
        images=kept_images,
        annotations=kept_annotations)
    write_json_atomic(osp.join(out_dir, ANNOTATIONS), filtered)
    return report


def _place(src: str, dst: str) -> None:
    """Hard-link ``src`` at ``dst`` (no copy of the frames), or copy it across file systems."""
    os.makedirs(osp.dirname(dst), exist_ok=True)
    if osp.exists(dst):
        os.remove(dst)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _number(value: float):
    """A JSON-safe float: None for NaN."""
    return None if np.isnan(value) else round(float(value), 4)
