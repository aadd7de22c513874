"""The demo server serves both MiniLMs on the bundled data, and our
interpreters answer through LIT's HTTP API; LIT's icon font is served by the
demo itself; a user's own model, CSV and class names, with and without a
TX-Ray reference."""

import csv
import urllib.error
import urllib.request

import numpy as np
import pytest

from lit_plugins.app import offline_ui, registration
from lit_plugins.lit.interpreters import common, txray_shift
from tests.kit.demo_server import demo_server
from tests.kit.demo_server import post as _post

CLASSES = ["negative", "positive"]


@pytest.fixture(scope="module")
def server(minilm_finetuned, tmp_path_factory):
    del minilm_finetuned  # the fixture caches the fine-tuned checkpoint first
    log = tmp_path_factory.mktemp("demo_test_server") / "server.log"
    with demo_server(log, max_examples=12, extra_args=("--batch_size=16",)) as (port, _, _):
        yield port


def _get(port, path) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=60) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read()


def test_serves_both_models_on_bundled_data(server):
    info = _post(server, "get_info")
    assert set(info["models"]) == {"minilm-finetuned", "minilm-pretrained"}
    assert "sentiment-dev" in info["datasets"]
    # Named classes everywhere the UI shows them: the data, its spec, the predictions.
    assert info["datasets"]["sentiment-dev"]["spec"]["label"]["vocab"] == CLASSES
    for name in info["models"]:
        assert info["models"][name]["spec"]["output"]["probas"]["vocab"] == CLASSES
    data = _post(server, "get_dataset", {"dataset_name": "sentiment-dev"})
    assert {d["data"]["label"] for d in data} == set(CLASSES)
    for name in info["models"]:
        names = info["models"][name]["interpreters"]
        for ours in (
            registration.GRADIENT_NORM,
            registration.GRADIENT_DOT_INPUT,
            registration.INTEGRATED_GRADIENTS,
            "Integrated Gradients",
        ):
            assert ours in names


def test_interpretations_over_http(server):
    data = _post(server, "get_dataset", {"dataset_name": "sentiment-dev"})
    assert len(data) == 12
    example = data[0]
    for name, config in [
        (registration.GRADIENT_NORM, {}),
        (registration.GRADIENT_DOT_INPUT, {}),
        (registration.INTEGRATED_GRADIENTS, {"Completeness tolerance (0 = fixed steps)": 0.01}),
    ]:
        result = _post(
            server,
            "get_interpretations",
            {
                "model": "minilm-finetuned",
                "dataset_name": "sentiment-dev",
                "interpreter": name,
                "do_predict": 1,
            },
            {"inputs": [example], "config": config},
        )
        assert len(result) == 1
        salience = result[0]["token_grads"]
        assert salience["tokens"][0] == "[CLS]"
        values = np.asarray(salience["salience"])
        assert len(values) == len(salience["tokens"]) and np.abs(values).sum() > 0
        if name == registration.INTEGRATED_GRADIENTS:
            err = result[0]["completeness"]["salience"][0]  # relative error first
            assert 0 <= err <= 0.01


def test_bad_config_is_an_error_and_the_server_keeps_serving(server):
    data = _post(server, "get_dataset", {"dataset_name": "sentiment-dev"})
    with pytest.raises(urllib.error.HTTPError):
        _post(
            server,
            "get_interpretations",
            {
                "model": "minilm-finetuned",
                "dataset_name": "sentiment-dev",
                "interpreter": registration.INTEGRATED_GRADIENTS,
                "do_predict": 1,
            },
            {"inputs": [data[0]], "config": {"Interpolation steps": "abc"}},
        )
    assert _post(server, "get_info")["models"]


def test_icon_font_is_served_by_the_demo(server):
    """LIT's index.html links the icon font on the web; the demo serves its
    own copy (npm package material-icons, installed by ./run)."""
    status, _, index = _get(server, "")
    assert status == 200
    index = index.decode()
    assert offline_ui.ICONS_CSS in index and "Material+Icons" not in index
    status, kind, css = _get(server, offline_ui.ICONS_CSS)
    assert status == 200 and kind.startswith("text/css")
    assert b"font-family: 'Material Icons'" in css
    for font in (offline_ui.REGULAR, offline_ui.OUTLINED):
        status, _, body = _get(server, f"static/{offline_ui.ICONS_DIR}/{font}")
        assert status == 200 and body[:4] == b"wOF2" and len(body) > 50_000
    assert _get(server, "main.js")[0] == 200  # the rest of LIT's client as before


# ------------------------------------ a user's own model, data and labels --
@pytest.fixture(scope="module")
def own_csv(tmp_path_factory, dev_examples):
    """The bundled dev sentences as a user's CSV with 0/1 labels."""
    path = tmp_path_factory.mktemp("own_data") / "reviews.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "stars"])
        for ex in dev_examples[:12]:
            writer.writerow([ex["sentence"], CLASSES.index(ex["label"])])
    return path


def _own_server(tmp_path_factory, own_csv, *extra):
    from lit_plugins.hf import finetune
    from lit_plugins.lit import demo_models

    log = tmp_path_factory.mktemp("own_server") / "server.log"
    args = (
        f"--models=mine:{demo_models.finetuned_checkpoint()}",
        f"--dataset={own_csv}",
        "--text_fields=sentence=review",
        "--label_column=stars",
        "--labels=negative,positive",
        "--batch_size=16",
        *(a.format(base=finetune.default_model_dir()) for a in extra),
    )
    return demo_server(log, max_examples=12, extra_args=args)


def _txray(port, data, config=None):
    return _post(
        port,
        "get_interpretations",
        {"model": "mine", "dataset_name": "reviews.csv", "interpreter": registration.TXRAY_SHIFT},
        {"inputs": data[:1], "config": config or {}},
    )


def test_own_model_without_reference_says_what_txray_needs(
    minilm_finetuned, tmp_path_factory, own_csv
):
    """`./run demo --models=mine:DIR --dataset=CSV --labels=...`: class names
    replace the CSV's 0/1, and TX-Ray, with no other model to compare with,
    says what it needs instead of showing ten distances of 0.0."""
    del minilm_finetuned
    with _own_server(tmp_path_factory, own_csv) as (port, _, _):
        info = _post(port, "get_info")
        assert info["datasets"]["reviews.csv"]["spec"]["label"]["vocab"] == CLASSES
        data = _post(port, "get_dataset", {"dataset_name": "reviews.csv"})
        assert {d["data"]["label"] for d in data} == set(CLASSES)
        with pytest.raises(urllib.error.HTTPError) as error:
            _txray(port, data)
        body = error.value.read().decode()
        assert txray_shift.SELF_COMPARISON in body and "--reference_model" in body


def test_own_model_with_reference_model(minilm_finetuned, tmp_path_factory, own_csv):
    """--reference_model loads one more checkpoint, as TX-Ray's reference only."""
    del minilm_finetuned
    with _own_server(tmp_path_factory, own_csv, "--reference_model=base:{base}") as (port, _, _):
        info = _post(port, "get_info")
        assert list(info["models"]) == ["mine"]  # compared with, not served
        spec = info["interpreters"][registration.TXRAY_SHIFT]["configSpec"]
        assert spec[txray_shift.REFERENCE_KEY]["default"] == "base"
        data = _post(port, "get_dataset", {"dataset_name": "reviews.csv"})
        (result,) = _txray(port, data, {txray_shift.LAYER_KEY: 6})
        shifted = common.chips_dict(result[txray_shift.SHIFTED_NEURONS])
        assert len(shifted) == 10 and all(d > 0 for d in shifted.values())
        with pytest.raises(urllib.error.HTTPError) as error:
            _txray(port, data, {txray_shift.REFERENCE_KEY: "mine"})
        assert txray_shift.SELF_COMPARISON in error.value.read().decode()
