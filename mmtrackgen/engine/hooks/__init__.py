from .sample_visualization_hook import SampleVisualizationHook
from .self_tracking_hook import SelfTrackingHook
from .trim_frozen_weights_hook import TrimFrozenWeightsHook

__all__ = ['SampleVisualizationHook', 'SelfTrackingHook', 'TrimFrozenWeightsHook']
