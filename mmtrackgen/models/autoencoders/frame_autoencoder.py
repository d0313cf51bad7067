"""A small latent space for the synthetic world: a diffusers ``AutoencoderKL`` trained here.

The full-size recipes diffuse in Stable Diffusion's latent space and decode with its VAE. The
embedded default has no pretrained VAE to load (nothing is downloaded), so it trains its own on
the world's frames with this model and the Runner (``configs/autoencoder/synthetic_f4.py``),
exports it as a local diffusers folder (``ExportAutoencoderHook``), and the tiny generator then
reads that folder through the same ``TrackDiffusionDataPreprocessor(vae=...)`` path as SD's VAE.
"""
import os.path as osp
from typing import Dict, Optional

import torch
from mmengine.model import BaseModel

from mmtrackgen.registry import MODELS


@MODELS.register_module()
class FrameAutoencoder(BaseModel):
    """Trains a diffusers ``AutoencoderKL`` to reconstruct frames.

    Loss: a pixel reconstruction term plus ``kl_weight`` times the KL divergence to a unit
    Gaussian per latent element, which keeps the latents near the scale and smoothness a
    diffusion model expects (SD's VAE uses 1e-6 per pixel; the latents here are few, so a larger
    weight is affordable). The pixel term is ``'l1'`` or ``'mse'``: L1 is content with a frame
    whose few object pixels are wrong (each costs no more than a background pixel's noise), MSE
    charges their large errors quadratically and so makes the latents keep the objects.

    Args:
        vae (dict): ``AutoencoderKL`` constructor arguments (the architecture).
        kl_weight (float): weight of the KL term.
        pixel_loss (str): ``'l1'`` or ``'mse'``.
        data_preprocessor (dict, optional): defaults to mmengine's ``ImgDataPreprocessor``
            mapping uint8 BGR frames to RGB in [-1, 1].
    """

    def __init__(self,
                 vae: dict,
                 kl_weight: float = 1e-4,
                 pixel_loss: str = 'l1',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        from diffusers import AutoencoderKL
        data_preprocessor = MODELS.build(data_preprocessor or dict(
            type='ImgDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3, bgr_to_rgb=True))
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if kl_weight < 0:
            raise ValueError(f'kl_weight must be >= 0, got {kl_weight}')
        if pixel_loss not in ('l1', 'mse'):
            raise ValueError(f"pixel_loss must be 'l1' or 'mse', got {pixel_loss!r}")
        self.vae = AutoencoderKL(**vae)
        self.kl_weight = kl_weight
        self.pixel_loss = pixel_loss

    @property
    def downsample(self) -> int:
        return 2**(len(self.vae.config.block_out_channels) - 1)

    def forward(self, inputs: torch.Tensor, data_samples=None, mode: str = 'tensor'):
        if inputs.shape[-1] % self.downsample or inputs.shape[-2] % self.downsample:
            raise ValueError(f'frames of {inputs.shape[-1]}x{inputs.shape[-2]} are not a '
                             f'multiple of the autoencoder factor {self.downsample}')
        if mode == 'loss':
            return self.loss(inputs)
        if mode == 'predict':
            return self.reconstruct(inputs)
        if mode == 'tensor':
            return self.vae(inputs).sample
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

    def loss(self, frames: torch.Tensor) -> Dict[str, torch.Tensor]:
        posterior = self.vae.encode(frames).latent_dist  # (B, C, h, w) mean and log-variance
        recon = self.vae.decode(posterior.sample()).sample  # (B, 3, H, W)
        latent_elements = posterior.mean[0].numel()
        error = recon - frames
        pixel = error.abs().mean() if self.pixel_loss == 'l1' else error.square().mean()
        return {
            f'loss_{self.pixel_loss}': pixel,
            'loss_kl': self.kl_weight * posterior.kl().mean() / latent_elements
        }

    @torch.no_grad()
    def reconstruct(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, 3, H, W) reconstructions from the posterior mean."""
        latents = self.vae.encode(frames).latent_dist.mode()  # (B, C, h, w)
        return self.vae.decode(latents).sample.clamp(-1, 1)  # (B, 3, H, W)

    @torch.no_grad()
    def export_pretrained(self, folder: str, latent_std: float) -> str:
        """Save the VAE as a diffusers folder with ``scaling_factor = 1 / latent_std``, so the
        scaled latents a diffusion model sees have unit variance (as SD's 0.18215 does)."""
        if not latent_std > 0:
            raise ValueError(f'latent_std must be positive, got {latent_std}')
        self.vae.register_to_config(scaling_factor=float(1 / latent_std))
        self.vae.save_pretrained(folder)
        return osp.abspath(folder)
