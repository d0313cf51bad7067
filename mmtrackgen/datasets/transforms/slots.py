"""Turning a clip's per-frame boxes into fixed-size slot arrays, and captions."""
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmengine.logging import print_log

from mmtrackgen.registry import TRANSFORMS

OVERFLOW_POLICIES = ('most_visible', 'largest', 'first', 'error')


class TooManyInstancesError(ValueError):
    """A clip holds more instances than slots and the policy is ``'error'``."""


@TRANSFORMS.register_module()
class AssignInstanceSlots(BaseTransform):
    """Give every instance of the clip one slot for the whole clip, and build slot arrays.

    Instances are ordered by first appearance (then instance id) and take slots 0, 1, ... (or
    random distinct slots with ``shuffle=True``, so a model cannot tie a slot to an order).
    A clip with more instances than ``num_slots`` keeps ``num_slots`` of them by ``overflow``:

    - ``'most_visible'``: the largest visible area summed over frames (area x visibility);
    - ``'largest'``: the largest mean box area over the frames where visible;
    - ``'first'``: the first to appear;
    - ``'error'``: raise :class:`TooManyInstancesError` naming the video.

    Dropped instances are logged (once per video and transform instance) and counted in
    ``num_dropped_instances``, never dropped silently.

    Adds (N = ``num_slots``): ``gt_boxes`` (F, N, 4) float32 xyxy normalised by the frame
    size, zero where not visible; ``gt_visible`` (F, N) bool; ``gt_visibility`` (F, N) float32;
    ``gt_labels``, ``gt_instance_ids`` (N,) int64, -1 for empty slots; ``gt_slot_mask`` (N,)
    bool; ``num_dropped_instances``. The per-frame lists are replaced by these arrays.
    """

    def __init__(self, num_slots: int, overflow: str = 'most_visible', shuffle: bool = False):
        if num_slots < 0:
            raise ValueError(f'num_slots must be >= 0, got {num_slots}')
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f'overflow must be one of {OVERFLOW_POLICIES}, got {overflow!r}')
        self.num_slots = num_slots
        self.overflow = overflow
        self.shuffle = shuffle
        self._warned_videos = set()

    @cache_randomness
    def _slot_order(self, num_kept: int) -> np.ndarray:
        if self.shuffle:
            return np.random.permutation(self.num_slots)[:num_kept]
        return np.arange(num_kept)

    def transform(self, results: dict) -> dict:
        boxes_t, ids_t = results['gt_bboxes'], results['gt_instance_ids']
        labels_t, vis_t = results['gt_bboxes_labels'], results['gt_visibility']
        num_frames = len(boxes_t)
        h, w = results['img_shape']

        first_seen, label_of, visible_area, area_sum, frames_seen = {}, {}, {}, {}, {}
        for t in range(num_frames):
            areas = (boxes_t[t][:, 2] - boxes_t[t][:, 0]) * (boxes_t[t][:, 3] - boxes_t[t][:, 1])
            for k, iid in enumerate(ids_t[t].tolist()):
                first_seen.setdefault(iid, t)
                label_of.setdefault(iid, int(labels_t[t][k]))
                visible_area[iid] = visible_area.get(iid, 0.0) + areas[k] * vis_t[t][k]
                area_sum[iid] = area_sum.get(iid, 0.0) + areas[k]
                frames_seen[iid] = frames_seen.get(iid, 0) + 1
        order = sorted(first_seen, key=lambda i: (first_seen[i], i))

        dropped = max(0, len(order) - self.num_slots)
        if dropped:
            video = results.get('video_name')
            if self.overflow == 'error':
                raise TooManyInstancesError(
                    f"video '{video}' (clip from frame {results.get('frame_ids', [None])[0]}): "
                    f'{len(order)} instances but the model has {self.num_slots} slots; raise '
                    'num_slots or choose an overflow policy other than "error"')
            score = {
                'most_visible': lambda i: -visible_area[i],
                'largest': lambda i: -area_sum[i] / frames_seen[i],
                'first': lambda i: (first_seen[i], i),
            }[self.overflow]
            kept = set(sorted(order, key=score)[:self.num_slots])
            order = [i for i in order if i in kept]
            if video not in self._warned_videos:
                self._warned_videos.add(video)
                print_log(
                    f"video '{video}': clip has {len(order) + dropped} instances for "
                    f"{self.num_slots} slots; dropped {dropped} by policy '{self.overflow}'",
                    logger='current',
                    level=30)

        n = self.num_slots
        slot_of = dict(zip(order, self._slot_order(len(order)).tolist()))
        boxes = np.zeros((num_frames, n, 4), dtype=np.float32)
        visible = np.zeros((num_frames, n), dtype=bool)
        visibility = np.zeros((num_frames, n), dtype=np.float32)
        labels = np.full(n, -1, dtype=np.int64)
        instance_ids = np.full(n, -1, dtype=np.int64)
        for iid, slot in slot_of.items():
            labels[slot], instance_ids[slot] = label_of[iid], iid
        scale = np.array([w, h, w, h], dtype=np.float32)
        for t in range(num_frames):
            for k, iid in enumerate(ids_t[t].tolist()):
                slot = slot_of.get(iid)
                if slot is None:
                    continue
                boxes[t, slot] = boxes_t[t][k] / scale
                visible[t, slot] = True
                visibility[t, slot] = vis_t[t][k]
        for key in ('gt_bboxes', 'gt_bboxes_labels', 'gt_instance_ids', 'gt_visibility'):
            results.pop(key)
        results.update(
            gt_boxes=boxes,
            gt_visible=visible,
            gt_visibility=visibility,
            gt_labels=labels,
            gt_instance_ids=instance_ids,
            gt_slot_mask=instance_ids >= 0,
            num_dropped_instances=dropped)
        return results


_NUMBER_WORDS = ('no', 'a', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten')


def _plural(word: str) -> str:
    if word.endswith(('s', 'x', 'z', 'ch', 'sh')):
        return word + 'es'
    if word.endswith('y') and word[-2:-1] not in 'aeiou':
        return word[:-1] + 'ies'
    return word + 's'


def describe_categories(names) -> str:
    """``['circle', 'square', 'circle']`` -> ``'two circles and a square'`` (first-seen order)."""
    counts = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    if not counts:
        return 'no objects'
    parts = []
    for name, count in counts.items():
        number = _NUMBER_WORDS[count] if count < len(_NUMBER_WORDS) else str(count)
        if count == 1 and name[:1].lower() in 'aeiou':
            number = 'an'
        parts.append(f'{number} {name if count == 1 else _plural(name)}')
    return parts[0] if len(parts) == 1 else ', '.join(parts[:-1]) + ' and ' + parts[-1]


@TRANSFORMS.register_module()
class TemplateCaption(BaseTransform):
    """Give a clip without a caption (none in the captions file) one from its categories.

    ``template`` gets ``{objects}``: e.g. ``'a video of two circles and a square'``. Runs after
    :class:`AssignInstanceSlots` so the caption names the instances the model sees. With
    ``overwrite=True`` every clip gets the template caption.
    """

    def __init__(self, template: str = 'a video of {objects}', overwrite: bool = False):
        if '{objects}' not in template:
            raise ValueError(f"template must contain '{{objects}}', got {template!r}")
        self.template = template
        self.overwrite = overwrite

    def transform(self, results: dict) -> dict:
        if results.get('caption') and not self.overwrite:
            return results
        classes: Optional[tuple] = results.get('classes')
        labels = [int(x) for x in results['gt_labels'] if x >= 0]
        names = [classes[x] if classes else f'object {x}' for x in labels]
        results['caption'] = self.template.format(objects=describe_categories(names))
        return results
