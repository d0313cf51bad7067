"""TrackAP: video-level average precision of tracks, as TrackDiffusion reports it.

Each predicted track (all boxes of one predicted id in a video) is one detection, scored by
the mean of its per-frame scores and labelled by majority vote of its per-frame labels. It
matches a GT tracklet by spatio-temporal box IoU, the sum over frames of the boxes'
intersections over the sum over frames of their unions (a frame where only one of the two
has a box adds that box's area to the union), as YouTube-VIS does with masks. AP is
COCO-style (greedy matching by score, 101-point interpolated precision) per category and
averaged over categories with GT; TrackAP is the mean over IoU 0.50:0.05:0.95.

The matching and accumulation are mmdet's ``YTVISeval`` (YouTube-VIS's evaluation) with two
replacements: the IoU, since its ``bbox`` mode merges boxes as RLE masks and cannot take boxes,
and ``accumulate``, which uses ``np.float`` (removed from NumPy) and is otherwise pycocotools'
``COCOeval.accumulate``, which is called instead.
"""
import contextlib
import io
from typing import Mapping, Optional, Sequence

import numpy as np
from mmdet.evaluation.functional import YTVIS, YTVISeval
from pycocotools.cocoeval import COCOeval

from .identity import check_tracks


def spatiotemporal_box_iou(dt_boxes: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
    """(D, G) spatio-temporal IoU of tracks given as (D, F, 4) and (G, F, 4) xyxy boxes.

    Rows of NaN mark frames where the track has no box. A pair with no area at all gets 0.
    """
    dt_boxes, gt_boxes = np.asarray(dt_boxes, float), np.asarray(gt_boxes, float)
    d, g = dt_boxes[:, None], gt_boxes[None]  # (D, 1, F, 4), (1, G, F, 4)
    d_on, g_on = ~np.isnan(d[..., 0]), ~np.isnan(g[..., 0])

    def area(b, on):
        return np.where(on, (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]), 0.0)

    iw = np.minimum(d[..., 2], g[..., 2]) - np.maximum(d[..., 0], g[..., 0])
    ih = np.minimum(d[..., 3], g[..., 3]) - np.maximum(d[..., 1], g[..., 1])
    overlap = np.clip(np.nan_to_num(iw), 0, None) * np.clip(np.nan_to_num(ih), 0, None)
    inter = np.where(d_on & g_on, overlap, 0.0).sum(-1)
    union = area(d, d_on).sum(-1) + area(g, g_on).sum(-1) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


class BoxYTVISeval(YTVISeval):
    """mmdet's ``YTVISeval`` on per-frame boxes.

    Annotations carry ``boxes``: (F, 4) xyxy with NaN rows for frames without the object (F
    shared by all annotations of a video), and ``avg_area``, their mean box area.
    """

    def computeIoU(self, vidId, catId):  # noqa: N802,N803 (overrides YTVISeval's)
        p = self.params
        gt, dt = self._gts[vidId, catId], self._dts[vidId, catId]
        if not gt and not dt:
            return []
        order = np.argsort([-d['score'] for d in dt], kind='mergesort')[:p.maxDets[-1]]
        dt = [dt[i] for i in order]
        if not gt or not dt:
            return np.zeros((len(dt), len(gt)))
        return spatiotemporal_box_iou(
            np.stack([d['boxes'] for d in dt]), np.stack([g['boxes'] for g in gt]))

    def accumulate(self, p=None):
        """pycocotools' ``COCOeval.accumulate``, with videos in place of images."""
        for params in (self.params, self._paramsEval, p):
            if params is not None:
                params.imgIds = params.vidIds
        COCOeval.accumulate(self, p)


def _video_track_anns(frames: Mapping, frame_list: list, agnostic: bool, is_gt: bool) -> list:
    """One YTVIS-style annotation (without ids) per track id of a video's checked frames."""
    pos = {t: i for i, t in enumerate(frame_list)}
    collected = {}
    for t, entry in frames.items():
        for k, tid in enumerate(entry['ids'].tolist()):
            track = collected.setdefault(tid, dict(boxes={}, scores=[], labels=[]))
            track['boxes'][pos[t]] = entry['boxes'][k]
            if not is_gt:
                track['scores'].append(entry['scores'][k])
            if not agnostic:
                track['labels'].append(entry['labels'][k])
    anns = []
    for track in collected.values():
        boxes = np.full((len(frame_list), 4), np.nan)
        rows = sorted(track['boxes'])
        boxes[rows] = np.stack([track['boxes'][r] for r in rows])
        areas = (boxes[rows, 2] - boxes[rows, 0]) * (boxes[rows, 3] - boxes[rows, 1])
        label = 0 if agnostic else int(np.bincount(track['labels']).argmax())  # majority vote
        ann = dict(boxes=boxes, avg_area=float(areas.mean()), category_id=label + 1)
        if is_gt:
            ann['iscrowd'] = 0
        else:
            ann['score'] = float(np.mean(track['scores']))
        anns.append(ann)
    return anns


def _check_labels(tracks: dict, what: str, num_categories: int) -> None:
    for video, frames in tracks.items():
        for t, entry in frames.items():
            labels = entry['labels']
            if len(labels) and (labels.min() < 0 or labels.max() >= num_categories):
                raise ValueError(f"{what}['{video}'][{t}]: labels {labels.tolist()} are not "
                                 f'indices of the {num_categories} categories')


def _mean_valid(precision: np.ndarray) -> float:
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else float('nan')


def track_ap(gt_tracks: Mapping,
             pred_tracks: Mapping,
             categories: Optional[Sequence[str]] = None,
             max_tracks: int = 100,
             per_category: bool = False) -> dict:
    """TrackAP, TrackAP50 and TrackAP75 of predicted tracks against GT tracklets.

    Args:
        gt_tracks: GT tracks, ``{video: {frame: dict(ids, boxes[, labels])}}`` (the format of
            :mod:`mmtrackgen.evaluation.identity`), e.g. from ``layouts_to_tracks``.
        pred_tracks: predicted tracks of the same videos, with ``scores`` in every frame; a
            predicted video absent from the GT is an error.
        categories: category names indexed by ``labels``, which GT and predictions must then
            carry. ``None``: class-agnostic, labels are ignored.
        max_tracks: the highest-scored tracks kept per video and category (YTVIS: 100).
        per_category: also return ``TrackAP_<name>`` per category (NaN where it has no GT).
    Returns:
        dict of floats in [0, 1], NaN when there is no GT track at all.
    """
    agnostic = categories is None
    gt = check_tracks(gt_tracks, 'gt_tracks', labels=not agnostic)
    pred = check_tracks(pred_tracks, 'pred_tracks', scores=True, labels=not agnostic)
    extra = sorted(set(pred) - set(gt), key=str)
    if extra:
        raise KeyError(f'pred_tracks has videos without GT: {extra}')
    names = ['object'] if agnostic else list(categories)
    if not agnostic:
        _check_labels(gt, 'gt_tracks', len(names))
        _check_labels(pred, 'pred_tracks', len(names))

    videos = [dict(id=i + 1, name=str(v)) for i, v in enumerate(gt)]
    cats = [dict(id=i + 1, name=n) for i, n in enumerate(names)]
    gt_anns, dt_anns = [], []
    for vid, video in enumerate(gt, 1):
        pred_frames = pred.get(video, {})
        frame_list = sorted(set(gt[video]) | set(pred_frames))
        for anns, frames, is_gt in ((gt_anns, gt[video], True), (dt_anns, pred_frames, False)):
            for ann in _video_track_anns(frames, frame_list, agnostic, is_gt):
                anns.append(dict(ann, id=len(anns) + 1, video_id=vid))  # ids from 1: 0 = none

    with contextlib.redirect_stdout(io.StringIO()):  # YTVIS and YTVISeval print progress
        evaluator = BoxYTVISeval(
            YTVIS(dict(videos=videos, categories=cats, annotations=gt_anns)),
            YTVIS(dict(videos=videos, categories=cats, annotations=dt_anns)),
            iouType='bbox')
        params = evaluator.params
        params.vidIds = [v['id'] for v in videos]
        params.catIds = [c['id'] for c in cats]
        params.areaRng, params.areaRngLbl = [[0.0, 1e10]], ['all']
        params.maxDets = [max_tracks]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval['precision'][:, :, :, 0, 0]  # (IoU thresholds, recalls, cats)
    thrs = evaluator.params.iouThrs
    result = dict(
        TrackAP=_mean_valid(precision),
        TrackAP50=_mean_valid(precision[np.isclose(thrs, 0.5)]),
        TrackAP75=_mean_valid(precision[np.isclose(thrs, 0.75)]))
    if per_category:
        for k, name in enumerate(names):
            result[f'TrackAP_{name}'] = _mean_valid(precision[:, :, k])
    return result
