"""Salience Faithfulness as a LIT interpreter: which salience map to trust.

LIT glue only: config → `FaithfulnessConfig` → the app's token-salience
interpreters on the selected examples (`lit_plugins.lit.salience_evaluation`) → the
batched core (`attribution.faithfulness`) → labelled chips.

Constructed with the app's interpreters dict (as TX-Ray is with the models):
every token-salience interpreter in it that fits the model (LIT's Grad L2 Norm,
Grad ⋅ Input, Integrated Gradients, LIME; ours) is offered as a *Score
method: <name>* checkbox; dataset-level interpreters (probe, TX-Ray, whose maps
explain a probe or neurons), Salience Clustering and this interpreter are not
salience methods. The dict is read when LIT asks for the config and meta specs,
so the interpreter may be added to the same dict it is given.

Per example (LIT 1.3's Salience Maps module; `TokenSalience` chips as IG's
completeness report, because LIT labels `FeatureSalience` entries
"key: undefined"):

* one row per method (and `random`, the random-salience baseline): chips
  "comprehensiveness ↑ = 0.3120", "sufficiency ↓ = …", "deletion AUC ↓ = …",
  "insertion AUC ↑ = …", "τ-LOO ↑ = …" (↑ higher is better, ↓ lower). The
  chip's colour is how much better (positive) or worse (negative) than the
  random baseline the method is on that metric, as a fraction of the metric's
  range (1, or 2 for τ);
* ``settings``: the removal used (delete / [MASK] / [PAD]), the k %, the
  positive-only rule, the explained class and its probability;
* ``summary · <metric>``: per method "mean [95 % bootstrap interval]" over the
  selected examples or the whole dataset (*Summary over*), coloured like the
  per-example chips. The whole-dataset summary is computed once per (model,
  dataset contents, methods, settings) and cached, progress on the console.

`chips_metrics(result[method])` gives the numbers back in Python;
`lit_plugins.lit.salience_evaluation.evaluate` is the Python API.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from absl import logging
from lit_nlp.api import components as lit_components
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import dtypes
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types

from lit_plugins.faithfulness import metrics as core
from lit_plugins.hf.perturb import PerturbationRunner
from lit_plugins.lit import dataset_level, specs
from lit_plugins.lit import salience_evaluation as faithfulness
from lit_plugins.lit.interpreters import common

JsonDict = specs.JsonDict

METHOD_PREFIX = "Score method: "
REMOVAL_KEY = "Removal"
PERCENT_KEY = "AOPC k (% of tokens)"
ONLY_POS_KEY = "Rationale: positive attributions only"
SUMMARY_KEY = "Summary over"
SEED_KEY = "Random baseline seed"
SETTINGS = "settings"
SUMMARY_PREFIX = "summary · "
SUMMARY_CHOICES = ("selected examples", "whole dataset", "none")
REMOVAL_TEXT = {
    "delete": "removal: word pieces deleted",
    "mask": "removal: replaced by the mask token",
    "pad": "removal: replaced by [PAD], attention masked",
}
ARROWS = {m: "↑" if core.HIGHER_IS_BETTER[m] else "↓" for m in core.METRICS}
METRIC_RANGE = {m: 2.0 if m == "tau_loo" else 1.0 for m in core.METRICS}
VALUE_FORMAT = ".4f"


@dataclasses.dataclass(frozen=True)
class FaithfulnessConfig:
    """A parsed config; all but `summary` are part of the dataset cache key."""

    methods: tuple[str, ...]
    removal: str
    percentages: tuple[float, ...]
    only_positive: bool
    seed: int
    summary: str

    def options_kw(self) -> dict:
        return dict(
            removal=self.removal,
            percentages=self.percentages,
            only_positive=self.only_positive,
            seed=self.seed,
        )


def metric_label(metric: str) -> str:
    return f"{core.METRIC_LABELS[metric]} {ARROWS[metric]}"


def advantage(metric: str, value: float, random_value: float) -> float:
    """How much better than the random baseline, as a fraction of the range."""
    diff = value - random_value
    if not core.HIGHER_IS_BETTER[metric]:
        diff = -diff
    out = diff / METRIC_RANGE[metric]
    return float(out) if np.isfinite(out) else 0.0


def _fmt(value: float) -> str:
    return format(value, VALUE_FORMAT) if np.isfinite(value) else "n/a"


def method_chips(scores: core.ExampleScores, random: core.ExampleScores) -> dtypes.TokenSalience:
    metrics, base = scores.metrics(), random.metrics()
    return common.labelled_chips(
        [
            (
                f"{metric_label(m)}{common.CHIP_SEPARATOR}{_fmt(metrics[m])}",
                advantage(m, metrics[m], base[m]),
            )
            for m in core.METRICS
        ],
        value_format=None,
    )


def chips_metrics(chips) -> dict[str, float]:
    """{metric: value} from a method's chips (the 4-decimal numbers shown)."""
    texts = chips["tokens"] if isinstance(chips, dict) else chips.tokens
    out = {}
    for metric, text in zip(core.METRICS, texts):
        number = str(text).rsplit(common.CHIP_SEPARATOR, 1)[-1]
        out[metric] = float("nan") if number == "n/a" else float(number)
    return out


def note_chips(text: str) -> dtypes.TokenSalience:
    return common.labelled_chips([(text, 0.0)], value_format=None)


class SalienceFaithfulness(dataset_level.DatasetInterpreter):
    """Comprehensiveness, sufficiency, deletion/insertion AUC and τ-LOO of
    every token-salience method the app serves, per example and over the
    dataset."""

    def __init__(
        self,
        interpreters: Mapping[str, lit_components.Interpreter] | None = None,
        batch_size: int = 32,
        max_cached_fits: int = 8,
    ):
        """
        Args:
          interpreters: the app's interpreters (the dict given to the Server,
            kept by reference); default: `faithfulness.default_methods()`.
          batch_size: examples per chunk in the whole-dataset summary.
          max_cached_fits: whole-dataset summaries kept.
        """
        super().__init__(batch_size, max_cached_fits)
        self._interpreters = (
            interpreters if interpreters is not None else faithfulness.default_methods()
        )

    def methods(self) -> dict[str, lit_components.Interpreter]:
        """The token-salience methods among the interpreters (any model)."""
        others = {k: v for k, v in self._interpreters.items() if v is not self}
        return faithfulness.salience_methods(others)

    # ---------------------------------------------------------------- LIT API
    def description(self) -> str:
        return (
            "Faithfulness of every salience method on the selected examples: "
            "comprehensiveness, sufficiency, deletion/insertion AUC, τ-LOO, vs a random baseline."
        )

    def is_compatible(self, model: lit_model.Model, dataset: lit_dataset.Dataset) -> bool:
        del dataset
        raw = specs.hf_classifier(model)
        return raw is not None and not raw.is_regression

    def config_spec(self) -> lit_types.Spec:
        spec: lit_types.Spec = {
            f"{METHOD_PREFIX}{name}": lit_types.Boolean(required=False, default=True)
            for name in self.methods()
        }
        spec.update(
            {
                REMOVAL_KEY: lit_types.CategoryLabel(
                    required=False, vocab=list(core.REMOVALS), default="delete"
                ),
                PERCENT_KEY: lit_types.TextSegment(
                    required=False, default=_percent_text(core.DEFAULT_PERCENTAGES)
                ),
                ONLY_POS_KEY: lit_types.Boolean(required=False, default=True),
                SUMMARY_KEY: lit_types.CategoryLabel(
                    required=False, vocab=list(SUMMARY_CHOICES), default=SUMMARY_CHOICES[0]
                ),
                SEED_KEY: lit_types.Scalar(
                    required=False, min_val=0, max_val=10_000, default=0, step=1
                ),
            }
        )
        return spec

    def meta_spec(self) -> lit_types.Spec:
        spec: lit_types.Spec = {
            name: lit_types.TokenSalience(autorun=False, signed=True)
            for name in [*self.methods(), core.RANDOM]
        }
        spec[SETTINGS] = lit_types.TokenSalience(autorun=False, signed=True)
        for m in core.METRICS:
            spec[f"{SUMMARY_PREFIX}{metric_label(m)}"] = lit_types.TokenSalience(
                autorun=False, signed=True
            )
        return spec

    def parse_config(self, config: JsonDict) -> FaithfulnessConfig:
        """Validated options; a bad value raises ValueError naming what's accepted."""
        chosen = common.ticked_methods(config, METHOD_PREFIX, self.methods(), lambda _: True)
        text = config.get(PERCENT_KEY, _percent_text(core.DEFAULT_PERCENTAGES))
        try:
            parts = [float(p) for p in str(text).replace(";", ",").split(",") if p.strip()]
            percentages = core.check_percentages(parts)
        except ValueError:
            raise ValueError(
                f"{PERCENT_KEY!r} must be comma-separated numbers in (0, 100], got {text!r}."
            ) from None
        return FaithfulnessConfig(
            methods=chosen,
            removal=common.parse_choice(config, REMOVAL_KEY, "delete", core.REMOVALS),
            percentages=percentages,
            only_positive=common.parse_bool(config, ONLY_POS_KEY, True),
            seed=common.parse_int(config, SEED_KEY, 0, 0, 10_000),
            summary=common.parse_choice(config, SUMMARY_KEY, SUMMARY_CHOICES[0], SUMMARY_CHOICES),
        )

    def run(
        self,
        inputs: list[JsonDict],
        model: lit_model.Model,
        dataset: lit_dataset.Dataset,
        model_outputs: list[JsonDict] | None = None,
        config: JsonDict | None = None,
    ) -> list[JsonDict] | None:
        opts = self.parse_config(config or {})
        if not inputs:
            return []
        if not self.is_compatible(model, dataset):
            raise ValueError(
                "Salience faithfulness needs a classifier wrapped as HFSequenceClassifier "
                "(it runs perturbed token ids through the HF model)."
            )
        chosen, skipped = common.fitting_methods(
            self.methods(), opts.methods, model, dataset, "scored"
        )
        errors: dict[str, str] = {}
        scores, _, options = faithfulness.score_inputs(
            model, inputs, chosen, opts.options_kw(), dataset, model_outputs, errors
        )
        for name, message in errors.items():  # shown, not fatal: the others still score
            logging.warning("Salience faithfulness: %s failed: %s", name, message)
            skipped[name] = f"not scored (error: {message})"
            chosen.pop(name)
        summary_rows = self._summary(model, dataset, inputs, scores, chosen, opts)
        labels = PerturbationRunner(specs.unwrap(model)).labels
        results = []
        for per_method in scores:
            random = per_method[core.RANDOM]
            out: JsonDict = {name: note_chips(why) for name, why in skipped.items()}
            for name, s in per_method.items():
                out[name] = method_chips(s, random)
            out[SETTINGS] = self._settings_chips(options, random, labels)
            out.update(summary_rows)
            results.append(out)
        return results

    # --------------------------------------------------------------- helpers
    @staticmethod
    def _settings_chips(
        options: core.FaithfulnessOptions, s: core.ExampleScores, labels: Sequence[str]
    ) -> dtypes.TokenSalience:
        cls = labels[s.target] if s.target < len(labels) else str(s.target)
        return common.labelled_chips(
            [
                (REMOVAL_TEXT[options.removal], 0.0),
                (f"k = {_percent_text(options.percentages)} % of tokens", 0.0),
                (
                    "rationale: positive attributions only"
                    if options.only_positive
                    else "rationale: top k whatever the sign",
                    0.0,
                ),
                (f"explained class {cls} (p = {s.full_prob:.4f})", 0.0),
                (f"{s.num_tokens} removable tokens (special tokens kept)", 0.0),
            ],
            value_format=None,
        )

    def _summary(self, model, dataset, inputs, scores, chosen, opts) -> JsonDict:
        keys = [f"{SUMMARY_PREFIX}{metric_label(m)}" for m in core.METRICS]
        if opts.summary == "none":
            return {k: note_chips(f"summary off ({SUMMARY_KEY!r}: none)") for k in keys}
        if opts.summary == "selected examples":
            rows = [{"method": name, **s.metrics()} for per in scores for name, s in per.items()]
            summary = faithfulness.summarize(pd.DataFrame(rows), seed=opts.seed)
            n, where = len(inputs), "selected"
        else:
            examples = self.dataset_examples(dataset, "The whole-dataset faithfulness summary")
            raw = specs.unwrap(model)
            # The key holds `raw` itself, so its id cannot be reused while cached.
            fit_key = dataclasses.replace(
                opts, methods=common.method_identities(chosen), summary=""
            )
            summary = self.cached_fit(
                (("model", raw), fit_key),
                examples,
                lambda: self._dataset_summary(model, dataset, examples, chosen, opts),
            )
            n, where = len(examples), "in the dataset"
        return _summary_chips(summary, n, where)

    def _dataset_summary(self, model, dataset, examples, chosen, opts):
        start = time.time()
        logging.info(
            "Salience faithfulness: %d methods on %d examples (%s).",
            len(chosen),
            len(examples),
            opts.removal,
        )
        result = faithfulness.evaluate_detailed(
            model,
            examples,
            chosen,
            chunk_size=self._batch_size,
            progress="Salience faithfulness (whole dataset)",
            **opts.options_kw(),
        )
        logging.info("Salience faithfulness: done in %.1fs.", time.time() - start)
        return result.summary(seed=opts.seed)


def _percent_text(percentages: Sequence[float]) -> str:
    return ",".join(f"{p:g}" for p in percentages)


def _summary_chips(summary, n: int, where: str) -> JsonDict:
    out = {}
    for metric in core.METRICS:
        part = summary[summary.metric == metric].set_index("method")
        base = float(part.at[core.RANDOM, "mean"]) if core.RANDOM in part.index else 0.0
        items = [(f"{n} example{'' if n == 1 else 's'} {where}", 0.0)]
        for method, row in part.iterrows():
            items.append(
                (
                    f"{method}: {_fmt(row['mean'])} [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]",
                    advantage(metric, float(row["mean"]), base),
                )
            )
        out[f"{SUMMARY_PREFIX}{metric_label(metric)}"] = common.labelled_chips(
            items, value_format=None
        )
    return out
