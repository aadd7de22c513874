"""Multi-label heads (problem_type="multi_label_classification") in LIT: predictions,
gold labels, metrics, and every salience method explaining one chosen label.

Every number is checked against one computed here without our code: HF's own
forward (sigmoid of its logits, autograd through it, central finite differences),
scikit-learn's metrics on binarised labels, IG completeness against F(x) - F(0) from
HF's forward on zero word embeddings.
"""

import glob
import json
import os

import numpy as np
import pytest
import torch
from lit_nlp.api import types as lit_types
from lit_nlp.components import core as lit_core
from lit_nlp.components import metrics as lit_metrics
from lit_nlp.lib import caching
from sklearn import metrics as sk_metrics

from lit_plugins.app import registration
from lit_plugins.data import loaders
from lit_plugins.hf import heads
from lit_plugins.lit import interpreters as ours
from lit_plugins.lit import multilabel, multilabel_metrics
from lit_plugins.lit.interpreters import common
from lit_plugins.lit.interpreters import integrated_gradients as ig_interp
from lit_plugins.lit.model import HFSequenceClassifier
from tests.kit import tiny_models

LABELS = list(loaders.RESTAURANT_LABELS)
TEXTS = [
    "the film was not bad at all",
    "a great movie",
    "i loved it but the plot was slow",
]
RTOL, ATOL = 1e-5, 1e-6  # float32 rounding


def _multi_label_model(arch="bert", seed=0):
    model, tok = tiny_models.make(arch, num_labels=len(LABELS), seed=seed)
    model.config.problem_type = heads.MULTI_LABEL
    return model, tok


def _clf(arch="bert", double=False, **kw):
    model, tok = _multi_label_model(arch)
    if double:
        model = model.double()
    return HFSequenceClassifier(model=model, tokenizer=tok, labels=LABELS, **kw)


@pytest.fixture(scope="module")
def clf():
    return _clf("bert", batch_size=4)


def _hf_probs(model, tok, text) -> np.ndarray:
    """HF's own forward on the unpadded text, sigmoid of its logits."""
    with torch.no_grad():
        return torch.sigmoid(model(**tok(text, return_tensors="pt")).logits)[0].double().numpy()


def _hf_inputs(clf, text):
    enc = clf.tokenizer(text, return_tensors="pt")
    emb = clf.model.get_input_embeddings()(enc["input_ids"]).detach()
    return emb, {k: v for k, v in enc.items() if k != "input_ids"}


def _hf_label_prob(clf, emb, kw, k) -> torch.Tensor:
    return torch.sigmoid(clf.model(inputs_embeds=emb, **kw).logits)[0, k]


def _hf_grad(clf, text, k) -> tuple[np.ndarray, np.ndarray]:
    """(word embeddings, d sigmoid(logit_k) / d word embeddings) by HF autograd."""
    emb, kw = _hf_inputs(clf, text)
    emb = emb.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_hf_label_prob(clf, emb, kw, k), emb)
    return emb.detach()[0].double().numpy(), grad[0].double().numpy()


def _scores(scored) -> np.ndarray:
    return np.array([p for _, p in scored], dtype=np.float64)


# ------------------------------------------------------------ predictions --
@pytest.mark.parametrize("arch", ["bert", "roberta", "gpt2"])
def test_predictions_are_hf_sigmoids_alone_and_in_a_padded_batch(arch):
    clf = _clf(arch, batch_size=8)
    spec_in, spec_out = clf.input_spec(), clf.output_spec()
    assert isinstance(spec_out["probas"], lit_types.SparseMultilabelPreds)
    assert spec_out["probas"].vocab == LABELS and spec_out["probas"].parent == "label"
    assert isinstance(spec_in["label"], lit_types.SparseMultilabel)
    assert spec_in["grad_class"].vocab == LABELS  # the "class to explain" lists the labels
    batch = list(clf.predict([{"sentence": t} for t in TEXTS]))
    for text, out in zip(TEXTS, batch):
        (alone,) = clf.predict([{"sentence": text}])
        assert [l for l, _ in out["probas"]] == LABELS
        hf = _hf_probs(clf.model, clf.tokenizer, text)
        np.testing.assert_allclose(_scores(out["probas"]), hf, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(_scores(alone["probas"]), hf, rtol=RTOL, atol=ATOL)
        # Not a softmax: the probabilities need not sum to 1.
        assert abs(hf.sum() - 1.0) > 1e-3
        # The default label to explain is the highest-scoring one.
        assert out["grad_class"] == LABELS[int(np.argmax(hf))]


def test_threshold_is_checked_and_offered_in_the_load_dialog():
    model, tok = _multi_label_model()
    for bad in (-0.1, 1.5, float("nan"), "high"):
        with pytest.raises(ValueError, match=r"threshold must be a probability in \[0, 1\]"):
            HFSequenceClassifier(model=model, tokenizer=tok, threshold=bad)
    assert HFSequenceClassifier(model=model, tokenizer=tok, threshold=0.25).threshold == 0.25
    spec = HFSequenceClassifier.init_spec()["threshold"]
    assert (spec.default, spec.min_val, spec.max_val) == (0.5, 0, 1)


# -------------------------------------------------------------- gradients --
@pytest.mark.parametrize("target", [None, "price"])
def test_gradient_is_the_labels_sigmoid_by_finite_differences(target):
    clf = _clf(double=True)
    text = TEXTS[2]
    ex = {"sentence": text} if target is None else {"sentence": text, "grad_class": target}
    (out,) = clf.predict([ex])
    probs = _hf_probs(clf.model, clf.tokenizer, text)
    k = int(np.argmax(probs)) if target is None else LABELS.index(target)
    assert out["grad_class"] == LABELS[k]
    emb, kw = _hf_inputs(clf, text)
    rng = np.random.default_rng(0)
    for _ in range(3):
        v = torch.from_numpy(rng.normal(size=tuple(emb.shape)))
        h = 1e-5
        with torch.no_grad():
            up = _hf_label_prob(clf, emb + h * v, kw, k)
            down = _hf_label_prob(clf, emb - h * v, kw, k)
        fd = float(up - down) / (2 * h)
        analytic = float(np.sum(out["token_grads"] * v[0].numpy()))
        assert abs(fd - analytic) <= 1e-5 * abs(fd) + 1e-9, (fd, analytic)


# ------------------------------------------------- every salience method --
@pytest.mark.parametrize("label", ["food", "ambience"])
def test_gradient_maps_explain_the_chosen_label(clf, label):
    """LIT's Grad L2 / Grad · Input (label pinned in `grad_class`) and ours (label
    in 'Class to explain') against HF autograd of that label's sigmoid."""
    k = LABELS.index(label)
    text = TEXTS[0]
    emb, grad = _hf_grad(clf, text, k)
    norm = np.linalg.norm(grad, axis=1)
    dot = np.sum(grad * emb, axis=1)
    lit_all = lit_core.default_interpreters({})
    pinned = [{"sentence": text, "grad_class": label}]
    lit_norm = lit_all["Grad L2 Norm"].run(pinned, clf, None)[0]["token_grads"].salience
    lit_dot = lit_all["Grad ⋅ Input"].run(pinned, clf, None)[0]["token_grads"].salience
    np.testing.assert_allclose(lit_norm, norm / norm.sum(), rtol=1e-4, atol=1e-6)
    eps = np.finfo(np.float32).eps  # LIT adds it before normalising
    np.testing.assert_allclose(lit_dot, (dot + eps) / np.abs(dot + eps).sum(), rtol=1e-4, atol=1e-6)
    config = {common.CLASS_KEY: label}
    plain = [{"sentence": text}]
    our_norm = ours.GradientNorm().run(plain, clf, None, config=config)[0]["token_grads"]
    our_dot = ours.GradientDotInput().run(plain, clf, None, config=config)[0]["token_grads"]
    # With the default config, LIT's normalisation (eps included).
    np.testing.assert_allclose(our_norm.salience, norm / norm.sum(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        our_dot.salience, (dot + eps) / np.abs(dot + eps).sum(), rtol=1e-4, atol=1e-6
    )


def _delta_f(clf, text, k) -> float:
    """F(x) - F(zero word embeddings) for label k, from HF's forward."""
    emb, kw = _hf_inputs(clf, text)
    with torch.no_grad():
        return float(_hf_label_prob(clf, emb, kw, k) - _hf_label_prob(clf, 0 * emb, kw, k))


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_ig_and_conductance_are_complete_for_the_chosen_label(arch):
    clf = _clf(arch)
    examples = [{"sentence": t} for t in TEXTS[:2]]
    probs = [_hf_probs(clf.model, clf.tokenizer, t) for t in TEXTS[:2]]
    for label in (None, "service"):  # None: the highest-scoring label
        config = {common.CLASS_KEY: label or "", common.NORMALIZATION_KEY: False}
        ig = ours.IntegratedGradients().run(examples, clf, None, config=config)
        layer = ours.LayerConductance().run(examples, clf, None, config=config)
        for text, p, r, c in zip(TEXTS, probs, ig, layer):
            k = int(np.argmax(p)) if label is None else LABELS.index(label)
            delta = _delta_f(clf, text, k)
            total = float(np.sum(r["token_grads"].salience))
            assert total == pytest.approx(delta, rel=1e-2, abs=1e-6), (arch, label)
            report = ig_interp.completeness_dict(r["completeness"])
            assert report["F(input) - F(baseline)"] == pytest.approx(delta, rel=1e-4, abs=1e-6)
            layer_report = ig_interp.completeness_dict(c["completeness"])
            assert layer_report["F(input) - F(baseline)"] == pytest.approx(
                delta, rel=1e-4, abs=1e-6
            )
            assert layer_report["relative completeness error"] <= 1e-2


def test_lit_ig_lime_and_neuron_conductance_follow_the_chosen_label(clf):
    text = TEXTS[1]
    probs = _hf_probs(clf.model, clf.tokenizer, text)
    top = int(np.argmax(probs))
    other = (top + 1) % len(LABELS)
    lit_all = registration.plugin_interpreters({}, include_lit_defaults=True)
    ex = [{"sentence": text}]
    # LIT's IG, the label named in its config: sums to about F(x) - F(0) of that label.
    for k in (top, other):
        res = lit_all["Integrated Gradients"].run(
            ex,
            clf,
            None,
            config={"Class to explain": LABELS[k], "Normalize": False, "Interpolation steps": 64},
        )
        total = float(np.sum(res[0]["token_grads"].salience))
        assert total == pytest.approx(_delta_f(clf, text, k), rel=0.05, abs=1e-5)
    # LIME (seeded): the default explains the highest-scoring label.
    lime = lit_all["LIME"]
    default = lime.run(ex, clf, None, config={"Seed": 0})[0]["sentence"].salience
    chosen = lime.run(ex, clf, None, config={"Seed": 0, "Class index to explain": top})
    np.testing.assert_allclose(default, chosen[0]["sentence"].salience, rtol=1e-6)
    # Neuron conductance: the listed neurons' conductances sum to the label's layer total.
    config = {common.CLASS_KEY: LABELS[other], "Layer (0 = embedding output)": 1}
    res = ours.NeuronConductance().run(ex, clf, None, config=config)[0]
    report = ig_interp.completeness_dict(res["completeness"])
    assert report["F(input) - F(baseline)"] == pytest.approx(
        _delta_f(clf, text, other), rel=1e-4, abs=1e-6
    )


def test_faithfulness_scores_the_pinned_label_or_the_top_one(clf):
    interps = registration.plugin_interpreters({}, include_lit_defaults=False)
    faith = interps[registration.SALIENCE_FAITHFULNESS]
    text = TEXTS[0]
    probs = _hf_probs(clf.model, clf.tokenizer, text)
    for pinned in (None, "price"):
        ex = {"sentence": text} if pinned is None else {"sentence": text, "grad_class": pinned}
        k = int(np.argmax(probs)) if pinned is None else LABELS.index(pinned)
        out = faith.run([ex], clf, None, config={})[0]
        settings = " ".join(out["settings"].tokens)
        assert f"explained class {LABELS[k]} (p = {probs[k]:.4f})" in settings, settings


# ---------------------------------------------------------------- metrics --
def _by_hand(gold, probs, threshold) -> dict[str, float]:
    y_true = np.array([[l in g for l in LABELS] for g in gold], dtype=int)
    y_pred = (probs > threshold).astype(int)
    kw = dict(average="samples", zero_division=0)
    return {
        "exactmatch": sk_metrics.accuracy_score(y_true, y_pred),
        "precision": sk_metrics.precision_score(y_true, y_pred, **kw),
        "recall": sk_metrics.recall_score(y_true, y_pred, **kw),
        "f1": sk_metrics.f1_score(y_true, y_pred, **kw),
    }


def test_lit_multilabel_metrics_match_sklearn_at_the_models_threshold():
    ds = loaders.load_bundled_restaurant()
    gold = [ex["label"] for ex in ds.examples]
    clf = _clf(threshold=0.3, batch_size=16)
    model = caching.CachingModelWrapper(clf, "ml")
    probs = np.array([_hf_probs(clf.model, clf.tokenizer, ex["sentence"]) for ex in ds.examples])
    # LIT's own component: fixed at 0.5, and it accepts our fields.
    (lit_result,) = lit_metrics.MultilabelMetrics().run(ds.examples, model, ds)
    assert (lit_result["pred_key"], lit_result["label_key"]) == ("probas", "label")
    at_half = _by_hand(gold, probs, 0.5)
    assert lit_result["metrics"] == pytest.approx(at_half, rel=1e-9)
    # Ours, as served: the model's threshold.
    served = multilabel_metrics.plugin_metrics()[multilabel_metrics.METRICS_NAME]
    assert isinstance(served, lit_metrics.MultilabelMetrics)
    (result,) = served.run(ds.examples, model, ds)
    at_model = _by_hand(gold, probs, 0.3)
    assert result["metrics"] == pytest.approx(at_model, rel=1e-9)
    assert at_model != pytest.approx(at_half)  # the threshold matters on this data


# ------------------------------------------------------------------- data --
def test_bundled_restaurant_set():
    ds = loaders.load_bundled_restaurant()
    assert 40 <= len(ds) <= 80
    spec = ds.spec()["label"]
    assert isinstance(spec, lit_types.SparseMultilabel) and spec.vocab == LABELS
    assert _clf().is_compatible_with_dataset(ds)  # LIT pairs the label fields
    counts = [len(ex["label"]) for ex in ds.examples]
    assert min(counts) == 0 and max(counts) >= 3  # none, one or several labels
    assert all(set(ex["label"]) <= set(LABELS) for ex in ds.examples)
    assert all(any(l in ex["label"] for ex in ds.examples) for l in LABELS)
    assert len(loaders.load_bundled_restaurant(max_examples=5)) == 5


def test_package_data_includes_the_bundled_sets():
    import tomllib  # stdlib from Python 3.11

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["lit_plugins"]
    shipped = {
        os.path.abspath(p)
        for pattern in patterns
        for p in glob.glob(os.path.join(root, "lit_plugins", pattern))
    }
    assert os.path.join(loaders.RESTAURANT_DIR, "reviews.tsv") in shipped


def test_label_lists_from_tsv_csv_and_jsonl(tmp_path):
    (tmp_path / "a.tsv").write_text("text\ttopics\ngood food\tfood| price\nnothing\t\n")
    (tmp_path / "a.csv").write_text('text,topics\ngood food,food;price\nnothing,""\n')
    (tmp_path / "a.jsonl").write_text(
        json.dumps({"text": "good food", "topics": ["food", "price"]})
        + "\n"
        + json.dumps({"text": "nothing", "topics": []})
        + "\n"
    )
    for name, sep in (("a.tsv", "|"), ("a.csv", ";"), ("a.jsonl", "|")):
        ds = loaders.load_table(
            str(tmp_path / name),
            {"sentence": "text"},
            "topics",
            labels=LABELS,
            multi_label=True,
            label_separator=sep,
        )
        assert [ex["label"] for ex in ds.examples] == [["food", "price"], []], name
        assert ds.spec()["label"].vocab == LABELS


def test_unknown_gold_label_is_refused_with_the_accepted_ones(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("sentence\tlabels\nfine\tfood\nodd\tfood|drinks\n")
    with pytest.raises(ValueError, match=r"Row 1: labels \['drinks'\] are not labels") as e:
        loaders.load_table(
            str(path), {"sentence": "sentence"}, "labels", labels=LABELS, multi_label=True
        )
    assert str(LABELS) in str(e.value)
    with pytest.raises(ValueError, match="list of label names"):
        loaders.RecordsDataset(
            [{"sentence": "x", "labels": 3}], {"sentence": "sentence"}, "labels", multi_label=True
        )


# ------------------------------------------------------------------ probe --
def test_probe_refuses_a_multi_label_field_without_a_label_and_probes_one_vs_rest():
    from lit_plugins.lit import probe_inputs

    ds = loaders.load_bundled_restaurant()
    model = caching.CachingModelWrapper(_clf(batch_size=16), "ml")
    probe = ours.LinearProbeInterpreter()
    assert probe.is_compatible(model, ds)
    with pytest.raises(ValueError, match=r"probe one label against the rest.*'label:food'"):
        probe.run(ds.examples[:1], model, ds, config={})
    with pytest.raises(ValueError, match=r"'drinks' is not a label.*accepted: \['food'"):
        probe.run(ds.examples[:1], model, ds, config={"Label field": "label:drinks"})
    y = probe_inputs.collect_labels(ds.examples, "label:food", "sentence", "classification")
    want = ["food" if "food" in ex["label"] else "not food" for ex in ds.examples]
    assert list(y) == want
    out = probe.run(ds.examples[:1], model, ds, config={"Label field": "label:food", "Layer": "1"})
    sweep = common.chips_dict(out[0]["layer_sweep"])
    assert list(sweep) == ["layer 1"] and 0.0 <= sweep["layer 1"] <= 1.0


# ------------------------------------------------- loading, command line --
def test_load_model_dialog_sets_the_threshold(tmp_path):
    model, tok = _multi_label_model()
    ckpt = tmp_path / "ckpt"
    model.save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    load, spec = registration.safe_model_loader([tmp_path])
    assert "threshold" in spec
    loaded = load(str(ckpt), threshold=0.2)
    assert loaded.is_multi_label and loaded.threshold == 0.2
    assert multilabel.model_threshold(caching.CachingModelWrapper(loaded, "x")) == 0.2


def test_demo_flags_read_a_multi_label_file(tmp_path):
    from absl import flags
    from absl.testing import flagsaver

    from lit_plugins.cli import model_data

    path = tmp_path / "topics.csv"
    path.write_text("text,topics\ngood food,food;price\nslow staff,service\nnothing,\n")
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    clf = _clf()
    with flagsaver.flagsaver(
        dataset=str(path),
        label_column="topics",
        label_separator=";",
        text_fields=["sentence=text"],
        max_examples=None,
        labels=None,  # the model's labels (other tests may leave --labels set)
    ):
        (ds,) = model_data.load_dataset({"m": clf}).values()
    assert [ex["label"] for ex in ds.examples] == [["food", "price"], ["service"], []]
    assert clf.is_compatible_with_dataset(ds)
    with flagsaver.flagsaver(
        dataset=model_data.MULTI_LABEL_DATASET_NAME, max_examples=3, labels=None
    ):
        (ds,) = model_data.load_dataset({"m": clf}).values()
    assert len(ds) == 3 and clf.is_compatible_with_dataset(ds)


def test_attribute_rows_of_a_multi_label_model(clf):
    from lit_plugins.cli import attribute

    examples = [{"sentence": t} for t in TEXTS[:2]]
    rows = attribute.attribute_rows(
        clf, examples, 0, attribute.AttributeOptions(methods=(attribute.GRAD_NORM,))
    )
    for row, text in zip(rows, TEXTS):
        probs = _hf_probs(clf.model, clf.tokenizer, text)
        np.testing.assert_allclose(row["probabilities"], probs, rtol=RTOL, atol=ATOL)
        assert row["prediction"] == row["target"] == LABELS[int(np.argmax(probs))]


def test_ig_through_lit_predict_alone_explains_the_chosen_label(clf):
    """A model seen only through LIT's API (no HF fast path): IG feeds interpolated
    embeddings back through `predict` and reads the label's score from the
    SparseMultilabelPreds field."""
    from tests.kit import fake_models

    lit_only = fake_models.LitApiOnly(clf)
    text = TEXTS[2]
    probs = _hf_probs(clf.model, clf.tokenizer, text)
    for label in (None, "ambience"):
        k = int(np.argmax(probs)) if label is None else LABELS.index(label)
        config = {
            common.CLASS_KEY: label or "",
            common.NORMALIZATION_KEY: False,
            common.INTERPOLATION_KEY: 16,  # through predict: keep it short
        }
        (res,) = ours.IntegratedGradients().run([{"sentence": text}], lit_only, None, config=config)
        report = ig_interp.completeness_dict(res["completeness"])
        delta = _delta_f(clf, text, k)
        assert report["F(input) - F(baseline)"] == pytest.approx(delta, rel=1e-4, abs=1e-6)
        assert float(np.sum(res["token_grads"].salience)) == pytest.approx(
            delta, rel=1e-2, abs=1e-6
        )
