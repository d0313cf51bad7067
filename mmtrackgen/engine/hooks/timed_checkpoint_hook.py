"""Checkpoints at minutes of training, for learning-speed tables measured in wall-clock time."""
import os.path as osp
import time
from typing import Sequence

from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmtrackgen.registry import HOOKS


@HOOKS.register_module()
class TimedCheckpointHook(Hook):
    """Save ``min_<m>.pth`` in the work dir once the run has trained for ``m`` minutes of wall
    clock, for each ``m`` of ``minutes``. The clock covers the whole training loop (data,
    steps, every hook, sample sheets included) and carries over a ``--resume``: the elapsed time
    is stored in each checkpoint's ``meta``.
    """
    priority = 'LOW'

    def __init__(self, minutes: Sequence[float]):
        minutes = sorted(float(m) for m in minutes)
        if not minutes or minutes[0] <= 0:
            raise ValueError(f'minutes must be positive numbers, got {minutes}')
        self.minutes = minutes
        self.elapsed_before = 0.0  # seconds trained by earlier runs of this work dir
        self.start = None

    def elapsed(self) -> float:
        return self.elapsed_before + (time.perf_counter() - self.start if self.start else 0.0)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self.elapsed_before = float(checkpoint.get('meta', {}).get('train_seconds', 0.0))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})['train_seconds'] = self.elapsed()

    def before_train(self, runner) -> None:
        self.start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        due = [m for m in self.minutes if self.elapsed() >= 60 * m]
        for m in due:
            name = f'min_{m:g}.pth'
            self.minutes.remove(m)
            if osp.isfile(osp.join(runner.work_dir, name)):
                continue  # made before a resume
            runner.save_checkpoint(runner.work_dir, name, save_optimizer=False)
            print_log(
                f'{m:g} minutes of training: {name} at iteration {runner.iter + 1}',
                logger='current')
