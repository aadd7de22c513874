"""Trust Checks as a LIT interpreter: does each salience map depend on the model,
and does it agree with people (where the data has human rationales)?

LIT glue only: the app's token-salience interpreters (as Salience Faithfulness
finds them) run on the selected examples, on the served model and on copies
whose weights are randomized from the top down (`hf.randomization.cascading`);
the LIT-free `faithfulness.sanity` and `faithfulness.plausibility` score the maps.
See docs/trust-checks.md.

Per example, one row of chips per method (and `random`, the seeded random map,
which ignores the model and so always fails the sanity check: the baseline):

* "ρ after <step>" for every cascading step (head, layer L, …, embeddings):
  Spearman's ρ between the map on the trained model and on the randomized one;
  "|ρ| all randomized"; "sanity: passes" / "fails" (both ρ below the
  threshold with every weight randomized) or "undefined" (fewer than two
  non-special tokens);
* with a rationale in the example (*Rationale field*, default ``rationale``:
  evidence words of the text, as a string or a list of words, or a list of word
  indices): "token F1 ↑", "IOU-F1 ↑", "AUPRC ↑"; a bad rationale (an index
  outside the text) shows its message instead;
* "infidelity ↓" (Yeh et al., normalized: the map rescaled by its best β):
  random subsets of the non-special tokens (each with probability 0.25) moved
  to the zero embedding, *Infidelity samples* of them (0: off).

Chip colours: how much better than the random baseline (ρ: lower is better,
range 2; plausibility: higher is better, range 1). ``summary · …`` rows give,
per method, the mean over the selected examples with a 95 % bootstrap
interval (`faithfulness.summary`, the one bootstrap).

Every randomized model explains the class the served model predicts, or the
example's own ``grad_class`` where it has one (inputs pinned with
``grad_class``), so a map cannot move only because the randomized model
predicts another class. Cost: (layers + 2) × every method's cost, so
only the plain gradient maps are ticked by default (`ticked`); IG,
conductance and LIME are one click away.
"""

from __future__ import annotations

import copy
import re
import string
from collections.abc import Mapping

import numpy as np
from lit_nlp.api import components as lit_components
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import model as lit_model
from lit_nlp.api import types as lit_types

from lit_plugins.faithfulness import metrics as core
from lit_plugins.faithfulness import plausibility, robustness, sanity
from lit_plugins.faithfulness import summary as summary_lib
from lit_plugins.hf import randomization
from lit_plugins.hf import robustness as hf_robustness
from lit_plugins.hf.perturb import PerturbationRunner
from lit_plugins.lit import alignment, dataset_level, specs
from lit_plugins.lit import salience_evaluation as evaluation
from lit_plugins.lit.interpreters import common

JsonDict = specs.JsonDict

NAME = "lit-plugins: Trust Checks"  # as registered in app.registration
METHOD_PREFIX = "Check method: "
SEED_KEY = "Randomization seed"
RATIONALE_KEY = "Rationale field"
THRESHOLD_KEY = "Sanity threshold (mean ρ below)"
SETTINGS = "settings"
SUMMARY_PREFIX = "summary · "
SUMMARY_METRICS = {
    "rho_all": "ρ all randomized ↓",
    "token_f1": "token F1 ↑",
    "iou_f1": "IOU-F1 ↑",
    "auprc": "AUPRC ↑",
    "infidelity": "infidelity ↓",
}
INFIDELITY_KEY = "Infidelity samples (0: off)"
SUBSET_PROBABILITY = 0.25  # each non-special token replaced by the zero baseline
_PUNCTUATION = re.compile(
    f"^[{re.escape(string.punctuation)}]+|[{re.escape(string.punctuation)}]+$"
)


def _chips(items) -> object:
    return common.labelled_chips(items, value_format=None)


def _word(text: str) -> str:
    return _PUNCTUATION.sub("", text.lower())


def rationale_pieces(model, example: JsonDict, field: str, tokens, value) -> np.ndarray | None:
    """The pieces of the evidence words named by `value` (see the module
    docstring) as a boolean mask over `tokens`; None when there is none."""
    if value is None or (isinstance(value, (str, list, tuple)) and len(value) == 0):
        return None
    text = example.get(field)
    words = text.split() if isinstance(text, str) else []
    if isinstance(value, str):
        value = value.split()
    values = list(value)
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        bad = [int(v) for v in values if not 0 <= int(v) < len(words)]
        if bad:
            raise ValueError(
                f"rationale word indices {bad} are outside the text's {len(words)} words"
            )
        chosen = {int(v) for v in values}
    elif all(isinstance(v, str) for v in values):
        wanted = {_word(v) for v in values} - {""}
        chosen = {i for i, w in enumerate(words) if _word(w) in wanted}
        if not chosen:
            raise ValueError(f"no rationale word {sorted(wanted)} occurs in the text")
    else:
        raise ValueError("a rationale is evidence words (text or a list) or word indices")
    _, weights, kept = alignment.word_piece_weights(model, example, field, tokens, "mean")
    mask = np.zeros(len(tokens), bool)
    for row, w in zip(weights, kept):
        if int(w) in chosen:
            mask |= np.asarray(row) > 0
    return mask


def ticked(name: str) -> bool:
    """Checked by default: the plain gradient maps (one backward pass each). The
    others (IG, conductance, LIME) cost (layers + 2) × their own cost: ticked
    by the user."""
    return "grad" in name.lower() and "integrated" not in name.lower()


def _randomized_wrapper(raw, hf_model):
    """A fresh wrapper of the same class and settings around a randomized copy
    (fresh: no prediction cache or lock shared with the served model)."""
    kw = dict(
        model=hf_model,
        tokenizer=raw.tokenizer,
        labels=list(raw.labels),
        text_fields=raw.text_fields,
        label_field=raw.label_field,
        batch_size=raw.batch_size,
        max_length=raw.max_length,
        device=str(raw.device),
    )
    if hasattr(raw, "threshold"):
        kw["threshold"] = raw.threshold
    return type(raw)(**kw)


class TrustChecks(dataset_level.DatasetInterpreter):
    """Randomization sanity check and plausibility of every salience method."""

    def __init__(self, interpreters: Mapping[str, lit_components.Interpreter] | None = None):
        """`interpreters`: the app's interpreters (kept by reference, read when
        LIT asks for the config); default `salience_evaluation.default_methods()`."""
        super().__init__(batch_size=32, max_cached_fits=1)
        self._interpreters = (
            interpreters if interpreters is not None else evaluation.default_methods()
        )

    def methods(self) -> dict[str, lit_components.Interpreter]:
        others = {k: v for k, v in self._interpreters.items() if v is not self}
        return evaluation.salience_methods(others)

    def description(self) -> str:
        return (
            "Trust checks of every salience method on the selected examples: does the map "
            "change when the model's weights are randomized (Adebayo et al.), and does it "
            "agree with human rationales (token F1, IOU-F1, AUPRC), vs a random map."
        )

    def is_compatible(self, model: lit_model.Model, dataset: lit_dataset.Dataset) -> bool:
        del dataset
        raw = specs.hf_classifier(model)
        return raw is not None and not raw.is_regression

    def config_spec(self) -> lit_types.Spec:
        spec: lit_types.Spec = {
            f"{METHOD_PREFIX}{name}": lit_types.Boolean(required=False, default=ticked(name))
            for name in self.methods()
        }
        spec[SEED_KEY] = lit_types.Scalar(
            required=False, min_val=0, max_val=10_000, default=0, step=1
        )
        spec[THRESHOLD_KEY] = lit_types.Scalar(
            required=False, min_val=-1, max_val=1, default=sanity.DEFAULT_THRESHOLD, step=0.05
        )
        spec[RATIONALE_KEY] = lit_types.TextSegment(required=False, default="rationale")
        spec[INFIDELITY_KEY] = lit_types.Scalar(
            required=False, min_val=0, max_val=256, default=16, step=1
        )
        return spec

    def meta_spec(self) -> lit_types.Spec:
        signed = dict(autorun=False, signed=True)
        spec: lit_types.Spec = {
            name: lit_types.TokenSalience(**signed) for name in [*self.methods(), core.RANDOM]
        }
        spec[SETTINGS] = lit_types.TokenSalience(**signed)
        for label in SUMMARY_METRICS.values():
            spec[f"{SUMMARY_PREFIX}{label}"] = lit_types.TokenSalience(**signed)
        return spec

    # ----------------------------------------------------------------- run
    def run(
        self,
        inputs: list[JsonDict],
        model: lit_model.Model,
        dataset: lit_dataset.Dataset,
        model_outputs: list[JsonDict] | None = None,
        config: JsonDict | None = None,
    ) -> list[JsonDict] | None:
        config = config or {}
        offered = self.methods()
        unknown = [
            key[len(METHOD_PREFIX) :]
            for key in config
            if isinstance(key, str)
            and key.startswith(METHOD_PREFIX)
            and key[len(METHOD_PREFIX) :] not in offered
        ]
        if unknown:
            raise ValueError(
                f"{unknown} are not salience methods served by this app; served: {sorted(offered)}."
            )
        seed = common.parse_int(config, SEED_KEY, 0, 0, 10_000)
        threshold = common.parse_float(config, THRESHOLD_KEY, sanity.DEFAULT_THRESHOLD, -1, 1)
        field = str(config.get(RATIONALE_KEY) or "rationale").strip()
        samples = common.parse_int(config, INFIDELITY_KEY, 16, 0, 256)
        if not inputs:
            return []
        if not self.is_compatible(model, dataset):
            raise ValueError("Trust checks need a classifier wrapped as HFSequenceClassifier.")
        raw = specs.unwrap(model)
        notes: dict[str, str] = {}
        chosen = {}
        for name, interp in offered.items():
            if not common.parse_bool(config, f"{METHOD_PREFIX}{name}", ticked(name)):
                notes[name] = "not checked (unticked)"
                continue
            try:
                fits = interp.is_compatible(model, dataset)
            except Exception:  # treated as not fitting
                fits = False
            if fits:
                chosen[name] = interp
            else:
                notes[name] = "not checked (does not fit this model)"

        runner = PerturbationRunner(raw)
        examples, prob_fn = runner.encode(inputs)
        tokens = [runner.tokens(e) for e in examples]
        special = [e.special for e in examples]
        # The class each map explains: the example's own `grad_class` if it has
        # one, else the served model's prediction; pinned for the randomized models.
        probs = prob_fn(
            [
                core.render(i, e.input_ids, np.ones(e.input_ids.size, bool), "delete")
                for i, e in enumerate(examples)
            ]
        )
        targets = [
            int(np.argmax(p)) if e.target is None else int(e.target)
            for p, e in zip(probs, examples)
        ]
        pinned = [{**ex, "grad_class": raw.labels[t]} for ex, t in zip(inputs, targets)]
        errors: dict[str, str] = {}
        original = evaluation.run_methods(chosen, pinned, model, dataset, tokens, None, errors)
        original[core.RANDOM] = [core.random_salience(e, seed) for e in examples]
        cascade: dict[str, dict[str, list]] = {name: {} for name in original}
        # Copied under the model's lock: a concurrent layer-IG request's forward
        # hook (installed under that lock) must not be copied along.
        with raw.inference_lock:
            randomized = copy.deepcopy(raw.model)
        for step, hf_model in randomization.cascading(randomized, seed=seed, in_place=True):
            wrapper = _randomized_wrapper(raw, hf_model)
            maps = evaluation.run_methods(
                {k: v for k, v in chosen.items() if k not in errors},
                pinned,
                wrapper,
                dataset,
                tokens,
                None,
                errors,
            )
            for name, values in maps.items():
                cascade[name][step] = values
            cascade[core.RANDOM][step] = [core.random_salience(e, seed) for e in examples]
        for name, message in errors.items():
            notes[name] = f"not checked (error: {message})"
            original.pop(name, None)
            cascade.pop(name, None)

        correlations = {
            name: sanity.step_correlations(original[name], cascade[name], special)
            for name in original
        }
        plaus, rationale_notes = self._plausibility(raw, inputs, tokens, special, original, field)
        infidelity = self._infidelity(raw, pinned, original, seed, samples)
        results = []
        for i in range(len(inputs)):
            out: JsonDict = {name: _chips([(why, 0.0)]) for name, why in notes.items()}
            for name in original:
                out[name] = self._method_chips(
                    correlations, plaus, infidelity, name, i, threshold, rationale_notes[i]
                )
            label = raw.labels[targets[i]]
            out[SETTINGS] = _chips(
                [
                    (f"explained class {label} on every randomized model", 0.0),
                    (f"randomization seed {seed}, cascading from the top", 0.0),
                    (f"passes: mean ρ and |ρ| below {threshold:g} fully randomized", 0.0),
                    (f"rationale field {field!r}", 0.0),
                    (
                        f"infidelity: {samples} random subsets (p = {SUBSET_PROBABILITY:g}) "
                        "replaced by zero embeddings, map rescaled by the best β"
                        if samples
                        else "infidelity off",
                        0.0,
                    ),
                ]
            )
            out.update(self._summary(correlations, plaus, infidelity, seed, len(inputs)))
            results.append(out)
        return results

    # -------------------------------------------------------------- helpers
    @staticmethod
    def _plausibility(raw, inputs, tokens, special, maps, field):
        text_field = raw.text_fields[0]
        masks, notes = [], []
        for ex, toks in zip(inputs, tokens):
            try:
                masks.append(rationale_pieces(raw, ex, text_field, toks, ex.get(field)))
                notes.append("" if masks[-1] is not None else f"no rationale in {field!r}")
            except ValueError as err:
                masks.append(None)
                notes.append(f"rationale: {err}")
        scores = {
            name: [
                None if m is None else plausibility.score(v, m, s)
                for v, m, s in zip(values, masks, special)
            ]
            for name, values in maps.items()
        }
        return scores, notes

    @staticmethod
    def _infidelity(raw, pinned, maps, seed, samples) -> dict[str, np.ndarray] | None:
        """Normalized infidelity of every map (Yeh et al.; `faithfulness.robustness`)
        under random token subsets moved to the zero embedding."""
        if not samples:
            return None
        batch = hf_robustness.embed(raw, pinned)
        n, t = batch.token_mask.shape
        perturb = batch.token_mask & ~batch.special
        pert = robustness.token_perturbations(
            (n, t), samples, "subset", SUBSET_PROBABILITY, seed, perturb
        )
        forward = hf_robustness.forward_fn(raw, batch)
        return {
            name: robustness.infidelity(
                forward, batch.padded(values), pert, batch.token_mask, normalize=True
            )
            for name, values in maps.items()
        }

    @staticmethod
    def _method_chips(correlations, plaus, infidelity, name, i, threshold, note):
        corr, random_corr = correlations[name], correlations[core.RANDOM]
        items = []
        for step, base in zip(corr, random_corr):
            rho = float(step.spearman[i])
            items.append((f"ρ after {step.step} = {rho:.4f}", (float(base.spearman[i]) - rho) / 2))
        last = corr[-1]
        items.append((f"|ρ| all randomized = {float(last.spearman_abs[i]):.4f}", 0.0))
        if not last.defined[i]:
            items.append(("sanity: undefined (fewer than 2 tokens or a constant map)", 0.0))
        elif last.spearman[i] < threshold and last.spearman_abs[i] < threshold:
            items.append(("sanity: passes", 1.0))
        else:
            items.append(("sanity: fails", -1.0))
        result = plaus[name][i]
        if result is not None:
            base = plaus[core.RANDOM][i].metrics()
            for metric, value in result.metrics().items():
                label = SUMMARY_METRICS[metric]
                items.append((f"{label} = {value:.4f}", value - base[metric]))
        if infidelity is not None:
            value, base = float(infidelity[name][i]), float(infidelity[core.RANDOM][i])
            better = (base - value) / (base + value) if base + value > 0 else 0.0
            items.append((f"{SUMMARY_METRICS['infidelity']} = {value:.4g}", better))
        if note:
            items.append((note, 0.0))
        return _chips(items)

    @staticmethod
    def _summary(correlations, plaus, infidelity, seed, n) -> JsonDict:
        out = {}
        for metric, label in SUMMARY_METRICS.items():
            items = [(f"{n} example{'' if n == 1 else 's'} selected", 0.0)]
            for name in correlations:
                if metric == "rho_all":
                    last = correlations[name][-1]
                    values = last.spearman[last.defined]
                elif metric == "infidelity":
                    values = [] if infidelity is None else infidelity[name]
                else:
                    values = [r.metrics()[metric] for r in plaus[name] if r is not None]
                if len(values) == 0:
                    items.append((f"{name}: n/a", 0.0))
                    continue
                s = summary_lib.summarize(values, seed=seed)
                fmt = ".4g" if metric == "infidelity" else ".4f"
                items.append(
                    (
                        f"{name}: {s['mean']:{fmt}} [{s['ci_low']:{fmt}}, {s['ci_high']:{fmt}}]",
                        0.0,
                    )
                )
            out[f"{SUMMARY_PREFIX}{label}"] = _chips(items)
        return out


def chips_values(chips) -> dict[str, float]:
    """{chip label: number} of a method's chips (labels "ρ after head", …)."""
    texts = chips["tokens"] if isinstance(chips, dict) else chips.tokens
    out = {}
    for text in texts:
        if common.CHIP_SEPARATOR in str(text):
            label, number = str(text).rsplit(common.CHIP_SEPARATOR, 1)
            out[label] = float(number)
    return out
