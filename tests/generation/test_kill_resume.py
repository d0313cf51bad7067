"""tools/generate.py killed with SIGKILL while it writes a clip and while it merges the shards,
then run again: the dataset equals an uninterrupted run's and no partial file is ever visible.

The kills are exact: a small wrapper script (written by the test, not part of the product) swaps
the writer module's ``open`` for one that SIGKILLs the process at the chosen file, then runs the
tool's ``main``. tests/generation/test_generate.py kills a run between clips (mid-clip).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tools.generate import main as generate_main

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'tests/data/trackdiff_micro.py')
CLIPS = ['walk_000000', 'walk_000002', 'walk_000004', 'short_000000']

# Runs tools/generate.py's main with the writer's `open` replaced: `frame:<clip>:<n>` dies on
# opening frame n of that clip (frames 1..n-1 are on disk), `merge:<bytes>` dies once that many
# bytes of the merged annotations' temporary file are on disk.
KILLER = '''
import os
import signal
import sys

import mmtrackgen.generation.writer as writer
import mmtrackgen.utils.files as files
from tools.generate import main

where, argv = sys.argv[1].split(':'), sys.argv[2:]


def die():
    os.kill(os.getpid(), signal.SIGKILL)


class DyingFile:

    def __init__(self, f, limit):
        self.f, self.limit, self.written = f, limit, 0

    def write(self, text):
        room = self.limit - self.written
        self.f.write(text[:room])  # dies part-way through a write, as a kill would
        self.written += min(len(text), room)
        if self.written >= self.limit:
            self.f.flush()
            os.fsync(self.f.fileno())
            die()

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def dying_open(path, mode='r', *args, **kwargs):
    path = str(path)
    if where[0] == 'frame' and path.endswith(os.path.join(where[1], 'img1', where[2].zfill(6)
                                                          + '.jpg')):
        die()
    f = open(path, mode, *args, **kwargs)
    if where[0] == 'merge' and '.tmp' in os.path.basename(path):
        return DyingFile(f, int(where[1]))
    return f


writer.open = files.open = dying_open  # frames; annotations.json (written atomically)
sys.exit(main(argv))
'''


def generate_args(checkpoint, tracklets, out, *extra):
    return [
        CONFIG, checkpoint, '--tracklets', tracklets, '--out-dir',
        str(out), '--clip-stride', '2', '--device', 'cpu', *extra
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_killed(tmp_path, where, args, nproc=None):
    """Run the killer wrapper (under torchrun with ``nproc`` processes); returns the process."""
    script = tmp_path / 'killer.py'
    script.write_text(KILLER)
    launcher = [sys.executable]
    if nproc:
        launcher += [
            '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
            f'--master_port={free_port()}'
        ]
        args = [*args, '--launcher', 'pytorch']
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    return subprocess.run([*launcher, str(script), where, *args],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)


def frame_files(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.glob('*/img1/*.jpg'))}


def assert_complete_clips(out, names):
    for name in names:
        assert (out / name / 'clip.json').is_file(), name
        assert len(list((out / name / 'img1').iterdir())) == 4, name


@pytest.fixture(scope='module')
def reference(checkpoint, tracklets, tmp_path_factory):
    out = tmp_path_factory.mktemp('reference')
    assert generate_main(generate_args(checkpoint, tracklets, out, '--batch-size', '1')) == 0
    return out


def test_kill_mid_write_then_mid_merge_then_rerun(checkpoint, tracklets, reference, tmp_path):
    out = tmp_path / 'out'
    args = generate_args(checkpoint, tracklets, out, '--batch-size', '1')

    # 1. Killed while writing clip 2, between its frame files 2 and 3.
    proc = run_killed(tmp_path, 'frame:walk_000002:3', args)
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert_complete_clips(out, ['walk_000000'])
    assert not (out / 'walk_000002').exists()  # the clip being written is not visible ...
    partial = out / '.partial' / 'rank0' / 'walk_000002'
    assert sorted(os.listdir(partial / 'img1')) == ['000001.jpg', '000002.jpg']  # ... but begun
    assert not (out / 'annotations.json').exists()
    first_clip = frame_files(out)

    # 2. Run again on 2 processes; rank 0 is killed while it writes the merged annotations.
    proc = run_killed(tmp_path, 'merge:300', args, nproc=2)
    assert proc.returncode != 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 'already finished' in proc.stdout  # rank 0 skipped walk_000000
    assert_complete_clips(out, CLIPS)
    assert not (out / 'annotations.json').exists()  # never a partial annotations.json ...
    (tmp, ) = out.glob('annotations.json.tmp*')  # ... only its temporary file, cut short
    assert 300 <= tmp.stat().st_size
    with pytest.raises(json.JSONDecodeError):
        json.loads(tmp.read_text())
    assert {k: v for k, v in frame_files(out).items() if k in first_clip} == first_clip

    # 3. Run again, uninterrupted, on 1 process; a reader polling annotations.json meanwhile
    # only ever finds a complete file.
    seen, stop = [], threading.Event()

    def poll():
        while True:
            done = stop.is_set()  # one last look after the run
            try:
                seen.append(len(json.loads((out / 'annotations.json').read_text())['videos']))
            except FileNotFoundError:
                pass
            except ValueError:  # a partial file
                seen.append('corrupt')
            if done:
                return
            stop.wait(0.002)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        assert generate_main(args) == 0
    finally:
        stop.set()
        reader.join()
    assert seen and set(seen) == {len(CLIPS)}
    assert not list(out.glob('annotations.json.tmp*'))
    assert not list(out.glob('.partial/*/*'))

    ours, theirs = frame_files(out), frame_files(reference)
    assert ours.keys() == theirs.keys() and len(ours) == 4 * len(CLIPS)
    for key in ours:
        a, b = (np.frombuffer(v, np.uint8) for v in (ours[key], theirs[key]))
        if not np.array_equal(a, b):
            # float noise between thread counts moves a pixel by 1 before encoding, which can
            # move a JPEG coefficient by a quantisation step: a few levels in one 8x8 block;
            # another seed or clip would differ by tens of levels everywhere
            pa, pb = (np.asarray(Image.open(d / key), np.int16) for d in (out, reference))
            assert np.abs(pa - pb).max() <= 8 and np.abs(pa - pb).mean() < 0.5, key
    ann, ref = (json.loads((d / 'annotations.json').read_text()) for d in (out, reference))
    for key in ('videos', 'images', 'annotations', 'categories'):
        assert ann[key] == ref[key], key
