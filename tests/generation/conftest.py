import pytest

from tests.factories import moving_track, write_cocovid

CLASSES = ('square', 'circle', 'triangle', 'cross')  # the micro config's classes


@pytest.fixture(scope='module')
def tracklets(tmp_path_factory):
    """CocoVID tracklets without frames: two videos of 8 and 5 frames at 32x24."""
    root = tmp_path_factory.mktemp('tracklets')
    videos = [
        dict(
            name='walk',
            num_frames=8,
            tracks={
                1: moving_track(0, 0, 8, (2, 2), (6, 6), (2, 1)),
                2: moving_track(1, 3, 5, (20, 10), (5, 8), (-1, 0)),
            }),
        dict(name='short', num_frames=5, tracks={7: moving_track(1, 0, 5, (4, 4), (8, 8), (1, 1))}),
    ]
    return write_cocovid(str(root), videos, classes=CLASSES, write_frames=False)
