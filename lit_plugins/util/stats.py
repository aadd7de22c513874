"""Statistics shared by the analyses: the one percentile bootstrap.

TX-Ray's paired bootstrap over sentences (`txray.bootstrap`) and the faithfulness
summaries (`faithfulness.summary`) both take their intervals here, so a confidence level
means the same thing, and is checked the same way, everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_confidence(confidence) -> float:
    """``confidence`` as a float strictly between 0 and 1, or ValueError."""
    try:
        number = float(confidence)
    except (TypeError, ValueError):
        number = float("nan")
    if not 0.0 < number < 1.0:  # also rejects NaN
        raise ValueError(
            f"confidence level must be a number strictly between 0 and 1 (e.g. 0.9), "
            f"got {confidence!r}"
        )
    return number


def percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the ``(1-c)/2`` and ``(1+c)/2`` quantiles of ``[B, ...]`` replicates."""
    c = check_confidence(confidence)
    lo, hi = np.quantile(replicates, [(1 - c) / 2, (1 + c) / 2], axis=0)
    return lo, hi


def bootstrap_mean_interval(
    values: Sequence[float], confidence: float = 0.95, replicates: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of the finite `values` (resampling them
    with replacement, `replicates` times, from a generator seeded with `seed`).

    No finite value: (nan, nan); one value, or all equal: that value twice (every
    resample has the same mean)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    if values.size == 1 or np.all(values == values[0]):
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(replicates, values.size))
    low, high = percentile_interval(values[idx].mean(axis=1), confidence)
    return float(low), float(high)
