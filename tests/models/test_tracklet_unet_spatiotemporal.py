"""TrackletUNetSpatioTemporal: a stock SVD UNet at step 0, grounded and enhanced after it."""
import copy
import json

import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel

from mmtrackgen.models.conditioning.gated_grounding import GatedGrounding
from mmtrackgen.models.conditioning.instance_enhancer import InstanceEnhancer
from mmtrackgen.models.conditioning.tracklet_conditioning import TrackletConditioning
from mmtrackgen.models.generators.pretrained import LoadReport, load_tracklet_unet_spatiotemporal
from mmtrackgen.models.generators.tracklet_unet_spatiotemporal import TrackletUNetSpatioTemporal
from mmtrackgen.registry import MODELS

# The smallest SVD UNet: its blocks normalise with 32 groups, so channels are multiples of 32.
TINY = dict(
    in_channels=8,
    out_channels=4,
    down_block_types=('CrossAttnDownBlockSpatioTemporal', 'DownBlockSpatioTemporal'),
    up_block_types=('UpBlockSpatioTemporal', 'CrossAttnUpBlockSpatioTemporal'),
    block_out_channels=(32, 32),
    layers_per_block=1,
    num_attention_heads=(2, 2),
    cross_attention_dim=16,
    addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=24,
    num_frames=4,
)
TOKEN_DIM = 12
TRACK_DIM = 6
NEW = dict(grounding_context_dim=TOKEN_DIM, enhancer_track_dim=TRACK_DIM)
VARIANTS = [{}, dict(token_position_freqs=4, ground_within_boxes=True)]


def build(seed=0, **kwargs):
    torch.manual_seed(seed)
    return TrackletUNetSpatioTemporal(**{**TINY, **NEW, **kwargs}).eval()


def stock_unet(seed=0):
    torch.manual_seed(seed)
    return UNetSpatioTemporalConditionModel(**TINY).eval()


def make_tracklets(batch, frames, slots, seed=1, visible_prob=0.7):
    g = torch.Generator().manual_seed(seed)
    corner = torch.rand(batch, frames, slots, 2, generator=g) * 0.6  # (B, F, N, 2)
    size = 0.2 + torch.rand(batch, frames, slots, 2, generator=g) * 0.3  # (B, F, N, 2)
    return TrackletConditioning(
        tokens=torch.randn(batch, frames, slots, TOKEN_DIM, generator=g),
        track_features=torch.randn(batch, slots, frames, TRACK_DIM, generator=g),
        boxes=torch.cat([corner, corner + size], dim=-1),
        visible=torch.rand(batch, frames, slots, generator=g) < visible_prob)


def make_inputs(batch=2, frames=4, size=16, seed=2):
    g = torch.Generator().manual_seed(seed)
    sample = torch.randn(batch, frames, 8, size, size, generator=g)  # (B, F, C, H, W)
    timestep = torch.rand(batch, generator=g)  # c_noise
    context = torch.randn(batch, 1, TINY['cross_attention_dim'], generator=g)  # (B, 1, D)
    time_ids = torch.tensor([[6.0, 127.0, 0.02]]).expand(batch, -1)  # (B, 3)
    return sample, timestep, context, time_ids


def new_modules(model):
    return [m for m in model.modules() if isinstance(m, (GatedGrounding, InstanceEnhancer))]


def concat_slots(a, b):
    return TrackletConditioning(
        torch.cat([a.tokens, b.tokens], dim=2),
        torch.cat([a.track_features, b.track_features], dim=1), torch.cat([a.boxes, b.boxes],
                                                                          dim=2),
        torch.cat([a.visible, b.visible], dim=2))


def is_new_key(key):
    return '.fuser.' in key or '.instance_enhancer.' in key


@pytest.mark.parametrize('variant', VARIANTS)
def test_zero_gates_match_stock_then_a_step_on_the_gates_changes_the_output(variant):
    stock = stock_unet()
    model = build(seed=1, **variant)
    result = model.load_state_dict(stock.state_dict(), strict=False)
    assert result.unexpected_keys == [] and all(is_new_key(k) for k in result.missing_keys)
    inputs = make_inputs()
    tracklets = make_tracklets(2, 4, 3)
    with torch.no_grad():
        expected = stock(*inputs).sample
        before = model(*inputs, tracklets=tracklets).sample
    assert before.shape == (2, 4, 4, 16, 16)
    torch.testing.assert_close(before, expected, rtol=0, atol=1e-6)

    gates = [p for m in new_modules(model) for p in (m.alpha_attn, m.alpha_dense)]
    model(*inputs, tracklets=tracklets).sample.square().mean().backward()
    assert gates and all(g.grad is not None and g.grad.abs() > 0 for g in gates)
    torch.optim.SGD(gates, lr=1.0).step()
    with torch.no_grad():
        after = model(*inputs, tracklets=tracklets).sample
        without = model(*inputs).sample  # open gates, no tracklets: still the stock UNet
    assert (after - expected).abs().max() > 1e-4
    torch.testing.assert_close(without, expected, rtol=0, atol=1e-6)


def test_gradient_checkpointing_matches_and_recomputes_the_new_layers():
    model = build(gate_init=0.5).train()
    inputs = make_inputs()
    tracklets = make_tracklets(2, 4, 3)
    keys = list(model.state_dict())

    def run():
        model.zero_grad()
        loss = model(*inputs, tracklets=tracklets).sample.square().mean()
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    calls = {'grounding': 0, 'enhancer': 0}
    for module in new_modules(model):
        group = 'grounding' if isinstance(module, GatedGrounding) else 'enhancer'
        module.attn.register_forward_hook(
            lambda *_, group=group: calls.__setitem__(group, calls[group] + 1))

    plain_loss, plain_grads = run()
    plain_calls = dict(calls)
    for module in new_modules(model):  # every parameter of the new layers learns
        for name, param in module.named_parameters():
            assert plain_grads[next(n for n, p in model.named_parameters()
                                    if p is param)].abs().sum() > 0, name
    model.enable_gradient_checkpointing()
    assert model.is_gradient_checkpointing and list(model.state_dict()) == keys
    ckpt_loss, ckpt_grads = run()
    # Recomputed in backward with the tracklets of their forward: each new layer ran again.
    assert calls == {group: 3 * count for group, count in plain_calls.items()}
    torch.testing.assert_close(ckpt_loss, plain_loss)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(ckpt_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    model.disable_gradient_checkpointing()
    assert not model.is_gradient_checkpointing
    assert model.tracklet_context.tracklets is None  # nothing left bound after the passes


@pytest.mark.parametrize('variant', VARIANTS)
def test_a_never_visible_instance_has_no_effect_and_slot_order_does_not_matter(variant):
    model = build(gate_init=0.5, **variant)
    inputs = make_inputs()
    tracklets = make_tracklets(2, 4, 3)
    ghost = make_tracklets(2, 4, 1, seed=7)
    ghost.visible = torch.zeros_like(ghost.visible)
    both = concat_slots(tracklets, ghost)
    order = torch.tensor([2, 0, 3, 1])
    permuted = TrackletConditioning(both.tokens[:, :, order], both.track_features[:, order],
                                    both.boxes[:, :, order], both.visible[:, :, order])
    with torch.no_grad():
        out = model(*inputs, tracklets=tracklets).sample
        assert (out - model(*inputs).sample).abs().max() > 1e-4  # the gates are open
        torch.testing.assert_close(model(*inputs, tracklets=both).sample, out, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            model(*inputs, tracklets=permuted).sample, out, atol=1e-5, rtol=1e-5)


def test_a_deep_copy_grounds_on_its_own_tracklets():
    """EMAHook deep-copies the model: the copy's hooks must read the copy's bound tracklets."""
    model = build(gate_init=0.5)
    twin = copy.deepcopy(model)
    assert twin.tracklet_context is not model.tracklet_context
    inputs = make_inputs()
    tracklets = make_tracklets(2, 4, 3)
    with torch.no_grad():
        torch.testing.assert_close(
            twin(*inputs, tracklets=tracklets).sample,
            model(*inputs, tracklets=tracklets).sample,
            rtol=0,
            atol=0)


def test_module_groups_partition_the_parameters():
    model = build()
    groups = model.module_groups()
    assert set(groups) == {'temporal', 'grounding', 'enhancer', 'spatial'}
    owner = {}
    for group, modules in groups.items():
        for module in modules:
            for param in module.parameters():
                assert id(param) not in owner, f'{group} and {owner[id(param)]} share a parameter'
                owner[id(param)] = group
    names = {id(p): n for n, p in model.named_parameters()}
    assert set(owner) == set(names)
    for pid, group in owner.items():
        assert (group == 'grounding') == ('.fuser.' in names[pid])
        assert (group == 'enhancer') == ('.instance_enhancer.' in names[pid])
        temporal = ('temporal_res_block', 'temporal_transformer_blocks', 'time_mixer',
                    'time_pos_embed')
        assert (group == 'temporal') == any(part in names[pid] for part in temporal), names[pid]


def test_blocks_and_config_round_trip(tmp_path):
    model = build(enhancer_blocks=['down_blocks.0', 'up_blocks.1'], enhancer_num_heads=4)
    assert model.config.grounding_blocks == ['down_blocks.0', 'mid_block', 'up_blocks.1']
    enhanced = [n for n, m in model.named_modules() if isinstance(m, InstanceEnhancer)]
    assert enhanced == [
        'down_blocks.0.attentions.0.instance_enhancer',
        'up_blocks.1.attentions.0.instance_enhancer', 'up_blocks.1.attentions.1.instance_enhancer'
    ]
    model.open_gates(0.5)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / 'config.json').read_text())
    assert config['_class_name'] == 'TrackletUNetSpatioTemporal'
    assert config['enhancer_blocks'] == ['down_blocks.0', 'up_blocks.1']
    loaded, info = TrackletUNetSpatioTemporal.from_pretrained(tmp_path, output_loading_info=True)
    assert info['missing_keys'] == [] and info['unexpected_keys'] == []
    inputs = make_inputs()
    tracklets = make_tracklets(2, 4, 2)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.eval()(*inputs, tracklets=tracklets).sample,
            model(*inputs, tracklets=tracklets).sample,
            rtol=0,
            atol=0)


def test_the_builder_extends_a_saved_stock_svd_unet(tmp_path):
    stock = stock_unet()
    stock.save_pretrained(tmp_path / 'svd' / 'unet')
    model = MODELS.build(
        dict(type='PretrainedTrackletUNetSpatioTemporal', pretrained=str(tmp_path / 'svd'), **NEW))
    assert isinstance(model, TrackletUNetSpatioTemporal)
    report = model.load_report  # the text-to-video loader's LoadReport
    assert isinstance(report, LoadReport) and report.weights_format == 'svd'
    assert set(report.loaded) == set(stock.state_dict()) and report.ignored == {}
    assert report.new == sorted(k for k in model.state_dict() if is_new_key(k))
    assert 'fuser (' in report.summary() and 'instance_enhancer (' in report.summary()
    assert all(torch.isfinite(p).all() and p.abs().max() < 10 for p in model.parameters())
    inputs = make_inputs()
    with torch.no_grad():
        torch.testing.assert_close(
            model.eval()(*inputs, tracklets=make_tracklets(2, 4, 3)).sample,
            stock(*inputs).sample,
            rtol=0,
            atol=1e-6)

    with pytest.raises(FileNotFoundError, match=r"nowhere/unet' not found"):
        MODELS.build(
            dict(type='PretrainedTrackletUNetSpatioTemporal', pretrained=str(tmp_path / 'nowhere')))
    (tmp_path / 'svd' / 'unet' / 'diffusion_pytorch_model.safetensors').unlink()
    with pytest.raises(FileNotFoundError, match='diffusion_pytorch_model.safetensors'):
        MODELS.build(
            dict(type='PretrainedTrackletUNetSpatioTemporal', pretrained=str(tmp_path / 'svd')))
    (tmp_path / 'svd' / 'unet' / 'config.json').unlink()
    with pytest.raises(FileNotFoundError, match=r'unet/config.json'):
        MODELS.build(
            dict(type='PretrainedTrackletUNetSpatioTemporal', pretrained=str(tmp_path / 'svd')))


def test_svd_loader_reports_ignored_weights_checks_shapes_and_reads_variants(tmp_path):
    grounded = build(grounding_context_dim=8)  # fusers of another token width
    grounded.save_pretrained(tmp_path / 'grounded' / 'unet')
    with pytest.raises(
            ValueError,
            match=r"fuser\.linear\.weight' has shape \(\d+, 8\), the model's .*"
            rf"\(\d+, {TOKEN_DIM}\)"):
        load_tracklet_unet_spatiotemporal(str(tmp_path / 'grounded'), **NEW)
    # Without grounding the checkpoint's fusers are ignored, with the reason.
    _, report = load_tracklet_unet_spatiotemporal(
        str(tmp_path / 'grounded'), grounding_context_dim=None, grounding_blocks=None)
    assert report.ignored and all('.fuser.' in k for k in report.ignored)
    assert all('grounding_context_dim' in reason for reason in report.ignored.values())

    stock_unet().save_pretrained(tmp_path / 'half' / 'unet', variant='fp16')
    with pytest.raises(FileNotFoundError, match='diffusion_pytorch_model.fp16.safetensors'):
        load_tracklet_unet_spatiotemporal(str(tmp_path / 'grounded'), variant='fp16')
    model, report = load_tracklet_unet_spatiotemporal(str(tmp_path / 'half'), variant='fp16', **NEW)
    assert set(report.loaded) == set(stock_unet().state_dict())

    UNetSpatioTemporalConditionModel(**TINY).save_pretrained(tmp_path / 'partial' / 'unet')
    config = json.loads((tmp_path / 'partial' / 'unet' / 'config.json').read_text())
    (tmp_path / 'partial' / 'unet' / 'config.json').write_text(
        json.dumps(dict(config, _class_name='UNet3DConditionModel')))
    with pytest.raises(ValueError, match='UNet3DConditionModel'):
        load_tracklet_unet_spatiotemporal(str(tmp_path / 'partial'))


@pytest.mark.parametrize('kwargs,message', [
    (dict(grounding_context_dim=0), 'grounding_context_dim'),
    (dict(enhancer_track_dim=-1), 'enhancer_track_dim'),
    (dict(enhancer_blocks=['up_blocks.0']), r"names \['up_blocks.0'\]"),
    (dict(grounding_blocks='mid_block'), 'list of block names'),
    (dict(enhancer_track_dim=None, enhancer_blocks=['up_blocks.1']), 'enhancer_track_dim'),
    (dict(enhancer_num_heads=3), 'must divide'),
    (dict(block_out_channels=(16, 32)), 'multiples of 32'),
    (dict(projection_class_embeddings_input_dim=20), '3 x `addition_time_embed_dim`'),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrackletUNetSpatioTemporal(**{**TINY, **NEW, **kwargs})


def test_mismatched_tracklets_raise():
    model = build()
    with pytest.raises(ValueError, match='tracklets.tokens'):
        model(*make_inputs(), tracklets=make_tracklets(2, 3, 2))  # 3 frames, not 4


def test_the_full_size_svd_unet_builds_on_the_meta_device():
    """The architecture of configs/trackdiff/svd_ytvis.py (SVD img2vid with 1024-d tokens and
    128-d track features), without allocating it."""
    with torch.device('meta'):
        model = TrackletUNetSpatioTemporal(grounding_context_dim=1024, enhancer_track_dim=128)
    groups = model.module_groups()
    counts = {g: sum(p.numel() for m in ms for p in m.parameters()) for g, ms in groups.items()}
    assert 1.4e9 < sum(counts.values()) < 2.5e9
    assert counts['grounding'] > 0 and counts['enhancer'] > 0 and counts['temporal'] > 0
    assert model.config.enhancer_blocks == ['up_blocks.1', 'up_blocks.2', 'up_blocks.3']
