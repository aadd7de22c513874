"""Does the model *use* the neurons a probe or TX-Ray lists? Dataset-level
conductance and live ablation for one layer's neuron list, shown as chips.

A probe says which neurons *encode* a label, TX-Ray which *changed* between
two models; neither says whether the decision depends on them. For a listed
set of neurons of one layer (of the model served in LIT) this computes, over
the dataset:

* each neuron's mean |conductance| (`attribution.conductance`: its share of
  F(input) − F(baseline) for the predicted class, summed over tokens, in
  absolute value, averaged over examples) and its rank among the layer's
  neurons by that number;
* live ablation (`attribution.ablation`, zeroed inside the running model):
  accuracy and the predicted class's probability when the first k listed
  neurons are switched off, against k random neurons of the same layer
  (mean ± standard deviation over seeds).

Both are computed once per (model, layer, dataset contents, settings) and
cached (`dataset_level.FitOnceCache`); the interpreters add them as one
labelled-chips field, `USE_FIELD`.

The check is **off by default** (`DEFAULT_CHECK_USE`): on the fine-tuned
MiniLM-L6 demo model (160 dev sentences, 2-core CPU) it takes ~140 s per
layer (conductance of 32 examples x 32 nodes ~74 s, ablation ~65 s), during
which LIT's spinner over the probe's row covers the row below.  Off, the
field holds one chip (`off_chips`) saying how to start it: tick
`USE_KEY` and run the interpreter again (one click; the probe and TX-Ray
are not refitted, and the result is cached).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np
from absl import logging
from lit_nlp.api import dtypes

from lit_plugins.hf import live_ablation as ablation
from lit_plugins.lit import dataset_level, specs
from lit_plugins.lit.interpreters import common

JsonDict = specs.JsonDict

USE_FIELD = "use_for_decision"
USE_KEY = "Check use for the decision (conductance, ablation)"
# Off: the check costs minutes on a CPU (see the module docstring).
DEFAULT_CHECK_USE = False
OFF_TEXT = (
    f"not computed: tick '{USE_KEY}' and run again "
    "(a dataset-level pass, ~2 min per layer for MiniLM-L6 on a 2-core CPU)"
)


def off_chips() -> dtypes.TokenSalience:
    """The `USE_FIELD` value while the check is off: how to start it."""
    return common.labelled_chips([(OFF_TEXT, 0.0)], value_format=None)


@dataclasses.dataclass(frozen=True)
class NeuronUseOptions:
    """How the use of listed neurons is measured (part of the cache key)."""

    steps: int = 32  # Gauss–Legendre nodes per example for the dataset conductance
    max_examples: int = 32  # conductance on at most this many (evenly spaced) examples
    max_k: int = 10  # ablate the first min(max_k, listed) neurons
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # random-k draws
    chunk: int = 16  # examples per conductance call (bounds memory)


@dataclasses.dataclass(frozen=True)
class LayerConductanceSummary:
    """Mean |total conductance| of every neuron of a layer over a dataset."""

    mean_abs: np.ndarray  # [width]
    max_completeness_error: float
    examples: int  # used (evenly spaced when the dataset has more than max_examples)
    of: int  # in the dataset

    def rank(self, neuron: int) -> int:
        """1 = the layer's neuron with the largest mean |conductance|."""
        return int(np.sum(self.mean_abs > self.mean_abs[neuron])) + 1


def layer_conductance_summary(
    clf, examples: Sequence[JsonDict], layer: int, opts: NeuronUseOptions
) -> LayerConductanceSummary:
    """Streams the dataset through layer conductance in chunks of `opts.chunk`."""
    from lit_plugins.hf import paths as hf_paths

    of = len(examples)
    if len(examples) > opts.max_examples:  # evenly spaced, deterministic
        picks = np.linspace(0, len(examples) - 1, opts.max_examples).round().astype(int)
        examples = [examples[i] for i in picks]
    total, worst = None, 0.0
    for start in range(0, len(examples), opts.chunk):
        chunk = list(examples[start : start + opts.chunk])
        results, _, _ = hf_paths.layer_conductance(clf, chunk, layer, steps=opts.steps)
        for res in results:
            magnitude = np.abs(res.neuron_attributions)
            total = magnitude if total is None else total + magnitude
            worst = max(worst, float(res.completeness_error))
    return LayerConductanceSummary(total / len(examples), worst, len(examples), of)


# Shared by every interpreter (the probe and TX-Ray often list neurons of the
# same layer of the same model on the same data: one conductance pass).
_SHARED_CACHE = dataset_level.FitOnceCache(32)


class NeuronUse:
    """Cached conductance summaries and ablation checks (a private cache with
    `max_entries`, else the one shared by all interpreters)."""

    def __init__(self, max_entries: int | None = None):
        self._cache = (
            _SHARED_CACHE if max_entries is None else dataset_level.FitOnceCache(max_entries)
        )

    def chips(
        self,
        model,
        examples: Sequence[JsonDict],
        layer: int,
        neurons: Sequence[int],
        opts: NeuronUseOptions = NeuronUseOptions(),
    ) -> dtypes.TokenSalience:
        """The `USE_FIELD` chips for `neurons` of `layer` (ranked, best first)."""
        raw = specs.hf_classifier(model)
        if raw is None:
            return common.labelled_chips(
                [("use for the decision: needs an HFSequenceClassifier", 0.0)], value_format=None
            )
        if raw.is_regression:
            return common.labelled_chips(
                [("use for the decision: classifiers only", 0.0)], value_format=None
            )
        neurons = [int(n) for n in neurons]
        if not neurons:
            return common.labelled_chips([("no neurons listed", 0.0)], value_format=None)
        examples = _gold_or_none(raw, examples)
        fingerprint = dataset_level.dataset_fingerprint(examples)
        summary = self._cache.get_or_fit(
            ("conductance", raw, layer, opts, fingerprint),
            lambda: _timed(
                f"dataset conductance of layer {layer} ({len(examples)} examples)",
                lambda: layer_conductance_summary(raw, examples, layer, opts),
            ),
        )
        k = min(opts.max_k, len(neurons))
        (row,) = self._cache.get_or_fit(
            ("ablation", raw, layer, tuple(neurons[:k]), opts, fingerprint),
            lambda: _timed(
                f"ablation of {k} neurons of layer {layer} vs random",
                lambda: ablation.top_vs_random(
                    raw, examples, layer, neurons[:k], ks=[k], seeds=opts.seeds
                ),
            ),
        )
        return use_chips(summary, row, layer, neurons, opts)


def use_chips(
    summary: LayerConductanceSummary,
    row: ablation.TopVsRandomRow,
    layer: int,
    neurons: Sequence[int],
    opts: NeuronUseOptions,
) -> dtypes.TokenSalience:
    """Chips: the listed top-k ablated, k random ablated (mean ± sd over
    seeds), each neuron's mean |conductance| and rank, the settings. A chip's
    colour is the drop of the predicted class's probability (ablation) or the
    mean |conductance| (neurons)."""
    k, top = row.k, row.top
    items = []
    random_p = row.random_mean_prob_drop
    if top.accuracy_drop is not None:
        random_acc = row.random_accuracy_drop
        items.append(
            (
                f"first {k} listed ablated: accuracy {_change(top.accuracy_drop, 100):+.1f} pts, "
                f"p(predicted) {_change(top.mean_prob_drop):+.3f}",
                top.mean_prob_drop,
            )
        )
        items.append(
            (
                f"{k} random ablated ({len(row.random)} seeds): accuracy "
                f"{_change(random_acc[0], 100):+.1f} ± {100 * random_acc[1]:.1f} pts, "
                f"p(predicted) {_change(random_p[0]):+.3f} ± {random_p[1]:.3f}",
                random_p[0],
            )
        )
    else:
        items.append(
            (
                f"first {k} listed ablated: p(predicted) {_change(top.mean_prob_drop):+.3f}",
                top.mean_prob_drop,
            )
        )
        items.append(
            (
                f"{k} random ablated ({len(row.random)} seeds): p(predicted) "
                f"{_change(random_p[0]):+.3f} ± {random_p[1]:.3f}",
                random_p[0],
            )
        )
    width = len(summary.mean_abs)
    for n in neurons:
        value = float(summary.mean_abs[n])
        items.append(
            (
                f"L{layer} n{n}: mean |conductance| {value:.3g} (rank {summary.rank(n)}/{width})",
                value,
            )
        )
    items.append(
        (
            f"conductance over {_count(summary)}, {opts.steps} Gauss-Legendre nodes, "
            f"max completeness error {summary.max_completeness_error:.2%}; ablation: zeroed",
            0.0,
        )
    )
    return common.labelled_chips(items, value_format=None)


def _count(summary: LayerConductanceSummary) -> str:
    if summary.examples == summary.of:
        return f"{summary.of} examples"
    return f"{summary.examples} of {summary.of} examples (evenly spaced)"


def _change(drop: float, scale: float = 1.0) -> float:
    """A drop shown as a signed change, without '-0.0'."""
    return -scale * drop + 0.0


def use_dict(chips) -> dict[str, float]:
    """{chip text: value} of a `USE_FIELD` result (for tests and notebooks)."""
    texts = chips["tokens"] if isinstance(chips, dict) else chips.tokens
    values = chips["salience"] if isinstance(chips, dict) else chips.salience
    return {str(t): float(v) for t, v in zip(texts, values)}


def _gold_or_none(raw, examples: Sequence[JsonDict]) -> list[JsonDict]:
    """The examples, without their label field when it does not hold the
    model's classes (another dataset's labels): then accuracy is left out
    and only probabilities are compared."""
    field, classes = getattr(raw, "label_field", None), list(getattr(raw, "labels", []) or [])
    values = [ex.get(field) for ex in examples] if field else []
    if not field or all(v in classes for v in values):
        return list(examples)
    return [{k: v for k, v in ex.items() if k != field} for ex in examples]


def _timed(what: str, compute):
    start = time.time()
    logging.info("Neuron use: %s ...", what)
    value = compute()
    logging.info("Neuron use: %s done in %.1fs.", what, time.time() - start)
    return value
