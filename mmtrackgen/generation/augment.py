"""Tracklet augmentation: new, valid layouts from annotated ones, to generate more varied videos.

Each policy is registered in ``TRACKLET_AUGMENTS`` and called as
``policy(layout, rng, pool=None) -> TrackletLayout``. It returns a new layout (the input is
never changed) that passes :func:`check_layout`: boxes inside the image with positive area
where visible, zeros elsewhere, unique instance ids. Every policy takes ``prob``, the chance it
is applied at all (otherwise it returns an unchanged copy). A policy may leave an instance
visible in no frame; :func:`augment_layouts` drops such instances.

A config names a policy, or a list of them (a :class:`Compose`), e.g.::

    tracklet_augment = [
        dict(type='TemporalResample', speed=(0.5, 2.0), prob=0.5),
        dict(type='HorizontalFlip', prob=0.5),
        dict(type='TranslateScaleJitter', translate=0.1, scale=0.2),
        dict(type='InstanceInsert', prob=0.3),
    ]
"""
import hashlib
from collections.abc import Sequence
from typing import Optional, Union

import numpy as np

from mmtrackgen.datasets.tracklet_file import check_layout
from mmtrackgen.registry import TRACKLET_AUGMENTS
from mmtrackgen.structures import TrackletLayout

Pool = Optional[Sequence[TrackletLayout]]


def _check_prob(name: str, value) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(f'{name} must be a number in [0, 1], got {value!r}')
    return float(value)


def _check_range(name: str, value, low: float, high: float = np.inf) -> tuple[float, float]:
    """``value`` as a ``(lo, hi)`` pair with ``low <= lo <= hi <= high``."""
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or not low <= value[0] <= value[1] <= high):
        raise ValueError(f'{name} must be a pair (lo, hi) with {low} <= lo <= hi <= {high}, got '
                         f'{value!r}')
    return float(value[0]), float(value[1])


def finish_boxes(layout: TrackletLayout,
                 boxes: np.ndarray,
                 visible: np.ndarray,
                 visibility: np.ndarray,
                 min_size: float = 0.0,
                 **changes) -> TrackletLayout:
    """A new layout from ``layout`` with changed boxes, made valid: boxes clipped to the image,
    boxes narrower or shorter than ``min_size`` pixels (or of no area) made invisible, and
    boxes and visibility zeroed where not visible.

    Args:
        boxes: (F, N, 4) xyxy pixels, any float dtype (computations are done in float64).
        visible: (F, N) bool.
        visibility: (F, N) float, clipped to [0, 1].
        **changes: other fields of the new layout (e.g. ``instance_ids``).
    """
    height, width = layout.image_size
    limit = np.array([width, height, width, height], np.float64)  # (4,)
    boxes = np.clip(np.asarray(boxes, np.float64), 0, limit).astype(np.float32)  # (F, N, 4)
    size = np.minimum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1])  # (F, N)
    with np.errstate(invalid='ignore'):
        visible = np.asarray(visible, bool) & (size > 0) & (size >= min_size)
    boxes[~visible] = 0
    visibility = np.where(visible, np.clip(visibility, 0, 1), 0).astype(np.float32)  # (F, N)
    return layout.copy(boxes=boxes, visible=visible, visibility=visibility, **changes)


def drop_invisible_instances(layout: TrackletLayout) -> TrackletLayout:
    """A copy without the instances that are visible in no frame."""
    keep = np.flatnonzero(layout.visible.any(axis=0))  # (N',)
    return layout.copy(
        boxes=layout.boxes[:, keep].copy(),
        visible=layout.visible[:, keep].copy(),
        instance_ids=layout.instance_ids[keep].copy(),
        categories=[layout.categories[n] for n in keep],
        visibility=layout.visibility[:, keep].copy())


class TrackletAugment:
    """Base of the policies: applies :meth:`apply` with probability ``prob`` and checks the
    result (a bug in a policy raises here, not later in generation)."""

    def __init__(self, prob: float = 1.0):
        self.prob = _check_prob('prob', prob)

    def __call__(self,
                 layout: TrackletLayout,
                 rng: np.random.Generator,
                 pool: Pool = None) -> TrackletLayout:
        if self.prob < 1 and rng.random() >= self.prob:
            return layout.copy()
        out = self.apply(layout, rng, pool)
        check_layout(out)
        return out

    def apply(self, layout: TrackletLayout, rng: np.random.Generator, pool: Pool) -> TrackletLayout:
        raise NotImplementedError

    def __repr__(self):
        args = ', '.join(f'{k}={v!r}' for k, v in vars(self).items())
        return f'{type(self).__name__}({args})'


@TRACKLET_AUGMENTS.register_module()
class TemporalResample(TrackletAugment):
    """Play the tracklets faster or slower, keeping F frames.

    A speed ``s`` is drawn log-uniformly from ``speed``; output frame t shows source time
    ``t0 + s * t`` (``t0`` drawn so a slowed-down window lies inside the clip; 0 when sped up).
    Boxes and visibility are interpolated linearly between the two neighbouring source frames;
    a box is visible where both neighbours are (or the time falls on a visible frame). Source
    times past the last frame (speed > 1) have no boxes: the end of a sped-up clip is empty.
    ``frame_ids`` are kept.

    Args:
        speed (tuple[float, float]): range of the speed factor, > 0 (1: unchanged).
        prob (float): chance the policy is applied.
    """

    def __init__(self, speed: tuple[float, float] = (0.5, 2.0), prob: float = 1.0):
        super().__init__(prob)
        self.speed = _check_range('speed', speed, 1e-3, 1e3)

    def apply(self, layout, rng, pool):
        num_frames = layout.num_frames
        lo, hi = np.log(self.speed)
        speed = float(np.exp(rng.uniform(lo, hi))) if hi > lo else float(np.exp(lo))
        if num_frames == 1:
            return layout.copy()
        last = num_frames - 1
        span = speed * last
        start = rng.uniform(0, last - span) if span < last else 0.0
        times = start + speed * np.arange(num_frames)  # (F,) source times
        snapped = np.round(times)
        times = np.where(np.abs(times - snapped) < 1e-9, snapped, times)  # float noise
        inside = times <= last  # (F,)
        i = np.clip(np.floor(times), 0, last).astype(np.int64)  # (F,) frame before
        j = np.minimum(i + 1, last)  # (F,) frame after
        a = np.where(inside, times - i, 0.0)  # (F,) weight of frame j
        on_frame = a == 0
        boxes = layout.boxes.astype(np.float64)
        mix = (1 - a)[:, None, None] * boxes[i] + a[:, None, None] * boxes[j]  # (F, N, 4)
        visible = layout.visible[i] & (layout.visible[j] | on_frame[:, None])  # (F, N)
        visible &= inside[:, None]
        vis = (1 - a)[:, None] * layout.visibility[i] + a[:, None] * layout.visibility[j]
        return finish_boxes(layout, mix, visible, vis)


@TRACKLET_AUGMENTS.register_module()
class Reverse(TrackletAugment):
    """Play the tracklets backwards (``frame_ids`` are kept: frame t is still the clip's t-th)."""

    def apply(self, layout, rng, pool):
        return layout.copy(
            boxes=layout.boxes[::-1].copy(),
            visible=layout.visible[::-1].copy(),
            visibility=layout.visibility[::-1].copy())


@TRACKLET_AUGMENTS.register_module()
class HorizontalFlip(TrackletAugment):
    """Mirror the tracklets left-right: ``x -> W - x`` (flipping twice gives the input back, up
    to float32 rounding)."""

    def apply(self, layout, rng, pool):
        width = float(layout.image_size[1])
        boxes = layout.boxes.astype(np.float64)  # (F, N, 4)
        flipped = boxes.copy()
        flipped[..., 0] = width - boxes[..., 2]
        flipped[..., 2] = width - boxes[..., 0]
        return finish_boxes(layout, flipped, layout.visible, layout.visibility)


@TRACKLET_AUGMENTS.register_module()
class TranslateScaleJitter(TrackletAugment):
    """Move and resize each instance along a smooth path: per instance an offset and a scale
    drawn at the first and at the last frame, linearly interpolated in between (so motion stays
    smooth; no per-frame noise). Boxes scale about their centre, are clipped to the image, and
    lose visibility in proportion to the part cut off; boxes smaller than ``min_size`` pixels
    (or pushed out of the image) become invisible.

    Args:
        translate (float): largest offset, as a fraction of the image width (x) and height (y).
        scale (float): scale factors are drawn log-uniformly from ``[1 / (1 + scale),
            1 + scale]``.
        min_size (float): smallest width and height (pixels) a visible box keeps.
        prob (float): chance the policy is applied.
    """

    def __init__(self,
                 translate: float = 0.1,
                 scale: float = 0.2,
                 min_size: float = 1.0,
                 prob: float = 1.0):
        super().__init__(prob)
        for name, value in (('translate', translate), ('scale', scale), ('min_size', min_size)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f'{name} must be a number >= 0, got {value!r}')
        self.translate, self.scale, self.min_size = float(translate), float(scale), float(min_size)

    def apply(self, layout, rng, pool):
        num_frames, num_instances = layout.visible.shape
        height, width = layout.image_size
        log_scale = np.log1p(self.scale)
        # (2, N, 2): [first/last frame, instance, x/y]
        offset = rng.uniform(-self.translate, self.translate, (2, num_instances, 2))
        offset *= np.array([width, height], np.float64)
        scale = np.exp(rng.uniform(-log_scale, log_scale, (2, num_instances)))  # (2, N)
        u = np.linspace(0, 1, num_frames) if num_frames > 1 else np.zeros(1)  # (F,)
        path = (1 - u)[:, None, None] * offset[0] + u[:, None, None] * offset[1]  # (F, N, 2)
        factor = (1 - u)[:, None] * scale[0] + u[:, None] * scale[1]  # (F, N)

        boxes = layout.boxes.astype(np.float64)  # (F, N, 4)
        centre = (boxes[..., :2] + boxes[..., 2:]) / 2 + path  # (F, N, 2)
        half = (boxes[..., 2:] - boxes[..., :2]) / 2 * factor[..., None]  # (F, N, 2)
        moved = np.concatenate([centre - half, centre + half], axis=-1)  # (F, N, 4)
        limit = np.array([width, height, width, height], np.float64)
        clipped = np.clip(moved, 0, limit)  # (F, N, 4)
        area = np.prod(moved[..., 2:] - moved[..., :2], axis=-1)  # (F, N)
        kept = np.prod(np.maximum(clipped[..., 2:] - clipped[..., :2], 0), axis=-1)  # (F, N)
        inside = np.divide(kept, area, out=np.zeros_like(area), where=area > 0)  # (F, N)
        return finish_boxes(layout, clipped, layout.visible, layout.visibility * inside,
                            self.min_size)


@TRACKLET_AUGMENTS.register_module()
class CategorySwap(TrackletAugment):
    """Change instances' categories, by an explicit ``mapping`` or at random among ``classes``.

    Args:
        mapping (dict[str, str], optional): ``{old: new}``; instances of other categories are
            kept.
        classes (Sequence[str], optional): with no mapping, each instance (with probability
            ``swap_prob``) gets a category drawn uniformly from ``classes`` other than its own.
        swap_prob (float): chance each instance is changed (both modes).
        prob (float): chance the policy is applied.
    """

    def __init__(self,
                 mapping: Optional[dict] = None,
                 classes: Optional[Sequence[str]] = None,
                 swap_prob: float = 1.0,
                 prob: float = 1.0):
        super().__init__(prob)
        if (mapping is None) == (classes is None):
            raise ValueError('CategorySwap needs exactly one of `mapping` and `classes`')
        if mapping is not None and (not isinstance(mapping, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in mapping.items())):
            raise ValueError(f'mapping must be a dict of category names, got {mapping!r}')
        if classes is not None and (isinstance(classes, str) or not classes
                                    or not all(isinstance(c, str) and c for c in classes)):
            raise ValueError(f'classes must be a non-empty list of names, got {classes!r}')
        self.mapping = dict(mapping) if mapping is not None else None
        self.classes = list(classes) if classes is not None else None
        self.swap_prob = _check_prob('swap_prob', swap_prob)

    def apply(self, layout, rng, pool):
        categories = list(layout.categories)
        swap = rng.random(len(categories)) < self.swap_prob  # (N,)
        for n, category in enumerate(categories):
            if not swap[n]:
                continue
            if self.mapping is not None:
                categories[n] = self.mapping.get(category, category)
            else:
                others = [c for c in self.classes if c != category]
                if others:
                    categories[n] = others[int(rng.integers(len(others)))]
        return layout.copy(categories=categories)


@TRACKLET_AUGMENTS.register_module()
class InstanceDrop(TrackletAugment):
    """Remove instances, each with probability ``drop_prob``, keeping at least
    ``min_instances`` (or all, when there are fewer).

    Args:
        drop_prob (float): chance each instance is removed.
        min_instances (int): instances always kept (chosen at random among the dropped ones).
        prob (float): chance the policy is applied.
    """

    def __init__(self, drop_prob: float = 0.3, min_instances: int = 1, prob: float = 1.0):
        super().__init__(prob)
        self.drop_prob = _check_prob('drop_prob', drop_prob)
        if not isinstance(min_instances, int) or isinstance(min_instances, bool) or \
                min_instances < 0:
            raise ValueError(f'min_instances must be an integer >= 0, got {min_instances!r}')
        self.min_instances = min_instances

    def apply(self, layout, rng, pool):
        num_instances = layout.num_instances
        keep = rng.random(num_instances) >= self.drop_prob  # (N,)
        missing = min(self.min_instances, num_instances) - int(keep.sum())
        if missing > 0:
            keep[rng.choice(np.flatnonzero(~keep), missing, replace=False)] = True
        idx = np.flatnonzero(keep)  # (N',)
        return layout.copy(
            boxes=layout.boxes[:, idx].copy(),
            visible=layout.visible[:, idx].copy(),
            instance_ids=layout.instance_ids[idx].copy(),
            categories=[layout.categories[n] for n in idx],
            visibility=layout.visibility[:, idx].copy())


@TRACKLET_AUGMENTS.register_module()
class InstanceInsert(TrackletAugment):
    """Add instances copied from other layouts of ``pool`` (those with another name).

    An instance visible somewhere in those layouts is drawn uniformly; its boxes are rescaled from
    its layout's image size to this one's (x by the width ratio, y by the height ratio), and a
    window of F frames is taken at a random offset (a shorter tracklet is placed at a random
    offset, invisible elsewhere). Windows where it is never visible are redrawn (a few tries,
    then that insertion is skipped). It gets the id ``max(ids) + 1`` and keeps its category.
    With no such instance in the pool the layout is returned unchanged.

    Args:
        num_instances (tuple[int, int]): range of the number of instances to insert.
        max_instances (int, optional): never grow a layout beyond this many instances (e.g. the
            model's slots).
        prob (float): chance the policy is applied.
    """
    tries = 8

    def __init__(self,
                 num_instances: tuple[int, int] = (1, 1),
                 max_instances: Optional[int] = None,
                 prob: float = 1.0):
        super().__init__(prob)
        lo, hi = _check_range('num_instances', num_instances, 0)
        if lo != int(lo) or hi != int(hi):
            raise ValueError(f'num_instances must be two integers, got {num_instances!r}')
        self.num_instances = (int(lo), int(hi))
        if max_instances is not None and (not isinstance(max_instances, int)
                                          or isinstance(max_instances, bool) or max_instances < 0):
            raise ValueError(f'max_instances must be an integer >= 0, got {max_instances!r}')
        self.max_instances = max_instances

    def apply(self, layout, rng, pool):
        if pool is None:
            raise ValueError('InstanceInsert needs a pool of layouts to copy instances from '
                             '(augment_layouts passes its input layouts)')
        candidates = [(src, n) for src in pool if src.name != layout.name
                      for n in np.flatnonzero(src.visible.any(axis=0))]
        count = int(rng.integers(self.num_instances[0], self.num_instances[1] + 1))
        if self.max_instances is not None:
            count = min(count, self.max_instances - layout.num_instances)
        out = layout.copy()
        if not candidates or count <= 0:
            return out
        for _ in range(count):
            for _ in range(self.tries):
                src, n = candidates[int(rng.integers(len(candidates)))]
                track = self._track(src, n, out, rng)
                if track is not None:
                    out = self._append(out, src.categories[n], *track)
                    break
        return out

    @staticmethod
    def _track(src, n, layout, rng):
        """``(boxes (F, 4), visible (F,), visibility (F,))`` of instance n of ``src`` rescaled
        and retimed to ``layout``, or None when it is visible in no frame of the window."""
        num_frames = layout.num_frames
        src_frames = src.num_frames
        sy = layout.image_size[0] / src.image_size[0]
        sx = layout.image_size[1] / src.image_size[1]
        scale = np.array([sx, sy, sx, sy], np.float64)  # (4,)
        boxes = np.zeros((num_frames, 4), np.float64)
        visible = np.zeros(num_frames, bool)
        visibility = np.zeros(num_frames, np.float64)
        if src_frames >= num_frames:
            off = int(rng.integers(src_frames - num_frames + 1))
            dst, frames = slice(0, num_frames), slice(off, off + num_frames)
        else:
            off = int(rng.integers(num_frames - src_frames + 1))
            dst, frames = slice(off, off + src_frames), slice(0, src_frames)
        boxes[dst] = src.boxes[frames, n] * scale
        visible[dst] = src.visible[frames, n]
        visibility[dst] = src.visibility[frames, n]
        return (boxes, visible, visibility) if visible.any() else None

    @staticmethod
    def _append(layout, category, boxes, visible, visibility):
        new_id = int(layout.instance_ids.max()) + 1 if layout.num_instances else 1
        return finish_boxes(
            layout,
            np.concatenate([layout.boxes, boxes[:, None].astype(np.float32)], axis=1),
            np.concatenate([layout.visible, visible[:, None]], axis=1),
            np.concatenate([layout.visibility, visibility[:, None].astype(np.float32)], axis=1),
            instance_ids=np.append(layout.instance_ids, np.int64(new_id)),
            categories=layout.categories + [category])


AugmentCfg = Union[dict, list, TrackletAugment]


def build_augment(cfg: AugmentCfg) -> TrackletAugment:
    """A policy from a config dict (``type=`` a name in ``TRACKLET_AUGMENTS``), a list of them
    (a :class:`Compose`), or a policy (returned as is)."""
    if isinstance(cfg, TrackletAugment):
        return cfg
    if isinstance(cfg, (list, tuple)):
        return Compose(list(cfg))
    if isinstance(cfg, dict):
        if 'type' not in cfg:
            raise ValueError(f'a tracklet augment config needs `type`, got {cfg!r}; known: '
                             f'{sorted(TRACKLET_AUGMENTS.module_dict)}')
        return TRACKLET_AUGMENTS.build(dict(cfg))
    raise ValueError(f'expected a policy, a config dict or a list of them, got {cfg!r}')


@TRACKLET_AUGMENTS.register_module()
class Compose(TrackletAugment):
    """Apply policies in order. Each is a config dict (``dict(type=..., prob=...)``: ``prob``
    is the policy's own chance of being applied), a list (a nested Compose) or a policy."""

    def __init__(self, policies: Sequence[AugmentCfg], prob: float = 1.0):
        super().__init__(prob)
        if isinstance(policies, (dict, str)) or not isinstance(policies, Sequence):
            raise ValueError(f'policies must be a list, got {policies!r}')
        self.policies = [build_augment(p) for p in policies]

    def apply(self, layout, rng, pool):
        out = layout.copy()
        for policy in self.policies:
            out = policy(out, rng, pool)
        return out


def augment_rng(seed: int, name: str, index: int) -> np.random.Generator:
    """The generator of augmented layout ``index`` of layout ``name``: a function of these only
    (sha256 of the name: stable across processes, unlike ``hash``)."""
    digest = int.from_bytes(hashlib.sha256(name.encode('utf-8')).digest()[:16], 'little')
    return np.random.default_rng([seed, index, digest])


def augment_layouts(layouts: Sequence[TrackletLayout],
                    policy_cfg: AugmentCfg,
                    num_per_layout: int,
                    seed: int = 0,
                    pool: Pool = None) -> list[TrackletLayout]:
    """``num_per_layout`` augmented layouts per input layout, named ``f'{name}_aug{k:03d}'``.

    Output k of layout ``name`` is drawn from :func:`augment_rng` ``(seed, name, k)``, so it
    depends only on these, the policy and ``pool`` (its set of layouts, not their order), not on
    the other layouts augmented with it. Instances visible in no frame are dropped from the outputs.

    Args:
        layouts: valid layouts with unique names (not changed).
        policy_cfg: a policy, its config dict, or a list of them.
        num_per_layout (int): outputs per input layout, >= 0.
        seed (int): >= 0.
        pool: layouts :class:`InstanceInsert` copies from; default ``layouts``.

    Returns:
        list[TrackletLayout]: layout by layout, k by k; each passes :func:`check_layout`.
    """
    if not isinstance(num_per_layout, int) or isinstance(num_per_layout, bool) or \
            num_per_layout < 0:
        raise ValueError(f'num_per_layout must be an integer >= 0, got {num_per_layout!r}')
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f'seed must be an integer >= 0, got {seed!r}')
    names = set()
    for layout in layouts:
        check_layout(layout)
        if layout.name in names:
            raise ValueError(f'layout name {layout.name!r} is used twice; names must be unique')
        names.add(layout.name)
    policy = build_augment(policy_cfg)
    # By name, so which instance InstanceInsert draws does not depend on the input order.
    pool = sorted(layouts if pool is None else pool, key=lambda x: x.name)
    outputs, seen = [], set()
    for layout in layouts:
        for k in range(num_per_layout):
            out = policy(layout, augment_rng(int(seed), layout.name, k), pool)
            out = drop_invisible_instances(out)
            out.name = f'{layout.name}_aug{k:03d}'
            check_layout(out)
            if out.name in seen or out.name in names:
                raise ValueError(f'augmented layout name {out.name!r} repeats or is also an '
                                 'input layout\'s name; rename the inputs')
            seen.add(out.name)
            outputs.append(out)
    return outputs
