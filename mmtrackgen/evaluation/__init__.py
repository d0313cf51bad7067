from .alignment import box_alignment, summarize_alignment
from .appearance import appearance_consistency, summarize_consistency
from .category import (CategoryClassifier, category_accuracy, load_category_classifier,
                       train_category_classifier)
from .feature_networks import I3DFeatures, InceptionV3Features, load_feature_network
from .frechet import FeatureStatistics, frechet_distance
from .identity import box_iou, check_tracks, identity_metrics, layouts_to_tracks
from .locality import box_union_mask, change_locality
from .metrics import GeneratedTrackMetric
from .statistics import mean_and_sem, paired_difference
from .synthetic_tracker import SyntheticTracker, detect_components, track_clip
from .track_ap import spatiotemporal_box_iou, track_ap
from .video_quality import compute_fid, compute_fvd, extract_statistics

__all__ = [
    # tracker-free figures
    'box_alignment', 'summarize_alignment', 'appearance_consistency', 'summarize_consistency',
    'box_union_mask', 'change_locality', 'CategoryClassifier', 'category_accuracy',
    'load_category_classifier', 'train_category_classifier',
    # FVD / FID
    'frechet_distance', 'FeatureStatistics', 'InceptionV3Features', 'I3DFeatures',
    'load_feature_network', 'compute_fid', 'compute_fvd', 'extract_statistics',
    # tracking figures: identity (TrackEval), TrackAP, the synthetic world's tracker
    'identity_metrics', 'layouts_to_tracks', 'check_tracks', 'box_iou', 'track_ap',
    'spatiotemporal_box_iou', 'SyntheticTracker', 'track_clip', 'detect_components',
    'GeneratedTrackMetric',
    # comparing trained variants over paired seeds
    'mean_and_sem', 'paired_difference'
]
