from .tracklet_clip_sample import TrackletClipSample
from .tracklet_layout import TrackletLayout

__all__ = ['TrackletClipSample', 'TrackletLayout']
