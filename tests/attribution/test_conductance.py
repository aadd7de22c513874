"""Layer and neuron conductance: the exact integrand, completeness on every
encoder family, agreement with Captum, batching, the double-backward JVP, bad
input."""

import logging

import numpy as np
import pytest
import torch

from lit_plugins.attribution import conductance as conductance_lib
from lit_plugins.attribution import integrated_gradients as ig_lib
from lit_plugins.hf import layer_hooks
from lit_plugins.hf import paths as hf_paths
from lit_plugins.lit.model import HFSequenceClassifier
from tests.kit import tiny_models

TEXTS = ["the film was not bad at all", "boring", "slow start but a stunning finale really"]
EXAMPLES = [{"sentence": t} for t in TEXTS]
# Zero-baseline path stiff at α -> 0 (see tests/hf/test_encoder_families.py).
STIFF = {"modernbert", "deberta-v2"}


def _wrap(arch, dtype=torch.float32):
    model, tok = tiny_models.make(arch)
    return HFSequenceClassifier(
        model=model.to(dtype), tokenizer=tok, labels=["neg", "pos"], batch_size=4
    )


# ------------------------------------------------------------- integrand
def test_integrand_is_gradient_times_exact_layer_derivative():
    """(t, j) entry = ∂F/∂h_tj · dh_tj/dα, against central differences of the
    hidden states (float64)."""
    clf = _wrap("bert", torch.float64)
    layer, alpha, eps = 1, 0.37, 1e-6
    path_fn, _, labels = hf_paths.make_layer_conductance_path_fn(clf, EXAMPLES[:1], layer)
    (f_ours, integrand) = path_fn([(0, alpha)])[0]

    batch = clf.encode(EXAMPLES[:1])
    x, mask = batch["embs"], batch["enc"]["attention_mask"]
    target = clf.labels.index(labels[0])

    def hidden(a):
        with torch.no_grad():
            out = clf.model(inputs_embeds=a * x, attention_mask=mask, output_hidden_states=True)
        return out.hidden_states[layer][0]

    dh = (hidden(alpha + eps) - hidden(alpha - eps)) / (2 * eps)
    leaf = {}

    def split(h):
        leaf["h"] = h.detach().requires_grad_(True)
        return leaf["h"]

    with (
        torch.enable_grad(),
        layer_hooks.hidden_state_hook(clf.model, clf.num_layers, layer, split),
    ):
        p = torch.softmax(clf.model(inputs_embeds=alpha * x, attention_mask=mask).logits, -1)
        (g,) = torch.autograd.grad(p[0, target], leaf["h"])
    expected = (g[0] * dh).numpy()
    assert f_ours == pytest.approx(float(p[0, target].detach()), rel=1e-12)
    np.testing.assert_allclose(integrand, expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max())


def test_double_backward_jvp_equals_forward_mode_and_auto_falls_back(monkeypatch, caplog):
    clf = tiny_models.classifier("bert")
    points = [(i, a) for i in range(3) for a in (0.0, 0.2, 0.9)]
    fwd, _, _ = hf_paths.make_layer_conductance_path_fn(clf, EXAMPLES, 1, jvp="forward")
    dbl, _, _ = hf_paths.make_layer_conductance_path_fn(clf, EXAMPLES, 1, jvp="double_backward")
    for (fa, a), (fb, b) in zip(fwd(points), dbl(points)):
        assert fa == pytest.approx(fb, rel=1e-6)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)

    original = hf_paths._layer_points

    def no_forward_ad(*args):
        if args[-1] == "forward":
            raise NotImplementedError(
                "Trying to use forward AD with some_op that does not support it"
            )
        return original(*args)

    monkeypatch.setattr(hf_paths, "_layer_points", no_forward_ad)
    auto, _, _ = hf_paths.make_layer_conductance_path_fn(clf, EXAMPLES, 1)
    with caplog.at_level(logging.WARNING):
        got = auto(points)
    assert "double-backward" in caplog.text
    for (_, a), (_, b) in zip(got, dbl(points)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


# ---------------------------------------------------------- completeness
@pytest.mark.parametrize("arch", tiny_models.ARCHS)
def test_completeness_on_every_family(arch):
    """64 Gauss–Legendre nodes: the total conductance is ∫ dF/dα on the same
    nodes as IG (so the same error), and adaptive mode reaches 1 %."""
    clf = tiny_models.classifier(arch)
    rule = "gausslegendre_graded" if arch in STIFF else "gausslegendre"
    for layer in (0, clf.num_layers):
        res, tokens, _ = hf_paths.layer_conductance(clf, EXAMPLES, layer, rule=rule, steps=64)
        ig_fn, _, _ = clf.integrated_gradients_path(EXAMPLES)
        ig = ig_lib.integrated_gradients(3, ig_fn, rule, 64)
        for r, g, toks in zip(res, ig, tokens):
            assert r.conductance.shape == (len(toks), clf.model.config.hidden_size)
            assert r.delta_f == pytest.approx(g.delta_f, rel=1e-5, abs=1e-7)
            assert r.conductance.sum() == pytest.approx(g.attributions.sum(), rel=1e-3, abs=1e-6)
            np.testing.assert_allclose(r.token_attributions, r.conductance.sum(1))
            np.testing.assert_allclose(r.neuron_attributions, r.conductance.sum(0))
            assert r.completeness_error < 0.02, (arch, layer, r.completeness_error)
    adaptive, _, _ = hf_paths.layer_conductance(
        clf, EXAMPLES, 1, rule=rule, steps=16, tolerance=0.01, max_steps=512
    )
    assert all(r.converged and r.completeness_error <= 0.01 for r in adaptive)


def test_batching_and_the_row_bound_do_not_change_results(monkeypatch):
    clf = tiny_models.classifier("roberta")
    a, _, _ = hf_paths.layer_conductance(clf, EXAMPLES, 1, steps=16, batch_size=64)
    monkeypatch.setattr(hf_paths, "MAX_TOKEN_ROWS", 50)
    b, _, _ = hf_paths.layer_conductance(clf, EXAMPLES, 1, steps=16, batch_size=5)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.conductance, y.conductance, rtol=1e-4, atol=1e-8)
    n1, _, _ = hf_paths.neuron_conductance(clf, EXAMPLES, [(1, 3), (2, 7, 0)], steps=8)
    n2, _, _ = hf_paths.neuron_conductance(
        clf, EXAMPLES, [(1, 3), (2, 7, 0)], steps=8, batch_size=3
    )
    for x, y in zip(n1, n2):
        np.testing.assert_allclose(x.attributions, y.attributions, rtol=1e-4, atol=1e-8)


def test_neuron_conductance_sums_to_layer_conductance_and_shares_passes():
    clf = tiny_models.classifier("bert")
    layer_res, tokens, _ = hf_paths.layer_conductance(clf, EXAMPLES, 1, steps=16)
    neurons = [(1, 4), (1, 9, 0), (2, 4), (0, 30, 1)]
    res, _, _ = hf_paths.neuron_conductance(clf, EXAMPLES, neurons, steps=16)
    ig_fn, _, _ = clf.integrated_gradients_path(EXAMPLES)
    ig = ig_lib.integrated_gradients(3, ig_fn, "gausslegendre", 16)
    for r, lr, g, toks in zip(res, layer_res, ig, tokens):
        assert r.attributions.shape == (4, len(toks))
        assert [n.label for n in r.neurons] == ["L1 n4", "L1 n9 @0", "L2 n4", "L0 n30 @1"]
        # Summed over input tokens: that neuron's layer conductance.
        assert r.neuron_totals[0] == pytest.approx(lr.conductance[:, 4].sum(), rel=1e-4, abs=1e-8)
        assert r.neuron_totals[1] == pytest.approx(lr.conductance[0, 9], rel=1e-4, abs=1e-8)
        # The completeness report is the path's (IG on the same nodes).
        np.testing.assert_allclose(r.input_attributions, g.attributions, rtol=1e-4, atol=1e-8)
        assert r.completeness_error == pytest.approx(g.completeness_error, rel=1e-3, abs=1e-6)
        assert r.evaluations == 18  # 16 nodes + 2 endpoints, shared by the 4 neurons
    # One call with several neurons equals separate calls.
    (alone,), _, _ = hf_paths.neuron_conductance(clf, EXAMPLES[:1], [(2, 4)], steps=16)
    np.testing.assert_allclose(alone.attributions[0], res[0].attributions[2], rtol=1e-5)


# ------------------------------------------------------------- Captum
def _captum_setup(clf, examples, labels, layer):
    batch = clf.encode(examples)
    x, mask = batch["embs"], batch["enc"]["attention_mask"]
    target = [clf.labels.index(l) for l in labels]

    def forward(embs, m):
        return torch.softmax(clf.model(inputs_embeds=embs, attention_mask=m).logits, -1)

    block = layer_hooks.layer_modules(clf.model, clf.num_layers)[layer]
    kw = dict(
        baselines=torch.zeros_like(x),
        target=target,
        additional_forward_args=(mask,),
        n_steps=1024,
        method="gausslegendre",
        internal_batch_size=1024,
    )
    return x, forward, block, kw, batch["lengths"]


def _check_captum(clf, examples, layer, neurons):
    from captum.attr import LayerConductance, NeuronConductance

    res, _, labels = hf_paths.layer_conductance(clf, examples, layer, steps=64)
    x, forward, block, kw, lengths = _captum_setup(clf, examples, labels, layer)
    theirs = LayerConductance(forward, block).attribute(x, **kw).detach().numpy()
    for r, t, n in zip(res, theirs, lengths):
        assert np.corrcoef(r.conductance.ravel(), t[:n].ravel())[0, 1] >= 0.99
    nres, _, _ = hf_paths.neuron_conductance(clf, examples, neurons, steps=64)
    nc = NeuronConductance(forward, block)
    for k, (_, j, t) in enumerate(neurons):
        theirs = nc.attribute(x, neuron_selector=(t, j), **kw).detach().sum(-1).numpy()
        for r, row, n in zip(nres, theirs, lengths):
            assert np.corrcoef(r.attributions[k], row[:n])[0, 1] >= 0.99


@pytest.mark.parametrize("arch", ["bert", "distilbert", "roberta"])
def test_agrees_with_captum_at_1024_steps(arch):
    clf = tiny_models.classifier(arch)
    _check_captum(clf, EXAMPLES, 1, [(1, 3, 0), (1, 17, 1)])


def test_neuron_over_all_positions_is_the_sum_of_captums_per_position():
    from captum.attr import NeuronConductance

    clf = tiny_models.classifier("bert")
    examples = [{"sentence": "boring film"}]
    (res,), tokens, labels = hf_paths.neuron_conductance(clf, examples, [(2, 5)], steps=64)
    x, forward, block, kw, _ = _captum_setup(clf, examples, labels, 2)
    nc = NeuronConductance(forward, block)
    total = sum(
        nc.attribute(x, neuron_selector=(t, 5), **kw).detach().sum(-1).numpy()[0]
        for t in range(len(tokens[0]))
    )
    np.testing.assert_allclose(res.attributions[0], total, rtol=1e-3, atol=1e-7)


def test_minilm_completeness_and_captum(minilm_finetuned, dev_examples):
    clf = minilm_finetuned
    res, _, _ = hf_paths.layer_conductance(clf, dev_examples[:8], 3, steps=64)
    assert max(r.completeness_error for r in res) <= 0.01
    _check_captum(clf, dev_examples[:2], 3, [(3, 100, 0)])


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize("layer", [-1, 3, "1", 1.5, True])
def test_unknown_layer(layer):
    clf = tiny_models.classifier("bert")
    with pytest.raises(ValueError, match=r"layer must be .*\[0, 2\]"):
        hf_paths.make_layer_conductance_path_fn(clf, EXAMPLES, layer)
    with pytest.raises(ValueError, match=r"layer must be in \[0, 2\]"):
        hf_paths.make_neuron_conductance_path_fn(clf, EXAMPLES, [(layer, 0)])


@pytest.mark.parametrize(
    "neurons,match",
    [
        ([(1, 32)], r"index must be in \[0, 32\)"),
        ([(1, -1)], r"index must be in \[0, 32\)"),
        ([(1, 2, 3)], r"token must be a position .* \[0, 3\)"),  # "boring" has 3 tokens
        ([(1, 2), (1, 2)], "distinct"),
        ([(1,)], r"\(layer, index\) or \(layer, index, token\)"),
        ([], "non-empty"),
    ],
)
def test_bad_neurons(neurons, match):
    clf = tiny_models.classifier("bert")
    with pytest.raises(ValueError, match=match):
        hf_paths.make_neuron_conductance_path_fn(clf, EXAMPLES, neurons)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(steps=0), r"steps must be in \[1, 1024\]"),
        (dict(steps=2000), r"steps must be in \[1, 1024\]"),
        (dict(rule="simpson"), "accepted: riemann_left"),
        (dict(tolerance=2.0), r"tolerance must be in \(0, 1\)"),
    ],
)
def test_bad_quadrature_options(kw, match):
    clf = tiny_models.classifier("bert")
    with pytest.raises(ValueError, match=match):
        hf_paths.layer_conductance(clf, EXAMPLES, 1, **kw)
    with pytest.raises(ValueError, match=match):
        hf_paths.neuron_conductance(clf, EXAMPLES, [(1, 0)], **kw)


def test_bad_jvp_mode_and_baseline():
    clf = tiny_models.classifier("bert")
    with pytest.raises(ValueError, match="accepted: auto, forward, double_backward"):
        hf_paths.make_layer_conductance_path_fn(clf, EXAMPLES, 1, jvp="finite")
    with pytest.raises(ValueError, match="accepted: zero, pad, mask"):
        hf_paths.make_layer_conductance_path_fn(clf, EXAMPLES, 1, baseline="blur")


def test_neuron_label():
    assert conductance_lib.Neuron(6, 123).label == "L6 n123"
    assert conductance_lib.Neuron(0, 4, 2).label == "L0 n4 @2"
