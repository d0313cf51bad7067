from .tracklets import contact_sheet, draw_tracklets, save_image, slot_colours

__all__ = ['draw_tracklets', 'contact_sheet', 'save_image', 'slot_colours']
