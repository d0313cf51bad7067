"""A tiny text-to-video folder (ModelScope layout) and tiny data for the full-size recipes."""
import pytest

from tests.factories import moving_track, write_cocovid, write_tiny_t2v_folder

# A category of each recipe's data (GOT-10k's come from its annotation file, written here).
CATEGORY = dict(ytvis='cat', mot17='pedestrian', got10k='kite')
GOT10K_CLASSES = ('zebra', 'kite', 'ship')


@pytest.fixture(scope='session')
def t2v_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp('pretrained') / 'text-to-video-ms-1.7b'
    write_tiny_t2v_folder(folder)
    return folder


@pytest.fixture(scope='session')
def got10k_class_file(tmp_path_factory):
    """A CocoVID file whose categories are GOT-10k's class names (the recipe reads them there)."""
    root = tmp_path_factory.mktemp('got10k')
    return write_cocovid(str(root), [], classes=GOT10K_CLASSES, write_frames=False)
