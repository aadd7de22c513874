"""Live neuron ablation inside a running HF encoder.

LIT-free (torch / numpy only). NeuroX's ablation zeroes columns of a saved
activation matrix; here the neurons are switched off *in the model* with a
forward hook on the module that produces `hidden_states[layer]`
(`hf.layer_hooks.hidden_state_hook`), so every later layer and the
classification head see the ablated values, and what is measured is the model's
own change of prediction.

* `ablated(clf, layer, neurons, values=None)`: context manager; neurons set to 0
  (or to `values`, e.g. `neuron_means`) at every token; hooks removed on exit,
  also on an exception.
* `ablation_effect(clf, examples, layer, neurons, ...)`: accuracy, mean
  predicted-class probability, and each example's change in the explained
  class's probability, with and without the ablation.
* `top_vs_random(clf, examples, layer, ranking, ks, seeds)`: the ranking's
  top-k against k random neurons of the same layer (mean and spread over
  seeds): a ranking whose top-k matter for the decision hurts far more.

`clf` is our HF wrapper (`HFSequenceClassifier`) or anything with the same
`model`, `num_layers`, `encode`, `forward`, `labels`, `label_field`,
`text_fields`, `batch_size` and `inference_lock`; it is never imported here.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch

from lit_plugins.hf.layer_hooks import check_layer, hidden_state_hook

ABLATION_MODES = ("zero", "mean")


# -------------------------------------------------------------- ablation
def _model_and_layers(clf) -> tuple[torch.nn.Module, int]:
    return clf.model, int(clf.num_layers)


def layer_width(clf, layer: int) -> int:
    """Number of neurons of hidden_states[layer]: the encoder's hidden size at
    every layer (ELECTRA's and ALBERT's layer 0 is after their projection)."""
    check_layer(layer, int(clf.num_layers))
    return int(clf.model.config.hidden_size)


def check_neuron_indices(
    neurons: Sequence[int], width: int, layer: int | None = None
) -> np.ndarray:
    idx = np.asarray(list(neurons))
    where = "" if layer is None else f" of layer {layer}"
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise ValueError(f"neurons must be a list of integer indices in [0, {width}){where}.")
    if idx.size and (idx.min() < 0 or idx.max() >= width):
        raise ValueError(
            f"neuron indices{where} must be in [0, {width}), got range [{idx.min()}, {idx.max()}]."
        )
    if len(set(idx.tolist())) != idx.size:
        raise ValueError(f"neuron indices{where} must be distinct, got {idx.tolist()}.")
    return idx.astype(np.int64)


@contextlib.contextmanager
def ablated(
    clf, layer: int, neurons: Sequence[int], values: Sequence[float] | np.ndarray | None = None
) -> Iterator[None]:
    """Inside the block, `neurons` of `hidden_states[layer]` are replaced at every
    token by 0 (`values=None`) or by `values` (one per listed neuron, or one per
    neuron of the layer, e.g. `neuron_means`). Holds the model's inference lock
    for the block (the hook would otherwise leak into other threads' passes);
    hooks are removed on exit, also after an exception, so the model's normal
    predictions are unchanged afterwards.
    """
    model, num_layers = _model_and_layers(clf)
    check_layer(layer, num_layers)
    with clf.inference_lock:
        width = layer_width(clf, layer)
        idx = check_neuron_indices(neurons, width, layer)
        fill = None
        if values is not None:
            values = np.asarray(values, dtype=np.float64)
            if values.shape == (width,):
                values = values[idx]
            if values.shape != (len(idx),) or not np.all(np.isfinite(values)):
                raise ValueError(
                    f"values must be finite, one per listed neuron ({len(idx)}) or one per"
                    f" neuron of layer {layer} ({width}); got shape {values.shape}."
                )
            fill = values
        index = torch.as_tensor(idx)

        def ablate(h):
            h = h.clone()
            cols = index.to(h.device)
            if fill is None:
                h[..., cols] = 0
            else:
                h[..., cols] = torch.as_tensor(fill, dtype=h.dtype, device=h.device)
            return h

        with hidden_state_hook(model, num_layers, layer, ablate):
            yield


def _as_example(clf, item) -> dict:
    return {clf.text_fields[0]: item} if isinstance(item, str) else dict(item)


def predict_probabilities(clf, examples: Sequence, batch_size: int | None = None) -> np.ndarray:
    """[N, classes] softmax probabilities through the wrapper (texts or LIT examples)."""
    if getattr(clf, "is_regression", False):
        raise ValueError("Ablation effects need a classifier; this model has a regression head.")
    rows = [_as_example(clf, e) for e in examples]
    if not rows:
        raise ValueError("examples must not be empty.")
    size = int(batch_size or clf.batch_size)
    out = []
    with clf.inference_lock:
        for start in range(0, len(rows), size):
            batch = clf.encode(rows[start : start + size])
            out.append(clf.forward(batch, gradients=False)["probs"].double().cpu().numpy())
    return np.concatenate(out)


def neuron_means(clf, examples: Sequence, layer: int, batch_size: int | None = None) -> np.ndarray:
    """Per-neuron mean of hidden_states[layer] over every real (non-padding)
    token of the dataset: the 'mean' ablation value."""
    check_layer(layer, int(clf.num_layers))
    rows = [_as_example(clf, e) for e in examples]
    if not rows:
        raise ValueError("examples must not be empty.")
    size = int(batch_size or clf.batch_size)
    total, count = None, 0
    with clf.inference_lock:
        for start in range(0, len(rows), size):
            batch = clf.encode(rows[start : start + size])
            h = clf.forward(batch, gradients=False)["hidden_states"][layer]
            mask = batch["enc"]["attention_mask"].bool()
            part = h[mask].double().sum(0).cpu().numpy()
            total = part if total is None else total + part
            count += int(mask.sum())
    return total / count


def _label_indices(clf, examples: Sequence, labels: Sequence | None) -> np.ndarray | None:
    if labels is None:
        # LIT hands interpreters read-only mappings, not dicts.
        labels = [e.get(clf.label_field) if isinstance(e, Mapping) else None for e in examples]
        if any(l is None or l == "" for l in labels):
            return None
    if len(labels) != len(examples):
        raise ValueError(f"{len(labels)} labels for {len(examples)} examples.")
    out = []
    for l in labels:
        if isinstance(l, (int, np.integer)) and not isinstance(l, bool):
            if not 0 <= l < len(clf.labels):
                raise ValueError(f"label index {l} out of range; classes: {clf.labels}.")
            out.append(int(l))
        elif str(l) in clf.labels:
            out.append(clf.labels.index(str(l)))
        else:
            raise ValueError(f"label {l!r} is not a class of this model; accepted: {clf.labels}.")
    return np.asarray(out)


@dataclasses.dataclass
class AblationEffect:
    """What ablating `neurons` of `layer` changes over a dataset."""

    layer: int
    neurons: list[int]
    mode: str  # 'zero' or 'mean'
    accuracy_before: float | None  # None without gold labels
    accuracy_after: float | None
    mean_predicted_prob_before: float  # mean max-class probability, intact model
    mean_predicted_prob_after: float  # mean max-class probability, ablated model
    explained_class: np.ndarray  # [N] class index explained per example
    explained_prob_before: np.ndarray  # [N]
    explained_prob_after: np.ndarray  # [N]

    @property
    def explained_prob_change(self) -> np.ndarray:
        """[N] p_after(explained class) − p_before(explained class)."""
        return self.explained_prob_after - self.explained_prob_before

    @property
    def accuracy_drop(self) -> float | None:
        if self.accuracy_before is None:
            return None
        return self.accuracy_before - self.accuracy_after

    @property
    def mean_prob_drop(self) -> float:
        """Mean drop of the explained class's probability (positive = hurts)."""
        return float(-np.mean(self.explained_prob_change))


def _effect(clf, layer, idx, mode, before, probs_after, gold, explained) -> AblationEffect:
    rows = np.arange(len(before))
    return AblationEffect(
        layer=layer,
        neurons=[int(i) for i in idx],
        mode=mode,
        accuracy_before=None if gold is None else float(np.mean(before.argmax(1) == gold)),
        accuracy_after=None if gold is None else float(np.mean(probs_after.argmax(1) == gold)),
        mean_predicted_prob_before=float(before.max(1).mean()),
        mean_predicted_prob_after=float(probs_after.max(1).mean()),
        explained_class=explained,
        explained_prob_before=before[rows, explained],
        explained_prob_after=probs_after[rows, explained],
    )


def _setup(clf, examples, layer, mode, means, labels, targets, batch_size):
    if mode not in ABLATION_MODES:
        raise ValueError(f"Unknown ablation mode {mode!r}; accepted: {', '.join(ABLATION_MODES)}.")
    check_layer(layer, int(clf.num_layers))
    before = predict_probabilities(clf, examples, batch_size)
    gold = _label_indices(clf, examples, labels)
    if targets is None:
        explained = before.argmax(1)
    else:
        explained = _label_indices(clf, examples, targets)
    if mode == "mean" and means is None:
        means = neuron_means(clf, examples, layer, batch_size)
    return before, gold, explained, means


def ablation_effect(
    clf,
    examples: Sequence,
    layer: int,
    neurons: Sequence[int],
    mode: str = "zero",
    means: np.ndarray | None = None,
    labels: Sequence | None = None,
    targets: Sequence | None = None,
    batch_size: int | None = None,
) -> AblationEffect:
    """Ablates `neurons` of hidden_states[layer] in the live model and measures it.

    Args:
      clf: the HF wrapper (see the module docstring).
      examples: texts (first text field) or LIT examples.
      layer: hidden_states index, 0 = embedding output … num_layers.
      neurons: distinct indices in [0, layer width).
      mode: 'zero', or 'mean' (each neuron set to `means`, by default its mean
        over the examples' tokens, `neuron_means`).
      labels: gold classes (names or indices) for accuracy; default: the
        examples' label field when every example has one, else no accuracy.
      targets: the class explained per example (default: the intact model's
        prediction); its probability change is reported per example.
    """
    before, gold, explained, means = _setup(
        clf, examples, layer, mode, means, labels, targets, batch_size
    )
    idx = check_neuron_indices(neurons, layer_width(clf, layer), layer)
    with ablated(clf, layer, idx, None if mode == "zero" else np.asarray(means)):
        after = predict_probabilities(clf, examples, batch_size)
    return _effect(clf, layer, idx, mode, before, after, gold, explained)


@dataclasses.dataclass
class TopVsRandomRow:
    """One k of `top_vs_random`: the ranking's top-k vs k random neurons."""

    k: int
    top: AblationEffect
    random: list[AblationEffect]  # one per seed

    def _stat(self, name: str) -> tuple[float, float]:
        values = np.array([getattr(e, name) for e in self.random], dtype=np.float64)
        return float(values.mean()), float(values.std(ddof=1) if len(values) > 1 else 0.0)

    @property
    def random_accuracy_drop(self) -> tuple[float, float] | None:
        """(mean, standard deviation over seeds); None without gold labels."""
        return None if self.top.accuracy_before is None else self._stat("accuracy_drop")

    @property
    def random_mean_prob_drop(self) -> tuple[float, float]:
        return self._stat("mean_prob_drop")


def top_vs_random(
    clf,
    examples: Sequence,
    layer: int,
    ranking: Sequence[int],
    ks: Sequence[int] = (1, 5, 10, 20),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    mode: str = "zero",
    means: np.ndarray | None = None,
    labels: Sequence | None = None,
    targets: Sequence | None = None,
    batch_size: int | None = None,
) -> list[TopVsRandomRow]:
    """Ablation of the ranking's first k neurons vs k random neurons of the same
    layer (one draw per seed, `numpy.random.default_rng(seed)`), for each k.

    The intact model's predictions (and the 'mean' values) are computed once.
    k larger than the ranking or the layer raises ValueError.
    """
    before, gold, explained, means = _setup(
        clf, examples, layer, mode, means, labels, targets, batch_size
    )
    width = layer_width(clf, layer)
    ranking = check_neuron_indices(ranking, width, layer)
    ks = [int(k) for k in ks]
    bad = [k for k in ks if not 1 <= k <= min(width, len(ranking))]
    if not ks or bad:
        raise ValueError(
            f"k must be in [1, {min(width, len(ranking))}] (layer {layer} has {width} neurons,"
            f" the ranking lists {len(ranking)}), got {bad or ks}."
        )
    if not seeds:
        raise ValueError("seeds must list at least one seed.")
    value = None if mode == "zero" else np.asarray(means)

    def run(idx):
        with ablated(clf, layer, idx, value):
            after = predict_probabilities(clf, examples, batch_size)
        return _effect(clf, layer, idx, mode, before, after, gold, explained)

    rows = []
    for k in ks:
        draws = [
            np.sort(np.random.default_rng(seed).choice(width, size=k, replace=False))
            for seed in seeds
        ]
        rows.append(TopVsRandomRow(k, run(ranking[:k]), [run(d) for d in draws]))
    return rows
