"""Layer conductance for a tagged word (`hf.token_paths`): the integrand against central
differences of the hidden states, completeness within 1 % at the defaults on BERT,
RoBERTa and GPT-2 taggers with integrated gradients' F(x) − F(baseline), forward-mode and
double-backward Jacobian-vector products agreeing, Captum's LayerConductance on the same
model and target, bad layers."""

import numpy as np
import pytest
import torch

from lit_plugins.data import conll
from lit_plugins.hf import layer_hooks, token_paths
from lit_plugins.hf.token_classifier import HFTokenTagger
from tests.kit import tiny_taggers

EXAMPLES = conll.load_bundled_ner().examples[:4]


def _tagger(arch="bert", dtype=torch.float32):
    model, tok = tiny_taggers.make(arch)
    return HFTokenTagger(model=model.to(dtype), tokenizer=tok, batch_size=5)


def test_integrand_is_tag_gradient_times_exact_layer_derivative():
    """Entry (t, k) = ∂F/∂h_tk · dh_tk/dα with F = p(tag | word) at the word's first
    piece: against central differences of HF's hidden states (float64)."""
    tagger = _tagger("bert", torch.float64)
    layer, alpha, eps = 1, 0.37, 1e-6
    word, tag = 3, tagger.labels.index("B-ORG")
    path_fn, batch, chosen = token_paths.layer_conductance_path(
        tagger, EXAMPLES[:1], layer, [(word, "B-ORG")]
    )
    assert chosen == [(word, tag)]
    ((f_ours, integrand),) = path_fn([(0, alpha)])
    x, mask = batch["embs"], batch["enc"]["attention_mask"]
    pos = batch["first"][0][word]

    def hidden(a):
        with torch.no_grad():
            out = tagger.model(inputs_embeds=a * x, attention_mask=mask, output_hidden_states=True)
        return out.hidden_states[layer][0]

    dh = (hidden(alpha + eps) - hidden(alpha - eps)) / (2 * eps)
    leaf = {}

    def split(h):
        leaf["h"] = h.detach().requires_grad_(True)
        return leaf["h"]

    with (
        torch.enable_grad(),
        layer_hooks.hidden_state_hook(tagger.model, tagger.num_layers, layer, split),
    ):
        logits = tagger.model(inputs_embeds=alpha * x, attention_mask=mask).logits
        p = torch.softmax(logits, -1)[0, pos, tag]
        (g,) = torch.autograd.grad(p, leaf["h"])
    expected = (g[0] * dh).numpy()
    assert f_ours == pytest.approx(float(p.detach()), rel=1e-12)
    assert integrand.shape == (len(batch["tokens"][0]), tagger.model.config.hidden_size)
    np.testing.assert_allclose(integrand, expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max())


@pytest.mark.parametrize("arch", tiny_taggers.ARCHS)
def test_completeness_within_one_percent_with_igs_delta_f(arch):
    """At the defaults (64 nodes of the `auto` rule, zero baseline), at every layer: the
    conductance summed over the layer's neurons and the word pieces is F(x) − F(baseline)
    within 1 %, with the same ΔF and target as input IG (whose ΔF test_token_classifier
    checks against HF's own forward), and IG's attribution total on the same nodes."""
    tagger = _tagger(arch)
    ig = tagger.integrated_gradients(EXAMPLES)
    worst = 0.0
    for layer in range(tagger.num_layers + 1):
        found = token_paths.layer_conductance(tagger, EXAMPLES, layer)
        for r, g in zip(found, ig):
            res, gres = r["result"], g["result"]
            assert r["target"] == g["target"] and r["tokens"] == g["tokens"]
            assert res.conductance.shape == (len(r["tokens"]), tagger.model.config.hidden_size)
            np.testing.assert_allclose(res.token_attributions, res.conductance.sum(1))
            np.testing.assert_allclose(res.neuron_attributions, res.conductance.sum(0))
            assert res.delta_f == pytest.approx(gres.delta_f, rel=1e-5, abs=1e-7)
            total = float(res.conductance.sum())
            assert abs(total - gres.delta_f) <= 0.01 * abs(gres.delta_f) + 1e-7
            assert total == pytest.approx(float(gres.attributions.sum()), rel=1e-3, abs=1e-6)
            assert res.completeness_error == pytest.approx(
                abs(total - res.delta_f) / abs(res.delta_f), rel=1e-6, abs=1e-9
            )
            worst = max(worst, res.completeness_error)
    assert worst <= 0.01, worst


def test_chosen_target_and_forward_mode_equals_double_backward():
    tagger = _tagger("roberta")
    ex = EXAMPLES[1]
    target = [("Vienna", "I-LOC")]
    points = [(0, a) for a in (0.0, 0.2, 0.9, 1.0)]
    fwd, _, chosen = token_paths.layer_conductance_path(tagger, [ex], 1, target, jvp="forward")
    dbl, _, _ = token_paths.layer_conductance_path(tagger, [ex], 1, target, jvp="double_backward")
    assert chosen == [(ex["sentence"].split().index("Vienna"), tagger.labels.index("I-LOC"))]
    for (fa, a), (fb, b) in zip(fwd(points), dbl(points)):
        assert fa == pytest.approx(fb, rel=1e-6)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7 + 1e-5 * np.abs(b).max())


def test_agrees_with_captum_layer_conductance():
    """Captum's LayerConductance on the same tiny BERT tagger, layer and target (F from a
    forward of our own: softmax at the word's first piece). Captum multiplies ∂F/∂h by
    finite differences h(α_{k+1}) − h(α_k) (first order); ours takes dh/dα exactly, so
    the gap is Captum's discretisation: it shrinks ~4× from 256 to 1024 steps (measured:
    max unit gap 2.7e-4 → 6.6e-5, 1.6e-5 at 4096; ΔF = 0.39, 0.16), i.e. Captum converges
    to ours."""
    from captum.attr import LayerConductance

    tagger = _tagger("bert")
    layer, examples = 1, EXAMPLES[:2]
    ours = token_paths.layer_conductance(tagger, examples, layer)
    batch = tagger.encode(examples)
    x, mask = batch["embs"], batch["enc"]["attention_mask"]
    pos = torch.tensor([r["first"][r["target"][0]] for r in ours])
    tag = torch.tensor([r["target"][1] for r in ours])

    def forward(embs, m, p, k):
        probs = torch.softmax(tagger.model(inputs_embeds=embs, attention_mask=m).logits, -1)
        return probs[torch.arange(len(embs)), p, k]

    block = layer_hooks.layer_modules(tagger.model, tagger.num_layers)[layer]
    gaps = []
    for steps in (256, 1024):
        theirs = (
            LayerConductance(forward, block)
            .attribute(
                x,
                baselines=torch.zeros_like(x),
                additional_forward_args=(mask, pos, tag),
                n_steps=steps,
                method="gausslegendre",
                internal_batch_size=2048,
            )
            .detach()
            .numpy()
        )
        gap = 0.0
        for i, r in enumerate(ours):
            n = len(r["tokens"])
            assert np.corrcoef(r["result"].conductance.ravel(), theirs[i, :n].ravel())[0, 1] > 0.999
            gap = max(gap, float(np.abs(r["result"].conductance - theirs[i, :n]).max()))
            assert np.abs(theirs[i, n:]).max(initial=0.0) == 0.0  # padding gets nothing
        gaps.append(gap)
    assert gaps[1] <= 1e-4, gaps
    assert gaps[1] <= gaps[0] / 3, gaps  # first-order convergence towards ours


@pytest.mark.parametrize("layer", [-1, 3, "1", 1.5, True])
def test_bad_layer_is_refused(layer):
    tagger = _tagger("bert")
    with pytest.raises(ValueError, match=r"layer must be .*\[0, 2\]"):
        token_paths.layer_conductance(tagger, EXAMPLES[:1], layer)


def test_bad_jvp_mode_is_refused():
    with pytest.raises(ValueError, match="Unknown jvp mode"):
        token_paths.layer_conductance_path(_tagger("bert"), EXAMPLES[:1], 1, jvp="finite")
