from .alignment import box_alignment, summarize_alignment
from .locality import box_union_mask, change_locality

__all__ = ['box_alignment', 'summarize_alignment', 'box_union_mask', 'change_locality']
