from .alignment import box_alignment, summarize_alignment

__all__ = ['box_alignment', 'summarize_alignment']
