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

:class:`NoGrounding` is the pass-through ``fuser`` given to every other block that receives the
``gligen`` entry (temporal transformers, spatial transformers left without grounding).
"""
import torch
from diffusers.models.attention import GatedSelfAttentionDense
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


class GatedGrounding(GatedSelfAttentionDense):
    """GLIGEN gated self-attention over [visual tokens ; that frame's visible instance tokens].

    Installed as ``block.fuser`` of a spatial ``BasicTransformerBlock``, whose batch is frames
    (index ``b * F + f``). Each frame's visual tokens attend to themselves and to the N instance
    tokens of that frame projected to the block width; invisible instances are masked out of
    the keys, so a frame with none attends to its visual tokens only. Only the visual part is
    kept and added through ``tanh(alpha_attn)``, then a feed-forward through
    ``tanh(alpha_dense)``; both gates start at 0 (set by the parent), so the block starts as it
    was.

    Args:
        query_dim: C, the width of the block's visual tokens.
        context_dim: D, the width of the instance tokens (``TrackletConditioning.tokens``).
        n_heads: attention heads.
        d_head: channels per head.
        position_freqs: K of the Fourier cell/box embedding added (through ``position``, a
            linear layer) to the visual and instance rows; None adds none (GLIGEN's layout).
        within_boxes: a visual token attends to an instance token only when its cell lies in
            the instance's box (all visual tokens stay visible to each other).
    """

    def __init__(self,
                 query_dim: int,
                 context_dim: int,
                 n_heads: int,
                 d_head: int,
                 position_freqs: int | None = None,
                 within_boxes: bool = False):
        for name, value in (('query_dim', query_dim), ('context_dim', context_dim),
                            ('n_heads', n_heads), ('d_head', d_head),
                            ('position_freqs', 1 if position_freqs is None else position_freqs)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f'GatedGrounding: `{name}` must be a positive int, got {value!r}.')
        super().__init__(query_dim, context_dim, n_heads, d_head)
        self.position_freqs = position_freqs
        self.within_boxes = within_boxes
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
        num_frames_batch, num_visual, _ = x.shape

        instances = self.linear(tokens.to(x.dtype))  # (B*F, N, C)
        sequence = self.norm1(torch.cat([x, instances], dim=1))  # (B*F, HW + N, C)
        if self.position is not None:
            sequence = sequence + self._positions(objs, num_visual, x.dtype)  # (B*F, HW + N, C)
        if self.within_boxes:
            grid = self._grid(objs, num_visual)
            covered = cells_in_boxes(objs.frame_major(objs.boxes), visible, grid)  # (B*F, HW, N)
            always = covered.new_ones(num_frames_batch, num_visual, num_visual)  # (B*F, HW, HW)
            keep = torch.cat([always, covered], dim=2)  # (B*F, HW, HW + N)
        else:
            always = visible.new_ones(num_frames_batch, num_visual)  # (B*F, HW)
            keep = torch.cat([always, visible], dim=1)  # (B*F, HW + N)
        # Only the visual rows are kept, so only they are computed as queries.
        attended = self.attn(
            sequence[:, :num_visual],  # (B*F, HW, C)
            encoder_hidden_states=sequence,
            attention_mask=key_padding_bias(keep, x.dtype),  # (B*F, 1 or HW, HW + N)
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
                   dtype: torch.dtype) -> torch.Tensor:
        """(B*F, HW + N, C): projected Fourier embeddings of the token cells and the boxes."""
        grid = self._grid(objs, num_visual)
        cells, boxes = cell_and_box_codes(objs.frame_major(objs.boxes), grid,
                                          self.position_freqs)  # (HW, 8K), (B*F, N, 8K)
        cells = cells.expand(boxes.shape[0], -1, -1)  # (B*F, HW, 8K)
        return self.position(torch.cat([cells, boxes], dim=1).to(dtype))  # (B*F, HW + N, C)


class NoGrounding(nn.Module):
    """The ``fuser`` of a ``BasicTransformerBlock`` that gets no grounding: returns x unchanged.

    diffusers hands the same ``cross_attention_kwargs`` to every transformer of the UNet, and a
    block that finds a ``gligen`` entry calls ``self.fuser``. Giving such blocks this
    parameter-free fuser is the narrowest fix: no state-dict key, no hook, and it holds inside
    checkpointed calls as well.
    """

    def forward(self, x: torch.Tensor, objs: TrackletConditioning) -> torch.Tensor:
        return x
