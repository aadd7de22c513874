"""One seeded, stratified train / held-out split (numpy only).

Used by the probe's early stopping (`early_stopping.held_out_rows`) and meant
for any other caller that scores probes on held-out rows, so that every
held-out set in the package is drawn the same way.
"""

from __future__ import annotations

import numbers

import numpy as np


def train_held_out_split(
    num_rows: int,
    fraction: float,
    seed: int,
    strata: np.ndarray | None = None,
    *,
    min_held_out: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train_idx, held_out_idx) row indices, round(fraction * num_rows) held out.

    With `strata` (e.g. class labels, any sortable values) the split is
    stratified: each stratum gives up floor(fraction * size) rows, the rest of
    the total goes to the strata with the largest remainders, and every
    stratum keeps at least one training row (a stratum with one row gives
    none).  Sizing the total first, rather than rounding per stratum, keeps
    it at ~fraction even with many small classes (rounding each of 100 pairs
    at 10% would hold out nothing).  Without `strata`:
    a plain random subset.  Rows within a stratum are drawn with
    `np.random.default_rng(seed)`, so the split is deterministic.

    At least `min_held_out` rows (default 1) are held out; when the
    stratified share is smaller, the spare rows go first to strata that can
    spare them (largest remainders), and only when none can (e.g. every
    stratum is a single row) to random rows, which then leaves such a stratum
    without a training row.  `min_held_out=0` allows an empty held-out part
    (the probe's early stopping then switches itself off).  At least one row
    is always left for training.

    Raises:
      ValueError: num_rows < 2, fraction outside (0, 1), strata not 1-D of
        length num_rows, or min_held_out outside [0, num_rows - 1].
    """
    if isinstance(num_rows, bool) or not isinstance(num_rows, numbers.Integral) or num_rows < 2:
        raise ValueError(f"num_rows must be an integer >= 2 to split, got {num_rows!r}.")
    num_rows = int(num_rows)
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, numbers.Real)
        or not 0.0 < fraction < 1.0
    ):
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}.")
    if (
        isinstance(min_held_out, bool)
        or not isinstance(min_held_out, numbers.Integral)
        or not 0 <= min_held_out < num_rows
    ):
        raise ValueError(
            f"min_held_out must be an integer in [0, {num_rows - 1}], got {min_held_out!r}."
        )
    if strata is None:
        groups = [np.arange(num_rows)]
    else:
        strata = np.asarray(strata)
        if strata.shape != (num_rows,):
            raise ValueError(
                f"strata must be 1-D with one value per row ({num_rows}), got shape {strata.shape}."
            )
        _, inverse = np.unique(strata, return_inverse=True)
        groups = [np.flatnonzero(inverse == k) for k in range(int(inverse.max()) + 1)]

    sizes = np.array([g.shape[0] for g in groups])
    take = _held_out_counts(sizes, fraction, max(round(fraction * num_rows), int(min_held_out)))
    rng = np.random.default_rng(seed)
    mask = np.zeros(num_rows, dtype=bool)
    for rows, k in zip(groups, take):
        if k:
            mask[rng.choice(rows, size=int(k), replace=False)] = True
    short = int(min_held_out) - int(take.sum())
    if short > 0:  # no stratum can spare a row: fall back to random rows
        mask[rng.choice(np.flatnonzero(~mask), size=short, replace=False)] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _held_out_counts(sizes: np.ndarray, fraction: float, total: int) -> np.ndarray:
    """Rows to hold out per stratum: `total` by largest remainders, each keeping one."""
    ideal = fraction * sizes
    take = np.minimum(np.floor(ideal).astype(int), np.maximum(sizes - 1, 0))
    spare = total - int(take.sum())
    for k in np.argsort(-(ideal - take), kind="stable"):
        if spare <= 0:
            break
        if take[k] < sizes[k] - 1:
            take[k] += 1
            spare -= 1
    return take
