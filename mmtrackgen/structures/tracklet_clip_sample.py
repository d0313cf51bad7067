"""The typed container that carries one clip's tracklets from the dataset to the model."""
import torch
from mmengine.structures import BaseDataElement


class TrackletClipSample(BaseDataElement):
    """One clip of F frames with up to N instance slots.

    Data fields (tensors; N is the configured number of slots, empty slots are padding):
        gt_boxes (F, N, 4) float: boxes, xyxy normalised to [0, 1] by the clip's width and
            height; zeros where the slot is not visible.
        gt_visible (F, N) bool: whether the slot's instance is visible in the frame.
        gt_visibility (F, N) float: visible fraction of the object (occlusion, truncation).
        gt_labels (N,) long: category index, -1 for an empty slot.
        gt_instance_ids (N,) long: the dataset's instance id, -1 for an empty slot.
        gt_slot_mask (N,) bool: slots holding an instance.
    Metainfo: video_id, video_name, clip_start, frame_ids, img_paths, img_shape (H, W),
        ori_shape, scale_factor, flip, crop_box, caption, num_dropped_instances.
    """

    def _tensor_property(name, doc):  # noqa: N805 (builds properties at class creation)

        def getter(self):
            return getattr(self, '_' + name)

        def setter(self, value):
            self.set_field(value, '_' + name, dtype=torch.Tensor)

        def deleter(self):
            delattr(self, '_' + name)

        return property(getter, setter, deleter, doc)

    gt_boxes = _tensor_property('gt_boxes', '(F, N, 4) normalised xyxy boxes')
    gt_visible = _tensor_property('gt_visible', '(F, N) visibility flags')
    gt_visibility = _tensor_property('gt_visibility', '(F, N) visible fraction')
    gt_labels = _tensor_property('gt_labels', '(N,) category indices, -1 when empty')
    gt_instance_ids = _tensor_property('gt_instance_ids', '(N,) instance ids, -1 when empty')
    gt_slot_mask = _tensor_property('gt_slot_mask', '(N,) slots that hold an instance')
    del _tensor_property
