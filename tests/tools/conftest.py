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


@pytest.fixture(scope='module')
def test_world(tmp_path_factory):
    """A micro synthetic world with only a test split (3 videos, 8 frames of 48x48), for the
    tools that score or transform real clips."""
    root = tmp_path_factory.mktemp('world')
    make_synthetic_dataset(
        str(root),
        splits={'test': 3},
        novel_videos=0,
        frames_per_video=8,
        image_size=(48, 48),
        seed=5,
        progress=False)
    return root
