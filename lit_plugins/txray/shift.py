"""TX-Ray neuron shift between a reference model A and a fine-tuned model B.

Given two :class:`~lit_plugins.txray.aggregate.NeuronFeatureAggregator` s over
the *same* layer width and an aligned feature id space, for every neuron that is
active (positive mass) in both models:

* **Hellinger distance** ``H(P, Q) = (1/sqrt 2) * || sqrt P - sqrt Q ||_2``
  over the union of both supports (``0 <= H <= 1``; 1 for disjoint supports),
* **Hellinger length** ``|supp P  U  supp Q|`` (number of distinct features),
* **length shift** ``len_B - len_A`` (negative: specialisation, positive:
  generalisation),
* **mass activation** of each neuron in both models (share of the layer's
  total activation mass),

and :meth:`ShiftResult.rank_shifts` returns the k most / least shifted neurons
with their top features in each model.

Definitions, and where they differ
----------------------------------
``P_n(f)`` below is neuron n's value for feature f, ``m(n,f)`` the activation
mass credited to (n, f), ``c(n,f)`` the number of credited positions and
``M(n) = sum_f m(n,f)``.

Ours (defaults ``weighting="mass"``, ``normalize_by_length=False``):
  ``P_n(f) = m(n,f) / M(n)`` (a probability distribution), ``H`` as above,
  no division by length.  Positions are credited as described in
  :mod:`lit_plugins.txray.aggregate` (max-1: only the arg-max neuron and only
  if its activation is ``> 0``).

Paper (Rethmeier, Saxena & Augenstein, UAI 2020), as summarised in this
project's specification: per neuron, the max-1 activation mass per feature is
normalised into a distribution and compared with the Hellinger distance; the
Hellinger length is the size of the union of both distributions' features.
Our defaults implement exactly that.  (The paper text itself could not be
retrieved in the offline build environment, so this paragraph is not
re-verified against the PDF; the statements about the original code below
were verified by reading it.)

Original code (github.com/copenlu/tx-ray, commit fc139d29,
``Evaluation_metrics/measures.py``: ``calculate_hellinger_distance`` and
``hellinger_distance``; inputs produced by ``Objectives/layers.py`` and
``Objectives/collect_data.py``; plots in ``Visualize/plots.py``) differs as
follows -- each point was checked in that code:

1. **Crediting.** One row per token position with ``max_activations =
   max(layer)`` and ``max_activation_index = argmax(layer)``; there is *no*
   ``> 0`` filter, so a position whose maximum is negative is still credited
   (with a negative value; the LSTM outputs are tanh-bounded).  Ours credits
   only positive maxima.  Identical whenever every position's maximum is
   positive (as in the benchmark).
2. **Shared neurons.** Neurons that are the arg-max of at least one row in
   both models.  Ours: positive mass in both (same under 1.).
3. **Per-feature value.** The code divides every row's activation by the
   neuron's total ``M(n)`` and then takes the **mean** over the rows of each
   token: ``P_n(f) = (m(n,f) / c(n,f)) / M(n)``.  This is *not* renormalised:
   ``sum_f P_n(f) <= 1``, with equality only if every feature occurred once.
   ``weighting="mean"`` reproduces this; the default ``"mass"`` uses the sum
   (a proper distribution).
4. **Division by length.** ``hellinger_distance`` returns
   ``(H / len(union), len(union))``: the value stored, plotted
   (``hellinger_length_plot``) and ranked (``plot_top_10_hellinger_neurons``)
   is the Hellinger distance *divided by the Hellinger length*.  Verified:
   ``return hellinger_distance/len(a), len(a)`` where ``a`` is the
   union-padded dict.  ``normalize_by_length=True`` reproduces this.  With
   ``weighting="mean", normalize_by_length=True`` our distances equal the
   original code's to float64 rounding (see ``tests/benchmarks/bench_txray.py``).
5. **Ranking.** The code ranks with ``heapq.nlargest/nsmallest`` on the tuple
   ``(distance, length)`` (ties -> longer/shorter first, then dict order).  Ours
   sorts by distance, then Hellinger length in the same direction, then neuron
   id ascending (deterministic); distances equal within float32 noise are ties
   (:func:`tie_groups`), so rounding never decides an order.
6. **Length.** Code: ``nunique()`` of the tokens of a neuron's rows (includes
   rows credited with a non-positive maximum).  Ours: features with mass > 0.
7. **Mass activation.** Code (``mass_activation_plot``): the raw sum of max
   activations per neuron, sorted descending, per model (the README calls it
   normalised; the code does not normalise).  Ours: share of the layer total
   (``mass_activation_*``); the raw sums are kept as ``mass_*``.
8. **Detail plots.** Code: per neuron, *count* frequencies of POS tags over its
   rows, overlaid with tokens' mean activation.  Ours: the mass-share
   distribution over the aggregated features (tokens / whole words / tags),
   top features of A and B side by side.
9. **"all" mode.** The README mentions analysing all activations, but
   ``measures.py`` handles max-1 only; our ``"all"`` crediting (every positive
   activation) is our own definition.

Top features (:meth:`ShiftResult.rank_shifts`) and the report always use the
mass-share distribution ``m(n,f)/M(n)``, whatever ``weighting`` is.

Uncertainty and ranking
-----------------------
With ``compute_shift(..., replicates=B)`` every shared neuron's distance gets a
percentile interval from a paired, seeded bootstrap over sentences
(:mod:`lit_plugins.txray.bootstrap`); how the result ranks neurons with and
without one, and how ties within rounding noise are broken, is
:mod:`lit_plugins.txray.shift_result`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from lit_plugins.txray import bootstrap as _bootstrap
from lit_plugins.txray import hellinger as hellinger_lib
from lit_plugins.txray.aggregate import FeatureVocab, NeuronFeatureAggregator
from lit_plugins.txray.hellinger import hellinger, hellinger_rows
from lit_plugins.txray.ranking import RANK_ATOL, RANK_RTOL, tie_groups
from lit_plugins.txray.shift_result import ShiftResult

__all__ = [
    "RANK_ATOL",
    "RANK_RTOL",
    "WEIGHTINGS",
    "compute_shift",
    "hellinger",
    "hellinger_rows",
    "tie_groups",
]

WEIGHTINGS = ("mass", "mean")


# --------------------------------------------------------------------------- #
# Main entry point
# --------------------------------------------------------------------------- #
def _own_pair(agg: NeuronFeatureAggregator) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """The aggregator's canonical (mass, count) CSR pair, not aliasing its state."""
    m, c = agg._csr_pair()
    if agg.is_sparse:  # sparse storage hands out its own arrays: copy them once
        m = m.copy()
        c = hellinger_lib.with_shape(m, c.data.copy(), c.shape)
    return m, c


def compute_shift(
    agg_a: NeuronFeatureAggregator,
    agg_b: NeuronFeatureAggregator,
    *,
    normalize_by_length: bool = False,
    weighting: str = "mass",
    feature_names: Sequence[str] | FeatureVocab | None = None,
    labels: tuple[str, str] = ("A", "B"),
    replicates: int = 0,
    seed: int = 0,
    confidence: float = _bootstrap.DEFAULT_CONFIDENCE,
) -> ShiftResult:
    """Compares model A (reference) and model B neuron by neuron.

    Args:
      agg_a, agg_b: aggregations of the same layer over the same feature id
        space (share a :class:`FeatureVocab`).  Different ``num_features`` are
        fine (the smaller space is zero-padded).
      normalize_by_length: divide each distance by the Hellinger length, as
        the original TX-Ray code does (see module docstring, point 4).
      weighting: ``"mass"`` (default; ``m(n,f)/M(n)``) or ``"mean"`` (the
        original code's mean of normalised activations, point 3).
      feature_names: optional names (list or vocab) used in top-feature records.
      labels: display names of the two models.
      replicates: bootstrap replicates over sentences (0: none, the default;
        at most ``bootstrap.MAX_REPLICATES``); needs both aggregators built
        with ``record_units=True`` and fed ``units=``.
      seed: the bootstrap's ``numpy.random.default_rng`` seed.
      confidence: the level of the intervals the ranking uses, in (0, 1).

    Raises:
      ValueError: different neuron counts, an empty aggregation, no neuron
        active in both models, or bad bootstrap settings (naming what is
        accepted).
    """
    replicates = _bootstrap.check_replicates(replicates)
    confidence = _bootstrap.check_confidence(confidence)
    if replicates and (
        getattr(agg_a, "units", None) is None or getattr(agg_b, "units", None) is None
    ):
        raise ValueError(
            "a bootstrap (replicates > 0) needs both aggregators built with "
            "record_units=True and fed units= (sentence indices); or use replicates=0"
        )
    if not isinstance(agg_a, NeuronFeatureAggregator) or not isinstance(
        agg_b, NeuronFeatureAggregator
    ):
        raise ValueError("agg_a and agg_b must be NeuronFeatureAggregator instances")
    if agg_a.num_neurons != agg_b.num_neurons:
        raise ValueError(
            f"neuron counts differ: model A has {agg_a.num_neurons}, model B has {agg_b.num_neurons}"
        )
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    for lab, agg in zip(labels, (agg_a, agg_b)):
        if agg.num_credited == 0:
            raise ValueError(
                f"model {lab}: empty aggregation (no tokens, or no neuron ever active)"
            )
    H = agg_a.num_neurons
    F = max(agg_a.num_features, agg_b.num_features)
    if feature_names is not None and len(feature_names) < F:
        raise ValueError(f"{len(feature_names)} feature names for {F} features")
    Ma, Ca = _own_pair(agg_a)
    Mb, Cb = _own_pair(agg_b)

    mass_a = np.asarray(Ma.sum(axis=1)).ravel()
    mass_b = np.asarray(Mb.sum(axis=1)).ravel()
    active_a, active_b = mass_a > 0, mass_b > 0
    shared_mask = active_a & active_b
    shared = np.flatnonzero(shared_mask)
    if shared.size == 0:
        raise ValueError(
            f"no neuron is active in both models ({int(active_a.sum())} active in "
            f"{labels[0]}, {int(active_b.sum())} in {labels[1]})"
        )

    def inv(x):
        out = np.zeros_like(x)
        out[x > 0] = 1.0 / x[x > 0]
        return out

    # Per-cell values on the (shared) CSR pattern: mass share, and the value
    # compared by the distance (mass share, or the original code's mean).
    share_a = Ma.data * np.repeat(inv(mass_a), np.diff(Ma.indptr))
    share_b = Mb.data * np.repeat(inv(mass_b), np.diff(Mb.indptr))
    if weighting == "mass":
        val_a, val_b = share_a, share_b
    else:  # v(n,f) = (m(n,f) / c(n,f)) / M(n); cells with mass have count >= 1
        val_a = Ma.data / Ca.data * np.repeat(inv(mass_a), np.diff(Ma.indptr))
        val_b = Mb.data / Cb.data * np.repeat(inv(mass_b), np.diff(Mb.indptr))

    shape = (H, F)
    sq, union_all = hellinger_lib.sq_and_union(Ma, np.sqrt(val_a), Mb, np.sqrt(val_b), shape)
    dist = np.sqrt(sq[shared]) * hellinger_lib.INV_SQRT2
    union = union_all[shared]
    if normalize_by_length:
        dist = dist / union
    len_a_all = np.diff(Ma.indptr).astype(np.int64)
    len_b_all = np.diff(Mb.indptr).astype(np.int64)
    len_a, len_b = len_a_all[shared], len_b_all[shared]

    Pa, Pb = (
        hellinger_lib.with_shape(Ma, share_a, shape),
        hellinger_lib.with_shape(Mb, share_b, shape),
    )
    Ca, Cb = (
        hellinger_lib.with_shape(Ca, Ca.data, shape),
        hellinger_lib.with_shape(Cb, Cb.data, shape),
    )

    names = None
    if feature_names is not None:
        names = (
            feature_names.names
            if isinstance(feature_names, FeatureVocab)
            else [str(s) for s in feature_names]
        )

    boot = {}
    if replicates:
        reps, n_units, unit_size = _bootstrap.bootstrap_distances(
            agg_a.units,
            agg_b.units,
            shared,
            H,
            replicates=replicates,
            seed=int(seed),
            weighting=weighting,
            normalize_by_length=bool(normalize_by_length),
        )
        boot = dict(
            replicate_distance=reps,
            units_a=_bootstrap.units_per_neuron(agg_a.units, H)[shared],
            units_b=_bootstrap.units_per_neuron(agg_b.units, H)[shared],
            bootstrap_units=n_units,
            bootstrap_unit_size=unit_size,
            bootstrap_seed=int(seed),
        )

    return ShiftResult(
        num_neurons=H,
        num_features=F,
        shared=shared,
        distance=dist,
        hellinger_length=union,
        length_a=len_a,
        length_b=len_b,
        length_shift=len_b - len_a,
        active_a=active_a,
        active_b=active_b,
        mass_a=mass_a,
        mass_b=mass_b,
        mass_activation_a=mass_a / mass_a.sum(),
        mass_activation_b=mass_b / mass_b.sum(),
        lengths_a_all=len_a_all,
        lengths_b_all=len_b_all,
        probs_a=Pa,
        probs_b=Pb,
        counts_a=Ca,
        counts_b=Cb,
        weighting=weighting,
        normalize_by_length=bool(normalize_by_length),
        feature_names=names,
        label_a=str(labels[0]),
        label_b=str(labels[1]),
        mode=agg_a.mode if agg_a.mode == agg_b.mode else f"{agg_a.mode}/{agg_b.mode}",
        confidence=confidence,
        **boot,
    )
