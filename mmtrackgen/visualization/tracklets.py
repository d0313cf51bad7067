"""Drawing tracklets on frames and laying clips out as a contact sheet (numpy + Pillow)."""
import colorsys
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw


def slot_colours(n: int) -> np.ndarray:
    """``n`` well separated RGB colours (golden-ratio hue steps), (n, 3) uint8."""
    return np.array(
        [[round(c * 255) for c in colorsys.hsv_to_rgb((0.13 + i * 0.618) % 1, 0.9, 1.0)]
         for i in range(n)],
        dtype=np.uint8).reshape(n, 3)


def draw_tracklets(frames: np.ndarray,
                   boxes: np.ndarray,
                   visible: np.ndarray,
                   labels: Optional[np.ndarray] = None,
                   instance_ids: Optional[np.ndarray] = None,
                   classes: Optional[Sequence[str]] = None,
                   upscale: int = 1) -> np.ndarray:
    """Draw each visible slot's box with a colour per slot and its id (and class) as text.

    Args:
        frames: (F, H, W, 3) uint8 RGB.
        boxes: (F, N, 4) xyxy normalised to [0, 1].
        visible: (F, N) bool.
        labels, instance_ids: (N,), -1 for empty slots.
        upscale: integer nearest-neighbour enlargement first, so small frames stay legible.
    Returns:
        (F, H * upscale, W * upscale, 3) uint8.
    """
    num_frames, h, w = frames.shape[:3]
    n = boxes.shape[1]
    colours = slot_colours(n)
    out = []
    for t in range(num_frames):
        img = Image.fromarray(frames[t]).resize((w * upscale, h * upscale), Image.NEAREST)
        draw = ImageDraw.Draw(img)
        for s in range(n):
            if not visible[t, s]:
                continue
            x1, y1, x2, y2 = (boxes[t, s] * np.array([w, h, w, h]) * upscale).tolist()
            colour = tuple(int(c) for c in colours[s])
            draw.rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)], outline=colour)
            text = str(int(instance_ids[s])) if instance_ids is not None else str(s)
            if labels is not None and classes is not None and labels[s] >= 0:
                text += f' {classes[int(labels[s])]}'
            draw.text((x1 + 1, y1), text, fill=colour)
        out.append(np.asarray(img))
    return np.stack(out)


def contact_sheet(clips: Sequence[np.ndarray],
                  titles: Optional[Sequence[str]] = None,
                  gap: int = 2,
                  title_height: int = 12,
                  background: int = 255) -> np.ndarray:
    """One row per clip, one column per frame; an optional title line above each row.

    Args:
        clips: sequence of (F, H, W, 3) uint8 arrays; rows may have different F, H, W.
    Returns:
        (rows, cols, 3) uint8 image.
    """
    if not clips:
        raise ValueError('contact_sheet needs at least one clip')
    th = title_height if titles else 0
    width = max(c.shape[0] * (c.shape[2] + gap) for c in clips) + gap
    height = sum(c.shape[1] + th + gap for c in clips) + gap
    sheet = Image.new('RGB', (width, height), (background, ) * 3)
    draw = ImageDraw.Draw(sheet)
    y = gap
    for i, clip in enumerate(clips):
        if titles:
            draw.text((gap, y), titles[i], fill=(0, 0, 0))
            y += th
        x = gap
        for frame in clip:
            sheet.paste(Image.fromarray(frame), (x, y))
            x += frame.shape[1] + gap
        y += clip.shape[1] + gap
    return np.asarray(sheet)


def save_image(path: str, image: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 array as PNG/JPEG by extension."""
    Image.fromarray(image).save(path)
