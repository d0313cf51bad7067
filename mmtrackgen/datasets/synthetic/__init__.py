"""The procedural synthetic multi-object-tracking video world: mmtrackgen's default dataset.

Coloured, patterned shapes move over grey backgrounds (straight, curved, bouncing, thrown out
of view and back), grow and shrink, and occlude one another; :func:`make_synthetic_dataset`
writes them as CocoVID files that mmdet's video datasets read, and :func:`segment_foreground`
finds the objects in a frame (to check generated videos against their boxes).
"""
from .render import FOREGROUND_CHROMA, RenderedVideo, render_video, segment_foreground
from .shapes import HUES, PATTERNS, SHAPES, Appearance
from .world import MOTIONS, Background, Track, VideoLayout, sample_video
from .writer import (DEFAULT_CATEGORIES, frame_annotations, make_synthetic_dataset, video_rng)

__all__ = [
    'make_synthetic_dataset', 'segment_foreground', 'sample_video', 'render_video',
    'frame_annotations', 'video_rng', 'VideoLayout', 'Track', 'Background', 'Appearance',
    'RenderedVideo', 'SHAPES', 'HUES', 'PATTERNS', 'MOTIONS', 'DEFAULT_CATEGORIES',
    'FOREGROUND_CHROMA'
]
