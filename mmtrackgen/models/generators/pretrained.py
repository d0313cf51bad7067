"""The generator from the pretrained folders users keep on disk, with a report of what loaded.

Three layouts of a diffusers ``unet/`` folder (``config.json`` plus
``diffusion_pytorch_model[.fp16].safetensors``, ``.bin`` or a sharded ``.index.json``):

- ``'modelscope'``: a ``UNet3DConditionModel`` (ModelScope T2V, ZeroScope) or a
  :class:`TrackletUNet3D` exported by ``tools/export_model.py``. Its keys are ours unchanged.
- ``'sd'``: a Stable Diffusion 1.x ``UNet2DConditionModel``. Its keys are the spatial keys of
  the UNet3D unchanged (diffusers names resnets, spatial transformers, samplers, ``conv_in``,
  ``conv_out`` and ``time_embedding`` alike in both), except that SD 1.x projects into and out of
  its spatial transformers with 1x1 convolutions where the UNet3D uses linear layers: those
  (C, C, 1, 1) kernels become (C, C) matrices. And SD's ``attention_head_dim`` counts heads
  (8 per level in SD 1.x) where the UNet3D's blocks read the same option as channels per head:
  the spatial attentions are given SD's head count (:class:`TrackletUNet3D`'s
  ``spatial_attention_heads``, kept in the saved config). The temporal layers, which SD lacks
  (``transformer_in``, ``temp_convs``, ``temp_attentions``), start as in the ModelScope recipe:
  every output projection zero, so each temporal layer is the identity and the inflated model
  is the image model applied frame by frame (:func:`zero_temporal_outputs`).
- ``'svd'``: a ``UNetSpatioTemporalConditionModel`` (Stable Video Diffusion img2vid) or a
  :class:`TrackletUNetSpatioTemporal`, loaded by :func:`load_tracklet_unet_spatiotemporal`. Its
  keys are ours unchanged; grounding and enhancers start fresh.
- GLIGEN (``grounding_weights``, or a GLIGEN folder loaded as ``'sd'``): a ``UNet2DConditionModel``
  with ``attention_type='gated'``. Its ``fuser.*`` keys load into our :class:`GatedGrounding`
  modules, which carry the same names. Its ``position_net`` (box + phrase -> token MLP) is
  ignored: our :class:`TrackletEncoder` has the same MLP shape, but its Fourier box features use
  frequencies ``2^k pi`` in coordinate-major order where GLIGEN uses ``100^(k/K)`` in
  frequency-major order, so GLIGEN's first layer would read the wrong features.

Every loader returns a :class:`LoadReport`: which model weights were loaded (and from which
checkpoint key), which were newly initialised, and which checkpoint weights were ignored and
why. It is logged through mmengine's logger. A weight whose shape differs from the model's, and
a model weight outside the layers that may start fresh (temporal layers for ``'sd'``, grounding
and enhancers always), are errors, never silent re-initialisations.
"""
import dataclasses
import functools
import json
import os
import os.path as osp
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
from diffusers.models.model_loading_utils import load_state_dict
from diffusers.models.resnet import TemporalConvLayer
from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel
from mmengine.logging import MMLogger

from mmtrackgen.registry import MODELS
from ..data_preprocessors.trackdiffusion_data_preprocessor import (PRETRAINED_HINT,
                                                                   check_pretrained_folder)
from .tracklet_unet3d import TrackletUNet3D
from .tracklet_unet_spatiotemporal import TrackletUNetSpatioTemporal

WEIGHTS_FORMATS = ('auto', 'modelscope', 'sd')
# What a folder may hold, in the order looked for: single files, then sharded indexes.
WEIGHT_FILES = ('diffusion_pytorch_model.safetensors', 'diffusion_pytorch_model.fp16.safetensors',
                'diffusion_pytorch_model.bin', 'diffusion_pytorch_model.fp16.bin')
WEIGHT_INDEXES = ('diffusion_pytorch_model.safetensors.index.json',
                  'diffusion_pytorch_model.fp16.safetensors.index.json',
                  'diffusion_pytorch_model.bin.index.json')
# config.json class names of each layout.
UNET3D_CLASSES = ('UNet3DConditionModel', 'TrackletUNet3D')
UNET2D_CLASSES = ('UNet2DConditionModel', )
SVD_CLASSES = ('UNetSpatioTemporalConditionModel', 'TrackletUNetSpatioTemporal')

# UNet2DConditionModel options an SD 1.x UNet has, with the value the UNet3D implies: any
# other value describes an architecture the UNet3D cannot hold.
SD_FIXED_OPTIONS = dict(
    center_input_sample=False,
    flip_sin_to_cos=True,
    freq_shift=0,
    mid_block_type='UNetMidBlock2DCrossAttn',
    only_cross_attention=False,
    dropout=0.0,
    transformer_layers_per_block=1,
    reverse_transformer_layers_per_block=None,
    encoder_hid_dim=None,
    encoder_hid_dim_type=None,
    num_attention_heads=None,
    dual_cross_attention=False,
    class_embed_type=None,
    addition_embed_type=None,
    num_class_embeds=None,
    upcast_attention=False,
    resnet_time_scale_shift='default',
    resnet_skip_time_act=False,
    resnet_out_scale_factor=1.0,
    time_embedding_type='positional',
    time_embedding_dim=None,
    time_embedding_act_fn=None,
    timestep_post_act=None,
    conv_in_kernel=3,
    conv_out_kernel=3,
    class_embeddings_concat=False,
    mid_block_only_cross_attention=None,
    cross_attention_norm=None,
)
# UNet2DConditionModel options copied to the UNet3D as they are.
SD_SHARED_OPTIONS = ('sample_size', 'in_channels', 'out_channels', 'block_out_channels',
                     'layers_per_block', 'downsample_padding', 'mid_block_scale_factor', 'act_fn',
                     'norm_num_groups', 'norm_eps', 'cross_attention_dim', 'attention_head_dim',
                     'time_cond_proj_dim')
SD_BLOCK_TYPES = {
    'CrossAttnDownBlock2D': 'CrossAttnDownBlock3D',
    'DownBlock2D': 'DownBlock3D',
    'CrossAttnUpBlock2D': 'CrossAttnUpBlock3D',
    'UpBlock2D': 'UpBlock3D',
}
POSITION_NET_REASON = ("GLIGEN's box projection: its Fourier box features (100^(k/K), "
                       "frequency-major) are not the TrackletEncoder's (2^k pi, coordinate-major)")
# Module names the summary groups keys by, most specific first.
SUMMARY_GROUPS = ('fuser', 'instance_enhancer', 'position_net', 'transformer_in', 'temp_convs',
                  'temp_attentions', 'temporal_transformer_blocks', 'time_mixer', 'time_pos_embed',
                  'temporal_res_block', 'spatial_res_block', 'attentions', 'resnets',
                  'downsamplers', 'upsamplers')


@dataclasses.dataclass
class LoadReport:
    """What loading pretrained weights into a model did.

    Attributes:
        source: the folder(s) read.
        weights_format: the layout they were read as (``'modelscope'``, ``'sd'`` or ``'svd'``).
        loaded: model key -> the checkpoint key it was loaded from (``'<file>: key'`` when it
            came from ``grounding_weights``).
        new: model keys newly initialised (no checkpoint holds them).
        ignored: checkpoint key -> why it was not loaded.
        notes: anything else worth knowing (layers zero-initialised, tensors not read...).
    """
    source: str
    weights_format: str
    loaded: dict[str, str] = dataclasses.field(default_factory=dict)
    new: list[str] = dataclasses.field(default_factory=list)
    ignored: dict[str, str] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        """A few readable lines: counts per kind of module, the reasons for ignoring."""
        lines = [f'Pretrained weights from {self.source} (as {self.weights_format!r}):']
        for title, keys in (('loaded', self.loaded), ('newly initialised', self.new),
                            ('ignored', self.ignored)):
            groups = _group_counts(keys)
            text = ', '.join(f'{name} ({count})' for name, count in groups.items()) or '-'
            lines.append(f'  {title}: {len(keys)} tensors: {text}')
        for reason in sorted(set(self.ignored.values())):
            count = sum(1 for r in self.ignored.values() if r == reason)
            lines.append(f'  ignored {count}: {reason}')
        lines += [f'  note: {note}' for note in self.notes]
        return '\n'.join(lines)


def _group_counts(keys) -> dict[str, int]:
    """'down_blocks.0.resnets.1.conv1.weight' -> 'down_blocks.*.resnets', counted."""
    counts: dict[str, int] = {}
    for key in keys:
        parts = key.split('.')
        cut = next((parts.index(g) for g in SUMMARY_GROUPS if g in parts), 0)
        name = '.'.join('*' if p.isdigit() else p for p in parts[:cut + 1])
        counts[name] = counts.get(name, 0) + 1
    return counts


def read_folder_config(pretrained: str,
                       subfolder: str | None,
                       what: str = 'generator',
                       name: str = 'config.json') -> tuple[str, dict[str, Any]]:
    """The folder of a diffusers part and its config file ``name``, or an error naming the
    one missing."""
    folder = check_pretrained_folder(pretrained, subfolder, what, required=(name, ))
    with open(osp.join(folder, name), encoding='utf-8') as f:
        return folder, json.load(f)


def read_unet_config(folder: str) -> dict[str, Any]:
    """``folder/config.json``, or an error naming it."""
    return read_folder_config(folder, None)[1]


def weight_files(folder: str, variant: str | None = None) -> list[str]:
    """The weight file(s) of a diffusers model folder, or an error naming those looked for.

    ``variant`` (e.g. ``'fp16'``) reads only ``diffusion_pytorch_model.<variant>.*``."""
    singles, indexes = WEIGHT_FILES, WEIGHT_INDEXES
    if variant:
        singles = tuple(f'diffusion_pytorch_model.{variant}.{ext}'
                        for ext in ('safetensors', 'bin'))
        indexes = tuple(f'{name}.index.json' for name in singles)
    for name in singles:
        if osp.isfile(osp.join(folder, name)):
            return [osp.join(folder, name)]
    for name in indexes:
        path = osp.join(folder, name)
        if osp.isfile(path):
            with open(path, encoding='utf-8') as f:
                shards = sorted(set(json.load(f)['weight_map'].values()))
            missing = [s for s in shards if not osp.isfile(osp.join(folder, s))]
            if missing:
                raise FileNotFoundError(f"generator: '{path}' lists shard(s) missing from "
                                        f"'{folder}': {missing}.")
            return [osp.join(folder, s) for s in shards]
    raise FileNotFoundError(
        f"generator: no weights in '{folder}': expected '{singles[0]}' (or one of "
        f'{list(singles[1:] + indexes)}); see {PRETRAINED_HINT}.')


def read_weights(folder: str, variant: str | None = None) -> dict[str, torch.Tensor]:
    """Every tensor of a diffusers model folder, on the CPU."""
    state = {}
    for path in weight_files(folder, variant):
        state.update(load_state_dict(path))
    return state


def detect_weights_format(config: dict[str, Any], folder: str) -> str:
    name = config.get('_class_name')
    if name in UNET3D_CLASSES:
        return 'modelscope'
    if name in UNET2D_CLASSES:
        return 'sd'
    raise ValueError(f"generator: '{folder}' holds a {name!r}, not one of "
                     f'{list(UNET3D_CLASSES + UNET2D_CLASSES)}.')


def unet3d_config_from_sd(config: dict[str, Any]) -> dict[str, Any]:
    """The UNet3D arguments of the video model inflated from an SD 1.x UNet2D ``config``.

    Raises:
        ValueError: the UNet2D has an option the UNet3D cannot express (SD 2.x's linear
            projections and per-level heads are fine; SDXL's added embeddings are not).
    """
    for key, value in SD_FIXED_OPTIONS.items():
        got = config.get(key, value)
        if isinstance(got, list):
            got = tuple(got)
        if got != value and not (key == 'transformer_layers_per_block' and set(got) == {1}):
            raise ValueError(f'generator: the UNet2D has {key}={got!r}; a UNet3D can only be '
                             f'inflated from one with {key}={value!r} (Stable Diffusion 1.x).')
    unet3d = {key: config[key] for key in SD_SHARED_OPTIONS if key in config}
    for key in ('down_block_types', 'up_block_types'):
        unknown = [t for t in config[key] if t not in SD_BLOCK_TYPES]
        if unknown:
            raise ValueError(f'generator: the UNet2D has {key} {unknown}, which have no UNet3D '
                             f'counterpart; supported: {list(SD_BLOCK_TYPES)}.')
        unet3d[key] = tuple(SD_BLOCK_TYPES[t] for t in config[key])
    for key in ('block_out_channels', 'attention_head_dim'):
        if isinstance(unet3d.get(key), list):
            unet3d[key] = tuple(unet3d[key])
    return unet3d


def sd_key_to_unet3d(key: str, value: torch.Tensor, expected: dict[str,
                                                                   torch.Tensor]) -> torch.Tensor:
    """An SD UNet2D tensor in the UNet3D's form: only spatial transformers' 1x1-conv
    projections (C, C, 1, 1) change, to linear (C, C)."""
    if (re.search(r'\.attentions\.\d+\.proj_(in|out)\.weight$', key) and value.dim() == 4
            and key in expected and expected[key].dim() == 2):
        return value[:, :, 0, 0]
    return value


@torch.no_grad()
def zero_temporal_outputs(model: torch.nn.Module) -> list[str]:
    """The ModelScope initialisation of temporal layers: the last layer of every temporal conv
    and the output projection of every temporal transformer (``transformer_in`` included) set to
    0, so each is the identity (its output is its residual input). Returns the zeroed keys."""
    zeroed = []
    for name, module in model.named_modules():
        if isinstance(module, TemporalConvLayer):
            layer, layer_name = module.conv4[-1], f'{name}.conv4.{len(module.conv4) - 1}'
        elif isinstance(module, TransformerTemporalModel):
            layer, layer_name = module.proj_out, f'{name}.proj_out'
        else:
            continue
        for param_name, param in layer.named_parameters():
            param.zero_()
            zeroed.append(f'{layer_name}.{param_name}')
    return zeroed


def load_tracklet_unet3d(pretrained: str,
                         subfolder: str | None = 'unet',
                         weights_format: str = 'auto',
                         grounding_weights: str | None = None,
                         grounding_subfolder: str | None = 'unet',
                         **new_layers: Any) -> tuple[TrackletUNet3D, LoadReport]:
    """A :class:`TrackletUNet3D` from a local diffusers folder, and the :class:`LoadReport`.

    Args:
        pretrained: the model folder (``data/pretrained/...``); nothing is downloaded.
        subfolder: where the UNet is in it.
        weights_format: ``'modelscope'`` (a UNet3D), ``'sd'`` (an SD 1.x UNet2D to inflate) or
            ``'auto'`` (from ``config.json``'s ``_class_name``).
        grounding_weights: optional GLIGEN folder whose ``fuser.*`` weights load into the
            grounding modules (over any the base folder had).
        grounding_subfolder: where the UNet is in ``grounding_weights``.
        **new_layers: :class:`TrackletUNet3D` arguments beyond the folder's config
            (``grounding_context_dim``, ``enhancer_track_dim``...).

    Raises:
        FileNotFoundError: a folder, ``config.json`` or the weights are missing.
        ValueError: an unknown layout, a shape mismatch (naming the key and both shapes), or a
            checkpoint lacking weights the model needs that may not start fresh.
    """
    if weights_format not in WEIGHTS_FORMATS:
        raise ValueError(f'generator: weights_format must be one of {list(WEIGHTS_FORMATS)}, '
                         f'got {weights_format!r}.')
    folder, config = read_folder_config(pretrained, subfolder)
    detected = detect_weights_format(config, folder)
    if weights_format == 'auto':
        weights_format = detected
    elif weights_format != detected:
        raise ValueError(f"generator: weights_format={weights_format!r} but '{folder}' holds a "
                         f"{config.get('_class_name')!r}; use weights_format={detected!r}.")

    if weights_format == 'sd':
        arguments = unet3d_config_from_sd(config)
        heads = arguments.pop('attention_head_dim', 8)  # SD's name for its head counts
        model = TrackletUNet3D(**{**arguments, **new_layers}, spatial_attention_heads=heads)
    else:  # an exported inflated SD UNet keeps its `spatial_attention_heads` in the config
        model = TrackletUNet3D.from_config(_own_arguments(config), **new_layers)
    expected = model.state_dict()

    sources = [folder]
    report = LoadReport(source=folder, weights_format=weights_format)
    convert = (
        functools.partial(sd_key_to_unet3d, expected=expected) if weights_format == 'sd' else None)
    tensors = sort_checkpoint(read_weights(folder), model, report, convert=convert)

    if grounding_weights is not None:
        grounding_folder = check_pretrained_folder(grounding_weights, grounding_subfolder,
                                                   'grounding_weights')
        sources.append(grounding_folder)
        state = read_weights(grounding_folder)
        fusers = {k: v for k, v in state.items() if '.fuser.' in k or k.startswith('position_net.')}
        label = osp.basename(osp.normpath(grounding_weights))
        tensors.update(sort_checkpoint(fusers, model, report, label=label))
        report.notes.append(f'{len(state) - len(fusers)} tensors of {grounding_folder} not read: '
                            'only its fuser.* weights are taken (position_net is reported above)')
    report.source = ' + '.join(sources)

    allowed = ('grounding', 'enhancer') + (('temporal', ) if weights_format == 'sd' else ())
    load_checked(model, tensors, report, may_start_fresh=allowed)
    if weights_format == 'sd':
        zeroed = zero_temporal_outputs(model)
        report.notes.append(f'{len(zeroed)} output tensors of the temporal layers zeroed: the '
                            'model starts as the image UNet applied frame by frame')
    MMLogger.get_current_instance().info(report.summary())
    return model, report


def load_tracklet_unet_spatiotemporal(
        pretrained: str,
        subfolder: str | None = 'unet',
        variant: str | None = None,
        **new_layers: Any) -> tuple[TrackletUNetSpatioTemporal, LoadReport]:
    """A :class:`TrackletUNetSpatioTemporal` from a local Stable Video Diffusion folder (or one
    exported by ``tools/export_model.py``), and the :class:`LoadReport` (format ``'svd'``).

    Args:
        pretrained: the model folder (``data/pretrained/stable-video-diffusion-img2vid``).
        subfolder: where the UNet is in it.
        variant: e.g. ``'fp16'``, to read ``diffusion_pytorch_model.fp16.safetensors``.
        **new_layers: :class:`TrackletUNetSpatioTemporal` arguments beyond the folder's config.

    Raises:
        FileNotFoundError: the folder, ``config.json`` or the weights are missing.
        ValueError: the folder holds another class, a shape mismatch (naming the key and both
            shapes), or the checkpoint lacks stock weights (only grounding and enhancers may
            start fresh).
    """
    folder, config = read_folder_config(pretrained, subfolder)
    if config.get('_class_name') not in SVD_CLASSES:
        raise ValueError(f"generator: '{folder}' holds a {config.get('_class_name')!r}, not one "
                         f'of {list(SVD_CLASSES)}.')
    model = TrackletUNetSpatioTemporal.from_config(_own_arguments(config), **new_layers)
    report = LoadReport(source=folder, weights_format='svd')
    tensors = sort_checkpoint(read_weights(folder, variant), model, report)
    load_checked(model, tensors, report, may_start_fresh=('grounding', 'enhancer'))
    MMLogger.get_current_instance().info(report.summary())
    return model, report


# ----------------------------------------------------------------- config entries
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
    model, report = load_tracklet_unet3d(
        pretrained,
        subfolder,
        weights_format=weights_format,
        grounding_weights=grounding_weights,
        **new_layers)
    model.load_report = report
    return model


@MODELS.register_module(name='PretrainedTrackletUNetSpatioTemporal')
def build_pretrained_tracklet_unet_spatiotemporal(pretrained: str,
                                                  subfolder: str | None = 'unet',
                                                  variant: str | None = None,
                                                  **new_layers: Any) -> TrackletUNetSpatioTemporal:
    """Config entry for an SVD UNet from a local diffusers folder, extended with ``new_layers``:
    ``dict(type='PretrainedTrackletUNetSpatioTemporal',
    pretrained='data/pretrained/stable-video-diffusion-img2vid', grounding_context_dim=1024,
    ...)``. ``variant='fp16'`` reads ``diffusion_pytorch_model.fp16.safetensors``.

    See :func:`~.pretrained.load_tracklet_unet_spatiotemporal`; its :class:`~.pretrained.LoadReport`
    is logged and kept as the model's ``load_report``. Nothing is downloaded: a missing folder or
    file is an error naming it."""
    model, report = load_tracklet_unet_spatiotemporal(pretrained, subfolder, variant, **new_layers)
    model.load_report = report
    return model


# ----------------------------------------------------------------- shared by the loaders
def _own_arguments(config: dict[str, Any]) -> dict[str, Any]:
    """A diffusers ``config.json`` without its ``_class_name``, ``_diffusers_version``..."""
    return {k: v for k, v in config.items() if not k.startswith('_')}


def sort_checkpoint(state: dict[str, torch.Tensor],
                    model: torch.nn.Module,
                    report: LoadReport,
                    label: str = '',
                    convert: Callable | None = None) -> dict[str, torch.Tensor]:
    """The tensors of ``state`` the model has (through ``convert(key, value)``), recorded in
    ``report.loaded``; the others recorded in ``report.ignored`` with the reason. ``label``
    prefixes the checkpoint keys (``'<label>: key'``) of a second folder."""
    expected = model.state_dict()
    tensors = {}
    for key, value in state.items():
        source = f'{label}: {key}' if label else key
        if key.startswith('position_net.'):
            report.ignored[source] = POSITION_NET_REASON
        elif key not in expected:
            report.ignored[source] = _why_not_in_model(key, model)
        else:
            tensors[key] = convert(key, value) if convert is not None else value
            report.loaded[key] = source
    return tensors


def load_checked(model: torch.nn.Module, tensors: dict[str, torch.Tensor], report: LoadReport,
                 may_start_fresh: Sequence[str]) -> None:
    """Load ``tensors`` into ``model`` after checking every shape and that the model weights no
    tensor covers (recorded in ``report.new``) all lie in the ``module_groups()`` named by
    ``may_start_fresh``."""
    expected = model.state_dict()
    _check_shapes(tensors, expected, report)
    report.new = sorted(set(expected) - set(tensors))
    _check_may_start_fresh(model, report, may_start_fresh)
    result = model.load_state_dict(tensors, strict=False)
    assert not result.unexpected_keys and set(result.missing_keys) == set(report.new)


def _why_not_in_model(key: str, model: torch.nn.Module) -> str:
    if '.fuser.' in key:
        return ('grounding weights for a block without grounding (see grounding_context_dim '
                'and grounding_blocks)')
    return f'no such weight in {type(model).__name__}'


def _check_shapes(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor],
                  report: LoadReport) -> None:
    wrong = [(key, tuple(value.shape), tuple(expected[key].shape))
             for key, value in tensors.items() if value.shape != expected[key].shape]
    if wrong:
        listed = '; '.join(f"'{report.loaded[key]}' has shape {got}, the model's '{key}' {want}"
                           for key, got, want in wrong[:10])
        more = f' (and {len(wrong) - 10} more)' if len(wrong) > 10 else ''
        raise ValueError(f'generator: {len(wrong)} pretrained weights of {report.source} do not '
                         f'fit the model: {listed}{more}. Does the config (e.g. '
                         'cross_attention_dim, grounding_context_dim) match the weights?')


def _check_may_start_fresh(model: torch.nn.Module, report: LoadReport,
                           allowed_groups: Sequence[str]) -> None:
    groups = model.module_groups()
    names = {id(m): n for n, m in model.named_modules()}
    fresh = {
        f'{names[id(module)]}.{key}'
        for group in allowed_groups
        for module in groups[group]
        for key in module.state_dict()
    }
    wrong = [key for key in report.new if key not in fresh]
    if wrong:
        raise ValueError(
            f'generator: {report.source} lacks {len(wrong)} weights of the '
            f'{report.weights_format!r} layout that the model needs ({wrong[:5]}...); only '
            f'{" and ".join(allowed_groups)} layers may start without pretrained weights.')


# ----------------------------------------------------------------- export
EXPORTED_CONFIG = 'config.py'
EXPORTED_ENCODER = 'tracklet_encoder'
EXPORTED_REST = 'trackdiffusion.safetensors'
EXPORTED_CATEGORY_TEXT = 'category_text_encoder'
# Generator class (config.json's _class_name) -> the registered builder that loads it back.
GENERATOR_LOADERS = {
    'TrackletUNet3D': 'PretrainedTrackletUNet3D',
    'TrackletUNetSpatioTemporal': 'PretrainedTrackletUNetSpatioTemporal',
}
# Data-preprocessor attribute -> its subfolder, for the frozen parts exported beside the model.
PREPROCESSOR_PARTS = dict(
    vae='vae',
    text_encoder='text_encoder',
    tokenizer='tokenizer',
    image_encoder='image_encoder',
    image_processor='feature_extractor')


def export_trackdiffusion(model: torch.nn.Module, cfg, out_dir: str) -> None:
    """Write a trained :class:`TrackDiffusion` (or :class:`TrackDiffusionI2V`) as a
    diffusers-style folder:

    - ``generator/``: ``save_pretrained`` of the generator (config.json + safetensors);
    - ``tracklet_encoder/``: ``model.safetensors`` and ``config.json`` (its config dict);
    - ``trackdiffusion.safetensors``: any other weight of the model itself (e.g. ``null_text``);
    - ``scheduler/``, and whichever of ``vae/``, ``text_encoder/``, ``tokenizer/``,
      ``image_encoder/``, ``feature_extractor/`` the data preprocessor holds, so the folder is
      complete;
    - ``category_text_encoder/``: the CLIP text model of a ``CLIPCategoryEmbedding`` whose folder
      is not the preprocessor's text encoder (the image-to-video model has none);
    - ``config.py``: the training config, as it was.

    :func:`load_exported` builds the model back from it.

    Raises:
        ValueError: the generator is of a class :func:`load_exported` cannot load.
    """
    from safetensors.torch import save_file
    generator_class = type(model.generator).__name__
    if generator_class not in GENERATOR_LOADERS:
        raise ValueError(f'export: the generator is a {generator_class}; only '
                         f'{list(GENERATOR_LOADERS)} can be exported and loaded back.')
    os.makedirs(out_dir, exist_ok=True)
    model.generator.save_pretrained(osp.join(out_dir, 'generator'))
    encoder_dir = osp.join(out_dir, EXPORTED_ENCODER)
    os.makedirs(encoder_dir, exist_ok=True)
    save_file(
        _contiguous(model.tracklet_encoder.state_dict()), osp.join(encoder_dir,
                                                                   'model.safetensors'))
    with open(osp.join(encoder_dir, 'config.json'), 'w', encoding='utf-8') as f:
        json.dump(cfg.model.tracklet_encoder.to_dict(), f, indent=2)
    parts = ('generator.', 'tracklet_encoder.', 'data_preprocessor.')
    rest = {k: v for k, v in model.state_dict().items() if not k.startswith(parts)}
    save_file(_contiguous(rest), osp.join(out_dir, EXPORTED_REST))
    model.noise_scheduler.save_pretrained(osp.join(out_dir, 'scheduler'))
    pre = model.data_preprocessor
    for name, subfolder in PREPROCESSOR_PARTS.items():
        if getattr(pre, name, None) is not None:
            getattr(pre, name).save_pretrained(osp.join(out_dir, subfolder))
    _export_category_text_encoder(cfg.model, out_dir)
    cfg.dump(osp.join(out_dir, EXPORTED_CONFIG))


def _export_category_text_encoder(model_cfg, out_dir: str) -> None:
    """Copy the CLIP text model a ``CLIPCategoryEmbedding`` is built from, unless it is the
    preprocessor's text encoder (exported already)."""
    import shutil
    from pathlib import Path

    from ..conditioning.category_embedding import CLIPCategoryEmbedding
    category = model_cfg.tracklet_encoder.get('category_embedding') or {}
    if not isinstance(category, dict) or 'pretrained' not in category:
        return
    text_cfg = (model_cfg.get('data_preprocessor') or {}).get('text_encoder') or {}
    if text_cfg.get('pretrained') == category['pretrained']:
        return
    text_dir, tokenizer_dir = CLIPCategoryEmbedding._resolve_folders(
        Path(category['pretrained']), category.get('text_encoder_subfolder'),
        category.get('tokenizer_subfolder'))
    target = osp.join(out_dir, EXPORTED_CATEGORY_TEXT)
    shutil.copytree(text_dir, osp.join(target, 'text_encoder'), dirs_exist_ok=True)
    shutil.copytree(tokenizer_dir, osp.join(target, 'tokenizer'), dirs_exist_ok=True)


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in state.items()}


def load_exported(folder: str) -> torch.nn.Module:
    """The model written by :func:`export_trackdiffusion` into ``folder``.

    The saved config is used with every pretrained path pointed into ``folder``; the generator
    loads through the loader of its class (:func:`load_tracklet_unet3d` or
    :func:`load_tracklet_unet_spatiotemporal`; its report: every weight loaded), the other
    weights strictly.
    """
    from mmengine.config import Config
    from safetensors.torch import load_file

    path = osp.join(folder, EXPORTED_CONFIG)
    if not osp.isfile(path):
        raise FileNotFoundError(f"'{path}' not found: '{folder}' is not an exported model "
                                '(see tools/export_model.py).')
    model_cfg = Config.fromfile(path).model
    _, generator_config = read_folder_config(folder, 'generator')
    generator_class = generator_config.get('_class_name')
    if generator_class not in GENERATOR_LOADERS:
        raise ValueError(f"'{folder}/generator' holds a {generator_class!r}; exported generators "
                         f'are {list(GENERATOR_LOADERS)}.')
    model_cfg.generator = dict(
        type=GENERATOR_LOADERS[generator_class], pretrained=folder, subfolder='generator')
    pre = model_cfg.get('data_preprocessor') or {}
    for name in ('vae', 'text_encoder', 'image_encoder'):
        if pre.get(name) is not None:
            pre[name] = dict(pretrained=folder)
    category = model_cfg.tracklet_encoder.get('category_embedding', {})
    if isinstance(category, dict) and 'pretrained' in category:
        category_dir = osp.join(folder, EXPORTED_CATEGORY_TEXT)
        category['pretrained'] = category_dir if osp.isdir(category_dir) else folder
        category['text_encoder_subfolder'] = 'text_encoder'
        category['tokenizer_subfolder'] = 'tokenizer'
    _, scheduler_config = read_folder_config(folder, 'scheduler', 'scheduler',
                                             'scheduler_config.json')
    model_cfg.noise_scheduler = dict(
        type=scheduler_config['_class_name'], from_pretrained=folder, subfolder='scheduler')
    model = MODELS.build(model_cfg)
    model.tracklet_encoder.load_state_dict(
        load_file(osp.join(folder, EXPORTED_ENCODER, 'model.safetensors')))
    rest = load_file(osp.join(folder, EXPORTED_REST))
    if rest:
        result = model.load_state_dict(rest, strict=False)
        if result.unexpected_keys:
            raise ValueError(f'{folder}: {EXPORTED_REST} holds weights the model lacks: '
                             f'{result.unexpected_keys}')
    return model
