from .generated_clip_metric import GeneratedTrackMetric

__all__ = ['GeneratedTrackMetric']
