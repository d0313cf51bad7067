"""Test a model with the mmengine Runner (mmdet's test.py flags), e.g. an mmdet tracker of
configs/trackers/ on real or generated clips, scored by the config's evaluators.

    python tools/test.py configs/trackers/qdtrack_r18_synthetic_real.py CHECKPOINT \
        [--work-dir DIR] [--out-metrics FILE.json] \
        [--cfg-options test_dataloader.dataset.ann_file=...]
"""
import argparse
import os
import os.path as osp

from mmengine.config import DictAction

from mmtrackgen.datasets.tracklets import TrackletAnnotationError
from mmtrackgen.utils import write_json_atomic
from mmtrackgen.utils import (ConfigError, UnsafeCheckpointError, build_runner, exit_with_error,
                              runner_config)  # importing: safe loading


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where logs and metrics go')
    parser.add_argument('--out-metrics', help='also write the metrics to this JSON file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. test_dataloader.dataset.data_root=data/generated/')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
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
    cfg = runner_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f"checkpoint '{args.checkpoint}' does not exist")
    cfg.load_from = args.checkpoint
    runner = build_runner(cfg)
    metrics = runner.test()
    if args.out_metrics and runner.rank == 0:
        write_json_atomic(args.out_metrics, {k: float(v) for k, v in metrics.items()})
    return metrics


if __name__ == '__main__':
    main()
