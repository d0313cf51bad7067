from .pretrained import (build_pretrained_tracklet_unet3d,
                         build_pretrained_tracklet_unet_spatiotemporal)
from .tracklet_unet3d import TrackletUNet3D
from .tracklet_unet_spatiotemporal import TrackletUNetSpatioTemporal

__all__ = [
    'TrackletUNet3D', 'TrackletUNetSpatioTemporal', 'build_pretrained_tracklet_unet3d',
    'build_pretrained_tracklet_unet_spatiotemporal'
]
