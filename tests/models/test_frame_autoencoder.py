"""The world's own autoencoder: trained by the Runner, exported as a diffusers folder, read by the
generator through TrackDiffusionDataPreprocessor exactly as SD's VAE is."""
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL

from mmtrackgen.models import FrameAutoencoder
from mmtrackgen.registry import MODELS
from mmtrackgen.utils import load_config

ROOT = Path(__file__).resolve().parents[2]
# The default autoencoder's architecture (configs/autoencoder/synthetic_f4.py), narrowed for speed.
TINY_VAE = dict(
    load_config(str(ROOT / 'configs/autoencoder/synthetic_f4.py')).model.vae.to_dict(),
    block_out_channels=(8, 16, 16),
    norm_num_groups=4,
    sample_size=16)


def _frames(n=8, size=16, seed=0):
    """Grey frames with one coloured square each: (n, 3, size, size) in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.full((n, 3, size, size), 0.1)
    for i in range(n):
        x, y = torch.randint(0, size - 6, (2, ), generator=g).tolist()
        frames[i, :, y:y + 6, x:x + 6] = torch.rand(3, 1, 1, generator=g) * 2 - 1
    return frames


@pytest.mark.parametrize('pixel_loss', ['l1', 'mse'])
def test_training_lowers_the_reconstruction_error(pixel_loss):
    torch.manual_seed(0)
    model = FrameAutoencoder(TINY_VAE, pixel_loss=pixel_loss)
    frames = _frames()
    before = (model.reconstruct(frames) - frames).abs().mean()
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(60):
        loss = sum(model(frames, mode='loss').values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = (model.reconstruct(frames) - frames).abs().mean()
    assert after < 0.5 * before
    assert set(model(frames, mode='loss')) == {f'loss_{pixel_loss}', 'loss_kl'}


def test_unknown_pixel_loss_is_refused():
    with pytest.raises(ValueError, match="pixel_loss must be 'l1' or 'mse'"):
        FrameAutoencoder(TINY_VAE, pixel_loss='l3')


def test_frames_not_a_multiple_of_the_factor_are_refused():
    model = FrameAutoencoder(TINY_VAE)
    with pytest.raises(ValueError, match='multiple of the autoencoder factor 4'):
        model(torch.zeros(1, 3, 18, 16), mode='loss')


def test_export_round_trip_through_the_generator_preprocessor(tmp_path):
    """Exported folder -> AutoencoderKL.from_pretrained and the preprocessor's vae path:
    (B, F, 3, H, W) frames -> (B, F, 4, H/4, W/4) unit-scale latents -> frames of the same size,
    equal to the autoencoder's own reconstruction."""
    torch.manual_seed(0)
    model = FrameAutoencoder(TINY_VAE)
    folder = model.export_pretrained(str(tmp_path / 'ae' / 'vae'), latent_std=0.5)
    assert AutoencoderKL.from_pretrained(folder).config.scaling_factor == pytest.approx(2.0)
    pre = MODELS.build(
        dict(type='TrackDiffusionDataPreprocessor', vae=dict(pretrained=str(tmp_path / 'ae'))))
    assert (pre.latent_channels, pre.spatial_downsample) == (4, 4)
    frames = _frames(6).unflatten(0, (2, 3))  # (B=2, F=3, 3, 16, 16)
    latents = pre.encode_frames(frames)
    assert latents.shape == (2, 3, 4, 4, 4)
    decoded = pre.decode_latents(pre.vae.encode(frames.flatten(0, 1)).latent_dist.mode()
                                 .unflatten(0, (2, 3)) * 2.0)
    expected = pre.denormalize(model.reconstruct(frames.flatten(0, 1)).unflatten(0, (2, 3)))
    assert decoded.dtype == torch.uint8 and decoded.shape == (2, 3, 3, 16, 16)
    assert (decoded.int() - expected.int()).abs().max() <= 1


def test_a_latent_generator_trains_and_samples_on_the_exported_folder(tmp_path):
    """The default's path in miniature: micro generator on 4-channel latents of an exported
    autoencoder, with the caption encoder; a loss step and one sampled clip at frame size."""
    torch.manual_seed(0)
    FrameAutoencoder(TINY_VAE).export_pretrained(str(tmp_path / 'vae'), latent_std=1.0)
    cfg = load_config(str(ROOT / 'tests/data/trackdiff_micro.py'))
    cfg.model.data_preprocessor = dict(
        type='TrackDiffusionDataPreprocessor', vae=dict(pretrained=str(tmp_path)))
    cfg.model.generator.update(sample_size=4, in_channels=4, out_channels=4)
    cfg.model.caption_encoder = dict(
        type='WordCaptionEncoder', vocabulary=['a', 'red', 'square'], embed_dim=16, num_heads=2)
    model = MODELS.build(cfg.model)
    from mmtrackgen.structures import TrackletClipSample
    samples = []
    for _ in range(2):
        s = TrackletClipSample(metainfo=dict(img_shape=(16, 16), caption='a red square'))
        s.gt_boxes = torch.tensor([0.1, 0.1, 0.6, 0.6]).expand(4, 4, 4).clone()
        s.gt_visible = torch.ones(4, 4, dtype=torch.bool)
        s.gt_visibility = torch.ones(4, 4)
        s.gt_labels = torch.zeros(4, dtype=torch.long)
        s.gt_instance_ids = torch.arange(4)
        s.gt_slot_mask = torch.ones(4, dtype=torch.bool)
        samples.append(s)
    data = dict(inputs=[torch.randint(0, 255, (4, 3, 16, 16), dtype=torch.uint8)] * 2,
                data_samples=samples)
    loss = model(**model.data_preprocessor(data, True), mode='loss')['loss']
    loss.backward()
    assert torch.isfinite(loss)
    out = model(**model.data_preprocessor(dict(inputs=[None, None], data_samples=samples)),
                mode='predict')
    assert out[0].pred_frames.shape == (4, 3, 16, 16)
