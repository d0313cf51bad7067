"""Train a model with the mmengine Runner (mmdet's train.py flags).

    python tools/train.py configs/trackdiff/synthetic_tiny.py [--work-dir DIR] [--resume]
"""
import argparse
import os

from mmengine.config import DictAction

from mmtrackgen.datasets.tracklets import TrackletAnnotationError
from mmtrackgen.utils import (ConfigError, UnsafeCheckpointError, build_runner,
                              exit_with_error, runner_config)  # importing: safe loading


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go')
    parser.add_argument('--amp', action='store_true', help='mixed precision (GPU only)')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from a checkpoint; without a path, from the latest in the work dir')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. train_cfg.max_iters=100')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main():
    args = parse_args()
    try:
        run(args)
    except (FileNotFoundError, TrackletAnnotationError, ConfigError, UnsafeCheckpointError) as e:
        # What a user must fix (a missing dataset or weights folder, a bad annotation or config,
        # an unsafe checkpoint) gets one line, not a traceback from deep inside the Runner.
        exit_with_error(e)


def run(args):
    cfg = runner_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print('AMP is already enabled in the config')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume

    runner = build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    main()
