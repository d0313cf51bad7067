from .tracklets import contact_sheet, draw_tracklets, save_image, slot_colours
from .video import save_clip, save_gif, save_mp4

__all__ = [
    'draw_tracklets', 'contact_sheet', 'save_image', 'slot_colours', 'save_clip', 'save_gif',
    'save_mp4'
]
