"""Max-sensitivity and infidelity (lit_plugins.faithfulness.robustness) against
Captum's `sensitivity_max` and `infidelity` on a tiny BERT (same inputs, same
seeded perturbations) and against closed forms on a linear model."""

import numpy as np
import pytest
import torch
from captum import metrics as captum_metrics

from lit_plugins.faithfulness import robustness
from tests.kit import tiny_models

TEXTS = ["the film was great", "not good at all , really boring", "fun"]


@pytest.fixture(scope="module")
def tiny_bert():
    model, tok = tiny_models.make("bert", num_labels=2, seed=0)
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        embeds = model.get_input_embeddings()(enc["input_ids"])
        targets = model(**enc).logits.argmax(-1)
    return model, enc["attention_mask"], embeds, targets


def prob(model, embeds, attention_mask, target):
    logits = model(inputs_embeds=embeds, attention_mask=attention_mask).logits
    return torch.softmax(logits, -1).gather(1, target[:, None])[:, 0]


def grad_times_input(model, embeds, attention_mask, target):
    """Gradient × input per token (a float32 torch map [R, T])."""
    with torch.enable_grad():
        x = embeds.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(prob(model, x, attention_mask, target).sum(), x)
    return (grad * x).sum(-1).detach() * attention_mask


def test_max_sensitivity_matches_captum(tiny_bert):
    model, mask, embeds, targets = tiny_bert
    n, t, d = embeds.shape
    noise = robustness.embedding_noise((n, t, d), 6, radius=0.05, seed=3, perturb_mask=mask.bool())
    noise_t = torch.tensor(noise.reshape(n * 6, t, d), dtype=torch.float32)

    def captum_explain(inputs, additional_forward_args, target):
        # Captum's first call passes its inputs as a tuple and expects a tuple back
        # (as its attribution methods do).
        if isinstance(inputs, tuple):
            return (grad_times_input(model, inputs[0], additional_forward_args[0], target),)
        return grad_times_input(model, inputs, additional_forward_args[0], target)

    def captum_perturb(inputs):
        assert inputs.shape[0] == n * 6  # one call, examples repeat-interleaved
        return inputs + noise_t

    expected = captum_metrics.sensitivity_max(
        captum_explain,
        embeds,
        perturb_func=captum_perturb,
        n_perturb_samples=6,
        additional_forward_args=(mask,),
        target=targets,
    ).numpy()

    def explain(rows, x):
        rows_t = torch.as_tensor(rows)
        x_t = torch.tensor(x, dtype=torch.float32)
        return grad_times_input(model, x_t, mask[rows_t], targets[rows_t]).numpy()

    got = robustness.max_sensitivity(explain, embeds.numpy(), mask.numpy(), noise=noise)
    assert got.shape == (n,)
    assert np.all(got > 0.0)
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=1e-6)
    # Chunking rows differently gives the same numbers.
    small = robustness.max_sensitivity(
        explain, embeds.numpy(), mask.numpy(), noise=noise, batch_size=4
    )
    np.testing.assert_allclose(small, got, rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("kind", ["gaussian", "subset"])
def test_infidelity_matches_captum(tiny_bert, normalize, kind):
    model, mask, embeds, targets = tiny_bert
    n, t, _ = embeds.shape
    s = 8
    pert = robustness.token_perturbations(
        (n, t), s, kind=kind, scale=0.3, seed=1, perturb_mask=mask.bool()
    )
    maps = grad_times_input(model, embeds, mask, targets)  # zero baseline: x − b = x

    # Captum's input is the per-token coefficient α (ones); the perturbed input
    # 1 − I; forward_func rebuilds the embeddings α ⊙ x of the matching example.
    def captum_forward(alpha, row_embeds, attention_mask):
        x = alpha[:, :, None] * row_embeds
        return torch.softmax(model(inputs_embeds=x, attention_mask=attention_mask).logits, -1)

    pert_t = torch.tensor(pert.reshape(n * s, t), dtype=torch.float32)

    def captum_perturb(inputs):
        return pert_t, inputs - pert_t

    with torch.no_grad():
        expected = captum_metrics.infidelity(
            captum_forward,
            captum_perturb,
            torch.ones(n, t),
            maps,
            additional_forward_args=(embeds, mask),
            target=targets,
            n_perturb_samples=s,
            normalize=normalize,
        ).numpy()

    def forward(rows, alpha):
        rows_t = torch.as_tensor(rows)
        a = torch.tensor(alpha, dtype=torch.float32)
        with torch.no_grad():
            probs = captum_forward(a, embeds[rows_t], mask[rows_t])
        return probs.gather(1, targets[rows_t][:, None])[:, 0].numpy()

    got = robustness.infidelity(
        forward, maps.numpy(), pert, mask.numpy(), normalize=normalize, batch_size=7
    )
    assert got.shape == (n,)
    assert np.all(got > 0.0)
    # Captum sums in float32; with `normalize` it expands β²a − 2βab + b, which
    # cancels down to float32 rounding of b = Σ Δf² (ours is in float64).
    full = forward(np.arange(n), np.ones((n, t)))
    perturbed = forward(np.repeat(np.arange(n), s), 1.0 - pert.reshape(n * s, t))
    b = np.mean((np.repeat(full, s) - perturbed) ** 2)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=10 * np.finfo(np.float32).eps * b)


# ------------------------------------------------------ closed forms ------
W = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0], [2.0, 2.0, 2.0], [-1.0, 0.0, 0.0]])  # [T, d]
X = np.array([[0.3, 0.1, -0.2], [1.0, -0.5, 0.2], [0.1, 0.1, 0.4], [-2.0, 0.0, 1.0]])
B = np.array([[0.1, 0.0, 0.0], [0.0, 0.0, 0.1], [0.0, 0.2, 0.0], [0.0, 0.0, 0.0]])


def linear_f(x):  # f(x) = Σ_t w_t · x_t, for x [..., T, d]
    return np.einsum("...td,td->...", x, W)


def test_linear_gradient_times_input_has_zero_infidelity():
    maps = np.einsum("td,td->t", W, X - B)[None]  # ∇f · (x − b) per token

    def forward(rows, alpha):
        return linear_f(B + alpha[:, :, None] * (X - B))

    for kind, scale in [("gaussian", 0.5), ("subset", 0.5)]:
        pert = robustness.token_perturbations((1, 4), 20, kind=kind, scale=scale, seed=0)
        assert np.abs(pert).sum() > 0
        got = robustness.infidelity(forward, maps, pert)
        np.testing.assert_allclose(got, [0.0], atol=1e-24)
    # A wrong map (one token's score flipped) is unfaithful by exactly
    # E[(I_t · 2 s_t)²] for that token.
    wrong = maps.copy()
    wrong[0, 1] *= -1
    pert = robustness.token_perturbations((1, 4), 50, scale=0.5, seed=2)
    got = robustness.infidelity(forward, wrong, pert)
    expected = np.mean((pert[0, :, 1] * 2 * maps[0, 1]) ** 2)
    np.testing.assert_allclose(got, [expected], rtol=1e-12)
    # normalize: β = −1 fits a fully flipped map exactly.
    got = robustness.infidelity(forward, -maps, pert, normalize=True)
    np.testing.assert_allclose(got, [0.0], atol=1e-20)


def test_linear_sensitivity_closed_forms():
    def gradient(rows, x):  # a linear model's gradient map (per-token Σ_d w): constant
        return np.broadcast_to(W.sum(-1), (len(rows), 4)).copy()

    def grad_x_input(rows, x):
        return np.einsum("rtd,td->rt", x, W)

    x = X[None]
    assert robustness.max_sensitivity(gradient, x, n_samples=5, radius=0.3)[0] == 0.0
    # Over the L∞ ball of radius r, ‖s(x + δ) − s(x)‖₂ = ‖(w_t · δ_t)_t‖₂ peaks at
    # the corner δ_t = r·sign(w_t): r‖(‖w_t‖₁)_t‖₂ / ‖s(x)‖₂.
    r = 0.3
    s_x = np.einsum("td,td->t", X, W)
    bound = r * np.linalg.norm(np.abs(W).sum(-1)) / np.linalg.norm(s_x)
    corner = r * np.sign(W)
    noise = np.stack([0.5 * corner, corner, -0.2 * corner])[None]  # [1, 3, T, d]
    got = robustness.max_sensitivity(grad_x_input, x, noise=noise)
    np.testing.assert_allclose(got, [bound], rtol=1e-12)
    sampled = robustness.max_sensitivity(grad_x_input, x, n_samples=50, radius=r, seed=0)
    assert 0.2 * bound < sampled[0] < bound


def test_padding_is_never_perturbed_and_neutral_values():
    x = np.concatenate([X[None], np.zeros((1, 4, 3))])
    x[1, 0] = X[0]  # the second example is one token plus 3 pads
    mask = np.array([[True] * 4, [True, False, False, False]])

    def grad_x_input(rows, xs):
        return np.einsum("rtd,td->rt", xs, W)

    got = robustness.max_sensitivity(grad_x_input, x, mask, n_samples=8, radius=0.1, seed=0)
    assert np.all(np.isfinite(got)) and got.shape == (2,)
    # Example 2's map is one token: its relative change is |w_0 · δ_0| / |w_0 · x_0|
    # at most r‖w_0‖₁ / |w_0 · x_0|, pads contribute nothing.
    assert got[1] <= 0.1 * np.abs(W[0]).sum() / abs(W[0] @ X[0]) + 1e-12
    # Nothing perturbed (an all-special example): infidelity 0 and sensitivity 0.
    none = np.zeros((1, 4), dtype=bool)
    pert = robustness.token_perturbations((1, 4), 5, perturb_mask=none)
    assert not pert.any()
    inf = robustness.infidelity(lambda rows, a: linear_f(a[:, :, None] * X), np.ones((1, 4)), pert)
    assert inf.tolist() == [0.0]
    inf = robustness.infidelity(
        lambda rows, a: linear_f(a[:, :, None] * X), np.ones((1, 4)), pert, normalize=True
    )
    assert inf.tolist() == [0.0]
    sens = robustness.max_sensitivity(
        grad_x_input, X[None], n_samples=3, perturb_mask=none, radius=0.1
    )
    assert sens.tolist() == [0.0]
    # A zero map: the absolute change (Captum divides by 1).
    zero = robustness.sensitivity_from_maps(np.zeros((1, 2)), np.array([[[3.0, 4.0]]]))
    assert zero.tolist() == [5.0]


def test_bad_input():
    with pytest.raises(ValueError, match="kind"):
        robustness.token_perturbations((1, 3), 2, kind="salt")
    with pytest.raises(ValueError, match="n_samples"):
        robustness.embedding_noise((1, 3, 2), 0)
    with pytest.raises(ValueError, match="maps"):
        robustness.infidelity(
            lambda r, a: np.zeros(len(r)), np.full((1, 3), np.nan), np.zeros((1, 2, 3))
        )
    with pytest.raises(ValueError, match="one finite score"):
        robustness.infidelity(
            lambda r, a: np.full(len(r), np.nan), np.ones((1, 3)), np.ones((1, 2, 3))
        )
