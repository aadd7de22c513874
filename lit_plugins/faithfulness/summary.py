"""Faithfulness scores over a dataset: per-metric summaries with percentile bootstrap
intervals (`util.stats`, the one bootstrap) and mean deletion/insertion curves."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lit_plugins.util import stats


def summarize(
    values: Sequence[float], level: float = 0.95, n_boot: int = 1000, seed: int = 0
) -> dict[str, float]:
    """{'mean', 'median', 'ci_low', 'ci_high', 'n'} of finite values."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        nan = float("nan")
        return {"mean": nan, "median": nan, "ci_low": nan, "ci_high": nan, "n": 0}
    low, high = stats.bootstrap_mean_interval(arr, level, n_boot, seed)
    return {
        "mean": float(arr.mean()),
        "median": float(np.median(arr)),
        "ci_low": low,
        "ci_high": high,
        "n": int(arr.size),
    }


def mean_curve(
    curves: Sequence[tuple[np.ndarray, np.ndarray]], grid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Curves of different lengths interpolated onto `grid` (default 0, 0.05,
    …, 1) and averaged."""
    grid = np.linspace(0, 1, 21) if grid is None else np.asarray(grid, dtype=np.float64)
    if not curves:
        return grid, np.full(grid.shape, np.nan)
    ys = [np.interp(grid, x, y) for x, y in curves]
    return grid, np.mean(ys, axis=0)
