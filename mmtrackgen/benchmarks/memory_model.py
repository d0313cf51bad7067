"""Training memory per GPU of a config's model, estimated from the model itself on the meta device.

    python tools/analysis/memory_model.py configs/trackdiff/ytvis.py [--batch-size 1] [--json OUT]

The model is built with ``torch.device('meta')`` (shapes, no storage), so full-size configs are
measured on any machine. Pretrained folders that are not on disk are replaced by stand-ins of
the published architectures (:data:`KNOWN_UNETS`, :data:`KNOWN_TEXT_ENCODERS`,
:data:`SD_VAE`); the figures are those of the real models as long as their configs match.

- weights: every parameter in fp32, as AmpOptimWrapper keeps them (trained model, and the frozen
  VAE and text encoder the data preprocessor holds);
- gradients: fp32, trainable parameters only; AdamW: two fp32 states per trainable parameter;
- EMA: a full fp32 copy of the model when the config has an ``EMAHook``;
- activations: the tensors autograd saves for backward in one training step (forward + backward
  of ``TrackDiffusion.loss`` on a bf16 copy of the model, standing in for bf16 autocast),
  counted once per storage, parameters excluded. Attention is counted as a fused kernel saves it
  (q, k, v, output, log-sum-exp; the bias when there is one), which is what PyTorch's SDPA does on
  GPUs; on the meta device it would otherwise fall back to the math path that stores every
  attention matrix. With gradient checkpointing the peak is what the step keeps between
  checkpointed modules plus the largest one module recomputes in backward.

Not counted: the CUDA context and kernels' workspaces (about 1-2 GB), allocator fragmentation,
the frozen encoders' transient activations (run without gradients), and autocast's fp32
islands (norms, softmax) and bf16 weight copies, so a measured peak is somewhat higher.
"""
import argparse
import copy
import json
import os.path as osp
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from mmtrackgen.models.generators.tracklet_unet3d import CHECKPOINTED_MODULES
from mmtrackgen.registry import MODELS
from mmtrackgen.utils import exit_with_error, load_config

GB = 1e9
# The published UNets, from their unet/config.json:
# https://huggingface.co/ali-vilab/text-to-video-ms-1.7b/blob/main/unet/config.json (ModelScope
# T2V; ZeroScope v2 has the same) and
# https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/blob/main/unet/config.json
# (SD 1.5, inflated: its UNet2D options as the UNet3D reads them, see generators/pretrained.py).
KNOWN_UNETS = dict(
    modelscope=dict(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=('CrossAttnDownBlock3D', ) * 3 + ('DownBlock3D', ),
        up_block_types=('UpBlock3D', ) + ('CrossAttnUpBlock3D', ) * 3,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        norm_num_groups=32,
        cross_attention_dim=1024,
        attention_head_dim=64),
    sd=dict(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        down_block_types=('CrossAttnDownBlock3D', ) * 3 + ('DownBlock3D', ),
        up_block_types=('UpBlock3D', ) + ('CrossAttnUpBlock3D', ) * 3,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        norm_num_groups=32,
        cross_attention_dim=768,
        attention_head_dim=64),  # temporal heads of 64 channels (ModelScope's)
)
# CLIP text encoders by width: OpenCLIP ViT-H/14 as ModelScope and SD 2.x ship it (23 layers,
# the last one dropped), and CLIP ViT-L/14 (SD 1.x); 77 tokens.
KNOWN_TEXT_ENCODERS = {
    1024:
    dict(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=23,
        num_attention_heads=16,
        projection_dim=1024,
        hidden_act='gelu'),
    768:
    dict(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        projection_dim=768),
}
TEXT_LENGTH = 77
# The Stable Diffusion VAE (ModelScope and SD 1.x/2.x share it): 8x downsampling, 4 channels.
SD_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=('DownEncoderBlock2D', ) * 4,
    up_block_types=('UpDecoderBlock2D', ) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4)
VAE_DOWNSAMPLE = 8


def folder_exists(path, subfolder):
    return path is not None and osp.isdir(osp.join(path, subfolder) if subfolder else path)


def stand_in_generator(generator, notes):
    """A ``PretrainedTrackletUNet3D`` config as a plain ``TrackletUNet3D`` of the same
    architecture: read from its folder when it is on disk, else the published one."""
    if generator['type'] != 'PretrainedTrackletUNet3D':
        return copy.deepcopy(generator)
    new_layers = {
        k: v
        for k, v in generator.items()
        if k not in ('type', 'pretrained', 'subfolder', 'weights_format', 'grounding_weights')
    }
    folder, subfolder = generator['pretrained'], generator.get('subfolder', 'unet')
    if folder_exists(folder, subfolder):
        from mmtrackgen.models.generators.pretrained import read_unet_config
        config = read_unet_config(osp.join(folder, subfolder) if subfolder else folder)
        if config.get('_class_name') == 'UNet2DConditionModel':
            from mmtrackgen.models.generators.pretrained import unet3d_config_from_sd
            config = unet3d_config_from_sd(config)
            config['attention_head_dim'] = 64
        arch = {k: v for k, v in config.items() if not k.startswith('_')}
        arch.pop('spatial_attention_heads', None)
        notes.append(f'generator: architecture from {folder}')
    else:
        kind = 'sd' if generator.get('weights_format') == 'sd' else 'modelscope'
        arch = KNOWN_UNETS[kind]
        notes.append(f"generator: '{folder}' not found; the published {kind} UNet stands in")
    return dict(type='TrackletUNet3D', **{**arch, **new_layers})


def stand_in_category_embedding(encoder, width, notes):
    """A tracklet encoder config whose CLIP category embedding is a table of the same width."""
    encoder = copy.deepcopy(encoder)
    category = encoder.get('category_embedding', {})
    if isinstance(category, dict) and category.get('type') == 'CLIPCategoryEmbedding':
        names = category.get('class_names')
        num_classes = len(names) if isinstance(names, (list, tuple)) else 1
        encoder['category_embedding'] = dict(
            type='CategoryTable', num_classes=num_classes, embed_dim=width)
        notes.append(f'category embedding: a {num_classes} x {width} table stands in for CLIP')
    return encoder


def stand_in_model_cfg(model_cfg, notes):
    """The model config with every missing pretrained folder replaced by a stand-in, and the
    frozen encoders taken out of the data preprocessor (measured on their own)."""
    cfg = copy.deepcopy(model_cfg)
    cfg['generator'] = stand_in_generator(cfg['generator'], notes)

    pre = dict(cfg.get('data_preprocessor') or dict(type='TrackDiffusionDataPreprocessor'))
    encoders = dict(vae=pre.pop('vae', None), text_encoder=pre.pop('text_encoder', None))
    pre.pop('vae_slicing', None)
    pre.pop('vae_tiling', None)
    # Built here, off the meta device (it checks its statistics' values), and handed to the
    # model config by a registered name.
    preprocessor = MODELS.build(pre)
    MODELS.register_module(name='_MemoryModelPreprocessor', module=lambda: preprocessor, force=True)
    cfg['data_preprocessor'] = dict(type='_MemoryModelPreprocessor')

    width = cfg['generator'].get('cross_attention_dim', 1024)
    cfg['tracklet_encoder'] = stand_in_category_embedding(cfg['tracklet_encoder'], width, notes)
    scheduler = cfg.get('noise_scheduler', {})
    if 'from_pretrained' in scheduler:
        cfg['noise_scheduler'] = dict(type=scheduler['type'], num_train_timesteps=1000)
    return cfg, encoders


def build_frozen_encoders(encoders, cross_attention_dim, device='meta'):
    """The VAE and text encoder the data preprocessor would load (random weights off meta)."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel
    built = {}
    with torch.device(device):
        if encoders['vae'] is not None:
            built['vae'] = AutoencoderKL(**SD_VAE)
        if encoders['text_encoder'] is not None:
            config = KNOWN_TEXT_ENCODERS[cross_attention_dim]
            built['text_encoder'] = CLIPTextModel(
                CLIPTextConfig(vocab_size=49408, max_position_embeddings=TEXT_LENGTH, **config))
    return built


def clip_geometry(cfg):
    """(frames, (H, W), slots) of the training clips."""
    dataset = cfg.train_dataloader.dataset
    frames = dataset.get('clip_length', cfg.get('num_frames', 16))
    size, slots = (320, 480), cfg.get('num_slots', 20)
    for step in dataset.get('pipeline', []):
        if step['type'] == 'ClipResize':
            width, height = step['scale']
            size = (height, width)
        elif step['type'] == 'AssignInstanceSlots':
            slots = step['num_slots']
    return frames, size, slots


def count_parameters(module):
    params = {id(p): p for p in module.parameters()}.values()
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


class _FusedAttention(torch.autograd.Function):
    """What a fused SDPA kernel keeps for backward: q, k, v, the output, the log-sum-exp rows
    (and the bias). Forward and backward only make tensors of the right shapes (meta)."""

    @staticmethod
    def forward(ctx, query, key, value, bias):
        out = query.new_empty(*query.shape[:-1], value.shape[-1])  # (B, H, L, Dv)
        lse = query.new_empty(query.shape[:-1], dtype=torch.float32)  # (B, H, L)
        saved = (query, key, value, out, lse) + ((bias, ) if bias is not None else ())
        ctx.save_for_backward(*saved)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad):
        query, key, value = ctx.saved_tensors[:3]
        return torch.empty_like(query), torch.empty_like(key), torch.empty_like(value), None


def _fused_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, **kwargs):
    return _FusedAttention.apply(query, key, value, attn_mask)


class _RoIAlign(torch.autograd.Function):
    """The enhancer's RoIAlign (neither mmcv's nor torchvision's has a meta kernel) as it is for
    autograd: (K, C, 1, 1) features out, the RoIs kept for backward."""

    @staticmethod
    def forward(ctx, features, rois):
        ctx.save_for_backward(rois)
        ctx.shape = features.shape
        return features.new_empty(rois.shape[0], features.shape[1], 1, 1)

    @staticmethod
    def backward(ctx, grad):
        return grad.new_empty(ctx.shape), None


@contextmanager
def meta_kernels(model):
    """Fused attention, RoI align (in ``model``'s enhancers) and boolean indexing (all instances
    visible) on meta."""
    from torch.fx.experimental import _config as fx_config

    from mmtrackgen.models.conditioning import InstanceEnhancer
    enhancers = [m for m in model.modules() if isinstance(m, InstanceEnhancer)]
    saved = (F.scaled_dot_product_attention, fx_config.meta_nonzero_assume_all_nonzero,
             [m.roi_align for m in enhancers])
    F.scaled_dot_product_attention = _fused_sdpa
    for module in enhancers:
        module.roi_align = lambda features, rois, **kwargs: _RoIAlign.apply(features, rois)
    fx_config.meta_nonzero_assume_all_nonzero = True
    try:
        yield
    finally:
        F.scaled_dot_product_attention, fx_config.meta_nonzero_assume_all_nonzero = saved[:2]
        for module, op in zip(enhancers, saved[2]):
            module.roi_align = op


def saved_activations(model, inputs):
    """Bytes autograd saves in one step: in all, and the most inside one checkpointable module
    (what checkpointing recomputes at a time), counted once per storage, parameters excluded."""
    parameters = {p.untyped_storage()._cdata for p in model.parameters()}
    seen, stack, per_module = {}, [], {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key not in parameters and key not in seen:
            seen[key] = (storage.nbytes(), storage)  # keeps the storage (and its key) alive
            if stack:
                per_module[stack[-1]] = per_module.get(stack[-1], 0) + storage.nbytes()
        return tensor

    def enter(module, args):
        stack.append(id(module))

    def leave(module, args, output):
        stack.pop()

    handles = []
    for module in model.modules():
        if isinstance(module, CHECKPOINTED_MODULES):
            handles.append(module.register_forward_pre_hook(enter))
            handles.append(module.register_forward_hook(leave))
    try:
        with meta_kernels(model), _AllVisible():
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                loss = model.loss(inputs)['loss']
            loss.backward()  # recomputes checkpointed modules: the same kernels
    finally:
        for handle in handles:
            handle.remove()
    return sum(size for size, _ in seen.values()), max(per_module.values(), default=0)


def skip_value_checks(model):
    """Input checks read values, which meta tensors have none of; the inputs made here are
    valid, so the tracklet encoder's checks are skipped and its category lookup is unchecked.
    (The one remaining read, the enhancer's 'any instance visible?', meets :class:`_AllVisible`.)
    """
    encoder = model.tracklet_encoder
    encoder._check_inputs = lambda *args: None
    table = encoder.category_embedding.table
    encoder.category_embedding.forward = lambda labels: table[labels.clamp(min=0)]


class _AllVisible(TorchDispatchMode):
    """Reading a boolean meta tensor's value gives True: every instance of the made-up clips is
    visible, so the enhancers run as they do on real clips."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if (func is torch.ops.aten._local_scalar_dense.default and args[0].is_meta
                and args[0].dtype == torch.bool):
            return True
        return func(*args, **(kwargs or {}))


def estimate(cfg, batch_size=1):
    """The memory estimate of ``cfg``'s training step per GPU, as a dict (bytes and counts)."""
    notes = []
    model_cfg, encoders = stand_in_model_cfg(cfg.model, notes)
    frames, (height, width), slots = clip_geometry(cfg)
    with torch.device('meta'):
        model = MODELS.build(model_cfg)
    generator = model.generator
    frozen = build_frozen_encoders(encoders, generator.config.cross_attention_dim)
    total, trainable = count_parameters(model)
    frozen_total = sum(count_parameters(m)[0] for m in frozen.values())
    has_ema = any(h.get('type') == 'EMAHook' for h in cfg.get('custom_hooks', []) or [])

    down = VAE_DOWNSAMPLE if encoders['vae'] is not None else 1
    channels = generator.config.in_channels
    model.to(torch.bfloat16).train()
    with torch.device('meta'):
        inputs = dict(
            latents=torch.empty(
                batch_size, frames, channels, height // down, width // down, dtype=torch.bfloat16),
            boxes=torch.rand(batch_size, frames, slots, 4),
            visible=torch.ones(batch_size, frames, slots, dtype=torch.bool),
            labels=torch.zeros(batch_size, slots, dtype=torch.long),
            text_embeds=None if encoders['text_encoder'] is None else torch.empty(
                batch_size, TEXT_LENGTH, generator.config.cross_attention_dim,
                dtype=torch.bfloat16))
    skip_value_checks(model)
    checkpointing = generator.is_gradient_checkpointing
    generator.disable_gradient_checkpointing()
    plain, largest_module = saved_activations(model, inputs)
    generator.enable_gradient_checkpointing()
    between, _ = saved_activations(model, inputs)
    if not checkpointing:
        generator.disable_gradient_checkpointing()

    result = dict(
        config=getattr(cfg, 'filename', None),
        batch_size=batch_size,
        clip=dict(frames=frames, height=height, width=width, slots=slots),
        parameters=dict(model=total, trainable=trainable, frozen_encoders=frozen_total),
        bytes=dict(
            weights=4 * (total + frozen_total),
            gradients=4 * trainable,
            adamw=8 * trainable,
            ema=4 * (total + frozen_total) if has_ema else 0,
            activations_plain=plain,
            activations_checkpointed=between + largest_module),
        gradient_checkpointing=checkpointing,
        notes=notes)
    states = sum(result['bytes'][k] for k in ('weights', 'gradients', 'adamw', 'ema'))
    result['bytes']['total_plain'] = states + plain
    result['bytes']['total_checkpointed'] = states + between + largest_module
    return result


def table(results):
    """A markdown table of estimates (GB = 1e9 bytes)."""
    lines = [
        '| config | clip (B x F x H x W) | params (trainable) | weights | grads | AdamW | EMA '
        '| activations (no ckpt / ckpt) | total (no ckpt / ckpt) |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for r in results:
        b, clip, p = r['bytes'], r['clip'], r['parameters']
        name = osp.basename(r['config'] or '?')
        lines.append(
            f"| {name} | {r['batch_size']} x {clip['frames']} x {clip['height']} x "
            f"{clip['width']} | {p['model'] / 1e9:.2f}B ({p['trainable'] / 1e9:.2f}B) + "
            f"{p['frozen_encoders'] / 1e9:.2f}B frozen | {b['weights'] / GB:.1f} | "
            f"{b['gradients'] / GB:.1f} | {b['adamw'] / GB:.1f} | {b['ema'] / GB:.1f} | "
            f"{b['activations_plain'] / GB:.1f} / {b['activations_checkpointed'] / GB:.1f} | "
            f"{b['total_plain'] / GB:.1f} / {b['total_checkpointed'] / GB:.1f} |")
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Estimate training memory per GPU')
    parser.add_argument('configs', nargs='+', help='config file(s)')
    parser.add_argument('--batch-size', type=int, default=1, help='clips per GPU')
    parser.add_argument('--json', help='write the estimates here')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        results = [estimate(load_config(path), args.batch_size) for path in args.configs]
    except (FileNotFoundError, ValueError) as e:
        exit_with_error(e)
    print(table(results))
    for r in results:
        for note in r['notes']:
            print(f"{osp.basename(r['config'] or '?')}: {note}")
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(results, f, indent=2)


if __name__ == '__main__':
    main()
