"""TrackletUNet3D: diffusers' text-to-video UNet3D with tracklet grounding and Instance Enhancers.

The stock ``UNet3DConditionModel`` (ModelScope layout: per level ResNet -> temporal conv ->
spatial ``Transformer2DModel`` -> ``TransformerTemporalModel``) is built unchanged by the parent
constructor; the new layers are then attached at diffusers' own extension points, so every
stock state-dict key stays as it was and a stock checkpoint loads without renaming:

- :class:`GatedGrounding` becomes ``fuser`` of the spatial ``BasicTransformerBlock`` s named by
  ``grounding_blocks``; the block calls it after self-attention whenever
  ``cross_attention_kwargs`` holds a ``gligen`` entry, which :meth:`TrackletUNet3D.forward`
  fills with the :class:`TrackletConditioning`. Every other ``BasicTransformerBlock`` (temporal
  ones included, which receive the same kwargs) gets the parameter-free :class:`NoGrounding`.
- :class:`InstanceEnhancer` becomes child ``instance_enhancer`` of every spatial
  ``Transformer2DModel`` of the ``enhancer_blocks``, and a forward hook applies it to that
  module's output map (B*F, C, H, W).

Both start as the identity (zero-initialised tanh gates), so the model starts as the stock UNet.
Spatial layers see frames as batch: index ``b * F + f``.

``enhancer_placement='transformer_block'`` puts the enhancers inside the spatial
``BasicTransformerBlock`` s instead (child ``instance_enhancer`` of each block, run on the block's
tokens right after its ``fuser``, RoIs pooled from the map that entered the transformer), and
``temporal_frame_embeddings`` adds a learned frame table to every temporal transformer: with
these and the conditioning modules' options the model takes the layout of the authors' released
checkpoint (``configs/_base_/models/trackdiffusion_authors_t2v.py``).
"""
import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.resnet import ResnetBlock2D, TemporalConvLayer
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel
from diffusers.models.unets.unet_3d_condition import UNet3DConditionModel, UNet3DConditionOutput
from torch import nn

from mmtrackgen.registry import MODELS
from ..conditioning.gated_grounding import GatedGrounding, NoGrounding
from ..conditioning.instance_enhancer import InstanceEnhancer
from ..conditioning.tracklet_conditioning import TrackletConditioning
from .generator_utils import (CheckpointedForward, TrackletUNetMixin, check_positive_int,
                              check_tracklet_layer_args, check_tracklets, checkpoint,
                              contiguous_input_without_grad, partition_modules)

OWNER = 'TrackletUNet3D'
ENHANCER_PLACEMENTS = ('transformer_output', 'transformer_block')
# InstanceEnhancer arguments `enhancer_options` may set (the others have their own UNet option).
ENHANCER_OPTIONS = ('fuse_layers', 'frame_positions', 'frame_ff', 'norm_instances',
                    'mask_invisible', 'roi_aligned')
# Modules whose forward runs under activation checkpointing when it is enabled.
CHECKPOINTED_MODULES = (ResnetBlock2D, TemporalConvLayer, Transformer2DModel,
                        TransformerTemporalModel, InstanceEnhancer)


def _enhance_transformer_output(transformer: Transformer2DModel, args: tuple,
                                kwargs: dict[str, Any], output: Any) -> Any:
    """Forward hook of a spatial ``Transformer2DModel`` that carries an ``instance_enhancer``.

    Reads the tracklets from ``cross_attention_kwargs['gligen']['objs']`` (the UNet3D blocks
    always pass ``cross_attention_kwargs`` by keyword) and enhances the output map.
    """
    gligen = (kwargs.get('cross_attention_kwargs') or {}).get('gligen')
    if gligen is None:
        return output
    if isinstance(output, tuple):  # return_dict=False, as the UNet3D blocks call it
        return (transformer.instance_enhancer(output[0], gligen['objs']), *output[1:])
    return Transformer2DModelOutput(
        sample=transformer.instance_enhancer(output.sample, gligen['objs']))


def _pass_transformer_input(transformer: Transformer2DModel, args: tuple,
                            kwargs: dict[str, Any]) -> tuple | None:
    """Forward pre-hook of a spatial ``Transformer2DModel`` whose blocks hold enhancers: the
    tracklets its blocks receive carry the transformer's input map (B*F, C, H, W), which those
    enhancers pool their RoIs from."""
    cross_attention_kwargs = kwargs.get('cross_attention_kwargs') or {}
    gligen = cross_attention_kwargs.get('gligen')
    if gligen is None:
        return None
    objs = dataclasses.replace(gligen['objs'], feature_map=args[0])
    gligen = {**gligen, 'objs': objs}
    return args, {**kwargs, 'cross_attention_kwargs': {**cross_attention_kwargs, 'gligen': gligen}}


def _enhance_block_tokens(block: BasicTransformerBlock, fuser: nn.Module, args: tuple,
                          output: torch.Tensor) -> torch.Tensor:
    """Forward hook of the ``fuser`` of a block that holds an ``instance_enhancer``: the tokens
    the fuser returns (B*F, HW, C) are enhanced next, before the block's cross-attention."""
    objs = args[1]
    if objs.feature_map is None:
        raise ValueError(f'{OWNER}: an Instance Enhancer inside a transformer block needs the '
                         "map that entered its transformer (`tracklets.feature_map`); call the "
                         'transformer through TrackletUNet3D.forward.')
    return block.instance_enhancer.enhance_tokens(output, objs.feature_map, objs)


def _add_frame_embedding(table: nn.Embedding, proj_in: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook of a temporal transformer's ``proj_in``: its input (B*H*W, F, C), the
    normalised map with frames as sequence, gets the learned code of each frame added."""
    x = args[0]
    num_frames = x.shape[1]
    if num_frames > table.num_embeddings:
        raise ValueError(f'{OWNER}: {num_frames} frames, but the learned frame embedding '
                         f'(temporal_frame_embeddings) has {table.num_embeddings} rows.')
    return (x + table.weight[:num_frames].to(x.dtype), *args[1:])  # (B*H*W, F, C)


@MODELS.register_module()
class TrackletUNet3D(TrackletUNetMixin, UNet3DConditionModel):
    """``UNet3DConditionModel`` conditioned on object tracklets (TrackDiffusion).

    Takes every argument of ``UNet3DConditionModel`` (same meaning, same defaults), plus:

    Args:
        grounding_context_dim: D, the width of ``TrackletConditioning.tokens``. None builds no
            grounding.
        grounding_blocks: names of the UNet blocks whose spatial transformers get
            :class:`GatedGrounding` (``'down_blocks.i'``, ``'mid_block'``, ``'up_blocks.i'``).
            None: every block with spatial transformers (when ``grounding_context_dim`` is set).
        enhancer_track_dim: Dt, the width of ``TrackletConditioning.track_features``. None
            builds no Instance Enhancer.
        enhancer_blocks: names of the UNet blocks whose spatial transformers get an
            :class:`InstanceEnhancer`. None: every decoder (``up_blocks``) block with spatial
            transformers (when ``enhancer_track_dim`` is set).
        enhancer_num_heads: attention heads of the enhancers. None: the heads of the spatial
            transformer each enhancer is attached to.
        enhancer_ff_mult: hidden width of the enhancers' feed-forwards, in multiples of C.
        token_position_freqs: K of the Fourier embedding of token cells and boxes that grounding
            and enhancers add to their attention (see :class:`GatedGrounding`). None (the
            default) adds none, as in GLIGEN; small from-scratch models learn boxes much faster
            with it.
        ground_within_boxes: grounding and enhancers let a visual token see an instance only
            when its cell lies in the instance's box (see :class:`GatedGrounding`); the default
            (False) is GLIGEN's, where attention has to learn it.
        gate_init: initial value of every new tanh gate. 0 (the default) makes the model start
            as the stock UNet, which is what a pretrained UNet needs; a model trained from
            scratch has nothing to preserve, and closed gates barely open in its first hour
            (docs/training.md), so small configs may start them open.
        spatial_attention_heads: the head count of the spatial attentions (self, cross and
            grounding), one int or one per level. None (the default) keeps the UNet3D's rule,
            ``C // attention_head_dim`` heads. A Stable Diffusion 1.x UNet2D inflated into this
            model was trained with ``attention_head_dim`` heads (SD counts heads with that
            option); its loader passes them here, and the saved config keeps them.
        grounding_mask_invisible: grounding masks invisible instances out of its keys (the
            default); False attends to every slot's token, as GLIGEN (see
            :class:`GatedGrounding`).
        enhancer_placement: ``'transformer_output'`` (the default: an enhancer per spatial
            transformer, applied to its output map) or ``'transformer_block'`` (an enhancer per
            ``BasicTransformerBlock``, on its tokens after the fuser, RoIs from the map that
            entered the transformer: the authors' layout).
        enhancer_options: further :class:`InstanceEnhancer` arguments, of
            :data:`ENHANCER_OPTIONS` (e.g. ``dict(fuse_layers=3, frame_ff=False)``).
        temporal_frame_embeddings: None (the default) or T: every temporal transformer
            (``transformer_in`` too) gets ``time_embedder``, a learned (T, C) frame table added
            to its normalised input, zero-initialised; clips may then have at most T frames.

    The resolved block lists are written back to the config, so ``config.json`` names exactly
    the blocks that carry new layers.
    """

    _supports_gradient_checkpointing = True
    _spatial_transformer_type = Transformer2DModel

    @register_to_config
    def __init__(
        self,
        sample_size: int | None = None,
        in_channels: int = 4,
        out_channels: int = 4,
        down_block_types: tuple[str, ...] = (
            'CrossAttnDownBlock3D',
            'CrossAttnDownBlock3D',
            'CrossAttnDownBlock3D',
            'DownBlock3D',
        ),
        up_block_types: tuple[str, ...] = (
            'UpBlock3D',
            'CrossAttnUpBlock3D',
            'CrossAttnUpBlock3D',
            'CrossAttnUpBlock3D',
        ),
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        layers_per_block: int = 2,
        downsample_padding: int = 1,
        mid_block_scale_factor: float = 1,
        act_fn: str = 'silu',
        norm_num_groups: int | None = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int = 1024,
        attention_head_dim: int | tuple[int] = 64,
        num_attention_heads: int | tuple[int] | None = None,
        time_cond_proj_dim: int | None = None,
        grounding_context_dim: int | None = None,
        grounding_blocks: Sequence[str] | None = None,
        enhancer_track_dim: int | None = None,
        enhancer_blocks: Sequence[str] | None = None,
        enhancer_num_heads: int | None = None,
        enhancer_ff_mult: int = 4,
        token_position_freqs: int | None = None,
        ground_within_boxes: bool = False,
        gate_init: float = 0.0,
        spatial_attention_heads: int | Sequence[int] | None = None,
        grounding_mask_invisible: bool = True,
        enhancer_placement: str = 'transformer_output',
        enhancer_options: dict[str, Any] | None = None,
        temporal_frame_embeddings: int | None = None,
    ):
        # Check the new arguments before building anything.
        check_tracklet_layer_args(OWNER, grounding_context_dim, grounding_blocks,
                                  enhancer_track_dim, enhancer_blocks, enhancer_num_heads,
                                  enhancer_ff_mult, token_position_freqs)
        if enhancer_placement not in ENHANCER_PLACEMENTS:
            raise ValueError(f'{OWNER}: `enhancer_placement` must be one of '
                             f'{list(ENHANCER_PLACEMENTS)}, got {enhancer_placement!r}.')
        enhancer_options = dict(enhancer_options or {})
        unknown = sorted(set(enhancer_options) - set(ENHANCER_OPTIONS))
        if unknown:
            raise ValueError(f'{OWNER}: `enhancer_options` has {unknown}; allowed: '
                             f'{list(ENHANCER_OPTIONS)}.')
        check_positive_int(
            OWNER, 'temporal_frame_embeddings', temporal_frame_embeddings, optional=True)
        if isinstance(spatial_attention_heads, Sequence):
            spatial_attention_heads = tuple(spatial_attention_heads)  # a list from config.json
            if len(spatial_attention_heads) != len(block_out_channels):
                raise ValueError(
                    f'{OWNER}: `spatial_attention_heads` {spatial_attention_heads!r} must give one '
                    f'count per level ({len(block_out_channels)}).')
            for count in spatial_attention_heads:
                check_positive_int(OWNER, 'spatial_attention_heads', count)
        else:
            check_positive_int(
                OWNER, 'spatial_attention_heads', spatial_attention_heads, optional=True)

        super().__init__(
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=out_channels,
            down_block_types=down_block_types,
            up_block_types=up_block_types,
            block_out_channels=block_out_channels,
            layers_per_block=layers_per_block,
            downsample_padding=downsample_padding,
            mid_block_scale_factor=mid_block_scale_factor,
            act_fn=act_fn,
            norm_num_groups=norm_num_groups,
            norm_eps=norm_eps,
            cross_attention_dim=cross_attention_dim,
            attention_head_dim=attention_head_dim,
            num_attention_heads=num_attention_heads,
            time_cond_proj_dim=time_cond_proj_dim,
        )

        # Which blocks get new layers: names checked against the blocks actually built.
        spatial, grounding_blocks, enhancer_blocks = self.resolve_tracklet_blocks(
            OWNER, grounding_context_dim, grounding_blocks, enhancer_track_dim, enhancer_blocks)
        self.register_to_config(
            grounding_blocks=grounding_blocks,
            enhancer_blocks=enhancer_blocks,
            spatial_attention_heads=spatial_attention_heads)

        # Every block that may receive the `gligen` kwargs passes it through by default...
        for module in self.modules():
            if isinstance(module, BasicTransformerBlock):
                module.fuser = NoGrounding()
        # ...and the chosen spatial blocks ground on it.
        for name in grounding_blocks:
            for transformer in spatial[name]:
                for block in transformer.transformer_blocks:
                    block.fuser = GatedGrounding(
                        block.dim,
                        grounding_context_dim,
                        block.num_attention_heads,
                        block.attention_head_dim,
                        position_freqs=token_position_freqs,
                        within_boxes=ground_within_boxes,
                        mask_invisible=grounding_mask_invisible)

        for name in enhancer_blocks:
            for transformer in spatial[name]:
                channels = transformer.out_channels
                num_heads = enhancer_num_heads or transformer.config.num_attention_heads
                if channels % num_heads != 0:
                    raise ValueError(
                        f'{OWNER}: `enhancer_num_heads` ({num_heads}) must divide the '
                        f'{channels} channels of the spatial transformers of {name!r}.')
                build_enhancer = functools.partial(
                    InstanceEnhancer,
                    channels,
                    enhancer_track_dim,
                    num_heads,
                    ff_mult=enhancer_ff_mult,
                    position_freqs=token_position_freqs,
                    within_boxes=ground_within_boxes,
                    **enhancer_options)
                if enhancer_placement == 'transformer_output':
                    transformer.instance_enhancer = build_enhancer()
                    transformer.register_forward_hook(
                        _enhance_transformer_output, with_kwargs=True)
                    continue
                for block in transformer.transformer_blocks:
                    block.instance_enhancer = build_enhancer()
                    block.fuser.register_forward_hook(
                        functools.partial(_enhance_block_tokens, block))
                transformer.register_forward_pre_hook(_pass_transformer_input, with_kwargs=True)

        if temporal_frame_embeddings is not None:
            for module in list(self.modules()):
                if isinstance(module, TransformerTemporalModel):
                    module.time_embedder = nn.Embedding(temporal_frame_embeddings,
                                                        module.in_channels)
                    nn.init.zeros_(module.time_embedder.weight)  # starts as without it
                    module.proj_in.register_forward_pre_hook(
                        functools.partial(_add_frame_embedding, module.time_embedder))

        if spatial_attention_heads is not None:
            self._set_spatial_attention_heads(spatial_attention_heads)
        for module in self.modules():
            if isinstance(module, nn.GroupNorm):
                module.register_forward_pre_hook(contiguous_input_without_grad)
        self.open_gates(gate_init)

    def _set_spatial_attention_heads(self, heads: int | tuple[int, ...]) -> None:
        """Give the spatial attentions (self, cross and grounding) of every level ``heads`` heads.

        The UNet3D's blocks make ``C // attention_head_dim`` heads of ``attention_head_dim``
        channels; an SD 1.x UNet2D was trained with ``attention_head_dim`` heads of
        ``C // attention_head_dim`` channels. The weights are the same either way; only the split
        into heads differs, which is what diffusers' attention processors read from ``heads``.
        """
        num_levels = len(self.config.block_out_channels)
        per_level = (heads, ) * num_levels if isinstance(heads, int) else heads
        for name, transformers in self.blocks_with_spatial_transformers().items():
            kind, _, index = name.partition('.')
            level = {
                'down_blocks': lambda: int(index),
                'mid_block': lambda: num_levels - 1,
                'up_blocks': lambda: num_levels - 1 - int(index)
            }[kind]()
            count = per_level[level]
            for transformer in transformers:
                for block in transformer.transformer_blocks:
                    attentions = [block.attn1, block.attn2]
                    if isinstance(block.fuser, GatedGrounding):
                        attentions.append(block.fuser.attn)
                    for attn in attentions:
                        if attn is None:
                            continue
                        if attn.inner_dim % count:
                            raise ValueError(
                                f'{OWNER}: {count} heads do not divide the {attn.inner_dim} '
                                f'channels of the attentions of {name}.')
                        attn.heads = attn.sliceable_head_dim = count
                        attn.scale = (attn.inner_dim // count)**-0.5
                    block.num_attention_heads = count
                    block.attention_head_dim = block.dim // count

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        tracklets: TrackletConditioning | None = None,
        class_labels: torch.Tensor | None = None,
        timestep_cond: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
        down_block_additional_residuals: tuple[torch.Tensor] | None = None,
        mid_block_additional_residual: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNet3DConditionOutput | tuple[torch.Tensor]:
        """The stock forward, with ``tracklets`` for B clips of F frames (the sample's B, F).

        ``sample``: (B, C, F, H, W). The tracklets travel through diffusers' GLIGEN channel,
        ``cross_attention_kwargs['gligen']['objs']``. ``tracklets=None`` is the stock UNet.
        """
        if tracklets is not None:
            check_tracklets(OWNER, tracklets, sample.shape[0], sample.shape[2],
                            self.config.grounding_context_dim, self.config.enhancer_track_dim)
            tracklets = dataclasses.replace(tracklets, frame_size=tuple(sample.shape[-2:]))
            cross_attention_kwargs = {
                **(cross_attention_kwargs or {}), 'gligen': {
                    'objs': tracklets
                }
            }
        return super().forward(
            sample,
            timestep,
            encoder_hidden_states,
            class_labels=class_labels,
            timestep_cond=timestep_cond,
            attention_mask=attention_mask,
            cross_attention_kwargs=cross_attention_kwargs,
            down_block_additional_residuals=down_block_additional_residuals,
            mid_block_additional_residual=mid_block_additional_residual,
            return_dict=return_dict,
        )

    # Gradient checkpointing (is_gradient_checkpointing and disable_gradient_checkpointing come
    # from TrackletUNetMixin). The stock UNet3D blocks never checkpoint (their
    # `gradient_checkpointing` flags are ignored), so the checkpointed units are chosen by type:
    # resnets, temporal convs, spatial and temporal transformers (fusers run inside their
    # blocks) and Instance Enhancers (run by a hook, after the transformer's forward). Unlike the
    # SVD UNet's, these hooks read the tracklets from the kwargs that the recomputed forward
    # receives again, so a plain CheckpointedForward suffices.

    def enable_gradient_checkpointing(self,
                                      gradient_checkpointing_func: Callable | None = None) -> None:
        """Checkpoint every module of :data:`CHECKPOINTED_MODULES`.

        ``gradient_checkpointing_func(function, *args)`` follows diffusers' convention; the
        default is non-reentrant ``torch.utils.checkpoint.checkpoint``.
        """
        checkpoint_func = gradient_checkpointing_func or checkpoint
        for module in self.modules():
            if isinstance(module, CHECKPOINTED_MODULES):
                module.forward = CheckpointedForward(module, checkpoint_func)

    def module_groups(self) -> dict[str, list[nn.Module]]:
        """Partition the model into named groups of modules, by module type.

        - ``'temporal'``: temporal convs and temporal transformers (``transformer_in`` too);
        - ``'grounding'``: the :class:`GatedGrounding` fusers;
        - ``'enhancer'``: the :class:`InstanceEnhancer` s;
        - ``'spatial'``: the largest subtrees holding none of the above (the rest of the stock
          UNet: resnets, spatial transformers' own layers, time embedding, in/out convs...).

        Every parameter belongs to exactly one module of one group (recursively), so
        ``for m in groups[name]: m.requires_grad_(flag)`` freezes or trains a group.
        """
        temporal_types = (TemporalConvLayer, TransformerTemporalModel)
        return partition_modules(
            self,
            dict(
                temporal=lambda name, m: isinstance(m, temporal_types),
                grounding=lambda name, m: isinstance(m, GatedGrounding),
                enhancer=lambda name, m: isinstance(m, InstanceEnhancer)),
            rest='spatial')
