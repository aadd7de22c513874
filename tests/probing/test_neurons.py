"""Neuron selection: hand-computed cases and loop reference implementations.

The references below are deliberately naive transcriptions of the published
selection rules (Dalvi et al. 2019 / NeuroX): Python loops, Python floats,
explicit tie rules.  Nothing here calls the code under test to get expected
values.
"""

import numpy as np
import pytest
import torch

from lit_plugins.probing import LinearProbe
from lit_plugins.probing import neurons as N


# ----------------------------------------------------------------- references
def ref_select(row, percentage, descending):
    """Shortest prefix (by |w|) whose running sum reaches percentage * total.

    Ties (absent from the random weights used here; NeuroX's own tie order is
    checked in test_neurox_parity.py): higher index first when descending.
    """
    w = [abs(float(v)) for v in row]
    idx = list(range(len(w)))
    if descending:
        idx.sort(key=lambda j: (-w[j], -j))
    else:
        idx.sort(key=lambda j: (w[j], j))
    total = sum(w)
    chosen, acc = [], 0.0
    for j in idx:
        chosen.append(j)
        acc += w[j]
        if acc >= total * percentage:
            break
    return chosen


def ref_top(weights, percentage, class_to_idx, descending=True):
    per = {c: ref_select(weights[r], percentage, descending) for c, r in class_to_idx.items()}
    union = sorted({j for v in per.values() for j in v})
    return union, per


def ref_ordering(weights, class_to_idx, stride):
    seen, ordering, cutoffs = set(), [], []
    for p in range(stride + 1):
        union, _ = ref_top(weights, p / stride, class_to_idx)
        for j in union:  # union is sorted -> new neurons in index order
            if j not in seen:
                seen.add(j)
                ordering.append(j)
        cutoffs.append(len(ordering))
    return ordering, cutoffs


def ref_granular(weights, class_to_idx, granularity, stride):
    unions = [ref_top(weights, p / stride, class_to_idx)[0] for p in range(stride + 1)]
    seen, ordering, cutoffs = set(), [], []
    k = 0
    for i in range(0, weights.shape[1] + 1, granularity):
        while len(unions[k]) < i and k + 1 < len(unions):
            k += 1
        new = [j for j in unions[k] if j not in seen]
        if new:
            ordering += new
            seen.update(new)
            cutoffs.append(len(ordering))
    return ordering, cutoffs


def _as_lists(result):
    union, per = result
    return list(map(int, union)), {c: list(map(int, v)) for c, v in per.items()}


# --------------------------------------------------------------- hand cases
# Class "A": |w| = [4, 1, 3, 2] (total 10); class "B": |w| = [0, 5, 5, 0]
# (neurons 1 and 2 tie).
HAND = np.array([[4.0, -1.0, 3.0, 2.0], [0.0, 5.0, -5.0, 0.0]])
C2I = {"A": 0, "B": 1}


@pytest.mark.parametrize(
    "percentage, exp_a, exp_b",
    [
        (0.0, [0], [2]),  # p = 0 still keeps the single top neuron
        (0.5, [0, 2], [2]),  # A: 4+3 = 7 >= 5; B: 5 >= 5 (tie: higher idx)
        (0.7, [0, 2], [2, 1]),  # A: 7 >= 7 (inclusive); B: 5 < 7 -> 10
        (0.75, [0, 2, 3], [2, 1]),
        (1.0, [0, 2, 3, 1], [2, 1]),  # B reaches 10 before the zero weights
    ],
)
def test_top_neurons_hand(percentage, exp_a, exp_b):
    union, per = _as_lists(N.get_top_neurons(HAND, percentage, C2I))
    assert per == {"A": exp_a, "B": exp_b}
    assert union == sorted(set(exp_a) | set(exp_b))


def test_bottom_neurons_hand():
    # A ascending: 1(1), 3(2), 2(3), 0(4) -> cum 1, 3, ...; 30% of 10 = 3.
    # B ascending (ties lower index first): 0(0), 3(0), 1(5) -> cum 0, 0, 5.
    union, per = _as_lists(N.get_bottom_neurons(HAND, 0.3, C2I))
    assert per == {"A": [1, 3], "B": [0, 3, 1]}
    assert union == [0, 1, 3]


def test_hard_threshold_hand():
    # NeuroX keeps |w| > max / fraction: A: > 4/2 = 2 -> {0, 2};
    # B: > 5/2 -> {1, 2}.
    union, per = _as_lists(N.get_top_neurons_hard_threshold(HAND, 2, C2I))
    assert per == {"A": [0, 2], "B": [1, 2]}
    assert union == [0, 1, 2]
    # fraction 1: strict '>' against the max itself selects nothing.
    _, per = _as_lists(N.get_top_neurons_hard_threshold(HAND, 1, C2I))
    assert per == {"A": [], "B": []}


def test_neuron_ordering_hand():
    # stride 4 -> p in {0, .25, .5, .75, 1} (exact in binary):
    #   p=0, .25, .5: A {0} / {0} / {0, 2}, B {2} -> union {0, 2}
    #   p=.75: A {0, 2, 3}, B {2, 1} -> adds 1, 3;  p=1: nothing new.
    ordering, cutoffs = N.get_neuron_ordering(HAND, C2I, search_stride=4)
    assert ordering == [0, 2, 1, 3]
    assert cutoffs == [2, 2, 2, 4, 4]
    assert N.get_fixed_number_of_bottom_neurons(HAND, 1, C2I) == [3]
    assert N.get_fixed_number_of_bottom_neurons(HAND, 0, C2I) == []


def test_granular_hand():
    # granularity 2 over 4 neurons: boundaries 0, 2, 4.  i=0 -> p=0 union
    # {0, 2}; i=2 -> same (no cutoff); i=4 -> first union with 4 neurons.
    ordering, cutoffs = N.get_neuron_ordering_granular(HAND, C2I, granularity=2, search_stride=4)
    assert ordering == [0, 2, 1, 3]
    assert cutoffs == [2, 4]


def test_accepts_probe_module_and_tensor():
    probe = torch.nn.Linear(4, 2)
    with torch.no_grad():
        probe.weight.copy_(torch.tensor(HAND))
    expected = _as_lists(N.get_top_neurons(HAND, 0.5, C2I))
    assert _as_lists(N.get_top_neurons(probe, 0.5, C2I)) == expected
    assert _as_lists(N.get_top_neurons(torch.tensor(HAND), 0.5, C2I)) == expected


def test_accepts_fitted_linear_probe():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6))
    y = (X[:, 1] > 0).astype(int)
    probe = LinearProbe().fit(X, y)
    a = _as_lists(N.get_top_neurons(probe, 0.3, probe.class_to_idx_))
    b = _as_lists(N.get_top_neurons(probe.weight_, 0.3, {0: 0, 1: 1}))
    assert a == b


# ---------------------------------------------------- random vs references
@pytest.fixture(params=[0, 1, 2])
def random_weights(request):
    rng = np.random.default_rng(request.param)
    w = rng.normal(size=(5, 120)) * rng.exponential(size=(1, 120))
    names = ["NN", "VB", "JJ", "DT", "IN"]
    rows = rng.permutation(5)
    return w, {n: int(r) for n, r in zip(names, rows)}


def test_top_and_bottom_match_reference(random_weights):
    w, c2i = random_weights
    for p in [0.0, 0.013, 0.1, 0.37, 0.5, 0.81, 0.99]:
        assert _as_lists(N.get_top_neurons(w, p, c2i)) == ref_top(w, p, c2i)
        assert _as_lists(N.get_bottom_neurons(w, p, c2i)) == ref_top(w, p, c2i, descending=False)


def test_hard_threshold_matches_reference(random_weights):
    w, c2i = random_weights
    for frac in [1.5, 2.0, 5.0]:
        exp = {
            c: [j for j in range(w.shape[1]) if abs(w[r, j]) > max(abs(w[r])) / frac]
            for c, r in c2i.items()
        }
        union, per = _as_lists(N.get_top_neurons_hard_threshold(w, frac, c2i))
        assert per == exp
        assert union == sorted({j for v in exp.values() for j in v})


def test_ordering_matches_reference(random_weights):
    w, c2i = random_weights
    for stride in [10, 100]:
        ordering, cutoffs = N.get_neuron_ordering(w, c2i, search_stride=stride)
        ref_o, ref_c = ref_ordering(w, c2i, stride)
        assert (ordering, cutoffs) == (ref_o, ref_c)
        assert sorted(ordering) == list(range(w.shape[1]))  # no zero weights
    assert N.get_fixed_number_of_bottom_neurons(w, 7, c2i) == ref_ordering(w, c2i, 100)[0][-7:]


def test_granular_matches_reference(random_weights):
    w, c2i = random_weights
    for gran, stride in [(50, 100), (7, 20), (1, 10)]:
        got = N.get_neuron_ordering_granular(w, c2i, granularity=gran, search_stride=stride)
        assert got == ref_granular(w, c2i, gran, stride)


def test_float32_matches_neurox_literal():
    """float32 weights: compare with a literal numpy transcription of NeuroX."""
    rng = np.random.default_rng(7)
    w = rng.normal(size=(3, 300)).astype(np.float32)
    c2i = {"a": 0, "b": 1, "c": 2}
    for p in [0.0, 0.2, 0.55, 0.9, 1.0]:
        exp = {}
        for c in c2i:
            row = np.abs(w[c2i[c]])
            total = np.sum(row)
            order = np.argsort(row)[::-1]
            hit = np.where(np.cumsum(row[order]) >= total * p)[0]
            exp[c] = order[: hit[0] + 1] if hit.size else order
        _, per = N.get_top_neurons(w, p, c2i)
        for c in c2i:
            np.testing.assert_array_equal(per[c], exp[c])


def test_random_neurons():
    w = np.ones((2, 500))
    np.random.seed(123)
    expected = np.where(np.random.random(500) <= 0.3)[0]
    np.random.seed(123)
    np.testing.assert_array_equal(N.get_random_neurons(w, 0.3), expected)
    a = N.get_random_neurons(w, 0.3, random_state=5)
    b = N.get_random_neurons(w, 0.3, random_state=5)
    np.testing.assert_array_equal(a, b)
    assert 100 < a.size < 200
    assert N.get_random_neurons(w, 1.0, random_state=1).size == 500


def test_zero_weight_neurons_unranked_like_neurox():
    w = np.array([[3.0, 0.0, 1.0, 0.0]])
    ordering, cutoffs = N.get_neuron_ordering(w, {"x": 0}, search_stride=4)
    # 3/4 of the mass needs only neuron 0; all of it neurons 0 and 2.
    assert ordering == [0, 2]
    assert cutoffs == [1, 1, 1, 1, 2]
    # Granular: NeuroX would raise IndexError here; we stop at 100%.
    assert N.get_neuron_ordering_granular(w, {"x": 0}, 2, 4) == ([0, 2], [1, 2])


def test_bad_inputs():
    with pytest.raises(ValueError, match="2-D"):
        N.get_top_neurons(np.ones(4), 0.5, {"a": 0})
    with pytest.raises(ValueError, match="outside"):
        N.get_top_neurons(HAND, 0.5, {"a": 5})
    with pytest.raises(ValueError, match="NaN"):
        N.get_top_neurons(np.array([[np.nan, 1.0]]), 0.5, {"a": 0})
    with pytest.raises(ValueError, match="search_stride"):
        N.get_neuron_ordering(HAND, C2I, search_stride=0)
