"""Writing clips as animated previews (GIF with Pillow, MP4 with OpenCV)."""
import os.path as osp

import cv2
import numpy as np
from PIL import Image


def save_gif(path: str, frames: np.ndarray, fps: float = 8.0) -> None:
    """(F, H, W, 3) uint8 RGB -> a looping GIF."""
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)


def save_mp4(path: str, frames: np.ndarray, fps: float = 8.0) -> None:
    """(F, H, W, 3) uint8 RGB -> an MP4 (mp4v codec, which OpenCV's wheels always have)."""
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"cannot open '{path}' for MP4 writing with OpenCV")
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[..., ::-1]))
    finally:
        writer.release()


def save_clip(path: str, frames: np.ndarray, fps: float = 8.0) -> None:
    """Write a clip as GIF or MP4, chosen by the file extension."""
    ext = osp.splitext(path)[1].lower()
    if ext == '.gif':
        save_gif(path, frames, fps)
    elif ext == '.mp4':
        save_mp4(path, frames, fps)
    else:
        raise ValueError(f"preview '{path}': the extension must be .gif or .mp4")
