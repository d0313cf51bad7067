import os
import sys

import numpy as np
from mmengine.registry import init_default_scope
from PIL import Image

from mmtrackgen.registry import DATASETS

sys.path.insert(0,
                os.path.join(os.path.dirname(__file__), '..', '..', 'tools', 'dataset_converters'))
import got10k_to_cocovid  # noqa: E402


def fake_sequence(root, name, cls, boxes, absent, cover):
    seq = root / 'train' / name
    seq.mkdir(parents=True)
    for t in range(len(boxes)):
        Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(seq / f'{t + 1:08d}.jpg')
    (seq / 'groundtruth.txt').write_text('\n'.join(','.join(map(str, b)) for b in boxes))
    (seq / 'absence.label').write_text('\n'.join(map(str, absent)))
    (seq / 'cover.label').write_text('\n'.join(map(str, cover)))
    (seq / 'meta_info.ini').write_text(f'[METAINFO]\nobject_class: {cls}\nmotion_class: x\n')


def test_converted_got10k_loads_as_clips(tmp_path):
    fake_sequence(tmp_path, 'GOT-10k_Train_000001', 'zebra', [[1, 2, 5, 6]] * 4, [0, 1, 0, 0],
                  [8, 0, 4, 8])
    fake_sequence(tmp_path, 'GOT-10k_Train_000002', 'canoe', [[3, 3, 4, 4]] * 4, [0] * 4, [8] * 4)
    out = got10k_to_cocovid.convert(str(tmp_path), 'train')
    init_default_scope('mmtrackgen')
    ds = DATASETS.build(
        dict(
            type='TrackletClipDataset',
            data_root=str(tmp_path),
            ann_file=out,
            data_prefix=dict(img_path=str(tmp_path / 'train')),
            clip_length=4,
            pipeline=[
                dict(type='LoadTrackletClip'),
                dict(type='AssignInstanceSlots', num_slots=1),
                dict(type='PackClipInputs')
            ]))
    assert ds.metainfo['classes'] == ('zebra', 'canoe') and len(ds) == 2
    sample = ds[0]['data_samples']
    assert sample.gt_visible[:, 0].tolist() == [True, False, True, True]  # absent frame 2
    assert sample.gt_visibility[:, 0].tolist() == [1.0, 0.0, 0.5, 1.0]
    np.testing.assert_allclose(sample.gt_boxes[0, 0].numpy(), [1 / 32, 2 / 24, 6 / 32, 8 / 24])
