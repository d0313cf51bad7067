"""Feature networks for FID (Inception-v3) and FVD (I3D), with weights from local files only.

mmtrackgen never downloads these weights. Known files that load:

- ``'inception'``: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (its ``fc.*``
  classifier is ignored). Not the TorchScript ``inception-2015-12-05.pt`` of StyleGAN2-ADA.
- ``'i3d'``: the Kinetics-400 RGB I3D of the common PyTorch port (pytorch-i3d's
  ``models/rgb_imagenet.pt``); pass ``num_classes=157`` for its Charades weights.
"""
import os
import os.path as osp
from collections.abc import Mapping
from typing import Dict, Optional, Tuple, Type, Union

import torch
from torch import nn

from mmtrackgen.utils.checkpoint import UnsafeCheckpointError, safe_torch_load
from .i3d import I3DFeatures
from .inception import InceptionV3Features

__all__ = ['I3DFeatures', 'InceptionV3Features', 'load_feature_network']

# name -> (class, key prefixes in the weights file that are not part of the network, usual file)
_NETWORKS: Dict[str, Tuple[Type[nn.Module], Tuple[str, ...], str]] = {
    'inception': (InceptionV3Features, ('fc.', 'AuxLogits.'),
                  "pytorch-fid's pt_inception-2015-12-05-6726825d.pth"),
    'i3d': (I3DFeatures, (), "the PyTorch I3D port's Kinetics-400 models/rgb_imagenet.pt"),
}


def load_feature_network(name: str,
                         weights: Optional[Union[str, os.PathLike]],
                         random_init_seed: Optional[int] = None,
                         device: Optional[torch.device] = None,
                         **kwargs) -> nn.Module:
    """Build a feature network in eval mode, without gradients.

    Args:
        name: ``'inception'`` (FID) or ``'i3d'`` (FVD).
        weights: path of a local weights file (a state dict, or a dict with a ``'state_dict'``),
            opened with ``torch.load(weights_only=True)``. None only together with
            ``random_init_seed``.
        random_init_seed: with ``weights=None``, initialise randomly from this seed (tests,
            demos). Such networks give numbers comparable only with the same seed and settings,
            never with published FID/FVD values.
        device: where to put the network (default: CPU).
        **kwargs: passed to the network class (e.g. ``input_size``, ``num_classes``).
    Raises:
        FileNotFoundError: ``weights`` does not exist.
        UnsafeCheckpointError: the file holds more than tensors (e.g. a pickled model).
        ValueError: unknown name, a file torch cannot read, missing/unexpected keys, or a shape
            mismatch (naming the key).
    """
    if name not in _NETWORKS:
        raise ValueError(f'unknown feature network {name!r}; choose from {sorted(_NETWORKS)}')
    network_class, ignored_prefixes, usual_file = _NETWORKS[name]
    if weights is None and random_init_seed is None:
        raise ValueError(f'give the {name} weights file ({usual_file}), or random_init_seed for '
                         'a randomly initialised network (tests/demos only)')
    if weights is not None and random_init_seed is not None:
        raise ValueError('give either weights or random_init_seed, not both')
    network = network_class(**kwargs)
    if weights is None:
        _random_init(network, random_init_seed)
    else:
        path = osp.expanduser(str(weights))
        if not osp.isfile(path):
            raise FileNotFoundError(
                f"{name} weights file '{path}' not found. mmtrackgen cannot download these "
                f'weights: get {usual_file} yourself, put it on this machine (e.g. under '
                'checkpoints/) and pass its path.')
        try:
            state = safe_torch_load(path, map_location='cpu')
        except UnsafeCheckpointError:
            raise
        except Exception as e:  # torch on a file cut short or of another kind: several types
            raise ValueError(f"{name} weights file '{path}' cannot be read (truncated, or not a "
                             f'torch file?): {type(e).__name__}: {e}') from e
        _load_state(network, state, ignored_prefixes, path)
    network.eval().requires_grad_(False)
    return network.to(device) if device is not None else network


def _load_state(network: nn.Module, state, ignored_prefixes: Tuple[str, ...], path: str) -> None:
    """Strictly load ``state`` (less ``ignored_prefixes``) into ``network``."""
    if isinstance(state, Mapping) and isinstance(state.get('state_dict'), Mapping):
        state = state['state_dict']
    if not isinstance(state, Mapping):
        raise ValueError(f"'{path}' holds a {type(state).__name__}, not a state dict")
    state = {k: v for k, v in state.items() if not k.startswith(ignored_prefixes)}
    expected = network.state_dict()
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise ValueError(f"'{path}' has keys this network lacks: {_some(unexpected)}")
    # Old files may predate BatchNorm's num_batches_tracked, which eval mode never uses.
    missing = sorted(k for k in set(expected) - set(state) if not k.endswith('num_batches_tracked'))
    if missing:
        raise ValueError(f"'{path}' lacks keys of this network: {_some(missing)}")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"'{path}': {key} is a {type(value).__name__}, not a tensor")
        if value.shape != expected[key].shape:
            raise ValueError(f"'{path}': {key} has shape {tuple(value.shape)}, the network "
                             f'expects {tuple(expected[key].shape)}')
    network.load_state_dict({**expected, **state}, strict=True)


def _some(keys, limit: int = 5) -> str:
    more = f' (+{len(keys) - limit} more)' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


@torch.no_grad()
def _random_init(network: nn.Module, seed: int) -> None:
    """Deterministic He-normal convolutions (so activations keep their scale through the depth),
    zero biases and identity batch norms."""
    generator = torch.Generator().manual_seed(int(seed))
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d)):
            fan_in = module.weight[0].numel()
            module.weight.normal_(0, (2 / fan_in)**0.5, generator=generator)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_parameters()  # weight 1, bias 0, running mean 0 / var 1
