"""The bootstrap over sentences of lit_plugins.txray (intervals, ranking rule)."""

import numpy as np
import pytest

from lit_plugins.txray import NeuronFeatureAggregator, SyntheticTXRay, bootstrap, compute_shift


def _sentences(n_sent=120, H=16, V=40, seed=0):
    """Random sentences: (acts_a, acts_b, feature ids) per sentence."""
    gen = SyntheticTXRay(num_neurons=H, vocab_size=V, seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_sent):
        b = gen.batch(int(rng.integers(3, 12)), rng)
        out.append((b.acts_a, b.acts_b, b.feature_ids))
    return out


def _aggregate(sentences, mode="max1", record=True, multiplicity=None, H=16, min_units=None, **kw):
    a = NeuronFeatureAggregator(H, mode=mode, record_units=record, **kw)
    b = NeuronFeatureAggregator(H, mode=mode, record_units=record, **kw)
    if min_units is not None:
        a.units.min_units = b.units.min_units = min_units
    for s, (xa, xb, ids) in enumerate(sentences):
        units = np.full(ids.shape[0], s) if record else None
        for _ in range(1 if multiplicity is None else int(multiplicity[s])):
            a.update(xa, ids, units=units)
            b.update(xb, ids, units=units)
    return a, b


@pytest.mark.parametrize("mode", ["max1", "all"])
@pytest.mark.parametrize("weighting, normalize", [("mass", False), ("mean", False), ("mass", True)])
def test_replicates_equal_a_slow_resampling_with_compute_shift(mode, weighting, normalize):
    """Independent check: materialise each resampled dataset (every sentence fed
    as often as it was drawn) and recompute with compute_shift; a neuron with
    no mass in one model there counts 0."""
    sentences = _sentences(n_sent=40)
    agg_a, agg_b = _aggregate(sentences, mode)
    B, seed = 6, 3
    result = compute_shift(
        agg_a, agg_b, replicates=B, seed=seed, weighting=weighting, normalize_by_length=normalize
    )
    rng = np.random.default_rng(seed)
    N = len(sentences)
    for b in range(B):
        w = rng.multinomial(N, np.full(N, 1.0 / N))
        ra, rb = _aggregate(sentences, mode, record=False, multiplicity=w)
        want = np.zeros(result.num_shared)
        if ra.num_credited and rb.num_credited:
            rep = compute_shift(ra, rb, weighting=weighting, normalize_by_length=normalize)
            pos = np.searchsorted(result.shared, rep.shared)
            inside = pos < result.num_shared
            inside[inside] &= result.shared[pos[inside]] == rep.shared[inside]
            want[pos[inside]] = rep.distance[inside]
        np.testing.assert_allclose(result.replicate_distance[b], want, atol=1e-12)


def test_off_is_the_plain_result_and_on_keeps_the_distances():
    sentences = _sentences()
    plain = compute_shift(*_aggregate(sentences, record=False))
    boot = compute_shift(*_aggregate(sentences), replicates=50, seed=1)
    np.testing.assert_array_equal(boot.distance, plain.distance)
    np.testing.assert_array_equal(boot.hellinger_length, plain.hellinger_length)
    assert not plain.has_bootstrap and plain.replicate_distance is None
    lo, hi = plain.interval()
    assert np.isnan(lo).all() and np.isnan(hi).all()
    # Without a bootstrap: the plain ranking and records, no new columns.
    ranked = plain.rank_shifts(5)
    order = np.lexsort((plain.shared, -plain.hellinger_length, -plain.distance))
    assert [s.neuron for s in ranked.most] == plain.shared[order[:5]].tolist()
    assert all(np.isnan(s.lower) and s.units_a == -1 for s in ranked.most)
    assert "lower" not in plain.to_records()[0]
    assert {"lower", "upper", "units_a", "units_b"} <= set(boot.to_records()[0])


def test_seeded_and_deterministic():
    sentences = _sentences()
    one = compute_shift(*_aggregate(sentences), replicates=40, seed=7)
    two = compute_shift(*_aggregate(sentences), replicates=40, seed=7)
    other = compute_shift(*_aggregate(sentences), replicates=40, seed=8)
    np.testing.assert_array_equal(one.replicate_distance, two.replicate_distance)
    assert not np.array_equal(one.replicate_distance, other.replicate_distance)
    assert one.replicate_distance.shape == (40, one.num_shared)
    assert one.bootstrap_units == len(sentences) and one.bootstrap_unit_size == 1


def test_interval_contains_the_estimate_in_the_typical_case():
    sentences = _sentences(n_sent=300)
    result = compute_shift(*_aggregate(sentences), replicates=200, seed=0)
    lo, hi = result.interval(0.9)
    assert (lo <= hi).all() and (lo >= 0).all() and (hi <= 1).all()
    well_seen = np.minimum(result.units_a, result.units_b) >= 20
    assert well_seen.sum() >= 5
    inside = (lo <= result.distance + 1e-12) & (result.distance <= hi + 1e-12)
    assert inside[well_seen].mean() >= 0.8
    # A wider level gives a wider interval.
    lo99, hi99 = result.interval(0.99)
    assert (lo99 <= lo + 1e-12).all() and (hi99 >= hi - 1e-12).all()
    # The percentile rule, checked by hand on one neuron.
    reps = np.sort(result.replicate_distance[:, 0])
    assert lo[0] == pytest.approx(np.quantile(reps, 0.05))
    assert hi[0] == pytest.approx(np.quantile(reps, 0.95))


def _tied_sentences():
    H, sentences = 4, []
    rng = np.random.default_rng(0)
    for s in range(60):  # neuron 0: features 0/1 in A, 1/2 in B; well supported
        ids = np.array([0, 1, 2])
        xa = np.zeros((3, H))
        xb = np.zeros((3, H))
        xa[0, 0], xa[1, 0] = 1.0 + rng.random(), 1.0 + rng.random()
        xb[1, 0], xb[2, 0] = 1.0 + rng.random(), 1.0 + rng.random()
        sentences.append((xa, xb, ids))
    for neuron, n_sent in ((1, 1), (2, 2), (3, 1)):  # disjoint features: distance 1
        for _ in range(n_sent):
            ids = np.array([10 + neuron, 20 + neuron])
            xa, xb = np.zeros((2, H)), np.zeros((2, H))
            xa[0, neuron], xb[1, neuron] = 1.0, 1.0
            sentences.append((xa, xb, ids))
    return H, sentences


def test_ties_at_one_with_small_support_rank_below_a_well_supported_shift():
    """Neurons 1-3 sit at distance 1.0 from one or two sentences; neuron 0 is
    at ~0.6 from 60 sentences in each model. Plain ranking: the ties first;
    by the lower bound: neuron 0 first."""
    H, sentences = _tied_sentences()
    a, b = _aggregate(sentences, H=H)
    result = compute_shift(a, b, replicates=200, seed=0)
    d = dict(zip(result.shared.tolist(), result.distance.tolist()))
    assert d[1] == d[2] == d[3] == 1.0 and 0.3 < d[0] < 0.9
    plain = compute_shift(*_aggregate(sentences, H=H, record=False))
    assert plain.rank_shifts(4).most[0].neuron != 0
    ranked = result.rank_shifts(4, confidence=0.9).most
    assert ranked[0].neuron == 0
    assert ranked[0].lower > 0.2 and ranked[0].lower <= ranked[0].distance <= ranked[0].upper
    assert all(s.lower == 0.0 and s.upper == 1.0 for s in ranked[1:])
    assert [s.neuron for s in ranked] == [0, 1, 2, 3]  # ties: distance, length, id
    assert [(s.units_a, s.units_b) for s in ranked] == [(60, 60), (1, 1), (2, 2), (1, 1)]
    # least shifted: by the upper bound; the ties have upper bound 1
    assert result.rank_shifts(1).least[0].neuron == 0


def test_units_are_merged_into_blocks_past_the_memory_bound():
    sentences = _sentences(n_sent=256)
    a, b = _aggregate(sentences, unit_max_cells=300, min_units=16)
    result = compute_shift(a, b, replicates=20, seed=0)
    assert result.bootstrap_unit_size > 1
    assert result.bootstrap_units == -(-256 // result.bootstrap_unit_size)
    assert a.units.num_cells <= 300 or a.units.num_units < 2 * 16
    plain = compute_shift(*_aggregate(sentences, record=False))
    np.testing.assert_array_equal(result.distance, plain.distance)
    # Blocks of consecutive sentences: the same as recording block indices.
    size = result.bootstrap_unit_size
    blocks = [(s, (xa, xb, ids)) for s, (xa, xb, ids) in enumerate(sentences)]
    ba = NeuronFeatureAggregator(16, record_units=True)
    bb = NeuronFeatureAggregator(16, record_units=True)
    for s, (xa, xb, ids) in blocks:
        units = np.full(ids.shape[0], s // size)
        ba.update(xa, ids, units=units)
        bb.update(xb, ids, units=units)
    by_block = compute_shift(ba, bb, replicates=20, seed=0)
    np.testing.assert_allclose(result.replicate_distance, by_block.replicate_distance, atol=1e-12)


@pytest.mark.parametrize("value", [-1, 10_001, 2.5, "many", None])
def test_bad_replicates(value):
    a, b = _aggregate(_sentences(n_sent=10))
    with pytest.raises(ValueError, match=r"integer in \[0, 10000\]"):
        compute_shift(a, b, replicates=value)


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1, float("nan"), "high"])
def test_bad_confidence(value):
    a, b = _aggregate(_sentences(n_sent=10))
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        compute_shift(a, b, replicates=5, confidence=value)
    result = compute_shift(a, b, replicates=5)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        result.rank_shifts(3, confidence=value)


def test_bootstrap_needs_recorded_units():
    a, b = _aggregate(_sentences(n_sent=10), record=False)
    with pytest.raises(ValueError, match="record_units=True"):
        compute_shift(a, b, replicates=10)
    rec = NeuronFeatureAggregator(16, record_units=True)
    xa, _, ids = _sentences(n_sent=1)[0]
    with pytest.raises(ValueError, match="pass units="):
        rec.update(xa, ids)
    with pytest.raises(ValueError, match="non-negative integers"):
        rec.update(xa, ids, units=np.full(ids.shape[0], -1))
    with pytest.raises(ValueError, match="units shape"):
        rec.update(xa, ids, units=np.zeros(ids.shape[0] + 1, dtype=int))
    assert bootstrap.check_replicates(0) == 0 and bootstrap.check_confidence("0.5") == 0.5


def test_ranking_ignores_rounding_noise_in_tied_bounds_and_distances():
    """Bounds of 0 vs 1e-16 and distances of 1.0 vs 1 - float32 eps (what
    summing float32 activations in another order gives) are ties: the order
    is the unperturbed one, while a plain sort of the raw values changes."""
    import dataclasses

    H, sentences = _tied_sentences()
    result = compute_shift(*_aggregate(sentences, H=H), replicates=200, seed=0)
    expected = [r["neuron"] for r in result.to_records()]
    assert expected == [0, 1, 2, 3]
    eps32 = float(np.finfo(np.float32).eps)
    reps = result.replicate_distance.copy()
    reps[:, 3] += 1e-16  # neuron 3's lower bound: 0.0 -> 1e-16
    dist = result.distance.copy()
    dist[1] -= eps32  # neuron 1: 1.0 -> 1 - eps32, below its tied peers
    noisy = dataclasses.replace(result, replicate_distance=reps, distance=dist)
    lo, _ = noisy.interval()
    assert lo[3] > 0.0 == lo[1] == lo[2]  # the perturbation reached the sort keys
    raw = np.lexsort((noisy.shared, -noisy.hellinger_length, -noisy.distance, -lo))
    assert noisy.shared[raw].tolist() != expected  # untolerant: rounding decides
    assert [r["neuron"] for r in noisy.to_records()] == expected
    assert [s.neuron for s in noisy.rank_shifts(4).most] == expected
    assert [s.neuron for s in noisy.rank_shifts(4).least] == [
        s.neuron for s in result.rank_shifts(4).least
    ]
    # A real difference (far above the tolerance) still orders.
    dist[1] -= 1e-3
    moved = dataclasses.replace(result, distance=dist)
    assert [r["neuron"] for r in moved.to_records()] == [0, 2, 3, 1]
