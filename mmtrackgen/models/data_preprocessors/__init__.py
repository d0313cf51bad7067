from .clip_data_preprocessor import ClipDataPreprocessor
from .svd_data_preprocessor import SVDDataPreprocessor
from .trackdiffusion_data_preprocessor import TrackDiffusionDataPreprocessor

__all__ = ['ClipDataPreprocessor', 'SVDDataPreprocessor', 'TrackDiffusionDataPreprocessor']
