"""The demo server serves both MiniLMs on the bundled data, and our
interpreters answer through LIT's HTTP API."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest

from lit_plugins import registration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _post(port, path, params=None, body=None):
  url = f"http://127.0.0.1:{port}/{path}"
  if params:
    url += "?" + urllib.parse.urlencode(params)
  req = urllib.request.Request(url, data=json.dumps(body or {}).encode(),
                               headers={"Content-Type": "application/json"})
  with urllib.request.urlopen(req, timeout=300) as resp:
    return json.loads(resp.read())


@pytest.fixture(scope="module")
def server(minilm_finetuned):  # the fixture caches the fine-tuned checkpoint
  del minilm_finetuned
  port = _free_port()
  proc = subprocess.Popen(
      [sys.executable, "-m", "demos.demo", f"--port={port}",
       "--max_examples=12", "--batch_size=16"],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      env={**os.environ, "HF_HUB_OFFLINE": "1"})
  deadline = time.time() + 240
  while time.time() < deadline:
    try:
      _post(port, "get_info")
      break
    except OSError:
      if proc.poll() is not None:
        raise RuntimeError(proc.stdout.read())
      time.sleep(1)
  else:
    proc.kill()
    raise RuntimeError("demo server did not start")
  yield port
  proc.terminate()
  proc.wait(timeout=30)


def test_serves_both_models_on_bundled_data(server):
  info = _post(server, "get_info")
  assert set(info["models"]) == {"minilm-finetuned", "minilm-pretrained"}
  assert "sentiment-dev" in info["datasets"]
  for name in info["models"]:
    names = info["models"][name]["interpreters"]
    for ours in (registration.GRADIENT_NORM, registration.GRADIENT_DOT_INPUT,
                 registration.INTEGRATED_GRADIENTS, "Integrated Gradients"):
      assert ours in names


def test_interpretations_over_http(server):
  data = _post(server, "get_dataset", {"dataset_name": "sentiment-dev"})
  assert len(data) == 12
  example = data[0]
  for name, config in [
      (registration.GRADIENT_NORM, {}),
      (registration.GRADIENT_DOT_INPUT, {}),
      (registration.INTEGRATED_GRADIENTS,
       {"Completeness tolerance (0 = fixed steps)": 0.01})]:
    result = _post(server, "get_interpretations",
                   {"model": "minilm-finetuned",
                    "dataset_name": "sentiment-dev", "interpreter": name,
                    "do_predict": 1},
                   {"inputs": [example], "config": config})
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
    _post(server, "get_interpretations",
          {"model": "minilm-finetuned", "dataset_name": "sentiment-dev",
           "interpreter": registration.INTEGRATED_GRADIENTS, "do_predict": 1},
          {"inputs": [data[0]], "config": {"Interpolation steps": "abc"}})
  assert _post(server, "get_info")["models"]
