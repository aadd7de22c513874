"""Metrics vs hand-computed values and textbook formulas."""

import numpy as np
import pytest

from lit_plugins.probing import metrics as M

# y:    a a a b b c
# pred: a a b b c c
Y = np.array(["a", "a", "a", "b", "b", "c"])
P = np.array(["a", "a", "b", "b", "c", "c"])


def test_accuracy_and_f1_hand():
    assert M.accuracy(P, Y) == pytest.approx(4 / 6)
    # a: tp2 fp0 fn1 -> 0.8;  b: tp1 fp1 fn1 -> 0.5;  c: tp1 fp1 fn0 -> 2/3.
    assert M.f1_per_class(P, Y) == pytest.approx({"a": 0.8, "b": 0.5, "c": 2 / 3})
    assert M.f1(P, Y) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert M.accuracy_and_f1(P, Y) == pytest.approx((4 / 6 + (0.8 + 0.5 + 2 / 3) / 3) / 2)
    assert M.compute_score(P, Y, "accuracy") == pytest.approx(4 / 6)


def test_matthews_binary_formula():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    p = np.array([1, 0, 1, 0, 0, 1, 0, 1])
    tp, tn, fp, fn = 3, 3, 1, 1
    expected = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert M.matthews_corrcoef(p, y) == pytest.approx(expected)


def test_correlations_formulas():
    rng = np.random.default_rng(0)
    y = rng.normal(size=50)
    p = y + rng.normal(size=50)
    r = np.sum((p - p.mean()) * (y - y.mean())) / np.sqrt(
        np.sum((p - p.mean()) ** 2) * np.sum((y - y.mean()) ** 2)
    )
    assert M.pearson(p, y) == pytest.approx(r)
    rp = np.argsort(np.argsort(p)).astype(float)  # no ties in continuous data
    ry = np.argsort(np.argsort(y)).astype(float)
    rho = np.corrcoef(rp, ry)[0, 1]
    assert M.spearman(p, y) == pytest.approx(rho)
    assert M.pearson_and_spearman(p, y) == pytest.approx((r + rho) / 2)
    assert M.pearson(np.ones(5), np.arange(5)) == 0.0


def test_bad_metric_and_lengths():
    with pytest.raises(ValueError, match="Unknown metric"):
        M.compute_score(P, Y, "bleu")
    with pytest.raises(ValueError, match="Mismatched"):
        M.accuracy(P[:3], Y)
    with pytest.raises(ValueError, match="empty"):
        M.accuracy([], [])


class FakeProbe:
    """Fixed predictions, so expected scores are known by construction."""

    def __init__(self, preds, classes):
        self.preds = np.asarray(preds)
        self.classes_ = np.asarray(classes)

    def predict(self, X):
        assert len(X) == len(self.preds)
        return self.preds


def test_evaluate_probe_overall_and_per_class():
    probe = FakeProbe(P, ["a", "b", "c", "d"])
    X = np.zeros((6, 2))
    scores = M.evaluate_probe(probe, X, Y)
    # Per-class accuracy = recall: a 2/3, b 1/2, c 1/1; d has no examples.
    assert scores == pytest.approx({"__OVERALL__": 4 / 6, "a": 2 / 3, "b": 0.5, "c": 1.0, "d": 0.0})
    f1s = M.evaluate_probe(probe, X, Y, metric="f1")
    assert f1s["b"] == pytest.approx(0.5)


def test_evaluate_probe_idx_to_class_and_predictions():
    y = np.array([0, 0, 1, 1])
    probe = FakeProbe([0, 1, 1, 1], [0, 1])
    scores, preds = M.evaluate_probe(
        probe,
        np.zeros((4, 1)),
        y,
        idx_to_class={0: "NN", 1: "VB"},
        return_predictions=True,
        source_tokens=[["the", "dog"], ["runs", "fast"]],
    )
    assert scores == pytest.approx({"__OVERALL__": 0.75, "NN": 0.5, "VB": 1.0})
    assert preds == [
        ("the", "NN", True),
        ("dog", "VB", False),
        ("runs", "VB", True),
        ("fast", "VB", True),
    ]
