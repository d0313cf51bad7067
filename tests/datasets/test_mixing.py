"""GeneratedShareDataset: real and generated items mixed at a fractional share of the draws."""
import numpy as np
import pytest

from mmtrackgen.datasets import GeneratedShareDataset, share_repeats


class Items:
    """A dataset of named items, with the methods the mixture uses."""

    def __init__(self, prefix, n, classes=('square', 'circle')):
        self.items = [f'{prefix}{i}' for i in range(n)]
        self.metainfo = dict(classes=classes)
        self.initialised = False

    def full_init(self):
        self.initialised = True

    def __len__(self):
        return len(self.items)

    def __getitem__(self, idx):
        return self.items[idx]

    def get_data_info(self, idx):
        return dict(name=self.items[idx])


@pytest.mark.parametrize('num_real, num_generated, share, expected', [
    (192, 384, 0.25, (6, 1)),  # 192 x 6 real, 384 generated: a quarter
    (192, 384, 0.5, (2, 1)),
    (10, 10, 0.5, (1, 1)),
    (10, 10, 0.75, (1, 3)),
    (100, 7, 0.3, None),  # not exact: closest fraction
])
def test_share_repeats_meet_the_share(num_real, num_generated, share, expected):
    k, m = share_repeats(num_real, num_generated, share)
    if expected is not None:
        assert (k, m) == expected
    assert k <= 64
    assert m * num_generated / (k * num_real + m * num_generated) == pytest.approx(share, abs=0.01)


@pytest.mark.parametrize('share', [0.25, 0.5])
def test_uniform_draws_are_generated_at_the_share_and_use_every_item(share):
    real, generated = Items('r', 12), Items('g', 20)
    mixed = GeneratedShareDataset(real, generated, generated_share=share)
    assert real.initialised and generated.initialised
    assert mixed.share == pytest.approx(share)
    items = [mixed[i] for i in range(len(mixed))]
    assert set(items) == set(real.items) | set(generated.items)  # nothing left out
    assert np.mean([i.startswith('g') for i in items]) == pytest.approx(share)
    # a uniform sampler (what InfiniteSampler and Mosaic's partner picks do)
    draws = np.random.default_rng(0).integers(len(mixed), size=20000)
    assert np.mean([mixed.is_generated(int(i)) for i in draws]) == pytest.approx(share, abs=0.02)
    assert mixed.get_data_info(len(mixed) - 1)['name'].startswith('g')
    assert mixed[-1] == mixed[len(mixed) - 1]
    assert mixed.metainfo == dict(classes=('square', 'circle'))
    with pytest.raises(IndexError, match='out of range'):
        mixed[len(mixed)]


@pytest.mark.parametrize('kwargs, message', [
    (dict(generated_share=0), 'in \\(0, 1\\)'),
    (dict(generated_share=1.0), 'in \\(0, 1\\)'),
    (dict(generated_share=0.5, max_repeats=0), 'max_repeats'),
    (dict(generated_share=0.001, max_repeats=2), 'more than 2 real copies'),
])
def test_bad_shares_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GeneratedShareDataset(Items('r', 100), Items('g', 5), **kwargs)


def test_different_classes_are_refused():
    with pytest.raises(ValueError, match="same classes.*'square', 'circle'.*'circle', 'square'"):
        GeneratedShareDataset(
            Items('r', 3), Items('g', 3, classes=('circle', 'square')), generated_share=0.5)


def test_lazy_init_waits_for_first_use():
    real = Items('r', 3)
    mixed = GeneratedShareDataset(real, Items('g', 3), generated_share=0.5, lazy_init=True)
    assert not real.initialised
    assert len(mixed) == 6 and real.initialised
