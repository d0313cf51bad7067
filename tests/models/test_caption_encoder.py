"""The tiny model's caption path: learned word embeddings feeding the generator's
cross-attention (WordCaptionEncoder), and the default config's vocabulary."""
from pathlib import Path

import pytest
import torch

from mmtrackgen.models.conditioning import WordCaptionEncoder
from mmtrackgen.models.conditioning.caption_encoder import PAD, UNKNOWN, caption_words
from mmtrackgen.registry import MODELS
from mmtrackgen.utils import load_config

ROOT = Path(__file__).resolve().parents[2]
MICRO = str(ROOT / 'tests/data/trackdiff_micro.py')


def test_tokenize_known_unknown_and_empty():
    enc = WordCaptionEncoder(['a', 'red', 'square'], embed_dim=8, max_length=4, num_heads=2)
    ids = enc.tokenize(['A red, square!', 'a green square and more words', ''])
    assert ids[0].tolist() == [2, 3, 4, PAD]
    assert ids[1].tolist() == [2, UNKNOWN, 4, UNKNOWN]  # cut to max_length
    assert ids[2].tolist() == [PAD] * 4
    out = enc(['a red square', ''])
    assert out.shape == (2, 4, 8)


@pytest.mark.parametrize(
    'kwargs, message', [(dict(vocabulary=[]), 'at least one'),
                        (dict(vocabulary=['red car']), 'single lower-case'),
                        (dict(vocabulary=['red', 'red']), 'duplicate'),
                        (dict(vocabulary=['red'], num_heads=3), 'divide')])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WordCaptionEncoder(**{'embed_dim': 8, **kwargs})


def test_word_order_matters():
    """A colour binds to the noun after it: 'a red square and a blue circle' differs from
    'a blue square and a red circle' (a bag of words could not tell them apart)."""
    torch.manual_seed(0)
    enc = WordCaptionEncoder(['a', 'and', 'red', 'blue', 'square', 'circle'], embed_dim=8,
                             num_heads=2)
    one, two = enc(['a red square and a blue circle', 'a blue square and a red circle'])
    assert not torch.allclose(one, two)


def _micro_with_captions():
    cfg = load_config(MICRO)
    cfg.model.caption_encoder = dict(
        type='WordCaptionEncoder', vocabulary=['a', 'red', 'blue', 'square'], embed_dim=16,
        num_heads=2)
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def _inputs(captions):
    b, f, n = len(captions), 4, 4
    boxes = torch.tensor([0.1, 0.1, 0.6, 0.6]).expand(b, f, n, 4).clone()
    return dict(
        latents=torch.randn(b, f, 3, 16, 16),
        boxes=boxes,
        visible=torch.ones(b, f, n, dtype=torch.bool),
        labels=torch.zeros(b, n, dtype=torch.long),
        captions=list(captions),
        text_embeds=None)


def test_captions_reach_the_loss_and_the_encoder_learns():
    model = _micro_with_captions()
    assert model.null_text is None
    losses = []
    for caption in ('a red square', 'a blue square'):
        torch.manual_seed(1)  # same noise and timesteps: only the caption differs
        losses.append(model(_inputs([caption] * 2), mode='loss')['loss'])
    assert losses[0].item() != losses[1].item()
    losses[0].backward()
    assert model.caption_encoder.embed.weight.grad.abs().sum() > 0


def test_guidance_uses_the_empty_caption():
    model = _micro_with_captions()
    text = model._text(_inputs(['a red square']), 1)
    empty = model._empty_text(text)
    assert torch.allclose(empty, model.caption_encoder(['']))


def test_caption_encoder_beside_a_text_encoder_is_refused():
    from mmtrackgen.models.data_preprocessors import TrackDiffusionDataPreprocessor

    class WithTextEncoder(TrackDiffusionDataPreprocessor):
        """Stands in for a preprocessor that loaded a CLIP text encoder."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.text_encoder = torch.nn.Identity()

    MODELS.register_module('WithTextEncoderForTest', module=WithTextEncoder, force=True)
    cfg = load_config(MICRO)
    cfg.model.caption_encoder = dict(type='WordCaptionEncoder', vocabulary=['a'], embed_dim=16)
    cfg.model.data_preprocessor = dict(type='WithTextEncoderForTest')
    with pytest.raises(ValueError, match='already encodes captions'):
        MODELS.build(cfg.model)


def test_default_vocabulary_covers_every_caption_of_the_world(tmp_path):
    """Every word the synthetic world writes in a caption is one the default config knows
    (an unknown word would silently become the unknown token)."""
    from mmtrackgen.datasets import make_synthetic_dataset
    from mmtrackgen.datasets.synthetic import SHAPES
    from mmtrackgen.datasets.tracklets import load_json
    cfg = load_config(str(ROOT / 'configs/trackdiff/synthetic_tiny.py'))
    vocabulary = set(cfg.caption_vocabulary)
    summary = make_synthetic_dataset(
        str(tmp_path / 'w'),
        splits={'train': 40},
        novel_videos=0,
        frames_per_video=2,
        image_size=(32, 32),
        categories=sorted(SHAPES),
        progress=False)
    words = {w for c in load_json(summary['captions_file']).values() for w in caption_words(c)}
    assert words - vocabulary == set()
    assert {'checkered', 'dotted', 'striped', 'grey'} <= words
