"""The documented command-line block runs as written (on 8 bundled examples).

The one block after `<!-- test: cli -->` in README.md or a docs/ page
(docs/cli.md) is run line by line: each `python -m lit_plugins ...` command
with `--max_examples=8` and its `out/` directory moved under a temporary
directory, then the demo line with the demo-server helper, whose Linear Probe
must answer from the loaded results. Every other `python -m lit_plugins ...`
line of a ```bash block in README.md or docs/ (the README's one-liner) must
be one of the tested commands.
"""

import glob
import importlib.util
import os
import re
import shlex
import subprocess

from lit_plugins.app import registration
from lit_plugins.lit.interpreters import neuron_use
from tests.kit import demo_server

BLOCK_RE = re.compile(r"^<!-- test: cli -->\n```bash\n(?P<code>.*?)^```", re.M | re.S)
BASH_RE = re.compile(r"^```bash\n(?P<code>.*?)^```", re.M | re.S)
CLI_PREFIX = ".venv/bin/python -m lit_plugins "
# `python -m X` anywhere in the text (code blocks or inline, across a line break);
# `bench_<name>` placeholders are not module names.
PYTHON_M_RE = re.compile(r"python -m\s+([A-Za-z_][\w.]*\w)(?![\w.<])")


def _pages() -> dict[str, str]:
    """README.md and every docs/ page: relative path -> text."""
    root = demo_server.ROOT
    paths = [os.path.join(root, "README.md")]
    paths += sorted(glob.glob(os.path.join(root, "docs", "**", "*.md"), recursive=True))
    texts = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            texts[os.path.relpath(path, root)] = f.read()
    return texts


def _block() -> str:
    blocks = [m["code"] for text in _pages().values() for m in BLOCK_RE.finditer(text)]
    assert len(blocks) == 1, f"expected one '<!-- test: cli -->' block, found {len(blocks)}"
    return blocks[0]


def _commands():
    return [shlex.split(line) for line in _block().strip().splitlines()]


def test_documented_cli_lines_are_tested():
    """A `python -m lit_plugins ...` line shown anywhere else is one the block runs."""
    tested = {line.strip() for line in _block().strip().splitlines()}
    shown = {
        (page, line.strip())
        for page, text in _pages().items()
        for m in BASH_RE.finditer(text)
        for line in m["code"].splitlines()
        if line.strip().startswith(CLI_PREFIX)
    }
    assert any(page == "README.md" for page, _ in shown)  # the README's one-liner
    for page, line in shown:
        assert line in tested, f"{page}: {line!r} is not in the tested cli block"


def test_documented_python_m_modules_exist():
    """Every `python -m X` the README or a docs/ page shows names a module that
    exists and runs as a script (a package with `__main__.py`, or a module with
    a `__main__` block), so a command moved or renamed in the code fails here."""
    shown = {
        module: page for page, text in _pages().items() for module in PYTHON_M_RE.findall(text)
    }
    assert {"lit_plugins", "demos.demo"} <= set(shown)
    for module, page in sorted(shown.items()):
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin, f"{page}: python -m {module}: no such module"
        if spec.submodule_search_locations is not None:  # a package runs its __main__
            main = importlib.util.find_spec(f"{module}.__main__")
            assert main is not None, f"{page}: python -m {module}: no __main__.py"
            continue
        with open(spec.origin, encoding="utf-8") as f:
            source = f.read()
        assert re.search(r"^if __name__ == .__main__.:", source, re.M), (
            f"{page}: python -m {module}: {spec.origin} does not run as a script"
        )


def test_readme_cli_block(tmp_path, minilm_finetuned):
    del minilm_finetuned  # the fine-tuned checkpoint is cached (the commands load it)
    commands = _commands()
    assert [c[2] for c in commands] == ["lit_plugins"] * 3 + ["demos.demo"]

    def local(arg):
        return arg.replace("=out/", f"={tmp_path}/out/").replace(",out/", f",{tmp_path}/out/")

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    for command in commands[:3]:
        args = [local(a) for a in command] + ["--max_examples=8"]
        args[0] = os.path.join(demo_server.ROOT, args[0])
        proc = subprocess.run(
            args, cwd=demo_server.ROOT, env=env, capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, f"{args}:\n{proc.stdout}\n{proc.stderr}"
    for name in ("probe/probe.json", "txray/shift.csv", "attr/COMPLETE"):
        assert (tmp_path / "out" / name).exists()
    demo_args = [local(a) for a in commands[3][3:]]
    log = tmp_path / "demo.log"
    with demo_server.demo_server(log, max_examples=4, extra_args=demo_args) as (port, _, _):
        data = demo_server.post(port, "get_dataset", {"dataset_name": "sentiment-dev"})
        (result,) = demo_server.interpret(
            port, registration.LINEAR_PROBE, data[:1], {neuron_use.USE_KEY: False}
        )
        assert result["layer_sweep"]
    text = log.read_text()
    assert "Linear probe: loaded" in text and "TX-Ray: loaded" in text
    assert "Linear probe: done" not in text


def test_usage_names_the_commands_and_flags():
    python = os.path.join(demo_server.ROOT, ".venv/bin/python")
    proc = subprocess.run(
        [python, "-m", "lit_plugins"], cwd=demo_server.ROOT, capture_output=True, text=True
    )
    assert proc.returncode != 0
    for command in ("probe", "txray", "attribute"):
        assert command in proc.stdout + proc.stderr
    proc = subprocess.run(
        [python, "-m", "lit_plugins", "attribute", "--helpfull"],
        cwd=demo_server.ROOT,
        capture_output=True,
        text=True,
    )
    for flag in ("--models", "--dataset", "--text_fields", "--output_dir", "--shard_size"):
        assert flag in proc.stdout
