"""mmdet's ByteTracker, ignoring detections too small to track."""
from mmdet.models.trackers import ByteTracker
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmtrackgen.registry import MODELS


@MODELS.register_module()
class MinSizeByteTracker(ByteTracker):
    """:class:`mmdet.models.trackers.ByteTracker` that drops detections whose width or height is
    at most ``min_box_size`` pixels before associating them.

    The Kalman filter's noise scales with a box's height, so a detection of zero height makes
    its update fail (a singular covariance) and ends the test loop. A detector trained briefly,
    or on few images, outputs such boxes; YOLOX's head has no size filter of its own.

    Args:
        min_box_size (float): the smallest width and height kept, exclusive, in pixels of the
            boxes the detector outputs.
        **kwargs: ``ByteTracker``'s arguments.
    """

    def __init__(self, min_box_size: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if not min_box_size >= 0:
            raise ValueError(f'min_box_size must be >= 0, got {min_box_size}')
        self.min_box_size = min_box_size

    def track(self, data_sample: DetDataSample, **kwargs) -> InstanceData:
        detections = data_sample.pred_instances
        boxes = detections.bboxes  # (K, 4) x1, y1, x2, y2
        keep = ((boxes[:, 2] - boxes[:, 0] > self.min_box_size) &
                (boxes[:, 3] - boxes[:, 1] > self.min_box_size))  # (K, )
        if not bool(keep.all()):
            data_sample.pred_instances = detections[keep]
        return super().track(data_sample, **kwargs)
