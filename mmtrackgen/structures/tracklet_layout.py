"""A layout: the tracklets of one clip without its frames, the unit generation works on."""
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass
class TrackletLayout:
    """The tracklets of one clip (or whole video) of F frames and N instances, in pixels.

    Attributes:
        name: the clip's name, unique in its file; becomes the generated video's name.
        image_size: (H, W) of the frames, pixels.
        boxes: (F, N, 4) float32 xyxy pixels; rows where ``visible`` is False are ignored
            (kept at 0).
        visible: (F, N) bool, whether instance n is in frame f.
        instance_ids: (N,) int64, unique within the layout.
        categories: N category names.
        visibility: (F, N) float32 in [0, 1], the visible fraction of each box (1 when the
            source has none); 0 where not visible.
        frame_ids: (F,) int64 frame numbers of the source (0..F-1 for layouts without any).
        caption: optional text caption of the clip.
        source: where the layout came from (file, video and first frame), for messages.
    """
    name: str
    image_size: tuple[int, int]
    boxes: np.ndarray
    visible: np.ndarray
    instance_ids: np.ndarray
    categories: list[str]
    visibility: np.ndarray = None
    frame_ids: np.ndarray = None
    caption: str | None = None
    source: str = field(default='', compare=False)

    def __post_init__(self):
        num_frames, num_instances = self.visible.shape
        if self.visibility is None:
            self.visibility = self.visible.astype(np.float32)
        if self.frame_ids is None:
            self.frame_ids = np.arange(num_frames, dtype=np.int64)
        shapes = dict(
            boxes=((num_frames, num_instances, 4), self.boxes.shape),
            instance_ids=((num_instances, ), self.instance_ids.shape),
            categories=((num_instances, ), (len(self.categories), )),
            visibility=((num_frames, num_instances), self.visibility.shape),
            frame_ids=((num_frames, ), self.frame_ids.shape))
        for name, (want, got) in shapes.items():
            if tuple(got) != want:
                raise ValueError(f"layout '{self.name}': `{name}` has shape {tuple(got)}, "
                                 f'expected {want} for {num_frames} frames x '
                                 f'{num_instances} instances')

    @property
    def num_frames(self) -> int:
        return self.visible.shape[0]

    @property
    def num_instances(self) -> int:
        return self.visible.shape[1]

    def copy(self, **changes) -> 'TrackletLayout':
        """A copy sharing no array or list with this layout (so it can be changed freely), with
        ``changes`` replacing fields (they are taken as given, not copied)."""
        fields = dict(
            image_size=tuple(self.image_size),
            boxes=self.boxes.copy(),
            visible=self.visible.copy(),
            instance_ids=self.instance_ids.copy(),
            categories=list(self.categories),
            visibility=self.visibility.copy(),
            frame_ids=self.frame_ids.copy())
        fields.update(changes)
        return replace(self, **fields)
