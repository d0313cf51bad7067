"""Identity figures of tracks found in generated clips, scored against the input tracklets.

HOTA (DetA, AssA), the CLEAR figures (MOTA, MOTP, IDSW) and the ID figures (IDF1, IDP, IDR)
are computed by the ``trackeval`` package's metric classes on in-memory data, per video and
combined over videos with trackeval's ``combine_sequences``.

Tracks format, shared by :mod:`.identity`, :mod:`.track_ap` and :mod:`.synthetic_tracker`::

    tracks = {video_name: {frame_index: dict(ids=(K,) int, boxes=(K, 4) float)}}

``boxes`` are xyxy in pixels; ``ids`` are unique within a frame and name the same object
across the frames of a video. Predictions may add ``scores`` (K,) float (needed by track AP)
and either may add ``labels`` (K,) int, category indices (used by class-aware track AP).
A frame absent from a video's dict holds no objects. Any array-like works (numpy, CPU torch).
"""
from typing import Dict, Iterable, Mapping, Optional, Sequence

import numpy as np
import trackeval
from trackeval.datasets._base_dataset import _BaseDataset

# Figures reported, in order; HOTA/DetA/AssA are trackeval's means over its 19 alphas.
IDENTITY_FIELDS = ('HOTA', 'DetA', 'AssA', 'IDF1', 'IDP', 'IDR', 'MOTA', 'MOTP', 'IDSW')


def box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """(N, M) IoU of xyxy boxes, computed by trackeval (as in its MOT Challenge evaluation)."""
    boxes1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    return _BaseDataset._calculate_box_ious(boxes1, boxes2, box_format='x0y0x1y1')


def check_tracks(tracks: Mapping,
                 what: str = 'tracks',
                 scores: bool = False,
                 labels: bool = False) -> Dict[str, Dict[int, Dict[str, np.ndarray]]]:
    """Validate tracks (see the module docstring) and return them as numpy arrays.

    Args:
        tracks: ``{video: {frame: dict(ids, boxes, [scores], [labels])}}``.
        what: the argument's name, for error messages.
        scores: require ``scores`` in every frame.
        labels: require ``labels`` in every frame.
    Returns:
        The same structure with int64 ``ids``/``labels`` and float64 ``boxes``/``scores``;
        frame keys become ints; optional keys not required are kept when present.
    """
    if not isinstance(tracks, Mapping):
        raise TypeError(f'{what} must be a dict {{video: {{frame: dict(ids, boxes)}}}}, '
                        f'got {type(tracks).__name__}')
    out = {}
    for video, frames in tracks.items():
        if not isinstance(frames, Mapping):
            raise TypeError(f"{what}['{video}'] must be a dict {{frame_index: dict(ids, "
                            f'boxes)}}, got {type(frames).__name__}')
        out[video] = {}
        for frame, entry in frames.items():
            where = f"{what}['{video}'][{frame}]"
            out[video][int(frame)] = _check_frame(entry, where, scores, labels)
    return out


def _check_frame(entry, where: str, scores: bool, labels: bool) -> Dict[str, np.ndarray]:
    if not isinstance(entry, Mapping):
        raise TypeError(f'{where} must be a dict with ids and boxes, got {type(entry).__name__}')
    required = ['ids', 'boxes'] + ['scores'] * scores + ['labels'] * labels
    missing = [k for k in required if k not in entry]
    if missing:
        raise KeyError(f'{where} lacks {missing} (has {sorted(entry)})')
    ids = _as_array(entry['ids'], np.int64)
    boxes = _as_array(entry['boxes'], np.float64)
    if ids.ndim == 1 and len(ids) == 0 and boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if ids.ndim != 1 or boxes.shape != (len(ids), 4):
        raise ValueError(f'{where}: ids must be (K,) and boxes (K, 4), got {ids.shape} and '
                         f'{boxes.shape}')
    num = len(ids)
    out = dict(ids=ids, boxes=boxes)
    if len(np.unique(ids)) != num:
        raise ValueError(f'{where}: ids must be unique within a frame, got {ids.tolist()}')
    for key, dtype in (('scores', np.float64), ('labels', np.int64)):
        if key in entry and entry[key] is not None:
            out[key] = _as_array(entry[key], dtype)
            if out[key].shape != (num, ):
                raise ValueError(f'{where}: {key} must be ({num},), got {out[key].shape}')
    return out


def _as_array(value, dtype) -> np.ndarray:
    if hasattr(value, 'detach'):  # torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def layouts_to_tracks(layouts: Iterable, categories: Optional[Sequence[str]] = None) -> dict:
    """GT tracks of :class:`~mmtrackgen.structures.TrackletLayout` s, keyed by layout name.

    Frame ``t`` is the layout's t-th frame (0..F-1, the index of the generated frame), boxes
    are the layout's pixel xyxy boxes of the visible instances, ids its ``instance_ids``. With
    ``categories`` (names), ``labels`` are the indices of the instances' categories in it.
    """
    index = None if categories is None else {name: i for i, name in enumerate(categories)}
    tracks = {}
    for layout in layouts:
        if layout.name in tracks:
            raise ValueError(f"two layouts are named '{layout.name}'; names must be unique")
        if index is not None:
            unknown = sorted(set(layout.categories) - set(index))
            if unknown:
                raise KeyError(f"layout '{layout.name}': categories {unknown} are not in "
                               f'{list(categories)}')
            inst_labels = np.array([index[c] for c in layout.categories], dtype=np.int64)
        frames = {}
        for t in range(layout.num_frames):
            vis = np.asarray(layout.visible[t], dtype=bool)
            frames[t] = dict(
                ids=np.asarray(layout.instance_ids, dtype=np.int64)[vis],
                boxes=np.asarray(layout.boxes[t], dtype=np.float64)[vis])
            if index is not None:
                frames[t]['labels'] = inst_labels[vis]
        tracks[layout.name] = frames
    return tracks


def sequence_data(gt_frames: Mapping, pred_frames: Mapping, name: str = '') -> dict:
    """trackeval's per-sequence data dict of one video's checked GT and predicted frames.

    Timesteps are the sorted union of both frame indices; ids are relabelled to 0..n-1 per
    video (trackeval counts ids by indexing arrays with them); similarity is box IoU.
    """
    frames = sorted(set(gt_frames) | set(pred_frames))
    empty = dict(ids=np.zeros(0, np.int64), boxes=np.zeros((0, 4)))
    gts = [gt_frames.get(t, empty) for t in frames]
    preds = [pred_frames.get(t, empty) for t in frames]
    gt_unique = np.unique(np.concatenate([empty['ids']] + [g['ids'] for g in gts]))
    pred_unique = np.unique(np.concatenate([empty['ids']] + [p['ids'] for p in preds]))
    return dict(
        seq=name,
        num_timesteps=len(frames),
        num_gt_ids=len(gt_unique),
        num_tracker_ids=len(pred_unique),
        num_gt_dets=sum(len(g['ids']) for g in gts),
        num_tracker_dets=sum(len(p['ids']) for p in preds),
        gt_ids=[np.searchsorted(gt_unique, g['ids']) for g in gts],
        tracker_ids=[np.searchsorted(pred_unique, p['ids']) for p in preds],
        similarity_scores=[box_iou(g['boxes'], p['boxes']) for g, p in zip(gts, preds)])


def _summary(hota: dict, clear: dict, ident: dict) -> dict:
    out = {k: float(np.mean(hota[k])) for k in ('HOTA', 'DetA', 'AssA')}
    out.update({k: float(ident[k]) for k in ('IDF1', 'IDP', 'IDR')})
    out.update(MOTA=float(clear['MOTA']), MOTP=float(clear['MOTP']), IDSW=int(clear['IDSW']))
    return out


def identity_metrics(gt_tracks: Mapping, pred_tracks: Mapping, iou_threshold: float = 0.5) -> dict:
    """HOTA, DetA, AssA, IDF1, IDP, IDR, MOTA, MOTP and IDSW of predicted tracks against GT.

    Args:
        gt_tracks: GT tracks (module docstring format), e.g. from :func:`layouts_to_tracks`.
        pred_tracks: predicted tracks of the same videos; a GT video without predictions is
            scored as all missed, a predicted video absent from the GT is an error.
        iou_threshold: box IoU for a match in CLEAR and ID figures (HOTA uses its own alphas).
    Returns:
        The figures combined over all videos (trackeval's ``combine_sequences``), plus
        ``per_video``: ``{video: figures}``. All values are floats except ``IDSW`` (int).
    """
    gt = check_tracks(gt_tracks, 'gt_tracks')
    pred = check_tracks(pred_tracks, 'pred_tracks')
    extra = sorted(set(pred) - set(gt), key=str)
    if extra:
        raise KeyError(f'pred_tracks has videos without GT: {extra}')
    if not gt:
        raise ValueError('gt_tracks holds no videos')
    config = dict(THRESHOLD=iou_threshold, PRINT_CONFIG=False)
    metrics = dict(
        hota=trackeval.metrics.HOTA(),
        clear=trackeval.metrics.CLEAR(dict(config)),
        ident=trackeval.metrics.Identity(dict(config)))
    per_video = {key: {} for key in metrics}
    for video in gt:
        data = sequence_data(gt[video], pred.get(video, {}), str(video))
        for key, metric in metrics.items():
            per_video[key][video] = metric.eval_sequence(data)
    combined = {key: metric.combine_sequences(per_video[key]) for key, metric in metrics.items()}
    result = _summary(**combined)
    result['per_video'] = {
        video: _summary(*(per_video[key][video] for key in ('hota', 'clear', 'ident')))
        for video in gt
    }
    return result
