"""`python -m lit_plugins trust-report` on a tiny BERT checkpoint and a CSV with a
rationale column: the files it writes, their numbers against
`trust_evaluation.evaluate` on the same model and data (and the summary's means
and verdicts against the per-example CSV), valid PNGs, --help, bad flags refused
with a message, and no rationale → no plausibility.png and a line saying so."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lit_plugins.cli import main as cli_main
from lit_plugins.cli import trust_report
from lit_plugins.data import loaders
from lit_plugins.lit import trust_evaluation as trust
from lit_plugins.lit.model import HFSequenceClassifier
from tests.kit import tiny_models

ROWS = [
    ("terrible acting", "neg", "terrible"),
    ("i loved this brilliant movie", "pos", "loved brilliant"),
    ("a slow start but a stunning finale", "pos", "but a stunning finale"),
    ("the plot was boring", "neg", "boring"),
    ("fun", "pos", ""),  # one token: ρ undefined, no rationale
]
METHODS = ["Grad L2 Norm", "lit-plugins: Gradient · Input", "LIME"]
SETTINGS = trust.TrustSettings(
    seed=3, threshold=0.4, infidelity_samples=4, sensitivity_samples=2, independent=True
)
SETTINGS_ARGS = [
    "--seed=3",
    "--sanity_threshold=0.4",
    "--infidelity_samples=4",
    "--sensitivity_samples=2",
    "--independent",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny BERT checkpoint and the CSV (with and without its rationale column)."""
    root = tmp_path_factory.mktemp("trust_report")
    model, tokenizer = tiny_models.make("bert", num_labels=2, seed=0)
    model.save_pretrained(root / "ckpt")
    tokenizer.save_pretrained(root / "ckpt")
    table = pd.DataFrame(ROWS, columns=["text", "label", "evidence"])
    table.to_csv(root / "data.csv", index=False)
    return root


def _data_flags(files, rationale=True):
    return [
        f"--models=tiny:{files / 'ckpt'}",
        "--labels=neg,pos",
        f"--dataset={files / 'data.csv'}",
        "--text_fields=sentence=text",
        *(["--rationale_column=evidence"] if rationale else []),
        "--batch_size=2",
    ]


def _run(*args):
    return cli_main.main(["lit_plugins", "trust-report", *args])


@pytest.fixture(scope="module")
def report(files):
    out = files / "report"
    methods = "--salience_methods=" + ",".join(METHODS)
    assert _run(f"--output_dir={out}", *_data_flags(files), methods, *SETTINGS_ARGS) == 0
    return out


@pytest.fixture(scope="module")
def expected(files):
    """The same checks through the Python API on the same checkpoint and data."""
    model = HFSequenceClassifier(str(files / "ckpt"), labels=["neg", "pos"], batch_size=2)
    data = loaders.load_table(
        str(files / "data.csv"),
        {"sentence": "text"},
        "label",
        labels=["neg", "pos"],
        rationale_column="evidence",
    )
    return trust.evaluate(model, data, METHODS, settings=SETTINGS, chunk_size=2)


def test_writes_every_file(report):
    for name in (
        "per_example.csv",
        "summary.csv",
        "summary.md",
        "randomization.png",
        "independent.png",
        "sensitivity.png",
        "plausibility.png",
    ):
        assert (report / name).stat().st_size > 0, name


def test_csv_numbers_equal_the_python_api(report, expected):
    got = pd.read_csv(report / "per_example.csv")
    want = expected.table()
    assert list(got.columns) == list(want.columns)
    assert list(got.method) == list(want.method) == [*METHODS, trust.RANDOM] * len(ROWS)
    numbers = [c for c in want.columns if c not in ("example", "method", "target", "defined")]
    # The same float32 forward passes in the same batches: equal up to the CSV's text form.
    np.testing.assert_allclose(
        got[numbers].to_numpy(float), want[numbers].to_numpy(float), rtol=1e-7, atol=1e-12
    )
    assert list(got.target) == list(want.target)
    summary = pd.read_csv(report / "summary.csv")
    np.testing.assert_allclose(
        summary[["mean", "median", "ci_low", "ci_high", "n"]].to_numpy(float),
        expected.summary(seed=SETTINGS.seed)[["mean", "median", "ci_low", "ci_high", "n"]].to_numpy(
            float
        ),
        rtol=1e-7,
        equal_nan=True,
    )


def test_summary_means_and_verdicts_follow_the_per_example_rows(report):
    """Recomputed from per_example.csv alone: each summary mean is the mean over
    the rows where the metric is defined, and the verdict is "passes" exactly
    when both fully randomized means are below the threshold."""
    rows = pd.read_csv(report / "per_example.csv")
    summary = pd.read_csv(report / "summary.csv").set_index(["method", "metric"])
    md = (report / "summary.md").read_text()
    for method, part in rows.groupby("method", sort=False):
        for metric in trust.METRICS:
            values = part[metric].dropna()
            assert summary.loc[(method, metric), "n"] == len(values)
            if len(values):
                assert summary.loc[(method, metric), "mean"] == pytest.approx(values.mean())
        defined = part[part.defined]
        assert len(defined) == len(ROWS) - 1  # the one-token text is undefined
        passes = defined.rho_all.mean() < 0.4 and defined.rho_abs_all.mean() < 0.4
        verdict = "passes" if passes else "fails"
        assert f"| {method} | {verdict} |" in md
    # The random map ignores the model: ρ = 1 at every step, so it fails.
    assert f"| {trust.RANDOM} | fails |" in md
    assert (rows[rows.method == trust.RANDOM].query("defined")["rho_all"] == 1.0).all()
    # The rationale of "but a stunning finale" etc.: 4 of the 5 examples have one.
    assert "4 of 5 examples have one" in md
    assert "--sanity_threshold=0.4" in md and "--independent" in md
    # LIME perturbs words: no max-sensitivity, said in a cell and a note.
    lime = next(line for line in md.splitlines() if line.startswith("| LIME |"))
    assert "n/a" in lime and "perturbs words" in md


def test_the_pictures_are_valid_images(report):
    for name in ("randomization", "independent", "sensitivity", "plausibility"):
        path = report / f"{name}.png"
        assert path.read_bytes()[:8] == PNG_MAGIC, name
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            width, height = image.size
        assert width > 300 and height > 200, (name, image.size)


def test_no_rationale_no_plausibility(files):
    out = files / "no_rationale"
    code = _run(
        f"--output_dir={out}",
        *_data_flags(files, rationale=False),
        "--salience_methods=Grad L2 Norm",
        "--infidelity_samples=0",
        "--sensitivity_samples=0",
    )
    assert code == 0
    assert not (out / "plausibility.png").exists()
    assert not (out / "independent.png").exists() and not (out / "sensitivity.png").exists()
    md = (out / "summary.md").read_text()
    assert "No plausibility: no example has a rationale in `rationale`" in md
    header = next(line for line in md.splitlines() if line.startswith("| method |"))
    assert "token F1" not in header and "AUPRC" not in header and "ρ all randomized" in header
    assert pd.read_csv(out / "per_example.csv")["token_f1"].isna().all()


def test_help_lists_the_command_and_its_flags(capsys):
    assert cli_main.main(["lit_plugins", "--help"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line[:2] == "  "]
    assert "trust-report" in listed
    assert cli_main.main(["lit_plugins", "trust-report", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--output_dir", "--models", "--rationale_column", "--salience_methods"):
        assert f"{flag}:" in out
    for name in trust_report.SETTINGS_FLAGS.values():
        assert f"--{name}:" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sensitivity_radius=0"], "--sensitivity_radius must be a number > 0, got 0.0"),
        (["--sanity_threshold=2"], "--sanity_threshold must be a number in [-1, 1], got 2.0"),
        (["--infidelity_samples=-1"], "--infidelity_samples must be 0 (off) to 4096"),
        (["--rationale_field= "], "--rationale_field must name an example field"),
        (["--max_examples=0"], "--max_examples must be >= 1, got 0"),
        (["--methods=grad_norm"], "names its methods with --salience_methods"),
        (["--salience_methods=SHAP"], "Salience method(s) ['SHAP'] not served"),
        (["--output_dir="], "--output_dir is required"),
    ],
)
def test_bad_flags_are_refused_with_a_message(files, tmp_path, capsys, args, message):
    assert _run(f"--output_dir={tmp_path / 'out'}", *_data_flags(files), *args) == 2
    err = capsys.readouterr().err
    assert "lit_plugins trust-report: error:" in err and message in err
    assert not (tmp_path / "out").exists()
