"""TrackDiffusion: the loss, sampling, guidance, freezing and the pretrained-folder paths."""
import pytest
import torch

from mmtrackgen.models.conditioning import GatedGrounding, InstanceEnhancer
from mmtrackgen.models.trackdiffusion import build_scheduler, foreground_mask
from mmtrackgen.registry import MODELS
from mmtrackgen.structures import TrackletClipSample
from tests.factories import write_tiny_clip

NUM_CLASSES = 3


def model_cfg(**overrides):
    cfg = dict(
        type='TrackDiffusion',
        generator=dict(
            type='TrackletUNet3D',
            in_channels=3,
            out_channels=3,
            down_block_types=('CrossAttnDownBlock3D', 'DownBlock3D'),
            up_block_types=('UpBlock3D', 'CrossAttnUpBlock3D'),
            block_out_channels=(8, 16),
            layers_per_block=1,
            norm_num_groups=4,
            cross_attention_dim=16,
            attention_head_dim=2,
            grounding_context_dim=16,
            enhancer_track_dim=8),
        tracklet_encoder=dict(
            type='TrackletEncoder',
            token_dim=16,
            track_dim=8,
            track_heads=2,
            category_embedding=dict(type='CategoryTable', num_classes=NUM_CLASSES, embed_dim=8)),
        noise_scheduler=dict(type='DDPMScheduler', num_train_timesteps=100),
        num_inference_steps=3,
        guidance_scale=2.0)
    cfg.update(overrides)
    return cfg


def build(seed=0, **overrides):
    torch.manual_seed(seed)
    return MODELS.build(model_cfg(**overrides))


def clip_sample(seed, num_frames=4, num_slots=2, size=16, video='v'):
    g = torch.Generator().manual_seed(seed)
    sample = TrackletClipSample(
        metainfo=dict(video_name=video, caption='a video of a cat', img_shape=(size, size)))
    corner = torch.rand(num_frames, num_slots, 2, generator=g) * 0.5
    sample.gt_boxes = torch.cat([corner, corner + 0.4], dim=-1)  # (F, N, 4)
    sample.gt_visible = torch.rand(num_frames, num_slots, generator=g) < 0.8
    sample.gt_visibility = sample.gt_visible.float()
    sample.gt_labels = torch.arange(num_slots) % NUM_CLASSES
    sample.gt_instance_ids = torch.arange(num_slots) + 1
    sample.gt_slot_mask = torch.ones(num_slots, dtype=torch.bool)
    frames = torch.randint(0, 256, (num_frames, 3, size, size), generator=g, dtype=torch.uint8)
    return frames, sample


def batch(model, seeds=(0, 1), with_frames=True, **kwargs):
    clips = [clip_sample(s, **kwargs) for s in seeds]
    data = dict(
        inputs=[c[0] if with_frames else None for c in clips], data_samples=[c[1] for c in clips])
    return model.data_preprocessor(data, True)


def open_gates(model, value=0.5):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (GatedGrounding, InstanceEnhancer)):
                m.alpha_attn.fill_(value)
                m.alpha_dense.fill_(value)


def test_foreground_mask_marks_pixel_centres_inside_visible_boxes():
    boxes = torch.tensor([[[[0.0, 0.0, 0.5, 0.25], [0.5, 0.5, 1.0, 1.0]]]])  # (1, 1, 2, 4)
    mask = foreground_mask(boxes, torch.tensor([[[True, False]]]), 4, 4)
    expected = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    expected[0, 0, 0, :2] = True
    assert torch.equal(mask, expected)


def test_loss_is_a_finite_scalar_and_weights_foreground_twice():
    model = build()
    data = batch(model)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss'} and losses['loss'].ndim == 0
    losses['loss'].backward()
    inputs = data['inputs']
    weights = model._loss_weights(inputs, inputs['latents'])  # (B, F, 1, h, w)
    torch.testing.assert_close(weights.mean(dim=(1, 2, 3, 4)), torch.ones(2))
    fg = foreground_mask(inputs['boxes'], inputs['visible'], 16, 16).unsqueeze(2)
    ratio = weights[fg].max() / weights[~fg].max()
    torch.testing.assert_close(ratio, torch.tensor(2.0))


@pytest.mark.parametrize('checkpointing', [False, True])
def test_gradients_reach_encoder_and_enhancer_with_and_without_checkpointing(checkpointing):
    losses = {}
    for flag in (False, True):
        model = build(gradient_checkpointing=flag)
        open_gates(model)
        model.train()
        torch.manual_seed(3)
        loss = model(**batch(model), mode='loss')['loss']
        loss.backward()
        losses[flag] = loss.detach()
        if flag == checkpointing:
            enhancer = [m for m in model.modules() if isinstance(m, InstanceEnhancer)]
            assert enhancer and all(p.grad is not None and p.grad.abs().sum() > 0
                                    for p in enhancer[0].parameters() if p.requires_grad)
            mlp = model.tracklet_encoder
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in mlp.parameters())
    torch.testing.assert_close(losses[False], losses[True])


def test_tracklet_and_caption_dropout_reach_the_encoder():
    seen = []
    for p in (0.0, 1.0):
        model = build(tracklet_dropout=p)
        model.tracklet_encoder.register_forward_hook(
            lambda m, args, out: seen.append(args[1].clone()))
        data = batch(model)
        model(**data, mode='loss')
        if p == 0.0:
            assert torch.equal(seen[-1], data['inputs']['visible'])
        else:
            assert not seen[-1].any()
    with pytest.raises(ValueError, match='caption_dropout'):
        build(caption_dropout=1.5)


def test_predict_returns_uint8_clips_reproducible_per_sample_seed():
    model = build().eval()
    data = batch(model, with_frames=False)
    out = model.predict(data['inputs'], data['data_samples'], seed=7)
    assert out[0].pred_frames.shape == (4, 3, 16, 16) and out[0].pred_frames.dtype == torch.uint8
    assert [s.pred_seed for s in out] == [7, 8]
    again = model.predict(data['inputs'], data['data_samples'], seed=7)
    assert torch.equal(out[1].pred_frames, again[1].pred_frames)
    assert not torch.equal(out[0].pred_frames, out[1].pred_frames)
    alone = batch(model, seeds=(1, ), with_frames=False)  # the second clip on its own
    solo = model.predict(alone['inputs'], alone['data_samples'], seed=8)
    diff = (solo[0].pred_frames.int() - out[1].pred_frames.int()).abs()
    assert diff.max() <= 1  # same clip, same seed: equal up to float rounding


@pytest.mark.parametrize('sampler',
                         ['DDIMScheduler', 'DDPMScheduler', 'EulerAncestralDiscreteScheduler'])
def test_a_clip_alone_is_the_clip_inside_a_batch_with_any_sampler(sampler):
    """Stochastic samplers (DDPM, Euler ancestral) draw noise at every step: from each clip's
    own generator, so a clip does not depend on its batch neighbours (issue 20, item 4)."""
    model = build().eval()
    open_gates(model)  # so the tracklets, which differ between clips, matter
    data = batch(model, seeds=(0, 1, 2), with_frames=False)
    for sample, seed in zip(data['data_samples'], (11, 12, 13)):
        sample.set_metainfo(dict(seed=seed))
    torch.manual_seed(100)  # the global RNG must not matter
    together = model.predict(data['inputs'], data['data_samples'], scheduler=sampler)
    alone = batch(model, seeds=(1, ), with_frames=False)
    alone['data_samples'][0].set_metainfo(dict(seed=12))
    torch.manual_seed(200)
    solo = model.predict(alone['inputs'], alone['data_samples'], scheduler=sampler)
    frames = solo[0].pred_frames.int()
    assert (frames - together[1].pred_frames.int()).abs().max() <= 1  # float rounding only
    assert (frames - together[0].pred_frames.int()).abs().max() > 8  # other clips differ


def test_guidance_batches_both_passes_and_any_scheduler_samples():
    model = build().eval()
    calls = []
    model.generator.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    data = batch(model, with_frames=False)
    model.predict(data['inputs'], data['data_samples'], guidance_scale=3.0)
    assert calls == [4, 4, 4]  # conditional and unconditional together, 3 steps
    calls.clear()
    model.predict(data['inputs'], data['data_samples'], guidance_scale=1.0)
    assert calls == [2, 2, 2]
    for name in ('DPMSolverMultistepScheduler', 'EulerDiscreteScheduler', 'DDPMScheduler'):
        out = model.predict(
            data['inputs'], data['data_samples'], scheduler=name, num_inference_steps=2)
        assert out[0].pred_frames.dtype == torch.uint8
    with pytest.raises(ValueError, match='not a diffusers scheduler'):
        model.predict(data['inputs'], data['data_samples'], scheduler='NoSuchScheduler')


@pytest.mark.parametrize('name', ['DDIMScheduler', 'DPMSolverMultistepScheduler',
                                  'EulerDiscreteScheduler', 'DDPMScheduler'])
def test_sampling_starts_from_the_last_training_timestep(name):
    """A few-step sampler swapped in by name starts where training's noise is pure: with DDPM's
    'leading' spacing a 10-step DDIM started at t=900 and gave blurs (alignment 0.05 vs 0.45)."""
    training = build_scheduler(dict(type='DDPMScheduler', num_train_timesteps=1000,
                                    beta_schedule='squaredcos_cap_v2'))
    sampler = build_scheduler(name, training.config)
    sampler.set_timesteps(10)
    first = int(sampler.timesteps[0])  # 999 (995 for DPM-Solver, floored in log-SNR)
    assert training.alphas_cumprod[first] < 1e-3  # (almost) no signal left
    explicit = build_scheduler(dict(type=name, timestep_spacing='leading'), training.config)
    explicit.set_timesteps(10)
    assert int(explicit.timesteps[0]) == 900  # a config's own choice is kept


def test_v_prediction_and_tensor_mode():
    model = build(prediction_type='v_prediction')
    data = batch(model)
    assert torch.isfinite(model(**data, mode='loss')['loss'])
    assert model(**data, mode='tensor').shape == (2, 4, 3, 16, 16)
    with pytest.raises(ValueError, match='prediction_type'):
        build(prediction_type='sample_x0')


def test_trainable_modules_by_name_and_frozen_ones_stay_in_eval_mode():
    model = build(trainable=('generator.temporal', 'generator.enhancer', 'tracklet_encoder'))
    groups = model.generator.module_groups()
    trains = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(p.requires_grad for m in groups['enhancer'] + groups['temporal']
               for p in m.parameters())
    assert not any(p.requires_grad for m in groups['spatial'] for p in m.parameters())
    # Grounding left out of `trainable` but with closed gates (no GLIGEN weights) would never
    # open: it trains; with open (pretrained) gates it stays frozen.
    assert all(p.requires_grad for m in groups['grounding'] for p in m.parameters())
    open_gates(model)
    model._freeze_all_but(model.trainable)
    assert not any(p.requires_grad for m in groups['grounding'] for p in m.parameters())
    trains = {n for n, p in model.named_parameters() if p.requires_grad}
    encoder = {'tracklet_encoder.' + n for n, _ in model.tracklet_encoder.named_parameters()}
    assert encoder <= trains and 'null_text' not in trains
    model.train()
    assert all(not m.training for m in groups['spatial'])
    assert all(m.training for m in groups['temporal'])
    with pytest.raises(ValueError, match="no module 'unet'"):
        build(trainable=('unet', ))
    with pytest.raises(ValueError, match='neither a submodule nor one of the groups'):
        build(trainable=('generator.nonsense', ))


def test_vae_and_text_encoder_from_local_folders(tmp_path):
    from diffusers import AutoencoderKL
    torch.manual_seed(0)
    AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=('DownEncoderBlock2D', ) * 2,
        up_block_types=('UpDecoderBlock2D', ) * 2,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16).save_pretrained(str(tmp_path / 'sd' / 'vae'))
    write_tiny_clip(tmp_path / 'sd' / 'text_encoder')
    write_tiny_clip(tmp_path / 'sd' / 'tokenizer')
    generator = dict(
        model_cfg()['generator'], in_channels=4, out_channels=4, cross_attention_dim=32)
    model = build(
        generator=generator,
        data_preprocessor=dict(
            type='TrackDiffusionDataPreprocessor',
            vae=dict(pretrained=str(tmp_path / 'sd')),
            text_encoder=dict(pretrained=str(tmp_path / 'sd'))),
        trainable=('generator.temporal', 'tracklet_encoder'))
    data = batch(model)
    inputs = data['inputs']
    assert inputs['latents'].shape == (2, 4, 4, 8, 8)  # (B, F, C, h, w): VAE halves the side
    assert inputs['text_embeds'].shape[0] == 2 and inputs['text_embeds'].shape[-1] == 32
    assert torch.isfinite(model(**data, mode='loss')['loss'])
    out = model.predict(inputs, data['data_samples'])
    assert out[0].pred_frames.shape == (4, 3, 16, 16)
    model.train()
    assert not model.data_preprocessor.vae.training
    with pytest.raises(FileNotFoundError, match=r"nowhere/vae' not found.*README.md#pretrained"):
        build(
            data_preprocessor=dict(
                type='TrackDiffusionDataPreprocessor',
                vae=dict(pretrained=str(tmp_path / 'nowhere'))))


@pytest.mark.parametrize('num_frames,num_slots', [(4, 0), (4, 6), (12, 1)])
def test_any_number_of_frames_and_instances(num_frames, num_slots):
    model = build()
    data = batch(model, num_frames=num_frames, num_slots=num_slots)
    assert torch.isfinite(model(**data, mode='loss')['loss'])
