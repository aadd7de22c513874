"""Results of the corpus commands (`python -m lit_plugins probe|txray|attribute`) as
the LIT interpreters preload them: their loaders (the file names both sides agree
on are in `util.run_files`)."""

from __future__ import annotations

import glob
import json
import os

import pandas as pd

from lit_plugins import txray
from lit_plugins.lit.interpreters import linear_probe
from lit_plugins.lit.interpreters.precomputed import AttributionRun
from lit_plugins.probing import persistence
from lit_plugins.util.run_files import (  # re-exported: the names both sides agree on
    ATTRIBUTE_SHARDS,
    MODEL_FILE,
    PROBE_FORMAT,
    REFERENCE_FILE,
    RESULTS_FILE,
    RUN_MANIFEST,
    SWEEP_FILE,
)


def load_probe_results(
    out_dir: str,
) -> tuple[str, linear_probe.ProbeFitOptions, linear_probe.ProbeState]:
    """(model name, fit options, state) of a finished `probe` run, for the interpreter."""
    path = os.path.join(out_dir, RESULTS_FILE)
    if not os.path.exists(path) or not os.path.exists(os.path.join(out_dir, SWEEP_FILE)):
        raise ValueError(
            f"{out_dir!r} holds no finished probe run ({RESULTS_FILE} and {SWEEP_FILE}); run "
            "`python -m lit_plugins probe --output_dir=...` first."
        )
    with open(path, encoding="utf-8") as f:
        results = json.load(f)
    if results.get("format") != PROBE_FORMAT:
        raise ValueError(f"{path}: not a {PROBE_FORMAT} file.")
    fo = dict(results["fit_options"])
    fo["layers"] = tuple(fo["layers"])
    fit = linear_probe.ProbeFitOptions(**fo)
    sweep = persistence.load_sweep(os.path.join(out_dir, SWEEP_FILE))
    state = linear_probe.ProbeState.of_sweep(
        fit,
        sweep,
        best_layer=int(results["best_layer"]),
        num_train=int(results["num_train_examples"]),
        num_held_out=int(results["num_held_out_examples"]),
        num_items=int(results["num_rows"]),
        seconds=float(results["seconds"]),
    )
    return results["model"], fit, state


def load_txray_results(out_dir: str) -> dict:
    """The whole-corpus results of a finished run: aggregations, vocab and metadata.

    Returns {"reference": agg, "model": agg, "feature_names": [...],
    "meta": {...}} (what the TX-Ray interpreter preloads).
    """
    paths = [os.path.join(out_dir, f) for f in (REFERENCE_FILE, MODEL_FILE)]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise ValueError(
            f"{out_dir!r} holds no finished TX-Ray run ({os.path.basename(missing[0])} is "
            "missing); run `python -m lit_plugins txray --output_dir=...` to the end first."
        )
    agg_ref, names_ref, meta = txray.NeuronFeatureAggregator.load(paths[0])
    agg_model, names, _ = txray.NeuronFeatureAggregator.load(paths[1])
    return {
        "reference": agg_ref,
        "model": agg_model,
        "feature_names": names or names_ref,
        "meta": meta,
    }


def load_attribution_results(out_dir: str) -> AttributionRun:
    """The rows an `attribute` run wrote to `out_dir`, with its model and settings."""
    manifest_path = os.path.join(out_dir, RUN_MANIFEST)
    try:
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
        config = manifest["config"]
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(
            f"{out_dir!r} holds no lit-plugins run ({RUN_MANIFEST} missing or unreadable: {e}); "
            "run `python -m lit_plugins attribute --output_dir=...` first."
        ) from e
    if config.get("command") != "attribute":
        raise ValueError(
            f"{out_dir!r} holds a {config.get('command')!r} run, not an `attribute` run."
        )
    paths = sorted(glob.glob(os.path.join(out_dir, ATTRIBUTE_SHARDS)))
    if not paths:
        raise ValueError(f"{out_dir!r} holds no attribution rows yet (no {ATTRIBUTE_SHARDS}).")
    rows = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    # --text_fields entries are "LIT field=source column"; the rows hold the LIT fields.
    text_fields = tuple(str(t).split("=", 1)[0] for t in config.get("text_fields") or ())
    if not text_fields or any(f not in rows.columns for f in text_fields):
        raise ValueError(
            f"{out_dir!r}: the rows lack the text fields {list(text_fields)} they were "
            "computed from; rerun `attribute` with this version."
        )
    checkpoints = config.get("checkpoints") or {}
    return AttributionRun(
        out_dir=out_dir,
        model=str(config.get("model") or ""),
        checkpoint=str((checkpoints.get("model") or {}).get("digest", "")),
        text_fields=text_fields,
        num_items=int(manifest.get("num_items", len(rows))),
        rows=rows.sort_values("example", ignore_index=True),
    )
