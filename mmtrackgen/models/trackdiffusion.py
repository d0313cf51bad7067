"""TrackDiffusion as an mmengine model: tracklets in, video clips out.

The network parts (tracklet encoder, generator) know nothing of diffusion; the noise, the
targets, the loss weighting, guidance and the sampling loop live here, and the noise schedules
are diffusers schedulers chosen in config.
"""
import copy
import inspect
import logging
from typing import Dict, List, Optional, Sequence, Union

import diffusers
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel

from mmtrackgen.registry import MODELS
from .conditioning.tracklet_conditioning import TrackletConditioning


def scheduler_class(name: str) -> type:
    """The diffusers scheduler class called ``name``; ``ValueError`` if there is none."""
    cls = getattr(diffusers, name, None) if isinstance(name, str) else None
    if cls is None or not isinstance(cls, type) or not hasattr(cls, 'set_timesteps'):
        raise ValueError(f'{name!r} is not a diffusers scheduler')
    return cls


def build_scheduler(cfg: Union[dict, str], base_config: Optional[dict] = None):
    """A diffusers scheduler from ``dict(type='DDPMScheduler', **kwargs)``, from
    ``dict(type=..., from_pretrained=folder, subfolder='scheduler')``, or, with ``base_config``,
    a class name whose schedule is taken from ``base_config`` (how pipelines swap samplers)."""
    cfg = dict(type=cfg) if isinstance(cfg, str) else copy.deepcopy(dict(cfg))
    cls = scheduler_class(cfg.pop('type'))
    if 'from_pretrained' in cfg:
        return cls.from_pretrained(cfg.pop('from_pretrained'), local_files_only=True, **cfg)
    if base_config is not None:
        # DPM-Solver steps in log-SNR, which is -inf at the end of the cosine schedule: without
        # a floor its first step explodes (diffusers documents the floor for this schedule).
        if (base_config.get('beta_schedule') == 'squaredcos_cap_v2'
                and 'lambda_min_clipped' in inspect.signature(cls.__init__).parameters):
            cfg.setdefault('lambda_min_clipped', -5.1)
        # Sampling must start from the last training timestep, where the clip is pure noise.
        # DDPM's (and so the training schedule's) 'leading' spacing starts a few-step DDIM at
        # T - T/steps (900 of 1000 at 10 steps), where the cosine schedule still keeps 17% of
        # the signal the pure-noise start lacks; 'trailing' starts at T - 1 (Lin et al. 2024).
        if 'timestep_spacing' in inspect.signature(cls.__init__).parameters:
            cfg.setdefault('timestep_spacing', 'trailing')
        return cls.from_config(base_config, **cfg)
    return cls(**cfg)


def foreground_mask(boxes: torch.Tensor, visible: torch.Tensor, height: int,
                    width: int) -> torch.Tensor:
    """(B, F, N, 4) normalised boxes -> (B, F, h, w) bool: pixel centres inside any visible box."""
    ys = (torch.arange(height, device=boxes.device) + 0.5) / height  # (h,)
    xs = (torch.arange(width, device=boxes.device) + 0.5) / width  # (w,)
    x1, y1, x2, y2 = boxes[..., None, None].unbind(-3)  # each (B, F, N, 1, 1)
    inside_y = (ys[:, None] >= y1) & (ys[:, None] < y2)  # (B, F, N, h, 1)
    inside_x = (xs[None, :] >= x1) & (xs[None, :] < x2)  # (B, F, N, 1, w)
    inside = inside_y & inside_x & visible[..., None, None]  # (B, F, N, h, w)
    return inside.any(dim=2)  # (B, F, h, w)


@MODELS.register_module()
class TrackDiffusion(BaseModel):
    """Tracklet-conditioned video diffusion (TrackDiffusion, arXiv 2312.00651).

    Args:
        generator (dict): a video UNet taking ``(sample (B, C, F, h, w), timestep,
            encoder_hidden_states, tracklets)``, e.g. ``TrackletUNet3D``.
        tracklet_encoder (dict): ``TrackletEncoder`` config.
        noise_scheduler (dict): the training schedule, a diffusers scheduler with ``add_noise``
            (e.g. ``dict(type='DDPMScheduler', num_train_timesteps=1000)``).
        sampler (dict | str, optional): the default sampling scheduler; a class name takes the
            training schedule's config. Defaults to ``'DDIMScheduler'``.
        prediction_type (str): ``'epsilon'`` or ``'v_prediction'``.
        foreground_weight (float): loss weight of latent pixels inside any visible box relative
            to the rest; weights are normalised to mean 1 per clip (the paper uses 2).
        caption_dropout (float): probability of training a clip with the empty caption.
        tracklet_dropout (float): probability, independent of the caption's, of training a clip
            with all instances invisible (the unconditional input of guidance).
        trainable (sequence of str, optional): what trains, by module name: an attribute path
            (``'tracklet_encoder'``, ``'generator.conv_in'``) or a group of the generator's
            ``module_groups()`` (``'generator.temporal'``, ``'generator.enhancer'``). None
            trains everything. Everything else is frozen and kept in eval mode.
        train_closed_gates (bool): also train gated layers left out of ``trainable`` whose gates
            are closed at build time (they would never open). False where a checkpoint loaded
            after building opens them (the authors' converted weights).
        gradient_checkpointing (bool): recompute the generator's activations in backward.
        caption_encoder (dict, optional): a trainable caption encoder built from config (e.g.
            ``WordCaptionEncoder``) for models whose preprocessor has no text encoder: captions
            reach the generator's cross-attention through it. Without either, the
            cross-attention reads one learned token.
        compile_generator (dict, optional): ``torch.compile`` the generator in place
            (``nn.Module.compile``: state-dict keys unchanged) with these options, e.g.
            ``dict(mode='max-autotune')``; None (the default) does not compile.
        num_inference_steps (int), guidance_scale (float): sampling defaults.
    """

    def __init__(self,
                 generator: dict,
                 tracklet_encoder: dict,
                 noise_scheduler: dict,
                 data_preprocessor: Optional[dict] = None,
                 sampler: Union[dict, str, None] = 'DDIMScheduler',
                 prediction_type: str = 'epsilon',
                 foreground_weight: float = 2.0,
                 caption_dropout: float = 0.1,
                 tracklet_dropout: float = 0.1,
                 trainable: Optional[Sequence[str]] = None,
                 train_closed_gates: bool = True,
                 gradient_checkpointing: bool = False,
                 caption_encoder: Optional[dict] = None,
                 compile_generator: Optional[dict] = None,
                 num_inference_steps: int = 50,
                 guidance_scale: float = 7.5,
                 init_cfg: Optional[dict] = None):
        # Built from our registry here: BaseModel would look the name up in mmengine's, which
        # finds it only when the default scope happens to be set.
        data_preprocessor = MODELS.build(
            data_preprocessor or dict(type='TrackDiffusionDataPreprocessor'))
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if prediction_type not in ('epsilon', 'v_prediction'):
            raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', "
                             f'got {prediction_type!r}')
        for name, p in (('caption_dropout', caption_dropout), ('tracklet_dropout',
                                                               tracklet_dropout)):
            if not 0 <= p <= 1:
                raise ValueError(f'{name} must be in [0, 1], got {p}')
        if foreground_weight <= 0:
            raise ValueError(f'foreground_weight must be positive, got {foreground_weight}')

        self.generator = MODELS.build(generator)
        self.tracklet_encoder = MODELS.build(tracklet_encoder)
        self.noise_scheduler = build_scheduler(
            dict(noise_scheduler, prediction_type=prediction_type))
        if not hasattr(self.noise_scheduler, 'add_noise'):
            raise ValueError(f'{type(self.noise_scheduler).__name__} cannot add noise for training')
        self.sampler_cfg = sampler
        self.prediction_type = prediction_type
        self.foreground_weight = foreground_weight
        self.caption_dropout = caption_dropout
        self.tracklet_dropout = tracklet_dropout
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self._empty_text_cache = None  # the encoded empty caption, made on first use
        self.caption_encoder = None
        has_text_encoder = getattr(self.data_preprocessor, 'text_encoder', None) is not None
        if caption_encoder is not None:
            if has_text_encoder:
                raise ValueError('caption_encoder is for models without a text encoder; the data '
                                 'preprocessor already encodes captions')
            self.caption_encoder = MODELS.build(caption_encoder)
        # Without any caption encoder (tiny configs) the cross-attention reads one learned token.
        self.null_text = None
        if not has_text_encoder and self.caption_encoder is None:
            self.null_text = nn.Parameter(
                torch.zeros(1, 1, self.generator.config.cross_attention_dim))
        if gradient_checkpointing:
            self.generator.enable_gradient_checkpointing()
        self.trainable = tuple(trainable) if trainable is not None else None
        self.train_closed_gates = train_closed_gates
        self._freeze_all_but(self.trainable)
        if compile_generator is not None:
            self.generator.compile(**compile_generator)

    # ----------------------------------------------------------------- trainable parts
    def _resolve(self, name: str) -> List[nn.Module]:
        """Modules named by an attribute path or a ``module_groups()`` group."""
        head, _, rest = name.partition('.')
        module = getattr(self, head, None)
        if not isinstance(module, nn.Module):
            raise ValueError(f"trainable: {type(self).__name__} has no module '{head}'")
        if not rest:
            return [module]
        groups = module.module_groups() if hasattr(module, 'module_groups') else {}
        if rest in groups:
            return list(groups[rest])
        try:
            return [module.get_submodule(rest)]
        except AttributeError:
            raise ValueError(f"trainable: '{name}' is neither a submodule nor one of the groups "
                             f'{sorted(groups)} of {head}') from None

    def _freeze_all_but(self, trainable: Optional[Sequence[str]]) -> None:
        if trainable is None:
            return
        self.requires_grad_(False)
        for name in trainable:
            for module in self._resolve(name):
                module.requires_grad_(True)
        self.data_preprocessor.requires_grad_(False)
        if self.train_closed_gates:
            self._train_closed_gated_layers()
        self.train(self.training)

    def _train_closed_gated_layers(self) -> None:
        """Train the gated layers (grounding, enhancers) that ``trainable`` left frozen with
        closed gates. A gated layer adds ``tanh(alpha) * f(x)``; with alpha = 0 and frozen it
        stays shut forever, and what enters only through it never reaches the loss: categories
        and identities enter only through the grounding tokens. Pretrained grounding (a GLIGEN
        folder) has open gates and stays frozen, as the paper keeps it; grounding newly
        initialised because no GLIGEN weights were given would be dead, so it trains."""
        closed = []
        for name, module in self.generator.named_modules():
            gates = [getattr(module, g, None) for g in ('alpha_attn', 'alpha_dense')]
            if not all(isinstance(g, nn.Parameter) for g in gates):
                continue
            if any(p.requires_grad for p in module.parameters()):
                continue
            # on the meta device (memory model) values are unknown: gates are built closed
            if all(g.is_meta or not g.detach().any() for g in gates):
                module.requires_grad_(True)
                closed.append(f'generator.{name}')
        if closed:
            from mmengine.logging import print_log
            print_log(
                f'{len(closed)} gated layers (e.g. {closed[0]}) start with closed gates (no '
                'pretrained weights such as GLIGEN\'s loaded) and are not in `trainable`: '
                'frozen they would never open, so they train', logger='current',
                level=logging.WARNING)

    def train(self, mode: bool = True):
        """Train mode for modules that learn; frozen modules (no trainable parameter in them or
        below) stay in eval mode, so their dropout and normalisation behave as pretrained."""
        super().train(mode)
        if mode and self.trainable is not None:
            for module in self.modules():
                params = list(module.parameters())
                if params and not any(p.requires_grad for p in params):
                    module.eval()
        return self

    # ----------------------------------------------------------------- shared pieces
    def _text(self, inputs: dict, batch: int) -> torch.Tensor:
        """(B, L, D) text context: the encoded captions, or the learned null token."""
        if inputs.get('text_embeds') is not None:
            return inputs['text_embeds']
        if self.caption_encoder is not None:
            return self.caption_encoder(inputs['captions'])
        return self.null_text.expand(batch, -1, -1)

    def _empty_text(self, like: torch.Tensor) -> torch.Tensor:
        """The unconditional text context, shaped like ``like`` (B, L, D)."""
        pre = self.data_preprocessor
        if self.caption_encoder is not None:
            return self.caption_encoder(['']).expand(like.shape[0], -1, -1)
        if getattr(pre, 'text_encoder', None) is None:
            return self.null_text.expand(like.shape[0], -1, -1)
        if self._empty_text_cache is None or self._empty_text_cache.device != like.device:
            self._empty_text_cache = pre.encode_text([''])  # (1, L, D)
        return self._empty_text_cache.expand(like.shape[0], -1, -1)

    def _denoise(self, latents: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor,
                 tracklets: TrackletConditioning) -> torch.Tensor:
        """(B, F, C, h, w) noisy latents -> (B, F, C, h, w) prediction of the generator."""
        sample = latents.transpose(1, 2)  # (B, C, F, h, w): diffusers' video layout
        out = self.generator(
            sample, timesteps, encoder_hidden_states=text, tracklets=tracklets,
            return_dict=False)[0]  # (B, C, F, h, w)
        return out.transpose(1, 2)  # (B, F, C, h, w)

    def _loss_weights(self, inputs: dict, latents: torch.Tensor) -> torch.Tensor:
        """(B, F, 1, h, w) weights, ``foreground_weight`` inside boxes, mean 1 per clip."""
        h, w = latents.shape[-2:]
        fg = foreground_mask(inputs['boxes'], inputs['visible'], h, w)  # (B, F, h, w)
        weights = 1 + (self.foreground_weight - 1) * fg.float()  # (B, F, h, w)
        weights = weights / weights.mean(dim=(1, 2, 3), keepdim=True)
        return weights.unsqueeze(2)  # (B, F, 1, h, w)

    # ----------------------------------------------------------------- modes
    def forward(self, inputs: dict, data_samples: Optional[list] = None, mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._noised_prediction(inputs)[0]
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

    def _noised_prediction(self, inputs: dict, drop_conditions: bool = False):
        """Noise the clean latents at random timesteps and predict: (prediction, target)."""
        if 'latents' not in inputs:
            raise ValueError('training needs frames: the batch holds tracklets only')
        latents = inputs['latents']  # (B, F, C, h, w)
        b = latents.shape[0]
        noise = torch.randn_like(latents)  # (B, F, C, h, w)
        timesteps = torch.randint(
            0, self.noise_scheduler.config.num_train_timesteps, (b, ),
            device=latents.device)  # (B,)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)  # (B, F, C, h, w)
        if self.prediction_type == 'epsilon':
            target = noise
        else:
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)

        text = self._text(inputs, b)  # (B, L, D)
        visible = inputs['visible']  # (B, F, N)
        if drop_conditions:
            drop_text = torch.rand(b, device=latents.device) < self.caption_dropout  # (B,)
            text = torch.where(drop_text[:, None, None], self._empty_text(text), text)
            drop_tracks = torch.rand(b, device=latents.device) < self.tracklet_dropout  # (B,)
            visible = visible & ~drop_tracks[:, None, None]  # (B, F, N)
        tracklets = self.tracklet_encoder(inputs['boxes'], visible, inputs['labels'])
        return self._denoise(noisy, timesteps, text, tracklets), target

    def loss(self, inputs: dict, data_samples: Optional[list] = None) -> Dict[str, torch.Tensor]:
        pred, target = self._noised_prediction(inputs, drop_conditions=True)  # (B, F, C, h, w)
        weights = self._loss_weights(inputs, target)  # (B, F, 1, h, w)
        mse = F.mse_loss(pred.float(), target.float(), reduction='none')  # (B, F, C, h, w)
        return dict(loss=(mse * weights).mean())

    @torch.no_grad()
    def predict(self,
                inputs: dict,
                data_samples: list,
                num_inference_steps: Optional[int] = None,
                guidance_scale: Optional[float] = None,
                scheduler: Union[dict, str, None] = None,
                seed: int = 0) -> list:
        """Sample one clip per data sample; adds ``pred_frames`` (F, 3, H, W) uint8 and
        ``pred_seed`` to each. A sample's seed is its metainfo ``seed`` if set, else
        ``seed + index in batch``, so a clip can be regenerated alone."""
        steps = num_inference_steps or self.num_inference_steps
        guidance = self.guidance_scale if guidance_scale is None else guidance_scale
        sampler = build_scheduler(scheduler or self.sampler_cfg, self.noise_scheduler.config)
        sampler.set_timesteps(steps, device=inputs['boxes'].device)

        boxes, visible = inputs['boxes'], inputs['visible']  # (B, F, N, 4), (B, F, N)
        b, num_frames = boxes.shape[:2]
        shape = self._latent_shape(inputs, data_samples)  # (C, h, w)
        seeds, generators, noise = self._seeded_noise(data_samples, seed, (num_frames, *shape),
                                                      boxes.device)  # noise: (B, F, C, h, w)
        latents = noise * sampler.init_noise_sigma
        step_kwargs = self._per_clip_step_kwargs(sampler, generators)

        text = self._text(inputs, b)  # (B, L, D)
        cond = self.tracklet_encoder(boxes, visible, inputs['labels'])
        use_guidance = guidance != 1.0
        if use_guidance:  # unconditional = empty caption and all instances invisible
            uncond = self.tracklet_encoder(boxes, torch.zeros_like(visible), inputs['labels'])
            cond = TrackletConditioning.concat([uncond, cond])
            text = torch.cat([self._empty_text(text), text])  # (2B, L, D)
        for t in sampler.timesteps:
            model_in = torch.cat([latents] * 2) if use_guidance else latents
            model_in = sampler.scale_model_input(model_in, t)  # ((2)B, F, C, h, w)
            pred = self._denoise(model_in, t.expand(model_in.shape[0]), text, cond)
            if use_guidance:
                pred_uncond, pred_cond = pred.chunk(2)
                pred = pred_uncond + guidance * (pred_cond - pred_uncond)  # (B, F, C, h, w)
            # The scheduler's step works on any shape; keep diffusers' (B, C, F, h, w) anyway.
            latents = sampler.step(pred.transpose(1, 2), t, latents.transpose(1, 2),
                                   **step_kwargs).prev_sample.transpose(1, 2)
        return self._attach_clips(latents, data_samples, seeds)

    @staticmethod
    def _seeded_noise(data_samples: list, seed: int, shape: tuple, device) -> tuple:
        """Each sample's seed (metainfo ``seed``, else ``seed + index``), its generator and the
        initial noise of ``shape`` drawn from it first: (seeds, generators, (B, *shape)). The
        generators then draw the clip's noise augmentation (image-to-video) and the noise of
        stochastic samplers' steps (:meth:`_per_clip_step_kwargs`), all on the CPU, so a clip's
        noise is the same alone or in any batch."""
        seeds = [int(s.metainfo.get('seed', seed + i)) for i, s in enumerate(data_samples)]
        generators = [torch.Generator().manual_seed(s) for s in seeds]
        noise = torch.stack([torch.randn(shape, generator=g) for g in generators]).to(device)
        return seeds, generators, noise

    @staticmethod
    def _per_clip_step_kwargs(sampler, generators: list) -> dict:
        """Keyword arguments of ``sampler.step`` that make each clip draw its step noise from
        its own generator: stochastic samplers (DDPM, Euler ancestral, SDE solvers) draw fresh
        noise at every step, from the global RNG unless given generators, and a clip would then
        depend on its batch neighbours. diffusers draws row ``i`` from ``generators[i]``."""
        if 'generator' in inspect.signature(sampler.step).parameters:
            return dict(generator=generators)
        return {}

    def _attach_clips(self, latents: torch.Tensor, data_samples: list, seeds: list) -> list:
        """Decode the sampled latents (B, F, C, h, w) into each sample's ``pred_frames``
        (F, 3, H, W) uint8 and record its ``pred_seed``."""
        frames = self.data_preprocessor.decode_latents(latents).cpu()  # (B, F, 3, H, W) uint8
        for sample, clip, s in zip(data_samples, frames, seeds):
            sample.set_field(clip, 'pred_frames')
            sample.set_metainfo(dict(pred_seed=s))
        return data_samples

    def _latent_shape(self, inputs: dict, data_samples: list):
        """(C, h, w) of the clips to sample: from the batch's latents, else the clips' size."""
        if 'latents' in inputs:
            return tuple(inputs['latents'].shape[2:])
        pre = self.data_preprocessor
        sizes = {tuple(s.metainfo['img_shape']) for s in data_samples}
        if len(sizes) != 1:
            raise ValueError(f'clips of one batch must share a size, got {sorted(sizes)}')
        (h, w), down = sizes.pop(), pre.spatial_downsample
        if h % down or w % down:
            raise ValueError(f'frame size {w}x{h} is not a multiple of the VAE factor {down}')
        return pre.latent_channels, h // down, w // down
