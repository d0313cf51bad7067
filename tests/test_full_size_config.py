"""The full-size text-to-video config builds and trains a step from a local diffusers folder
(tiny random weights in the layout of text-to-video-ms-1.7b: unet/, vae/, text_encoder/,
tokenizer/, scheduler/)."""
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet3DConditionModel
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmtrackgen.registry import MODELS
from mmtrackgen.structures import TrackletClipSample
from tests.factories import write_tiny_clip

ROOT = Path(__file__).resolve().parents[1]


def write_tiny_t2v_folder(folder: Path):
    torch.manual_seed(0)
    UNet3DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        attention_head_dim=4,
        norm_num_groups=8,
        cross_attention_dim=32,
        down_block_types=('CrossAttnDownBlock3D', 'DownBlock3D'),
        up_block_types=('UpBlock3D', 'CrossAttnUpBlock3D')).save_pretrained(str(folder / 'unet'))
    AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=('DownEncoderBlock2D', ) * 2,
        up_block_types=('UpDecoderBlock2D', ) * 2,
        latent_channels=4,
        norm_num_groups=4).save_pretrained(str(folder / 'vae'))
    write_tiny_clip(folder / 'text_encoder')
    write_tiny_clip(folder / 'tokenizer')
    DDPMScheduler(num_train_timesteps=50).save_pretrained(str(folder / 'scheduler'))


def test_ytvis_recipe_builds_freezes_and_steps_on_a_local_folder(tmp_path):
    folder = tmp_path / 'text-to-video-ms-1.7b'
    write_tiny_t2v_folder(folder)
    cfg = Config.fromfile(str(ROOT / 'configs/trackdiff/ytvis.py'))
    path = str(folder)
    model_cfg = cfg.model
    model_cfg.data_preprocessor.vae.pretrained = path
    model_cfg.data_preprocessor.text_encoder.pretrained = path
    model_cfg.generator.pretrained = path
    model_cfg.tracklet_encoder.category_embedding.pretrained = path
    model_cfg.noise_scheduler.from_pretrained = path
    model_cfg.gradient_checkpointing = False  # keeps the test fast; covered elsewhere
    init_default_scope('mmtrackgen')
    model = MODELS.build(model_cfg)
    assert model.tracklet_encoder.category_embedding.table.shape[0] == 40  # YTVIS classes
    frozen_spatial = model.generator.module_groups()['spatial']
    assert not any(p.requires_grad for m in frozen_spatial for p in m.parameters())
    assert all(p.requires_grad for p in model.tracklet_encoder.parameters())

    sample = TrackletClipSample(metainfo=dict(caption='a cat', img_shape=(16, 16)))
    sample.gt_boxes = torch.tensor([[[0.1, 0.1, 0.5, 0.6]]]).repeat(4, 1, 1)  # (F, N, 4)
    sample.gt_visible = torch.ones(4, 1, dtype=torch.bool)
    sample.gt_visibility = torch.ones(4, 1)
    sample.gt_labels = torch.tensor([5])
    sample.gt_instance_ids = torch.tensor([1])
    sample.gt_slot_mask = torch.ones(1, dtype=torch.bool)
    frames = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    data = model.data_preprocessor(dict(inputs=[frames], data_samples=[sample]), True)
    model.train()
    loss = model(**data, mode='loss')['loss']
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is None for m in frozen_spatial for p in m.parameters())
