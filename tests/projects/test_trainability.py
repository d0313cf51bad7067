"""projects/trainability/run.py: the scarce real split, the tracker and generator configs it
writes for each variant, skipping finished stages on a rerun, and the table over seeds. The
full run (hours) is in projects/trainability/README.md; here every piece runs on a tiny world."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from PIL import Image

from mmtrackgen.datasets.synthetic import make_synthetic_dataset
from mmtrackgen.datasets.tracklet_file import layouts_from_cocovid
from mmtrackgen.generation.writer import GeneratedDatasetWriter
from mmtrackgen.registry import DATASETS

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location('trainability_run',
                                              ROOT / 'projects/trainability/run.py')
trainability = importlib.util.module_from_spec(spec)
spec.loader.exec_module(trainability)


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    """A world of 3 train videos (12 frames), 1 test video, and two generated folders of 2
    clips each (4 frames of 32 px) where the experiment keeps them."""
    root = tmp_path_factory.mktemp('trainability')
    tiny = dict(novel_videos=0, frames_per_video=12, progress=False)
    make_synthetic_dataset(
        str(root / 'world'),
        splits=dict(train=3, val=1, test=1),
        image_size=(64, 64),
        seed=0,
        **tiny)
    source = root / 'clips'
    make_synthetic_dataset(
        str(source),
        splits=dict(gen=2),
        image_size=(32, 32),
        seed=1,
        **dict(tiny, frames_per_video=4))
    layouts = layouts_from_cocovid(
        json.loads((source / 'annotations/gen_cocoformat.json').read_text()))
    for name in ('generated', 'generated_no_enhancer'):
        writer = GeneratedDatasetWriter(str(root / 'work/data' / name))
        for layout in layouts:
            frames = [
                np.asarray(Image.open(source / 'gen' / layout.name / 'img1' / f'{t + 1:06d}.jpg'))
                for t in range(layout.num_frames)
            ]
            writer.submit(layout, np.stack(frames))
        writer.close()
        writer.merge([layout.name for layout in layouts], ['square', 'circle', 'triangle', 'cross'],
                     info={})
    return root


def experiment(world, *extra):
    args = trainability.parse_args([
        '--work-dir',
        str(world / 'work'), '--world',
        str(world / 'world'), '--real-videos', '2', '--generator-iters', '40', '--tracker-iters',
        '200', '--seeds', '0', '1', *extra
    ])
    return trainability.Experiment(args)


def test_small_split_keeps_the_first_videos_and_only_their_frames(world):
    exp = experiment(world)
    exp.prepare_world()
    full = json.loads((world / 'world/annotations/train_cocoformat.json').read_text())
    small = json.loads(Path(exp.small_split).read_text())
    kept = sorted(v['id'] for v in full['videos'])[:2]
    assert sorted(v['id'] for v in small['videos']) == kept
    assert {im['video_id'] for im in small['images']} == set(kept)
    assert len(small['images']) == 2 * 12
    image_ids = {im['id'] for im in small['images']}
    assert {a['image_id'] for a in small['annotations']} <= image_ids
    expected = [a for a in full['annotations'] if a['image_id'] in image_ids]
    assert len(small['annotations']) == len(expected) > 0


@pytest.mark.parametrize('tracker', ['bytetrack', 'qdtrack'])
def test_each_variant_trains_on_its_sets_and_tests_on_the_real_test_split(world, tracker):
    exp = experiment(world, '--tracker', tracker)
    exp.prepare_world()
    frames = {'real': 24, 'generated': 8, 'generated_no_enhancer': 8}  # frames with boxes or not
    init_default_scope('mmdet')
    for variant, parts in trainability.VARIANTS.items():
        cfg = exp.tracker_config(parts, seed=1)
        train_set = cfg.train_dataloader.dataset
        if tracker == 'bytetrack':
            train_set = train_set.dataset  # inside mmdet's MultiImageMixDataset
        sets = train_set.get('datasets', [train_set])
        roots = [Path(s.data_root).name for s in sets]
        assert roots == [{'real': 'world'}.get(p, p) for p in parts], variant
        built = DATASETS.build(train_set)
        if tracker == 'bytetrack':  # frames with at least one box (filter_empty_gt)
            assert 0 < len(built) <= sum(frames[p] for p in parts)
        else:  # videos
            assert len(built) == sum(2 for _ in parts)
        assert Path(cfg.test_dataloader.dataset.data_root).name == 'world'
        assert cfg.val_dataloader is None
        assert cfg.train_cfg.max_iters == 200
        assert max(s['end'] for s in cfg.param_scheduler) == 200
        assert cfg.randomness.seed == 1


def test_generator_config_trains_on_the_small_split_with_and_without_enhancer(world):
    exp = experiment(world)
    exp.prepare_world()
    with_enhancer = exp.generator_config(enhancer=True)
    without = exp.generator_config(enhancer=False)
    for cfg in (with_enhancer, without):
        assert cfg.train_dataloader.dataset.ann_file == exp.small_split
        assert cfg.train_cfg.max_iters == 40
        assert max(s['end'] for s in cfg.param_scheduler) == 40
    assert with_enhancer.model.generator.enhancer_track_dim == 32
    assert without.model.generator.enhancer_track_dim is None
    init_default_scope('mmtrackgen')
    clips = DATASETS.build(without.train_dataloader.dataset)
    small_videos = {v['id'] for v in json.loads(Path(exp.small_split).read_text())['videos']}
    assert {clips.get_data_info(i)['video_id'] for i in range(len(clips))} == small_videos


def test_a_rerun_skips_finished_stages_and_resumes_interrupted_training(world, tmp_path):
    exp = experiment(world)
    exp.prepare_world()
    work = Path(exp.path('trackers', 'real-small', 'seed0'))
    stages = {s.name: s for s in exp.tracker_stages()}
    train = stages['train bytetrack on real-small, seed 0']
    assert '--resume' not in train.command and not train.done()
    (work / 'last_checkpoint').write_text(str(work / 'iter_100.pth'))  # killed mid-run
    stages = {s.name: s for s in exp.tracker_stages()}
    assert '--resume' in stages['train bytetrack on real-small, seed 0'].command
    (work / 'metrics.json').write_text('{}')
    finished = stages['test bytetrack on real-small, seed 0']
    assert finished.done()
    finished.command = ['false']  # would fail if it ran
    exp.run_stage(finished)
    # what waits for what: trackers on generated clips wait for them, the others do not
    every = {s.name: s for s in exp.generator_stages() + exp.tracker_stages()}
    assert all(need in every for s in every.values() for need in s.needs)
    assert every['train bytetrack on real-small + generated, seed 1'].needs == (
        'generate clips with TrackDiffusion', )
    assert every['train bytetrack on real-small, seed 1'].needs == ()
    failing = trainability.Stage('a stage that fails', ['false'], lambda: False,
                                 str(tmp_path / 'fail.log'))
    with pytest.raises(SystemExit, match='a stage that fails.*fail.log'):
        exp.run_stage(failing)


def test_results_table_has_mean_and_standard_deviation_over_seeds(world, tmp_path):
    exp = experiment(world, '--work-dir', str(tmp_path))
    exp.world = str(world / 'world')
    exp.prepare_world()
    scores = {}
    for k, variant in enumerate(trainability.VARIANTS):
        for seed in (0, 1):
            folder = Path(exp.path('trackers', trainability.slug(variant), f'seed{seed}'))
            folder.mkdir(parents=True)
            value = 0.1 * k + 0.2 * seed
            scores[(variant, seed)] = value
            (folder / 'metrics.json').write_text(
                json.dumps({f'track/{m}': value
                            for m in trainability.METRICS}))
    for name in ('generated', 'generated_no_enhancer'):
        data = Path(exp.path('data', name))
        data.mkdir(parents=True)
        (data / 'annotations.json').write_text(
            json.dumps(dict(videos=[{}], images=[{}, {}], annotations=[])))
        Path(exp.path('data', f'{name}_report.json')).write_text(json.dumps({'alignment': 0.5}))
    results = exp.collect()
    exp.write_results(results)
    figures = results['variants']['real-small + generated']
    assert figures['mean']['HOTA'] == pytest.approx(0.1 + 0.1)
    assert figures['std']['HOTA'] == pytest.approx(np.std([0.1, 0.3], ddof=1))
    assert results['data']['real-small']['videos'] == 2
    assert results['generated_clips']['generated'] == {'alignment': 0.5}
    table = (tmp_path / 'results.md').read_text()
    assert '| real-small + generated | 0.200 ± 0.141 |' in table
    assert json.loads(
        (tmp_path / 'results.json').read_text())['variants'].keys() == set(trainability.VARIANTS)
    assert (tmp_path / 'results.png').stat().st_size > 0


def test_bad_sizes_are_refused_before_anything_runs(world, capsys):
    with pytest.raises(SystemExit):
        trainability.parse_args(['--tracker-iters', '0'])
    assert '--tracker-iters must be >= 1' in capsys.readouterr().err
    exp = experiment(world, '--real-videos', '50', '--work-dir', str(world / 'other'))
    with pytest.raises(SystemExit, match='--real-videos 50.*only 3 videos'):
        exp.prepare_world()
    assert not Path(exp.small_split).exists()


def test_stages_run_in_parallel_after_the_stages_they_need(world, tmp_path):
    exp = experiment(world, '--jobs', '2')
    marks = {name: tmp_path / name for name in 'abc'}

    def stage(name, script, needs=()):
        return trainability.Stage(name, ['sh', '-c', script], marks[name].exists,
                                  str(tmp_path / f'{name}.log'), needs)

    # b runs only after a (it checks a's file); c runs beside a: both start at once and each
    # waits for the other's file, so they finish only if they overlap.
    stages = [
        stage(
            'a', f'touch {tmp_path}/a_started; for i in $(seq 50); do '
            f'test -f {tmp_path}/c_started && touch {marks["a"]} && exit; sleep 0.1; done'),
        stage('b', f'test -f {marks["a"]} && touch {marks["b"]}', needs=('a', )),
        stage(
            'c', f'touch {tmp_path}/c_started; for i in $(seq 50); do '
            f'test -f {tmp_path}/a_started && touch {marks["c"]} && exit; sleep 0.1; done'),
    ]
    exp.run_stages(stages)
    assert all(mark.exists() for mark in marks.values())
    assert set(exp.stage_seconds) == {'a', 'b', 'c'}
    assert {'a', 'b', 'c'} <= set(experiment(world).recorded_stage_seconds())  # a later rerun

    failing = [stage('a', 'exit 3'), stage('b', f'touch {marks["b"]}.again', needs=('a', ))]
    marks['a'].unlink()
    with pytest.raises(SystemExit, match="stage 'a' failed \\(exit 3\\)"):
        exp.run_stages(failing)
    assert not (tmp_path / 'b.again').exists()
