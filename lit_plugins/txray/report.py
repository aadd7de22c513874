"""TX-Ray overview report: static PNG (matplotlib) + interactive HTML (plotly).

The figures themselves (each as a PNG and as a plotly figure) are in
:mod:`lit_plugins.txray.figures`.

Library use::

    from lit_plugins.txray import compute_shift, write_report
    result = compute_shift(agg_pretrained, agg_finetuned, feature_names=vocab)
    paths = write_report(result, "out/txray")

Command line (aggregations saved with ``NeuronFeatureAggregator.save``)::

    python -m lit_plugins txray-report --reference_file=pre.npz --model_file=fine.npz \\
        --output_dir=out/txray
    python -m lit_plugins txray-report --synthetic --output_dir=out/txray_demo

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

import csv
import html
import json
import os
from pathlib import Path

import numpy as np

from lit_plugins.txray import figures
from lit_plugins.txray.aggregate import FeatureVocab, NeuronFeatureAggregator
from lit_plugins.txray.shift_result import NeuronShift, ShiftResult

__all__ = ["format_ranked", "load_pair", "summary_line", "write_report"]


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
        + figures.ranking_note(result)
    )
    least_title = (
        f"{k} least shifted neurons: feature distributions {result.label_a} vs {result.label_b}"
        + figures.ranking_note(result).replace("lower bound", "upper bound")
    )

    if png:
        p = out / "hellinger_length.png"
        figures.png_hellinger_length(result, ranked, p)
        written[p.name] = p
        p = out / "length_shift.png"
        figures.png_length_shift(result, p)
        written[p.name] = p
        p = out / "mass_activation.png"
        figures.png_mass_activation(result, p)
        written[p.name] = p
        p = out / "top_shifted.png"
        figures.png_neuron_grid(result, ranked.most, n_features, top_title, p)
        written[p.name] = p
        p = out / "least_shifted.png"
        figures.png_neuron_grid(result, ranked.least, n_features, least_title, p)
        written[p.name] = p

    if html_out:
        import plotly.offline

        figs = {
            "hellinger_length": figures.fig_hellinger_length(result, ranked),
            "length_shift": figures.fig_length_shift(result),
            "mass_activation": figures.fig_mass_activation(result),
            "top_shifted": figures.fig_neuron_grid(result, ranked.most, n_features, top_title),
            "least_shifted": figures.fig_neuron_grid(result, ranked.least, n_features, least_title),
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
        summary = html.escape(summary_line(result))
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
            top_features_a=[[figures.feat_label(s), s.prob] for s in x.top_features_a],
            top_features_b=[[figures.feat_label(s), s.prob] for s in x.top_features_b],
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


def summary_line(r: ShiftResult) -> str:
    return (
        f"{r.num_neurons} neurons, mode {r.mode}; active: {int(r.active_a.sum())} in {r.label_a}, "
        f"{int(r.active_b.sum())} in {r.label_b}, {r.num_shared} in both. "
        f"Mean {figures.distance_label(r).lower()}: {r.distance.mean():.4g}. "
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


def format_ranked(result: ShiftResult, k: int, n_features: int) -> str:
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
            fa = ", ".join(figures.feat_label(s) for s in x.top_features_a)
            fb = ", ".join(figures.feat_label(s) for s in x.top_features_b)
            dist = f"{x.distance:.4g}"
            if result.has_bootstrap:
                dist += f"{figures.interval_text(x)} | {x.hellinger_length}"
            lines.append(f"| {x.neuron} | {dist} | {x.length_a} | {x.length_b} | {fa} | {fb} |")
    return "\n".join(lines)
