"""Gated grounding: GLIGEN's gated self-attention, fed one frame's instance tokens at a time.

diffusers' ``BasicTransformerBlock`` already has the extension point: after self-attention it
calls ``self.fuser(hidden_states, cross_attention_kwargs['gligen']['objs'])`` whenever the
``gligen`` entry is present. :class:`GatedGrounding` is that ``fuser``. It subclasses
``GatedSelfAttentionDense`` so its parameters carry GLIGEN's names (``linear``, ``attn``, ``ff``,
``norm1``, ``norm2``, ``alpha_attn``, ``alpha_dense``) and GLIGEN ``fuser.*`` weights load into it
unchanged. What it adds is the per-frame layout and the visibility mask: an invisible instance
is masked out of the attention keys, so it has exactly no effect on the visual tokens.

Optionally (``position_freqs``) both sides of the attention are told where they are: every
visual token gets a learned projection of its cell's Fourier box embedding, and every instance
token the same projection of its own box's. The UNet's spatial attention has no positional
encoding, and a small UNet's convolutions tell a token little about where it is, so without this
a from-scratch model learns slowly which tokens a box covers (docs/training.md).

Optionally (``within_boxes``) a visual token sees an instance token only when its cell lies in
that instance's box: the grounding is confined to the box, as the method intends, instead of
having to be learned.

The attention runs as one SDPA call whose additive mask is shared by all heads
(:class:`SharedMaskAttnProcessor`; diffusers' stock processor would copy it once per head) and
is zero over the visual keys: only its N instance columns are ever filled. GLIGEN computes the
instance rows as queries too and throws their outputs away; here only the visual rows are queries.

:class:`NoGrounding` is the pass-through ``fuser`` given to every other block that receives the
``gligen`` entry (temporal transformers, spatial transformers left without grounding).
"""
import torch
import torch.nn.functional as F
from diffusers.models.attention import GatedSelfAttentionDense
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn

from .fourier import cell_and_box_codes, cells_in_boxes, token_grid_shape
from .tracklet_conditioning import TrackletConditioning


def key_padding_bias(keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, S) or (B, Q, S) bool, True = attend -> (B, 1, S) or (B, Q, S) additive attention
    bias (0 or the dtype's min).

    An additive bias works with every diffusers attention processor (the SDPA one and the
    classic ``baddbmm`` one); ``exp(min - max)`` underflows to exactly 0, so a masked key gets
    exactly zero weight. Every row must keep at least one key.
    """
    bias = torch.zeros(keep.shape, dtype=dtype, device=keep.device)  # (B, [Q,] S)
    bias = bias.masked_fill(~keep, torch.finfo(dtype).min)  # (B, [Q,] S)
    return bias if bias.dim() == 3 else bias[:, None, :]  # (B, 1 or Q, S)


def instance_columns_bias(keep: torch.Tensor, num_visual: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, Q, N) bool, True = a query may see that instance -> (B, Q, HW + N) additive bias over
    the keys [HW visual tokens ; N instances]: 0 on every visual column, 0 or the dtype's min on
    the instance columns. The same bias as :func:`key_padding_bias` of the key mask
    ``[all True ; keep]``, without building that (B, Q, HW + N) boolean first."""
    batch, queries, num_instances = keep.shape
    bias = torch.zeros(
        batch, queries, num_visual + num_instances, dtype=dtype,
        device=keep.device)  # (B, Q, HW + N)
    bias[:, :, num_visual:].masked_fill_(~keep, torch.finfo(dtype).min)  # (B, Q, HW + N)
    return bias


class SharedMaskAttnProcessor(AttnProcessor2_0):
    """diffusers' SDPA processor, with the additive mask shared by all heads instead of copied.

    The stock ``AttnProcessor2_0`` passes a (B, Q, S) mask through
    ``Attention.prepare_attention_mask``, which repeats it once per head: (B * heads, Q, S),
    kept for the backward pass. For grounding within boxes (Q = HW, S = HW + N) that copy was
    larger than all the other activations of the layer. This processor gives SDPA the mask as
    (B, 1, Q, S), broadcast over heads; the maths are the stock processor's. Anything it does not
    handle (4-D inputs, spatial or group norms, ``norm_cross``, a mask that is not (B, 1 or Q, S))
    goes to the stock path. It holds no weights, so state dicts are unchanged, and it is an
    ``AttnProcessor2_0``, so code that checks for PyTorch SDPA still finds it.
    """

    def __call__(self,
                 attn: Attention,
                 hidden_states: torch.Tensor,
                 encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None,
                 temb: torch.Tensor | None = None,
                 *args,
                 **kwargs) -> torch.Tensor:
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        plain = (
            hidden_states.dim() == 3 and attn.spatial_norm is None and attn.group_norm is None
            and not (attn.norm_cross and encoder_hidden_states is not None))
        shared = (
            attention_mask is not None and attention_mask.dim() == 3
            and attention_mask.shape[0] == hidden_states.shape[0]
            and attention_mask.shape[2] == context.shape[1])
        if args or kwargs or not (plain and shared):
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask,
                                    temb, *args, **kwargs)
        residual = hidden_states
        query = attn.to_q(hidden_states)  # (B, Q, inner)
        key = attn.to_k(context)  # (B, S, inner)
        value = attn.to_v(context)  # (B, S, inner)
        query, key, value = (t.unflatten(-1, (attn.heads, -1)).transpose(1, 2)
                             for t in (query, key, value))  # (B, heads, Q or S, d)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        out = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask[:, None], dropout_p=0.0,
            is_causal=False)  # (B, heads, Q, d)
        out = out.transpose(1, 2).flatten(2).to(query.dtype)  # (B, Q, inner)
        out = attn.to_out[1](attn.to_out[0](out))  # (B, Q, C)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


class GatedGrounding(GatedSelfAttentionDense):
    """GLIGEN gated self-attention over [visual tokens ; that frame's visible instance tokens].

    Installed as ``block.fuser`` of a spatial ``BasicTransformerBlock``, whose batch is frames
    (index ``b * F + f``). Each frame's visual tokens attend to themselves and to the N instance
    tokens of that frame projected to the block width; invisible instances are masked out of
    the keys, so a frame with none attends to its visual tokens only. Only the visual part is
    kept (so only visual tokens are queries) and added through ``tanh(alpha_attn)``, then a
    feed-forward through ``tanh(alpha_dense)``; both gates start at 0 (set by the parent), so the
    block starts as it was.

    Args:
        query_dim: C, the width of the block's visual tokens.
        context_dim: D, the width of the instance tokens (``TrackletConditioning.tokens``).
        n_heads: attention heads.
        d_head: channels per head.
        position_freqs: K of the Fourier cell/box embedding added (through ``position``, a
            linear layer) to the visual and instance rows; None adds none (GLIGEN's layout).
        within_boxes: a visual token attends to an instance token only when its cell lies in
            the instance's box (all visual tokens stay visible to each other).
        mask_invisible: invisible instances are masked out of the keys (the default). False
            (without ``within_boxes``) keeps every slot's token as a key, the null tokens of
            empty slots included, which is GLIGEN's (and the authors' released model's) layout:
            there the number of padded slots changes the output.
    """

    def __init__(self,
                 query_dim: int,
                 context_dim: int,
                 n_heads: int,
                 d_head: int,
                 position_freqs: int | None = None,
                 within_boxes: bool = False,
                 mask_invisible: bool = True):
        for name, value in (('query_dim', query_dim), ('context_dim', context_dim),
                            ('n_heads', n_heads), ('d_head', d_head),
                            ('position_freqs', 1 if position_freqs is None else position_freqs)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f'GatedGrounding: `{name}` must be a positive int, got {value!r}.')
        super().__init__(query_dim, context_dim, n_heads, d_head)
        self.attn.set_processor(SharedMaskAttnProcessor())
        self.position_freqs = position_freqs
        self.within_boxes = within_boxes
        self.mask_invisible = mask_invisible
        self.position = None if position_freqs is None else nn.Linear(8 * position_freqs, query_dim)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Fresh initialisation, gates at 0 (diffusers' ``from_pretrained`` skips init)."""
        for module in self.modules():
            if module is not self and hasattr(module, 'reset_parameters'):
                module.reset_parameters()
        self.alpha_attn.zero_()
        self.alpha_dense.zero_()

    def forward(self, x: torch.Tensor, objs: TrackletConditioning) -> torch.Tensor:
        """x: (B*F, HW, C) visual tokens; objs: the clip's tracklet conditioning."""
        if not self.enabled:
            return x
        tokens = objs.frame_major(objs.tokens)  # (B*F, N, D)
        visible = objs.frame_major(objs.visible).bool()  # (B*F, N)
        if tokens.shape[0] != x.shape[0]:
            raise ValueError(
                f'GatedGrounding: the visual tokens hold {x.shape[0]} frames but the tracklets '
                f'{tokens.shape[0]} (B*F); tracklets must match the sample batch and frames.')
        num_visual = x.shape[1]

        # norm1 is per token and the position codes are per row, so the visual and instance
        # rows are prepared apart and joined once, as the keys.
        visual = self.norm1(x)  # (B*F, HW, C)
        instances = self.norm1(self.linear(tokens.to(x.dtype)))  # (B*F, N, C)
        if self.position is not None:
            cells, boxes = self._positions(objs, num_visual, x.dtype)  # (HW, C), (B*F, N, C)
            visual = visual + cells  # (B*F, HW, C)
            instances = instances + boxes  # (B*F, N, C)
        if self.within_boxes:
            grid = self._grid(objs, num_visual)
            keep = cells_in_boxes(objs.frame_major(objs.boxes), visible, grid)  # (B*F, HW, N)
        elif self.mask_invisible:
            keep = visible[:, None, :]  # (B*F, 1, N)
        else:  # every slot is a key, empty ones (null tokens) included
            keep = torch.ones_like(visible)[:, None, :]  # (B*F, 1, N)
        attended = self.attn(
            visual,  # (B*F, HW, C): only the visual rows are kept, so only they are queries
            encoder_hidden_states=torch.cat([visual, instances], dim=1),  # (B*F, HW + N, C)
            attention_mask=instance_columns_bias(keep, num_visual, x.dtype),  # (B*F, HW|1, HW+N)
        )  # (B*F, HW, C)
        x = x + self.alpha_attn.tanh() * attended  # (B*F, HW, C)
        x = x + self.alpha_dense.tanh() * self.ff(self.norm2(x))  # (B*F, HW, C)
        return x

    @staticmethod
    def _grid(objs: TrackletConditioning, num_visual: int) -> tuple[int, int]:
        if objs.frame_size is None:
            raise ValueError('GatedGrounding: token positions and `within_boxes` need the '
                             "tracklets' `frame_size`, which TrackletUNet3D.forward sets.")
        return token_grid_shape(num_visual, objs.frame_size)

    def _positions(self, objs: TrackletConditioning, num_visual: int,
                   dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(HW, C), (B*F, N, C): projected Fourier embeddings of the token cells (the same in
        every frame, so projected once) and of the boxes."""
        grid = self._grid(objs, num_visual)
        cells, boxes = cell_and_box_codes(objs.frame_major(objs.boxes), grid,
                                          self.position_freqs)  # (HW, 8K), (B*F, N, 8K)
        return self.position(cells.to(dtype)), self.position(boxes.to(dtype))


class NoGrounding(nn.Module):
    """The ``fuser`` of a ``BasicTransformerBlock`` that gets no grounding: returns x unchanged.

    diffusers hands the same ``cross_attention_kwargs`` to every transformer of the UNet, and a
    block that finds a ``gligen`` entry calls ``self.fuser``. Giving such blocks this
    parameter-free fuser is the narrowest fix: no state-dict key, no hook, and it holds inside
    checkpointed calls as well.
    """

    def forward(self, x: torch.Tensor, objs: TrackletConditioning) -> torch.Tensor:
        return x
