"""Uncertainty of TX-Ray's per-neuron distances: a bootstrap over sentences.

A neuron's Hellinger distance is a plug-in estimate from a finite dataset.
Neurons credited at a handful of positions sit at distance 1.0 whenever the
two models credited them on different features, so a plain ranking by
distance is an arbitrary pick among such ties.  This module gives every
distance a percentile interval from a **paired bootstrap over sentences** and
the rule that ranks by it.

Recording (``NeuronFeatureAggregator(record_units=True)``)
    every credit is also kept per *unit* (a sentence, given per position as
    ``update(..., units=...)``), coalesced to one entry per
    (unit, neuron, feature) cell holding its mass and count.  Memory is one
    entry per such cell (max-1: at most one per credited position), bounded by
    ``max_cells``: past it, consecutive units are merged pairwise (unit
    ``u -> u // 2``, repeatedly) into blocks of ``2**k`` consecutive sentences,
    as long as at least ``min_units`` units remain (then the table is at most
    ``min_units`` times the aggregation's).  Resampling blocks of sentences is
    still a bootstrap of independent units, with fewer of them.  The plain
    (unrecorded) aggregation is unchanged: same code path, same sums.

Replicates (:func:`bootstrap_distances`)
    with ``rng = numpy.random.default_rng(seed)``, replicate ``b = 0..B-1``
    draws the multiplicity of every unit as ``rng.multinomial(N, [1/N] * N)``
    (``N`` units), the *same* draw for both models (they read the same
    sentences), rebuilds both mass (and count) tables from the recorded cells
    (a sparse ``[cells, units]`` table times the draws, a chunk of replicates
    at a time), and recomputes every shared neuron's
    distance exactly as :func:`~lit_plugins.txray.shift.compute_shift` does
    (same weighting, same division by length).  A neuron without credited
    mass in one of the models in a replicate (none of its sentences drawn)
    cannot be compared there: that replicate counts as distance **0** (no
    evidence of a shift).  This is what makes support count: a neuron credited
    in one sentence vanishes from ~37% of replicates, one in two sentences of
    a model from ~13.5%, so their lower bounds fall to 0 however large their
    distance, while a neuron seen in many sentences is never dropped.

Interval and ranking rule (:func:`percentile_interval`, ``ShiftResult.rank_shifts``)
    the interval at confidence ``c`` is the ``(1-c)/2`` and ``(1+c)/2``
    quantiles of the replicate distances (linear interpolation).  With a
    bootstrap, the most shifted neurons are ranked by the **lower bound**
    (descending), then distance (descending), Hellinger length (descending),
    neuron id; the least shifted by the **upper bound** (ascending), then
    distance, length (ascending), neuron id.  Without a bootstrap the ranking
    is the plain one (distance, length, id).  Bounds and distances equal
    within rounding noise (``shift.RANK_RTOL`` / ``RANK_ATOL``) are ties
    (``shift.tie_groups``), so a bound of 7.9e-17 in one run and 0.0 in
    another -- float32 sums in another order -- rank the same.

No LIT import here: numpy / scipy only.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from lit_plugins.util.stats import check_confidence, percentile_interval

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_REPLICATES",
    "MAX_REPLICATES",
    "UnitCells",
    "bootstrap_distances",
    "check_confidence",
    "check_replicates",
    "percentile_interval",
]

DEFAULT_REPLICATES = 200
MAX_REPLICATES = 10_000
DEFAULT_CONFIDENCE = 0.9
_KEY_SHIFT = 32  # cell key = neuron << 32 | feature, as in aggregate.py
_INV_SQRT2 = 1.0 / np.sqrt(2.0)
_DTYPES = (np.int64, np.int64, np.float64, np.float64)  # units, keys, mass, count
_CHUNK_CELLS = 1 << 21  # replicates per chunk: about this many (cell, replicate) values


def check_replicates(replicates) -> int:
    """``replicates`` as an int in ``[0, MAX_REPLICATES]`` (0: no bootstrap), or ValueError."""
    try:
        number = float(replicates)
    except (TypeError, ValueError):
        number = float("nan")
    if not (number.is_integer() and 0 <= number <= MAX_REPLICATES):
        raise ValueError(
            f"bootstrap replicates must be an integer in [0, {MAX_REPLICATES}] "
            f"(0: no bootstrap), got {replicates!r}"
        )
    return int(number)


class UnitCells:
    """Credits per (unit, neuron, feature) cell: the bootstrap's per-sentence table.

    Filled by ``NeuronFeatureAggregator.update`` when it records units; see the
    module docstring for the memory bound (``max_cells``, ``min_units``).
    """

    def __init__(self, max_cells: int = 1 << 21, min_units: int = 64):
        if int(max_cells) <= 0 or int(min_units) <= 0:
            raise ValueError("max_cells and min_units must be positive")
        self.max_cells = int(max_cells)
        self.min_units = int(min_units)
        self.shift = 0  # units merged into blocks of 2**shift consecutive units
        self.max_unit = -1  # largest (unmerged) unit seen at any kept position
        self._units = np.zeros(0, np.int64)
        self._keys = np.zeros(0, np.int64)
        self._mass = np.zeros(0)
        self._count = np.zeros(0)
        self._pending: list[tuple[np.ndarray, ...]] = []
        self._pending_n = 0
        self._last_unit = -1  # largest unit stored or pending
        self._sorted = True  # stored + pending are in (unit, key) order, one entry per cell

    @property
    def num_units(self) -> int:
        """Units to resample (after merging): ``(max_unit >> shift) + 1``."""
        return (self.max_unit >> self.shift) + 1 if self.max_unit >= 0 else 0

    @property
    def unit_size(self) -> int:
        """Consecutive sentences per unit (``2**shift``)."""
        return 1 << self.shift

    def seen(self, units: np.ndarray) -> None:
        """Notes the units of kept positions (credited or not)."""
        if units.size:
            self.max_unit = max(self.max_unit, int(units.max()))

    def add(self, units, neuron, feats, vals, cnts=None) -> None:
        """Adds credits: one entry per (unit, neuron, feature, mass[, count]).

        A batch is coalesced on its own; batches whose units all follow the
        stored ones (a stream of whole sentences in order) are appended
        without re-sorting the table.
        """
        if units.size == 0:
            return
        keys = (neuron.astype(np.int64) << _KEY_SHIFT) | feats.astype(np.int64)
        cnts = np.ones(keys.shape[0]) if cnts is None else np.asarray(cnts, dtype=np.float64)
        self._push(_coalesced(units.astype(np.int64) >> self.shift, keys, vals, cnts))

    def _push(self, batch: tuple[np.ndarray, ...]) -> None:
        """Queues coalesced ``(units at self.shift, keys, mass, count)`` entries."""
        if int(batch[0][0]) <= self._last_unit:
            self._sorted = False
        self._last_unit = max(self._last_unit, int(batch[0][-1]))
        self._pending.append(batch)
        self._pending_n += batch[0].shape[0]
        if self._pending_n > max(self.max_cells // 4, self._keys.shape[0]):
            self.coalesce()

    def absorb(self, other: UnitCells, feature_map: np.ndarray | None = None) -> UnitCells:
        """Adds `other`'s cells: the same sentences' numbering (e.g. a shard's
        table recorded with corpus-wide sentence ids), both taken to the
        coarser of the two mergings; `feature_map[f]` renumbers `other`'s
        features (onto a union vocabulary).  Absorbing the tables of a
        corpus's parts gives the table one pass over the corpus records
        (same cells, sums up to addition order, same final merging)."""
        units, keys, mass, count = other.arrays()
        if other.shift > self.shift:
            self.merge(other.shift)
        self.max_unit = max(self.max_unit, other.max_unit)
        if keys.size == 0:
            return self
        if feature_map is not None:
            feature_map = np.asarray(feature_map, dtype=np.int64)
            low = keys & ((1 << _KEY_SHIFT) - 1)
            keys = ((keys >> _KEY_SHIFT) << _KEY_SHIFT) | feature_map[low]
        self._push(_coalesced(units >> (self.shift - other.shift), keys, mass, count))
        return self

    def renumbered(self, feature_map: np.ndarray) -> UnitCells:
        """A copy (same bounds and merging) whose feature f is `feature_map[f]`."""
        return UnitCells(self.max_cells, self.min_units).absorb(self, feature_map)

    def state(self) -> dict[str, np.ndarray]:
        """The table as arrays (`from_state` restores it; no pickles)."""
        units, keys, mass, count = self.arrays()
        scalars = (self.shift, self.max_unit, self.max_cells, self.min_units)
        return dict(units=units, keys=keys, mass=mass, count=count, scalars=np.array(scalars))

    @classmethod
    def from_state(cls, state) -> UnitCells:
        """The table `state()` wrote; ValueError when the arrays do not fit."""
        shift, max_unit, max_cells, min_units = (int(v) for v in state["scalars"])
        cells = cls(max_cells, min_units)
        arrays = [np.asarray(state[k]) for k in ("units", "keys", "mass", "count")]
        if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
            raise ValueError("unit table: units, keys, mass and count must be 1-D of one length")
        if arrays[0].size and (int(arrays[0].max()) > max_unit >> shift or arrays[0].min() < 0):
            raise ValueError("unit table: a unit index is outside the recorded units")
        cells.shift, cells.max_unit = shift, max_unit
        if arrays[0].size:
            units, keys, mass, count = (a.astype(t) for a, t in zip(arrays, _DTYPES))
            cells._push(_coalesced(units, keys, mass, count))
        return cells

    def coalesce(self) -> UnitCells:
        """Merges pending entries (and units, while over ``max_cells``)."""
        self._flush()
        while self._keys.shape[0] > self.max_cells and self.num_units >= 2 * self.min_units:
            self.merge(self.shift + 1)
        return self

    def merge(self, shift: int) -> None:
        """Merges units into blocks of ``2**shift`` consecutive (unmerged) units."""
        if shift < self.shift:
            raise ValueError("units can only be merged further")
        self._flush()
        step, self.shift = shift - self.shift, shift
        if step:
            self._last_unit >>= step
            if self._keys.size:
                self._units, self._keys, self._mass, self._count = _coalesced(
                    self._units >> step, self._keys, self._mass, self._count
                )

    def _flush(self) -> None:
        if self._pending:
            parts = [(self._units, self._keys, self._mass, self._count), *self._pending]
            self._pending, self._pending_n = [], 0
            arrays = [np.concatenate(p) for p in zip(*parts)]
            if not self._sorted:
                arrays = _coalesced(*arrays)
                self._sorted = True
            self._units, self._keys, self._mass, self._count = arrays

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(units, keys, mass, count)`` of every recorded cell (coalesced)."""
        self.coalesce()
        return self._units, self._keys, self._mass, self._count

    @property
    def num_cells(self) -> int:
        self.coalesce()
        return int(self._keys.shape[0])


def _coalesced(units, keys, mass, count):
    """One entry per (unit, key), in (unit, key) order, masses and counts summed.

    One stable sort of ``unit << 47 | key`` when that fits in 63 bits (the
    recorded table is a concatenation of sorted runs, which the stable sort
    merges in near-linear time), else a lexsort.
    """
    if int(units.max()) < 1 << 16 and int(keys.max()) < 1 << 47:
        combined = (units << 47) | keys
        order = np.argsort(combined, kind="stable")
        combined = combined[order]
        first = np.empty(keys.shape[0], dtype=bool)
        first[0] = True
        np.not_equal(combined[1:], combined[:-1], out=first[1:])
        del combined
        units, keys = units[order], keys[order]
    else:
        order = np.lexsort((keys, units))
        units, keys = units[order], keys[order]
        first = np.empty(keys.shape[0], dtype=bool)
        first[0] = True
        first[1:] = (keys[1:] != keys[:-1]) | (units[1:] != units[:-1])
    group = np.cumsum(first) - 1
    n = int(group[-1]) + 1
    mass = np.bincount(group, weights=mass[order], minlength=n)
    count = np.bincount(group, weights=count[order], minlength=n)
    return units[first], keys[first], mass, count


def units_per_neuron(cells: UnitCells, num_neurons: int) -> np.ndarray:
    """Number of distinct units with credited mass, per neuron (``int64 [H]``)."""
    units, keys, mass, _ = cells.arrays()
    keep = mass > 0
    neuron = keys[keep] >> _KEY_SHIFT
    pair = np.unique(neuron * (cells.num_units + 1) + units[keep])
    return np.bincount(pair // (cells.num_units + 1), minlength=num_neurons).astype(np.int64)


def bootstrap_distances(
    cells_a: UnitCells,
    cells_b: UnitCells,
    shared: np.ndarray,
    num_neurons: int,
    *,
    replicates: int = DEFAULT_REPLICATES,
    seed: int = 0,
    weighting: str = "mass",
    normalize_by_length: bool = False,
) -> tuple[np.ndarray, int, int]:
    """``(distances [replicates, len(shared)], units, unit_size)`` of the paired bootstrap.

    See the module docstring for the draws and the distance-0 rule.
    """
    replicates = check_replicates(replicates)
    if replicates == 0:
        raise ValueError("bootstrap replicates must be positive here")
    while True:  # both at the same (final) merging of units
        shift = max(cells_a.shift, cells_b.shift)
        for c in (cells_a, cells_b):
            c.merge(shift)
            c.coalesce()
        if cells_a.shift == cells_b.shift:
            break
    ua, ka, ma, ca = cells_a.arrays()
    ub, kb, mb, cb = cells_b.arrays()
    n_units = max(cells_a.num_units, cells_b.num_units)
    if n_units == 0:
        raise ValueError("no recorded units: aggregate with record_units=True and pass units")
    cells = np.unique(np.concatenate([ka, kb]))
    ia, ib = np.searchsorted(cells, ka), np.searchsorted(cells, kb)
    neuron = (cells >> _KEY_SHIFT).astype(np.int64)
    H, U = int(num_neurons), cells.shape[0]
    # [cells, units] tables: replicate masses for a chunk of replicates are
    # one sparse x dense product with the chunk's [units, chunk] weights.
    shape = (U, n_units)
    mass_a_t = sp.csr_matrix((ma, (ia, ua)), shape=shape)
    mass_b_t = sp.csr_matrix((mb, (ib, ub)), shape=shape)
    if weighting != "mass":
        count_a_t = sp.csr_matrix((ca, (ia, ua)), shape=shape)
        count_b_t = sp.csr_matrix((cb, (ib, ub)), shape=shape)
    per_neuron = sp.csr_matrix((np.ones(U), (neuron, np.arange(U))), shape=(H, U))
    rng = np.random.default_rng(seed)
    p = np.full(n_units, 1.0 / n_units)
    draws = np.stack([rng.multinomial(n_units, p) for _ in range(replicates)]).astype(np.float64)
    out = np.empty((replicates, shared.shape[0]))
    chunk = max(1, min(replicates, _CHUNK_CELLS // max(U, 1)))
    for lo in range(0, replicates, chunk):
        w = draws[lo : lo + chunk].T  # [units, chunk]
        mass_a, mass_b = mass_a_t @ w, mass_b_t @ w  # [cells, chunk]
        tot_a, tot_b = per_neuron @ mass_a, per_neuron @ mass_b  # [H, chunk]
        va, vb = mass_a * _inv(tot_a)[neuron], mass_b * _inv(tot_b)[neuron]
        if weighting != "mass":  # the original code's mean: (m / c) / M
            va *= _inv(count_a_t @ w)
            vb *= _inv(count_b_t @ w)
        diff = np.sqrt(va) - np.sqrt(vb)
        d = np.sqrt(per_neuron @ (diff * diff)) * _INV_SQRT2
        if normalize_by_length:
            d *= _inv(per_neuron @ ((mass_a > 0) | (mass_b > 0)).astype(np.float64))
        d[(tot_a <= 0) | (tot_b <= 0)] = 0.0  # not comparable in this replicate
        out[lo : lo + chunk] = d[shared].T
    return out, n_units, 1 << cells_a.shift


def _inv(x: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x, dtype=np.float64)
    pos = x > 0
    out[pos] = 1.0 / x[pos]
    return out
