"""Pieces every tracklet-conditioned generator needs, whatever diffusers UNet it extends.

Argument checks, block-name resolution, the check of a :class:`TrackletConditioning` against
the sample, the gates of the new layers, the partition of a model into named groups of
modules, gradient checkpointing by module type, the initialisation of new layers a checkpoint
lacks, and :class:`TrackletUNetMixin`, the methods both UNets share. ``owner`` is the class name
that messages start with.
"""
import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.utils.checkpoint
from torch import nn

from ..conditioning.gated_grounding import GatedGrounding
from ..conditioning.instance_enhancer import InstanceEnhancer
from ..conditioning.tracklet_conditioning import TrackletConditioning


def check_positive_int(owner: str, name: str, value: Any, optional: bool = False) -> None:
    """``ValueError`` unless ``value`` is a positive int (or None, when ``optional``)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        allowed = 'None or a positive int' if optional else 'a positive int'
        raise ValueError(f'{owner}: `{name}` must be {allowed}, got {value!r}.')


def resolve_blocks(owner: str, argument: str, requested: Sequence[str] | None,
                   available: Sequence[str], default: list[str]) -> list[str]:
    """The blocks named by ``requested`` (None: ``default``), checked against ``available``
    and returned in UNet order."""
    if requested is None:
        return default
    if isinstance(requested, str) or not isinstance(requested, Sequence):
        raise ValueError(f'{owner}: `{argument}` must be a list of block names, got {requested!r}.')
    unknown = [name for name in requested if name not in available]
    if unknown:
        raise ValueError(
            f'{owner}: `{argument}` names {unknown}, which are not blocks with spatial '
            f'transformers in this UNet; choose from {list(available)}.')
    if len(set(requested)) != len(requested):
        raise ValueError(f'{owner}: `{argument}` repeats a block: {list(requested)}.')
    return [name for name in available if name in requested]


def check_tracklet_layer_args(owner: str, grounding_context_dim: int | None,
                              grounding_blocks: Sequence[str] | None,
                              enhancer_track_dim: int | None, enhancer_blocks: Sequence[str] | None,
                              enhancer_num_heads: int | None, enhancer_ff_mult: int,
                              token_position_freqs: int | None) -> None:
    """The grounding and enhancer arguments both tracklet UNets take, checked before building."""
    check_positive_int(owner, 'grounding_context_dim', grounding_context_dim, optional=True)
    check_positive_int(owner, 'enhancer_track_dim', enhancer_track_dim, optional=True)
    check_positive_int(owner, 'enhancer_num_heads', enhancer_num_heads, optional=True)
    check_positive_int(owner, 'enhancer_ff_mult', enhancer_ff_mult)
    check_positive_int(owner, 'token_position_freqs', token_position_freqs, optional=True)
    if grounding_context_dim is None and grounding_blocks:
        raise ValueError(f'{owner}: `grounding_blocks` is {list(grounding_blocks)} but '
                         '`grounding_context_dim` is None; set the token width to build grounding.')
    if enhancer_track_dim is None and enhancer_blocks:
        raise ValueError(
            f'{owner}: `enhancer_blocks` is {list(enhancer_blocks)} but '
            '`enhancer_track_dim` is None; set the track-feature width to build enhancers.')


def check_tracklets(owner: str, tracklets: Any, batch_size: int, num_frames: int,
                    token_dim: int | None, track_dim: int | None) -> None:
    """``ValueError`` unless ``tracklets`` is a :class:`TrackletConditioning` for B clips of F
    frames with tokens of width ``token_dim`` and track features of width ``track_dim`` (None:
    that branch is not built, any width)."""
    if not isinstance(tracklets, TrackletConditioning):
        raise ValueError(f'{owner}: `tracklets` must be a TrackletConditioning, '
                         f'got {type(tracklets).__name__}.')
    num_slots = tracklets.num_slots
    expected = {
        'tokens': (batch_size, num_frames, num_slots, token_dim),
        'track_features': (batch_size, num_slots, num_frames, track_dim),
        'boxes': (batch_size, num_frames, num_slots, 4),
        'visible': (batch_size, num_frames, num_slots),
    }
    for field, shape in expected.items():
        actual = tuple(getattr(tracklets, field).shape)
        if len(actual) != len(shape) or any(want is not None and got != want
                                            for got, want in zip(actual, shape)):
            raise ValueError(
                f'{owner}: `tracklets.{field}` has shape {actual}, expected {shape} '
                f'for a sample of {batch_size} clips x {num_frames} frames (None: any).')


@torch.no_grad()
def set_gates(model: nn.Module, value: float) -> None:
    """Set every grounding and enhancer gate (``alpha_attn``, ``alpha_dense``) to ``value``."""
    for module in model.modules():
        if isinstance(module, (GatedGrounding, InstanceEnhancer)):
            module.alpha_attn.fill_(value)
            module.alpha_dense.fill_(value)


def partition_modules(model: nn.Module, roots: dict[str, Callable[[str, nn.Module], bool]],
                      rest: str) -> dict[str, list[nn.Module]]:
    """Partition ``model`` into named groups of modules.

    ``roots[group](name, module)`` says whether a module (and everything below it) belongs to
    ``group``; the largest subtrees holding no such module form the group ``rest``. Every
    parameter belongs to exactly one module of one group, so ``requires_grad_`` on a group's
    modules freezes or trains exactly that group. A module whose own parameters sit beside
    grouped children cannot be split: ``RuntimeError``.
    """
    groups = {name: [] for name in (*roots, rest)}

    def group_of(name: str, module: nn.Module) -> str | None:
        return next((group for group, is_root in roots.items() if is_root(name, module)), None)

    def holds_root(name: str, module: nn.Module) -> bool:
        return any(
            group_of(f'{name}.{sub}' if name and sub else name or sub, m) is not None
            for sub, m in module.named_modules())

    def visit(module: nn.Module, name: str) -> None:
        group = group_of(name, module)
        if group is not None:
            groups[group].append(module)
            return
        if not holds_root(name, module):
            if any(True for _ in module.parameters()):
                groups[rest].append(module)
            return
        if any(True for _ in module.parameters(recurse=False)):
            raise RuntimeError(f'module_groups: {name!r} mixes its own parameters with '
                               'grouped submodules and cannot be split.')
        for child_name, child in module.named_children():
            visit(child, f'{name}.{child_name}' if name else child_name)

    visit(model, '')
    return groups


def contiguous_input_without_grad(norm: nn.GroupNorm, args: tuple) -> tuple | None:
    """Forward pre-hook of every GroupNorm: a channels-last input that needs no gradient is made
    contiguous first. torch 2.13's CPU GroupNorm backward crashes (segfault) on such an input
    when the norm's own weights train, which is what happens to ``transformer_in.norm`` (fed by
    the frozen ``conv_in``) in the released recipe: temporal layers train, spatial ones do not.
    """
    x = args[0]
    if x.requires_grad or x.is_contiguous():
        return None
    return (x.contiguous(), *args[1:])


def checkpoint(function: Callable, *args: Any) -> Any:
    """The default checkpointing function: non-reentrant, so closures and kwargs get gradients."""
    return torch.utils.checkpoint.checkpoint(function, *args, use_reentrant=False)


class CheckpointedForward:
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


class TrackletUNetMixin:
    """The methods :class:`TrackletUNet3D` and :class:`TrackletUNetSpatioTemporal` share.

    Listed before the diffusers UNet in a class's bases, so that these override ``ModelMixin``'s.
    A class sets ``_spatial_transformer_type``, the transformer class its blocks' ``attentions``
    hold. What differs stays in each class: ``enable_gradient_checkpointing`` (which module types
    are checkpointed, and the SVD UNet rebinds its tracklets on recomputation), ``forward`` and
    ``module_groups`` (the layouts of temporal layers differ).
    """

    _spatial_transformer_type: type[nn.Module]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """diffusers' ``from_pretrained``; new layers the checkpoint lacks are initialised.

        Extra constructor arguments may be passed, e.g. to extend a stock UNet folder:
        ``from_pretrained(folder, grounding_context_dim=768, ...)``. diffusers builds models
        with ``torch.nn.init`` switched off, so grounding and enhancer modules missing from the
        checkpoint are re-initialised here (gates at ``gate_init``; 0: the stock UNet).
        """
        output_loading_info = kwargs.pop('output_loading_info', False)
        model, loading_info = super().from_pretrained(
            pretrained_model_name_or_path, output_loading_info=True, **kwargs)
        initialise_missing_layers(model, loading_info['missing_keys'], model.config.gate_init)
        return (model, loading_info) if output_loading_info else model

    def open_gates(self, value: float) -> None:
        """Set every grounding and enhancer gate (``alpha_attn``, ``alpha_dense``) to ``value``."""
        set_gates(self, value)

    def blocks_with_spatial_transformers(self) -> dict[str, list[nn.Module]]:
        """Block name -> its spatial transformers (``_spatial_transformer_type``), for the blocks
        that have any, in UNet order."""
        blocks = [(f'down_blocks.{i}', block) for i, block in enumerate(self.down_blocks)]
        blocks.append(('mid_block', self.mid_block))
        blocks += [(f'up_blocks.{i}', block) for i, block in enumerate(self.up_blocks)]
        spatial = {}
        for name, block in blocks:
            transformers = [
                module for module in getattr(block, 'attentions', None) or []
                if isinstance(module, self._spatial_transformer_type)
            ]
            if transformers:
                spatial[name] = transformers
        return spatial

    def resolve_tracklet_blocks(self, owner: str, grounding_context_dim: int | None,
                                grounding_blocks: Sequence[str] | None,
                                enhancer_track_dim: int | None,
                                enhancer_blocks: Sequence[str] | None) -> tuple:
        """(spatial transformers by block, grounding blocks, enhancer blocks): the names checked
        against the blocks actually built; by default grounding in every block with spatial
        transformers and enhancers in the decoder's; none without the matching width."""
        spatial = self.blocks_with_spatial_transformers()
        decoder = [name for name in spatial if name.startswith('up_blocks.')]
        grounding_blocks = [] if grounding_context_dim is None else resolve_blocks(
            owner, 'grounding_blocks', grounding_blocks, list(spatial), default=list(spatial))
        enhancer_blocks = [] if enhancer_track_dim is None else resolve_blocks(
            owner, 'enhancer_blocks', enhancer_blocks, list(spatial), default=decoder)
        return spatial, grounding_blocks, enhancer_blocks

    # Gradient checkpointing replaces the forward of chosen modules with a CheckpointedForward
    # (see each class's enable_gradient_checkpointing); diffusers' own flags are not used.

    @property
    def is_gradient_checkpointing(self) -> bool:
        return any(
            isinstance(module.__dict__.get('forward'), CheckpointedForward)
            for module in self.modules())

    def disable_gradient_checkpointing(self) -> None:
        for module in self.modules():
            if isinstance(module.__dict__.get('forward'), CheckpointedForward):
                del module.forward
