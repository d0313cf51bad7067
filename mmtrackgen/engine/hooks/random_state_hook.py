"""Random states in checkpoints, so that a resumed run goes on as an uninterrupted one would."""
import random

import numpy as np
import torch
from mmengine.hooks import Hook

from mmtrackgen.registry import HOOKS


def get_random_state() -> dict:
    """The global random states of torch, numpy and ``random``, as a checkpoint may hold them
    (tensors, numbers and lists only: they load with ``torch.load(weights_only=True)``)."""
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = dict(
        torch=torch.get_rng_state(),
        numpy=dict(
            name=name,
            keys=torch.from_numpy(keys.astype(np.int64)),
            pos=int(pos),
            has_gauss=int(has_gauss),
            cached_gaussian=float(cached_gaussian)),
        python=dict(version=version, internal=list(internal), gauss=gauss))
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: dict) -> None:
    """Put back what :func:`get_random_state` returned."""
    torch.set_rng_state(state['torch'])
    numpy = state['numpy']
    np.random.set_state((numpy['name'], numpy['keys'].numpy().astype(np.uint32), numpy['pos'],
                         numpy['has_gauss'], numpy['cached_gaussian']))
    python = state['python']
    random.setstate((python['version'], tuple(python['internal']), python['gauss']))
    if 'cuda' in state and torch.cuda.is_available() and \
            len(state['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state['cuda'])


class _SetStateBeforeBatch:
    """The train loop's batch iterator, setting the random state before batch ``index`` (counted
    from 0) is drawn, then handing the loop its own iterator back."""

    def __init__(self, loop, index: int, state: dict):
        self.loop, self.index, self.state = loop, index, state
        self.iterator = loop.dataloader_iterator
        self.drawn = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.drawn == self.index:
            set_random_state(self.state)
            self.loop.dataloader_iterator = self.iterator
        self.drawn += 1
        return next(self.iterator)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Saves the global random states in every checkpoint and puts them back on ``--resume``.

    mmengine re-seeds at start-up and, in an iteration-based loop, replays the data loader up to
    the resumed iteration; noise, timesteps, dropout and augmentations after that would not be
    those of an uninterrupted run. The states saved with checkpoint N are set again after the
    replay, right before batch N + 1 is drawn. Every rank gets the states of rank 0, which are
    its own unless ``randomness.diff_rank_seed`` is set (then nothing is restored).
    """

    def __init__(self):
        self.resumed_state = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['random_state'] = get_random_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self.resumed_state = checkpoint.get('random_state')

    def before_train(self, runner) -> None:
        state, self.resumed_state = self.resumed_state, None
        if state is None or runner.iter == 0:  # a fresh start, or weights only (load_from)
            return
        if runner.world_size > 1 and runner._randomness_cfg.get('diff_rank_seed'):
            runner.logger.warning('diff_rank_seed: random states are not restored on resume')
            return
        loop = runner.train_loop
        if hasattr(loop, 'dataloader_iterator'):  # IterBasedTrainLoop replays the batches
            loop.dataloader_iterator = _SetStateBeforeBatch(loop, runner.iter, state)
        else:  # EpochBasedTrainLoop starts the next epoch without replaying
            set_random_state(state)
        runner.logger.info(f'random states of iteration {runner.iter} restored')
