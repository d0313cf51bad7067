"""Generate the synthetic multi-object-tracking video world (mmtrackgen's default dataset).

Example::

    python tools/make_synthetic.py --out data/synthetic
    python tools/make_synthetic.py --out data/synthetic_big --train 1000 --size 128 128 \\
        --categories square circle triangle cross diamond ring --seed 1
    python tools/make_synthetic.py --out data/synthetic --pool 2000 --overwrite  # + the pool

Writes CocoVID annotations (``annotations/<split>_cocoformat.json``), JPEG frames
(``<split>/<video>/img1/000001.jpg``), captions, the tracklets-only ``novel`` split and, with
``--pool``, the unlabelled ``pool`` split; see ``mmtrackgen.datasets.synthetic.writer``.
"""
import argparse
import time

from mmtrackgen.datasets.synthetic import DEFAULT_CATEGORIES, SHAPES, make_synthetic_dataset


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Generate the procedural synthetic multi-object-tracking video dataset.')
    parser.add_argument('--out', default='data/synthetic', help='output folder')
    parser.add_argument('--train', type=int, default=96, help='videos in the train split')
    parser.add_argument('--val', type=int, default=16, help='videos in the val split')
    parser.add_argument('--test', type=int, default=16, help='videos in the test split')
    parser.add_argument(
        '--novel',
        type=int,
        default=32,
        help='videos of the tracklets-only novel split (annotations only, no frames)')
    parser.add_argument(
        '--pool',
        type=int,
        default=0,
        help='videos of the unlabelled pool split (frames and captions, no annotations): the '
        "generator's pretraining data (configs/trackdiff/synthetic_tiny_pretrain.py)")
    parser.add_argument('--pool-frames', type=int, default=8, help='frames per pool video')
    parser.add_argument(
        '--pool-categories',
        nargs='+',
        choices=sorted(SHAPES),
        metavar='NAME',
        help='shapes of the pool (default: every shape, some never seen in the labelled splits)')
    parser.add_argument('--frames', type=int, default=24, help='frames per video')
    parser.add_argument(
        '--size',
        type=int,
        nargs=2,
        default=(64, 64),
        metavar=('W', 'H'),
        help='frame width and height in pixels')
    parser.add_argument('--min-instances', type=int, default=1, help='fewest objects per video')
    parser.add_argument('--max-instances', type=int, default=3, help='most objects per video')
    parser.add_argument(
        '--categories',
        nargs='+',
        default=list(DEFAULT_CATEGORIES),
        choices=sorted(SHAPES),
        metavar='NAME',
        help=f'shapes to use, from: {", ".join(sorted(SHAPES))}')
    parser.add_argument('--seed', type=int, default=0, help='random seed (same seed, same bytes)')
    parser.add_argument('--jpeg-quality', type=int, default=95, help='JPEG quality of the frames')
    parser.add_argument(
        '--overwrite', action='store_true', help='replace the outputs of an earlier run in --out')
    parser.add_argument('--no-progress', action='store_true', help='do not show a progress bar')
    return parser, parser.parse_args(argv)


def main(argv=None):
    parser, args = parse_args(argv)
    start = time.perf_counter()
    try:
        summary = make_synthetic_dataset(
            args.out,
            splits={
                'train': args.train,
                'val': args.val,
                'test': args.test
            },
            novel_videos=args.novel,
            frames_per_video=args.frames,
            image_size=tuple(args.size),
            num_instances=(args.min_instances, args.max_instances),
            categories=args.categories,
            seed=args.seed,
            jpeg_quality=args.jpeg_quality,
            pool_videos=args.pool,
            pool_frames=args.pool_frames,
            pool_categories=args.pool_categories,
            progress=not args.no_progress,
            overwrite=args.overwrite)
    except (ValueError, FileExistsError) as e:
        parser.error(str(e))  # exit code 2, like any other bad argument
    splits = summary['splits']
    counts = ', '.join(f"{name} {s['videos']} videos/{s['annotations']} boxes"
                       for name, s in splits.items())
    frames = sum(s['frames'] for s in splits.values())
    print(f"wrote {frames} frames to {summary['out_dir']} ({counts}) "
          f'in {time.perf_counter() - start:.1f}s')


if __name__ == '__main__':
    main()
