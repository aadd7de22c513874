"""A token classifier end to end in a real browser: the demo serving a tiny NER
checkpoint saved to a temporary directory (``--models=ner:<dir>``, the kind read from
its config) with the bundled NER sentences; LIT's front end in headless Chromium shows
the predicted entities ("Annotated Text (predicted)"), the gold ones and the gold tags,
and our tag salience runs in the Salience Maps module and over HTTP for a chosen word;
the Linear Probe fits the model's own tags over HTTP.

Chromium and the no-network rule as in tests/app/test_browser_e2e.py.
"""

import math

import pytest

from lit_plugins.app import registration
from lit_plugins.data import conll
from lit_plugins.lit import token_model
from lit_plugins.lit.interpreters import linear_probe, tag_salience
from lit_plugins.lit.interpreters.integrated_gradients import completeness_dict
from tests.kit import browser as browser_kit
from tests.kit import tiny_taggers
from tests.kit.demo_server import demo_server, post

pytestmark = pytest.mark.slow

MODEL = "ner"
DATASET = conll.NER_DATASET_NAME
MAX_EXAMPLES = 12
UI_TIMEOUT_MS = 60_000
IG = tag_salience.NAMES[tag_salience.INTEGRATED_GRADIENTS]
DEEP_TEXT_JS = browser_kit.DEEP_TEXT_JS


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("ner_checkpoint")
    model, tok = tiny_taggers.make("bert")
    model.save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    log = tmp_path_factory.mktemp("ner_server") / "server.log"
    with demo_server(log, MAX_EXAMPLES, 120, (f"--models={MODEL}:{ckpt}",)) as (port, log, _):
        yield port, log


def _interpret(port, name, inputs, config):
    return post(
        port,
        "get_interpretations",
        {"model": MODEL, "dataset_name": DATASET, "interpreter": name, "do_predict": 1},
        {"inputs": inputs, "config": config},
    )


def test_ner_checkpoint_served_tags_shown_and_salience_in_the_browser(server):
    port, log = server
    info = post(port, "get_info")
    assert set(tag_salience.NAMES.values()) <= set(info["models"][MODEL]["interpreters"])
    assert "tagging" in info["models"][MODEL]["metrics"]
    examples = post(port, "get_dataset", {"dataset_name": DATASET})
    assert len(examples) == MAX_EXAMPLES
    ex = examples[0]
    (pred,) = post(port, "get_preds", {"model": MODEL, "dataset_name": DATASET}, {"inputs": [ex]})
    words = ex["data"]["sentence"].split()
    assert pred["words"] == words and len(pred["tags"]) == len(words)
    entities = pred["entities"]
    assert entities, "the tiny model predicts no entity in the first sentence"

    # "Why is word 1 tagged B-LOC" over HTTP: a map over the words and pieces, and
    # integrated gradients complete within 1 % at the interpreter's defaults.
    config = {tag_salience.WORD_KEY: "1", tag_salience.TAG_KEY: "B-LOC"}
    (ig,) = _interpret(port, IG, [ex], config)
    assert ig[tag_salience.WORDS]["tokens"] == words
    assert all(math.isfinite(v) for v in ig[tag_salience.PIECES]["salience"])
    assert f"word 1 '{words[1]}' is tagged B-LOC" in ig[tag_salience.TARGET]["tokens"][0]
    assert completeness_dict(ig["completeness"])["relative completeness error"] <= 0.01

    # The token-level Linear Probe on the model's own tags (a field the demo adds).
    assert token_model.MODEL_TAGS in ex["data"]
    (probe,) = _interpret(
        port,
        registration.LINEAR_PROBE,
        [ex],
        {linear_probe.LABEL_FIELD_KEY: token_model.MODEL_TAGS, linear_probe.POOLING_KEY: "first"},
    )
    sweep = probe[linear_probe.LAYER_SWEEP]["tokens"]
    assert [t.split(" = ")[0] for t in sweep] == ["layer 0", "layer 1", "layer 2"], sweep

    with browser_kit.lit_page(port, f"models={MODEL}&dataset={DATASET}", UI_TIMEOUT_MS) as (
        pg,
        errors,
    ):
        row = pg.locator("lit-data-table tbody tr").filter(has_text=" ".join(words[:4])).first
        row.wait_for()
        # The gold tags are a column of the data table.
        assert ", ".join(ex["data"]["tags"]) in row.evaluate(DEEP_TEXT_JS)
        row.click()
        pg.get_by_text(f"1 of {MAX_EXAMPLES} datapoints").wait_for()
        # Predictions tab: the predicted entities over the text, and the gold ones.
        pg.locator(".tab", has_text="Predictions").first.click()
        predicted = pg.locator("annotated-text-module").first
        predicted.wait_for()
        first = entities[0]
        span = ex["data"]["sentence"][first["spans"][0]["start"] : first["spans"][0]["end"]]
        pg.wait_for_function(
            f"([el, want]) => want.every(w => ({DEEP_TEXT_JS})(el).includes(w))",
            arg=[predicted.element_handle(), ["entities", first["label"], span]],
        )
        text = predicted.evaluate(DEEP_TEXT_JS)
        assert "entities" in text and first["label"] in text and span in text, text
        gold = pg.locator("annotated-text-gold-module").first.evaluate(DEEP_TEXT_JS)
        assert conll.GOLD_ENTITIES in gold, gold

        # Explanations tab: our integrated gradients row runs at its defaults (the
        # first entity word, its predicted tag) and renders chips.
        pg.locator(".tab", has_text="Explanations").first.click()
        module = pg.locator("salience-map-module").first
        module.wait_for()
        row = module.locator(f'div.method-row[id="{IG.lower()}"]')
        row.wait_for()
        if not row.locator("expansion-panel").evaluate("e => e.expanded"):
            row.locator("expansion-panel .expansion-header").dispatch_event("click")
        handle = row.element_handle()
        pg.wait_for_function(
            """row => !row.querySelector('lit-spinner') &&
                [...row.querySelectorAll('lit-token-chips')].some(
                    c => (c.tokensWithWeights || []).length > 0)""",
            arg=handle,
        )
        chips = handle.evaluate(
            """row => [...row.querySelectorAll('lit-token-chips')].map(
                c => c.tokensWithWeights.map(t => t.token))"""
        )
        assert words in chips, chips
        assert any("is tagged" in " ".join(c) for c in chips), chips
    assert not errors, errors
    assert "Traceback" not in log.read_text()
