"""Generate a CocoVID dataset of clips from tracklets with a trained TrackDiffusion model.

    python tools/generate.py CONFIG CHECKPOINT --tracklets FILE --out-dir DIR \
        [--batch-size 4] [--steps 25] [--scheduler DPMSolverMultistepScheduler] [--guidance 2] \
        [--seed 0] [--num-samples 1] [--clip-stride F] [--augment K] [--previews gif|mp4] \
        [--first-frames DIR]

FILE is a CocoVID annotation file (frames not needed) or the JSON tracklet format of
docs/tracklet_format.md; it is validated before anything is written. Long tracklets are cut into
clips of the model's frame count. Running the same command again after an interruption finishes
the job without redoing finished clips. Besides ``annotations.json`` (every frame), the output
has ``annotations_train.json``: the frames and boxes mmdet's tracker datasets train on
(``MOTChallengeDataset`` stops at a frame without a box of >= 1 px). ``tools/dist_generate.sh`` shards clips over processes.
An image-to-video model (TrackDiffusionI2V) starts each clip from a real image: ``--first-frames
DIR`` holds one per clip, ``DIR/<clip name>.png`` (or .jpg), resized to the model's frame size.
"""
import argparse
import datetime
import hashlib
import json
import math
import os
import os.path as osp
import sys

import numpy as np
import torch
import torch.distributed as dist
from mmengine.config import DictAction

from mmtrackgen.datasets.tracklet_file import load_tracklet_file
from mmtrackgen.datasets.tracklets import TrackletAnnotationError, load_json
from mmtrackgen.generation.runner import (TRAINING_ANNOTATIONS, ClipGenerator, ClipProgress,
                                          GenerationInputError, check_categories,
                                          find_first_frames, model_classes,
                                          model_needs_first_frame, plan_jobs, training_cocovid)
from mmtrackgen.generation.writer import (IMAGE_FORMATS, GeneratedDatasetWriter, OutputFolderError,
                                          clip_is_done, frame_name)
from mmtrackgen.models.trackdiffusion import scheduler_class
from mmtrackgen.utils import ConfigError, UnsafeCheckpointError, exit_with_error, load_config
from mmtrackgen.utils.files import write_json_atomic


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the model config')
    parser.add_argument('checkpoint', help='the trained model checkpoint')
    parser.add_argument('--tracklets', required=True, help='CocoVID or JSON tracklet file')
    parser.add_argument('--out-dir', required=True, help='the dataset folder to write')
    parser.add_argument(
        '--captions',
        metavar='FILE',
        help='JSON {video name: caption} for layouts without a caption (e.g. the synthetic '
        "world's annotations/captions.json); models that read captions use them")
    parser.add_argument('--batch-size', type=int, default=4, help='clips sampled together')
    parser.add_argument('--steps', type=int, help='sampling steps (default: the config)')
    parser.add_argument(
        '--scheduler', help='diffusers scheduler class, e.g. DDIMScheduler (default: config)')
    parser.add_argument('--guidance', type=float, help='guidance scale (default: the config)')
    parser.add_argument('--seed', type=int, default=0, help='each clip\'s seed derives from it')
    parser.add_argument('--num-samples', type=int, default=1, help='clips per layout')
    parser.add_argument(
        '--clip-stride', type=int, help='frames between clip starts (default: no overlap)')
    parser.add_argument(
        '--augment',
        type=int,
        default=0,
        help='also generate K augmented layouts per input layout (the config\'s '
        '`tracklet_augment` policy)')
    parser.add_argument(
        '--image-format',
        choices=sorted(IMAGE_FORMATS),
        default='jpeg444',
        help='how frames are written: JPEG without chroma subsampling (the default, as the '
        'synthetic world), JPEG 4:2:0, or lossless PNG')
    parser.add_argument(
        '--previews', choices=['gif', 'mp4'], help='write a preview per clip and a contact sheet')
    parser.add_argument(
        '--first-frames',
        metavar='DIR',
        help='image-to-video models: the first frame of each clip, DIR/<clip name>.png|.jpg')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none')
    parser.add_argument(
        '--dist-timeout',
        type=float,
        default=24,
        help='hours a process waits for the others at the end (their shards may be uneven)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def init_distributed(launcher: str, timeout_hours: float = 24) -> tuple[int, int]:
    """Join the torchrun job. The processes wait for each other once, after their shards: a
    resumed run can leave one rank hours more work than another, longer than torch's default
    collective timeout (10 minutes with NCCL), hence ``timeout_hours``. A rank that dies does
    not leave the others waiting: torchrun stops them."""
    if launcher == 'none':
        return 0, 1
    if 'RANK' not in os.environ:
        raise RuntimeError('--launcher pytorch needs torchrun (tools/dist_generate.sh)')
    if not dist.is_initialized():
        dist.init_process_group(
            backend='nccl' if torch.cuda.is_available() else 'gloo',
            timeout=datetime.timedelta(hours=timeout_hours))
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
    return dist.get_rank(), dist.get_world_size()


def check_args(args) -> None:
    """Refuse option values generation cannot use, before anything is read or written."""
    smallest = {
        '--batch-size': (args.batch_size, 1),
        '--num-samples': (args.num_samples, 1),
        '--steps': (args.steps, 1),
        '--clip-stride': (args.clip_stride, 1),
        '--augment': (args.augment, 0),
        '--seed': (args.seed, 0),
        '--dist-timeout': (args.dist_timeout, 1e-3),
    }
    for option, (value, least) in smallest.items():
        if value is not None and value < least:
            raise GenerationInputError(f'{option} must be >= {least}, got {value}')
    if not math.isfinite(args.dist_timeout):
        raise GenerationInputError(
            f'--dist-timeout must be a finite number, got {args.dist_timeout}')
    if args.guidance is not None and not math.isfinite(args.guidance):
        raise GenerationInputError(f'--guidance must be a finite number, got {args.guidance}')
    if args.scheduler is not None:
        try:
            scheduler_class(args.scheduler)
        except ValueError:
            raise GenerationInputError(
                f'--scheduler {args.scheduler!r} is not a diffusers scheduler class (e.g. '
                'DDIMScheduler, DPMSolverMultistepScheduler)') from None


def check_first_frames(args, cfg, jobs):
    """The first-frame image of every clip for an image-to-video model (None for others);
    refuses a missing folder or image, naming the clip, before anything is written."""
    if not model_needs_first_frame(cfg):
        if args.first_frames:
            raise GenerationInputError(
                f"--first-frames is for image-to-video models; the model of '{args.config}' "
                'generates from tracklets alone')
        return None
    if not args.first_frames:
        raise GenerationInputError(
            f"the model of '{args.config}' generates each clip from its first frame: give "
            '--first-frames DIR with one image per clip, DIR/<clip name>.png or .jpg')
    return find_first_frames(args.first_frames, jobs)


def load_layouts(args, cfg, classes):
    """Read, validate and (optionally) augment the input layouts; nothing is written yet."""
    layouts = load_tracklet_file(args.tracklets)
    if args.captions:
        captions = load_json(args.captions)
        if not isinstance(captions, dict) or not all(
                isinstance(v, str) for v in captions.values()):
            raise TrackletAnnotationError(
                'must map video names to caption strings', file=args.captions)
        layouts = [
            layout if layout.caption or layout.name not in captions else layout.copy(
                caption=captions[layout.name]) for layout in layouts
        ]
    check_categories(layouts, classes)
    if args.augment:
        from mmtrackgen.generation.augment import augment_layouts
        policy = cfg.get('tracklet_augment')
        if not policy:
            raise GenerationInputError(
                f"--augment needs a `tracklet_augment` policy in '{args.config}'")
        try:
            augmented = augment_layouts(layouts, policy, args.augment, args.seed)
        except (KeyError, ValueError, TypeError) as e:  # an unknown policy type or bad argument
            raise GenerationInputError(
                f"the `tracklet_augment` policy of '{args.config}' cannot be used: "
                f'{type(e).__name__}: {e.args[0] if e.args else e}') from e
        layouts = layouts + augmented
        check_categories(layouts, classes)
    return layouts


def write_previews(writer, names, classes, kind, max_sheet_clips=8):
    """A GIF/MP4 per clip with boxes and ids drawn, and a PNG contact sheet of the first clips."""
    from mmtrackgen.visualization import contact_sheet, draw_tracklets, save_clip, save_image
    import mmcv
    folder = osp.join(writer.out_dir, 'previews')
    os.makedirs(folder, exist_ok=True)
    sheet = []
    for layout in writer.read_layouts(names):
        frames = np.stack([
            mmcv.imread(
                osp.join(writer.clip_dir(layout.name), 'img1', frame_name(t + 1,
                                                                          writer.image_format)),
                channel_order='rgb') for t in range(layout.num_frames)
        ])
        height, width = layout.image_size
        norm = layout.boxes / np.array([width, height, width, height], np.float32)
        labels = np.array([classes.index(c) for c in layout.categories], np.int64)
        drawn = draw_tracklets(
            frames,
            norm,
            layout.visible,
            labels,
            layout.instance_ids,
            classes,
            upscale=max(1, 128 // max(height, width)))
        path = osp.join(folder, f'{layout.name}.{kind}')
        if not osp.isfile(path):
            save_clip(path, drawn)
        if len(sheet) < max_sheet_clips:
            sheet.append((layout.name, drawn))
    if sheet:
        save_image(
            osp.join(folder, 'contact_sheet.png'),
            contact_sheet([clip for _, clip in sheet], [name for name, _ in sheet]))


def write_training_annotations(path: str) -> str:
    """Write ``annotations_train.json`` beside the merged ``path``: the frames and boxes that
    mmdet's tracker datasets train on (:func:`training_cocovid`)."""
    with open(path) as f:
        ann = json.load(f)
    train_path = osp.join(osp.dirname(path), TRAINING_ANNOTATIONS)
    try:
        write_json_atomic(train_path, training_cocovid(ann))
    except OSError as e:
        raise OutputFolderError(
            f"'{train_path}' could not be written: {e.strerror or e} ({path} is complete; free "
            'space or fix the folder, then rerun the same command)') from e
    return train_path


def run(args) -> int:
    check_args(args)
    cfg = load_config(args.config, args.cfg_options)
    classes = model_classes(cfg)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f"checkpoint '{args.checkpoint}' does not exist")
    layouts = load_layouts(args, cfg, classes)
    clip_length = cfg.get('num_frames')
    if not isinstance(clip_length, int) or isinstance(clip_length, bool) or clip_length < 1:
        raise GenerationInputError(f"'{args.config}' needs `num_frames`, the model's clip length, "
                                   f'as an integer >= 1; it has {clip_length!r}')
    jobs, too_short = plan_jobs(layouts, clip_length, args.clip_stride, args.num_samples, args.seed)
    if not jobs:
        raise GenerationInputError(
            f"'{args.tracklets}' gives no clip of {clip_length} frames (the model's clip length): "
            f'all its {len(too_short)} layouts are shorter, e.g. {too_short[:3]}')
    first_frames = check_first_frames(args, cfg, jobs)
    rank, world_size = init_distributed(args.launcher, args.dist_timeout)
    if rank == 0 and too_short:
        print(
            f'{len(too_short)} layouts are shorter than {clip_length} frames and were '
            f'skipped: {too_short[:5]}',
            file=sys.stderr)

    mine = jobs[rank::world_size]  # by index, so ranks agree whatever is already done
    todo = [job for job in mine if not clip_is_done(args.out_dir, job.name)]
    # The model and its checkpoint are checked before the output folder is created.
    generator = ClipGenerator(
        cfg, args.checkpoint, device=args.device, first_frames=first_frames) if todo else None
    writer = GeneratedDatasetWriter(args.out_dir, rank=rank, image_format=args.image_format)
    if len(todo) < len(mine):
        print(f'[rank {rank}] {len(mine) - len(todo)} of {len(mine)} clips already finished '
              f'in {args.out_dir}: skipped')
    if todo:
        progress = ClipProgress(len(mine), already_done=len(mine) - len(todo))
        for job, layout, frames in generator.run(
                todo,
                args.batch_size,
                steps=args.steps,
                scheduler=args.scheduler,
                guidance=args.guidance):
            writer.submit(layout, frames, seed=job.seed, source=job.layout.name)
            progress.update()
    writer.close()
    if world_size > 1:
        dist.barrier()
    if rank == 0:
        names = [job.name for job in jobs]
        info = dict(
            description='clips generated by mmtrackgen from tracklets',
            config=args.config,
            checkpoint=args.checkpoint,
            checkpoint_sha256=file_sha256(args.checkpoint),
            tracklets=args.tracklets,
            seed=args.seed,
            scheduler=args.scheduler or str(cfg.model.get('sampler')),
            steps=args.steps or cfg.model.get('num_inference_steps'),
            guidance=args.guidance
            if args.guidance is not None else cfg.model.get('guidance_scale'),
            num_samples=args.num_samples,
            augment=args.augment)
        if first_frames is not None:
            info['first_frames'] = args.first_frames
        path = writer.merge(names, classes, info)
        write_training_annotations(path)
        if args.previews:
            try:
                write_previews(writer, names, classes, args.previews)
            except OSError as e:  # a full disk or lost permission: the dataset is complete
                raise OutputFolderError(
                    f"previews could not be written into '{osp.join(writer.out_dir, 'previews')}'"
                    f': {e.strerror or e}; the {len(names)} clips and {path} are complete '
                    '(rerun the same command to write the previews)') from e
        print(f'{len(names)} clips in {path}')
    if world_size > 1:
        dist.barrier()
        dist.destroy_process_group()
    return 0


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except (FileNotFoundError, TrackletAnnotationError, OutputFolderError, GenerationInputError,
            ConfigError, UnsafeCheckpointError) as e:
        # What a user must fix gets one line naming it, not a traceback; exit code 2.
        exit_with_error(e)


if __name__ == '__main__':
    main()
