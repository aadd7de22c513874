"""Trust Checks as a LIT interpreter: does each salience map depend on the model,
is it stable, and does it agree with people (where the data has human rationales)?

LIT glue only: the config becomes `trust_evaluation.TrustSettings`, the app's
token-salience interpreters (as Salience Faithfulness finds them) run through
`trust_evaluation.evaluate` on the selected examples, and the numbers become
chips. See docs/trust-checks.md.

Per example, one row of chips per method (and `random`, the seeded random map,
which ignores the model and so always fails the sanity check: the baseline):

* "ρ after <step>" for every cascading step (head, layer L, …, embeddings):
  Spearman's ρ between the map on the trained model and on the randomized one;
  with *Randomization* "cascading and independent", also "ρ with only <step>
  randomized"; "|ρ| all randomized"; "sanity: passes" / "fails" (both ρ below
  the threshold with every weight randomized) or "undefined" (fewer than two
  non-special tokens);
* with a rationale in the example (*Rationale field*, default ``rationale``:
  evidence words of the text, as a string or a list of words, or a list of word
  indices): "token F1 ↑", "IOU-F1 ↑", "AUPRC ↑"; a bad rationale (an index
  outside the text) shows its message instead;
* "infidelity ↓" (Yeh et al., normalized): random subsets of the non-special
  tokens (each with probability 0.25) moved to the zero embedding,
  *Infidelity samples* of them (0: off);
* "max-sensitivity ↓" (Yeh et al.): the method's own map on the embeddings plus
  uniform noise of *Max-sensitivity radius*, *Max-sensitivity samples* draws
  (0: off); "n/a" for methods that perturb words (LIME).

Chip colours: how much better than the random baseline (ρ: lower is better,
range 2; plausibility: higher is better, range 1; infidelity: relative).
``summary · …`` rows give, per method, the mean over the selected examples or
the whole dataset (*Summary over*) with a 95 % bootstrap interval, and
``summary · sanity check`` the verdict per method. The whole-dataset summary
is computed once per (model, dataset contents, methods, settings) and cached,
progress on the console.

Every randomized model explains the class the served model predicts, or the
example's own ``grad_class`` where it has one. Cost: (layers + 2) × every
method's cost (plus the max-sensitivity samples for the methods that read
embeddings), so only the plain gradient maps are ticked by default (`ticked`);
IG, conductance and LIME are one click away.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd
from lit_nlp.api import components as lit_components
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types

from lit_plugins.lit import dataset_level, specs
from lit_plugins.lit import salience_evaluation as evaluation
from lit_plugins.lit import trust_evaluation as trust
from lit_plugins.lit.interpreters import common

JsonDict = specs.JsonDict

NAME = "lit-plugins: Trust Checks"  # as registered in app.registration
METHOD_PREFIX = "Check method: "
SEED_KEY = "Randomization seed"
RANDOMIZATION_KEY = "Randomization"
RANDOMIZATION_CHOICES = ("cascading", "cascading and independent")
RATIONALE_KEY = "Rationale field"
THRESHOLD_KEY = "Sanity threshold (mean ρ below)"
INFIDELITY_KEY = "Infidelity samples (0: off)"
SENSITIVITY_KEY = "Max-sensitivity samples (0: off)"
RADIUS_KEY = "Max-sensitivity radius"
SUMMARY_KEY = "Summary over"
SUMMARY_CHOICES = ("selected examples", "whole dataset", "none")
SETTINGS = "settings"
SUMMARY_PREFIX = "summary · "
VERDICT = f"{SUMMARY_PREFIX}sanity check"
SUMMARY_METRICS = trust.METRICS
SUBSET_PROBABILITY = trust.SUBSET_PROBABILITY


def _chips(items) -> object:
    return common.labelled_chips(items, value_format=None)


def ticked(name: str) -> bool:
    """Checked by default: the plain gradient maps (one backward pass each). The
    others (IG, conductance, LIME) cost (layers + 2) × their own cost: ticked
    by the user."""
    return "grad" in name.lower() and "integrated" not in name.lower()


@dataclasses.dataclass(frozen=True)
class TrustConfig:
    """A parsed config: the methods, the settings and where to summarize."""

    methods: tuple[str, ...]
    settings: trust.TrustSettings
    summary: str


class TrustChecks(dataset_level.DatasetInterpreter):
    """Randomization sanity check, robustness and plausibility of every salience method."""

    def __init__(
        self,
        interpreters: Mapping[str, lit_components.Interpreter] | None = None,
        batch_size: int = 32,
        max_cached_fits: int = 4,
    ):
        """`interpreters`: the app's interpreters (kept by reference, read when
        LIT asks for the config); default `salience_evaluation.default_methods()`.
        `batch_size`: examples per chunk; `max_cached_fits`: whole-dataset
        summaries kept."""
        super().__init__(batch_size, max_cached_fits)
        self._interpreters = (
            interpreters if interpreters is not None else evaluation.default_methods()
        )

    def methods(self) -> dict[str, lit_components.Interpreter]:
        others = {k: v for k, v in self._interpreters.items() if v is not self}
        return evaluation.salience_methods(others)

    def description(self) -> str:
        return (
            "Trust checks of every salience method: does the map change when the model's "
            "weights are randomized (Adebayo et al.), how stable is it (max-sensitivity, "
            "infidelity), does it agree with human rationales (token F1, IOU-F1, AUPRC); "
            "vs a random map."
        )

    def is_compatible(self, model: lit_model.Model, dataset: lit_dataset.Dataset) -> bool:
        del dataset
        raw = specs.hf_classifier(model)
        return raw is not None and not raw.is_regression

    def config_spec(self) -> lit_types.Spec:
        defaults = trust.TrustSettings()
        spec: lit_types.Spec = {
            f"{METHOD_PREFIX}{name}": lit_types.Boolean(required=False, default=ticked(name))
            for name in self.methods()
        }
        spec.update(
            {
                SUMMARY_KEY: lit_types.CategoryLabel(
                    required=False, vocab=list(SUMMARY_CHOICES), default=SUMMARY_CHOICES[0]
                ),
                RANDOMIZATION_KEY: lit_types.CategoryLabel(
                    required=False,
                    vocab=list(RANDOMIZATION_CHOICES),
                    default=RANDOMIZATION_CHOICES[0],
                ),
                SEED_KEY: lit_types.Scalar(
                    required=False, min_val=0, max_val=10_000, default=defaults.seed, step=1
                ),
                THRESHOLD_KEY: lit_types.Scalar(
                    required=False, min_val=-1, max_val=1, default=defaults.threshold, step=0.05
                ),
                RATIONALE_KEY: lit_types.TextSegment(
                    required=False, default=defaults.rationale_field
                ),
                INFIDELITY_KEY: lit_types.Scalar(
                    required=False,
                    min_val=0,
                    max_val=256,
                    default=defaults.infidelity_samples,
                    step=1,
                ),
                SENSITIVITY_KEY: lit_types.Scalar(
                    required=False,
                    min_val=0,
                    max_val=64,
                    default=defaults.sensitivity_samples,
                    step=1,
                ),
                RADIUS_KEY: lit_types.Scalar(
                    required=False,
                    min_val=0.001,
                    max_val=1,
                    default=defaults.sensitivity_radius,
                    step=0.001,
                ),
            }
        )
        return spec

    def meta_spec(self) -> lit_types.Spec:
        signed = dict(autorun=False, signed=True)
        spec: lit_types.Spec = {
            name: lit_types.TokenSalience(**signed) for name in [*self.methods(), trust.RANDOM]
        }
        spec[SETTINGS] = lit_types.TokenSalience(**signed)
        spec[VERDICT] = lit_types.TokenSalience(**signed)
        for label in SUMMARY_METRICS.values():
            spec[f"{SUMMARY_PREFIX}{label}"] = lit_types.TokenSalience(**signed)
        return spec

    def parse_config(self, config: JsonDict | None) -> TrustConfig:
        """Validated options; a bad value raises ValueError naming what's accepted."""
        config = config or {}
        methods = common.ticked_methods(config, METHOD_PREFIX, self.methods(), ticked)
        defaults = trust.TrustSettings()
        settings = trust.TrustSettings(
            seed=common.parse_int(config, SEED_KEY, defaults.seed, 0, 10_000),
            threshold=common.parse_float(config, THRESHOLD_KEY, defaults.threshold, -1, 1),
            rationale_field=str(config.get(RATIONALE_KEY) or defaults.rationale_field).strip(),
            infidelity_samples=common.parse_int(
                config, INFIDELITY_KEY, defaults.infidelity_samples, 0, 256
            ),
            sensitivity_samples=common.parse_int(
                config, SENSITIVITY_KEY, defaults.sensitivity_samples, 0, 64
            ),
            sensitivity_radius=common.parse_float(
                config, RADIUS_KEY, defaults.sensitivity_radius, 0.001, 1
            ),
            independent=common.parse_choice(
                config, RANDOMIZATION_KEY, RANDOMIZATION_CHOICES[0], RANDOMIZATION_CHOICES
            )
            != RANDOMIZATION_CHOICES[0],
        )
        summary = common.parse_choice(config, SUMMARY_KEY, SUMMARY_CHOICES[0], SUMMARY_CHOICES)
        return TrustConfig(methods, settings, summary)

    # ----------------------------------------------------------------- run
    def run(
        self,
        inputs: list[JsonDict],
        model: lit_model.Model,
        dataset: lit_dataset.Dataset,
        model_outputs: list[JsonDict] | None = None,
        config: JsonDict | None = None,
    ) -> list[JsonDict] | None:
        del model_outputs  # the checks run the methods themselves, pinned to one class
        opts = self.parse_config(config)
        if not inputs:
            return []
        if not self.is_compatible(model, dataset):
            raise ValueError("Trust checks need a classifier wrapped as HFSequenceClassifier.")
        chosen, skipped = common.fitting_methods(
            self.methods(), opts.methods, model, dataset, "checked"
        )
        result = trust.evaluate(
            model,
            inputs,
            chosen,
            settings=opts.settings,
            chunk_size=self._batch_size,
            lit_dataset=dataset,
        )
        notes = {**skipped, **{m: why for m, why in result.notes.items() if m in result.errors}}
        summary_rows = self._summary(model, dataset, inputs, result, chosen, opts)
        results = []
        for i in range(len(inputs)):
            out: JsonDict = {name: _chips([(why, 0.0)]) for name, why in notes.items()}
            for name in result.methods:
                out[name] = _method_chips(result, name, i)
            out[SETTINGS] = _settings_chips(opts.settings, result.targets[i])
            out.update(summary_rows)
            results.append(out)
        return results

    def _summary(self, model, dataset, inputs, result, chosen, opts) -> JsonDict:
        keys = [VERDICT, *(f"{SUMMARY_PREFIX}{label}" for label in SUMMARY_METRICS.values())]
        if opts.summary == "none":
            return {k: _chips([(f"summary off ({SUMMARY_KEY!r}: none)", 0.0)]) for k in keys}
        seed = opts.settings.seed
        if opts.summary == "selected examples":
            table, n, where = result.summary(seed=seed), len(inputs), "selected"
        else:
            examples = self.dataset_examples(dataset, "The whole-dataset trust summary")
            raw = specs.unwrap(model)
            # The key holds `raw` itself, so its id cannot be reused while cached.
            key = (("model", raw), ("trust", common.method_identities(chosen), opts.settings))
            table = self.cached_fit(
                key,
                examples,
                lambda: trust.evaluate(
                    model,
                    examples,
                    chosen,
                    settings=opts.settings,
                    chunk_size=self._batch_size,
                    progress="Trust checks (whole dataset)",
                    lit_dataset=dataset,
                ).summary(seed=seed),
            )
            n, where = len(examples), "in the dataset"
        return _summary_chips(table, n, where, opts.settings.threshold)


# ------------------------------------------------------------------ chips --
def _relative_gain(value: float, base: float) -> float:
    """(base − value) / (base + value): > 0 where lower than the baseline."""
    return (base - value) / (base + value) if base + value > 0 else 0.0


def _method_chips(result: trust.TrustResult, name: str, i: int):
    corr, random_corr = result.cascade[name], result.cascade[trust.RANDOM]
    items = []
    for step, base in zip(corr, random_corr):
        rho = float(step.spearman[i])
        items.append((f"ρ after {step.step} = {rho:.4f}", (float(base.spearman[i]) - rho) / 2))
    if result.independent is not None:
        for step in result.independent[name]:
            rho = float(step.spearman[i])
            items.append((f"ρ with only {step.step} randomized = {rho:.4f}", (1 - rho) / 2))
    last = corr[-1]
    items.append((f"|ρ| all randomized = {float(last.spearman_abs[i]):.4f}", 0.0))
    threshold = result.settings.threshold
    if not last.defined[i]:
        items.append(("sanity: undefined (fewer than 2 tokens or a constant map)", 0.0))
    elif last.spearman[i] < threshold and last.spearman_abs[i] < threshold:
        items.append(("sanity: passes", 1.0))
    else:
        items.append(("sanity: fails", -1.0))
    scores = result.plausibility[name][i]
    if scores is not None:
        base = result.plausibility[trust.RANDOM][i].metrics()
        for metric, value in scores.metrics().items():
            items.append((f"{SUMMARY_METRICS[metric]} = {value:.4f}", value - base[metric]))
    if result.infidelity is not None:
        value = float(result.infidelity[name][i])
        base = float(result.infidelity[trust.RANDOM][i])
        items.append(
            (f"{SUMMARY_METRICS['infidelity']} = {value:.4g}", _relative_gain(value, base))
        )
    if result.sensitivity is not None:
        if name in result.sensitivity:
            value = float(result.sensitivity[name][i])
            items.append((f"{SUMMARY_METRICS['max_sensitivity']} = {value:.4g}", 0.0))
        elif name in result.notes:
            items.append((result.notes[name], 0.0))
    if result.rationale_notes[i]:
        items.append((result.rationale_notes[i], 0.0))
    return _chips(items)


def _settings_chips(settings: trust.TrustSettings, target: str):
    rules = "cascading from the top" + (", and each step alone" if settings.independent else "")
    return _chips(
        [
            (f"explained class {target} on every randomized model", 0.0),
            (f"randomization seed {settings.seed}, {rules}", 0.0),
            (f"passes: mean ρ and |ρ| below {settings.threshold:g} fully randomized", 0.0),
            (f"rationale field {settings.rationale_field!r}", 0.0),
            (
                f"infidelity: {settings.infidelity_samples} random subsets "
                f"(p = {SUBSET_PROBABILITY:g}) replaced by zero embeddings, map rescaled "
                "by the best β"
                if settings.infidelity_samples
                else "infidelity off",
                0.0,
            ),
            (
                f"max-sensitivity: {settings.sensitivity_samples} draws of uniform noise "
                f"±{settings.sensitivity_radius:g} on the non-special token embeddings"
                if settings.sensitivity_samples
                else "max-sensitivity off",
                0.0,
            ),
        ]
    )


def _fmt(value: float, metric: str) -> str:
    if not np.isfinite(value):
        return "n/a"
    return format(value, ".4g" if metric in ("infidelity", "max_sensitivity") else ".4f")


def _summary_chips(table: pd.DataFrame, n: int, where: str, threshold: float) -> JsonDict:
    """Chips from `TrustResult.summary()`: one row per metric, and the verdicts."""
    header = (f"{n} example{'' if n == 1 else 's'} {where}", 0.0)
    out = {}
    for metric, label in SUMMARY_METRICS.items():
        part = table[table.metric == metric].set_index("method")
        items = [header]
        for method, row in part.iterrows():
            if not row["n"]:
                items.append((f"{method}: n/a", 0.0))
                continue
            mean, low, high = (_fmt(float(row[k]), metric) for k in ("mean", "ci_low", "ci_high"))
            items.append((f"{method}: {mean} [{low}, {high}]", 0.0))
        out[f"{SUMMARY_PREFIX}{label}"] = _chips(items)
    verdicts = [header]
    rho = table[table.metric == "rho_all"].set_index("method")
    rho_abs = table[table.metric == "rho_abs_all"].set_index("method")
    for method in rho.index:
        if not rho.at[method, "n"]:
            verdicts.append((f"{method}: undefined (no example with 2+ tokens)", 0.0))
            continue
        mean, mean_abs = float(rho.at[method, "mean"]), float(rho_abs.at[method, "mean"])
        ok = mean < threshold and mean_abs < threshold
        verdicts.append(
            (
                f"{method}: {'passes' if ok else 'fails'} (mean ρ {mean:.3f}, |ρ| {mean_abs:.3f})",
                1.0 if ok else -1.0,
            )
        )
    out[VERDICT] = _chips(verdicts)
    return out


def chips_values(chips) -> dict[str, float]:
    """{chip label: number} of a method's chips (labels "ρ after head", …)."""
    texts = chips["tokens"] if isinstance(chips, dict) else chips.tokens
    out = {}
    for text in texts:
        if common.CHIP_SEPARATOR in str(text):
            label, number = str(text).rsplit(common.CHIP_SEPARATOR, 1)
            try:
                out[label] = float(number)
            except ValueError:  # a message chip that contains " = "
                continue
    return out
