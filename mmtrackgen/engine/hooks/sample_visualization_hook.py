"""Samples of the model under training, drawn with their tracklets, every few iterations."""
from typing import Optional

import numpy as np
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmtrackgen.registry import DATASETS, HOOKS
from mmtrackgen.visualization import contact_sheet, draw_tracklets


@HOOKS.register_module()
class SampleVisualizationHook(Hook):
    """Every ``interval`` training iterations (and at the end), sample the first
    ``num_clips`` clips of ``dataset`` (default: the config's ``val_dataloader.dataset``) with
    fixed seeds, draw the input tracklets on the
    samples, and write a contact sheet (a row per clip: real frames, then generated ones)
    through the runner's visualizer (``vis_data/`` of the work dir with LocalVisBackend).

    Args:
        dataset (dict, optional): the clips to sample, as a dataset config.
        interval (int): iterations between sample sheets.
        num_clips (int): clips per sheet.
        num_inference_steps (int, optional), guidance_scale (float, optional),
            scheduler (str | dict, optional): sampling settings; the model's by default.
        upscale (int): enlargement of small frames for legibility.
    """
    priority = 'LOW'

    def __init__(self,
                 dataset: Optional[dict] = None,
                 interval: int = 500,
                 num_clips: int = 4,
                 num_inference_steps: Optional[int] = None,
                 guidance_scale: Optional[float] = None,
                 scheduler=None,
                 upscale: int = 2):
        self.interval = interval
        self.num_clips = num_clips
        self.sample_kwargs = dict(
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            scheduler=scheduler)
        self.upscale = upscale
        self.dataset_cfg = dataset
        self._dataset = None

    def _clips(self, runner):
        if self._dataset is None:
            cfg = self.dataset_cfg or runner.cfg.get('val_dataloader', {}).get('dataset')
            if cfg is None:
                raise ValueError('SampleVisualizationHook needs a dataset: give `dataset=` or '
                                 'a val_dataloader in the config')
            self._dataset = DATASETS.build(cfg)
        return self._dataset

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner):
            self.draw(runner)

    def draw(self, runner) -> np.ndarray:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        dataset = self._clips(runner)
        items = [dataset[i] for i in range(min(self.num_clips, len(dataset)))]
        was_training = model.training
        model.eval()
        data = model.data_preprocessor(pseudo_collate(items), False)
        samples = model.predict(data['inputs'], data['data_samples'], **self.sample_kwargs)
        model.train(was_training)
        classes = dataset.metainfo.get('classes')
        rows = []
        for item, sample in zip(items, samples):
            args = (sample.gt_boxes.cpu().numpy(), sample.gt_visible.cpu().numpy(),
                    sample.gt_labels.cpu().numpy(), sample.gt_instance_ids.cpu().numpy(), classes)
            real = item['inputs'].permute(0, 2, 3, 1).numpy()  # (F, H, W, 3)
            fake = sample.pred_frames.permute(0, 2, 3, 1).numpy()  # (F, H, W, 3)
            rows.append(
                np.concatenate([
                    draw_tracklets(real, *args, upscale=self.upscale),
                    draw_tracklets(fake, *args, upscale=self.upscale)
                ]))
        sheet = contact_sheet(rows, [f'{s.video_name}: real | generated' for s in samples])
        runner.visualizer.add_image('samples', sheet, step=runner.iter + 1)
        return sheet
