"""tools/app.py refuses what the page cannot serve with one line and exit code 2, before it
listens on any port."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_app(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, str(ROOT / 'tools/app.py'), *args],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=120)


@pytest.mark.parametrize('config, message', [
    ('tests/data/trackdiff_micro.py', "checkpoint '{ckpt}' does not exist"),
    ('tests/data/svd_micro.py', 'generates from a first frame (image-to-video)'),
])
def test_app_refuses_with_one_line(config, message, tmp_path):
    ckpt = str(tmp_path / 'missing.pth')
    if 'svd' in config:
        ckpt = str(tmp_path / 'any.pth')
        Path(ckpt).write_bytes(b'')
    proc = run_app(config, ckpt, '--port', '7999')
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message.format(ckpt=ckpt) in proc.stderr
    assert 'Traceback' not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
