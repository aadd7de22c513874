"""The Trust Checks interpreter (LIT glue over faithfulness.sanity and
faithfulness.plausibility) on a tiny BERT: gradient maps move under cascading
randomization, a token-length map and the random baseline fail, plausibility
chips on hand-made rationales, bad rationales shown as messages."""

import numpy as np
import pytest
from lit_nlp.api import components as lit_components
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import dtypes
from lit_nlp.api import types as lit_types

from lit_plugins.faithfulness import metrics as core
from lit_plugins.lit import alignment, trust_evaluation
from lit_plugins.lit import interpreters as ours
from lit_plugins.lit.interpreters import trust_checks
from tests.kit import tiny_models

LABELS = ["neg", "pos"]
SPEC = {
    "sentence": lit_types.TextSegment(),
    "label": lit_types.CategoryLabel(vocab=LABELS),
}
EXAMPLES = [
    {"sentence": "terrible acting", "label": "neg", "rationale": "terrible"},
    {
        "sentence": "i loved this brilliant movie",
        "label": "pos",
        "rationale": ["loved", "brilliant"],
    },
    {"sentence": "a slow start but a stunning finale", "label": "pos", "rationale": [9]},
    {"sentence": "the plot was boring", "label": "neg"},
    {"sentence": "fun", "label": "pos", "rationale": [0]},
]


class TokenLength(lit_components.Interpreter):
    """A 'salience method' that reads the input only: each piece's length."""

    def run(self, inputs, model, dataset, model_outputs=None, config=None):
        outputs = model_outputs or list(model.predict(inputs))
        return [
            {
                "length": dtypes.TokenSalience(
                    o["tokens"], np.array([len(t) for t in o["tokens"]], float)
                )
            }
            for o in outputs
        ]

    def meta_spec(self):
        return {"length": lit_types.TokenSalience(autorun=False, signed=False)}


@pytest.fixture(scope="module")
def results():
    model = tiny_models.classifier("bert", labels=LABELS)
    interps = {
        "Gradient Dot Input": ours.GradientDotInput(),
        "Token length": TokenLength(),
    }
    interps["Trust Checks"] = trust_checks.TrustChecks(interps)
    checks = interps["Trust Checks"]
    assert set(checks.methods()) == {"Gradient Dot Input", "Token length"}
    dataset = lit_dataset.Dataset(spec=SPEC, examples=list(EXAMPLES))
    # Only plain gradient maps are ticked by default; the token-length map is ticked here.
    spec = checks.config_spec()
    assert spec[f"{trust_checks.METHOD_PREFIX}Gradient Dot Input"].default is True
    assert spec[f"{trust_checks.METHOD_PREFIX}Token length"].default is False
    config = {f"{trust_checks.METHOD_PREFIX}Token length": True}
    return checks.run(list(EXAMPLES), model, dataset, config=config), checks


def test_spec_lists_methods_and_baseline(results):
    _, checks = results
    meta = checks.meta_spec()
    assert {"Gradient Dot Input", "Token length", core.RANDOM, "settings"} <= set(meta)
    assert any(k.startswith("summary · ") for k in meta)


def test_sanity_chips(results):
    out, _ = results
    steps = ["head", "layer 2", "layer 1", "embeddings"]
    for i in range(4):  # multi-token examples
        length = trust_checks.chips_values(out[i]["Token length"])
        assert [length[f"ρ after {s}"] for s in steps] == [1.0] * 4
        assert "sanity: fails" in out[i]["Token length"].tokens
        assert "sanity: fails" in out[i][core.RANDOM].tokens
    rhos = [trust_checks.chips_values(out[i]["Gradient Dot Input"]) for i in range(4)]
    assert np.mean([r["ρ after embeddings"] for r in rhos]) < 0.5
    assert all(-1.0 <= r[f"ρ after {s}"] <= 1.0 for r in rhos for s in steps)
    # One-token text: undefined, never NaN.
    one = out[4]["Gradient Dot Input"].tokens
    assert any(t.startswith("sanity: undefined") for t in one)
    assert not any("nan" in t for i in range(5) for t in out[i]["Gradient Dot Input"].tokens)


def test_plausibility_chips(results):
    out, _ = results
    # "terrible acting" -> [CLS] terrible acting [SEP]: the token-length map ranks
    # "terrible" (8) above "acting" (6): the one evidence token is the top-1.
    first = trust_checks.chips_values(out[0]["Token length"])
    assert (first["token F1 ↑"], first["IOU-F1 ↑"], first["AUPRC ↑"]) == (1.0, 1.0, 1.0)
    # "i loved this brilliant movie": evidence loved (5), brilliant (9); lengths
    # i 1, loved 5, this 4, brilliant 9, movie 5 -> top-2 = brilliant plus the tie
    # group {loved, movie} at 5: 3 predicted, 2 right -> P 2/3, R 1, F1 0.8.
    # Spans: predicted [2, 3) ∪ [4, 6) vs human [2, 3), [4, 5): [2,3) matches
    # (IOU 1), [4,6) vs [4,5) IOU 1/2 matches -> IOU-F1 1.
    # AUPRC: ranking brilliant T, then loved T / movie F tied (one threshold, as in
    # sklearn): precision 1 at recall 1/2, 2/3 at recall 1 -> AP = 0.5·1 + 0.5·(2/3).
    second = trust_checks.chips_values(out[1]["Token length"])
    assert second["token F1 ↑"] == pytest.approx(0.8, abs=1e-4)
    assert second["IOU-F1 ↑"] == pytest.approx(1.0)
    expected_ap = 0.5 + 0.5 * 2 / 3
    assert second["AUPRC ↑"] == pytest.approx(expected_ap, abs=1e-4)
    # Word index 9 in a 7-word text: shown, not raised; no rationale: said so.
    assert any("outside the text's 7 words" in t for t in out[2]["Token length"].tokens)
    assert any("no rationale in 'rationale'" in t for t in out[3]["Token length"].tokens)
    # One-token text with its word as evidence: well defined.
    one = trust_checks.chips_values(out[4]["Token length"])
    assert one["AUPRC ↑"] == 1.0


def test_summary_rows(results):
    out, _ = results
    rho = out[0]["summary · ρ all randomized ↓"].tokens
    assert rho[0] == "5 examples selected"
    assert any(t.startswith("Token length: 1.0000 [1.0000, 1.0000]") for t in rho)
    f1 = out[0]["summary · token F1 ↑"].tokens
    assert any(t.startswith("Token length: ") for t in f1)


def test_infidelity_chips_match_the_metric_on_our_gradient_maps(results):
    """The interpreter's infidelity for its Gradient · Input maps (LIT's path,
    L2-normalized) equals the metric on the HF glue's own gradient × input maps:
    normalized infidelity ignores the map's positive scale."""
    from lit_plugins.faithfulness import robustness
    from lit_plugins.hf import robustness as hf_robustness

    out, _ = results
    model = tiny_models.classifier("bert", labels=LABELS)
    # The interpreter pinned every input to the served model's prediction.
    probs = np.array([o["probas"] for o in model.predict(EXAMPLES)])
    pinned = [{**ex, "grad_class": LABELS[int(p.argmax())]} for ex, p in zip(EXAMPLES, probs)]
    batch = hf_robustness.embed(model, pinned)
    n, t = batch.token_mask.shape
    # Each example's subsets are drawn from its own generator (seed 0 and its ids).
    pert = np.zeros((n, 16, t))
    for i, pos in enumerate(batch.positions):
        ids = model.tokenizer(EXAMPLES[i]["sentence"])["input_ids"]
        keep = ~batch.special[i, pos][None, :]
        seed = trust_evaluation.example_seed(0, np.asarray(ids))
        pert[i][:, pos] = robustness.token_perturbations(
            (1, pos.size), 16, "subset", 0.25, seed, keep
        )[0]
    maps = hf_robustness.gradient_explain_fn(model, batch)(np.arange(n), batch.embeddings)
    forward = hf_robustness.forward_fn(model, batch)
    expected = robustness.infidelity(forward, maps, pert, batch.token_mask, normalize=True)
    got = [
        trust_checks.chips_values(out[i]["Gradient Dot Input"])["infidelity ↓"] for i in range(n)
    ]
    # The two maps differ by float32 rounding (LIT's path L2-normalizes); on this
    # tiny model the β-fit residual is ~1e-9, a small part of E[Δf²], so such
    # rounding moves it by up to ~1 %. Maps shifted by one token change it 3× to
    # 10⁵×; perturbations of another seed by up to 25 % (measured).
    np.testing.assert_allclose(got, expected, rtol=2e-2)
    for i in range(n):
        for name in ("Token length", core.RANDOM):
            assert np.isfinite(trust_checks.chips_values(out[i][name])["infidelity ↓"])
    assert any(
        t.startswith("Gradient Dot Input: ") for t in out[0]["summary · infidelity ↓"].tokens
    )


def test_rationale_pieces_words_indices_and_errors():
    model = tiny_models.classifier("bert", labels=LABELS)
    example = {"sentence": "the plot was awful, really"}
    (output,) = model.predict([example])
    tokens = output["tokens"]
    # "awful," is two pieces (the tiny vocabulary has no comma: [UNK]).
    assert tokens == ["[CLS]", "the", "plot", "was", "awful", "[UNK]", "really", "[SEP]"]
    by_word = alignment.rationale_pieces(model, example, "sentence", tokens, "Awful")
    assert np.flatnonzero(by_word).tolist() == [4, 5]
    by_index = alignment.rationale_pieces(model, example, "sentence", tokens, [3, 0])
    assert np.flatnonzero(by_index).tolist() == [1, 4, 5]
    assert alignment.rationale_pieces(model, example, "sentence", tokens, []) is None
    with pytest.raises(ValueError, match=r"indices \[5\] are outside the text's 5 words"):
        alignment.rationale_pieces(model, example, "sentence", tokens, [5])
    with pytest.raises(ValueError, match="no rationale word"):
        alignment.rationale_pieces(model, example, "sentence", tokens, ["brilliant"])
    with pytest.raises(ValueError, match="evidence words"):
        alignment.rationale_pieces(model, example, "sentence", tokens, [1.5])


def test_a_pinned_class_is_kept():
    """An example's own grad_class is the explained class (settings chip)."""
    model = tiny_models.classifier("bert", labels=LABELS)
    checks = trust_checks.TrustChecks({"Gradient Dot Input": ours.GradientDotInput()})
    dataset = lit_dataset.Dataset(spec=SPEC, examples=[])
    probs = np.array([o["probas"] for o in model.predict(EXAMPLES[:2])])
    flipped = [
        {**ex, "grad_class": LABELS[1 - int(p.argmax())]} for ex, p in zip(EXAMPLES[:2], probs)
    ]
    out = checks.run(flipped, model, dataset, config={trust_checks.INFIDELITY_KEY: 0})
    for ex, result in zip(flipped, out):
        settings = result["settings"].tokens
        assert settings[0] == f"explained class {ex['grad_class']} on every randomized model"
        assert "infidelity off" in settings


def test_whole_dataset_summary_verdicts_and_cache():
    """ "Summary over: whole dataset" summarizes every example of the dataset
    (not only the selected one), once per settings; the verdict row says
    which methods pass, and ticking independent randomization adds its chips."""
    model = tiny_models.classifier("bert", labels=LABELS)
    interps = {"Gradient Dot Input": ours.GradientDotInput(), "Token length": TokenLength()}
    checks = trust_checks.TrustChecks(interps)
    dataset = lit_dataset.Dataset(spec=SPEC, examples=list(EXAMPLES))
    config = {
        f"{trust_checks.METHOD_PREFIX}Token length": True,
        trust_checks.SUMMARY_KEY: "whole dataset",
        trust_checks.RANDOMIZATION_KEY: "cascading and independent",
        trust_checks.SENSITIVITY_KEY: 2,
    }
    (out,) = checks.run(EXAMPLES[:1], model, dataset, config=config)
    verdict = out[trust_checks.VERDICT].tokens
    assert verdict[0] == "5 examples in the dataset"
    assert any(t.startswith("Token length: fails (mean ρ 1.000") for t in verdict)
    assert any(t.startswith(f"{core.RANDOM}: fails") for t in verdict)
    expected = trust_evaluation.evaluate(
        model,
        EXAMPLES,
        {
            "Gradient Dot Input": interps["Gradient Dot Input"],
            "Token length": interps["Token length"],
        },
        settings=checks.parse_config(config).settings,
    ).summary()
    rho = expected[(expected.metric == "rho_all") & (expected.method == "Gradient Dot Input")]
    row = [t for t in out["summary · ρ all randomized ↓"].tokens if t.startswith("Gradient Dot")]
    assert row == [
        f"Gradient Dot Input: {rho['mean'].iloc[0]:.4f} "
        f"[{rho['ci_low'].iloc[0]:.4f}, {rho['ci_high'].iloc[0]:.4f}]"
    ]
    values = trust_checks.chips_values(out["Token length"])
    assert values["ρ with only embeddings randomized"] == 1.0
    assert "max-sensitivity ↓" in trust_checks.chips_values(out["Gradient Dot Input"])
    assert "max-sensitivity n/a" in " ".join(out["Token length"].tokens)
    checks.run(EXAMPLES[1:2], model, dataset, config=config)
    assert checks.fit_count == 1  # the dataset summary is cached for these settings


def test_bad_config_values_are_refused():
    checks = trust_checks.TrustChecks({"Gradient Dot Input": ours.GradientDotInput()})
    model = tiny_models.classifier("bert", labels=LABELS)
    dataset = lit_dataset.Dataset(spec=SPEC, examples=list(EXAMPLES))
    for config, match in [
        ({f"{trust_checks.METHOD_PREFIX}SHAP": True}, "not a salience method served"),
        ({trust_checks.RANDOMIZATION_KEY: "sideways"}, "Randomization"),
        ({trust_checks.RADIUS_KEY: 5}, "radius"),
    ]:
        with pytest.raises(ValueError, match=match):
            checks.run(EXAMPLES[:1], model, dataset, config=config)


class Broken(lit_components.Interpreter):
    """A salience method that fails on every call."""

    def run(self, inputs, model, dataset, model_outputs=None, config=None):
        raise RuntimeError("boom")

    def meta_spec(self):
        return {"broken": lit_types.TokenSalience(autorun=False, signed=True)}


def test_a_method_that_errors_is_named_and_the_others_still_run():
    model = tiny_models.classifier("bert", labels=LABELS)
    interps = {"Gradient Dot Input": ours.GradientDotInput(), "Broken grad": Broken()}
    checks = trust_checks.TrustChecks(interps)
    dataset = lit_dataset.Dataset(spec=SPEC, examples=list(EXAMPLES))
    out = checks.run(EXAMPLES[:2], model, dataset, config={trust_checks.SENSITIVITY_KEY: 0})
    for result in out:
        assert result["Broken grad"].tokens == ["not checked (error: RuntimeError: boom)"]
        assert "sanity: passes" in result["Gradient Dot Input"].tokens or (
            "sanity: fails" in result["Gradient Dot Input"].tokens
        )
        verdict = " ".join(result[trust_checks.VERDICT].tokens)
        assert "Broken grad" not in verdict and "Gradient Dot Input: " in verdict
