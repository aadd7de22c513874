"""The served app on a whole dataset: time to the first data table, memory per
example, restart time, memory after explaining 100 examples — ours
(`BoundedLitApp`: light outputs kept, no gradients for the table, an output
store) against LIT's own `LitApp` (its caching wrapper keeps every output of a
predict with gradients), on the fine-tuned MiniLM.

  .venv/bin/python -m tests.benchmarks.bench_serving [--sizes 1000,10000] [--lit_max 10000]
      [--device auto|cpu|cuda]

Each measurement runs in a fresh process (the model loaded, the app built,
then the whole dataset's data-table request, as the UI sends it:
`/get_preds` with `requested_types=MulticlassPreds`); memory is the process's
resident set (VmRSS) after the request minus before it; then 100 examples are
explained (LIT's Grad L2 Norm) and the embeddings projector (LIT's PCA of the
pooled embedding) runs over every example. Examples are the
bundled sentences, each with its number appended, so every one is distinct.
"plain forward" is the same model's no-grad forward over the same texts, in
batches of the same size, in the dataset's order: the floor the table's
predictions are held to (at most 1.5x).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

BATCH = 32
EXPLAINED = 100


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _dataset(size: int):
    from lit_nlp.api import dataset as lit_dataset
    from lit_nlp.lib import caching

    from lit_plugins.data import loaders

    base = []
    for split in ("train", "dev"):
        base += [ex["sentence"] for ex in loaders.load_bundled_sentiment(split).examples]
    spec = loaders.load_bundled_sentiment("dev").spec()
    examples = [
        {"sentence": f"{base[i % len(base)]} ({i})", "label": "positive"} for i in range(size)
    ]
    return lit_dataset.IndexedDataset(
        base=lit_dataset.Dataset(spec=spec, examples=examples), id_fn=caching.input_hash
    )


def _child(mode: str, size: int, store_dir: str, device: str) -> dict:
    import torch
    from lit_nlp import app as lit_app
    from lit_nlp.components import gradient_maps, pca, projection

    from lit_plugins.app import bounded_cache
    from lit_plugins.lit import demo_models
    from tests.kit import lit_apps

    model = demo_models.finetuned_minilm(batch_size=BATCH, device=device)
    ds = _dataset(size)
    inputs = {"inputs": [{"id": ex["_id"], "data": ex} for ex in ds.examples]}
    if mode == "plain":
        texts = [ex["sentence"] for ex in ds.examples]
        start = time.perf_counter()
        with torch.no_grad():
            for i in range(0, size, BATCH):
                enc = model.tokenizer(
                    texts[i : i + BATCH],
                    padding=True,
                    truncation=True,
                    max_length=model.max_length,
                    return_tensors="pt",
                ).to(model.device)
                model.model(**enc)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        return {"table_s": time.perf_counter() - start}
    kw = dict(
        interpreters={
            "grad_norm": gradient_maps.GradientNorm(),
            "pca": projection.ProjectionManager(pca.PCAModel),
        },
        metrics={},
        client_root=lit_apps.CLIENT_ROOT,
    )
    if mode == "lit":
        app = lit_app.LitApp({"m": model}, {"d": ds}, **kw)
    else:
        app = bounded_cache.build({"m": model}, {"d": ds}, cache_dir=store_dir, **kw)
    before = _rss_mb()
    start = time.perf_counter()
    app._get_preds(inputs, model="m", requested_types="MulticlassPreds")
    table_s = time.perf_counter() - start
    after_table = _rss_mb()
    calls = app._models["m"].model_calls if mode != "lit" else None
    explained = {"inputs": inputs["inputs"][:EXPLAINED]}
    app._get_interpretations(explained, model="m", dataset_name="d", interpreter="grad_norm")
    rss_explained = _rss_mb() - before
    # The embeddings projector over the whole dataset (PCA of the pooled embedding).
    config = {"field_name": model.pooled_emb_field, "proj_kw": {"n_components": 3}}
    start = time.perf_counter()
    app._get_interpretations(
        {**inputs, "config": config}, model="m", dataset_name="d", interpreter="pca"
    )
    result = {
        "table_s": table_s,
        "rss_table_mb": after_table - before,
        "rss_explained_mb": rss_explained,
        "projection_s": time.perf_counter() - start,
    }
    if calls is not None:
        result["model_calls"] = calls
    return result


def _run(mode: str, size: int, store_dir: str, device: str) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.benchmarks.bench_serving",
            "--child",
            mode,
            "--sizes",
            str(size),
            "--store_dir",
            store_dir,
            "--device",
            device,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise SystemExit(f"{mode} at {size} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--lit_max", type=int, default=10000, help="largest size LIT's app runs")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--store_dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.child:
        print(json.dumps(_child(args.child, sizes[0], args.store_dir, args.device)))
        return
    from tests.benchmarks import machine

    machine.print_header(args)
    from lit_plugins.lit import demo_models

    print(f"Model: fine-tuned MiniLM-L6 ({machine.checkpoint(demo_models.finetuned_checkpoint())})")
    print(
        "| examples | app | first data table (s) | vs plain forward | memory per example (KB) "
        f"| memory after explaining {EXPLAINED} (MB) | projection of every example (s) "
        "| restart: table (s), model calls |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---|")
    for size in sizes:
        with tempfile.TemporaryDirectory() as store:
            plain = _run("plain", size, store, args.device)["table_s"]
            rows = [("lit-plugins BoundedLitApp", _run("ours", size, store, args.device))]
            restart = _run("ours", size, store, args.device)
            if size <= args.lit_max:
                rows.append(("LIT 1.3 LitApp", _run("lit", size, store, args.device)))
        print(f"| {size} | plain no-grad forward | {plain:.1f} | 1.00x | | | | |")
        for name, r in rows:
            again = (
                f"{restart['table_s']:.2f} s, {restart['model_calls']} calls"
                if name.startswith("lit-plugins")
                else "recomputes"
            )
            print(
                f"| {size} | {name} | {r['table_s']:.1f} | {r['table_s'] / plain:.2f}x "
                f"| {1024 * r['rss_table_mb'] / size:.1f} | {r['rss_explained_mb']:.0f} "
                f"| {r['projection_s']:.1f} | {again} |"
            )
        if size > args.lit_max:
            print(f"| {size} | LIT 1.3 LitApp | not run (--lit_max {args.lit_max}) | | | | | |")


if __name__ == "__main__":
    main()
