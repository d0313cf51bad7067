"""Saving a trained frame autoencoder as the diffusers folder the tiny generator loads."""
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmtrackgen.registry import HOOKS


@HOOKS.register_module()
class ExportAutoencoderHook(Hook):
    """After training, measure the latent scale on ``num_batches`` training batches and save the
    :class:`FrameAutoencoder`'s VAE with ``scaling_factor = 1 / std`` to ``work_dir/out_dir``
    (``config.json`` + weights, what ``AutoencoderKL.from_pretrained`` reads).

    Also runs when a run that already reached ``max_iters`` is started again, so a lost export
    can be remade with the same command.
    """
    priority = 'LOW'

    def __init__(self, out_dir: str = 'vae', num_batches: int = 8):
        if num_batches < 1:
            raise ValueError(f'num_batches must be >= 1, got {num_batches}')
        self.out_dir = out_dir
        self.num_batches = num_batches

    @torch.no_grad()
    def after_train(self, runner) -> None:
        if runner.rank != 0:
            return
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        latents = []
        for i, batch in enumerate(runner.train_dataloader):
            if i == self.num_batches:
                break
            frames = model.data_preprocessor(batch, False)['inputs']  # (B, 3, H, W)
            latents.append(model.vae.encode(frames).latent_dist.sample().flatten())
        std = torch.cat(latents).std().item()
        folder = model.export_pretrained(osp.join(runner.work_dir, self.out_dir), std)
        print_log(
            f'autoencoder exported to {folder} (latent std {std:.4f}, scaling_factor '
            f'{1 / std:.4f})',
            logger='current')
