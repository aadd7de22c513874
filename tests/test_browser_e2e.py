"""End to end in a real browser: the demo server, LIT's front end in headless
Chromium, and our interpreters rendered by LIT's Salience Maps module.

Needs Debian's Chromium at /usr/bin/chromium (tests/browser_setup.sh installs
it, with a local Material icon font) and the `playwright` package; it never
uses the network: every request that is not to the demo server is answered
locally (icon font) or aborted (web fonts).
"""

import contextlib
import math
import os
import shutil
import subprocess
import urllib.error

import pytest
from demo_helpers import demo_server, post
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from lit_plugins import registration

# Interpreters that must be registered and exercised. Add new ones here; any
# other interpreter whose name starts with OUR_PREFIX is found in /get_info
# and exercised as well.
OUR_INTERPRETERS = [
    registration.GRADIENT_NORM,
    registration.GRADIENT_DOT_INPUT,
    registration.INTEGRATED_GRADIENTS,
    registration.TXRAY_SHIFT,
]
OUR_PREFIX = "lit-plugins:"

MODEL = "minilm-finetuned"
DATASET = "sentiment-dev"
MAX_EXAMPLES = 8
EXAMPLE_INDEX = 2  # the datapoint clicked in the Data Table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README_SCREENSHOT = os.path.join(ROOT, "docs", "salience_maps.png")
SCREENSHOTS: list[str] = []  # where this run saved its screenshot(s)
SETUP_SCRIPT = os.path.join(ROOT, "tests", "browser_setup.sh")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
ICON_FONT_FILES = [
    "/usr/share/fonts/woff/material-design-icons-iconfont/MaterialIcons-Regular.woff2",
    "/usr/share/fonts/truetype/material-design-icons-iconfont/MaterialIcons-Regular.ttf",
]
# The URL the icon font is "served" from; the route handler answers it.
ICON_FONT_URL = "https://fonts.gstatic.com/lit-plugins-local/MaterialIcons"

# Output types LIT's Salience Maps module shows (salience_map_module.ts).
SALIENCE_MAP_TYPES = {"TokenSalience", "FeatureSalience", "ImageSalience", "FrameSalience"}

SERVER_START_S = 240
UI_TIMEOUT_MS = 60_000
INTERPRETER_TIMEOUT_MS = 120_000


# ---------------------------------------------------------------- helpers --


def _log_tail(server, chars=3000) -> str:
    return "\n--- demo server log (tail) ---\n" + server[1].read_text()[-chars:]


def _chromium_or_skip() -> str:
    """Chromium's path; installs it with browser_setup.sh if missing."""
    if not os.access(CHROMIUM, os.X_OK):
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                ["bash", SETUP_SCRIPT],
                timeout=600,
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing and tests/browser_setup.sh could not install it")
    return CHROMIUM


def _types(spec) -> dict:
    return {field: t.get("__name__") for field, t in spec.items()}


def _is_salience_map_interpreter(info, name) -> bool:
    meta = _types(info["interpreters"][name]["metaSpec"])
    return bool(set(meta.values()) & SALIENCE_MAP_TYPES)


def _icon_font_css() -> str:
    faces = "".join(
        f"@font-face {{ font-family: '{family}'; font-style: normal; "
        f"font-weight: 400; font-display: block; src: url({ICON_FONT_URL}); }}\n"
        for family in ("Material Icons", "Material Icons Outlined", "Google Material Icons")
    )
    return faces + (
        ".material-icons, .material-icons-outlined { font-family: "
        "'Material Icons'; font-weight: normal; font-style: normal; "
        "line-height: 1; letter-spacing: normal; text-transform: none; "
        "display: inline-block; white-space: nowrap; word-wrap: normal; "
        "direction: ltr; font-feature-settings: 'liga'; }\n"
    )


def _salience_kind(value):
    """'TokenSalience', 'FeatureSalience', ... for a serialized LIT dtype."""
    return value.get("__name__") if isinstance(value, dict) else None


def _default_config(info, name) -> dict:
    """The interpreter's config defaults, as LIT's UI sends them."""
    spec = info["interpreters"][name]["configSpec"]
    return {
        k: t.get("default") for k, t in spec.items() if t.get("__name__") != "SalienceTargetInfo"
    }


def _check_token_salience(where, value):
    tokens, salience = value["tokens"], value["salience"]
    assert len(tokens) > 0, where
    assert len(tokens) == len(salience), where
    assert all(isinstance(t, str) and t for t in tokens), where
    assert all(math.isfinite(v) for v in salience), where
    assert any(v != 0 for v in salience), f"{where}: all-zero salience"


def _check_feature_salience(where, value):
    salience = value["salience"]
    assert isinstance(salience, dict) and salience, f"{where}: empty"
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in salience.values()), where


# --------------------------------------------------------------- fixtures --


@pytest.fixture(scope="module")
def server(minilm_finetuned, tmp_path_factory):
    """The demo server on a free port; yields (port, log path)."""
    del minilm_finetuned  # the fixture caches the fine-tuned checkpoint first
    log_path = tmp_path_factory.mktemp("demo_server") / "server.log"
    with demo_server(log_path, MAX_EXAMPLES, SERVER_START_S, ("--batch_size=16",)) as (
        port,
        log,
        _,
    ):
        yield port, log


@pytest.fixture(scope="module")
def port(server):
    return server[0]


@pytest.fixture(scope="module")
def info(port):
    return post(port, "get_info")


@pytest.fixture(scope="module")
def examples(port):
    return post(port, "get_dataset", {"dataset_name": DATASET})


@pytest.fixture(scope="module")
def our_names(info):
    """OUR_INTERPRETERS plus every other registered 'lit-plugins:' name."""
    discovered = [n for n in info["interpreters"] if n.startswith(OUR_PREFIX)]
    return list(dict.fromkeys(OUR_INTERPRETERS + discovered))


@pytest.fixture(scope="module")
def http_results(server, info, examples, our_names):
    """/get_interpretations for each of ours: salience methods on the clicked
    example (as the UI asks), others on the whole (small) dataset."""
    port, results = server[0], {}
    for name in our_names:
        if name not in info["interpreters"]:
            continue  # reported by test_ours_are_registered
        inputs = [examples[EXAMPLE_INDEX]] if _is_salience_map_interpreter(info, name) else examples
        try:
            results[name] = post(
                port,
                "get_interpretations",
                {"model": MODEL, "dataset_name": DATASET, "interpreter": name, "do_predict": 1},
                {"inputs": inputs, "config": _default_config(info, name)},
            )
        except urllib.error.HTTPError as e:
            results[name] = RuntimeError(f"{e}{_log_tail(server)}")
    return results


@pytest.fixture(scope="module")
def page(server, examples):
    """LIT in headless Chromium: datapoint EXAMPLE_INDEX selected in the Data
    Table and the 'Explanations' tab open. Yields (page, errors)."""
    chromium = _chromium_or_skip()
    port, _ = server
    font = next((f for f in ICON_FONT_FILES if os.path.exists(f)), None)
    css = _icon_font_css()
    errors = []

    def route(r):
        url = r.request.url
        if url.startswith(f"http://127.0.0.1:{port}/"):
            r.continue_()
        elif font and "fonts.googleapis.com" in url and "Material" in url:
            r.fulfill(status=200, content_type="text/css", body=css)
        elif font and url == ICON_FONT_URL:
            r.fulfill(status=200, path=font, headers={"Access-Control-Allow-Origin": "*"})
        else:
            r.abort()  # no network: other web fonts fall back to local ones

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True, timeout=UI_TIMEOUT_MS
        )
        try:
            pg = browser.new_page(viewport={"width": 1600, "height": 1400})
            pg.set_default_timeout(UI_TIMEOUT_MS)
            pg.route("**/*", route)
            pg.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
            pg.goto(
                f"http://127.0.0.1:{port}/?models={MODEL}&dataset={DATASET}",
                wait_until="domcontentloaded",
            )
            rows = pg.locator("lit-data-table tbody tr")
            sentence = examples[EXAMPLE_INDEX]["data"]["sentence"]
            row = rows.filter(has_text=sentence[:60]).first
            row.wait_for()
            row.click()
            pg.get_by_text(f"1 of {len(examples)} datapoints").wait_for()
            pg.locator(".tab", has_text="Explanations").click()
            pg.locator("salience-map-module").first.wait_for()
            yield pg, errors
        finally:
            browser.close()


@pytest.fixture(scope="module")
def rendered_maps(server, page, info, our_names, tmp_path_factory):
    """Expands (so runs) each of our salience interpreters in the Salience Maps
    module and waits for its map; returns {name: [group, ...]} where a group is
    {"title", "tokens", "weights", "chips", "text"} read from the page, and
    saves a screenshot of the result."""
    pg, _ = page
    module = pg.locator("salience-map-module").first
    names = [
        n for n in our_names if n in info["interpreters"] and _is_salience_map_interpreter(info, n)
    ]
    row_ids = pg.evaluate("ns => ns.map(n => n.toLowerCase())", names)
    maps = {}
    for name, row_id in zip(names, row_ids):
        quoted = row_id.replace("\\", "\\\\").replace('"', '\\"')
        row = module.locator(f'div.method-row[id="{quoted}"]')
        row.wait_for()
        if not row.locator("expansion-panel").evaluate("e => e.expanded"):
            row.locator("expansion-panel .expansion-header").click()
        handle = row.element_handle()
        try:
            pg.wait_for_function(
                """row => !row.querySelector('lit-spinner') &&
                    [...row.querySelectorAll('lit-token-chips')].some(
                        c => (c.tokensWithWeights || []).length > 0)""",
                arg=handle,
                timeout=INTERPRETER_TIMEOUT_MS,
            )
        except PlaywrightTimeout:
            pytest.fail(
                f"{name}: no salience map rendered in the browser within "
                f"{INTERPRETER_TIMEOUT_MS / 1000:.0f}s{_log_tail(server)}"
            )
        row.scroll_into_view_if_needed()
        maps[name] = handle.evaluate("""row => [...row.querySelectorAll(
        'lit-token-chips')].map(c => {
          const title = c.parentElement.querySelector('.tokens-group-title');
          const chips = [...c.shadowRoot.querySelectorAll('.salient-token')];
          return {title: title ? title.textContent.trim() : null,
                  tokens: c.tokensWithWeights.map(t => t.token),
                  weights: c.tokensWithWeights.map(t => t.weight),
                  chips: chips.length,
                  text: chips.map(e => e.innerText.trim())};
        })""")
    # README screenshot: lower area maximised, LIT's own salience methods
    # collapsed, ours scrolled into view, no hover tooltip.
    pg.locator(".preset-buttons mwc-icon", has_text="vertical_align_top").click()
    for panel in module.locator("div.method-row expansion-panel").all():
        if (
            panel.evaluate("e => e.expanded")
            and panel.evaluate("e => e.parentElement.id") not in row_ids
        ):
            panel.locator(".expansion-header").click()
    if names:
        module.locator("div.method-row").nth(
            module.locator("div.method-row").evaluate_all(
                "(rows, id) => rows.findIndex(r => r.id === id)", row_ids[0]
            )
        ).evaluate("e => e.scrollIntoView({block: 'start'})")
    pg.mouse.move(0, 0)
    pg.wait_for_timeout(500)
    shot = tmp_path_factory.mktemp("screenshots") / "salience_maps.png"
    pg.screenshot(path=str(shot), full_page=True)
    if os.environ.get("UPDATE_README_SCREENSHOT"):  # refresh docs/ on demand
        os.makedirs(os.path.dirname(README_SCREENSHOT), exist_ok=True)
        shutil.copyfile(shot, README_SCREENSHOT)
    SCREENSHOTS.append(str(shot))
    return maps


# ------------------------------------------------------------------ tests --


def test_ours_are_registered(info, our_names):
    for name in OUR_INTERPRETERS:
        assert name in info["interpreters"], f"{name!r} is not registered"
    for name in our_names:
        assert name in info["models"][MODEL]["interpreters"], f"{name!r} is not offered for {MODEL}"


def test_interpretations_over_http(info, our_names, http_results):
    for name in our_names:
        result = http_results[name]
        assert not isinstance(result, Exception), f"{name}: {result}"
        assert result, f"{name}: empty result"
        outputs = result if isinstance(result, list) else [result]
        checked = 0
        for i, output in enumerate(outputs):
            for field, value in output.items() if isinstance(output, dict) else ():
                kind = _salience_kind(value)
                if kind == "TokenSalience":
                    _check_token_salience(f"{name}[{i}].{field}", value)
                elif kind == "FeatureSalience":
                    _check_feature_salience(f"{name}[{i}].{field}", value)
                checked += kind is not None
        if _is_salience_map_interpreter(info, name):
            assert checked, f"{name}: no salience in {str(result)[:300]}"


def test_salience_maps_render_in_browser(info, our_names, http_results, rendered_maps, page):
    _, errors = page
    expected = [
        n for n in our_names if n in info["interpreters"] and _is_salience_map_interpreter(info, n)
    ]
    assert expected, "none of our interpreters is a salience method"
    assert list(rendered_maps) == expected
    for name, groups in rendered_maps.items():
        assert groups, f"{name}: no map rendered"
        for group in groups:
            where = f"{name}/{group['title']}"
            assert group["tokens"], f"{where}: no tokens"
            assert len(group["weights"]) == len(group["tokens"]), where
            assert all(
                isinstance(w, (int, float)) and math.isfinite(w) for w in group["weights"]
            ), where
            assert any(w != 0 for w in group["weights"]), f"{where}: all zero"
            assert group["chips"] == len(group["tokens"]), where
            assert any(group["text"]), f"{where}: chips have no text"
            # The same map as the HTTP API gives for this example.
            output = http_results[name][0]
            field = group["title"] or next(iter(output))
            assert field in output, where
            kind = _salience_kind(output[field])
            if kind == "TokenSalience":
                assert group["tokens"] == output[field]["tokens"], where
            elif kind == "FeatureSalience":
                keys = {t.rsplit(": ", 1)[0] for t in group["tokens"]}
                assert keys == set(output[field]["salience"]), where
    assert not errors, errors
    assert os.path.getsize(SCREENSHOTS[-1]) > 10_000


def test_feature_salience_chips_are_labelled(rendered_maps):
    """Known LIT front-end limitation, kept visible: LIT's Salience Maps labels
    a FeatureSalience key as 'key: <the input field of that name>', so keys that
    are not input fields (IG's 'completeness' diagnostics, TX-Ray's neurons)
    read 'key: undefined'. Expected to fail (xfail) until that is addressed."""
    unlabelled = {
        f"{name}/{group['title']}": group["tokens"]
        for name, groups in rendered_maps.items()
        for group in groups
        if any(t.endswith(": undefined") for t in group["tokens"])
    }
    if unlabelled:
        pytest.xfail(f"FeatureSalience chips read 'key: undefined': {unlabelled}")
