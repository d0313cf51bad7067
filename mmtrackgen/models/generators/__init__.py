from .tracklet_unet3d import TrackletUNet3D

__all__ = ['TrackletUNet3D']
