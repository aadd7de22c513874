"""The demo server serves both MiniLMs on the bundled data, and our
interpreters answer through LIT's HTTP API."""

import urllib.error

import numpy as np
import pytest
from demo_helpers import demo_server
from demo_helpers import post as _post

from lit_plugins import registration


@pytest.fixture(scope="module")
def server(minilm_finetuned, tmp_path_factory):
    del minilm_finetuned  # the fixture caches the fine-tuned checkpoint first
    log = tmp_path_factory.mktemp("demo_test_server") / "server.log"
    with demo_server(log, max_examples=12, extra_args=("--batch_size=16",)) as (port, _, _):
        yield port


def test_serves_both_models_on_bundled_data(server):
    info = _post(server, "get_info")
    assert set(info["models"]) == {"minilm-finetuned", "minilm-pretrained"}
    assert "sentiment-dev" in info["datasets"]
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
