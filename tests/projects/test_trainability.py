"""projects/trainability/run.py: the scarce real split, the tracker and generator configs it
writes for each row (fractional generated share, equal-real-epoch control, pool pretraining),
skipping finished stages on a rerun, the statistics over paired seeds, and the whole smoke
preset end to end. The full run (hours) is in projects/trainability/README.md."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from mmtrackgen.datasets.synthetic import make_synthetic_dataset
from mmtrackgen.datasets.tracklet_file import layouts_from_cocovid
from mmtrackgen.generation.writer import GeneratedDatasetWriter
from mmtrackgen.registry import DATASETS

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ('generated', 'generated_no_enhancer', 'generated_pretrained',
             'generated_pretrained_filtered')
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
    for name in GENERATED:
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
        str(world / 'world'), '--real-videos', '2', '--generator-iters', '40', '--pretrain-iters',
        '60', '--bytetrack-iters', '200', '--qdtrack-iters', '100', '--seeds', '0', '1', *extra
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
def test_each_row_trains_on_its_sets_and_tests_on_the_real_test_split(world, tracker):
    exp = experiment(world, '--generated-share', '0.5')
    exp.prepare_world()
    # frames with boxes (ByteTrack's items), videos (QDTrack's)
    items = {'real': 24 if tracker == 'bytetrack' else 2, 'generated': 8 if tracker == 'bytetrack' else 2}
    init_default_scope('mmdet')
    for variant, parts in trainability.VARIANTS.items():
        cfg = exp.tracker_config(tracker, variant, parts, seed=1)
        train_set = cfg.train_dataloader.dataset
        if tracker == 'bytetrack':
            train_set = train_set.dataset  # inside mmdet's MultiImageMixDataset
        sets = [train_set.real, train_set.generated] if 'real' in train_set else [train_set]
        roots = [Path(s.data_root).name for s in sets]
        assert roots == [{'real': 'world'}.get(p, p) for p in parts], variant
        built = DATASETS.build(train_set)
        if len(parts) == 2:  # mixed at half the draws
            assert train_set.type == 'mmtrackgen.GeneratedShareDataset'
            assert built.share == pytest.approx(0.5, abs=0.02)
            assert 0 < len(built)
        elif tracker == 'qdtrack':
            assert len(built) == items['real' if parts == ('real', ) else 'generated']
        assert Path(cfg.test_dataloader.dataset.data_root).name == 'world'
        assert cfg.val_dataloader is None
        iters = {'bytetrack': 200, 'qdtrack': 100}[tracker]
        if variant == trainability.EQUAL_EPOCHS:  # as many real draws as a mixed row
            iters //= 2
        assert cfg.train_cfg.max_iters == iters, variant
        assert max(s['end'] for s in cfg.param_scheduler) == iters
        assert cfg.randomness.seed == 1


def test_generator_configs_scratch_pretrained_and_pool(world):
    exp = experiment(world)
    exp.prepare_world()
    with_enhancer = exp.generator_config(enhancer=True)
    without = exp.generator_config(enhancer=False)
    pretrained = exp.generator_config(enhancer=True, pretrained=True)
    for cfg in (with_enhancer, without, pretrained):
        assert cfg.train_dataloader.dataset.ann_file == exp.small_split
        assert cfg.train_cfg.max_iters == 40
        assert max(s['end'] for s in cfg.param_scheduler) == 40
    assert with_enhancer.model.generator.enhancer_track_dim == 32
    assert without.model.generator.enhancer_track_dim is None
    assert pretrained.model == with_enhancer.model
    assert with_enhancer.get('load_from') is None
    assert pretrained.load_from == exp.pretrain_checkpoint
    assert exp.pretrain_checkpoint.endswith('generator_pool/iter_60.pth')
    pool = exp.pretrain_config()
    assert pool.train_dataloader.dataset.data_root == exp.pool_world + '/'
    assert pool.train_dataloader.dataset.ann_file == 'annotations/pool_cocoformat.json'
    assert pool.train_cfg.max_iters == 60
    init_default_scope('mmtrackgen')
    clips = DATASETS.build(without.train_dataloader.dataset)
    small_videos = {v['id'] for v in json.loads(Path(exp.small_split).read_text())['videos']}
    assert {clips.get_data_info(i)['video_id'] for i in range(len(clips))} == small_videos
    # what waits for what: fine-tuning for pretraining, pretraining for the pool
    stages = {s.name: s for s in exp.generator_stages()}
    finetune = stages['train TrackDiffusion pretrained on the pool (40 iterations)']
    assert finetune.needs == ('train TrackDiffusion on the unlabelled pool (60 iterations)', )
    autoencoder = 'train the autoencoder on the pool (1000 iterations)'
    assert stages[finetune.needs[0]].needs == ('make the unlabelled pool (2000 clips)',
                                               autoencoder)
    assert stages[autoencoder].needs == ('make the unlabelled pool (2000 clips)', )
    assert stages['train TrackDiffusion from scratch (40 iterations)'].needs == (autoencoder, )
    # the latent generators read the autoencoder trained on the pool, not a local work_dirs/
    for cfg in (with_enhancer, pool):
        assert cfg.model.data_preprocessor.vae.pretrained == exp.path('autoencoder')
    autoencoder_cfg = Config.fromfile(exp.path('autoencoder', 'config.py'))
    assert autoencoder_cfg.train_dataloader.dataset.data_root == exp.pool_world + '/'
    assert autoencoder_cfg.train_dataloader.dataset.data_prefix == dict(img_path='pool/')
    assert '--min-iou' in stages['generate clips with the filter'].command


def test_a_rerun_skips_finished_stages_and_resumes_interrupted_training(world, tmp_path):
    exp = experiment(world)
    exp.prepare_world()
    work = Path(exp.tracker_dir('bytetrack', 'real-only', 0))
    stages = {s.name: s for s in exp.tracker_stages()}
    train = stages['train bytetrack on real-only, seed 0']
    assert '--resume' not in train.command and not train.done()
    (work / 'last_checkpoint').write_text(str(work / 'iter_100.pth'))  # killed mid-run
    stages = {s.name: s for s in exp.tracker_stages()}
    assert '--resume' in stages['train bytetrack on real-only, seed 0'].command
    (work / 'metrics.json').write_text('{}')
    finished = stages['test bytetrack on real-only, seed 0']
    assert finished.done()
    finished.command = ['false']  # would fail if it ran
    exp.run_stage(finished)
    # what waits for what: trackers on generated clips wait for them, the others do not
    every = {s.name: s for s in exp.generator_stages() + exp.tracker_stages()}
    assert all(need in every for s in every.values() for need in s.needs)
    assert every['train qdtrack on real + generated (scratch), seed 1'].needs == (
        'generate clips with TrackDiffusion from scratch', )
    assert every['train bytetrack on real + generated (pretrained, filtered), seed 1'].needs == (
        'generate clips with the filter', )
    assert every['train bytetrack on real-only, seed 1'].needs == ()
    failing = trainability.Stage('a stage that fails', ['false'], lambda: False,
                                 str(tmp_path / 'fail.log'))
    with pytest.raises(SystemExit, match='a stage that fails.*fail.log'):
        exp.run_stage(failing)


def test_results_have_standard_errors_paired_differences_and_loss_curves(world, tmp_path):
    seeds = [0, 1, 2, 3, 4]
    exp = experiment(world, '--work-dir', str(tmp_path), '--trackers', 'bytetrack', '--seeds',
                     *map(str, seeds))
    exp.world = str(world / 'world')
    exp.prepare_world()
    # real-only: 0.4 0.45 0.6 0.45 0.6; every other row k: + k * (0.1 0.15 0.1 -0.05 0.2)
    baseline = [0.4, 0.45, 0.6, 0.45, 0.6]
    gain = [0.1, 0.15, 0.1, -0.05, 0.2]
    for k, variant in enumerate(trainability.VARIANTS):
        for seed in seeds:
            folder = Path(exp.tracker_dir('bytetrack', variant, seed))
            (folder / '20261205_000000/vis_data').mkdir(parents=True)
            value = baseline[seed] + k * gain[seed]
            (folder / 'metrics.json').write_text(
                json.dumps({f'track/{m}': value
                            for m in trainability.METRICS}))
            (folder / '20261205_000000/vis_data/scalars.json').write_text(''.join(
                json.dumps(dict(loss=2.0 / step, step=step, lr=0.01)) + '\n'
                for step in (10, 20, 30)))
    for name in GENERATED:
        data = Path(exp.path('data', name))
        data.mkdir(parents=True, exist_ok=True)
        (data / 'annotations.json').write_text(
            json.dumps(dict(videos=[{}], images=[{}, {}], annotations=[])))
        Path(exp.path('data', f'{name}_report.json')).write_text(json.dumps({'alignment': 0.5}))
    Path(exp.path('data', GENERATED[-1], 'filter_report.json')).write_text(
        json.dumps(dict(level='clip', min_iou=0.5, clips={}, instances={}, boxes={})))
    Path(exp.pool_world, 'annotations').mkdir(parents=True)
    Path(exp.pool_world, 'annotations/pool_cocoformat.json').write_text(
        json.dumps(dict(videos=[{}] * 3, images=[], annotations=[])))
    results = exp.collect()
    exp.write_results(results)
    rows = results['trackers']['bytetrack']
    scratch = rows['real + generated (pretrained)']  # k = 3
    assert scratch['summary']['HOTA']['mean'] == pytest.approx(np.mean(baseline) + 0.3)
    assert scratch['summary']['HOTA']['sem'] == pytest.approx(
        np.std(np.add(baseline, np.multiply(3, gain)), ddof=1) / np.sqrt(5))
    first = rows['real-only, equal real epochs']['vs_real_only']['HOTA']  # k = 1: hand-worked
    assert first['mean'] == pytest.approx(0.1)
    sem = np.sqrt(0.035 / 4) / np.sqrt(5)
    assert first['low'] == pytest.approx(0.1 - 2.7764 * sem, abs=1e-4)
    assert first['p'] == pytest.approx(0.0751, abs=1e-3)
    assert 'vs_real_only' not in rows['real-only']
    assert rows['real-only']['loss_curves'][0] == [(10, 0.2), (20, 0.1), (30, 2.0 / 30)]
    assert results['data']['real-small']['videos'] == 2
    assert results['data']['pool']['videos'] == 3
    assert results['generated_clips']['generated_pretrained'] == {'alignment': 0.5}
    table = (tmp_path / 'results.md').read_text()
    assert '| real-only | 200 | 0.500 ± 0.042 |' in table
    assert '| real-only, equal real epochs | 150 | 0.600 ± 0.071 |' in table
    assert '| real-only, equal real epochs | +0.100 [-0.016, +0.216] (0.08) |' in table
    saved = json.loads((tmp_path / 'results.json').read_text())
    assert saved['trackers']['bytetrack'].keys() == set(trainability.VARIANTS)
    assert (tmp_path / 'results.png').stat().st_size > 0
    assert (tmp_path / 'loss_curves.png').stat().st_size > 0


def test_bad_sizes_are_refused_before_anything_runs(world, capsys):
    with pytest.raises(SystemExit):
        trainability.parse_args(['--bytetrack-iters', '0'])
    assert '--bytetrack-iters must be >= 1' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        trainability.parse_args(['--generated-share', '1'])
    assert '--generated-share must be in (0, 1)' in capsys.readouterr().err
    smoke = trainability.parse_args(['--preset', 'smoke', '--seeds', '3', '4'])
    assert smoke.bytetrack_iters == 4 and smoke.seeds == [3, 4]  # an option beats its preset
    assert len(trainability.parse_args([]).seeds) >= 5  # the full preset: paired seeds
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


def test_smoke_preset_runs_every_row_and_a_rerun_skips_it_all(world, tmp_path, monkeypatch):
    """`--preset smoke` end to end on the tiny world (one seed, ByteTrack: the QDTrack configs
    are built above): the pool, four generators, the filter, every row trained and tested, the
    tables and curves; run again, it starts nothing."""
    argv = [
        '--preset', 'smoke', '--work-dir',
        str(tmp_path), '--world',
        str(world / 'world'), '--trackers', 'bytetrack', '--seeds', '0'
    ]
    results = trainability.main(argv)
    rows = results['trackers']['bytetrack']
    assert list(rows) == list(trainability.VARIANTS)
    assert rows['real-only']['iterations'] == 4
    assert rows['real-only, equal real epochs']['iterations'] == 3  # 4 x (1 - 0.25)
    assert all(len(row['loss_curves'][0]) == row['iterations'] for row in rows.values())
    assert results['data']['pool']['videos'] == 4 and results['data']['pool']['boxes'] == 0
    assert results['filter']['clips']['total'] == results['data']['generated_pretrained']['videos']
    assert (tmp_path / 'results.md').read_text().count('| real + generated (pretrained) |') == 2
    mixed = (tmp_path / 'trackers/bytetrack/real+generated_pretrained/seed0/config.py')
    assert 'GeneratedShareDataset' in mixed.read_text()

    def no_start(stage):
        raise AssertionError(f'{stage.name} ran again')

    monkeypatch.setattr(trainability.Experiment, 'start', lambda self, stage: no_start(stage))
    again = json.loads(json.dumps(trainability.main(argv)['trackers']))
    assert again == json.loads((tmp_path / 'results.json').read_text())['trackers']
