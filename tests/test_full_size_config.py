"""The full-size text-to-video config builds and trains a step from a local diffusers folder
(tiny random weights in the layout of text-to-video-ms-1.7b: unet/, vae/, text_encoder/,
tokenizer/, scheduler/)."""
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmtrackgen.registry import MODELS
from mmtrackgen.structures import TrackletClipSample
from tests.factories import write_tiny_t2v_folder

ROOT = Path(__file__).resolve().parents[1]


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


def test_attention_is_pytorch_sdpa_everywhere():
    from diffusers.models.attention_processor import AttnProcessor2_0

    from mmtrackgen.models.generators import TrackletUNet3D
    unet = TrackletUNet3D(
        block_out_channels=(16, 32),
        layers_per_block=1,
        attention_head_dim=4,
        norm_num_groups=8,
        cross_attention_dim=32,
        down_block_types=('CrossAttnDownBlock3D', 'DownBlock3D'),
        up_block_types=('UpBlock3D', 'CrossAttnUpBlock3D'),
        grounding_context_dim=32,
        enhancer_track_dim=8)
    processors = unet.attn_processors
    assert any('.fuser.' in name for name in processors)  # grounding attention included
    assert any(name.startswith('transformer_in.') for name in processors)
    assert all(isinstance(p, AttnProcessor2_0) for p in processors.values())


@pytest.mark.parametrize('name, strategy', [('ytvis_fsdp', 'FSDPStrategy'),
                                            ('ytvis_deepspeed_zero2', 'DeepSpeedStrategy')])
def test_sharded_configs_run_on_the_flexible_runner(name, strategy):
    from mmtrackgen.utils import runner_config
    cfg = runner_config(str(ROOT / f'configs/trackdiff/{name}.py'))
    assert cfg.runner_type == 'FlexibleRunner' and cfg.strategy.type == strategy
    assert cfg.model.generator.type == 'PretrainedTrackletUNet3D'
    plain = runner_config(str(ROOT / 'configs/trackdiff/ytvis.py'))
    assert 'runner_type' not in plain
    # The DDP recipe trains in bf16 through mmengine's AmpOptimWrapper.
    assert plain.optim_wrapper.type == 'AmpOptimWrapper'
    assert plain.optim_wrapper.dtype == 'bfloat16'


def test_vae_slicing_and_tiling_decode_like_the_plain_vae(tmp_path):
    from mmtrackgen.models.data_preprocessors import TrackDiffusionDataPreprocessor
    folder = tmp_path / 'sd'
    torch.manual_seed(0)
    AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=('DownEncoderBlock2D', ) * 2,
        up_block_types=('UpDecoderBlock2D', ) * 2,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16).save_pretrained(str(folder / 'vae'))
    plain = TrackDiffusionDataPreprocessor(vae=dict(pretrained=str(folder)))
    sliced = TrackDiffusionDataPreprocessor(vae=dict(pretrained=str(folder)), vae_slicing=True)
    tiled = TrackDiffusionDataPreprocessor(vae=dict(pretrained=str(folder)), vae_tiling=True)
    assert sliced.vae.use_slicing and tiled.vae.use_tiling
    latents = torch.randn(1, 3, 4, 12, 12)  # (B, F, C, h, w): 24x24 frames, over one tile
    frames = plain.decode_latents(latents)
    assert torch.equal(sliced.decode_latents(latents), frames)
    tiled_frames = tiled.decode_latents(latents)
    assert tiled_frames.shape == frames.shape == (1, 3, 3, 24, 24)
    with pytest.raises(ValueError, match='need a `vae`'):
        TrackDiffusionDataPreprocessor(vae_tiling=True)
    (tmp_path / 'novae' / 'vae').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match='config.json'):
        TrackDiffusionDataPreprocessor(vae=dict(pretrained=str(tmp_path / 'novae')))


def test_compile_generator_compiles_in_place_keeping_state_dict_keys():
    from tests.models.test_trackdiffusion import build
    model = build(compile_generator=dict(backend='eager'))
    assert model.generator._compiled_call_impl is not None
    assert all(not k.startswith('generator._orig_mod') for k in model.state_dict())
