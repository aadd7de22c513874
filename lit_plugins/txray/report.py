"""TX-Ray overview report: static PNG (matplotlib) + interactive HTML (plotly).

(Over 600 lines on purpose: each of the five figures exists twice, as a PNG and
as an interactive plotly figure, and the two renderings of one figure are kept
next to each other so they cannot drift apart.)

Library use::

    from lit_plugins.txray import compute_shift, write_report
    result = compute_shift(agg_pretrained, agg_finetuned, feature_names=vocab)
    paths = write_report(result, "out/txray")

Command line (aggregations saved with ``NeuronFeatureAggregator.save``)::

    python -m lit_plugins.txray.report --a pre.npz --b fine.npz --out out/txray
    python -m lit_plugins.txray.report --synthetic --out out/txray_demo

Files written to ``out_dir`` (PNG and/or HTML per plot):

``hellinger_length``  (a) Hellinger distance vs Hellinger length per neuron
``length_shift``      (b) length shift ``len_B - len_A`` per neuron
``mass_activation``   (c) mass activation of model A vs model B per neuron
``top_shifted``       (d) the k most shifted neurons' distributions, A vs B
``least_shifted``     (d) the k least shifted neurons' distributions, A vs B
``index.html``        all interactive figures on one page
``shift_table.csv``   one row per neuron active in both models
``summary.json``      counts, settings and the ranked neurons

With a bootstrap (``compute_shift(..., replicates=B)``) the ranked neurons are
those of the lower-bound rule (:mod:`lit_plugins.txray.bootstrap`); the
distance-vs-length plot draws their intervals as error bars, the detail plots'
titles read ``n<id> d=<distance> [<lower>, <upper>] len <A>→<B>, support
<union length>``, and the table / JSON carry ``lower``, ``upper``,
``units_a``, ``units_b``.

HTML works offline: with ``plotlyjs="directory"`` (default) every page loads
``plotly.min.js`` from a copy written next to it (one 4-5 MB file shared by
all pages; keep it with the HTML files); ``plotlyjs="inline"`` embeds the
library in each page instead (self-contained single files, ~5 MB each).
MathJax is not used and no CDN is referenced.  PNG export uses matplotlib
(plotly's static export would need kaleido).
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lit_plugins.txray.aggregate import FeatureVocab, NeuronFeatureAggregator
from lit_plugins.txray.bootstrap import DEFAULT_REPLICATES
from lit_plugins.txray.shift import NeuronShift, ShiftResult, compute_shift

__all__ = ["load_pair", "main", "write_report"]

COLOR_A = "#1f77b4"
COLOR_B = "#d62728"
COLOR_SPEC = "#9467bd"  # length decreased (specialisation)
COLOR_GEN = "#2ca02c"  # length increased (generalisation)
COLOR_SAME = "#7f7f7f"
_PLOTS = ("hellinger_length", "length_shift", "mass_activation", "top_shifted", "least_shifted")


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def _mpl_text(s: str) -> str:
    """Escapes matplotlib mathtext triggers in arbitrary token strings."""
    return str(s).replace("$", r"\$")


def _feat_label(score) -> str:
    return score.name if score.name is not None else f"#{score.feature}"


def _neuron_bars(rec: NeuronShift, n_features: int):
    """Union of the top features of A and B for one neuron -> labels, pA, pB."""
    pa = {s.feature: s for s in rec.top_features_a}
    pb = {s.feature: s for s in rec.top_features_b}
    feats = {**dict(pa.items()), **dict(pb.items())}
    order = sorted(
        feats,
        key=lambda f: (-max(pa[f].prob if f in pa else 0.0, pb[f].prob if f in pb else 0.0), f),
    )[:n_features]
    labels = [_feat_label(feats[f]) for f in order]
    ya = [pa[f].prob if f in pa else 0.0 for f in order]
    yb = [pb[f].prob if f in pb else 0.0 for f in order]
    return labels, ya, yb


def _distance_label(result: ShiftResult) -> str:
    lab = "Hellinger distance"
    if result.normalize_by_length:
        lab += " / Hellinger length"
    if result.weighting != "mass":
        lab += f" ({result.weighting} weighting)"
    return lab


def _interval_text(rec: NeuronShift) -> str:
    """' [lo, hi]' with a bootstrap, else ''."""
    return "" if np.isnan(rec.lower) else f" [{rec.lower:.2f}, {rec.upper:.2f}]"


def _neuron_title(rec: NeuronShift, prefix: str) -> str:
    return (
        f"{prefix}{rec.neuron}  d={rec.distance:.3g}{_interval_text(rec)}  "
        f"len {rec.length_a}\u2192{rec.length_b}, support {rec.hellinger_length}"
    )


def _ranking_note(r: ShiftResult) -> str:
    if not r.has_bootstrap:
        return ""
    return (
        f" (ranked by the {r.confidence:.0%} lower bound, {r.replicate_distance.shape[0]} "
        "bootstrap replicates over sentences)"
    )


def _grid(k: int) -> tuple[int, int]:
    cols = min(5, max(1, k))
    return int(np.ceil(k / cols)), cols


# --------------------------------------------------------------------------- #
# matplotlib (PNG)
# --------------------------------------------------------------------------- #
def _new_fig(w, h):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _png_hellinger_length(r: ShiftResult, ranked, path: Path):
    fig = _new_fig(7.5, 5)
    ax = fig.add_subplot(111)
    ax.scatter(r.hellinger_length, r.distance, s=12, alpha=0.6, color=COLOR_SAME, label="neuron")
    pos = {int(n): i for i, n in enumerate(r.shared)}
    for recs, color, lab in (
        (ranked.most, COLOR_B, "most shifted"),
        (ranked.least, COLOR_GEN, "least shifted"),
    ):
        idx = [pos[x.neuron] for x in recs]
        ax.scatter(r.hellinger_length[idx], r.distance[idx], s=30, color=color, label=lab)
        if recs and not np.isnan(recs[0].lower):
            d = np.array([x.distance for x in recs])
            err = np.array(
                [[x.distance - x.lower for x in recs], [x.upper - x.distance for x in recs]]
            )
            ax.errorbar(
                r.hellinger_length[idx],
                d,
                yerr=np.clip(err, 0, None),
                fmt="none",
                ecolor=color,
                elinewidth=0.8,
                capsize=2,
            )
        for i in idx[:10]:
            ax.annotate(
                str(int(r.shared[i])),
                (r.hellinger_length[i], r.distance[i]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    if (r.hellinger_length > 0).all():
        ax.set_xscale("log")
    ax.set_xlabel("Hellinger length (# features in union, log)")
    ax.set_ylabel(_distance_label(r))
    ax.set_title(
        f"{r.num_shared} neurons active in both {r.label_a} and {r.label_b}"
        + ("\n(bars: bootstrap intervals)" if r.has_bootstrap else ""),
        fontsize=10,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def _png_length_shift(r: ShiftResult, path: Path):
    fig = _new_fig(9, 4.8)
    ax = fig.add_subplot(111)
    order = np.lexsort((r.shared, r.length_shift))
    ls = r.length_shift[order]
    colors = np.where(ls < 0, COLOR_SPEC, np.where(ls > 0, COLOR_GEN, COLOR_SAME))
    ax.bar(np.arange(ls.size), ls, color=colors, width=1.0)
    ax.axhline(0, color="black", lw=0.6)
    n_spec, n_gen = int((ls < 0).sum()), int((ls > 0).sum())
    ax.set_title(
        f"Length shift {r.label_b} - {r.label_a}: {n_spec} specialised (shorter), "
        f"{n_gen} generalised (longer), {ls.size - n_spec - n_gen} unchanged"
    )
    ax.set_xlabel("neurons active in both (sorted by length shift)")
    ax.set_ylabel("len_B - len_A (# features)")
    fig.tight_layout()
    fig.savefig(path)


def _png_mass_activation(r: ShiftResult, path: Path):
    fig = _new_fig(12, 4.8)
    ax = fig.add_subplot(121)
    both = r.active_a & r.active_b
    ma, mb = r.mass_activation_a[both], r.mass_activation_b[both]
    ax.scatter(ma, mb, s=10, alpha=0.6, color=COLOR_SAME)
    lo = min(ma.min(), mb.min())
    hi = max(ma.max(), mb.max())
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.7, ls="--", label="equal share")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"mass activation {r.label_a} (share of layer)")
    ax.set_ylabel(f"mass activation {r.label_b} (share of layer)")
    only_a = int((r.active_a & ~r.active_b).sum())
    only_b = int((r.active_b & ~r.active_a).sum())
    ax.set_title(
        f"per neuron ({only_a} active only in {r.label_a}, {only_b} only in {r.label_b})",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    ax2 = fig.add_subplot(122)
    for m, color, lab in (
        (r.mass_activation_a, COLOR_A, r.label_a),
        (r.mass_activation_b, COLOR_B, r.label_b),
    ):
        s = np.sort(m[m > 0])[::-1]
        ax2.plot(np.arange(s.size), s, color=color, label=f"{lab} ({s.size} active)")
    ax2.set_yscale("log")
    ax2.set_xlabel("neurons sorted by mass activation")
    ax2.set_ylabel("share of layer activation mass (log)")
    ax2.set_title("mass activation profile", fontsize=9)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def _png_neuron_grid(
    r: ShiftResult, recs: list[NeuronShift], n_features: int, title: str, path: Path
):
    rows, cols = _grid(len(recs))
    fig = _new_fig(3.3 * cols, 0.28 * n_features * rows + 1.2 * rows + 0.6)
    for i, rec in enumerate(recs):
        ax = fig.add_subplot(rows, cols, i + 1)
        labels, ya, yb = _neuron_bars(rec, n_features)
        y = np.arange(len(labels))
        ax.barh(y - 0.2, ya, height=0.4, color=COLOR_A, label=r.label_a)
        ax.barh(y + 0.2, yb, height=0.4, color=COLOR_B, label=r.label_b)
        ax.set_yticks(y)
        ax.set_yticklabels([_mpl_text(s) for s in labels], fontsize=7)
        ax.invert_yaxis()
        ax.tick_params(axis="x", labelsize=7)
        ax.set_title(_neuron_title(rec, "neuron "), fontsize=7)
        if i == 0:
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


# --------------------------------------------------------------------------- #
# plotly (HTML)
# --------------------------------------------------------------------------- #
def _fig_hellinger_length(r: ShiftResult, ranked):
    import plotly.graph_objects as go

    most = {x.neuron for x in ranked.most}
    least = {x.neuron for x in ranked.least}
    group = np.array(
        [
            "most shifted" if n in most else "least shifted" if n in least else "neuron"
            for n in r.shared.tolist()
        ]
    )
    fig = go.Figure()
    text = [f"neuron {n}<br>len {a}\u2192{b}" for n, a, b in zip(r.shared, r.length_a, r.length_b)]
    lo, hi = r.interval()
    if r.has_bootstrap:
        text = [
            f"{t}<br>interval [{a:.3f}, {b:.3f}]<br>sentences {ua} / {ub}"
            for t, a, b, ua, ub in zip(text, lo, hi, r.units_a, r.units_b)
        ]
    for g, color in (
        ("neuron", COLOR_SAME),
        ("most shifted", COLOR_B),
        ("least shifted", COLOR_GEN),
    ):
        m = group == g
        fig.add_trace(
            go.Scatter(
                x=r.hellinger_length[m],
                y=r.distance[m],
                mode="markers",
                name=g,
                marker=dict(color=color, size=7 if g == "neuron" else 10, opacity=0.7),
                text=np.array(text)[m],
                hovertemplate="%{text}<br>length %{x}<br>distance %{y:.4g}<extra></extra>",
                error_y=(
                    dict(
                        type="data",
                        symmetric=False,
                        array=np.clip(hi[m] - r.distance[m], 0, None),
                        arrayminus=np.clip(r.distance[m] - lo[m], 0, None),
                        thickness=1,
                        width=2,
                    )
                    if r.has_bootstrap and g != "neuron"
                    else None
                ),
            )
        )
    fig.update_layout(
        title=f"Hellinger distance vs length: {r.num_shared} neurons active in both {r.label_a} and {r.label_b}",
        xaxis_title="Hellinger length (log)",
        yaxis_title=_distance_label(r),
        xaxis_type="log" if (r.hellinger_length > 0).all() else "linear",
    )
    return fig


def _fig_length_shift(r: ShiftResult):
    import plotly.graph_objects as go

    order = np.lexsort((r.shared, r.length_shift))
    ls = r.length_shift[order]
    colors = np.where(ls < 0, COLOR_SPEC, np.where(ls > 0, COLOR_GEN, COLOR_SAME))
    text = [
        f"neuron {n}<br>len {a}\u2192{b}"
        for n, a, b in zip(r.shared[order], r.length_a[order], r.length_b[order])
    ]
    fig = go.Figure(
        go.Bar(
            x=np.arange(ls.size),
            y=ls,
            marker_color=colors.tolist(),
            text=text,
            hovertemplate="%{text}<br>shift %{y}<extra></extra>",
            textposition="none",
        )
    )
    n_spec, n_gen = int((ls < 0).sum()), int((ls > 0).sum())
    fig.update_layout(
        title=f"Length shift {r.label_b} - {r.label_a}: {n_spec} specialised, {n_gen} generalised, "
        f"{ls.size - n_spec - n_gen} unchanged",
        xaxis_title="neurons active in both (sorted by length shift)",
        yaxis_title="len_B - len_A",
        bargap=0,
    )
    return fig


def _fig_mass_activation(r: ShiftResult):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("per neuron", "mass activation profile"))
    both = np.flatnonzero(r.active_a & r.active_b)
    ma, mb = r.mass_activation_a[both], r.mass_activation_b[both]
    fig.add_trace(
        go.Scatter(
            x=ma,
            y=mb,
            mode="markers",
            name="neuron",
            marker=dict(color=COLOR_SAME),
            text=[f"neuron {n}" for n in both],
            hovertemplate="%{text}<br>A %{x:.3g}<br>B %{y:.3g}<extra></extra>",
        ),
        1,
        1,
    )
    lo, hi = float(min(ma.min(), mb.min())), float(max(ma.max(), mb.max()))
    fig.add_trace(
        go.Scatter(
            x=[lo, hi],
            y=[lo, hi],
            mode="lines",
            name="equal share",
            line=dict(color="black", dash="dash"),
        ),
        1,
        1,
    )
    for m, color, lab in (
        (r.mass_activation_a, COLOR_A, r.label_a),
        (r.mass_activation_b, COLOR_B, r.label_b),
    ):
        idx = np.flatnonzero(m > 0)
        o = idx[np.argsort(-m[idx], kind="stable")]
        fig.add_trace(
            go.Scatter(
                x=np.arange(o.size),
                y=m[o],
                mode="lines",
                name=lab,
                line=dict(color=color),
                text=[f"neuron {n}" for n in o],
                hovertemplate="%{text}<br>%{y:.3g}<extra></extra>",
            ),
            1,
            2,
        )
    fig.update_xaxes(type="log", title_text=f"{r.label_a} share of layer mass", row=1, col=1)
    fig.update_yaxes(type="log", title_text=f"{r.label_b} share of layer mass", row=1, col=1)
    fig.update_xaxes(title_text="neurons sorted by mass activation", row=1, col=2)
    fig.update_yaxes(type="log", title_text="share (log)", row=1, col=2)
    fig.update_layout(title="Mass activation per neuron")
    return fig


def _fig_neuron_grid(r: ShiftResult, recs: list[NeuronShift], n_features: int, title: str):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows, cols = _grid(len(recs))
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[_neuron_title(x, "n") for x in recs],
        horizontal_spacing=0.08,
        vertical_spacing=0.12,
    )
    for i, rec in enumerate(recs):
        labels, ya, yb = _neuron_bars(rec, n_features)
        rr, cc = i // cols + 1, i % cols + 1
        for y, color, lab in ((ya, COLOR_A, r.label_a), (yb, COLOR_B, r.label_b)):
            fig.add_trace(
                go.Bar(
                    y=labels,
                    x=y,
                    orientation="h",
                    name=lab,
                    marker_color=color,
                    legendgroup=lab,
                    showlegend=(i == 0),
                    hovertemplate="%{y}: %{x:.3g}<extra>" + html.escape(lab) + "</extra>",
                ),
                rr,
                cc,
            )
        fig.update_yaxes(autorange="reversed", tickfont=dict(size=9), row=rr, col=cc)
    fig.update_layout(title=title, barmode="group", height=max(400, rows * (22 * n_features + 120)))
    return fig


# --------------------------------------------------------------------------- #
# public
# --------------------------------------------------------------------------- #
def write_report(
    result: ShiftResult,
    out_dir: str | os.PathLike,
    *,
    k: int = 10,
    n_features: int = 10,
    png: bool = True,
    html_out: bool = True,
    plotlyjs: str = "directory",
    title: str | None = None,
) -> dict[str, Path]:
    """Writes the TX-Ray overview plots for an in-memory :class:`ShiftResult`.

    Args:
      result: from :func:`~lit_plugins.txray.shift.compute_shift`.
      out_dir: created if missing.
      k: number of most / least shifted neurons in the detail plots.
      n_features: features shown per neuron in the detail plots.
      png / html_out: which formats to write.
      plotlyjs: ``"directory"`` (shared ``plotly.min.js`` next to the pages)
        or ``"inline"`` (each page self-contained).
      title: optional heading for ``index.html``.

    Returns:
      ``{name: path}`` of every file written (e.g. ``"hellinger_length.png"``).
    """
    if plotlyjs not in ("directory", "inline"):
        raise ValueError("plotlyjs must be 'directory' or 'inline'")
    if not isinstance(result, ShiftResult):
        raise ValueError("result must be a ShiftResult (see compute_shift)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    k = max(1, min(int(k), result.num_shared))
    ranked = result.rank_shifts(k=k, n_features=n_features)
    written: dict[str, Path] = {}
    top_title = (
        f"Top-{k} most shifted neurons: feature distributions {result.label_a} vs {result.label_b}"
        + _ranking_note(result)
    )
    least_title = (
        f"{k} least shifted neurons: feature distributions {result.label_a} vs {result.label_b}"
        + _ranking_note(result).replace("lower bound", "upper bound")
    )

    if png:
        p = out / "hellinger_length.png"
        _png_hellinger_length(result, ranked, p)
        written[p.name] = p
        p = out / "length_shift.png"
        _png_length_shift(result, p)
        written[p.name] = p
        p = out / "mass_activation.png"
        _png_mass_activation(result, p)
        written[p.name] = p
        p = out / "top_shifted.png"
        _png_neuron_grid(result, ranked.most, n_features, top_title, p)
        written[p.name] = p
        p = out / "least_shifted.png"
        _png_neuron_grid(result, ranked.least, n_features, least_title, p)
        written[p.name] = p

    if html_out:
        import plotly.offline

        figs = {
            "hellinger_length": _fig_hellinger_length(result, ranked),
            "length_shift": _fig_length_shift(result),
            "mass_activation": _fig_mass_activation(result),
            "top_shifted": _fig_neuron_grid(result, ranked.most, n_features, top_title),
            "least_shifted": _fig_neuron_grid(result, ranked.least, n_features, least_title),
        }
        inc = "directory" if plotlyjs == "directory" else True
        for name, fig in figs.items():
            p = out / f"{name}.html"
            fig.write_html(str(p), include_plotlyjs=inc, include_mathjax=False, full_html=True)
            written[p.name] = p
        js_tag = ""
        if plotlyjs == "directory":
            js = out / "plotly.min.js"
            if not js.exists():
                js.write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
            written[js.name] = js
            js_tag = '<script charset="utf-8" src="plotly.min.js"></script>'
        else:
            js_tag = f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>'
        body = "\n".join(
            f"<h2>{html.escape(name)}</h2>\n" + fig.to_html(full_html=False, include_plotlyjs=False)
            for name, fig in figs.items()
        )
        heading = html.escape(title or f"TX-Ray: {result.label_a} vs {result.label_b}")
        summary = html.escape(_summary_line(result))
        page = (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8"/>'
            f"<title>{heading}</title>{js_tag}</head>\n<body>\n<h1>{heading}</h1>\n<p>{summary}</p>\n"
            f"{body}\n</body></html>\n"
        )
        p = out / "index.html"
        p.write_text(page, encoding="utf-8")
        written[p.name] = p

    p = out / "shift_table.csv"
    recs = result.to_records()
    with open(p, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(recs[0].keys()))
        w.writeheader()
        w.writerows(recs)
    written[p.name] = p

    def rec_json(x: NeuronShift) -> dict:
        return dict(
            neuron=x.neuron,
            distance=x.distance,
            hellinger_length=x.hellinger_length,
            length_a=x.length_a,
            length_b=x.length_b,
            length_shift=x.length_shift,
            top_features_a=[[_feat_label(s), s.prob] for s in x.top_features_a],
            top_features_b=[[_feat_label(s), s.prob] for s in x.top_features_b],
            **(
                {}
                if np.isnan(x.lower)
                else dict(lower=x.lower, upper=x.upper, units_a=x.units_a, units_b=x.units_b)
            ),
        )

    p = out / "summary.json"
    p.write_text(
        json.dumps(
            dict(
                label_a=result.label_a,
                label_b=result.label_b,
                mode=result.mode,
                weighting=result.weighting,
                normalize_by_length=result.normalize_by_length,
                num_neurons=result.num_neurons,
                num_features=result.num_features,
                active_a=int(result.active_a.sum()),
                active_b=int(result.active_b.sum()),
                shared=result.num_shared,
                mean_distance=float(result.distance.mean()),
                specialised=int((result.length_shift < 0).sum()),
                generalised=int((result.length_shift > 0).sum()),
                most_shifted=[rec_json(x) for x in ranked.most],
                least_shifted=[rec_json(x) for x in ranked.least],
                **(
                    dict(
                        bootstrap=dict(
                            replicates=int(result.replicate_distance.shape[0]),
                            seed=result.bootstrap_seed,
                            units=result.bootstrap_units,
                            sentences_per_unit=result.bootstrap_unit_size,
                            confidence=result.confidence,
                            ranking="most: lower bound desc; least: upper bound asc",
                        )
                    )
                    if result.has_bootstrap
                    else {}
                ),
            ),
            indent=2,
        ),
        encoding="utf-8",
    )
    written[p.name] = p
    return written


def _summary_line(r: ShiftResult) -> str:
    return (
        f"{r.num_neurons} neurons, mode {r.mode}; active: {int(r.active_a.sum())} in {r.label_a}, "
        f"{int(r.active_b.sum())} in {r.label_b}, {r.num_shared} in both. "
        f"Mean {_distance_label(r).lower()}: {r.distance.mean():.4g}. "
        f"Length shift: {int((r.length_shift < 0).sum())} specialised, "
        f"{int((r.length_shift > 0).sum())} generalised."
    )


def load_pair(path_a, path_b):
    """Loads two saved aggregations and aligns their feature ids.

    If both files carry feature names that differ, B is re-mapped onto the
    union vocabulary (A's ids first).  Returns ``(agg_a, agg_b, names|None)``.
    """
    agg_a, names_a, _ = NeuronFeatureAggregator.load(path_a)
    agg_b, names_b, _ = NeuronFeatureAggregator.load(path_b)
    if names_a is not None and names_b is not None and names_a != names_b:
        vocab = FeatureVocab.from_list(names_a)
        mapping = vocab.encode(names_b)
        agg_b = agg_b.remap_features(mapping, len(vocab))
        return agg_a, agg_b, vocab.names
    names = names_a if names_a is not None else names_b
    if names is not None and len(names) < max(agg_a.num_features, agg_b.num_features):
        names = None
    return agg_a, agg_b, names


def _format_ranked(result: ShiftResult, k: int, n_features: int) -> str:
    ranked = result.rank_shifts(k=k, n_features=n_features)
    lines = []
    for head, recs in (("most shifted", ranked.most), ("least shifted", ranked.least)):
        lines.append(f"\n## {head}\n")
        lines.append(
            f"| neuron | distance | len A | len B | top features {result.label_a} | top features {result.label_b} |"
        )
        lines.append("|---:|---:|---:|---:|---|---|")
        if result.has_bootstrap:
            lines[-2] = lines[-2].replace("| distance |", "| distance [interval] | support |")
            lines[-1] = "|---:|---:|---:|---:|---:|---|---|"
        for x in recs:
            fa = ", ".join(_feat_label(s) for s in x.top_features_a)
            fb = ", ".join(_feat_label(s) for s in x.top_features_b)
            dist = f"{x.distance:.4g}"
            if result.has_bootstrap:
                dist += f"{_interval_text(x)} | {x.hellinger_length}"
            lines.append(f"| {x.neuron} | {dist} | {x.length_a} | {x.length_b} | {fa} | {fb} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m lit_plugins.txray.report",
        description="TX-Ray neuron shift report between two saved aggregations (or a synthetic demo).",
    )
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--synthetic", action="store_true", help="run on synthetic activations with planted shifts"
    )
    src.add_argument(
        "--a", metavar="A.npz", help="aggregation of model A (reference / pre-trained)"
    )
    ap.add_argument("--b", metavar="B.npz", help="aggregation of model B (fine-tuned)")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--labels", nargs=2, default=None, metavar=("LABEL_A", "LABEL_B"))
    ap.add_argument("--k", type=int, default=10, help="most / least shifted neurons to show")
    ap.add_argument(
        "--n-features", type=int, default=10, help="features per neuron in detail plots"
    )
    ap.add_argument(
        "--normalize-by-length",
        action="store_true",
        help="divide distances by the Hellinger length (original TX-Ray code)",
    )
    ap.add_argument(
        "--weighting",
        choices=("mass", "mean"),
        default="mass",
        help="'mass' (default) or the original code's 'mean' of normalised activations",
    )
    ap.add_argument(
        "--replicates",
        type=int,
        default=None,
        help="bootstrap replicates over sentences (default: 200 when both files carry the "
        "per-sentence table, as the corpus command writes them; 0: no intervals)",
    )
    ap.add_argument("--bootstrap-seed", type=int, default=0, help="the bootstrap's seed")
    ap.add_argument("--plotlyjs", choices=("directory", "inline"), default="directory")
    ap.add_argument("--no-png", action="store_true")
    ap.add_argument("--no-html", action="store_true")
    g = ap.add_argument_group("synthetic demo")
    g.add_argument("--mode", choices=("max1", "all"), default="max1")
    g.add_argument("--neurons", type=int, default=384)
    g.add_argument("--vocab", type=int, default=3000)
    g.add_argument("--tokens", type=int, default=14400)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--save-aggregations",
        action="store_true",
        help="also write a.npz / b.npz (the CLI's input format) to --out",
    )
    args = ap.parse_args(argv)

    try:
        if args.synthetic:
            from lit_plugins.txray.synthetic import SyntheticTXRay

            gen = SyntheticTXRay(num_neurons=args.neurons, vocab_size=args.vocab, seed=args.seed)
            agg_a = NeuronFeatureAggregator(args.neurons, mode=args.mode)
            agg_b = NeuronFeatureAggregator(args.neurons, mode=args.mode)
            for b in gen.batches(args.tokens):
                agg_a.update(b.acts_a, b.feature_ids)
                agg_b.update(b.acts_b, b.feature_ids)
            names = gen.feature_names
            labels = tuple(args.labels or ("pretrained", "finetuned"))
            if args.save_aggregations:
                Path(args.out).mkdir(parents=True, exist_ok=True)
                agg_a.save(Path(args.out) / "a.npz", feature_names=names, label=labels[0])
                agg_b.save(Path(args.out) / "b.npz", feature_names=names, label=labels[1])
            print(f"synthetic: planted swaps {gen.swaps}, specialise {gen.specialise}")
        else:
            if not args.b:
                ap.error("--b is required with --a")
            agg_a, agg_b, names = load_pair(args.a, args.b)
            labels = tuple(args.labels or (Path(args.a).stem, Path(args.b).stem))
        recorded = agg_a.units is not None and agg_b.units is not None
        replicates = args.replicates
        if replicates is None:
            replicates = DEFAULT_REPLICATES if recorded else 0
        if replicates and not recorded:
            raise ValueError(
                "--replicates needs both aggregations saved with their per-sentence table "
                "(`python -m lit_plugins txray` writes it unless --replicates=0)"
            )
        result = compute_shift(
            agg_a,
            agg_b,
            normalize_by_length=args.normalize_by_length,
            weighting=args.weighting,
            feature_names=names,
            labels=labels,
            replicates=replicates,
            seed=args.bootstrap_seed,
        )
        written = write_report(
            result,
            args.out,
            k=args.k,
            n_features=args.n_features,
            png=not args.no_png,
            html_out=not args.no_html,
            plotlyjs=args.plotlyjs,
        )
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(_summary_line(result))
    print(_format_ranked(result, min(args.k, 10), 5))
    print("\nwrote:\n" + "\n".join(f"  {p}" for p in written.values()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
