"""Boximator-style "self-tracking" targets: every instance's box drawn in its slot's colour."""
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mmtrackgen.registry import TRANSFORMS
from mmtrackgen.visualization import slot_colours


@TRANSFORMS.register_module()
class DrawSlotBoxes(BaseTransform):
    """Draw each visible slot's box outline into the frames in a colour tied to the slot.

    Training first on such clips (stage 1 of the self-tracking recipe in the method notes) makes
    the model bind each slot's tracklet to a place in the frame quickly, since a wrong box is a
    large, easy-to-see error; stage 2 trains on clean clips. With ``AssignInstanceSlots(
    shuffle=True)`` before it, the colour an object gets changes from clip to clip. Runs after
    :class:`AssignInstanceSlots` and the geometric transforms.

    Args:
        thickness (int): outline width in pixels.
        prob (float): probability that a clip gets the boxes (the rest stay clean).
    """

    def __init__(self, thickness: int = 1, prob: float = 1.0):
        if thickness < 1:
            raise ValueError(f'thickness must be >= 1, got {thickness}')
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.thickness = thickness
        self.prob = prob

    @cache_randomness
    def _apply(self) -> bool:
        return bool(np.random.rand() < self.prob)

    def transform(self, results: dict) -> dict:
        if results.get('frames') is None or not self._apply():
            return results
        frames = results['frames'].copy()  # (F, H, W, 3)
        h, w = frames.shape[1:3]
        colours = slot_colours(results['gt_boxes'].shape[1])  # (N, 3)
        scale = np.array([w, h, w, h])
        th = self.thickness
        for t, s in zip(*np.nonzero(results['gt_visible'])):
            x1, y1, x2, y2 = np.round(results['gt_boxes'][t, s] * scale).astype(int)
            x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
            box = frames[t, y1:y2, x1:x2]  # a view: edges written in place
            box[:th], box[-th:], box[:, :th], box[:, -th:] = (colours[s], ) * 4
        results['frames'] = frames
        results['self_tracking'] = True
        return results
