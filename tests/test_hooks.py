"""Hooks: trimmed checkpoints, the self-tracking switch."""
from types import SimpleNamespace

import pytest
from torch import nn

from mmtrackgen.datasets.transforms import DrawSlotBoxes
from mmtrackgen.engine import SelfTrackingHook, TrimFrozenWeightsHook


def test_trim_frozen_weights_drops_only_frozen_parameters():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Linear(2, 1))
    model[0].requires_grad_(False)
    checkpoint = dict(state_dict=model.state_dict(), meta={})
    TrimFrozenWeightsHook().before_save_checkpoint(SimpleNamespace(model=model), checkpoint)
    assert set(checkpoint['state_dict']) == {
        '1.weight', '1.bias', '1.running_mean', '1.running_var', '1.num_batches_tracked',
        '2.weight', '2.bias'
    }
    assert checkpoint['meta']['trimmed_frozen_parameters'] == 2
    fresh = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Linear(2, 1))
    missing = fresh.load_state_dict(checkpoint['state_dict'], strict=False).missing_keys
    assert missing == ['0.weight', '0.bias']


def test_trim_frozen_weights_trims_the_ema_copy_and_must_run_after_the_ema_hook():
    from mmengine.hooks import EMAHook
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    model[0].requires_grad_(False)
    checkpoint = dict(
        state_dict=model.state_dict(),
        ema_state_dict={'steps': 3, **{'module.' + k: v for k, v in model.state_dict().items()}})
    TrimFrozenWeightsHook().before_save_checkpoint(SimpleNamespace(model=model), checkpoint)
    assert set(checkpoint['ema_state_dict']) == {'steps', 'module.1.weight', 'module.1.bias'}

    trim, ema = TrimFrozenWeightsHook(), EMAHook()
    trim.before_run(SimpleNamespace(hooks=[ema, trim]))  # the recipes' order
    with pytest.raises(ValueError, match='EMAHook runs after TrimFrozenWeightsHook'):
        trim.before_run(SimpleNamespace(hooks=[trim, ema]))


def fake_runner(iteration, max_iters=9, workers=0):
    transforms = [DrawSlotBoxes(), object()]
    loader = SimpleNamespace(
        num_workers=workers,
        dataset=SimpleNamespace(pipeline=SimpleNamespace(transforms=transforms)))
    return SimpleNamespace(iter=iteration, max_iters=max_iters, train_dataloader=loader)


@pytest.mark.parametrize('switch_iter,switches_at', [(4, 4), (1 / 3, 3)])
def test_self_tracking_switches_to_clean_clips_once(switch_iter, switches_at):
    hook = SelfTrackingHook(switch_iter)
    runner = fake_runner(0)
    for iteration in range(9):
        runner.iter = iteration
        hook.before_train_iter(runner, iteration)
        drawer = runner.train_dataloader.dataset.pipeline.transforms[0]
        assert drawer.prob == (1.0 if iteration < switches_at else 0.0)
    with pytest.raises(ValueError, match='fractional'):
        SelfTrackingHook(1.5)


def test_a_run_resumed_past_the_switch_draws_clean_clips_from_its_first_batch():
    hook = SelfTrackingHook(3)
    runner = fake_runner(5)  # resumed at iteration 5: its first batch is drawn before any iter hook
    hook.before_train(runner)
    assert runner.train_dataloader.dataset.pipeline.transforms[0].prob == 0.0
    early = SelfTrackingHook(8)
    runner = fake_runner(5)
    early.before_train(runner)
    assert runner.train_dataloader.dataset.pipeline.transforms[0].prob == 1.0


def test_self_tracking_needs_a_box_drawer_in_the_pipeline():
    runner = fake_runner(5)
    runner.train_dataloader.dataset.pipeline.transforms = []
    with pytest.raises(ValueError, match='no DrawSlotBoxes'):
        SelfTrackingHook(2).before_train_iter(runner, 5)
