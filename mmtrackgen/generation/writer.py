"""Writing generated clips as a CocoVID dataset: one clip at a time, resumable, never half-visible.

Layout of an output folder::

    OUT/<clip>/img1/000001.jpg ...   frames of each finished clip
    OUT/<clip>/clip.json             its tracklets (the conditioning) and provenance
    OUT/annotations.json             the merged CocoVID file, written once every clip is done
    OUT/.partial/rank<r>/            clips being written (removed at the next start)

A clip is written into ``.partial`` and moved into place with one ``os.replace`` of its folder,
so a clip folder that exists is complete; a kill at any moment leaves at most a partial folder
that the next run clears. ``annotations.json`` is written the same way (a temporary file and a
rename). Frame encoding runs on a background thread so the sampler keeps going. A write that fails
(a full disk, a folder made read-only) stops the run with a message naming the clip and the
folder; the clip's partial files are removed and the finished clips stay as they are.
"""
import glob
import io
import json
import os
import os.path as osp
import shutil
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from PIL import Image

from mmtrackgen.structures import TrackletLayout
from mmtrackgen.utils.files import write_json_atomic

CLIP_RECORD = 'clip.json'
ANNOTATIONS = 'annotations.json'
# How frames are encoded: JPEG without chroma subsampling (4:4:4, as the synthetic world writes
# its frames: subsampled chroma smears a small object's colour into its neighbours), JPEG 4:2:0
# (the smallest files, what most cameras write), or lossless PNG.
IMAGE_FORMATS = {
    'jpeg444': dict(extension='jpg', pil=dict(format='JPEG', subsampling=0)),
    'jpeg420': dict(extension='jpg', pil=dict(format='JPEG', subsampling=2)),
    'png': dict(extension='png', pil=dict(format='PNG', compress_level=1)),
}


def frame_name(frame: int, image_format: str = 'jpeg444') -> str:
    """File name of frame ``frame`` in a clip's ``img1`` folder: numbered from 1, as
    MOTChallenge's."""
    return f"{frame:06d}.{IMAGE_FORMATS[image_format]['extension']}"


class OutputFolderError(OSError):
    """The output folder cannot be created or written; the message says which and why."""


def layout_record(layout: TrackletLayout, **extra) -> dict:
    """A JSON-ready dict of a layout (the ``clip.json`` of a generated clip)."""
    return dict(
        name=layout.name,
        image_size=list(layout.image_size),
        boxes=np.round(layout.boxes, 3).tolist(),
        visible=layout.visible.tolist(),
        visibility=np.round(layout.visibility, 4).tolist(),
        instance_ids=layout.instance_ids.tolist(),
        categories=list(layout.categories),
        frame_ids=layout.frame_ids.tolist(),
        caption=layout.caption,
        **extra)


def layout_from_record(record: dict) -> TrackletLayout:
    """The inverse of :func:`layout_record` (extra keys are ignored)."""
    num_instances = len(record['instance_ids'])
    num_frames = len(record['frame_ids'])
    return TrackletLayout(
        name=record['name'],
        image_size=tuple(record['image_size']),
        boxes=np.asarray(record['boxes'], np.float32).reshape(num_frames, num_instances, 4),
        visible=np.asarray(record['visible'], bool).reshape(num_frames, num_instances),
        instance_ids=np.asarray(record['instance_ids'], np.int64),
        categories=list(record['categories']),
        visibility=np.asarray(record['visibility'], np.float32).reshape(num_frames, num_instances),
        frame_ids=np.asarray(record['frame_ids'], np.int64),
        caption=record.get('caption'))


def clip_is_done(out_dir: str, name: str) -> bool:
    """Whether ``out_dir`` holds the finished clip ``name`` (reads only; creates nothing)."""
    return osp.isfile(osp.join(out_dir, name, CLIP_RECORD))


class GeneratedDatasetWriter:
    """Writes finished clips into ``out_dir`` and merges them into one CocoVID file.

    Args:
        out_dir: the dataset folder; created if needed.
        rank: this process's rank; each rank writes through its own partial folder.
        jpeg_quality: JPEG quality of the frames.
        image_format: one of :data:`IMAGE_FORMATS` (``'jpeg444'``, ``'jpeg420'``, ``'png'``);
            the merged CocoVID file records it in ``info.image_format``.
    """

    def __init__(self,
                 out_dir: str,
                 rank: int = 0,
                 jpeg_quality: int = 95,
                 image_format: str = 'jpeg444'):
        if image_format not in IMAGE_FORMATS:
            raise ValueError(f'image_format must be one of {sorted(IMAGE_FORMATS)}, got '
                             f'{image_format!r}')
        self.out_dir = out_dir
        self.jpeg_quality = jpeg_quality
        self.image_format = image_format
        self.partial_dir = osp.join(out_dir, '.partial', f'rank{rank}')
        try:
            os.makedirs(out_dir, exist_ok=True)
            shutil.rmtree(self.partial_dir, ignore_errors=True)  # leftovers of a killed run
            os.makedirs(self.partial_dir)
        except OSError as e:
            raise OutputFolderError(
                f"output folder '{out_dir}' cannot be written: {e.strerror or e}") from e
        if not os.access(out_dir, os.W_OK):
            raise OutputFolderError(f"output folder '{out_dir}' is not writable")
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending: list[tuple[str, Future]] = []  # (clip name, its write)

    def clip_dir(self, name: str) -> str:
        return osp.join(self.out_dir, name)

    def is_done(self, name: str) -> bool:
        return clip_is_done(self.out_dir, name)

    def submit(self, layout: TrackletLayout, frames: np.ndarray, **extra) -> None:
        """Queue one clip: frames (F, H, W, 3) uint8 RGB and the layout they were made from."""
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[0] != layout.num_frames:
            raise ValueError(f"clip '{layout.name}': frames must be (F, H, W, 3) uint8 with "
                             f'F = {layout.num_frames}, got {frames.shape} {frames.dtype}')
        self._raise_failures()
        record = layout_record(layout, image_format=self.image_format, **extra)
        self._pending.append(
            (layout.name, self._pool.submit(self._write, layout.name, frames, record)))

    def _write(self, name: str, frames: np.ndarray, record: dict) -> None:
        tmp = osp.join(self.partial_dir, name)
        try:
            self._write_into(tmp, name, frames, record)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # frees the space a full disk needs
            raise

    def _write_into(self, tmp: str, name: str, frames: np.ndarray, record: dict) -> None:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(osp.join(tmp, 'img1'))
        options = dict(IMAGE_FORMATS[self.image_format]['pil'])
        if options['format'] == 'JPEG':
            options['quality'] = self.jpeg_quality
        for i, frame in enumerate(frames):
            path = osp.join(tmp, 'img1', frame_name(i + 1, self.image_format))
            encoded = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(frame), 'RGB').save(encoded, **options)
            with open(path, 'wb') as f:
                f.write(encoded.getvalue())
        with open(osp.join(tmp, CLIP_RECORD), 'w') as f:
            json.dump(record, f)
        final = self.clip_dir(name)
        if osp.isdir(final):  # an unfinished clip folder from outside this writer
            shutil.rmtree(final)
        os.replace(tmp, final)

    def _raise_failures(self) -> None:
        done = [(name, f) for name, f in self._pending if f.done()]
        self._pending = [(name, f) for name, f in self._pending if not f.done()]
        for name, future in done:
            error = None if future.cancelled() else future.exception()
            if error is None:
                continue
            for _, queued in self._pending:  # clips not started yet are not written
                queued.cancel()
            if isinstance(error, OSError) and not isinstance(error, OutputFolderError):
                raise OutputFolderError(
                    f"clip '{name}' could not be written into '{self.out_dir}': "
                    f'{error.strerror or error} (the clips finished before are intact; free '
                    'space or fix the folder, then rerun the same command to continue)') from error
            raise error

    def wait(self) -> None:
        """Block until every queued clip is on disk; re-raises a failed write."""
        for _, future in list(self._pending):
            if not future.cancelled():
                future.exception()
        self._raise_failures()

    def close(self) -> None:
        self.wait()
        self._pool.shutdown()
        shutil.rmtree(self.partial_dir, ignore_errors=True)

    def read_layouts(self, names: list[str]) -> list[TrackletLayout]:
        """The layouts of finished clips, in the given order."""
        layouts = []
        for name in names:
            with open(osp.join(self.clip_dir(name), CLIP_RECORD)) as f:
                layouts.append(layout_from_record(json.load(f)))
        return layouts

    def merge(self, names: list[str], categories: list[str], info: dict) -> str:
        """Write ``annotations.json`` (CocoVID) for the finished clips ``names``; returns its path.

        Frame paths in it are relative to ``out_dir``, so ``data_prefix=dict(img_path=OUT)``.
        """
        from mmtrackgen.datasets.tracklet_file import layouts_to_cocovid
        missing = [name for name in names if not self.is_done(name)]
        if missing:
            raise RuntimeError(f'{len(missing)} clips are not finished, e.g. {missing[:3]}')
        for name in names:
            with open(osp.join(self.clip_dir(name), CLIP_RECORD)) as f:
                # clips written before formats were recorded are cv2's default JPEG, 4:2:0
                written = json.load(f).get('image_format', 'jpeg420')
            if written != self.image_format:
                raise OutputFolderError(
                    f"clip '{name}' in '{self.out_dir}' was written as {written}, not "
                    f'{self.image_format}: rerun with that image format, or write to a new folder')
        extension = IMAGE_FORMATS[self.image_format]['extension']
        ann = layouts_to_cocovid(
            self.read_layouts(names),
            categories,
            file_name='{video}/img1/{frame:06d}.' + extension,
            info=dict(info, image_format=self.image_format),
            mot_fields=True)  # mmdet's MOTChallengeDataset reads them
        path = osp.join(self.out_dir, ANNOTATIONS)
        try:
            for stale in glob.glob(glob.escape(path) + '.tmp*'):  # of a run killed while merging
                os.remove(stale)
            write_json_atomic(path, ann)
        except OSError as e:
            raise OutputFolderError(
                f"'{ANNOTATIONS}' could not be written into '{self.out_dir}': "
                f'{e.strerror or e} (all {len(names)} clips are finished and intact; free space '
                'or fix the folder, then rerun the same command to write it)') from e
        return path
