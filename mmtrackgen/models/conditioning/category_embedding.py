"""Category embeddings: a (num_classes, Dc) table of category vectors, looked up per slot.

Two interchangeable modules (choose one in the tracklet encoder's config):

- :class:`CategoryTable`: a learned table, for closed-set data trained from scratch;
- :class:`CLIPCategoryEmbedding`: the pooled CLIP text embedding of each class name, computed
  once from a local CLIP text encoder and then frozen (as in TrackDiffusion / GLIGEN).

Both map ``labels (B, N)`` (-1 = empty slot) to ``(B, N, Dc)``, with zeros for empty slots (the
tracklet encoder replaces them with its learned null vector anyway).
"""
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import nn

from mmtrackgen.registry import MODELS

PRETRAINED_HELP = 'see README.md#pretrained-weights for where to put the CLIP weights'


def resolve_class_names(class_names: Union[Sequence[str], str]) -> Union[Sequence[str], str]:
    """``class_names`` as a category embedding's config gives them: a sequence of names is
    returned as is; the path of a CocoVID annotation file (``*.json``) becomes its categories'
    names ordered by id, the order ``TrackletClipDataset`` labels them in when its config names
    no classes. Shared by :class:`CLIPCategoryEmbedding` and generation, so both read the
    same names in the same order."""
    if not (isinstance(class_names, str) and class_names.endswith('.json')):
        return class_names
    from mmtrackgen.datasets.tracklets import TrackletAnnotationError, load_json
    categories = load_json(class_names).get('categories')
    if not isinstance(categories, list) or not categories or not all(
            isinstance(c, dict) and 'id' in c and 'name' in c for c in categories):
        raise TrackletAnnotationError(
            'needs a non-empty `categories` list of {id, name} entries for the class names',
            file=class_names,
            field='categories')
    return [c['name'] for c in sorted(categories, key=lambda c: c['id'])]


class _CategoryLookup(nn.Module):
    """Shared lookup: subclasses provide ``self.table`` (num_classes, Dc), parameter or buffer."""

    table: torch.Tensor

    @property
    def num_classes(self) -> int:
        return self.table.shape[0]

    @property
    def embed_dim(self) -> int:
        return self.table.shape[1]

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        """labels (B, N) long, -1 = empty slot -> (B, N, Dc), zeros for empty slots."""
        if labels.dtype not in (torch.int32, torch.int64):
            raise ValueError(f'labels must be an integer tensor, got dtype {labels.dtype}')
        if labels.numel() and (labels.min() < -1 or labels.max() >= self.num_classes):
            raise ValueError(f'labels must lie in [-1, {self.num_classes - 1}] (-1 = empty slot), '
                             f'got values in [{labels.min().item()}, {labels.max().item()}]')
        empty = labels < 0  # (B, N)
        vectors = self.table[labels.clamp(min=0)]  # (B, N, Dc)
        return vectors.masked_fill(empty.unsqueeze(-1), 0.0)  # (B, N, Dc)

    def extra_repr(self) -> str:
        return f'num_classes={self.num_classes}, embed_dim={self.embed_dim}'


@MODELS.register_module()
class CategoryTable(_CategoryLookup):
    """A learned category table, for closed-set data.

    Args:
        num_classes: number of categories (labels 0..num_classes-1).
        embed_dim: size Dc of a category vector.
    """

    def __init__(self, num_classes: int, embed_dim: int):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        if embed_dim < 1:
            raise ValueError(f'embed_dim must be >= 1, got {embed_dim}')
        # Unit-variance entries: the same scale per dimension as a layer-normed CLIP embedding,
        # and comparable to the [-1, 1] Fourier box features they are concatenated with.
        self.table = nn.Parameter(torch.randn(num_classes, embed_dim))  # (K, Dc)


@MODELS.register_module()
class CLIPCategoryEmbedding(_CategoryLookup):
    """Frozen pooled CLIP text embeddings of the class names, computed once at construction.

    The text encoder is loaded from a local folder, run once under ``torch.no_grad()`` on
    ``prompt.format(name)`` for every class name, and dropped: only the (num_classes, Dc) table
    is kept, as a buffer (saved in checkpoints, never trained). Dc is the text encoder's hidden
    size (768 for the CLIP ViT-L/14 of Stable Diffusion 1.x).

    Args:
        pretrained: local folder holding a transformers ``CLIPTextModel`` (or a full ``CLIPModel``)
            and its ``CLIPTokenizer``: either both at the top level (transformers layout) or in
            ``text_encoder/`` and ``tokenizer/`` (diffusers layout, e.g. a Stable Diffusion
            folder). Nothing is downloaded.
        class_names: the category names, in label order; or the path of a CocoVID annotation
            file, whose categories (ordered by id, the order ``TrackletClipDataset`` labels
            them in when its config names no classes) are used.
        prompt: template with one ``{}`` for the class name.
        text_encoder_subfolder: subfolder of ``pretrained`` with the text encoder; None detects
            the layout ('' when ``pretrained/config.json`` exists, else ``'text_encoder'``).
        tokenizer_subfolder: same for the tokenizer ('' or ``'tokenizer'``).
    """

    def __init__(self,
                 pretrained: str,
                 class_names: Union[Sequence[str], str],
                 prompt: str = 'a photo of a {}',
                 text_encoder_subfolder: Optional[str] = None,
                 tokenizer_subfolder: Optional[str] = None):
        super().__init__()
        class_names = resolve_class_names(class_names)
        if isinstance(class_names, str) or not class_names:
            raise ValueError(f'class_names must be a non-empty sequence of names, got '
                             f'{class_names!r}')
        if not all(isinstance(name, str) and name.strip() for name in class_names):
            raise ValueError(f'every class name must be a non-empty string, got {class_names!r}')
        if prompt.count('{}') != 1:
            raise ValueError(f"prompt must contain exactly one '{{}}', got {prompt!r}")
        text_encoder_dir, tokenizer_dir = self._resolve_folders(
            Path(pretrained), text_encoder_subfolder, tokenizer_subfolder)
        self.class_names = tuple(class_names)
        self.prompt = prompt
        table = self._encode([prompt.format(name) for name in class_names], text_encoder_dir,
                             tokenizer_dir)  # (K, Dc)
        self.register_buffer('table', table)

    @staticmethod
    def _resolve_folders(root: Path, text_encoder_subfolder: Optional[str],
                         tokenizer_subfolder: Optional[str]) -> Tuple[Path, Path]:
        if not root.is_dir():
            raise FileNotFoundError(f'CLIP text encoder folder {str(root)!r} does not exist; '
                                    f'{PRETRAINED_HELP}')
        diffusers_layout = not (root / 'config.json').is_file()
        if text_encoder_subfolder is None:
            text_encoder_subfolder = 'text_encoder' if diffusers_layout else ''
        if tokenizer_subfolder is None:
            tokenizer_subfolder = 'tokenizer' if diffusers_layout else ''
        text_encoder_dir = root / text_encoder_subfolder
        tokenizer_dir = root / tokenizer_subfolder
        config_file = text_encoder_dir / 'config.json'
        if not config_file.is_file():
            raise FileNotFoundError(
                f'no CLIP text encoder in {str(root)!r}: missing {str(config_file)!r} (expected '
                'a transformers folder, or a diffusers folder with text_encoder/ and tokenizer/); '
                f'{PRETRAINED_HELP}')
        has_bpe = all((tokenizer_dir / name).is_file() for name in ('vocab.json', 'merges.txt'))
        if not (has_bpe or (tokenizer_dir / 'tokenizer.json').is_file()):
            raise FileNotFoundError(
                f'no CLIP tokenizer in {str(tokenizer_dir)!r}: missing vocab.json + merges.txt '
                f'(or tokenizer.json); {PRETRAINED_HELP}')
        return text_encoder_dir, tokenizer_dir

    @staticmethod
    @torch.no_grad()
    def _encode(prompts: Sequence[str], text_encoder_dir: Path,
                tokenizer_dir: Path) -> torch.Tensor:
        # Imported here: transformers is only needed when CLIP names are used.
        from transformers import CLIPTextModel, CLIPTokenizer

        tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
        text_model = CLIPTextModel.from_pretrained(
            str(text_encoder_dir), local_files_only=True, dtype=torch.float32).eval()
        max_length = min(tokenizer.model_max_length, text_model.config.max_position_embeddings)
        # Padding does not change the pooled output: it is read at the end-of-text token, which
        # only attends to the tokens before it (causal mask).
        inputs = tokenizer(
            list(prompts),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors='pt')
        pooled = text_model(**inputs).pooler_output  # (K, Dc)
        # ``text_model`` goes out of scope here: the module keeps only the table.
        return pooled.detach().float().contiguous()  # (K, Dc)

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, prompt={self.prompt!r}'
