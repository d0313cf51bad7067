"""Paired seeds: mean and standard error, the paired difference, its 95% interval and p-value,
checked against numbers worked out by hand (and the t table), not against scipy itself."""
import math

import pytest

from mmtrackgen.evaluation import mean_and_sem, paired_difference

VARIANT = {0: 0.5, 1: 0.6, 2: 0.7, 3: 0.4, 4: 0.8}
BASELINE = {0: 0.4, 1: 0.45, 2: 0.6, 3: 0.45, 4: 0.6}
# differences 0.1, 0.15, 0.1, -0.05, 0.2: mean 0.1, squared deviations sum 0.035,
# std sqrt(0.035 / 4), standard error std / sqrt(5); t table: t(0.975, 4 df) = 2.7764
SEM = math.sqrt(0.035 / 4) / math.sqrt(5)


def t4_two_sided_p(t):
    """Two-sided p of Student's t with 4 degrees of freedom, in closed form:
    F(t) = 1/2 + u (3 - u^2) / 4 with u = t / sqrt(4 + t^2)."""
    u = abs(t) / math.sqrt(4 + t * t)
    return 1 - u * (3 - u * u) / 2


def test_mean_and_standard_error():
    figures = mean_and_sem([1.0, 2.0, 3.0, 4.0])
    assert figures['mean'] == pytest.approx(2.5)
    assert figures['std'] == pytest.approx(math.sqrt(5 / 3))
    assert figures['sem'] == pytest.approx(math.sqrt(5 / 3) / 2)
    assert figures['n'] == 4
    assert math.isnan(mean_and_sem([0.3])['sem'])
    with pytest.raises(ValueError, match='non-empty'):
        mean_and_sem([])


def test_paired_difference_interval_and_p_value():
    d = paired_difference(VARIANT, BASELINE)
    assert d['mean'] == pytest.approx(0.1)
    assert d['sem'] == pytest.approx(SEM)
    assert d['low'] == pytest.approx(0.1 - 2.7764 * SEM, abs=1e-4)
    assert d['high'] == pytest.approx(0.1 + 2.7764 * SEM, abs=1e-4)
    assert d['low'] < 0 < d['high']  # not significant at 95%...
    assert d['p'] == pytest.approx(t4_two_sided_p(0.1 / SEM), abs=1e-6)
    assert 0.05 < d['p'] < 0.1  # ...p about 0.075
    assert d['seeds'] == [0, 1, 2, 3, 4] and d['n'] == 5
    # the unpaired spread would hide it; pairing is what the seeds are for
    swapped = paired_difference(BASELINE, VARIANT)
    assert swapped['mean'] == pytest.approx(-0.1) and swapped['p'] == pytest.approx(d['p'])


def test_a_constant_shift_has_no_interval_width_and_no_p():
    d = paired_difference({0: 0.3, 1: 0.5}, {0: 0.2, 1: 0.4})
    assert d['mean'] == pytest.approx(0.1) and d['sem'] == pytest.approx(0)
    assert d['low'] == pytest.approx(0.1) == d['high']
    assert math.isnan(d['p'])
    single = paired_difference({0: 0.3}, {0: 0.2})
    assert single['n'] == 1 and math.isnan(single['low'])


def test_unpaired_seeds_are_refused():
    with pytest.raises(ValueError, match=r'seeds \[2\] are in one variant only'):
        paired_difference({0: 1.0, 1: 1.0, 2: 1.0}, {0: 1.0, 1: 1.0})
