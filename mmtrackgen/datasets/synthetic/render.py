"""Drawing layouts into frames, measuring visibility, and segmenting objects from the background.

Frames are rasterised on a grid ``SUPERSAMPLE`` times finer than the pixels and averaged down,
so edges are anti-aliased and an object moving by a fraction of a pixel changes the frame
smoothly. The same fine grid, holding the index of the object drawn at each sample, gives each
object's visible area (after occlusion by nearer objects and truncation by the image border)
and its full area, whose ratio is the annotation's ``visibility``.
"""
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .shapes import SHAPES
from .world import Background, VideoLayout

SUPERSAMPLE = 4

# Objects are saturated (HSV saturation >= 0.75, value >= 0.65, so chroma = max - min of RGB
# >= ~0.49 * 255 = 124) and the background is grey (saturation <= 0.06, value <= 0.95, so chroma
# <= ~15 before JPEG noise). The threshold sits near half the weakest object chroma: a pixel
# is foreground when about half of it or more is covered by an object, which keeps the mask's
# area equal to the drawn area at anti-aliased edges, and it is ~45 levels above the background.
FOREGROUND_CHROMA = 60


def segment_foreground(frame: np.ndarray) -> np.ndarray:
    """Boolean (H, W) mask of the object pixels of a synthetic-world frame.

    Args:
        frame (np.ndarray): (H, W, 3) uint8 RGB.

    A pixel is foreground when its chroma ``max(R, G, B) - min(R, G, B)`` is at least
    :data:`FOREGROUND_CHROMA` (60 of 255): see the comment there for why this separates the
    saturated objects from the grey background with a wide margin on both sides. Used to check
    that generated objects sit inside their boxes.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError('segment_foreground expects an (H, W, 3) uint8 RGB array, got '
                         f'shape {frame.shape} dtype {frame.dtype}')
    chroma = frame.max(axis=-1).astype(np.int16) - frame.min(axis=-1)
    return chroma >= FOREGROUND_CHROMA


def _smooth_noise(rng: np.random.Generator, cells: int, width: int, height: int) -> np.ndarray:
    """Value noise in [-1, 1]: random values on a coarse grid, smoothly interpolated."""
    grid = rng.uniform(-1, 1, size=(cells + 1, cells + 1))
    gx = (np.arange(width) + 0.5) / width * cells
    gy = (np.arange(height) + 0.5) / height * cells
    ix, iy = np.minimum(gx.astype(int), cells - 1), np.minimum(gy.astype(int), cells - 1)
    fx, fy = gx - ix, gy - iy
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)  # smoothstep: no visible grid
    top = grid[iy][:, ix] * (1 - fx) + grid[iy][:, ix + 1] * fx
    bottom = grid[iy + 1][:, ix] * (1 - fx) + grid[iy + 1][:, ix + 1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def render_background(bg: Background, width: int, height: int) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1] for the background parameters."""
    x = ((np.arange(width) + 0.5) / width)[None, :]
    y = ((np.arange(height) + 0.5) / height)[:, None]
    value = bg.level + bg.gradient_amp * ((x - 0.5) * math.cos(bg.gradient_angle) +
                                          (y - 0.5) * math.sin(bg.gradient_angle))
    bx, by, sigma, amp = bg.blob
    value = value + amp * np.exp(-((x - bx)**2 + (y - by)**2) / (2 * sigma**2))
    rng = np.random.default_rng(bg.texture_seed)
    value = value + bg.texture_amp * _smooth_noise(rng, bg.texture_cells, width, height)
    value = value + bg.grain_amp * rng.standard_normal((height, width))
    # Grey texture times a weak tint: saturation stays that of the tint everywhere.
    value = np.clip(value, 0.12, 0.95)
    return (value[..., None] * np.asarray(bg.tint)).astype(np.float32)


@dataclass
class RenderedVideo:
    """Result of :func:`render_video` for a video of T frames and N tracks.

    Attributes:
        frames: (T, H, W, 3) uint8 RGB, or None when only annotations were asked for.
        labels: (T, H, W) int16, the track covering most of each pixel where objects cover at
            least half of it, else -1.
        coverage: (T, H, W) float32, fraction of each pixel covered by objects.
        visible_area: (T, N) float, pixels of each track visible in the image.
        full_area: (T, N) float, pixels of each whole track (also those hidden or outside).
    """
    frames: Optional[np.ndarray]
    labels: np.ndarray
    coverage: np.ndarray
    visible_area: np.ndarray
    full_area: np.ndarray

    @property
    def visibility(self) -> np.ndarray:
        """(T, N) visible fraction of each track's pixels."""
        return self.visible_area / np.maximum(self.full_area, 1e-9)


def render_video(layout: VideoLayout,
                 draw: bool = True,
                 supersample: int = SUPERSAMPLE) -> RenderedVideo:
    """Rasterise every frame of ``layout``; with ``draw=False`` only visibility is computed."""
    s = supersample
    w, h, t_len, n = layout.width, layout.height, layout.num_frames, len(layout.tracks)
    background = render_background(layout.background, w, h) if draw else None
    frames = np.zeros((t_len, h, w, 3), np.uint8) if draw else None
    labels = np.full((t_len, h, w), -1, np.int16)
    coverage = np.zeros((t_len, h, w), np.float32)
    visible_area = np.zeros((t_len, n))
    full_area = np.zeros((t_len, n))
    for t in range(t_len):
        ids = np.full((h * s, w * s), -1, np.int16)  # index of the track drawn at each sample
        colors = np.zeros((h * s, w * s, 3), np.float32) if draw else None
        # Far to near, so nearer tracks overwrite (occlude) farther ones; ties by index.
        order = sorted(range(n), key=lambda k: (-layout.tracks[k].depth[t], k))
        for k in order:
            track = layout.tracks[k]
            x1, y1, x2, y2 = track.box(t)
            half = float(track.half[t])
            # Samples of the whole box on the fine grid, inside the image or not.
            i0, i1 = math.floor(x1 * s), math.ceil(x2 * s)
            j0, j1 = math.floor(y1 * s), math.ceil(y2 * s)
            u = ((np.arange(i0, i1) + 0.5) / s - float(track.cx[t])) / half
            v = ((np.arange(j0, j1) + 0.5) / s - float(track.cy[t])) / half
            mask = SHAPES[track.category](u[None, :], v[:, None])  # (rows, cols)
            full_area[t, k] = mask.sum() / s**2
            a0, a1 = max(i0, 0), min(i1, w * s)
            b0, b1 = max(j0, 0), min(j1, h * s)
            if a0 >= a1 or b0 >= b1:
                continue  # entirely outside the image
            rows, cols = slice(b0 - j0, b1 - j0), slice(a0 - i0, a1 - i0)
            crop = mask[rows, cols]
            ids[b0:b1, a0:a1][crop] = k
            if draw:
                surface = track.appearance.colors_at(u[None, cols], v[rows, None])
                colors[b0:b1, a0:a1][crop] = surface[crop]
        drawn = ids >= 0
        visible_area[t] = np.bincount(ids[drawn], minlength=n)[:n] / s**2
        coverage[t] = drawn.reshape(h, s, w, s).mean(axis=(1, 3))
        if n:
            counts = np.stack([(ids == k).reshape(h, s, w, s).sum(axis=(1, 3)) for k in range(n)])
            labels[t] = np.where(coverage[t] >= 0.5, counts.argmax(axis=0), -1)
        if draw:
            # Anti-aliased: each pixel averages its samples, background where none is drawn.
            objects = colors.reshape(h, s, w, s, 3).mean(axis=(1, 3))
            image = background * (1 - coverage[t][..., None]) + objects
            frames[t] = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return RenderedVideo(frames, labels, coverage, visible_area, full_area)
