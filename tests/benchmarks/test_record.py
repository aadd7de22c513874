"""`./run bench`'s recorder: a benchmark's printed tables become the docs page
verbatim, a failed run keeps the previous record."""

import datetime
import pathlib
import textwrap

import pytest

from tests.benchmarks import record

WHEN = datetime.datetime(2026, 12, 5, 10, 30, tzinfo=datetime.timezone.utc)


def test_to_markdown_keeps_tables_and_separates_lines():
    lines = [
        "Machine: X, 2 cores",
        "Command: python -m b",
        "",
        "some note",
        "| a | b |",
        "|---|---|",
        "| 1 | 2 |",
        "ratio 1.5",
    ]
    assert record.to_markdown(lines) == (
        "`Machine: X, 2 cores`\n\n`Command: python -m b`\n\nsome note\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\nratio 1.5\n"
    )


def test_result_path_names_the_arguments(tmp_path):
    assert record.result_path("bench_x", [], str(tmp_path)).endswith("/bench_x.md")
    assert record.result_path("bench_x", ["--repeats", "5"], str(tmp_path)).endswith(
        "/bench_x--repeats-5.md"
    )


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    pkg = tmp_path / "fakebench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "bench_ok.py").write_text(
        textwrap.dedent(
            """
            import sys
            print("Machine: test box")
            print("| n | time (s) |")
            print("|---|---|")
            print(f"| {sys.argv[1:]} | 0.5 |")
            """
        )
    )
    (pkg / "bench_fails.py").write_text("print('| half |'); raise SystemExit(3)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_record_writes_the_output_and_rebuilds_the_page(fake_package, tmp_path):
    results, page = str(tmp_path / "results"), str(tmp_path / "runs.md")
    path = record.record(
        "bench_ok", ["--n", "3"], WHEN, package="fakebench", results_dir=results, page=page
    )
    text = pathlib.Path(path).read_text()
    assert text.startswith(record.GENERATED)
    assert "Recorded 2026-12-05 10:30 UTC: `.venv/bin/python -m fakebench.bench_ok --n 3`" in text
    assert "`Machine: test box`\n\n| n | time (s) |\n|---|---|\n| ['--n', '3'] | 0.5 |\n" in text
    shown = pathlib.Path(page).read_text()
    assert "## `bench_ok--n-3`" in shown and "| ['--n', '3'] | 0.5 |" in shown
    # A failing benchmark exits with its status and leaves the records as they were.
    with pytest.raises(SystemExit) as failed:
        record.record("bench_fails", [], WHEN, package="fakebench", results_dir=results, page=page)
    assert failed.value.code == 3
    assert pathlib.Path(page).read_text() == shown
    with pytest.raises(SystemExit, match="Not a benchmark"):
        record.record("os", [], WHEN, package="fakebench", results_dir=results, page=page)


def test_the_docs_page_is_the_records(tmp_path):
    """docs/benchmark-runs.md is exactly what the recorder writes from the
    committed records (nobody edited it by hand)."""
    rebuilt = record.write_runs_page(page=str(tmp_path / "page.md"))
    with open(rebuilt) as f, open(record.RUNS_PAGE) as committed:
        assert f.read() == committed.read()
