"""Parity of our NeuroX-named neuron selection with NeuroX 1.0.9 itself.

Each test runs a `lit_plugins.probing` function and its namesake in
`neurox.interpretation.linear_probe` on the same float32 weight matrix
(NeuroX gets a torch `LinearProbe` holding it, ours the numpy array) and
compares: per-class top/bottom neurons and their unions, hard-threshold
selections, random neurons (same global numpy seed), global orderings with
their cut-offs, granular orderings and fixed numbers of bottom neurons.
NeuroX is installed with --no-deps by ./run (its old pins cannot install).
"""

import numpy as np
import pytest
import torch
from neurox.interpretation import linear_probe as nx

from lit_plugins import probing as ours

SHAPES = [(2, 50), (5, 384), (12, 768)]
CASES = [(seed, shape) for seed in (0, 1, 2) for shape in SHAPES]
CASE_IDS = [f"s{seed}-{c}x{h}" for seed, (c, h) in CASES]
PERCENTAGES = [0.0, 0.05, 0.3, 0.5, 0.9, 1.0]
MASS_FNS = ["get_top_neurons", "get_bottom_neurons"]


# -------------------------------------------------------------------- helpers
def random_weights(seed, shape):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def tie_weights(seed=0, shape=(4, 200)):
    """Small integer set: every |w| value is shared by many neurons."""
    rng = np.random.default_rng(seed)
    return rng.choice([-2, -1, 0, 1, 2, 3], size=shape).astype(np.float32)


def sparse_negative_weights(seed=0, shape=(5, 384)):
    """All weights <= 0 and ~70% exactly zero (some neurons zero everywhere)."""
    rng = np.random.default_rng(seed)
    w = -np.abs(rng.normal(size=shape))
    w[rng.random(shape) < 0.7] = 0.0
    return w.astype(np.float32)


def class_names(num_classes):
    """String class names, mapped to rows in reverse order."""
    return {f"tag_{i}": num_classes - 1 - i for i in range(num_classes)}


def neurox_probe(weights):
    probe = nx.LinearProbe(weights.shape[1], weights.shape[0])
    with torch.no_grad():
        probe.linear.weight.copy_(torch.from_numpy(weights))
    # NeuroX reads the first parameter: make sure it is exactly our matrix.
    first = next(iter(probe.parameters())).detach().numpy()
    np.testing.assert_array_equal(first, weights)
    return probe


def assert_same_union(theirs, mine):
    # NeuroX returns np.array(list(a Python set)), so its order is arbitrary;
    # the module docstring ("Sets:") documents that ours is the same set,
    # sorted ascending.  Compare contents sorted and check ours is sorted.
    mine = np.asarray(mine)
    np.testing.assert_array_equal(mine, np.unique(mine))
    theirs = np.sort(np.asarray(theirs).astype(np.int64))
    np.testing.assert_array_equal(theirs, mine)


def assert_same_per_class(theirs, mine):
    assert list(theirs) == list(mine)
    for name in theirs:
        np.testing.assert_array_equal(
            np.asarray(theirs[name]), np.asarray(mine[name]), err_msg=f"class {name!r}"
        )


def chunks(ordering, cutoffs):
    starts = [0, *list(cutoffs[:-1])]
    return [[int(n) for n in ordering[a:b]] for a, b in zip(starts, cutoffs)]


def assert_same_ordering(theirs, mine):
    (t_order, t_cut), (m_order, m_cut) = theirs, mine
    assert list(t_cut) == list(m_cut)
    assert len(t_order) == len(m_order)
    # get_neuron_ordering's docstring: within one step the order carries no
    # information (NeuroX appends a Python set; we sort by index).  So each
    # chunk between cut-offs is compared sorted.
    m_chunks = chunks(m_order, m_cut)
    assert m_chunks == [sorted(c) for c in m_chunks]
    assert [sorted(c) for c in chunks(t_order, t_cut)] == m_chunks


@pytest.fixture
def restore_global_rng():
    state = np.random.get_state()
    yield
    np.random.set_state(state)


# ------------------------------------------------------ random float weights
@pytest.mark.parametrize("percentage", PERCENTAGES)
@pytest.mark.parametrize("fn", MASS_FNS)
@pytest.mark.parametrize("seed,shape", CASES, ids=CASE_IDS)
def test_mass_selection(seed, shape, fn, percentage):
    w = random_weights(seed, shape)
    c2i = class_names(shape[0])
    t_union, t_per = getattr(nx, fn)(neurox_probe(w), percentage, c2i)
    m_union, m_per = getattr(ours, fn)(w, percentage, c2i)
    assert_same_per_class(t_per, m_per)
    assert_same_union(t_union, m_union)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 1.25, 2.0, 10.0])
@pytest.mark.parametrize("seed,shape", CASES, ids=CASE_IDS)
def test_hard_threshold(seed, shape, fraction):
    w = random_weights(seed, shape)
    c2i = class_names(shape[0])
    t_union, t_per = nx.get_top_neurons_hard_threshold(neurox_probe(w), fraction, c2i)
    m_union, m_per = ours.get_top_neurons_hard_threshold(w, fraction, c2i)
    assert_same_per_class(t_per, m_per)
    assert_same_union(t_union, m_union)


@pytest.mark.parametrize("probability", [0.0, 0.05, 0.3, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("seed,shape", CASES, ids=CASE_IDS)
def test_random_neurons(seed, shape, probability, restore_global_rng):
    w = random_weights(seed, shape)
    np.random.seed(seed + 100)
    theirs = nx.get_random_neurons(neurox_probe(w), probability)
    np.random.seed(seed + 100)
    mine = ours.get_random_neurons(w, probability)
    np.testing.assert_array_equal(np.asarray(theirs), np.asarray(mine))


@pytest.mark.parametrize("search_stride", [20, 100])
@pytest.mark.parametrize("seed,shape", CASES, ids=CASE_IDS)
def test_neuron_ordering(seed, shape, search_stride):
    w = random_weights(seed, shape)
    c2i = class_names(shape[0])
    theirs = nx.get_neuron_ordering(neurox_probe(w), c2i, search_stride)
    mine = ours.get_neuron_ordering(w, c2i, search_stride)
    assert_same_ordering(theirs, mine)


@pytest.mark.parametrize("granularity,search_stride", [(10, 20), (10, 100), (50, 20), (50, 100)])
@pytest.mark.parametrize("seed,shape", CASES, ids=CASE_IDS)
def test_neuron_ordering_granular(seed, shape, granularity, search_stride):
    w = random_weights(seed, shape)
    c2i = class_names(shape[0])
    theirs = nx.get_neuron_ordering_granular(neurox_probe(w), c2i, granularity, search_stride)
    mine = ours.get_neuron_ordering_granular(w, c2i, granularity, search_stride)
    assert_same_ordering(theirs, mine)


@pytest.mark.parametrize("num_bottom_neurons", [7, 30])
@pytest.mark.parametrize("seed,shape", CASES, ids=CASE_IDS)
def test_fixed_bottom_agrees_outside_boundary_chunk(seed, shape, num_bottom_neurons):
    """Where the test above fails, the difference is confined to one chunk.

    If `num_bottom_neurons` cuts through an ordering chunk, both sides take the
    same number of neurons from it, but which ones follows each side's
    within-chunk order (NeuroX: set iteration; ours: ascending index).
    """
    w = random_weights(seed, shape)
    c2i = class_names(shape[0])
    n = num_bottom_neurons
    order, cutoffs = ours.get_neuron_ordering(w, c2i)
    start = len(order) - n
    lo = max([0] + [c for c in cutoffs if c <= start])
    hi = min(c for c in cutoffs if c > start)
    boundary = set(order[lo:hi])
    theirs = nx.get_fixed_number_of_bottom_neurons(neurox_probe(w), n, c2i)
    theirs = {int(i) for i in theirs}
    mine = set(ours.get_fixed_number_of_bottom_neurons(w, n, c2i))
    assert theirs - boundary == mine - boundary
    assert len(theirs & boundary) == len(mine & boundary)


# ------------------------------------------------------------ tied weights
TIES = tie_weights()
TIES_C2I = class_names(TIES.shape[0])


@pytest.mark.parametrize("percentage", [0.05, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("fn", MASS_FNS)
def test_ties_mass_selection(fn, percentage):
    t_union, t_per = getattr(nx, fn)(neurox_probe(TIES), percentage, TIES_C2I)
    m_union, m_per = getattr(ours, fn)(TIES, percentage, TIES_C2I)
    assert_same_per_class(t_per, m_per)
    assert_same_union(t_union, m_union)


@pytest.mark.parametrize("percentage", [0.05, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("fn", MASS_FNS)
def test_ties_differ_only_in_tie_breaking(fn, percentage):
    """Same count and same |w| at every rank, whichever tied neuron is used."""
    absw = np.abs(TIES)
    _, t_per = getattr(nx, fn)(neurox_probe(TIES), percentage, TIES_C2I)
    _, m_per = getattr(ours, fn)(TIES, percentage, TIES_C2I)
    for name, row in TIES_C2I.items():
        np.testing.assert_array_equal(absw[row, t_per[name]], absw[row, m_per[name]])


def test_small_tie_order():
    """Tied neurons come in numpy's default-sort order, as in NeuroX (that
    order is CPU-dependent: [3, 2, 1, 0] for argsort([2, 2, 1, 1]) here)."""
    w = np.array([[2.0, 2.0, 1.0, 1.0]], dtype=np.float32)
    c2i = {"a": 0}
    for fn in MASS_FNS:
        for percentage in [0.0, 0.5]:
            _, t_per = getattr(nx, fn)(neurox_probe(w), percentage, c2i)
            _, m_per = getattr(ours, fn)(w, percentage, c2i)
            np.testing.assert_array_equal(t_per["a"], m_per["a"], err_msg=f"{fn}({percentage})")


@pytest.mark.parametrize("search_stride", [20, 100])
def test_ties_neuron_ordering(search_stride):
    theirs = nx.get_neuron_ordering(neurox_probe(TIES), TIES_C2I, search_stride)
    mine = ours.get_neuron_ordering(TIES, TIES_C2I, search_stride)
    assert_same_ordering(theirs, mine)


# ------------------------------------------- negative, zero-heavy weights
SPARSE = sparse_negative_weights()
SPARSE_C2I = class_names(SPARSE.shape[0])


@pytest.mark.parametrize("percentage", [0.05, 0.3, 0.5, 0.9])
@pytest.mark.parametrize("fn", MASS_FNS)
def test_sparse_mass_selection(fn, percentage):
    t_union, t_per = getattr(nx, fn)(neurox_probe(SPARSE), percentage, SPARSE_C2I)
    m_union, m_per = getattr(ours, fn)(SPARSE, percentage, SPARSE_C2I)
    assert_same_per_class(t_per, m_per)
    assert_same_union(t_union, m_union)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 1.5, 2.0])
@pytest.mark.parametrize(
    "weights, c2i", [(TIES, TIES_C2I), (SPARSE, SPARSE_C2I)], ids=["ties", "sparse"]
)
def test_hard_threshold_on_ties_and_sparse_weights(weights, c2i, fraction):
    t_union, t_per = nx.get_top_neurons_hard_threshold(neurox_probe(weights), fraction, c2i)
    m_union, m_per = ours.get_top_neurons_hard_threshold(weights, fraction, c2i)
    assert_same_per_class(t_per, m_per)
    assert_same_union(t_union, m_union)


@pytest.mark.parametrize("granularity,search_stride", [(10, 20), (50, 100)])
def test_sparse_orderings(granularity, search_stride):
    probe = neurox_probe(SPARSE)
    assert_same_ordering(
        nx.get_neuron_ordering(probe, SPARSE_C2I, search_stride),
        ours.get_neuron_ordering(SPARSE, SPARSE_C2I, search_stride),
    )
    assert_same_ordering(
        nx.get_neuron_ordering_granular(probe, SPARSE_C2I, granularity, search_stride),
        ours.get_neuron_ordering_granular(SPARSE, SPARSE_C2I, granularity, search_stride),
    )


@pytest.mark.parametrize("num_bottom_neurons", [7, 30])
def test_sparse_fixed_bottom(num_bottom_neurons):
    theirs = nx.get_fixed_number_of_bottom_neurons(
        neurox_probe(SPARSE), num_bottom_neurons, SPARSE_C2I
    )
    mine = ours.get_fixed_number_of_bottom_neurons(SPARSE, num_bottom_neurons, SPARSE_C2I)
    assert sorted(int(n) for n in theirs) == sorted(mine)


def test_sparse_random_neurons(restore_global_rng):
    np.random.seed(5)
    theirs = nx.get_random_neurons(neurox_probe(SPARSE), 0.3)
    np.random.seed(5)
    np.testing.assert_array_equal(theirs, ours.get_random_neurons(SPARSE, 0.3))


# ------------------------------------------ documented deliberate differences
@pytest.mark.parametrize("seed,shape", CASES[:3], ids=CASE_IDS[:3])
def test_zero_bottom_neurons_documented_difference(seed, shape):
    """NeuroX's ``ordering[-0:]`` is the whole ordering; ours is empty."""
    w = random_weights(seed, shape)
    c2i = class_names(shape[0])
    probe = neurox_probe(w)
    t_order, _ = nx.get_neuron_ordering(probe, c2i)
    theirs = nx.get_fixed_number_of_bottom_neurons(probe, 0, c2i)
    assert list(theirs) == list(t_order)
    assert ours.get_fixed_number_of_bottom_neurons(w, 0, c2i) == []


def test_granular_index_error_documented_difference():
    """Zero-weight neurons never selected: NeuroX overruns its steps."""
    w = np.array([[3.0, 0.0, 1.0, 0.0]], dtype=np.float32)
    c2i = {"x": 0}
    with pytest.raises(IndexError):
        nx.get_neuron_ordering_granular(neurox_probe(w), c2i, 2, 4)
    mine = ours.get_neuron_ordering_granular(w, c2i, 2, 4)
    assert mine == ([0, 2], [1, 2])
    assert ours.get_neuron_ordering(w, c2i, 4) == ([0, 2], [1, 1, 1, 1, 2])
