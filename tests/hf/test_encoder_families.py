"""Six more encoder families through the wrapper, gradients, IG, probe and TX-Ray.

Tiny random DeBERTa-v2 (v3 style), ELECTRA, ALBERT, XLM-RoBERTa, MPNet and
ModernBERT from `tiny_models` (configs only, no downloads).  Per family:

* the wrapper's contract: tokens, probas, token_embs / token_grads (the word
  embeddings, narrower than the encoder for ELECTRA and ALBERT), per-layer
  `layer_<i>/token_activations`, the same numbers alone and in a padded batch;
* token gradients against central finite differences (float64);
* integrated gradients' completeness at the default settings (64 nodes of
  the `auto` rule, zero baseline) and with the [MASK] baseline.
  ModernBERT and the DeBERTa-v3 style model apply LayerNorm straight to the
  word embeddings, so the zero-baseline path is stiff (F moves only as
  α → 0): plain Gauss–Legendre is far above the 1 % tolerance there and the
  report says so; `gausslegendre_graded` (α = t³) gets it under 0.1 % with
  the same 64 nodes, and `auto` picks it (its chip says why);
* the LIT-free probe and TX-Ray cores on the per-layer activations.
"""

import numpy as np
import pytest
import torch

from lit_plugins.attribution import integrated_gradients as ig_lib
from lit_plugins.attribution import quadrature
from lit_plugins.lit import interpreters
from lit_plugins.lit.interpreters import integrated_gradients as ig_interp
from lit_plugins.lit.model import HFSequenceClassifier
from lit_plugins.probing import LinearProbe
from lit_plugins.txray import FeatureVocab, NeuronFeatureAggregator, compute_shift
from tests.kit import tiny_models

TEXTS = ["the film was not bad at all", "boring", "slow start but a stunning finale really"]
# Zero-baseline path stiff at alpha -> 0 (LayerNorm straight on the word embeddings).
STIFF = {"modernbert", "deberta-v2"}


def _wrap(arch, dtype=torch.float32, seed=0):
    model, tok = tiny_models.make(arch, seed=seed)
    return HFSequenceClassifier(
        model=model.to(dtype), tokenizer=tok, labels=["neg", "pos"], batch_size=4
    )


@pytest.fixture(scope="module", params=tiny_models.FAMILIES)
def family(request):
    return request.param, _wrap(request.param)


def test_wrapper_contract(family):
    arch, clf = family
    L, emb_dim = clf.num_layers, clf.hidden_size
    width = clf.model.config.hidden_size
    examples = [{"sentence": t} for t in TEXTS]
    outs = list(clf.predict(examples, activation_layers=range(L + 1)))
    spec = clf.output_spec()
    for ex, out in zip(examples, outs):
        tokens = out["tokens"]
        ids = clf.tokenizer(ex["sentence"])["input_ids"]
        assert tokens == clf.tokenizer.convert_ids_to_tokens(ids)
        T = len(tokens)
        assert out["probas"].shape == (2,) and out["probas"].sum() == pytest.approx(1, abs=1e-6)
        assert out["grad_class"] == clf.labels[int(np.argmax(out["probas"]))]
        assert out["token_embs"].shape == out["token_grads"].shape == (T, emb_dim)
        assert np.isfinite(out["token_grads"]).all() and np.abs(out["token_grads"]).max() > 0
        for i in range(L + 1):
            acts = out[f"layer_{i}/token_activations"]
            assert acts.shape == (T, width) and np.isfinite(acts).all()
            assert f"layer_{i}/token_activations" in spec
    if arch in ("electra", "albert"):
        assert emb_dim < width  # factorised embeddings, projected into the encoder
    # padding does not leak: each example alone gives the same numbers
    for ex, batched in zip(examples, outs):
        (alone,) = clf.predict([ex], activation_layers=[L])
        np.testing.assert_allclose(alone["probas"], batched["probas"], atol=1e-5)
        np.testing.assert_allclose(alone["token_grads"], batched["token_grads"], atol=1e-5)
        np.testing.assert_allclose(
            alone[f"layer_{L}/token_activations"],
            batched[f"layer_{L}/token_activations"],
            atol=1e-4,
        )


@pytest.mark.parametrize("arch", tiny_models.FAMILIES)
def test_gradients_match_finite_differences(arch):
    clf = _wrap(arch, torch.float64)
    batch = clf.encode([{"sentence": TEXTS[0]}])
    out = clf.forward(batch)
    target = int(out["targets"][0])
    grad = out["grads"][0]
    rng = np.random.default_rng(0)
    h = 1e-4
    for _ in range(2):
        v = torch.from_numpy(rng.standard_normal(tuple(grad.shape)))
        v *= batch["embs"].abs().mean() / v.abs().mean()
        f = []
        for sign in (1, -1):
            moved = dict(batch, embs=batch["embs"] + sign * h * v[None], targets=[target])
            f.append(float(clf.forward(moved, gradients=False)["probs"][0, target]))
        fd = (f[0] - f[1]) / (2 * h)
        analytic = float((grad * v).sum())
        assert fd == pytest.approx(analytic, rel=1e-5, abs=1e-10), (arch, fd, analytic)


def _completeness(clf, config):
    ig = interpreters.IntegratedGradients()
    res = ig.run([{"sentence": t} for t in TEXTS], clf, None, config={"Normalize": False, **config})
    return [(ig_interp.completeness_dict(r["completeness"]), r["completeness"]) for r in res]


def test_ig_completeness_at_default_settings(family):
    arch, clf = family
    for c, chips in _completeness(clf, {}):  # 64 nodes of the auto rule, zero baseline
        err = c["relative completeness error"]
        assert c["quadrature nodes"] == 64 and c["tolerance"] == ig_lib.DEFAULT_TOLERANCE
        assert err <= 1e-4, err
        assert c["within tolerance"] == 1.0 and chips.tokens[-1] == "within tolerance"
        expected = "gausslegendre_graded" if arch in STIFF else "gausslegendre"
        assert ig_interp.completeness_rule(chips) == expected


@pytest.mark.parametrize("arch", sorted(STIFF))
def test_plain_gauss_legendre_is_flagged_on_stiff_paths(arch):
    clf = _wrap(arch)
    for c, chips in _completeness(clf, {"Integration rule": "gausslegendre"}):
        # never "converged" above the tolerance; the chip carries the flag
        assert c["relative completeness error"] > 0.1
        assert c["within tolerance"] == -max(abs(v) for v in list(c.values())[:-1])
        assert chips.tokens[-1] == "ABOVE TOLERANCE: not converged"
        assert chips.tokens[0].endswith("> 1.00% tolerance")
        assert "converged" not in " ".join(chips.tokens).replace("not converged", "")
    for c, _ in _completeness(clf, {"Baseline": "mask"}):
        assert c["relative completeness error"] <= 1e-2 and c["within tolerance"] == 1.0


def test_layer_ig_substitutes_the_hidden_state_itself(family):
    """Layer IG at the embedding output and the last layer: the path runs in
    hidden_states[layer] (ELECTRA's / ALBERT's projected embeddings,
    ModernBERT's final norm), so F at α = 1 is the model's own output and the
    attributions are complete."""
    arch, clf = family
    rule = "gausslegendre_graded" if arch in STIFF else "gausslegendre"
    examples = [{"sentence": t} for t in TEXTS]
    probas = [o["probas"] for o in clf.predict(examples)]
    for layer in (0, clf.num_layers):
        path_fn, tokens, labels = clf.integrated_gradients_path(examples, "zero", layer=layer)
        at_input = path_fn([(i, 1.0) for i in range(len(examples))])
        for (f, _), p, label in zip(at_input, probas, labels):
            assert f == pytest.approx(p[clf.labels.index(label)], abs=1e-5), layer
        results = ig_lib.integrated_gradients(len(examples), path_fn, rule=rule, steps=64)
        for res, toks in zip(results, tokens):
            assert len(res.attributions) == len(toks)
            assert res.completeness_error <= 1e-2, (layer, res.completeness_error)


@pytest.mark.parametrize("arch", sorted(STIFF))
def test_graded_rule_makes_stiff_zero_baseline_paths_cheap(arch):
    clf = _wrap(arch)
    plain = _completeness(clf, {"Integration rule": "gausslegendre"})
    graded = _completeness(clf, {"Integration rule": "gausslegendre_graded"})
    for (p, _), (g, chips) in zip(plain, graded):
        assert g["relative completeness error"] <= 1e-3 < 0.1 < p["relative completeness error"]
        assert g["within tolerance"] == 1.0 and chips.tokens[-1] == "within tolerance"
        # the same cost: 64 nodes + the two endpoints
        assert g["quadrature nodes"] == p["quadrature nodes"] == 64
        assert g["path points"] == p["path points"] == 66


def test_graded_rule_nodes_and_weights():
    assert quadrature.MIN_STEPS["gausslegendre_graded"] == 2  # 1 node: weights sum to 3/4
    for n in (2, 4, 16, 64):
        x, w = quadrature.nodes_and_weights("gausslegendre_graded", n)
        t, _ = quadrature.nodes_and_weights("gausslegendre", n)
        np.testing.assert_allclose(x, t**3)
        assert w.sum() == pytest.approx(1.0, abs=1e-14)
        # exact for polynomials in alpha of degree d while 3d + 2 <= 2n - 1
        for d in range((2 * n - 3) // 3 + 1):
            assert np.dot(w, x**d) == pytest.approx(1 / (d + 1), rel=1e-12)
    x, _ = quadrature.nodes_and_weights("gausslegendre_graded", 64)
    t, _ = quadrature.nodes_and_weights("gausslegendre", 64)
    assert x.min() < 1e-10 < 1e-4 < t.min()  # crowded toward alpha = 0


def test_fixed_steps_judged_against_the_default_tolerance():
    # F(alpha) = alpha^3 exactly integrated by 2 GL nodes; 1 node misses by 25 %.
    def path_fn(points):
        return [(a**3, np.array([3 * a**2])) for _, a in points]

    (ok,) = ig_lib.integrated_gradients(1, path_fn, "gausslegendre", steps=2)
    (bad,) = ig_lib.integrated_gradients(1, path_fn, "gausslegendre", steps=1)
    assert ok.converged and ok.tolerance == ig_lib.DEFAULT_TOLERANCE
    assert bad.completeness_error == pytest.approx(0.25) and not bad.converged
    (lenient,) = ig_lib.integrated_gradients(1, path_fn, "gausslegendre", 1, fixed_tolerance=0.3)
    assert lenient.converged and lenient.tolerance == 0.3


def test_probe_and_txray_cores_on_the_activations(family):
    _, clf = family
    L = clf.num_layers
    sentences = [*TEXTS, "i loved it", "this is terrible", "a great movie", "the plot was a mess"]
    outs = list(clf.predict([{"sentence": s} for s in sentences], activation_layers="all"))
    special = set(clf.tokenizer.all_special_tokens)
    # probe: special tokens vs the rest, from layer L's token activations
    X = np.concatenate([o[f"layer_{L}/token_activations"] for o in outs])
    y = np.concatenate([[t in special for t in o["tokens"]] for o in outs]).astype(int)
    probe = LinearProbe().fit(X, y)
    assert probe.weight_.shape == (2, X.shape[1])
    assert probe.score(X, y) >= 0.9
    # TX-Ray: layer 1 vs layer L over token features, both crediting modes
    vocab = FeatureVocab()
    ids = [vocab.encode(o["tokens"]) for o in outs]
    for mode in ("max1", "all"):
        a = NeuronFeatureAggregator(X.shape[1], mode=mode)
        b = NeuronFeatureAggregator(X.shape[1], mode=mode)
        for o, fid in zip(outs, ids):
            a.update(o["layer_1/token_activations"], fid)
            b.update(o[f"layer_{L}/token_activations"], fid)
        shift = compute_shift(a, b, feature_names=vocab)
        assert shift.num_shared > 0
        assert ((shift.distance >= 0) & (shift.distance <= 1 + 1e-12)).all()
        assert shift.rank_shifts(k=3).most
