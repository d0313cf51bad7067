"""Generation from tracklet layouts: augmenting layouts (augment.py)."""
from .augment import (CategorySwap, Compose, HorizontalFlip, InstanceDrop, InstanceInsert, Reverse,
                      TemporalResample, TrackletAugment, TranslateScaleJitter, augment_layouts,
                      augment_rng, build_augment, check_layout, drop_invisible_instances,
                      finish_boxes)

__all__ = [
    'TrackletAugment', 'TemporalResample', 'Reverse', 'HorizontalFlip', 'TranslateScaleJitter',
    'CategorySwap', 'InstanceDrop', 'InstanceInsert', 'Compose', 'build_augment', 'augment_layouts',
    'augment_rng', 'check_layout', 'drop_invisible_instances', 'finish_boxes'
]
