"""Pieces every tracklet-conditioned generator needs, whatever diffusers UNet it extends.

Argument checks, block-name resolution, the check of a :class:`TrackletConditioning` against
the sample, the gates of the new layers and the partition of a model into named groups of
modules. ``owner`` is the class name that messages start with.
"""
from collections.abc import Callable, Sequence
from typing import Any

import torch
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
