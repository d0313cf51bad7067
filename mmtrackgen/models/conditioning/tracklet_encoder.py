"""The tracklet encoder: boxes, visibility and categories of N slots over F frames -> tokens.

Two outputs (see :class:`TrackletConditioning`):

- ``tokens`` (B, F, N, D), one per instance and frame, for the UNet's gated grounding:
  ``MLP([category ; fourier(box)])`` plus a per-slot identity embedding added in every frame;
- ``track_features`` (B, N, F, Dt), the tracklet branch for the Instance Enhancer: each slot's
  sequence of F box features attends over its frames, then an MLP to Dt.

Where an instance is not visible, its box feature and its category vector are replaced by
learned null vectors: that is how disappearance and re-appearance are expressed. Everything is
computed on whole (B, F, N) tensors; by default frames and slots have no maximum (sinusoidal
codes, no learned tables sized F or N).

Initialisation (``init_weights``): the null vectors and the identity projection are zero, so at
step 0 a token depends only on its own box and category, and the identity embedding grows only
as training needs it.

The defaults are this project's design. The options ``box_encoding``, ``identity_embedding``,
``track_block``, ``track_frame_positions`` and ``track_out_norm`` also express the authors'
released position net (GLIGEN's box encoding, a learned table of slot identities, one residual
attention without feed-forward, no frame code, no final norm), so their checkpoints load
(``configs/_base_/models/trackdiffusion_authors_t2v.py``).
"""
from typing import Optional, Union

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from torch import nn

from mmtrackgen.registry import MODELS
from .fourier import fourier_embedding, gligen_fourier_embedding, sinusoidal_positions

BOX_ENCODINGS = ('octave', 'gligen')
IDENTITY_EMBEDDINGS = ('sinusoidal', 'table')
TRACK_BLOCKS = ('transformer', 'attention')
from .tracklet_conditioning import TrackletConditioning


class TemporalSelfAttentionBlock(nn.Module):
    """A pre-norm transformer block over the frames of each sequence: x (S, F, C) -> (S, F, C)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int = 4):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'num_heads ({num_heads}) must divide dim ({dim})')
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        num_seqs, num_frames, dim = x.shape  # (S, F, C)
        head_dim = dim // self.num_heads
        qkv = self.qkv(self.norm1(x))  # (S, F, 3C)
        qkv = qkv.view(num_seqs, num_frames, 3, self.num_heads, head_dim)  # (S, F, 3, h, C/h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (S, h, F, C/h)
        attn = F.scaled_dot_product_attention(q, k, v)  # (S, h, F, C/h)
        attn = attn.transpose(1, 2).reshape(num_seqs, num_frames, dim)  # (S, F, C)
        x = x + self.proj(attn)  # (S, F, C)
        return x + self.mlp(self.norm2(x))  # (S, F, C)


class TemporalAttentionBlock(nn.Module):
    """A pre-norm residual attention over the frames of each sequence, without feed-forward:
    ``x + attn(norm(x))``, x (S, F, C) -> (S, F, C). Its attention may be wider than C
    (``num_heads * head_dim``), as in the authors' position net (4 heads of 32 over 64-d)."""

    def __init__(self, dim: int, num_heads: int, head_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(query_dim=dim, heads=num_heads, dim_head=head_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attn(self.norm(x))  # (S, F, C)


@MODELS.register_module()
class TrackletEncoder(nn.Module):
    """Encode a batch of tracklet sets into grounding tokens and tracklet features.

    Args:
        token_dim: size D of a grounding token (the UNet's cross-attention size, 768 for SD 1.x).
        category_embedding: config (or module) of the category embedding, e.g.
            ``dict(type='CategoryTable', num_classes=40, embed_dim=768)`` or
            ``dict(type='CLIPCategoryEmbedding', pretrained=..., class_names=...)``; any module
            with an ``embed_dim`` attribute mapping labels (B, N) to (B, N, Dc).
        track_dim: size Dt of a tracklet-branch feature.
        num_freqs: Fourier frequencies per box coordinate; box features have 4 * 2 * num_freqs
            dimensions (Dp, 64 by default).
        hidden_dim: width of the token MLP; None means ``token_dim``.
        track_heads: attention heads of the tracklet branch (must divide Dp).
        track_layers: temporal self-attention blocks in the tracklet branch (>= 1).
        box_encoding: ``'octave'`` (:func:`fourier_embedding`, frequencies ``2^k pi``) or
            ``'gligen'`` (:func:`gligen_fourier_embedding`, GLIGEN's ``100^(k/K)``).
        identity_embedding: ``'sinusoidal'`` (a linear map of the slot index's sinusoidal code:
            any number of slots) or ``'table'`` (a learned ``identity_table`` of
            ``num_identity_slots`` rows, zero-initialised; a clip with more slots is an error).
        num_identity_slots: rows of the identity table (only with ``'table'``).
        track_block: ``'transformer'`` (:class:`TemporalSelfAttentionBlock`: attention and MLP)
            or ``'attention'`` (:class:`TemporalAttentionBlock`: attention only).
        track_head_dim: channels per head of ``'attention'`` blocks; None: Dp / track_heads.
        track_frame_positions: add the frames' sinusoidal code before the tracklet blocks.
        track_out_norm: LayerNorm the tracklet features before their MLP.
    """

    def __init__(self,
                 token_dim: int,
                 *,
                 category_embedding: Union[dict, nn.Module],
                 track_dim: int = 128,
                 num_freqs: int = 8,
                 hidden_dim: Optional[int] = None,
                 track_heads: int = 4,
                 track_layers: int = 1,
                 box_encoding: str = 'octave',
                 identity_embedding: str = 'sinusoidal',
                 num_identity_slots: Optional[int] = None,
                 track_block: str = 'transformer',
                 track_head_dim: Optional[int] = None,
                 track_frame_positions: bool = True,
                 track_out_norm: bool = True):
        super().__init__()
        hidden_dim = token_dim if hidden_dim is None else hidden_dim
        for name, value, allowed in (('box_encoding', box_encoding, BOX_ENCODINGS),
                                     ('identity_embedding', identity_embedding,
                                      IDENTITY_EMBEDDINGS), ('track_block', track_block,
                                                             TRACK_BLOCKS)):
            if value not in allowed:
                raise ValueError(f'{name} must be one of {list(allowed)}, got {value!r}')
        if (identity_embedding == 'table') != (num_identity_slots is not None):
            raise ValueError("num_identity_slots must be set exactly when identity_embedding is "
                             f"'table', got {num_identity_slots!r} with {identity_embedding!r}")
        if num_identity_slots is not None and num_identity_slots < 1:
            raise ValueError(f'num_identity_slots must be >= 1, got {num_identity_slots}')
        if track_head_dim is not None and (track_block != 'attention' or track_head_dim < 1):
            raise ValueError("track_head_dim must be a positive int, and only with "
                             f"track_block='attention', got {track_head_dim!r} with "
                             f'{track_block!r}')
        for name, value in [('token_dim', token_dim), ('track_dim', track_dim),
                            ('num_freqs', num_freqs), ('hidden_dim', hidden_dim),
                            ('track_heads', track_heads), ('track_layers', track_layers)]:
            if value < 1:
                raise ValueError(f'{name} must be >= 1, got {value}')
        box_dim = 4 * 2 * num_freqs
        if box_dim % track_heads and track_head_dim is None:
            raise ValueError(f'track_heads ({track_heads}) must divide the box feature size '
                             f'4 * 2 * num_freqs = {box_dim}')
        self.token_dim = token_dim
        self.track_dim = track_dim
        self.num_freqs = num_freqs
        self.box_dim = box_dim
        self.box_encoding = box_encoding
        self.identity_embedding = identity_embedding
        self.track_frame_positions = track_frame_positions

        if isinstance(category_embedding, dict):
            category_embedding = MODELS.build(category_embedding)
        if not isinstance(category_embedding, nn.Module) or not hasattr(
                category_embedding, 'embed_dim'):
            raise ValueError('category_embedding must be a config dict or an nn.Module with an '
                             f'embed_dim attribute, got {type(category_embedding).__name__}')
        self.category_embedding = category_embedding
        category_dim = category_embedding.embed_dim

        # Learned stand-ins for the box and the category of an entry that is not visible.
        self.null_box = nn.Parameter(torch.empty(box_dim))  # (Dp,)
        self.null_category = nn.Parameter(torch.empty(category_dim))  # (Dc,)
        self.token_mlp = nn.Sequential(
            nn.Linear(category_dim + box_dim, hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, token_dim),
        )
        if identity_embedding == 'sinusoidal':
            # Slot identity: a linear map of the slot index's sinusoidal code (no cap on N).
            self.identity_code_dim = token_dim + token_dim % 2  # sinusoidal codes: even size
            self.identity_proj = nn.Linear(self.identity_code_dim, token_dim)
        else:  # one learned row per slot, as the authors' `instance_embedding`
            self.identity_table = nn.Embedding(num_identity_slots, token_dim)

        if track_block == 'transformer':
            blocks = (TemporalSelfAttentionBlock(box_dim, track_heads) for _ in range(track_layers))
        else:
            head_dim = track_head_dim or box_dim // track_heads
            blocks = (
                TemporalAttentionBlock(box_dim, track_heads, head_dim) for _ in range(track_layers))
        self.track_blocks = nn.ModuleList(blocks)
        self.track_norm = nn.LayerNorm(box_dim) if track_out_norm else nn.Identity()
        self.track_mlp = nn.Sequential(
            nn.Linear(box_dim, track_dim), nn.SiLU(), nn.Linear(track_dim, track_dim))
        self.init_weights()

    def init_weights(self) -> None:
        """The zero initialisations, all in one place (other layers keep PyTorch's defaults)."""
        nn.init.zeros_(self.null_box)
        nn.init.zeros_(self.null_category)
        # Identity embedding exactly 0 at init: slots with equal tracklets get equal tokens.
        if self.identity_embedding == 'sinusoidal':
            nn.init.zeros_(self.identity_proj.weight)
            nn.init.zeros_(self.identity_proj.bias)
        else:
            nn.init.zeros_(self.identity_table.weight)

    @staticmethod
    def _check_inputs(boxes: torch.Tensor, visible: torch.Tensor, labels: torch.Tensor) -> None:
        if boxes.dim() != 4 or boxes.shape[-1] != 4:
            raise ValueError(f'boxes must be (B, F, N, 4), got shape {tuple(boxes.shape)}')
        if not boxes.is_floating_point():
            raise ValueError(f'boxes must be a floating tensor, got dtype {boxes.dtype}')
        batch, num_frames, num_slots = boxes.shape[:3]
        if num_frames < 1:
            raise ValueError(f'boxes must have at least one frame, got shape {tuple(boxes.shape)}')
        if tuple(visible.shape) != (batch, num_frames, num_slots):
            raise ValueError(
                f'visible must be (B, F, N) = {(batch, num_frames, num_slots)} to match '
                f'boxes {tuple(boxes.shape)}, got shape {tuple(visible.shape)}')
        if visible.dtype != torch.bool:
            raise ValueError(f'visible must be a bool tensor, got dtype {visible.dtype}')
        if tuple(labels.shape) != (batch, num_slots):
            raise ValueError(f'labels must be (B, N) = {(batch, num_slots)} to match boxes '
                             f'{tuple(boxes.shape)}, got shape {tuple(labels.shape)}')
        if labels.dtype not in (torch.int32, torch.int64):
            raise ValueError(f'labels must be an integer tensor, got dtype {labels.dtype}')
        if not torch.isfinite(boxes).all():
            num_bad = (~torch.isfinite(boxes)).sum().item()
            raise ValueError(f'boxes must be finite, got {num_bad} NaN/inf values in boxes of '
                             f'shape {tuple(boxes.shape)}')
        if (visible & (labels < 0).unsqueeze(1)).any():
            raise ValueError('visible must be False in empty slots (labels == -1); got visible '
                             f'entries in empty slots (visible {tuple(visible.shape)}, labels '
                             f'{tuple(labels.shape)})')

    def forward(self, boxes: torch.Tensor, visible: torch.Tensor,
                labels: torch.Tensor) -> TrackletConditioning:
        """Encode tracklets.

        Args:
            boxes: (B, F, N, 4) xyxy normalised to [0, 1]; ignored where not visible.
            visible: (B, F, N) bool.
            labels: (B, N) long category indices, -1 for empty slots.

        Returns:
            :class:`TrackletConditioning` with tokens (B, F, N, D), track_features (B, N, F, Dt),
            and the input boxes and visible.
        """
        self._check_inputs(boxes, visible, labels)
        batch, num_frames, num_slots = boxes.shape[:3]
        dtype, device = self.null_box.dtype, boxes.device
        shown = visible.unsqueeze(-1)  # (B, F, N, 1)

        # Box and category features, null where not visible. Fourier features in float32: the
        # highest frequency (2^(K-1) pi) needs more precision than half floats give.
        encode = fourier_embedding if self.box_encoding == 'octave' else gligen_fourier_embedding
        box_feat = encode(boxes.float(), self.num_freqs).to(dtype)  # (B, F, N, Dp)
        box_feat = torch.where(shown, box_feat, self.null_box)  # (B, F, N, Dp)
        category = self.category_embedding(labels).to(dtype)  # (B, N, Dc)
        category = category.unsqueeze(1).expand(-1, num_frames, -1, -1)  # (B, F, N, Dc)
        category = torch.where(shown, category, self.null_category)  # (B, F, N, Dc)

        # Grounding tokens: one per instance and frame, plus the slot's identity in every frame.
        tokens = self.token_mlp(torch.cat([category, box_feat], dim=-1))  # (B, F, N, D)
        slots = torch.arange(num_slots, device=device)  # (N,)
        if self.identity_embedding == 'sinusoidal':
            slot_codes = sinusoidal_positions(slots, self.identity_code_dim).to(dtype)  # (N, Dc)
            tokens = tokens + self.identity_proj(slot_codes)  # (B, F, N, D)
        else:
            if num_slots > self.identity_table.num_embeddings:
                raise ValueError(
                    f'TrackletEncoder: the clips have {num_slots} instance slots but the identity '
                    f'table (num_identity_slots) has {self.identity_table.num_embeddings} rows; '
                    'pad or cut the clips to at most that many (AssignInstanceSlots num_slots).')
            tokens = tokens + self.identity_table(slots)  # (B, F, N, D)

        # Tracklet branch: each slot's box features attend over its frames.
        track = box_feat.transpose(1, 2).reshape(batch * num_slots, num_frames,
                                                 self.box_dim)  # (B*N, F, Dp)
        if self.track_frame_positions:
            frames = torch.arange(num_frames, device=device)  # (F,)
            track = track + sinusoidal_positions(frames, self.box_dim).to(dtype)  # (B*N, F, Dp)
        for block in self.track_blocks:
            track = block(track)  # (B*N, F, Dp)
        track = self.track_mlp(self.track_norm(track))  # (B*N, F, Dt)
        track = track.view(batch, num_slots, num_frames, self.track_dim)  # (B, N, F, Dt)

        return TrackletConditioning(
            tokens=tokens, track_features=track, boxes=boxes, visible=visible)
