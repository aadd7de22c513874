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
