"""The Salience Faithfulness interpreter (LIT) and the Python API
(lit_plugins.faithfulness): tiny models, a real LitApp for the UI path."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from lit_nlp import app as lit_app
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import dtypes
from lit_nlp.api import types as lit_types
from lit_nlp.components import gradient_maps, lime_explainer, salience_clustering
from lit_nlp.lib import caching, serialize
from werkzeug.test import Client

from lit_plugins.faithfulness import metrics as core
from lit_plugins.lit import interpreters as ours
from lit_plugins.lit import salience_evaluation as faithfulness
from lit_plugins.lit.interpreters import faithfulness as interp_lib
from lit_plugins.lit.model import HFSequenceClassifier
from tests.kit import lit_apps, tiny_models

LABELS = ["neg", "pos"]
SPEC = {"sentence": lit_types.TextSegment(), "label": lit_types.CategoryLabel(vocab=LABELS)}
SENTENCES = [
    "the films were not bad at all",
    "i loved it",
    "a slowly boring start but a stunning finale",
    "terrible",
    "this movie is brilliant and very fun",
]
EXAMPLES = [{"sentence": s, "label": LABELS[i % 2]} for i, s in enumerate(SENTENCES)]
FAST = {f"{interp_lib.METHOD_PREFIX}LIME": False}  # LIME: 256 predictions per example


@pytest.fixture(scope="module")
def model():
    hf, tok = tiny_models.make("bert")
    with torch.no_grad():  # a sharper head: removals move the probabilities
        hf.classifier.weight.mul_(50.0)
    return HFSequenceClassifier(model=hf, tokenizer=tok, labels=LABELS, batch_size=8)


def _dataset():
    return lit_dataset.Dataset(spec=SPEC, examples=list(EXAMPLES))


def _app_interpreters():
    """What an app serves: LIT's salience methods, ours, a dataset-level
    interpreter and Salience Clustering (neither is a salience method), and
    the faithfulness interpreter inside the same dict."""
    interps = faithfulness.default_methods()
    interps["lit-plugins: Linear Probe"] = ours.LinearProbeInterpreter()
    interps["Salience Clustering"] = salience_clustering.SalienceClustering(
        {"Grad L2 Norm": gradient_maps.GradientNorm()}
    )
    interps["Salience Faithfulness"] = interp_lib.SalienceFaithfulness(interps)
    return interps


def test_offers_every_salience_method_but_not_others():
    interps = _app_interpreters()
    sf = interps["Salience Faithfulness"]
    assert list(sf.methods()) == list(faithfulness.default_methods())
    config = sf.config_spec()
    for name in faithfulness.default_methods():
        assert config[f"{interp_lib.METHOD_PREFIX}{name}"].default is True
    meta = sf.meta_spec()
    assert set(meta) == {
        *faithfulness.default_methods(),
        core.RANDOM,
        interp_lib.SETTINGS,
        *(f"{interp_lib.SUMMARY_PREFIX}{interp_lib.metric_label(m)}" for m in core.METRICS),
    }
    assert all(isinstance(v, lit_types.TokenSalience) for v in meta.values())


def test_per_example_chips_match_the_python_api(model):
    sf = interp_lib.SalienceFaithfulness(_app_interpreters())
    inputs = EXAMPLES[:3]
    results = sf.run(inputs, model, _dataset(), config=dict(FAST))
    table = faithfulness.evaluate(
        model, inputs, [n for n in faithfulness.default_methods() if n != "LIME"]
    )
    assert len(results) == 3
    for i, res in enumerate(results):
        assert set(res) == set(sf.meta_spec())
        for value in res.values():
            assert isinstance(value, dtypes.TokenSalience)
            assert np.all(np.isfinite(value.salience))
        assert "unticked" in res["LIME"].tokens[0]
        rows = table[table.example == i].set_index("method")
        for name in rows.index:
            got = interp_lib.chips_metrics(res[name])
            want = rows.loc[name, list(core.METRICS)].to_dict()
            assert got == pytest.approx(want, abs=1e-4), name
        # Colour: the advantage over the random baseline (0 for random itself).
        assert np.all(res[core.RANDOM].salience == 0)
        settings = " | ".join(res[interp_lib.SETTINGS].tokens)
        assert "deleted" in settings and "10,20,30,40,50,60,70,80,90,100" in settings
    # Identical maps (LIT's Grad L2 Norm and ours) score identically.
    np.testing.assert_allclose(
        results[0]["Grad L2 Norm"].salience, results[0]["lit-plugins: Gradient Norm"].salience
    )


def test_summary_over_selection_and_cached_dataset(model):
    sf = interp_lib.SalienceFaithfulness(_app_interpreters(), batch_size=2)
    ds = _dataset()
    key = f"{interp_lib.SUMMARY_PREFIX}{interp_lib.metric_label('comprehensiveness')}"
    sel = sf.run(EXAMPLES[:2], model, ds, config=dict(FAST))
    assert sel[0][key].tokens[0] == "2 examples selected"
    assert any(t.startswith("random: ") for t in sel[0][key].tokens)
    cfg = {**FAST, interp_lib.SUMMARY_KEY: "whole dataset"}
    first = sf.run(EXAMPLES[:1], model, ds, config=cfg)
    again = sf.run(EXAMPLES[1:2], model, ds, config=cfg)
    assert sf.fit_count == 1
    assert first[0][key].tokens == again[0][key].tokens
    assert first[0][key].tokens[0] == f"{len(EXAMPLES)} examples in the dataset"
    sf.run(EXAMPLES[:1], model, ds, config={**cfg, interp_lib.REMOVAL_KEY: "mask"})
    assert sf.fit_count == 2
    # The same numbers as the Python API over the dataset.
    summary = faithfulness.summarize(
        faithfulness.evaluate(
            model, EXAMPLES, [n for n in faithfulness.default_methods() if n != "LIME"]
        )
    )
    part = summary[summary.metric == "comprehensiveness"].set_index("method")
    chip = next(t for t in first[0][key].tokens if t.startswith("Grad L2 Norm: "))
    assert chip == (
        f"Grad L2 Norm: {part.at['Grad L2 Norm', 'mean']:.4f} "
        f"[{part.at['Grad L2 Norm', 'ci_low']:.4f}, {part.at['Grad L2 Norm', 'ci_high']:.4f}]"
    )
    off = sf.run(EXAMPLES[:1], model, ds, config={**FAST, interp_lib.SUMMARY_KEY: "none"})
    assert "summary off" in off[0][key].tokens[0]


@pytest.mark.parametrize(
    "config, match",
    [
        ({f"{interp_lib.METHOD_PREFIX}SHAP": True}, "not a salience method served"),
        ({interp_lib.PERCENT_KEY: "0,50"}, r"\(0, 100\]"),
        ({interp_lib.PERCENT_KEY: "10,abc"}, r"\(0, 100\]"),
        ({interp_lib.PERCENT_KEY: "150"}, r"\(0, 100\]"),
        ({interp_lib.REMOVAL_KEY: "zero"}, "must be one of"),
        ({interp_lib.SUMMARY_KEY: "all"}, "must be one of"),
    ],
)
def test_bad_config_raises(model, config, match):
    sf = interp_lib.SalienceFaithfulness(_app_interpreters())
    with pytest.raises(ValueError, match=match):
        sf.run(EXAMPLES[:1], model, _dataset(), config={**FAST, **config})


def test_lime_word_scores_spread_over_pieces(model):
    # LIME scores whitespace words; "films" is two pieces (film ##s), which
    # must get the word's score.
    sf = interp_lib.SalienceFaithfulness(
        {"LIME": lime_explainer.LIME(num_samples=32, seed=0), "GN": gradient_maps.GradientNorm()}
    )
    res = sf.run(EXAMPLES[:1], model, _dataset())
    assert all(np.isfinite(res[0]["LIME"].salience))
    tokens = next(iter(model.predict(EXAMPLES[:1])))["tokens"]
    assert "##s" in tokens
    lime_map = lime_explainer.LIME(num_samples=32, seed=0).run(EXAMPLES[:1], model, None)[0]
    pieces = faithfulness.piece_salience(lime_map, tokens, EXAMPLES[0], model, "LIME")
    words = dict(zip(lime_map["sentence"].tokens, lime_map["sentence"].salience))
    film = tokens.index("film")
    assert pieces[film] == pieces[film + 1] == pytest.approx(words["films"])
    assert pieces[0] == 0 and pieces[-1] == 0  # [CLS], [SEP]
    with pytest.raises(ValueError, match="does not align"):
        faithfulness.piece_salience(
            {"x": dtypes.TokenSalience(["a", "b"], np.ones(2))}, tokens, EXAMPLES[0], model, "X"
        )


def test_through_a_lit_app_and_the_caching_wrapper(model):
    """The UI path: metadata and /get_interpretations through LIT's server code,
    the model under LIT's caching wrapper, JSON without NaN."""
    interps = _app_interpreters()
    app = lit_app.LitApp(
        {"tiny": model},
        {"data": _dataset()},
        interpreters=interps,
        client_root=lit_apps.CLIENT_ROOT,
    )
    client = Client(app)
    info = json.loads(client.post("/get_info").get_data(as_text=True))
    entry = info["interpreters"]["Salience Faithfulness"]
    assert "Grad L2 Norm" in entry["metaSpec"]
    assert "Salience Faithfulness" in info["models"]["tiny"]["interpreters"]
    ids = [ex["id"] for ex in app._datasets["data"].indexed_examples[:2]]
    body = json.dumps({"inputs": ids, "config": dict(FAST)})
    resp = client.post(
        "/get_interpretations?model=tiny&dataset_name=data&interpreter=Salience%20Faithfulness",
        data=body,
    )
    text = resp.get_data(as_text=True)
    assert resp.status_code == 200, text[:500]
    assert "NaN" not in text and "Infinity" not in text
    results = serialize.from_json(text)
    assert len(results) == 2
    grad = interp_lib.chips_metrics(results[0]["Grad L2 Norm"])
    direct = faithfulness.evaluate(model, EXAMPLES[:1], ["Grad L2 Norm"])
    want = direct[direct.method == "Grad L2 Norm"].iloc[0]
    assert grad["comprehensiveness"] == pytest.approx(want["comprehensiveness"], abs=1e-4)
    wrapped = caching.CachingModelWrapper(model, "tiny")
    assert interps["Salience Faithfulness"].is_compatible(wrapped, None)


def test_python_api(model):
    result = faithfulness.evaluate_detailed(
        model, _dataset(), ["Grad L2 Norm", "lit-plugins: Integrated Gradients"], removal="pad"
    )
    table = result.table
    assert list(table.method.unique()) == [
        "Grad L2 Norm",
        "lit-plugins: Integrated Gradients",
        core.RANDOM,
    ]
    assert len(table) == 3 * len(EXAMPLES)
    assert set(table.removal) == {"pad"} and table.attrs["removal"] == "pad"
    assert table[list(core.METRICS)].notna().all().all()
    summary = result.summary()
    assert set(summary.columns) >= {"method", "metric", "mean", "median", "ci_low", "ci_high"}
    assert (summary.ci_low <= summary["mean"] + 1e-12).all()
    assert (summary["mean"] <= summary.ci_high + 1e-12).all()
    ranked = faithfulness.ranking(summary)
    assert len(ranked) == 3 and isinstance(ranked, pd.DataFrame)
    curves = result.mean_curves()
    grid, y = curves[core.RANDOM]["deletion"]
    assert grid[0] == 0 and grid[-1] == 1 and np.all(np.isfinite(y))
    with pytest.raises(ValueError, match="not served"):
        faithfulness.evaluate(model, EXAMPLES, ["SHAP"])
    with pytest.raises(ValueError, match="at least one example"):
        faithfulness.evaluate(model, [], ["Grad L2 Norm"])
    with pytest.raises(ValueError, match="removal must be one of"):
        faithfulness.evaluate(model, EXAMPLES, ["Grad L2 Norm"], removal="blank")


def test_chips_serialise_for_lit(model):
    sf = interp_lib.SalienceFaithfulness({"GN": gradient_maps.GradientNorm()})
    res = sf.run(EXAMPLES[:1], model, _dataset())
    text = serialize.to_json(res)
    assert "NaN" not in text


def test_report_command(model, tmp_path):
    from lit_plugins.cli import main as cli_main

    ckpt = tmp_path / "ckpt"
    model.model.save_pretrained(ckpt)
    model.tokenizer.save_pretrained(ckpt)
    data = tmp_path / "data.csv"
    pd.DataFrame({"text": SENTENCES[:3], "label": ["neg", "pos", "neg"]}).to_csv(data, index=False)
    out = tmp_path / "report"
    code = cli_main.main(
        [
            "lit_plugins",
            "faithfulness",
            f"--output_dir={out}",
            f"--models=tiny:{ckpt}",
            "--labels=neg,pos",
            f"--dataset={data}",
            "--text_fields=sentence=text",
            "--salience_methods=Grad L2 Norm,lit-plugins: Gradient · Input",
            "--removal=mask",
        ]
    )
    assert code == 0
    for name in ("per_example.csv", "summary.csv", "summary.md", "deletion.png", "insertion.png"):
        assert (out / name).stat().st_size > 0, name
    table = pd.read_csv(out / "per_example.csv")
    assert len(table) == 3 * 3 and set(table.removal) == {"mask"}
    md = (out / "summary.md").read_text()
    assert "| Grad L2 Norm |" in md and "| random |" in md and "`mask`" in md
    assert (out / "deletion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class _Broken(gradient_maps.GradientNorm):
    def run(self, *args, **kw):
        raise RuntimeError("boom")


def test_a_failing_method_is_reported_not_fatal(model):
    sf = interp_lib.SalienceFaithfulness({"GN": gradient_maps.GradientNorm(), "bad": _Broken()})
    res = sf.run(EXAMPLES[:1], model, _dataset())
    assert res[0]["bad"].tokens == ["not scored (error: RuntimeError: boom)"]
    assert interp_lib.chips_metrics(res[0]["GN"])["comprehensiveness"] == pytest.approx(
        faithfulness.evaluate(model, EXAMPLES[:1], {"GN": gradient_maps.GradientNorm()})
        .iloc[0]
        .comprehensiveness,
        abs=1e-4,
    )
    with pytest.raises(RuntimeError, match="boom"):
        faithfulness.evaluate(model, EXAMPLES[:1], {"bad": _Broken()})
