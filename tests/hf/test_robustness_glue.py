"""The HF side of the robustness metrics (lit_plugins.hf.robustness) on tiny
classifiers: its forward_fn and gradient maps equal the wrapper's own predict and
forward, and end to end max-sensitivity and infidelity equal Captum's."""

import numpy as np
import pytest
import torch
from captum import metrics as captum_metrics

from lit_plugins.faithfulness import robustness
from lit_plugins.hf import robustness as hf_robustness
from tests.kit import tiny_models

INPUTS = [
    {"sentence": "the film was great"},
    {"sentence": "not good at all , really boring"},
    {"sentence": "fun", "grad_class": "neg"},
]


@pytest.fixture(scope="module", params=["bert", "gpt2"])
def setup(request):
    clf = tiny_models.classifier(request.param, labels=["neg", "pos"])
    return clf, hf_robustness.embed(clf, INPUTS)


def test_forward_fn_and_gradient_maps_match_the_wrapper(setup):
    clf, batch = setup
    n, t = batch.token_mask.shape
    probs = np.array([o["probas"] for o in clf.predict(INPUTS)])
    assert batch.targets[2] == 0  # the pinned class
    assert batch.targets[:2] == probs[:2].argmax(1).tolist()
    expected = probs[np.arange(n), batch.targets]
    got = hf_robustness.forward_fn(clf, batch)(np.arange(n), np.ones((n, t)))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # The wrapper's own forward: d p_target / d e, times e, per real token.
    out = clf.forward(clf.encode(INPUTS))
    gxi = (out["grads"] * out["embs"]).sum(-1).numpy() * batch.token_mask
    maps = hf_robustness.gradient_explain_fn(clf, batch)(np.arange(n), batch.embeddings)
    np.testing.assert_allclose(maps, gxi, rtol=1e-4, atol=1e-7)
    norms = hf_robustness.gradient_explain_fn(clf, batch, "gradient_norm")(
        np.arange(n), batch.embeddings
    )
    np.testing.assert_allclose(
        norms, np.linalg.norm(out["grads"].numpy(), axis=-1) * batch.token_mask, rtol=1e-4
    )
    # Padding back and forth.
    real = [maps[i, p] for i, p in enumerate(batch.positions)]
    np.testing.assert_array_equal(batch.padded(real), maps)
    with pytest.raises(ValueError, match="a map of 1 values"):
        batch.padded([np.ones(1)] * n)


def test_end_to_end_equals_captum(setup):
    clf, batch = setup
    n, t, d = batch.embeddings.shape
    explain = hf_robustness.gradient_explain_fn(clf, batch)
    forward = hf_robustness.forward_fn(clf, batch)
    perturb = batch.token_mask & ~batch.special
    noise = robustness.embedding_noise((n, t, d), 4, radius=0.02, seed=0, perturb_mask=perturb)
    sens = robustness.max_sensitivity(explain, batch.embeddings, batch.token_mask, noise=noise)
    pert = robustness.token_perturbations((n, t), 6, "subset", 0.3, seed=0, perturb_mask=perturb)
    maps = explain(np.arange(n), batch.embeddings)
    infid = robustness.infidelity(forward, maps, pert, batch.token_mask)

    x = torch.tensor(batch.embeddings, dtype=torch.float32)
    rows_of = {}  # Captum's rows are the examples repeat-interleaved

    def captum_explain(inputs):
        single = isinstance(inputs, tuple)
        emb = inputs[0] if single else inputs
        rows = np.arange(emb.shape[0]) // (emb.shape[0] // n)
        out = torch.tensor(explain(rows, emb.double().numpy()), dtype=torch.float32)
        return (out,) if single else out

    def captum_perturb(inputs):
        return inputs + torch.tensor(noise.reshape(n * 4, t, d), dtype=torch.float32)

    expected = captum_metrics.sensitivity_max(
        captum_explain, x, perturb_func=captum_perturb, n_perturb_samples=4
    ).numpy()
    np.testing.assert_allclose(sens, expected, rtol=1e-4, atol=1e-7)

    def captum_forward(alpha):
        rows_of.setdefault(alpha.shape[0], np.arange(alpha.shape[0]) // (alpha.shape[0] // n))
        probs = forward(rows_of[alpha.shape[0]], alpha.double().numpy())
        return torch.tensor(probs, dtype=torch.float32)

    pert_t = torch.tensor(pert.reshape(n * 6, t), dtype=torch.float32)
    expected = captum_metrics.infidelity(
        captum_forward,
        lambda inputs: (pert_t, inputs - pert_t),
        torch.ones(n, t),
        torch.tensor(maps, dtype=torch.float32),
        n_perturb_samples=6,
    ).numpy()
    np.testing.assert_allclose(infid, expected, rtol=1e-4, atol=1e-10)
    assert np.all(np.isfinite(sens)) and np.all(sens > 0) and np.all(infid > 0)
