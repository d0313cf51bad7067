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
"""
import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.utils.checkpoint
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


def _contiguous_input_without_grad(norm: nn.GroupNorm, args: tuple) -> tuple | None:
    """Forward pre-hook of every GroupNorm: a channels-last input that needs no gradient is made
    contiguous first. torch 2.13's CPU GroupNorm backward crashes (segfault) on such an input
    when the norm's own weights train, which is what happens to ``transformer_in.norm`` (fed by
    the frozen ``conv_in``) in the released recipe: temporal layers train, spatial ones do not.
    """
    x = args[0]
    if x.requires_grad or x.is_contiguous():
        return None
    return (x.contiguous(), *args[1:])


def _checkpoint(function: Callable, *args: Any) -> Any:
    """The default checkpointing function: non-reentrant, so closures and kwargs get gradients."""
    return torch.utils.checkpoint.checkpoint(function, *args, use_reentrant=False)


class _CheckpointedForward:
    """Stands in for ``module.forward`` (an instance attribute, as accelerate's hooks do).

    ``nn.Module.__call__`` still runs the module's hooks around it, and everything the forward
    calls (fusers included) is recomputed in backward. The module tree, the parameter names and
    the state-dict keys are untouched; removing the attribute restores the class's forward.
    """

    def __init__(self, module: nn.Module, checkpoint_func: Callable):
        self.module = module
        self.checkpoint_func = checkpoint_func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        forward = functools.partial(type(self.module).forward, self.module, **kwargs)
        if torch.is_grad_enabled():
            return self.checkpoint_func(forward, *args)
        return forward(*args)


def initialise_missing_layers(model: nn.Module,
                              missing_keys: Sequence[str],
                              gate_init: float = 0.0) -> None:
    """Initialise the grounding and enhancer modules that a loaded checkpoint did not hold.

    diffusers' ``from_pretrained`` builds the model with ``torch.nn.init`` switched off (and,
    with accelerate's ``low_cpu_mem_usage``, on the meta device), so such modules hold garbage
    or no storage. Each wholly missing module is given storage beside the loaded weights and
    fresh parameters (gates at ``gate_init``). A module the checkpoint holds but for its
    ``position`` layer (GLIGEN weights into a model with token positions) gets only that layer
    initialised; any other partial module is an error.
    """
    missing = set(missing_keys)
    loaded = next((p for p in model.parameters() if not p.is_meta), None)
    for name, module in model.named_modules():
        if not isinstance(module, (GatedGrounding, InstanceEnhancer)):
            continue
        keys = {f'{name}.{key}' for key in module.state_dict()}
        position_keys = {key for key in keys if key.startswith(f'{name}.position.')}
        if position_keys and not (keys - position_keys) & missing:
            if position_keys & missing:  # all loaded but the position layer
                _materialise(module.position, loaded)
                module.position.reset_parameters()
            continue
        if keys & missing and not keys <= missing:
            raise ValueError(f'The checkpoint holds only part of {name!r}; missing '
                             f'{sorted(keys & missing)}.')
        if keys <= missing:
            _materialise(module, loaded)
            module.reset_parameters()
            with torch.no_grad():
                module.alpha_attn.fill_(gate_init)
                module.alpha_dense.fill_(gate_init)


def _materialise(module: nn.Module, like: torch.Tensor | None) -> None:
    """Give a module left on the meta device storage beside ``like`` (a loaded parameter)."""
    if like is not None and any(p.is_meta for p in module.parameters()):
        module.to_empty(device=like.device).to(like.dtype)


def _check_positive_int(name: str, value: Any, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        allowed = 'None or a positive int' if optional else 'a positive int'
        raise ValueError(f'TrackletUNet3D: `{name}` must be {allowed}, got {value!r}.')


@MODELS.register_module()
class TrackletUNet3D(UNet3DConditionModel):
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

    The resolved block lists are written back to the config, so ``config.json`` names exactly
    the blocks that carry new layers.
    """

    _supports_gradient_checkpointing = True

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
    ):
        # Check the new arguments before building anything.
        _check_positive_int('grounding_context_dim', grounding_context_dim, optional=True)
        _check_positive_int('enhancer_track_dim', enhancer_track_dim, optional=True)
        _check_positive_int('enhancer_num_heads', enhancer_num_heads, optional=True)
        _check_positive_int('enhancer_ff_mult', enhancer_ff_mult)
        _check_positive_int('token_position_freqs', token_position_freqs, optional=True)
        if grounding_context_dim is None and grounding_blocks:
            raise ValueError(
                f'TrackletUNet3D: `grounding_blocks` is {list(grounding_blocks)} but '
                '`grounding_context_dim` is None; set the token width to build grounding.')
        if enhancer_track_dim is None and enhancer_blocks:
            raise ValueError(
                f'TrackletUNet3D: `enhancer_blocks` is {list(enhancer_blocks)} but '
                '`enhancer_track_dim` is None; set the track-feature width to build enhancers.')

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
        spatial = self.blocks_with_spatial_transformers()
        decoder = [name for name in spatial if name.startswith('up_blocks.')]
        grounding_blocks = [] if grounding_context_dim is None else self._resolve_blocks(
            'grounding_blocks', grounding_blocks, spatial, default=list(spatial))
        enhancer_blocks = [] if enhancer_track_dim is None else self._resolve_blocks(
            'enhancer_blocks', enhancer_blocks, spatial, default=decoder)
        self.register_to_config(grounding_blocks=grounding_blocks, enhancer_blocks=enhancer_blocks)

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
                        within_boxes=ground_within_boxes)

        for name in enhancer_blocks:
            for transformer in spatial[name]:
                channels = transformer.out_channels
                num_heads = enhancer_num_heads or transformer.config.num_attention_heads
                if channels % num_heads != 0:
                    raise ValueError(
                        f'TrackletUNet3D: `enhancer_num_heads` ({num_heads}) must divide the '
                        f'{channels} channels of the spatial transformers of {name!r}.')
                transformer.instance_enhancer = InstanceEnhancer(
                    channels,
                    enhancer_track_dim,
                    num_heads,
                    ff_mult=enhancer_ff_mult,
                    position_freqs=token_position_freqs,
                    within_boxes=ground_within_boxes)
                transformer.register_forward_hook(_enhance_transformer_output, with_kwargs=True)

        for module in self.modules():
            if isinstance(module, nn.GroupNorm):
                module.register_forward_pre_hook(_contiguous_input_without_grad)
        self.open_gates(gate_init)

    @torch.no_grad()
    def open_gates(self, value: float) -> None:
        """Set every grounding and enhancer gate (``alpha_attn``, ``alpha_dense``) to ``value``."""
        for module in self.modules():
            if isinstance(module, (GatedGrounding, InstanceEnhancer)):
                module.alpha_attn.fill_(value)
                module.alpha_dense.fill_(value)

    def blocks_with_spatial_transformers(self) -> dict[str, list[Transformer2DModel]]:
        """Block name -> its spatial transformers, for the blocks that have any, in UNet order."""
        blocks = [(f'down_blocks.{i}', block) for i, block in enumerate(self.down_blocks)]
        blocks.append(('mid_block', self.mid_block))
        blocks += [(f'up_blocks.{i}', block) for i, block in enumerate(self.up_blocks)]
        spatial = {}
        for name, block in blocks:
            transformers = [
                module for module in getattr(block, 'attentions', None) or []
                if isinstance(module, Transformer2DModel)
            ]
            if transformers:
                spatial[name] = transformers
        return spatial

    @staticmethod
    def _resolve_blocks(argument: str, requested: Sequence[str] | None,
                        spatial: dict[str,
                                      list[Transformer2DModel]], default: list[str]) -> list[str]:
        if requested is None:
            return default
        if isinstance(requested, str) or not isinstance(requested, Sequence):
            raise ValueError(
                f'TrackletUNet3D: `{argument}` must be a list of block names, got {requested!r}.')
        unknown = [name for name in requested if name not in spatial]
        if unknown:
            raise ValueError(
                f'TrackletUNet3D: `{argument}` names {unknown}, which are not blocks with spatial '
                f'transformers in this UNet; choose from {list(spatial)}.')
        if len(set(requested)) != len(requested):
            raise ValueError(f'TrackletUNet3D: `{argument}` repeats a block: {list(requested)}.')
        return [name for name in spatial if name in requested]  # in UNet order

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
            self._check_tracklets(tracklets, sample)
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

    def _check_tracklets(self, tracklets: TrackletConditioning, sample: torch.Tensor) -> None:
        if not isinstance(tracklets, TrackletConditioning):
            raise ValueError('TrackletUNet3D: `tracklets` must be a TrackletConditioning, '
                             f'got {type(tracklets).__name__}.')
        batch_size, num_frames = sample.shape[0], sample.shape[2]
        num_slots = tracklets.num_slots
        expected = {
            'tokens': (batch_size, num_frames, num_slots, self.config.grounding_context_dim),
            'track_features': (batch_size, num_slots, num_frames, self.config.enhancer_track_dim),
            'boxes': (batch_size, num_frames, num_slots, 4),
            'visible': (batch_size, num_frames, num_slots),
        }
        for field, shape in expected.items():
            actual = tuple(getattr(tracklets, field).shape)
            # A width of None (that branch not built) accepts any width.
            if len(actual) != len(shape) or any(want is not None and got != want
                                                for got, want in zip(actual, shape)):
                raise ValueError(
                    f'TrackletUNet3D: `tracklets.{field}` has shape {actual}, expected {shape} '
                    f'for a sample of {batch_size} clips x {num_frames} frames (None: any).')

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """diffusers' ``from_pretrained``; new layers the checkpoint lacks are initialised.

        Extra constructor arguments may be passed, e.g. to extend a stock UNet3D folder:
        ``TrackletUNet3D.from_pretrained(folder, grounding_context_dim=768, ...)``. diffusers
        builds models with ``torch.nn.init`` switched off, so grounding and enhancer modules
        missing from the checkpoint are re-initialised here (gates at 0: the stock UNet).
        """
        output_loading_info = kwargs.pop('output_loading_info', False)
        model, loading_info = super().from_pretrained(
            pretrained_model_name_or_path, output_loading_info=True, **kwargs)
        initialise_missing_layers(model, loading_info['missing_keys'], model.config.gate_init)
        return (model, loading_info) if output_loading_info else model

    # Gradient checkpointing. The stock UNet3D blocks never checkpoint (their
    # `gradient_checkpointing` flags are ignored), so the checkpointed units are chosen by type:
    # resnets, temporal convs, spatial and temporal transformers (fusers run inside their
    # blocks) and Instance Enhancers (run by a hook, after the transformer's forward).

    @property
    def is_gradient_checkpointing(self) -> bool:
        return any(
            isinstance(module.__dict__.get('forward'), _CheckpointedForward)
            for module in self.modules())

    def enable_gradient_checkpointing(self,
                                      gradient_checkpointing_func: Callable | None = None) -> None:
        """Checkpoint every module of :data:`CHECKPOINTED_MODULES`.

        ``gradient_checkpointing_func(function, *args)`` follows diffusers' convention; the
        default is non-reentrant ``torch.utils.checkpoint.checkpoint``.
        """
        checkpoint_func = gradient_checkpointing_func or _checkpoint
        for module in self.modules():
            if isinstance(module, CHECKPOINTED_MODULES):
                module.forward = _CheckpointedForward(module, checkpoint_func)

    def disable_gradient_checkpointing(self) -> None:
        for module in self.modules():
            if isinstance(module.__dict__.get('forward'), _CheckpointedForward):
                del module.forward

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
        roots = {
            'temporal': (TemporalConvLayer, TransformerTemporalModel),
            'grounding': (GatedGrounding, ),
            'enhancer': (InstanceEnhancer, ),
        }
        all_roots = tuple(t for types in roots.values() for t in types)
        groups = {name: [] for name in (*roots, 'spatial')}

        def visit(module: nn.Module, name: str) -> None:
            for group, types in roots.items():
                if isinstance(module, types):
                    groups[group].append(module)
                    return
            if not any(isinstance(m, all_roots) for m in module.modules()):
                if any(True for _ in module.parameters()):
                    groups['spatial'].append(module)
                return
            if any(True for _ in module.parameters(recurse=False)):
                raise RuntimeError(f'module_groups: {name!r} mixes its own parameters with '
                                   'grouped submodules and cannot be split.')
            for child_name, child in module.named_children():
                visit(child, f'{name}.{child_name}' if name else child_name)

        visit(self, '')
        return groups


@MODELS.register_module(name='PretrainedTrackletUNet3D')
def build_pretrained_tracklet_unet3d(pretrained: str,
                                     subfolder: str | None = 'unet',
                                     weights_format: str = 'auto',
                                     grounding_weights: str | None = None,
                                     **new_layers: Any) -> TrackletUNet3D:
    """Config entry for a UNet3D from a local diffusers folder, extended with ``new_layers``
    (``grounding_context_dim``, ``enhancer_track_dim``...): ``dict(type='PretrainedTrackletUNet3D',
    pretrained='data/pretrained/text-to-video-ms-1.7b', grounding_context_dim=768, ...)``.

    ``weights_format``: ``'modelscope'`` (a UNet3D folder), ``'sd'`` (a Stable Diffusion 1.x
    UNet2D, inflated) or ``'auto'``; ``grounding_weights``: an optional GLIGEN folder for the
    grounding modules. See :func:`~.pretrained.load_tracklet_unet3d`; its :class:`LoadReport` is
    logged and kept as the model's ``load_report``. Nothing is downloaded: a missing folder or
    file is an error naming it."""
    from .pretrained import load_tracklet_unet3d
    model, report = load_tracklet_unet3d(
        pretrained,
        subfolder,
        weights_format=weights_format,
        grounding_weights=grounding_weights,
        **new_layers)
    model.load_report = report
    return model
