"""Real and generated training data mixed at a chosen share of the draws.

mmengine's ``ConcatDataset`` + ``RepeatDataset`` can only repeat the generated set a whole number
of times, so with as many generated items as real ones the generated share of the draws is 1/2,
2/3, ... and never 1/4. :class:`GeneratedShareDataset` repeats *both* parts (real ``k`` times,
generated ``m`` times, ``m / k`` the closest fraction with ``k <= max_repeats``) so that a sampler
drawing indices uniformly (mmengine's ``InfiniteSampler``/``DefaultSampler``, mmdet's Mosaic and
MixUp picking partners) draws a generated item with probability ``generated_share``, and every
item of both parts is used.
"""
from fractions import Fraction
from typing import Union

from mmengine.logging import print_log

from mmtrackgen.registry import DATASETS


@DATASETS.register_module()
class GeneratedShareDataset:
    """``real`` and ``generated`` as one dataset whose items are generated with probability
    ``generated_share`` under uniform sampling.

    An item is what the wrapped datasets index: a frame for mmdet's ``CocoDataset`` (ByteTrack),
    a video for ``BaseVideoDataset`` (QDTrack). Index layout: ``k`` copies of the real part, then
    ``m`` copies of the generated part (the sampler shuffles).

    Args:
        real (dict | Dataset): the real training set (its ``metainfo`` is the mixture's).
        generated (dict | Dataset): the generated set; same classes, in the same order.
        generated_share (float): wanted share of generated draws, in (0, 1).
        max_repeats (int): the most copies of the real part; the share is met to within the
            closest fraction with this denominator (the achieved share is ``self.share``).
        lazy_init (bool): as mmengine's wrappers: defer loading the annotations.
    """

    def __init__(self,
                 real: Union[dict, object],
                 generated: Union[dict, object],
                 generated_share: float,
                 max_repeats: int = 64,
                 lazy_init: bool = False):
        if not isinstance(generated_share, (int, float)) or not 0 < generated_share < 1:
            raise ValueError('GeneratedShareDataset: generated_share must be a number in (0, 1) '
                             f'(the share of generated draws), got {generated_share!r}; use the '
                             'real or the generated set alone for 0 or 1')
        if not isinstance(max_repeats, int) or max_repeats < 1:
            raise ValueError(f'GeneratedShareDataset: max_repeats must be an integer >= 1, got '
                             f'{max_repeats!r}')
        self.real = DATASETS.build(real) if isinstance(real, dict) else real
        self.generated = DATASETS.build(generated) if isinstance(generated, dict) else generated
        self.generated_share = float(generated_share)
        self.max_repeats = max_repeats
        real_classes = tuple(self.real.metainfo.get('classes', ()))
        generated_classes = tuple(self.generated.metainfo.get('classes', ()))
        if real_classes != generated_classes:
            raise ValueError(f'GeneratedShareDataset: the real and generated sets must have the '
                             f'same classes in the same order, got {real_classes} (real) and '
                             f'{generated_classes} (generated)')
        self._metainfo = self.real.metainfo
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        return dict(self._metainfo)

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        self.real.full_init()
        self.generated.full_init()
        num_real, num_generated = len(self.real), len(self.generated)
        if not num_real or not num_generated:
            raise ValueError(f'GeneratedShareDataset: both parts need items, got {num_real} real '
                             f'and {num_generated} generated')
        self.real_repeats, self.generated_repeats = share_repeats(
            num_real, num_generated, self.generated_share, self.max_repeats)
        self._real_len = num_real * self.real_repeats
        self._len = self._real_len + num_generated * self.generated_repeats
        self.share = num_generated * self.generated_repeats / self._len
        print_log(
            f'GeneratedShareDataset: {num_real} real items x {self.real_repeats} + '
            f'{num_generated} generated x {self.generated_repeats}: generated share '
            f'{self.share:.3f} (asked {self.generated_share:.3f})',
            logger='current')
        self._fully_initialized = True

    def _locate(self, idx: int):
        """(dataset, index in it) of mixture index ``idx``."""
        if not self._fully_initialized:
            self.full_init()
        if idx < 0:
            idx += self._len
        if not 0 <= idx < self._len:
            raise IndexError(f'GeneratedShareDataset: index {idx} out of range ({self._len})')
        if idx < self._real_len:
            return self.real, idx % len(self.real)
        return self.generated, (idx - self._real_len) % len(self.generated)

    def is_generated(self, idx: int) -> bool:
        return self._locate(idx)[0] is self.generated

    def get_data_info(self, idx: int) -> dict:
        dataset, index = self._locate(idx)
        return dataset.get_data_info(index)

    def __getitem__(self, idx: int):
        dataset, index = self._locate(idx)
        return dataset[index]

    def __len__(self) -> int:
        if not self._fully_initialized:
            self.full_init()
        return self._len


def share_repeats(num_real: int, num_generated: int, share: float, max_repeats: int = 64):
    """Copies ``(k, m)`` of the real and generated parts, ``k <= max_repeats``, with
    ``m * num_generated / (k * num_real + m * num_generated)`` closest to ``share``.

    The wanted ratio of copies is ``m / k = share * num_real / ((1 - share) * num_generated)``;
    its closest fraction with denominator ``<= max_repeats`` gives (k, m); a share so small that
    this rounds to no generated copy at all is an error rather than a silent real-only run.
    """
    ratio = Fraction(share * num_real / ((1 - share) * num_generated))
    best = ratio.limit_denominator(max_repeats)
    if best.numerator == 0:
        raise ValueError(f'generated_share {share} of {num_real} real and {num_generated} '
                         f'generated items needs more than {max_repeats} real copies; raise '
                         'max_repeats or the share')
    return best.denominator, best.numerator
