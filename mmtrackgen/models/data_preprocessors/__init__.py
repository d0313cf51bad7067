from .clip_data_preprocessor import ClipDataPreprocessor
from .trackdiffusion_data_preprocessor import TrackDiffusionDataPreprocessor

__all__ = ['ClipDataPreprocessor', 'TrackDiffusionDataPreprocessor']
