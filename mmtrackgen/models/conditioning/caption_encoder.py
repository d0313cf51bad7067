"""A caption encoder small enough to learn with a tiny generator: word embeddings + a transformer.

The full-size recipes read captions through a frozen CLIP text model in the data preprocessor.
A from-scratch tiny model has no such encoder to load, yet its captions carry what the
tracklets do not (the synthetic world's captions name each object's colour and texture: "a red
checkered square and a purple dotted circle ..."). :class:`WordCaptionEncoder` gives the tiny
model the same caption path, trained jointly with the generator: one learned vector per word of
a fixed vocabulary, learned positions, and a few transformer layers so that an adjective can
bind to the noun after it. Its output feeds the generator's cross-attention exactly where CLIP's
hidden states go in the full-size model.
"""
import re
from typing import List, Sequence

import torch
import torch.nn as nn

from mmtrackgen.registry import MODELS

PAD, UNKNOWN = 0, 1  # token ids; words start at 2
_WORD = re.compile(r"[a-z0-9']+")


def caption_words(caption: str) -> List[str]:
    """Lower-case words of a caption; punctuation is dropped."""
    return _WORD.findall(caption.lower())


@MODELS.register_module()
class WordCaptionEncoder(nn.Module):
    """Captions -> (B, L, D) token features from learned word embeddings.

    Words outside ``vocabulary`` map to one learned unknown-word token; captions are cut to
    ``max_length`` words and padded with a learned padding token, so the empty caption (the
    unconditional input of guidance) is all padding.

    Args:
        vocabulary (sequence of str): the known words (lower case, no duplicates).
        embed_dim (int): D, the generator's ``cross_attention_dim``.
        max_length (int): L, words kept per caption.
        num_layers (int): transformer encoder layers over the words (0: embeddings only).
        num_heads (int): attention heads of those layers; must divide ``embed_dim``.
    """

    def __init__(self,
                 vocabulary: Sequence[str],
                 embed_dim: int,
                 max_length: int = 24,
                 num_layers: int = 1,
                 num_heads: int = 4):
        super().__init__()
        words = [str(w) for w in vocabulary]
        if not words:
            raise ValueError('vocabulary must name at least one word')
        bad = [w for w in words if caption_words(w) != [w]]
        if bad:
            raise ValueError(f'vocabulary entries must be single lower-case words, got {bad[:5]}')
        duplicates = sorted({w for w in words if words.count(w) > 1})
        if duplicates:
            raise ValueError(f'vocabulary has duplicate words: {duplicates[:5]}')
        if max_length < 1:
            raise ValueError(f'max_length must be >= 1, got {max_length}')
        if num_layers < 0:
            raise ValueError(f'num_layers must be >= 0, got {num_layers}')
        if num_layers and embed_dim % num_heads:
            raise ValueError(f'num_heads ({num_heads}) must divide embed_dim ({embed_dim})')
        self.vocabulary = tuple(words)
        self.word_ids = {w: i + 2 for i, w in enumerate(words)}
        self.max_length = max_length
        self.embed = nn.Embedding(len(words) + 2, embed_dim)
        self.positions = nn.Parameter(torch.zeros(1, max_length, embed_dim))
        nn.init.normal_(self.positions, std=0.02)
        layer = nn.TransformerEncoderLayer(
            embed_dim,
            num_heads,
            dim_feedforward=2 * embed_dim,
            dropout=0.0,
            batch_first=True,
            norm_first=True)
        self.layers = nn.TransformerEncoder(
            layer, num_layers, enable_nested_tensor=False) if num_layers else None
        self.norm = nn.LayerNorm(embed_dim)

    def tokenize(self, captions: Sequence[str]) -> torch.Tensor:
        """B captions -> (B, L) int64 token ids."""
        ids = torch.full((len(captions), self.max_length), PAD, dtype=torch.long)
        for b, caption in enumerate(captions):
            words = caption_words(caption or '')[:self.max_length]
            ids[b, :len(words)] = torch.tensor(
                [self.word_ids.get(w, UNKNOWN) for w in words], dtype=torch.long)
        return ids

    def forward(self, captions: Sequence[str]) -> torch.Tensor:
        ids = self.tokenize(captions).to(self.positions.device)  # (B, L)
        x = self.embed(ids) + self.positions  # (B, L, D)
        if self.layers is not None:
            x = self.layers(x)  # (B, L, D)
        return self.norm(x)  # (B, L, D)
