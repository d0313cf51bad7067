"""A process of a 2-process CPU (gloo) run that dies: the launcher stops the run and says which.

tools/dist_generate.sh and tools/dist_train.sh start torchrun; when a worker dies, torchrun
stops the others (which would otherwise wait for it in a collective) and exits non-zero with a
summary naming the failed rank. These tests SIGKILL rank 1 from outside once it is working and
check that the whole run ends within a bound, with that summary, and that no process is left.
"""
import datetime
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config

from mmtrackgen.registry import MODELS
from mmtrackgen.utils import load_config, prepare_cpu_distributed
from tests.factories import moving_track, write_cocovid

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'tests/data/trackdiff_micro.py')
CLASSES = ('square', 'circle', 'triangle', 'cross')
STOP_WITHIN = 60  # seconds from the kill to the launcher's exit (it takes a few)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (from /proc)."""
    children = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                stat = Path(f'/proc/{entry}/stat').read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(')', 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def worker_of_rank(launcher_pid: int, rank: int) -> int | None:
    for pid in descendants(launcher_pid):
        try:
            environ = Path(f'/proc/{pid}/environ').read_bytes().split(b'\0')
        except OSError:
            continue
        if f'RANK={rank}'.encode() in environ and b'TORCHELASTIC_RUN_ID=none' in environ:
            return pid
    return None


def kill_rank_and_wait(cmd, ready, tmp_path, rank=1):
    """Start ``cmd``; once ``ready()`` holds, SIGKILL the worker of ``rank``; wait for the end.

    Returns (exit code, seconds from the kill to the exit, output, the workers' pids)."""
    log = tmp_path / 'launcher.log'
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        OMP_NUM_THREADS='1',
        PORT=str(free_port()),
        PYTHONPATH=str(ROOT))
    with open(log, 'w') as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while not ready() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert proc.poll() is None, log.read_text()[-3000:]
            assert ready(), 'the run did not get going'
            workers = descendants(proc.pid)
            victim = worker_of_rank(proc.pid, rank)
            assert victim is not None, log.read_text()[-3000:]
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            code = proc.wait(timeout=STOP_WITHIN + 60)
            stopped_after = time.monotonic() - killed_at
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return code, stopped_after, log.read_text(), workers


def check_stopped_with_a_message(code, stopped_after, output, workers, rank=1):
    print(f'launcher exited with {code}, {stopped_after:.1f} s after the kill')
    assert code != 0, output[-3000:]
    assert stopped_after < STOP_WITHIN, f'{stopped_after:.0f} s'
    assert re.search(rf'rank\s*:\s*{rank} \(local_rank: {rank}\)', output), output[-3000:]
    assert 'exitcode  : -9' in output and 'Signal 9 (SIGKILL)' in output, output[-3000:]
    time.sleep(0.5)
    alive = [
        pid for pid in workers if Path(f'/proc/{pid}').exists()
        and Path(f'/proc/{pid}/stat').read_text().split(') ')[1][0] != 'Z'
    ]
    assert not alive, f'processes left: {alive}'


def test_dead_generation_rank_stops_dist_generate(tmp_path):
    torch.manual_seed(0)
    model = MODELS.build(load_config(CONFIG).model)
    checkpoint = tmp_path / 'micro.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    tracks = {1: moving_track(0, 0, 40, (2, 2), (6, 6), (0, 0))}
    tracklets = write_cocovid(
        str(tmp_path / 'tracklets'), [dict(name='long', num_frames=40, tracks=tracks)],
        classes=CLASSES,
        write_frames=False)  # 10 clips, 5 for each rank
    out = tmp_path / 'out'
    cmd = [
        'bash',
        str(ROOT / 'tools/dist_generate.sh'), CONFIG,
        str(checkpoint), '2', '--tracklets', tracklets, '--out-dir',
        str(out), '--batch-size', '1', '--steps', '50'
    ]
    # Rank 1 is killed once it has made its writer (process group joined, model loaded).
    result = kill_rank_and_wait(cmd, lambda: (out / '.partial' / 'rank1').is_dir(), tmp_path)
    check_stopped_with_a_message(*result)
    assert not (out / 'annotations.json').exists()
    for record in out.glob('*/clip.json'):  # whatever rank 0 finished is complete
        assert len(list((record.parent / 'img1').iterdir())) == 4


def test_dead_training_rank_stops_dist_train(data_root, tmp_path):
    root = data_root.rstrip('/')  # the micro world of conftest.py
    work_dir = tmp_path / 'work'
    cmd = [
        'bash',
        str(ROOT / 'tools/dist_train.sh'), CONFIG, '2', '--work-dir',
        str(work_dir), '--cfg-options', f'train_dataloader.dataset.data_root={root}/',
        f'custom_hooks.2.dataset.data_root={root}/', 'train_cfg.max_iters=1000'
    ]
    # Rank 1 is killed once rank 0 has logged an iteration: both are inside the training loop,
    # where every step all-reduces the gradients.
    result = kill_rank_and_wait(cmd, lambda: bool(list(work_dir.glob('*/vis_data/scalars.json'))),
                                tmp_path)
    check_stopped_with_a_message(*result)


def test_dist_cfg_timeout_reaches_the_cpu_process_group(monkeypatch):
    """env_cfg.dist_cfg.timeout (seconds) bounds the gloo collectives of CPU runs too."""
    calls = []
    monkeypatch.setattr(dist, 'is_initialized', lambda: False)
    monkeypatch.setattr(dist, 'init_process_group', lambda **kwargs: calls.append(kwargs))
    monkeypatch.setenv('RANK', '0')
    cfg = Config(dict(launcher='pytorch', env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=90))))
    if torch.cuda.is_available():
        pytest.skip('CPU-only path')
    assert prepare_cpu_distributed(cfg)
    assert calls == [dict(backend='gloo', timeout=datetime.timedelta(seconds=90))]
    assert cfg.env_cfg.dist_cfg.backend == 'gloo' and cfg.env_cfg.dist_cfg.timeout == 90
    cfg = Config(dict(launcher='pytorch'))
    calls.clear()
    prepare_cpu_distributed(cfg)
    assert calls == [dict(backend='gloo')]  # torch's default timeout


def test_generation_waits_hours_for_uneven_shards(monkeypatch):
    """Ranks wait for each other once, after their shards; torch's default collective timeout
    (10 minutes with NCCL) would end a run whose shards differ by more than that."""
    import datetime

    import tools.generate as generate
    calls = []
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setattr(generate.dist, 'is_initialized', lambda: False)
    monkeypatch.setattr(generate.dist, 'init_process_group', lambda **kw: calls.append(kw))
    monkeypatch.setattr(generate.dist, 'get_rank', lambda: 0)
    monkeypatch.setattr(generate.dist, 'get_world_size', lambda: 2)
    monkeypatch.setattr(generate.torch.cuda, 'is_available', lambda: False)
    assert generate.init_distributed(
        'pytorch',
        generate.parse_args(['c.py', 'x.pth', '--tracklets', 't.json', '--out-dir',
                             'o']).dist_timeout) == (0, 2)
    generate.init_distributed('pytorch', 0.5)
    assert [c['timeout']
            for c in calls] == [datetime.timedelta(hours=24),
                                datetime.timedelta(minutes=30)]
    assert all(c['backend'] == 'gloo' for c in calls)
