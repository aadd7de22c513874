"""The Python code blocks of the README and of every docs/ page run as
written, and so does the custom app they point to (demos/custom_app.py).

Convention (invisible on GitHub and on the mkdocs site): an HTML comment on
the line before a ```python block says what to do with it:

  <!-- test: run -->          run it as a script (`python snippet.py --port=N`);
                              a LIT server must answer get_info, then it is stopped
  <!-- test: skip (reason) --> not run, with the reason

Every ```python block of README.md and docs/**/*.md carries one of the two,
so a new snippet cannot be added untested by accident. A block that appears
on several pages (the custom app: README and docs/own-model-and-data.md) is
run once. Placeholder paths are replaced by tiny local
stand-ins before running: "/path/to/checkpoint" by a tiny random BERT saved
with save_pretrained (labels neg/pos), "reviews.csv" by a small CSV with
`text` and `label` columns.
"""

import contextlib
import csv
import glob
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from lit_plugins.app import registration
from tests.kit import tiny_models
from tests.kit.demo_server import ROOT, free_port, post

README = os.path.join(ROOT, "README.md")
DOCS = os.path.join(ROOT, "docs")
BLOCK_RE = re.compile(r"^(?P<marker>[^\n]*)\n```python\n(?P<code>.*?)^```", re.M | re.S)
MARKER_RE = re.compile(r"^<!-- test: (run|skip \(.+\)) -->$")
START_S = 240


def pages() -> list[str]:
    """README.md and every Markdown page under docs/, in a fixed order."""
    docs = sorted(glob.glob(os.path.join(DOCS, "**", "*.md"), recursive=True))
    return [README, *docs]


def python_blocks(path: str) -> list[tuple[str, str]]:
    """(marker, code) of each ```python block of one page, in order."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return [(m["marker"].strip(), m["code"]) for m in BLOCK_RE.finditer(text)]


def readme_blocks() -> list[tuple[str, str]]:
    """(marker, code) of each ```python block of the README and the docs pages."""
    return [block for path in pages() for block in python_blocks(path)]


def test_pages_are_found():
    names = [os.path.relpath(p, ROOT) for p in pages()]
    for name in ("README.md", "docs/index.md", "docs/own-model-and-data.md"):
        assert name in names
    assert python_blocks(README), "no ```python blocks found in README.md"


@pytest.mark.parametrize("path", pages(), ids=lambda p: os.path.relpath(p, ROOT))
def test_every_python_block_is_marked(path):
    for marker, code in python_blocks(path):
        assert MARKER_RE.match(marker), (
            f"{os.path.relpath(path, ROOT)}: ```python block without a "
            "'<!-- test: run -->' or '<!-- test: skip (reason) -->' line before it:\n"
            f"{code[:200]}"
        )


def test_readme_links_resolve():
    """The README's relative links (into docs/, on GitHub) name files that exist;
    the links inside docs/ are checked by `mkdocs build --strict` in ./run test."""
    with open(README, encoding="utf-8") as f:
        targets = re.findall(r"\]\(([^)#\s]+)", f.read())
    local = [t for t in targets if "://" not in t]
    assert any(t.startswith("docs/") for t in local)
    for target in local:
        assert os.path.exists(os.path.join(ROOT, target)), target


# A source file named in the prose: `lit_plugins/hf/paths.py`, `tests/...py`, or, as the
# architecture page's module map writes them, relative to lit_plugins/ (`hf/paths.py`).
PACKAGES = "app|attribution|cli|data|faithfulness|hf|lit|probing|txray|util"
SOURCE_RE = re.compile(r"`((?:lit_plugins|tests|demos|" + PACKAGES + r")/[\w/]*\.py)`")


def test_named_source_files_exist():
    """Every source file a page names exists, so a module moved or renamed in the
    code fails here until the docs follow."""
    named = 0
    for path in pages():
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for name in SOURCE_RE.findall(text):
            top = name.split("/", 1)[0]
            where = name if top in ("lit_plugins", "tests", "demos") else f"lit_plugins/{name}"
            named += 1
            assert os.path.exists(os.path.join(ROOT, where)), (
                f"{os.path.relpath(path, ROOT)} names {name}: {where} does not exist"
            )
    assert named > 50  # the module map alone names more


def test_marker_rule_catches_an_unmarked_block(tmp_path):
    """The rule itself: an unmarked block, or a marker with a blank line in
    between, is found; a marked one passes."""
    page = tmp_path / "page.md"
    page.write_text(
        "Text.\n\n```python\nprint(1)\n```\n\n<!-- test: run -->\n\n```python\nprint(2)\n```\n"
        "\n<!-- test: skip (needs a GPU) -->\n```python\nprint(3)\n```\n"
    )
    matched = [bool(MARKER_RE.match(marker)) for marker, _ in python_blocks(str(page))]
    assert matched == [False, False, True]


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """Tiny local files for the README's placeholder paths."""
    root = tmp_path_factory.mktemp("readme")
    model, tok = tiny_models.make("bert")
    model.config.id2label = {0: "neg", 1: "pos"}
    model.config.label2id = {"neg": 0, "pos": 1}
    checkpoint = root / "checkpoint"
    model.save_pretrained(checkpoint)
    tok.save_pretrained(checkpoint)
    reviews = root / "reviews.csv"
    with open(reviews, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i, text in enumerate(["a great film", "boring", "loved it", "a terrible mess"] * 2):
            writer.writerow([text, ["pos", "neg"][i % 2]])
    return {"checkpoint": str(checkpoint), "reviews": str(reviews)}


def _placeholders(stand_ins: dict[str, str]) -> dict[str, str]:
    """README placeholder -> its replacement in the code."""
    return {
        "/path/to/checkpoint": stand_ins["checkpoint"],
        '"reviews.csv"': repr(stand_ins["reviews"]),
    }


def _substitute(code: str, stand_ins: dict[str, str]) -> str:
    for placeholder, replacement in _placeholders(stand_ins).items():
        code = code.replace(placeholder, replacement)
    return code


# Each distinct runnable block once, in page order.
RUN_BLOCKS = list(
    dict.fromkeys(code for marker, code in readme_blocks() if marker == "<!-- test: run -->")
)


@contextlib.contextmanager
def lit_subprocess(args, cwd, log_path):
    """Runs `python *args --port=N` (a LIT app); yields (port, get_info's
    answer) once the server answers, and always stops it."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    # The apps' output store (and offline client copy) in the test's directory, not the
    # user's ~/.cache/lit_plugins: a test run leaves nothing there and reads nothing back.
    env["LIT_PLUGINS_CACHE"] = str(cwd / "lit_plugins_cache")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, *args, f"--port={port}", f"--data_dir={cwd / 'lit_cache'}"],
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.time() + START_S
        while True:
            try:
                info = post(port, "get_info", timeout=10)
                break
            except OSError as error:
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError(
                        f"{args} did not serve LIT:\n" + log_path.read_text()[-3000:]
                    ) from error
                time.sleep(0.5)
        yield port, info
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def _assert_refuses_foreign_host(port):
    """lit-plugins' safety layer is in front: a foreign Host header gets 400."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/get_info", data=b"{}", headers={"Host": "attacker.example"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    refused.value.close()  # the single-threaded server's connection, released now
    assert refused.value.code == 400


def _assert_offers_ours_and_lits(model_info):
    for name in (
        registration.GRADIENT_NORM,
        registration.INTEGRATED_GRADIENTS,
        registration.SALIENCE_CLUSTERING,
        "tcav",
    ):
        assert name in model_info["interpreters"], name
    assert "Hotflip" in model_info["generators"]


@pytest.mark.parametrize("index", range(len(RUN_BLOCKS)))
def test_runnable_block_serves_lit(index, stand_ins, tmp_path):
    """Runs the block as a script on a free port: LIT must answer get_info
    with our interpreters and LIT's TCAV and HotFlip, behind the safety layer."""
    code = _substitute(RUN_BLOCKS[index], stand_ins)
    for placeholder in _placeholders(stand_ins):
        assert placeholder not in code
    script = tmp_path / "snippet.py"
    script.write_text(code)
    with lit_subprocess([str(script)], tmp_path, tmp_path / "snippet.log") as (port, info):
        (model,) = info["models"].values()
        _assert_offers_ours_and_lits(model)
        _assert_refuses_foreign_host(port)


def test_custom_app_serves_its_layout(stand_ins, tmp_path):
    """demos/custom_app.py on a tiny checkpoint and CSV: its layout is the
    default, puts the modules our components feed in view, and our
    interpreters answer."""
    # Read, not imported: the app defines absl flags of its own (--labels, ...), which
    # would clash with the command line's in this test process.
    layout_name = _module_constant(os.path.join(ROOT, "demos", "custom_app.py"), "LAYOUT_NAME")
    args = [
        "-m",
        "demos.custom_app",
        f"--checkpoint={stand_ins['checkpoint']}",
        "--labels=neg,pos",
        f"--dataset={stand_ins['reviews']}",
        "--text_column=text",
    ]
    with lit_subprocess(args, tmp_path, tmp_path / "custom_app.log") as (port, info):
        assert info["defaultLayout"] == layout_name
        layout = info["layouts"][layout_name]
        modules = {  # a module name, or a ModuleConfig dict
            m["module"] if isinstance(m, dict) else m
            for tab in layout["lower"].values()
            for m in tab
        }
        for module in ("salience-map-module", "salience-clustering-module", "tcav-module"):
            assert module in modules
        _assert_offers_ours_and_lits(info["models"]["mine"])
        _assert_refuses_foreign_host(port)
        dataset = os.path.basename(stand_ins["reviews"])
        assert dataset in info["datasets"]
        data = post(port, "get_dataset", {"dataset_name": dataset})
        result = post(
            port,
            "get_interpretations",
            {
                "model": "mine",
                "dataset_name": dataset,
                "interpreter": registration.GRADIENT_NORM,
                "do_predict": 1,
            },
            {"inputs": data[:1], "config": {}},
        )
        assert result[0]["token_grads"]["tokens"][0] == "[CLS]"


def _module_constant(path: str, name: str):
    """The literal value assigned to `name` at a module's top level (without importing it)."""
    import ast

    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{path} assigns no {name}")
