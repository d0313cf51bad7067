"""Tiny hand-made CocoVID datasets for tests: every box and pixel is known."""
import json
import os
import os.path as osp

import numpy as np
from PIL import Image

CLASSES = ('square', 'circle')


def write_cocovid(root, videos, split='train', classes=CLASSES, write_frames=True):
    """Write ``videos`` as a CocoVID split under ``root`` and return the annotation path.

    Each video is ``dict(name, num_frames, size=(W, H), tracks={instance_id: (category_index,
    {frame_index: [x, y, w, h]})})``. Frame t is a grey image (value 40 + t) with each box
    filled in a colour derived from its instance id, so tests can find it in pixels.
    """
    ann = dict(
        categories=[dict(id=i + 1, name=n) for i, n in enumerate(classes)],
        videos=[],
        images=[],
        annotations=[])
    for v_idx, video in enumerate(videos, 1):
        w, h = video.get('size', (32, 24))
        ann['videos'].append(dict(id=v_idx, name=video['name'], width=w, height=h))
        for t in range(video['num_frames']):
            img_id = len(ann['images']) + 1
            file_name = f"{video['name']}/img1/{t + 1:06d}.jpg"
            ann['images'].append(
                dict(id=img_id, video_id=v_idx, frame_id=t, file_name=file_name, width=w, height=h))
            frame = np.full((h, w, 3), 40 + t, dtype=np.uint8)
            for iid, (cat, boxes) in video['tracks'].items():
                if t not in boxes:
                    continue
                x, y, bw, bh = boxes[t]
                ann['annotations'].append(
                    dict(
                        id=len(ann['annotations']) + 1,
                        image_id=img_id,
                        video_id=v_idx,
                        category_id=cat + 1,
                        instance_id=iid,
                        bbox=[x, y, bw, bh],
                        area=bw * bh,
                        iscrowd=0,
                        visibility=1.0,
                        mot_conf=1.0))
                frame[int(y):int(y + bh), int(x):int(x + bw)] = instance_colour(iid)
            if write_frames:
                path = osp.join(root, split, file_name)
                os.makedirs(osp.dirname(path), exist_ok=True)
                Image.fromarray(frame).save(path, quality=100)
    ann_path = osp.join(root, 'annotations', f'{split}.json')
    os.makedirs(osp.dirname(ann_path), exist_ok=True)
    with open(ann_path, 'w') as f:
        json.dump(ann, f)
    return ann_path


def instance_colour(instance_id):
    return [(50 * instance_id) % 256, 255 - (70 * instance_id) % 256, 200]


def moving_track(category, start, num_frames, xy0, size, step):
    """A box of ``size`` moving by ``step`` (dx, dy) per frame from ``xy0`` at frame ``start``."""
    return category, {
        start + t: [xy0[0] + step[0] * t, xy0[1] + step[1] * t, *size]
        for t in range(num_frames)
    }


def write_tiny_clip(folder):
    """A random 2-layer CLIP text model (hidden 32) and a character-level BPE tokenizer."""
    import string

    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    letters = list(string.ascii_lowercase)
    tokens = ['<|startoftext|>', '<|endoftext|>'] + letters + [c + '</w>' for c in letters]
    tokens += ['ca', 'car</w>', 'do', 'dog</w>']
    (folder / 'vocab.json').write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / 'merges.txt').write_text('#version: 0.2\nc a\nca r</w>\nd o\ndo g</w>\n')
    tokenizer = CLIPTokenizer(vocab=str(folder / 'vocab.json'), merges=str(folder / 'merges.txt'))
    tokenizer.save_pretrained(str(folder))
    torch.manual_seed(0)
    config = CLIPTextConfig(
        vocab_size=len(tokens),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1)
    model = CLIPTextModel(config).eval()
    model.save_pretrained(str(folder))
    return tokenizer, model


def write_tiny_t2v_folder(folder):
    """A text-to-video folder in the layout of text-to-video-ms-1.7b (unet/ a UNet3D, vae/,
    text_encoder/, tokenizer/, scheduler/) with tiny random weights."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet3DConditionModel

    torch.manual_seed(0)
    UNet3DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        attention_head_dim=4,
        norm_num_groups=8,
        cross_attention_dim=32,
        down_block_types=('CrossAttnDownBlock3D', 'DownBlock3D'),
        up_block_types=('UpBlock3D', 'CrossAttnUpBlock3D')).save_pretrained(str(folder / 'unet'))
    AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=('DownEncoderBlock2D', ) * 2,
        up_block_types=('UpDecoderBlock2D', ) * 2,
        latent_channels=4,
        norm_num_groups=4).save_pretrained(str(folder / 'vae'))
    write_tiny_clip(folder / 'text_encoder')
    write_tiny_clip(folder / 'tokenizer')
    DDPMScheduler(num_train_timesteps=50).save_pretrained(str(folder / 'scheduler'))


# The text-to-video recipes a user trains on a cluster, and the classes of their data.
RECIPES = ('ytvis', 'mot17', 'got10k')


def tiny_recipe_options(folder, frames=4, size=(32, 32), steps=2, class_file=None,
                        data_root=None, ann_file=None):
    """``--cfg-options`` that run a full-size text-to-video recipe on the tiny folder of
    :func:`write_tiny_t2v_folder`: its pretrained paths point there, clips are ``frames`` frames
    at ``size`` (W, H), sampling takes ``steps`` steps and the generator does not recompute
    activations. ``class_file`` is GOT-10k's annotation file of class names; ``data_root`` and
    ``ann_file`` (relative to it, frames under ``train/``) point the training data at a tiny
    CocoVID set, read in the main process. Nothing else of the recipe changes."""
    path = str(folder)
    options = {
        'model.data_preprocessor.vae.pretrained': path,
        'model.data_preprocessor.text_encoder.pretrained': path,
        'model.generator.pretrained': path,
        'model.tracklet_encoder.category_embedding.pretrained': path,
        'model.noise_scheduler.from_pretrained': path,
        'model.gradient_checkpointing': False,
        'model.num_inference_steps': steps,
        'num_frames': frames,
        'test_pipeline.1.scale': tuple(size),
    }
    if class_file is not None:
        options['model.tracklet_encoder.category_embedding.class_names'] = str(class_file)
    if data_root is not None:
        options.update({
            'train_dataloader.dataset.data_root': str(data_root),
            'train_dataloader.dataset.ann_file': ann_file,
            'train_dataloader.dataset.data_prefix.img_path': 'train/',
            'train_dataloader.dataset.clip_length': frames,
            'train_dataloader.dataset.pipeline.1.scale': tuple(size),
            'train_dataloader.num_workers': 0,
            'train_dataloader.persistent_workers': False,
        })
    return options


def cli_options(options):
    """A dict of config options as ``--cfg-options`` arguments (``key=value`` strings)."""
    text = []
    for key, value in options.items():
        if isinstance(value, tuple):
            value = '(' + ','.join(str(v) for v in value) + ')'
        text.append(f'{key}={value}')
    return ['--cfg-options', *text]
