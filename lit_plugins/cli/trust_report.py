"""Trust checks report: per salience method the randomization sanity check,
max-sensitivity, infidelity and plausibility against human rationales, as
tables (CSV + Markdown) and plots (PNG).

    python -m lit_plugins trust-report --output_dir=docs/trust --max_examples=60
    python -m lit_plugins trust-report --output_dir=DIR --models=mine:/path/to/checkpoint \\
        --dataset=reviews.csv --text_fields=sentence=text --rationale_column=evidence \\
        --salience_methods="Grad L2 Norm,LIME" --independent

Models and data as every command takes them (`cli.model_data`: --models, --model,
--dataset, --rationale_column, ...). Default: the demo's fine-tuned MiniLM on the
bundled dev sentences (whose ``rationale`` column holds evidence words), every
method of `lit.methods.default_methods` that fits the model (LIT's Grad L2 Norm,
Grad ⋅ Input, Integrated Gradients, LIME and ours) plus the random baseline. The
methods are named by display name with --salience_methods, as in the
``faithfulness`` command (--methods is the ``attribute`` command's short names).
One flag per `TrustSettings` field: --seed, --sanity_threshold (``threshold``:
--threshold is already the multi-label models' decision threshold),
--rationale_field, --infidelity_samples, --sensitivity_samples,
--sensitivity_radius, --independent.

Single process: unlike the corpus commands there is no torchrun / data-parallel
mode (a launch with WORLD_SIZE > 1 is refused) and no resuming.

Writes to --output_dir (`write_report`):
  per_example.csv    one row per (example, method): `TrustResult.table`
  summary.csv        per method × metric: mean, median, 95 % bootstrap interval
  summary.md         per method the verdict and every metric, settings, command
  randomization.png  mean ρ of |scores| and of scores against the steps
                     randomized from the top, one line per method
  independent.png    the same, one step randomized at a time (--independent)
  sensitivity.png    per method the distribution of max-sensitivity
  plausibility.png   token F1, IOU-F1 and AUPRC per method with their intervals
                     (not written, and summary.md says so, when no example has
                     a rationale)
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from absl import flags

from lit_plugins.cli import flags as cli_flags
from lit_plugins.cli import model_data
from lit_plugins.faithfulness import plausibility
from lit_plugins.lit import trust_evaluation as trust

COMMAND = "trust-report"
PROG = f"python -m lit_plugins {COMMAND}"
_DEFAULTS = trust.TrustSettings()

# One flag per TrustSettings field (--seed is shared with the other commands).
SANITY_THRESHOLD = flags.DEFINE_float(
    "sanity_threshold",
    _DEFAULTS.threshold,
    "trust-report: a method passes the randomization check when, with every parameter "
    "randomized, its mean ρ of the scores and of |scores| are both below this.",
)
RATIONALE_FIELD = flags.DEFINE_string(
    "rationale_field",
    _DEFAULTS.rationale_field,
    "trust-report: the example field with the human rationale (--rationale_column "
    "and the bundled dev sentences fill 'rationale').",
)
INFIDELITY_SAMPLES = flags.DEFINE_integer(
    "infidelity_samples",
    _DEFAULTS.infidelity_samples,
    "trust-report: random token subsets per example for infidelity (0: off).",
)
SENSITIVITY_SAMPLES = flags.DEFINE_integer(
    "sensitivity_samples",
    _DEFAULTS.sensitivity_samples,
    "trust-report: noise draws per example for max-sensitivity (0: off).",
)
SENSITIVITY_RADIUS = flags.DEFINE_float(
    "sensitivity_radius",
    _DEFAULTS.sensitivity_radius,
    "trust-report: max-sensitivity's noise, uniform in [-r, r] per embedding coordinate.",
)
INDEPENDENT = flags.DEFINE_bool(
    "independent",
    _DEFAULTS.independent,
    "trust-report: also randomize one step at a time (independent.png; doubles the cost).",
)

SETTINGS_FLAGS = {  # TrustSettings field -> its flag's name
    "seed": "seed",
    "threshold": "sanity_threshold",
    "rationale_field": "rationale_field",
    "infidelity_samples": "infidelity_samples",
    "sensitivity_samples": "sensitivity_samples",
    "sensitivity_radius": "sensitivity_radius",
    "independent": "independent",
}
# The summary table's columns, in order (plausibility only where rationales exist).
SANITY_METRICS = ("rho_all", "rho_abs_all")
ROBUSTNESS_METRICS = ("max_sensitivity", "infidelity")
PLAUSIBILITY_LABELS = {"token_f1": "token F1", "iou_f1": "IOU-F1", "auprc": "AUPRC"}
VERDICT_WORDS = {True: "passes", False: "fails", None: "undefined"}
RANDOM_STYLE = dict(color="black", linestyle="--", linewidth=2)


def settings_from_flags() -> trust.TrustSettings:
    """`TrustSettings` from the flags; a bad value raises ValueError naming its flag."""
    values = {field: flags.FLAGS[name].value for field, name in SETTINGS_FLAGS.items()}
    try:
        return trust.TrustSettings(**values)
    except ValueError as err:
        field, _, rest = str(err).partition(" ")
        raise ValueError(f"--{SETTINGS_FLAGS.get(field, field)} {rest}") from err


def command_line(names: Sequence[str]) -> str:
    """The command with the flags given explicitly (defaults left out), as run."""
    parts = [PROG]
    for name in names:
        flag = flags.FLAGS[name]
        if flag.present:
            parts.append(shlex.quote(flag.serialize()))
    return " ".join(parts)


# ----------------------------------------------------------------- tables --
def has_rationales(result: trust.TrustResult) -> bool:
    """True if at least one example got plausibility scores."""
    return any(r is not None for scores in result.plausibility.values() for r in scores)


def _md(value) -> str:
    """A Markdown table cell: a '|' in it (the "|ρ|" label) escaped."""
    return str(value).replace("|", "\\|")


def _cell(stats: pd.Series) -> str:
    if not stats["n"]:
        return "n/a"
    return f"{stats['mean']:.3f} [{stats['ci_low']:.3f}, {stats['ci_high']:.3f}]"


def summary_columns(result: trust.TrustResult) -> list[str]:
    """The metrics the summary table shows, in order."""
    columns = [*SANITY_METRICS, *ROBUSTNESS_METRICS]
    return columns + (list(plausibility.METRICS) if has_rationales(result) else [])


def summary_table(result: trust.TrustResult, summary: pd.DataFrame) -> pd.DataFrame:
    """One row per method (random last): the sanity verdict and each metric as
    "mean [low, high]" ("n/a" where no example has the value)."""
    verdicts = result.verdicts()
    indexed = summary.set_index(["method", "metric"])
    rows = []
    for method in result.methods:
        row = {"method": method, "sanity": VERDICT_WORDS[verdicts[method]]}
        for metric in summary_columns(result):
            row[trust.METRICS[metric]] = _cell(indexed.loc[(method, metric)])
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(
    result: trust.TrustResult,
    summary: pd.DataFrame,
    title: str,
    command: str = "",
    wall_s: float | None = None,
) -> str:
    table = summary_table(result, summary)
    s = result.settings
    lines = [
        f"# {title}",
        "",
        f"{result.num_examples} examples; mean [95 % bootstrap interval] over the examples "
        "where a value is defined; ↑ higher is better, ↓ lower is better. *sanity*: "
        f"passes when, with every parameter randomized, mean ρ and mean |ρ| are both below "
        f"{s.threshold:g} (Adebayo et al. 2018; the random map keeps ρ = 1 and fails).",
        "",
        "| " + " | ".join(_md(c) for c in table.columns) + " |",
        "|" + "---|" * len(table.columns),
    ]
    lines += ["| " + " | ".join(_md(v) for v in row) + " |" for row in table.itertuples(False)]
    lines.append("")
    n_rationales = sum(not note for note in result.rationale_notes)
    if has_rationales(result):
        lines.append(
            f"Plausibility against the human rationales in `{s.rationale_field}`: "
            f"{n_rationales} of {result.num_examples} examples have one."
        )
    else:
        lines.append(
            f"No plausibility: no example has a rationale in `{s.rationale_field}` "
            "(no token F1, IOU-F1 or AUPRC columns; plausibility.png not written)."
        )
    lines += [
        "",
        "Randomization steps, top first (cascading: each step adds to the ones before): "
        + ", ".join(result.steps)
        + ". Each randomized model explains the class the trained model predicts.",
        "",
    ]
    for method, note in {**result.notes, **result.errors}.items():
        lines.append(f"- {method}: {note}")
    if result.notes or result.errors:
        lines.append("")
    settings = ", ".join(f"{k} = {getattr(s, k)!r}" for k in SETTINGS_FLAGS)
    lines.append(f"Settings: {settings}.")
    if command:
        lines += ["", f"Command: `{command}`"]
    if wall_s is not None:
        lines += ["", f"Wall time of the checks: {wall_s:.0f} s ({_machine()})."]
    lines.append("")
    return "\n".join(lines)


def _machine() -> str:
    import torch

    return f"{os.cpu_count()} logical CPUs, torch {torch.get_num_threads()} thread(s)"


# ------------------------------------------------------------------ plots --
def _new_fig(w, h):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


MARKERS = "osD^vP*X"


def _colors(methods: Sequence[str]) -> dict[str, object]:
    """One colour per method, the same in every plot; random black."""
    import matplotlib

    cycle = matplotlib.colormaps["tab10"].colors
    others = [m for m in methods if m != trust.RANDOM]
    return {**{m: cycle[i % len(cycle)] for i, m in enumerate(others)}, trust.RANDOM: "black"}


def _line_styles(methods: Sequence[str]) -> dict[str, dict]:
    """Random dashed; each method its own colour and marker, and ours dotted
    and thinner, so a line that coincides with LIT's (the gradient maps are the
    same numbers) still shows under it."""
    colors = _colors(methods)
    styles = {}
    for i, m in enumerate(methods):
        if m == trust.RANDOM:
            styles[m] = RANDOM_STYLE
            continue
        ours = m.startswith("lit-plugins:")
        styles[m] = dict(
            color=colors[m],
            marker=MARKERS[i % len(MARKERS)],
            markersize=4 if ours else 6,
            linestyle=":" if ours else "-",
            linewidth=1.2 if ours else 2.0,
            markerfacecolor="none" if ours else colors[m],
        )
    return styles


def plot_randomization(
    result: trust.TrustResult, path: Path, independent: bool = False, title: str = ""
) -> None:
    """Mean ρ of |scores| (left) and of the signed scores (right) after each
    randomization step, one line per method, random dashed; the pass threshold
    dotted. Cascading: "original" (ρ = 1) first, then the steps randomized from
    the top; independent: each step randomized alone."""
    curves = result.curves(independent=independent)
    steps = ([] if independent else ["original"]) + list(result.steps)
    x = np.arange(len(steps))
    fig = _new_fig(13, 5)
    styles = _line_styles(result.methods)
    panels = (("rho_abs", "mean Spearman ρ of |scores|"), ("rho", "mean Spearman ρ of scores"))
    for k, (column, label) in enumerate(panels):
        ax = fig.add_subplot(1, 2, k + 1)
        for method in result.methods:
            part = curves[curves.method == method].set_index("step").reindex(steps)
            ax.plot(x, part[column].to_numpy(float), label=method, **styles[method])
        ax.axhline(result.settings.threshold, color="grey", linestyle=":", linewidth=1)
        ax.set_xticks(x)
        ax.set_xticklabels(steps, rotation=40, ha="right", fontsize=8)
        low = np.nanmin(curves[column].to_numpy(float))
        ax.set_ylim(min(-0.1, low - 0.05), 1.05)
        ax.set_xlabel("randomized alone" if independent else "randomized from the top (cumulative)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    kind = "independent" if independent else "cascading"
    fig.suptitle(
        (f"{title}\n" if title else "")
        + f"Model-parameter randomization ({kind}); dotted: pass threshold "
        f"{result.settings.threshold:g}",
        fontsize=10,
    )
    handles, labels = ax.get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(0.8, 0.5), fontsize=8)
    fig.savefig(path)


def _short(method: str) -> str:
    return method.replace("lit-plugins: ", "lit-plugins:\n")


def plot_sensitivity(result: trust.TrustResult, path: Path, title: str = "") -> None:
    """Per method a box of max-sensitivity over the examples with every example
    as a point (jittered); methods without it (LIME) named in the title."""
    values = {m: result.values(m, "max_sensitivity") for m in result.methods}
    shown = [m for m in result.methods if np.isfinite(values[m]).any()]
    missing = [m for m in result.methods if m not in shown]
    fig = _new_fig(max(6.0, 1.2 * len(shown) + 2), 5)
    ax = fig.add_subplot(111)
    data = [values[m][np.isfinite(values[m])] for m in shown]
    positions = np.arange(1, len(shown) + 1)
    ax.boxplot(
        data, positions=positions, widths=0.55, showfliers=False, medianprops=dict(color="black")
    )
    jitter = np.random.default_rng(0)
    colors = _colors(result.methods)
    for pos, v, m in zip(positions, data, shown):
        ax.scatter(pos + jitter.uniform(-0.18, 0.18, v.size), v, s=10, alpha=0.5, color=colors[m])
    ax.set_xticks(positions)
    ax.set_xticklabels([_short(m) for m in shown], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("max-sensitivity  max ||s - s'|| / ||s||  (lower is steadier)")
    ax.grid(alpha=0.3, axis="y")
    s = result.settings
    ax.set_title(
        (f"{title}\n" if title else "")
        + f"Max-sensitivity: {s.sensitivity_samples} draws, radius {s.sensitivity_radius:g}"
        + (f"; n/a: {', '.join(missing)}" if missing else ""),
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path)


def plot_plausibility(
    result: trust.TrustResult, summary: pd.DataFrame, path: Path, title: str = ""
) -> None:
    """Per method the mean token F1, IOU-F1 and AUPRC against the human
    rationales, with the 95 % bootstrap intervals as error bars."""
    methods = list(result.methods)
    x = np.arange(len(methods))
    width = 0.8 / len(plausibility.METRICS)
    fig = _new_fig(max(7.0, 1.1 * len(methods) + 2), 5)
    ax = fig.add_subplot(111)
    for k, metric in enumerate(plausibility.METRICS):
        part = summary[summary.metric == metric].set_index("method").reindex(methods)
        mean = part["mean"].to_numpy(float)
        errors = np.vstack([mean - part["ci_low"].to_numpy(float), part["ci_high"] - mean])
        offset = (k - (len(plausibility.METRICS) - 1) / 2) * width
        ax.bar(x + offset, mean, width, yerr=errors, capsize=2, label=PLAUSIBILITY_LABELS[metric])
    ax.set_xticks(x)
    ax.set_xticklabels([_short(m) for m in methods], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("agreement with the human rationale (higher is better)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    n = sum(not note for note in result.rationale_notes)
    ax.set_title(
        (f"{title}\n" if title else "")
        + f"Plausibility on {n} examples with a rationale (mean, 95 % bootstrap interval)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path)


def write_report(
    result: trust.TrustResult,
    out: str | os.PathLike,
    title: str = "",
    command: str = "",
    wall_s: float | None = None,
) -> dict[str, Path]:
    """Writes the files listed in the module docstring; returns their paths
    (plausibility.png, independent.png and sensitivity.png only when there is
    something to draw)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    title = title or "Trust checks"
    summary = result.summary(seed=result.settings.seed)
    paths = {
        "per_example": out / "per_example.csv",
        "summary_csv": out / "summary.csv",
        "summary_md": out / "summary.md",
        "randomization": out / "randomization.png",
    }
    result.table().to_csv(paths["per_example"], index=False)
    summary.to_csv(paths["summary_csv"], index=False)
    paths["summary_md"].write_text(
        markdown(result, summary, title, command, wall_s), encoding="utf-8"
    )
    plot_randomization(result, paths["randomization"], title=title)
    if result.independent is not None:
        paths["independent"] = out / "independent.png"
        plot_randomization(result, paths["independent"], independent=True, title=title)
    if result.sensitivity is not None:
        paths["sensitivity"] = out / "sensitivity.png"
        plot_sensitivity(result, paths["sensitivity"], title)
    if has_rationales(result):
        paths["plausibility"] = out / "plausibility.png"
        plot_plausibility(result, summary, paths["plausibility"], title)
    return paths


# ---------------------------------------------------------------- command --
FLAGS_USED = (
    "output_dir",
    *model_data.REPORT_FLAGS,
    "rationale_column",
    "dtype",
    "salience_methods",
    *SETTINGS_FLAGS.values(),
    "title",
)


def flags_used(command: str = COMMAND) -> tuple[str, ...]:
    del command
    return FLAGS_USED


def check_flags(argv: Sequence[str]) -> None:
    """Refuses what the command cannot run, before any model is loaded."""
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments: {list(argv[1:])}")
    if not cli_flags.OUTPUT_DIR.value:
        raise ValueError("--output_dir is required.")
    if flags.FLAGS["methods"].present:
        raise ValueError(
            "trust-report names its methods with --salience_methods (display names as in "
            "lit.methods, e.g. --salience_methods='Grad L2 Norm,LIME'); --methods is the "
            "attribute command's."
        )
    if model_data.MAX_EXAMPLES.value is not None and model_data.MAX_EXAMPLES.value < 1:
        raise ValueError(f"--max_examples must be >= 1, got {model_data.MAX_EXAMPLES.value}.")
    if model_data.BATCH_SIZE.value < 1:
        raise ValueError(f"--batch_size must be >= 1, got {model_data.BATCH_SIZE.value}.")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError(
            "trust-report runs in one process; start it without torchrun / accelerate launch."
        )


def main(argv: Sequence[str]) -> int:
    """``python -m lit_plugins trust-report`` (flags already parsed; see `cli.main`).
    Bad flags: a message on stderr and exit code 2."""
    from lit_plugins.cli import corpus  # the model and data as the corpus commands load them
    from lit_plugins.util import distributed

    try:
        check_flags(argv)
        settings = settings_from_flags()
        model_name, model = corpus.one_model(distributed.Comm())  # a world of one
        ((data_name, dataset),) = model_data.load_dataset({model_name: model}).items()
        start = time.time()
        result = trust.evaluate(
            model,
            dataset,
            cli_flags.SALIENCE_METHODS.value or None,
            settings=settings,
            chunk_size=model_data.BATCH_SIZE.value,
            progress=True,
        )
        wall_s = time.time() - start
    except ValueError as e:
        print(f"lit_plugins {COMMAND}: error: {e}", file=sys.stderr, flush=True)
        return 2
    title = cli_flags.TITLE.value or (
        f"Trust checks: {model_name} on {data_name}, {result.num_examples} examples"
    )
    paths = write_report(
        result, cli_flags.OUTPUT_DIR.value, title, command_line(FLAGS_USED), wall_s
    )
    print(paths["summary_md"].read_text(encoding="utf-8"))
    print(f"({wall_s:.1f}s) wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
