"""A full disk and folders that cannot be written, for tools/generate.py and tools/train.py.

Each ends in one line on stderr naming what failed and where, exit code 2, no traceback; the
clips finished before stay intact and loadable, no partial file is left visible, and running the
same command again after "freeing space" completes the job. A full disk is simulated by making
the writer's ``open`` raise ``OSError(ENOSPC)`` at a chosen file; a folder without write
permission with ``chmod`` (skipped as root, whom modes do not stop) and, for every user, by
making ``os.makedirs`` raise ``EACCES`` under it.
"""
import errno
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mmtrackgen.generation.writer as writer_module
import mmtrackgen.utils.files as files_module
import tools.train
from mmtrackgen.generation.runner import ClipGenerator
from mmtrackgen.generation.writer import layout_from_record
from tests.factories import moving_track, write_cocovid
from tools.generate import main as generate_main

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'tests/data/trackdiff_micro.py')
CLASSES = ('square', 'circle', 'triangle', 'cross')
CLIPS = ['walk_000000', 'walk_000004', 'short_000000']


@pytest.fixture(scope='module')
def tracklets(tmp_path_factory):
    """Videos of 8 and 5 frames: the 3 clips of 4 frames of CLIPS."""
    root = tmp_path_factory.mktemp('tracklets')
    videos = [
        dict(name='walk', num_frames=8, tracks={1: moving_track(0, 0, 8, (2, 2), (6, 6), (2, 1))}),
        dict(name='short', num_frames=5, tracks={7: moving_track(1, 0, 5, (4, 4), (8, 8), (1, 1))}),
    ]
    return write_cocovid(str(root), videos, classes=CLASSES, write_frames=False)


def generate(checkpoint, tracklets, out, capsys):
    """tools/generate.py in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        code = generate_main([
            CONFIG, checkpoint, '--tracklets', tracklets, '--out-dir',
            str(out), '--batch-size', '1', '--device', 'cpu'
        ])
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err):
    assert 'Traceback' not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), err
    return lines[0]


def disk_full_at(monkeypatch, ending):
    """Make the writer's ``open`` (and the atomic file writer's, which writes
    ``annotations.json``) fail with ENOSPC for paths ending with ``ending``."""

    def full_open(path, *args, **kwargs):
        if str(path).endswith(ending) or (ending == '.tmp' and '.tmp' in os.path.basename(path)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(writer_module, 'open', full_open, raising=False)
    monkeypatch.setattr(files_module, 'open', full_open, raising=False)


def check_finished_clips(out):
    """Every visible clip folder is complete and loads; returns their names."""
    names = sorted(p.parent.name for p in out.glob('*/clip.json'))
    for name in names:
        layout = layout_from_record(json.loads((out / name / 'clip.json').read_text()))
        frames = sorted((out / name / 'img1').iterdir())
        assert len(frames) == layout.num_frames == 4
        for frame in frames:
            assert np.asarray(Image.open(frame)).shape == (16, 16, 3)
    visible = sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith('.'))
    assert visible == names  # no clip folder without its clip.json
    assert not list(out.glob('.partial/*/*'))  # the failed clip's files were removed
    assert not list(out.glob('*.tmp*'))
    return names


def test_full_disk_mid_clip_then_at_merge_then_rerun(checkpoint, tracklets, tmp_path, capsys,
                                                     monkeypatch):
    out = tmp_path / 'out'
    # 1. The disk fills up while the second clip's frames are written.
    with monkeypatch.context() as m:
        disk_full_at(m, os.path.join('walk_000004', 'img1', '000002.jpg'))
        code, _, err = generate(checkpoint, tracklets, out, capsys)
    assert code == 2
    line = one_error_line(err)
    assert f"clip 'walk_000004' could not be written into '{out}'" in line
    assert 'No space left on device' in line and 'rerun' in line
    finished = check_finished_clips(out)
    assert 'walk_000000' in finished and 'walk_000004' not in finished
    assert not (out / 'annotations.json').exists()
    before = {p: p.read_bytes() for p in (out / 'walk_000000').rglob('*') if p.is_file()}

    # 2. Space for the clips, but not for the merged annotations.
    with monkeypatch.context() as m:
        disk_full_at(m, '.tmp')
        code, out_text, err = generate(checkpoint, tracklets, out, capsys)
    assert code == 2
    line = one_error_line(err)
    assert f"'annotations.json' could not be written into '{out}'" in line
    assert 'No space left on device' in line and 'already finished' in out_text
    assert check_finished_clips(out) == sorted(CLIPS)
    assert not (out / 'annotations.json').exists()

    # 3. Space freed: the same command completes; the first clip was not rewritten.
    code, out_text, err = generate(checkpoint, tracklets, out, capsys)
    assert code == 0, err
    assert check_finished_clips(out) == sorted(CLIPS)
    ann = json.loads((out / 'annotations.json').read_text())
    assert [v['name'] for v in ann['videos']] == CLIPS
    assert {p: p.read_bytes() for p in (out / 'walk_000000').rglob('*') if p.is_file()} == before


def test_full_disk_while_writing_previews_keeps_the_dataset(checkpoint, tracklets, tmp_path, capsys,
                                                            monkeypatch):
    import tools.generate

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    out = tmp_path / 'out'
    monkeypatch.setattr(tools.generate, 'write_previews', full)
    capsys.readouterr()
    try:
        code = generate_main([
            CONFIG, checkpoint, '--tracklets', tracklets, '--out-dir',
            str(out), '--batch-size', '1', '--device', 'cpu', '--previews', 'gif'
        ])
    except SystemExit as e:
        code = e.code
    line = one_error_line(capsys.readouterr().err)
    assert code == 2
    assert f"previews could not be written into '{out / 'previews'}'" in line
    assert 'No space left on device' in line and 'are complete' in line
    assert check_finished_clips(out) == sorted(CLIPS)
    assert (out / 'annotations.json').exists()


@pytest.mark.parametrize('how', ['chmod', 'eacces'])
def test_unwritable_output_folder_is_refused_before_sampling(how, checkpoint, tracklets, tmp_path,
                                                             capsys, monkeypatch):
    out = tmp_path / 'out'
    out.mkdir()
    if how == 'chmod':
        if os.geteuid() == 0:
            pytest.skip('file modes do not restrict root')
        out.chmod(0o500)
    else:
        makedirs = os.makedirs

        def denied(path, *args, **kwargs):
            if str(path).startswith(str(out)):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return makedirs(path, *args, **kwargs)

        monkeypatch.setattr(os, 'makedirs', denied)
    sampled = []
    monkeypatch.setattr(ClipGenerator, 'sample', lambda self, jobs, **kw: sampled.append(jobs))
    try:
        code, out_text, err = generate(checkpoint, tracklets, out, capsys)
    finally:
        out.chmod(0o700)
    assert code == 2
    line = one_error_line(err)
    assert f"output folder '{out}' cannot be written: Permission denied" in line
    assert not sampled and 'clips]' not in out_text
    assert not list(out.iterdir())


def run_train(argv, monkeypatch, capsys):
    monkeypatch.setattr(sys, 'argv', ['tools/train.py', CONFIG, *argv])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        tools.train.main()
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize('how', ['under_a_file', 'chmod', 'eacces'])
def test_unwritable_work_dir_is_refused_before_training(how, tmp_path, monkeypatch, capsys):
    work_dir = tmp_path / 'parent' / 'work'
    reason = 'Permission denied'
    if how == 'under_a_file':
        (tmp_path / 'parent').write_text('a file where the folder should be')
        reason = 'Not a directory'
    elif how == 'chmod':
        if os.geteuid() == 0:
            pytest.skip('file modes do not restrict root')
        (tmp_path / 'parent').mkdir(mode=0o500)
    else:
        makedirs = os.makedirs

        def denied(path, *args, **kwargs):
            if str(path).startswith(str(tmp_path)):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return makedirs(path, *args, **kwargs)

        monkeypatch.setattr(os, 'makedirs', denied)
    built = []
    monkeypatch.setattr(tools.train, 'build_runner', lambda cfg: built.append(cfg))
    try:
        code, err = run_train(['--work-dir', str(work_dir)], monkeypatch, capsys)
    finally:
        if (tmp_path / 'parent').is_dir():
            (tmp_path / 'parent').chmod(0o700)
    assert code == 2
    line = one_error_line(err)
    assert f"work dir '{work_dir}' cannot be written: {reason}" in line
    assert '--work-dir' in line and not built


def test_full_disk_while_training_is_one_line(tmp_path, monkeypatch, capsys):
    """A checkpoint or log write failing mid-run (here raised by the run itself)."""
    target = tmp_path / 'work' / 'iter_4.pth'

    def full(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    monkeypatch.setattr(tools.train, 'run', full)
    code, err = run_train(['--work-dir', str(tmp_path / 'work')], monkeypatch, capsys)
    assert code == 2
    line = one_error_line(err)
    assert f"writing '{target}' failed: No space left on device" in line and '--resume' in line
