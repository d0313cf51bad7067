"""Loading a clip's frames and annotations into arrays."""
from typing import Optional

import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform

from mmtrackgen.registry import TRANSFORMS


class FrameLoadError(RuntimeError):
    """A frame file that is missing or cannot be decoded, with the clip it belongs to."""


@TRANSFORMS.register_module()
class LoadTrackletClip(BaseTransform):
    """Read a clip item of :class:`TrackletClipDataset` into arrays.

    Adds ``frames`` (F, H, W, 3) uint8 RGB (``None`` when ``load_frames=False``, for
    tracklets-only files), ``img_shape`` / ``ori_shape`` (H, W), ``img_paths``, and per frame
    (lists of F arrays, one row per box): ``gt_bboxes`` (K_t, 4) float32 xyxy pixels,
    ``gt_bboxes_labels`` (K_t,), ``gt_instance_ids`` (K_t,), ``gt_visibility`` (K_t,).
    Boxes flagged ``ignore_flag`` (crowd) are left out.
    """

    def __init__(self, load_frames: bool = True, backend_args: Optional[dict] = None):
        self.load_frames = load_frames
        self.backend_args = backend_args

    def _read_frame(self, path: str, results: dict, frame_id: int) -> np.ndarray:
        where = f"video '{results.get('video_name')}', frame {frame_id}: frame file '{path}'"
        try:
            img_bytes = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as e:
            raise FrameLoadError(f'{where} does not exist') from e
        try:
            img = mmcv.imfrombytes(img_bytes, channel_order='rgb')
        except Exception as e:  # decoders raise many types on corrupt data
            raise FrameLoadError(f'{where} cannot be decoded ({e})') from e
        if img is None or img.ndim != 3:
            raise FrameLoadError(f'{where} cannot be decoded as a colour image')
        return img

    def transform(self, results: dict) -> dict:
        images = results['images']
        heights = {im['height'] for im in images}
        widths = {im['width'] for im in images}
        if len(heights) > 1 or len(widths) > 1:
            raise ValueError(f"video '{results.get('video_name')}': frames of one clip differ "
                             f'in size (widths {sorted(widths)}, heights {sorted(heights)})')
        shape = (images[0]['height'], images[0]['width'])
        if self.load_frames:
            frames = [self._read_frame(im['img_path'], results, im['frame_id']) for im in images]
            for im, frame in zip(images, frames):
                if frame.shape[:2] != shape:
                    raise FrameLoadError(
                        f"video '{results.get('video_name')}', frame {im['frame_id']}: frame "
                        f"file '{im['img_path']}' is {frame.shape[1]}x{frame.shape[0]} but the "
                        f'annotation says {shape[1]}x{shape[0]} (field images.width/height)')
            results['frames'] = np.stack(frames)  # (F, H, W, 3)
        else:
            results['frames'] = None
        results['img_shape'] = results['ori_shape'] = shape
        results['img_paths'] = [im['img_path'] for im in images]

        def column(key, dtype, width=None):
            out = []
            for im in images:
                rows = [inst[key] for inst in im['instances'] if not inst.get('ignore_flag')]
                arr = np.asarray(rows, dtype=dtype)
                out.append(arr.reshape(-1, width) if width else arr.reshape(-1))
            return out

        results['gt_bboxes'] = column('bbox', np.float32, 4)
        results['gt_bboxes_labels'] = column('bbox_label', np.int64)
        results['gt_instance_ids'] = column('instance_id', np.int64)
        results['gt_visibility'] = column('visibility', np.float32)
        return results
