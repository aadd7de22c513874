"""The result of a TX-Ray shift (`txray.shift.compute_shift`) and its ranking.

`ShiftResult` holds the per-neuron comparison of model A (reference) and model B;
:meth:`ShiftResult.rank_shifts` returns the k most / least shifted neurons
(`NeuronShift`) with their top features in each model, and
:meth:`ShiftResult.to_records` every shared neuron in the most-shifted order.
Without a bootstrap the ranking is by distance, then Hellinger length in the same
direction, then neuron id ascending (deterministic).

Uncertainty and ranking
-----------------------
With ``compute_shift(..., replicates=B)`` (aggregators built with
``record_units=True`` and fed ``units=`` sentence indices) every shared
neuron's distance gets a percentile interval from a paired, seeded bootstrap
over sentences (:mod:`lit_plugins.txray.bootstrap`), and the ranking accounts
for support: **most shifted = largest lower confidence bound first** (then
distance, Hellinger length, neuron id); **least shifted = smallest upper
bound first**.  A replicate in which a neuron has no mass in one model (none
of its sentences drawn) counts as distance 0, so a neuron at distance 1.0
from one or two sentences gets a lower bound of 0 and ranks below a
well-supported neuron at 0.9.  ``replicates=0`` (default): no bootstrap, the
distances and the plain ranking (distance, length, id) exactly as before.

Ties within rounding noise
--------------------------
Every float sort key (bound, distance) is compared through
:func:`tie_groups`: values within ``RANK_RTOL`` relative + ``RANK_ATOL``
absolute of their neighbour in sorted order are one tie group, and the next
key (distance, then the integer length, then the neuron id) decides inside
it.  The same corpus on 1 or N processes, or at another thread count, gives
float32 activations summed in another order -- aggregations equal to ~2e-6
relative, a lower bound of 7.9e-17 in one run and 0.0 in the other -- and the
same ranking.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from lit_plugins.txray import bootstrap as _bootstrap
from lit_plugins.txray.aggregate import FeatureScore, _top_of_row
from lit_plugins.txray.ranking import tie_groups


# --------------------------------------------------------------------------- #
# Results
# --------------------------------------------------------------------------- #
@dataclasses.dataclass(frozen=True)
class NeuronShift:
    """One ranked neuron (a row of :meth:`ShiftResult.rank_shifts`)."""

    neuron: int
    distance: float
    hellinger_length: int
    length_a: int
    length_b: int
    length_shift: int
    mass_activation_a: float
    mass_activation_b: float
    top_features_a: tuple[FeatureScore, ...]
    top_features_b: tuple[FeatureScore, ...]
    # With a bootstrap (else NaN / -1): the interval at the ranking's
    # confidence, and the sentences (units) with mass in A and in B.
    lower: float = float("nan")
    upper: float = float("nan")
    units_a: int = -1
    units_b: int = -1


@dataclasses.dataclass(frozen=True)
class RankedShifts:
    most: list[NeuronShift]  # largest distance first
    least: list[NeuronShift]  # smallest distance first


@dataclasses.dataclass
class ShiftResult:
    """Per-neuron comparison of model A (reference) and model B.

    Arrays indexed by position in ``shared`` (neurons active in both):
    ``distance``, ``hellinger_length``, ``length_a``, ``length_b``,
    ``length_shift``.  Arrays of length ``num_neurons`` (all neurons):
    ``active_a``, ``active_b``, ``mass_a``, ``mass_b`` (raw activation mass),
    ``mass_activation_a``, ``mass_activation_b`` (share of layer total),
    ``lengths_a_all``, ``lengths_b_all``.  ``probs_a``/``probs_b``: ``[H, F]``
    CSR mass-share distributions, ``counts_a``/``counts_b`` credited counts.

    Bootstrap (``replicates > 0`` in :func:`compute_shift`, else None / 0):
    ``replicate_distance`` ``[B, shared]``, ``units_a``/``units_b`` (sentences
    -- or blocks of ``bootstrap_unit_size`` sentences -- with mass, per shared
    neuron), ``bootstrap_units`` (N resampled), ``confidence`` (the ranking's
    default level).
    """

    num_neurons: int
    num_features: int
    shared: np.ndarray
    distance: np.ndarray
    hellinger_length: np.ndarray
    length_a: np.ndarray
    length_b: np.ndarray
    length_shift: np.ndarray
    active_a: np.ndarray
    active_b: np.ndarray
    mass_a: np.ndarray
    mass_b: np.ndarray
    mass_activation_a: np.ndarray
    mass_activation_b: np.ndarray
    lengths_a_all: np.ndarray
    lengths_b_all: np.ndarray
    probs_a: sp.csr_matrix
    probs_b: sp.csr_matrix
    counts_a: sp.csr_matrix
    counts_b: sp.csr_matrix
    weighting: str = "mass"
    normalize_by_length: bool = False
    feature_names: list[str] | None = None
    label_a: str = "A"
    label_b: str = "B"
    mode: str = "max1"
    replicate_distance: np.ndarray | None = None
    units_a: np.ndarray | None = None
    units_b: np.ndarray | None = None
    bootstrap_units: int = 0
    bootstrap_unit_size: int = 1
    bootstrap_seed: int = 0
    confidence: float = _bootstrap.DEFAULT_CONFIDENCE

    @property
    def num_shared(self) -> int:
        return int(self.shared.shape[0])

    def distance_of(self, neuron: int) -> float:
        """Distance of one neuron (``KeyError`` if it is not active in both)."""
        pos = np.searchsorted(self.shared, neuron)
        if pos >= self.shared.shape[0] or self.shared[pos] != neuron:
            raise KeyError(f"neuron {neuron} is not active in both models")
        return float(self.distance[pos])

    @property
    def has_bootstrap(self) -> bool:
        return self.replicate_distance is not None

    def interval(self, confidence: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) percentile bounds per shared neuron (NaN without a bootstrap)."""
        c = _bootstrap.check_confidence(self.confidence if confidence is None else confidence)
        if not self.has_bootstrap:
            nan = np.full(self.num_shared, np.nan)
            return nan, nan.copy()
        return _bootstrap.percentile_interval(self.replicate_distance, c)

    def _order(self, largest: bool, bounds=None) -> np.ndarray:
        """Positions in ranking order; float keys compared within rounding
        noise (:func:`tie_groups`), ties broken by the next key, finally the id."""
        d, L, n = tie_groups(self.distance), self.hellinger_length, self.shared
        if bounds is None or not self.has_bootstrap:
            if largest:
                return np.lexsort((n, -L, -d))
            return np.lexsort((n, L, d))
        lo, hi = tie_groups(bounds[0]), tie_groups(bounds[1])
        if largest:
            return np.lexsort((n, -L, -d, -lo))
        return np.lexsort((n, L, d, hi))

    def _record(self, i: int, n_features: int, bounds=None) -> NeuronShift:
        n = int(self.shared[i])
        names = self.feature_names
        ta = _top_of_row(self.probs_a, self.counts_a, n, n_features, names)
        tb = _top_of_row(self.probs_b, self.counts_b, n, n_features, names)
        # _top_of_row computed "mass" from probs; restore the raw masses.
        ta = tuple(dataclasses.replace(s, mass=s.prob * float(self.mass_a[n])) for s in ta)
        tb = tuple(dataclasses.replace(s, mass=s.prob * float(self.mass_b[n])) for s in tb)
        return NeuronShift(**self._scalars(i, bounds), top_features_a=ta, top_features_b=tb)

    def _scalars(self, i: int, bounds=None) -> dict:
        """The per-neuron numbers of shared neuron ``i`` (JSON-friendly)."""
        n = int(self.shared[i])
        return dict(
            neuron=n,
            distance=float(self.distance[i]),
            hellinger_length=int(self.hellinger_length[i]),
            length_a=int(self.length_a[i]),
            length_b=int(self.length_b[i]),
            length_shift=int(self.length_shift[i]),
            mass_activation_a=float(self.mass_activation_a[n]),
            mass_activation_b=float(self.mass_activation_b[n]),
            **(
                {}
                if bounds is None or not self.has_bootstrap
                else dict(
                    lower=float(bounds[0][i]),
                    upper=float(bounds[1][i]),
                    units_a=int(self.units_a[i]),
                    units_b=int(self.units_b[i]),
                )
            ),
        )

    def rank_shifts(
        self, k: int = 10, n_features: int = 5, confidence: float | None = None
    ) -> RankedShifts:
        """The ``k`` most and ``k`` least shifted shared neurons with top features.

        With a bootstrap: ranked by the lower (most) / upper (least) bound at
        ``confidence`` (default: the result's), see the module docstring.
        """
        if k <= 0:
            raise ValueError("k must be positive")
        bounds = self.interval(confidence) if self.has_bootstrap else None
        most = [self._record(int(i), n_features, bounds) for i in self._order(True, bounds)[:k]]
        least = [self._record(int(i), n_features, bounds) for i in self._order(False, bounds)[:k]]
        return RankedShifts(most, least)

    def to_records(self) -> list[dict]:
        """One JSON-friendly dict per shared neuron, in the most-shifted order
        (with a bootstrap also ``lower``, ``upper``, ``units_a``, ``units_b``)."""
        bounds = self.interval() if self.has_bootstrap else None
        return [self._scalars(int(i), bounds) for i in self._order(True, bounds)]

    def to_dataframe(self):
        """The :meth:`to_records` table as a ``pandas.DataFrame``."""
        import pandas as pd

        return pd.DataFrame.from_records(self.to_records())


def rank_shifts(result: ShiftResult, k: int = 10, n_features: int = 5) -> RankedShifts:
    """Functional alias of :meth:`ShiftResult.rank_shifts`."""
    return result.rank_shifts(k=k, n_features=n_features)
