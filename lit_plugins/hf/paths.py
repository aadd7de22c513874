"""Integrated-gradients paths computed directly on an HF classifier's tensors.

`HFSequenceClassifier.integrated_gradients_path` uses this instead of LIT's
predict round trip (one dict per path point, tokenising the same text again
and again), so a path point costs one batched forward + backward. The path is
either in word-embedding space (the input) or, for layer integrated
gradients, in the token states of one hidden layer, substituted with a
forward hook.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lit_plugins.attribution import baselines as baselines_lib
from lit_plugins.attribution import conductance as conductance_lib
from lit_plugins.hf import heads, layer_hooks

JsonDict = dict[str, Any]

# Most (path point × token) rows in one forward+backward: 16k rows of a
# 384-wide 6-layer encoder stay around 1-2 GB of activations.
MAX_TOKEN_ROWS = 16384


def make_path_fn(
    clf,
    inputs: list[JsonDict],
    baseline: str = "zero",
    keep_special_tokens: bool = False,
    layer: int | None = None,
    targets: Sequence[str | None] | None = None,
):
    """Builds the integrand for `attribution.integrated_gradients`.

    Args:
      clf: an HFSequenceClassifier.
      inputs: LIT examples.
      baseline: one of baselines.BASELINES.
      keep_special_tokens: special tokens keep their own embedding in the
        baseline (so [CLS]/[SEP] get ~0 attribution).
      layer: None for the input embeddings, else a hidden_states index
        (0 = embedding output … L = last layer).
      targets: class per example (None: the model's argmax on the input).

    Returns:
      (path_fn, tokens per example, target label per example).
    """
    model = clf.model
    # Hold the model's lock for every forward pass (see
    # HFSequenceClassifier.inference_lock): the layer hook below would otherwise
    # leak into other threads' forward passes.
    with clf.inference_lock:
        return _make_path_fn(clf, model, inputs, baseline, keep_special_tokens, layer, targets)


@dataclasses.dataclass
class _Setup:
    """One batch of examples on the model's tensors, shared by IG and conductance."""

    batch: dict
    other: dict  # model kwargs besides the embeddings (attention mask, …)
    positions: list  # per example, the padded positions of its real tokens
    tokens: list[list[str]]
    x_word: torch.Tensor  # input word embeddings [N, T, d]
    b_word: torch.Tensor  # baseline word embeddings
    target_idx: list[int] | None  # class per example (None: regression)
    out_x: Any  # the model's output on the input


def _setup(clf, model, inputs, baseline, keep_special_tokens, targets, hidden_states=False):
    batch = clf.encode(inputs)
    mask = batch["enc"]["attention_mask"]
    ids = batch["enc"]["input_ids"]
    positions = [torch.nonzero(m).flatten() for m in mask]
    tokens = [
        clf.tokenizer.convert_ids_to_tokens(ids[i, p].tolist()) for i, p in enumerate(positions)
    ]
    x_word = batch["embs"]
    table = model.get_input_embeddings().weight.detach()
    special = torch.tensor(
        np.isin(ids.cpu().numpy(), clf.tokenizer.all_special_ids), device=clf.device
    )
    b_word = baselines_lib.baseline_embeddings(
        x_word,
        baseline,
        table,
        clf.tokenizer.pad_token_id,
        clf.tokenizer.mask_token_id,
        special if keep_special_tokens else None,
    )
    other = heads.forward_kwargs(clf.head, batch["enc"])
    with torch.no_grad():
        out_x = model(inputs_embeds=x_word, output_hidden_states=hidden_states, **other)
    if clf.is_regression:
        target_idx = None
    else:
        given = [None if targets is None else targets[i] for i in range(len(inputs))]
        argmax = out_x.logits.argmax(-1).tolist()
        # The class asked for, else the example's own `grad_class` (as the
        # wrapper's gradients and LIT's IG read it), else the predicted class.
        own = batch["targets"]
        target_idx = [
            clf._target_index({"grad_class": t})
            if t not in (None, "")
            else (argmax[i] if own[i] is None else int(own[i]))
            for i, t in enumerate(given)
        ]
    return _Setup(batch, other, positions, tokens, x_word, b_word, target_idx, out_x)


def _labels(clf, setup: _Setup):
    return None if clf.is_regression else [clf.labels[t] for t in setup.target_idx]


def _score(clf, setup: _Setup, logits, points) -> torch.Tensor:
    """F per row: the target class's probability (LIT's gradient convention; softmax,
    or the label's sigmoid for a multi-label head), or the score of a regression head."""
    if clf.is_regression:
        return heads.at_least_float32(logits[:, 0])
    t = torch.tensor([setup.target_idx[i] for i, _ in points], device=logits.device)
    return heads.probabilities(clf.head, heads.at_least_float32(logits)).gather(1, t[:, None])[:, 0]


def _chunked(clf, setup: _Setup, run, rows_per_point: int = 1):
    """Wraps `run(points)` so that no call sees more than MAX_TOKEN_ROWS
    (point × token) rows (× rows_per_point), holding the model's lock."""

    def path_fn(points):
        width = max(setup.batch["lengths"][i] for i, _ in points)
        if len(points) > 1 and len(points) * width * rows_per_point > MAX_TOKEN_ROWS:
            half = len(points) // 2
            return path_fn(points[:half]) + path_fn(points[half:])
        with clf.inference_lock:
            return run(points)

    return path_fn


def _rows(clf, setup: _Setup, points):
    """Row indices, α [P, 1, 1] and the column width used by this chunk."""
    rows = torch.tensor([i for i, _ in points], device=clf.device)
    alpha = torch.tensor([a for _, a in points], dtype=setup.x_word.dtype, device=clf.device)
    # Right padding: cut the columns no row in this chunk uses.
    width = (
        max(setup.batch["lengths"][i] for i, _ in points)
        if clf.padding_side == "right"
        else setup.x_word.shape[1]
    )
    return rows, alpha[:, None, None], width


def _per_token(setup: _Setup, values: np.ndarray, points, axis: int = 0) -> list[np.ndarray]:
    """Per point, the real-token entries of `values` (point axis first, token axis `axis`)."""
    out = []
    for r, (i, _) in enumerate(points):
        pos = setup.positions[i].cpu().numpy()
        out.append(np.take(values[r], pos, axis=axis).astype(np.float64))
    return out


def _make_path_fn(clf, model, inputs, baseline, keep_special_tokens, layer, targets):
    setup = _setup(
        clf, model, inputs, baseline, keep_special_tokens, targets, hidden_states=layer is not None
    )
    with torch.no_grad():
        if layer is None:
            x_space, b_space, module = setup.x_word, setup.b_word, None
        else:
            if not 0 <= layer <= clf.num_layers:
                raise ValueError(
                    f"layer must be in [0, {clf.num_layers}] (0 = embedding output), got {layer}."
                )
            out_b = model(inputs_embeds=setup.b_word, output_hidden_states=True, **setup.other)
            x_space = setup.out_x.hidden_states[layer]
            b_space = out_b.hidden_states[layer]
            module = layer  # substituted by layer_hooks.hidden_state_hook below
    diff = x_space - b_space

    # Bound activation memory whatever the UI's batch size: chunks whose
    # rows × tokens exceed MAX_TOKEN_ROWS are split (same results, just chunked).
    def run(points):
        rows, alpha, width = _rows(clf, setup, points)
        sub_diff = diff[rows, :width]
        point = (b_space[rows, :width] + alpha * sub_diff).requires_grad_(True)
        kwargs = {k: v[rows, :width] for k, v in setup.other.items()}
        # hidden_state_hook: the one site that yields hidden_states[layer]
        # (after ELECTRA's / ALBERT's projection, ModernBERT's final norm).
        ctx = (
            contextlib.nullcontext()
            if module is None
            else layer_hooks.hidden_state_hook(model, clf.num_layers, module, lambda _: point)
        )
        with torch.enable_grad(), ctx:
            logits = model(
                inputs_embeds=point if module is None else setup.x_word[rows, :width], **kwargs
            ).logits
            f = _score(clf, setup, logits, points)
            (grad,) = torch.autograd.grad(f.sum(), point)
        integrand = (
            (heads.at_least_float32(grad) * heads.at_least_float32(sub_diff))
            .sum(-1)
            .detach()
            .cpu()
            .numpy()
        )
        f = heads.at_least_float32(f.detach()).cpu().numpy().astype(np.float64)
        return list(zip(f.tolist(), _per_token(setup, integrand, points)))

    return _chunked(clf, setup, run), setup.tokens, _labels(clf, setup)


# ------------------------------------------------------------- conductance
JVP_MODES = ("auto", "forward", "double_backward")


def _math_attention():
    """SDPA's fused CPU kernel has no forward-AD formula; the math backend
    (matmul + softmax) does, and is twice-differentiable."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.MATH])


def _check_conductance_layer(clf, layer) -> int:
    return layer_hooks.check_layer(layer, clf.num_layers)


def make_layer_conductance_path_fn(
    clf,
    inputs: list[JsonDict],
    layer: int,
    baseline: str = "zero",
    keep_special_tokens: bool = False,
    targets: Sequence[str | None] | None = None,
    jvp: str = "auto",
):
    """Integrand of layer conductance at hidden_states[layer] for
    `conductance.layer_conductance`: per path point (F, [tokens, hidden]) with
    entry (t, j) = ∂F/∂h_tj · dh_tj/dα, both exact.

    One pass per chunk of points: the input x(α) enters as a forward-mode dual
    tensor with tangent x − b, so the layers below `layer` carry dh/dα along
    (a Jacobian-vector product, no finite differences); at the layer the dual
    is split into its tangent and its primal, which becomes a leaf the layers
    above run on as usual, and one backward gives ∂F/∂h.

    Args:
      clf, inputs, baseline, keep_special_tokens, targets: as `make_path_fn`
        (the path is in input word-embedding space, like IG's).
      layer: hidden_states index, 0 = embedding output … clf.num_layers.
      jvp: 'forward' (forward-mode AD), 'double_backward' (dh/dα as the
        derivative of a vector-Jacobian product: for models with an op that
        has no forward-AD formula; twice the memory), or 'auto': forward,
        falling back to double_backward if the model raises for forward AD.
        Every encoder family of tests/kit/tiny_models.py runs forward AD
        (attention through the math SDPA backend, see `_math_attention`).

    Returns:
      (path_fn, tokens per example, target label per example).
    """
    model = clf.model
    with clf.inference_lock:
        setup = _setup(clf, model, inputs, baseline, keep_special_tokens, targets)
    path_fn = conductance_path_fn(
        clf, setup, layer, lambda logits, points: _score(clf, setup, logits, points), jvp
    )
    return path_fn, setup.tokens, _labels(clf, setup)


def conductance_path_fn(clf, setup: _Setup, layer: int, score, jvp: str = "auto"):
    """The layer-conductance integrand of `make_layer_conductance_path_fn` for any
    target: `score(logits, points)` gives F per point (the token classifier's tag
    probability, `hf.token_paths`). `clf` supplies model, num_layers, device, lock."""
    layer = _check_conductance_layer(clf, layer)
    if jvp not in JVP_MODES:
        raise ValueError(f"Unknown jvp mode {jvp!r}; accepted: {', '.join(JVP_MODES)}.")
    model = clf.model
    diff = setup.x_word - setup.b_word
    mode = [jvp]

    def run(points):
        if mode[0] != "auto":
            return _layer_points(clf, model, setup, diff, layer, points, score, mode[0])
        try:
            out = _layer_points(clf, model, setup, diff, layer, points, score, "forward")
            mode[0] = "forward"
            return out
        except (NotImplementedError, RuntimeError) as err:
            if "forward AD" not in str(err) and "forward-mode" not in str(err):
                raise
            logging.warning(
                "%s: forward-mode AD is not supported (%s); layer conductance falls back to"
                " a double-backward Jacobian-vector product.",
                type(model).__name__,
                str(err).splitlines()[0],
            )
            mode[0] = "double_backward"
            return _layer_points(clf, model, setup, diff, layer, points, score, "double_backward")

    return _chunked(clf, setup, run)


def _layer_points(clf, model, setup, diff, layer, points, score, jvp):
    rows, alpha, width = _rows(clf, setup, points)
    sub_diff = diff[rows, :width]
    start = setup.b_word[rows, :width] + alpha * sub_diff
    kwargs = {k: v[rows, :width] for k, v in setup.other.items()}
    state = {}

    if jvp == "forward":
        from torch.autograd import forward_ad

        def split(h):
            primal, tangent = forward_ad.unpack_dual(h)
            state["dh"] = torch.zeros_like(primal) if tangent is None else tangent.detach()
            state["h"] = primal.detach().requires_grad_(True)
            # Below the layer nothing needs a graph (the dual carries dh/dα);
            # above it, record one for ∂F/∂h. Grad mode is thread-local and the
            # enclosing no_grad block restores it on exit.
            torch.set_grad_enabled(True)
            return state["h"]

        with (
            torch.no_grad(),
            forward_ad.dual_level(),
            _math_attention(),
            layer_hooks.hidden_state_hook(model, clf.num_layers, layer, split),
        ):
            dual = forward_ad.make_dual(start, sub_diff)
            logits = model(inputs_embeds=dual, **kwargs).logits
            with torch.enable_grad():
                f = score(forward_ad.unpack_dual(logits).primal, points)
                (grad,) = torch.autograd.grad(f.sum(), state["h"])
    else:
        # dh/dα = J·(x − b) as d/du of the VJP uᵀJ (the "double-backward trick").
        def split(h):
            u = torch.zeros_like(h, requires_grad=True)
            (vjp,) = torch.autograd.grad(h, state["x"], grad_outputs=u, create_graph=True)
            (state["dh"],) = torch.autograd.grad(vjp, u, grad_outputs=sub_diff)
            state["h"] = h.detach().requires_grad_(True)
            return state["h"]

        state["x"] = start.clone().requires_grad_(True)
        with (
            torch.enable_grad(),
            _math_attention(),
            layer_hooks.hidden_state_hook(model, clf.num_layers, layer, split),
        ):
            logits = model(inputs_embeds=state["x"], **kwargs).logits
            f = score(logits, points)
            (grad,) = torch.autograd.grad(f.sum(), state["h"])
    integrand = (
        (heads.at_least_float32(grad) * heads.at_least_float32(state["dh"])).detach().cpu().numpy()
    )
    f = heads.at_least_float32(f.detach()).cpu().numpy().astype(np.float64)
    return list(zip(f.tolist(), _per_token(setup, integrand, points)))


def make_neuron_conductance_path_fn(
    clf,
    inputs: list[JsonDict],
    neurons: Sequence,
    baseline: str = "zero",
    keep_special_tokens: bool = False,
    targets: Sequence[str | None] | None = None,
    batched: bool = True,
):
    """Integrand of neuron conductance for `conductance.neuron_conductance`:
    per path point (F, [K + 1, tokens]); row k = Σ_{(t, j) ∈ neuron k} ∂F/∂h_tj ·
    (∂h_tj/∂x_i) · (x_i − b_i) per input token i, last row the IG integrand.

    One forward and one backward per chunk of points give ∂F/∂h at every
    layer the neurons use and ∇F at the input; then one vector-Jacobian
    product per neuron through the layers below it (the forward pass is
    shared; with `batched`, the neurons of a layer go in one vmapped call,
    falling back to a loop where an op cannot be vmapped).

    Args:
      neurons: (layer, index) or (layer, index, token) tuples (or
        `conductance.Neuron`s); token = position in the example's tokens,
        omitted = all positions. Layers may differ.
      other arguments: as `make_layer_conductance_path_fn`.

    Returns:
      (path_fn, tokens, target labels, validated neurons).
    """
    model = clf.model
    with clf.inference_lock:
        setup = _setup(clf, model, inputs, baseline, keep_special_tokens, targets)
    width = int(model.config.hidden_size)
    neurons = conductance_lib.check_neurons(
        neurons, clf.num_layers, width, [len(t) for t in setup.tokens]
    )
    diff = setup.x_word - setup.b_word
    layers = sorted({n.layer for n in neurons})
    groups = {L: [k for k, n in enumerate(neurons) if n.layer == L] for L in layers}
    vmap_ok = [batched]

    def run(points):
        rows, alpha, cols = _rows(clf, setup, points)
        sub_diff = diff[rows, :cols]
        x = (setup.b_word[rows, :cols] + alpha * sub_diff).requires_grad_(True)
        kwargs = {k: v[rows, :cols] for k, v in setup.other.items()}
        seen: dict[int, torch.Tensor] = {}
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.enable_grad())
            for L in layers:
                stack.enter_context(
                    layer_hooks.hidden_state_hook(
                        model, clf.num_layers, L, lambda h, L=L: seen.__setitem__(L, h)
                    )
                )
            logits = model(inputs_embeds=x, **kwargs).logits
            f = _score(clf, setup, logits, points)
            grads = torch.autograd.grad(f.sum(), [seen[L] for L in layers] + [x], retain_graph=True)
            out = torch.empty(len(neurons) + 1, *x.shape[:2], dtype=x.dtype, device=x.device)
            out[-1] = (grads[-1] * sub_diff).sum(-1)
            for L, g in zip(layers, grads[:-1]):
                cot = torch.zeros((len(groups[L]), *g.shape), dtype=g.dtype, device=g.device)
                for c, k in enumerate(groups[L]):
                    n = neurons[k]
                    if n.token is None:
                        cot[c, :, :, n.index] = g[:, :, n.index]
                    else:
                        pos = torch.stack([setup.positions[i][n.token] for i, _ in points])
                        r = torch.arange(len(points), device=g.device)
                        cot[c, r, pos, n.index] = g[r, pos, n.index]
                gx = _vjps(seen[L], x, cot, vmap_ok)
                out[groups[L]] = (gx * sub_diff).sum(-1)
        values = (
            heads.at_least_float32(out.detach().transpose(0, 1)).cpu().numpy()
        )  # [points, K + 1, T]
        f = heads.at_least_float32(f.detach()).cpu().numpy().astype(np.float64)
        return list(zip(f.tolist(), _per_token(setup, values, points, axis=1)))

    # The vmapped products hold one copy of the activations below the layer per
    # neuron of the layer: bound their rows like a forward pass's.
    rows_per_point = max(len(g) for g in groups.values()) if batched else 1
    path_fn = _chunked(clf, setup, run, rows_per_point)
    return path_fn, setup.tokens, _labels(clf, setup), neurons


def _vjps(h, x, cotangents, vmap_ok):
    """[K, *x.shape]: one vector-Jacobian product of h w.r.t. x per cotangent."""
    if vmap_ok[0]:
        try:
            (gx,) = torch.autograd.grad(
                h, x, grad_outputs=cotangents, retain_graph=True, is_grads_batched=True
            )
            return gx
        except (RuntimeError, NotImplementedError) as err:
            logging.warning("Batched VJPs unavailable (%s); one per neuron.", err)
            vmap_ok[0] = False
    return torch.stack(
        [torch.autograd.grad(h, x, grad_outputs=c, retain_graph=True)[0] for c in cotangents]
    )


def layer_conductance(
    clf,
    inputs: list[JsonDict],
    layer: int,
    baseline: str = "zero",
    keep_special_tokens: bool = False,
    targets: Sequence[str | None] | None = None,
    **quadrature_kw,
):
    """`conductance.layer_conductance` on this classifier: (results, tokens,
    target labels). quadrature_kw: rule, steps, tolerance, max_steps,
    batch_size, fixed_tolerance."""
    path_fn, tokens, labels = make_layer_conductance_path_fn(
        clf, inputs, layer, baseline, keep_special_tokens, targets
    )
    return conductance_lib.layer_conductance(len(inputs), path_fn, **quadrature_kw), tokens, labels


def neuron_conductance(
    clf,
    inputs: list[JsonDict],
    neurons: Sequence,
    baseline: str = "zero",
    keep_special_tokens: bool = False,
    targets: Sequence[str | None] | None = None,
    **quadrature_kw,
):
    """`conductance.neuron_conductance` on this classifier: (results, tokens,
    target labels); see `make_neuron_conductance_path_fn` for `neurons`."""
    path_fn, tokens, labels, neurons = make_neuron_conductance_path_fn(
        clf, inputs, neurons, baseline, keep_special_tokens, targets
    )
    results = conductance_lib.neuron_conductance(len(inputs), path_fn, neurons, **quadrature_kw)
    return results, tokens, labels
