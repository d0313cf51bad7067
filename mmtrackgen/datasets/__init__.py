from .clip_dataset import TrackletClipDataset
from .frame_dataset import VideoFrameDataset
from .mixing import GeneratedShareDataset, share_repeats
from .synthetic import make_synthetic_dataset, segment_foreground
from .tracklets import (TrackletAnnotationError, group_annotations, load_cocovid, validate_cocovid)
from .transforms import *  # noqa: F401,F403 (registers the transforms)

__all__ = [
    'TrackletClipDataset', 'VideoFrameDataset', 'make_synthetic_dataset', 'segment_foreground',
    'TrackletAnnotationError', 'load_cocovid', 'validate_cocovid', 'group_annotations',
    'GeneratedShareDataset', 'share_repeats'
]
