"""ferret's faithfulness evaluators, one example at a time, on token ids.

Written from ferret-xai 0.4.2's source (`ferret/evaluators/
faithfulness_measures.py`, `utils_from_soft_to_discrete.py`,
`model_utils.ModelHelper._forward`); ferret itself does not import here
without its dependencies (seaborn, ...). Defaults as ferret's
`parse_evaluator_args`: remove_first_last=True, only_pos=True,
removal_args = {remove_tokens: True, based_on: "perc", thresholds:
np.arange(0.1, 1.1, 0.1)}. The only change: ferret decodes each perturbed id
sequence to text and tokenises it again; here the ids (with the first and
last special token put back, as the tokenizer would) go to the model as they
are, so both sides see the same inputs. Also ferret's procedure: every
evaluator runs f(x) itself (batch of 1) and its perturbations in chunks of 8
(`np.array_split` into ceil(n / 8) parts), one example and one method at a
time.

`run(list of id arrays) -> probabilities [n, classes]` is one forward pass.
"""

from __future__ import annotations

import copy
import math
from statistics import mean

import numpy as np
from scipy.stats import kendalltau

THRESHOLDS = np.arange(0.1, 1.1, 0.1)
FERRET_BATCH = 8


def forward(run, seqs, batch_size=FERRET_BATCH):
    """ModelHelper._forward: ceil(n / 8) near-equal batches."""
    n_batches = math.ceil(len(seqs) / batch_size)
    parts = np.array_split(np.arange(len(seqs)), n_batches)
    return np.concatenate([run([seqs[i] for i in part]) for part in parts])


def _top_k(scores, k, only_pos=True):
    if only_pos:
        return [i for i in np.array(scores).argsort()[-k:][::-1] if scores[i] > 0]
    return np.array(scores).argsort()[-k:][::-1]


def _percentage(scores, percentage, only_pos=True):
    v = int(percentage * len(scores))
    if v > 0 and v <= len(scores):
        return _top_k(scores, v, only_pos=only_pos)
    return None


def _rationales(scores, thresholds, only_pos):
    last, out = None, []
    for v in thresholds:
        id_top = _percentage(scores, v, only_pos)
        if id_top is not None and last is not None and set(id_top) == last:
            id_top = None
        if id_top is None:
            continue
        last = set(id_top)
        out.append(id_top)
    return out


def _wrap(ids, middle):
    return np.concatenate([[ids[0]], np.asarray(middle, dtype=np.int64), [ids[-1]]])


def aopc_comprehensiveness(
    run, ids, scores, target, only_pos=True, remove_tokens=True, mask_id=None, thresholds=THRESHOLDS
):
    ids = np.asarray(ids, dtype=np.int64)
    baseline = run([ids])[0, target]
    input_ids, scores = ids[1:-1], np.asarray(scores)[1:-1]
    samples = []
    for id_top in _rationales(scores, thresholds, only_pos):
        sample = np.array(copy.copy(input_ids))
        if remove_tokens:
            kept = np.delete(sample, id_top)
        else:
            sample[id_top] = mask_id
            kept = sample
        samples.append(_wrap(ids, kept))
    if not samples:
        return 0.0
    probs = forward(run, samples)[:, target]
    return float(mean(baseline - probs))


def aopc_sufficiency(
    run, ids, scores, target, only_pos=True, remove_tokens=True, mask_id=None, thresholds=THRESHOLDS
):
    ids = np.asarray(ids, dtype=np.int64)
    baseline = run([ids])[0, target]
    input_ids, scores = ids[1:-1], np.asarray(scores)[1:-1]
    samples = []
    for id_top in _rationales(scores, thresholds, only_pos):
        sample = np.array(copy.copy(input_ids))
        id_top = np.sort(np.asarray(id_top, dtype=np.int64))
        if remove_tokens:
            kept = sample[id_top]
        else:  # ferret as written: the rationale is masked (not its complement)
            sample[id_top] = mask_id
            kept = sample
        samples.append(_wrap(ids, kept))
    if not samples:
        return 1.0
    probs = forward(run, samples)[:, target]
    return float(mean(baseline - probs))


def tau_loo(run, ids, scores, target):
    ids = np.asarray(ids, dtype=np.int64)
    baseline = run([ids])[0, target]
    input_ids = list(ids[1:-1])
    samples = []
    for occ in range(len(input_ids)):
        sample = copy.copy(input_ids)
        sample.pop(occ)
        samples.append(_wrap(ids, sample))
    loo = (forward(run, samples)[:, target] - baseline) * -1
    return float(kendalltau(loo, np.asarray(scores)[1:-1])[0])
