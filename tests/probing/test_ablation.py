"""Ablation: top-k neurons vs k random neurons on planted data."""

import numpy as np
import pytest

from lit_plugins.probing import ablation as A


def planted(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 64))
    # 4 classes decided by neurons 3, 17 and 40; everything else is noise.
    y = 2 * (X[:, 3] + 0.5 * X[:, 40] > 0) + (X[:, 17] > 0)
    return X, y


def test_top_k_beats_random_k():
    Xtr, ytr = planted(3000, 0)
    Xdv, ydv = planted(1000, 1)
    res = A.top_vs_random_ablation(Xtr, ytr, Xdv, ydv, k=3, seed=0, lambda_l1=1e-3)
    assert set(res["top_neurons"].tolist()) == {3, 17, 40}
    rand = A.random_neurons(64, 3, seed=0)
    np.testing.assert_array_equal(res["random_neurons"], rand)
    assert res["top_accuracy"] > 0.9
    # Chance given the neurons drawn: if none of 3/17/40 is among them the
    # best possible is the majority class share.
    if not set(rand.tolist()) & {3, 17, 40}:
        majority = np.max(np.bincount(ydv)) / len(ydv)
        assert res["random_accuracy"] < majority + 0.05
    assert res["top_accuracy"] > res["random_accuracy"] + 0.3
    assert res["full_accuracy"] > 0.9


def test_explicit_ordering_and_filter():
    Xtr, ytr = planted(500, 2)
    res = A.top_vs_random_ablation(Xtr, ytr, Xtr, ytr, k=2, seed=3, ordering=[17, 3, 0, 1])
    assert res["top_neurons"].tolist() == [17, 3]
    assert res["full_accuracy"] is None
    X = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(A.filter_activations(X, [3, 1]), [[3, 1], [7, 5], [11, 9]])


def test_bad_inputs():
    X = np.ones((4, 5))
    with pytest.raises(ValueError, match="k must be"):
        A.top_vs_random_ablation(X, [0, 1, 0, 1], X, [0, 1, 0, 1], k=6)
    with pytest.raises(ValueError, match="neuron indices"):
        A.filter_activations(X, [7])
    with pytest.raises(ValueError, match="non-empty"):
        A.filter_activations(X, [])
