"""Live neuron ablation: the hidden-state hook on every family, exact
restoration (also after an exception), closed forms, a modified model,
dataset effects, top-k vs random-k, bad input."""

import numpy as np
import pytest
import torch

from lit_plugins.hf import layer_hooks
from lit_plugins.hf import live_ablation as ablation
from tests.kit import tiny_models

TEXTS = ["the film was not bad at all", "boring", "slow start but a stunning finale really"]
LABELLED = [
    {"sentence": "the film was not bad at all", "label": "pos"},
    {"sentence": "boring", "label": "neg"},
    {"sentence": "slow start but a stunning finale really", "label": "pos"},
    {"sentence": "awful mess", "label": "neg"},
]


@pytest.mark.parametrize("arch", [*tiny_models.ARCHS, *tiny_models.DECODERS])
def test_hook_sees_and_replaces_hidden_states_on_every_family(arch):
    """Decoders included: their last hidden state is after the final norm (ln_f /
    norm), so the last layer's hook must be there, or a substituted state is
    normed twice."""
    clf = tiny_models.classifier(arch)
    batch = clf.encode([{"sentence": t} for t in TEXTS])
    out = clf.forward(batch, gradients=False)
    for layer in range(clf.num_layers + 1):
        seen = []
        with layer_hooks.hidden_state_hook(clf.model, clf.num_layers, layer, seen.append):
            again = clf.forward(batch, gradients=False)
        assert len(seen) == 1
        torch.testing.assert_close(seen[0], out["hidden_states"][layer], rtol=0, atol=0)
        torch.testing.assert_close(again["probs"], out["probs"], rtol=0, atol=0)
    # Substituting B's state for A's (same token count) gives B's prediction.
    a, b = (clf.encode([{"sentence": t}]) for t in ("the film was bad", "the plot was fun"))
    out_b = clf.forward(b, gradients=False)
    for layer in range(clf.num_layers + 1):
        swap = out_b["hidden_states"][layer]
        with layer_hooks.hidden_state_hook(clf.model, clf.num_layers, layer, lambda h, s=swap: s):
            swapped = clf.forward(a, gradients=False)
        torch.testing.assert_close(swapped["probs"], out_b["probs"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ["bert", "albert", "electra"])
def test_predictions_bit_identical_after_exit_and_after_an_exception(arch):
    clf = tiny_models.classifier(arch)

    def hooks():  # HF keeps hooks of its own (output recorders): count ours away
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in clf.model.modules())

    before = ablation.predict_probabilities(clf, TEXTS)
    n_hooks = hooks()
    with ablation.ablated(clf, 1, range(10)):
        during = ablation.predict_probabilities(clf, TEXTS)
    assert not np.array_equal(during, before)
    np.testing.assert_array_equal(ablation.predict_probabilities(clf, TEXTS), before)
    with pytest.raises(KeyError), ablation.ablated(clf, 0, [1, 2], values=[0.5, -0.5]):
        raise KeyError("boom")
    np.testing.assert_array_equal(ablation.predict_probabilities(clf, TEXTS), before)
    assert hooks() == n_hooks


def _softmax(z):
    z = z - z.max()
    return np.exp(z) / np.exp(z).sum()


@pytest.mark.parametrize("arch", ["bert", "distilbert", "roberta"])
def test_all_neurons_of_the_last_layer_zeroed_is_the_heads_bias_alone(arch):
    """With every neuron of the last layer at 0, the head sees zeros: the same
    prediction for every input, in closed form from the head's biases."""
    clf = tiny_models.classifier(arch)
    m = clf.model
    with torch.no_grad():
        if arch == "bert":
            logits = m.classifier(torch.tanh(m.bert.pooler.dense.bias))
        elif arch == "distilbert":
            logits = m.classifier(torch.relu(m.pre_classifier.bias))
        else:
            logits = m.classifier.out_proj(torch.tanh(m.classifier.dense.bias))
    expected = _softmax(logits.double().numpy())
    width = ablation.layer_width(clf, clf.num_layers)
    with ablation.ablated(clf, clf.num_layers, range(width)):
        probs = ablation.predict_probabilities(clf, TEXTS)
    np.testing.assert_allclose(probs, np.tile(expected, (len(TEXTS), 1)), rtol=1e-6)


@pytest.mark.parametrize("layer", [0, 1])
@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_equals_a_model_with_those_neurons_removed_by_hand(layer, mode):
    """BERT's hidden_states[L] is a LayerNorm output γ·n + β: γ_j = 0 and
    β_j = value gives neuron j that value at every token."""
    clf = tiny_models.classifier("bert")
    neurons = [1, 5, 7, 30]
    values = np.array([0.3, -1.0, 2.0, 0.0]) if mode == "mean" else None
    with ablation.ablated(clf, layer, neurons, values):
        hooked = ablation.predict_probabilities(clf, TEXTS)
    edited = tiny_models.classifier("bert")  # same seed: the same weights
    for p, q in zip(edited.model.parameters(), clf.model.parameters()):
        assert torch.equal(p, q)
    bert = edited.model.bert
    norm = (
        bert.embeddings.LayerNorm if layer == 0 else bert.encoder.layer[layer - 1].output.LayerNorm
    )
    with torch.no_grad():
        norm.weight[neurons] = 0
        norm.bias[neurons] = 0 if values is None else torch.tensor(values, dtype=norm.bias.dtype)
    manual = ablation.predict_probabilities(edited, TEXTS)
    np.testing.assert_allclose(hooked, manual, rtol=1e-6, atol=1e-7)


def test_neuron_means_are_the_token_average():
    clf = tiny_models.classifier("roberta")
    means = ablation.neuron_means(clf, TEXTS, 1, batch_size=2)
    outs = clf.predict([{"sentence": t} for t in TEXTS], activation_layers=[1])
    acts = np.concatenate([o["layer_1/token_activations"] for o in outs])
    np.testing.assert_allclose(means, acts.mean(0), rtol=1e-5, atol=1e-6)


def test_ablation_effect_reports_accuracy_probabilities_and_changes():
    clf = tiny_models.classifier("bert")
    effect = ablation.ablation_effect(clf, LABELLED, 2, [0, 3, 8], mode="mean")
    before = ablation.predict_probabilities(clf, LABELLED)
    gold = np.array([clf.labels.index(e["label"]) for e in LABELLED])
    assert effect.accuracy_before == pytest.approx(np.mean(before.argmax(1) == gold))
    assert effect.mean_predicted_prob_before == pytest.approx(before.max(1).mean())
    np.testing.assert_array_equal(effect.explained_class, before.argmax(1))
    np.testing.assert_allclose(effect.explained_prob_before, before.max(1))
    means = ablation.neuron_means(clf, LABELLED, 2)
    with ablation.ablated(clf, 2, [0, 3, 8], means):
        after = ablation.predict_probabilities(clf, LABELLED)
    np.testing.assert_allclose(effect.explained_prob_after, after[np.arange(4), before.argmax(1)])
    assert effect.accuracy_after == pytest.approx(np.mean(after.argmax(1) == gold))
    assert effect.mean_prob_drop == pytest.approx(-effect.explained_prob_change.mean())
    # Texts without labels: no accuracy; explicit targets are explained instead.
    plain = ablation.ablation_effect(clf, TEXTS, 2, [0], targets=["pos"] * 3)
    assert plain.accuracy_before is None and plain.accuracy_drop is None
    assert list(plain.explained_class) == [1, 1, 1]


def test_top_vs_random():
    clf = tiny_models.classifier("bert")
    width = ablation.layer_width(clf, 2)
    # A ranking by the size of each neuron's mean activation at the last layer.
    ranking = np.argsort(-np.abs(ablation.neuron_means(clf, LABELLED, 2)))
    rows = ablation.top_vs_random(clf, LABELLED, 2, ranking, ks=(1, 4, width), seeds=(0, 1, 2))
    assert [r.k for r in rows] == [1, 4, width]
    for r in rows:
        assert r.top.neurons == [int(j) for j in ranking[: r.k]]
        assert len(r.random) == 3 and all(len(e.neurons) == r.k for e in r.random)
        mean, spread = r.random_mean_prob_drop
        assert np.isfinite(mean) and spread >= 0
        assert r.random_accuracy_drop is not None
    # k = width: top and random ablate the same (whole) layer.
    full = rows[-1]
    assert full.random_mean_prob_drop[1] == pytest.approx(0, abs=1e-12)
    assert full.top.mean_prob_drop == pytest.approx(full.random_mean_prob_drop[0])
    # Seeds make the random draws reproducible.
    again = ablation.top_vs_random(clf, LABELLED, 2, ranking, ks=(4,), seeds=(0, 1, 2))
    assert [e.neurons for e in again[0].random] == [e.neurons for e in rows[1].random]


def test_bad_input():
    clf = tiny_models.classifier("bert")
    with pytest.raises(ValueError, match=r"k must be in \[1, 32\]"):
        ablation.top_vs_random(clf, TEXTS, 1, range(32), ks=(5, 33))
    with pytest.raises(ValueError, match=r"k must be in \[1, 3\]"):
        ablation.top_vs_random(clf, TEXTS, 1, [4, 2, 9], ks=(4,))
    with pytest.raises(ValueError, match=r"must be in \[0, 32\)"):
        ablation.ablation_effect(clf, TEXTS, 1, [32])
    with pytest.raises(ValueError, match=r"layer must be in \[0, 2\]"):
        ablation.ablation_effect(clf, TEXTS, 3, [0])
    with pytest.raises(ValueError, match="accepted: zero, mean"):
        ablation.ablation_effect(clf, TEXTS, 1, [0], mode="noise")
    with pytest.raises(ValueError, match="distinct"):
        ablation.ablation_effect(clf, TEXTS, 1, [2, 2])
    with (
        pytest.raises(ValueError, match="one per listed neuron"),
        ablation.ablated(clf, 1, [0, 1], values=[1.0]),
    ):
        pass
    with pytest.raises(ValueError, match="accepted: \\['neg', 'pos'\\]"):
        ablation.ablation_effect(clf, TEXTS, 1, [0], labels=["neg", "pos", "meh"])
    with pytest.raises(ValueError, match="not be empty"):
        ablation.ablation_effect(clf, [], 1, [0])
