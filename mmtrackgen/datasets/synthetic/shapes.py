"""Shapes, colours and surface patterns of the synthetic world's objects.

Everything here is defined in an object's own normalised coordinates ``(u, v)`` in ``[-1, 1]``
(``u`` to the right, ``v`` downwards, the object's box is the unit square scaled by its half
size). Drawing an object therefore only scales its shape and pattern with its size: its
appearance is the same in every frame, which is what identity-consistency metrics rely on.
"""
import colorsys
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import numpy as np


def _square(u, v):
    return (np.abs(u) <= 1) & (np.abs(v) <= 1)


def _circle(u, v):
    return u * u + v * v <= 1


def _triangle(u, v):
    # Apex at the top (v = -1), base along the bottom edge: the box is the shape's tight box.
    return (v <= 1) & (np.abs(u) <= (v + 1) / 2)


def _cross(u, v):
    arm = 1 / 3
    return _square(u, v) & ((np.abs(u) <= arm) | (np.abs(v) <= arm))


def _diamond(u, v):
    return np.abs(u) + np.abs(v) <= 1


def _ring(u, v):
    r2 = u * u + v * v
    return (r2 <= 1) & (r2 >= 0.55**2)


# Every shape touches all four sides of its box, so an object's box is [c - half, c + half].
SHAPES: Dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    'square': _square,
    'circle': _circle,
    'triangle': _triangle,
    'cross': _cross,
    'diamond': _diamond,
    'ring': _ring,
}

# Named hues (degrees) the base colour is drawn from, so captions can name it truthfully.
HUES: Dict[str, float] = {
    'red': 0,
    'orange': 28,
    'yellow': 55,
    'green': 120,
    'cyan': 185,
    'blue': 225,
    'purple': 275,
    'magenta': 310,
}

PATTERNS = ('solid', 'stripes', 'dots', 'checker')
# Adjective used in captions ('' for solid: "a red circle").
PATTERN_WORDS = {'solid': '', 'stripes': 'striped', 'dots': 'dotted', 'checker': 'checkered'}


@dataclass(frozen=True)
class Appearance:
    """How one object looks; fixed for its whole life.

    Args:
        color (tuple): base RGB in [0, 1], saturated.
        color_name (str): key of :data:`HUES` the base hue was drawn around.
        pattern (str): one of :data:`PATTERNS`.
        pattern_color (tuple): second RGB in [0, 1], also saturated.
        cells (int): pattern repeats across the object's width (stripes, dots, checker).
        angle (float): stripe direction in radians.
        phase (float): pattern offset in [0, 1) of one repeat.
    """
    color: Tuple[float, float, float]
    color_name: str
    pattern: str
    pattern_color: Tuple[float, float, float]
    cells: int
    angle: float
    phase: float

    def pattern_mask(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Where the second colour is used, at normalised object coordinates ``(u, v)``."""
        # Coordinates in pattern repeats: `cells` repeats across the width of 2 units.
        a = (u + 1) * self.cells / 2 + self.phase
        b = (v + 1) * self.cells / 2 + self.phase
        if self.pattern == 'stripes':
            w = a * np.cos(self.angle) + b * np.sin(self.angle)
            return np.mod(w, 1.0) < 0.4  # thinner second-colour stripes: base colour dominates
        if self.pattern == 'dots':
            da, db = np.mod(a, 1.0) - 0.5, np.mod(b, 1.0) - 0.5
            return da * da + db * db < 0.3**2
        if self.pattern == 'checker':
            return (np.floor(a) + np.floor(b)) % 2 == 1
        return np.zeros(np.broadcast(u, v).shape, dtype=bool)

    def colors_at(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """RGB (..., 3) float32 of the object's surface at ``(u, v)``."""
        second = self.pattern_mask(u, v)[..., None]
        return np.where(second, np.float32(self.pattern_color), np.float32(self.color))

    def describe(self, category: str) -> str:
        """Noun phrase for captions, e.g. ``'a red striped circle'``."""
        words = ' '.join(w for w in (self.color_name, PATTERN_WORDS[self.pattern], category) if w)
        article = 'an' if words[0] in 'aeiou' else 'a'
        return f'{article} {words}'


def _hsv(hue_deg: float, sat: float, val: float) -> Tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb((hue_deg % 360) / 360, sat, val)
    return (round(r, 6), round(g, 6), round(b, 6))


def sample_appearance(rng: np.random.Generator, color_name: str) -> Appearance:
    """A saturated base colour around the named hue plus a random pattern in a second colour.

    Both colours have HSV saturation >= 0.75 and value >= 0.65, so every object pixel is far
    from the grey background in chroma (see ``render.FOREGROUND_CHROMA``). The second hue is
    50-100 degrees away: distinct, yet never complementary, because a pixel that mixes two
    complementary colours (at a stripe edge) would turn grey and look like background.
    """
    hue = HUES[color_name] + rng.uniform(-6, 6)
    color = _hsv(hue, rng.uniform(0.75, 1.0), rng.uniform(0.75, 1.0))
    offset = rng.uniform(50, 100) * rng.choice([-1, 1])
    pattern_color = _hsv(hue + offset, rng.uniform(0.75, 1.0), rng.uniform(0.65, 1.0))
    pattern = str(rng.choice(PATTERNS))
    return Appearance(
        color=color,
        color_name=color_name,
        pattern=pattern,
        pattern_color=pattern_color,
        cells=int(rng.integers(2, 5)),
        angle=float(rng.choice([0, 0.25, 0.5, 0.75]) * np.pi),
        phase=float(rng.uniform(0, 1)))
