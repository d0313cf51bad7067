"""Does generated data make a tracker better? The paper's trainability experiment in miniature,
set up as the paper's setting is (issue 15, README.md):

- a small labelled real split (data made scarce) and a large *unlabelled pool* of the same world
  (frames and captions, no boxes): a generator pretrained on the pool and fine-tuned on the small
  split brings knowledge the tracker's labels do not have, as the paper's web-pretrained one does;
- generators: from scratch (with and without the Instance Enhancer) and pretrained + fine-tuned;
  clips from augmented (new) layouts; the pretrained one's clips also filtered by their own
  alignment (tools/filter_generated.py);
- generated data mixed at a *fraction* of the draws (GeneratedShareDataset), real-only trained as
  long as the mixtures and, as a control, for as many real epochs as they see;
- ByteTrack (motion association) and QDTrack (learned appearance), the same seeds for every row;
  mean and standard error over seeds, each row's paired difference with real-only (95% t
  interval, paired t-test p), and every training's loss curve.

    python projects/trainability/run.py --preset smoke     # every row, a few iterations
    python projects/trainability/run.py --preset full      # the table (README.md: time)

Every stage leaves its result in the work dir; a rerun (after an interruption, or with more
seeds) skips finished stages and resumes interrupted trainings from their last checkpoint.
"""
import argparse
import functools
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional

from mmengine.config import Config
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from mmtrackgen.evaluation.statistics import mean_and_sem, paired_difference
from mmtrackgen.utils import write_json_atomic

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
METRICS = ('TrackAP', 'TrackAP50', 'HOTA', 'IDF1', 'MOTA')
BASELINE = 'real-only'
EQUAL_EPOCHS = 'real-only, equal real epochs'
# row -> the training sets the tracker sees (each generated set: data/<name>)
VARIANTS = {
    BASELINE: ('real', ),
    EQUAL_EPOCHS: ('real', ),
    'real + generated (scratch)': ('real', 'generated'),
    'real + generated (pretrained)': ('real', 'generated_pretrained'),
    'real + generated (pretrained, filtered)': ('real', 'generated_pretrained_filtered'),
    'real + generated w/o enhancer (scratch)': ('real', 'generated_no_enhancer'),
    'generated only (pretrained)': ('generated_pretrained', ),
}
# generator work dir -> (what it is, with Instance Enhancers, fine-tuned from the pool model);
# it writes data/<name with generator -> generated>
GENERATORS = {
    'generator': ('TrackDiffusion from scratch', True, False),
    'generator_no_enhancer': ('TrackDiffusion without enhancer from scratch', False, False),
    'generator_pretrained': ('TrackDiffusion pretrained on the pool', True, True),
}
FILTERED = 'generated_pretrained_filtered'  # made from data/generated_pretrained
TRACKER_CONFIGS = {
    'bytetrack': 'configs/trackers/bytetrack_yolox-tiny_synthetic_real.py',
    'qdtrack': 'configs/trackers/qdtrack_r18_synthetic_real.py',
}
# Sizes. smoke: every stage for a few iterations (the tests). full: the table of README.md,
# about 3 hours on 2 cores for ByteTrack's rows and the generators, about 3 more for QDTrack's
# (resumable: run it again to continue).
PRESETS = {
    'smoke':
    dict(
        real_videos=2,
        pool_videos=4,
        autoencoder_iters=2,
        pretrain_iters=2,
        generator_iters=2,
        sampling_steps=2,
        bytetrack_iters=4,
        qdtrack_iters=2,
        min_iou=0.0,  # untrained generators: keep every clip with a box, so rows have data
        previews=False,
        seeds=[0, 1]),
    'full':
    dict(
        real_videos=8,
        pool_videos=2000,
        autoencoder_iters=1000,
        pretrain_iters=600,
        generator_iters=300,
        sampling_steps=10,
        bytetrack_iters=2000,
        qdtrack_iters=400,
        min_iou=0.5,
        previews=True,
        seeds=[0, 1, 2, 3, 4]),
}
for _sizes in PRESETS.values():  # what every preset shares
    _sizes.update(augment=1, trackers=['bytetrack', 'qdtrack'])
console = Console(stderr=True, log_path=False, soft_wrap=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train trackers on real, generated and mixed synthetic data; compare them',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument(
        '--preset',
        choices=sorted(PRESETS),
        default='full',
        help='sizes of every stage; the options below override single sizes')
    parser.add_argument('--work-dir', default='work_dirs/trainability')
    parser.add_argument(
        '--world',
        default='data/synthetic',
        help='the synthetic world (python tools/make_synthetic.py --out DIR); made if missing')
    parser.add_argument(
        '--pool-world',
        help='a world holding the unlabelled pool split (default: WORK_DIR/pool, made there '
        'with --pool-videos short clips)')
    parser.add_argument('--real-videos', type=int, help='videos of the train split the runs use')
    parser.add_argument('--pool-videos', type=int, help='clips of the unlabelled pool')
    parser.add_argument('--generator-config', default='configs/trackdiff/synthetic_tiny.py')
    parser.add_argument(
        '--pretrain-config', default='configs/trackdiff/synthetic_tiny_pretrain.py')
    parser.add_argument(
        '--autoencoder-config', default='configs/autoencoder/synthetic_f4.py',
        help="the latent generators' autoencoder, trained on the pool's frames")
    parser.add_argument(
        '--autoencoder-iters', type=int, help='iterations of the autoencoder on the pool')
    parser.add_argument('--pretrain-iters', type=int, help='iterations of pool pretraining')
    parser.add_argument(
        '--generator-iters',
        type=int,
        help='iterations of each generator on the labelled split (fine-tuning included)')
    parser.add_argument('--augment', type=int, help='augmented layouts per real video layout')
    parser.add_argument('--sampling-steps', type=int, help='DPM-Solver++ steps')
    parser.add_argument('--min-iou', type=float, help='alignment threshold of the filtered row')
    parser.add_argument('--filter-level', choices=('clip', 'instance'), default='clip')
    parser.add_argument(
        '--trackers', nargs='+', choices=sorted(TRACKER_CONFIGS), help='trackers to train')
    parser.add_argument('--bytetrack-iters', type=int, help='ByteTrack training iterations')
    parser.add_argument('--qdtrack-iters', type=int, help='QDTrack training iterations')
    parser.add_argument(
        '--generated-share',
        type=float,
        default=0.25,
        help='share of the draws that are generated in the mixed rows, in (0, 1)')
    parser.add_argument('--seeds', type=int, nargs='+', help='tracker seeds (paired rows)')
    parser.add_argument(
        '--previews',
        action=argparse.BooleanOptionalAction,
        help="the generators' sample previews (SampleVisualizationHook)")
    parser.add_argument(
        '--jobs', type=int, default=2, help='stages run at once (each on its own core)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads per stage')
    preset = parser.parse_known_args(argv)[0].preset
    parser.set_defaults(**PRESETS[preset])
    args = parser.parse_args(argv)
    for option in ('real_videos', 'pool_videos', 'autoencoder_iters', 'pretrain_iters', 'generator_iters',
                   'sampling_steps', 'bytetrack_iters', 'qdtrack_iters', 'jobs', 'threads'):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be >= 1")
    if args.augment < 0:
        parser.error('--augment must be >= 0')
    if not 0 < args.generated_share < 1:
        parser.error('--generated-share must be in (0, 1)')
    if not 0 <= args.min_iou <= 1:
        parser.error('--min-iou must be in [0, 1]')
    if len(set(args.seeds)) != len(args.seeds):
        parser.error('--seeds must not repeat')
    return args


@dataclass
class Stage:
    """One step of the experiment: a command, how to tell that its result is there, and the
    stages whose results it reads."""
    name: str
    command: list
    done: Callable[[], bool]
    log: str
    needs: tuple = ()


class Experiment:

    def __init__(self, args):
        self.args = args
        self.work_dir = osp.abspath(args.work_dir)
        self.world = osp.abspath(args.world)
        self.pool_world = osp.abspath(args.pool_world or osp.join(self.work_dir, 'pool'))
        self.stage_seconds: dict[str, float] = {}

    def path(self, *parts) -> str:
        return osp.join(self.work_dir, *parts)

    # --- data ---------------------------------------------------------------------------------

    def prepare_world(self) -> None:
        if not osp.isfile(osp.join(self.world, 'annotations/train_cocoformat.json')):
            self.run_stage(
                Stage('make the synthetic world', [
                    sys.executable,
                    osp.join(ROOT, 'tools/make_synthetic.py'), '--out', self.world, '--no-progress'
                ], lambda: False, self.path('logs/world.log')))
        small = self.path('data/train_small_cocoformat.json')
        if not osp.isfile(small):
            self.write_small_split(small)

    def pool_stage(self) -> Stage:
        """The unlabelled pool, in its own folder: the world's files stay as they are."""
        ann = osp.join(self.pool_world, 'annotations/pool_cocoformat.json')
        return Stage(
            f'make the unlabelled pool ({self.args.pool_videos} clips)', [
                sys.executable,
                osp.join(ROOT, 'tools/make_synthetic.py'), '--out', self.pool_world, '--train',
                '0', '--val', '0', '--test', '0', '--novel', '0', '--pool',
                str(self.args.pool_videos), '--overwrite', '--no-progress'
            ], lambda: osp.isfile(ann), self.path('logs/pool.log'))

    def write_small_split(self, out: str) -> None:
        """The first `--real-videos` videos of the train split, as a CocoVID file that still
        points at the world's frames (data_prefix 'train/' of the world)."""
        with open(osp.join(self.world, 'annotations/train_cocoformat.json')) as f:
            full = json.load(f)
        videos = sorted(full['videos'], key=lambda v: v['id'])
        if len(videos) < self.args.real_videos:
            raise SystemExit(f"--real-videos {self.args.real_videos}: the train split of "
                             f"'{self.world}' has only {len(videos)} videos")
        keep = {v['id'] for v in videos[:self.args.real_videos]}
        images = [im for im in full['images'] if im['video_id'] in keep]
        image_ids = {im['id'] for im in images}
        small = dict(
            full,
            videos=[v for v in videos if v['id'] in keep],
            images=images,
            annotations=[a for a in full['annotations'] if a['image_id'] in image_ids])
        if 'instances' in full:
            small['instances'] = [i for i in full['instances'] if i.get('video_id') in keep]
        os.makedirs(osp.dirname(out), exist_ok=True)
        write_json_atomic(out, small)

    @property
    def small_split(self) -> str:
        return self.path('data/train_small_cocoformat.json')

    # --- generators -----------------------------------------------------------------------------

    def train_stage(self, name: str, what: str, cfg: Callable[[], Config], iters: int,
                    needs: tuple = (), done_file: Optional[str] = None) -> Stage:
        """``tools/train.py`` on ``cfg()`` in ``WORK_DIR/name``, resumed if interrupted; done when
        ``done_file`` (default: the last iteration's checkpoint) exists."""
        work = self.path(name)
        config = osp.join(work, 'config.py')
        done_file = done_file or osp.join(work, f'iter_{iters}.pth')
        if not osp.isfile(config):
            os.makedirs(work, exist_ok=True)
            cfg().dump(config)
        command = [sys.executable, osp.join(ROOT, 'tools/train.py'), config, '--work-dir', work]
        if osp.isfile(osp.join(work, 'last_checkpoint')):
            command.append('--resume')  # an interrupted run continues
        return Stage(f'train {what} ({iters} iterations)', command,
                     lambda: osp.isfile(done_file), self.path(f'logs/{name}_train.log'), needs)

    @property
    def autoencoder_dir(self) -> str:
        """The work dir of the pool's autoencoder; the diffusers folder is its ``vae/``."""
        return self.path('autoencoder')

    def autoencoder_stage(self, needs: tuple) -> Stage:
        """The latent generators' autoencoder, trained on the pool's frames only: like Stable
        Diffusion's VAE, it comes from outside the labelled set."""

        def config() -> Config:
            cfg = Config.fromfile(osp.join(ROOT, self.args.autoencoder_config))
            dataset = cfg.train_dataloader.dataset
            dataset.data_root = self.pool_world + '/'
            dataset.ann_file = 'annotations/pool_cocoformat.json'
            dataset.data_prefix = dict(img_path='pool/')
            self.fit_schedule(cfg, self.args.autoencoder_iters)
            return cfg

        return self.train_stage(
            'autoencoder', 'the autoencoder on the pool', config, self.args.autoencoder_iters,
            needs, done_file=osp.join(self.autoencoder_dir, 'vae', 'config.json'))  # written last

    def use_autoencoder(self, cfg: Config) -> Config:
        """Point a latent generator config at the pool's autoencoder."""
        vae = cfg.model.get('data_preprocessor', {}).get('vae')
        if vae is not None and 'pretrained' in vae:
            vae.pretrained = self.autoencoder_dir
        return cfg

    @functools.cached_property
    def uses_autoencoder(self) -> bool:
        cfg = Config.fromfile(osp.join(ROOT, self.args.generator_config))
        return 'pretrained' in (cfg.model.get('data_preprocessor', {}).get('vae') or {})

    @property
    def pretrain_checkpoint(self) -> str:
        return self.path('generator_pool', f'iter_{self.args.pretrain_iters}.pth')

    def generator_stages(self) -> list:
        pool = self.pool_stage()
        stages = [pool]
        ready = ()  # what every generator waits for
        if self.uses_autoencoder:
            stages.append(self.autoencoder_stage((pool.name, )))
            ready = (stages[-1].name, )
        pretrain = self.train_stage('generator_pool', 'TrackDiffusion on the unlabelled pool',
                                    self.pretrain_config, self.args.pretrain_iters,
                                    (pool.name, *ready))
        stages.append(pretrain)
        for name, (what, enhancer, pretrained) in GENERATORS.items():
            work = self.path(name)
            config = osp.join(work, 'config.py')
            checkpoint = osp.join(work, f'iter_{self.args.generator_iters}.pth')
            stages.append(
                self.train_stage(name, what,
                                 lambda e=enhancer, p=pretrained: self.generator_config(e, p),
                                 self.args.generator_iters,
                                 (pretrain.name, ) if pretrained else ready))
            out = self.path('data', name.replace('generator', 'generated'))
            stages.append(
                Stage(
                    generation_stage(what), [
                        sys.executable,
                        osp.join(ROOT, 'tools/generate.py'), config, checkpoint, '--tracklets',
                        self.small_split, '--out-dir', out, '--augment',
                        str(self.args.augment), '--scheduler', 'DPMSolverMultistepScheduler',
                        '--steps',
                        str(self.args.sampling_steps), '--batch-size', '8', '--seed', '0'
                    ],
                    lambda o=out: osp.isfile(osp.join(o, 'annotations.json')),
                    self.path(f'logs/{name}_generate.log'), (stages[-1].name, )))
            stages.append(self.score_stage(out, what, stages[-1].name))
        source = self.path('data', 'generated_pretrained')
        filtered = self.path('data', FILTERED)
        stages.append(
            Stage(
                generation_stage('the filter'), [
                    sys.executable,
                    osp.join(ROOT, 'tools/filter_generated.py'), source, '--min-iou',
                    str(self.args.min_iou), '--level', self.args.filter_level, '--out', filtered,
                    '--overwrite'
                ],
                lambda: osp.isfile(osp.join(filtered, 'annotations.json')),
                self.path('logs/filter.log'),
                (generation_stage(GENERATORS['generator_pretrained'][0]), )))
        stages.append(self.score_stage(filtered, 'the filtered clips', stages[-1].name))
        return stages

    def score_stage(self, out: str, what: str, needs: str) -> Stage:
        report = out + '_report.json'  # tracker-free: are objects in their boxes, same look?
        name = osp.basename(out)
        return Stage(f'score {what}', [
            sys.executable, osp.join(ROOT, 'tools/evaluate_generated.py'), out, '--out', report
        ], lambda: osp.isfile(report), self.path(f'logs/{name}_evaluate.log'), (needs, ))

    def fit_schedule(self, cfg: Config, iters: int) -> Config:
        cfg.train_cfg.max_iters = iters
        cfg.train_cfg.val_interval = iters + 1
        warmup = min(50, max(1, iters // 10))
        cfg.param_scheduler = [
            dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup),
            dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup, end=iters, eta_min=1e-5)
        ]
        cfg.default_hooks.checkpoint.interval = max(1, iters // 4)
        if not self.args.previews:
            cfg.custom_hooks = [
                h for h in cfg.custom_hooks if h['type'] != 'SampleVisualizationHook'
            ]
        for hook in cfg.custom_hooks:
            if 'dataset' in hook:  # the sample previews: held-out clips of the same world
                hook.dataset.data_root = self.world + '/'
        return cfg

    def pretrain_config(self) -> Config:
        """The pool config (no boxes) on the pool world, fitted to `--pretrain-iters`."""
        cfg = Config.fromfile(osp.join(ROOT, self.args.pretrain_config))
        cfg.train_dataloader.dataset.data_root = self.pool_world + '/'
        return self.fit_schedule(self.use_autoencoder(cfg), self.args.pretrain_iters)

    def generator_config(self, enhancer: bool, pretrained: bool = False) -> Config:
        cfg = Config.fromfile(osp.join(ROOT, self.args.generator_config))
        dataset = cfg.train_dataloader.dataset
        dataset.data_root = self.world + '/'
        dataset.ann_file = self.small_split
        if not enhancer:
            cfg.model.generator.enhancer_track_dim = None  # no Instance Enhancer at all
        if pretrained:  # fine-tuning: the pool model's weights, a fresh optimiser and schedule
            cfg.load_from = self.pretrain_checkpoint
        return self.fit_schedule(self.use_autoencoder(cfg), self.args.generator_iters)

    # --- trackers -------------------------------------------------------------------------------

    def tracker_iters(self, tracker: str, variant: str) -> int:
        iters = getattr(self.args, f'{tracker}_iters')
        if variant == EQUAL_EPOCHS:  # the real draws of a mixed row: (1 - share) of its steps
            return max(1, round(iters * (1 - self.args.generated_share)))
        return iters

    def tracker_dir(self, tracker: str, variant: str, seed: int) -> str:
        return self.path('trackers', tracker, slug(variant), f'seed{seed}')

    def tracker_stages(self) -> list:
        stages = []
        for tracker in self.args.trackers:
            for variant, parts in VARIANTS.items():
                for seed in self.args.seeds:
                    stages += self.tracker_run(tracker, variant, parts, seed)
        return stages

    def tracker_run(self, tracker: str, variant: str, parts: tuple, seed: int) -> list:
        work = self.tracker_dir(tracker, variant, seed)
        config = osp.join(work, 'config.py')
        iters = self.tracker_iters(tracker, variant)
        checkpoint = osp.join(work, f'iter_{iters}.pth')
        metrics = osp.join(work, 'metrics.json')
        if not osp.isfile(config):
            os.makedirs(work, exist_ok=True)
            self.tracker_config(tracker, variant, parts, seed).dump(config)
        command = [sys.executable, osp.join(ROOT, 'tools/train.py'), config, '--work-dir', work]
        if osp.isfile(osp.join(work, 'last_checkpoint')):
            command.append('--resume')
        label = f'{tracker} on {variant}, seed {seed}'
        needs = tuple(self.producer(p) for p in parts if p != 'real')
        train = Stage(f'train {label}', command,
                      lambda c=checkpoint, m=metrics: osp.isfile(c) or osp.isfile(m),
                      osp.join(work, 'train.log'), needs)
        test = Stage(
            f'test {label}', [
                sys.executable,
                osp.join(ROOT, 'tools/test.py'), config, checkpoint, '--work-dir', work,
                '--out-metrics', metrics
            ], lambda m=metrics: osp.isfile(m), osp.join(work, 'test.log'), (train.name, ))
        return [train, test]

    @staticmethod
    def producer(part: str) -> str:
        """The stage that writes the generated set `part`."""
        if part == FILTERED:
            return generation_stage('the filter')
        return generation_stage(GENERATORS[part.replace('generated', 'generator')][0])

    def tracker_config(self, tracker: str, variant: str, parts: tuple, seed: int) -> Config:
        """The tracker's synthetic-world config with its training set replaced by `parts`
        (real and generated mixed at `--generated-share` of the draws), the world's test split
        for testing, no validation, and the iteration schedule."""
        cfg = Config.fromfile(osp.join(ROOT, TRACKER_CONFIGS[tracker]))
        sets = {'real': dict(cfg.real_train, data_root=self.world + '/', ann_file=self.small_split)}
        for part in parts:
            if part != 'real':
                sets[part] = dict(cfg.generated_train, data_root=self.path('data', part) + '/')
        if len(parts) == 1:
            train_set = sets[parts[0]]
        else:
            real, generated = parts
            train_set = dict(
                type='mmtrackgen.GeneratedShareDataset',
                real=sets[real],
                generated=sets[generated],
                generated_share=self.args.generated_share)
        if tracker == 'bytetrack':  # inside mmdet's MultiImageMixDataset (Mosaic)
            cfg.train_dataloader.dataset.dataset = train_set
        else:
            cfg.train_dataloader.dataset = train_set
        cfg.test_dataloader.dataset.data_root = self.world + '/'
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
        iters = self.tracker_iters(tracker, variant)
        cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters)
        cfg.param_scheduler = tracker_schedule(tracker, iters, cfg.optim_wrapper)
        cfg.default_hooks.checkpoint.update(interval=max(1, iters // 2), max_keep_ckpts=1)
        cfg.default_hooks.logger.interval = max(1, min(10, iters // 50))  # the loss curve
        cfg.randomness = dict(seed=seed)
        return cfg

    # --- running ------------------------------------------------------------------------------

    def start(self, stage: Stage) -> subprocess.Popen:
        os.makedirs(osp.dirname(stage.log), exist_ok=True)
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
        if self.args.threads:
            env['OMP_NUM_THREADS'] = str(self.args.threads)
        console.log(f'{stage.name} (log: {osp.relpath(stage.log)})')
        with open(stage.log, 'a') as log:
            return subprocess.Popen(stage.command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def finish(self, stage: Stage, code: int, seconds: float) -> None:
        if code != 0 or not stage.done():
            with open(stage.log) as f:
                tail = ''.join(f.readlines()[-15:])
            console.print(tail, markup=False, highlight=False)
            raise SystemExit(f"stage '{stage.name}' failed (exit {code}); its log: {stage.log}. "
                             'Rerun the same command to resume after fixing the cause.')
        self.stage_seconds[stage.name] = round(seconds, 1)
        # kept across reruns, so results.json has the time of every stage of a resumed run
        times_file = self.path('stage_seconds.json')
        times = {}
        if osp.isfile(times_file):
            with open(times_file) as f:
                times = json.load(f)
        write_json_atomic(times_file, {**times, stage.name: round(seconds, 1)})
        console.log(f'{stage.name}: done in {seconds / 60:.1f} min')

    def run_stage(self, stage: Stage) -> None:
        """Run one stage to its end, unless its result is already there."""
        if stage.done():
            console.log(f'[dim]{stage.name}: done before, skipped')
            return
        start = time.time()
        code = self.start(stage).wait()
        self.finish(stage, code, time.time() - start)

    def run_stages(self, stages: list) -> None:
        """Run the stages, up to `--jobs` at once, each when the stages it needs are done. After
        a failure no stage starts; those running finish (their results count on a rerun)."""
        pending, running, finished, failure = list(stages), {}, set(), None
        columns = (TextColumn('[bold]trainability'), BarColumn(),
                   TextColumn('{task.completed}/{task.total} stages'), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task('stages', total=len(stages))
            while pending or running:
                for stage in list(pending):
                    if failure is not None:
                        break
                    if stage.done():
                        console.log(f'[dim]{stage.name}: done before, skipped')
                    elif len(running) < self.args.jobs and finished.issuperset(stage.needs):
                        running[stage.name] = (stage, self.start(stage), time.time())
                    else:
                        continue
                    pending.remove(stage)
                    if stage.name not in running:
                        finished.add(stage.name)
                        progress.advance(task)
                if failure is not None and not running:
                    raise failure
                if pending and not running and failure is None:
                    raise SystemExit('these stages wait for stages that are not run: ' +
                                     ', '.join(s.name for s in pending))
                for name, (stage, process, started) in list(running.items()):
                    code = process.poll()
                    if code is None:
                        continue
                    del running[name]
                    try:
                        self.finish(stage, code, time.time() - started)
                    except SystemExit as e:
                        failure = failure or e
                        continue
                    finished.add(name)
                    progress.advance(task)
                if failure is not None and not running:
                    raise failure
                time.sleep(1 if running else 0)

    def run(self) -> dict:
        os.makedirs(self.work_dir, exist_ok=True)
        self.prepare_world()
        self.run_stages(self.generator_stages() + self.tracker_stages())
        results = self.collect()
        self.write_results(results)
        return results

    # --- results ------------------------------------------------------------------------------

    def collect(self) -> dict:
        """Per tracker and row: every seed's figures, mean and standard error, the paired
        difference with real-only, and the loss curves."""
        trackers = {}
        for tracker in self.args.trackers:
            rows = {}
            for variant in VARIANTS:
                runs = {}
                for seed in self.args.seeds:
                    with open(osp.join(self.tracker_dir(tracker, variant, seed),
                                       'metrics.json')) as f:
                        metrics = json.load(f)
                    runs[seed] = {name: metrics[f'track/{name}'] for name in METRICS}
                rows[variant] = dict(
                    iterations=self.tracker_iters(tracker, variant),
                    seeds=runs,
                    summary={m: mean_and_sem(r[m] for r in runs.values())
                             for m in METRICS},
                    loss_curves={
                        seed: loss_curve(self.tracker_dir(tracker, variant, seed))
                        for seed in self.args.seeds
                    })
            baseline = rows[BASELINE]['seeds']
            for variant, row in rows.items():
                if variant != BASELINE:
                    row['vs_real_only'] = {
                        m: paired_difference({s: r[m]
                                              for s, r in row['seeds'].items()},
                                             {s: r[m]
                                              for s, r in baseline.items()})
                        for m in METRICS
                    }
            trackers[tracker] = rows
        generated = {}
        for name in [*(g.replace('generator', 'generated') for g in GENERATORS), FILTERED]:
            with open(self.path('data', f'{name}_report.json')) as f:
                generated[name] = json.load(f)
        with open(self.path('data', FILTERED, 'filter_report.json')) as f:
            kept = json.load(f)
        return dict(
            settings=vars(self.args),
            data=self.data_sizes(),
            generated_clips=generated,
            filter={k: kept[k] for k in ('level', 'min_iou', 'clips', 'instances', 'boxes')},
            trackers=trackers,
            stage_seconds=self.recorded_stage_seconds())

    def recorded_stage_seconds(self) -> dict:
        times_file = self.path('stage_seconds.json')
        if not osp.isfile(times_file):
            return dict(self.stage_seconds)
        with open(times_file) as f:
            return {**json.load(f), **self.stage_seconds}

    def data_sizes(self) -> dict:
        sizes = {}
        files = {
            'real-small': self.small_split,
            'pool': osp.join(self.pool_world, 'annotations/pool_cocoformat.json'),
            'test': osp.join(self.world, 'annotations/test_cocoformat.json'),
        }
        for name in [*(g.replace('generator', 'generated') for g in GENERATORS), FILTERED]:
            files[name] = self.path('data', name, 'annotations.json')
        for name, file in files.items():
            with open(file) as f:
                content = json.load(f)
            sizes[name] = dict(
                videos=len(content['videos']),
                frames=len(content['images']),
                boxes=len(content['annotations']))
        return sizes

    def write_results(self, results: dict) -> None:
        write_json_atomic(self.path('results.json'), results)
        seeds = ', '.join(str(s) for s in self.args.seeds)
        text = [
            f'Seeds {seeds} (the same for every row); generated share of the mixed rows '
            f'{self.args.generated_share}; filter: alignment >= {self.args.min_iou} '
            f'({self.args.filter_level} level). Scores on the real test split.\n'
        ]
        for tracker, rows in results['trackers'].items():
            text += [
                f'### {tracker}: mean ± standard error\n',
                '| trained on | iterations | ' + ' | '.join(METRICS) + ' |',
                '| --- | --- |' + ' --- |' * len(METRICS)
            ]
            for variant, row in rows.items():
                cells = [
                    f"{row['summary'][m]['mean']:.3f} ± {row['summary'][m]['sem']:.3f}"
                    for m in METRICS
                ]
                text.append(f"| {variant} | {row['iterations']} | " + ' | '.join(cells) + ' |')
            text += [
                f'\n### {tracker}: paired difference with {BASELINE} [95% interval] (p)\n',
                '| trained on | ' + ' | '.join(METRICS) + ' |', '| --- |' + ' --- |' * len(METRICS)
            ]
            for variant, row in rows.items():
                if variant == BASELINE:
                    continue
                cells = [format_difference(row['vs_real_only'][m]) for m in METRICS]
                text.append(f'| {variant} | ' + ' | '.join(cells) + ' |')
            text.append('')
        with open(self.path('results.md'), 'w') as f:
            f.write('\n'.join(text))
        plot(results, self.path('results.png'))
        plot_loss_curves(results, self.path('loss_curves.png'))
        print('\n'.join(text), flush=True)
        console.log(f'results: {self.path("results.md")}, results.json, results.png, '
                    'loss_curves.png')


def format_difference(d: dict) -> str:
    if d['n'] < 2 or d['sem'] != d['sem']:  # NaN: one seed, or no spread
        return f"{d['mean']:+.3f}"
    p = 'n/a' if d['p'] != d['p'] else f"{d['p']:.2f}"
    return f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] ({p})"


def loss_curve(work: str) -> list:
    """[(iteration, loss)] of a training from mmengine's scalars.json files (one per start; a
    resumed run's later values replace the earlier ones)."""
    points = {}
    for file in sorted(glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))):
        with open(file) as f:
            for line in f:
                record = json.loads(line)
                if 'loss' in record and 'step' in record:
                    points[int(record['step'])] = float(record['loss'])
    return sorted(points.items())


def tracker_schedule(tracker: str, iters: int, optim_wrapper: dict) -> list:
    """The tracker base config's learning-rate schedule, fitted to `iters` iterations."""
    warmup = min(100, max(1, iters // 10))
    if tracker == 'bytetrack':
        lr = optim_wrapper['optimizer']['lr']
        return [
            dict(type='QuadraticWarmupLR', by_epoch=False, begin=0, end=warmup),
            dict(
                type='CosineAnnealingLR',
                eta_min=lr * 0.05,
                by_epoch=False,
                begin=warmup,
                T_max=max(1, iters - warmup),
                end=iters)
        ]
    return [
        dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup),
        dict(type='MultiStepLR', by_epoch=False, begin=0, end=iters, milestones=[iters * 3 // 4])
    ]


def plot(results: dict, out: str) -> None:
    """Bars of each row's mean with standard errors, one panel per tracker."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    trackers = list(results['trackers'])
    fig, axes = plt.subplots(len(trackers), 1, figsize=(10, 4 * len(trackers)), squeeze=False)
    for ax, tracker in zip(axes[:, 0], trackers):
        rows = results['trackers'][tracker]
        width = 0.8 / len(rows)
        for i, (variant, row) in enumerate(rows.items()):
            xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(METRICS))]
            ax.bar(
                xs, [row['summary'][m]['mean'] for m in METRICS],
                width,
                yerr=[row['summary'][m]['sem'] for m in METRICS],
                capsize=2,
                label=variant)
        ax.set_xticks(range(len(METRICS)), METRICS)
        ax.set_ylabel('score on the real test split')
        ax.set_title(f'{tracker}: mean and standard error over seeds')
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_loss_curves(results: dict, out: str) -> None:
    """Every training's loss over its iterations: has it converged?"""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    trackers = list(results['trackers'])
    fig, axes = plt.subplots(1, len(trackers), figsize=(7 * len(trackers), 4), squeeze=False)
    for ax, tracker in zip(axes[0], trackers):
        for i, (variant, row) in enumerate(results['trackers'][tracker].items()):
            for k, curve in enumerate(row['loss_curves'].values()):
                if curve:
                    steps, losses = zip(*curve)
                    ax.plot(steps, losses, color=f'C{i}', alpha=0.6, lw=0.8,
                            label=variant if k == 0 else None)
        ax.set_xlabel('iteration')
        ax.set_ylabel('training loss')
        ax.set_yscale('log')
        ax.set_title(f'{tracker}: every seed')
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def generation_stage(what: str) -> str:
    return f'generate clips with {what}'


def slug(variant: str) -> str:
    """A folder name: 'real + generated (pretrained, filtered)' -> 'real+generated_pretrained_filtered'."""
    return re.sub(r'[^A-Za-z0-9+-]+', '_', variant.replace(' + ', '+')).strip('_')


def main(argv=None):
    return Experiment(parse_args(argv)).run()


if __name__ == '__main__':
    main()
