"""A multi-label classifier in the demo, end to end in a real browser.

A tiny random multi-label BERT (problem_type="multi_label_classification", the
bundled restaurant topics as its labels, a word-level vocabulary of the bundled
sentences) is saved to a temporary directory and served by ``python -m demos.demo
--models=... --dataset=restaurant-topics --threshold=0.3``. Checked against numbers
computed here from HF's own forward of the saved checkpoint:

* /get_info: LIT's multi-label types, and LIT's multi-label metrics offered;
* /get_metrics: exact match, precision, recall and F1 equal scikit-learn's on the
  sigmoid probabilities thresholded at 0.3 (not LIT's fixed 0.5);
* /create_model (what LIT's load-model dialog sends): the same checkpoint with
  threshold 0.55 gets its metrics counted at 0.55;
* our Integrated Gradients for a chosen label: F(input) - F(baseline) of that label's
  sigmoid, and attributions that sum to it within 1 %;
* in Chromium: the Multilabel Results module lists every label with the selected
  sentence's probabilities and gold labels, the Metrics tab shows the metrics, and
  our Gradient Norm, with "Class to explain" typed into its settings, renders the
  map that the HTTP API gives for that label.

Needs Debian's Chromium (tests/browser_setup.sh) and `playwright`; no network.
"""

import re
import time

import numpy as np
import pytest
import torch
import transformers
from sklearn import metrics as sk_metrics

from lit_plugins.app import registration
from lit_plugins.data import loaders
from lit_plugins.hf import heads
from lit_plugins.lit.interpreters import common
from lit_plugins.lit.interpreters import integrated_gradients as ig_interp
from tests.kit import browser as browser_kit
from tests.kit.demo_server import demo_server, interpret, post

MODEL = "topics"
DATASET = "restaurant-topics"
LABELS = list(loaders.RESTAURANT_LABELS)
THRESHOLD = 0.3
EXAMPLE_INDEX = 4  # "Great dumplings, friendly staff, and the bill ..." (3 gold labels)
CHOSEN = "service"  # the label explained on request
UI_TIMEOUT_MS = 60_000


def _checkpoint(path):
    """A tiny random multi-label BERT whose word-level vocab covers the bundled set."""
    texts = [ex["sentence"] for ex in loaders.load_bundled_restaurant().examples]
    words = sorted({w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower())})
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(specials + words)}
    tok = transformers.BertTokenizerFast(vocab=vocab, do_lower_case=True, model_max_length=64)
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=len(LABELS),
        problem_type=heads.MULTI_LABEL,
        id2label=dict(enumerate(LABELS)),
        label2id={l: i for i, l in enumerate(LABELS)},
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config).eval()
    with torch.no_grad():  # spread the random sigmoids out from 0.5
        model.classifier.weight.mul_(20.0)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return model, tok


def _probs(model, tok, text) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(model(**tok(text, return_tensors="pt")).logits)[0].double().numpy()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(port, HF model, tokenizer, served examples, seconds to start, checkpoint dir)."""
    ckpt = tmp_path_factory.mktemp("multilabel_ckpt")
    model, tok = _checkpoint(ckpt)
    log = tmp_path_factory.mktemp("multilabel_server") / "server.log"
    start = time.time()
    args = (f"--models={MODEL}:{ckpt}", f"--dataset={DATASET}", f"--threshold={THRESHOLD}")
    with demo_server(log, max_examples=80, start_s=240, extra_args=args) as (port, _, _):
        examples = post(port, "get_dataset", {"dataset_name": DATASET})
        yield port, model, tok, examples, time.time() - start, ckpt


def _by_hand(examples, model, tok, threshold=THRESHOLD) -> dict[str, float]:
    gold = np.array([[l in ex["data"]["label"] for l in LABELS] for ex in examples], dtype=int)
    probs = np.array([_probs(model, tok, ex["data"]["sentence"]) for ex in examples])
    pred = (probs > threshold).astype(int)
    kw = dict(average="samples", zero_division=0)
    return {
        "exactmatch": sk_metrics.accuracy_score(gold, pred),
        "precision": sk_metrics.precision_score(gold, pred, **kw),
        "recall": sk_metrics.recall_score(gold, pred, **kw),
        "f1": sk_metrics.f1_score(gold, pred, **kw),
    }


def test_specs_and_metrics_over_http(served):
    port, model, tok, examples, *_ = served
    assert len(examples) == len(loaders.load_bundled_restaurant())
    info = post(port, "get_info")
    spec = info["models"][MODEL]["spec"]
    assert spec["output"]["probas"]["__name__"] == "SparseMultilabelPreds"
    assert spec["output"]["probas"]["vocab"] == LABELS
    assert spec["input"]["label"]["__name__"] == "SparseMultilabel"
    assert spec["input"]["grad_class"]["vocab"] == LABELS
    assert "multilabel" in info["models"][MODEL]["metrics"]
    assert info["models"][MODEL]["description"].endswith(f"multi-label, threshold {THRESHOLD}")
    (result,) = post(
        port,
        "get_metrics",
        {"model": MODEL, "dataset_name": DATASET, "metrics": "multilabel"},
        {"inputs": examples},
    )["multilabel"]
    assert result["pred_key"] == "probas" and result["label_key"] == "label"
    assert result["metrics"] == pytest.approx(_by_hand(examples, model, tok), rel=1e-6)


def test_integrated_gradients_explain_the_chosen_label(served):
    port, model, tok, examples, *_ = served
    ex = examples[EXAMPLE_INDEX]
    config = {common.CLASS_KEY: CHOSEN, common.NORMALIZATION_KEY: False}
    (out,) = interpret(
        port, registration.INTEGRATED_GRADIENTS, [ex], config, model=MODEL, dataset=DATASET
    )
    k = LABELS.index(CHOSEN)
    enc = tok(ex["data"]["sentence"], return_tensors="pt")
    emb = model.get_input_embeddings()(enc["input_ids"])
    kw = {n: v for n, v in enc.items() if n != "input_ids"}
    with torch.no_grad():
        f = [
            torch.sigmoid(model(inputs_embeds=e, **kw).logits)[0, k].item() for e in (emb, 0 * emb)
        ]
    report = ig_interp.completeness_dict(out["completeness"])
    assert report["F(input) - F(baseline)"] == pytest.approx(f[0] - f[1], rel=1e-4, abs=1e-6)
    assert sum(out["token_grads"]["salience"]) == pytest.approx(f[0] - f[1], rel=1e-2, abs=1e-6)


def test_load_model_dialog_sets_another_threshold(served):
    """What LIT's Global settings -> load model sends: the same checkpoint with
    threshold 0.55, under a new name; its metrics are counted at 0.55."""
    port, model, tok, examples, _, ckpt = served
    config = {
        "new_name": "topics@0.55",
        "model_name_or_path": str(ckpt),
        "batch_size": 16,
        "max_length": 64,
        "threshold": 0.55,
    }
    info, (name,) = post(
        port, "create_model", {"model_name": "HFSequenceClassifier"}, {"config": config}
    )
    assert name == "topics@0.55"
    assert info["models"][name]["description"].endswith("threshold 0.55")
    (result,) = post(
        port,
        "get_metrics",
        {"model": "topics@0.55", "dataset_name": DATASET, "metrics": "multilabel"},
        {"inputs": examples},
    )["multilabel"]
    want = _by_hand(examples, model, tok, threshold=0.55)
    assert result["metrics"] == pytest.approx(want, rel=1e-6)
    assert want != pytest.approx(_by_hand(examples, model, tok))  # 0.55 and 0.3 differ here


DEEP_TEXT_JS = browser_kit.DEEP_TEXT_JS


def test_browser_shows_predictions_metrics_and_a_chosen_labels_map(served):
    port, model, tok, examples, started_s, _ = served
    ex = examples[EXAMPLE_INDEX]
    sentence = ex["data"]["sentence"]
    probs = _probs(model, tok, sentence)
    want_metrics = _by_hand(examples, model, tok)
    config = {common.CLASS_KEY: CHOSEN}
    (want_map,) = interpret(
        port, registration.GRADIENT_NORM, [ex], config, model=MODEL, dataset=DATASET
    )
    (default_map,) = interpret(
        port, registration.GRADIENT_NORM, [ex], {}, model=MODEL, dataset=DATASET
    )
    assert LABELS[int(np.argmax(probs))] != CHOSEN  # so the two maps differ
    assert not np.allclose(
        want_map["token_grads"]["salience"], default_map["token_grads"]["salience"], atol=1e-6
    )
    start = time.time()
    with browser_kit.lit_page(port, f"models={MODEL}&dataset={DATASET}", UI_TIMEOUT_MS) as (
        pg,
        errors,
    ):
        row = pg.locator("lit-data-table tbody tr").filter(has_text=sentence[:50]).first
        row.click()
        pg.get_by_text(f"1 of {len(examples)} datapoints").wait_for()

        # Predictions: every label, its probability (3 decimals) and gold flag.
        pg.locator(".tab", has_text="Predictions").first.click()
        module = pg.locator("multilabel-module").first
        module.wait_for()
        pg.wait_for_function(
            "m => m.shadowRoot && m.shadowRoot.querySelector('lit-data-table')",
            arg=module.element_handle(),
        )
        table = module.locator("lit-data-table")
        pg.wait_for_function(
            "t => t.shadowRoot && t.shadowRoot.querySelectorAll('tbody tr').length >= 4",
            arg=table.element_handle(),
        )
        rows = table.evaluate(  # cells' text, score bars' shadow DOMs included
            """(t, js) => [...t.shadowRoot.querySelectorAll('tbody tr')].map(
                r => [...r.querySelectorAll('td')].map(d => eval(js)(d).trim()))""",
            DEEP_TEXT_JS,
        )
        by_label = {r[0]: r for r in rows}
        assert sorted(by_label) == sorted(LABELS), rows
        for label, p in zip(LABELS, probs):
            text = " ".join(by_label[label])
            assert f"{p:.3f}" in text, (label, p, text)
            gold = label in ex["data"]["label"]
            assert ("✔" in text or "true" in text.lower()) == gold, (label, text)

        # Metrics: the multi-label metrics at the model's threshold.
        pg.locator(".tab", has_text="Metrics").first.click()
        metrics = pg.locator("metrics-module").first
        metrics.wait_for()
        row_text = f"{MODEL} dataset probas {len(examples)} " + " ".join(
            f"{want_metrics[name]:.3f}" for name in ("exactmatch", "precision", "recall", "f1")
        )
        # The table's row for the whole dataset: model, source, field, N, the four
        # metrics (LIT prints 3 decimals).
        pg.wait_for_function(
            f"([m, js]) => eval(js)(m).includes({row_text!r})",
            arg=[metrics.element_handle(), DEEP_TEXT_JS],
        )
        metrics_text = metrics.evaluate(DEEP_TEXT_JS)
        for name in ("exactmatch", "precision", "recall", "f1"):
            assert f"multilabel {name}" in metrics_text, metrics_text[:2000]

        # Explanations: our Gradient Norm for the label typed into its settings.
        pg.locator(".tab", has_text="Explanations").first.click()
        salience = pg.locator("salience-map-module").first
        method = salience.locator(f'div.method-row[id="{registration.GRADIENT_NORM.lower()}"]')
        method.wait_for()
        method.locator(".controls-toggle").click()
        holder = method.locator("lit-interpreter-controls .control-holder").filter(
            has_text=common.CLASS_KEY
        )
        holder.locator("input").fill(CHOSEN)
        method.locator("lit-interpreter-controls button", has_text="Apply").click()
        chips = method.locator("lit-token-chips").first
        chips.wait_for()
        want = want_map["token_grads"]
        pg.wait_for_function(  # the chosen label's map (not a default one) is shown
            """([c, w]) => (c.tokensWithWeights || []).length === w.length &&
                c.tokensWithWeights.every((t, i) => Math.abs(t.weight - w[i]) < 1e-6)""",
            arg=[chips.element_handle(), want["salience"]],
        )
        got = chips.evaluate("c => c.tokensWithWeights.map(t => [t.token, t.weight])")
        assert [t for t, _ in got] == want["tokens"]
        np.testing.assert_allclose([w for _, w in got], want["salience"], rtol=1e-5, atol=1e-7)
    elapsed = time.time() - start
    print(f"multi-label browser test: server start {started_s:.1f}s, browser {elapsed:.1f}s")
    assert not errors, errors
