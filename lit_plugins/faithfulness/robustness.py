"""Robustness of token-salience maps: max-sensitivity and infidelity (Yeh et al.
2019, *On the (In)fidelity and Sensitivity of Explanations*), LIT-free (numpy).

Both work on N examples at once, held as padded arrays: `embeddings`
[N, T, d] (the word embeddings the model reads), `token_mask` [N, T] (True for
the example's real tokens, False for padding) and token-salience maps [N, T].
The model is reached only through callables over flattened (example, sample)
rows, so every perturbation sample of every example goes through the model in
batches of `batch_size` rows.

* **Max-sensitivity**: for S perturbations δ_j of the embeddings (default:
  uniform in the L∞ ball of radius r, Captum's ``default_perturb_func``),
  max_j ‖s(x) − s(x + δ_j)‖₂ / ‖s(x)‖₂, where s is the explanation function
  (the map recomputed on the perturbed input). Lower is better. As Captum's
  ``sensitivity_max``: a zero map divides by 1 instead (the absolute change).
* **Infidelity**: E_I[(Iᵀs − (f(x) − f(x − I ⊙ (x − b))))²] for token-level
  perturbations I ∈ R^T: token t's embedding moves by the fraction I_t towards
  its baseline b_t. With this perturbation, a map equal to the first-order
  Taylor term of f, such as gradient × (x − b) summed over the embedding
  dimension, has infidelity → 0 as I → 0; for a linear f it is exactly 0.
  Lower is better. `normalize=True` rescales the map by the least-squares
  β = E[Iᵀs · Δf] / E[(Iᵀs)²] first (Captum's ``normalize``, Yeh et al.'s
  official code), so the score ignores the map's scale; computed as the
  mean squared residual itself (Captum expands the square, which cancels to
  rounding noise, even below 0, when the rescaled map fits well).

Where this differs from Captum (documented choices; the parity tests feed
Captum the same perturbations):

* Padding positions are never perturbed and never counted in a norm; special
  tokens are perturbed only if `perturb_mask` says so (default: every real
  token).
* Infidelity perturbs tokens, not embedding coordinates: a token-salience map
  has one score per token, so Iᵀs needs one perturbation per token. (In
  Captum's terms: the input is the per-token coefficient α = 1 of
  x(α) = b + α ⊙ (x − b), the perturbed input is 1 − I.)
* Neutral values, never NaN: an example with no perturbed token has
  infidelity 0 (Iᵀs = 0 and Δf = 0) and max-sensitivity 0; with `normalize`
  a zero denominator is replaced by 1 (Captum's ``safe_div``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# (example index per row [R], perturbed embeddings [R, T, d]) -> maps [R, T]
ExplainFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
# (example index per row [R], per-token coefficients α [R, T]) -> f [R], the
# explained class's score on b + α ⊙ (x − b) (α = 1: the input itself).
ForwardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

TOKEN_PERTURBATIONS = ("gaussian", "subset")


def _check_mask(token_mask, shape: tuple[int, int]) -> np.ndarray:
    if token_mask is None:
        return np.ones(shape, dtype=bool)
    mask = np.asarray(token_mask, dtype=bool)
    if mask.shape != shape:
        raise ValueError(f"token mask of shape {mask.shape}, expected {shape}.")
    return mask


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _check_maps(maps, shape: tuple[int, ...], what: str) -> np.ndarray:
    values = np.asarray(maps, dtype=np.float64)
    if values.shape != shape:
        raise ValueError(f"{what} of shape {values.shape}, expected {shape}.")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} has NaN or infinite values.")
    return values


def _in_batches(fn, rows: np.ndarray, inputs: np.ndarray, batch_size: int) -> np.ndarray:
    """fn over (rows, inputs) in chunks of at most batch_size rows, concatenated."""
    outs = []
    for start in range(0, rows.size, batch_size):
        stop = start + batch_size
        outs.append(np.asarray(fn(rows[start:stop], inputs[start:stop]), dtype=np.float64))
    return np.concatenate(outs, axis=0)


# ---------------------------------------------------------- perturbations --
def embedding_noise(
    shape: tuple[int, int, int],
    n_samples: int,
    radius: float = 0.02,
    seed: int = 0,
    perturb_mask: np.ndarray | None = None,
) -> np.ndarray:
    """δ [N, S, T, d]: uniform in [−radius, radius] on the perturbed tokens
    (`perturb_mask` [N, T], default all), 0 elsewhere; seeded."""
    n, t, d = shape
    n_samples = _check_positive_int("n_samples", n_samples)
    if not radius >= 0:
        raise ValueError(f"radius must be >= 0, got {radius!r}.")
    mask = _check_mask(perturb_mask, (n, t))
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-radius, radius, size=(n, n_samples, t, d))
    return noise * mask[:, None, :, None]


def token_perturbations(
    shape: tuple[int, int],
    n_samples: int,
    kind: str = "gaussian",
    scale: float = 0.1,
    seed: int = 0,
    perturb_mask: np.ndarray | None = None,
) -> np.ndarray:
    """I [N, S, T] for `infidelity`, 0 on tokens outside `perturb_mask`.

    kind "gaussian": I_t ~ N(0, scale²) (Yeh et al.'s noisy-baseline
    perturbation, in token coefficients); "subset": I_t = 1 with probability
    `scale`, else 0 (random subsets of tokens replaced by the baseline: the
    Sensitivity-n-like perturbation for maps that include the input)."""
    n, t = shape
    n_samples = _check_positive_int("n_samples", n_samples)
    mask = _check_mask(perturb_mask, (n, t))
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        if not scale >= 0:
            raise ValueError(f"scale must be >= 0, got {scale!r}.")
        values = rng.normal(0.0, scale, size=(n, n_samples, t))
    elif kind == "subset":
        if not 0 <= scale <= 1:
            raise ValueError(f"subset probability must be in [0, 1], got {scale!r}.")
        values = (rng.random((n, n_samples, t)) < scale).astype(np.float64)
    else:
        raise ValueError(f"kind must be one of {list(TOKEN_PERTURBATIONS)}, got {kind!r}.")
    return values * mask[:, None, :]


# ----------------------------------------------------------- the metrics --
def sensitivity_from_maps(
    maps: np.ndarray, perturbed_maps: np.ndarray, token_mask: np.ndarray | None = None
) -> np.ndarray:
    """Max-sensitivity per example from maps [N, T] and the maps on the
    perturbed inputs [N, S, T]: max_j ‖s − s_j‖₂ / ‖s‖₂ over real tokens
    (a zero map: ‖s‖₂ taken as 1)."""
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 2:
        raise ValueError(f"maps must be [examples, tokens], got shape {maps.shape}.")
    n, t = maps.shape
    perturbed = np.asarray(perturbed_maps, dtype=np.float64)
    if perturbed.ndim != 3 or perturbed.shape[0] != n or perturbed.shape[2] != t:
        raise ValueError(f"perturbed maps of shape {perturbed.shape}, expected [{n}, S, {t}].")
    mask = _check_mask(token_mask, (n, t))
    maps = np.where(mask, maps, 0.0)
    diffs = np.linalg.norm((maps[:, None, :] - perturbed) * mask[:, None, :], axis=-1)
    norms = np.linalg.norm(maps, axis=-1)
    norms = np.where(norms == 0.0, 1.0, norms)
    return diffs.max(axis=1) / norms


def max_sensitivity(
    explain_fn: ExplainFn,
    embeddings: np.ndarray,
    token_mask: np.ndarray | None = None,
    *,
    maps: np.ndarray | None = None,
    noise: np.ndarray | None = None,
    n_samples: int = 10,
    radius: float = 0.02,
    seed: int = 0,
    perturb_mask: np.ndarray | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Max-sensitivity of the explanation `explain_fn` on each example [N].

    Args:
      explain_fn: maps of rows of (possibly perturbed) embeddings.
      embeddings: [N, T, d] the inputs; token_mask [N, T] their real tokens.
      maps: the maps on the unperturbed inputs [N, T] (computed with
        `explain_fn` if not given).
      noise: δ [N, S, T, d]; default `embedding_noise(n_samples, radius,
        seed, perturb_mask)` (perturb_mask defaults to the real tokens).
      batch_size: rows per `explain_fn` call.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"embeddings must be [examples, tokens, dim], got shape {x.shape}.")
    n, t, d = x.shape
    mask = _check_mask(token_mask, (n, t))
    batch_size = _check_positive_int("batch_size", batch_size)
    rows = np.arange(n)
    if maps is None:
        maps = _in_batches(explain_fn, rows, x, batch_size)
    maps = _check_maps(maps, (n, t), "maps")
    if noise is None:
        pmask = mask if perturb_mask is None else _check_mask(perturb_mask, (n, t)) & mask
        noise = embedding_noise((n, t, d), n_samples, radius, seed, pmask)
    noise = np.asarray(noise, dtype=np.float64)
    if noise.ndim != 4 or noise.shape[0] != n or noise.shape[2:] != (t, d):
        raise ValueError(f"noise of shape {noise.shape}, expected [{n}, S, {t}, {d}].")
    s = noise.shape[1]
    noise = noise * mask[:, None, :, None]  # padding is never perturbed
    perturbed_x = (x[:, None] + noise).reshape(n * s, t, d)
    perturbed_maps = _in_batches(explain_fn, np.repeat(rows, s), perturbed_x, batch_size)
    perturbed_maps = _check_maps(perturbed_maps, (n * s, t), "perturbed maps")
    return sensitivity_from_maps(maps, perturbed_maps.reshape(n, s, t), mask)


def infidelity_from_values(
    maps: np.ndarray,
    perturbations: np.ndarray,
    full_scores: np.ndarray,
    perturbed_scores: np.ndarray,
    normalize: bool = False,
) -> np.ndarray:
    """Infidelity per example from maps s [N, T], perturbations I [N, S, T],
    f(x) [N] and f(x − I ⊙ (x − b)) [N, S]: mean_j (Iⱼᵀs − Δfⱼ)², with the
    least-squares β applied to s first when `normalize`."""
    maps = np.asarray(maps, dtype=np.float64)
    pert = np.asarray(perturbations, dtype=np.float64)
    if maps.ndim != 2 or pert.ndim != 3 or pert.shape[0] != maps.shape[0]:
        raise ValueError(
            f"maps [N, T] and perturbations [N, S, T] expected, got {maps.shape}, {pert.shape}."
        )
    if pert.shape[2] != maps.shape[1]:
        raise ValueError(f"perturbations of {pert.shape[2]} tokens for maps of {maps.shape[1]}.")
    n, s = pert.shape[:2]
    full = np.asarray(full_scores, dtype=np.float64).reshape(n)
    perturbed = np.asarray(perturbed_scores, dtype=np.float64).reshape(n, s)
    explained = np.einsum("nst,nt->ns", pert, maps)  # Iⱼᵀs
    delta = full[:, None] - perturbed  # Δfⱼ
    if not normalize:
        return np.mean((explained - delta) ** 2, axis=1)
    a2 = np.sum(explained**2, axis=1)
    ab = np.sum(explained * delta, axis=1)
    beta = ab / np.where(a2 == 0.0, 1.0, a2)
    # The residual itself, not Captum's expansion β²Σa² − 2βΣab + ΣΔf², which
    # cancels (down to rounding, even below 0) when the rescaled map fits well.
    return np.mean((beta[:, None] * explained - delta) ** 2, axis=1)


def infidelity(
    forward_fn: ForwardFn,
    maps: np.ndarray,
    perturbations: np.ndarray,
    token_mask: np.ndarray | None = None,
    *,
    normalize: bool = False,
    batch_size: int = 64,
) -> np.ndarray:
    """Infidelity of each example's map [N].

    Args:
      forward_fn: the explained class's score for rows of per-token
        coefficients α (α_t = 1: token t as it is, 0: its baseline).
      maps: s [N, T] (padding ignored); perturbations: I [N, S, T], see
        `token_perturbations` (zeroed on padding).
      normalize: rescale each map by the least-squares β first.
      batch_size: rows per `forward_fn` call (f(x) rows and perturbed rows
        go through together).
    """
    pert = np.asarray(perturbations, dtype=np.float64)
    if pert.ndim != 3:
        raise ValueError(f"perturbations must be [N, S, T], got shape {pert.shape}.")
    n, s, t = pert.shape
    mask = _check_mask(token_mask, (n, t))
    maps = np.where(mask, _check_maps(maps, (n, t), "maps"), 0.0)
    pert = pert * mask[:, None, :]
    batch_size = _check_positive_int("batch_size", batch_size)
    rows = np.concatenate([np.arange(n), np.repeat(np.arange(n), s)])
    alphas = np.concatenate([np.ones((n, t)), (1.0 - pert).reshape(n * s, t)])
    scores = _in_batches(forward_fn, rows, alphas, batch_size).reshape(-1)
    if scores.shape != (n * (s + 1),) or not np.all(np.isfinite(scores)):
        raise ValueError("forward_fn must return one finite score per row.")
    return infidelity_from_values(maps, pert, scores[:n], scores[n:].reshape(n, s), normalize)
