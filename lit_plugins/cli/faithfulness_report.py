"""Salience faithfulness report: tables (CSV + Markdown) and deletion /
insertion curve plots (PNG) for every token-salience method on a model.

    python -m lit_plugins faithfulness --output_dir=docs/faithfulness --max_examples=100
    python -m lit_plugins faithfulness --output_dir=DIR --models=mine:/path/to/checkpoint \\
        --dataset=reviews.csv --text_fields=sentence=text --max_examples=200 --removal=mask

Models and data as every command takes them (`cli.model_data`: --models, --model,
--dataset, ...). Default: the demo's fine-tuned MiniLM on the bundled dev sentences,
every method of `faithfulness.default_methods()` (LIT's Grad L2 Norm, Grad ⋅
Input, Integrated Gradients, LIME and ours) plus the random baseline.

Writes to --output_dir:
  per_example.csv   one row per (example, method) (`faithfulness.evaluate`)
  summary.csv       per method × metric: mean, median, 95 % bootstrap interval
  summary.md        the ranking table (best comprehensiveness first) and settings
  deletion.png      mean deletion curves, one line per method, random dashed
  insertion.png     mean insertion curves, the same
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from absl import app

from lit_plugins.cli import flags as cli_flags
from lit_plugins.cli import model_data
from lit_plugins.faithfulness import metrics as core
from lit_plugins.lit import salience_evaluation as faithfulness
from lit_plugins.util import distributed

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


FLAGS_USED = (
    "output_dir",
    *model_data.REPORT_FLAGS,
    "salience_methods",
    "removal",
    "seed",
    "title",
)


def flags_used(command: str = "faithfulness") -> tuple[str, ...]:
    del command
    return FLAGS_USED


def main(argv: Sequence[str]) -> int:
    """``python -m lit_plugins faithfulness`` (flags already parsed; see `cli.main`)."""
    from lit_plugins.cli import corpus  # the model and data as the corpus commands load them

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {list(argv[1:])}")
    if not cli_flags.OUTPUT_DIR.value:
        raise app.UsageError("--output_dir is required.")
    comm = distributed.Comm.from_env()
    finished = False
    try:
        _, model = corpus.one_model(comm)
        examples = list(corpus.dataset_of(model).examples)
        start = time.time()
        result = faithfulness.evaluate_detailed(
            model,
            examples,
            cli_flags.SALIENCE_METHODS.value or None,
            removal=cli_flags.REMOVAL.value,
            seed=cli_flags.SEED.value,
            chunk_size=model_data.BATCH_SIZE.value,
            progress=True,
        )
        finished = True
    except ValueError as e:
        print(f"lit_plugins faithfulness: error: {e}", file=sys.stderr, flush=True)
        return 2
    finally:
        comm.close(wait_for_peers=finished)  # as the corpus commands (cli/corpus.py)
    title = cli_flags.TITLE.value or f"Salience faithfulness: {model.description()}"
    paths = write_report(result, cli_flags.OUTPUT_DIR.value, title)
    print(paths["summary_md"].read_text(encoding="utf-8"))
    print(f"({time.time() - start:.1f}s) wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
