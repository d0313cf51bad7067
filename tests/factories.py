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
