"""Starting the demo server and calling LIT's HTTP API, for the tests that
run a real server (demo, browser, hardening, concurrency)."""

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HTTP_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port, path, params=None, body=None, timeout=HTTP_TIMEOUT_S):
    """POSTs JSON to the server's `path` and returns the decoded reply."""
    url = f"http://127.0.0.1:{port}/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    req = urllib.request.Request(
        url, data=json.dumps(body or {}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


@contextlib.contextmanager
def demo_server(log_path, max_examples=8, start_s=240, extra_args=()):
    """Runs `python -m demos.demo` on a free loopback port; yields
    (port, log_path, pid) and always stops the server."""
    port = free_port()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "demos.demo",
                f"--port={port}",
                f"--max_examples={max_examples}",
                # A store of its own per server: no test reads another's predictions.
                *(
                    []
                    if any(a.startswith(("--cache_dir", "--no_cache")) for a in extra_args)
                    else [f"--cache_dir={log_path.parent / 'served-cache'}"]
                ),
                *extra_args,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        )
    try:
        deadline = time.time() + start_s
        while True:
            try:
                post(port, "get_info", timeout=10)
                break
            except OSError as error:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(
                        "demo server did not start:\n" + log_path.read_text()[-3000:]
                    ) from error
                time.sleep(0.5)
        yield port, log_path, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def count_in_log(log_path, pattern) -> int:
    return len(re.findall(pattern, log_path.read_text()))


def interpret(
    port, interpreter, inputs, config=None, model="minilm-finetuned", dataset="sentiment-dev"
):
    """Runs one interpreter of the demo over LIT's HTTP API."""
    return post(
        port,
        "get_interpretations",
        {"model": model, "dataset_name": dataset, "interpreter": interpreter, "do_predict": 1},
        {"inputs": inputs, "config": config or {}},
        timeout=HTTP_TIMEOUT_S,
    )
