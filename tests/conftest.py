from pathlib import Path

import pytest
import torch

from mmtrackgen.registry import MODELS
from mmtrackgen.utils import load_config

MICRO_CONFIG = str(Path(__file__).resolve().parent / 'data/trackdiff_micro.py')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A randomly initialised micro model (tests/data/trackdiff_micro.py) saved as a
    Runner-style checkpoint."""
    torch.manual_seed(0)
    model = MODELS.build(load_config(MICRO_CONFIG).model)
    path = tmp_path_factory.mktemp('ckpt') / 'micro.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path)
