"""The two stages of self-tracking training in one run."""
from typing import Union

from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmtrackgen.datasets.transforms import DrawSlotBoxes
from mmtrackgen.registry import HOOKS


@HOOKS.register_module()
class SelfTrackingHook(Hook):
    """Stage 1 until ``switch_iter``: the training clips carry their boxes drawn in slot
    colours (:class:`DrawSlotBoxes` in the train pipeline); stage 2 after it: clean clips.
    ``switch_iter`` is an iteration, or a float in (0, 1): that fraction of ``max_iters`` (so a
    run shortened with ``--cfg-options train_cfg.max_iters=...`` keeps its proportions).

    The switch sets the ``prob`` of every ``DrawSlotBoxes`` of the train pipeline to 0. It
    reaches the data at once with ``num_workers=0``; with worker processes, at their next
    restart (the next pass over the dataset), which the hook warns about. A resumed run past
    ``switch_iter`` starts in stage 2.
    """
    priority = 'NORMAL'

    def __init__(self, switch_iter: Union[int, float]):
        if isinstance(switch_iter, float) and not 0 < switch_iter < 1:
            raise ValueError(f'a fractional switch_iter must be in (0, 1), got {switch_iter}')
        if switch_iter < 0:
            raise ValueError(f'switch_iter must be >= 0, got {switch_iter}')
        self.switch_iter = switch_iter
        self.switched = False

    def _switch_at(self, runner) -> int:
        if isinstance(self.switch_iter, float):
            return round(self.switch_iter * runner.max_iters)
        return self.switch_iter

    def before_train(self, runner) -> None:
        # A run resumed past the switch: stage 2 from its first batch (before_train_iter comes
        # after that batch is drawn).
        self.before_train_iter(runner, 0)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.switched or runner.iter < self._switch_at(runner):
            return
        loader = runner.train_dataloader
        drawers = [t for t in loader.dataset.pipeline.transforms if isinstance(t, DrawSlotBoxes)]
        if not drawers:
            raise ValueError('SelfTrackingHook: the train pipeline has no DrawSlotBoxes')
        for t in drawers:
            t.prob = 0.0
        self.switched = True
        if loader.num_workers > 0:
            print_log(
                'SelfTrackingHook: data workers see the switch only when they restart '
                '(next pass over the dataset); use num_workers=0 for an exact switch',
                logger='current',
                level=30)
        print_log(
            f'self-tracking: stage 2 (clean clips) from iteration {runner.iter}', logger='current')
