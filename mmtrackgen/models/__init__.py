from .autoencoders import FrameAutoencoder
from .conditioning import *  # noqa: F401,F403
from .data_preprocessors import (ClipDataPreprocessor, SVDDataPreprocessor,
                                 TrackDiffusionDataPreprocessor)
from .generators import TrackletUNet3D, TrackletUNetSpatioTemporal
from .trackdiffusion import TrackDiffusion
from .trackers import MinSizeByteTracker
from .trackdiffusion_i2v import TrackDiffusionI2V

__all__ = [
    'ClipDataPreprocessor', 'SVDDataPreprocessor', 'TrackDiffusionDataPreprocessor',
    'TrackletUNet3D', 'TrackletUNetSpatioTemporal', 'TrackDiffusion', 'TrackDiffusionI2V',
    'MinSizeByteTracker', 'FrameAutoencoder'
]
