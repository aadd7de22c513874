"""Where the hidden states of an HF encoder live, and hooks that read or replace them.

LIT-free (torch only).

* `hidden_state_hook(model, num_layers, layer, fn)`: the one place that knows
  which module call yields `hidden_states[layer]` of an HF encoder (block
  `layer`'s output; for layer 0 the input of the first block, which is the
  embedding output after any projection, as ELECTRA and ALBERT have; ALBERT's
  shared layer groups by counting their calls). Conductance (`hf_paths`) uses
  it to read the activations along the path and to split the model there, and
  live ablation (`hf.live_ablation`) to switch neurons off.
* `layer_modules`, `layer_blocks`, `final_norm`: the embedding module, the layer blocks
  and the norm after the last block (`hf.randomization` randomizes them step by
  step); `check_layer`: a `hidden_states` index in [0, num_layers].
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

# fn(h) -> replacement tensor (or None to keep h), called on hidden_states[layer].
HiddenFn = Callable[[torch.Tensor], torch.Tensor | None]


# ------------------------------------------------------------ layer sites
def layer_blocks(model: torch.nn.Module, num_layers: int) -> list[torch.nn.Module] | None:
    base = getattr(model, "base_model", model)
    for module in base.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == num_layers:
            return list(module)
    return None


def layer_modules(model: torch.nn.Module, num_layers: int) -> list[torch.nn.Module]:
    """[embedding module, block 1, …, block L] of an HF encoder.

    hidden_states[i] of HF models is the output of element i of this list for
    i >= 1 (and for i = 0 where the embeddings feed the blocks unprojected;
    `hidden_state_hook` handles the projected cases).
    """
    blocks = layer_blocks(model, num_layers)
    embeddings = getattr(getattr(model, "base_model", model), "embeddings", None)
    if blocks is None or embeddings is None:
        raise ValueError(
            f"Cannot find the layer blocks of {type(model).__name__};"
            " layer attribution needs an encoder with .embeddings and"
            " a ModuleList of its layers."
        )
    return [embeddings, *blocks]


def check_layer(layer: Any, num_layers: int) -> int:
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
        raise ValueError(
            f"layer must be an integer in [0, {num_layers}] (0 = embedding output), got {layer!r}."
        )
    if not 0 <= layer <= num_layers:
        raise ValueError(f"layer must be in [0, {num_layers}] (0 = embedding output), got {layer}.")
    return int(layer)


def _swap_first(value, new):
    if isinstance(value, torch.Tensor):
        return new
    if isinstance(value, (tuple, list)):
        return type(value)((new, *value[1:]))
    raise TypeError(f"Cannot substitute a hidden state in a {type(value).__name__}.")


def _first(value) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else value[0]


def _output_hook(fn: HiddenFn):
    def hook(_, __, output):
        new = fn(_first(output))
        return None if new is None else _swap_first(output, new)

    return hook


def _input_hook(fn: HiddenFn):
    def hook(_, args, kwargs):
        if args:
            new = fn(args[0])
            return None if new is None else ((new, *args[1:]), kwargs)
        new = fn(kwargs["hidden_states"])
        return None if new is None else (args, {**kwargs, "hidden_states": new})

    return hook


@contextlib.contextmanager
def hidden_state_hook(
    model: torch.nn.Module, num_layers: int, layer: int, fn: HiddenFn
) -> Iterator[None]:
    """Calls `fn` on the tensor that becomes `hidden_states[layer]` in every
    forward pass inside the block, substituting what it returns (None: keep).

    Layer 0 is the first block's input, so the embedding output after any
    projection (ELECTRA's `embeddings_project`, ALBERT's mapping) is what `fn`
    sees, with the width of the other layers; the last layer of a model with
    a final norm (ModernBERT, decoders: `_FINAL_NORMS`) is that norm's output. Hooks are removed on exit, also
    after an exception.
    """
    check_layer(layer, num_layers)
    if getattr(getattr(model, "config", None), "model_type", "") in _TIME_MAJOR:
        raise ValueError(
            f"{type(model).__name__} runs its layers time-major ([tokens, batch, hidden]), "
            "so layer-level methods (layer IG, layer and neuron conductance, neuron "
            "ablation) are not supported for it; the input-level methods are."
        )
    handles = []
    try:
        blocks = layer_blocks(model, num_layers)
        norm = final_norm(model)
        if layer == num_layers and norm is not None:
            # ModernBERT, GPT-2, Llama, Qwen2, ...: the last hidden state is after the
            # final norm (substituting it before the norm would apply the norm twice).
            handles.append(norm.register_forward_hook(_output_hook(fn)))
        elif blocks is not None:
            if layer == 0:
                handles.append(
                    blocks[0].register_forward_pre_hook(_input_hook(fn), with_kwargs=True)
                )
            else:
                handles.append(blocks[layer - 1].register_forward_hook(_output_hook(fn)))
        else:
            handles.extend(_shared_layer_hooks(model, layer, fn))
        yield
    finally:
        for handle in handles:
            handle.remove()


_TIME_MAJOR = frozenset({"xlnet"})  # blocks see [tokens, batch, hidden]; hooks assume batch-first
# The norm after the last block, whose output is `hidden_states[-1]`: ModernBERT; GPT-2,
# Falcon, Bloom; Llama, Mistral, Qwen2, Gemma; Phi.
_FINAL_NORMS = ("final_norm", "ln_f", "norm", "final_layernorm")


def final_norm(model: torch.nn.Module) -> torch.nn.Module | None:
    base = getattr(model, "base_model", model)
    for name in _FINAL_NORMS:
        module = getattr(base, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    return None


def _shared_layer_hooks(model: torch.nn.Module, layer: int, fn: HiddenFn) -> list:
    """ALBERT: layer groups shared across depth; hidden_states[i] is the output
    of the i-th group call of a forward pass (call counter reset by the encoder)."""
    base = getattr(model, "base_model", model)
    encoder = getattr(base, "encoder", None)
    groups = getattr(encoder, "albert_layer_groups", None)
    if groups is None:
        raise ValueError(
            f"Cannot find the layer blocks of {type(model).__name__}; layer hooks need an"
            " encoder with a ModuleList of its layers (or ALBERT's shared layer groups)."
        )
    calls = [0]

    def reset(*_):
        calls[0] = 0

    def pre(module, args, kwargs):
        if calls[0] == 0 and layer == 0:
            return _input_hook(fn)(module, args, kwargs)
        return None

    def post(module, args, output):
        calls[0] += 1
        if calls[0] == layer:
            return _output_hook(fn)(module, args, output)
        return None

    handles = [encoder.register_forward_pre_hook(reset)]
    for group in groups:
        handles.append(group.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(group.register_forward_hook(post))
    return handles
