"""TrackDiffusion image-to-video: Stable Video Diffusion conditioned on tracklets.

The same model interface as :class:`TrackDiffusion` (modes ``loss``/``predict``/``tensor``,
the same data samples, the same tracklet encoder, grounding and enhancers), with SVD's
diffusion instead of DDPM's:

- EDM training (Karras et al. 2022, as SVD trains): per clip a noise level
  ``sigma = exp(P_mean + P_std * n)``, ``n ~ N(0, 1)``; the noisy clip ``x + sigma * noise``
  is preconditioned with ``c_in = 1 / sqrt(sigma^2 + 1)`` and the UNet's timestep is
  ``c_noise = log(sigma) / 4``; the denoised clip is ``c_skip * noisy + c_out * output`` with
  ``c_skip = 1 / (sigma^2 + 1)``, ``c_out = -sigma / sqrt(sigma^2 + 1)`` (sigma_data = 1, the
  v-prediction of SVD's ``EulerDiscreteScheduler``), and its squared error to the clean clip is
  weighted by ``(sigma^2 + 1) / sigma^2`` (and by the foreground weights).
- First-frame conditioning: the first frame, noise-augmented by ``noise_aug_strength``, is
  encoded by the VAE and concatenated on channels to every frame's input; its CLIP image
  embedding is the cross-attention context; ``added_time_ids`` = (fps - 1, motion bucket,
  noise augmentation).
- Sampling: ``EulerDiscreteScheduler`` in SVD's configuration (continuous timesteps, Karras
  sigmas), with guidance whose scale grows linearly over the frames from
  ``min_guidance_scale`` to ``guidance_scale``, as SVD's pipeline does; the unconditional
  input has no image (zero embedding and zero condition latent) and no visible instance.
"""
import math
from typing import Dict, Optional, Union

import torch
import torch.nn.functional as F
from diffusers import EulerDiscreteScheduler

from mmtrackgen.registry import MODELS
from .conditioning.tracklet_conditioning import TrackletConditioning
from .trackdiffusion import TrackDiffusion, build_scheduler

# diffusers' EulerDiscreteScheduler as Stable Video Diffusion ships it (scheduler/ of the
# img2vid folders); a config may instead read it from the folder (``from_pretrained``).
SVD_SCHEDULER = dict(
    type='EulerDiscreteScheduler',
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule='scaled_linear',
    interpolation_type='linear',
    use_karras_sigmas=True,
    sigma_min=0.002,
    sigma_max=700.0,
    timestep_spacing='leading',
    steps_offset=1,
    timestep_type='continuous')


def edm_preconditioning(sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(B,) noise levels -> c_skip, c_out, c_in, c_noise, each (B,), for sigma_data = 1."""
    c_skip = 1 / (sigma**2 + 1)
    c_out = -sigma / (sigma**2 + 1).sqrt()
    c_in = 1 / (sigma**2 + 1).sqrt()
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


def edm_loss_weight(sigma: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B,) EDM's lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma * sigma_data)^2."""
    return (sigma**2 + 1) / sigma**2


def _per_clip(x: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, 1, 1, 1), to scale (B, F, C, h, w) clips."""
    return x.reshape(-1, 1, 1, 1, 1)


@MODELS.register_module()
class TrackDiffusionI2V(TrackDiffusion):
    """Tracklet-conditioned image-to-video diffusion on Stable Video Diffusion.

    Args:
        generator (dict): a spatio-temporal UNet taking ``(sample (B, F, 2C, h, w), timestep,
            encoder_hidden_states, added_time_ids, tracklets)``, e.g.
            ``TrackletUNetSpatioTemporal``; its ``in_channels`` are twice the latent channels.
        tracklet_encoder (dict): ``TrackletEncoder`` config.
        noise_scheduler (dict): the sampling schedule: an ``EulerDiscreteScheduler`` with
            ``timestep_type='continuous'`` (default: SVD's), or ``dict(type=...,
            from_pretrained=folder, subfolder='scheduler')``.
        data_preprocessor (dict): default ``SVDDataPreprocessor`` (pixel space, no encoder).
        sampler (dict | str): the default sampling scheduler; a class name takes the noise
            schedule's config. Only continuous-time ``EulerDiscreteScheduler`` s fit EDM.
        sigma_log_mean, sigma_log_std (float): P_mean and P_std of the log-normal training
            noise levels (SVD fine-tuning uses 0.7 and 1.6).
        fps, motion_bucket_id, noise_aug_strength: SVD's micro-conditioning, the same in
            training and sampling; ``noise_aug_strength`` also scales the noise added to the
            first frame before it is encoded.
        image_dropout (float): probability of training a clip without its image condition
            (zero embedding and zero condition latent), the unconditional input of guidance.
        num_inference_steps (int), guidance_scale (float), min_guidance_scale (float):
            sampling defaults; the guidance scale of frame f grows linearly from the minimum
            (first frame) to ``guidance_scale`` (last frame).
        **kwargs: the other arguments of :class:`TrackDiffusion`, passed on unchanged:
            ``tracklet_dropout`` (here independent of the image's dropout),
            ``foreground_weight``, ``trainable``, ``gradient_checkpointing``,
            ``compile_generator``, ``init_cfg``. ``prediction_type`` and ``caption_dropout``
            are fixed by SVD.

    Without an image encoder (tiny configs) the cross-attention reads one learned token.
    """

    needs_first_frame = True  # tools/generate.py asks for a first frame per clip

    def __init__(self,
                 generator: dict,
                 tracklet_encoder: dict,
                 noise_scheduler: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 sampler: Union[dict, str, None] = 'EulerDiscreteScheduler',
                 sigma_log_mean: float = 0.7,
                 sigma_log_std: float = 1.6,
                 fps: int = 7,
                 motion_bucket_id: int = 127,
                 noise_aug_strength: float = 0.02,
                 image_dropout: float = 0.1,
                 num_inference_steps: int = 25,
                 guidance_scale: float = 3.0,
                 min_guidance_scale: float = 1.0,
                 **kwargs):
        if not 0 <= image_dropout <= 1:
            raise ValueError(f'image_dropout must be in [0, 1], got {image_dropout}')
        if not sigma_log_std > 0:
            raise ValueError(f'sigma_log_std must be positive, got {sigma_log_std}')
        if not noise_aug_strength >= 0:
            raise ValueError(f'noise_aug_strength must be >= 0, got {noise_aug_strength}')
        super().__init__(
            generator=generator,
            tracklet_encoder=tracklet_encoder,
            noise_scheduler=noise_scheduler or SVD_SCHEDULER,
            data_preprocessor=data_preprocessor or dict(type='SVDDataPreprocessor'),
            sampler=sampler,
            prediction_type='v_prediction',  # what EDM's c_skip/c_out are, in diffusers' terms
            caption_dropout=0.0,  # SVD reads no caption
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            **kwargs)
        self._check_continuous(self.noise_scheduler, 'noise_scheduler')
        pre = self.data_preprocessor
        if getattr(pre, 'image_encoder', None) is not None:
            self.null_text = None  # the CLIP image embedding is the context
            if pre.image_embed_dim != self.generator.config.cross_attention_dim:
                raise ValueError(
                    f'the image encoder embeds in {pre.image_embed_dim} dimensions but the '
                    f'generator cross-attends to {self.generator.config.cross_attention_dim}')
        in_channels = self.generator.config.in_channels
        if in_channels != 2 * pre.latent_channels:
            raise ValueError(
                f'the generator takes {in_channels} input channels; first-frame conditioning '
                f'needs 2 x {pre.latent_channels} (noisy latents ; first-frame latent)')
        self.sigma_log_mean = sigma_log_mean
        self.sigma_log_std = sigma_log_std
        self.fps = fps
        self.motion_bucket_id = motion_bucket_id
        self.noise_aug_strength = noise_aug_strength
        self.image_dropout = image_dropout
        self.min_guidance_scale = min_guidance_scale

    @staticmethod
    def _check_continuous(scheduler, what: str) -> None:
        config = scheduler.config
        if (not isinstance(scheduler, EulerDiscreteScheduler)
                or config.get('timestep_type') != 'continuous'
                or config.get('prediction_type') != 'v_prediction'):
            raise ValueError(f'{what}: EDM sampling needs EulerDiscreteScheduler with '
                             f"timestep_type='continuous' and prediction_type='v_prediction', got "
                             f"{type(scheduler).__name__} ({config.get('timestep_type')!r}, "
                             f"{config.get('prediction_type')!r})")

    # ----------------------------------------------------------------- shared pieces
    def _context(self, inputs: dict, batch: int) -> torch.Tensor:
        """(B, 1, D) cross-attention context: the CLIP image embeddings or the learned token."""
        if inputs.get('image_embeds') is not None:
            return inputs['image_embeds']
        return self.null_text.expand(batch, -1, -1)

    def _added_time_ids(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        """(B, 3): fps - 1, motion bucket, noise augmentation, as SVD's pipeline passes them."""
        ids = [self.fps - 1, self.motion_bucket_id, self.noise_aug_strength]
        return like.new_tensor(ids).expand(batch, -1)

    def _first_frames(self, inputs: dict) -> torch.Tensor:
        if inputs.get('first_frames') is None:
            raise ValueError(
                'TrackDiffusionI2V generates from a first frame per clip and the batch has none: '
                'give clips with frames, or first frames (tools/generate.py --first-frames DIR)')
        return inputs['first_frames']  # (B, 3, H, W)

    def _unet(self, model_in: torch.Tensor, c_noise: torch.Tensor, condition: torch.Tensor,
              context: torch.Tensor, time_ids: torch.Tensor,
              tracklets: TrackletConditioning) -> torch.Tensor:
        """(B, F, C, h, w) preconditioned latents and (B, C, h, w) condition latents -> the
        generator's (B, F, C, h, w) output."""
        num_frames = model_in.shape[1]
        condition = condition[:, None].expand(-1, num_frames, -1, -1, -1)  # (B, F, C, h, w)
        sample = torch.cat([model_in, condition.to(model_in.dtype)], dim=2)  # (B, F, 2C, h, w)
        return self.generator(
            sample,
            c_noise,
            encoder_hidden_states=context,
            added_time_ids=time_ids,
            tracklets=tracklets,
            return_dict=False)[0]  # (B, F, C, h, w)

    # ----------------------------------------------------------------- training
    def _noised_prediction(self, inputs: dict, drop_conditions: bool = False):
        """Noise the clean latents at log-normal sigmas and denoise: (denoised, clean, sigma)."""
        if 'latents' not in inputs:
            raise ValueError('training needs frames: the batch holds tracklets only')
        latents = inputs['latents']  # (B, F, C, h, w)
        b = latents.shape[0]
        first = self._first_frames(inputs)  # (B, 3, H, W)
        sigma = (torch.randn(b, device=latents.device) * self.sigma_log_std +
                 self.sigma_log_mean).exp()  # (B,)
        noisy = latents + _per_clip(sigma) * torch.randn_like(latents)  # (B, F, C, h, w)
        c_skip, c_out, c_in, c_noise = edm_preconditioning(sigma)  # each (B,)

        condition = self.data_preprocessor.encode_condition(
            first + self.noise_aug_strength * torch.randn_like(first))  # (B, C, h, w)
        context = self._context(inputs, b)  # (B, 1, D)
        visible = inputs['visible']  # (B, F, N)
        if drop_conditions:
            keep_image = torch.rand(b, device=latents.device) >= self.image_dropout  # (B,)
            context = context * keep_image[:, None, None].to(context.dtype)
            condition = condition * keep_image[:, None, None, None].to(condition.dtype)
            drop_tracks = torch.rand(b, device=latents.device) < self.tracklet_dropout  # (B,)
            visible = visible & ~drop_tracks[:, None, None]  # (B, F, N)
        tracklets = self.tracklet_encoder(inputs['boxes'], visible, inputs['labels'])
        out = self._unet(
            _per_clip(c_in) * noisy, c_noise, condition, context, self._added_time_ids(b, latents),
            tracklets)  # (B, F, C, h, w)
        denoised = _per_clip(c_skip) * noisy + _per_clip(c_out) * out.float()
        return denoised, latents, sigma

    def loss(self, inputs: dict, data_samples: Optional[list] = None) -> Dict[str, torch.Tensor]:
        denoised, clean, sigma = self._noised_prediction(inputs, drop_conditions=True)
        weights = self._loss_weights(inputs, clean)  # (B, F, 1, h, w)
        weights = weights * _per_clip(edm_loss_weight(sigma))  # (B, F, 1, h, w)
        mse = F.mse_loss(denoised.float(), clean.float(), reduction='none')  # (B, F, C, h, w)
        return dict(loss=(mse * weights).mean())

    # ----------------------------------------------------------------- sampling
    @torch.no_grad()
    def predict(self,
                inputs: dict,
                data_samples: list,
                num_inference_steps: Optional[int] = None,
                guidance_scale: Optional[float] = None,
                scheduler: Union[dict, str, None] = None,
                seed: int = 0) -> list:
        """Sample one clip per data sample from its first frame; adds ``pred_frames``
        (F, 3, H, W) uint8 and ``pred_seed``. A sample's seed (metainfo ``seed``, else
        ``seed + index``) draws its initial noise and its first frame's noise augmentation."""
        steps = num_inference_steps or self.num_inference_steps
        guidance = self.guidance_scale if guidance_scale is None else guidance_scale
        sampler = build_scheduler(scheduler or self.sampler_cfg, self.noise_scheduler.config)
        self._check_continuous(sampler, 'sampler')
        first = self._first_frames(inputs)  # (B, 3, H, W)
        device = first.device
        sampler.set_timesteps(steps, device=device)

        boxes, visible = inputs['boxes'], inputs['visible']  # (B, F, N, 4), (B, F, N)
        b, num_frames = boxes.shape[:2]
        shape = self._latent_shape(inputs, data_samples)  # (C, h, w)
        seeds, generators, noise = self._seeded_noise(data_samples, seed, (num_frames, *shape),
                                                      device)  # noise: (B, F, C, h, w)
        augment = torch.stack([torch.randn(first.shape[1:], generator=g)
                               for g in generators]).to(device)  # (B, 3, H, W)
        latents = noise * sampler.init_noise_sigma
        step_kwargs = self._per_clip_step_kwargs(sampler, generators)

        condition = self.data_preprocessor.encode_condition(
            first + self.noise_aug_strength * augment)  # (B, C, h, w)
        context = self._context(inputs, b)  # (B, 1, D)
        time_ids = self._added_time_ids(b, noise)  # (B, 3)
        cond = self.tracklet_encoder(boxes, visible, inputs['labels'])
        scales = torch.linspace(
            self.min_guidance_scale, guidance, num_frames, device=device)  # (F,)
        scales = scales.reshape(1, -1, 1, 1, 1)  # (1, F, 1, 1, 1)
        use_guidance = not math.isclose(guidance, 1.0) or not math.isclose(
            self.min_guidance_scale, 1.0)
        if use_guidance:  # unconditional = no image and all instances invisible
            uncond = self.tracklet_encoder(boxes, torch.zeros_like(visible), inputs['labels'])
            cond = TrackletConditioning.concat([uncond, cond])
            context = torch.cat([torch.zeros_like(context), context])  # (2B, 1, D)
            condition = torch.cat([torch.zeros_like(condition), condition])  # (2B, C, h, w)
            time_ids = torch.cat([time_ids, time_ids])  # (2B, 3)
        for t in sampler.timesteps:
            model_in = torch.cat([latents] * 2) if use_guidance else latents
            model_in = sampler.scale_model_input(model_in, t)  # ((2)B, F, C, h, w)
            out = self._unet(model_in, t.expand(model_in.shape[0]), condition, context, time_ids,
                             cond)  # ((2)B, F, C, h, w)
            if use_guidance:
                out_uncond, out_cond = out.chunk(2)
                out = out_uncond + scales * (out_cond - out_uncond)  # (B, F, C, h, w)
            latents = sampler.step(out, t, latents, **step_kwargs).prev_sample  # (B, F, C, h, w)
        return self._attach_clips(latents, data_samples, seeds)
