"""Salience faithfulness report: tables (CSV + Markdown) and deletion /
insertion curve plots (PNG) for every token-salience method on a model.

    python -m lit_plugins.cli.faithfulness_report --out=docs/faithfulness
    python -m lit_plugins.cli.faithfulness_report --out=DIR --model=/path/to/checkpoint \\
        --dataset=reviews.csv --text_column=text --max_examples=200 --removal=mask

Default: the demo's fine-tuned MiniLM on the first 100 bundled dev sentences,
every method of `faithfulness.default_methods()` (LIT's Grad L2 Norm, Grad ⋅
Input, Integrated Gradients, LIME and ours) plus the random baseline.

Writes to --out:
  per_example.csv   one row per (example, method) (`faithfulness.evaluate`)
  summary.csv       per method × metric: mean, median, 95 % bootstrap interval
  summary.md        the ranking table (best comprehensiveness first) and settings
  deletion.png      mean deletion curves, one line per method, random dashed
  insertion.png     mean insertion curves, the same
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path

from lit_plugins.faithfulness import metrics as core
from lit_plugins.lit import salience_evaluation as faithfulness

REMOVAL_DOC = {
    "delete": "removed word pieces are deleted",
    "mask": "removed word pieces are replaced by the mask token",
    "pad": "removed word pieces are replaced by the pad token, attention masked",
}


def _new_fig(w, h):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def plot_curves(result: faithfulness.FaithfulnessResult, kind: str, path: Path, title: str = ""):
    """Mean `kind` ("deletion" / "insertion") curves, one line per method,
    the random baseline dashed in black (the floor)."""
    fig = _new_fig(7.5, 5)
    ax = fig.add_subplot(111)
    curves = result.mean_curves()
    table = result.table
    metric = f"{kind}_auc"
    for method in result.methods:
        x, y = curves[method][kind]
        auc = table.loc[table.method == method, metric].mean()
        style = dict(color="black", linestyle="--", linewidth=2) if method == core.RANDOM else {}
        ax.plot(x, y, label=f"{method} (AUC {auc:.3f})", **style)
    ax.set_xlabel(f"fraction of tokens {'removed' if kind == 'deletion' else 'inserted'}")
    ax.set_ylabel("probability of the explained class")
    better = "lower" if kind == "deletion" else "higher"
    ax.set_title(
        (f"{title}\n" if title else "") + f"{kind.capitalize()} curves ({better} area is better)",
        fontsize=10,
    )
    ax.set_xlim(0, 1)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def markdown(result: faithfulness.FaithfulnessResult, summary, title: str) -> str:
    ranked = faithfulness.ranking(summary)
    header = [
        "method",
        *(
            core.METRIC_LABELS[m] + (" ↑" if core.HIGHER_IS_BETTER[m] else " ↓")
            for m in core.METRICS
        ),
    ]
    lines = [
        f"# {title}",
        "",
        f"{result.table.example.nunique()} examples; mean [95 % bootstrap interval]; "
        "↑ higher is better, ↓ lower is better; best comprehensiveness first.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for _, row in ranked.iterrows():
        lines.append("| " + " | ".join([row["method"], *(row[m] for m in core.METRICS)]) + " |")
    opts = result.options
    lines += [
        "",
        f"Removal: `{opts.removal}` ({REMOVAL_DOC[opts.removal]}); AOPC k = "
        f"{', '.join(f'{p:g}' for p in opts.percentages)} % of the removable tokens; "
        f"rationale: {'positive attributions only' if opts.only_positive else 'top k'}; "
        "special tokens never removed; random baseline seed "
        f"{opts.seed}. Explained class: the model's prediction.",
        "",
    ]
    return "\n".join(lines)


def write_report(
    result: faithfulness.FaithfulnessResult, out: str | os.PathLike, title: str = ""
) -> dict[str, Path]:
    """Writes the files listed in the module docstring; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    title = title or "Salience faithfulness"
    summary = result.summary(seed=result.options.seed)
    paths = {
        "per_example": out / "per_example.csv",
        "summary_csv": out / "summary.csv",
        "summary_md": out / "summary.md",
        "deletion": out / "deletion.png",
        "insertion": out / "insertion.png",
    }
    result.table.to_csv(paths["per_example"], index=False)
    summary.to_csv(paths["summary_csv"], index=False)
    paths["summary_md"].write_text(markdown(result, summary, title), encoding="utf-8")
    plot_curves(result, "deletion", paths["deletion"], title)
    plot_curves(result, "insertion", paths["insertion"], title)
    return paths


def _load(args):
    from lit_plugins.data import loaders
    from lit_plugins.lit import demo_models
    from lit_plugins.lit.model import HFSequenceClassifier

    if args.model == "finetuned":
        model = demo_models.finetuned_minilm(batch_size=args.batch_size)
    else:
        labels = args.labels.split(",") if args.labels else None
        model = HFSequenceClassifier(
            args.model, labels=labels, text_fields=(args.text_field,), batch_size=args.batch_size
        )
    if args.dataset in ("dev", "train"):
        data = loaders.load_bundled_sentiment(args.dataset)
    else:
        data = loaders.load_table(
            args.dataset,
            {args.text_field: args.text_column},
            args.label_column or None,
            labels=model.labels,
        )
    examples = (
        list(data.examples)[: args.max_examples] if args.max_examples else list(data.examples)
    )
    return model, examples


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m lit_plugins.cli.faithfulness_report",
        description="Faithfulness of every token-salience method: CSV, Markdown and curve plots.",
    )
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument(
        "--model", default="finetuned", help="'finetuned' (the demo's MiniLM) or a checkpoint dir"
    )
    ap.add_argument("--labels", default="", help="class names for --model, comma-separated")
    ap.add_argument("--dataset", default="dev", help="'dev', 'train' (bundled) or a CSV/TSV/JSONL")
    ap.add_argument("--text_field", default="sentence", help="the model's text input field")
    ap.add_argument("--text_column", default="sentence", help="the file's text column")
    ap.add_argument("--label_column", default="label", help="the file's label column ('' = none)")
    ap.add_argument("--max_examples", type=int, default=100, help="first N examples (0 = all)")
    ap.add_argument(
        "--methods", default="", help="comma-separated method names (default: every method)"
    )
    ap.add_argument("--removal", choices=core.REMOVALS, default="delete")
    ap.add_argument("--seed", type=int, default=0, help="random baseline seed")
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--title", default="")
    args = ap.parse_args(argv)

    model, examples = _load(args)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] or None
    start = time.time()
    result = faithfulness.evaluate_detailed(
        model,
        examples,
        methods,
        removal=args.removal,
        seed=args.seed,
        chunk_size=args.batch_size,
        progress=True,
    )
    paths = write_report(
        result, args.out, args.title or f"Salience faithfulness: {model.description()}"
    )
    print(paths["summary_md"].read_text(encoding="utf-8"))
    print(f"({time.time() - start:.1f}s) wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
