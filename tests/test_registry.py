import subprocess
import sys

from mmengine.registry import DefaultScope, init_default_scope

from mmtrackgen.registry import DATASETS, MODELS, TRANSFORMS


def test_our_names_resolve_lazily_through_locations():
    # A fresh interpreter that imports only the registry: `locations` must find our modules.
    code = ('from mmtrackgen.registry import DATASETS, MODELS, TRANSFORMS; '
            'assert DATASETS.get("TrackletClipDataset") is not None; '
            'assert TRANSFORMS.get("AssignInstanceSlots") is not None; '
            'assert MODELS.get("ClipDataPreprocessor") is not None')
    subprocess.run([sys.executable, '-c', code], check=True)


def test_mmdet_and_mmengine_components_build_by_plain_names():
    init_default_scope('mmtrackgen')
    assert DefaultScope.get_current_instance().scope_name == 'mmtrackgen'
    assert MODELS.get('QDTrack').__module__.startswith('mmdet.')
    assert DATASETS.get('MOTChallengeDataset').__module__.startswith('mmdet.')
    assert TRANSFORMS.get('LoadImageFromFile') is not None
    assert MODELS.build(dict(type='ClipDataPreprocessor')).__class__.__name__ == \
        'ClipDataPreprocessor'
    assert DATASETS.scope == MODELS.scope == 'mmtrackgen'
