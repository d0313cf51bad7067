"""Comparing training variants over paired seeds: mean, standard error, paired difference.

A variant (e.g. a tracker trained on real + generated clips) is compared with a baseline
(real-only) trained with the *same* seeds, so seed-to-seed variance that both share (the
initialisation, the data order) cancels in the per-seed difference. The difference's 95%
interval and p-value come from the t distribution with ``n - 1`` degrees of freedom (the
paired t-test, ``scipy.stats.ttest_rel``); with 3 seeds its critical value is 4.30, with 5 it is
2.78, which is why a handful of seeds cannot separate small effects.
"""
import math
from typing import Dict, Mapping

import numpy as np
from scipy import stats


def mean_and_sem(values) -> Dict[str, float]:
    """Mean, sample standard deviation and standard error (``std / sqrt(n)``) of ``values``."""
    values = np.asarray(list(values), dtype=np.float64)
    if values.ndim != 1 or not len(values):
        raise ValueError(f'mean_and_sem needs a non-empty list of numbers, got {values!r}')
    n = len(values)
    std = float(values.std(ddof=1)) if n > 1 else float('nan')
    return dict(mean=float(values.mean()), std=std, sem=std / math.sqrt(n), n=n)


def paired_difference(variant: Mapping, baseline: Mapping, confidence: float = 0.95) -> dict:
    """``variant - baseline`` over the seeds both have.

    Args:
        variant, baseline: ``{seed: value}``.
        confidence: level of the interval.

    Returns:
        dict: ``mean`` difference, its ``sem``, the interval ``low`` / ``high``, the two-sided
        paired t-test ``p`` (NaN when fewer than 2 seeds or every difference is equal), the
        ``seeds`` used and ``n``.
    """
    seeds = sorted(set(variant) & set(baseline), key=str)
    missing = sorted(set(variant) ^ set(baseline), key=str)
    if missing:
        raise ValueError(f'paired_difference: seeds {missing} are in one variant only; a paired '
                         'comparison needs the same seeds on both sides')
    if not seeds:
        raise ValueError('paired_difference: no seeds to compare')
    a = np.array([variant[s] for s in seeds], dtype=np.float64)
    b = np.array([baseline[s] for s in seeds], dtype=np.float64)
    diff = a - b
    n = len(diff)
    out = dict(mean=float(diff.mean()), seeds=list(seeds), n=n)
    if n < 2:
        return dict(out, sem=float('nan'), low=float('nan'), high=float('nan'), p=float('nan'))
    sem = float(diff.std(ddof=1) / math.sqrt(n))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sem
    p = float(stats.ttest_rel(a, b).pvalue) if sem > 0 else float('nan')
    return dict(out, sem=sem, low=out['mean'] - half, high=out['mean'] + half, p=p)
