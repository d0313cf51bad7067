"""Test a model with the mmengine Runner (mmdet's test.py flags), e.g. an mmdet tracker of
configs/trackers/ on real or generated clips, scored by the config's evaluators.

    python tools/test.py configs/trackers/qdtrack_r18_synthetic_real.py CHECKPOINT \
        [--work-dir DIR] [--cfg-options test_dataloader.dataset.ann_file=...]
"""
import argparse
import os
import os.path as osp

from mmengine.config import DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmtrackgen.datasets.tracklets import TrackletAnnotationError
from mmtrackgen.utils import (ConfigError, UnsafeCheckpointError, exit_with_error,
                              prepare_cpu_distributed, read_config)  # importing: safe loading


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where logs and metrics go')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. test_dataloader.dataset.data_root=data/generated/')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main():
    args = parse_args()
    try:
        run(args)
    except (FileNotFoundError, TrackletAnnotationError, ConfigError, UnsafeCheckpointError) as e:
        exit_with_error(e)


def run(args):
    cfg = read_config(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(args.config))[0])
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f"checkpoint '{args.checkpoint}' does not exist")
    cfg.load_from = args.checkpoint
    prepare_cpu_distributed(cfg)
    runner = (Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg))
    return runner.test()


if __name__ == '__main__':
    main()
