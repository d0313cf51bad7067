"""mmtrackgen.utils.checkpoint: mmengine checkpoints load with weights_only=True, nothing else does.

Every test trains or loads a toy model on CPU in a tmp_path work dir with a real mmengine Runner
(optimizer with state, param schedulers, default hooks incl. CheckpointHook + LoggerHook, a
validation loop with save_best, a dataset with metainfo, fixed randomness seed).
"""
import copy
import os
import pickle
import shutil
import types
import uuid

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader
from torch.utils.data import Dataset

import mmtrackgen  # noqa: F401  (registers the loader at import)
from mmtrackgen.utils import (MMENGINE_CHECKPOINT_SAFE_GLOBALS, UnsafeCheckpointError,
                              register_safe_checkpoint_loader)
from mmtrackgen.utils.checkpoint import allowlist_names, load_from_local_safe

MAX_ITERS = 6


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(inputs).squeeze(1)
        if mode == 'loss':
            return dict(loss=((out - labels)**2).mean())
        if mode == 'predict':
            return [dict(pred=o, label=lb) for o, lb in zip(out, labels)]
        return out


class ToyDataset(Dataset):
    """8 fixed samples; ``metainfo`` makes the Runner save ``meta['dataset_meta']``."""
    metainfo = dict(classes=('car', 'person'), palette=[(220, 20, 60), (0, 0, 142)])

    def __init__(self):
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(8, 2, generator=gen)
        self.y = torch.randn(8, generator=gen)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], labels=self.y[i])


class ToyMetric(BaseMetric):
    """Returns numpy values, as real metrics often do (-> best_score is a numpy scalar)."""

    def process(self, data_batch, data_samples):
        self.results.extend(float((s['pred'] - s['label'])**2) for s in data_samples)

    def compute_metrics(self, results):
        return dict(neg_mse=np.float64(-np.mean(results)), count=np.int64(len(results)))


class RecordHook(Hook):
    """Records the state training starts from (i.e. right after load/resume)."""

    def before_train(self, runner):
        self.start_iter = runner.iter
        self.start_weights = {k: v.clone() for k, v in runner.model.state_dict().items()}
        self.start_optim = copy.deepcopy(runner.optim_wrapper.state_dict())
        self.start_lr = [g['lr'] for g in runner.optim_wrapper.optimizer.param_groups]


def _dataloader():
    return dict(
        dataset=ToyDataset(),
        sampler=dict(type='DefaultSampler', shuffle=True),
        batch_size=2,
        num_workers=0,
        collate_fn=dict(type='default_collate'))


def _runner(work_dir, **kwargs):
    torch.manual_seed(0)  # model init (overwritten when loading/resuming)
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        experiment_name=f'ckpt_test_{uuid.uuid4().hex[:8]}',
        train_dataloader=_dataloader(),
        train_cfg=dict(by_epoch=False, max_iters=MAX_ITERS, val_interval=2),
        val_dataloader=_dataloader(),
        val_cfg=dict(),
        val_evaluator=[ToyMetric()],
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=2),
            dict(type='MultiStepLR', milestones=[3, 5], by_epoch=False, gamma=0.5),
        ],
        default_hooks=dict(
            checkpoint=dict(
                type='CheckpointHook',
                interval=2,
                by_epoch=False,
                save_best='neg_mse',
                rule='greater'),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[RecordHook()],
        randomness=dict(seed=0),
        default_scope='mmengine',
        **kwargs)


def _record_hook(runner):
    return next(h for h in runner.hooks if isinstance(h, RecordHook))


def _assert_state_equal(a, b, path='state'):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_state_equal(a[k], b[k], f'{path}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_state_equal(x, y, f'{path}[{i}]')
    else:
        assert a == b, path


@pytest.fixture(autouse=True)
def restore_safe_globals():
    """Undo tests' add_safe_globals (keeping torch's own entries, e.g. DTensor's)."""
    before = torch.serialization.get_safe_globals()
    yield
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(before)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """One uninterrupted 6-iter run: checkpoints at iters 2, 4, 6 (+ best)."""
    work_dir = tmp_path_factory.mktemp('uninterrupted')
    runner = _runner(work_dir)
    runner.train()
    final = {k: v.clone() for k, v in runner.model.state_dict().items()}
    return types.SimpleNamespace(
        work_dir=work_dir, final_weights=final, ckpt=lambda i: str(work_dir / f'iter_{i}.pth'))


def test_registered_and_idempotent():
    assert CheckpointLoader._schemes[''] is load_from_local_safe
    schemes = dict(CheckpointLoader._schemes)
    register_safe_checkpoint_loader()
    register_safe_checkpoint_loader()
    assert dict(CheckpointLoader._schemes) == schemes
    assert CheckpointLoader._get_checkpoint_loader('/some/file.pth') is load_from_local_safe
    # http(s):// etc. keep their own loaders
    assert CheckpointLoader._get_checkpoint_loader('https://x/y.pth') is not load_from_local_safe


def test_plain_torch_load_fails_without_allowlist(trained):
    """Why the loader exists: the default torch.load can't open mmengine's own checkpoints."""
    try:
        torch.load(trained.ckpt(MAX_ITERS))
    except pickle.UnpicklingError as err:
        assert 'HistoryBuffer' in str(err) or 'numpy' in str(err)
    else:
        pytest.skip(f'torch {torch.__version__} torch.load does not default to weights_only=True')


def test_allowlist_is_exactly_what_mmengine_checkpoints_need(trained):
    """Nothing else is needed, each entry is needed (the numpy.core aliases are for checkpoints
    written under the other numpy major version, see test_numpy_core_aliases)."""
    names = allowlist_names()
    assert len(names) == len(set(names)) == len(MMENGINE_CHECKPOINT_SAFE_GLOBALS)
    ckpts = sorted(trained.work_dir.glob('*.pth'))
    assert {p.name for p in ckpts} >= {'iter_2.pth', 'iter_4.pth', 'iter_6.pth'}
    assert any(p.name.startswith('best_') for p in ckpts)
    for ckpt in ckpts:
        load_from_local_safe(str(ckpt))
    assert not set(map(str, MMENGINE_CHECKPOINT_SAFE_GLOBALS)) & set(
        map(str, torch.serialization.get_safe_globals())), 'allow-list leaked out of the load'

    ckpt = trained.ckpt(MAX_ITERS)
    numpy_core = np.ndarray.__reduce__(np.zeros(1))[0].__module__  # numpy._core... on numpy 2
    for i, (entry, name) in enumerate(zip(MMENGINE_CHECKPOINT_SAFE_GLOBALS, names)):
        if name.startswith('numpy.') and isinstance(
                entry, tuple) and not name.startswith(numpy_core + '.'):
            continue  # alias for checkpoints written under the other numpy major version
        rest = MMENGINE_CHECKPOINT_SAFE_GLOBALS[:i] + MMENGINE_CHECKPOINT_SAFE_GLOBALS[i + 1:]
        with torch.serialization.safe_globals(list(rest)):
            with pytest.raises(pickle.UnpicklingError):
                torch.load(ckpt, weights_only=True)
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(ckpt)
        # numpy.dtypes.*DType are never GLOBALs (torch checks them on BUILD), the rest are
        assert unsafe == ([] if name.startswith('numpy.dtypes.') else [name])


def test_checkpoint_contents(trained):
    ckpt = load_from_local_safe(trained.ckpt(MAX_ITERS), map_location='cpu')
    assert ckpt['meta']['iter'] == MAX_ITERS
    assert ckpt['meta']['seed'] == 0
    assert ckpt['meta']['dataset_meta'] == ToyDataset.metainfo
    assert isinstance(ckpt['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    assert len(ckpt['message_hub']['log_scalars']['train/loss'].data[0]) == MAX_ITERS
    assert isinstance(ckpt['message_hub']['runtime_info']['best_score'], np.floating)
    assert ckpt['optimizer']['state']  # momentum buffers
    assert len(ckpt['param_schedulers']) == 2
    _assert_state_equal(dict(ckpt['state_dict']), trained.final_weights)


def test_load_checkpoint_restores_weights(trained):
    torch.manual_seed(123)
    model = ToyModel()
    assert not torch.equal(model.linear.weight, trained.final_weights['linear.weight'])
    load_checkpoint(model, trained.ckpt(MAX_ITERS), map_location='cpu', strict=True)
    _assert_state_equal(model.state_dict(), trained.final_weights)


def test_runner_load_from(trained, tmp_path):
    runner = _runner(tmp_path, load_from=trained.ckpt(4))
    runner.load_or_resume()
    expected = load_from_local_safe(trained.ckpt(4))['state_dict']
    _assert_state_equal(runner.model.state_dict(), dict(expected))
    assert runner.iter == 0  # load_from alone does not resume


@pytest.mark.parametrize('how', ['load_from+resume', 'auto-resume'])
def test_resume_matches_uninterrupted_run(trained, tmp_path, how):
    """Resume at iter 4 of the uninterrupted run == having never stopped."""
    saved = load_from_local_safe(trained.ckpt(4))
    if how == 'load_from+resume':
        runner = _runner(tmp_path, load_from=trained.ckpt(4), resume=True)
    else:  # what `tools/train.py --resume` does: latest checkpoint of the work dir
        shutil.copy(trained.ckpt(4), tmp_path / 'iter_4.pth')
        (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
        runner = _runner(tmp_path, resume=True)
    runner.train()

    record = _record_hook(runner)
    assert record.start_iter == 4
    _assert_state_equal(record.start_weights, dict(saved['state_dict']))
    _assert_state_equal(record.start_optim, saved['optimizer'])
    assert record.start_lr == [g['lr'] for g in saved['optimizer']['param_groups']]
    assert runner.iter == MAX_ITERS
    _assert_state_equal(runner.model.state_dict(), trained.final_weights)
    resumed_final = load_from_local_safe(str(tmp_path / f'iter_{MAX_ITERS}.pth'))
    uninterrupted_final = load_from_local_safe(trained.ckpt(MAX_ITERS))
    _assert_state_equal(resumed_final['optimizer'], uninterrupted_final['optimizer'])
    _assert_state_equal(resumed_final['param_schedulers'], uninterrupted_final['param_schedulers'])


# ---------------------------------------------------------------- refusals


class Custom:
    """An arbitrary class: its instances pickle as NEWOBJ on GLOBAL <this module>.Custom."""

    def __init__(self, value):
        self.value = value


def touch_marker(path):
    with open(path, 'w') as f:
        f.write('code from a checkpoint ran')
    return 'pwned'


class Payload:
    """Unpickling calls ``func(*args)``: would touch a file (or run a shell command)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class SneakyGetattr:
    """Pickles as getattr(numpy.ndarray, 'tofile'): only allowed names pass the statics check."""

    def __reduce__(self):
        return getattr, (np.ndarray, 'tofile')


def _fqn(obj):
    return f'{obj.__module__}.{obj.__qualname__}'


def _evil_checkpoint(path, trained, evil):
    ckpt = load_from_local_safe(trained.ckpt(2))
    ckpt['meta']['evil'] = evil
    torch.save(ckpt, path)
    return str(path)


def test_refuses_custom_class(trained, tmp_path):
    ckpt = _evil_checkpoint(tmp_path / 'custom.pth', trained, Custom(3))
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(ToyModel(), ckpt)
    msg = str(info.value)
    assert ckpt in msg and _fqn(Custom) in msg
    assert 'arbitrary code' in msg and 'add_safe_globals' in msg
    assert info.value.filename == ckpt and info.value.unsafe_globals == [_fqn(Custom)]
    # The advice works: trusted by the user -> loads (and the user's entry survives our load).
    torch.serialization.add_safe_globals([Custom])
    assert load_from_local_safe(ckpt)['meta']['evil'].value == 3
    assert Custom in torch.serialization.get_safe_globals()


def test_keeps_users_own_safe_globals(trained):
    """Leaving torch's safe_globals() drops what it was given: entries the user had added for
    good before (here one that is also on our list) must survive our load."""
    torch.serialization.add_safe_globals([np.ndarray])
    load_from_local_safe(trained.ckpt(2))
    assert np.ndarray in torch.serialization.get_safe_globals()


@pytest.mark.parametrize('func', [touch_marker, os.system], ids=['touch_marker', 'os.system'])
def test_refuses_code_and_runs_none(trained, tmp_path, func):
    marker = tmp_path / 'marker'
    args = (str(marker), ) if func is touch_marker else (f'touch {marker}', )
    # sanity: plain pickle would run it
    pickle.loads(pickle.dumps(Payload(func, *args)))
    assert marker.exists()
    marker.unlink()

    ckpt = _evil_checkpoint(tmp_path / 'evil.pth', trained, Payload(func, *args))
    for load in (lambda: load_checkpoint(ToyModel(), ckpt),
                 lambda: _runner(tmp_path / 'wd', load_from=ckpt).load_or_resume()):
        with pytest.raises(UnsafeCheckpointError) as info:
            load()
        assert ckpt in str(info.value)
        assert _fqn(func) in str(info.value), str(info.value)
        assert 'arbitrary code' in str(info.value)
    assert not marker.exists()


def test_refuses_getattr_beyond_history_buffer_statistics(trained, tmp_path):
    ckpt = _evil_checkpoint(tmp_path / 'getattr.pth', trained, SneakyGetattr())
    assert torch.serialization.get_unsafe_globals_in_checkpoint(ckpt)  # builtins.getattr
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(ToyModel(), ckpt)
    assert "builtins.getattr(numpy.ndarray, 'tofile')" in str(info.value)
    assert info.value.unsafe_globals == ["builtins.getattr(numpy.ndarray, 'tofile')"]


class TamperedHistoryBuffer:
    """Unpickles as a HistoryBuffer whose state swaps its class-wide 'mean' for numpy.ndarray."""

    def __reduce__(self):
        state = dict(
            _max_length=10,
            _log_history=np.zeros(1),
            _count_history=np.ones(1, dtype=np.int64),
            statistics_methods=dict(mean=np.ndarray))
        return HistoryBuffer, (), state


def test_refuses_tampered_history_buffer(trained, tmp_path):
    # unpickled last (the real message-hub buffers would reset the class-wide dict otherwise)
    ckpt = load_from_local_safe(trained.ckpt(2))
    ckpt['extra'] = TamperedHistoryBuffer()
    torch.save(ckpt, tmp_path / 'tampered.pth')
    ckpt = str(tmp_path / 'tampered.pth')
    with pytest.raises(UnsafeCheckpointError, match='HistoryBuffer statistics') as info:
        load_checkpoint(ToyModel(), ckpt)
    assert ckpt in str(info.value) and "'mean'" in str(info.value)
    assert HistoryBuffer._statistics_methods['mean'] is HistoryBuffer.mean


def test_legacy_format(trained, tmp_path):
    """Pre-zipfile torch.save format: still weights_only, refusals still name the global."""
    ckpt = load_from_local_safe(trained.ckpt(2))
    legacy = tmp_path / 'legacy.pth'
    torch.save(ckpt, legacy, _use_new_zipfile_serialization=False)
    loaded = load_from_local_safe(str(legacy))
    _assert_state_equal(dict(loaded['state_dict']), dict(ckpt['state_dict']))
    ckpt['meta']['evil'] = Custom(1)
    torch.save(ckpt, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_from_local_safe(str(legacy))
    assert str(legacy) in str(info.value) and _fqn(Custom) in str(info.value)


def _save_with_numpy_module(obj, path, module):
    """torch.save, but numpy's _reconstruct/scalar pickled under ``module`` (numpy.core for
    numpy-1 checkpoints, numpy._core for numpy-2 ones) whatever numpy is installed."""
    funcs = {id(np.ndarray.__reduce__(np.zeros(1))[0]), id(np.float64(1).__reduce__()[0])}

    class Pickler(pickle._Pickler):

        def save_global(self, obj, name=None):
            if id(obj) in funcs:
                self.write(pickle.GLOBAL + f'{module}\n{obj.__name__}\n'.encode())
                self.memoize(obj)
            else:
                super().save_global(obj, name)

    pickle_module = types.ModuleType('numpy_alias_pickle')
    pickle_module.Pickler = Pickler
    torch.save(obj, path, pickle_module=pickle_module)


@pytest.mark.parametrize('module', ['numpy.core.multiarray', 'numpy._core.multiarray'])
def test_numpy_core_aliases(tmp_path, module):
    obj = dict(arr=np.arange(3, dtype=np.int64), scalar=np.float64(2.5), t=torch.ones(2))
    path = tmp_path / 'np.pth'
    _save_with_numpy_module(obj, path, module)
    assert module in str(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    loaded = load_from_local_safe(str(path))
    assert np.array_equal(loaded['arr'], obj['arr']) and loaded['arr'].dtype == np.int64
    assert loaded['scalar'] == 2.5 and torch.equal(loaded['t'], obj['t'])


def test_missing_file(tmp_path):
    missing = str(tmp_path / 'nope' / 'iter_1.pth')
    with pytest.raises(FileNotFoundError, match='nope/iter_1.pth'):
        load_checkpoint(ToyModel(), missing)
    with pytest.raises(FileNotFoundError, match='nope/iter_1.pth'):
        load_from_local_safe(missing)


def test_random_state_of_tools_train_loads_with_weights_only(tmp_path):
    """The random states tools/train.py adds to every checkpoint (RandomStateHook) are tensors,
    numbers and lists: they load without allow-listing anything and give the same draws."""
    import random

    from mmtrackgen.engine.hooks import get_random_state, set_random_state

    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.randn()  # numpy keeps a cached gaussian
    path = tmp_path / 'random_state.pth'
    torch.save({'random_state': get_random_state()}, path)
    expected = (torch.rand(3), np.random.randn(3), random.random())
    assert not torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    set_random_state(torch.load(path, weights_only=True)['random_state'])
    got = (torch.rand(3), np.random.randn(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert got[2] == expected[2]
