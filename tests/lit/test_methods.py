"""The salience-method registry: one answer to "which interpreters are salience maps",
LIME seeded wherever the app or faithfulness runs it."""

import numpy as np
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import types as lit_types
from lit_nlp.components import lime_explainer, salience_clustering

from lit_plugins.app import registration
from lit_plugins.lit import methods
from lit_plugins.lit.interpreters import faithfulness as faithfulness_interp
from lit_plugins.lit.model import HFSequenceClassifier
from tests.kit import tiny_models

LABELS = ["neg", "pos"]
TEXTS = ["a dull and lifeless film", "warm , funny and sharp"]


def _model_and_data():
    model, tok = tiny_models.make("bert")
    clf = HFSequenceClassifier(model=model, tokenizer=tok, labels=LABELS)
    spec = {"sentence": lit_types.TextSegment(), "label": lit_types.CategoryLabel(vocab=LABELS)}
    data = lit_dataset.Dataset(spec, [{"sentence": t, "label": "pos"} for t in TEXTS])
    return clf, data


def _lime_maps(interpreters, clf, data):
    lime = interpreters[methods.LIT_LIME]
    config = {k: v.default for k, v in lime.config_spec().items()}
    config[lime_explainer.NUM_SAMPLES_KEY] = 32
    results = lime.run(data.examples, clf, data, config=config)
    return [np.asarray(r["sentence"].salience) for r in results]


def test_app_lime_is_seeded_so_two_app_runs_agree():
    clf, data = _model_and_data()
    first = registration.plugin_interpreters({"m": clf}, include_lit_defaults=True)
    second = registration.plugin_interpreters({"m": clf}, include_lit_defaults=True)
    # The seed is shown (and can be changed) in LIME's controls.
    assert first[methods.LIT_LIME].config_spec()[lime_explainer.SEED_KEY].default == str(
        methods.LIME_SEED
    )
    for a, b in zip(_lime_maps(first, clf, data), _lime_maps(second, clf, data)):
        np.testing.assert_array_equal(a, b)
    # Salience Faithfulness scores that seeded LIME, the same object the app serves.
    scored = first[methods.SALIENCE_FAITHFULNESS].methods()
    assert scored[methods.LIT_LIME] is first[methods.LIT_LIME]


def test_one_answer_for_which_interpreters_are_maps():
    clf, _ = _model_and_data()
    app = registration.plugin_interpreters({"m": clf}, include_lit_defaults=True)
    maps = methods.salience_methods(app)
    assert set(maps) == {
        methods.LIT_GRAD_NORM,
        methods.LIT_GRAD_DOT_INPUT,
        methods.LIT_INTEGRATED_GRADIENTS,
        methods.LIT_LIME,
        methods.GRADIENT_NORM,
        methods.GRADIENT_DOT_INPUT,
        methods.INTEGRATED_GRADIENTS,
        methods.LAYER_CONDUCTANCE,
    }
    # Clustering offers exactly the maps the app's faithfulness scores.
    clustering = app[methods.SALIENCE_CLUSTERING]
    offered = clustering.config_spec()[salience_clustering.SALIENCE_MAPPER_KEY].vocab
    assert set(offered) == set(maps)
    assert isinstance(app[methods.SALIENCE_FAITHFULNESS], faithfulness_interp.SalienceFaithfulness)
    assert not methods.is_salience_method(app[methods.SALIENCE_FAITHFULNESS])
    assert not methods.is_salience_method(app[methods.NEURON_CONDUCTANCE])
    assert isinstance(methods.lit_methods()[methods.LIT_LIME], lime_explainer.LIME)
