"""Every LIT 1.3 built-in that fits a text classifier works on our wrapper.

Enumerates `lit_nlp.components.core`'s default interpreters, generators and
metrics. Each one is either in APPLICABLE (must say `is_compatible` on
HFSequenceClassifier for tiny BERT, DistilBERT and RoBERTa, and must run on a
small batch) or in NOT_APPLICABLE with the reason; a LIT upgrade that adds a
default component fails `test_every_default_component_is_classified` until it
is sorted into one of the two.

TCAV and HotFlip also run end-to-end over LIT's HTTP API on the demo server
(the fine-tuned MiniLM), as the UI calls them.
"""

import numpy as np
import pytest
from absl import logging as absl_logging
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import dtypes
from lit_nlp.api import types as lit_types
from lit_nlp.components import (
    ablation_flip,
    core,
    hotflip,
    salience_clustering,
    scrambler,
    word_replacer,
)
from lit_nlp.lib import caching

from lit_plugins.app import registration
from lit_plugins.lit.model import HFSequenceClassifier
from tests.kit import sentiment_data, tiny_models
from tests.kit.demo_server import demo_server
from tests.kit.demo_server import post as _post

LABELS = sentiment_data.LABELS

# name -> why it does not apply to a text classifier. Optional defaults
# (present only when their extra package is installed) are marked.
NOT_APPLICABLE = {
    "interpreters": {
        "regression": "regression-only (RegressionScore outputs); a 1-output head gets it",
        "Model-provided salience": "for models whose predict() returns salience "
        "fields; ours come from interpreters (LIT's and lit-plugins')",
        "pdp": "partial dependence over tabular Scalar/CategoryLabel input features; "
        "a text classifier's only such inputs are the gold label and grad_class, "
        "which do not feed the forward pass (LIT's is_compatible still says yes)",
        "Tabular SHAP": "tabular inputs only (optional: needs shap)",
    },
    "generators": {},
    "metrics": {
        "regression": "regression-only (RegressionScore)",
        "multilabel": "multi-label (SparseMultilabelPreds)",
        "bleu": "seq2seq (GeneratedText)",
        "rouge": "seq2seq (GeneratedText)",
        "exactmatch": "seq2seq (GeneratedText)",
    },
}
OPTIONAL = {"umap", "Tabular SHAP"}  # defaults only with umap-learn / shap installed

# name -> config for a small run (what the UI would send).
INTERPRETER_CONFIGS = {
    "classification": {},
    "tcav": None,  # built per dataset (concept set ids), see _tcav_config
    "curves": {"Label": "pos"},
    "thresholder": {},
    "Salience Clustering": {
        salience_clustering.SALIENCE_MAPPER_KEY: registration.GRADIENT_NORM,
        salience_clustering.N_CLUSTERS_KEY: 2,
    },
    "Grad L2 Norm": {},
    "Grad ⋅ Input": {},
    "Integrated Gradients": {"Interpolation steps": 4},
    "LIME": {"Number of samples": 16},
    "nearest neighbors": {"embedding_name": "cls_emb", "num_neighbors": 3},
    "pca": {"field_name": "cls_emb", "proj_kw": {"n_components": 2}},
    "umap": {"field_name": "cls_emb", "proj_kw": {"n_components": 2, "n_neighbors": 3}},
}
GENERATOR_CONFIGS = {
    "Ablation Flip": {
        ablation_flip.PREDICTION_KEY: "probas",
        ablation_flip.FIELDS_TO_ABLATE_KEY: ["sentence"],
        ablation_flip.MAX_ABLATIONS_KEY: "1",
    },
    "Hotflip": {
        hotflip.PREDICTION_KEY: "probas",
        hotflip.FIELDS_TO_HOTFLIP_KEY: ["tokens"],
        hotflip.NUM_EXAMPLES_KEY: "1",
        hotflip.MAX_FLIPS_KEY: "1",
    },
    "Scrambler": {scrambler.FIELDS_TO_SCRAMBLE_KEY: ["sentence"]},
    "Word Replacer": {
        word_replacer.SUBSTITUTIONS_KEY: "film -> movie",
        word_replacer.FIELDS_TO_REPLACE_KEY: ["sentence"],
    },
}
METRICS = ("multiclass", "paired")


def _defaults():
    return {
        "interpreters": core.default_interpreters({}),
        "generators": core.default_generators(),
        "metrics": core.default_metrics(),
    }


@pytest.fixture(scope="module", params=["bert", "distilbert", "roberta"])
def app_parts(request):
    """(arch, the wrapper as LIT serves it (caching), dataset, interpreters)."""
    absl_logging.set_verbosity(absl_logging.ERROR)  # LIT logs every cache miss
    model, tok = tiny_models.make(request.param)
    clf = HFSequenceClassifier(model=model, tokenizer=tok, labels=LABELS, batch_size=16)
    served = caching.CachingModelWrapper(clf, request.param)
    interpreters = registration.plugin_interpreters(
        {request.param: served}, include_lit_defaults=True
    )
    yield request.param, served, sentiment_data.indexed_dataset(), interpreters
    absl_logging.set_verbosity(absl_logging.INFO)


def _tcav_config(dataset, class_to_explain="pos"):
    return {
        "concept_set_ids": [ex["_id"] for ex in dataset.examples[:4]],
        "class_to_explain": class_to_explain,
        "grad_layer": "cls_grad",
    }


def test_every_default_component_is_classified():
    defaults = _defaults()
    applicable = {
        "interpreters": set(INTERPRETER_CONFIGS),
        "generators": set(GENERATOR_CONFIGS),
        "metrics": set(METRICS),
    }
    for kind, found in defaults.items():
        names = set(found)
        sorted_out = applicable[kind] | set(NOT_APPLICABLE[kind])
        assert not names - sorted_out, f"unclassified LIT default {kind}: {names - sorted_out}"
        missing = sorted_out - names - OPTIONAL
        assert not missing, f"{kind} no longer among LIT's defaults: {missing}"
        assert not applicable[kind] & set(NOT_APPLICABLE[kind])


def test_applicable_interpreters_are_compatible_and_run(app_parts):
    arch, model, dataset, interpreters = app_parts
    inputs = dataset.examples[:4]
    outputs = list(model.predict(inputs))
    for name, config in INTERPRETER_CONFIGS.items():
        if name not in interpreters:
            assert name in OPTIONAL
            continue
        interp = interpreters[name]
        assert interp.is_compatible(model, dataset), (arch, name)
        if name == "tcav":
            result = interp.run(dataset.examples, model, dataset, config=_tcav_config(dataset))
            assert 0.0 <= result[0]["result"]["score"] <= 1.0
            assert len(result[0]["result"]["cos_sim"]) == len(dataset)
            continue
        n = 1 if name == "nearest neighbors" else len(inputs)  # it takes one example
        result = interp.run(inputs[:n], model, dataset, model_outputs=outputs[:n], config=config)
        assert result, (arch, name)
        if name == "Salience Clustering":
            assert len(result[salience_clustering.CLUSTER_ID_KEY]["token_grads"]) == len(inputs)
        elif name in ("Grad L2 Norm", "Grad ⋅ Input", "Integrated Gradients", "LIME"):
            field = "sentence" if name == "LIME" else "token_grads"
            for res in result:
                assert isinstance(res[field], dtypes.TokenSalience)
                assert np.all(np.isfinite(res[field].salience))


def test_not_applicable_regression_components_apply_to_a_regression_head():
    model, tok = tiny_models.make("bert", num_labels=1)
    clf = HFSequenceClassifier(model=model, tokenizer=tok)
    spec = {"sentence": lit_types.TextSegment(), "label": lit_types.Scalar()}
    ds = lit_dataset.Dataset(spec=spec, examples=[{"sentence": "fun", "label": 1.0}])
    assert core.default_interpreters({})["regression"].is_compatible(clf, ds)
    assert core.default_metrics()["regression"].is_compatible(clf, ds)


def test_applicable_generators_are_compatible_and_run(app_parts):
    arch, model, dataset, _ = app_parts
    generators = core.default_generators()
    for name, config in GENERATOR_CONFIGS.items():
        gen = generators[name]
        assert gen.is_compatible(model, dataset), (arch, name)
        # LIT 1.3's Scrambler loops forever on a one-word text: multi-word only.
        inputs = [ex for ex in dataset.examples if len(set(ex["sentence"].split())) > 1][:3]
        generated = gen.run(inputs, model, dataset, config=config)
        assert len(generated) == len(inputs)
        if name == "Scrambler":
            assert all(generated), (arch, name)
        if name == "Word Replacer":  # only the first example has "film"
            assert [len(g) for g in generated] == [1, 0, 0], (arch, name)


def test_hotflip_flips_the_prediction(app_parts):
    """HotFlip's counterfactuals: its flipped word pieces go back into the
    model as `tokens` and change the predicted class."""
    arch, model, dataset, _ = app_parts
    gen = core.default_generators()["Hotflip"]
    config = dict(GENERATOR_CONFIGS["Hotflip"])
    flips = 0
    for ex in dataset.examples[:3]:
        original = next(iter(model.predict([ex])))
        for cf in gen.generate(ex, model, dataset, config=config):
            flips += 1
            assert cf["sentence"] == " ".join(cf["tokens"])
            changed = [a != b for a, b in zip(cf["tokens"], original["tokens"])]
            assert len(cf["tokens"]) == len(original["tokens"]) and sum(changed) == 1
            again = next(iter(model.predict([cf])))
            assert again["tokens"] == cf["tokens"]  # the model saw HotFlip's pieces
            assert np.argmax(again["probas"]) != np.argmax(original["probas"])
    assert flips, arch


def test_applicable_metrics_are_compatible_and_run(app_parts):
    arch, model, dataset, _ = app_parts
    metrics = core.default_metrics()
    parent = dataset.examples[0]
    child = dict(parent, sentence="boring", _id="child", _meta={"parentId": parent["_id"]})
    inputs = [*dataset.examples[:4], child]
    outputs = list(model.predict(inputs))
    for name in METRICS:
        metric = metrics[name]
        assert metric.is_compatible(model, dataset), (arch, name)
        result = metric.run(inputs, model, dataset, model_outputs=outputs)
        assert result and result[0]["pred_key"] == "probas", (arch, name)
        assert result[0]["metrics"], (arch, name)


def test_salience_clustering_offers_every_salience_method():
    model, tok = tiny_models.make("bert")
    clf = HFSequenceClassifier(model=model, tokenizer=tok, labels=LABELS)
    dataset = sentiment_data.indexed_dataset()
    clustering = registration.plugin_interpreters()[registration.SALIENCE_CLUSTERING]
    mappers = clustering.config_spec()[salience_clustering.SALIENCE_MAPPER_KEY].vocab
    assert set(mappers) == {
        "Grad L2 Norm",
        "Grad ⋅ Input",
        "Integrated Gradients",
        "LIME",
        registration.GRADIENT_NORM,
        registration.GRADIENT_DOT_INPUT,
        registration.INTEGRATED_GRADIENTS,
        registration.LAYER_CONDUCTANCE,
    }
    for mapper in mappers:
        config = {
            salience_clustering.SALIENCE_MAPPER_KEY: mapper,
            salience_clustering.N_CLUSTERS_KEY: 2,
            "Number of samples": 16,  # LIME
            "Interpolation steps": 4,  # both IGs
        }
        result = clustering.run(dataset.examples[:6], clf, dataset, config=config)
        ids = result[salience_clustering.CLUSTER_ID_KEY]
        field = {"LIME": "sentence", registration.LAYER_CONDUCTANCE: "token_conductance"}.get(
            mapper, "token_grads"
        )
        assert list(ids) == [field], mapper  # IG's completeness report is not clustered
        assert len(ids[field]) == 6 and set(ids[field]) <= {0, 1}
        assert np.all(np.isfinite(result[salience_clustering.REPRESENTATION_KEY][field]))


# ----------------------------------------------------- over LIT's HTTP API
@pytest.fixture(scope="module")
def server(minilm_finetuned, tmp_path_factory):
    del minilm_finetuned  # cached checkpoint first
    log = tmp_path_factory.mktemp("compat_server") / "server.log"
    with demo_server(log, max_examples=12, extra_args=("--batch_size=16",)) as (port, _, _):
        yield port


MODEL = "minilm-finetuned"
DATASET = "sentiment-dev"


def test_demo_offers_tcav_hotflip_and_clustering(server):
    info = _post(server, "get_info")
    for name in info["models"]:
        assert "tcav" in info["models"][name]["interpreters"]
        assert registration.SALIENCE_CLUSTERING in info["models"][name]["interpreters"]
        assert "Hotflip" in info["models"][name]["generators"]
    mappers = info["interpreters"][registration.SALIENCE_CLUSTERING]["configSpec"][
        salience_clustering.SALIENCE_MAPPER_KEY
    ]["vocab"]
    assert registration.INTEGRATED_GRADIENTS in mappers and "LIME" in mappers


def test_tcav_over_http(server):
    data = _post(server, "get_dataset", {"dataset_name": DATASET})
    labels = _post(server, "get_info")["models"][MODEL]["spec"]["output"]["probas"]["vocab"]
    # As the UI's TCAV module sends it: all datapoints, a concept slice of >= 3.
    config = {
        "concept_set_ids": [ex["id"] for ex in data[:4]],
        "class_to_explain": labels[1],
        "grad_layer": "cls_grad",
    }
    params = {"model": MODEL, "dataset_name": DATASET, "interpreter": "tcav", "do_predict": 1}
    result = _post(server, "get_interpretations", params, {"inputs": data, "config": config})
    assert 0.0 <= result[0]["result"]["score"] <= 1.0
    assert 0.0 <= result[0]["p_val"] <= 1.0
    assert len(result[0]["result"]["cos_sim"]) == len(data)


def test_hotflip_over_http(server):
    data = _post(server, "get_dataset", {"dataset_name": DATASET})
    config = {
        hotflip.PREDICTION_KEY: "probas",
        hotflip.FIELDS_TO_HOTFLIP_KEY: ["tokens"],
        hotflip.NUM_EXAMPLES_KEY: "1",
        hotflip.MAX_FLIPS_KEY: "2",
        hotflip.TOKENS_TO_IGNORE_KEY: ["[CLS]", "[SEP]"],
        hotflip.REGRESSION_THRESH_KEY: "0",  # the UI sends every field
    }
    params = {"model": MODEL, "dataset_name": DATASET, "generator": "Hotflip"}
    generated = _post(server, "get_generated", params, {"inputs": data[:4], "config": config})
    flips = [(parent, cf) for parent, cfs in zip(data[:4], generated) for cf in cfs]
    assert flips
    pred = {"model": MODEL, "dataset_name": DATASET}
    for parent, cf in flips:
        assert cf["meta"]["parentId"] == parent["id"]
        tokens = cf["data"]["tokens"]
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"  # ignored tokens stay
        before, after = _post(
            server,
            "get_preds",
            dict(pred, requested_types="MulticlassPreds,Tokens"),
            {"inputs": [parent, cf]},
        )
        assert after["tokens"] == tokens
        assert np.argmax(after["probas"]) != np.argmax(before["probas"])
