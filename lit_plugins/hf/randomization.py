"""Model-parameter randomization of an HF classifier, for the sanity check of
Adebayo et al. 2018 (*Sanity Checks for Saliency Maps*): maps that barely move
while the model's weights are destroyed explain the input, not the model.

The model's parameters are split into steps, top first:

1. ``head``: everything outside the base model (classifier, ModernBERT's head,
   DistilBERT's pre-classifier, GPT-2's score) and the base model's pooler;
2. ``layer L`` … ``layer 1``: the transformer blocks (the layer lookup of
   `hf.layer_hooks`); the final norm of ModernBERT and decoders (its output
   is ``hidden_states[L]``) goes with ``layer L``. ALBERT shares one block
   across depth, so it has a single step ``layers (shared)`` for all of them;
3. ``embeddings``: every remaining parameter of the base model (word,
   position and segment embeddings, their norm, ELECTRA's / ALBERT's
   projection, DeBERTa's relative-position embeddings).

Every parameter belongs to exactly one step. *Cascading* randomization
randomizes steps 1..j (j = 1 … all, from the top down); *independent*
randomization one step at a time, the rest as trained.

A randomized tensor is redrawn from a Gaussian with the tensor's own mean and
standard deviation (so LayerNorm gains stay near 1 and a weight matrix keeps
its scale: the network stays numerically alive, just meaningless), from a
generator seeded by (seed, parameter name): a step's random values are the
same in the cascade and alone, and the same on every call with the same seed.
Adebayo et al. re-run each layer's own initializer; on a transformer that
would set every LayerNorm to the identity and every bias to 0, which leaves
part of the model deterministic.

The original model is never modified: the generators below work on one deep
copy, yielded after each step (and changed again by the next step: copy it if
you keep it).
"""

from __future__ import annotations

import copy
import dataclasses
import zlib
from collections.abc import Iterator, Sequence

import torch

from lit_plugins.hf import layer_hooks

HEAD = "head"
EMBEDDINGS = "embeddings"
SHARED_LAYERS = "layers (shared)"


@dataclasses.dataclass(frozen=True)
class Step:
    """One randomization step: a name and the parameters it redraws."""

    name: str
    parameters: tuple[str, ...]  # names as in model.named_parameters()


def _num_layers(model: torch.nn.Module) -> int:
    return int(model.config.num_hidden_layers)


def _names(model: torch.nn.Module, modules: Sequence[torch.nn.Module]) -> set[str]:
    ids = {id(p) for m in modules for p in m.parameters()}
    return {name for name, p in model.named_parameters() if id(p) in ids}


def randomization_steps(model: torch.nn.Module) -> list[Step]:
    """The steps of `model`, top first (see the module docstring)."""
    base = getattr(model, "base_model", model)
    all_names = [name for name, _ in model.named_parameters()]
    base_ids = {id(p) for p in base.parameters()}
    head = {name for name, p in model.named_parameters() if id(p) not in base_ids}
    pooler = getattr(base, "pooler", None)
    if isinstance(pooler, torch.nn.Module):
        head |= _names(model, [pooler])
    steps = [Step(HEAD, tuple(n for n in all_names if n in head))] if head else []
    taken = set(head)

    blocks = layer_hooks.layer_blocks(model, _num_layers(model))
    final_norm = layer_hooks.final_norm(model)
    if blocks is not None:
        for index in range(len(blocks), 0, -1):
            modules = [blocks[index - 1]]
            if index == len(blocks) and final_norm is not None:
                modules.append(final_norm)
            names = _names(model, modules) - taken
            steps.append(Step(f"layer {index}", tuple(n for n in all_names if n in names)))
            taken |= names
    else:
        groups = getattr(getattr(base, "encoder", None), "albert_layer_groups", None)
        if groups is None:
            raise ValueError(
                f"Cannot find the layer blocks of {type(model).__name__}: randomization needs"
                " a ModuleList of its layers (or ALBERT's shared layer groups)."
            )
        names = _names(model, [groups]) - taken
        steps.append(Step(SHARED_LAYERS, tuple(n for n in all_names if n in names)))
        taken |= names
    rest = tuple(n for n in all_names if n not in taken)
    if rest:
        steps.append(Step(EMBEDDINGS, rest))
    return steps


def _check_steps(steps: list[Step], wanted: Sequence[str] | None) -> list[Step]:
    if wanted is None:
        return steps
    by_name = {s.name: s for s in steps}
    unknown = [w for w in wanted if w not in by_name]
    if unknown:
        raise ValueError(f"Unknown randomization steps {unknown}; the model has {list(by_name)}.")
    return [by_name[w] for w in wanted]


def _generator(seed: int, name: str) -> torch.Generator:
    return torch.Generator().manual_seed(
        (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % 2**63
    )


@torch.no_grad()
def _redraw(params: dict[str, torch.nn.Parameter], step: Step, seed: int) -> None:
    for name in step.parameters:
        p = params[name]
        values = p.detach().to(torch.float64)
        mean = values.mean()
        std = values.std() if values.numel() > 1 else values.new_zeros(())
        noise = torch.randn(p.shape, generator=_generator(seed, name), dtype=torch.float64)
        p.copy_((mean + std * noise).to(device=p.device, dtype=p.dtype))


def randomized(model: torch.nn.Module, steps: Sequence[str], seed: int = 0) -> torch.nn.Module:
    """A deep copy of `model` (eval mode) with the parameters of `steps` redrawn."""
    chosen = _check_steps(randomization_steps(model), steps)
    out = copy.deepcopy(model).eval()
    params = dict(out.named_parameters())
    for step in chosen:
        _redraw(params, step, seed)
    return out


def cascading(
    model: torch.nn.Module,
    seed: int = 0,
    steps: Sequence[str] | None = None,
    in_place: bool = False,
) -> Iterator[tuple[str, torch.nn.Module]]:
    """(step name, model with that step and every step above it randomized),
    top first, on one deep copy changed in place from step to step (`in_place`:
    on `model` itself, for a caller that made its copy already, e.g. under
    the served model's lock so that no other request's forward hook is copied
    along)."""
    chosen = _check_steps(randomization_steps(model), steps)
    out = (model if in_place else copy.deepcopy(model)).eval()
    params = dict(out.named_parameters())
    for step in chosen:
        _redraw(params, step, seed)
        yield step.name, out


def independent(
    model: torch.nn.Module,
    seed: int = 0,
    steps: Sequence[str] | None = None,
    in_place: bool = False,
) -> Iterator[tuple[str, torch.nn.Module]]:
    """(step name, model with only that step randomized), on one deep copy whose
    step is restored before the next one is randomized (`in_place`: on `model`
    itself, as in `cascading`; it is whole again after the last step)."""
    chosen = _check_steps(randomization_steps(model), steps)
    out = (model if in_place else copy.deepcopy(model)).eval()
    params = dict(out.named_parameters())
    for step in chosen:
        saved = {name: params[name].detach().clone() for name in step.parameters}
        _redraw(params, step, seed)
        yield step.name, out
        with torch.no_grad():
            for name, value in saved.items():
                params[name].copy_(value)
