from .formatting import PackClipInputs, PackFrameInputs
from .geometric import ClipCrop, ClipRandomFlip, ClipResize
from .loading import FrameLoadError, LoadTrackletClip
from .self_tracking import DrawSlotBoxes
from .slots import (AssignInstanceSlots, TemplateCaption, TooManyInstancesError,
                    describe_categories)

__all__ = [
    'LoadTrackletClip', 'FrameLoadError', 'ClipResize', 'ClipCrop', 'ClipRandomFlip',
    'AssignInstanceSlots', 'TooManyInstancesError', 'TemplateCaption', 'describe_categories',
    'DrawSlotBoxes', 'PackClipInputs', 'PackFrameInputs'
]
