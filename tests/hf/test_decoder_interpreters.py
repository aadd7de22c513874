"""Every interpreter on decoder-only classifiers (tiny GPT-2, Llama, Qwen2), as the app
serves them: ours (gradient maps, IG, layer and neuron conductance, linear probe, TX-Ray,
Salience Faithfulness) and LIT's (gradient maps, LIME, TCAV on `last_token_grad`,
Salience Clustering, HotFlip). Each checked against an independent number where one
exists: completeness against plain forwards of the model, probe accuracy in [0, 1]."""

import numpy as np
import pytest
import torch
from absl import logging as absl_logging
from lit_nlp.api import dtypes
from lit_nlp.components import core, hotflip, salience_clustering
from lit_nlp.lib import caching

from lit_plugins.app import registration
from lit_plugins.lit import salience_evaluation
from lit_plugins.lit.interpreters import conductance, txray_shift
from lit_plugins.lit.interpreters import integrated_gradients as ig_interp
from lit_plugins.lit.model import HFSequenceClassifier
from tests.kit import sentiment_data, tiny_models

LABELS = sentiment_data.LABELS


@pytest.fixture(scope="module", params=tiny_models.DECODERS)
def app(request):
    absl_logging.set_verbosity(absl_logging.ERROR)
    arch = request.param
    clfs = {}
    for seed in (0, 1):  # the second: TX-Ray's reference (same tokenizer and width)
        model, tok = tiny_models.make(arch, seed=seed)
        clfs[seed] = HFSequenceClassifier(model=model, tokenizer=tok, labels=LABELS, batch_size=8)
    served = {arch: caching.CachingModelWrapper(clfs[0], arch)}
    interpreters = registration.plugin_interpreters(
        served, include_lit_defaults=True, reference_models={"reference": clfs[1]}
    )
    yield arch, served[arch], clfs[0], sentiment_data.indexed_dataset(), interpreters
    absl_logging.set_verbosity(absl_logging.INFO)


def _finite_map(value):
    assert isinstance(value, dtypes.TokenSalience)
    salience = np.asarray(value.salience, dtype=np.float64)
    assert salience.size and np.isfinite(salience).all() and np.abs(salience).max() > 0


def test_gradient_maps_and_lime(app):
    arch, model, _, dataset, interpreters = app
    inputs = dataset.examples[:3]
    outputs = list(model.predict(inputs))
    for name, field, config in (
        (registration.GRADIENT_NORM, "token_grads", {}),
        (registration.GRADIENT_DOT_INPUT, "token_grads", {}),
        ("Grad L2 Norm", "token_grads", {}),
        ("Grad ⋅ Input", "token_grads", {}),
        ("Integrated Gradients", "token_grads", {"Interpolation steps": 8}),
        ("LIME", "sentence", {"Number of samples": 32}),
    ):
        interp = interpreters[name]
        assert interp.is_compatible(model, dataset), (arch, name)
        results = interp.run(inputs, model, dataset, model_outputs=outputs, config=config)
        for r in results:
            _finite_map(r[field])


def _delta_f(clf, example):
    """F(input) − F(zero baseline) for the predicted class, by two plain forwards."""
    batch = clf.encode([example])
    with torch.no_grad():
        kwargs = {k: v for k, v in batch["enc"].items() if k != "input_ids"}
        if clf.head.takes_position_ids:
            mask = batch["enc"]["attention_mask"]
            kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
        x = torch.softmax(clf.model(inputs_embeds=batch["embs"], **kwargs).logits, -1)[0]
        b = torch.softmax(
            clf.model(inputs_embeds=torch.zeros_like(batch["embs"]), **kwargs).logits, -1
        )[0]
    target = int(x.argmax())
    return float(x[target] - b[target])


def test_ig_and_layer_conductance_are_complete_at_their_defaults(app):
    arch, model, clf, dataset, interpreters = app
    example = dataset.examples[0]
    want = _delta_f(clf, example)
    (ig,) = interpreters[registration.INTEGRATED_GRADIENTS].run([example], model, dataset)
    (layer,) = interpreters[registration.LAYER_CONDUCTANCE].run(
        [example], model, dataset, config={conductance.LAYER_KEY: 1}
    )
    for name, result in (("IG", ig), ("layer conductance", layer)):
        report = ig_interp.completeness_dict(result[ig_interp.COMPLETENESS_KEY])
        assert report["F(input) - F(baseline)"] == pytest.approx(want, abs=1e-5), (arch, name)
        assert report["relative completeness error"] <= 0.01, (arch, name, report)
    total = float(np.sum(layer["token_conductance"].salience))
    assert total == pytest.approx(want, rel=0.01, abs=1e-6), arch  # unnormalised: sums to ΔF
    (neurons,) = interpreters[registration.NEURON_CONDUCTANCE].run(
        [example], model, dataset, config={conductance.NEURONS_KEY: "L1 n3, L1 n7"}
    )
    maps = [v for k, v in neurons.items() if k.startswith("L1 n")]
    assert len(maps) == 2
    for value in maps:
        assert np.isfinite(value.salience).all()


def test_probe_txray_and_faithfulness(app):
    arch, model, _, dataset, interpreters = app
    probe = interpreters[registration.LINEAR_PROBE]
    state = probe.fit(model, dataset, {})
    assert state.scores and all(0.0 <= s <= 1.0 for s in state.scores.values()), arch
    (res,) = probe.run(dataset.examples[:1], model, dataset)
    _finite_map(res["probe_token_salience"])

    txray = interpreters[registration.TXRAY_SHIFT]
    config = {txray_shift.REFERENCE_KEY: "reference", txray_shift.REPLICATES_KEY: 0}
    shift = txray.fit(model, dataset, config)
    assert shift.num_shared > 0 and np.isfinite(shift.distance).all(), arch

    table = salience_evaluation.evaluate(
        model,
        dataset.examples[:3],
        [registration.GRADIENT_NORM, "Grad ⋅ Input"],
        interpreters=interpreters,
    )
    assert len(table) == 3 * 3  # two methods and the random baseline
    for metric in ("comprehensiveness", "sufficiency", "tau_loo"):
        assert np.isfinite(table[metric].to_numpy(dtype=float)).any(), (arch, metric)


def test_tcav_clustering_and_hotflip(app):
    arch, model, clf, dataset, interpreters = app
    tcav = interpreters["tcav"]
    # A class some examples are predicted as (LIT's TCAV divides by their number).
    predicted = [out["grad_class"] for out in model.predict(dataset.examples)]
    config = {
        "concept_set_ids": [ex["_id"] for ex in dataset.examples[:4]],
        "class_to_explain": max(set(predicted), key=predicted.count),
        "grad_layer": clf.pooled_grad_field,
    }
    assert clf.pooled_grad_field == "last_token_grad"
    result = tcav.run(dataset.examples, model, dataset, config=config)
    assert 0.0 <= result[0]["result"]["score"] <= 1.0, arch

    clustering = interpreters[registration.SALIENCE_CLUSTERING]
    result = clustering.run(
        dataset.examples[:6],
        model,
        dataset,
        config={
            salience_clustering.SALIENCE_MAPPER_KEY: registration.GRADIENT_NORM,
            salience_clustering.N_CLUSTERS_KEY: 2,
        },
    )
    assert set(result[salience_clustering.CLUSTER_ID_KEY]["token_grads"]) <= {0, 1}

    generator = core.default_generators()["Hotflip"]
    example = dataset.examples[0]
    for cf in generator.generate(
        example,
        model,
        dataset,
        config={
            hotflip.PREDICTION_KEY: "probas",
            hotflip.FIELDS_TO_HOTFLIP_KEY: ["tokens"],
            hotflip.NUM_EXAMPLES_KEY: "1",
            hotflip.MAX_FLIPS_KEY: "2",
        },
    ):
        again = next(iter(model.predict([cf])))
        assert again["tokens"] == cf["tokens"]  # the model saw HotFlip's pieces
