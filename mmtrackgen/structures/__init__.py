from .tracklet_clip_sample import TrackletClipSample

__all__ = ['TrackletClipSample']
