"""Runs one benchmark and records what it printed as a Markdown page part.

    .venv/bin/python -m tests.benchmarks.record bench_integrated_gradients [ARGS...]

`./run bench` calls this for every benchmark. The benchmark's standard output
is shown as it runs and written to ``tests/benchmarks/results/<name>.md``
(``<name>--<args>.md`` when arguments are given); then the docs page
``docs/benchmark-runs.md`` is rebuilt from every record there: the tables a
reader sees are the ones a command printed, never pasted by hand. A
benchmark that fails leaves the previous record untouched.
"""

from __future__ import annotations

import datetime
import os
import re
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(HERE, "results")
RUNS_PAGE = os.path.join(HERE, os.pardir, os.pardir, "docs", "benchmark-runs.md")
GENERATED = "<!-- written by `./run bench` (tests/benchmarks/record.py): do not edit by hand -->"


def result_path(name: str, args: list[str], results_dir: str = RESULTS_DIR) -> str:
    """Where the record of `name` run with `args` goes."""
    slug = re.sub(r"[^A-Za-z0-9_.=-]+", "-", "-".join(a.lstrip("-") for a in args)).strip("-")
    return os.path.join(results_dir, f"{name}--{slug}.md" if slug else f"{name}.md")


def to_markdown(lines: list[str]) -> str:
    """The benchmark's lines as Markdown: table rows stay together, every other
    line is its own paragraph (the machine and command lines as code)."""
    out: list[str] = []
    for raw in lines:
        line = raw.rstrip()
        if not line:
            continue
        is_row = line.startswith("|")
        if out and not (is_row and out[-1].startswith("|")):
            out.append("")
        if line.startswith(("Machine: ", "Command: ", "Arguments: ")):
            line = f"`{line}`"
        out.append(line)
    return "\n".join(out) + "\n"


def record(
    name: str,
    args: list[str],
    when: datetime.datetime | None = None,
    package: str = "tests.benchmarks",
    results_dir: str = RESULTS_DIR,
    page: str = RUNS_PAGE,
) -> str:
    """Runs `python -m <package>.<name> *args`, echoing its output, and writes
    the record; returns its path. Exits with the benchmark's status if it fails."""
    if not re.fullmatch(r"bench_\w+", name):
        raise SystemExit(f"Not a benchmark module name: {name!r} (expected bench_<name>).")
    cmd = [sys.executable, "-m", f"{package}.{name}", *args]
    lines: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)
    if proc.returncode:
        raise SystemExit(proc.returncode)
    when = when or datetime.datetime.now(datetime.timezone.utc)
    shown = shlex.join([".venv/bin/python", "-m", f"{package}.{name}", *args])
    header = f"{GENERATED}\nRecorded {when:%Y-%m-%d %H:%M} UTC: `{shown}`\n\n"
    path = result_path(name, args, results_dir)
    os.makedirs(results_dir, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(header + to_markdown(lines))
    os.replace(tmp, path)
    write_runs_page(results_dir, page)
    print(f"recorded: {os.path.relpath(path)}", file=sys.stderr)
    return path


def write_runs_page(results_dir: str = RESULTS_DIR, page: str = RUNS_PAGE) -> str:
    """Rebuilds the docs page of every recorded run, one section each, by name."""
    names = (
        sorted(n for n in os.listdir(results_dir) if n.endswith(".md"))
        if (os.path.isdir(results_dir))
        else []
    )
    parts = [
        "# Benchmarks: recorded runs\n\n",
        f"{GENERATED}\n\n",
        "What `./run bench` printed, each benchmark's latest run as recorded in\n",
        "`tests/benchmarks/results/`, with the machine and command it ran on.\n",
        "The [Benchmarks](benchmarks.md) page explains them and keeps earlier runs.\n",
    ]
    if not names:
        parts.append("\nNo run recorded yet: `./run bench` records one.\n")
    for name in names:
        with open(os.path.join(results_dir, name), encoding="utf-8") as f:
            body = f.read().replace(GENERATED + "\n", "")
        parts.append(f"\n## `{name[:-3]}`\n\n{body}")
    with open(page, "w", encoding="utf-8") as f:
        f.write("".join(parts))
    return page


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    record(sys.argv[1], sys.argv[2:])
