"""Tests for lit_plugins.txray.report and `python -m lit_plugins txray-report` (files, CLI, offline HTML)."""

import re
import subprocess
import sys

import numpy as np
import pytest

from lit_plugins.cli import main as cli_main
from lit_plugins.txray import NeuronFeatureAggregator, SyntheticTXRay, compute_shift, write_report
from lit_plugins.txray.report import load_pair

PLOTS = ["hellinger_length", "length_shift", "mass_activation", "top_shifted", "least_shifted"]


@pytest.fixture(scope="module")
def small_result():
    gen = SyntheticTXRay(num_neurons=48, vocab_size=300, seed=1)
    b = gen.batch(3000)
    a_ = NeuronFeatureAggregator(48).update(b.acts_a, b.feature_ids)
    b_ = NeuronFeatureAggregator(48).update(b.acts_b, b.feature_ids)
    names = [
        f"tok${i}" if i % 7 == 0 else f"w{i}" for i in range(300)
    ]  # '$' must not break mathtext
    return compute_shift(a_, b_, feature_names=names, labels=("pre", "fine"))


def main(args):
    """``python -m lit_plugins txray-report`` with `args`, in this process."""
    return cli_main.main(["lit_plugins", "txray-report", *args])


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_write_report_files(tmp_path, small_result):
    written = write_report(small_result, tmp_path / "rep", k=10, n_features=6)
    out = tmp_path / "rep"
    for name in PLOTS:
        _assert_png(out / f"{name}.png")
        page = (out / f"{name}.html").read_text(encoding="utf-8")
        assert len(page) > 2000 and "Plotly.newPlot" in page
        # offline: the library is loaded from the local copy, nothing from a CDN
        srcs = re.findall(r'<script[^>]*src="([^"]+)"', page)
        assert srcs == ["plotly.min.js"]
    js = out / "plotly.min.js"
    assert js.stat().st_size > 1_000_000
    index = (out / "index.html").read_text(encoding="utf-8")
    assert index.count("Plotly.newPlot") == len(PLOTS)
    assert re.findall(r'<script[^>]*src="([^"]+)"', index) == ["plotly.min.js"]
    csv_lines = (out / "shift_table.csv").read_text().splitlines()
    assert (
        csv_lines[0].startswith("neuron,distance") and len(csv_lines) == small_result.num_shared + 1
    )
    assert set(written) >= {f"{n}.png" for n in PLOTS} | {f"{n}.html" for n in PLOTS} | {
        "summary.json"
    }
    assert all(p.stat().st_size > 0 for p in written.values())


def test_write_report_inline_html_only(tmp_path, small_result):
    written = write_report(small_result, tmp_path, k=3, png=False, plotlyjs="inline")
    assert not list(tmp_path.glob("*.png")) and not (tmp_path / "plotly.min.js").exists()
    page = (tmp_path / "length_shift.html").read_text(encoding="utf-8")
    assert len(page) > 1_000_000 and not re.findall(r'<script[^>]*src="', page)
    assert "index.html" in written
    with pytest.raises(ValueError):
        write_report(small_result, tmp_path, plotlyjs="cdn")


def test_cli_synthetic_then_npz(tmp_path, capsys):
    d1, d2 = tmp_path / "syn", tmp_path / "npz"
    rc = main(
        [
            "--synthetic",
            "--output_dir",
            str(d1),
            "--neurons",
            "48",
            "--vocab",
            "300",
            "--tokens",
            "3000",
            "--save_aggregations",
            "--nohtml",
            "--top_k",
            "4",
        ]
    )
    assert rc == 0
    assert "most shifted" in capsys.readouterr().out
    _assert_png(d1 / "top_shifted.png")
    rc = main(
        [
            "--reference_file",
            str(d1 / "a.npz"),
            "--model_file",
            str(d1 / "b.npz"),
            "--output_dir",
            str(d2),
            "--normalize_distance",
            "--weighting",
            "mean",
            "--nopng",
            "--top_k",
            "4",
        ]
    )
    assert rc == 0
    assert (d2 / "hellinger_length.html").stat().st_size > 0
    a, _b, names = load_pair(d1 / "a.npz", d1 / "b.npz")
    assert names[:2] == ["w0", "w1"] and a.num_neurons == 48
    assert (
        main(
            [
                f"--reference_file={tmp_path / 'missing.npz'}",
                f"--model_file={d1 / 'b.npz'}",
                f"--output_dir={d2}",
            ]
        )
        == 2
    )


def test_load_pair_remaps_differing_vocabularies(tmp_path):
    a = NeuronFeatureAggregator(2).update(np.array([[1.0, 0], [0, 2.0]]), [0, 1])
    b = NeuronFeatureAggregator(2).update(np.array([[1.0, 0], [0, 2.0]]), [1, 0])
    a.save(tmp_path / "a.npz", feature_names=["cat", "dog"])
    b.save(tmp_path / "b.npz", feature_names=["dog", "cat"])  # same tokens, other ids
    a2, b2, names = load_pair(tmp_path / "a.npz", tmp_path / "b.npz")
    assert names == ["cat", "dog"]
    r = compute_shift(a2, b2)
    np.testing.assert_array_equal(r.distance, [0.0, 0.0])


def test_module_entry_point(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lit_plugins",
            "txray-report",
            "--synthetic",
            "--output_dir",
            str(tmp_path),
            "--neurons",
            "32",
            "--vocab",
            "200",
            "--tokens",
            "2000",
            "--nopng",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "RuntimeWarning" not in proc.stderr
    assert (tmp_path / "index.html").exists()


def test_report_shows_intervals_and_support_with_a_bootstrap(tmp_path):
    import json

    from lit_plugins.txray.report import format_ranked

    gen = SyntheticTXRay(num_neurons=32, vocab_size=200, seed=2)
    b = gen.batch(2000)
    units = np.arange(2000) // 20  # 100 "sentences" of 20 tokens
    agg_a = NeuronFeatureAggregator(32, record_units=True).update(
        b.acts_a, b.feature_ids, units=units
    )
    agg_b = NeuronFeatureAggregator(32, record_units=True).update(
        b.acts_b, b.feature_ids, units=units
    )
    result = compute_shift(agg_a, agg_b, replicates=50, seed=0, labels=("pre", "fine"))
    out = tmp_path / "boot"
    write_report(result, out, k=4, n_features=4)
    for name in PLOTS:
        _assert_png(out / f"{name}.png")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    top = summary["most_shifted"]
    assert all({"lower", "upper", "units_a", "units_b"} <= set(x) for x in top)
    assert [x["lower"] for x in top] == sorted((x["lower"] for x in top), reverse=True)
    assert summary["bootstrap"]["replicates"] == 50 and summary["bootstrap"]["units"] == 100
    header = (out / "shift_table.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.endswith("lower,upper,units_a,units_b")
    page = (out / "top_shifted.html").read_text(encoding="utf-8")
    x = result.rank_shifts(4).most[0]
    assert f"d={x.distance:.3g} [{x.lower:.2f}, {x.upper:.2f}]" in page
    assert f"support {x.hellinger_length}" in page
    assert "lower bound" in page
    assert '"error_y"' in (out / "hellinger_length.html").read_text(encoding="utf-8")
    assert "| distance [interval] | support |" in format_ranked(result, 3, 3)


def test_cli_bootstraps_saved_per_sentence_tables(tmp_path, capsys):
    """Files written with their per-sentence table (as the corpus command
    writes them) get intervals; B's table follows B's remapped vocabulary."""
    rng = np.random.default_rng(0)
    sentence = np.repeat(np.arange(40), 5)
    words = rng.integers(0, 12, size=sentence.size)
    acts_a, acts_b = rng.normal(size=(2, sentence.size, 6))
    names = [f"w{i}" for i in range(12)]
    a = NeuronFeatureAggregator(6, record_units=True).update(acts_a, words, units=sentence)
    b = NeuronFeatureAggregator(6, record_units=True).update(acts_b, words, units=sentence)
    a.save(tmp_path / "a.npz", feature_names=names)
    reverse = np.arange(12)[::-1]  # B's ids in reverse order, names alike
    NeuronFeatureAggregator(6, record_units=True).update(
        acts_b, reverse[words], units=sentence
    ).save(tmp_path / "b.npz", feature_names=names[::-1])
    a2, b2, got_names = load_pair(tmp_path / "a.npz", tmp_path / "b.npz")
    assert got_names == names
    expected = compute_shift(a, b, replicates=40, seed=1)
    got = compute_shift(a2, b2, replicates=40, seed=1)
    np.testing.assert_allclose(got.replicate_distance, expected.replicate_distance, atol=1e-12)
    out = tmp_path / "report"
    argv = [
        f"--reference_file={tmp_path / 'a.npz'}",
        f"--model_file={tmp_path / 'b.npz'}",
        f"--output_dir={out}",
    ]
    assert main([*argv, "--nopng", "--nohtml", "--replicates", "40"]) == 0
    assert main([*argv, "--nopng", "--nohtml"]) == 0  # default: 200 replicates
    plain = tmp_path / "plain"
    plain.mkdir()
    for key, agg in (("a", NeuronFeatureAggregator(6)), ("b", NeuronFeatureAggregator(6))):
        agg.update(acts_a, words).save(plain / f"{key}.npz", feature_names=names)
    capsys.readouterr()
    argv = [
        f"--reference_file={plain / 'a.npz'}",
        f"--model_file={plain / 'b.npz'}",
        f"--output_dir={out}",
    ]
    assert main([*argv, "--replicates", "10", "--nopng", "--nohtml"]) == 2
    assert "per-sentence table" in capsys.readouterr().err
