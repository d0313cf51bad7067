"""Loading the generator from tiny diffusers folders in each layout users have: ModelScope
(UNet3D), Stable Diffusion 1.x (UNet2D, inflated) and GLIGEN (gated UNet2D), with the report."""
import json

import pytest
import torch
from diffusers import UNet2DConditionModel, UNet3DConditionModel
from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel

from mmtrackgen.models.conditioning import GatedGrounding, TrackletConditioning
from mmtrackgen.models.generators.pretrained import LoadReport, load_tracklet_unet3d
from mmtrackgen.models.generators.tracklet_unet3d import TrackletUNet3D
from mmtrackgen.registry import MODELS

TINY = dict(
    block_out_channels=(16, 32),
    layers_per_block=1,
    attention_head_dim=4,
    norm_num_groups=8,
    cross_attention_dim=32)
BLOCKS_2D = dict(
    down_block_types=('CrossAttnDownBlock2D', 'DownBlock2D'),
    up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D'))
BLOCKS_3D = dict(
    down_block_types=('CrossAttnDownBlock3D', 'DownBlock3D'),
    up_block_types=('UpBlock3D', 'CrossAttnUpBlock3D'))
NEW_LAYERS = dict(grounding_context_dim=32, enhancer_track_dim=8)
# An inflated SD UNet's temporal layers have heads of attention_head_dim channels (ModelScope's
# 64 by default): too wide for the tiny model.
SD_LAYERS = dict(NEW_LAYERS, attention_head_dim=4)


def save_unet(cls, folder, seed=0, **kwargs):
    torch.manual_seed(seed)
    model = cls(**{**TINY, **kwargs})
    with torch.no_grad():  # no zero output anywhere, so a wrongly loaded weight shows
        for param in model.parameters():
            param.add_(0.01 * torch.randn_like(param))
    model.save_pretrained(str(folder / 'unet'))
    return model


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp('pretrained')
    models = dict(
        modelscope=save_unet(UNet3DConditionModel, root / 'modelscope', **BLOCKS_3D),
        sd=save_unet(UNet2DConditionModel, root / 'sd', seed=1, **BLOCKS_2D),
        gligen=save_unet(
            UNet2DConditionModel, root / 'gligen', seed=2, attention_type='gated', **BLOCKS_2D))
    return root, models


def group(keys, part):
    return {key for key in keys if f'.{part}' in f'.{key}'}


def test_modelscope_folder_loads_every_stock_weight_and_reports_the_new_layers(folders):
    root, models = folders
    model, report = load_tracklet_unet3d(str(root / 'modelscope'), **NEW_LAYERS)
    stock = set(models['modelscope'].state_dict())
    assert isinstance(report, LoadReport) and report.weights_format == 'modelscope'
    assert set(report.loaded) == stock
    assert set(report.new) == set(model.state_dict()) - stock
    assert report.new and all('.fuser.' in k or '.instance_enhancer.' in k for k in report.new)
    assert report.ignored == {}
    for key, value in models['modelscope'].state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    text = report.summary()
    assert 'loaded: ' in text and 'fuser (' in text and 'instance_enhancer (' in text


def test_registered_builder_keeps_the_report_and_detects_the_layout(folders):
    root, _ = folders
    model = MODELS.build(
        dict(type='PretrainedTrackletUNet3D', pretrained=str(root / 'sd'), **SD_LAYERS))
    assert model.load_report.weights_format == 'sd'
    with pytest.raises(ValueError, match="use weights_format='sd'"):
        MODELS.build(
            dict(
                type='PretrainedTrackletUNet3D',
                pretrained=str(root / 'sd'),
                weights_format='modelscope'))


def test_sd_folder_initialises_spatial_layers_and_starts_temporal_ones_as_identity(folders):
    root, models = folders
    model, report = load_tracklet_unet3d(str(root / 'sd'), weights_format='sd', **SD_LAYERS)
    image = models['sd']
    assert set(report.loaded) == set(image.state_dict())
    new = set(report.new)
    assert group(new, 'transformer_in') and group(new, 'temp_convs')
    assert group(new, 'temp_attentions') and group(new, 'fuser')
    assert not new & set(image.state_dict()) and report.ignored == {}
    # SD's 1x1-conv projections became the UNet3D's linear ones.
    key = 'down_blocks.0.attentions.0.proj_in.weight'
    assert torch.equal(model.state_dict()[key], image.state_dict()[key][:, :, 0, 0])
    for module in model.modules():
        if isinstance(module, TransformerTemporalModel):
            assert not module.proj_out.weight.any() and not module.proj_out.bias.any()

    # The inflated model is the image model applied frame by frame (tracklets=None: no
    # grounding; with them the closed gates change nothing either, tested elsewhere).
    batch, frames = 2, 3
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(batch, 4, frames, 16, 16, generator=g)  # (B, C, F, H, W)
    text = torch.randn(batch, 5, 32, generator=g)  # (B, L, D)
    timesteps = torch.tensor([10, 500])
    with torch.no_grad():
        video = model(sample, timesteps, text).sample  # (B, C, F, H, W)
        per_frame = image(
            sample.transpose(1, 2).flatten(0, 1),  # (B*F, C, H, W)
            timesteps.repeat_interleave(frames),
            text.repeat_interleave(frames, dim=0)).sample  # (B*F, C, H, W)
    per_frame = per_frame.unflatten(0, (batch, frames)).transpose(1, 2)  # (B, C, F, H, W)
    torch.testing.assert_close(video, per_frame, rtol=1e-4, atol=1e-5)


def test_saved_inflated_sd_model_reloads_with_its_heads(folders, tmp_path):
    """An inflated SD UNet, saved with ``save_pretrained``, comes back from plain
    ``TrackletUNet3D.from_pretrained`` with SD's head split (``spatial_attention_heads``)."""
    root, _ = folders
    model, _ = load_tracklet_unet3d(str(root / 'sd'), weights_format='sd', **SD_LAYERS)
    assert model.config.spatial_attention_heads == TINY['attention_head_dim']
    model.open_gates(0.5)  # so grounding (whose attention is split too) and enhancers count
    model.save_pretrained(str(tmp_path / 'unet'))
    loaded = TrackletUNet3D.from_pretrained(str(tmp_path / 'unet'))
    heads = {name: m.heads for name, m in model.named_modules() if hasattr(m, 'heads')}
    assert heads == {name: m.heads for name, m in loaded.named_modules() if hasattr(m, 'heads')}
    # The tiny UNet3D's own rule (32 // 4 = 8 heads at level 1) differs from SD's 4.
    assert loaded.mid_block.attentions[0].transformer_blocks[0].attn1.heads == 4

    batch, frames, slots = 2, 3, 2
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(batch, 4, frames, 16, 16, generator=g)  # (B, C, F, H, W)
    text = torch.randn(batch, 5, 32, generator=g)  # (B, L, D)
    corner = torch.rand(batch, frames, slots, 2, generator=g) * 0.6  # (B, F, N, 2)
    tracklets = TrackletConditioning(
        tokens=torch.randn(batch, frames, slots, NEW_LAYERS['grounding_context_dim'], generator=g),
        track_features=torch.randn(
            batch, slots, frames, NEW_LAYERS['enhancer_track_dim'], generator=g),
        boxes=torch.cat([corner, corner + 0.3], dim=-1),  # (B, F, N, 4)
        visible=torch.ones(batch, frames, slots, dtype=torch.bool))
    timesteps = torch.tensor([10, 500])
    with torch.no_grad():
        expected = model(sample, timesteps, text, tracklets=tracklets).sample
        actual = loaded(sample, timesteps, text, tracklets=tracklets).sample
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


def test_gligen_fusers_load_into_grounding_and_position_net_is_ignored(folders):
    root, models = folders
    fusers = group(models['gligen'].state_dict(), 'fuser')
    position_net = group(models['gligen'].state_dict(), 'position_net')
    assert fusers and position_net

    # A GLIGEN folder as the base: spatial and grounding weights both load.
    model, report = load_tracklet_unet3d(str(root / 'gligen'), **SD_LAYERS)
    assert fusers <= set(report.loaded)
    assert set(report.ignored) == position_net
    assert 'Fourier' in next(iter(report.ignored.values()))
    assert not group(report.new, 'fuser') and group(report.new, 'instance_enhancer')
    grounding = [m for m in model.modules() if isinstance(m, GatedGrounding)]
    assert grounding and all(m.alpha_attn.item() != 0 for m in grounding)  # GLIGEN's gates

    # GLIGEN grounding onto a ModelScope base.
    model, report = load_tracklet_unet3d(
        str(root / 'modelscope'), grounding_weights=str(root / 'gligen'), **NEW_LAYERS)
    assert {k for k, source in report.loaded.items() if source.startswith('gligen: ')} == fusers
    assert set(report.ignored) == {f'gligen: {k}' for k in position_net}
    assert set(report.new) == group(model.state_dict(), 'instance_enhancer')
    key = sorted(fusers)[0]
    assert torch.equal(model.state_dict()[key], models['gligen'].state_dict()[key])
    assert any('not read' in note for note in report.notes)


def test_gligen_fusers_without_grounding_are_ignored_with_a_reason(folders):
    root, _ = folders
    _, report = load_tracklet_unet3d(str(root / 'gligen'), attention_head_dim=4)  # no grounding
    reasons = {reason for key, reason in report.ignored.items() if '.fuser.' in key}
    assert len(reasons) == 1 and 'grounding_context_dim' in reasons.pop()


def test_shape_mismatch_names_the_key_and_both_shapes(folders):
    root, _ = folders
    with pytest.raises(
            ValueError,
            match=r"fuser\.linear\.weight' has shape \(16, 32\), the "
            r"model's .* \(16, 24\)"):
        load_tracklet_unet3d(
            str(root / 'modelscope'),
            grounding_weights=str(root / 'gligen'),
            grounding_context_dim=24)


def test_missing_folder_config_or_weights_is_named(folders, tmp_path):
    root, _ = folders
    with pytest.raises(FileNotFoundError, match='nowhere/unet'):
        load_tracklet_unet3d(str(tmp_path / 'nowhere'))
    (tmp_path / 'empty' / 'unet').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match='config.json'):
        load_tracklet_unet3d(str(tmp_path / 'empty'))
    config = json.loads((root / 'modelscope' / 'unet' / 'config.json').read_text())
    (tmp_path / 'empty' / 'unet' / 'config.json').write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match='diffusion_pytorch_model.safetensors'):
        load_tracklet_unet3d(str(tmp_path / 'empty'))


def test_checkpoint_lacking_stock_weights_is_an_error(folders, tmp_path):
    root, models = folders
    folder = tmp_path / 'partial' / 'unet'
    folder.mkdir(parents=True)
    config = json.loads((root / 'modelscope' / 'unet' / 'config.json').read_text())
    (folder / 'config.json').write_text(json.dumps(config))
    state = {k: v for k, v in models['modelscope'].state_dict().items() if 'temp_convs' not in k}
    torch.save(state, folder / 'diffusion_pytorch_model.bin')
    with pytest.raises(ValueError, match=r'lacks \d+ weights .*temp_convs'):
        load_tracklet_unet3d(str(tmp_path / 'partial'))
