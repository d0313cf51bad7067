import math

import pytest
import torch

# Imported for registration (the lead wires mmtrackgen.models.conditioning into the package).
from mmtrackgen.models.conditioning.category_embedding import (CategoryTable, CLIPCategoryEmbedding)
from mmtrackgen.models.conditioning.fourier import fourier_embedding, sinusoidal_positions
from mmtrackgen.models.conditioning.tracklet_conditioning import TrackletConditioning
from mmtrackgen.models.conditioning.tracklet_encoder import TrackletEncoder
from mmtrackgen.registry import MODELS
from tests.factories import write_tiny_clip

NUM_CLASSES = 3


def make_encoder(seed=0, **kwargs):
    torch.manual_seed(seed)
    cfg = dict(
        type='TrackletEncoder',
        token_dim=32,
        track_dim=16,
        category_embedding=dict(type='CategoryTable', num_classes=NUM_CLASSES, embed_dim=16))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def make_tracklets(batch, num_frames, num_slots, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, num_frames, num_slots, 2, generator=g) * 0.5
    wh = torch.rand(batch, num_frames, num_slots, 2, generator=g) * 0.5
    boxes = torch.cat([xy, xy + wh], dim=-1)  # (B, F, N, 4)
    visible = torch.rand(batch, num_frames, num_slots, generator=g) > 0.3  # (B, F, N)
    labels = torch.randint(0, NUM_CLASSES, (batch, num_slots), generator=g)  # (B, N)
    return boxes, visible, labels


# ---------------------------------------------------------------- fourier / sinusoidal codes


def test_fourier_embedding_dims_and_known_values():
    assert fourier_embedding(torch.rand(2, 3, 5, 4), num_freqs=8).shape == (2, 3, 5, 64)
    assert fourier_embedding(torch.rand(7, 2), num_freqs=3).shape == (7, 12)

    # Layout per coordinate: [sin at K freqs, cos at K freqs].
    zero = fourier_embedding(torch.zeros(1, 4), num_freqs=8).view(4, 2, 8)
    assert torch.equal(zero[:, 0], torch.zeros(4, 8)) and torch.equal(zero[:, 1], torch.ones(4, 8))

    # At 0.5 the angles are 2^(k-1) pi: sin = [1, 0, 0, ...], cos = [0, -1, 1, 1, ...].
    half = fourier_embedding(torch.full((1, 1), 0.5, dtype=torch.float64), num_freqs=4).view(2, 4)
    torch.testing.assert_close(half[0], torch.tensor([1.0, 0, 0, 0], dtype=torch.float64))
    torch.testing.assert_close(half[1], torch.tensor([0.0, -1, 1, 1], dtype=torch.float64))

    x = torch.tensor([[0.3, 0.7]])
    got = fourier_embedding(x, num_freqs=2).view(2, 2, 2)
    torch.testing.assert_close(got[1, 0, 1], torch.tensor(math.sin(2 * math.pi * 0.7)))
    with pytest.raises(ValueError, match='num_freqs'):
        fourier_embedding(x, num_freqs=0)


def test_sinusoidal_positions_have_no_maximum():
    codes = sinusoidal_positions(torch.arange(5000), 16)
    assert codes.shape == (5000, 16) and codes.dtype == torch.float32
    torch.testing.assert_close(codes[0], torch.cat([torch.zeros(8), torch.ones(8)]))
    assert torch.equal(codes[3], sinusoidal_positions(torch.tensor(3), 16))
    # Distinct positions get distinct codes (even far beyond 16 frames / 20 slots).
    assert torch.cdist(codes[:1000], codes[:1000]).add(torch.eye(1000)).min() > 1e-3
    with pytest.raises(ValueError, match='even'):
        sinusoidal_positions(torch.arange(3), 7)


# ------------------------------------------------------------------------ tracklet encoder


@pytest.mark.parametrize('shape', [(2, 3, 4), (1, 2, 0), (1, 64, 64), (3, 1, 1)])
def test_output_shapes(shape):
    batch, num_frames, num_slots = shape
    encoder = make_encoder()
    boxes, visible, labels = make_tracklets(*shape)
    out = encoder(boxes, visible, labels)
    assert isinstance(out, TrackletConditioning)
    assert out.tokens.shape == (batch, num_frames, num_slots, 32)
    assert out.track_features.shape == (batch, num_slots, num_frames, 16)
    assert out.boxes is boxes and out.visible is visible
    assert torch.isfinite(out.tokens).all() and torch.isfinite(out.track_features).all()
    assert out.num_frames == num_frames and out.num_slots == num_slots


def test_empty_slots_and_all_null_batches():
    encoder = make_encoder()
    boxes, visible, labels = make_tracklets(2, 4, 3)
    labels[0, 1] = -1
    visible[0, :, 1] = False
    out = encoder(boxes, visible, labels)
    assert torch.isfinite(out.tokens).all()
    # Everything invisible (the "all instances nulled" condition dropout).
    out = encoder(boxes, torch.zeros_like(visible), labels)
    assert torch.isfinite(out.track_features).all()


def test_invisible_entries_use_null_vectors():
    encoder = make_encoder()
    boxes, visible, labels = make_tracklets(2, 5, 4)
    visible[:, :, 3] = False  # slot 3 never visible
    out = encoder(boxes, visible, labels)

    # Another box wherever invisible, another category for the never-visible slot: no change.
    other_boxes = torch.where(visible.unsqueeze(-1), boxes, torch.rand_like(boxes))
    other_labels = labels.clone()
    other_labels[:, 3] = (labels[:, 3] + 1) % NUM_CLASSES
    other = encoder(other_boxes, visible, other_labels)
    assert not torch.equal(other_boxes, boxes)
    assert torch.equal(out.tokens, other.tokens)
    assert torch.equal(out.track_features, other.track_features)

    # With the identity embedding at zero, every invisible entry has the same token.
    invisible_tokens = out.tokens[~visible]  # (M, D)
    assert invisible_tokens.shape[0] > 1
    assert torch.allclose(invisible_tokens, invisible_tokens[:1].expand_as(invisible_tokens))
    # A visible entry does depend on its box.
    moved = encoder(boxes + 0.1 * visible.unsqueeze(-1), visible, labels)
    assert not torch.allclose(moved.tokens[visible], out.tokens[visible])


def test_identity_embedding_zero_at_init_then_learns_to_tell_slots_apart():
    encoder = make_encoder()
    boxes, visible, labels = make_tracklets(1, 4, 1)
    # Two slots with identical tracklets.
    boxes, visible, labels = boxes.repeat(1, 1, 2, 1), visible.repeat(1, 1, 2), labels.repeat(1, 2)
    assert torch.equal(encoder.identity_proj.weight, torch.zeros_like(encoder.identity_proj.weight))
    out = encoder(boxes, visible, labels)
    assert torch.equal(out.tokens[:, :, 0], out.tokens[:, :, 1])

    # One step on a loss that wants different tokens for the two slots.
    target = torch.randn_like(out.tokens)  # (B, F, N, D)
    optimizer = torch.optim.SGD(encoder.parameters(), lr=0.1)
    torch.nn.functional.mse_loss(out.tokens, target).backward()
    optimizer.step()
    out = encoder(boxes, visible, labels)
    assert not torch.allclose(out.tokens[:, :, 0], out.tokens[:, :, 1])
    # The slots differ through the identity embedding only: the tracklet branch does not see it.
    assert torch.equal(out.track_features[:, 0], out.track_features[:, 1])


def test_permuting_slots_permutes_outputs():
    encoder = make_encoder()
    boxes, visible, labels = make_tracklets(2, 6, 5)
    perm = torch.tensor([3, 0, 4, 1, 2])
    out = encoder(boxes, visible, labels)
    permuted = encoder(boxes[:, :, perm], visible[:, :, perm], labels[:, perm])
    torch.testing.assert_close(permuted.tokens, out.tokens[:, :, perm], rtol=0, atol=1e-6)
    torch.testing.assert_close(
        permuted.track_features, out.track_features[:, perm], rtol=0, atol=1e-6)

    # Once the identity embedding is non-zero, a token also depends on its slot index.
    with torch.no_grad():
        encoder.identity_proj.weight.normal_()
    out = encoder(boxes, visible, labels)
    permuted = encoder(boxes[:, :, perm], visible[:, :, perm], labels[:, perm])
    assert not torch.allclose(permuted.tokens, out.tokens[:, :, perm])
    torch.testing.assert_close(
        permuted.track_features, out.track_features[:, perm], rtol=0, atol=1e-6)


def test_gradients_reach_every_trainable_parameter():
    encoder = make_encoder(track_layers=2)
    boxes, visible, labels = make_tracklets(2, 4, 6)
    labels[0, :NUM_CLASSES] = torch.arange(NUM_CLASSES)
    visible[0, 0, :NUM_CLASSES] = True  # every category is seen at least once
    out = encoder(boxes, visible, labels)
    assert (~visible).any()  # and the null vectors are used
    (out.tokens.square().mean() + out.track_features.square().mean()).backward()
    for name, param in encoder.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


def test_input_validation_names_the_argument():
    encoder = make_encoder()
    boxes, visible, labels = make_tracklets(2, 3, 4)
    with pytest.raises(ValueError, match=r'boxes .*\(2, 3, 4\)'):
        encoder(boxes[..., 0], visible, labels)
    with pytest.raises(ValueError, match=r'visible .*\(2, 3, 5\)'):
        encoder(boxes, torch.ones(2, 3, 5, dtype=torch.bool), labels)
    with pytest.raises(ValueError, match='visible must be a bool'):
        encoder(boxes, visible.float(), labels)
    with pytest.raises(ValueError, match=r'labels .*\(2, 3\)'):
        encoder(boxes, visible, labels[:, :3])
    bad = boxes.clone()
    bad[1, 2, 3, 0] = float('nan')
    with pytest.raises(ValueError, match=r'boxes must be finite.*\(2, 3, 4, 4\)'):
        encoder(bad, visible, labels)
    with pytest.raises(ValueError, match='labels must lie in'):
        encoder(boxes, visible, torch.full_like(labels, NUM_CLASSES))
    with pytest.raises(ValueError, match='empty slots'):
        encoder(boxes, torch.ones_like(visible), torch.full_like(labels, -1))
    with pytest.raises(ValueError, match='track_heads'):
        make_encoder(track_heads=5)


def test_category_table():
    table = CategoryTable(num_classes=4, embed_dim=6)
    assert table.embed_dim == 6 and table.num_classes == 4
    labels = torch.tensor([[2, -1, 0]])
    out = table(labels)
    assert out.shape == (1, 3, 6)
    assert torch.equal(out[0, 1], torch.zeros(6)) and torch.equal(out[0, 0], table.table[2])
    assert table(torch.zeros(2, 0, dtype=torch.long)).shape == (2, 0, 6)


# -------------------------------------------------------------------- CLIP category names

CLASS_NAMES = ('car', 'person', 'dog')
PROMPT = 'a photo of a {}'


def reference_embeddings(tokenizer, model):
    """Each prompt run alone (no padding) through the text model."""
    with torch.no_grad():
        return torch.cat([
            model(**tokenizer(PROMPT.format(name), return_tensors='pt')).pooler_output
            for name in CLASS_NAMES
        ])  # (K, 32)


def test_clip_category_embedding_from_transformers_folder(tmp_path):
    tokenizer, model = write_tiny_clip(tmp_path / 'clip')
    embedding = MODELS.build(
        dict(
            type='CLIPCategoryEmbedding',
            pretrained=str(tmp_path / 'clip'),
            class_names=CLASS_NAMES,
            prompt=PROMPT))
    assert embedding.embed_dim == 32 and embedding.num_classes == 3
    torch.testing.assert_close(embedding.table, reference_embeddings(tokenizer, model))
    # Frozen: a buffer, saved in checkpoints; nothing to train, no text model kept.
    assert list(embedding.parameters()) == [] and 'table' in embedding.state_dict()
    assert not any('Text' in type(m).__name__ for m in embedding.modules())
    out = embedding(torch.tensor([[1, -1]]))
    assert torch.equal(out[0, 0], embedding.table[1]) and torch.equal(out[0, 1], torch.zeros(32))

    # Inside the encoder: its size sets the MLP's input.
    encoder = TrackletEncoder(16, category_embedding=embedding, track_dim=8)
    out = encoder(*make_tracklets(1, 2, 3))
    assert out.tokens.shape == (1, 2, 3, 16)


def test_clip_category_embedding_from_diffusers_folder(tmp_path):
    tokenizer, model = write_tiny_clip(tmp_path / 'sd' / 'text_encoder')
    (tmp_path / 'sd' / 'tokenizer').mkdir()
    tokenizer.save_pretrained(str(tmp_path / 'sd' / 'tokenizer'))
    for f in ('vocab.json', 'merges.txt', 'tokenizer.json', 'tokenizer_config.json'):
        (tmp_path / 'sd' / 'text_encoder' / f).unlink(missing_ok=True)
    expected = reference_embeddings(tokenizer, model)
    auto = CLIPCategoryEmbedding(str(tmp_path / 'sd'), CLASS_NAMES, prompt=PROMPT)
    torch.testing.assert_close(auto.table, expected)
    explicit = CLIPCategoryEmbedding(
        str(tmp_path / 'sd'),
        CLASS_NAMES,
        prompt=PROMPT,
        text_encoder_subfolder='text_encoder',
        tokenizer_subfolder='tokenizer')
    torch.testing.assert_close(explicit.table, expected)


def test_clip_category_embedding_missing_files(tmp_path):
    missing = tmp_path / 'no_such_clip'
    with pytest.raises(FileNotFoundError, match='no_such_clip.*README.md#pretrained-weights'):
        CLIPCategoryEmbedding(str(missing), CLASS_NAMES)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match=r'text_encoder/config\.json'):
        CLIPCategoryEmbedding(str(tmp_path / 'empty'), CLASS_NAMES)
    write_tiny_clip(tmp_path / 'clip')
    (tmp_path / 'clip' / 'vocab.json').unlink()
    (tmp_path / 'clip' / 'tokenizer.json').unlink()
    with pytest.raises(FileNotFoundError, match='tokenizer'):
        CLIPCategoryEmbedding(str(tmp_path / 'clip'), CLASS_NAMES)
    with pytest.raises(ValueError, match='prompt'):
        CLIPCategoryEmbedding(str(tmp_path / 'clip'), CLASS_NAMES, prompt='no slot')


# ---------------------------------------------------------------- the authors' layout options
def test_gligen_box_encoding_is_diffusers_gligen_fourier_code():
    from diffusers.models.embeddings import get_fourier_embeds_from_boundingbox

    from mmtrackgen.models.conditioning.fourier import gligen_fourier_embedding
    boxes = torch.rand(2, 5, 4)
    torch.testing.assert_close(
        gligen_fourier_embedding(boxes, 8), get_fourier_embeds_from_boundingbox(8, boxes))


def test_identity_table_layout_holds_as_many_slots_as_rows():
    encoder = make_encoder(
        identity_embedding='table',
        num_identity_slots=2,
        box_encoding='gligen',
        track_block='attention',
        track_head_dim=8,
        track_frame_positions=False,
        track_out_norm=False)
    assert not hasattr(encoder, 'identity_proj')
    with torch.no_grad():
        encoder.identity_table.weight.normal_()
    boxes, visible, labels = make_tracklets(1, 3, 2)
    cond = encoder(boxes, visible, labels)
    assert cond.tokens.shape == (1, 3, 2, 32) and cond.track_features.shape == (1, 2, 3, 16)
    boxes, visible, labels = make_tracklets(1, 3, 3)
    with pytest.raises(ValueError, match='3 instance slots but the identity table'):
        encoder(boxes, visible, labels)


@pytest.mark.parametrize('kwargs,message', [
    (dict(identity_embedding='table'), 'num_identity_slots must be set'),
    (dict(num_identity_slots=4), 'num_identity_slots must be set'),
    (dict(box_encoding='fourier'), 'box_encoding must be one of'),
    (dict(track_block='mlp'), 'track_block must be one of'),
    (dict(track_head_dim=8), "only with track_block='attention'"),
])
def test_layout_options_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_encoder(**kwargs)
