"""`lit.trust_evaluation` on a tiny BERT: max-sensitivity through LIT's own
methods against the metric on the HF glue's gradients (same noise), numbers
that do not depend on how the examples are chunked, independent randomization,
the summary and the verdicts, and LIME's max-sensitivity left out with a note."""

import numpy as np
import pytest
from lit_nlp.components import citrus

from lit_plugins.faithfulness import robustness
from lit_plugins.hf import robustness as hf_robustness
from lit_plugins.lit import methods as registry
from lit_plugins.lit import trust_evaluation as trust
from lit_plugins.lit.interpreters import gradient_salience
from tests.kit import tiny_models

EXAMPLES = [
    {"sentence": "terrible acting", "label": "neg", "rationale": "terrible"},
    {"sentence": "i loved this brilliant movie", "label": "pos", "rationale": "loved brilliant"},
    {"sentence": "a slow start but a stunning finale", "label": "pos"},
    {"sentence": "the plot was boring", "label": "neg", "rationale": "boring"},
    {"sentence": "fun", "label": "pos"},
]


@pytest.fixture(scope="module")
def model():
    return tiny_models.classifier("bert")


@pytest.fixture(scope="module")
def lit_grad_dot_input(model):
    settings = trust.TrustSettings(sensitivity_samples=4, sensitivity_radius=0.05)
    methods = {registry.LIT_GRAD_DOT_INPUT: registry.lit_methods()[registry.LIT_GRAD_DOT_INPUT]}
    return trust.evaluate(model, EXAMPLES, methods, settings=settings, chunk_size=2)


def test_max_sensitivity_through_lit_equals_the_metric_on_the_hf_gradients(
    model, lit_grad_dot_input
):
    """LIT's Grad ⋅ Input recomputed by LIT on perturbed token_embs, against
    `robustness.sensitivity_from_maps` on ∂p/∂e · e from the HF glue at the
    same points, scaled as LIT scales it (by the max |score|)."""
    result = lit_grad_dot_input
    got = result.sensitivity[registry.LIT_GRAD_DOT_INPUT]
    probs = np.array([o["probas"] for o in model.predict(EXAMPLES)])
    pinned = [
        {**ex, "grad_class": ["neg", "pos"][int(p.argmax())]} for ex, p in zip(EXAMPLES, probs)
    ]
    batch = hf_robustness.embed(model, pinned)
    explain = hf_robustness.gradient_explain_fn(model, batch)
    scale = citrus.utils.normalize_scores
    expected = []
    for i, pos in enumerate(batch.positions):
        ids = model.tokenizer(EXAMPLES[i]["sentence"])["input_ids"]
        keep = ~batch.special[i, pos]
        x = batch.embeddings[i, pos]
        noise = robustness.embedding_noise(
            (1, *x.shape), 4, 0.05, trust.example_seed(0, np.asarray(ids)), keep[None, :]
        )[0]
        padded = np.zeros((5, *batch.embeddings.shape[1:]))
        padded[0, pos] = x
        for j in range(4):
            padded[j + 1, pos] = x + noise[j]
        maps = explain(np.full(5, i), padded)[:, pos]
        maps = np.stack([scale(m) for m in maps])
        expected.append(
            robustness.sensitivity_from_maps(maps[:1], maps[None, 1:], keep[None, :])[0]
        )
    # float32 forward passes on both sides, in different batches.
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert np.all(np.asarray(expected)[:4] > 0.01)  # the noise does move these maps
    assert np.all(result.sensitivity[trust.RANDOM] == 0.0)


def test_numbers_do_not_depend_on_the_chunks(model, lit_grad_dot_input):
    settings = trust.TrustSettings(sensitivity_samples=4, sensitivity_radius=0.05)
    methods = {registry.LIT_GRAD_DOT_INPUT: registry.lit_methods()[registry.LIT_GRAD_DOT_INPUT]}
    whole = trust.evaluate(model, EXAMPLES, methods, settings=settings, chunk_size=32)
    alone = trust.evaluate(model, EXAMPLES[1:2], methods, settings=settings)
    a, b = lit_grad_dot_input.table(), whole.table()
    numbers = [c for c in a.columns if c not in ("example", "method", "target", "defined")]
    # float32 rounding of the maps in other batch shapes (the tiny model's
    # gradients are ~1e-3; ranks compared by Spearman are unaffected here).
    np.testing.assert_allclose(
        a[numbers].to_numpy(float), b[numbers].to_numpy(float), rtol=1e-4, atol=1e-7
    )
    row = a[(a.example == 1)].reset_index(drop=True)
    np.testing.assert_allclose(
        row[numbers].to_numpy(float), alone.table()[numbers].to_numpy(float), rtol=1e-4, atol=1e-7
    )


def test_independent_randomization_and_verdicts(model):
    settings = trust.TrustSettings(independent=True, sensitivity_samples=0, infidelity_samples=0)
    methods = {"grad": gradient_salience.GradientDotInput()}
    result = trust.evaluate(model, EXAMPLES, methods, settings=settings)
    assert result.steps == ["head", "layer 2", "layer 1", "embeddings"]
    table = result.table()
    assert [c for c in table.columns if c.startswith("rho_only ")] == [
        f"rho_only {s}" for s in result.steps
    ]
    # The random map ignores the model: ρ = 1 alone and in the cascade.
    rand = table[(table.method == trust.RANDOM) & table.defined]
    np.testing.assert_allclose(rand[[f"rho_only {s}" for s in result.steps]].to_numpy(), 1.0)
    # Randomizing only the embeddings moves gradient × input (it multiplies by them).
    grad = table[(table.method == "grad") & table.defined]
    assert grad["rho_only embeddings"].mean() < 0.9
    verdicts = result.verdicts()
    assert verdicts[trust.RANDOM] is False
    curves = result.curves(independent=True)
    assert set(curves.step) == set(result.steps)
    assert result.infidelity is None and result.sensitivity is None
    summary = result.summary()
    rho = summary[(summary.method == "grad") & (summary.metric == "rho_all")].iloc[0]
    assert rho["n"] == 4  # the one-token text is undefined, left out
    assert rho["mean"] == pytest.approx(grad["rho_all"].mean())
    assert np.isnan(table[table.example == 4]["rho_all"]).all()


def test_lime_gets_no_max_sensitivity_and_a_note(model):
    methods = {registry.LIT_LIME: registry.lit_methods()[registry.LIT_LIME]}
    assert not trust.reads_embeddings(methods[registry.LIT_LIME])
    settings = trust.TrustSettings(sensitivity_samples=2, infidelity_samples=0)
    result = trust.evaluate(model, EXAMPLES[:2], methods, settings=settings)
    assert registry.LIT_LIME not in result.sensitivity
    assert "perturbs words" in result.notes[registry.LIT_LIME]
    assert np.isnan(result.values(registry.LIT_LIME, "max_sensitivity")).all()


def test_bad_settings_and_inputs(model):
    with pytest.raises(ValueError, match="sensitivity_radius must be a number > 0"):
        trust.TrustSettings(sensitivity_radius=0)
    with pytest.raises(ValueError, match="infidelity_samples must be 0"):
        trust.TrustSettings(infidelity_samples=-1)
    with pytest.raises(ValueError, match="rationale_field"):
        trust.TrustSettings(rationale_field=" ")
    with pytest.raises(ValueError, match="at least one example"):
        trust.evaluate(model, [])
    with pytest.raises(ValueError, match="not served"):
        trust.evaluate(model, EXAMPLES, ["SHAP"])
