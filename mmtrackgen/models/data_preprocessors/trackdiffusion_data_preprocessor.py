"""Frames to the generator's space (VAE latents, or pixels for tiny models) and captions to text
embeddings: everything the diffusion model needs, as batched tensors."""
import os.path as osp
from typing import List, Optional, Sequence

import torch

from mmtrackgen.registry import MODELS
from .clip_data_preprocessor import ClipDataPreprocessor

PRETRAINED_HINT = 'README.md#pretrained-weights'


def check_pretrained_folder(path: str,
                            subfolder: Optional[str],
                            what: str,
                            required: Sequence[str] = ()) -> str:
    """The local folder of a pretrained component, or a clear error naming what is missing: the
    folder, or the first of the ``required`` files (e.g. ``'config.json'``) it lacks."""
    folder = osp.join(path, subfolder) if subfolder else path
    if not osp.isdir(folder):
        raise FileNotFoundError(
            f"{what}: pretrained folder '{folder}' not found. Nothing is downloaded: put the "
            f'weights there (see {PRETRAINED_HINT}) or set the path with --cfg-options.')
    for name in required:
        if not osp.isfile(osp.join(folder, name)):
            raise FileNotFoundError(
                f"{what}: '{osp.join(folder, name)}' not found; the folder is incomplete (see "
                f'{PRETRAINED_HINT}).')
    return folder


@MODELS.register_module()
class TrackDiffusionDataPreprocessor(ClipDataPreprocessor):
    """:class:`ClipDataPreprocessor` plus the frozen encoders of the diffusion model.

    Adds to ``inputs``:

    - ``latents`` (B, F, C, h, w): the frames encoded by a diffusers ``AutoencoderKL`` (scaled
      by its ``scaling_factor``), or the normalised frames themselves when ``vae`` is None
      (pixel space, for tiny configs); absent when the batch has no frames;
    - ``text_embeds`` (B, L, D): captions encoded by a CLIP text model, or None without one.

    Args:
        vae (dict, optional): ``dict(pretrained=folder, subfolder='vae')``.
        text_encoder (dict, optional): ``dict(pretrained=folder, text_subfolder='text_encoder',
            tokenizer_subfolder='tokenizer')``.
        vae_batch_size (int): frames encoded/decoded at once, to bound memory.
        vae_slicing (bool): the VAE decodes one frame at a time (diffusers' slicing), whatever
            ``vae_batch_size``; peak decoding memory is one frame's.
        vae_tiling (bool): the VAE encodes and decodes each frame in overlapping tiles
            (diffusers' tiling), for frames larger than it was trained on; tiles are blended,
            so results differ slightly from untiled ones.
    """

    def __init__(self,
                 vae: Optional[dict] = None,
                 text_encoder: Optional[dict] = None,
                 vae_batch_size: int = 16,
                 vae_slicing: bool = False,
                 vae_tiling: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.vae = self.tokenizer = self.text_encoder = None
        self.vae_batch_size = vae_batch_size
        if vae is None and (vae_slicing or vae_tiling):
            raise ValueError('vae_slicing and vae_tiling need a `vae`; this preprocessor has none.')
        if vae is not None:
            from diffusers import AutoencoderKL
            folder = check_pretrained_folder(
                vae['pretrained'], vae.get('subfolder', 'vae'), 'vae', required=('config.json', ))
            self.vae = AutoencoderKL.from_pretrained(folder, local_files_only=True)
            self.vae.requires_grad_(False).eval()
            if vae_slicing:
                self.vae.enable_slicing()
            if vae_tiling:
                self.vae.enable_tiling()
        if text_encoder is not None:
            from transformers import CLIPTextModel, CLIPTokenizer
            path = text_encoder['pretrained']
            self.tokenizer = CLIPTokenizer.from_pretrained(
                check_pretrained_folder(
                    path,
                    text_encoder.get('tokenizer_subfolder', 'tokenizer'),
                    'tokenizer',
                    required=('vocab.json', 'merges.txt')),
                local_files_only=True)
            self.text_encoder = CLIPTextModel.from_pretrained(
                check_pretrained_folder(
                    path,
                    text_encoder.get('text_subfolder', 'text_encoder'),
                    'text_encoder',
                    required=('config.json', )),
                local_files_only=True)
            self.text_encoder.requires_grad_(False).eval()

    @property
    def latent_channels(self) -> int:
        return self.vae.config.latent_channels if self.vae is not None else 3

    @property
    def spatial_downsample(self) -> int:
        """Pixels per latent pixel along each side."""
        if self.vae is None:
            return 1
        return 2**(len(self.vae.config.block_out_channels) - 1)

    def train(self, mode: bool = True):
        super().train(mode)
        for frozen in (self.vae, self.text_encoder):
            if frozen is not None:
                frozen.eval()  # frozen pretrained parts never switch to training behaviour
        return self

    @torch.no_grad()
    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, F, 3, H, W) in [-1, 1] -> (B, F, C, h, w) latents."""
        if self.vae is None:
            return frames
        b, f = frames.shape[:2]
        flat = frames.flatten(0, 1)  # (B*F, 3, H, W)
        latents = torch.cat([
            self.vae.encode(chunk).latent_dist.sample() for chunk in flat.split(self.vae_batch_size)
        ])  # (B*F, C, h, w)
        return (latents * self.vae.config.scaling_factor).unflatten(0, (b, f))

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, F, C, h, w) latents -> (B, F, 3, H, W) uint8 frames."""
        if self.vae is None:
            return self.denormalize(latents)
        b, f = latents.shape[:2]
        flat = latents.flatten(0, 1) / self.vae.config.scaling_factor  # (B*F, C, h, w)
        chunk_size = 1 if self.vae.use_slicing else self.vae_batch_size
        frames = torch.cat([self.vae.decode(c).sample for c in flat.split(chunk_size)])
        return self.denormalize(frames.unflatten(0, (b, f)))  # (B, F, 3, H, W)

    @torch.no_grad()
    def encode_text(self, captions: List[str]) -> Optional[torch.Tensor]:
        """B captions -> (B, L, D) token embeddings, or None without a text encoder."""
        if self.text_encoder is None:
            return None
        # A tokenizer saved without model_max_length reports a huge one: the positions bound it.
        length = min(self.tokenizer.model_max_length,
                     self.text_encoder.config.max_position_embeddings)
        tokens = self.tokenizer(
            captions, padding='max_length', truncation=True, max_length=length, return_tensors='pt')
        ids = tokens.input_ids.to(self.text_encoder.device)  # (B, L)
        return self.text_encoder(ids).last_hidden_state  # (B, L, D)

    def forward(self, data: dict, training: bool = False) -> dict:
        out = super().forward(data, training)
        inputs = out['inputs']
        if 'frames' in inputs:
            inputs['latents'] = self.encode_frames(inputs['frames'])  # (B, F, C, h, w)
        inputs['text_embeds'] = self.encode_text(inputs['captions'])  # (B, L, D) or None
        return out
