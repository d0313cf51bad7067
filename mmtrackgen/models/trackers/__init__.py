from .min_size_byte_tracker import MinSizeByteTracker

__all__ = ['MinSizeByteTracker']
