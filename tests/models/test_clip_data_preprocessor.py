import pytest
import torch

from mmtrackgen.registry import MODELS
from mmtrackgen.structures import TrackletClipSample


def sample(video, num_frames=2, num_slots=3):
    s = TrackletClipSample(metainfo=dict(video_name=video, caption=f'cap {video}'))
    s.gt_boxes = torch.rand(num_frames, num_slots, 4)
    s.gt_visible = torch.ones(num_frames, num_slots, dtype=torch.bool)
    s.gt_visibility = torch.ones(num_frames, num_slots)
    s.gt_labels = torch.arange(num_slots)
    s.gt_instance_ids = torch.arange(num_slots) + 10
    s.gt_slot_mask = torch.ones(num_slots, dtype=torch.bool)
    return s


def test_batches_and_normalises_to_minus_one_one():
    pre = MODELS.build(dict(type='ClipDataPreprocessor'))
    frames = [
        torch.full((2, 3, 4, 5), 255, dtype=torch.uint8),
        torch.zeros((2, 3, 4, 5), dtype=torch.uint8)
    ]
    out = pre(dict(inputs=frames, data_samples=[sample('a'), sample('b')]))
    inputs = out['inputs']
    assert inputs['frames'].shape == (2, 2, 3, 4, 5)
    assert inputs['frames'][0].eq(1).all() and inputs['frames'][1].eq(-1).all()
    assert inputs['boxes'].shape == (2, 2, 3, 4) and inputs['visible'].shape == (2, 2, 3)
    assert inputs['labels'].shape == (2, 3) and inputs['slot_mask'].dtype == torch.bool
    assert inputs['captions'] == ['cap a', 'cap b']
    assert torch.equal(pre.denormalize(inputs['frames'][:, 0]), torch.stack(frames)[:, 0])


def test_per_channel_statistics_and_tracklets_only_batches():
    pre = MODELS.build(dict(type='ClipDataPreprocessor', mean=[0, 100, 200], std=[1, 2, 4]))
    frames = [torch.full((1, 3, 2, 2), 200, dtype=torch.uint8)]
    got = pre(dict(inputs=frames, data_samples=[sample('a', 1)]))['inputs']['frames']
    assert got[0, 0, :, 0, 0].tolist() == [200, 50, 0]
    layouts = pre(dict(inputs=[None], data_samples=[sample('a')]))['inputs']
    assert 'frames' not in layouts and layouts['boxes'].shape == (1, 2, 3, 4)


def test_refuses_batches_of_different_sizes_naming_videos():
    pre = MODELS.build(dict(type='ClipDataPreprocessor'))
    frames = [
        torch.zeros((2, 3, 4, 5), dtype=torch.uint8),
        torch.zeros((2, 3, 8, 5), dtype=torch.uint8)
    ]
    with pytest.raises(ValueError, match=r"frames differ.*\['a', 'b'\]"):
        pre(dict(inputs=frames, data_samples=[sample('a'), sample('b')]))
    with pytest.raises(ValueError, match='boxes differ'):
        pre(dict(inputs=[None, None], data_samples=[sample('a'), sample('b', num_slots=4)]))
    with pytest.raises(ValueError, match='std'):
        MODELS.build(dict(type='ClipDataPreprocessor', std=0))
