"""Every figure of a video dataset against its own tracklets, in one report.

The dataset is any CocoVID folder: the output of ``tools/generate.py`` (whose labels are the
tracklets the clips were generated from) or a real split (the reference figures). Figures:

- **alignment**: per visible (frame, instance), IoU of the box with the foreground around it;
- **appearance consistency**: per instance, how constant its colours are across frames;
- **category accuracy**: per visible (frame, instance), whether a classifier trained on real
  crops recognises the box's category in the crop under it (when a classifier is given);
- **identity** (HOTA, IDF1, MOTA...) and **TrackAP**: a tracker's output scored against the
  tracklets; here the training-free :class:`SyntheticTracker` of the synthetic world;
- **FVD / FID** against a reference dataset, when one and the feature networks are given.
"""
import os.path as osp
from collections.abc import Iterator
from typing import Optional

import cv2
import mmcv
import numpy as np
from mmengine.utils import ProgressBar

from mmtrackgen.datasets import segment_foreground
from mmtrackgen.datasets.tracklet_file import layouts_from_cocovid
from mmtrackgen.datasets.tracklets import group_annotations, load_cocovid
from mmtrackgen.structures import TrackletLayout
from .alignment import box_alignment, summarize_alignment
from .appearance import appearance_consistency, summarize_consistency
from .category import CategoryClassifier, category_accuracy
from .identity import identity_metrics, layouts_to_tracks
from .synthetic_tracker import track_clip
from .track_ap import track_ap
from .video_quality import compute_fid, compute_fvd


class FrameFileError(ValueError):
    """A frame file that exists but cannot be decoded (empty, truncated, not an image)."""


def read_frame(path: str, video: str, frame_id: int) -> np.ndarray:
    """One frame file as (H, W, 3) uint8 RGB; errors name the video, frame and file."""
    where = f"video '{video}', frame {frame_id}: frame file '{path}'"
    if not osp.isfile(path):
        raise FileNotFoundError(f'{where} does not exist')
    with open(path, 'rb') as f:
        data = f.read()
    # cv2 gives None for data it cannot decode, including a truncated JPEG.
    frame = mmcv.imfrombytes(data, channel_order='bgr') if data else None
    if frame is None:
        raise FrameFileError(f'{where} cannot be decoded as an image ({len(data)} bytes; '
                             'empty, truncated or corrupt?)')
    return mmcv.bgr2rgb(frame)


def iter_videos(ann_file: str, img_prefix: str) -> Iterator[tuple[TrackletLayout, np.ndarray]]:
    """(layout, frames (F, H, W, 3) uint8 RGB) of every video of a CocoVID file."""
    ann = load_cocovid(ann_file)
    layouts = {layout.name: layout for layout in layouts_from_cocovid(ann, file=ann_file)}
    for entry in group_annotations(ann).values():
        video = entry['video']
        frames = []
        for image, _ in entry['frames']:
            path = osp.join(img_prefix, image['file_name'])
            frame = read_frame(path, video['name'], image['frame_id'])
            if frame.shape[:2] != (image['height'], image['width']):
                raise FrameFileError(
                    f"video '{video['name']}', frame {image['frame_id']}: frame file '{path}' "
                    f'is {frame.shape[1]}x{frame.shape[0]}, the annotations say '
                    f"{image['width']}x{image['height']}")
            frames.append(frame)
        yield layouts[video['name']], np.stack(frames)


def normalised_boxes(layout: TrackletLayout) -> np.ndarray:
    height, width = layout.image_size
    return layout.boxes / np.array([width, height, width, height], np.float32)  # (F, N, 4)


def tracking_report(videos: list[tuple[TrackletLayout, np.ndarray]],
                    min_area: int,
                    category_classifier: Optional[CategoryClassifier] = None) -> dict:
    """Alignment, appearance, category accuracy (with a classifier), identity and TrackAP of
    clips against their own tracklets."""
    ious, consistency, predictions = [], [], {}
    bar = ProgressBar(len(videos))
    for layout, frames in videos:
        boxes = normalised_boxes(layout)
        ious.append(box_alignment(frames, boxes, layout.visible, segment_foreground).ravel())
        consistency.append(
            appearance_consistency(frames, boxes, layout.visible, segment_foreground))
        predictions[layout.name] = track_clip(frames, min_area=min_area)
        bar.update()
    truth = layouts_to_tracks([layout for layout, _ in videos])
    identity = identity_metrics(truth, predictions)
    identity.pop('per_video', None)
    report = dict(
        alignment=summarize_alignment(np.concatenate(ious)),
        appearance=summarize_consistency(np.concatenate(consistency)))
    if category_classifier is not None:
        report['category'] = category_accuracy(videos, category_classifier)
    return dict(
        report,
        identity=identity,
        track_ap=track_ap(truth, predictions))


def reference_clips(videos: list[tuple[TrackletLayout, np.ndarray]], clip_length: int,
                    size: tuple[int, int]) -> list[np.ndarray]:
    """Cut reference videos into non-overlapping clips of ``clip_length`` frames, resized to the
    evaluated clips' (H, W) so that FVD compares content, not resolution."""
    height, width = size
    clips = []
    for _, frames in videos:
        if frames.shape[1:3] != (height, width):
            frames = np.stack(
                [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames])
        for start in range(0, len(frames) - clip_length + 1, clip_length):
            clips.append(frames[start:start + clip_length])
    return clips


def video_quality_report(videos, reference, fvd_network=None, fid_network=None) -> dict:
    """FVD over clips and FID over frames of ``videos`` against ``reference`` videos."""
    clip_length = videos[0][1].shape[0]
    size = videos[0][1].shape[1:3]
    real = reference_clips(reference, clip_length, size)
    fake = [frames for _, frames in videos]
    report = {}
    if fvd_network is not None:
        if clip_length < 8:
            report['fvd'] = dict(skipped=f'clips of {clip_length} frames; I3D needs 8 or more')
        else:
            report['fvd'] = compute_fvd(real, fake, fvd_network)
    if fid_network is not None:
        report['fid'] = compute_fid((f for clip in real for f in clip),
                                    (f for clip in fake for f in clip), fid_network)
    return report
