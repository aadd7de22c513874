"""Layer / Neuron Conductance interpreters: the glue returns the core's
numbers, the two interpreters agree with each other and with completeness,
neuron labels round-trip, bad config is a ValueError, faithfulness scores the
layer map but not per-neuron maps."""

import re

import numpy as np
import pytest
from lit_nlp.lib import caching

from lit_plugins.attribution import conductance as conductance_lib
from lit_plugins.hf import paths as hf_paths
from lit_plugins.lit import interpreters
from lit_plugins.lit import salience_evaluation as faithfulness
from lit_plugins.lit.interpreters import common
from lit_plugins.lit.interpreters import conductance as cond
from lit_plugins.lit.interpreters import integrated_gradients as ig_interp
from tests.kit import fake_models, tiny_models

TEXTS = ["the film was not bad at all", "boring", "slow start but a stunning finale really"]
RAW = {common.NORMALIZATION_KEY: False}


@pytest.fixture(scope="module")
def clf():
    return tiny_models.classifier("bert")


@pytest.fixture(scope="module")
def inputs():
    return [{"sentence": t} for t in TEXTS]


def test_layer_conductance_is_the_core_result(clf, inputs):
    out = cond.LayerConductance().run(inputs, clf, None, config={**RAW, cond.LAYER_KEY: 1})
    core, tokens, _ = hf_paths.layer_conductance(clf, inputs, 1, steps=64)
    for o, res, toks in zip(out, core, tokens):
        salience = o[cond.TOKEN_FIELD]
        assert salience.tokens == toks
        np.testing.assert_allclose(salience.salience, res.token_attributions, rtol=1e-5, atol=1e-7)
        # Completeness: the per-token map sums to F(input) - F(baseline).
        report = ig_interp.completeness_dict(o[cond.COMPLETENESS_KEY])
        assert report["relative completeness error"] <= 1e-3
        assert np.sum(salience.salience) == pytest.approx(
            report["F(input) - F(baseline)"], rel=1e-3, abs=1e-6
        )
        # Top neurons: labels 'L1 n<j>' by decreasing |total|, values = the core's.
        top = common.chips_dict(o[cond.TOP_FIELD])
        assert len(top) == 10
        totals = res.neuron_attributions
        for label, value in top.items():
            j = int(label.split(" n")[1])
            assert value == pytest.approx(totals[j], rel=1e-5, abs=1e-8)
        magnitudes = [abs(v) for v in top.values()]
        assert magnitudes == sorted(magnitudes, reverse=True)
        assert magnitudes[0] == pytest.approx(np.max(np.abs(totals)), rel=1e-5)


def test_default_map_sums_to_the_change_of_a_plain_forward(clf, inputs):
    """With the default config (no Normalize given) the token map sums to
    F(input) - F(zero baseline), F = the predicted class's probability,
    both computed here by plain forwards of the HF model."""
    import torch

    interp = cond.LayerConductance()
    assert interp.config_spec()[common.NORMALIZATION_KEY].default is False
    out = interp.run(inputs, clf, None, config={cond.LAYER_KEY: 1})
    for example, o in zip(inputs, out):
        enc = clf.tokenizer(example["sentence"], return_tensors="pt")
        with torch.no_grad():
            probs = torch.softmax(clf.model(**enc).logits, -1)[0]
            target = int(probs.argmax())
            words = clf.model.get_input_embeddings()(enc["input_ids"])
            zero = torch.zeros_like(words)
            base = torch.softmax(
                clf.model(inputs_embeds=zero, attention_mask=enc["attention_mask"]).logits, -1
            )[0]
        delta_f = float(probs[target] - base[target])
        total = float(np.sum(o[cond.TOKEN_FIELD].salience))
        error = ig_interp.completeness_dict(o[cond.COMPLETENESS_KEY])["relative completeness error"]
        # Quadrature error (reported, <= 1e-3 at 64 Gauss-Legendre points on this
        # model) plus float32 rounding of a sum of a few per-token terms.
        assert error <= 1e-3
        assert abs(total - delta_f) <= 1e-3 * abs(delta_f) + 1e-6, (total, delta_f)


def test_neuron_totals_match_the_layer_conductance_of_those_neurons(clf, inputs):
    """Two routes to one number: a neuron's conductance summed over the input
    tokens (Neuron Conductance) is its layer conductance summed over
    positions (Layer Conductance)."""
    layer = cond.LayerConductance().run(inputs, clf, None, config={**RAW, cond.LAYER_KEY: 1})
    top = list(common.chips_dict(layer[0][cond.TOP_FIELD]))[:3]
    named = cond.NeuronConductance().run(
        inputs[:1], clf, None, config={**RAW, cond.NEURONS_KEY: ", ".join(top)}
    )[0]
    totals = common.chips_dict(named[cond.NEURONS_FIELD])
    assert list(totals) == top
    expected = common.chips_dict(layer[0][cond.TOP_FIELD])
    for label in top:
        assert totals[label] == pytest.approx(expected[label], rel=2e-3, abs=1e-6)
        assert np.sum(named[label].salience) == pytest.approx(totals[label], rel=1e-4, abs=1e-8)
    # With no neurons named, the example's top 3 at the layer are used.
    default = cond.NeuronConductance().run(inputs[:1], clf, None, config={cond.LAYER_KEY: 1})[0]
    assert list(common.chips_dict(default[cond.NEURONS_FIELD])) == top
    assert [k for k in default if k.startswith("L")] == top


def test_neuron_maps_per_example_and_token_position(clf, inputs):
    out = cond.NeuronConductance().run(
        inputs, clf, None, config={**RAW, cond.NEURONS_KEY: "L1 n3; L2 n5 @1"}
    )
    core, tokens, _ = hf_paths.neuron_conductance(clf, inputs, [(1, 3), (2, 5, 1)], steps=64)
    for o, res, toks in zip(out, core, tokens):
        assert [k for k in o if k.startswith("L")] == ["L1 n3", "L2 n5 @1"]
        for label, row in zip(["L1 n3", "L2 n5 @1"], res.attributions):
            assert o[label].tokens == toks
            np.testing.assert_allclose(o[label].salience, row, rtol=1e-5, atol=1e-7)


def test_labels_round_trip():
    neurons = [conductance_lib.Neuron(6, 123), conductance_lib.Neuron(0, 7, 2)]
    text = ", ".join(n.label for n in neurons)
    assert [conductance_lib.Neuron(*t) for t in cond.parse_neuron_labels(text)] == neurons
    assert cond.parse_neuron_labels(" l3 N4 \n") == [(3, 4)]
    assert cond.parse_neuron_labels("") == []


@pytest.mark.parametrize(
    "config,message",
    [
        ({cond.NEURONS_KEY: "layer 1 neuron 2"}, "L<layer> n<index>"),
        ({cond.NEURONS_KEY: "L9 n1"}, "layer must be in [0, 2]"),
        ({cond.NEURONS_KEY: "L1 n999"}, "index must be in [0, 32)"),
        ({cond.NEURONS_KEY: "L1 n1 @99"}, "token must be a position"),
        ({cond.NEURONS_KEY: ", ".join(f"L1 n{i}" for i in range(17))}, "At most 16"),
        ({cond.LAYER_KEY: 3}, "must be an integer in [0, 2]"),
        ({common.INTERPOLATION_KEY: 0}, "Interpolation steps"),
        ({ig_interp.RULE_KEY: "simpson"}, "must be one of"),
    ],
)
def test_bad_config_names_what_is_accepted(clf, inputs, config, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        cond.NeuronConductance().run(inputs[:1], clf, None, config=config)


def test_compatibility(clf):
    served = caching.CachingModelWrapper(clf, "tiny")
    for interp in (interpreters.LayerConductance(), interpreters.NeuronConductance()):
        assert interp.is_compatible(served, None)
        assert not interp.is_compatible(fake_models.PredictionsOnly(), None)
    with pytest.raises(ValueError, match="HFSequenceClassifier"):
        interpreters.LayerConductance().run(
            [{"sentence": "x"}], fake_models.PredictionsOnly(), None
        )


def test_faithfulness_scores_the_layer_map_not_neuron_maps():
    methods = faithfulness.salience_methods(
        {"layer": interpreters.LayerConductance(), "neuron": interpreters.NeuronConductance()}
    )
    assert list(methods) == ["layer"]
