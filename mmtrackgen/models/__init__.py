from .data_preprocessors import ClipDataPreprocessor

__all__ = ['ClipDataPreprocessor']
