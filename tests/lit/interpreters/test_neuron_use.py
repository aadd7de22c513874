"""'Use for the decision' chips of the probe (and TX-Ray): the numbers are the
ablation and conductance the core computes, they are cached per dataset, and
the option turns them off."""

import re

import numpy as np
import pytest

from lit_plugins.data import loaders
from lit_plugins.hf import live_ablation as ablation
from lit_plugins.hf import paths as hf_paths
from lit_plugins.lit.interpreters import LinearProbeInterpreter, common, neuron_use
from lit_plugins.lit.interpreters import linear_probe as probe_interp
from tests.kit import tiny_models

OPTS = neuron_use.NeuronUseOptions(steps=8, seeds=(0, 1, 2))


@pytest.fixture(scope="module")
def clf():
    return tiny_models.classifier("bert", labels=tuple(loaders.SENTIMENT_LABELS))


@pytest.fixture(scope="module")
def examples():
    return list(loaders.load_bundled_sentiment("dev", max_examples=12).examples)


def test_chips_are_the_core_numbers(clf, examples):
    layer, neurons = 1, [5, 3, 17]
    use = neuron_use.NeuronUse(max_entries=4)
    chips = neuron_use.use_dict(use.chips(clf, examples, layer, neurons, OPTS))
    texts = list(chips)

    # Ablation: the listed neurons zeroed vs random draws, as the core measures it.
    effect = ablation.ablation_effect(clf, examples, layer, neurons)
    top_text = texts[0]
    assert top_text.startswith("first 3 listed ablated: accuracy ")
    accuracy = float(re.search(r"accuracy ([+-][\d.]+) pts", top_text).group(1))
    assert accuracy == pytest.approx(-100 * effect.accuracy_drop, abs=0.05)
    prob = float(re.search(r"p\(predicted\) ([+-][\d.]+)", top_text).group(1))
    assert prob == pytest.approx(-effect.mean_prob_drop, abs=5e-4)
    assert chips[top_text] == pytest.approx(effect.mean_prob_drop)
    (row,) = ablation.top_vs_random(clf, examples, layer, neurons, ks=[3], seeds=OPTS.seeds)
    assert texts[1].startswith("3 random ablated (3 seeds): ")
    assert chips[texts[1]] == pytest.approx(row.random_mean_prob_drop[0])

    # Conductance: mean over examples of |Σ_tokens conductance| per neuron.
    results, _, _ = hf_paths.layer_conductance(clf, examples, layer, steps=OPTS.steps)
    mean_abs = np.mean([np.abs(r.neuron_attributions) for r in results], axis=0)
    for n, text in zip(neurons, texts[2:5]):
        assert text.startswith(f"L{layer} n{n}: mean |conductance| ")
        assert chips[text] == pytest.approx(mean_abs[n], rel=1e-5)
        rank = int(re.search(r"rank (\d+)/(\d+)", text).group(1))
        assert rank == 1 + int(np.sum(mean_abs > mean_abs[n]))
    assert texts[-1].startswith(f"conductance over {len(examples)} examples, 8 Gauss-Legendre")


def test_cached_per_dataset(clf, examples, monkeypatch):
    use = neuron_use.NeuronUse(max_entries=4)
    calls = []
    real = neuron_use.layer_conductance_summary
    monkeypatch.setattr(
        neuron_use,
        "layer_conductance_summary",
        lambda *a: calls.append(1) or real(*a),
    )
    first = use.chips(clf, examples, 1, [1, 2], OPTS)
    again = use.chips(clf, examples, 1, [1, 2], OPTS)
    assert len(calls) == 1 and first.tokens == again.tokens
    use.chips(clf, examples[:-1], 1, [1, 2], OPTS)  # other data: computed again
    assert len(calls) == 2


def test_probe_shows_use_when_asked_and_is_off_by_default(clf, examples, monkeypatch):
    dataset = loaders.load_bundled_sentiment("dev", max_examples=12)
    probe = LinearProbeInterpreter()
    assert probe.config_spec()[neuron_use.USE_KEY].default is False
    calls = []
    real = neuron_use.layer_conductance_summary
    monkeypatch.setattr(
        neuron_use, "layer_conductance_summary", lambda *a: calls.append(1) or real(*a)
    )
    (default,) = probe.run(dataset.examples[:1], clf, dataset, config={})
    # Off by default (minutes on a CPU): no dataset pass, one chip saying how to start it.
    assert calls == []
    assert list(neuron_use.use_dict(default[neuron_use.USE_FIELD])) == [neuron_use.OFF_TEXT]
    assert neuron_use.USE_KEY in neuron_use.OFF_TEXT
    (on,) = probe.run(dataset.examples[:1], clf, dataset, config={neuron_use.USE_KEY: True})
    assert calls == [1]
    listed = list(common.chips_dict(on[probe_interp.TOP_NEURONS]))
    use_texts = list(neuron_use.use_dict(on[neuron_use.USE_FIELD]))
    # Every listed neuron gets its conductance chip, in the probe's order.
    assert [t.split(":")[0] for t in use_texts[2:-1]] == listed
    assert probe.fit_count == 1  # a display option: never refits


def test_not_for_regression_or_other_models(examples):
    from lit_plugins.lit.model import HFSequenceClassifier
    from tests.kit import fake_models

    model, tokenizer = tiny_models.make("bert", num_labels=1)
    regression = HFSequenceClassifier(model=model, tokenizer=tokenizer)
    assert regression.is_regression
    use = neuron_use.NeuronUse()
    chips = use.chips(regression, examples, 1, [1], OPTS)
    assert list(chips.tokens) == ["use for the decision: classifiers only"]
    chips = use.chips(fake_models.PredictionsOnly(), examples, 1, [1], OPTS)
    assert list(chips.tokens) == ["use for the decision: needs an HFSequenceClassifier"]


def test_accuracy_from_lit_read_only_examples(clf, examples):
    """LIT hands interpreters read-only mappings: their labels still count."""
    import types

    frozen = [types.MappingProxyType(dict(ex)) for ex in examples]
    texts = list(neuron_use.use_dict(neuron_use.NeuronUse(4).chips(clf, frozen, 1, [1, 2], OPTS)))
    assert texts[0].startswith("first 2 listed ablated: accuracy ")


def test_other_label_names_leave_accuracy_out(clf, examples):
    """A dataset whose labels are not the model's classes: probabilities only."""
    foreign = [dict(ex, label="neg") for ex in examples]
    texts = list(neuron_use.use_dict(neuron_use.NeuronUse().chips(clf, foreign, 1, [1, 2], OPTS)))
    assert texts[0].startswith("first 2 listed ablated: p(predicted) ")
    assert texts[1].startswith("2 random ablated (3 seeds): p(predicted) ")


def test_conductance_on_an_evenly_spaced_subset_of_large_datasets(clf, examples):
    opts = neuron_use.NeuronUseOptions(steps=8, seeds=(0,), max_examples=5)
    texts = list(neuron_use.use_dict(neuron_use.NeuronUse(4).chips(clf, examples, 1, [2], opts)))
    assert texts[-1].startswith("conductance over 5 of 12 examples (evenly spaced), 8 Gauss")
    picks = [examples[i] for i in (0, 3, 6, 8, 11)]  # linspace(0, 11, 5) rounded
    results, _, _ = hf_paths.layer_conductance(clf, picks, 1, steps=8)
    expected = np.mean([abs(r.neuron_attributions[2]) for r in results])
    assert neuron_use.use_dict(neuron_use.NeuronUse(4).chips(clf, examples, 1, [2], opts))[
        texts[2]
    ] == pytest.approx(expected, rel=1e-5)
