"""Open mmengine checkpoints with ``torch.load(weights_only=True)``.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``. mmengine 0.10.x's local-file
loader passes no ``weights_only``, so ``load_checkpoint``, ``Runner(load_from=...)`` and
``--resume`` fail with ``UnpicklingError`` on checkpoints mmengine itself wrote: besides tensors
they hold a few non-tensor objects (``HistoryBuffer`` in the message hub, numpy arrays/scalars).

:func:`register_safe_checkpoint_loader` replaces mmengine's local-file loader (scheme prefix
``''``) with one that keeps ``weights_only=True`` and allow-lists exactly those globals, for the
duration of the load only. Anything else is refused with :class:`UnsafeCheckpointError`; there is
never a silent fallback to ``weights_only=False``.
"""
import contextlib
import os.path as osp
import pickle
import re
import threading
from typing import Callable, List, Sequence, Tuple, Union

import numpy as np
import torch

__all__ = [
    'MMENGINE_CHECKPOINT_SAFE_GLOBALS', 'UnsafeCheckpointError', 'allowlist_names',
    'load_from_local_safe', 'register_safe_checkpoint_loader', 'safe_torch_load'
]

# An entry is what ``torch.serialization.safe_globals`` accepts: a class/function (matched by
# ``f'{__module__}.{__qualname__}'``) or ``(obj, 'full.pickled.name')`` for an object pickled
# under a name other than its own.
SafeGlobal = Union[Callable, Tuple[Callable, str]]


def _numpy_multiarray():
    """numpy's ``multiarray`` module: ``numpy._core`` since numpy 2, ``numpy.core`` before."""
    try:
        from numpy._core import multiarray  # numpy >= 2 (1.26 has a partial shim)
        if hasattr(multiarray, '_reconstruct') and hasattr(multiarray, 'scalar'):
            return multiarray
    except ImportError:
        pass
    from numpy.core import multiarray  # numpy < 2
    return multiarray


def _under_both_numpy_core_names(obj: Callable) -> List[SafeGlobal]:
    """``obj`` under the pickle names numpy 1 (``numpy.core``) and 2 (``numpy._core``) write, so
    checkpoints saved with either numpy major version load with the one installed."""
    name = obj.__name__
    return [(obj, f'numpy.core.multiarray.{name}'), (obj, f'numpy._core.multiarray.{name}')]


class _RefusedGetattr(pickle.UnpicklingError):
    """Raised by :func:`_history_buffer_statistic` for any other ``getattr`` in a checkpoint."""

    def __init__(self, global_name: str):
        self.global_name = global_name
        super().__init__(f'{global_name} is not allowed: mmtrackgen only allow-lists '
                         'builtins.getattr for the HistoryBuffer statistics methods '
                         f'({", ".join(_HISTORY_BUFFER_STATISTICS)})')


# HistoryBuffer.__getstate__ pickles the class-level ``_statistics_methods`` dict; its default
# values are the methods HistoryBuffer.min/max/current/mean, which pickle (protocol 2, nested
# qualname) as ``getattr(HistoryBuffer, 'min')``: GLOBAL builtins.getattr + REDUCE.
_HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_statistic(obj, name):
    """Stand-in unpickled for ``builtins.getattr``: resolves only ``HistoryBuffer.<statistic>``.

    The real getattr must never be allow-listed: combined with torch's default allow-list (e.g.
    ``torch._tensor._rebuild_from_type_v2``, which calls its first argument) it would let a
    crafted checkpoint reach and call arbitrary functions.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    if obj is HistoryBuffer and name in _HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    if isinstance(obj, type) or callable(obj):
        owner = f'{getattr(obj, "__module__", "?")}.{getattr(obj, "__qualname__", obj)}'
    else:
        owner = f'<{type(obj).__module__}.{type(obj).__qualname__} object>'
    raise _RefusedGetattr(f'builtins.getattr({owner}, {name!r})')


def _build_allowlist() -> Tuple[SafeGlobal, ...]:
    from mmengine.logging.history_buffer import HistoryBuffer

    multiarray = _numpy_multiarray()
    entries: List[SafeGlobal] = [
        # message_hub.log_scalars: every logged scalar ('train/loss', 'train/lr', 'train/time',
        # ...) is a HistoryBuffer (NEWOBJ + BUILD -> HistoryBuffer.__setstate__).
        HistoryBuffer,
        # ... whose state holds getattr(HistoryBuffer, 'min'|'max'|'current'|'mean'): a restricted
        # getattr that resolves exactly those four (see _history_buffer_statistic).
        (_history_buffer_statistic, 'builtins.getattr'),
        # HistoryBuffer._log_history/_count_history are ndarrays:
        # REDUCE(_reconstruct, (ndarray, (0,), b'b')) + BUILD(ndarray.__setstate__).
        *_under_both_numpy_core_names(multiarray._reconstruct),
        np.ndarray,
        # Their dtype is pickled as REDUCE(numpy.dtype, ('f8', False, True)) ...
        np.dtype,
        # ... + BUILD on the result, whose type is a numpy.dtypes.*DType class since numpy 1.25
        # (never a GLOBAL, so get_unsafe_globals_in_checkpoint can't see it; torch checks the
        # instance type on BUILD). Float64DType: HistoryBuffer._log_history of float scalars and
        # the numpy scalars below; Int64DType: HistoryBuffer._count_history (always int64) and
        # _log_history of int scalars (e.g. a metric returning a count).
        type(np.dtype(np.float64)),
        type(np.dtype(np.int64)),
        # numpy scalars in message_hub.runtime_info: LogProcessor's 'eta' (np.float64; also
        # CheckpointHook(save_best=...)'s 'best_score' when a metric returns one):
        # REDUCE(multiarray.scalar, (dtype('float64'), b'<8 bytes>')).
        *_under_both_numpy_core_names(multiarray.scalar),
    ]
    unique: List[SafeGlobal] = []
    for entry in entries:  # np.dtype(np.float64) is a plain np.dtype before numpy 1.25
        if entry not in unique:
            unique.append(entry)
    return tuple(unique)


#: Globals (beyond torch's own weights_only defaults) that checkpoints written by mmengine's
#: Runner/CheckpointHook contain. Determined by training with a real Runner and inspecting the
#: result with ``torch.serialization.get_unsafe_globals_in_checkpoint`` (see
#: tests/utils/test_checkpoint.py). collections.OrderedDict/Counter (optimizer/param-scheduler
#: state) and all tensor/dtype/device globals are already allowed by torch.
MMENGINE_CHECKPOINT_SAFE_GLOBALS: Tuple[SafeGlobal, ...] = _build_allowlist()


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs more than the weights_only allow-list, so it was refused.

    Attributes:
        filename: the checkpoint path.
        unsafe_globals: the offending ``module.name`` globals (may be empty when torch refused the
            file for another reason; then ``detail`` holds torch's message).
        reason: set instead of ``unsafe_globals`` when the file unpickled but was refused after.
    """

    def __init__(self,
                 filename: str,
                 unsafe_globals: Sequence[str] = (),
                 detail: str = '',
                 reason: str = ''):
        self.filename = filename
        self.unsafe_globals = list(unsafe_globals)
        self.detail = detail
        self.reason = reason
        objs = [g for g in self.unsafe_globals if not g.startswith('builtins.getattr(')]
        if reason:
            what = reason
        elif self.unsafe_globals:
            what = (f'it references {", ".join(self.unsafe_globals)}, outside the weights_only '
                    'allow-list (torch defaults + '
                    'mmtrackgen.utils.MMENGINE_CHECKPOINT_SAFE_GLOBALS)')
        else:
            what = 'torch.load(weights_only=True) could not unpickle it'
        msg = (f"Refused to load checkpoint '{filename}': {what}. Unpickling arbitrary globals "
               'could execute arbitrary code, so the file was not loaded (there is no fallback '
               'to weights_only=False). If you trust the source of this file, ')
        if objs or not (reason or self.unsafe_globals):
            msg += ('allow-list what it needs yourself before loading, e.g. '
                    f'`torch.serialization.add_safe_globals([{", ".join(objs) or "..."}])` (the '
                    'imported classes/functions, not strings), then load again.')
        else:  # a getattr(...) or a tampered HistoryBuffer cannot be allow-listed selectively
            msg += ('load it explicitly with torch.load(path, weights_only=False) and re-save the '
                    'parts you need.')
        if detail:
            msg += f'\ntorch reported: {detail}'
        super().__init__(msg)

    def __reduce__(self):  # keep picklable (e.g. across DataLoader/multiprocessing)
        return type(self), (self.filename, self.unsafe_globals, self.detail, self.reason)


# torch's safe_globals context adds to / removes from one process-wide set; serialize our loads so
# two threads can't remove each other's entries mid-load.
_ALLOWLIST_LOCK = threading.RLock()


@contextlib.contextmanager
def _allowlisted():
    """Allow-list MMENGINE_CHECKPOINT_SAFE_GLOBALS for the duration of the block only.

    Entries the user already added (``add_safe_globals``) are skipped, because leaving
    ``safe_globals`` removes everything it was given and would otherwise drop them too.
    """
    with _ALLOWLIST_LOCK:
        present = torch.serialization.get_safe_globals()
        missing = [g for g in MMENGINE_CHECKPOINT_SAFE_GLOBALS if g not in present]
        with torch.serialization.safe_globals(missing):
            yield


def _unsafe_globals_in(filename: str) -> List[str]:
    """Statically list the not-allowed globals (call inside ``_allowlisted``)."""
    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(filename))
    except Exception:  # legacy (non-zip) format, torchscript archive, corrupt file, ...
        return []


def _torch_detail(message: str) -> str:
    """The informative part of torch's weights_only error (drops its weights_only=False advice)."""
    found = re.search(r'WeightsUnpickler error:\s*(.*?)(?:\n\nCheck the documentation|$)', message,
                      re.S)
    return (found.group(1) if found else message).strip()


def safe_torch_load(filename: str, map_location=None):
    """``torch.load(filename, map_location, weights_only=True)`` with the mmengine allow-list.

    Raises:
        UnsafeCheckpointError: the file needs globals outside the allow-list.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    with _allowlisted():
        # HistoryBuffer.__setstate__ merges the pickled statistics methods into the class-level
        # HistoryBuffer._statistics_methods. A crafted file could put other allow-listed callables
        # under 'mean'/'current'/... (LogProcessor calls them); keep the existing ones.
        statistics = dict(HistoryBuffer._statistics_methods)
        for name in _HISTORY_BUFFER_STATISTICS:  # the class dict is empty until a first __init__
            statistics.setdefault(name, getattr(HistoryBuffer, name))
        try:
            checkpoint = torch.load(filename, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as err:
            unsafe = _unsafe_globals_in(filename)
            # torch re-raises unpickler errors `from None`; ours is still on __context__.
            cause = err.__context__
            if isinstance(cause, _RefusedGetattr) and cause.global_name not in unsafe:
                unsafe.append(cause.global_name)
            raise UnsafeCheckpointError(str(filename), unsafe, _torch_detail(str(err))) from None
        finally:
            replaced = [
                f'{name!r} -> {method!r}'
                for name, method in HistoryBuffer._statistics_methods.items()
                if name in statistics and method is not statistics[name]
            ]
            HistoryBuffer._statistics_methods.update(statistics)
        if replaced:
            raise UnsafeCheckpointError(
                str(filename),
                reason='it replaces HistoryBuffer statistics methods (' + ', '.join(replaced) + ')')
        return checkpoint


def load_from_local_safe(filename: str, map_location=None):
    """mmengine local-file checkpoint loader (scheme prefix ``''``), weights_only edition.

    Named ``load_from_...`` because mmengine logs ``name[10:]`` as the backend ("local_safe").
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_torch_load(filename, map_location=map_location)


def register_safe_checkpoint_loader() -> None:
    """Make mmengine's ``CheckpointLoader`` open local files with :func:`load_from_local_safe`.

    Idempotent. Covers ``mmengine.runner.load_checkpoint``, ``Runner(load_from=...)`` and
    ``Runner(resume=True)``; other schemes (http://, open-mmlab://, s3://, ...) are untouched.
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    if CheckpointLoader._schemes.get('') is not load_from_local_safe:
        CheckpointLoader.register_scheme(prefixes='', loader=load_from_local_safe, force=True)


def _fqn(obj: SafeGlobal) -> str:
    if isinstance(obj, tuple):
        return obj[1]
    return f'{obj.__module__}.{obj.__qualname__}'


def allowlist_names() -> List[str]:
    """The pickled ``module.name`` of every allow-list entry (for messages/tests)."""
    return [_fqn(g) for g in MMENGINE_CHECKPOINT_SAFE_GLOBALS]
