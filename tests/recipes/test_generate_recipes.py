"""tools/generate.py on each full-size text-to-video recipe, built on a tiny folder: the
categories come from where the recipe gives them to the model (issue 20, item 3)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmtrackgen.generation.runner import GenerationInputError, model_classes
from mmtrackgen.registry import MODELS
from mmtrackgen.utils import load_config
from tests.factories import RECIPES, cli_options, moving_track, tiny_recipe_options, write_cocovid
from .conftest import CATEGORY, GOT10K_CLASSES

ROOT = Path(__file__).resolve().parents[2]


def recipe_options(recipe, t2v_folder, got10k_class_file):
    return tiny_recipe_options(
        t2v_folder, class_file=got10k_class_file if recipe == 'got10k' else None)


def test_model_classes_are_read_where_each_recipe_gives_them(t2v_folder, got10k_class_file):
    classes = {
        recipe: model_classes(load_config(str(ROOT / f'configs/trackdiff/{recipe}.py')))
        for recipe in ('ytvis', 'mot17')
    }
    assert len(classes['ytvis']) == 40 and classes['ytvis'][5] == 'cat'
    assert classes['mot17'] == ['pedestrian']
    cfg = load_config(
        str(ROOT / 'configs/trackdiff/got10k.py'),
        recipe_options('got10k', t2v_folder, got10k_class_file))
    assert model_classes(cfg) == list(GOT10K_CLASSES)
    # Without the annotation file the message names it.
    with pytest.raises(FileNotFoundError, match='got10k_train_cocoformat.json'):
        model_classes(load_config(str(ROOT / 'configs/trackdiff/got10k.py')))
    # A learned table whose size disagrees with the names is refused.
    tiny = load_config(str(ROOT / 'tests/data/trackdiff_micro.py'))
    tiny.model.tracklet_encoder.category_embedding.num_classes = 3
    with pytest.raises(GenerationInputError, match='num_classes=3 .* names 4 categories'):
        model_classes(tiny)


@pytest.mark.parametrize('recipe', RECIPES)
def test_every_recipe_generates_a_clip(recipe, t2v_folder, got10k_class_file, tmp_path):
    options = recipe_options(recipe, t2v_folder, got10k_class_file)
    config = str(ROOT / f'configs/trackdiff/{recipe}.py')
    torch.manual_seed(0)
    model = MODELS.build(load_config(config, options).model)
    checkpoint = tmp_path / 'model.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    category = CATEGORY[recipe]
    tracklets = write_cocovid(
        str(tmp_path / 'layouts'), [
            dict(
                name='walk',
                num_frames=4,
                size=(32, 32),
                tracks={3: moving_track(0, 0, 4, (2, 3), (12, 10), (2, 1))})
        ],
        classes=(category, ),
        write_frames=False)
    out = tmp_path / 'out'
    cmd = [
        sys.executable,
        str(ROOT / 'tools/generate.py'), config,
        str(checkpoint), '--tracklets', tracklets, '--out-dir',
        str(out), '--batch-size', '1', '--device', 'cpu', *cli_options(options)
    ]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    ann = json.loads((out / 'annotations.json').read_text())
    assert [c['name'] for c in ann['categories']] == model_classes(load_config(config, options))
    assert [v['name'] for v in ann['videos']] == ['walk_000000'] and len(ann['images']) == 4
    assert {a['instance_id'] for a in ann['annotations']} == {3}
    names = {c['id']: c['name'] for c in ann['categories']}
    assert {names[a['category_id']] for a in ann['annotations']} == {category}
    frames = [np.asarray(Image.open(out / image['file_name'])) for image in ann['images']]
    assert all(frame.shape == (32, 32, 3) for frame in frames)
