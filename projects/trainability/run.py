"""Does generated data make a tracker better? The paper's trainability experiment in miniature.

On the synthetic world: a small real training split (data made scarce), two tiny generators
trained on it (TrackDiffusion, and the same model without the Instance Enhancer), clips generated
by each from augmented layouts of that split, and one tracker trained per data variant and seed:

    real-small | real-small + generated | real-small + generated w/o enhancer | generated only

all scored on the same held-out real test split. Writes `results.json`, `results.md` (mean and
standard deviation over seeds) and `results.png` into the work dir.

    python projects/trainability/run.py                  # the default size (README.md)
    python projects/trainability/run.py --seeds 0 1 2 3 4 --generator-iters 900

Every stage leaves its result in the work dir; a rerun (after an interruption, or with more
seeds) skips finished stages and resumes interrupted trainings from their last checkpoint.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

from mmengine.config import Config
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from mmtrackgen.utils import write_json_atomic

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
METRICS = ('TrackAP', 'TrackAP50', 'HOTA', 'IDF1', 'MOTA')
# data variant -> which training sets the tracker sees
VARIANTS = {
    'real-small': ('real', ),
    'real-small + generated': ('real', 'generated'),
    'real-small + generated w/o enhancer': ('real', 'generated_no_enhancer'),
    'generated only': ('generated', ),
}
# generator work dir -> (what it is, with Instance Enhancers); it writes data/generated<suffix>
GENERATORS = {
    'generator': ('TrackDiffusion', True),
    'generator_no_enhancer': ('TrackDiffusion without enhancer', False),
}
TRACKER_CONFIGS = {
    'bytetrack': 'configs/trackers/bytetrack_yolox-tiny_synthetic_real.py',
    'qdtrack': 'configs/trackers/qdtrack_r18_synthetic_real.py',
}
console = Console(stderr=True, log_path=False, soft_wrap=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train trackers on real, generated and mixed synthetic data; compare them',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--work-dir', default='work_dirs/trainability')
    parser.add_argument(
        '--world',
        default='data/synthetic',
        help='the synthetic world (python tools/make_synthetic.py --out DIR); made if missing')
    parser.add_argument(
        '--real-videos', type=int, default=8, help='videos of the train split the runs may use')
    parser.add_argument('--generator-config', default='configs/trackdiff/synthetic_tiny.py')
    parser.add_argument(
        '--generator-iters', type=int, default=300, help='training iterations of each generator')
    parser.add_argument(
        '--augment', type=int, default=1, help='augmented layouts per real video layout')
    parser.add_argument('--sampling-steps', type=int, default=10, help='DPM-Solver++ steps')
    parser.add_argument('--tracker', choices=sorted(TRACKER_CONFIGS), default='bytetrack')
    parser.add_argument('--tracker-iters', type=int, default=1500)
    parser.add_argument(
        '--generated-ratio',
        type=int,
        default=1,
        help='times the generated set is repeated in the mixed variants')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2], help='tracker seeds')
    parser.add_argument(
        '--jobs', type=int, default=2, help='stages run at once (each on its own core)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads per stage')
    args = parser.parse_args(argv)
    for option in ('real_videos', 'generator_iters', 'sampling_steps', 'tracker_iters',
                   'generated_ratio', 'jobs', 'threads'):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be >= 1")
    if args.augment < 0:
        parser.error('--augment must be >= 0')
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

    def generator_stages(self) -> list:
        stages = []
        for name, (what, enhancer) in GENERATORS.items():
            work = self.path(name)
            config = osp.join(work, 'config.py')
            checkpoint = osp.join(work, f'iter_{self.args.generator_iters}.pth')
            if not osp.isfile(config):
                os.makedirs(work, exist_ok=True)
                self.generator_config(enhancer).dump(config)
            command = [sys.executable, osp.join(ROOT, 'tools/train.py'), config, '--work-dir', work]
            if osp.isfile(osp.join(work, 'last_checkpoint')):
                command.append('--resume')  # an interrupted run continues
            stages.append(
                Stage(
                    f'train {what} ({self.args.generator_iters} iterations)',
                    command,
                    lambda c=checkpoint: osp.isfile(c),
                    self.path(f'logs/{name}_train.log')))
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
            report = out + '_report.json'  # tracker-free: are objects in their boxes, same look?
            stages.append(
                Stage(
                    f'score the clips of {what}', [
                        sys.executable,
                        osp.join(ROOT, 'tools/evaluate_generated.py'), out, '--out', report
                    ],
                    lambda r=report: osp.isfile(r),
                    self.path(f'logs/{name}_evaluate.log'), (stages[-1].name, )))
        return stages

    def generator_config(self, enhancer: bool) -> Config:
        cfg = Config.fromfile(osp.join(ROOT, self.args.generator_config))
        iters = self.args.generator_iters
        dataset = cfg.train_dataloader.dataset
        dataset.data_root = self.world + '/'
        dataset.ann_file = self.small_split
        for hook in cfg.custom_hooks:
            if 'dataset' in hook:  # the sample previews: held-out clips of the same world
                hook.dataset.data_root = self.world + '/'
        if not enhancer:
            cfg.model.generator.enhancer_track_dim = None  # no Instance Enhancer at all
        cfg.train_cfg.max_iters = iters
        cfg.train_cfg.val_interval = iters + 1
        warmup = min(50, max(1, iters // 10))
        cfg.param_scheduler = [
            dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup),
            dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup, end=iters, eta_min=1e-5)
        ]
        cfg.default_hooks.checkpoint.interval = max(1, iters // 4)
        return cfg

    # --- trackers -------------------------------------------------------------------------------

    def tracker_stages(self) -> list:
        stages = []
        for variant, parts in VARIANTS.items():
            for seed in self.args.seeds:
                work = self.path('trackers', slug(variant), f'seed{seed}')
                config = osp.join(work, 'config.py')
                iters = self.args.tracker_iters
                checkpoint = osp.join(work, f'iter_{iters}.pth')
                metrics = osp.join(work, 'metrics.json')
                if not osp.isfile(config):
                    os.makedirs(work, exist_ok=True)
                    self.tracker_config(parts, seed).dump(config)
                command = [
                    sys.executable,
                    osp.join(ROOT, 'tools/train.py'), config, '--work-dir', work
                ]
                if osp.isfile(osp.join(work, 'last_checkpoint')):
                    command.append('--resume')
                label = f'{self.args.tracker} on {variant}, seed {seed}'
                needs = tuple(
                    generation_stage(GENERATORS[p.replace('generated', 'generator')][0])
                    for p in parts if p != 'real')
                stages.append(
                    Stage(
                        f'train {label}',
                        command,
                        lambda c=checkpoint, m=metrics: osp.isfile(c) or osp.isfile(m),
                        osp.join(work, 'train.log'),
                        needs))
                stages.append(
                    Stage(
                        f'test {label}', [
                            sys.executable,
                            osp.join(ROOT, 'tools/test.py'), config, checkpoint, '--work-dir', work,
                            '--out-metrics', metrics
                        ],
                        lambda m=metrics: osp.isfile(m),
                        osp.join(work, 'test.log'), (stages[-1].name, )))
        return stages

    def tracker_config(self, parts: tuple, seed: int) -> Config:
        """The tracker's synthetic-world config with its training set replaced by `parts`,
        the world's test split for testing, no validation, and the iteration schedule."""
        cfg = Config.fromfile(osp.join(ROOT, TRACKER_CONFIGS[self.args.tracker]))
        sets = {
            'real':
            dict(cfg.real_train, data_root=self.world + '/', ann_file=self.small_split),
            'generated':
            dict(cfg.generated_train, data_root=self.path('data/generated') + '/'),
            'generated_no_enhancer':
            dict(cfg.generated_train, data_root=self.path('data/generated_no_enhancer') + '/'),
        }
        chosen = []
        for part in parts:
            dataset = sets[part]
            if part != 'real' and 'real' in parts and self.args.generated_ratio > 1:
                dataset = dict(
                    type='RepeatDataset', times=self.args.generated_ratio, dataset=dataset)
            chosen.append(dataset)
        train_set = chosen[0] if len(chosen) == 1 else dict(type='ConcatDataset', datasets=chosen)
        if self.args.tracker == 'bytetrack':  # inside mmdet's MultiImageMixDataset (Mosaic)
            cfg.train_dataloader.dataset.dataset = train_set
        else:
            cfg.train_dataloader.dataset = train_set
        cfg.test_dataloader.dataset.data_root = self.world + '/'
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
        iters = self.args.tracker_iters
        cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters)
        cfg.param_scheduler = tracker_schedule(self.args.tracker, iters, cfg.optim_wrapper)
        cfg.default_hooks.checkpoint.update(interval=max(1, iters // 2), max_keep_ckpts=1)
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
        per_variant = {}
        for variant in VARIANTS:
            runs = {}
            for seed in self.args.seeds:
                with open(self.path('trackers', slug(variant), f'seed{seed}', 'metrics.json')) as f:
                    metrics = json.load(f)
                runs[seed] = {name: metrics[f'track/{name}'] for name in METRICS}
            per_variant[variant] = dict(
                seeds=runs,
                mean={m: statistics.fmean(r[m] for r in runs.values())
                      for m in METRICS},
                std={
                    m: statistics.stdev([r[m] for r in runs.values()]) if len(runs) > 1 else 0.0
                    for m in METRICS
                })
        generated = {}
        for name in ('generated', 'generated_no_enhancer'):
            with open(self.path('data', f'{name}_report.json')) as f:
                generated[name] = json.load(f)
        return dict(
            settings=vars(self.args),
            data=self.data_sizes(),
            generated_clips=generated,
            variants=per_variant,
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
            'generated': self.path('data/generated/annotations.json'),
            'generated w/o enhancer': self.path('data/generated_no_enhancer/annotations.json'),
            'test': osp.join(self.world, 'annotations/test_cocoformat.json'),
        }
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
        lines = [
            '| trained on | ' + ' | '.join(METRICS) + ' |',
            '| --- |' + ' --- |' * len(METRICS),
        ]
        for variant, figures in results['variants'].items():
            cells = [f"{figures['mean'][m]:.3f} ± {figures['std'][m]:.3f}" for m in METRICS]
            lines.append(f'| {variant} | ' + ' | '.join(cells) + ' |')
        seeds = ', '.join(str(s) for s in self.args.seeds)
        table = '\n'.join(lines)
        with open(self.path('results.md'), 'w') as f:
            f.write(f'{self.args.tracker}, seeds {seeds}: mean ± standard deviation on the '
                    f'real test split\n\n{table}\n')
        plot(results, self.path('results.png'), self.args.tracker)
        print(table, flush=True)
        console.log(f'results: {self.path("results.md")}, results.json, results.png')


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


def plot(results: dict, out: str, tracker: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    variants = list(results['variants'])
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(variants)
    for i, variant in enumerate(variants):
        figures = results['variants'][variant]
        xs = [j + (i - (len(variants) - 1) / 2) * width for j in range(len(METRICS))]
        ax.bar(
            xs, [figures['mean'][m] for m in METRICS],
            width,
            yerr=[figures['std'][m] for m in METRICS],
            capsize=3,
            label=variant)
    ax.set_xticks(range(len(METRICS)), METRICS)
    ax.set_ylabel('score on the real test split')
    ax.set_title(f'{tracker}: mean and standard deviation over seeds')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def generation_stage(what: str) -> str:
    return f'generate clips with {what}'


def slug(variant: str) -> str:
    return variant.replace(' + ', '+').replace(' ', '_').replace('/', '')


def main(argv=None):
    return Experiment(parse_args(argv)).run()


if __name__ == '__main__':
    main()
