"""Merging aggregations of a corpus's parts gives the one-pass aggregation."""

import itertools

import numpy as np
import pytest

from lit_plugins import txray
from lit_plugins.txray import merge


def _aggregate(acts, tokens, mode):
    vocab = txray.FeatureVocab()
    agg = txray.NeuronFeatureAggregator(acts.shape[1], mode=mode)
    agg.update(acts, np.asarray([vocab.add(t) for t in tokens]))
    return agg, vocab.names


@pytest.mark.parametrize("mode", ["max1", "all"])
def test_merged_parts_equal_one_pass(mode):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    tokens = list(rng.choice(words, size=600))
    acts = rng.normal(size=(600, 16))
    whole, names = _aggregate(acts, tokens, mode)
    cuts = [0, 50, 51, 300, 600]
    parts = [_aggregate(acts[a:b], tokens[a:b], mode) for a, b in itertools.pairwise(cuts)]
    merged, vocab = merge.merge(parts)
    assert vocab.names == names  # the one-pass feature ids
    r1, c1, m1, n1 = whole.to_coo()
    r2, c2, m2, n2 = merged.to_coo()
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(n1, n2)
    np.testing.assert_allclose(m1, m2, rtol=1e-12)
    assert (merged.num_tokens, merged.num_credited) == (whole.num_tokens, whole.num_credited)
    a = txray.compute_shift(whole, whole, feature_names=names)
    b = txray.compute_shift(merged, whole, feature_names=names)
    np.testing.assert_allclose(b.distance, a.distance, atol=1e-12)


def test_parts_of_other_layers_are_refused():
    rng = np.random.default_rng(1)
    a = _aggregate(rng.normal(size=(10, 4)), ["x"] * 10, "max1")
    b = _aggregate(rng.normal(size=(10, 5)), ["x"] * 10, "max1")
    with pytest.raises(ValueError, match="same layer and mode"):
        merge.merge([a, b])
    with pytest.raises(ValueError, match="no parts"):
        merge.merge([])


def _aggregate_units(acts, tokens, sentence, mode, max_cells):
    vocab = txray.FeatureVocab()
    agg = txray.NeuronFeatureAggregator(
        acts.shape[1], mode=mode, record_units=True, unit_max_cells=max_cells
    )
    agg.update(acts, np.asarray([vocab.add(t) for t in tokens]), units=sentence)
    return agg, vocab.names


@pytest.mark.parametrize("mode", ["max1", "all"])
@pytest.mark.parametrize("max_cells", [1 << 21, 300])  # 300: sentences merged into blocks
def test_merged_unit_tables_give_the_one_pass_bootstrap(mode, max_cells, tmp_path):
    """Shards recorded with corpus-wide sentence ids, saved and loaded, merge
    into the one-pass table: same cells, same blocks, same bootstrap."""
    rng = np.random.default_rng(2)
    words = [f"w{i}" for i in range(30)]
    sentence = np.repeat(np.arange(150), 4)  # 150 sentences of 4 tokens
    tokens = list(rng.choice(words, size=sentence.size))
    acts_a, acts_b = rng.normal(size=(2, sentence.size, 12))
    shards = [0, 37, 38, 100, 150]  # in sentences; not aligned to any block size
    whole, parts = {}, {}
    for key, acts in (("a", acts_a), ("b", acts_b)):
        whole[key] = _aggregate_units(acts, tokens, sentence, mode, max_cells)
        loaded = []
        for k, (s0, s1) in enumerate(itertools.pairwise(shards)):
            rows = slice(4 * s0, 4 * s1)
            agg, names = _aggregate_units(acts[rows], tokens[rows], sentence[rows], mode, max_cells)
            agg.save(tmp_path / f"{key}{k}.npz", names)
            got, got_names, _ = txray.NeuronFeatureAggregator.load(tmp_path / f"{key}{k}.npz")
            assert got.units.state()["scalars"].tolist() == agg.units.state()["scalars"].tolist()
            loaded.append((got, got_names))
        parts[key] = merge.merge(loaded)
    for key in "ab":
        (one, names), (merged, vocab) = whole[key], parts[key]
        assert vocab.names == names
        u1, k1, m1, c1 = one.units.arrays()
        u2, k2, m2, c2 = merged.units.arrays()
        assert merged.units.shift == one.units.shift
        assert merged.units.num_units == one.units.num_units == 150 >> one.units.shift
        np.testing.assert_array_equal(np.stack([u1, k1, c1]), np.stack([u2, k2, c2]))
        np.testing.assert_allclose(m2, m1, rtol=1e-12)
    if max_cells == 300:
        assert whole["a"][0].units.shift > 0  # the merging of sentences was exercised
    names = whole["a"][1]
    kw = dict(replicates=50, seed=3, feature_names=names)
    a = txray.compute_shift(whole["a"][0], whole["b"][0], **kw)
    b = txray.compute_shift(parts["a"][0], parts["b"][0], **kw)
    np.testing.assert_allclose(b.distance, a.distance, atol=1e-12)
    np.testing.assert_allclose(b.replicate_distance, a.replicate_distance, atol=1e-12)
    assert b.bootstrap_units == a.bootstrap_units


def test_parts_recorded_differently_are_refused():
    rng = np.random.default_rng(3)
    acts = rng.normal(size=(8, 4))
    plain = _aggregate(acts, ["x"] * 8, "max1")
    recorded = _aggregate_units(acts, ["x"] * 8, np.arange(8), "max1", 1 << 21)
    for parts in ([plain, recorded], [recorded, plain]):
        with pytest.raises(ValueError, match="recorded alike"):
            merge.merge(parts)
