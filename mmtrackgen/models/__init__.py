from .conditioning import *  # noqa: F401,F403
from .data_preprocessors import ClipDataPreprocessor, TrackDiffusionDataPreprocessor
from .generators import TrackletUNet3D
from .trackdiffusion import TrackDiffusion

__all__ = [
    'ClipDataPreprocessor', 'TrackDiffusionDataPreprocessor', 'TrackletUNet3D', 'TrackDiffusion'
]
