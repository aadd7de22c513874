"""Tests for lit_plugins.txray.shift; expected numbers are derived by hand below."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from lit_plugins.txray import (
    NeuronFeatureAggregator,
    SyntheticTXRay,
    compute_shift,
    hellinger,
    hellinger_rows,
    rank_shifts,
)

SQ = math.sqrt


# ----------------------------------------------------------------- hellinger
def test_hellinger_closed_forms():
    # (sqrt .36 - sqrt .64)^2 * 2 = 0.08 ; H = sqrt(0.08) / sqrt(2) = 0.2
    assert hellinger([0.36, 0.64], [0.64, 0.36]) == pytest.approx(0.2, abs=1e-15)
    # squared diffs 0.5 + 0 + 0.5 = 1 -> H = 1/sqrt(2)
    assert hellinger([0.5, 0.5, 0], [0, 0.5, 0.5]) == pytest.approx(1 / SQ(2), abs=1e-15)
    assert hellinger([1, 0, 0], [0, 0.3, 0.7]) == 1.0  # disjoint supports
    assert hellinger([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    # normalize=True: [2, 2] -> [.5, .5]; [1, 3] -> [.25, .75]
    expected = SQ(((SQ(0.5) - 0.5) ** 2 + (SQ(0.5) - SQ(0.75)) ** 2) / 2)
    assert hellinger([2, 2], [1, 3], normalize=True) == pytest.approx(expected, abs=1e-15)


def test_hellinger_random_properties_vs_bhattacharyya():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = rng.integers(1, 30)
        p = rng.random(n) * (rng.random(n) < 0.6)
        q = rng.random(n) * (rng.random(n) < 0.6)
        if p.sum() == 0 or q.sum() == 0:
            continue
        p, q = p / p.sum(), q / q.sum()
        h = hellinger(p, q)
        assert h == pytest.approx(hellinger(q, p), abs=1e-15)  # symmetric
        assert 0.0 <= h <= 1.0
        # closed form via the Bhattacharyya coefficient: H^2 = 1 - sum sqrt(p q)
        bc = sum(math.sqrt(a * b) for a, b in zip(p.tolist(), q.tolist()))
        assert h == pytest.approx(math.sqrt(max(0.0, 1.0 - bc)), abs=1e-7)
        if not ((p > 0) & (q > 0)).any():
            assert h == pytest.approx(1.0, abs=1e-12)


def test_hellinger_rows_dense_sparse_agree():
    P = np.array([[0.36, 0.64, 0], [1, 0, 0]])
    Q = np.array([[0.64, 0.36, 0], [0, 0, 1]])
    np.testing.assert_allclose(hellinger_rows(P, Q), [0.2, 1.0], atol=1e-15)
    np.testing.assert_allclose(
        hellinger_rows(sp.csr_matrix(P), sp.csr_matrix(Q)), [0.2, 1.0], atol=1e-15
    )


@pytest.mark.parametrize(
    "p, q", [([0.5, 0.5], [1.0]), ([-0.1, 1.1], [0.5, 0.5]), ([np.nan, 1], [0.5, 0.5]), ([], [])]
)
def test_hellinger_bad_input(p, q):
    with pytest.raises(ValueError):
        hellinger(p, q)


# --------------------------------------------------------- hand-worked shift
def _hand_pair():
    """Model A (max1, H=2):
         f0 [2,0] -> n0 f0 +2 ; f0 [1,0] -> n0 f0 +1 ; f1 [1,0] -> n0 f1 +1 ; f2 [0,4] -> n1 f2 +4
       A: n0 mass f0=3 (count 2), f1=1 -> P0 = [.75, .25, 0];  n1: f2=4 -> P1 = [0, 0, 1]
    Model B:
         f0 [1,0] -> n0 f0 +1 ; f1 [3,0] -> n0 f1 +3 ; f2 [0,2] -> n1 f2 +2 ; f1 [0,2] -> n1 f1 +2
       B: n0 -> Q0 = [.25, .75, 0];  n1: f1=2, f2=2 -> Q1 = [0, .5, .5]
    """
    a = NeuronFeatureAggregator(2).update(
        np.array([[2.0, 0], [1.0, 0], [1.0, 0], [0, 4.0]]), np.array([0, 0, 1, 2])
    )
    b = NeuronFeatureAggregator(2).update(
        np.array([[1.0, 0], [3.0, 0], [0, 2.0], [0, 2.0]]), np.array([0, 1, 2, 1])
    )
    return a, b


# H(P0,Q0) = (1/sqrt2) sqrt(2 (sqrt.75 - sqrt.25)^2) = sqrt(.75) - .5
H0 = SQ(0.75) - 0.5
# H(P1,Q1) = (1/sqrt2) sqrt(.5 + (1 - sqrt.5)^2) = sqrt(1 - sqrt(2)/2)
H1 = SQ(1 - SQ(2) / 2)


def test_compute_shift_hand_worked():
    a, b = _hand_pair()
    r = compute_shift(a, b, feature_names=["x", "y", "z"], labels=("pre", "fine"))
    np.testing.assert_array_equal(r.shared, [0, 1])
    np.testing.assert_allclose(r.distance, [H0, H1], atol=1e-15)
    np.testing.assert_array_equal(r.hellinger_length, [2, 2])  # {f0,f1}, {f1,f2}
    np.testing.assert_array_equal(r.length_a, [2, 1])
    np.testing.assert_array_equal(r.length_b, [2, 2])
    np.testing.assert_array_equal(r.length_shift, [0, 1])
    np.testing.assert_allclose(r.mass_activation_a, [0.5, 0.5])  # 4 / 8 each
    np.testing.assert_allclose(r.mass_activation_b, [0.5, 0.5])  # 4 / 8 each
    np.testing.assert_array_equal(r.mass_a, [4.0, 4.0])
    ranked = r.rank_shifts(k=2, n_features=2)
    assert [x.neuron for x in ranked.most] == [1, 0]  # H1 ~ .541 > H0 ~ .366
    assert [x.neuron for x in ranked.least] == [0, 1]
    top = ranked.most[0]
    assert [s.name for s in top.top_features_a] == ["z"]
    assert [s.name for s in top.top_features_b] == ["y", "z"]  # tie .5/.5 -> lower id
    assert [s.prob for s in top.top_features_b] == [0.5, 0.5]
    assert [s.mass for s in top.top_features_b] == [2.0, 2.0]
    assert rank_shifts(r, k=1).most[0].neuron == 1
    assert r.distance_of(0) == pytest.approx(H0, abs=1e-15)
    recs = r.to_records()
    assert recs[0]["neuron"] == 1 and recs[0]["length_shift"] == 1
    assert list(r.to_dataframe()["neuron"]) == [1, 0]


def test_normalize_by_length_and_mean_weighting_hand_worked():
    a, b = _hand_pair()
    r = compute_shift(a, b, normalize_by_length=True)
    np.testing.assert_allclose(r.distance, [H0 / 2, H1 / 2], atol=1e-15)
    # original-code "mean" weighting: v(f) = (mass / count) / total
    #  A n0: f0 (3/2)/4 = .375, f1 1/4 = .25 ;  B n0: f0 1/4 = .25, f1 3/4 = .75
    #  n1: all counts are 1 -> identical to mass weighting
    m0 = SQ(((SQ(0.375) - SQ(0.25)) ** 2 + (SQ(0.25) - SQ(0.75)) ** 2) / 2)
    rm = compute_shift(a, b, weighting="mean")
    np.testing.assert_allclose(rm.distance, [m0, H1], atol=1e-15)
    rml = compute_shift(a, b, weighting="mean", normalize_by_length=True)
    np.testing.assert_allclose(rml.distance, [m0 / 2, H1 / 2], atol=1e-15)


def test_different_feature_space_sizes_are_padded():
    a = NeuronFeatureAggregator(2).update(np.array([[1.0, 0]]), np.array([0]))
    b = NeuronFeatureAggregator(2).update(np.array([[1.0, 0], [1.0, 0]]), np.array([0, 5]))
    r = compute_shift(a, b)
    # P = [1, 0..], Q = [.5, 0, 0, 0, 0, .5] -> H^2 = ((1 - sqrt.5)^2 + .5) / 2
    assert r.distance[0] == pytest.approx(SQ(((1 - SQ(0.5)) ** 2 + 0.5) / 2), abs=1e-15)
    assert r.num_features == 6 and r.hellinger_length[0] == 2


# ---------------------------------------------------------- planted shifts
@pytest.mark.parametrize("storage", ["dense", "sparse"])
def test_planted_shifts_synthetic(storage):
    gen = SyntheticTXRay(num_neurons=96, vocab_size=800, num_swaps=2, num_specialise=2, seed=3)
    a = NeuronFeatureAggregator(96, storage=storage)
    b = NeuronFeatureAggregator(96, storage=storage)
    for batch in gen.batches(12000, batch_tokens=500):
        a.update(batch.acts_a, batch.feature_ids)
        b.update(batch.acts_b, batch.feature_ids)
    r = compute_shift(a, b, feature_names=gen.feature_names)
    swapped = {n for pair in gen.swaps for n in pair}
    ranked = r.rank_shifts(k=4)
    # neurons whose features were moved to another neuron rank first, disjoint support -> ~1
    assert {x.neuron for x in ranked.most} == swapped
    assert all(x.distance > 0.99 for x in ranked.most)
    # untouched neurons keep their distribution
    untouched = [n for n in gen.untouched if r.active_a[n] and r.active_b[n]]
    assert len(untouched) > 80
    assert max(r.distance_of(n) for n in untouched) < 0.02
    # the top features of a swapped neuron in B are those of its partner in A
    p, q = gen.swaps[0]
    top_p_b = {s.feature for s in next(x for x in ranked.most if x.neuron == p).top_features_b}
    assert top_p_b <= set(np.flatnonzero(gen.owner_a == q).tolist())
    # specialisation pairs: s shrinks, g grows
    for s_, g_ in gen.specialise:
        i_s, i_g = np.searchsorted(r.shared, [s_, g_])
        assert r.length_shift[i_s] < 0 < r.length_shift[i_g]


def test_dense_and_sparse_shift_results_equal():
    gen = SyntheticTXRay(num_neurons=64, vocab_size=400, seed=5)
    batch = gen.batch(5000)
    res = []
    for storage in ("dense", "sparse"):
        a = NeuronFeatureAggregator(64, storage=storage, mode="all").update(
            batch.acts_a, batch.feature_ids
        )
        b = NeuronFeatureAggregator(64, storage=storage, mode="all").update(
            batch.acts_b, batch.feature_ids
        )
        res.append(compute_shift(a, b))
    np.testing.assert_array_equal(res[0].shared, res[1].shared)
    np.testing.assert_allclose(res[0].distance, res[1].distance, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(res[0].hellinger_length, res[1].hellinger_length)


# ------------------------------------------------------------- bad inputs
def test_compute_shift_errors():
    a, b = _hand_pair()
    with pytest.raises(ValueError, match="neuron counts differ"):
        compute_shift(a, NeuronFeatureAggregator(3).update(np.ones((1, 3)), [0]))
    with pytest.raises(ValueError, match="empty"):
        compute_shift(a, NeuronFeatureAggregator(2))
    never = NeuronFeatureAggregator(2).update(-np.ones((3, 2)), [0, 1, 2])
    with pytest.raises(ValueError, match="empty"):
        compute_shift(never, b)
    only0 = NeuronFeatureAggregator(2).update(np.array([[1.0, 0]]), [0])
    only1 = NeuronFeatureAggregator(2).update(np.array([[0, 1.0]]), [0])
    with pytest.raises(ValueError, match="no neuron is active in both"):
        compute_shift(only0, only1)
    with pytest.raises(ValueError, match="weighting"):
        compute_shift(a, b, weighting="median")
    with pytest.raises(ValueError):
        compute_shift(a, "b")
    r = compute_shift(a, b)
    with pytest.raises(ValueError):
        r.rank_shifts(k=0)
    with pytest.raises(KeyError):
        compute_shift(only0, a).distance_of(1)


def test_tie_groups_merge_values_within_rounding_noise():
    from lit_plugins.txray import shift

    eps32 = float(np.finfo(np.float32).eps)
    v = np.array([0.5, 7.9e-17, 0.0, 0.5 * (1 + eps32), np.nan, 0.7, 0.5 + 1e-3])
    assert shift.tie_groups(v).tolist() == [1, 0, 0, 1, 4, 3, 2]
    # Chained: a run of close values is one group, an order-free notion.
    assert shift.tie_groups([0.0, 0.6e-7, 1.2e-7, 1.8e-7]).tolist() == [0, 0, 0, 0]
    assert shift.tie_groups([0.0, 1e-3], atol=0, rtol=0).tolist() == [0, 1]
    assert shift.tie_groups([]).tolist() == []
    with pytest.raises(ValueError, match="1-d"):
        shift.tie_groups(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=">= 0"):
        shift.tie_groups([1.0], atol=-1)
