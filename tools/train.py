"""Train a model with the mmengine Runner (mmdet's train.py flags).

    python tools/train.py configs/trackdiff/synthetic_tiny.py [--work-dir DIR] [--resume]

A killed run continues with ``--resume`` where its last checkpoint stopped: the iterations after
it draw the same data, noise and timesteps as an uninterrupted run (:class:`RandomStateHook`),
so on the CPU the loss curve goes on with the same values.
"""
import argparse
import errno
import os
import tempfile

from mmengine.config import DictAction

from mmtrackgen.datasets.tracklets import TrackletAnnotationError
from mmtrackgen.engine.hooks import RandomStateHook
from mmtrackgen.utils import (ConfigError, UnsafeCheckpointError, build_runner, exit_with_error,
                              runner_config)  # importing: safe loading

# Errors of the file system that a user fixes by freeing space or choosing another folder.
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS)


class WorkDirError(OSError):
    """The work dir cannot be created or written; the message says which and why."""


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
    except (FileNotFoundError, TrackletAnnotationError, ConfigError, UnsafeCheckpointError,
            WorkDirError) as e:
        # What a user must fix (a missing dataset or weights folder, a bad annotation or config,
        # an unsafe checkpoint, a work dir it cannot write) gets one line, not a traceback from
        # deep inside the Runner.
        exit_with_error(e)
    except OSError as e:
        if e.errno not in DISK_ERRNOS:
            raise
        # A full disk or a folder that became unwritable mid-run: the checkpoints written
        # before are intact (mmengine records the last one only after it is saved).
        exit_with_error(
            WorkDirError(f"writing '{e.filename or args.work_dir}' failed: {e.strerror}; free "
                         'space (or fix the permissions) and continue with --resume'))


def check_work_dir(work_dir: str) -> None:
    """Create ``work_dir`` and write a file in it, before the Runner starts anything.

    Raises:
        WorkDirError: it cannot be created or written (a file in the way, no permission, a
            read-only or full disk).
    """
    try:
        os.makedirs(work_dir, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix='.write_test', dir=work_dir)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise WorkDirError(f"work dir '{work_dir}' cannot be written: {e.strerror or e} "
                           '(choose another with --work-dir)') from e


def run(args):
    cfg = runner_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    check_work_dir(cfg.work_dir)
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
    runner.register_hook(RandomStateHook(), priority='VERY_LOW')
    runner.train()


if __name__ == '__main__':
    main()
