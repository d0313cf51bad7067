"""The grounding attention with a head-shared mask over the instance columns equals the former
dense-mask computation (a (B*F, HW, HW + N) boolean key mask through diffusers' stock processor,
which copies it once per head), values and gradients, including instances invisible in some
frames, frames with no visible instance and boxes that cover no cell."""
import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from mmtrackgen.models.conditioning.fourier import (cell_and_box_codes, cells_in_boxes,
                                                    token_grid_shape)
from mmtrackgen.models.conditioning.gated_grounding import (GatedGrounding, SharedMaskAttnProcessor,
                                                            key_padding_bias)
from mmtrackgen.models.conditioning.instance_enhancer import InstanceEnhancer
from mmtrackgen.models.conditioning.tracklet_conditioning import TrackletConditioning

BATCH, FRAMES, SLOTS, CHANNELS, TOKEN_DIM, TRACK_DIM = 2, 3, 5, 16, 12, 6
FRAME_SIZE = (16, 16)  # an 8x8 token map at stride 2: HW = 64


def make_tracklets(seed=0):
    g = torch.Generator().manual_seed(seed)
    corner = torch.rand(BATCH, FRAMES, SLOTS, 2, generator=g) * 0.7  # (B, F, N, 2)
    size = 0.05 + torch.rand(BATCH, FRAMES, SLOTS, 2, generator=g) * 0.3  # (B, F, N, 2)
    boxes = torch.cat([corner, corner + size], dim=-1)  # (B, F, N, 4)
    visible = torch.rand(BATCH, FRAMES, SLOTS, generator=g) < 0.7  # (B, F, N)
    visible[0, 0] = False  # a frame with no visible instance
    visible[1, :, 0] = True  # slot 0 of clip 1: visible, but its box lies outside the frame
    boxes[1, :, 0] = torch.tensor([1.2, 1.3, 1.5, 1.6])
    return TrackletConditioning(
        tokens=torch.randn(BATCH, FRAMES, SLOTS, TOKEN_DIM, generator=g),
        track_features=torch.randn(BATCH, SLOTS, FRAMES, TRACK_DIM, generator=g),
        boxes=boxes,
        visible=visible,
        frame_size=FRAME_SIZE)


def dense_mask_reference(module: GatedGrounding, x: torch.Tensor,
                         objs: TrackletConditioning) -> torch.Tensor:
    """The former forward: [visual ; instance] rows normed and positioned together, a dense
    (B*F, HW, HW + N) key mask, diffusers' stock SDPA processor; only visual rows kept."""
    num_frames_batch, num_visual, _ = x.shape
    visible = objs.frame_major(objs.visible)  # (B*F, N)
    instances = module.linear(objs.frame_major(objs.tokens))  # (B*F, N, C)
    sequence = module.norm1(torch.cat([x, instances], dim=1))  # (B*F, HW + N, C)
    grid = token_grid_shape(num_visual, objs.frame_size)
    if module.position is not None:
        cells, boxes = cell_and_box_codes(
            objs.frame_major(objs.boxes), grid, module.position_freqs)  # (HW, 8K), (B*F, N, 8K)
        codes = torch.cat([cells.expand(num_frames_batch, -1, -1), boxes], dim=1)
        sequence = sequence + module.position(codes)  # (B*F, HW + N, C)
    if module.within_boxes:
        covered = cells_in_boxes(objs.frame_major(objs.boxes), visible, grid)  # (B*F, HW, N)
        always = covered.new_ones(num_frames_batch, num_visual, num_visual)  # (B*F, HW, HW)
        keep = torch.cat([always, covered], dim=2)  # (B*F, HW, HW + N)
    else:
        keep = torch.cat([visible.new_ones(num_frames_batch, num_visual), visible], dim=1)
    processor = module.attn.processor
    module.attn.set_processor(AttnProcessor2_0())
    try:
        attended = module.attn(
            sequence[:, :num_visual],
            encoder_hidden_states=sequence,
            attention_mask=key_padding_bias(keep, x.dtype))  # (B*F, HW, C)
    finally:
        module.attn.set_processor(processor)
    x = x + module.alpha_attn.tanh() * attended
    return x + module.alpha_dense.tanh() * module.ff(module.norm2(x))


def forward_and_grads(function, module, x, objs):
    module.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    tokens = objs.tokens.clone().requires_grad_()
    objs = TrackletConditioning(tokens, objs.track_features, objs.boxes, objs.visible,
                                objs.frame_size)
    out = function(module, x, objs)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    grads = {name: p.grad for name, p in module.named_parameters()}
    return out.detach(), x.grad, tokens.grad, grads


@pytest.mark.parametrize('within_boxes', [True, False])
@pytest.mark.parametrize('position_freqs', [None, 4])
def test_shared_instance_mask_equals_the_dense_mask_reference(within_boxes, position_freqs):
    torch.manual_seed(0)
    module = GatedGrounding(
        CHANNELS, TOKEN_DIM, 2, 8, position_freqs=position_freqs, within_boxes=within_boxes)
    with torch.no_grad():
        module.alpha_attn.fill_(0.8)
        module.alpha_dense.fill_(-0.6)
    assert isinstance(module.attn.processor, SharedMaskAttnProcessor)
    objs = make_tracklets()
    x = torch.randn(BATCH * FRAMES, 64, CHANNELS, generator=torch.Generator().manual_seed(1))

    new = forward_and_grads(lambda m, x, o: m(x, o), module, x, objs)
    ref = forward_and_grads(dense_mask_reference, module, x, objs)
    torch.testing.assert_close(new[0], ref[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(new[1], ref[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(new[2], ref[2], rtol=1e-5, atol=1e-6)
    assert new[3].keys() == ref[3].keys()
    for name, grad in ref[3].items():  # sums over many rows: summation order differs
        torch.testing.assert_close(new[3][name], grad, rtol=1e-4, atol=1e-4)
    # The instance outside the frame and the hidden frame were really in play: the tokens of
    # every invisible entry, and with `within_boxes` those of the box outside, get no gradient.
    hidden = ~objs.visible
    if within_boxes:
        hidden[1, :, 0] = True
    assert torch.equal(new[2][hidden], torch.zeros_like(new[2][hidden]))
    assert new[2][~hidden].abs().sum() > 0


@pytest.mark.parametrize('mask_rows', [1, 7])
def test_shared_mask_processor_equals_the_stock_processor(mask_rows):
    torch.manual_seed(0)
    attn = Attention(query_dim=CHANNELS, heads=4, dim_head=4)
    g = torch.Generator().manual_seed(2)
    hidden = torch.randn(3, 7, CHANNELS, generator=g)  # (B, Q, C)
    context = torch.randn(3, 9, CHANNELS, generator=g)  # (B, S, C)
    keep = torch.rand(3, mask_rows, 9, generator=g) < 0.5  # (B, 1 or Q, S)
    keep[..., 0] = True  # every row keeps a key
    bias = key_padding_bias(keep, hidden.dtype)  # (B, 1 or Q, S)
    expected = attn(hidden, encoder_hidden_states=context, attention_mask=bias)
    attn.set_processor(SharedMaskAttnProcessor())
    torch.testing.assert_close(
        attn(hidden, encoder_hidden_states=context, attention_mask=bias),
        expected,
        rtol=1e-5,
        atol=1e-6)
    # No mask, or self-attention: the stock path, same result.
    torch.testing.assert_close(attn(hidden), AttnProcessor2_0()(attn, hidden))


def test_enhancer_ignores_the_boxes_of_invisible_entries():
    """Invisible entries are pooled as empty boxes and dropped, and masked out of the attention:
    their coordinates change nothing."""
    torch.manual_seed(0)
    enhancer = InstanceEnhancer(CHANNELS, TRACK_DIM, 4, position_freqs=4, within_boxes=True)
    with torch.no_grad():
        enhancer.alpha_attn.fill_(0.5)
        enhancer.alpha_dense.fill_(0.5)
    objs = make_tracklets()
    feature_map = torch.randn(BATCH * FRAMES, CHANNELS, 8, 8)  # (B*F, C, H, W)
    garbage = make_tracklets()
    elsewhere = torch.rand(garbage.boxes.shape, generator=torch.Generator().manual_seed(3))
    garbage.boxes = garbage.boxes.where(garbage.visible[..., None], 2 * elsewhere - 0.5)
    with torch.no_grad():
        out = enhancer(feature_map, objs)
        torch.testing.assert_close(enhancer(feature_map, garbage), out, rtol=0, atol=0)
    assert torch.isfinite(out).all()
    assert torch.equal(out[0], feature_map[0])  # the frame with no visible instance
