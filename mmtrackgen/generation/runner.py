"""From tracklet layouts to generated clips: planning, model inputs, batched sampling.

``tools/generate.py`` is the command line around these; tests call them in-process.
"""
import os.path as osp
import re
import time
import zlib
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.dataset import pseudo_collate

from mmtrackgen.datasets.tracklet_file import cut_layout
from mmtrackgen.datasets.tracklets import TrackletAnnotationError
from mmtrackgen.registry import MODELS
from mmtrackgen.structures import TrackletLayout
from mmtrackgen.utils import UnsafeCheckpointError, one_line, safe_torch_load


class GenerationInputError(ValueError):
    """Input that generation cannot use (the message says which and what to change)."""


def clip_seed(seed: int, name: str) -> int:
    """The sampling seed of one output clip: a function of the run's seed and the clip's name
    only, so a clip comes out the same whatever else is generated with it or on which rank."""
    return zlib.crc32(f'{seed}/{name}'.encode()) & 0x7FFFFFFF


@dataclass
class GenerationJob:
    """One clip to generate: the input tracklets of F frames, the output name and its seed."""
    layout: TrackletLayout
    name: str
    seed: int


def plan_jobs(layouts: list[TrackletLayout],
              clip_length: int,
              stride: int | None = None,
              num_samples: int = 1,
              seed: int = 0) -> tuple[list[GenerationJob], list[str]]:
    """Cut layouts into clips of ``clip_length`` frames and name ``num_samples`` outputs each.

    Returns the jobs (in input order) and the names of layouts too short for one clip.
    """
    if num_samples < 1:
        raise GenerationInputError(f'num_samples must be >= 1, got {num_samples}')
    jobs, too_short = [], []
    for layout in layouts:
        clips = cut_layout(layout, clip_length, stride)
        if not clips:
            too_short.append(layout.name)
        for clip in clips:
            for k in range(num_samples):
                name = clip.name if num_samples == 1 else f'{clip.name}_s{k}'
                jobs.append(GenerationJob(clip, name, clip_seed(seed, name)))
    names = [job.name for job in jobs]
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise GenerationInputError(
            f'clip names repeat after cutting: {duplicates[:5]}; give the input '
            'clips unique names')
    return jobs, too_short


def check_categories(layouts: list[TrackletLayout], classes: list[str]) -> None:
    """Every instance's category must be one the model knows (checked before any work)."""
    known = set(classes)
    for layout in layouts:
        for n, category in enumerate(layout.categories):
            if category not in known:
                raise TrackletAnnotationError(
                    f"category '{category}' of instance {int(layout.instance_ids[n])} is not "
                    f'one of the model\'s classes {list(classes)}',
                    file=layout.source or None,
                    video=layout.name,
                    field='category')


def layout_to_clip_info(layout: TrackletLayout, classes: list[str]) -> dict:
    """A clip item as :class:`TrackletClipDataset` makes it, from a layout (no frame files)."""
    label_of = {name: i for i, name in enumerate(classes)}
    height, width = layout.image_size
    images = []
    for t in range(layout.num_frames):
        instances = [
            dict(
                bbox=layout.boxes[t, n].tolist(),
                bbox_label=label_of[layout.categories[n]],
                instance_id=int(layout.instance_ids[n]),
                visibility=float(layout.visibility[t, n]),
                ignore_flag=0) for n in np.flatnonzero(layout.visible[t])
        ]
        images.append(
            dict(
                img_path='',
                frame_id=int(layout.frame_ids[t]),
                width=width,
                height=height,
                instances=instances))
    info = dict(
        video_id=0,
        video_name=layout.name,
        clip_start=int(layout.frame_ids[0]),
        frame_ids=layout.frame_ids.tolist(),
        images=images,
        classes=tuple(classes))
    if layout.caption:
        info['caption'] = layout.caption
    return info


def generation_pipeline(cfg) -> list:
    """The config's ``test_pipeline`` with frames not loaded (generation has none)."""
    pipeline = cfg.get('test_pipeline')
    if not pipeline:
        raise GenerationInputError('the config has no `test_pipeline`; generation needs it to turn '
                                   'tracklets into model inputs')
    steps = [dict(step) for step in pipeline]
    for step in steps:
        if step['type'] == 'LoadTrackletClip':
            step['load_frames'] = False
    return steps


def config_name(cfg) -> str:
    """How messages name a config: its file, when it was read from one."""
    filename = getattr(cfg, 'filename', None)
    return f"config '{filename}'" if filename else 'the config'


def _category_embedding_cfg(cfg) -> dict:
    """The config of the model's category embedding ({} when the config has none)."""
    model = cfg.get('model')
    encoder = model.get('tracklet_encoder') if isinstance(model, dict) else None
    embedding = encoder.get('category_embedding') if isinstance(encoder, dict) else None
    return embedding if isinstance(embedding, dict) else {}


def model_classes(cfg) -> list[str]:
    """The categories a config's model was trained with, in label order.

    Taken from where the model has them: the category embedding's ``class_names`` (names, or
    the CocoVID annotation file they are read from, as ``CLIPCategoryEmbedding`` reads it: the
    recipes ``mot17.py`` and ``got10k.py`` name them only there); else the config's top-level
    ``classes``; else the training dataset's ``metainfo.classes``. A learned table's
    ``num_classes`` must match their number.

    Raises:
        GenerationInputError: no names anywhere, or as many as the model does not have.
        FileNotFoundError, TrackletAnnotationError: the annotation file named is missing or bad.
    """
    embedding = _category_embedding_cfg(cfg)
    dataset = ((cfg.get('train_dataloader') or {}).get('dataset') or {})
    where, classes = None, None
    if embedding.get('class_names'):
        from mmtrackgen.models.conditioning.category_embedding import resolve_class_names
        where = 'model.tracklet_encoder.category_embedding.class_names'
        classes = resolve_class_names(embedding['class_names'])
    elif cfg.get('classes'):
        where, classes = 'classes', cfg.get('classes')
    elif isinstance(dataset, dict) and (dataset.get('metainfo') or {}).get('classes'):
        where = 'train_dataloader.dataset.metainfo.classes'
        classes = dataset['metainfo']['classes']
    if not classes:
        raise GenerationInputError(
            f'{config_name(cfg)} names no categories: generation needs the names the model was '
            'trained with, in `model.tracklet_encoder.category_embedding.class_names`, '
            '`classes` or `train_dataloader.dataset.metainfo.classes`')
    if isinstance(classes, str) or not all(isinstance(c, str) for c in classes):
        raise GenerationInputError(
            f'{config_name(cfg)}: `{where}` must be a sequence of names, got {classes!r}')
    num_classes = embedding.get('num_classes')
    if num_classes is not None and num_classes != len(classes):
        raise GenerationInputError(
            f'{config_name(cfg)}: the category table has num_classes={num_classes} but '
            f'`{where}` names {len(classes)} categories')
    return list(classes)


FIRST_FRAME_EXTENSIONS = ('.png', '.jpg', '.jpeg')


def model_needs_first_frame(cfg) -> bool:
    """Whether the config's model generates from a first frame per clip (image-to-video)."""
    model_type = cfg.model.get('type') if isinstance(cfg.model, dict) else None
    cls = MODELS.get(model_type) if isinstance(model_type, str) else None
    return bool(getattr(cls, 'needs_first_frame', False))


def find_first_frames(directory: str, jobs: list[GenerationJob]) -> dict[str, str]:
    """Clip name -> the image ``directory/<clip name>.png|.jpg|.jpeg`` of its first frame, for
    every job's clip (the cut clip's name, shared by its ``--num-samples`` outputs).

    Raises:
        GenerationInputError: the folder is missing, or clips have no image (named).
    """
    if not osp.isdir(directory):
        raise GenerationInputError(f"--first-frames: folder '{directory}' does not exist")
    found, missing = {}, []
    for name in dict.fromkeys(job.layout.name for job in jobs):
        paths = [osp.join(directory, name + ext) for ext in FIRST_FRAME_EXTENSIONS]
        path = next((p for p in paths if osp.isfile(p)), None)
        if path is None:
            missing.append(name)
        else:
            found[name] = path
    if missing:
        raise GenerationInputError(
            f"--first-frames: no first frame for clip '{missing[0]}' in '{directory}' (expected "
            f"{missing[0]}{'|'.join(FIRST_FRAME_EXTENSIONS)}); {len(missing)} clips lack one: "
            f'{_some(missing)}')
    return found


def load_first_frame(path: str, size: tuple[int, int]) -> torch.Tensor:
    """The image at ``path`` resized to ``size`` (H, W): (3, H, W) uint8 RGB."""
    import mmcv
    image = mmcv.imread(path, channel_order='rgb')
    if image is None or image.ndim != 3:
        raise GenerationInputError(f"first frame '{path}' cannot be read as a colour image")
    image = mmcv.imresize(image, (size[1], size[0]))  # (H, W, 3)
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()


def load_model_weights(model: torch.nn.Module, filename: str, config: str = 'the config') -> None:
    """Load the weights of checkpoint ``filename`` into ``model``, refusing one that does not fit.

    mmengine's ``load_checkpoint`` only warns about missing, unexpected and mismatched keys, so a
    checkpoint of another model would give noise. Here every weight of the model must be in the
    checkpoint with its shape, except frozen parameters (``requires_grad=False``), which
    ``TrimFrozenWeightsHook`` leaves out of checkpoints and which keep their pretrained values;
    and the checkpoint may hold no weight the model lacks. ``config`` names the model's config
    in messages.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the file needs more than ``torch.load(weights_only=True)`` allows.
        GenerationInputError: the file is not a checkpoint of this model.
    """
    if not osp.isfile(filename):
        raise FileNotFoundError(f"checkpoint '{filename}' does not exist")
    try:
        checkpoint = safe_torch_load(filename, map_location='cpu')
    except UnsafeCheckpointError:
        raise
    except Exception as e:  # torch on a file cut short or of another kind: any of several types
        raise GenerationInputError(
            f"checkpoint '{filename}' cannot be read (truncated, or not a torch checkpoint?): "
            f'{type(e).__name__}: {one_line(e)}') from e
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else checkpoint
    if not isinstance(state, dict):
        raise GenerationInputError(
            f"checkpoint '{filename}' holds a {type(state).__name__}, not a state dict")
    state = {re.sub(r'^module\.', '', str(key)): value for key, value in state.items()}
    expected = model.state_dict()
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    if not set(state) & set(expected):
        raise GenerationInputError(
            f"checkpoint '{filename}' holds none of the {len(expected)} weights of the model of "
            f'{config} (it has {_some(sorted(state))}): it is not a checkpoint of this model')
    missing = sorted(set(expected) - set(state) - frozen)
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise GenerationInputError(
            f"checkpoint '{filename}' does not fit the model of {config}: it lacks "
            f'{len(missing)} of its {len(expected)} weights ({_some(missing)}) and has '
            f'{len(unexpected)} it does not know ({_some(unexpected)}); was the model trained '
            'with this config?')
    for key, value in state.items():
        if not isinstance(value, torch.Tensor) or value.shape != expected[key].shape:
            got = (f'shape {tuple(value.shape)}'
                   if isinstance(value, torch.Tensor) else f'a {type(value).__name__}')
            raise GenerationInputError(
                f"checkpoint '{filename}': weight '{key}' has {got}, the model of {config} "
                f'expects shape {tuple(expected[key].shape)}; was it trained with this config?')
    model.load_state_dict(state, strict=False)  # only frozen parameters may be missing


def _some(keys: list, count: int = 3) -> str:
    """The first ``count`` of ``keys`` for a message, e.g. ``'a', 'b', 'c', ... (12 in all)``."""
    if not keys:
        return 'none'
    text = ', '.join(repr(k) for k in keys[:count])
    return text + (f', ... ({len(keys)} in all)' if len(keys) > count else '')


TRAINING_ANNOTATIONS = 'annotations_train.json'


def training_cocovid(ann: dict, min_size: float = 1.0) -> dict:
    """The training annotation of a generated set: what mmdet's video datasets accept.

    mmdet's ``MOTChallengeDataset`` (the dataset of its QDTrack and ByteTrack MOT17 configs)
    skips boxes under 1 px a side or outside the image, and then stops the run at a training
    frame with no instance left ("No valid instances found in image ..."). Generated clips have
    such frames: an instance entering from the image edge is a sliver at first, and a clip may
    have no instance at all. Here every box narrower or lower than ``min_size`` px inside the
    image is dropped, then every frame without a box, then every video without a frame; ids
    and everything else stay as in ``ann`` (the full ``annotations.json`` keeps all frames, for
    testing and scoring).
    """
    sizes = {image['id']: (image['width'], image['height']) for image in ann['images']}
    kept = []
    for a in ann['annotations']:
        x, y, w, h = a['bbox']
        width, height = sizes[a['image_id']]
        inside_w = min(x + w, width) - max(x, 0)
        inside_h = min(y + h, height) - max(y, 0)
        if min(w, h, inside_w, inside_h) >= min_size and a.get('area', w * h) > 0:
            kept.append(a)
    with_boxes = {a['image_id'] for a in kept}
    images = [image for image in ann['images'] if image['id'] in with_boxes]
    with_frames = {image['video_id'] for image in images}
    videos = [video for video in ann['videos'] if video['id'] in with_frames]
    return dict(ann, videos=videos, images=images, annotations=kept)


class ClipGenerator:
    """A trained TrackDiffusion model that turns jobs into frames, a batch at a time.

    Args:
        cfg: the model's config (``model``, ``test_pipeline``, ``classes``).
        checkpoint: path of its checkpoint (loaded with the project's safe loader).
        device: where to run.
        first_frames: clip name -> image path of its first frame (:func:`find_first_frames`),
            for image-to-video models.
    """

    def __init__(self,
                 cfg,
                 checkpoint: str,
                 device: str = 'cpu',
                 first_frames: dict[str, str] | None = None):
        self.classes = model_classes(cfg)
        self.first_frames = first_frames
        self.pipeline = Compose(generation_pipeline(cfg))
        try:
            self.model = MODELS.build(cfg.model)
        except KeyError as e:  # a `type` no registry knows
            raise GenerationInputError(
                f'the model of {config_name(cfg)} cannot be built: {e.args[0] if e.args else e}'
            ) from e
        load_model_weights(self.model, checkpoint, config_name(cfg))
        self.model.to(device).eval()

    def sample(self,
               jobs: list[GenerationJob],
               steps: int | None = None,
               scheduler: str | dict | None = None,
               guidance: float | None = None) -> list[tuple[TrackletLayout, np.ndarray]]:
        """Generate one batch: for each job, the layout of the output clip (boxes in output
        pixels, only the instances the model was given) and its frames (F, H, W, 3) uint8."""
        items = []
        for job in jobs:
            items.append(self.pipeline(layout_to_clip_info(job.layout, self.classes)))
        for item, job in zip(items, jobs):
            item['data_samples'].set_metainfo(dict(seed=job.seed))
            if self.first_frames is not None:  # image-to-video: (3, H, W) at the model's size
                sample = item['data_samples']
                sample.set_field(
                    load_first_frame(self.first_frames[job.layout.name], sample.img_shape),
                    'first_frame')
        data = self.model.data_preprocessor(pseudo_collate(items), False)
        samples = self.model.predict(
            data['inputs'],
            data['data_samples'],
            num_inference_steps=steps,
            guidance_scale=guidance,
            scheduler=scheduler)
        return [(self.output_layout(job, sample), sample.pred_frames.permute(0, 2, 3, 1).numpy())
                for job, sample in zip(jobs, samples)]

    def output_layout(self, job: GenerationJob, sample) -> TrackletLayout:
        """The tracklets of a generated clip: the model's slots, in the output's pixels."""
        num_frames, _, height, width = sample.pred_frames.shape
        kept = sample.gt_slot_mask.cpu().numpy()  # (N,)
        boxes = sample.gt_boxes.cpu().numpy()[:, kept] * np.array([width, height, width, height],
                                                                  np.float32)  # (F, K, 4)
        boxes = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
        visible = sample.gt_visible.cpu().numpy()[:, kept]  # (F, K)
        boxes[~visible] = 0
        return replace(
            job.layout,
            name=job.name,
            image_size=(height, width),
            boxes=boxes,
            visible=visible,
            visibility=sample.gt_visibility.cpu().numpy()[:, kept].astype(np.float32),
            instance_ids=sample.gt_instance_ids.cpu().numpy()[kept].astype(np.int64),
            categories=[self.classes[i] for i in sample.gt_labels.cpu().numpy()[kept]])

    def run(self, jobs: list[GenerationJob], batch_size: int,
            **sample_kwargs) -> Iterator[tuple[GenerationJob, TrackletLayout, np.ndarray]]:
        """Generate ``jobs`` in batches; yields (job, output layout, frames) as they finish."""
        if batch_size < 1:
            raise GenerationInputError(f'batch_size must be >= 1, got {batch_size}')
        for start in range(0, len(jobs), batch_size):
            batch = jobs[start:start + batch_size]
            with torch.no_grad():
                outputs = self.sample(batch, **sample_kwargs)
            for job, (layout, frames) in zip(batch, outputs):
                yield job, layout, frames


class ClipProgress:
    """One status line per update: clips done, clips per minute and time left."""

    def __init__(self, total: int, already_done: int = 0, stream=None):
        import sys
        self.total, self.done = total, already_done
        self.start_done = already_done
        self.started = time.monotonic()
        self.stream = stream or sys.stdout

    def update(self, count: int = 1) -> None:
        self.done += count
        elapsed = time.monotonic() - self.started
        made = self.done - self.start_done
        per_minute = made / elapsed * 60 if elapsed > 0 else 0.0
        left = (self.total - self.done) / per_minute * 60 if per_minute > 0 else float('nan')
        left_text = f'{int(left // 60)}m{int(left % 60):02d}s' if left == left else '?'
        self.stream.write(f'\r[{self.done}/{self.total} clips] {per_minute:.1f} clips/min, '
                          f'{left_text} left')
        if self.done >= self.total:
            self.stream.write('\n')
        self.stream.flush()
