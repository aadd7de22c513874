"""Faithfulness of token-salience maps: erase what a map calls important and
see whether the model's prediction moves (LIT-free: numpy and scipy).

For one example, a signed salience vector s over its word pieces and the
probability f of the class being explained (the predicted class unless a
target is given):

* **Comprehensiveness** (AOPC; DeYoung et al. 2020, ERASER; ferret's
  ``AOPC_Comprehensiveness_Evaluation``): mean over k = 10 %, 20 %, …, 100 %
  of f(x) − f(x without its top-k % most salient tokens). Higher is better.
* **Sufficiency** (AOPC; ferret's ``AOPC_Sufficiency_Evaluation``): mean of
  f(x) − f(only the top-k % tokens kept). Lower is better.
* **Deletion / insertion curves** (Petsiuk et al. 2018, RISE): f as tokens are
  removed from x (deletion) or added to the empty input (insertion), most
  salient first, against the fraction of tokens removed / added; the area
  under each curve (trapezoid rule on [0, 1]). Deletion AUC: lower is better;
  insertion AUC: higher is better.
* **τ-LOO** (ferret's ``TauLOO_Evaluation``): Kendall's τ-b between s and the
  leave-one-out drop f(x) − f(x without token i). Higher is better.

The rationale at k % follows ferret's defaults (``based_on="perc"``,
``only_pos=True``, ``remove_first_last=True``): k tokens = ⌊k·m/100⌋ of the m
removable tokens; k = 0 is skipped; with `only_positive` only tokens with
s > 0 count (so the rationale may be smaller than k); a rationale equal to the
previous one is skipped; special tokens ([CLS], [SEP], <s>, …, the ones the
tokenizer adds) are never removed, kept or ranked.

Where this differs from ferret (all documented choices, tested):

* **Ties**: ferret takes ``argsort`` order, so which of two equally salient
  tokens is removed first depends on their positions. Here the top-k % set is
  extended to the whole group of tokens tied with the k-th one, so the numbers
  depend only on the scores, not on the order of equal scores. Without ties
  the two are identical. (Word-level maps such as LIME's, spread over their
  word pieces, are ties: a word's pieces are removed together.)
* **No positive token** (e.g. an all-zero map): comprehensiveness 0 (nothing
  removed; ferret: 0) and sufficiency f(x) − f(∅) (the empty rationale keeps
  nothing; ferret returns the sentinel 1 when no threshold gives a rationale,
  and f(x) − f(∅) when one does). No removable token at all: both 0.
* **τ undefined** (fewer than two removable tokens, or a constant map or
  leave-one-out vector): τ = 0, "no rank agreement" (scipy/ferret: NaN).
* **Token ids, not text**: ferret decodes each perturbed id sequence to text
  and tokenises it again, which can re-split pieces (``"##ing"`` at the start
  of a text is not the piece ``##ing``); here the perturbed ids go to the model
  as they are.

Removal (`removal`): ``"delete"`` drops the pieces (ferret's default
``remove_tokens=True``, ERASER), ``"mask"`` replaces them by the mask token
(ferret's ``remove_tokens=False``), ``"pad"`` by the pad token with attention
masked out (the other tokens keep their positions, except in models that
derive positions from non-pad ids, e.g. RoBERTa). Every result records which.
Leave-one-out and the curves use the same removal.

Speed: all perturbations of all examples and methods are collected first,
duplicates (the same example with the same tokens present) are evaluated once
(f(x), the empty input and leave-one-out are shared by every method; the
comprehensiveness and sufficiency rationales are points of the deletion and
insertion curves), and the distinct rows go through `prob_fn` sorted by
length, in chunks of at most `batch_size` rows and `max_batch_tokens` tokens
(`lit_plugins.hf.perturb.PerturbationRunner.options` uses 32 rows on a CPU, 512 on
a GPU).
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from lit_plugins.faithfulness.perturbed_inputs import (
    REMOVALS as REMOVALS,  # callers read the removals here, beside the options
)
from lit_plugins.faithfulness.perturbed_inputs import (
    PerturbationPlan,
    ProbFn,
    TokenizedExample,
    check_example,
    check_removal,
    evaluate_rows,
    render,
)

DEFAULT_PERCENTAGES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
RANDOM = "random"  # the random-salience baseline's method name
METRICS = ("comprehensiveness", "sufficiency", "deletion_auc", "insertion_auc", "tau_loo")
HIGHER_IS_BETTER = {
    "comprehensiveness": True,
    "sufficiency": False,
    "deletion_auc": False,
    "insertion_auc": True,
    "tau_loo": True,
}
METRIC_LABELS = {
    "comprehensiveness": "comprehensiveness",
    "sufficiency": "sufficiency",
    "deletion_auc": "deletion AUC",
    "insertion_auc": "insertion AUC",
    "tau_loo": "τ-LOO",
}


@dataclasses.dataclass(frozen=True)
class FaithfulnessOptions:
    removal: str = "delete"
    percentages: tuple[float, ...] = DEFAULT_PERCENTAGES
    only_positive: bool = True
    curves: bool = True  # deletion / insertion curves and AUCs
    loo: bool = True  # τ-LOO
    mask_id: int | None = None  # needed for removal="mask"
    pad_id: int | None = None  # needed for removal="pad"
    random_baseline: bool = True
    seed: int = 0
    # Rows per prob_fn call: on a CPU 16-32 rows run fastest per row (measured
    # on MiniLM: 128+ rows are ~25 % slower); raise it on a GPU.
    batch_size: int = 32
    max_batch_tokens: int = 16384  # rows × longest row per prob_fn call

    def __post_init__(self):
        check_removal(self.removal, self.mask_id, self.pad_id)
        object.__setattr__(self, "percentages", check_percentages(self.percentages))
        if int(self.batch_size) < 1 or int(self.max_batch_tokens) < 1:
            raise ValueError("batch_size and max_batch_tokens must be >= 1.")


@dataclasses.dataclass
class ExampleScores:
    """The scores of one salience map on one example."""

    comprehensiveness: float
    sufficiency: float
    deletion_auc: float  # NaN when curves were not asked for
    insertion_auc: float
    tau_loo: float  # NaN when τ-LOO was not asked for; 0 when undefined
    target: int
    full_prob: float  # f(x)
    empty_prob: float  # f(x with every removable token removed)
    num_tokens: int  # removable tokens m
    num_rationales: int  # distinct rationales in the AOPC averages
    removal: str
    deletion_curve: tuple[np.ndarray, np.ndarray] | None = None  # (fraction removed, f)
    insertion_curve: tuple[np.ndarray, np.ndarray] | None = None  # (fraction added, f)

    def metrics(self) -> dict[str, float]:
        return {m: float(getattr(self, m)) for m in METRICS}


def check_percentages(percentages: Sequence[float]) -> tuple[float, ...]:
    """Sorted, de-duplicated percentages, each in (0, 100]; else ValueError."""
    try:
        values = [float(p) for p in percentages]
    except (TypeError, ValueError):
        raise ValueError(f"percentages must be numbers in (0, 100], got {percentages!r}.") from None
    bad = [p for p in values if not (0 < p <= 100)]  # also rejects NaN
    if not values or bad:
        raise ValueError(
            f"percentages must be a non-empty list of numbers in (0, 100], got {list(percentages)!r}."
        )
    return tuple(sorted(set(values)))


def random_salience(example: TokenizedExample, seed: int = 0) -> np.ndarray:
    """The random baseline's map: standard normal scores, seeded by `seed` and
    the example's ids (so an example gets the same map in any batch)."""
    ids = np.asarray(example.input_ids, dtype=np.int64)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(ids.tobytes()), len(ids)])
    return rng.standard_normal(len(ids))


# ------------------------------------------------------------ rationales --
def rank_groups(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, group_ends) of removable tokens' scores: `order` sorts them most
    salient first; group_ends[j] = the number of tokens in the first j + 1
    groups of equal scores. Prefixes order[:e] for e in group_ends are the
    rankings' only order-independent cut points."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    change = np.flatnonzero(sorted_scores[1:] != sorted_scores[:-1]) + 1
    ends = np.append(change, scores.size).astype(np.int64)
    return order, ends


def aopc_prefixes(
    scores: np.ndarray, percentages: Sequence[float], only_positive: bool = True
) -> list[int]:
    """The distinct rationale sizes e (rationale = the e most salient
    removable tokens) over `percentages`, in ferret's order and skipping
    rules, extended over ties (see the module docstring)."""
    scores = np.asarray(scores, dtype=np.float64)
    m = scores.size
    _, ends = rank_groups(scores)
    n_pos = int(np.sum(scores > 0))
    sizes: list[int] = []
    for p in percentages:
        k = math.floor(p * m / 100)
        if k <= 0:
            continue
        e = int(ends[np.searchsorted(ends, k)])  # the tie group holding the k-th token
        if only_positive:
            e = min(e, n_pos)  # positives come first; n_pos is a group end
        if sizes and sizes[-1] == e:
            continue  # ferret: a rationale equal to the previous one is skipped
        sizes.append(e)
    return sizes


# --------------------------------------------------------------- scoring --
def _check_salience(name: str, i: int, salience, n: int) -> np.ndarray:
    values = np.asarray(salience, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(
            f"Salience of {name!r} for example {i} must be a non-empty vector, "
            f"got shape {values.shape}."
        )
    if values.size != n:
        raise ValueError(
            f"Salience of {name!r} for example {i} has {values.size} values but the "
            f"example has {n} tokens (special tokens included)."
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"Salience of {name!r} for example {i} has NaN or infinite values.")
    return values


def _auc(y: np.ndarray, ends: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, float]:
    if m == 0:
        x = np.array([0.0, 1.0])
        y = np.array([y[0], y[0]])
    else:
        x = np.concatenate([[0.0], ends / m])
    return x, y, float(np.trapz(y, x))


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's τ-b (scipy), 0 where undefined (fewer than 2 values or a
    constant vector)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0
    tau = stats.kendalltau(a, b).statistic
    return float(tau) if np.isfinite(tau) else 0.0


def score(
    examples: Sequence[TokenizedExample],
    saliences: Mapping[str, Sequence[np.ndarray]],
    prob_fn: ProbFn,
    options: FaithfulnessOptions | None = None,
    **kw,
) -> list[dict[str, ExampleScores]]:
    """Faithfulness of every method's map on every example, in one batched pass.

    Args:
      examples: the inputs as token ids with their special-token masks.
      saliences: {method: one signed salience vector per example, over all
        its tokens (special tokens included, their values are ignored)}.
      prob_fn: runs perturbed inputs, returns class probabilities.
      options: a `FaithfulnessOptions`, or its fields as keywords.

    Returns:
      One {method: ExampleScores} per example; with `random_baseline` the
      method `RANDOM` (seeded random maps) comes last.
    """
    if options is None:
        options = FaithfulnessOptions(**kw)
    elif kw:
        options = dataclasses.replace(options, **kw)
    checked = [check_example(i, ex) for i, ex in enumerate(examples)]
    maps: dict[str, list[np.ndarray]] = {}
    for name, values in saliences.items():
        values = list(values)
        if len(values) != len(examples):
            raise ValueError(
                f"Method {name!r} has {len(values)} salience maps for {len(examples)} examples."
            )
        maps[str(name)] = [
            _check_salience(name, i, v, ids.size)
            for i, (v, (ids, _)) in enumerate(zip(values, checked))
        ]
    if options.random_baseline:
        if RANDOM in maps:
            raise ValueError(f"Method name {RANDOM!r} is reserved for the random baseline.")
        maps[RANDOM] = [random_salience(ex, options.seed) for ex in examples]

    plan = PerturbationPlan()
    layouts = []  # per example: the row indices each metric reads
    for i, (ids, special) in enumerate(checked):
        cand = np.flatnonzero(~special)
        m = cand.size
        full = np.ones(ids.size, dtype=bool)
        lay = {"full": plan.add(i, full), "empty": plan.add(i, special.copy()), "cand": cand}
        if options.loo:
            loo_rows = []
            for c in cand:
                present = full.copy()
                present[c] = False
                loo_rows.append(plan.add(i, present))
            lay["loo"] = loo_rows
        per_method = {}
        for name, vals in maps.items():
            sc = vals[i][cand]
            order, ends = rank_groups(sc)
            sizes = aopc_prefixes(sc, options.percentages, options.only_positive)
            need = set(sizes)
            if options.curves:
                need |= set(ends.tolist())
            del_rows, ins_rows = {}, {}
            for e in sorted(need | {0}):
                top = cand[order[:e]]
                present = full.copy()
                present[top] = False
                del_rows[e] = plan.add(i, present)
                present = special.copy()
                present[top] = True
                ins_rows[e] = plan.add(i, present)
            per_method[name] = (sc, ends, sizes, del_rows, ins_rows)
        lay["methods"] = per_method
        layouts.append(lay)

    rows = [
        render(i, checked[i][0], present, options.removal, options.mask_id, options.pad_id)
        for i, present in plan.masks
    ]
    probs = evaluate_rows(rows, prob_fn, options.batch_size, options.max_batch_tokens)

    results = []
    for i, (ex, lay) in enumerate(zip(examples, layouts)):
        full_p = probs[lay["full"]]
        target = int(np.argmax(full_p)) if ex.target is None else int(ex.target)
        if not 0 <= target < full_p.size:
            raise ValueError(f"Example {i}: target {target} outside 0..{full_p.size - 1}.")
        f = probs[:, target]
        fx, f_empty = float(full_p[target]), float(f[lay["empty"]])
        m = lay["cand"].size
        drops = fx - f[lay["loo"]] if options.loo else None
        out = {}
        for name, (sc, ends, sizes, del_rows, ins_rows) in lay["methods"].items():
            if sizes:
                comp = float(np.mean([fx - f[del_rows[e]] for e in sizes]))
                suff = float(np.mean([fx - f[ins_rows[e]] for e in sizes]))
            else:  # no removable token: nothing to remove, nothing to keep
                comp = suff = 0.0
            del_curve = ins_curve = None
            del_auc = ins_auc = float("nan")
            if options.curves:
                points = np.concatenate([[0], ends]).astype(np.int64)
                x, y, del_auc = _auc(np.array([f[del_rows[e]] for e in points]), ends, m)
                del_curve = (x, y)
                x, y, ins_auc = _auc(np.array([f[ins_rows[e]] for e in points]), ends, m)
                ins_curve = (x, y)
            tau = kendall_tau(sc, drops) if options.loo else float("nan")
            out[name] = ExampleScores(
                comprehensiveness=comp,
                sufficiency=suff,
                deletion_auc=del_auc,
                insertion_auc=ins_auc,
                tau_loo=tau,
                target=target,
                full_prob=fx,
                empty_prob=f_empty,
                num_tokens=m,
                num_rationales=len(sizes),
                removal=options.removal,
                deletion_curve=del_curve,
                insertion_curve=ins_curve,
            )
        results.append(out)
    return results


def leave_one_out(
    example: TokenizedExample, prob_fn: ProbFn, options: FaithfulnessOptions | None = None
) -> np.ndarray:
    """f(x) − f(x without token i) for each removable token (the τ-LOO reference)."""
    options = options or FaithfulnessOptions()
    ids, special = check_example(0, example)
    cand = np.flatnonzero(~special)
    full = np.ones(ids.size, dtype=bool)
    masks = [full]
    for c in cand:
        present = full.copy()
        present[c] = False
        masks.append(present)
    rows = [render(0, ids, p, options.removal, options.mask_id, options.pad_id) for p in masks]
    probs = evaluate_rows(rows, prob_fn, options.batch_size, options.max_batch_tokens)
    target = int(np.argmax(probs[0])) if example.target is None else int(example.target)
    return probs[0, target] - probs[1:, target]
