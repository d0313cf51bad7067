"""Each full-size text-to-video recipe, built on a tiny folder without GLIGEN weights, trains
for two optimizer steps and every part of the tracklets then reaches the loss: boxes,
categories, identities and visibility (issue 20, item 1).

The grounding starts with closed gates (tanh(0) = 0) when no GLIGEN folder is given; frozen, as
the recipes freeze pretrained grounding, it would stay closed and categories and identities,
which reach the generator only through the grounding tokens, would never reach the loss.
"""
from pathlib import Path

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper

from mmtrackgen.models.conditioning import GatedGrounding
from mmtrackgen.registry import DATASETS, MODELS
from mmtrackgen.utils import load_config
from tests.factories import RECIPES, moving_track, tiny_recipe_options, write_cocovid
from .conftest import GOT10K_CLASSES

ROOT = Path(__file__).resolve().parents[2]
YTVIS = load_config(str(ROOT / 'configs/_base_/datasets/ytvis2021.py')).classes
# Each recipe's classes (as its data has them) and the two categories of the tiny video.
DATA = dict(
    ytvis=(YTVIS, ('cat', 'dog')),
    mot17=(('pedestrian', ), ('pedestrian', 'pedestrian')),
    got10k=(GOT10K_CLASSES, GOT10K_CLASSES[:2]))


def tiny_set(root, classes, categories):
    """One 4-frame 32x32 video with two moving instances of ``categories``."""
    first, second = (classes.index(c) for c in categories)
    tracks = {
        1: moving_track(first, 0, 4, (2, 2), (12, 10), (2, 1)),
        2: moving_track(second, 0, 4, (16, 14), (10, 12), (-1, 1)),
    }
    return write_cocovid(
        str(root), [dict(name='v', num_frames=4, size=(32, 32), tracks=tracks)], classes=classes)


def build_recipe(recipe, folder, tmp_path):
    ann = tiny_set(tmp_path / 'data', *DATA[recipe])
    options = tiny_recipe_options(
        folder,
        class_file=ann if recipe == 'got10k' else None,
        data_root=tmp_path / 'data',
        ann_file='annotations/train.json')
    cfg = load_config(str(ROOT / f'configs/trackdiff/{recipe}.py'), options)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    return cfg, model, dataset


@pytest.mark.parametrize('recipe', RECIPES)
def test_two_steps_of_every_recipe_train_the_whole_conditioning(recipe, t2v_folder, tmp_path):
    cfg, model, dataset = build_recipe(recipe, t2v_folder, tmp_path)
    grounding = [m for m in model.generator.modules() if isinstance(m, GatedGrounding)]
    assert grounding and all(p.requires_grad for m in grounding for p in m.parameters())
    data = model.data_preprocessor(pseudo_collate([dataset[0]]), True)
    inputs = data['inputs']
    slots = (inputs['labels'][0] >= 0).nonzero().flatten().tolist()  # the two instances
    assert len(slots) == 2

    # The recipe's optimizer and gradient clipping, in fp32 on the CPU (bf16 AMP needs a GPU),
    # at lr 1e-2 without warm-up so that two steps move the gates past float rounding.
    optim_wrapper = build_optim_wrapper(
        model,
        dict(
            type='OptimWrapper',
            optimizer=dict(cfg.optim_wrapper.optimizer, lr=1e-2),
            clip_grad=cfg.optim_wrapper.clip_grad))
    # Caption and tracklet dropout would, by chance, leave a step without tracklets.
    model.caption_dropout = model.tracklet_dropout = 0.0
    model.train()
    for step in range(2):
        torch.manual_seed(step)
        loss = model(**data, mode='loss')['loss']
        optim_wrapper.backward(loss)
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        optim_wrapper.step()
        optim_wrapper.zero_grad()
    # At the second step, gradients reach each input through the grounding tokens: the token
    # MLP's weights on the category vector and on the box features, the identity projection.
    # (All exactly zero while the grounding is frozen shut.)
    encoder = model.tracklet_encoder
    dc = encoder.category_embedding.embed_dim
    first = grads.get('tracklet_encoder.token_mlp.0.weight', torch.zeros(1, dc + 1))  # (hid, Dc+Dp)
    reached = dict(
        categories=first[:, :dc],
        boxes=first[:, dc:],
        identities=grads.get('tracklet_encoder.identity_proj.weight', torch.zeros(1)),
        grounding=torch.tensor([g.abs().sum() for n, g in grads.items() if '.fuser.' in n]))
    for what, grad in reached.items():
        assert grad.abs().sum() > 0, f'{recipe}: no gradient reaches the {what}'

    model.eval()

    def predict(**changed):
        torch.manual_seed(5)  # the same noise and timesteps for every input
        with torch.no_grad():
            return model(dict(inputs, **changed), mode='tensor')  # (B, F, C, h, w)

    base = predict()
    a, b = slots
    moved = inputs['boxes'].clone()
    moved[0, :, a] += torch.tensor([0.1, 0.05, 0.1, 0.05])
    hidden = inputs['visible'].clone()
    hidden[0, 1:, a] = False
    changes = dict(boxes=dict(boxes=moved), visibility=dict(visible=hidden))
    labels = inputs['labels'].clone()
    labels[0, a], labels[0, b] = inputs['labels'][0, b], inputs['labels'][0, a]
    if not torch.equal(labels, inputs['labels']):  # MOT17's one category cannot be swapped
        changes['categories'] = dict(labels=labels)
    assert recipe == 'mot17' or 'categories' in changes
    # Swapping two instances' slots (their identities) changes the prediction too, but after
    # two steps by less than a swap's float rounding: the identity gradient above shows it.
    # Boxes and visibility also reach the enhancers, which trained all along; categories only
    # the grounding, whose gates two small steps open to ~1e-2 (the prediction moves by
    # ~1e-6): it must change at all, where a frozen, closed grounding left it bit-for-bit equal.
    least = dict(boxes=1e-4, visibility=1e-4, categories=0.0)
    for what, changed in changes.items():
        difference = (predict(**changed) - base).abs().max().item()
        assert difference > least[what], f'{recipe}: the {what} do not reach the loss'
