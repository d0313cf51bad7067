from .export_autoencoder_hook import ExportAutoencoderHook
from .random_state_hook import RandomStateHook, get_random_state, set_random_state
from .sample_visualization_hook import SampleVisualizationHook
from .self_tracking_hook import SelfTrackingHook
from .timed_checkpoint_hook import TimedCheckpointHook
from .trim_frozen_weights_hook import TrimFrozenWeightsHook

__all__ = [
    'RandomStateHook', 'get_random_state', 'set_random_state', 'SampleVisualizationHook',
    'SelfTrackingHook', 'TrimFrozenWeightsHook', 'ExportAutoencoderHook',
    'TimedCheckpointHook'
]
