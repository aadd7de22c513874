"""The demo on a dataset of several thousand examples, end to end in a real browser:
the data table's predictions run without gradients and equal HF's own forward, and
a salience map of the last example renders with token-level outputs kept for at most
1 MB (so they are recomputed on demand).

A tiny random BERT with MiniLM's tokenizer (fast enough for 3,000 examples on a CPU)
is saved to a temporary directory and served by ``python -m demos.demo --models=...
--dataset=<3,000-row CSV> --heavy_cache_mb=1``. Needs Debian's Chromium
(tests/browser_setup.sh) and `playwright`; no network.
"""

import csv
import time

import numpy as np
import pytest
import torch
import transformers

from lit_plugins.app import registration
from lit_plugins.data import loaders
from lit_plugins.hf import finetune
from tests.kit import browser as browser_kit
from tests.kit.demo_server import count_in_log, demo_server, interpret, post

SIZE = 3000
MODEL = "tiny"
UI_TIMEOUT_MS = 120_000


def _texts() -> list[str]:
    base = [
        ex["sentence"]
        for split in ("train", "dev")
        for ex in loaders.load_bundled_sentiment(split).examples
    ]
    return [f"{base[i % len(base)]} ({i})" for i in range(SIZE)]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("large")
    tok = transformers.AutoTokenizer.from_pretrained(finetune.default_model_dir())
    config = transformers.BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=2,
        id2label=dict(enumerate(loaders.SENTIMENT_LABELS)),
        label2id={l: i for i, l in enumerate(loaders.SENTIMENT_LABELS)},
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config).eval()
    model.save_pretrained(tmp / "ckpt")
    tok.save_pretrained(tmp / "ckpt")
    data = tmp / "large.csv"
    with open(data, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence", "label"])
        for i, text in enumerate(_texts()):
            writer.writerow([text, loaders.SENTIMENT_LABELS[i % 2]])
    log = tmp / "server.log"
    args = (
        f"--models={MODEL}:{tmp / 'ckpt'}",
        f"--dataset={data}",
        "--heavy_cache_mb=1",
        "--batch_size=64",
    )
    with demo_server(log, max_examples=SIZE, start_s=300, extra_args=args) as (port, log, _):
        info = post(port, "get_info")
        dataset = next(iter(info["datasets"]))
        examples = post(port, "get_dataset", {"dataset_name": dataset})
        yield port, log, dataset, examples, model, tok


def test_the_whole_table_without_gradients_equals_hf(served):
    port, log, dataset, examples, model, tok = served
    assert len(examples) == SIZE
    start = time.time()
    preds = post(
        port,
        "get_preds",
        {"model": MODEL, "dataset_name": dataset, "requested_types": "MulticlassPreds"},
        {"inputs": examples},
        timeout=600,
    )
    print(f"{SIZE} examples: data table predictions in {time.time() - start:.1f}s")
    assert len(preds) == SIZE and set(preds[0]) == {"probas"}
    assert count_in_log(log, rf"{MODEL}: {SIZE} predictions without gradients") == 1
    rng = np.random.default_rng(0)
    for i in rng.choice(SIZE, 20, replace=False):
        enc = tok(examples[i]["data"]["sentence"], return_tensors="pt")
        with torch.no_grad():
            want = torch.softmax(model(**enc).logits, -1)[0].numpy()
        np.testing.assert_allclose(preds[i]["probas"], want, rtol=1e-5, atol=1e-6)
    again = time.time()
    post(
        port,
        "get_preds",
        {"model": MODEL, "dataset_name": dataset, "requested_types": "MulticlassPreds"},
        {"inputs": examples},
        timeout=600,
    )
    assert count_in_log(log, rf"{MODEL}: {SIZE} predictions without gradients") == 1
    print(f"again from memory in {time.time() - again:.2f}s")


def test_browser_shows_the_table_and_a_map(served):
    """The table lists all 3,000 examples; the map LIT shows for a clicked row is
    the HTTP API's for that example (its token-level outputs recomputed: 1 MB
    holds only a few examples' worth)."""
    port, _, dataset, examples, _, _ = served
    with browser_kit.lit_page(port, f"models={MODEL}&dataset={dataset}", UI_TIMEOUT_MS) as (
        pg,
        errors,
    ):
        pg.get_by_text(f"{SIZE} datapoints").first.wait_for()
        example = examples[3]
        row = pg.locator("lit-data-table tbody tr").filter(has_text=example["data"]["sentence"])
        row.click()
        pg.get_by_text(f"1 of {SIZE} datapoints").wait_for()
        (want,) = interpret(
            port, registration.GRADIENT_NORM, [example], {}, model=MODEL, dataset=dataset
        )
        want = want["token_grads"]
        pg.locator(".tab", has_text="Explanations").first.click()
        salience = pg.locator("salience-map-module").first
        method = salience.locator(f'div.method-row[id="{registration.GRADIENT_NORM.lower()}"]')
        method.wait_for()
        chips = method.locator("lit-token-chips").first
        chips.wait_for()
        pg.wait_for_function(
            "([c, n]) => (c.tokensWithWeights || []).length === n",
            arg=[chips.element_handle(), len(want["tokens"])],
        )
        got = chips.evaluate("c => c.tokensWithWeights.map(t => [t.token, t.weight])")
        assert [t for t, _ in got] == want["tokens"]
        np.testing.assert_allclose([w for _, w in got], want["salience"], rtol=1e-5, atol=1e-7)
    assert not errors, errors
