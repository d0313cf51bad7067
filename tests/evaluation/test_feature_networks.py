"""Feature networks with random weights (fixed seeds), small inputs and small resize targets."""
import numpy as np
import pytest
import torch
from torch import nn

from mmtrackgen.evaluation import (I3DFeatures, InceptionV3Features, compute_fid, compute_fvd,
                                   load_feature_network)

INCEPTION_SIZE = 75  # the smallest the network takes; FID uses 299
I3D_SIZE = 32  # FVD uses 224


@pytest.fixture(scope='module')
def inception():
    return load_feature_network('inception', None, random_init_seed=0, input_size=INCEPTION_SIZE)


@pytest.fixture(scope='module')
def i3d():
    return load_feature_network('i3d', None, random_init_seed=0, input_size=I3D_SIZE)


def _frames(seed, n, h=24, w=32):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 3, h, w), np.uint8))


def _clips(seed, n, t=8, h=16, w=16):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 3, t, h, w), np.uint8))


def test_inception_names_shapes_and_default_size():
    network = load_feature_network('inception', None, random_init_seed=0)
    state = network.state_dict()
    # as in pytorch-fid's pt_inception-2015-12-05 weights
    assert state['Conv2d_1a_3x3.conv.weight'].shape == (32, 3, 3, 3)
    assert state['Conv2d_1a_3x3.bn.running_mean'].shape == (32, )
    assert state['Mixed_5b.branch1x1.conv.weight'].shape == (64, 192, 1, 1)
    assert state['Mixed_6b.branch7x7_2.conv.weight'].shape == (128, 128, 1, 7)
    assert state['Mixed_7c.branch3x3dbl_1.conv.weight'].shape == (448, 2048, 1, 1)
    assert sum(p.numel() for p in network.parameters()) == 21_785_568
    assert not network.training and not any(p.requires_grad for p in network.parameters())
    with torch.no_grad():
        features = network(_frames(0, 1, 40, 50))
    assert features.shape == (1, InceptionV3Features.FEATURE_DIM) and (features >= 0).all()


def test_i3d_names_shapes_and_default_size():
    network = load_feature_network('i3d', None, random_init_seed=0)
    state = network.state_dict()
    assert state['Conv3d_1a_7x7.conv3d.weight'].shape == (64, 3, 7, 7, 7)
    assert state['Conv3d_1a_7x7.bn.running_var'].shape == (64, )
    assert state['Mixed_3b.b0.conv3d.weight'].shape == (64, 192, 1, 1, 1)
    assert state['Mixed_5c.b3b.conv3d.weight'].shape == (128, 832, 1, 1, 1)
    assert state['logits.conv3d.weight'].shape == (400, 1024, 1, 1, 1)
    assert 'logits.conv3d.bias' in state and 'logits.bn.weight' not in state
    with torch.no_grad():
        logits, features = network(_clips(0, 1, t=8, h=24, w=24), return_features=True)
    assert logits.shape == (1, 400) and features.shape == (1, I3DFeatures.FEATURE_DIM)


def test_i3d_clip_lengths(i3d):
    with torch.no_grad():
        for t in (8, 9, 16):
            assert i3d(_clips(1, 2, t=t)).shape == (2, 400)
    with pytest.raises(ValueError, match='at least 8 frames, got 7'):
        i3d(_clips(1, 1, t=7))


def test_inputs_are_validated(inception, i3d):
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        inception(torch.zeros(2, 24, 32, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r'\(B, 3, T, H, W\)'):
        i3d(torch.zeros(1, 8, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r'in \[0, 1\]'):
        inception(torch.full((1, 3, 8, 8), 255.0))
    with pytest.raises(ValueError, match='uint8 or float'):
        inception(torch.zeros(1, 3, 8, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match='input_size'):
        InceptionV3Features(input_size=64)


@torch.no_grad()
def test_deterministic_batch_independent_and_dtype_agnostic(inception, i3d):
    frames = _frames(2, 3)
    features = inception(frames)
    assert torch.equal(features, inception(frames))
    assert torch.allclose(inception(frames[1:2]), features[1:2], atol=1e-5)
    assert torch.allclose(inception(frames.float() / 255), features, atol=1e-6)
    assert features.std(0).mean() > 0  # different frames, different features

    clips = _clips(3, 3)
    logits = i3d(clips)
    assert torch.equal(logits, i3d(clips))
    assert torch.allclose(i3d(clips[2:]), logits[2:], atol=1e-4)

    same_seed = load_feature_network('i3d', None, random_init_seed=0, input_size=I3D_SIZE)
    other_seed = load_feature_network('i3d', None, random_init_seed=1, input_size=I3D_SIZE)
    assert torch.equal(same_seed(clips), logits)
    assert not torch.allclose(other_seed(clips), logits)


@torch.no_grad()
def test_weights_round_trip_through_a_file(inception, i3d, tmp_path):
    state = inception.state_dict()
    state = {k: v for k, v in state.items() if not k.endswith('num_batches_tracked')}
    state['fc.weight'], state['fc.bias'] = torch.zeros(1008, 2048), torch.zeros(1008)  # ignored
    torch.save(state, tmp_path / 'inception.pth')
    loaded = load_feature_network(
        'inception', str(tmp_path / 'inception.pth'), input_size=INCEPTION_SIZE)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    frames = _frames(4, 2)
    assert torch.equal(loaded(frames), inception(frames))

    torch.save({'state_dict': i3d.state_dict()}, tmp_path / 'i3d.pt')
    loaded = load_feature_network('i3d', tmp_path / 'i3d.pt', input_size=I3D_SIZE)
    clips = _clips(5, 2)
    assert torch.equal(loaded(clips), i3d(clips))


def test_loading_errors(i3d, tmp_path):
    missing = tmp_path / 'rgb_imagenet.pt'
    with pytest.raises(FileNotFoundError, match='rgb_imagenet.pt.*cannot download'):
        load_feature_network('i3d', str(missing))
    with pytest.raises(ValueError, match='random_init_seed'):
        load_feature_network('inception', None)
    with pytest.raises(ValueError, match='unknown feature network'):
        load_feature_network('vgg', None, random_init_seed=0)

    state = i3d.state_dict()
    bad = dict(state, **{'Mixed_4c.b1b.conv3d.weight': torch.zeros(224, 112, 1, 3, 3)})
    torch.save(bad, tmp_path / 'shape.pt')
    with pytest.raises(ValueError, match=r'Mixed_4c.b1b.conv3d.weight has shape \(224, 112, 1,'):
        load_feature_network('i3d', str(tmp_path / 'shape.pt'))
    torch.save({k: v for k, v in state.items() if k != 'logits.conv3d.bias'}, tmp_path / 'lack.pt')
    with pytest.raises(ValueError, match='lacks keys.*logits.conv3d.bias'):
        load_feature_network('i3d', str(tmp_path / 'lack.pt'))
    torch.save(dict(state, extra=torch.zeros(1)), tmp_path / 'extra.pt')
    with pytest.raises(ValueError, match='lacks: extra'):
        load_feature_network('i3d', str(tmp_path / 'extra.pt'))


class FirstDims(nn.Module):
    """The first ``dims`` features of ``network`` (keeps the test's sqrtm small)."""

    def __init__(self, network, dims):
        super().__init__()
        self.network, self.dims = network, dims

    def forward(self, x):
        return self.network(x)[:, :self.dims]


def test_compute_fid(inception):
    network = FirstDims(inception, 16)
    rng = np.random.default_rng(6)
    real = [rng.integers(0, 256, (24, 32, 3), np.uint8) for _ in range(5)]
    real.append(rng.integers(0, 256, (30, 20, 3), np.uint8))  # another size: its own batch
    fake = [np.full((24, 32, 3), 40 * i, np.uint8) for i in range(5)]
    same = compute_fid(real, iter(real), network, batch_size=4)
    assert same == {'fid': pytest.approx(0, abs=1e-6), 'num_real': 6, 'num_fake': 6}
    different = compute_fid(real, fake, network, batch_size=4, progress=True)  # with a bar
    assert different['fid'] > 1e-3 and different['num_fake'] == 5
    one_by_one = compute_fid(real, fake, network, batch_size=1)
    assert one_by_one['fid'] == pytest.approx(different['fid'], rel=1e-5)
    with pytest.raises(ValueError, match=r'sample 0 must be a uint8 frame \(H, W, 3\)'):
        compute_fid([f.astype(np.float32) for f in real], fake, network)
    with pytest.raises(ValueError, match='at least 2 fake samples, got 1'):
        compute_fid(real, fake[:1], network)


def test_compute_fvd(i3d):
    rng = np.random.default_rng(7)
    real = [rng.integers(0, 256, (8, 16, 16, 3), np.uint8) for _ in range(4)]
    fake = [np.repeat(rng.integers(0, 256, (1, 16, 16, 3), np.uint8), 8, 0) for _ in range(3)]
    i3d.train()  # compute_fvd evaluates in eval mode and restores the mode
    same = compute_fvd(real, real, i3d, batch_size=3)
    assert i3d.training
    i3d.eval()
    assert same == {'fvd': pytest.approx(0, abs=1e-6), 'num_real': 4, 'num_fake': 4}
    different = compute_fvd(real, fake, i3d, batch_size=3)
    assert different['fvd'] > 1e-3 and different['num_fake'] == 3
    with pytest.raises(ValueError, match=r'clip \(F, H, W, 3\)'):
        compute_fvd([c[0] for c in real], fake, i3d)
