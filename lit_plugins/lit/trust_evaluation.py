"""Trust checks of LIT's token-salience methods, from Python: the engine of the
Trust Checks interpreter and of the ``trust-report`` command.

    from lit_plugins.lit import trust_evaluation as trust
    result = trust.evaluate(model, examples)     # every default method that fits
    result.table()        # one row per (example, method)
    result.summary()      # per method × metric: mean, median, 95 % bootstrap interval
    result.curves()       # per method: mean ρ after each cascading randomization step
    result.verdicts()     # per method: passes / fails / undefined (the sanity check)

Per method (and `RANDOM`, the seeded random map: the baseline that ignores the
model), on each example:

* **Randomization sanity check** (Adebayo et al. 2018, `faithfulness.sanity`):
  the method's map on the served model against its map on copies whose weights
  are randomized from the top down (`hf.randomization.cascading`) and, when
  asked, one step at a time (`independent`): Spearman's ρ of the scores and of
  |scores| per step.
* **Plausibility** (`faithfulness.plausibility`) against the human rationale in
  ``settings.rationale_field`` (evidence words; `alignment.rationale_pieces`).
* **Infidelity** (Yeh et al. 2019, normalized; `faithfulness.robustness`):
  random subsets of the non-special tokens moved to the zero embedding.
* **Max-sensitivity** (Yeh et al. 2019): the map recomputed by the method
  itself, through LIT, on the word embeddings plus uniform noise in
  [−radius, radius] on the non-special tokens (the model reads ``token_embs``
  as input): max over samples of ‖s − s′‖₂ / ‖s‖₂ over those tokens. Only for
  methods whose map is a function of the input embeddings
  (`reads_embeddings`); LIME perturbs words and gets "n/a".

Every map explains the same class on every model: the example's own
``grad_class`` where it has one, else the served model's prediction (pinned
for the randomized copies, so a map cannot move only because a randomized
model predicts another class).

Cost and batching: each randomized copy is built once per step, and every
method's maps for every example go through it in batches of `chunk_size`
(`tests/benchmarks/bench_trust_checks.py` compares this with the loop of one
example, one method, one randomization at a time). Random draws (infidelity's
subsets, max-sensitivity's noise) are seeded per example by the seed and the
example's token ids, so a number does not depend on which other examples are
evaluated with it.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tqdm
from lit_nlp.api import components as lit_components
from lit_nlp.api import model as lit_model
from lit_nlp.components import gradient_maps

from lit_plugins.faithfulness import metrics as core
from lit_plugins.faithfulness import plausibility, robustness, sanity
from lit_plugins.faithfulness.trust_result import (  # the API's names, re-exported
    LOWER_IS_BETTER as LOWER_IS_BETTER,
)
from lit_plugins.faithfulness.trust_result import METRICS as METRICS
from lit_plugins.faithfulness.trust_result import TrustResult, TrustSettings
from lit_plugins.hf import randomization
from lit_plugins.hf import robustness as hf_robustness
from lit_plugins.hf.perturb import PerturbationRunner
from lit_plugins.lit import alignment, specs
from lit_plugins.lit import salience_evaluation as evaluation
from lit_plugins.lit.interpreters import gradient_salience, integrated_gradients

JsonDict = specs.JsonDict
RANDOM = core.RANDOM
GRAD_CLASS = "grad_class"
SUBSET_PROBABILITY = 0.25  # infidelity: each non-special token replaced by the zero baseline
_PROGRESS_INTERVAL_S = 5.0

# Interpreters whose map is computed from the model's outputs on the example as
# given, token embeddings included (LIT's gradient maps and IG, ours).
EMBEDDING_READERS: tuple[type, ...] = (
    gradient_maps.GradientNorm,
    gradient_maps.GradientDotInput,
    gradient_maps.IntegratedGradients,
    gradient_salience.GradientNorm,
    gradient_salience.GradientDotInput,
    integrated_gradients.IntegratedGradients,
)


def reads_embeddings(interpreter: lit_components.Interpreter) -> bool:
    """True if the method's map is recomputed on perturbed ``token_embs``
    (max-sensitivity applies); False for methods that perturb words (LIME)."""
    return isinstance(interpreter, EMBEDDING_READERS)


# ------------------------------------------------------------- evaluation --
def example_seed(seed: int, input_ids: np.ndarray) -> list[int]:
    """A generator seed from the settings' seed and the example's ids, so an
    example gets the same draws in any batch (as `core.random_salience`)."""
    ids = np.asarray(input_ids, dtype=np.int64)
    return [int(seed) & 0xFFFFFFFF, zlib.crc32(ids.tobytes()), len(ids)]


def randomized_wrapper(raw, hf_model):
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


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(s, min(n, s + size)) for s in range(0, n, size)]


class _Progress(contextlib.AbstractContextManager):
    def __init__(self, total: int, progress: bool | str):
        self._bar = tqdm.tqdm(
            total=total,
            desc=progress if isinstance(progress, str) else "Trust checks",
            unit="ex",
            file=sys.stderr,
            mininterval=_PROGRESS_INTERVAL_S,
            disable=not progress,
        )

    def update(self, n: int) -> None:
        self._bar.update(n)

    def __exit__(self, *exc):
        self._bar.close()


def evaluate(
    model: lit_model.Model,
    dataset,
    methods: Sequence[str] | Mapping[str, lit_components.Interpreter] | None = None,
    *,
    interpreters: Mapping[str, lit_components.Interpreter] | None = None,
    settings: TrustSettings | None = None,
    chunk_size: int = 32,
    progress: bool | str = False,
    lit_dataset: Any = None,
) -> TrustResult:
    """The trust checks of `methods` (as `salience_evaluation.resolve_methods`)
    on the examples of `dataset` (a LIT dataset or a list of examples).

    A method that fails on the model is left out and named in `errors`; the
    others are still checked. `lit_dataset`: what the methods receive as
    their dataset (default `dataset` when it is a LIT dataset).
    """
    settings = settings or TrustSettings()
    examples = list(getattr(dataset, "examples", dataset) or [])
    if not examples:
        raise ValueError("Trust checks need at least one example.")
    raw = specs.hf_classifier(model)
    if raw is None or raw.is_regression:
        raise ValueError(
            "Trust checks need a classifier wrapped as HFSequenceClassifier "
            "(they randomize the HF model's weights)."
        )
    if lit_dataset is None and hasattr(dataset, "examples"):
        lit_dataset = dataset
    chosen = evaluation.resolve_methods(methods, model, lit_dataset, interpreters)
    chunk_size = max(1, int(chunk_size))
    parts = _chunks(len(examples), chunk_size)
    runner = PerturbationRunner(raw)

    # The explained class per example, and the examples pinned to it.
    encoded, tokens, pinned, targets = [], [], [], []
    for part in parts:
        chunk = examples[part]
        enc, prob_fn = runner.encode(chunk)
        probs = prob_fn(
            [
                core.render(i, e.input_ids, np.ones(e.input_ids.size, bool), "delete")
                for i, e in enumerate(enc)
            ]
        )
        for ex, e, p in zip(chunk, enc, probs):
            t = int(np.argmax(p)) if e.target is None else int(e.target)
            encoded.append(e)
            tokens.append(runner.tokens(e))
            pinned.append({**ex, GRAD_CLASS: raw.labels[t]})
            targets.append(raw.labels[t])
    special = [e.special for e in encoded]
    randoms = [core.random_salience(e, settings.seed) for e in encoded]
    errors: dict[str, str] = {}
    notes: dict[str, str] = {}

    def maps_on(target_model, live: Mapping[str, lit_components.Interpreter], bar):
        out: dict[str, list[np.ndarray]] = {name: [] for name in live}
        for part in parts:
            got = evaluation.run_methods(
                {k: v for k, v in live.items() if k not in errors},
                pinned[part],
                target_model,
                lit_dataset,
                tokens[part],
                None,
                errors,
            )
            for name, values in got.items():
                out[name] += values
            bar.update(part.stop - part.start)
        return {name: v for name, v in out.items() if name not in errors}

    steps = [s.name for s in randomization.randomization_steps(raw.model)]
    passes = 1 + len(steps) * (2 if settings.independent else 1)
    with _Progress(passes * len(examples), progress) as bar:
        original = maps_on(model, chosen, bar)
        cascade_maps: dict[str, dict[str, list]] = {name: {} for name in chosen}
        independent_maps: dict[str, dict[str, list]] = {name: {} for name in chosen}
        # Copied under the model's lock: a concurrent layer-IG request's forward
        # hook (installed under that lock) must not be copied along.
        with raw.inference_lock:
            work = copy.deepcopy(raw.model)
        for step, hf_model in randomization.cascading(work, seed=settings.seed, in_place=True):
            for name, values in maps_on(randomized_wrapper(raw, hf_model), chosen, bar).items():
                cascade_maps[name][step] = values
        if settings.independent:
            with raw.inference_lock:
                work = copy.deepcopy(raw.model)
            for step, hf_model in randomization.independent(
                work, seed=settings.seed, in_place=True
            ):
                wrapper = randomized_wrapper(raw, hf_model)
                for name, values in maps_on(wrapper, chosen, bar).items():
                    independent_maps[name][step] = values
    for name in errors:
        original.pop(name, None)
    original[RANDOM] = randoms
    names = list(original)
    cascade_maps[RANDOM] = dict.fromkeys(steps, randoms)
    independent_maps[RANDOM] = dict.fromkeys(steps, randoms)

    cascade = {m: sanity.step_correlations(original[m], cascade_maps[m], special) for m in names}
    independent = (
        {m: sanity.step_correlations(original[m], independent_maps[m], special) for m in names}
        if settings.independent
        else None
    )
    plaus, rationale_notes = _plausibility(raw, pinned, tokens, special, original, settings)
    infidelity = _infidelity(raw, pinned, encoded, original, settings, parts)
    sensitivity = None
    if settings.sensitivity_samples:
        readers = {m: chosen[m] for m in names if m in chosen and reads_embeddings(chosen[m])}
        for m in names:
            if m != RANDOM and m not in readers:
                notes[m] = "max-sensitivity n/a: the method perturbs words, not embeddings"
        sensitivity = _max_sensitivity(
            raw, readers, pinned, tokens, encoded, original, settings, parts, lit_dataset, errors
        )
        sensitivity[RANDOM] = np.zeros(len(examples))  # the same map on every input
    for name, message in errors.items():
        notes[name] = f"not checked (error: {message})"
        for table in (cascade, plaus, infidelity or {}, sensitivity or {}):
            table.pop(name, None)
        if independent is not None:
            independent.pop(name, None)
    names = [m for m in names if m not in errors]
    return TrustResult(
        methods=names,
        steps=steps,
        cascade=cascade,
        independent=independent,
        plausibility=plaus,
        infidelity=infidelity,
        sensitivity=sensitivity,
        rationale_notes=rationale_notes,
        targets=targets,
        notes=notes,
        errors=errors,
        settings=settings,
    )


# ----------------------------------------------------------------- checks --
def _plausibility(raw, pinned, tokens, special, maps, settings):
    text_field = raw.text_fields[0]
    field = settings.rationale_field
    masks, notes = [], []
    for ex, toks in zip(pinned, tokens):
        try:
            masks.append(alignment.rationale_pieces(raw, ex, text_field, toks, ex.get(field)))
            notes.append("" if masks[-1] is not None else f"no rationale in {field!r}")
        except ValueError as err:
            masks.append(None)
            notes.append(f"rationale: {err}")
    scores = {}
    for name, values in maps.items():
        scores[name] = []
        for v, m, s in zip(values, masks, special):
            scores[name].append(None if m is None or not m.any() else plausibility.score(v, m, s))
    return scores, notes


def _infidelity(raw, pinned, encoded, maps, settings, parts) -> dict[str, np.ndarray] | None:
    """Normalized infidelity of every map under random token subsets moved to
    the zero embedding, drawn per example (`example_seed`)."""
    if not settings.infidelity_samples:
        return None
    out: dict[str, list] = {name: [] for name in maps}
    for part in parts:
        batch = hf_robustness.embed(raw, pinned[part])
        n, t = batch.token_mask.shape
        pert = np.zeros((n, settings.infidelity_samples, t))
        for i, e in enumerate(encoded[part]):
            pos = batch.positions[i]
            draw = robustness.token_perturbations(
                (1, pos.size),
                settings.infidelity_samples,
                "subset",
                SUBSET_PROBABILITY,
                example_seed(settings.seed, e.input_ids),
                ~e.special[None, :],
            )
            pert[i][:, pos] = draw[0]
        forward = hf_robustness.forward_fn(raw, batch)
        for name, values in maps.items():
            out[name].append(
                robustness.infidelity(
                    forward,
                    batch.padded(values[part]),
                    pert,
                    batch.token_mask,
                    normalize=True,
                )
            )
    return {name: np.concatenate(v) for name, v in out.items()}


def _max_sensitivity(
    raw, readers, pinned, tokens, encoded, maps, settings, parts, lit_dataset, errors
) -> dict[str, np.ndarray]:
    """Max-sensitivity of every method in `readers`: its map recomputed through
    LIT on the example with ``token_embs`` = embeddings + noise (uniform in
    [−r, r] per coordinate of every non-special token), per example seeded."""
    samples, radius = settings.sensitivity_samples, settings.sensitivity_radius
    out: dict[str, list[float]] = {name: [] for name in readers}
    for part in parts:
        chunk, chunk_tokens = pinned[part], tokens[part]
        embs = [
            np.asarray(o["token_embs"], dtype=np.float64)
            for o in raw.predict(chunk, gradients=False)
        ]
        noise = []
        for e, x in zip(encoded[part], embs):
            keep = ~e.special
            noise.append(
                robustness.embedding_noise(
                    (1, *x.shape),
                    samples,
                    radius,
                    example_seed(settings.seed, e.input_ids),
                    keep[None, :],
                )[0]
            )
        perturbed = {name: [[] for _ in chunk] for name in readers}
        for j in range(samples):
            inputs = [
                {**ex, "token_embs": (x + d[j]).astype(np.float32)}
                for ex, x, d in zip(chunk, embs, noise)
            ]
            got = evaluation.run_methods(
                {k: v for k, v in readers.items() if k not in errors},
                inputs,
                raw,
                lit_dataset,
                chunk_tokens,
                None,
                errors,
            )
            for name, values in got.items():
                for i, v in enumerate(values):
                    perturbed[name][i].append(v)
        for name in readers:
            if name in errors:
                continue
            for i, e in enumerate(encoded[part]):
                keep = ~e.special
                original = np.asarray(maps[name][part.start + i])[None, :]
                moved = np.asarray(perturbed[name][i])[None, :, :]
                value = robustness.sensitivity_from_maps(original, moved, keep[None, :])
                out[name].append(float(value[0]))
    return {name: np.asarray(v) for name, v in out.items() if name not in errors}
