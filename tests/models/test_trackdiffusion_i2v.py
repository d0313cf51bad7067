"""TrackDiffusionI2V: EDM training, first-frame conditioning, sampling, SVD folders, generate.py."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import EulerDiscreteScheduler
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from mmtrackgen.models.conditioning import InstanceEnhancer
from mmtrackgen.models.trackdiffusion_i2v import (SVD_SCHEDULER, edm_loss_weight,
                                                  edm_preconditioning)
from mmtrackgen.registry import MODELS
from mmtrackgen.utils import load_config
from tests.factories import moving_track, write_cocovid, write_tiny_clip
from tests.models.test_trackdiffusion import clip_sample
from tests.models.test_tracklet_unet_spatiotemporal import TINY

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'tests/data/svd_micro.py')
NUM_CLASSES = 3


def model_cfg(**overrides):
    cfg = dict(
        type='TrackDiffusionI2V',
        generator=dict(
            type='TrackletUNetSpatioTemporal',
            **dict(TINY, in_channels=6, out_channels=3),
            grounding_context_dim=16,
            enhancer_track_dim=8,
            gate_init=0.5),
        tracklet_encoder=dict(
            type='TrackletEncoder',
            token_dim=16,
            track_dim=8,
            track_heads=2,
            category_embedding=dict(type='CategoryTable', num_classes=NUM_CLASSES, embed_dim=8)),
        num_inference_steps=3,
        guidance_scale=2.0)
    cfg.update(overrides)
    return cfg


def build(seed=0, **overrides):
    torch.manual_seed(seed)
    return MODELS.build(model_cfg(**overrides))


def batch(model, seeds=(0, 1), with_frames=True, first_frames=True):
    clips = [clip_sample(s) for s in seeds]
    for frames, sample in clips:
        if not with_frames and first_frames:
            sample.first_frame = frames[0]  # what tools/generate.py attaches
    data = dict(
        inputs=[c[0] if with_frames else None for c in clips], data_samples=[c[1] for c in clips])
    return model.data_preprocessor(data, True)


def test_edm_preconditioning_is_what_svds_euler_scheduler_samples_with():
    scheduler = EulerDiscreteScheduler(
        **{
            k: v
            for k, v in SVD_SCHEDULER.items() if k != 'type'
        }, prediction_type='v_prediction')
    scheduler.set_timesteps(5)
    x = torch.randn(2, 4, 3, 8, 8)  # (B, F, C, h, w)
    out = torch.randn_like(x)
    for i, t in enumerate(scheduler.timesteps):
        sigma = scheduler.sigmas[i].reshape(1)
        c_skip, c_out, c_in, c_noise = edm_preconditioning(sigma)
        torch.testing.assert_close(t.reshape(1), c_noise)  # the UNet's timestep
        torch.testing.assert_close(scheduler.scale_model_input(x, t), c_in * x)
        denoised = c_skip * x + c_out * out
        step = scheduler.step(out, t, x).prev_sample
        expected = x + (x - denoised) / sigma * (scheduler.sigmas[i + 1] - sigma)
        torch.testing.assert_close(step, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(edm_loss_weight(torch.tensor([1.0, 2.0])), torch.tensor([2.0, 1.25]))


@pytest.mark.parametrize('checkpointing', [False, True])
def test_loss_and_gradients_with_and_without_checkpointing(checkpointing):
    results = {}
    for flag in (False, True):
        model = build(gradient_checkpointing=flag).train()
        data = batch(model)
        assert data['inputs']['first_frames'].shape == (2, 3, 16, 16)
        torch.manual_seed(3)
        losses = model(**data, mode='loss')
        assert set(losses) == {'loss'} and losses['loss'].ndim == 0
        losses['loss'].backward()
        results[flag] = (losses['loss'].detach(), {
            n: p.grad.clone()
            for n, p in model.named_parameters() if p.grad is not None
        })
        if flag == checkpointing:
            enhancer = next(m for m in model.modules() if isinstance(m, InstanceEnhancer))
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enhancer.parameters())
            assert model.null_text.grad.abs().sum() > 0  # the tiny image context learns
    torch.testing.assert_close(results[False][0], results[True][0])
    for name, grad in results[False][1].items():
        torch.testing.assert_close(results[True][1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_image_and_tracklet_dropout_reach_the_generator():
    seen = []
    model = build(image_dropout=1.0, tracklet_dropout=1.0)
    model.generator.register_forward_hook(
        lambda m, args, kwargs, out: seen.append((args[0], kwargs)), with_kwargs=True)
    model(**batch(model), mode='loss')
    sample, kwargs = seen[-1]
    assert not sample[:, :, 3:].any()  # no first-frame latent
    assert not kwargs['encoder_hidden_states'].any() and not kwargs['tracklets'].visible.any()
    model.image_dropout = model.tracklet_dropout = 0.0
    data = batch(model)
    model(**data, mode='loss')
    sample, kwargs = seen[-1]
    # Each frame's input carries the (noise-augmented) first frame on the extra channels.
    first = data['inputs']['first_frames'][:, None].expand(-1, 4, -1, -1, -1)
    assert (sample[:, :, 3:] - first).abs().max() < 0.2
    assert torch.equal(kwargs['tracklets'].visible, data['inputs']['visible'])
    with pytest.raises(ValueError, match='image_dropout'):
        build(image_dropout=2.0)


def test_tensor_mode_and_argument_checks():
    model = build()
    assert model(**batch(model), mode='tensor').shape == (2, 4, 3, 16, 16)
    with pytest.raises(ValueError, match='2 x 3'):
        build(generator=dict(model_cfg()['generator'], in_channels=8))
    with pytest.raises(ValueError, match="timestep_type='continuous'"):
        build(noise_scheduler=dict(type='EulerDiscreteScheduler'))


def test_predict_from_first_frames_reproducible_per_sample_seed_with_batched_guidance():
    model = build().eval()
    calls = []
    model.generator.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    data = batch(model, with_frames=False)
    assert 'latents' not in data['inputs'] and data['inputs']['first_frames'].shape[0] == 2
    out = model.predict(data['inputs'], data['data_samples'], seed=7)
    assert calls == [4, 4, 4]  # conditional and unconditional together, 3 steps
    assert out[0].pred_frames.shape == (4, 3, 16, 16) and out[0].pred_frames.dtype == torch.uint8
    assert [s.pred_seed for s in out] == [7, 8]
    again = model.predict(data['inputs'], data['data_samples'], seed=7)
    assert torch.equal(out[1].pred_frames, again[1].pred_frames)
    alone = batch(model, seeds=(1, ), with_frames=False)
    solo = model.predict(alone['inputs'], alone['data_samples'], seed=8)
    assert (solo[0].pred_frames.int() - out[1].pred_frames.int()).abs().max() <= 1
    # The first frame conditions the clip.
    other = batch(model, seeds=(0, 1), with_frames=False)
    other['inputs']['first_frames'] = other['inputs']['first_frames'].flip(-1)
    flipped = model.predict(other['inputs'], other['data_samples'], seed=7)
    assert not torch.equal(flipped[0].pred_frames, out[0].pred_frames)
    calls.clear()
    model.predict(data['inputs'], data['data_samples'], guidance_scale=1.0)
    assert calls == [2, 2, 2]

    no_first = batch(model, with_frames=False, first_frames=False)
    with pytest.raises(ValueError, match='first frame per clip'):
        model.predict(no_first['inputs'], no_first['data_samples'])
    with pytest.raises(ValueError, match='EulerDiscreteScheduler'):
        model.predict(data['inputs'], data['data_samples'], scheduler='DDIMScheduler')


def test_sampler_steps_draw_from_each_clips_generator(monkeypatch):
    """SVD's Euler sampler draws step noise (used when ``s_churn`` > 0) from the generators it is
    given: each clip's own, as TrackDiffusion passes them (issue 20, item 4)."""
    import functools

    from diffusers import EulerDiscreteScheduler
    seen = []
    step = EulerDiscreteScheduler.step

    @functools.wraps(step)  # keeps step's signature
    def spy(self, *args, **kwargs):
        seen.append(kwargs.get('generator'))
        return step(self, *args, **kwargs)

    monkeypatch.setattr(EulerDiscreteScheduler, 'step', spy)
    model = build().eval()
    data = batch(model, with_frames=False)
    model.predict(data['inputs'], data['data_samples'], seed=7)
    assert len(seen) == 3
    for generators in seen:
        assert isinstance(generators, list) and len(generators) == 2
        assert all(isinstance(g, torch.Generator) for g in generators)
        assert generators[0] is not generators[1]
    assert [g.initial_seed() for g in seen[0]] == [7, 8]


def write_tiny_svd_folder(folder: Path):
    """Tiny random weights in the layout of stable-video-diffusion-img2vid."""
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection)
    torch.manual_seed(0)
    UNetSpatioTemporalConditionModel(**dict(TINY, cross_attention_dim=32)).save_pretrained(
        str(folder / 'unet'))
    AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 32),
        down_block_types=('DownEncoderBlock2D', ) * 2,
        latent_channels=4).save_pretrained(str(folder / 'vae'))
    CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
            projection_dim=32)).save_pretrained(str(folder / 'image_encoder'))
    CLIPImageProcessor(
        size={
            'shortest_edge': 32
        }, crop_size={
            'height': 32,
            'width': 32
        }).save_pretrained(str(folder / 'feature_extractor'))
    EulerDiscreteScheduler(
        **{
            k: v
            for k, v in SVD_SCHEDULER.items() if k != 'type'
        }, prediction_type='v_prediction').save_pretrained(str(folder / 'scheduler'))


def test_svd_ytvis_config_builds_trains_and_samples_on_a_local_svd_folder(tmp_path):
    folder = tmp_path / 'stable-video-diffusion-img2vid'
    write_tiny_svd_folder(folder)
    write_tiny_clip(tmp_path / 'clip')
    cfg = Config.fromfile(str(ROOT / 'configs/trackdiff/svd_ytvis.py'))
    assert cfg.num_frames == 16 and len(cfg.classes) == 40
    model_cfg = cfg.model
    for part in (model_cfg.data_preprocessor.vae, model_cfg.data_preprocessor.image_encoder,
                 model_cfg.generator):
        part.pretrained = str(folder)
    model_cfg.noise_scheduler.from_pretrained = str(folder)
    model_cfg.tracklet_encoder.category_embedding.pretrained = str(tmp_path / 'clip')
    init_default_scope('mmtrackgen')
    model = MODELS.build(model_cfg)
    assert model.null_text is None and 'null_text' not in model.state_dict()
    groups = model.generator.module_groups()
    assert not any(p.requires_grad for m in groups['spatial'] for p in m.parameters())
    assert all(p.requires_grad for m in groups['temporal'] + groups['enhancer']
               for p in m.parameters())
    assert not any(p.requires_grad for p in model.data_preprocessor.parameters())

    model.train()
    assert not model.data_preprocessor.image_encoder.training
    data = batch(model)
    inputs = data['inputs']
    assert inputs['latents'].shape == (2, 4, 4, 8, 8)  # (B, F, C, h, w): the VAE halves sides
    assert inputs['image_embeds'].shape == (2, 1, 32)
    loss = model(**data, mode='loss')['loss']
    loss.backward()
    assert torch.isfinite(loss)
    model.eval()
    data = batch(model, with_frames=False)
    out = model.predict(data['inputs'], data['data_samples'], num_inference_steps=2)
    assert out[0].pred_frames.shape == (4, 3, 16, 16)

    for part in ('vae', 'image_encoder'):
        with pytest.raises(FileNotFoundError, match=f"clip/{part}' not found"):
            MODELS.build(
                dict(type='SVDDataPreprocessor', **{part: dict(pretrained=str(tmp_path / 'clip'))}))
    shutil.rmtree(folder / 'feature_extractor')
    with pytest.raises(FileNotFoundError, match="feature_extractor' not found"):
        MODELS.build(dict(type='SVDDataPreprocessor', image_encoder=dict(pretrained=str(folder))))


def test_compile_generator_is_passed_to_trackdiffusion():
    plain = build()
    model = build(compile_generator=dict(backend='eager'))
    assert model.generator._compiled_call_impl is not None
    assert plain.generator._compiled_call_impl is None
    assert set(model.state_dict()) == set(plain.state_dict())


def test_vae_slicing_decodes_a_few_frames_at_a_time_and_tiling_is_refused(tmp_path):
    folder = tmp_path / 'svd'
    write_tiny_svd_folder(folder)
    whole = MODELS.build(dict(type='SVDDataPreprocessor', vae=dict(pretrained=str(folder))))
    sliced = MODELS.build(
        dict(
            type='SVDDataPreprocessor',
            vae=dict(pretrained=str(folder)),
            vae_batch_size=2,
            vae_slicing=True))
    chunks = []
    decode = sliced.vae.decode
    sliced.vae.decode = lambda z, num_frames: chunks.append(num_frames) or decode(z, num_frames)
    latents = torch.randn(2, 4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    frames = sliced.decode_latents(latents)  # (B, F, 3, H, W)
    assert frames.shape == (2, 4, 3, 16, 16) and frames.dtype == torch.uint8
    assert chunks == [2, 2, 2, 2]  # two clips, two chunks each
    sliced.vae_batch_size = 4  # one chunk per clip: the same as decoding whole clips
    assert torch.equal(sliced.decode_latents(latents), whole.decode_latents(latents))

    with pytest.raises(ValueError, match='vae_tiling: .*AutoencoderKLTemporalDecoder'):
        MODELS.build(
            dict(type='SVDDataPreprocessor', vae=dict(pretrained=str(folder)), vae_tiling=True))
    with pytest.raises(ValueError, match='needs a `vae`'):
        MODELS.build(dict(type='SVDDataPreprocessor', vae_slicing=True))


@pytest.fixture(scope='module')
def micro_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = MODELS.build(load_config(CONFIG).model)
    path = tmp_path_factory.mktemp('svd_ckpt') / 'micro.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path)


def run_generate(*args):
    cmd = [sys.executable, str(ROOT / 'tools/generate.py'), CONFIG, *args]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_generate_from_first_frames_end_to_end(micro_checkpoint, tmp_path):
    classes = ('square', 'circle', 'triangle', 'cross')
    tracklets = write_cocovid(
        str(tmp_path / 'tracklets'), [
            dict(
                name='walk',
                num_frames=4,
                tracks={1: moving_track(0, 0, 4, (2, 2), (8, 8), (2, 1))}),
            dict(
                name='run',
                num_frames=4,
                tracks={2: moving_track(1, 0, 4, (10, 4), (6, 6), (-1, 1))}),
        ],
        classes=classes,
        write_frames=False)
    first = tmp_path / 'first'
    first.mkdir()
    Image.fromarray(np.full((24, 32, 3), 200, np.uint8)).save(first / 'walk_000000.png')
    args = ['--tracklets', tracklets, '--batch-size', '2']

    proc = run_generate(micro_checkpoint, *args, '--out-dir', str(tmp_path / 'missing'),
                        '--first-frames', str(first))
    assert proc.returncode == 2 and "no first frame for clip 'run_000000'" in proc.stderr
    assert not (tmp_path / 'missing').exists()
    proc = run_generate(micro_checkpoint, *args, '--out-dir', str(tmp_path / 'none'))
    assert proc.returncode == 2 and '--first-frames DIR' in proc.stderr

    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(first / 'run_000000.jpg')
    out = tmp_path / 'out'
    proc = run_generate(micro_checkpoint, *args, '--out-dir', str(out), '--first-frames',
                        str(first))
    assert proc.returncode == 0, proc.stderr[-3000:]
    ann = json.loads((out / 'annotations.json').read_text())
    assert [v['name'] for v in ann['videos']] == ['walk_000000', 'run_000000']
    assert ann['info']['first_frames'] == str(first)
    frames = sorted(out.glob('*/img1/*.jpg'))
    assert len(frames) == 8 and Image.open(frames[0]).size == (16, 16)
