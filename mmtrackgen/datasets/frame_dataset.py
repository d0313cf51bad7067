"""Single frames of a CocoVID dataset, for models that learn from images (the frame autoencoder)."""
import os.path as osp
from typing import List

from mmengine.dataset import BaseDataset

from mmtrackgen.registry import DATASETS
from .tracklets import load_cocovid


@DATASETS.register_module()
class VideoFrameDataset(BaseDataset):
    """Every frame of every video of a CocoVID file, one item each: ``dict(img_path, width,
    height, video_id, frame_id)``. Annotations are not read: the frames are all it gives.

    Args:
        ann_file (str): the CocoVID file, relative to ``data_root``.
        data_prefix (dict): ``dict(img_path=folder)`` the ``file_name`` entries are under.
        setup_hint (str): where the README says how to get this dataset (named in errors).
        **kwargs: ``BaseDataset`` arguments (``data_root``, ``pipeline``, ``test_mode``...).
    """

    def __init__(self, *args, setup_hint: str = 'README.md#datasets', **kwargs):
        self.setup_hint = setup_hint
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f"{type(self).__name__}: annotation file '{self.ann_file}' not found (data_root "
                f"'{self.data_root}'). See {self.setup_hint} for how to get this dataset.")
        ann = load_cocovid(self.ann_file)
        img_root = self.data_prefix.get('img_path') or ''
        images = sorted(ann['images'], key=lambda im: (im['video_id'], im['frame_id']))
        return [
            dict(
                img_path=osp.join(img_root, im['file_name']),
                width=im['width'],
                height=im['height'],
                video_id=im['video_id'],
                frame_id=im['frame_id']) for im in images
        ]
