"""A briefly trained micro model: moving one box changes the samples mostly inside the old and
new boxes, measured on held-out synthetic clips.

With grounding confined to boxes (the tiny config's `ground_within_boxes`) even the untrained
micro model changes mostly there (mean locality 6.7 over these clips at 0 iterations, 10.7 after
60, when measured); the hour-trained tiny model's figure (55% of the change inside boxes that
cover 7.6% of the frame) is in docs/training.md.
"""
import numpy as np
import pytest
import torch
from mmengine.dataset import DefaultSampler, pseudo_collate
from torch.utils.data import DataLoader

from mmtrackgen.datasets.synthetic import make_synthetic_dataset
from mmtrackgen.evaluation import change_locality
from mmtrackgen.registry import DATASETS, MODELS
from mmtrackgen.utils import load_config

CONFIG = 'tests/data/trackdiff_micro.py'
TRAIN_ITERS = 60


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('world') / 'synthetic') + '/'
    make_synthetic_dataset(
        root,
        splits={
            'train': 8,
            'test': 2
        },
        novel_videos=0,
        frames_per_video=8,
        image_size=(32, 32),
        num_instances=(1, 2),
        seed=1,
        progress=False)
    cfg = load_config(CONFIG)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    train_set = DATASETS.build(dict(cfg.train_dataloader.dataset, data_root=root))
    loader = DataLoader(
        train_set,
        batch_size=4,
        sampler=DefaultSampler(train_set, seed=0),
        collate_fn=pseudo_collate)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    step = 0
    while step < TRAIN_ITERS:
        for batch in loader:
            data = model.data_preprocessor(batch, True)
            loss = model(**data, mode='loss')['loss']
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step == TRAIN_ITERS:
                break
    model.eval()
    test_set = DATASETS.build(
        dict(
            cfg.preview_clips,
            data_root=root,
            ann_file='annotations/test_cocoformat.json',
            data_prefix=dict(img_path='test/')))
    return model, test_set


def sample(model, item, seed, edit=None):
    data = model.data_preprocessor(pseudo_collate([item]), False)
    if edit is not None:
        edit(data['inputs'])
    out = model.predict(data['inputs'], data['data_samples'], num_inference_steps=5, seed=seed)
    return out[0].pred_frames.permute(0, 2, 3, 1).numpy()  # (F, H, W, 3)


def test_moving_a_box_changes_the_samples_mostly_inside_its_boxes(trained):
    model, test_set = trained
    localities = []
    for index in range(len(test_set)):
        item = test_set[index]
        clip = item['data_samples']
        visible = clip.gt_visible.numpy()  # (F, N)
        slot = int(np.argmax(visible.sum(0)))
        old = clip.gt_boxes[:, slot].clone()  # (F, 4)
        shift = 0.3 if float(old[visible[:, slot], 2].max()) + 0.3 <= 1 else -0.3
        new = old + torch.tensor([shift, 0, shift, 0])
        new[~clip.gt_visible[:, slot]] = 0

        def move(inputs, slot=slot, new=new):
            inputs['boxes'][0, :, slot] = new

        before = sample(model, item, seed=index)
        after = sample(model, item, seed=index, edit=move)
        old_np = old.numpy() * visible[:, slot, None]
        localities.append(change_locality(before, after, old_np, new.numpy())['locality'])
    # 1 would be a change spread evenly over the frame.
    assert np.mean(localities) > 1.5, localities
