from .hooks import SampleVisualizationHook, SelfTrackingHook, TrimFrozenWeightsHook

__all__ = ['SampleVisualizationHook', 'SelfTrackingHook', 'TrimFrozenWeightsHook']
