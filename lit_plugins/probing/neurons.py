"""Neuron selection from probe weights (NeuroX `linear_probe` parity).

Same names, argument order and selection rules as NeuroX's
`neurox.interpretation.linear_probe` (Dalvi et al., AAAI 2019), so results
can be compared with published analyses.  Every function takes either a
fitted `LinearProbe`, a NeuroX torch probe, or a plain weight array
[num_classes, num_neurons]; absolute weight values are used throughout.

Rules reproduced exactly:
  * Per class, neurons are sorted by |w| (descending for "top", ascending for
    "bottom"); the selection is the shortest prefix whose cumulative sum
    reaches ``total_mass * percentage`` (the neuron that crosses the threshold
    is included; if float round-off means it is never reached, all neurons
    are selected).  ``percentage=0`` therefore still selects one neuron.
    Sums use the weights' own dtype, like NeuroX.
  * Hard threshold keeps ``|w| > max|w| / fraction`` (strict, and a *division*
    by `fraction`, which is what NeuroX's code does even though its docstring
    says ``fraction * max_weight``).
  * Global ordering adds the union of per-class top neurons at percentages
    0, 1/search_stride, ..., 1, recording a cutoff after each step.

Deliberate, documented differences (all where NeuroX's result is arbitrary
or an error):
  * Sets: NeuroX builds unions and new-neuron chunks from Python sets, so
    their order is arbitrary.  The union is returned sorted ascending, and
    neurons inside one chunk of an ordering are sorted by ascending index.
    Chunks and cutoffs are NeuroX's; so `get_fixed_number_of_bottom_neurons`
    agrees with NeuroX except inside the one chunk its cut may split, where
    both pick an arbitrary subset of equally-ranked neurons.
  * `get_neuron_ordering_granular` stops at the last percentage step instead
    of raising IndexError when the 100% selection has fewer neurons than the
    requested chunk boundary (e.g. exactly-zero L1 weights).
  * `get_fixed_number_of_bottom_neurons(probe, 0, ...)` returns no neurons
    (NeuroX's ``ordering[-0:]`` returns all of them).
  * `get_random_neurons` takes an optional `random_state`; without it it
    draws from numpy's global RNG exactly like NeuroX.

Note that neurons whose weight is exactly 0 for every class (common with L1)
never enter a cumulative-mass selection below 100% and may be missing from
`get_neuron_ordering` altogether - as in NeuroX.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lit_plugins.probing._validation import check_weights


def _class_rows(weights: np.ndarray, class_to_idx: Mapping | None) -> dict:
    """{class name: row index}; None means one entry per weight row."""
    if class_to_idx is None:
        return {i: i for i in range(weights.shape[0])}
    rows = dict(class_to_idx)
    for name, idx in rows.items():
        if not (0 <= int(idx) < weights.shape[0]):
            raise ValueError(
                f"class_to_idx[{name!r}] = {idx} is outside the probe's "
                f"{weights.shape[0]} weight rows."
            )
    return rows


def _check_fraction(value: float, name: str) -> float:
    if value is None or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    return value


class _MassSelector:
    """Per-class sorted order and cumulative weight mass, computed once.

    `get_neuron_ordering` asks for many percentages; sorting once per class and
    re-thresholding the cached cumulative sums makes it O(C H log H) instead of
    O(search_stride C H log H).
    """

    def __init__(self, weights: np.ndarray, rows: dict, descending: bool):
        self.rows = rows
        self.order = {}
        self.cum = {}
        self.total = {}
        for name, r in rows.items():
            row = weights[int(r), :]
            # numpy's default sort, exactly as NeuroX calls it: tied neurons then
            # come out in the same order as NeuroX's on the same machine (that
            # order is unspecified and differs between CPUs, e.g. with AVX-512).
            idx = np.argsort(row)
            if descending:
                idx = idx[::-1]
            self.order[name] = idx
            self.cum[name] = np.cumsum(row[idx])
            self.total[name] = np.sum(row)  # pairwise sum, same as NeuroX

    def select(self, name, percentage: float) -> np.ndarray:
        cum = self.cum[name]
        reached = cum >= self.total[name] * percentage
        count = int(np.argmax(reached)) + 1 if reached.any() else cum.shape[0]
        return np.ascontiguousarray(self.order[name][:count])

    def select_all(self, percentage: float):
        per_class = {name: self.select(name, percentage) for name in self.rows}
        return _union(per_class), per_class


def _union(per_class: Mapping) -> np.ndarray:
    arrays = [np.asarray(v, dtype=np.int64) for v in per_class.values()]
    if not arrays:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(arrays))


def get_top_neurons(probe: Any, percentage: float, class_to_idx: Mapping):
    """Neurons holding `percentage` of each class's absolute weight mass.

    Per class: the fewest neurons, by descending |w|, whose cumulative |w|
    reaches `percentage` (0..1) of the class total.  Focused properties need
    few neurons; distributed ones need many (Dalvi et al. 2019).

    Returns:
      (union of all classes' top neurons as a sorted int array,
       {class name: int array of its top neurons, most important first}).
    """
    weights = check_weights(probe)
    _check_fraction(percentage, "percentage")
    rows = _class_rows(weights, class_to_idx)
    return _MassSelector(weights, rows, descending=True).select_all(percentage)


def get_top_neurons_hard_threshold(probe: Any, fraction: float, class_to_idx: Mapping):
    """Neurons whose |w| exceeds the class's max |w| divided by `fraction`.

    NeuroX semantics: ``|w| > max|w| / fraction`` (strict), so e.g.
    fraction=2 keeps neurons above half the largest weight, and fraction <= 1
    selects nothing.

    Returns:
      (sorted union int array, {class name: ascending int array}).
    """
    weights = check_weights(probe)
    _check_fraction(fraction, "fraction")
    rows = _class_rows(weights, class_to_idx)
    per_class = {}
    for name, r in rows.items():
        row = weights[int(r), :]
        per_class[name] = np.where(row > np.max(row) / fraction)[0]
    return _union(per_class), per_class


def get_bottom_neurons(probe: Any, percentage: float, class_to_idx: Mapping):
    """Mirror of `get_top_neurons`: fewest *lowest*-|w| neurons reaching mass.

    Returns:
      (sorted union int array, {class name: int array, least important first}).
    """
    weights = check_weights(probe)
    _check_fraction(percentage, "percentage")
    rows = _class_rows(weights, class_to_idx)
    return _MassSelector(weights, rows, descending=False).select_all(percentage)


def get_random_neurons(probe: Any, probability: float, random_state: Any = None) -> np.ndarray:
    """Each neuron kept independently with `probability` (a random baseline).

    Draws one uniform number per neuron and keeps those ``<= probability``,
    as NeuroX does.  `random_state` (int seed or np.random.Generator) makes it
    reproducible; None uses numpy's global RNG (bit-identical to NeuroX after
    the same `np.random.seed`).
    """
    weights = check_weights(probe)
    _check_fraction(probability, "probability")
    num_neurons = weights.shape[1]
    if random_state is None:
        mask = np.random.random((num_neurons,))
    else:
        mask = np.random.default_rng(random_state).random(num_neurons)
    return np.where(mask <= probability)[0]


def _accumulate(selections) -> tuple[list, list]:
    """Appends each selection's not-yet-seen neurons; cutoff after each."""
    seen = set()
    ordering = []
    cutoffs = []
    for sel in selections:
        new = sorted(int(n) for n in sel if int(n) not in seen)
        ordering.extend(new)
        seen.update(new)
        cutoffs.append(len(ordering))
    return ordering, cutoffs


def _orderings_by_percentage(probe, class_to_idx, search_stride):
    weights = check_weights(probe)
    if int(search_stride) < 1:
        raise ValueError(f"search_stride must be >= 1, got {search_stride}.")
    rows = _class_rows(weights, class_to_idx)
    selector = _MassSelector(weights, rows, descending=True)
    unions = [selector.select_all(p / search_stride)[0] for p in range(int(search_stride) + 1)]
    return weights, unions


def get_neuron_ordering(probe: Any, class_to_idx: Mapping, search_stride: int = 100):
    """Global neuron ranking by increasing share of weight mass.

    Top neurons are computed at percentages 0, 1/search_stride, ..., 1 of the
    weight mass; each step appends the neurons it adds.  Within one step the
    order carries no information (we sort by index), so `cutoffs` - the
    ordering length after each step - marks the boundaries.

    Returns:
      (ordering: list of neuron indices, most important first,
       cutoffs: list of search_stride + 1 ints).
    """
    _, unions = _orderings_by_percentage(probe, class_to_idx, search_stride)
    return _accumulate(unions)


def get_neuron_ordering_granular(
    probe: Any, class_to_idx: Mapping, granularity: int = 50, search_stride: int = 100
):
    """Like `get_neuron_ordering`, but in chunks of ~`granularity` neurons.

    For each boundary i = 0, granularity, 2*granularity, ... <= num_neurons,
    take the first percentage step whose union has at least i neurons and
    append its new neurons (a cutoff is recorded only when something was
    added).

    Returns:
      (ordering list, cutoffs list).
    """
    if int(granularity) < 1:
        raise ValueError(f"granularity must be >= 1, got {granularity}.")
    weights, unions = _orderings_by_percentage(probe, class_to_idx, search_stride)
    num_neurons = weights.shape[1]
    sliding_idx = 0
    seen = set()
    ordering, cutoffs = [], []
    for i in range(0, num_neurons + 1, int(granularity)):
        while len(unions[sliding_idx]) < i and sliding_idx + 1 < len(unions):
            sliding_idx += 1
        new = sorted(int(n) for n in unions[sliding_idx] if int(n) not in seen)
        if new:
            ordering.extend(new)
            seen.update(new)
            cutoffs.append(len(ordering))
    return ordering, cutoffs


def get_fixed_number_of_bottom_neurons(probe: Any, num_bottom_neurons: int, class_to_idx: Mapping):
    """The last `num_bottom_neurons` of `get_neuron_ordering` (default stride).

    Returns:
      list of neuron indices (least important last, as in the ordering).
    """
    if int(num_bottom_neurons) < 0:
        raise ValueError(f"num_bottom_neurons must be >= 0, got {num_bottom_neurons}.")
    ordering, _ = get_neuron_ordering(probe, class_to_idx)
    if int(num_bottom_neurons) == 0:
        return []
    return ordering[-int(num_bottom_neurons) :]
