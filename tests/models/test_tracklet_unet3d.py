"""TrackletUNet3D: a stock UNet3D at step 0, grounded and enhanced by tracklets after it."""
import json
import os.path as osp

import pytest
import torch
from diffusers import UNet3DConditionModel
from diffusers.models.attention import GatedSelfAttentionDense

from mmtrackgen.models.conditioning.gated_grounding import GatedGrounding, NoGrounding
from mmtrackgen.models.conditioning.instance_enhancer import InstanceEnhancer
from mmtrackgen.models.conditioning.tracklet_conditioning import TrackletConditioning
from mmtrackgen.models.generators.generator_utils import initialise_missing_layers
from mmtrackgen.models.generators.tracklet_unet3d import TrackletUNet3D
from mmtrackgen.registry import MODELS

TINY = dict(
    block_out_channels=(16, 32),
    layers_per_block=1,
    attention_head_dim=8,
    norm_num_groups=8,
    cross_attention_dim=16,
    down_block_types=('CrossAttnDownBlock3D', 'CrossAttnDownBlock3D'),
    up_block_types=('CrossAttnUpBlock3D', 'CrossAttnUpBlock3D'),
)
TOKEN_DIM = 12  # D of TrackletConditioning.tokens
TRACK_DIM = 6  # Dt of TrackletConditioning.track_features
NEW = dict(grounding_context_dim=TOKEN_DIM, enhancer_track_dim=TRACK_DIM)


def build(seed=0, **kwargs):
    torch.manual_seed(seed)
    return TrackletUNet3D(**{**TINY, **NEW, **kwargs}).eval()


def make_tracklets(batch, frames, slots, seed=1, visible_prob=0.7):
    g = torch.Generator().manual_seed(seed)
    corner = torch.rand(batch, frames, slots, 2, generator=g) * 0.6  # (B, F, N, 2)
    size = 0.1 + torch.rand(batch, frames, slots, 2, generator=g) * 0.3  # (B, F, N, 2)
    return TrackletConditioning(
        tokens=torch.randn(batch, frames, slots, TOKEN_DIM, generator=g),
        track_features=torch.randn(batch, slots, frames, TRACK_DIM, generator=g),
        boxes=torch.cat([corner, corner + size], dim=-1),
        visible=torch.rand(batch, frames, slots, generator=g) < visible_prob,
    )


def make_inputs(batch=2, frames=4, size=16, seed=2):
    g = torch.Generator().manual_seed(seed)
    sample = torch.randn(batch, 4, frames, size, size, generator=g)  # (B, C, F, H, W)
    timestep = torch.randint(0, 1000, (batch, ), generator=g)
    text = torch.randn(batch, 5, TINY['cross_attention_dim'], generator=g)  # (B, L, 16)
    return sample, timestep, text


def new_modules(model):
    return [m for m in model.modules() if isinstance(m, (GatedGrounding, InstanceEnhancer))]


def set_gates(model, value):
    with torch.no_grad():
        for module in new_modules(model):
            module.alpha_attn.fill_(value)
            module.alpha_dense.fill_(value)


def concat_slots(a, b):
    return TrackletConditioning(
        tokens=torch.cat([a.tokens, b.tokens], dim=2),
        track_features=torch.cat([a.track_features, b.track_features], dim=1),
        boxes=torch.cat([a.boxes, b.boxes], dim=2),
        visible=torch.cat([a.visible, b.visible], dim=2),
    )


def permute_slots(t, order):
    return TrackletConditioning(t.tokens[:, :, order], t.track_features[:, order],
                                t.boxes[:, :, order], t.visible[:, :, order])


def is_new_key(key):
    return '.fuser.' in key or '.instance_enhancer.' in key


# GLIGEN's layout, and the tiny config's: token positions and grounding confined to boxes.
GROUNDING_VARIANTS = [{}, dict(token_position_freqs=4, ground_within_boxes=True)]


@pytest.mark.parametrize('variant', GROUNDING_VARIANTS)
def test_zero_gates_match_stock_then_a_step_on_the_gates_changes_the_output(variant):
    torch.manual_seed(0)
    stock = UNet3DConditionModel(**TINY).eval()
    model = build(seed=1, **variant)
    model.load_state_dict(stock.state_dict(), strict=False)
    sample, timestep, text = make_inputs()
    tracklets = make_tracklets(2, 4, 3)

    with torch.no_grad():
        expected = stock(sample, timestep, text).sample
        before = model(sample, timestep, text, tracklets=tracklets).sample
    assert before.shape == sample.shape
    torch.testing.assert_close(before, expected, rtol=0, atol=1e-6)

    gates = [p for m in new_modules(model) for p in (m.alpha_attn, m.alpha_dense)]
    optimizer = torch.optim.SGD(gates, lr=1.0)
    model(sample, timestep, text, tracklets=tracklets).sample.square().mean().backward()
    assert all(g.grad is not None and g.grad.abs() > 0 for g in gates)
    optimizer.step()
    with torch.no_grad():
        after = model(sample, timestep, text, tracklets=tracklets).sample
    assert (after - expected).abs().max() > 1e-4


def test_grounding_matches_gligen_when_every_instance_is_visible():
    """With all tokens visible, each frame gets exactly GLIGEN's gated self-attention."""
    torch.manual_seed(0)
    gligen = GatedSelfAttentionDense(16, TOKEN_DIM, 2, 8)
    ours = GatedGrounding(16, TOKEN_DIM, 2, 8)
    assert ours.state_dict().keys() == gligen.state_dict().keys()  # GLIGEN fuser.* weights fit
    with torch.no_grad():
        gligen.alpha_attn.fill_(0.7)
        gligen.alpha_dense.fill_(-0.4)
    ours.load_state_dict(gligen.state_dict())
    tracklets = make_tracklets(2, 3, 4, visible_prob=1.1)
    visual = torch.randn(6, 20, 16)  # (B*F, HW, C)
    expected = gligen(visual, tracklets.frame_major(tracklets.tokens))
    torch.testing.assert_close(ours(visual, tracklets), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('checkpointing', [False, True])
def test_gradients_reach_new_layers(checkpointing):
    model = build().train()
    set_gates(model, 0.5)
    if checkpointing:
        model.enable_gradient_checkpointing()
    assert model.is_gradient_checkpointing == checkpointing
    sample, timestep, text = make_inputs()
    torch.manual_seed(3)  # dropout of the temporal convs
    out = model(sample, timestep, text, tracklets=make_tracklets(2, 4, 3)).sample
    out.square().mean().backward()
    for module in new_modules(model):
        for name, param in module.named_parameters():
            assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_gradient_checkpointing_matches_and_recomputes_the_new_layers():
    model = build().train()
    set_gates(model, 0.5)
    sample, timestep, text = make_inputs()
    tracklets = make_tracklets(2, 4, 3)
    keys = list(model.state_dict())

    def run():
        model.zero_grad()
        torch.manual_seed(3)  # same dropout masks in both runs
        loss = model(sample, timestep, text, tracklets=tracklets).sample.square().mean()
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    calls = {'grounding': 0, 'enhancer': 0}
    for module in new_modules(model):
        group = 'grounding' if isinstance(module, GatedGrounding) else 'enhancer'
        # Counted on a child: hooks of a checkpointed module itself run once, outside.
        module.attn.register_forward_hook(
            lambda *_, group=group: calls.__setitem__(group, calls[group] + 1))

    plain_loss, plain_grads = run()
    plain_calls = dict(calls)
    model.enable_gradient_checkpointing()
    assert list(model.state_dict()) == keys
    assert [n for n, _ in model.named_parameters()] == list(plain_grads)
    ckpt_loss, ckpt_grads = run()
    # Fusers and enhancers ran again in backward: they sit inside the checkpointed calls.
    assert calls == {group: 3 * count for group, count in plain_calls.items()}

    torch.testing.assert_close(ckpt_loss, plain_loss)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(ckpt_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)

    model.disable_gradient_checkpointing()
    assert not model.is_gradient_checkpointing and list(model.state_dict()) == keys
    again_loss, _ = run()
    torch.testing.assert_close(again_loss, plain_loss)


@pytest.mark.parametrize('variant', GROUNDING_VARIANTS)
def test_a_never_visible_instance_has_no_effect_and_slot_order_does_not_matter(variant):
    model = build(**variant)
    set_gates(model, 0.5)
    sample, timestep, text = make_inputs()
    tracklets = make_tracklets(2, 4, 3)
    ghost = make_tracklets(2, 4, 1, seed=7)
    ghost.visible = torch.zeros_like(ghost.visible)
    order = torch.tensor([2, 0, 3, 1])

    with torch.no_grad():
        out = model(sample, timestep, text, tracklets=tracklets).sample
        with_ghost = model(sample, timestep, text, tracklets=concat_slots(tracklets, ghost)).sample
        permuted = model(
            sample, timestep, text, tracklets=permute_slots(concat_slots(tracklets, ghost),
                                                            order)).sample
        stock_like = model(sample, timestep, text).sample
    assert (out - stock_like).abs().max() > 1e-4  # the gates are open
    torch.testing.assert_close(with_ghost, out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(permuted, out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('frames,slots,size', [(4, 1, 16), (64, 3, 8), (4, 64, 16), (5, 0, 16)])
def test_any_number_of_frames_and_instances(frames, slots, size):
    model = build()
    set_gates(model, 0.5)
    sample, timestep, text = make_inputs(batch=1, frames=frames, size=size)
    with torch.no_grad():
        out = model(sample, timestep, text, tracklets=make_tracklets(1, frames, slots)).sample
    assert out.shape == sample.shape and torch.isfinite(out).all()


def test_no_instance_leaves_the_enhancer_as_the_identity():
    enhancer = InstanceEnhancer(16, TRACK_DIM, num_heads=4)
    with torch.no_grad():
        enhancer.alpha_attn.fill_(0.5)
        enhancer.alpha_dense.fill_(0.5)
    feature_map = torch.randn(8, 16, 6, 6)  # (B*F, C, H, W)
    assert torch.equal(enhancer(feature_map, make_tracklets(2, 4, 0)), feature_map)
    hidden = make_tracklets(2, 4, 3, visible_prob=0.0)
    assert torch.equal(enhancer(feature_map, hidden), feature_map)
    # Only frames with a visible instance change.
    partly = make_tracklets(2, 4, 3, visible_prob=0.0)
    partly.visible[0, 1, 2] = True
    changed = (enhancer(feature_map, partly) != feature_map).flatten(1).any(dim=1)  # (B*F,)
    assert changed.tolist() == [False, True, False, False, False, False, False, False]


def test_bfloat16_runs():
    """mmcv's RoIAlign has no bfloat16 kernel; the enhancer pools in float32 at least."""
    model = build().to(torch.bfloat16)
    set_gates(model, 0.5)
    sample, timestep, text = make_inputs()
    tracklets = make_tracklets(2, 4, 3)
    tracklets.tokens = tracklets.tokens.bfloat16()
    tracklets.track_features = tracklets.track_features.bfloat16()
    with torch.no_grad():
        out = model(sample.bfloat16(), timestep, text.bfloat16(), tracklets=tracklets).sample
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_without_tracklets_it_is_the_stock_unet():
    torch.manual_seed(0)
    stock = UNet3DConditionModel(**TINY).eval()
    model = build(seed=1)
    model.load_state_dict(stock.state_dict(), strict=False)
    set_gates(model, 0.5)
    sample, timestep, text = make_inputs()
    with torch.no_grad():
        torch.testing.assert_close(
            model(sample, timestep, text, return_dict=False)[0],
            stock(sample, timestep, text).sample,
            rtol=0,
            atol=1e-6)


def test_tracklets_pass_through_a_model_without_new_layers():
    plain = build(grounding_context_dim=None, enhancer_track_dim=None)
    assert not new_modules(plain)
    assert plain.config.grounding_blocks == [] and plain.config.enhancer_blocks == []
    sample, timestep, text = make_inputs()
    with torch.no_grad():
        with_tracklets = plain(sample, timestep, text, tracklets=make_tracklets(2, 4, 3)).sample
        torch.testing.assert_close(
            with_tracklets, plain(sample, timestep, text).sample, rtol=0, atol=0)


def test_block_choice():
    model = build(grounding_blocks=['mid_block'], enhancer_blocks=['down_blocks.1', 'up_blocks.1'])
    grounded = [n for n, m in model.named_modules() if isinstance(m, GatedGrounding)]
    enhanced = [n for n, m in model.named_modules() if isinstance(m, InstanceEnhancer)]
    assert grounded == ['mid_block.attentions.0.transformer_blocks.0.fuser']
    assert enhanced == [
        'down_blocks.1.attentions.0.instance_enhancer',
        'up_blocks.1.attentions.0.instance_enhancer', 'up_blocks.1.attentions.1.instance_enhancer'
    ]
    # Temporal blocks and ungrounded spatial blocks pass the tracklets through.
    assert isinstance(model.transformer_in.transformer_blocks[0].fuser, NoGrounding)
    assert isinstance(model.down_blocks[0].attentions[0].transformer_blocks[0].fuser, NoGrounding)
    set_gates(model, 0.5)
    sample, timestep, text = make_inputs()
    with torch.no_grad():
        out = model(sample, timestep, text, tracklets=make_tracklets(2, 4, 2)).sample
    assert torch.isfinite(out).all()


def test_a_stock_state_dict_loads_without_renaming():
    torch.manual_seed(0)
    stock = UNet3DConditionModel(**TINY)
    model = build()
    result = model.load_state_dict(stock.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(is_new_key(k) for k in result.missing_keys)
    assert set(result.missing_keys) == {k for k in model.state_dict() if is_new_key(k)}
    assert set(model.state_dict()) - set(result.missing_keys) == set(stock.state_dict())


def test_from_pretrained_extends_a_saved_stock_unet(tmp_path):
    torch.manual_seed(0)
    stock = UNet3DConditionModel(**TINY).eval()
    stock.save_pretrained(tmp_path / 'stock')
    model, info = TrackletUNet3D.from_pretrained(
        tmp_path / 'stock', output_loading_info=True, **NEW)
    model.eval()
    assert isinstance(model, TrackletUNet3D) and model.config.grounding_context_dim == TOKEN_DIM
    assert info['unexpected_keys'] == [] and all(is_new_key(k) for k in info['missing_keys'])
    # diffusers builds with torch.nn.init switched off; the new layers were initialised here.
    assert all(torch.isfinite(p).all() and p.abs().max() < 10 for p in model.parameters())
    sample, timestep, text = make_inputs()
    with torch.no_grad():
        torch.testing.assert_close(
            model(sample, timestep, text, tracklets=make_tracklets(2, 4, 3)).sample,
            stock(sample, timestep, text).sample,
            rtol=0,
            atol=1e-6)


def test_new_layers_left_on_the_meta_device_are_materialised():
    """What accelerate's low_cpu_mem_usage loading leaves for keys the checkpoint lacks."""
    model = build()
    missing = [k for k in model.state_dict() if is_new_key(k)]
    for module in new_modules(model):
        module.to('meta')
    initialise_missing_layers(model, missing)
    assert not any(p.is_meta for p in model.parameters())
    assert all(not m.alpha_attn.any() and not m.alpha_dense.any() for m in new_modules(model))
    with pytest.raises(ValueError, match='only part of'):
        initialise_missing_layers(model, missing[:1])


def test_save_and_load_round_trip(tmp_path):
    model = build(
        grounding_blocks=['down_blocks.0', 'up_blocks.1'], enhancer_num_heads=2, enhancer_ff_mult=2)
    set_gates(model, 0.5)
    model.save_pretrained(tmp_path)
    with open(osp.join(tmp_path, 'config.json')) as f:
        config = json.load(f)
    assert config['_class_name'] == 'TrackletUNet3D'
    assert config['grounding_context_dim'] == TOKEN_DIM
    assert config['enhancer_track_dim'] == TRACK_DIM
    assert config['grounding_blocks'] == ['down_blocks.0', 'up_blocks.1']
    assert config['enhancer_blocks'] == ['up_blocks.0', 'up_blocks.1']
    assert config['enhancer_num_heads'] == 2 and config['enhancer_ff_mult'] == 2

    loaded, info = TrackletUNet3D.from_pretrained(tmp_path, output_loading_info=True)
    loaded.eval()
    assert info['missing_keys'] == [] and info['unexpected_keys'] == []
    sample, timestep, text = make_inputs()
    tracklets = make_tracklets(2, 4, 3)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(sample, timestep, text, tracklets=tracklets).sample,
            model(sample, timestep, text, tracklets=tracklets).sample,
            rtol=0,
            atol=0)


def test_built_from_the_registry():
    model = MODELS.build(dict(type='TrackletUNet3D', **TINY, **NEW))
    assert isinstance(model, TrackletUNet3D)


@pytest.mark.parametrize('kwargs,message', [
    (dict(grounding_context_dim=0), 'grounding_context_dim'),
    (dict(grounding_context_dim=-3), 'grounding_context_dim'),
    (dict(enhancer_track_dim=0), 'enhancer_track_dim'),
    (dict(enhancer_blocks=['up_blocks.2']), r"names \['up_blocks.2'\]"),
    (dict(enhancer_blocks='up_blocks.1'), 'list of block names'),
    (dict(enhancer_blocks=['up_blocks.1', 'up_blocks.1']), 'repeats'),
    (dict(grounding_blocks=['transformer_in']), 'not blocks with spatial transformers'),
    (dict(grounding_context_dim=None, grounding_blocks=['mid_block']), 'grounding_context_dim'),
    (dict(enhancer_track_dim=None, enhancer_blocks=['up_blocks.0']), 'enhancer_track_dim'),
    (dict(enhancer_num_heads=3), 'must divide'),
    (dict(enhancer_ff_mult=0), 'enhancer_ff_mult'),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build(**kwargs)


def test_mismatched_tracklets_raise():
    model = build()
    sample, timestep, text = make_inputs()
    with pytest.raises(ValueError, match='tracklets.tokens'):
        model(sample, timestep, text, tracklets=make_tracklets(2, 3, 2))  # 3 frames, not 4
    wrong_width = make_tracklets(2, 4, 2)
    wrong_width.track_features = wrong_width.track_features[..., :2]
    with pytest.raises(ValueError, match='tracklets.track_features'):
        model(sample, timestep, text, tracklets=wrong_width)


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
    assert groups['grounding'] == [m for m in model.modules() if isinstance(m, GatedGrounding)]
    assert groups['enhancer'] == [m for m in model.modules() if isinstance(m, InstanceEnhancer)]
    assert model.transformer_in in groups['temporal']
    for pid, group in owner.items():
        assert (group == 'grounding') == ('.fuser.' in names[pid])
        assert (group == 'enhancer') == ('.instance_enhancer.' in names[pid])
        if group == 'temporal':
            temporal_parts = ('temp_convs', 'temp_attentions', 'transformer_in')
            assert any(part in names[pid] for part in temporal_parts)


def test_gate_init_opens_every_new_gate_and_is_kept_in_the_config(tmp_path):
    model = build(gate_init=0.5)
    gates = [g for m in new_modules(model) for g in (m.alpha_attn, m.alpha_dense)]
    assert gates and all(float(g) == 0.5 for g in gates)
    assert model.config.gate_init == 0.5
    torch.manual_seed(0)
    UNet3DConditionModel(**TINY).save_pretrained(str(tmp_path / 'stock'))
    loaded = TrackletUNet3D.from_pretrained(str(tmp_path / 'stock'), gate_init=0.25, **NEW)
    assert all(float(m.alpha_attn) == 0.25 for m in new_modules(loaded))


def test_within_boxes_a_box_reaches_only_the_tokens_it_covers():
    """With grounding confined to boxes, an instance changes a spatial transformer's output only
    at the cells its box covers (checked on the first grounded block alone)."""
    from mmtrackgen.models.conditioning.fourier import cells_in_boxes
    model = build(token_position_freqs=4, ground_within_boxes=True)
    set_gates(model, 0.5)
    fuser = model.down_blocks[0].attentions[0].transformer_blocks[0].fuser
    tracklets = make_tracklets(1, 2, 1, visible_prob=1.0)
    tracklets.frame_size = (16, 16)
    nulled = make_tracklets(1, 2, 1, visible_prob=1.0)
    nulled.frame_size = (16, 16)
    nulled.visible = torch.zeros_like(nulled.visible)
    x = torch.randn(2, 256, fuser.linear.out_features)  # (F, HW, C) at 16x16
    with torch.no_grad():
        change = (fuser(x, tracklets) - fuser(x, nulled)).abs().sum(-1)  # (F, HW)
    covered = cells_in_boxes(tracklets.boxes[0], tracklets.visible[0], (16, 16))[..., 0]
    assert covered.any() and (~covered).any()
    assert change[covered].min() > 0
    # Outside cells attend only to the (unchanged) visual tokens; the feed-forward is per token.
    assert change[~covered].max() < 1e-5


# The authors' released layout (configs/_base_/models/trackdiffusion_authors_t2v.py), tiny.
AUTHORS_LAYOUT = dict(
    grounding_mask_invisible=False,
    enhancer_placement='transformer_block',
    enhancer_num_heads=8,
    enhancer_options=dict(
        fuse_layers=3,
        frame_positions=False,
        frame_ff=False,
        norm_instances=False,
        mask_invisible=False,
        roi_aligned=False),
    temporal_frame_embeddings=4)


def test_the_authors_layout_starts_as_the_stock_unet_and_its_new_layers_act():
    torch.manual_seed(0)
    stock = UNet3DConditionModel(**TINY).eval()
    model = build(seed=1, **AUTHORS_LAYOUT)
    missing = model.load_state_dict(stock.state_dict(), strict=False).missing_keys
    assert all(is_new_key(k) or '.time_embedder.' in k for k in missing)
    assert any('.transformer_blocks.0.instance_enhancer.' in k for k in missing)
    assert not any(k.startswith('down_blocks.') and '.instance_enhancer.' in k for k in missing)
    sample, timestep, text = make_inputs()
    tracklets = make_tracklets(2, 4, 3)
    with torch.no_grad():
        expected = stock(sample, timestep, text).sample
        torch.testing.assert_close(
            model(sample, timestep, text, tracklets=tracklets).sample, expected, rtol=0,
            atol=1e-6)  # zero gates, zero frame tables: the stock UNet
        model.transformer_in.time_embedder.weight.normal_()
        with_frames = model(sample, timestep, text, tracklets=tracklets).sample
        set_gates(model, 0.5)
        out = model(sample, timestep, text, tracklets=tracklets).sample
        ghost = make_tracklets(2, 4, 1, seed=7)
        ghost.visible = torch.zeros_like(ghost.visible)
        padded = model(sample, timestep, text, tracklets=concat_slots(tracklets, ghost)).sample
    assert (with_frames - expected).abs().max() > 1e-4
    assert (out - with_frames).abs().max() > 1e-4
    # unmasked, as GLIGEN and the authors: a padded (never visible) slot is a key too
    assert (padded - out).abs().max() > 1e-6


def test_the_authors_layout_options_are_checked():
    with pytest.raises(ValueError, match=r"`enhancer_options` has \['bogus'\]"):
        build(**{**AUTHORS_LAYOUT, 'enhancer_options': dict(bogus=1)})
    with pytest.raises(ValueError, match='`enhancer_placement` must be one of'):
        build(enhancer_placement='after_everything')
    with pytest.raises(ValueError, match='`temporal_frame_embeddings`'):
        build(temporal_frame_embeddings=0)
    model = build(**AUTHORS_LAYOUT)
    sample, timestep, text = make_inputs(frames=5)
    with pytest.raises(ValueError, match='5 frames, but the learned frame embedding'):
        model(sample, timestep, text, tracklets=make_tracklets(2, 5, 2))
