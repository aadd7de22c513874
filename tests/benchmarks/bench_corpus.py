"""Benchmark: the command line at corpus scale, 1 vs 2 processes, against the in-LIT path.

Run:  python -m tests.benchmarks.bench_corpus [--scale 10] [--attribute-examples 160]

Data: the bundled train + dev sentences (720) repeated `--scale` times
(7,200 at 10x) in a TSV; model: the fine-tuned MiniLM-L6 (its reference for
TX-Ray: the pre-trained MiniLM). Every run is a fresh process, so peak memory
(each rank prints its own peak resident set) is per process.

(a) `probe` (all 7 layers, mean pooling, the interpreter's defaults) on the
    whole corpus, 1 process and 2 processes (torchrun, gloo), against the
    in-LIT path: `LinearProbeInterpreter.fit` on the same examples in one
    process. Throughput = corpus examples / wall time of the command.
(b) `txray` (layer 6, max1) on the corpus, 1 and 2 processes.
(c) `attribute` (gradient norm + IG, 64 Gauss-Legendre nodes) on the first
    `--attribute-examples` examples, 1 and 2 processes.

On this 2-core CPU, 2 processes get 1 thread each and 1 process gets 2
threads (torch's default): the comparison is of the same cores used two
ways. With a GPU per process the ranks do not share compute.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

from tests.benchmarks import machine
from tests.kit import launch

_PEAK_RE = re.compile(r"rank (\d+) of (\d+): ([\d.]+) s, peak memory (\d+) MiB")

_IN_LIT = """
import resource, sys, time
from lit_plugins.data import loaders
from lit_plugins.lit import demo_models
from lit_plugins.lit.interpreters import linear_probe
start = time.time()
model = demo_models.finetuned_minilm(batch_size=32)
ds = loaders.load_table(sys.argv[1], {"sentence": "sentence"}, "label",
                        labels=list(model.labels))
state = linear_probe.LinearProbeInterpreter().fit(model, ds)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"in-LIT: {time.time() - start:.1f} s, peak memory {peak:.0f} MiB, "
      f"best layer {state.best_layer} {state.scores[state.best_layer]:.4f}")
"""


def _corpus(path: str, scale: int) -> int:
    from lit_plugins.data import loaders

    rows = []
    for split in ("train", "dev"):
        for ex in loaders.load_bundled_sentiment(split).examples:
            rows.append((ex["sentence"], ex["label"]))
    with open(path, "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for _ in range(scale):
            for sentence, label in rows:
                f.write(f"{sentence}\t{label}\n")
    return len(rows) * scale


def _run(args: list[str], env: dict) -> tuple[float, list[tuple[int, float]], str]:
    start = time.time()
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    wall = time.time() - start
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}")
    peaks = [(int(r), float(m)) for r, _, _, m in _PEAK_RE.findall(proc.stderr)]
    return wall, sorted(peaks), proc.stdout + proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--attribute-examples", type=int, default=160)
    ap.add_argument(
        "--skip", default="", help="comma-separated parts to skip: probe,txray,attribute"
    )
    args = ap.parse_args()
    machine.print_header(args)
    skip = set(filter(None, args.skip.split(",")))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "corpus.tsv")
        n = _corpus(data, args.scale)
        common = [f"--dataset={data}", "--labels=negative,positive", "--text_fields=sentence"]
        print(f"\nCorpus: bundled train + dev x {args.scale} = {n} sentences\n")
        print(
            "| command | processes | examples | wall time (s) | examples/s | peak memory per process (MiB) |"
        )
        print("|---|---:|---:|---:|---:|---|")
        if "probe" not in skip:
            wall, _, out = _run([sys.executable, "-c", _IN_LIT, data], env)
            peak = re.search(r"peak memory (\d+) MiB", out).group(1)
            print(
                f"| in-LIT `LinearProbeInterpreter.fit` | 1 | {n} | {wall:.1f} | {n / wall:.1f} | {peak} |"
            )
        parts = [
            ("probe", [], n),
            ("txray", ["--layer=6"], n),
            (
                "attribute",
                [
                    "--methods=grad_norm,integrated_gradients",
                    f"--max_examples={args.attribute_examples}",
                ],
                args.attribute_examples,
            ),
        ]
        for command, extra, count in parts:
            if command in skip:
                continue
            for world in (1, 2):
                out_dir = os.path.join(tmp, f"{command}-{world}")
                threads = {"OMP_NUM_THREADS": "1"} if world > 1 else {}
                wall, peaks, _ = _run(
                    [
                        *launch.lit_plugins_command(world),
                        command,
                        f"--output_dir={out_dir}",
                        *common,
                        *extra,
                    ],
                    {**env, **threads},
                )
                per_rank = ", ".join(f"{m:.0f}" for _, m in peaks)
                print(
                    f"| `{command}` | {world} | {count} | {wall:.1f} | {count / wall:.1f} | {per_rank} |",
                    flush=True,
                )
    print(
        "\nWall time includes starting Python and loading the models in every process "
        f"(load average at end: {os.getloadavg()[0]:.2f})."
    )


if __name__ == "__main__":
    main()
