"""Pooling, sub-word label mapping and per-layer sweeps on hand examples."""

import numpy as np
import pytest

from lit_plugins.probing import representations as R

# [CLS] The un ##believ ##able cat ##s [SEP]
WORD_IDS = [None, 0, 1, 1, 1, 2, 2, None]
TAGS = ["DET", "ADJ", "NOUN"]
# Token t has activation [t, 10 t].
ACTS = np.stack([np.arange(8), 10 * np.arange(8)], axis=1).astype(float)


@pytest.mark.parametrize(
    "strategy, labels, vectors",
    [
        (
            "first",
            [None, "DET", "ADJ", None, None, "NOUN", None, None],
            [[1, 10], [2, 20], [5, 50]],
        ),
        ("last", [None, "DET", None, None, "ADJ", None, "NOUN", None], [[1, 10], [4, 40], [6, 60]]),
        (
            "mean",
            [None, "DET", "ADJ", "ADJ", "ADJ", "NOUN", "NOUN", None],
            [[1, 10], [3, 30], [5.5, 55]],
        ),
    ],
)
def test_subword_mapping_hand(strategy, labels, vectors):
    assert R.map_word_labels_to_subwords(TAGS, WORD_IDS, strategy) == labels
    X, y, kept = R.word_level_activations(ACTS, WORD_IDS, TAGS, strategy)
    np.testing.assert_allclose(X, vectors)
    assert y.tolist() == TAGS and kept.tolist() == [0, 1, 2]


def test_truncated_word_dropped_and_layers():
    tags = [*TAGS, "PUNCT"]  # word 3 was cut off by truncation
    acts = np.stack([ACTS, -ACTS])  # [2 layers, T, H]
    X, y, _kept = R.word_level_activations(acts, WORD_IDS, tags, "last")
    assert X.shape == (2, 3, 2) and y.tolist() == TAGS
    np.testing.assert_allclose(X[1], -np.array([[1, 10], [4, 40], [6, 60]]))
    Xall, yall = R.token_dataset(
        [acts, acts[:, :3]], [WORD_IDS, [None, 0, 0]], [TAGS, ["X"]], "mean"
    )
    assert Xall.shape == (2, 4, 2) and yall.tolist() == [*TAGS, "X"]
    np.testing.assert_allclose(Xall[0, 3], [1.5, 15])


def test_subword_bad_inputs():
    with pytest.raises(ValueError, match="only 2 word labels"):
        R.map_word_labels_to_subwords(TAGS[:2], WORD_IDS)
    with pytest.raises(ValueError, match="strategy"):
        R.map_word_labels_to_subwords(TAGS, WORD_IDS, "middle")
    with pytest.raises(ValueError, match="word_ids has 8"):
        R.word_level_activations(ACTS[:5], WORD_IDS, TAGS)
    with pytest.raises(ValueError, match="one entry per sentence"):
        R.token_dataset([ACTS], [WORD_IDS, WORD_IDS], [TAGS])


def test_pool_sentence_mean_and_cls():
    acts = np.arange(2 * 3 * 2, dtype=float).reshape(2, 3, 2)
    # sentence 0 tokens [0,1],[2,3],[4,5]; sentence 1 [6,7],[8,9],[10,11] with
    # its last token padding.
    mask = np.array([[1, 1, 1], [1, 1, 0]])
    np.testing.assert_allclose(R.pool_sentence(acts, mask), [[2, 3], [7, 8]])
    np.testing.assert_allclose(R.pool_sentence(acts, mode="cls"), [[0, 1], [6, 7]])
    layers = np.stack([acts, 2 * acts])  # [L+1, B, T, H], mask [B, T]
    np.testing.assert_allclose(R.pool_sentence(layers, mask)[1], [[4, 6], [14, 16]])
    with pytest.raises(ValueError, match="no real token"):
        R.pool_sentence(acts, np.array([[1, 1, 1], [0, 0, 0]]))
    with pytest.raises(ValueError, match="mode"):
        R.pool_sentence(acts, mask, mode="max")


def _layers(n, seed):
    """Layer 0: noise; layer 1: label signal; layer 2: weak signal."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    acts = rng.normal(size=(3, n, 10))
    acts[1, :, 4] += 3 * (2 * y - 1)
    acts[2, :, 4] += 0.5 * (2 * y - 1)
    return acts, y


def test_layer_sweep_picks_informative_layer():
    tr, ytr = _layers(1000, 0)
    dv, ydv = _layers(500, 1)
    sweep = R.LayerSweep(lambda_l2=1e-3).fit(tr, ytr, dv, ydv)
    assert sweep.layers_ == [0, 1, 2]
    assert sweep.best_layer_ == 1
    for layer in sweep.layers_:
        p = sweep.probes_[layer]
        acc = np.mean(p.classes_[np.argmax(dv[layer] @ p.weight_.T + p.bias_, 1)] == ydv)
        assert sweep.scores_[layer] == pytest.approx(acc)
    assert sweep.scores_[1] > 0.97 and sweep.scores_[0] < 0.6
    # Dict input with names, regression metric default.
    reg = R.LayerSweep("regression").fit(
        {"emb": tr[0], "l1": tr[1]},
        ytr.astype(float),
        {"emb": dv[0], "l1": dv[1]},
        ydv.astype(float),
    )
    assert reg.metric == "pearson" and reg.best_layer_ == "l1"


def test_layer_sweep_bad_inputs():
    tr, ytr = _layers(50, 0)
    with pytest.raises(ValueError, match="different layers"):
        R.LayerSweep().fit({"a": tr[0]}, ytr, {"b": tr[0]}, ytr)
    with pytest.raises(ValueError, match="num_layers"):
        R.LayerSweep().fit(tr[0], ytr, tr[0], ytr)
