import pytest

from mmtrackgen.datasets import make_synthetic_dataset


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    """A micro synthetic world (2 train videos, 1 val, 8 frames of 32x32) for training the
    micro config (tests/data/trackdiff_micro.py) with tools/train.py."""
    root = tmp_path_factory.mktemp('world') / 'synthetic'
    make_synthetic_dataset(
        str(root),
        splits={
            'train': 2,
            'val': 1
        },
        novel_videos=0,
        frames_per_video=8,
        image_size=(32, 32),
        seed=3,
        progress=False)
    return str(root) + '/'
