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
from collections.abc import Sequence

import numpy as np
import torch

from lit_plugins import specs
from lit_plugins.attribution import baselines as baselines_lib

JsonDict = specs.JsonDict

# Most (path point × token) rows in one forward+backward: 16k rows of a
# 384-wide 6-layer encoder stay around 1-2 GB of activations.
MAX_TOKEN_ROWS = 16384


def layer_modules(model: torch.nn.Module, num_layers: int) -> list[torch.nn.Module]:
    """[embedding module, block 1, …, block L] of an HF encoder.

    hidden_states[i] of HF models is the output of element i of this list.
    """
    base = getattr(model, "base_model", model)
    blocks = None
    for module in base.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == num_layers:
            blocks = list(module)
            break
    embeddings = getattr(base, "embeddings", None)
    if blocks is None or embeddings is None:
        raise ValueError(
            f"Cannot find the layer blocks of {type(model).__name__};"
            " layer attribution needs an encoder with .embeddings and"
            " a ModuleList of its layers."
        )
    return [embeddings, *blocks]


@contextlib.contextmanager
def _replace_output(module: torch.nn.Module, value: torch.Tensor):
    def hook(_, __, output):
        if isinstance(output, tuple):
            return (value, *tuple(output[1:]))
        return value

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


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


def _make_path_fn(clf, model, inputs, baseline, keep_special_tokens, layer, targets):
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

    with torch.no_grad():
        other = {k: v for k, v in batch["enc"].items() if k != "input_ids"}
        out_x = model(inputs_embeds=x_word, output_hidden_states=layer is not None, **other)
        if clf.is_regression:
            target_idx = None
        else:
            given = [None if targets is None else targets[i] for i in range(len(inputs))]
            argmax = out_x.logits.argmax(-1).tolist()
            target_idx = [
                argmax[i] if t in (None, "") else clf._target_index({"grad_class": t})
                for i, t in enumerate(given)
            ]
        if layer is None:
            x_space, b_space, module = x_word, b_word, None
        else:
            if not 0 <= layer <= clf.num_layers:
                raise ValueError(
                    f"layer must be in [0, {clf.num_layers}] (0 = embedding output), got {layer}."
                )
            out_b = model(inputs_embeds=b_word, output_hidden_states=True, **other)
            x_space = out_x.hidden_states[layer]
            b_space = out_b.hidden_states[layer]
            module = layer_modules(model, clf.num_layers)[layer]
    diff = x_space - b_space

    def path_fn(points):
        # Bound activation memory whatever the UI's batch size: split chunks whose
        # rows × tokens exceed MAX_TOKEN_ROWS (results are the same, just chunked).
        width = max(batch["lengths"][i] for i, _ in points)
        if len(points) > 1 and len(points) * width > MAX_TOKEN_ROWS:
            half = len(points) // 2
            return path_fn(points[:half]) + path_fn(points[half:])
        with clf.inference_lock:
            return _path_fn(points)

    def _path_fn(points):
        rows = torch.tensor([i for i, _ in points], device=clf.device)
        alpha = torch.tensor([a for _, a in points], dtype=x_space.dtype, device=clf.device)[
            :, None, None
        ]
        # Right padding: cut the columns no row in this chunk uses.
        width = (
            max(batch["lengths"][i] for i, _ in points)
            if clf.tokenizer.padding_side == "right"
            else x_space.shape[1]
        )
        sub_diff = diff[rows, :width]
        point = (b_space[rows, :width] + alpha * sub_diff).requires_grad_(True)
        kwargs = {k: v[rows, :width] for k, v in other.items()}
        ctx = contextlib.nullcontext() if module is None else _replace_output(module, point)
        with torch.enable_grad(), ctx:
            logits = model(
                inputs_embeds=point if module is None else x_word[rows, :width], **kwargs
            ).logits
            if clf.is_regression:
                f = logits[:, 0]
            else:
                t = torch.tensor([target_idx[i] for i, _ in points], device=clf.device)
                f = torch.softmax(logits, -1).gather(1, t[:, None])[:, 0]
            (grad,) = torch.autograd.grad(f.sum(), point)
        integrand = (grad * sub_diff).sum(-1).detach().cpu().numpy()
        f = f.detach().cpu().numpy().astype(np.float64)
        return [
            (float(f[r]), integrand[r, positions[i].cpu().numpy()].astype(np.float64))
            for r, (i, _) in enumerate(points)
        ]

    labels = None if clf.is_regression else [clf.labels[t] for t in target_idx]
    return path_fn, tokens, labels
