"""The model behind the page: one generation from a layout, its scores and its downloads.

Generation goes through :class:`mmtrackgen.generation.runner.ClipGenerator` and the clip is
written by :class:`mmtrackgen.generation.writer.GeneratedDatasetWriter`, the code path of
``tools/generate.py``, so a clip made on the page is byte-for-byte what the command line makes
from the same layout and seed, and its zip is a CocoVID dataset a tracker can train on.

Scores are pluggable: :data:`DEFAULT_SCORES` maps a name to a *clip score*, a function
``(layout, frames, classes) -> dict`` of the generated clip against the layout it was made from
(``layout``: the output layout, boxes in the frames' pixels; ``frames``: (F, H, W, 3) uint8 RGB;
``classes``: the model's category names). The dict holds summary figures (numbers) and may hold
``per_box``: ``{(frame, instance id): number}``, shown as a column of the page's per-box table.
"""
import hashlib
import os
import os.path as osp
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

import numpy as np
import torch

from mmtrackgen.datasets.tracklet_file import write_tracklet_file
from mmtrackgen.generation.runner import ClipGenerator, GenerationJob, clip_seed
from mmtrackgen.generation.writer import GeneratedDatasetWriter
from mmtrackgen.structures import TrackletLayout
from mmtrackgen.utils import load_config
from .editor import PageInputError, PageSpec, page_spec

ClipScore = Callable[[TrackletLayout, np.ndarray, list], dict]


def normalised_boxes(layout: TrackletLayout) -> np.ndarray:
    height, width = layout.image_size
    return layout.boxes / np.array([width, height, width, height], np.float32)  # (F, N, 4)


def alignment_score(layout: TrackletLayout, frames: np.ndarray, classes: list) -> dict:
    """Per box, the IoU of the box with the object found around it (synthetic world's
    foreground), and their mean / share >= 0.5: :mod:`mmtrackgen.evaluation.alignment`."""
    from mmtrackgen.datasets import segment_foreground
    from mmtrackgen.evaluation import box_alignment, summarize_alignment
    ious = box_alignment(frames, normalised_boxes(layout), layout.visible,
                         segment_foreground)  # (F, N)
    summary = summarize_alignment(ious)
    summary['per_box'] = {(int(t), int(layout.instance_ids[n])): float(ious[t, n])
                          for t, n in np.argwhere(layout.visible)}
    return summary


def identity_score(layout: TrackletLayout,
                   frames: np.ndarray,
                   classes: list,
                   min_area: int = 4) -> dict:
    """HOTA, IDF1, MOTA and ID switches of the synthetic world's training-free tracker on the
    clip against the layout: :mod:`mmtrackgen.evaluation.identity` (``min_area`` as the
    ``--min-area`` default of tools/evaluate_generated.py)."""
    from mmtrackgen.evaluation import identity_metrics, layouts_to_tracks, track_clip
    figures = identity_metrics(
        layouts_to_tracks([layout]), {layout.name: track_clip(frames, min_area=min_area)})
    return {key: figures[key] for key in ('HOTA', 'IDF1', 'MOTA', 'IDSW')}


# The lead's category-accuracy score joins here (mmtrackgen/evaluation/category.py).
DEFAULT_SCORES: Mapping[str, ClipScore] = {
    'alignment': alignment_score,
    'identity': identity_score,
}


@dataclass
class PageResult:
    """One generation of the page: the clip, its files and its scores."""
    layout: TrackletLayout  # the output layout (model slots, frame pixels)
    frames: np.ndarray  # (F, H, W, 3) uint8 RGB
    seed: int
    seconds: float  # sampling time
    video: str  # MP4: generated | generated with the layout drawn
    gif: str
    zip: str  # the CocoVID dataset of tools/generate.py plus the input tracklet file
    scores: dict = field(default_factory=dict)  # name -> figures (no per_box)
    per_box: list = field(default_factory=list)  # rows: frame, instance, category, scores...
    per_box_columns: list = field(default_factory=list)


class StepCounter:
    """Counts the generator's forward passes, one per sampling step (guidance batches its two
    passes into one), and reports ``(done, total)`` to ``callback``. A forward hook, so the
    sampling loop of the model stays the one ``tools/generate.py`` runs."""

    def __init__(self, module: torch.nn.Module, total: int, callback: Callable[[int, int], None]):
        self.done, self.total, self.callback = 0, total, callback
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self.done += 1
        self.callback(min(self.done, self.total), self.total)

    def close(self):
        self.handle.remove()


class PageModel:
    """A trained model loaded once for the page.

    Args:
        config: the model's config file.
        checkpoint: its checkpoint (loaded with the checks of ``tools/generate.py``).
        device: where to sample.
        out_root: where each generation's files go (a temporary folder by default).
        scores: clip scores, :data:`DEFAULT_SCORES` by default.
    """

    def __init__(self,
                 config: str,
                 checkpoint: str,
                 device: str = 'cpu',
                 out_root: Optional[str] = None,
                 scores: Optional[Mapping[str, ClipScore]] = None):
        self.config, self.checkpoint = config, checkpoint
        self.cfg = load_config(config)
        self.spec: PageSpec = page_spec(self.cfg)
        if self.spec.needs_first_frame:
            raise PageInputError(
                f"the model of '{config}' generates from a first frame (image-to-video); the "
                'page draws tracklets for text-to-video models only for now')
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f"checkpoint '{checkpoint}' does not exist")
        self.generator = ClipGenerator(self.cfg, checkpoint, device=device)
        self.out_root = out_root or tempfile.mkdtemp(prefix='mmtrackgen_app_')
        os.makedirs(self.out_root, exist_ok=True)
        self.scores = dict(DEFAULT_SCORES if scores is None else scores)
        digest = hashlib.sha256()
        with open(checkpoint, 'rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                digest.update(block)
        self.checkpoint_sha256 = digest.hexdigest()
        self.default_steps = int(self.cfg.model.get('num_inference_steps') or 25)
        self.default_guidance = float(self.cfg.model.get('guidance_scale', 1.0))
        self.runs = 0

    @property
    def classes(self) -> list:
        return list(self.spec.classes)

    def generate(self,
                 layout: TrackletLayout,
                 seed: int = 0,
                 steps: Optional[int] = None,
                 guidance: Optional[float] = None,
                 progress: Optional[Callable[[int, int], None]] = None) -> PageResult:
        """Sample one clip from ``layout`` and write its video, GIF, zip and scores."""
        steps = int(steps or self.default_steps)
        if steps < 1:
            raise PageInputError(f'sampling steps must be >= 1, got {steps}')
        guidance = self.default_guidance if guidance is None else float(guidance)
        if not np.isfinite(guidance):
            raise PageInputError(f'guidance must be a finite number, got {guidance}')
        job = GenerationJob(layout, layout.name, clip_seed(int(seed), layout.name))
        counter = StepCounter(self.generator.model.generator, steps, progress or (lambda *a: 0))
        started = time.monotonic()
        try:
            (_, out_layout, frames), = self.generator.run([job],
                                                          1,
                                                          steps=steps,
                                                          guidance=guidance)
        finally:
            counter.close()
        seconds = time.monotonic() - started
        self.runs += 1
        remove_old_runs(self.out_root)
        folder = tempfile.mkdtemp(prefix='run', dir=self.out_root)  # unique across launches
        result = PageResult(out_layout, frames, job.seed, seconds, '', '', '')
        self._write_files(result, folder, layout, steps, guidance, int(seed))
        self._score(result)
        return result

    def _write_files(self, result: PageResult, folder: str, layout: TrackletLayout, steps: int,
                     guidance: float, seed: int) -> None:
        from mmtrackgen.visualization import save_gif
        from .media import save_browser_mp4, side_by_side
        dataset = osp.join(folder, 'dataset')
        writer = GeneratedDatasetWriter(dataset)
        writer.submit(result.layout, result.frames, seed=result.seed, source=layout.name)
        writer.close()
        info = dict(
            description='a clip generated by mmtrackgen from tracklets drawn on its page',
            config=self.config,
            checkpoint=self.checkpoint,
            checkpoint_sha256=self.checkpoint_sha256,
            tracklets='tracklets.json',
            seed=seed,
            scheduler=str(self.cfg.model.get('sampler')),
            steps=steps,
            guidance=guidance,
            num_samples=1,
            augment=0)
        writer.merge([result.layout.name], self.classes, info)
        write_tracklet_file(osp.join(dataset, 'tracklets.json'), [layout], self.classes)
        shown = side_by_side(result.frames, result.layout, self.classes)
        result.video = osp.join(folder, f'{result.layout.name}.mp4')
        save_browser_mp4(result.video, shown)
        result.gif = osp.join(folder, f'{result.layout.name}.gif')
        save_gif(result.gif, shown)
        shutil.rmtree(osp.join(dataset, '.partial'), ignore_errors=True)  # the writer's, empty
        base = osp.join(folder, f'{result.layout.name}_cocovid')
        result.zip = shutil.make_archive(base, 'zip', root_dir=dataset)

    def _score(self, result: PageResult) -> None:
        per_box = {}
        for name, score in self.scores.items():
            figures = dict(score(result.layout, result.frames, self.classes))
            for key, value in figures.pop('per_box', {}).items():
                per_box.setdefault(key, {})[name] = value
            result.scores[name] = figures
        columns = sorted({name for values in per_box.values() for name in values},
                         key=list(self.scores).index)
        index = {int(i): n for n, i in enumerate(result.layout.instance_ids)}
        rows = []
        for (t, instance), values in sorted(per_box.items()):
            category = result.layout.categories[index[instance]]
            rows.append([t, instance, category] +
                        [round(values[c], 3) if c in values else None for c in columns])
        result.per_box, result.per_box_columns = rows, ['frame', 'instance', 'category'] + columns

    def cleanup(self) -> None:
        shutil.rmtree(self.out_root, ignore_errors=True)


def remove_old_runs(out_root: str, keep: int = 20) -> None:
    """Keep the ``keep`` newest run folders of a long-running page (each holds a few files)."""
    runs = [osp.join(out_root, d) for d in os.listdir(out_root) if d.startswith('run')]
    for path in sorted(runs, key=osp.getmtime)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
