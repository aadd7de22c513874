"""Integrated gradients: quadrature, completeness, convergence orders, Captum
parity, adaptive mode, both evaluation paths, bad config."""

import numpy as np
import pytest
import torch

from lit_plugins.attribution import integrated_gradients as ig_lib
from lit_plugins.attribution import quadrature
from lit_plugins.lit import interpreters
from lit_plugins.lit.interpreters import integrated_gradients as ig_interp
from lit_plugins.lit.model import HFSequenceClassifier
from tests.kit import fake_models, tiny_models

TEXTS = ["the film was not bad at all", "boring", "slow start but a stunning finale really"]


# ----------------------------------------------------------- quadrature
@pytest.mark.parametrize(
    "rule,n,degree",
    [
        ("riemann_middle", 7, 1),
        ("riemann_trapezoid", 8, 1),
        ("gausslegendre", 6, 11),
        ("clenshaw_curtis", 9, 8),
    ],
)
def test_rules_integrate_polynomials_exactly(rule, n, degree):
    x, w = quadrature.nodes_and_weights(rule, n)
    for d in range(degree + 1):
        assert np.dot(w, x**d) == pytest.approx(1 / (d + 1), abs=1e-12)


def test_rule_nodes_match_their_definitions():
    x, w = quadrature.nodes_and_weights("riemann_left", 4)
    np.testing.assert_allclose(x, [0, 0.25, 0.5, 0.75])
    x, w = quadrature.nodes_and_weights("riemann_right", 4)
    np.testing.assert_allclose(x, [0.25, 0.5, 0.75, 1])
    x, w = quadrature.nodes_and_weights("riemann_trapezoid", 3)
    np.testing.assert_allclose(w, [0.25, 0.5, 0.25])
    x, w = quadrature.nodes_and_weights("gausslegendre", 2)
    np.testing.assert_allclose(x, [0.5 - 0.5 / np.sqrt(3), 0.5 + 0.5 / np.sqrt(3)])
    for rule in quadrature.NESTED:  # refinement keeps every earlier node
        n = quadrature.MIN_STEPS.get(rule, 1) + 3
        coarse, _ = quadrature.nodes_and_weights(rule, n)
        fine, _ = quadrature.nodes_and_weights(rule, quadrature.refine(rule, n))
        assert np.isin(np.round(coarse, 12), np.round(fine, 12)).all(), rule


def test_adaptive_reuses_points_on_a_closed_form_integrand():
    # F(α) = α^7: ∫ dF/dα = 1 exactly; Clenshaw–Curtis with 5 nodes is exact
    # up to degree 5 only, with 9 nodes up to degree 9.
    calls = []

    def path_fn(points):
        calls.extend(points)
        return [(a**7, np.array([7 * a**6])) for _, a in points]

    (res,) = ig_lib.integrated_gradients(
        1, path_fn, "clenshaw_curtis", steps=5, tolerance=1e-10, max_steps=33
    )
    assert res.converged and res.steps == 9
    assert res.attributions[0] == pytest.approx(1.0, abs=1e-12)
    assert len(calls) == len(set(calls)) == 9  # nested: no point twice


# ---------------------------------------------------------- tiny models
def test_fast_path_equals_lit_predict_path(tiny_classifier):
    """Our tensor path and the generic path through LIT's predict agree."""
    examples = [{"sentence": t} for t in TEXTS]
    ig = interpreters.IntegratedGradients()
    for config in (
        {},
        {
            "Baseline": "pad",
            "Keep special tokens in baseline": True,
            "Integration rule": "riemann_trapezoid",
            "Interpolation steps": 33,
        },
    ):
        fast = ig.run(examples, tiny_classifier, None, config=config)
        slow = ig.run(examples, fake_models.LitApiOnly(tiny_classifier), None, config=config)
        for a, b in zip(fast, slow):
            np.testing.assert_allclose(
                a["token_grads"].salience, b["token_grads"].salience, atol=2e-5
            )
            # Item 0, the relative completeness error, carries float32
            # rounding of order 1e-4 that differs by BLAS kernel between
            # machines: compare it absolutely; the other items relatively.
            ca, cb = a["completeness"].salience, b["completeness"].salience
            assert abs(ca[0] - cb[0]) < 1e-3
            np.testing.assert_allclose(ca[1:], cb[1:], rtol=1e-3, atol=1e-6)


def test_an_examples_own_grad_class_is_explained(tiny_classifier):
    """An input pinned with `grad_class` (as Trust Checks pins the randomized
    models' inputs) is explained for that class, on the fast path as on the
    generic LIT path, and as when the class is asked for in the config."""
    examples = [{"sentence": t} for t in TEXTS]
    predicted = [o["grad_class"] for o in tiny_classifier.predict(examples)]
    labels = list(tiny_classifier.labels)
    other = [labels[1 - labels.index(p)] for p in predicted]
    pinned = [{**ex, "grad_class": c} for ex, c in zip(examples, other)]
    ig = interpreters.IntegratedGradients()
    fast = ig.run(pinned, tiny_classifier, None)
    slow = ig.run(pinned, fake_models.LitApiOnly(tiny_classifier), None)
    asked = [
        ig.run([ex], tiny_classifier, None, config={"Class to explain": c})[0]
        for ex, c in zip(examples, other)
    ]
    unpinned = ig.run(examples, tiny_classifier, None)
    for f, s, a, u in zip(fast, slow, asked, unpinned):
        np.testing.assert_allclose(f["token_grads"].salience, s["token_grads"].salience, atol=2e-5)
        np.testing.assert_allclose(f["token_grads"].salience, a["token_grads"].salience, atol=1e-6)
        # Two classes: p(other) = 1 − p(predicted), so the map is the other's
        # negated, up to float32 rounding of the two softmax outputs (~3e-5 here).
        np.testing.assert_allclose(f["token_grads"].salience, -u["token_grads"].salience, atol=1e-4)
        assert not np.allclose(f["token_grads"].salience, u["token_grads"].salience, atol=1e-2)


def test_layer_attribution_is_complete(tiny_classifier):
    examples = [{"sentence": t} for t in TEXTS]
    ig = interpreters.IntegratedGradients()
    for layer in range(tiny_classifier.num_layers + 1):
        res = ig.run(
            examples,
            tiny_classifier,
            None,
            config={
                "Attribution target": f"layer {layer}",
                "Interpolation steps": 64,
                "Normalize": False,
            },
        )
        for r in res:
            c = ig_interp.completeness_dict(r["completeness"])
            assert c["relative completeness error"] < 1e-2
            assert np.sum(r["token_grads"].salience) == pytest.approx(
                c["F(input) - F(baseline)"], rel=1e-2, abs=1e-6
            )


def test_bad_config_names_accepted_values(tiny_classifier):
    ex = [{"sentence": "fun"}]
    ig = interpreters.IntegratedGradients()
    for config, message in [
        ({"Interpolation steps": 0}, r"\[1, 1024\]"),
        ({"Interpolation steps": -3}, r"\[1, 1024\]"),
        ({"Interpolation steps": 5000}, r"\[1, 1024\]"),
        ({"Interpolation steps": "abc"}, "integer"),
        ({"Interpolation steps": 2.5}, "integer"),
        ({"Class to explain": "maybe"}, r"accepted: \['neg', 'pos'\]"),
        ({"Integration rule": "simpson"}, "gausslegendre"),
        ({"Baseline": "noise"}, "zero"),
        ({"Attribution target": "layer x"}, "layer N"),
        ({"Attribution target": "layer 99"}, "layer must be in"),
        ({"Completeness tolerance (0 = fixed steps)": 2}, r"\[0.0, 0.5\]"),
        ({"Internal batch size": 0}, "batch size"),
    ]:
        with pytest.raises(ValueError, match=message):
            ig.run(ex, tiny_classifier, None, config=config)


def test_mask_baseline_needs_a_mask_token():
    model, tok = tiny_models.make("bert")
    tok.mask_token = None
    clf = HFSequenceClassifier(model=model, tokenizer=tok, labels=["a", "b"])
    with pytest.raises(ValueError, match="mask token"):
        interpreters.IntegratedGradients().run(
            [{"sentence": "fun"}], clf, None, config={"Baseline": "mask"}
        )


# --------------------------------------------------- fine-tuned MiniLM
@pytest.fixture(scope="module")
def minilm_paths(minilm_finetuned, dev_examples):
    examples = dev_examples[:16]
    path_fn, tokens, targets = minilm_finetuned.integrated_gradients_path(examples, "zero")
    return examples, path_fn, tokens, targets


def _errors(path_fn, n_examples, rule, steps):
    res = ig_lib.integrated_gradients(n_examples, path_fn, rule, steps, batch_size=128)
    return np.array([r.completeness_error for r in res])


@pytest.mark.parametrize(
    "rule", ["riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"]
)
def test_error_shrinks_at_the_rules_order(minilm_paths, rule):
    examples, path_fn, _, _ = minilm_paths
    extra = 1 if rule == "riemann_trapezoid" else 0
    # 64 -> 128 points: at 32 the left rule's median error is not yet in its
    # asymptotic regime on every machine's fine-tune (observed order 0.3 on
    # one, 0.9 at 64 -> 128 on the same model).
    coarse = np.median(_errors(path_fn, len(examples), rule, 64 + extra))
    fine = np.median(_errors(path_fn, len(examples), rule, 128 + extra))
    observed_order = np.log2(coarse / fine)
    expected = quadrature.ORDER[rule]
    assert expected - 0.5 <= observed_order <= expected + 1.0, observed_order


def test_default_is_gausslegendre_64_under_one_percent_everywhere(minilm_paths):
    """The default (`auto`, 64 nodes) keeps plain Gauss–Legendre on the
    fine-tuned MiniLM's smooth zero-baseline paths, at plain's cost: 64 nodes
    and the endpoints (auto's look at the path is one of the nodes). The
    fine-tune differs between machines (CI's gave one sentence 3.7 % at 64
    plain nodes, this machine's 0.35 %): an example that misses 1 % is refined
    alone, and every example ends within 1 %."""
    examples, path_fn, _, _ = minilm_paths
    res = ig_lib.integrated_gradients(len(examples), path_fn, batch_size=128)
    errors = np.array([r.completeness_error for r in res])
    assert errors.max() < 0.01, errors.max()
    assert all(r.converged for r in res)
    assert {r.rule for r in res} == {"gausslegendre"}
    refined = ["refined" in r.rule_note for r in res]
    assert sum(refined) <= 4, [r.rule_note for r in res]
    for r, was_refined in zip(res, refined):
        if was_refined:
            assert r.steps in (128, 256) and r.evaluations > 66, r.rule_note
        else:
            assert (r.steps, r.evaluations) == (64, 66), r.rule_note


@pytest.mark.parametrize("rule", ["clenshaw_curtis", "gausslegendre"])
def test_adaptive_meets_tolerance_on_every_example(minilm_paths, rule):
    examples, path_fn, _, _ = minilm_paths
    res = ig_lib.integrated_gradients(
        len(examples), path_fn, rule, steps=9, tolerance=0.01, max_steps=513, batch_size=128
    )
    assert all(r.converged and r.completeness_error <= 0.01 for r in res)
    # Per-example budgets differ: a fixed count would waste work.
    assert len({r.steps for r in res}) > 1


def test_agrees_with_captum(minilm_finetuned, dev_examples):
    from captum.attr import IntegratedGradients as CaptumIG

    clf = minilm_finetuned
    ig = interpreters.IntegratedGradients()
    for ex in dev_examples[:6]:
        for rule, steps in [("gausslegendre", 32), ("riemann_trapezoid", 33), ("riemann_left", 20)]:
            ours = ig.run(
                [ex],
                clf,
                None,
                config={"Integration rule": rule, "Interpolation steps": steps, "Normalize": False},
            )[0]
            out = next(iter(clf.predict([ex])))
            target = clf.labels.index(out["grad_class"])
            enc = clf.tokenizer([ex["sentence"]], return_tensors="pt")
            embs = torch.tensor(out["token_embs"])[None]

            def forward(e):
                n = e.shape[0]
                logits = clf.model(
                    inputs_embeds=e,
                    attention_mask=enc["attention_mask"].expand(n, -1),
                    token_type_ids=enc["token_type_ids"].expand(n, -1),
                ).logits
                return torch.softmax(logits, -1)[:, target]

            attr = CaptumIG(forward).attribute(
                embs,
                baselines=torch.zeros_like(embs),
                n_steps=steps,
                method=rule,
                internal_batch_size=64,
            )
            theirs = attr[0].sum(-1).detach().numpy()
            mine = ours["token_grads"].salience
            assert np.corrcoef(mine, theirs)[0, 1] >= 0.99
            if rule == "riemann_trapezoid":
                # Captum's trapezoid weights are 1/n with halved ends, which sum to
                # (n-1)/n; ours sum to 1 (spacing 1/(n-1)), so ours are n/(n-1)×.
                theirs = theirs * steps / (steps - 1)
            np.testing.assert_allclose(mine, theirs, atol=1e-4 * np.abs(theirs).max() + 1e-7)
