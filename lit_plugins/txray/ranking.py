"""Ranking that does not move on rounding noise.

Values equal within float32 noise (another batch, process or thread count sums the
same activations in another order) are ties, broken by the next key: 1 and N
processes, at any thread count, give the same order.
"""

from __future__ import annotations

import numpy as np

# Ranking tolerance for distances and bounds (values in [0, 1]).  They are
# float64 functions of sums of float32 activations (eps 1.2e-7); summed in
# another order (other batches, processes or threads) the aggregations differ
# by up to ~2e-6 relative (1.6e-6 measured on MiniLM-L6, 1 vs 2 processes)
# and the distances by as much: 1e-5 relative leaves 5x headroom, while
# distinct distances of a layer's few hundred neurons are ~1e-3 apart.  The
# absolute part holds values at 0 (a bound of 7.9e-17 in one run, 0.0 in
# another) and float32 noise around it.
RANK_RTOL = 1e-5
RANK_ATOL = 1e-7


def tie_groups(values, rtol: float = RANK_RTOL, atol: float = RANK_ATOL) -> np.ndarray:
    """Dense group ids (0 = smallest) of `values`, equal values within rounding one group.

    Sorted ascending, a value joins its predecessor's group when it exceeds it
    by at most ``atol + rtol * |value|`` (chained: a run of close values is
    one group).  Sort by the ids instead of the values and a perturbation far
    below the tolerance changes no order; NaNs form one group after all values.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"tie_groups takes a 1-d array, got shape {v.shape}.")
    if not (rtol >= 0 and atol >= 0):
        raise ValueError(f"rtol and atol must be >= 0, got {rtol}, {atol}.")
    groups = np.zeros(v.shape[0], dtype=np.int64)
    if v.size:
        order = np.argsort(v, kind="stable")  # NaNs last
        s = v[order]
        with np.errstate(invalid="ignore"):
            new_group = ~(np.diff(s) <= atol + rtol * np.abs(s[1:]))  # NaN: a new group
        groups[order] = np.concatenate([[0], np.cumsum(new_group)])
    return groups
