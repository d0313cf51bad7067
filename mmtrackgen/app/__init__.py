"""The page that draws tracklets and shows the video they become (``tools/app.py``).

:mod:`.editor` (keyframes -> layout, checks), :mod:`.canvas` (the drawing canvas of one frame),
:mod:`.media` (pictures and MP4s), :mod:`.session` (generation, scores, downloads) need no
Gradio; :mod:`.page` builds the Gradio page from them.
"""
from .editor import (KEYFRAME_COLUMNS, Keyframe, PageInputError, PageSpec, fit_layout,
                     interpolate_track, keyframes_to_layout, layout_to_keyframes, page_spec,
                     parse_keyframes, read_layout_file)
from .session import DEFAULT_SCORES, PageModel, PageResult

__all__ = [
    'KEYFRAME_COLUMNS', 'Keyframe', 'PageInputError', 'PageSpec', 'fit_layout',
    'interpolate_track', 'keyframes_to_layout', 'layout_to_keyframes', 'page_spec',
    'parse_keyframes', 'read_layout_file', 'DEFAULT_SCORES', 'PageModel', 'PageResult'
]
