"""CocoVID videos cut into fixed-length clips, the unit TrackDiffusion trains and generates on."""
import os.path as osp
from typing import List, Optional

from mmdet.datasets import BaseVideoDataset
from mmengine.logging import print_log

from mmtrackgen.registry import DATASETS
from .tracklets import load_cocovid, load_json


@DATASETS.register_module()
class TrackletClipDataset(BaseVideoDataset):
    """Any CocoVID video dataset (the synthetic world, YouTube-VIS, MOT17, GOT-10k converted by
    mmdet's tools) as clips of ``clip_length`` frames.

    Each item is one clip: ``dict(video_id, video_name, clip_start, frame_ids, images=[...],
    caption?)`` where ``images`` holds mmdet's per-frame infos (``img_path``, ``width``,
    ``height``, ``instances`` with ``bbox`` xyxy, ``bbox_label``, ``instance_id``,
    ``visibility``). Frames are taken from a video's annotated frames in ``frame_id`` order,
    ``frame_stride`` apart; clip starts are ``clip_step`` apart (default: non-overlapping).

    Args:
        clip_length (int): frames per clip (F).
        frame_stride (int): step between the annotated frames that form a clip.
        clip_step (int, optional): step between the first frames of consecutive clips, in
            annotated frames. Defaults to ``clip_length * frame_stride``.
        captions_file (str, optional): JSON ``{video_name: caption}``, relative to
            ``data_root``. Videos without an entry get no caption (the pipeline's template).
        setup_hint (str): where the README says how to get this dataset; named in the error
            raised when the annotation file or frame folder is missing.
        **kwargs: ``BaseVideoDataset`` / ``BaseDataset`` arguments (``ann_file``,
            ``data_root``, ``data_prefix``, ``metainfo``, ``pipeline``, ``test_mode``...).
            Without ``metainfo=dict(classes=...)`` every category of the file is used.
    """

    def __init__(self,
                 clip_length: int,
                 frame_stride: int = 1,
                 clip_step: Optional[int] = None,
                 captions_file: Optional[str] = None,
                 setup_hint: str = 'README.md#datasets',
                 **kwargs):
        if clip_length < 1 or frame_stride < 1 or (clip_step is not None and clip_step < 1):
            raise ValueError('clip_length, frame_stride and clip_step must be >= 1, got '
                             f'{clip_length}, {frame_stride}, {clip_step}')
        self.clip_length = clip_length
        self.frame_stride = frame_stride
        self.clip_step = clip_step or clip_length * frame_stride
        self.captions_file = captions_file
        self.setup_hint = setup_hint
        super().__init__(**kwargs)

    def _join_root(self, path: str) -> str:
        if self.data_root and not osp.isabs(path):
            return osp.join(self.data_root, path)
        return path

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f"{type(self).__name__}: annotation file '{self.ann_file}' not found (data_root "
                f"'{self.data_root}'). See {self.setup_hint} for how to get this dataset, or set "
                "another path with --cfg-options.")
        img_root = self.data_prefix.get('img_path')
        if img_root and not self.test_mode and not osp.isdir(img_root):
            raise FileNotFoundError(
                f"{type(self).__name__}: frame folder '{img_root}' not found. See "
                f'{self.setup_hint} for how to get this dataset.')
        ann = load_cocovid(self.ann_file)
        if not self._metainfo.get('classes'):
            cats = sorted(ann['categories'], key=lambda c: c['id'])
            self._metainfo['classes'] = tuple(c['name'] for c in cats)
        video_names = {v['id']: v['name'] for v in ann['videos']}
        del ann
        captions = {}
        if self.captions_file:
            captions = load_json(self._join_root(self.captions_file))

        clips, skipped = [], []
        span = (self.clip_length - 1) * self.frame_stride + 1
        for video in super().load_data_list():
            frames = sorted(video['images'], key=lambda im: im['frame_id'])
            name = video_names.get(video['video_id'], str(video['video_id']))
            if len(frames) < span:
                skipped.append(name)
                continue
            for start in range(0, len(frames) - span + 1, self.clip_step):
                picked = frames[start:start + span:self.frame_stride]
                clip = dict(
                    video_id=video['video_id'],
                    video_name=name,
                    clip_start=start,
                    frame_ids=[im['frame_id'] for im in picked],
                    images=picked)
                if name in captions:
                    clip['caption'] = captions[name]
                clips.append(clip)
        if skipped:
            print_log(
                f'{len(skipped)} videos are shorter than a clip of {self.clip_length} frames '
                f'at stride {self.frame_stride} and were skipped: {skipped[:5]}'
                f"{' ...' if len(skipped) > 5 else ''}",
                logger='current',
                level=30)
        print_log(
            f'{type(self).__name__}: {len(clips)} clips of {self.clip_length} frames '
            f'from {self.ann_file}',
            logger='current')
        return clips

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """Per-frame info as mmdet's, keeping every instance id (mmdet replaces an id of 0) and
        each box's visibility (1 when the file has none)."""
        img_info = raw_data_info['raw_img_info']
        data_info = dict(img_info)
        img_root = self.data_prefix.get('img_path')
        data_info['img_path'] = (
            osp.join(img_root, img_info['file_name']) if img_root else img_info['file_name'])
        instances = []
        for ann in raw_data_info['raw_ann_info']:
            if ann.get('ignore', False) or ann['category_id'] not in self.cat2label:
                continue
            x, y, w, h = ann['bbox']
            instances.append(
                dict(
                    bbox=[x, y, x + w, y + h],
                    bbox_label=self.cat2label[ann['category_id']],
                    instance_id=ann['instance_id'],
                    visibility=float(ann.get('visibility', 1.0)),
                    ignore_flag=int(bool(ann.get('iscrowd', False)))))
        data_info['instances'] = instances
        return data_info

    def filter_data(self) -> List[dict]:
        """Keep every clip: a frame without instances is a legal part of a tracklet (all
        instances left the view). With ``filter_cfg=dict(filter_empty_gt=True)`` clips without
        any instance are dropped."""
        if self.test_mode or not (self.filter_cfg or {}).get('filter_empty_gt', False):
            return self.data_list
        return [c for c in self.data_list if any(im['instances'] for im in c['images'])]

    def prepare_data(self, idx: int):
        data_info = self.get_data_info(idx)
        data_info['classes'] = self.metainfo['classes']
        return self.pipeline(data_info)
