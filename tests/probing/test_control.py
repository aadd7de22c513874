"""Control tasks (Hewitt & Liang 2019) and selectivity."""

import numpy as np
import pytest

from lit_plugins.probing import control as C


def test_control_labels_consistent_per_type_and_seeded():
    tokens = np.array(["the", "cat", "the", "sat", "cat", "on", "the", "mat"])
    labels = np.array(["DT", "NN", "DT", "VB", "NN", "IN", "DT", "NN"])
    a = C.make_control_labels(tokens, labels, seed=0)
    b = C.make_control_labels(tokens, labels, seed=0)
    np.testing.assert_array_equal(a, b)
    for t in set(tokens):
        assert len(set(a[tokens == t])) == 1
    assert set(a) <= set(labels)
    seeds = [tuple(C.make_control_labels(tokens, labels, seed=s)) for s in range(20)]
    assert len(set(seeds)) > 1


def test_control_labels_follow_empirical_distribution():
    # 20000 types; labels 70% X / 20% Y / 10% Z -> type labels ~ same shares.
    types = np.arange(20000)
    labels = np.array(["X"] * 7 + ["Y"] * 2 + ["Z"])[types % 10]
    mapping = C.control_label_mapping(types, labels, seed=1)
    drawn = np.array(list(mapping.values()))
    for lab, share in [("X", 0.7), ("Y", 0.2), ("Z", 0.1)]:
        # 5 standard errors of a binomial proportion.
        assert abs(np.mean(drawn == lab) - share) < 5 * np.sqrt(share * (1 - share) / 20000)


def test_vocabulary_and_unknown_types():
    tokens = np.array(["a", "b"])
    out = C.make_control_labels(tokens, [0, 1], seed=0, vocabulary=["a_much_longer_type"])
    assert out.shape == (2,)
    with pytest.raises(ValueError, match="no control label"):
        C.apply_control_mapping(["zzz"], {"a": 0})
    with pytest.raises(ValueError, match="Mismatched"):
        C.make_control_labels(tokens, [0, 1, 1], seed=0)


def test_selectivity_arithmetic():
    assert C.selectivity(0.9, 0.6) == pytest.approx(0.3)
    assert C.selectivity(0.5, 0.7) == pytest.approx(-0.2)


def _tokens(rng, num_types, n):
    return rng.integers(0, num_types, size=n)


def _acc(probe, X, y):
    logits = X @ probe.weight_.T + probe.bias_
    return np.mean(probe.classes_[np.argmax(logits, axis=1)] == y)


def test_selectivity_high_when_representation_encodes_the_property():
    """Label = f(type); activations encode the label, not the type identity.

    A probe cannot memorise random type labels from such activations, so the
    control task stays near chance while the real task is easy.
    """
    rng = np.random.default_rng(0)
    num_types, h = 300, 32
    type_label = rng.integers(0, 3, size=num_types)
    directions = rng.normal(size=(3, h)) * 2

    def make(n):
        t = _tokens(rng, num_types, n)
        X = directions[type_label[t]] + rng.normal(size=(n, h))
        return X, t, type_label[t]

    Xtr, ttr, ytr = make(3000)
    Xdv, tdv, ydv = make(1000)
    res = C.control_task_selectivity(Xtr, ttr, ytr, Xdv, tdv, ydv, seed=0, lambda_l2=1e-3)
    real = _acc(res["real_probe"], Xdv, ydv)
    ctrl = _acc(res["control_probe"], Xdv, res["control_dev"])
    assert res["real_accuracy"] == pytest.approx(real)
    assert res["control_accuracy"] == pytest.approx(ctrl)
    assert res["selectivity"] == pytest.approx(real - ctrl)
    assert real > 0.95 and ctrl < 0.6 and real - ctrl > 0.4


def test_selectivity_low_when_representation_encodes_type_identity():
    """Activations are a distinct random vector per type (+ small noise).

    With fewer types than dimensions any type -> label map is linearly
    separable, so the probe fits the control task as well as the real one:
    high accuracy, but low selectivity.
    """
    rng = np.random.default_rng(1)
    num_types, h = 24, 64
    type_label = rng.integers(0, 3, size=num_types)
    emb = rng.normal(size=(num_types, h))

    def make(n):
        t = _tokens(rng, num_types, n)
        return emb[t] + 0.05 * rng.normal(size=(n, h)), t, type_label[t]

    Xtr, ttr, ytr = make(2000)
    Xdv, tdv, ydv = make(500)
    res = C.control_task_selectivity(Xtr, ttr, ytr, Xdv, tdv, ydv, seed=0, lambda_l2=1e-4)
    real = _acc(res["real_probe"], Xdv, ydv)
    ctrl = _acc(res["control_probe"], Xdv, res["control_dev"])
    assert real > 0.95 and ctrl > 0.9
    assert abs(res["selectivity"]) < 0.1
