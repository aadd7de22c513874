"""`probe`: the linear-probe layer sweep on a corpus, data-parallel, loadable into LIT.

The same fit as the Linear Probe interpreter (its config parsing, its split,
its pooling and word alignment, its `LayerSweep`).  The probe rows (pooled
vectors per layer, never the corpus's token activations) are collected in
fixed shards of the split order (train examples, then held-out), written
atomically as ``shard-<hash>-k-of-n.rows.npz``; rank r collects the shards
k with k mod N = r, so a killed run resumes where it stopped and 1 and N
processes collect the same rows.  Then each rank loads the rows of its own
contiguous block of the train and held-out examples (memory per process:
its block's rows x hidden x layers), and the probes are trained full batch
with the loss and gradient summed over ranks (`probing.LayerSweep(comm=...)`),
so N ranks fit the probe one process fits.

Rank 0 writes to the output directory:

* ``sweep.npz``: every layer's probe (`probing.persistence`);
* ``probe.json``: the fit options, per-layer held-out scores, the best layer,
  sizes, timings, and per layer the NeuroX-style neuron ranking
  (`get_neuron_ordering`) and the top neurons per class holding
  ``--top_mass`` of the weight mass (`get_top_neurons`);
* ``COMPLETE`` after both: a rerun of the same command then does nothing.

``--probe_results=<dir>`` on the demo loads them into the Linear Probe
interpreter (`lit.saved_results.load_probe_results`): the UI then shows this fit, without refitting,
whenever its options match (see the README).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import model as lit_model

from lit_plugins import probing
from lit_plugins.cli import shards
from lit_plugins.lit import probe_inputs, specs
from lit_plugins.lit.interpreters import linear_probe
from lit_plugins.probing import persistence
from lit_plugins.util import distributed, run_files

ROWS_SUFFIX = ".rows.npz"  # the row shards' extension


def parse(
    model: lit_model.Model, dataset: lit_dataset.Dataset, settings: probing.ProbeSettings
) -> linear_probe.ProbeFitOptions:
    """The fit options for `settings` (a ValueError naming what is accepted), as the
    interpreter resolves them (`linear_probe.fit_options`)."""
    return linear_probe.fit_options(model, dataset, settings)


def run(
    model: lit_model.Model,
    model_name: str,
    dataset: lit_dataset.Dataset,
    opts: probing.ProbeSettings,
    out_dir: str,
    config: dict,
    shard_size: int = 0,
    batch_size: int = 32,
    comm: distributed.Comm = distributed.SINGLE,
    device: str | None = None,
) -> linear_probe.ProbeState:
    """Collects the probe rows shard by shard (resumable), fits the sweep
    over the ranks; rank 0 writes the results. Returns the state (every rank).

    `config` identifies the run (`shards.ShardPlan`); `shard_size` 0 = auto.
    """
    start = time.time()
    fit = parse(model, dataset, opts)
    examples = list(dataset.examples)
    if len(examples) < 2:
        raise ValueError(
            "Linear probing needs at least 2 examples (one to train on, one to score)."
        )
    labels = probe_inputs.collect_labels(examples, fit.label_field, fit.level, fit.task_type)
    strata = labels if (fit.level == "sentence" and fit.task_type == "classification") else None
    train_ex, held_ex = probing.train_held_out_split(
        len(examples), opts.held_out_fraction, opts.seed, strata
    )
    layers = "all" if fit.sweep else list(fit.layers)
    for part, indices in (("train", train_ex), ("held-out", held_ex)):
        if indices.size < comm.world_size:  # checked on every rank: none waits for another
            raise ValueError(
                f"{indices.size} {part} examples for {comm.world_size} processes; every "
                f"process needs at least one: use at most {indices.size} processes."
            )
    # Rows are collected in fixed shards of the split order (train, then
    # held-out): the unit of resuming, and the same batches whatever the
    # number of ranks.
    order = np.concatenate([train_ex, held_ex])
    plan = shards.ShardPlan(
        out_dir, config, order.size, shard_size or shards.auto_shard_size(order.size), ROWS_SUFFIX
    )
    plan.prepare(comm)
    for k, lo, hi, bar in plan.work("probe rows", comm):
        rows = _rows(model, examples, labels, order[lo:hi], fit, layers, batch_size)
        shards.atomic_write(plan.path(k), lambda tmp, r=rows: _save_rows(tmp, *r))
        bar.update(hi - lo)
    comm.barrier()
    missing = [k for k in range(plan.num_shards) if not plan.done(k)]
    if missing:
        raise ValueError(
            f"{len(missing)} probe row shard(s) missing after every rank's work (e.g. "
            f"{plan.path(missing[0])}); rerun the same command to resume."
        )
    # Each rank fits on its contiguous block of the train and held-out examples.
    parts = {}
    for part, offset, indices in (("train", 0, train_ex), ("held-out", train_ex.size, held_ex)):
        lo, hi = comm.block(len(indices))
        parts[part] = _load_rows(plan, offset + lo, offset + hi, fit.layers)
    (X_train, y_train), (X_held, y_held) = parts["train"], parts["held-out"]
    sweep = probing.LayerSweep(
        fit.task_type, lambda_l1=fit.l1, lambda_l2=fit.l2, device=device, comm=comm
    ).fit(X_train, y_train, X_held, y_held)
    num_rows = int(comm.sum_array(np.array([len(y_train) + len(y_held)], dtype=np.int64))[0])
    state = linear_probe.ProbeState.of_sweep(
        fit,
        sweep,
        num_train=int(train_ex.size),
        num_held_out=int(held_ex.size),
        num_items=num_rows,
        seconds=time.time() - start,
        model=specs.unwrap(model),
    )
    plan.finish(comm, then=lambda: _write(out_dir, model_name, fit, state, opts, comm.world_size))
    return state


def _rows(model, examples, labels, indices, fit, layers, batch_size):
    """({layer: [rows, H]}, labels [rows], rows per example) of examples `indices`."""
    subset = [examples[i] for i in indices]
    if fit.level == "sentence":
        vectors = probe_inputs.collect_pooled_activations(
            model, subset, layers, fit.pooling, batch_size
        )
        return vectors, labels[indices], np.ones(len(subset), dtype=np.int64)
    words = probe_inputs.collect_word_vectors(
        model,
        subset,
        [labels[i] for i in indices],
        fit.text_field,
        layers,
        fit.pooling,
        batch_size,
        label_field=fit.label_field,
    )
    counts = np.bincount(words.example, minlength=len(subset)).astype(np.int64)
    return words.vectors, words.tags, counts


def _save_rows(path, vectors, targets, counts) -> None:
    np.savez(
        path,
        targets=np.asarray(targets),
        counts=counts,
        **{f"layer_{l}": np.asarray(v, dtype=np.float32) for l, v in vectors.items()},
    )


def _load_rows(plan: shards.ShardPlan, lo: int, hi: int, layers) -> tuple[dict, np.ndarray]:
    """({layer: rows}, targets) of examples [lo, hi) of the split order, from the shards."""
    xs: dict[int, list[np.ndarray]] = {l: [] for l in layers}
    ys = []
    first, last = lo // plan.shard_size, (hi - 1) // plan.shard_size
    for k in range(first, last + 1):
        s0, _ = plan.bounds(k)
        with np.load(plan.path(k), allow_pickle=False) as z:
            ends = np.concatenate([[0], np.cumsum(z["counts"])])
            a, b = ends[max(lo, s0) - s0], ends[min(hi, s0 + z["counts"].size) - s0]
            ys.append(z["targets"][a:b])
            for l in layers:
                xs[l].append(z[f"layer_{l}"][a:b])
    return {l: np.concatenate(v) for l, v in xs.items()}, np.concatenate(ys)


def _write(out_dir, model_name, fit, state, opts, world_size) -> None:
    shards.check_writable(out_dir)
    shards.atomic_write(
        os.path.join(out_dir, run_files.SWEEP_FILE),
        lambda tmp: persistence.save_sweep(tmp, state.sweep),
    )
    rankings = {}
    for l in state.layers:
        probe = state.sweep.probes_[l]
        ordering, cutoffs = probing.get_neuron_ordering(probe, probe.class_to_idx_)
        _, per_class = probing.get_top_neurons(probe, opts.top_mass, probe.class_to_idx_)
        rankings[str(l)] = {
            "ordering": [int(i) for i in ordering],
            "cutoffs": [int(c) for c in cutoffs],
            "top_neurons": {str(c): [int(i) for i in v] for c, v in per_class.items()},
        }
    results = {
        "format": run_files.PROBE_FORMAT,
        "model": model_name,
        "fit_options": dataclasses.asdict(fit),
        "run_options": dataclasses.asdict(opts),
        "metric": state.metric,
        "scores": {str(l): float(s) for l, s in state.scores.items()},
        "best_layer": state.best_layer,
        "num_train_examples": state.num_train,
        "num_held_out_examples": state.num_held_out,
        "num_rows": state.num_items,
        "processes": world_size,
        "seconds": state.seconds,
        "neurons": rankings,
    }
    shards.write_json(
        os.path.join(out_dir, run_files.RESULTS_FILE), json.loads(json.dumps(results))
    )
