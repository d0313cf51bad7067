"""The authors' released TrackDiffusion weights, mapped onto our modules.

The paper's authors publish their text-to-video model (``TrackDiffusion_Pretrain``, trained from
GLIGEN 1.4) as a diffusers ``unet/`` folder of their own ``UNet3DConditionModel``: the stock
UNet3D layout plus

- ``position_net``: diffusers' GLIGEN box projection extended with a tracklet branch
  (``tracklet_norm``, ``tracklet_attn``, ``tracklet_linears``) and a 20-row
  ``instance_embedding``: our :class:`TrackletEncoder` with ``box_encoding='gligen'``,
  ``identity_embedding='table'``, ``track_block='attention'`` and no frame code or final norm;
- ``fuser``: GLIGEN's gated self-attention in every spatial transformer block: our
  :class:`GatedGrounding` with ``mask_invisible=False``;
- ``injector`` in every decoder transformer block and one ``null_track_feat`` per decoder block:
  our :class:`InstanceEnhancer` placed in the blocks (``enhancer_placement='transformer_block'``,
  ``fuse_layers=3``, no frame code or frame feed-forward, un-normalised, unmasked keys,
  unaligned RoIs), each given its block's null feature;
- ``time_embedder`` in every temporal transformer: ``temporal_frame_embeddings=16``.

The architecture is ``configs/_base_/models/trackdiffusion_authors_t2v.py``; the keys are mapped
here, every one reported, and any key, shape or architecture field that does not fit is an
error naming it (docs/pretrained.md, "The authors' released weights").
"""
import os
import os.path as osp
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .pretrained import read_folder_config, read_weights

#: Our key prefixes the authors' checkpoint cannot hold: the category embedding is computed from
#: the config (CLIP embeddings of the class names; theirs are computed in their pipeline).
FROM_CONFIG = ('tracklet_encoder.category_embedding.', )

#: UNet config fields that must agree between their ``config.json`` and our generator config.
ARCHITECTURE_FIELDS = ('in_channels', 'out_channels', 'down_block_types', 'up_block_types',
                       'block_out_channels', 'layers_per_block', 'downsample_padding',
                       'mid_block_scale_factor', 'act_fn', 'norm_num_groups', 'norm_eps',
                       'cross_attention_dim', 'attention_head_dim')

# Their position_net -> our tracklet encoder (one tracklet attention layer).
POSITION_NET_RULES = (
    (r'position_net\.null_positive_feature$', 'tracklet_encoder.null_category'),
    (r'position_net\.null_position_feature$', 'tracklet_encoder.null_box'),
    (r'position_net\.linears\.(\d+)\.', r'tracklet_encoder.token_mlp.\1.'),
    (r'position_net\.instance_embedding\.weight$', 'tracklet_encoder.identity_table.weight'),
    (r'position_net\.tracklet_norm\.', 'tracklet_encoder.track_blocks.0.norm.'),
    (r'position_net\.tracklet_attn\.', 'tracklet_encoder.track_blocks.0.attn.'),
    (r'position_net\.tracklet_linears\.(\d+)\.', r'tracklet_encoder.track_mlp.\1.'),
)
# Their injector (GatedCrossAttentionTrackFuse) -> our InstanceEnhancer, inside the same block.
INJECTOR_PARTS = (
    ('attn1.', 'frame_attn.'),  # each instance over its frames
    ('attn2.', 'attn.'),  # visual tokens -> instances
    ('norm1.', 'frame_norm1.'),
    ('norm2.', 'norm_visual.'),
    ('norm3.', 'norm_dense.'),
    ('linears.', 'fuse.'),  # [RoI feature ; tracklet feature] -> C
    ('ff.', 'ff.'),
    ('alpha_attn', 'alpha_attn'),
    ('alpha_dense', 'alpha_dense'),
)
NULL_TRACK_FEAT = re.compile(r'(up_blocks\.\d+)\.null_track_feat\.weight$')
INJECTOR = re.compile(r'(.*\.transformer_blocks\.\d+)\.injector\.(.*)$')
# Keys of their other settings (environment variables at training time), for the messages.
SETTING_HINTS = (
    (r'\.tracklet_attentions\.', 'their RoI box attention (open_box_attn=enable), absent from '
     'the released model and not expressed here'),
    (r'^down_blocks\.\d+\.(null_track_feat|.*\.injector\.)',
     'an encoder-side injector (injector_on=enc*), absent from the released model'),
    (r'^position_net\.tracklet_linears\.|\.injector\.linears\.0\.',
     'with this shape, the track_query=true variant, absent from the released model'),
    (r'\.time_embedder\.|\.time_fourier_embedder\.',
     'another frame code (open_time_embedding), or temporal_frame_embeddings of another size'),
)


class AuthorsCheckpointError(ValueError):
    """The authors' checkpoint does not fit the model of the config; the message names what."""


@dataclass
class ConversionReport:
    """What the conversion did: ``mapped`` our key -> their key, and where our keys came from
    otherwise (``from_config``: computed from the config, e.g. CLIP class embeddings)."""
    source: str
    mapped: dict[str, str] = field(default_factory=dict)
    from_config: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per key, for the converter to print."""
        width = max((len(k) for k in self.mapped.values()), default=0)
        rows = [f'{theirs:<{width}} -> {ours}' for ours, theirs in sorted(self.mapped.items())]
        rows += [f'{"(from the config)":<{width}} -> {ours}' for ours in self.from_config]
        return rows

    def summary(self) -> str:
        their_keys = len(set(self.mapped.values()))
        return (f'{their_keys} tensors of {self.source} mapped onto {len(self.mapped)} weights; '
                f'{len(self.from_config)} taken from the config')


def _hint(key: str) -> str:
    """`` (which setting of theirs makes this key)`` where one is known, else ``''``."""
    hint = next((text for pattern, text in SETTING_HINTS if re.search(pattern, key)), None)
    return f' ({hint})' if hint else ''


def _unmapped(key: str, why: str) -> AuthorsCheckpointError:
    return AuthorsCheckpointError(f"authors' checkpoint: key '{key}' {why}{_hint(key)}.")


def authors_key_targets(key: str, expected: dict[str, torch.Tensor]) -> list[str]:
    """Our keys (of the whole TrackDiffusion model) that their ``key`` maps onto: one, or, for a
    decoder block's ``null_track_feat``, the null feature of every enhancer in that block.

    Raises:
        AuthorsCheckpointError: no rule maps the key, or its target is not in our model.
    """
    if key.startswith('position_net.'):
        for pattern, replacement in POSITION_NET_RULES:
            if re.match(pattern, key):
                target = re.sub(pattern, replacement, key, count=1)
                break
        else:
            raise _unmapped(key, 'matches no rule of the position net')
        targets = [target]
    elif NULL_TRACK_FEAT.match(key):
        block = NULL_TRACK_FEAT.match(key).group(1)
        pattern = re.compile(
            rf'generator\.{re.escape(block)}\.attentions\.\d+\..*instance_enhancer\.null_feature$')
        targets = [k for k in expected if pattern.match(k)]
        if not targets:
            raise _unmapped(
                key, f'has no Instance Enhancer to go to in {block}; set '
                "enhancer_placement='transformer_block' with enhancers there")
        return targets
    elif INJECTOR.match(key):
        prefix, part = INJECTOR.match(key).groups()
        for theirs, ours in INJECTOR_PARTS:
            if part.startswith(theirs):
                targets = [f'generator.{prefix}.instance_enhancer.{ours}{part[len(theirs):]}']
                break
        else:
            raise _unmapped(key, 'is no part of the injector this converter knows')
    else:  # the stock UNet3D, GLIGEN fusers and learned frame tables keep their names
        targets = [f'generator.{key}']
    missing = [t for t in targets if t not in expected]
    if missing:
        raise _unmapped(key, f'maps to {missing[0]!r}, which the model of the config lacks')
    return targets


def _convert_value(key: str, target: str, value: torch.Tensor,
                   expected: torch.Tensor) -> torch.Tensor:
    """``value`` reshaped where the layouts differ (a (1, C) null embedding table -> (C,)) and
    cast to the model's dtype; a shape that does not fit is an error naming both."""
    if NULL_TRACK_FEAT.match(key) and value.dim() == 2 and value.shape[0] == 1:
        value = value[0]  # (C,)
    if value.shape != expected.shape:
        raise AuthorsCheckpointError(
            f"authors' checkpoint: '{key}' has shape {tuple(value.shape)} but our '{target}' "
            f'needs {tuple(expected.shape)}{_hint(key)}; does the config describe their model?')
    return value.to(expected.dtype).contiguous()


def authors_state_to_ours(
        state: dict[str, torch.Tensor],
        expected: dict[str, torch.Tensor],
        source: str = 'the checkpoint') -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Map their UNet state dict onto the keys of our TrackDiffusion model's ``expected`` state.

    Every tensor of theirs must map and fit, and every weight of our generator and tracklet
    encoder must be covered, except :data:`FROM_CONFIG`.

    Raises:
        AuthorsCheckpointError: naming the first unmapped or misfit key, or our keys left over.
    """
    report = ConversionReport(source=source)
    tensors = {}
    for key in sorted(state):
        for target in authors_key_targets(key, expected):
            tensors[target] = _convert_value(key, target, state[key], expected[target])
            report.mapped[target] = key
    ours = [k for k in expected if k.startswith(('generator.', 'tracklet_encoder.'))]
    report.from_config = [k for k in ours if k.startswith(FROM_CONFIG)]
    left = [k for k in ours if k not in tensors and k not in report.from_config]
    if left:
        raise AuthorsCheckpointError(
            f"authors' checkpoint: {len(left)} weights of the model of the config have no "
            f'tensor in {source}, e.g. {left[:3]}; does the config describe their model?')
    return tensors, report


def check_authors_config(config: dict[str, Any], generator_cfg: dict[str, Any],
                         folder: str) -> None:
    """Their ``config.json`` against our generator config: each of
    :data:`ARCHITECTURE_FIELDS` that both give must agree, and their attention type must be
    GLIGEN's ``'gated'``."""
    attention_type = config.get('attention_type', 'gated')
    if attention_type != 'gated':
        raise AuthorsCheckpointError(
            f"authors' checkpoint: '{folder}/config.json' has attention_type="
            f"{attention_type!r}; only the released 'gated' layout is expressed.")

    def plain(value):
        return list(value) if isinstance(value, (list, tuple)) else value

    for name in ARCHITECTURE_FIELDS:
        if name in config and name in generator_cfg:
            if plain(config[name]) != plain(generator_cfg[name]):
                raise AuthorsCheckpointError(
                    f"authors' checkpoint: '{folder}/config.json' has {name}={config[name]!r} "
                    f'but the config builds {name}={generator_cfg[name]!r}.')


def find_unet_folder(src: str) -> str | None:
    """The subfolder of ``src`` holding their UNet: ``'unet'`` when ``src/unet`` exists (the
    published repository), else None (``src`` is the UNet folder itself)."""
    return 'unet' if osp.isdir(osp.join(src, 'unet')) else None


def convert_authors_checkpoint(src: str,
                               out: str,
                               cfg,
                               build_model: Callable[[dict], torch.nn.Module],
                               log: Callable[[str], None] = print) -> ConversionReport:
    """Convert the authors' published folder ``src`` into our checkpoint ``out``.

    Args:
        src: their folder (``TrackDiffusion_Pretrain``, holding ``unet/``) or its ``unet/``.
        out: the ``.pth`` to write: ``state_dict`` holds every generator and tracklet-encoder
            tensor (and the model's buffers), so ``tools/generate.py`` and ``load_from`` need
            nothing else; ``meta`` records the source and the key mapping.
        cfg: our config (``configs/trackdiff/ytvis_authors_t2v.py`` or a variant).
        build_model: builds the model from ``cfg.model`` (``MODELS.build``).
        log: receives one line per mapped key, then a summary.

    Raises:
        FileNotFoundError: ``src``, its ``config.json`` or weights are missing.
        AuthorsCheckpointError: an architecture field, key or shape that does not fit.
    """
    subfolder = find_unet_folder(src)
    folder, config = read_folder_config(src, subfolder, what="the authors' UNet")
    check_authors_config(config, dict(cfg.model.generator), folder)
    model = build_model(cfg.model)
    expected = model.state_dict()
    tensors, report = authors_state_to_ours(read_weights(folder), expected, source=folder)
    model.load_state_dict(tensors, strict=False)  # coverage was checked above
    del tensors  # the model holds the copies now

    frozen_inputs = {
        name
        for name, _ in model.named_parameters() if name.startswith('data_preprocessor.')
    }  # VAE and text encoder: built from their own folders, never stored
    state = {k: v for k, v in model.state_dict().items() if k not in frozen_inputs}
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    torch.save(
        dict(
            meta=dict(
                converted_from=folder, converter='authors_checkpoint', mapping=dict(report.mapped)),
            state_dict=state), out)
    for line in report.lines():
        log(line)
    log(report.summary())
    return report
