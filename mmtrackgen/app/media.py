"""Pictures and videos the page shows: the layout on empty frames, the generated clip beside
the same clip with its boxes, and an MP4 a browser plays.

Model frames are small (32x32 for the synthetic model), so everything shown is enlarged by an
integer factor with nearest-neighbour sampling: pixels stay pixels and box coordinates scale
exactly.
"""
import numpy as np

from mmtrackgen.structures import TrackletLayout
from mmtrackgen.visualization import contact_sheet, draw_tracklets
from mmtrackgen.visualization.tracklets import slot_colours

CANVAS_GREY = 128  # the synthetic world's background is grey too


def display_scale(image_size: tuple, target: int = 256) -> int:
    """The integer enlargement that brings the longer side of (H, W) to at least ``target``."""
    return max(1, -(-target // max(image_size)))


def empty_frames(layout: TrackletLayout) -> np.ndarray:
    height, width = layout.image_size
    return np.full((layout.num_frames, height, width, 3), CANVAS_GREY, np.uint8)


def draw_layout(frames: np.ndarray, layout: TrackletLayout, classes: list,
                scale: int) -> np.ndarray:
    """``frames`` (F, H, W, 3) enlarged ``scale`` times with the layout's boxes, ids and
    categories drawn, one colour per instance (the colours of :func:`instance_colours`)."""
    height, width = layout.image_size
    norm = layout.boxes / np.array([width, height, width, height], np.float32)  # (F, N, 4)
    labels = np.array([list(classes).index(c) for c in layout.categories], np.int64)
    return draw_tracklets(
        frames, norm, layout.visible, labels, layout.instance_ids, classes, upscale=scale)


def instance_colours(num: int) -> list:
    """RGB tuples of the colours :func:`draw_layout` gives instances 0..num-1 (layout order)."""
    return [tuple(int(c) for c in colour) for colour in slot_colours(num)]


def preview_strip(layout: TrackletLayout, classes: list, frame_size: int = 96) -> np.ndarray:
    """The layout on empty frames as one row of frames, numbered: what will be generated."""
    frames = draw_layout(
        empty_frames(layout), layout, classes, display_scale(layout.image_size, frame_size))
    return contact_sheet([frames], [f'{layout.name}: frames 0..{layout.num_frames - 1}'])


def side_by_side(frames: np.ndarray, layout: TrackletLayout, classes: list,
                 target: int = 192) -> np.ndarray:
    """(F, H', 2 W' + gap, 3): the generated frames enlarged, and beside them the same frames
    with the layout drawn; sizes even, as H.264 needs."""
    scale = display_scale(frames.shape[1:3], target)
    plain = frames.repeat(scale, 1).repeat(scale, 2)  # (F, H', W', 3)
    drawn = draw_layout(frames, layout, classes, scale)
    gap = np.full((frames.shape[0], plain.shape[1], 4, 3), 255, np.uint8)
    out = np.concatenate([plain, gap, drawn], axis=2)
    height, width = out.shape[1] - out.shape[1] % 2, out.shape[2] - out.shape[2] % 2
    return np.ascontiguousarray(out[:, :height, :width])


def save_browser_mp4(path: str, frames: np.ndarray, fps: float = 4.0) -> None:
    """(F, H, W, 3) uint8 RGB (H, W even) -> an H.264 MP4 that browsers play. OpenCV's wheels
    write only MPEG-4 part 2 (``mp4v``), which browsers do not play; imageio-ffmpeg ships an
    ffmpeg binary with libx264 in its wheel."""
    import imageio_ffmpeg
    height, width = frames.shape[1:3]
    writer = imageio_ffmpeg.write_frames(
        path, (width, height),
        fps=fps,
        codec='libx264',
        pix_fmt_in='rgb24',
        pix_fmt_out='yuv420p',
        macro_block_size=1,
        output_params=['-movflags', '+faststart'])
    writer.send(None)  # start the encoder
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
