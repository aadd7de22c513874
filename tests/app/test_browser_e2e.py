"""End to end in a real browser: the demo server, LIT's front end in headless
Chromium, and our interpreters rendered by LIT's Salience Maps module, read
as a user sees them (the chips' visible text), plus LIT's icons, the class
names and TX-Ray's answer to a self-comparison.

Needs Debian's Chromium at /usr/bin/chromium (tests/browser_setup.sh installs
it) and the `playwright` package; it never uses the network: every request
that is not to the demo server is aborted, so the icon font must come from
the demo itself (npm package material-icons, installed by ./run).

The README's screenshot (docs/salience_maps.png) is taken here; refresh it
with `UPDATE_README_SCREENSHOT=1 ./run test tests/app/test_browser_e2e.py`.
"""

import math
import os
import re
import shutil
import urllib.error

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from lit_plugins.app import registration
from lit_plugins.data import loaders
from lit_plugins.lit.interpreters import common, neuron_use, trust_checks, txray_shift
from tests.kit import browser as browser_kit
from tests.kit.browser import CHROMIUM_ARGS
from tests.kit.demo_server import ROOT, demo_server, post

# Interpreters that must be registered and exercised. Add new ones here; any
# other interpreter whose name starts with OUR_PREFIX is found in /get_info
# and exercised as well.
OUR_INTERPRETERS = [
    registration.GRADIENT_NORM,
    registration.GRADIENT_DOT_INPUT,
    registration.INTEGRATED_GRADIENTS,
    registration.TXRAY_SHIFT,
    registration.LINEAR_PROBE,
    registration.SALIENCE_FAITHFULNESS,
    registration.LAYER_CONDUCTANCE,
    registration.NEURON_CONDUCTANCE,
]
# Interpreters whose chips are labelled numbers, not a map over the sentence:
# a chip's colour may be 0 (e.g. the random baseline against itself).
LABELLED_CHIP_INTERPRETERS = {registration.SALIENCE_FAITHFULNESS, trust_checks.NAME}
OUR_PREFIX = "lit-plugins:"

MODEL = "minilm-finetuned"
REFERENCE = "minilm-pretrained"  # TX-Ray's default reference in the demo
DATASET = "sentiment-dev"
MAX_EXAMPLES = 48  # held-out part of the probe: 10 sentences
EXAMPLE_INDEX = 2  # the datapoint clicked in the Data Table

README_SCREENSHOT = os.path.join(ROOT, "docs", "salience_maps.png")
SCREENSHOTS: list[str] = []  # where this run saved its screenshot(s)

# Output types LIT's Salience Maps module shows (salience_map_module.ts).
SALIENCE_MAP_TYPES = {"TokenSalience", "FeatureSalience", "ImageSalience", "FrameSalience"}

SERVER_START_S = 240
UI_TIMEOUT_MS = 60_000
INTERPRETER_TIMEOUT_MS = 600_000  # a hang guard: faithfulness runs 7 methods
TCAV_SLICE = "concept"
TCAV_SLICE_SIZE = 4  # LIT's TCAV module needs >= 3 in the slice and outside it


# ---------------------------------------------------------------- helpers --


def _log_tail(server, chars=3000) -> str:
    return "\n--- demo server log (tail) ---\n" + server[1].read_text()[-chars:]


def _types(spec) -> dict:
    return {field: t.get("__name__") for field, t in spec.items()}


def _is_salience_map_interpreter(info, name) -> bool:
    meta = _types(info["interpreters"][name]["metaSpec"])
    return bool(set(meta.values()) & SALIENCE_MAP_TYPES)


DEEP_TEXT_JS = browser_kit.DEEP_TEXT_JS

# Every rendered Material icon (mwc-icon) with its ligature word, the width
# its text takes on screen, and the width of the same word in a text font.
ICON_WIDTHS_JS = """() => {
  const icons = [];
  const walk = root => {
    for (const el of root.querySelectorAll('*')) {
      if (el.tagName === 'MWC-ICON' && el.textContent.trim().length >= 5) icons.push(el);
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  return icons.map(el => {
    const range = document.createRange();
    range.selectNodeContents(el);
    const style = getComputedStyle(el);
    const probe = document.createElement('span');
    probe.style.cssText = `font: ${style.fontSize} sans-serif; white-space: nowrap;`;
    probe.textContent = el.textContent.trim();
    document.body.appendChild(probe);
    const word = probe.getBoundingClientRect().width;
    probe.remove();
    return {text: el.textContent.trim(), width: range.getBoundingClientRect().width,
            word: word, family: style.fontFamily};
  }).filter(i => i.width > 0);
}"""


def _salience_kind(value):
    """'TokenSalience', 'FeatureSalience', ... for a serialized LIT dtype."""
    return value.get("__name__") if isinstance(value, dict) else None


def _default_config(info, name) -> dict:
    """The interpreter's config defaults, as LIT's UI sends them."""
    spec = info["interpreters"][name]["configSpec"]
    return {
        k: t.get("default") for k, t in spec.items() if t.get("__name__") != "SalienceTargetInfo"
    }


def _check_token_salience(where, value, labelled=False):
    tokens, salience = value["tokens"], value["salience"]
    assert len(tokens) > 0, where
    assert len(tokens) == len(salience), where
    assert all(isinstance(t, str) and t for t in tokens), where
    assert all(math.isfinite(v) for v in salience), where
    if not labelled:
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
    chromium = browser_kit.chromium_or_skip()
    port, _ = server
    errors, aborted = [], []

    def route(r):
        url = r.request.url
        if url.startswith(f"http://127.0.0.1:{port}/"):
            r.continue_()
        else:  # no network: web fonts (Roboto, ...) fall back to local ones
            aborted.append(url)
            r.abort()

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
            pg.evaluate("document.fonts.ready.then(() => true)")
            pg.locator(".tab", has_text="Explanations").click()
            pg.locator("salience-map-module").first.wait_for()
            yield pg, errors, aborted
        finally:
            browser.close()


@pytest.fixture(scope="module")
def rendered_maps(server, page, info, our_names, tmp_path_factory):
    """Expands (so runs) each of our salience interpreters in the Salience Maps
    module and waits for its map; returns {name: [group, ...]} where a group is
    {"title", "tokens", "weights", "chips", "text"} read from the page, and
    saves a screenshot of the result."""
    pg = page[0]
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
            # dispatched: an expanded row's chips may lie over the next header
            row.locator("expansion-panel .expansion-header").dispatch_event("click")
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
            panel.locator(".expansion-header").dispatch_event("click")
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
                    _check_token_salience(f"{name}[{i}].{field}", value, _labelled(name, field))
                elif kind == "FeatureSalience":
                    _check_feature_salience(f"{name}[{i}].{field}", value)
                checked += kind is not None
        if _is_salience_map_interpreter(info, name):
            assert checked, f"{name}: no salience in {str(result)[:300]}"


def test_salience_maps_render_in_browser(info, our_names, http_results, rendered_maps, page):
    errors = page[1]
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
            if not _labelled(name, group["title"]):
                assert any(w != 0 for w in group["weights"]), f"{where}: all zero"
            assert group["chips"] == len(group["tokens"]), where
            # The same map as the HTTP API gives for this example, and each
            # chip shows its token as text.
            output = http_results[name][0]
            field = group["title"] or next(iter(output))
            assert field in output, where
            assert _salience_kind(output[field]) == "TokenSalience", where
            if name in LABELLED_CHIP_INTERPRETERS:  # LIT's LIME is unseeded: labels only
                assert _labels(group["tokens"]) == _labels(output[field]["tokens"]), where
            else:
                assert group["tokens"] == output[field]["tokens"], where
            assert group["text"] == group["tokens"], where
    assert not errors, errors
    assert os.path.getsize(SCREENSHOTS[-1]) > 10_000


def _labelled(name: str, field: str) -> bool:
    """Chips of labelled numbers, whose colours may all be 0: Salience Faithfulness, and
    the probe's and TX-Ray's neuron-use field (off by default: one chip saying how to
    start it)."""
    return name in LABELLED_CHIP_INTERPRETERS or field == neuron_use.USE_FIELD


def _labels(texts) -> list[str]:
    """Chip texts with their numbers blanked."""
    return [re.sub(r"-?\d+(\.\d+)?(e[+-]?\d+)?", "#", t) for t in texts]


def _texts(rendered_maps, name, field) -> list[str]:
    """The chips' text of one output field (a lone map has no title)."""
    groups = rendered_maps[name]
    (group,) = [g for g in groups if g["title"] == field or len(groups) == 1]
    return group["text"]


def test_visible_text_of_each_output(rendered_maps, http_results, page):
    """What a user reads: no 'key: undefined', and the lists of the probe,
    TX-Ray and IG's completeness carry their numbers as text."""
    module_text = page[0].locator("salience-map-module").first.evaluate(DEEP_TEXT_JS)
    assert ": undefined" not in module_text
    for name, groups in rendered_maps.items():
        for group in groups:
            assert not any(t.endswith("undefined") for t in group["text"]), (name, group)

    # Gradient maps: the example's word pieces.
    sentence = http_results[registration.GRADIENT_NORM][0]["token_grads"]["tokens"]
    assert sentence[0] == "[CLS]" and sentence[-1] == "[SEP]"
    for name in (registration.GRADIENT_NORM, registration.GRADIENT_DOT_INPUT):
        assert _texts(rendered_maps, name, "token_grads") == sentence

    ig = registration.INTEGRATED_GRADIENTS
    assert _texts(rendered_maps, ig, "token_grads") == sentence
    report = _texts(rendered_maps, ig, "completeness")
    assert re.fullmatch(r"completeness error \d+\.\d{3}%", report[0]), report
    assert re.fullmatch(r"F\(input\) - F\(baseline\) = -?[\d.e+-]+", report[1]), report
    assert report[-1] == "within tolerance", report

    probe = registration.LINEAR_PROBE
    neurons = _texts(rendered_maps, probe, "top_neurons")
    assert 1 <= len(neurons) <= 10
    assert all(re.fullmatch(r"L\d n\d+ = [+-]\d[\d.e+-]*", t) for t in neurons), neurons
    sweep = _texts(rendered_maps, probe, "layer_sweep")
    scores = common.chips_dict(http_results[probe][0]["layer_sweep"])
    assert sweep == [f"{layer} = {score:.3f}" for layer, score in scores.items()]
    assert list(scores) == [f"layer {i}" for i in range(7)]

    shifted = _texts(rendered_maps, registration.TXRAY_SHIFT, "shifted_neurons")
    assert len(shifted) == 10
    # Distance [bootstrap interval], support; ranked by the interval's lower bound.
    pattern = r"L6 n\d+: .+ → .+ = (\d\.\d{3}) \[(\d\.\d{2}), (\d\.\d{2})\], support \d+"
    assert all(re.fullmatch(pattern, t) for t in shifted), shifted
    numbers = [[float(g) for g in re.fullmatch(pattern, t).groups()] for t in shifted]
    lows = [low for _, low, _ in numbers]
    assert lows == sorted(lows, reverse=True) and lows[0] > 0.3, shifted
    assert all(low - 0.005 <= d <= high + 0.005 for d, low, high in numbers), shifted

    # The probe's neurons: do they matter for the decision? Off by default
    # (minutes on a CPU): one chip says how to start it (the chips of a run
    # check: tests/lit/interpreters/test_neuron_use.py).
    use = _texts(rendered_maps, probe, "use_for_decision")
    assert use == [neuron_use.OFF_TEXT], use

    # Conductance: per-token map of the sentence, the layer's top neurons,
    # completeness; neuron conductance through the example's top 3 neurons.
    layer_cond = registration.LAYER_CONDUCTANCE
    assert _texts(rendered_maps, layer_cond, "token_conductance") == sentence
    top = _texts(rendered_maps, layer_cond, "top_neurons")
    assert len(top) == 10 and all(re.fullmatch(r"L3 n\d+ = [+-][\d.e+-]+", t) for t in top), top
    report = _texts(rendered_maps, layer_cond, "completeness")
    assert report[-1] == "within tolerance", report
    named = _texts(rendered_maps, registration.NEURON_CONDUCTANCE, "neurons")
    assert [t.split(" = ")[0] for t in named] == [t.split(" = ")[0] for t in top[:3]], named
    for label in [t.split(" = ")[0] for t in named]:
        assert _texts(rendered_maps, registration.NEURON_CONDUCTANCE, label) == sentence

    # Faithfulness: one row per salience method the demo serves (LIT's four,
    # our three) and the random baseline, each with its five scores as text.
    faith = registration.SALIENCE_FAITHFULNESS
    titles = [g["title"] for g in rendered_maps[faith]]
    methods = [
        "Grad L2 Norm",
        "Grad ⋅ Input",
        "Integrated Gradients",
        "LIME",
        registration.GRADIENT_NORM,
        registration.GRADIENT_DOT_INPUT,
        registration.INTEGRATED_GRADIENTS,
        registration.LAYER_CONDUCTANCE,
        "random",
    ]
    assert set(methods) <= set(titles), titles
    score = r"-?\d\.\d{4}|n/a"
    for method in methods:
        chips = _texts(rendered_maps, faith, method)
        labels = [
            "comprehensiveness ↑",
            "sufficiency ↓",
            "deletion AUC ↓",
            "insertion AUC ↑",
            "τ-LOO ↑",
        ]
        assert [c.rsplit(" = ", 1)[0] for c in chips] == labels, (method, chips)
        assert all(re.fullmatch(score, c.rsplit(" = ", 1)[1]) for c in chips), (method, chips)
    settings = _texts(rendered_maps, faith, "settings")
    assert settings[0] == "removal: word pieces deleted", settings
    summary = _texts(rendered_maps, faith, "summary · comprehensiveness ↑")
    assert summary[0] == "1 example selected", summary
    interval = rf"({score}) \[({score}), ({score})\]"
    assert {c.rsplit(": ", 1)[0] for c in summary[1:]} == set(methods), summary
    assert all(re.fullmatch(interval, c.rsplit(": ", 1)[1]) for c in summary[1:]), summary


def test_class_names_are_shown(page, examples):
    """The bundled data's classes read 'negative'/'positive', not 0/1."""
    pg = page[0]
    labels = {ex["data"]["label"] for ex in examples}
    assert labels == set(loaders.SENTIMENT_LABELS)
    table = pg.locator("lit-data-table").first.evaluate(DEEP_TEXT_JS)
    results = pg.locator("classification-module").evaluate_all(
        f"els => els.map({DEEP_TEXT_JS}).join(' ')"
    )
    for name in loaders.SENTIMENT_LABELS:
        assert name in table and name in results, (table[:300], results[:300])


def test_icons_render_as_glyphs(page):
    """LIT's icons come from the demo's own copy of the Material icon font:
    with the network cut, an icon's ligature word ('search', 'settings')
    takes the width of one glyph, not of the word."""
    pg, _, aborted = page
    assert not [u for u in aborted if "Material" in u], aborted
    assert pg.evaluate("document.fonts.check(\"24px 'Material Icons'\")")
    icons = pg.evaluate(ICON_WIDTHS_JS)
    assert icons, "no Material icon on the page"
    for icon in icons:
        assert "Material Icons" in icon["family"], icon
        assert icon["width"] < 0.5 * icon["word"], icon  # a glyph, not the word


def test_txray_self_comparison_is_explained_in_the_ui(page, rendered_maps):
    """Choosing the selected model as TX-Ray's reference gives LIT's error
    bar TX-Ray's explanation, not a list of zeros."""
    del rendered_maps  # runs after the maps (and the screenshot)
    pg = page[0]
    module = pg.locator("salience-map-module").first
    row = module.locator(f'div.method-row[id="{registration.TXRAY_SHIFT.lower()}"]')
    row.locator(".controls-toggle mwc-icon").dispatch_event("click")
    controls = row.locator("lit-interpreter-controls")
    reference = controls.locator("select").first
    reference.select_option(label=MODEL)
    controls.locator("button", has_text="Apply").click()
    message = pg.get_by_text(txray_shift.SELF_COMPARISON).first
    message.wait_for(timeout=INTERPRETER_TIMEOUT_MS)
    text = message.inner_text()
    assert f"reference '{MODEL}' is the selected model" in text, text
    assert REFERENCE in text and "--reference_model" in text, text
    # Back to a real comparison: the list of shifted neurons returns.
    reference.select_option(label=REFERENCE)
    controls.locator("button", has_text="Apply").click()
    pg.wait_for_function(
        """row => [...row.querySelectorAll('lit-token-chips')].some(
            c => (c.tokensWithWeights || []).some(t => / = \\d\\.\\d{3}( \\[|$)/.test(t.token)))""",
        arg=row.element_handle(),
        timeout=INTERPRETER_TIMEOUT_MS,
    )


def test_hotflip_from_the_counterfactuals_tab(page):
    """LIT's HotFlip on our wrapper, as a user runs it: the selected datapoint,
    Counterfactuals tab, the Hotflip panel's settings, Apply."""
    pg, errors, _ = page
    seen = len(errors)  # earlier tests' expected errors (TX-Ray self-comparison)
    pg.locator(".tab", has_text="Counterfactuals").click()
    module = pg.locator("generator-module").first
    panel = module.locator("lit-interpreter-controls", has_text="Hotflip")
    panel.locator("expansion-panel .expansion-header").first.click()
    controls = panel.locator(".control-holder")
    settings = {
        "Max number of counterfactuals to generate": "1",
        "Max number of token flips": "2",
        "Comma-separated list of tokens to never flip": "[CLS],[SEP]",
    }
    for label, value in settings.items():
        controls.filter(has_text=label).locator("input").fill(value)
    prediction = controls.filter(has_text="Prediction key").locator("select")
    assert prediction.locator("option").all_inner_texts() == ["probas"]
    tokens = controls.filter(has_text="Fields to flip tokens in")
    assert tokens.evaluate(DEEP_TEXT_JS).strip().endswith("tokens")
    panel.locator("button", has_text="Apply").click()
    status = module.get_by_text("Hotflip: generated")
    status.wait_for(timeout=INTERPRETER_TIMEOUT_MS)
    assert status.inner_text().startswith("Hotflip: generated 1 counterfactual from 1 input")
    table = module.locator(".results-holder lit-data-table").evaluate(DEEP_TEXT_JS)
    # The flipped word pieces, [CLS] and [SEP] kept (never flipped).
    assert re.search(r"\[CLS\] far more moving .* \[SEP\]", table), table[:500]
    assert not errors[seen:], errors[seen:]


def test_tcav_from_its_tab(page, examples):
    """LIT's TCAV on our wrapper (through `cls_grad`), as a user runs it:
    select datapoints, make a slice of them, tick it in the TCAV tab, Run."""
    pg, errors, _ = page
    seen = len(errors)
    pg.locator(".tab", has_text="Predictions").click()
    rows = pg.locator("data-table-module lit-data-table tbody tr")  # not HotFlip's table
    # Dispatched: the upper area is minimised since the screenshot, its rows
    # lie under the table's footer. Ctrl-click adds a row to the selection.
    rows.nth(0).dispatch_event("click")
    for i in range(1, TCAV_SLICE_SIZE):
        rows.nth(i).dispatch_event("click", {"ctrlKey": True})
    pg.get_by_text(f"{TCAV_SLICE_SIZE} of {len(examples)} selected").wait_for()
    pg.locator("button", has_text="Slices").first.click()
    pg.locator("lit-slice-module input#input-box").fill(TCAV_SLICE)
    pg.locator("lit-slice-module button", has_text="Create slice").click()
    pg.keyboard.press("Escape")
    pg.locator(".tab", has_text="TCAV").click()
    module = pg.locator("tcav-module").first
    slice_row = module.locator("lit-data-table tbody tr", has_text=TCAV_SLICE).first
    slice_row.locator("lit-checkbox").first.click()
    module.get_by_text("1 CAV Results").wait_for()
    module.locator("button#submit").click()
    result = module.locator("#vis-container lit-data-table tbody tr").first
    result.wait_for(timeout=INTERPRETER_TIMEOUT_MS)
    text = result.evaluate(DEEP_TEXT_JS).strip()
    # Slice, negative slice, run, embedding (our model's cls_grad), class,
    # then a score with its bar or LIT's note that it is not significant.
    assert re.match(rf"{TCAV_SLICE} - 0 cls_grad (negative|positive) ", text), text
    assert re.search(r"\d\.\d{3}|not statistically significant", text), text
    assert not errors[seen:], errors[seen:]
