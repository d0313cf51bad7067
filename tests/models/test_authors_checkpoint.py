"""The authors' released layout: a tiny random checkpoint in their key layout converts, loads
strictly into the model of a tiny variant of configs/trackdiff/ytvis_authors_t2v.py and
generates; the converted layers compute the authors' formulas on the same weights.

Their layout is written here from their published code's modules, independently of the
converter's rules: the stock diffusers UNet3D (their blocks keep its names), GLIGEN's
``GatedSelfAttentionDense`` fusers and ``GLIGENTextBoundingboxProjection`` position net, and
their additions listed by hand (``injector``, ``null_track_feat``, ``time_embedder``,
``instance_embedding``, ``tracklet_*``), with small widths.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from diffusers import UNet3DConditionModel
from diffusers.models.attention import BasicTransformerBlock, FeedForward, GatedSelfAttentionDense
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import (GLIGENTextBoundingboxProjection,
                                         get_fourier_embeds_from_boundingbox)
from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel
from torch import nn

from mmtrackgen.generation.runner import load_model_weights
from mmtrackgen.models.conditioning.instance_enhancer import roi_align_op
from mmtrackgen.models.conditioning.tracklet_conditioning import TrackletConditioning
from mmtrackgen.models.generators.authors_checkpoint import (AuthorsCheckpointError,
                                                             authors_state_to_ours)
from mmtrackgen.registry import MODELS
from mmtrackgen.structures import TrackletClipSample
from mmtrackgen.utils import load_config
from tests.factories import moving_track, write_cocovid
from tests.test_full_size_config import write_tiny_t2v_folder

ROOT = Path(__file__).resolve().parents[2]
C, CLIP_DIM, TRACK_DIM, NUM_FREQS, SLOTS, FRAMES, HEADS = 32, 32, 16, 2, 3, 4, 8
UNET = dict(
    block_out_channels=(C, C),
    layers_per_block=1,
    norm_num_groups=8,
    cross_attention_dim=CLIP_DIM,
    attention_head_dim=8,
    down_block_types=('CrossAttnDownBlock3D', 'DownBlock3D'),
    up_block_types=('UpBlock3D', 'CrossAttnUpBlock3D'))

TINY_CONFIG = f"""
_base_ = ['{ROOT}/configs/trackdiff/ytvis_authors_t2v.py']
pretrained = '{{folder}}'
model = dict(
    data_preprocessor=dict(
        vae=dict(pretrained=pretrained), text_encoder=dict(pretrained=pretrained)),
    generator=dict(
        block_out_channels={UNET['block_out_channels']}, layers_per_block=1, norm_num_groups=8,
        cross_attention_dim={CLIP_DIM}, attention_head_dim=8,
        down_block_types={UNET['down_block_types']}, up_block_types={UNET['up_block_types']},
        grounding_context_dim={CLIP_DIM}, enhancer_track_dim={TRACK_DIM},
        temporal_frame_embeddings={FRAMES}),
    tracklet_encoder=dict(
        token_dim={CLIP_DIM}, track_dim={TRACK_DIM}, num_freqs={NUM_FREQS}, track_head_dim=8,
        num_identity_slots={SLOTS},
        category_embedding=dict(pretrained=pretrained, class_names=('cat', 'dog'))),
    noise_scheduler=dict(from_pretrained=pretrained),
    gradient_checkpointing=False)
# what tools/generate.py reads: clip length, classes, the test pipeline (16x16, {SLOTS} slots)
num_frames = {FRAMES}
classes = ('cat', 'dog')
test_pipeline = [
    dict(type='LoadTrackletClip'),
    dict(type='ClipResize', scale=(16, 16)),
    dict(type='AssignInstanceSlots', num_slots={SLOTS}, overflow='most_visible'),
    dict(type='TemplateCaption'),
    dict(type='PackClipInputs'),
]
"""


def _randomised(module: nn.Module, prefix: str) -> dict:
    """``module``'s state under ``prefix``, every tensor random (gates included, so no layer
    is the identity)."""
    return {f'{prefix}{k}': torch.randn_like(v) * 0.3 for k, v in module.state_dict().items()}


def authors_layout_state(seed: int = 0) -> dict:
    """A random checkpoint in the authors' key layout and shapes (tiny widths)."""
    torch.manual_seed(seed)
    unet = UNet3DConditionModel(**UNET)
    state = _randomised(unet, '')
    box_dim = 4 * 2 * NUM_FREQS
    for name, module in unet.named_modules():
        if isinstance(module, TransformerTemporalModel):  # open_time_embedding=learnable_frame
            state[f'{name}.time_embedder.weight'] = torch.randn(FRAMES, module.in_channels)
        if isinstance(module, BasicTransformerBlock) and '.attentions.' in name:
            dim = module.norm1.normalized_shape[0]
            state.update(
                _randomised(
                    GatedSelfAttentionDense(dim, CLIP_DIM, HEADS, dim // HEADS), f'{name}.fuser.'))
            if name.startswith('up_blocks.'):  # GatedCrossAttentionTrackFuse
                injector = nn.Module()
                injector.attn1 = Attention(query_dim=dim, heads=HEADS, dim_head=dim // HEADS)
                injector.attn2 = Attention(query_dim=dim, heads=HEADS, dim_head=dim // HEADS)
                injector.ff = FeedForward(dim, activation_fn='geglu')
                injector.norm1, injector.norm2, injector.norm3 = (
                    nn.LayerNorm(dim) for _ in range(3))
                injector.alpha_attn = nn.Parameter(torch.tensor(0.0))
                injector.alpha_dense = nn.Parameter(torch.tensor(0.0))
                injector.linears = nn.Sequential(
                    nn.Linear(dim + TRACK_DIM, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU(),
                    nn.Linear(dim, dim))
                state.update(_randomised(injector, f'{name}.injector.'))
    for i, block in enumerate(unet.up_blocks):
        if hasattr(block, 'attentions'):
            state[f'up_blocks.{i}.null_track_feat.weight'] = torch.randn(1, C)
    position_net = GLIGENTextBoundingboxProjection(CLIP_DIM, CLIP_DIM, fourier_freqs=NUM_FREQS)
    position_net.instance_embedding = nn.Embedding(SLOTS, CLIP_DIM)
    position_net.tracklet_attn = Attention(query_dim=box_dim, heads=4, dim_head=8)
    position_net.tracklet_norm = nn.LayerNorm(box_dim)
    position_net.tracklet_linears = nn.Sequential(
        nn.Linear(box_dim, TRACK_DIM), nn.SiLU(), nn.Linear(TRACK_DIM, TRACK_DIM))
    state.update(_randomised(position_net, 'position_net.'))
    return state


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """(tiny config path, their folder, converted checkpoint, their state, tool output)."""
    tmp = tmp_path_factory.mktemp('authors')
    folder = tmp / 'stable-diffusion-v1-5'
    write_tiny_t2v_folder(folder)
    config = tmp / 'ytvis_authors_t2v_tiny.py'
    config.write_text(TINY_CONFIG.format(folder=folder))
    theirs = tmp / 'TrackDiffusion_Pretrain'
    (theirs / 'unet').mkdir(parents=True)
    state = authors_layout_state()
    torch.save(state, theirs / 'unet' / 'diffusion_pytorch_model.bin')
    (theirs / 'unet' / 'config.json').write_text(
        UNet3DConditionModel(**UNET).to_json_string().replace(
            '"_class_name": "UNet3DConditionModel"',
            '"_class_name": "UNet3DConditionModel", "attention_type": "gated"'))
    out = tmp / 'work_dirs' / 'authors_t2v.pth'  # a folder the converter creates
    result = subprocess.run([
        sys.executable,
        str(ROOT / 'tools/convert_authors_checkpoint.py'),
        str(theirs),
        str(out), '--config',
        str(config)
    ],
                            capture_output=True,
                            text=True,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return config, theirs, out, state, result.stdout


@pytest.fixture(scope='module')
def model(converted):
    config, _, out, _, _ = converted
    model = MODELS.build(load_config(str(config)).model)
    load_model_weights(model, str(out))
    return model.eval()


def test_every_key_of_theirs_is_mapped_reported_and_loads_strictly(converted, model):
    config, _, out, state, stdout = converted
    for key in state:
        assert key in stdout, key  # every one of their keys is reported with its target
    saved = torch.load(out, weights_only=True)['state_dict']
    expected = {k for k in model.state_dict() if k.startswith(('generator.', 'tracklet_encoder.'))}
    assert expected <= set(saved)  # nothing of the generator left to a random initialisation
    fresh = MODELS.build(load_config(str(config)).model)
    incompatible = fresh.load_state_dict(saved, strict=False)
    assert not incompatible.unexpected_keys
    assert all(k.startswith('data_preprocessor.') for k in incompatible.missing_keys)
    # one null_track_feat per decoder block -> the null feature of each of its enhancers
    null = state['up_blocks.1.null_track_feat.weight'][0]
    enhancers = [m for m in model.generator.up_blocks[1].modules() if hasattr(m, 'null_feature')]
    assert len(enhancers) == 2 and all(torch.equal(e.null_feature, null) for e in enhancers)


def _clip_sample():
    sample = TrackletClipSample(metainfo=dict(caption='a cat', img_shape=(16, 16)))
    sample.gt_boxes = torch.tensor([[[0.1, 0.1, 0.5, 0.6], [0.5, 0.4, 0.9, 0.9],
                                     [0.0, 0.0, 0.0, 0.0]]]).repeat(FRAMES, 1, 1)
    sample.gt_visible = torch.tensor([[True, True, False]]).repeat(FRAMES, 1)
    sample.gt_visible[2, 1] = False  # the second instance vanishes for a frame
    sample.gt_visibility = sample.gt_visible.float()
    sample.gt_labels = torch.tensor([0, 1, -1])
    sample.gt_instance_ids = torch.tensor([1, 2, -1])
    sample.gt_slot_mask = torch.tensor([True, True, False])
    return sample


def test_converted_model_generates_a_clip(model):
    sample = _clip_sample()
    frames = torch.zeros(FRAMES, 3, 16, 16, dtype=torch.uint8)
    data = model.data_preprocessor(dict(inputs=[frames], data_samples=[sample]), False)
    with torch.no_grad():
        out = model.predict(data['inputs'], data['data_samples'], num_inference_steps=2)
    clip = out[0].pred_frames
    assert clip.shape == (FRAMES, 3, 16, 16) and clip.dtype == torch.uint8


def test_fine_tuning_step_trains_their_trained_parts_under_checkpointing(converted):
    config, _, out, _, _ = converted
    cfg = load_config(str(config)).model
    cfg.gradient_checkpointing = True  # as the config: the in-block enhancers are recomputed
    model = MODELS.build(cfg)
    load_model_weights(model, str(out))
    assert model.generator.is_gradient_checkpointing
    model.train()
    frames = torch.randint(0, 256, (FRAMES, 3, 16, 16), dtype=torch.uint8)
    data = model.data_preprocessor(dict(inputs=[frames], data_samples=[_clip_sample()]), True)
    loss = model(**data, mode='loss')['loss']
    loss.backward()
    assert torch.isfinite(loss)
    groups = model.generator.module_groups()
    enhancer = [p for m in groups['enhancer'] for p in m.parameters()]
    assert len(enhancer) > 0 and all(p.grad is not None for p in enhancer)
    assert all(p.grad is not None for m in groups['temporal'] for p in m.parameters())
    assert all(p.grad is None for m in groups['spatial'] + groups['grounding']
               for p in m.parameters())


def test_generate_tool_runs_the_converted_checkpoint(converted, tmp_path):
    config, _, out, _, _ = converted
    tracklets = write_cocovid(
        str(tmp_path / 'tracklets'), [
            dict(
                name='walk',
                num_frames=FRAMES,
                tracks={
                    1: moving_track(0, 0, FRAMES, (2, 2), (8, 8), (2, 1)),
                    2: moving_track(1, 1, FRAMES - 1, (12, 6), (6, 6), (-1, 1))
                })
        ],
        classes=('cat', 'dog'),
        write_frames=False)
    result = subprocess.run([
        sys.executable,
        str(ROOT / 'tools/generate.py'),
        str(config),
        str(out), '--tracklets', tracklets, '--out-dir',
        str(tmp_path / 'generated'), '--steps', '2', '--device', 'cpu'
    ],
                            capture_output=True,
                            text=True,
                            cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(
        list((tmp_path / 'generated').rglob('*.jpg')) +
        list((tmp_path / 'generated').rglob('*.png'))) == FRAMES


# ------------------------------------------------- the authors' formulas, applied by hand
def _linear(x, state, prefix, bias=True):
    return F.linear(x, state[f'{prefix}weight'], state[f'{prefix}bias'] if bias else None)


def _norm(x, state, prefix):
    return F.layer_norm(x, x.shape[-1:], state[f'{prefix}weight'], state[f'{prefix}bias'])


def _attention(x, context, state, prefix, heads):
    """diffusers ``Attention``: softmax(q k^T / sqrt(d)) v per head, then ``to_out.0``."""
    q = F.linear(x, state[f'{prefix}to_q.weight']).unflatten(-1, (heads, -1)).transpose(1, 2)
    k = F.linear(context, state[f'{prefix}to_k.weight']).unflatten(-1, (heads, -1)).transpose(1, 2)
    v = F.linear(context, state[f'{prefix}to_v.weight']).unflatten(-1, (heads, -1)).transpose(1, 2)
    weights = (q @ k.transpose(-1, -2) / q.shape[-1]**0.5).softmax(-1)
    return _linear((weights @ v).transpose(1, 2).flatten(2), state, f'{prefix}to_out.0.')


def _geglu_ff(x, state, prefix):
    hidden, gate = _linear(x, state, f'{prefix}net.0.proj.').chunk(2, dim=-1)
    return _linear(hidden * F.gelu(gate), state, f'{prefix}net.2.')


def _inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(1, FRAMES, SLOTS, 2, generator=g) * 0.5
    boxes = torch.cat([xy, xy + 0.1 + torch.rand(1, FRAMES, SLOTS, 2, generator=g) * 0.4], -1)
    visible = torch.rand(1, FRAMES, SLOTS, generator=g) > 0.3
    visible[..., -1] = False  # an empty (padded) slot
    labels = torch.tensor([[0, 1, -1]])
    return boxes, visible, labels


def test_position_net_tokens_are_gligen_projection_plus_instance_embedding(converted, model):
    """Their objs: diffusers' GLIGEN projection of [CLIP name ; GLIGEN Fourier(box)] with
    learned nulls where masked, plus the slot's row of the instance embedding."""
    _, _, _, state, _ = converted
    boxes, visible, labels = _inputs()
    projection = GLIGENTextBoundingboxProjection(CLIP_DIM, CLIP_DIM, fourier_freqs=NUM_FREQS)
    projection.load_state_dict({
        k[len('position_net.'):]: v
        for k, v in state.items()
        if k.startswith('position_net.') and k.split('.')[1] in ('linears', 'null_positive_feature',
                                                                 'null_position_feature')
    })
    names = model.tracklet_encoder.category_embedding(labels.clamp(min=0))  # (1, N, D)
    positive = names[:, None].expand(-1, FRAMES, -1, -1)  # (1, F, N, D)
    with torch.no_grad():
        objs = projection(
            boxes.flatten(1, 2),
            visible.flatten(1, 2).float(), positive.flatten(1, 2))
        objs = objs.view(1, FRAMES, SLOTS, -1) + state['position_net.instance_embedding.weight']
        cond = model.tracklet_encoder(boxes, visible, labels)
        # their tracklet branch: linears(x + attn(norm(x))) over frames, x the nulled box code
        loc = get_fourier_embeds_from_boundingbox(NUM_FREQS, boxes.flatten(1, 2))
        loc = torch.where(visible[..., None], loc.view(1, FRAMES, SLOTS, -1),
                          state['position_net.null_position_feature'])  # (1, F, N, Dp)
        seq = loc[0].transpose(0, 1)  # (N, F, Dp)
        normed = _norm(seq, state, 'position_net.tracklet_norm.')
        seq = seq + _attention(normed, normed, state, 'position_net.tracklet_attn.', 4)
        track = _linear(
            F.silu(_linear(seq, state, 'position_net.tracklet_linears.0.')), state,
            'position_net.tracklet_linears.2.')  # (N, F, Dt)
    torch.testing.assert_close(cond.tokens, objs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cond.track_features[0], track, rtol=1e-5, atol=1e-5)


def test_converted_fuser_and_injector_compute_the_authors_gated_formulas(converted, model):
    _, _, _, state, _ = converted
    boxes, visible, labels = _inputs(2)
    prefix = 'up_blocks.1.attentions.0.transformer_blocks.0.'
    block = model.generator.get_submodule(prefix[:-1])
    g = torch.Generator().manual_seed(3)
    height, width = 8, 8
    feature_map = torch.randn(FRAMES, C, height, width, generator=g)  # (B*F, C, H, W)
    x = torch.randn(FRAMES, height * width, C, generator=g)  # (B*F, HW, C)
    with torch.no_grad():
        cond = model.tracklet_encoder(boxes, visible, labels)
        cond = TrackletConditioning(
            cond.tokens, cond.track_features, cond.boxes, cond.visible, frame_size=(16, 16))
        ours_fuser = block.fuser.forward(x, cond)  # forward alone: not the hook that enhances
        ours_injector = block.instance_enhancer.enhance_tokens(ours_fuser, feature_map, cond)

        # GLIGEN's GatedSelfAttentionDense: every slot's token (nulls included) is a key.
        p = prefix + 'fuser.'
        objs = _linear(cond.tokens.flatten(0, 1), state, f'{p}linear.')  # (B*F, N, C)
        attended = _attention(
            _norm(torch.cat([x, objs], 1), state, f'{p}norm1.'),
            _norm(torch.cat([x, objs], 1), state, f'{p}norm1.'), state, f'{p}attn.',
            HEADS)[:, :height * width]
        hand = x + state[f'{p}alpha_attn'].tanh() * attended
        hand = hand + state[f'{p}alpha_dense'].tanh() * _geglu_ff(
            _norm(hand, state, f'{p}norm2.'), state, f'{p}ff.')
        torch.testing.assert_close(ours_fuser, hand, rtol=1e-5, atol=1e-5)

        # Their GatedCrossAttentionTrackFuse, with RoIs of the map (aligned=False) or the
        # block's null_track_feat where an instance is not visible.
        p = prefix + 'injector.'
        scale = torch.tensor([width, height, width, height])
        roi_align = roi_align_op()  # the kernel (torchvision's or mmcv's); unaligned, as theirs
        roi = torch.stack([
            roi_align(feature_map[f:f + 1], F.pad(boxes[0, f] * scale, (1, 0)), (1, 1), 1.0, 0,
                      'avg', False).flatten(1) for f in range(FRAMES)
        ])  # (F, N, C)
        null = state['up_blocks.1.null_track_feat.weight'][0]
        feat = torch.where(visible[0, ..., None], roi, null)  # (B*F, N, C)
        track = cond.track_features[0].transpose(0, 1)  # (F, N, Dt)
        h = torch.cat([feat, track], -1)
        h = _linear(
            F.silu(_linear(F.silu(_linear(h, state, f'{p}linears.0.')), state, f'{p}linears.2.')),
            state, f'{p}linears.4.')  # (F, N, C)
        per_instance = h.transpose(0, 1)  # (N, F, C)
        normed = _norm(per_instance, state, f'{p}norm1.')
        per_instance = per_instance + _attention(normed, normed, state, f'{p}attn1.', HEADS)
        instances = per_instance.transpose(0, 1)  # (F, N, C)
        y = ours_fuser
        y = y + state[f'{p}alpha_attn'].tanh() * _attention(
            _norm(y, state, f'{p}norm2.'), instances, state, f'{p}attn2.', HEADS)
        y = y + state[f'{p}alpha_dense'].tanh() * _geglu_ff(
            _norm(y, state, f'{p}norm3.'), state, f'{p}ff.')
        torch.testing.assert_close(ours_injector, y, rtol=1e-5, atol=1e-5)


def test_learned_frame_table_is_added_before_the_temporal_projection(converted, model):
    _, _, _, state, _ = converted
    temporal = model.generator.transformer_in
    x = torch.randn(2 * 3 * 3, FRAMES, C)  # (B*H*W, F, C) as proj_in sees it
    with torch.no_grad():
        ours = temporal.proj_in(x)
        hand = _linear(x + state['transformer_in.time_embedder.weight'], state,
                       'transformer_in.proj_in.')
    torch.testing.assert_close(ours, hand)
    with pytest.raises(ValueError, match='learned frame embedding'):
        temporal.proj_in(torch.randn(1, FRAMES + 1, C))


def test_unmapped_keys_and_shape_mismatches_fail_naming_the_key(converted, model):
    _, _, _, state, _ = converted
    expected = model.state_dict()
    tensors, report = authors_state_to_ours(state, expected)
    assert report.mapped['generator.up_blocks.1.attentions.0.transformer_blocks.0.'
                         'instance_enhancer.frame_attn.to_q.weight'] == (
                             'up_blocks.1.attentions.0.transformer_blocks.0.injector.attn1.'
                             'to_q.weight')
    extra = dict(state, **{'up_blocks.1.tracklet_attentions.0.proj_in.weight': torch.zeros(1)})
    with pytest.raises(
            AuthorsCheckpointError,
            match=r"'up_blocks\.1\.tracklet_attentions.*open_box_attn=enable"):
        authors_state_to_ours(extra, expected)
    wrong = dict(state)
    wrong['position_net.instance_embedding.weight'] = torch.zeros(20, CLIP_DIM)
    with pytest.raises(
            AuthorsCheckpointError,
            match=r"'position_net\.instance_embedding\.weight' has shape \(20, 32\)"):
        authors_state_to_ours(wrong, expected)
    short = {k: v for k, v in state.items() if not k.startswith('position_net.tracklet_norm')}
    with pytest.raises(AuthorsCheckpointError, match='track_blocks.0.norm'):
        authors_state_to_ours(short, expected)


def test_converter_refuses_a_config_of_another_architecture(converted, tmp_path):
    config, theirs, _, _, _ = converted
    result = subprocess.run([
        sys.executable,
        str(ROOT / 'tools/convert_authors_checkpoint.py'),
        str(theirs / 'unet'),
        str(tmp_path / 'x.pth'), '--config',
        str(config), '--cfg-options', 'model.generator.layers_per_block=2'
    ],
                            capture_output=True,
                            text=True,
                            cwd=ROOT)
    assert result.returncode == 2
    assert 'layers_per_block=1' in result.stderr and 'layers_per_block=2' in result.stderr
    assert not (tmp_path / 'x.pth').exists()
