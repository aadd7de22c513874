"""The TX-Ray report's figures, each drawn twice: a static PNG (matplotlib) and an
interactive plotly figure, kept side by side so the two renderings cannot drift apart.
`txray.report` writes them; the labels and titles they share are here too."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from lit_plugins.txray.shift_result import NeuronShift, ShiftResult

COLOR_A = "#1f77b4"
COLOR_B = "#d62728"
COLOR_SPEC = "#9467bd"  # length decreased (specialisation)
COLOR_GEN = "#2ca02c"  # length increased (generalisation)
COLOR_SAME = "#7f7f7f"
PLOTS = ("hellinger_length", "length_shift", "mass_activation", "top_shifted", "least_shifted")


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def _mpl_text(s: str) -> str:
    """Escapes matplotlib mathtext triggers in arbitrary token strings."""
    return str(s).replace("$", r"\$")


def feat_label(score) -> str:
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
    labels = [feat_label(feats[f]) for f in order]
    ya = [pa[f].prob if f in pa else 0.0 for f in order]
    yb = [pb[f].prob if f in pb else 0.0 for f in order]
    return labels, ya, yb


def distance_label(result: ShiftResult) -> str:
    lab = "Hellinger distance"
    if result.normalize_by_length:
        lab += " / Hellinger length"
    if result.weighting != "mass":
        lab += f" ({result.weighting} weighting)"
    return lab


def interval_text(rec: NeuronShift) -> str:
    """' [lo, hi]' with a bootstrap, else ''."""
    return "" if np.isnan(rec.lower) else f" [{rec.lower:.2f}, {rec.upper:.2f}]"


def _neuron_title(rec: NeuronShift, prefix: str) -> str:
    return (
        f"{prefix}{rec.neuron}  d={rec.distance:.3g}{interval_text(rec)}  "
        f"len {rec.length_a}\u2192{rec.length_b}, support {rec.hellinger_length}"
    )


def ranking_note(r: ShiftResult) -> str:
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


def png_hellinger_length(r: ShiftResult, ranked, path: Path):
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
    ax.set_ylabel(distance_label(r))
    ax.set_title(
        f"{r.num_shared} neurons active in both {r.label_a} and {r.label_b}"
        + ("\n(bars: bootstrap intervals)" if r.has_bootstrap else ""),
        fontsize=10,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def png_length_shift(r: ShiftResult, path: Path):
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


def png_mass_activation(r: ShiftResult, path: Path):
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


def png_neuron_grid(
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
def fig_hellinger_length(r: ShiftResult, ranked):
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
        yaxis_title=distance_label(r),
        xaxis_type="log" if (r.hellinger_length > 0).all() else "linear",
    )
    return fig


def fig_length_shift(r: ShiftResult):
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


def fig_mass_activation(r: ShiftResult):
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


def fig_neuron_grid(r: ShiftResult, recs: list[NeuronShift], n_features: int, title: str):
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
