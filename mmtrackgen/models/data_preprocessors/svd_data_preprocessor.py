"""Frames to Stable Video Diffusion's spaces: VAE latents of the clip, the first frame as the
clip's condition (its CLIP image embedding and its VAE latent), and latents back to frames."""
from typing import Optional

import torch
import torch.nn.functional as F

from mmtrackgen.registry import MODELS
from .trackdiffusion_data_preprocessor import (TrackDiffusionDataPreprocessor,
                                               check_pretrained_folder)


@MODELS.register_module()
class SVDDataPreprocessor(TrackDiffusionDataPreprocessor):
    """:class:`ClipDataPreprocessor` plus the frozen encoders of Stable Video Diffusion.

    Adds to ``inputs`` (B clips, F frames):

    - ``latents`` (B, F, C, h, w): the frames encoded by a diffusers
      ``AutoencoderKLTemporalDecoder`` (scaled by its ``scaling_factor``), or the normalised
      frames themselves when ``vae`` is None (pixel space, for tiny configs); absent when the
      batch has no frames;
    - ``first_frames`` (B, 3, H, W) in [-1, 1]: the clip's first frame, the condition of the
      image-to-video model; taken from the frames when the batch has them, else from each data
      sample's ``first_frame`` field ((3, H, W) uint8, set by generation); absent when neither;
    - ``image_embeds`` (B, 1, D): the first frames encoded by a CLIP vision model with
      projection, or None without one.

    Args:
        vae (dict, optional): ``dict(pretrained=folder, subfolder='vae')``.
        image_encoder (dict, optional): ``dict(pretrained=folder,
            encoder_subfolder='image_encoder', processor_subfolder='feature_extractor')``:
            a transformers ``CLIPVisionModelWithProjection`` and the ``CLIPImageProcessor``
            whose size, mean and std prepare its input.
        vae_batch_size (int): frames encoded at once, and decoded at once with ``vae_slicing``.
        vae_slicing (bool): the temporal decoder decodes ``vae_batch_size`` frames of a clip at a
            time (SVD pipeline's ``decode_chunk_size``): less memory, and frames of different
            chunks are not mixed over time. Without it each clip is decoded whole, as SVD's
            pipeline does by default (its best temporal consistency).
        vae_tiling (bool): refused: ``AutoencoderKLTemporalDecoder`` has no tiled decoding.
    """

    def __init__(self,
                 vae: Optional[dict] = None,
                 image_encoder: Optional[dict] = None,
                 vae_batch_size: int = 8,
                 vae_slicing: bool = False,
                 vae_tiling: bool = False,
                 **kwargs):
        if vae_tiling:
            raise ValueError(
                "vae_tiling: Stable Video Diffusion's AutoencoderKLTemporalDecoder has no tiled "
                'decoding (diffusers tiles only image VAEs such as AutoencoderKL, and its decoder '
                'mixes frames over time); use vae_slicing to bound decoding memory.')
        if vae is None and vae_slicing:
            raise ValueError('vae_slicing needs a `vae`; this preprocessor has none.')
        super().__init__(vae=None, text_encoder=None, vae_batch_size=vae_batch_size, **kwargs)
        self.vae_slicing = vae_slicing
        self.image_encoder = self.image_processor = None
        if vae is not None:
            from diffusers import AutoencoderKLTemporalDecoder
            folder = check_pretrained_folder(
                vae['pretrained'], vae.get('subfolder', 'vae'), 'vae', required=('config.json', ))
            self.vae = AutoencoderKLTemporalDecoder.from_pretrained(folder, local_files_only=True)
            self.vae.requires_grad_(False).eval()
        if image_encoder is not None:
            from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection
            path = image_encoder['pretrained']
            self.image_encoder = CLIPVisionModelWithProjection.from_pretrained(
                check_pretrained_folder(
                    path,
                    image_encoder.get('encoder_subfolder', 'image_encoder'),
                    'image_encoder',
                    required=('config.json', )),
                local_files_only=True)
            self.image_encoder.requires_grad_(False).eval()
            # Kept (not a module, not in checkpoints) so that an export can save it.
            self.image_processor = processor = CLIPImageProcessor.from_pretrained(
                check_pretrained_folder(
                    path,
                    image_encoder.get('processor_subfolder', 'feature_extractor'),
                    'feature_extractor',
                    required=('preprocessor_config.json', )),
                local_files_only=True)
            crop = processor.crop_size or {}
            side = processor.size.get('shortest_edge', 224) if processor.size else 224
            self.clip_size = (crop.get('height', side), crop.get('width', side))
            self.register_buffer(
                'clip_mean',
                torch.tensor(processor.image_mean, dtype=torch.float32).reshape(-1, 1, 1),
                persistent=False)
            self.register_buffer(
                'clip_std',
                torch.tensor(processor.image_std, dtype=torch.float32).reshape(-1, 1, 1),
                persistent=False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.image_encoder is not None:
            self.image_encoder.eval()
        return self

    @property
    def image_embed_dim(self) -> Optional[int]:
        """D of ``image_embeds``, or None without an image encoder."""
        if self.image_encoder is None:
            return None
        return self.image_encoder.config.projection_dim

    @torch.no_grad()
    def encode_image(self, first_frames: torch.Tensor) -> Optional[torch.Tensor]:
        """(B, 3, H, W) in [-1, 1] -> (B, 1, D) CLIP image embeddings, or None without an
        encoder. Resized (antialiased) straight to the encoder's input size, as SVD does."""
        if self.image_encoder is None:
            return None
        pixels = F.interpolate(
            first_frames.float(),
            size=self.clip_size,
            mode='bicubic',
            align_corners=False,
            antialias=True)  # (B, 3, h', w')
        pixels = ((pixels + 1) / 2).clamp(0, 1)  # (B, 3, h', w') in [0, 1]
        pixels = (pixels - self.clip_mean) / self.clip_std
        dtype = self.image_encoder.dtype
        return self.image_encoder(pixels.to(dtype)).image_embeds[:, None]  # (B, 1, D)

    @torch.no_grad()
    def encode_condition(self, first_frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) (noise-augmented) first frames -> (B, C, h, w) condition latents: the
        mode of the VAE posterior, unscaled (SVD's convention), or the frames in pixel space."""
        if self.vae is None:
            return first_frames
        return torch.cat([
            self.vae.encode(chunk).latent_dist.mode()
            for chunk in first_frames.split(self.vae_batch_size)
        ])  # (B, C, h, w)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, F, C, h, w) latents -> (B, F, 3, H, W) uint8 frames; the temporal decoder sees
        one clip's frames: all of them, or ``vae_batch_size`` at a time with ``vae_slicing``."""
        if self.vae is None:
            return self.denormalize(latents)
        chunk_size = self.vae_batch_size if self.vae_slicing else latents.shape[1]
        clips = []
        for clip in latents / self.vae.config.scaling_factor:  # (F, C, h, w)
            clips.append(
                torch.cat([
                    self.vae.decode(chunk, num_frames=chunk.shape[0]).sample
                    for chunk in clip.split(chunk_size)
                ]))  # (F, 3, H, W)
        return self.denormalize(torch.stack(clips))  # (B, F, 3, H, W)

    def forward(self, data: dict, training: bool = False) -> dict:
        out = super().forward(data, training)
        inputs, samples = out['inputs'], out['data_samples']
        inputs.pop('text_embeds', None)  # SVD reads no text
        if 'frames' in inputs:
            first = inputs['frames'][:, 0]  # (B, 3, H, W)
        else:
            given = [s.get('first_frame') for s in samples]
            if any(f is None for f in given):
                first = None
                if any(f is not None for f in given):
                    raise ValueError('a batch mixes clips with and without a first frame')
            else:
                first = self._stack(given, 'first frames', samples)  # (B, 3, H, W) uint8
                first = (first.float() - self.mean) / self.std  # (B, 3, H, W)
        if first is not None:
            inputs['first_frames'] = first
            inputs['image_embeds'] = self.encode_image(first)  # (B, 1, D) or None
        return out
