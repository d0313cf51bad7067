"""TrackletUNetSpatioTemporal: Stable Video Diffusion's UNet with tracklet grounding and
Instance Enhancers.

The stock ``UNetSpatioTemporalConditionModel`` (per level ``SpatioTemporalResBlock`` ->
``TransformerSpatioTemporalModel``, whose spatial ``BasicTransformerBlock`` s are each followed
by a temporal block and a learned spatial/temporal blend) is built unchanged by the parent
constructor and the new layers are attached beside it, so every stock state-dict key stays as
it was and an SVD checkpoint loads without renaming:

- :class:`GatedGrounding` becomes ``fuser`` of the spatial ``BasicTransformerBlock`` s of the
  ``grounding_blocks``. The block calls its fuser after self-attention when
  ``cross_attention_kwargs`` holds a ``gligen`` entry, but the SVD transformer passes no
  ``cross_attention_kwargs``; a forward pre-hook on each grounded block adds the entry.
- :class:`InstanceEnhancer` becomes child ``instance_enhancer`` of every
  ``TransformerSpatioTemporalModel`` of the ``enhancer_blocks``, and a forward hook applies it
  to that transformer's output map (B*F, C, H, W).

Both hooks read the tracklets of the forward pass in progress from the model's
:class:`TrackletContext`, which :meth:`TrackletUNetSpatioTemporal.forward` binds; under
gradient checkpointing every checkpointed call binds them again when it is recomputed. Both
new layers start as the identity (zero-initialised tanh gates), so the model starts as the
stock UNet. Frames are batch in every block: index ``b * F + f``, as in the text-to-video
generator.
"""
import contextlib
import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.attention import TemporalBasicTransformerBlock
from diffusers.models.resnet import AlphaBlender, SpatioTemporalResBlock, TemporalResnetBlock
from diffusers.models.transformers.transformer_temporal import (TransformerSpatioTemporalModel,
                                                                TransformerTemporalModelOutput)
from diffusers.models.unets.unet_spatio_temporal_condition import (UNetSpatioTemporalConditionModel,
                                                                   UNetSpatioTemporalConditionOutput
                                                                   )
from torch import nn

from mmtrackgen.registry import MODELS
from ..conditioning.gated_grounding import GatedGrounding
from ..conditioning.instance_enhancer import InstanceEnhancer
from ..conditioning.tracklet_conditioning import TrackletConditioning
from .generator_utils import (CheckpointedForward, TrackletUNetMixin, check_tracklet_layer_args,
                              check_tracklets, checkpoint, contiguous_input_without_grad,
                              partition_modules)

OWNER = 'TrackletUNetSpatioTemporal'
# Modules whose forward runs under activation checkpointing when it is enabled.
CHECKPOINTED_MODULES = (SpatioTemporalResBlock, TransformerSpatioTemporalModel, InstanceEnhancer)
# diffusers' spatio-temporal resnets and transformers normalise with 32 groups, fixed.
NORM_GROUPS = 32


class TrackletContext:
    """The tracklets of the forward pass in progress, where the model's hooks read them."""

    def __init__(self):
        self.tracklets: TrackletConditioning | None = None

    @contextlib.contextmanager
    def bind(self, tracklets: TrackletConditioning | None):
        previous, self.tracklets = self.tracklets, tracklets
        try:
            yield
        finally:
            self.tracklets = previous


class _GroundingPreHook:
    """Forward pre-hook of a grounded spatial ``BasicTransformerBlock``: hands it the bound
    tracklets through diffusers' GLIGEN channel, ``cross_attention_kwargs['gligen']``."""

    def __init__(self, context: TrackletContext):
        self.context = context

    def __call__(self, block: nn.Module, args: tuple, kwargs: dict) -> tuple | None:
        tracklets = self.context.tracklets
        if tracklets is None:
            return None
        cross_attention_kwargs = {
            **(kwargs.get('cross_attention_kwargs') or {}), 'gligen': {
                'objs': tracklets
            }
        }
        return args, {**kwargs, 'cross_attention_kwargs': cross_attention_kwargs}


class _EnhancerHook:
    """Forward hook of a ``TransformerSpatioTemporalModel`` that carries an
    ``instance_enhancer``: enhances its output map (B*F, C, H, W) with the bound tracklets."""

    def __init__(self, context: TrackletContext):
        self.context = context

    def __call__(self, transformer: nn.Module, args: tuple, output: Any) -> Any:
        tracklets = self.context.tracklets
        if tracklets is None:
            return output
        if isinstance(output, tuple):  # return_dict=False, as the SVD blocks call it
            return (transformer.instance_enhancer(output[0], tracklets), *output[1:])
        return TransformerTemporalModelOutput(
            sample=transformer.instance_enhancer(output.sample, tracklets))


class _BoundCheckpointedForward(CheckpointedForward):
    """A checkpointed forward that rebinds, when recomputed in backward, the tracklets that
    were bound when it first ran (the model's forward has returned by then)."""

    def __init__(self, module: nn.Module, checkpoint_func: Callable, context: TrackletContext):
        super().__init__(module, checkpoint_func)
        self.context = context

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        forward = functools.partial(type(self.module).forward, self.module, **kwargs)
        if not torch.is_grad_enabled():
            return forward(*args)
        tracklets = self.context.tracklets

        def bound_forward(*inputs: Any) -> Any:
            with self.context.bind(tracklets):
                return forward(*inputs)

        return self.checkpoint_func(bound_forward, *args)


@MODELS.register_module()
class TrackletUNetSpatioTemporal(TrackletUNetMixin, UNetSpatioTemporalConditionModel):
    """``UNetSpatioTemporalConditionModel`` (Stable Video Diffusion) conditioned on tracklets.

    Takes every argument of ``UNetSpatioTemporalConditionModel`` (same meaning, same defaults),
    plus the new-layer arguments of :class:`TrackletUNet3D`, with the same meaning:
    ``grounding_context_dim``, ``grounding_blocks`` (default: every block with spatial
    transformers), ``enhancer_track_dim``, ``enhancer_blocks`` (default: every decoder block
    with spatial transformers), ``enhancer_num_heads`` (default: the heads of the transformer
    it is attached to), ``enhancer_ff_mult``, ``token_position_freqs``,
    ``ground_within_boxes`` and ``gate_init``.

    The resolved block lists are written back to the config. ``forward`` takes the stock
    arguments (``sample`` (B, F, C, H, W), ``timestep``, ``encoder_hidden_states``,
    ``added_time_ids``) plus ``tracklets``; without tracklets it is the stock UNet.
    """

    _supports_gradient_checkpointing = True
    _spatial_transformer_type = TransformerSpatioTemporalModel

    @register_to_config
    def __init__(
        self,
        sample_size: int | None = None,
        in_channels: int = 8,
        out_channels: int = 4,
        down_block_types: tuple[str, ...] = (
            'CrossAttnDownBlockSpatioTemporal',
            'CrossAttnDownBlockSpatioTemporal',
            'CrossAttnDownBlockSpatioTemporal',
            'DownBlockSpatioTemporal',
        ),
        up_block_types: tuple[str, ...] = (
            'UpBlockSpatioTemporal',
            'CrossAttnUpBlockSpatioTemporal',
            'CrossAttnUpBlockSpatioTemporal',
            'CrossAttnUpBlockSpatioTemporal',
        ),
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        addition_time_embed_dim: int = 256,
        projection_class_embeddings_input_dim: int = 768,
        layers_per_block: int | tuple[int] = 2,
        cross_attention_dim: int | tuple[int] = 1024,
        transformer_layers_per_block: int | tuple[int, tuple[tuple]] = 1,
        num_attention_heads: int | tuple[int, ...] = (5, 10, 20, 20),
        num_frames: int = 25,
        grounding_context_dim: int | None = None,
        grounding_blocks: Sequence[str] | None = None,
        enhancer_track_dim: int | None = None,
        enhancer_blocks: Sequence[str] | None = None,
        enhancer_num_heads: int | None = None,
        enhancer_ff_mult: int = 4,
        token_position_freqs: int | None = None,
        ground_within_boxes: bool = False,
        gate_init: float = 0.0,
    ):
        # Check the arguments before building anything.
        check_tracklet_layer_args(OWNER, grounding_context_dim, grounding_blocks,
                                  enhancer_track_dim, enhancer_blocks, enhancer_num_heads,
                                  enhancer_ff_mult, token_position_freqs)
        odd = [c for c in block_out_channels if c % NORM_GROUPS]
        if odd:
            raise ValueError(
                f'{OWNER}: `block_out_channels` {list(block_out_channels)} must be multiples of '
                f"{NORM_GROUPS} (diffusers' spatio-temporal blocks use {NORM_GROUPS} norm groups).")
        # The added time ids (fps, motion bucket, noise augmentation) are embedded one by one.
        if projection_class_embeddings_input_dim != 3 * addition_time_embed_dim:
            raise ValueError(
                f'{OWNER}: `projection_class_embeddings_input_dim` '
                f'({projection_class_embeddings_input_dim}) must be 3 x '
                f'`addition_time_embed_dim` ({addition_time_embed_dim}): one embedding for each '
                'of the three added time ids.')

        super().__init__(
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=out_channels,
            down_block_types=down_block_types,
            up_block_types=up_block_types,
            block_out_channels=block_out_channels,
            addition_time_embed_dim=addition_time_embed_dim,
            projection_class_embeddings_input_dim=projection_class_embeddings_input_dim,
            layers_per_block=layers_per_block,
            cross_attention_dim=cross_attention_dim,
            transformer_layers_per_block=transformer_layers_per_block,
            num_attention_heads=num_attention_heads,
            num_frames=num_frames,
        )
        self.tracklet_context = TrackletContext()

        # Which blocks get new layers: names checked against the blocks actually built.
        spatial, grounding_blocks, enhancer_blocks = self.resolve_tracklet_blocks(
            OWNER, grounding_context_dim, grounding_blocks, enhancer_track_dim, enhancer_blocks)
        self.register_to_config(grounding_blocks=grounding_blocks, enhancer_blocks=enhancer_blocks)

        for name in grounding_blocks:
            for transformer in spatial[name]:
                for block in transformer.transformer_blocks:  # the spatial blocks
                    block.fuser = GatedGrounding(
                        block.dim,
                        grounding_context_dim,
                        block.num_attention_heads,
                        block.attention_head_dim,
                        position_freqs=token_position_freqs,
                        within_boxes=ground_within_boxes)
                    block.register_forward_pre_hook(
                        _GroundingPreHook(self.tracklet_context), with_kwargs=True)

        for name in enhancer_blocks:
            for transformer in spatial[name]:
                channels = transformer.in_channels
                num_heads = enhancer_num_heads or transformer.num_attention_heads
                if channels % num_heads != 0:
                    raise ValueError(
                        f'{OWNER}: `enhancer_num_heads` ({num_heads}) must divide the '
                        f'{channels} channels of the spatial transformers of {name!r}.')
                transformer.instance_enhancer = InstanceEnhancer(
                    channels,
                    enhancer_track_dim,
                    num_heads,
                    ff_mult=enhancer_ff_mult,
                    position_freqs=token_position_freqs,
                    within_boxes=ground_within_boxes)
                transformer.register_forward_hook(_EnhancerHook(self.tracklet_context))

        for module in self.modules():
            if isinstance(module, nn.GroupNorm):
                module.register_forward_pre_hook(contiguous_input_without_grad)
        self.open_gates(gate_init)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        tracklets: TrackletConditioning | None = None,
        return_dict: bool = True,
    ) -> UNetSpatioTemporalConditionOutput | tuple[torch.Tensor]:
        """The stock forward, with ``tracklets`` for B clips of F frames.

        ``sample``: (B, F, C, H, W); ``encoder_hidden_states``: (B, L, D), the image context;
        ``added_time_ids``: (B, 3). ``tracklets=None`` is the stock UNet.
        """
        if tracklets is not None:
            check_tracklets(OWNER, tracklets, sample.shape[0], sample.shape[1],
                            self.config.grounding_context_dim, self.config.enhancer_track_dim)
            tracklets = dataclasses.replace(tracklets, frame_size=tuple(sample.shape[-2:]))
        with self.tracklet_context.bind(tracklets):
            return super().forward(
                sample, timestep, encoder_hidden_states, added_time_ids, return_dict=return_dict)

    # Gradient checkpointing (is_gradient_checkpointing and disable_gradient_checkpointing come
    # from TrackletUNetMixin): diffusers' own flags checkpoint the resnets and the spatial
    # blocks but not the temporal blocks or our enhancers, so the checkpointed units are chosen
    # by type, as in TrackletUNet3D: resnets, whole spatio-temporal transformers (fusers run
    # inside their blocks) and Instance Enhancers (run by a hook, after the transformer). The
    # hooks here read the tracklets from the model's context, not from kwargs, so each
    # checkpointed forward rebinds them when recomputed (_BoundCheckpointedForward).

    def enable_gradient_checkpointing(self,
                                      gradient_checkpointing_func: Callable | None = None) -> None:
        """Checkpoint every module of :data:`CHECKPOINTED_MODULES` (default function:
        non-reentrant ``torch.utils.checkpoint.checkpoint``)."""
        checkpoint_func = gradient_checkpointing_func or checkpoint
        for module in self.modules():
            if isinstance(module, CHECKPOINTED_MODULES):
                module.forward = _BoundCheckpointedForward(module, checkpoint_func,
                                                           self.tracklet_context)

    def module_groups(self) -> dict[str, list[nn.Module]]:
        """Partition the model into named groups of modules (see :func:`partition_modules`):

        - ``'temporal'``: temporal resnets, temporal transformer blocks, the spatial/temporal
          blends (``time_mixer``) and the transformers' frame-position embeddings;
        - ``'grounding'``: the :class:`GatedGrounding` fusers;
        - ``'enhancer'``: the :class:`InstanceEnhancer` s;
        - ``'spatial'``: the rest of the stock UNet.
        """
        temporal_types = (TemporalResnetBlock, TemporalBasicTransformerBlock, AlphaBlender)
        return partition_modules(
            self,
            dict(
                temporal=lambda name, m: isinstance(m, temporal_types) or name.endswith(
                    '.time_pos_embed'),
                grounding=lambda name, m: isinstance(m, GatedGrounding),
                enhancer=lambda name, m: isinstance(m, InstanceEnhancer)),
            rest='spatial')
