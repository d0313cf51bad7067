"""Benchmarks of TrackDiffusion: conditioning overhead, scaling, sampling, pipeline, efficiency.

    python tools/benchmark.py --suite conditioning [--suite scaling ...|--suite all] \
        [--size tiny|mid|micro] [--repeats R] [--warmup W] [--device cpu|cuda] \
        [--dtype fp32|bf16] [--threads T] --out FILE.json [--plots DIR]
    python tools/benchmark.py --suite sampling --checkpoint CKPT [--config CONFIG] \
        [--num-clips 16] [--solvers ddim:50,dpmpp:20] --out FILE.json

Every figure is the median and spread (interquartile range, min/max) over ``--repeats`` runs
after ``--warmup`` runs, written with the machine, the versions and the sizes into one JSON file
(rewritten after each suite, so a long run keeps what it finished). docs/benchmarks.md says what
each suite measures, how, and the targets; ``--size micro`` runs every suite in seconds.
"""
import argparse
import contextlib
import copy
import datetime
import gc
import json
import math
import os
import os.path as osp
import platform
import subprocess
import sys
import tempfile
import time
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

# The source checkout: the suites read its configs/ and tests/data/ (benchmarks run from a clone).
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

SUITES = ('conditioning', 'scaling', 'sampling', 'pipeline', 'efficiency', 'recipe')
SCHEMA_VERSION = 1

# Per size: the config whose model (and, for sampling/pipeline, data pipeline) is used, overrides
# of its generator / tracklet encoder for the synthetic-input suites, and the default workload.
SIZES = {
    'micro':
    dict(
        config='tests/data/trackdiff_micro.py',
        image_size=16,
        num_frames=4,
        batch_size=2,
        num_instances=8,
        repeats=2,
        warmup=1,
        scaling_instances=(1, 8, 16),
        scaling_frames=(2, 3, 4),
        matmul_size=256,
        num_clips=2,
        sampling_batch_size=2,
        solvers='ddim:6,dpmpp:2,euler:2',  # seconds, not minutes
        pipeline_clips=2),
    'tiny':
    dict(
        config='configs/trackdiff/synthetic_tiny_pixel32.py',
        image_size=32,
        num_frames=8,
        batch_size=8,
        num_instances=8,
        repeats=5,
        warmup=2,
        scaling_instances=(1, 8, 16, 32, 64),
        scaling_frames=(4, 8, 16, 32),
        matmul_size=2048,
        num_clips=16,
        sampling_batch_size=8,
        solvers='ddim:50,dpmpp:10,dpmpp:20,dpmpp:25,euler:25',
        pipeline_clips=8),
    'mid':
    dict(
        config='configs/trackdiff/synthetic_tiny_pixel32.py',
        generator=dict(
            sample_size=64,
            block_out_channels=(64, 128, 256),
            layers_per_block=2,
            norm_num_groups=32,
            cross_attention_dim=256,
            grounding_context_dim=256,
            enhancer_track_dim=64),
        tracklet_encoder=dict(token_dim=256, track_dim=64, category_embedding=dict(embed_dim=64)),
        image_size=64,
        num_frames=16,
        batch_size=4,
        num_instances=8,
        repeats=5,
        warmup=2,
        scaling_instances=(1, 8, 16, 32, 64),
        scaling_frames=(4, 8, 16, 32, 64),
        matmul_size=4096,
        num_clips=16,
        sampling_batch_size=8,
        solvers='ddim:50,dpmpp:10,dpmpp:20,dpmpp:25,euler:25',
        pipeline_clips=8),
    # The paper's YouTube-VIS recipe for a GPU: the ModelScope UNet (a random one of the published
    # architecture when data/pretrained is absent), 16 frames of 480x320 (40x60 latents), 20
    # slots, gradient checkpointing and bf16 as the config trains.
    'full':
    dict(
        config='configs/trackdiff/ytvis.py',
        image_size=(40, 60),
        num_frames=16,
        batch_size=1,
        num_instances=20,
        gradient_checkpointing=True,
        repeats=3,
        warmup=1,
        scaling_instances=(1, 8, 20, 32, 64),
        scaling_frames=(8, 16, 24, 32),
        matmul_size=8192,
        num_clips=2,
        sampling_batch_size=1,
        solvers='ddim:50,dpmpp:20',
        pipeline_clips=2),
}

# Solver names of --solvers -> the scheduler given to TrackDiffusion.predict.
SOLVERS = {
    'ddim': 'DDIMScheduler',
    'dpmpp': dict(type='DPMSolverMultistepScheduler', algorithm_type='dpmsolver++'),
    'euler': 'EulerDiscreteScheduler',
}
FAST_SOLVER_STEPS = 20  # the target: a solver of at most this many steps matches the reference


def reference_solver(solvers: list) -> Optional[str]:
    """The reference of the sampling suite: the DDIM entry with the most steps (DDIM-50)."""
    ddim = [(steps, name) for name, _, steps in solvers if name.startswith('ddim:')]
    return max(ddim)[1] if ddim else None


# The conditioning variants of one UNet: which new layers are built.
VARIANTS = {
    'bare': dict(grounding=False, enhancer=False),
    'grounding': dict(grounding=True, enhancer=False),
    'full': dict(grounding=True, enhancer=True),
}
NEW_UNET_ARGS = ('grounding_context_dim', 'grounding_blocks', 'enhancer_track_dim',
                 'enhancer_blocks', 'enhancer_num_heads', 'enhancer_ff_mult',
                 'token_position_freqs', 'ground_within_boxes', 'gate_init')


class BenchmarkError(ValueError):
    """A benchmark that cannot run as asked (the message says what to change)."""


# ---------------------------------------------------------------------------------------------
# measuring


class Bench:
    """Where and how to measure: device, autocast dtype, repeats, warm-up runs and the clock.

    ``clock='wall'`` reads ``time.perf_counter``; ``clock='process'`` reads the process's CPU
    time (``time.process_time``), which on CPU with one torch thread equals the wall time of an
    idle machine and, unlike it, does not count the time other processes hold the cores (it
    still pays for their use of caches and memory bandwidth). CPU only.
    """

    def __init__(self,
                 device: str,
                 dtype: str,
                 repeats: int,
                 warmup: int,
                 seed: int = 0,
                 clock: str = 'wall'):
        if clock not in ('wall', 'process'):
            raise BenchmarkError(f"clock must be 'wall' or 'process', got {clock!r}")
        if clock == 'process' and device != 'cpu':
            raise BenchmarkError('--clock process measures CPU time: use it with --device cpu')
        self.device = device
        self.dtype = dtype
        self.repeats = repeats
        self.warmup = warmup
        self.seed = seed
        self.clock = clock

    def sync(self) -> None:
        """Wait for queued device work (no-op on CPU, which never touches CUDA)."""
        if self.device == 'cuda':
            torch.cuda.synchronize()

    def now(self) -> float:
        self.sync()
        return time.process_time() if self.clock == 'process' else time.perf_counter()

    def autocast(self):
        """bf16 autocast on the benchmark's device, or nothing for fp32."""
        if self.dtype == 'bf16':
            return torch.autocast(device_type=self.device, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def stats(values) -> dict:
    """Median and spread of repeated measurements."""
    v = np.asarray(list(values), dtype=float)
    if not len(v):
        raise BenchmarkError('no measurements (repeats must be >= 1)')
    return dict(
        median=float(np.median(v)),
        p25=float(np.percentile(v, 25)),
        p75=float(np.percentile(v, 75)),
        min=float(v.min()),
        max=float(v.max()),
        n=int(len(v)),
        values=[float(x) for x in v])


@contextlib.contextmanager
def no_gc():
    """No garbage collection pauses inside timed loops."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def peak_memory(fn: Callable[[], None], bench: Bench) -> dict:
    """Peak bytes of tensor memory that ``fn`` allocates above what was live before it.

    CUDA: ``torch.cuda.max_memory_allocated`` after a peak reset, less ``memory_allocated``
    before. CPU: PyTorch's CPU allocator reports every allocation and free to the profiler
    (``profile_memory=True``) with the running total it has seen during the profiled region;
    the peak of that total is the figure. It counts tensor storage only (not the Python heap
    or oneDNN's scratch buffers), and a tensor from before ``fn`` that ``fn`` frees is not
    subtracted, so the CPU figure can only overstate.
    """
    if bench.device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return dict(
            peak_bytes=int(torch.cuda.max_memory_allocated() - base),
            method='torch.cuda.max_memory_allocated')
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as folder:
        path = osp.join(folder, 'trace.json')
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)['traceEvents']
    memory = sorted((e for e in events
                     if e.get('name') == '[memory]' and e.get('args', {}).get('Device Type') == 0),
                    key=lambda e: e['ts'])
    if not memory:
        return dict(peak_bytes=0, method='torch.profiler profile_memory (no allocation seen)')
    first = memory[0]['args']
    base = first['Total Allocated'] - first['Bytes']
    peak = max(e['args']['Total Allocated'] for e in memory)
    return dict(peak_bytes=int(peak - base), method='torch.profiler profile_memory')


def tensor_bytes(tensors) -> int:
    return int(sum(t.numel() * t.element_size() for t in tensors))


# ---------------------------------------------------------------------------------------------
# models and synthetic training batches


def merge(base: dict, override: Optional[dict]) -> dict:
    """``base`` updated by ``override``, recursively for dicts."""
    out = copy.deepcopy(dict(base))
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def to_plain(obj):
    """A config value as plain dicts, lists and numbers (JSON-ready)."""
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def memory_model():
    """The memory model (:mod:`mmtrackgen.benchmarks.memory_model`): its stand-ins for
    pretrained folders and its estimate."""
    from . import memory_model as module
    return module


def model_configs(size: dict, config: Optional[str] = None):
    """(config, generator kwargs, tracklet encoder config) of a size, or of ``config`` at the
    size's workload. A pretrained generator becomes a plain one of the same architecture, CLIP
    class names a table of the same width."""
    from mmtrackgen.utils import load_config
    cfg = load_config(config or osp.join(ROOT, size['config']))
    notes = []
    stand_ins = memory_model()
    generator = stand_ins.stand_in_generator(to_plain(cfg.model.generator), notes)
    generator = merge(generator, size.get('generator'))
    generator.pop('type', None)
    encoder = stand_ins.stand_in_category_embedding(
        to_plain(cfg.model.tracklet_encoder), generator.get('cross_attention_dim'), notes)
    encoder = merge(encoder, size.get('tracklet_encoder'))
    generator['sample_size'] = size['image_size']
    return cfg, generator, encoder


def image_hw(image_size) -> tuple:
    """(H, W) of a size's ``image_size``: one side for square frames, or (H, W)."""
    return tuple(image_size) if isinstance(image_size, (tuple, list)) else (image_size, ) * 2


def moving_boxes(g: torch.Generator, batch_size: int, num_frames: int,
                 num_instances: int) -> torch.Tensor:
    """(B, F, N, 4) normalised boxes drifting over the frames, drawn from ``g``."""
    centre = 0.2 + 0.6 * torch.rand(batch_size, 1, num_instances, 2, generator=g)
    drift = 0.02 * torch.randn(batch_size, 1, num_instances, 2, generator=g)
    centre = centre + drift * torch.arange(num_frames)[None, :, None, None]  # (B, F, N, 2)
    half = 0.05 + 0.15 * torch.rand(batch_size, 1, num_instances, 2, generator=g)
    return torch.cat([centre - half, centre + half], dim=-1).clamp(0, 1)  # (B, F, N, 4)


class TrainStep:
    """One training step of a UNet (and its tracklet encoder) on a synthetic batch.

    ``variant``: ``'bare'`` (no grounding, no enhancer: the stock layers only), ``'grounding'``
    (+ tracklet encoder and gated grounding), ``'full'`` (+ Instance Enhancers), or ``'stock'``
    (diffusers' ``UNet3DConditionModel`` itself). The step: encode the tracklets, run the UNet
    on noisy frames, MSE against a target (forward); backward; AdamW (optimizer).
    """

    def __init__(self,
                 variant: str,
                 generator: dict,
                 encoder: dict,
                 bench: Bench,
                 gradient_checkpointing: bool = False):
        from diffusers import UNet3DConditionModel

        from mmtrackgen.models.generators.tracklet_unet3d import TrackletUNet3D
        from mmtrackgen.registry import MODELS
        self.variant, self.bench = variant, bench
        torch.manual_seed(bench.seed)  # the stock layers come out the same in every variant
        # built on the device: initialising a full-size UNet on the CPU takes longer than its steps
        with torch.device(bench.device):
            if variant == 'stock':
                kwargs = {k: v for k, v in generator.items() if k not in NEW_UNET_ARGS}
                self.unet = UNet3DConditionModel(**kwargs)
            else:
                parts = VARIANTS[variant]
                kwargs = dict(generator)
                if not parts['grounding']:
                    kwargs.update(grounding_context_dim=None, grounding_blocks=None)
                if not parts['enhancer']:
                    kwargs.update(enhancer_track_dim=None, enhancer_blocks=None)
                self.unet = TrackletUNet3D(**kwargs)
            self.encoder = None
            if variant in ('grounding', 'full'):
                self.encoder = MODELS.build(copy.deepcopy(encoder))
        self.modules = torch.nn.ModuleList([m for m in (self.unet, self.encoder) if m is not None])
        self.modules.to(bench.device).train()
        if gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
        self.optimizer = torch.optim.AdamW(self.modules.parameters(), lr=1e-4)
        self.num_classes = encoder.get('category_embedding', {}).get('num_classes', 1)
        self.batch = None

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.modules.parameters())

    def state_bytes(self) -> int:
        """Parameters and the AdamW state (two moments): what lives between steps."""
        return 3 * tensor_bytes(self.modules.parameters())

    def set_batch(self, batch_size: int, num_frames: int, num_instances: int, image_size) -> None:
        """A fixed random batch: frames, timesteps, one text token, N visible moving boxes."""
        g = torch.Generator().manual_seed(self.bench.seed)
        cfg = self.unet.config
        shape = (batch_size, cfg.in_channels, num_frames, *image_hw(image_size))
        boxes = moving_boxes(g, batch_size, num_frames, num_instances)  # (B, F, N, 4)
        device = self.bench.device
        self.batch = dict(
            sample=torch.randn(shape, generator=g).to(device),
            target=torch.randn(shape, generator=g).to(device),
            timesteps=torch.randint(0, 1000, (batch_size, ), generator=g).to(device),
            text=torch.randn(batch_size, 1, cfg.cross_attention_dim, generator=g).to(device),
            boxes=boxes.to(device),
            visible=torch.ones(boxes.shape[:3], dtype=torch.bool, device=device),
            labels=torch.randint(0, self.num_classes, (batch_size, num_instances),
                                 generator=g).to(device))

    def loss(self) -> torch.Tensor:
        b = self.batch
        kwargs = {}
        if self.encoder is not None:
            kwargs['tracklets'] = self.encoder(b['boxes'], b['visible'], b['labels'])
        out = self.unet(
            b['sample'],
            b['timesteps'],
            encoder_hidden_states=b['text'],
            return_dict=False,
            **kwargs)[0]
        return F.mse_loss(out.float(), b['target'])

    def run(self) -> dict:
        """One step; seconds of its forward, backward and optimizer parts."""
        bench = self.bench
        self.optimizer.zero_grad(set_to_none=True)
        t0 = bench.now()
        with bench.autocast():
            loss = self.loss()
        t1 = bench.now()
        loss.backward()
        t2 = bench.now()
        self.optimizer.step()
        t3 = bench.now()
        return dict(forward_s=t1 - t0, backward_s=t2 - t1, optimizer_s=t3 - t2)

    def measure(self, memory: bool = True) -> dict:
        """Timing stats over repeats after warm-up, then (optionally) one step's peak memory."""
        for _ in range(self.bench.warmup):
            self.run()
        runs = []
        with no_gc():
            for _ in range(self.bench.repeats):
                runs.append(self.run())
        result = {key: stats(r[key] for r in runs) for key in runs[0]}
        result['forward_backward_s'] = stats(r['forward_s'] + r['backward_s'] for r in runs)
        result['step_s'] = stats(sum(r.values()) for r in runs)
        if memory:
            self.optimizer.zero_grad(set_to_none=True)
            mem = peak_memory(lambda: self.run(), self.bench)
            result['step_peak_bytes'] = mem['peak_bytes']
            result['state_bytes'] = self.state_bytes()
            result['total_bytes'] = mem['peak_bytes'] + result['state_bytes']
            result['memory_method'] = mem['method']
        return result


# ---------------------------------------------------------------------------------------------
# suites


def suite_conditioning(args, bench: Bench, size: dict) -> dict:
    """Step time and memory of one UNet bare, + tracklet grounding, + Instance Enhancer."""
    _, generator, encoder = model_configs(size, args.config)
    shape = dict(
        batch_size=size['batch_size'],
        num_frames=size['num_frames'],
        num_instances=size['num_instances'],
        image_size=size['image_size'])
    variants = {}
    for name in VARIANTS:
        step = TrainStep(name, generator, encoder, bench, size.get('gradient_checkpointing', False))
        step.set_batch(**shape)
        variants[name] = dict(parameters=step.num_parameters(), **step.measure())
        del step
        gc.collect()
    ratios = {}
    for name in ('grounding', 'full'):
        ratios[f'{name}_over_bare'] = {
            key: variants[name][key]['median'] / variants['bare'][key]['median']
            for key in ('forward_s', 'backward_s', 'step_s')
        }
        for key in ('step_peak_bytes', 'total_bytes'):
            ratios[f'{name}_over_bare'][key] = variants[name][key] / max(1, variants['bare'][key])
    full = ratios['full_over_bare']
    checks = dict(
        full_over_bare_time=check(full['step_s'], 1.10),
        full_over_bare_memory=check(full['total_bytes'], 1.10))
    return dict(shape=shape, generator=generator, variants=variants, ratios=ratios, checks=checks)


def check(value: Optional[float], target: float, at_most: bool = True) -> dict:
    """A figure against its target; ``ok`` is None where the figure is not available."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return dict(value=None, target=target, at_most=at_most, ok=None)
    ok = value <= target if at_most else value >= target
    return dict(value=float(value), target=target, at_most=at_most, ok=bool(ok))


def fit(x, y, degree: int) -> dict:
    """Least-squares polynomial ``y = c0 + c1 x (+ c2 x^2)``; coefficients lowest first."""
    coeffs = np.polynomial.polynomial.polyfit(np.asarray(x, float), np.asarray(y, float), degree)
    pred = np.polynomial.polynomial.polyval(np.asarray(x, float), coeffs)
    resid = np.asarray(y, float) - pred
    total = np.asarray(y, float) - np.mean(y)
    r2 = 1 - float(resid @ resid) / float(total @ total) if float(total @ total) > 0 else 1.0
    return dict(coefficients=[float(c) for c in coeffs], r2=r2)


def frame_fit(frames, values) -> dict:
    """a + bF + cF^2 and how much the F^2 term weighs: c/b, and cF^2 over the value at max F."""
    result = fit(frames, values, 2) if len(frames) >= 3 else dict(coefficients=None, r2=None)
    if result['coefficients'] is None:
        return dict(result, c_over_b=None, quadratic_share_at_max=None)
    _, b, c = result['coefficients']
    f_max = max(frames)
    result['c_over_b'] = c / b if b else None
    result['quadratic_share_at_max'] = c * f_max**2 / values[int(np.argmax(frames))]
    return result


def suite_scaling(args, bench: Bench, size: dict) -> dict:
    """Step time and memory of the full model as N (instances) and F (frames) grow."""
    _, generator, encoder = model_configs(size, args.config)
    instances = args.instances or list(size['scaling_instances'])
    frames = args.frames or list(size['scaling_frames'])
    base = dict(batch_size=size['batch_size'], image_size=size['image_size'])
    ref_n, ref_f = size['num_instances'], size['num_frames']

    full = TrainStep('full', generator, encoder, bench, size.get('gradient_checkpointing', False))
    by_instances = []
    for n in instances:
        full.set_batch(num_frames=ref_f, num_instances=n, **base)
        by_instances.append(dict(num_instances=n, **full.measure()))
    full_by_frames = []
    for f in frames:
        full.set_batch(num_frames=f, num_instances=ref_n, **base)
        full_by_frames.append(dict(num_frames=f, **full.measure()))
    del full
    gc.collect()
    bare = TrainStep('bare', generator, encoder, bench, size.get('gradient_checkpointing', False))
    bare_by_frames = []
    for f in frames:
        bare.set_batch(num_frames=f, num_instances=ref_n, **base)
        bare_by_frames.append(dict(num_frames=f, **bare.measure()))
    del bare
    gc.collect()

    def medians(rows, key):
        return [r[key]['median'] if isinstance(r[key], dict) else r[key] for r in rows]

    n_times = medians(by_instances, 'step_s')
    ref_time = n_times[instances.index(ref_n)] if ref_n in instances else n_times[0]
    ref_used = ref_n if ref_n in instances else instances[0]
    instance_fit = dict(
        time=fit(instances, n_times, 1) if len(instances) >= 2 else None,
        memory=fit(instances, medians(by_instances, 'total_bytes'), 1)
        if len(instances) >= 2 else None,
        reference_instances=ref_used)
    if instance_fit['time']:
        slope = instance_fit['time']['coefficients'][1]
        instance_fit['time']['slope_s_per_instance'] = slope
        instance_fit['time']['slope_relative_to_reference'] = slope / ref_time
    n_max = max(instances)
    time_ratio = n_times[instances.index(n_max)] / ref_time
    memory_ratio = (
        medians(by_instances, 'total_bytes')[instances.index(n_max)] /
        medians(by_instances, 'total_bytes')[instances.index(ref_used)])

    frame_fits = {}
    for name, rows in (('full', full_by_frames), ('bare', bare_by_frames)):
        frame_fits[name] = dict(
            time=frame_fit(frames, medians(rows, 'step_s')),
            memory=frame_fit(frames, medians(rows, 'total_bytes')))
    excess = None
    if frame_fits['full']['time']['coefficients'] is not None:
        c_full = frame_fits['full']['time']['coefficients'][2]
        c_bare = frame_fits['bare']['time']['coefficients'][2]
        t_max = medians(full_by_frames, 'step_s')[int(np.argmax(frames))]
        excess = dict(
            c_full_minus_bare=c_full - c_bare,
            share_at_max=(c_full - c_bare) * max(frames)**2 / t_max)
    checks = {
        f'time_N{n_max}_over_N{ref_used}': check(time_ratio, 1.3),
        f'memory_N{n_max}_over_N{ref_used}': check(memory_ratio, 1.3),
        # the F^2 term beyond the bare UNet's (temporal attention) at the largest F, as a share
        # of the step; "none" is read as under 5% of the step at the largest F
        'excess_quadratic_share_at_max_F': check(excess and excess['share_at_max'], 0.05),
    }
    return dict(
        batch_size=base['batch_size'],
        image_size=base['image_size'],
        reference=dict(num_instances=ref_n, num_frames=ref_f),
        by_instances=by_instances,
        by_frames=dict(full=full_by_frames, bare=bare_by_frames),
        instance_fit=instance_fit,
        frame_fits=frame_fits,
        excess_frame_quadratic=excess,
        ratios={
            f'time_N{n_max}_over_N{ref_used}': time_ratio,
            f'memory_N{n_max}_over_N{ref_used}': memory_ratio
        },
        checks=checks)


def standard_error(values) -> Optional[float]:
    """Standard error of the mean of the finite values; None with fewer than two."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None


def parse_solvers(spec: str) -> list:
    """``'ddim:50,dpmpp:20'`` -> [('ddim:50', scheduler, 50), ...]."""
    solvers = []
    for item in spec.split(','):
        name, _, steps = item.strip().partition(':')
        if name not in SOLVERS or not steps.isdigit() or int(steps) < 1:
            raise BenchmarkError(f"--solvers: '{item}' is not NAME:STEPS with NAME one of "
                                 f'{sorted(SOLVERS)} and STEPS a positive int')
        solvers.append((f'{name}:{int(steps)}', SOLVERS[name], int(steps)))
    return solvers


def run_config(args, size: dict):
    """The config of the sampling and pipeline suites, with ``--data-root`` applied."""
    from mmtrackgen.utils import load_config
    path = args.config or osp.join(ROOT, size['config'])
    cfg = load_config(path)
    root = args.data_root.rstrip('/') + '/'
    ann = osp.join(root, 'annotations', f'{args.split}_cocoformat.json')
    if not osp.isfile(ann):
        raise BenchmarkError(f"'{ann}' does not exist: make the synthetic world with "
                             f'`python tools/make_synthetic.py --out {args.data_root}` or pass '
                             '--data-root')
    cfg.train_dataloader.dataset.data_root = root
    if cfg.get('preview_clips'):
        cfg.preview_clips.data_root = root
    return cfg, path, root


def suite_sampling(args, bench: Bench, size: dict) -> dict:
    """Time per clip and box alignment of several solvers on held-out clips."""
    if not args.checkpoint:
        raise BenchmarkError('the sampling suite needs --checkpoint (a trained model of --config)')
    if not osp.isfile(args.checkpoint):
        raise BenchmarkError(f"--checkpoint '{args.checkpoint}' does not exist")
    from mmengine.dataset import pseudo_collate
    from mmengine.runner import load_checkpoint

    from mmtrackgen.datasets import segment_foreground
    from mmtrackgen.evaluation import box_alignment, summarize_alignment
    from mmtrackgen.registry import DATASETS, MODELS
    cfg, config_path, root = run_config(args, size)
    if not cfg.get('preview_clips'):
        raise BenchmarkError(f"'{config_path}' has no `preview_clips` (the held-out clip dataset)")
    solvers = parse_solvers(args.solvers or size['solvers'])
    num_clips = args.num_clips or size['num_clips']
    batch_size = args.batch_size or size['sampling_batch_size']

    torch.manual_seed(bench.seed)
    model = MODELS.build(cfg.model)
    load_checkpoint(model, args.checkpoint, map_location='cpu', logger='silent')
    model.to(bench.device).eval()
    dataset = DATASETS.build(
        dict(
            cfg.preview_clips,
            ann_file=f'annotations/{args.split}_cocoformat.json',
            data_prefix=dict(img_path=f'{args.split}/')))
    picks = np.linspace(0, len(dataset) - 1, min(num_clips, len(dataset))).round()
    items = [dataset[i] for i in picks.astype(int).tolist()]
    batches = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]

    def sample(scheduler, steps):
        """Sample every clip; (frames (F, H, W, 3), boxes, visible) per clip."""
        outputs = []
        for start, chunk in enumerate(batches):
            data = model.data_preprocessor(pseudo_collate(chunk), False)
            with bench.autocast():
                samples = model.predict(
                    data['inputs'],
                    data['data_samples'],
                    num_inference_steps=steps,
                    scheduler=scheduler,
                    seed=bench.seed + start * batch_size)
            outputs += [(s.pred_frames.cpu().permute(0, 2, 3, 1).numpy(), s.gt_boxes.cpu().numpy(),
                         s.gt_visible.cpu().numpy()) for s in samples]
        return outputs

    def score(clips):
        return [box_alignment(*clip, segment_foreground) for clip in clips]

    for _ in range(bench.warmup):
        sample(solvers[0][1], 2)
    results = {}
    for name, scheduler, steps in solvers:
        times, clips = [], None
        with no_gc():
            for _ in range(bench.repeats):
                t0 = bench.now()
                outputs = sample(scheduler, steps)
                times.append((bench.now() - t0) / len(items))
                clips = clips or outputs  # the same seeds every repeat: score the first
        scores = score(clips)
        clip_means = np.array([np.nanmean(s) if np.isfinite(s).any() else np.nan for s in scores])
        alignment = summarize_alignment(np.concatenate([s.ravel() for s in scores]))
        alignment['clip_mean_iou_se'] = standard_error(clip_means)
        results[name] = dict(
            scheduler=scheduler,
            steps=steps,
            time_per_clip_s=stats(times),
            alignment=alignment,
            clip_mean_iou=clip_means.tolist())
    real = score([(item['inputs'].permute(0, 2, 3, 1).numpy(),
                   item['data_samples'].gt_boxes.numpy(), item['data_samples'].gt_visible.numpy())
                  for item in items])  # the ceiling
    reference = reference_solver(solvers)
    checks = {}
    if reference is not None:
        ref = results[reference]
        for name, res in results.items():
            speedup = ref['time_per_clip_s']['median'] / res['time_per_clip_s']['median']
            delta = res['alignment']['mean_iou'] - ref['alignment']['mean_iou']
            noise = [
                x for x in (res['alignment']['clip_mean_iou_se'],
                            ref['alignment']['clip_mean_iou_se']) if x is not None
            ]
            # "within noise": within two standard errors of the difference of the two means
            bound = 2 * math.sqrt(sum(x**2 for x in noise)) if len(noise) == 2 else None
            within = None if bound is None or math.isnan(delta) else abs(delta) <= bound
            # the same clips and seeds: the per-clip differences tell how consistent the change is
            paired = np.array(res['clip_mean_iou']) - np.array(ref['clip_mean_iou'])
            res['vs_reference'] = dict(
                speedup=speedup,
                mean_iou_delta=delta,
                noise_bound=bound,
                within_noise=within,
                paired_delta_mean=float(np.nanmean(paired)) if np.isfinite(paired).any() else None,
                paired_delta_se=standard_error(paired))
        fast = [
            name for name, res in results.items()
            if name != reference and res['steps'] <= FAST_SOLVER_STEPS
        ]
        meeting = [
            name for name in fast if results[name]['vs_reference']['within_noise']
            and results[name]['vs_reference']['speedup'] >= 2.5
        ]
        known = any(results[name]['vs_reference']['within_noise'] is not None for name in fast)
        checks['fast_solver_within_noise_at_2.5x'] = dict(
            value=meeting,
            target=f'a solver of <= {FAST_SOLVER_STEPS} steps within noise of {reference} at '
            '>= 2.5x its speed',
            ok=bool(meeting) if known else None)
    return dict(
        config=config_path,
        checkpoint=args.checkpoint,
        data_root=root,
        split=args.split,
        clips=len(items),
        batch_size=batch_size,
        guidance_scale=model.guidance_scale,
        guidance_batched=True,
        solvers=results,
        real_frames=summarize_alignment(np.concatenate([s.ravel() for s in real])),
        reference=reference,
        checks=checks)


def suite_pipeline(args, bench: Bench, size: dict) -> dict:
    """Data loading vs training step; the writer's share of generation wall time."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.runner import Runner

    from mmtrackgen.datasets.tracklet_file import load_tracklet_file
    from mmtrackgen.generation.runner import ClipGenerator, plan_jobs
    from mmtrackgen.generation.writer import GeneratedDatasetWriter
    from mmtrackgen.registry import MODELS
    cfg, config_path, root = run_config(args, size)

    # Training: next(iter) of the config's train dataloader vs model.train_step.
    loader = Runner.build_dataloader(copy.deepcopy(cfg.train_dataloader), seed=bench.seed)
    torch.manual_seed(bench.seed)
    model = MODELS.build(cfg.model).to(bench.device).train()
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    batches = iter(loader)

    def next_batch():
        nonlocal batches
        try:
            return next(batches)
        except StopIteration:
            batches = iter(loader)
            return next(batches)

    load_times, step_times = [], []
    for i in range(bench.warmup + bench.repeats):
        t0 = bench.now()
        batch = next_batch()
        t1 = bench.now()
        with bench.autocast():
            model.train_step(batch, optim_wrapper)
        t2 = bench.now()
        if i >= bench.warmup:
            load_times.append(t1 - t0)
            step_times.append(t2 - t1)
    load_share = [lo / (lo + st) for lo, st in zip(load_times, step_times)]
    training = dict(
        batch_size=cfg.train_dataloader.batch_size,
        num_workers=cfg.train_dataloader.get('num_workers', 0),
        load_s=stats(load_times),
        step_s=stats(step_times),
        load_share=stats(load_share))

    # Generation: a random-weight model of the config, clips of the split's tracklets.
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = osp.join(folder, 'random.pth')
        torch.save(dict(state_dict=model.state_dict()), checkpoint)
        del model, optim_wrapper
        gc.collect()
        generator = ClipGenerator(cfg, checkpoint, device=bench.device)
        layouts = load_tracklet_file(osp.join(root, 'annotations', f'{args.split}_cocoformat.json'))
        clip_length = cfg.get('num_frames') or cfg.train_dataloader.dataset.clip_length
        jobs, _ = plan_jobs(layouts, clip_length)
        jobs = jobs[:args.num_clips or size['pipeline_clips']]
        if not jobs:
            raise BenchmarkError(f"the {args.split} split of '{root}' gives no clip to generate")
        batch_size = args.batch_size or size['sampling_batch_size']
        for _ in range(bench.warmup):
            with bench.autocast():
                generator.sample(jobs[:1], steps=1)
        walls, submits, waits, shares, outputs = [], [], [], [], []
        for r in range(bench.repeats):
            writer = GeneratedDatasetWriter(osp.join(folder, f'run{r}'))
            submit_s, outputs = 0.0, []
            t0 = bench.now()
            with bench.autocast():
                for job, layout, frames in generator.run(jobs, batch_size):
                    s = time.perf_counter()
                    writer.submit(layout, frames, seed=job.seed)
                    submit_s += time.perf_counter() - s
                    outputs.append((job, layout, frames))
            s = time.perf_counter()
            writer.wait()
            wait_s = time.perf_counter() - s
            wall = bench.now() - t0
            writer.close()
            walls.append(wall)
            submits.append(submit_s)
            waits.append(wait_s)
            shares.append((submit_s + wait_s) / wall)
        # The writer's own cost with nothing else running: each clip submitted and waited for.
        alone = []
        for r in range(bench.repeats):
            writer = GeneratedDatasetWriter(osp.join(folder, f'alone{r}'))
            t0 = time.perf_counter()
            for job, layout, frames in outputs:
                writer.submit(layout, frames, seed=job.seed)
                writer.wait()
            alone.append(time.perf_counter() - t0)
            writer.close()
        del generator
        gc.collect()
    generation = dict(
        clips=len(jobs),
        batch_size=batch_size,
        steps=cfg.model.get('num_inference_steps'),
        wall_s=stats(walls),
        submit_s=stats(submits),
        final_wait_s=stats(waits),
        writer_share=stats(shares),
        write_alone_s=stats(alone))
    checks = dict(
        load_share=check(training['load_share']['median'], 0.05),
        writer_share=check(generation['writer_share']['median'], 0.05))
    return dict(
        config=config_path,
        data_root=root,
        split=args.split,
        training=training,
        generation=generation,
        checks=checks)


def cpu_attention_flop_formulas() -> dict:
    """FLOP formulas for the CPU flash-attention kernels, which ``FlopCounterMode`` does not
    count (it knows the CUDA ones): the same formulas as for those."""
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count
    aten = torch.ops.aten
    formulas = {}
    if hasattr(aten, '_scaled_dot_product_flash_attention_for_cpu'):

        def forward(query, key, value, *args, out_shape=None, **kwargs):
            return sdpa_flop_count(query, key, value)

        def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs):
            return sdpa_backward_flop_count(grad_out, query, key, value)

        formulas[aten._scaled_dot_product_flash_attention_for_cpu] = forward
        formulas[aten._scaled_dot_product_flash_attention_for_cpu_backward] = backward
    return formulas


def count_flops(step: TrainStep) -> dict:
    """FLOPs of one forward and one backward (matmuls, convolutions, attention)."""
    return count_loss_flops(step.loss, step.optimizer, step.bench)


def count_loss_flops(loss_fn: Callable[[], torch.Tensor], optimizer, bench: Bench) -> dict:
    """FLOPs of ``loss_fn()`` and its backward (recomputation of checkpointed modules
    included: what the step executes)."""
    from torch.utils.flop_counter import FlopCounterMode
    formulas = cpu_attention_flop_formulas()
    optimizer.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False, custom_mapping=formulas) as counter:
        with bench.autocast():
            loss = loss_fn()
    forward = counter.get_total_flops()
    with FlopCounterMode(display=False, custom_mapping=formulas) as counter:
        loss.backward()
    backward = counter.get_total_flops()
    optimizer.zero_grad(set_to_none=True)
    return dict(forward=int(forward), backward=int(backward), total=int(forward + backward))


def matmul_peak(n: int, bench: Bench, min_seconds: float = 0.2) -> dict:
    """FLOP/s of an n x n x n ``torch.mm`` in the benchmark's dtype (fp32 or bf16)."""
    dtype = torch.bfloat16 if bench.dtype == 'bf16' else torch.float32
    g = torch.Generator().manual_seed(bench.seed)
    a = torch.randn(n, n, generator=g).to(bench.device, dtype)
    b = torch.randn(n, n, generator=g).to(bench.device, dtype)
    for _ in range(max(1, bench.warmup)):  # first calls pay for library start-up
        torch.mm(a, b)
    t0 = bench.now()
    torch.mm(a, b)
    iters = max(1, int(min_seconds / max(bench.now() - t0, 1e-6)))
    rates = []
    with no_gc():
        for _ in range(max(3, bench.repeats)):
            t0 = bench.now()
            for _ in range(iters):
                torch.mm(a, b)
            rates.append(2 * n**3 * iters / (bench.now() - t0))
    return dict(size=n, dtype=str(dtype), iterations_per_repeat=iters, flops_per_s=stats(rates))


def suite_efficiency(args, bench: Bench, size: dict) -> dict:
    """Counted FLOPs over measured step time, as a fraction of the measured matmul peak."""
    _, generator, encoder = model_configs(size, args.config)
    peak = matmul_peak(
        args.matmul_size or size['matmul_size'],
        bench,
        min_seconds=0.05 if args.size == 'micro' else 0.5)
    peak_rate = peak['flops_per_s']['max']
    shape = dict(
        batch_size=size['batch_size'],
        num_frames=size['num_frames'],
        num_instances=size['num_instances'],
        image_size=size['image_size'])
    models = {}
    for name in ('stock', 'full'):
        # no checkpointing (diffusers' UNet3D has none): FLOPs over time without recomputation
        step = TrainStep(name, generator, encoder, bench)
        step.set_batch(**shape)
        flops = count_flops(step)
        timing = step.measure(memory=False)
        seconds = timing['forward_backward_s']['median']
        rate = flops['total'] / seconds
        models[name] = dict(
            parameters=step.num_parameters(),
            flops=flops,
            forward_backward_s=timing['forward_backward_s'],
            forward_s=timing['forward_s'],
            backward_s=timing['backward_s'],
            achieved_flops_per_s=rate,
            fraction_of_peak=rate / peak_rate)
        del step
        gc.collect()
    checks = {
        f'{name}_fraction_of_peak': check(m['fraction_of_peak'], 0.5, at_most=False)
        for name, m in models.items()
    }
    return dict(
        shape=shape,
        matmul_peak=peak,
        peak_flops_per_s=peak_rate,
        models=models,
        flop_counting=('torch.utils.flop_counter.FlopCounterMode (matmuls, convolutions, '
                       'attention; CPU flash attention added), one forward + one backward; the '
                       'optimizer step is not counted nor timed'),
        checks=checks)


def suite_recipe(args, bench: Bench, size: dict) -> dict:
    """The config's own training step and sampling at its clip size.

    Training: ``TrackDiffusion.loss`` with the config's trainable parameters and gradient
    checkpointing, AdamW over what trains, under the benchmark's autocast. Pretrained folders
    that are absent are replaced as tools/analysis/memory_model.py replaces them (random weights
    of the published architectures), and that tool's estimate for the same config and batch is
    set beside the measured peak. FLOPs of one step (recomputation included) over its time, as
    a fraction of the measured matmul peak. Sampling: ``TrackDiffusion.predict`` per solver
    (guidance batched) on made-up tracklets, and the config's VAE decoding the clip.
    """
    from mmengine.structures import BaseDataElement

    from mmtrackgen.registry import MODELS
    from mmtrackgen.utils import load_config
    mm = memory_model()
    config_path = args.config or osp.join(ROOT, size['config'])
    cfg = load_config(config_path)
    batch_size = size['batch_size']
    estimate = mm.estimate(cfg, batch_size)  # on meta, before anything is on the device
    notes = []
    model_cfg, encoders = mm.stand_in_model_cfg(cfg.model, notes)
    num_frames, (height, width), slots = mm.clip_geometry(cfg)
    down = mm.VAE_DOWNSAMPLE if encoders['vae'] is not None else 1

    cuda = bench.device == 'cuda'
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    torch.manual_seed(bench.seed)
    with torch.device(bench.device):  # a full-size model initialises faster where it runs
        model = MODELS.build(model_cfg)
    model.to(bench.device)
    width_text = model.generator.config.cross_attention_dim
    frozen = mm.build_frozen_encoders(encoders, width_text, device=bench.device)
    g = torch.Generator().manual_seed(bench.seed)
    channels = model.generator.config.in_channels
    text_length = mm.TEXT_LENGTH if encoders['text_encoder'] is not None else 1
    inputs = dict(
        latents=torch.randn(
            batch_size, num_frames, channels, height // down, width // down, generator=g),
        boxes=moving_boxes(g, batch_size, num_frames, slots),
        visible=torch.ones(batch_size, num_frames, slots, dtype=torch.bool),
        labels=torch.zeros(batch_size, slots, dtype=torch.long),
        text_embeds=torch.randn(batch_size, text_length, width_text, generator=g))
    inputs = {k: v.to(bench.device) for k, v in inputs.items()}
    if encoders['text_encoder'] is not None:  # not built: guidance's empty caption stands in
        model.null_text = torch.nn.Parameter(
            torch.zeros(1, text_length, width_text, device=bench.device), requires_grad=False)

    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)

    def step():
        optimizer.zero_grad(set_to_none=True)
        t0 = bench.now()
        with bench.autocast():
            loss = model.loss(inputs)['loss']
        t1 = bench.now()
        loss.backward()
        t2 = bench.now()
        optimizer.step()
        t3 = bench.now()
        return dict(forward_s=t1 - t0, backward_s=t2 - t1, optimizer_s=t3 - t2)

    for _ in range(bench.warmup):
        step()
    with no_gc():
        runs = [step() for _ in range(bench.repeats)]
    training = {key: stats(r[key] for r in runs) for key in runs[0]}
    training['step_s'] = stats(sum(r.values()) for r in runs)
    training['forward_backward_s'] = stats(r['forward_s'] + r['backward_s'] for r in runs)
    states = 4 * sum(p.numel() for p in model.parameters())
    states += 4 * sum(p.numel() for m in frozen.values() for p in m.parameters())
    states += 12 * sum(p.numel() for p in trainable)  # gradients and AdamW's two moments
    if cuda:
        torch.cuda.synchronize()
        memory = dict(
            peak_allocated_bytes=int(torch.cuda.max_memory_allocated() - base),
            peak_reserved_bytes=int(torch.cuda.max_memory_reserved()),
            method='torch.cuda.max_memory_allocated over build and steps')
    else:
        optimizer.zero_grad(set_to_none=True)
        peak = peak_memory(lambda: step(), bench)
        memory = dict(
            peak_allocated_bytes=peak['peak_bytes'] + states,
            method=peak['method'] + ' of one step, plus weights, gradients and AdamW states')
    bytes_ = estimate['bytes']
    checkpointing = estimate['gradient_checkpointing']
    estimated = bytes_['total_checkpointed' if checkpointing else 'total_plain'] - bytes_['ema']
    memory.update(
        state_bytes=states,
        estimate_bytes=estimated,
        estimate_note='tools/analysis/memory_model.py total for this config and batch, '
        'without the EMA copy (no EMA here)',
        measured_over_estimate=memory['peak_allocated_bytes'] / estimated)

    peak_rate = matmul_peak(
        args.matmul_size or size['matmul_size'],
        bench,
        min_seconds=0.05 if args.size == 'micro' else 0.5)
    flops = count_loss_flops(lambda: model.loss(inputs)['loss'], optimizer, bench)
    rate = flops['total'] / training['forward_backward_s']['median']
    efficiency = dict(
        flops=flops,
        achieved_flops_per_s=rate,
        matmul_peak=peak_rate,
        fraction_of_peak=rate / peak_rate['flops_per_s']['max'])
    optimizer.zero_grad(set_to_none=True)
    optimizer.state.clear()  # room for sampling
    gc.collect()

    model.eval()
    sampling = {}
    samples = [BaseDataElement(metainfo=dict(seed=bench.seed + i)) for i in range(batch_size)]
    # TrackDiffusion.predict decodes into pred_frames; the VAE is timed on its own below
    model.data_preprocessor.decode_latents = lambda latents: latents
    try:
        for name, scheduler, steps in parse_solvers(args.solvers or size['solvers']):
            times = []
            for repeat in range(bench.warmup + bench.repeats):
                t0 = bench.now()
                with bench.autocast():
                    model.predict(inputs, samples, num_inference_steps=steps, scheduler=scheduler)
                if repeat >= bench.warmup:
                    times.append((bench.now() - t0) / batch_size)
            sampling[name] = dict(
                steps=steps,
                denoising_s_per_clip=stats(times),
                generator_evaluations_per_s=2 * steps / float(np.median(times)))
    finally:
        del model.data_preprocessor.decode_latents  # the class's method again
    if 'vae' in frozen:
        vae = frozen['vae'].eval()
        vae.enable_slicing()  # as the config decodes: one frame at a time
        latents = inputs['latents'][0]  # (F, C, h, w)
        times = []
        with torch.no_grad():
            for repeat in range(bench.warmup + bench.repeats):
                t0 = bench.now()
                with bench.autocast():
                    vae.decode(latents).sample
                if repeat >= bench.warmup:
                    times.append(bench.now() - t0)
        sampling['vae_decode_s_per_clip'] = stats(times)
    return dict(
        config=config_path,
        clip=dict(
            batch_size=batch_size, frames=num_frames, height=height, width=width, slots=slots),
        notes=notes,
        parameters=dict(
            model=sum(p.numel() for p in model.parameters()),
            trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
            frozen_encoders=sum(p.numel() for m in frozen.values() for p in m.parameters())),
        gradient_checkpointing=checkpointing,
        training=training,
        memory=memory,
        efficiency=efficiency,
        sampling=sampling,
        guidance_scale=model.guidance_scale)


SUITE_FUNCTIONS = dict(
    conditioning=suite_conditioning,
    scaling=suite_scaling,
    sampling=suite_sampling,
    pipeline=suite_pipeline,
    efficiency=suite_efficiency,
    recipe=suite_recipe)

# ---------------------------------------------------------------------------------------------
# machine, versions, output


def cpu_model() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(bench: Bench) -> dict:
    info = dict(
        cpu_model=cpu_model(),
        cpu_cores=os.cpu_count(),
        cpu_affinity=len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None,
        torch_threads=torch.get_num_threads(),
        torch_interop_threads=torch.get_num_interop_threads(),
        omp_num_threads=os.environ.get('OMP_NUM_THREADS'),
        load_average=list(os.getloadavg()) if hasattr(os, 'getloadavg') else None,
        platform=platform.platform(),
        python=platform.python_version(),
        device=bench.device)
    if bench.device == 'cuda':
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        info.update(
            gpu=torch.cuda.get_device_name(),
            gpu_memory_bytes=props.total_memory,
            cuda=torch.version.cuda)
    return info


def git_commit() -> dict:

    def git(*cmd):
        return subprocess.run(['git', *cmd], cwd=ROOT, capture_output=True, text=True,
                              timeout=30).stdout.strip()

    try:
        return dict(
            commit=git('rev-parse', 'HEAD') or None,
            dirty=bool(git('status', '--porcelain', '--untracked-files=no')))
    except (OSError, subprocess.SubprocessError):
        return dict(commit=None, dirty=None)


def versions() -> dict:
    import diffusers
    import mmengine
    out = dict(
        torch=torch.__version__,
        diffusers=diffusers.__version__,
        mmengine=mmengine.__version__,
        numpy=np.__version__)
    try:
        import mmcv
        out['mmcv'] = mmcv.__version__
    except ImportError:
        out['mmcv'] = None
    out['mmtrackgen'] = git_commit()
    return out


def json_ready(obj):
    """NaN and infinities as null (strict JSON), numpy scalars as numbers."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str, report: dict) -> None:
    from mmtrackgen.utils.files import write_json_atomic
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    write_json_atomic(path, json_ready(report), indent=2, allow_nan=False)


# ---------------------------------------------------------------------------------------------
# plots


def plot_suite(name: str, result: dict, folder: str) -> str:
    """One PNG per suite; returns its path."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    os.makedirs(folder, exist_ok=True)
    path = osp.join(folder, f'{name}.png')
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))

    def bars(ax, labels, values, errors=None, ylabel=''):
        ax.bar(labels, values, yerr=errors, capsize=3)
        ax.set_ylabel(ylabel)
        ax.tick_params(axis='x', rotation=20)

    def iqr(s):
        return [[s['median'] - s['p25']], [s['p75'] - s['median']]]

    if name == 'conditioning':
        v = result['variants']
        names = list(v)
        width = 0.4
        x = np.arange(len(names))
        axes[0].bar(
            x - width / 2, [v[n]['forward_s']['median'] for n in names], width, label='forward')
        axes[0].bar(
            x + width / 2, [v[n]['backward_s']['median'] for n in names], width, label='backward')
        axes[0].set_xticks(x, names)
        axes[0].set_ylabel('seconds')
        axes[0].legend()
        bars(axes[1], names, [v[n]['total_bytes'] / 2**20 for n in names], ylabel='MiB (total)')
    elif name == 'scaling':
        rows = result['by_instances']
        axes[0].errorbar([r['num_instances'] for r in rows], [r['step_s']['median'] for r in rows],
                         yerr=np.hstack([iqr(r['step_s']) for r in rows]),
                         marker='o')
        axes[0].set_xlabel('instances N')
        axes[0].set_ylabel('step seconds')
        for variant, rows in result['by_frames'].items():
            axes[1].errorbar([r['num_frames'] for r in rows], [r['step_s']['median'] for r in rows],
                             yerr=np.hstack([iqr(r['step_s']) for r in rows]),
                             marker='o',
                             label=variant)
        axes[1].set_xlabel('frames F')
        axes[1].set_ylabel('step seconds')
        axes[1].legend()
    elif name == 'sampling':
        s = result['solvers']
        for solver, res in s.items():
            point = (res['time_per_clip_s']['median'], res['alignment']['mean_iou'] or 0)
            axes[0].errorbar(*point, yerr=res['alignment']['clip_mean_iou_se'] or 0, marker='o')
            axes[0].annotate(solver, point, textcoords='offset points', xytext=(4, 4))
        axes[0].set_xlabel('seconds per clip')
        axes[0].set_ylabel('mean IoU')
        bars(axes[1], list(s), [r['time_per_clip_s']['median'] for r in s.values()],
             np.hstack([iqr(r['time_per_clip_s']) for r in s.values()]), 'seconds per clip')
    elif name == 'pipeline':
        t, g = result['training'], result['generation']
        bars(axes[0], ['load', 'step'], [t['load_s']['median'], t['step_s']['median']],
             np.hstack([iqr(t['load_s']), iqr(t['step_s'])]), 'seconds per batch')
        bars(
            axes[1], ['wall', 'submit', 'final wait', 'write alone'], [
                g['wall_s']['median'], g['submit_s']['median'], g['final_wait_s']['median'],
                g['write_alone_s']['median']
            ],
            ylabel='seconds (generation)')
    elif name == 'efficiency':
        m = result['models']
        bars(
            axes[0],
            list(m), [x['fraction_of_peak'] for x in m.values()],
            ylabel='fraction of matmul peak')
        axes[0].axhline(0.5, color='grey', linestyle='--')
        bars(
            axes[1],
            list(m), [x['flops']['total'] / 1e9 for x in m.values()],
            ylabel='GFLOP per step')
    elif name == 'recipe':
        t, m = result['training'], result['memory']
        parts = ['forward_s', 'backward_s', 'optimizer_s']
        bars(axes[0], [p[:-2] for p in parts], [t[p]['median'] for p in parts],
             np.hstack([iqr(t[p]) for p in parts]), 'seconds per step')
        bars(
            axes[1], ['measured', 'memory model'],
            [m['peak_allocated_bytes'] / 2**30, m['estimate_bytes'] / 2**30],
            ylabel='GiB (training step peak)')
    fig.suptitle(f'{name}')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# command line


def int_list(text: str) -> list:
    try:
        values = [int(x) for x in text.split(',') if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of ints")
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"'{text}' must list positive ints")
    return values


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--suite',
        action='append',
        required=True,
        choices=[*SUITES, 'all'],
        help='suite to run (repeatable; all: every suite, sampling only with --checkpoint)')
    parser.add_argument('--size', choices=sorted(SIZES), default='tiny')
    parser.add_argument('--repeats', type=int, help='measured runs (default: per size)')
    parser.add_argument('--warmup', type=int, help='unmeasured runs first (default: per size)')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--dtype', choices=['fp32', 'bf16'], default='fp32')
    parser.add_argument('--threads', type=int, help='torch CPU threads (default: torch\'s)')
    parser.add_argument(
        '--clock',
        choices=['wall', 'process'],
        default='wall',
        help='wall: elapsed time; process: CPU time of this process (CPU, one thread: for a '
        'machine shared with other jobs)')
    parser.add_argument('--out', required=True, help='the JSON file to write')
    parser.add_argument('--plots', help='write one PNG per suite into this folder')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--instances', type=int_list, help='scaling: instance counts, e.g. 1,8,16,32,64')
    parser.add_argument('--frames', type=int_list, help='scaling: frame counts, e.g. 4,8,16,32')
    parser.add_argument(
        '--matmul-size', type=int, help='efficiency: side of the peak matmul (default: per size)')
    parser.add_argument(
        '--config',
        help='the model config (default: the size\'s config); conditioning, scaling and '
        'efficiency apply the size\'s model overrides and workload to it')
    parser.add_argument('--checkpoint', help='sampling: checkpoint of a model of --config')
    parser.add_argument('--data-root', default='data/synthetic/', help='the synthetic world')
    parser.add_argument('--split', default='test', help='held-out split for sampling/generation')
    parser.add_argument(
        '--num-clips', type=int, help='sampling/pipeline: clips (default: per size)')
    parser.add_argument('--batch-size', type=int, help='sampling/generation batch size')
    parser.add_argument(
        '--solvers', help='sampling: NAME:STEPS list, NAME in ddim, dpmpp (DPM-Solver++), euler')
    args = parser.parse_args(argv)
    for name in ('repeats', 'warmup', 'threads', 'matmul_size', 'num_clips', 'batch_size'):
        value = getattr(args, name)
        if value is not None and value < (0 if name == 'warmup' else 1):
            parser.error(f'--{name.replace("_", "-")} must be positive, got {value}')
    return args


def resolve_suites(args) -> list:
    if 'all' in args.suite:
        suites = [s for s in SUITES if s != 'sampling' or args.checkpoint]
        if not args.checkpoint:
            print('note: sampling skipped (it needs --checkpoint)', file=sys.stderr)
        return suites
    return list(dict.fromkeys(args.suite))


def main(argv=None) -> dict:
    args = parse_args(argv)
    try:
        return run(args, sys.argv[1:] if argv is None else list(argv))
    except BenchmarkError as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)


def run(args, argv: list) -> dict:
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise BenchmarkError('--device cuda but torch sees no CUDA device')
    if args.threads:
        torch.set_num_threads(args.threads)
    size = SIZES[args.size]
    bench = Bench(args.device, args.dtype,
                  args.repeats if args.repeats is not None else size['repeats'],
                  args.warmup if args.warmup is not None else size['warmup'], args.seed, args.clock)
    suites = resolve_suites(args)
    if 'sampling' in suites and not args.checkpoint:
        raise BenchmarkError('the sampling suite needs --checkpoint (a trained model of --config)')
    report = dict(
        schema_version=SCHEMA_VERSION,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        command=['tools/benchmark.py', *argv],
        machine=machine_info(bench),
        versions=versions(),
        settings=dict(
            size=args.size,
            device=args.device,
            dtype=args.dtype,
            repeats=bench.repeats,
            warmup=bench.warmup,
            seed=args.seed,
            clock=bench.clock,
            suites=suites),
        sizes={args.size: to_plain(size)},
        suites={},
        plots={})
    for name in suites:
        print(f'[benchmark] {name} ({args.size}, {args.device}, {args.dtype})', flush=True)
        started = time.perf_counter()
        result = SUITE_FUNCTIONS[name](args, bench, size)
        result['suite_wall_s'] = time.perf_counter() - started
        report['suites'][name] = result
        if args.plots:
            report['plots'][name] = plot_suite(name, json_ready(result), args.plots)
        report['machine']['load_average_end'] = (
            list(os.getloadavg()) if hasattr(os, 'getloadavg') else None)
        write_json(args.out, report)
        summary = {k: v['ok'] for k, v in result.get('checks', {}).items()}
        print(f'[benchmark] {name}: {result["suite_wall_s"]:.1f}s, checks {summary}', flush=True)
    return json_ready(report)


if __name__ == '__main__':
    main()
