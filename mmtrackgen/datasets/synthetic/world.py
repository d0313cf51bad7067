"""Layouts of the synthetic world: which objects a video holds, and where they are in each frame.

A video is a static background plus 1-N objects (:class:`Track`). An object has a category
(shape), a fixed :class:`~.shapes.Appearance`, and per-frame centre, half size and depth. Sizes
follow depth (``half = k / depth``): an approaching object grows and comes to the front, a
receding one shrinks and falls behind. Motion units are pixels per frame, scaled with the short
side of the image, so a longer video shows more of the same motion, not slower motion.

Motion models (:data:`MOTIONS`):

* ``linear``: constant velocity; 60% of these (and of ``wave``) enter or leave through a
  border on purpose, the others pass a random point at a random frame.
* ``arc``: constant speed along a circle (curved paths).
* ``wave``: constant drift plus a sinusoidal sway across it.
* ``bounce``: straight lines reflected off the image borders (the reflection keeps the whole
  object inside).
* ``throw``: a parabola that carries the object out across one border and brings it back, so
  its track has a gap and re-appears.

Half of the later ``linear``/``wave`` objects are aimed at where an earlier object is at some
frame, so paths cross and the nearer object occludes the farther one (sometimes fully, which
is the other way a track disappears and re-appears).
"""
import colorsys
import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .shapes import HUES, Appearance, sample_appearance

MOTIONS = ('linear', 'arc', 'wave', 'bounce', 'throw')
MOTION_PROBS = (0.3, 0.2, 0.15, 0.15, 0.2)

# Apparent half sizes, as fractions of the image's short side.
HALF_SIZE_RANGE = (0.08, 0.16)  # at the first frame
HALF_SIZE_LIMITS = (0.05, 0.3)  # never smaller / larger, however it approaches or recedes
# Fastest steady motion, short sides per frame (about 3 px per frame at 64 px).
MAX_SPEED = 0.045


@dataclass
class Track:
    """One object over the frames of a video (arrays of length ``num_frames``, pixels)."""
    category: str
    appearance: Appearance
    motion: str
    cx: np.ndarray
    cy: np.ndarray
    half: np.ndarray
    depth: np.ndarray  # larger is farther; frames are drawn far to near

    def box(self, t: int) -> Tuple[float, float, float, float]:
        """The whole object's box ``(x1, y1, x2, y2)`` at frame ``t``, not clipped."""
        cx, cy, h = float(self.cx[t]), float(self.cy[t]), float(self.half[t])
        return cx - h, cy - h, cx + h, cy + h


@dataclass
class Background:
    """A static, low-saturation background: tinted grey gradient plus a faint texture.

    ``render.render_background`` turns these parameters into pixels.
    """
    level: float  # mean grey value in [0, 1]
    tint: Tuple[float, float, float]  # RGB multiplier, HSV saturation <= 0.06
    gradient_angle: float
    gradient_amp: float
    blob: Tuple[float, float, float, float]  # centre x, centre y, sigma (image fractions), amp
    texture_cells: int
    texture_amp: float
    grain_amp: float
    texture_seed: int

    def describe(self) -> str:
        if self.level < 0.5:
            return 'dark grey'
        if self.level > 0.68:
            return 'light grey'
        return 'grey'


@dataclass
class VideoLayout:
    """Everything needed to render (or only annotate) one video."""
    name: str
    width: int
    height: int
    num_frames: int
    background: Background
    tracks: List[Track] = field(default_factory=list)


def sample_background(rng: np.random.Generator) -> Background:
    tint_hue = rng.uniform(0, 1)
    tint_sat = rng.uniform(0, 0.06)
    tint = tuple(round(c, 6) for c in colorsys.hsv_to_rgb(tint_hue, tint_sat, 1.0))
    return Background(
        level=float(rng.uniform(0.4, 0.8)),
        tint=tint,
        gradient_angle=float(rng.uniform(0, 2 * math.pi)),
        gradient_amp=float(rng.uniform(0.08, 0.2)),
        blob=(float(rng.uniform(0, 1)), float(rng.uniform(0, 1)), float(rng.uniform(0.2, 0.6)),
              float(rng.uniform(-0.1, 0.1))),
        texture_cells=int(rng.integers(4, 11)),
        texture_amp=float(rng.uniform(0.015, 0.04)),
        grain_amp=float(rng.uniform(0.004, 0.012)),
        texture_seed=int(rng.integers(2**31)))


def _sample_scale(rng: np.random.Generator, num_frames: int,
                  short_side: float) -> Tuple[np.ndarray, np.ndarray]:
    """Half size and depth over time: constant, approaching (growing) or receding."""
    half0 = rng.uniform(*HALF_SIZE_RANGE) * short_side
    depth0 = rng.uniform(1.0, 3.0)
    mode = rng.choice(['constant', 'approach', 'recede'], p=[0.4, 0.3, 0.3])
    rate = 0.0
    if mode != 'constant' and num_frames > 1:
        limit = HALF_SIZE_LIMITS[1 if mode == 'approach' else 0] * short_side
        # Slow enough that the size stays within the limits until the last frame.
        max_rate = abs(math.log(limit / half0)) / (num_frames - 1)
        rate = min(rng.uniform(0.01, 0.035), max_rate) * (1 if mode == 'approach' else -1)
    growth = np.exp(rate * np.arange(num_frames))
    return half0 * growth, depth0 / growth


def _fold(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Reflect an unbounded coordinate into [lo, hi] (a triangle wave): bouncing walls."""
    span = np.maximum(hi - lo, 1e-6)
    y = np.mod(x - lo, 2 * span)
    return lo + np.where(y > span, 2 * span - y, y)


def _sample_path(rng: np.random.Generator, motion: str, half: np.ndarray, width: int, height: int,
                 target: Optional[Tuple[float, float, float]]) -> Tuple[np.ndarray, np.ndarray]:
    """Centre (cx, cy) over time for one motion model.

    ``target`` is ``(x, y, t)``: pass through point (x, y) at frame t (used to make paths
    cross); otherwise a random interior point at a random frame is the anchor.
    """
    num_frames = len(half)
    short = min(width, height)
    t = np.arange(num_frames, dtype=np.float64)
    if target is not None:
        ax, ay, tm = target
    else:
        ax, ay = rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height
        tm = rng.uniform(0, num_frames - 1)
    angle = rng.uniform(0, 2 * math.pi)
    if motion in ('linear', 'wave') and target is None and rng.random() < 0.6:
        # Enter (or leave) through a border: just fully outside it at frame tm, moving in
        # (or out) at up to 60 degrees from its normal.
        leave = rng.random() < 0.5
        tm = rng.uniform(0.65, 1.0) if leave else rng.uniform(0.0, 0.35)
        tm *= num_frames - 1
        side = int(rng.integers(4))  # left, right, top, bottom
        out = half[int(round(tm))]
        along = rng.uniform(0.15, 0.85)
        ax, ay = [(-out, along * height), (width + out, along * height), (along * width, -out),
                  (along * width, height + out)][side]
        inward = (0.0, math.pi, 0.5 * math.pi, 1.5 * math.pi)[side]
        angle = inward + rng.uniform(-1, 1) * math.pi / 3 + (math.pi if leave else 0.0)
    direction = np.array([math.cos(angle), math.sin(angle)])

    if motion in ('linear', 'wave', 'bounce'):
        speed_range = (0.03, 0.06) if motion == 'bounce' else (0.01, MAX_SPEED)
        vx, vy = rng.uniform(*speed_range) * short * direction
        cx, cy = ax + vx * (t - tm), ay + vy * (t - tm)
        if motion == 'wave':
            amp = rng.uniform(0.04, 0.1) * short
            period = rng.uniform(10, 24)
            phase = rng.uniform(0, 2 * math.pi)
            # Sway across the direction of travel, zero at the anchor frame so crossings hold.
            sway = amp * (np.sin(2 * math.pi * (t - tm) / period + phase) - math.sin(phase))
            cx, cy = cx - direction[1] * sway, cy + direction[0] * sway
        if motion == 'bounce':
            cx = _fold(cx, half, width - half)
            cy = _fold(cy, half, height - half)
        return cx, cy

    if motion == 'arc':
        radius = rng.uniform(0.25, 0.6) * short
        omega = rng.uniform(0.015, MAX_SPEED) * short / radius * rng.choice([-1, 1])
        theta = angle + omega * (t - tm)
        centre_x, centre_y = ax - radius * math.cos(angle), ay - radius * math.sin(angle)
        return centre_x + radius * np.cos(theta), centre_y + radius * np.sin(theta)

    if motion == 'throw':
        # n(t): distance of the centre inside one border, a parabola with its minimum (the
        # object fully outside) at t_peak; u(t): slow drift along the border.
        side = int(rng.integers(4))
        t_peak = rng.uniform(0.3, 0.7) * (num_frames - 1)
        tp = int(round(t_peak))
        n_peak = -(half[tp] + rng.uniform(1.0, 0.06 * short))  # just outside: short gaps
        n_start = half[0] + rng.uniform(0, 0.3 * short)
        # Keep the launch speed (2 * distance / t_peak) at most twice the steady maximum.
        max_dist = MAX_SPEED * short * max(t_peak, 1)
        dist = min(n_start - n_peak, max_dist)
        accel = 2 * dist / max(t_peak, 1)**2
        n = n_peak + 0.5 * accel * (t - t_peak)**2
        along = width if side < 2 else height
        u = rng.uniform(0.2, 0.8) * along + rng.uniform(-0.02, 0.02) * short * t
        if side == 0:
            return n, u
        if side == 1:
            return width - n, u
        if side == 2:
            return u, n
        return u, height - n
    raise ValueError(f'unknown motion {motion!r}, expected one of {MOTIONS}')


def _frames_in_view(cx, cy, half, width, height) -> int:
    """Frames in which at least a 1x1 pixel piece of the object's box is inside the image."""
    w = np.minimum(cx + half, width) - np.maximum(cx - half, 0)
    h = np.minimum(cy + half, height) - np.maximum(cy - half, 0)
    return int(np.sum((w >= 1) & (h >= 1)))


def sample_video(rng: np.random.Generator, name: str, width: int, height: int, num_frames: int,
                 num_instances: Tuple[int, int], categories: Sequence[str]) -> VideoLayout:
    """Draw one video's background and objects from ``rng``.

    Every object is in view (at least partly) in a quarter of the frames or more; whether it is
    also visible there depends on occlusion and is decided when it is rendered.
    """
    short = min(width, height)
    layout = VideoLayout(name, width, height, num_frames, sample_background(rng))
    count = int(rng.integers(num_instances[0], num_instances[1] + 1))
    # Distinct base colours within a video (while there are enough) keep captions unambiguous.
    color_names = rng.choice(list(HUES), size=count, replace=count > len(HUES))
    min_in_view = max(1, num_frames // 4)
    for k in range(count):
        category = str(rng.choice(list(categories)))
        appearance = sample_appearance(rng, str(color_names[k]))
        half, depth = _sample_scale(rng, num_frames, short)
        for _ in range(20):  # redraw paths that stay out of view; the last one is kept anyway
            motion = str(rng.choice(MOTIONS, p=MOTION_PROBS))
            target = None
            if layout.tracks and motion in ('linear', 'wave') and rng.random() < 0.5:
                other = layout.tracks[int(rng.integers(len(layout.tracks)))]
                tm = int(rng.integers(num_frames // 4, num_frames - num_frames // 4))
                target = (float(other.cx[tm]), float(other.cy[tm]), float(tm))
            cx, cy = _sample_path(rng, motion, half, width, height, target)
            if _frames_in_view(cx, cy, half, width, height) >= min_in_view:
                break
        layout.tracks.append(Track(category, appearance, motion, cx, cy, half, depth))
    return layout
