"""tools/generate.py end to end on a micro model: validation, output, resume, sharding."""
import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmtrackgen.registry import DATASETS
from tests.factories import moving_track, write_cocovid

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / 'tests/data/trackdiff_micro.py')
CLASSES = ('square', 'circle', 'triangle', 'cross')  # the config's classes


def generate(checkpoint, tracklets, out_dir, *extra, nproc=None, check=True, timeout=600):
    if nproc:
        cmd = ['bash', str(ROOT / 'tools/dist_generate.sh'), CONFIG, checkpoint, str(nproc)]
    else:
        cmd = [sys.executable, str(ROOT / 'tools/generate.py'), CONFIG, checkpoint]
    cmd += ['--tracklets', tracklets, '--out-dir', str(out_dir), '--batch-size', '2', *extra]
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1', PORT='29611')
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def read_frames(out_dir):
    return {
        Path(p).relative_to(out_dir).as_posix(): np.asarray(Image.open(p), dtype=np.int16)
        for p in sorted(glob.glob(str(out_dir / '*/img1/*.jpg')))
    }


@pytest.fixture(scope='module')
def reference(checkpoint, tracklets, tmp_path_factory):
    out = tmp_path_factory.mktemp('reference')
    proc = generate(checkpoint, tracklets, out, '--previews', 'gif', '--clip-stride', '2')
    return out, proc


def test_generates_a_cocovid_dataset_mmdet_loads(reference):
    out, proc = reference
    ann = json.loads((out / 'annotations.json').read_text())
    # 'walk' (8 frames) gives clips at 0, 2, 4 of 4 frames at stride 2; 'short' (5) at 0.
    names = [v['name'] for v in ann['videos']]
    assert names == ['walk_000000', 'walk_000002', 'walk_000004', 'short_000000']
    assert ann['info']['seed'] == 0 and len(ann['info']['checkpoint_sha256']) == 64
    assert len(read_frames(out)) == 4 * 4
    dataset = DATASETS.build(
        dict(
            type='mmdet.MOTChallengeDataset',
            ann_file=str(out / 'annotations.json'),
            data_prefix=dict(img_path=str(out)),
            metainfo=dict(classes=CLASSES),
            pipeline=[],
            test_mode=True))
    assert len(dataset) == 4
    frame = dataset.get_data_info(0)['images'][0]
    assert os.path.isfile(frame['img_path'])
    assert (out / 'previews' / 'walk_000000.gif').is_file()
    assert (out / 'previews' / 'contact_sheet.png').is_file()
    assert '[4/4 clips]' in proc.stdout


def test_labels_are_the_input_tracklets_in_output_pixels(reference):
    out, _ = reference
    ann = json.loads((out / 'annotations.json').read_text())
    video = next(v for v in ann['videos'] if v['name'] == 'walk_000002')
    images = {im['id']: im for im in ann['images'] if im['video_id'] == video['id']}
    first = min(images.values(), key=lambda im: im['frame_id'])
    assert (first['width'], first['height']) == (16, 16)  # the micro model's size
    boxes = {
        a['instance_id']: a['bbox']
        for a in ann['annotations'] if a['image_id'] == first['id']
    }
    # Input frame 2 of 'walk': instance 1 at (6, 4, 6, 6) in a 32x24 frame -> x/2, y/1.5.
    np.testing.assert_allclose(boxes[1], [3, 4 / 1.5, 3, 4], atol=0.01)
    assert 2 not in boxes  # instance 2 appears at frame 3


def test_invalid_tracklets_write_nothing(checkpoint, tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text(
        json.dumps({
            'clips': [{
                'name':
                'a',
                'image_size': [16, 16],
                'num_frames':
                4,
                'instances': [{
                    'id': 1,
                    'category': 'square',
                    'boxes': [[0, 0, 4, float('nan')]] * 4
                }]
            }]
        }))
    out = tmp_path / 'out'
    proc = generate(checkpoint, str(bad), out, check=False)
    assert proc.returncode == 2
    assert 'bad.json' in proc.stderr and 'Traceback' not in proc.stderr
    assert not out.exists()


def test_unknown_category_is_refused_before_work(checkpoint, tmp_path):
    path = write_cocovid(
        str(tmp_path),
        [dict(name='v', num_frames=4, tracks={1: moving_track(0, 0, 4, (1, 1), (4, 4), (1, 0))})],
        classes=('zebra', ),
        write_frames=False)
    proc = generate(checkpoint, path, tmp_path / 'out', check=False)
    assert proc.returncode == 2 and "'zebra'" in proc.stderr and "'v'" in proc.stderr
    assert not (tmp_path / 'out').exists()


def test_killed_run_resumes_to_the_same_dataset(checkpoint, tracklets, reference, tmp_path):
    ref_out, _ = reference
    out = tmp_path / 'out'
    cmd = [
        sys.executable,
        str(ROOT / 'tools/generate.py'), CONFIG, checkpoint, '--tracklets', tracklets, '--out-dir',
        str(out), '--batch-size', '1', '--clip-stride', '2'
    ]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while not glob.glob(str(out / '*/clip.json')) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = glob.glob(str(out / '*/clip.json'))
    assert finished and not (out / 'annotations.json').exists()
    # Whatever the kill interrupted, every visible clip folder is complete.
    for record in finished:
        assert len(os.listdir(Path(record).parent / 'img1')) == 4
    rerun = generate(checkpoint, tracklets, out, '--clip-stride', '2')
    assert 'already finished' in rerun.stdout
    assert not glob.glob(str(out / '.partial/*/*'))
    ours, theirs = read_frames(out), read_frames(ref_out)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert np.abs(ours[key] - theirs[key]).max() <= 2, key
    ann, ref = (json.loads((d / 'annotations.json').read_text()) for d in (out, ref_out))
    assert ann['annotations'] == ref['annotations'] and ann['videos'] == ref['videos']


def test_two_processes_give_the_one_process_dataset(checkpoint, tracklets, reference, tmp_path):
    ref_out, _ = reference
    generate(checkpoint, tracklets, tmp_path, '--clip-stride', '2', nproc=2)
    ours, theirs = read_frames(tmp_path), read_frames(ref_out)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert np.abs(ours[key] - theirs[key]).max() <= 2, key
    ann, ref = (json.loads((d / 'annotations.json').read_text()) for d in (tmp_path, ref_out))
    assert ann['annotations'] == ref['annotations'] and ann['images'] == ref['images']


def test_augmented_layouts_are_generated_too(checkpoint, tmp_path):
    path = tmp_path / 'one.json'
    path.write_text(
        json.dumps({
            'clips': [{
                'name':
                'one',
                'image_size': [16, 16],
                'num_frames':
                4,
                'instances': [{
                    'id': 1,
                    'category': 'circle',
                    'boxes': [[1 + t, 2, 7 + t, 8] for t in range(4)]
                }]
            }]
        }))
    generate(checkpoint, str(path), tmp_path / 'out', '--augment', '2')
    ann = json.loads((tmp_path / 'out' / 'annotations.json').read_text())
    assert [v['name']
            for v in ann['videos']] == ['one_000000', 'one_aug000_000000', 'one_aug001_000000']
    assert ann['info']['augment'] == 2
