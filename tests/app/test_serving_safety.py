"""The serving layer (lit_plugins/serving.py) in front of LIT's app.

1. Unit tests: each rule on a real, model-less LitApp in process (werkzeug's
   test client), fast.
2. HTTP: the demo server (one start for the module, one more for the
   save / restart / load round trip) attacked with foreign Host and Origin
   headers, cross-site simple POSTs, path traversal and oversized bodies;
   after each refusal nothing is written and the server still answers.
3. Browser: a page on a second local origin fires no-cors POSTs at the
   server, a DNS-rebinding URL is refused, and the LIT UI on its own origin
   still renders in the same browser.
"""

import contextlib
import http.client
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest
from lit_nlp import app as lit_app
from lit_nlp.api import dataset as lit_dataset
from lit_nlp.api import types as lit_types
from werkzeug.test import Client, EnvironBuilder, run_wsgi_app

from lit_plugins.app import registration, serving
from tests.kit import browser as browser_kit
from tests.kit import lit_apps
from tests.kit.demo_server import ROOT, count_in_log, demo_server, post

DATASET = "sentiment-dev"
MODEL = "minilm-finetuned"
MAX_EXAMPLES = 4
CHROMIUM_ARGS = [
    *browser_kit.CHROMIUM_ARGS,
    # A DNS-rebinding name: resolves to this machine, as an attacker's would.
    "--host-resolver-rules=MAP rebind.test 127.0.0.1",
]
UI_TIMEOUT_MS = 60_000
REFUSED = "lit-plugins serving: refused"


# ------------------------------------------------------- 1. unit tests --


class _Sentences(lit_dataset.Dataset):
    def __init__(self):
        self._examples = [{"sentence": "a fine film"}, {"sentence": "a dull film"}]

    def spec(self):
        return {"sentence": lit_types.TextSegment()}


@pytest.fixture(scope="module")
def tiny_lit():
    """A real LitApp without models (instant): LIT's own handlers, error
    format and dataset save/load."""
    return lit_app.LitApp({}, {"s": _Sentences()}, client_root=lit_apps.CLIENT_ROOT)


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def client(tiny_lit, data_dir):
    return Client(
        serving.secure_app(
            tiny_lit,
            allowed_hosts=["lit.test"],
            allowed_origins=["https://trusted.test"],
            datapoints_dir=str(data_dir),
            max_request_mb=0.01,  # 10 KiB
        )
    )


def _post(client, path, body=None, **headers):
    headers.setdefault("Host", "127.0.0.1:5432")
    data = json.dumps(body or {}).encode()
    return client.post(path, data=data, headers=headers, content_type="text/plain")


def _examples(client):
    response = _post(client, "/get_dataset?dataset_name=s")
    assert response.status_code == 200, response.text
    return response.json


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:5432", "localhost:8080", "[::1]:5432", "LOCALHOST", "lit.test:1", "lit.test"],
)
def test_unit_allowed_hosts_are_served(client, host):
    assert _post(client, "/get_info", Host=host).status_code == 200


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:5432",
        "evil.example",
        "127.0.0.1.evil.example",
        "lit.test.evil.example",
        "127.0.0.1:5432,evil.example",  # two Host headers, as werkzeug joins them
        "",
        "[::1",
        "a:b:c",
    ],
)
def test_unit_other_hosts_get_400(client, host, caplog):
    response = _post(client, "/get_info", Host=host)
    assert response.status_code == 400
    assert "Refused" in response.text
    assert REFUSED in caplog.text


def test_unit_any_host_with_star(tiny_lit, data_dir):
    app = serving.secure_app(tiny_lit, allowed_hosts=["*"], datapoints_dir=str(data_dir))
    assert _post(Client(app), "/get_info", Host="anything.example:1").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "http://127.0.0.1:8888"},  # another local server (same-site)
        {"Origin": "https://127.0.0.1:5433"},
        {"Origin": "null"},  # sandboxed frames, file: pages
        {"Origin": "http://127.0.0.1:5432", "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://localhost:5432"},  # not the origin the page has (Host)
    ],
)
def test_unit_cross_site_requests_get_403(client, data_dir, tmp_path, headers):
    outside = tmp_path / "evil"
    response = _post(
        client,
        f"/save_datapoints?dataset_name=s&path={outside}",
        {"inputs": []},
        **headers,
    )
    assert response.status_code == 403, response.text
    assert not (tmp_path / "evil.lit.jsonl").exists()
    assert _files(data_dir) == []


@pytest.mark.parametrize(
    "headers",
    [
        {},  # Python, curl, notebooks
        {"Origin": "http://127.0.0.1:5432", "Sec-Fetch-Site": "same-origin"},
        {"Origin": "http://127.0.0.1:5432"},
        {"Origin": "https://trusted.test", "Sec-Fetch-Site": "cross-site"},  # operator's
        {"Host": "lit.test", "Origin": "https://lit.test"},  # TLS proxy, default ports
        {"Host": "[::1]:5432", "Origin": "http://[::1]:5432"},
        {"Sec-Fetch-Site": "none"},  # typed in the address bar
    ],
)
def test_unit_same_origin_and_no_origin_pass(client, headers):
    response = _post(client, "/get_dataset?dataset_name=s", **headers)
    assert response.status_code == 200, response.text


def test_unit_navigation_to_the_ui_is_allowed_but_not_to_the_api(client):
    nav = {"Host": "127.0.0.1:5432", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert client.get("/", headers=nav).status_code == 200  # a link to LIT
    assert client.get("/get_info", headers=nav).status_code == 403
    post_nav = client.post("/", headers={**nav, "Origin": "http://evil.example"})
    assert post_nav.status_code == 403  # a cross-site form POST


def test_unit_api_is_post_only(client):
    response = client.get("/load_datapoints?dataset_name=s&path=x", headers={"Host": "localhost"})
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    # LIT strips a trailing slash and decodes the path; so does the layer.
    for path in ("/get_info/", "/get%5Finfo", "/get_info%3Fx=1", "/get_info;x"):
        assert client.get(path, headers={"Host": "localhost"}).status_code == 405, path


def test_unit_oversized_bodies_get_413(client):
    big = {"inputs": [], "pad": "x" * 20_000}
    response = _post(client, "/get_info", big)
    assert response.status_code == 413
    assert "max_request_mb" in response.text
    assert _post(client, "/get_info", {"pad": "x" * 5_000}).status_code == 200


def test_unit_content_length_over_the_cap_is_not_read(tiny_lit, data_dir):
    class Unreadable(io.RawIOBase):
        def read(self, *args):
            raise AssertionError("the body was read")

    app = serving.secure_app(tiny_lit, datapoints_dir=str(data_dir), max_request_mb=1)
    env = EnvironBuilder("/get_info", method="POST", headers={"Host": "localhost"}).get_environ()
    env.update({"CONTENT_LENGTH": str(50 * 2**20), "wsgi.input": Unreadable()})
    _, status, _ = run_wsgi_app(app, env)
    assert status.startswith("413")


@pytest.mark.parametrize("size,status", [(9_000, "200"), (11_000, "413"), (10**9, "413")])
def test_unit_chunked_bodies_are_bounded(tiny_lit, data_dir, size, status):
    class Endless(io.RawIOBase):  # a chunked body as werkzeug's server passes it
        def __init__(self, n):
            self.left, self.read_total = n, 0

        def read(self, n=-1):  # whitespace, then "{}": valid JSON of any size
            n = self.left if n is None or n < 0 else min(n, self.left)
            self.left -= n
            self.read_total += n
            if n == 0:
                return b""
            return (b" " * n + b"{}")[-n:] if self.left == 0 else b" " * n

    app = serving.secure_app(tiny_lit, datapoints_dir=str(data_dir), max_request_mb=0.01)
    stream = Endless(size)
    env = EnvironBuilder("/get_info", method="POST", headers={"Host": "localhost"}).get_environ()
    env.pop("CONTENT_LENGTH", None)
    env.update({"wsgi.input": stream, "wsgi.input_terminated": True})
    _, got, _ = run_wsgi_app(app, env)
    assert got.startswith(status), got
    assert stream.read_total <= 0.01 * 2**20 + 1


def test_unit_error_bodies_lose_the_traceback(client, tiny_lit, data_dir, caplog):
    response = _post(client, "/get_dataset?dataset_name=<b>nope</b>")
    assert response.status_code == 500
    assert "Uncaught error: '<b>nope</b>'" in response.text  # the message stays
    for leak in ("Traceback", 'File "', ".py"):
        assert leak not in response.text
    # LIT's client shows the line before "\n\nDetails:" (else "Unknown error").
    assert "\n\nDetails: (the traceback is in the server log)" in response.text
    assert response.headers["Content-Type"].startswith("text/plain")  # no HTML injection
    assert "Traceback" in caplog.text  # LIT logs it on the server
    debug = serving.secure_app(tiny_lit, datapoints_dir=str(data_dir), debug_errors=True)
    assert "Traceback" in _post(Client(debug), "/get_dataset?dataset_name=nope").text


def test_unit_strip_traceback():
    lit_body = (
        'Uncaught error: bad config\n\nDetails: Traceback (most recent call last):\n  File "x.py"'
    )
    assert serving.strip_traceback(lit_body) == (
        "Uncaught error: bad config\n\nDetails: (the traceback is in the server log)"
    )
    assert serving.strip_traceback("plain message") == "plain message"


def test_unit_lazy_start_response_app(data_dir):
    def lazy(environ, start_response):
        start_response("500 Internal Server Error", [("Content-Type", "text/html")])
        yield b"oops\n\nDetails: Traceback (most recent call last):\n  secret.py"

    app = serving.secure_app(lazy, datapoints_dir=str(data_dir), api_endpoints=())
    response = Client(app).get("/", headers={"Host": "localhost"})
    assert response.status_code == 500
    assert "secret" not in response.text and response.text.startswith("oops")


def test_unit_save_and_load_inside_the_data_dir(client, data_dir):
    examples = _examples(client)
    saved = _post(client, "/save_datapoints?dataset_name=s&path=sub/points", {"inputs": examples})
    assert saved.status_code == 200, saved.text
    assert saved.json == str(data_dir / "sub" / "points.lit.jsonl")
    assert _files(data_dir) == ["sub", "sub/points.lit.jsonl", "sub/points.lit.jsonl.spec"]
    for path in ("sub/points", "sub/points.lit.jsonl", str(data_dir / "sub" / "points")):
        loaded = _post(client, f"/load_datapoints?dataset_name=s&path={path}")
        assert loaded.status_code == 200, loaded.text
        assert loaded.json == examples


def test_unit_datapoint_paths_outside_are_refused(client, data_dir, tmp_path):
    examples = _examples(client)
    data_dir.mkdir(exist_ok=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "leak.lit.jsonl").write_text(json.dumps(examples[0]) + "\n")
    (data_dir / "dirlink").symlink_to(outside, target_is_directory=True)
    (data_dir / "filelink.lit.jsonl").symlink_to(outside / "leak.lit.jsonl")
    (data_dir / "speclink.lit.jsonl.spec").symlink_to(outside / "spec")
    before = _files(data_dir)
    bad = [
        "../outside/x",
        "sub/../../outside/x",
        "..",
        str(outside / "x"),
        "/etc/passwd",
        "dirlink/x",
        "filelink",
        "filelink.lit.jsonl",
        "speclink",
        "",
        ".",
    ]
    for path in bad:
        for endpoint in ("save_datapoints", "load_datapoints"):
            query = urllib.parse.urlencode({"dataset_name": "s", "path": path})
            response = _post(client, f"/{endpoint}?{query}", {"inputs": examples})
            assert response.status_code == 403, (endpoint, path, response.text)
            assert "data directory" in response.text or "Empty" in response.text
    assert _files(outside) == ["leak.lit.jsonl"]
    assert _files(data_dir) == before
    assert _post(client, "/get_info").status_code == 200


def test_unit_check_exposure():
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert serving.check_exposure(host, None) is None
    for host in ("0.0.0.0", "::", "192.168.1.5", "lit.example.org"):
        with pytest.raises(ValueError, match="--allowed_hosts"):
            serving.check_exposure(host, [])
    warning = serving.check_exposure("0.0.0.0", ["lit.example.org"])
    assert "all interfaces" in warning and "without authentication" in warning


def test_unit_default_datapoints_dir_is_in_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("LIT_PLUGINS_CACHE", str(tmp_path / "cache"))
    assert serving.default_datapoints_dir() == str(tmp_path / "cache" / "datapoints")


# ------------------------------------------------- 2. the demo server --


def call(port, path, body=b"{}", method="POST", **headers):
    """(status, text) of one request with exactly these headers (Host
    defaults to 127.0.0.1:port)."""
    headers = {k.replace("_", "-"): v for k, v in headers.items()}
    headers.setdefault("Host", f"127.0.0.1:{port}")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def server(minilm_finetuned, tmp_path_factory):
    """The demo with a 1 MB cap, one extra host name and origin; yields
    (port, log path, datapoints dir, a directory outside it)."""
    del minilm_finetuned  # the fixture caches the fine-tuned checkpoint first
    base = tmp_path_factory.mktemp("serving")
    data, outside = base / "data", base / "outside"
    outside.mkdir()
    args = (
        f"--datapoints_dir={data}",
        "--max_request_mb=1",
        "--allowed_hosts=lit.test",
        "--allowed_origins=https://trusted.test",
    )
    with demo_server(base / "server.log", MAX_EXAMPLES, extra_args=args) as (port, log, _):
        yield port, log, data, outside


@pytest.fixture(scope="module")
def examples(server):
    return post(server[0], "get_dataset", {"dataset_name": DATASET})


@pytest.fixture
def unharmed(server):
    """Checks after the test: nothing written anywhere, server answers."""
    port, _, data, outside = server
    before = _files(data)
    yield
    assert _files(outside) == []
    assert _files(data) == before
    assert "models" in post(port, "get_info", timeout=30)


def _save_query(path):
    return "/save_datapoints?" + urllib.parse.urlencode({"dataset_name": DATASET, "path": path})


def test_http_foreign_host_is_refused(server, unharmed):
    port, log = server[0], server[1]
    before = count_in_log(log, "host name 'evil.example' is not served")
    for path in ("/get_info", "/", _save_query("x")):
        status, text = call(port, path, Host=f"evil.example:{port}")
        assert status == 400, (path, text)
        assert "models" not in text and "sentence" not in text
    assert count_in_log(log, "host name 'evil.example' is not served") == before + 3


def test_http_text_plain_post_from_a_foreign_origin_writes_nothing(server, examples, unharmed):
    port, log, _, outside = server
    body = json.dumps({"inputs": examples}).encode()
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": f"http://127.0.0.1:{port + 1}", "Sec-Fetch-Site": "same-site"},
    ):
        status, text = call(
            port, _save_query(str(outside / "evil")), body, Content_Type="text/plain", **headers
        )
        assert status == 403, (headers, text)
        status, text = call(
            port, f"/get_preds?model={MODEL}&dataset_name={DATASET}", body, **headers
        )
        assert status == 403 and "probas" not in text
    assert count_in_log(log, rf"{REFUSED} POST /save_datapoints \(403") >= 4


def test_http_legit_requests_pass(server, examples):
    port = server[0]
    body = json.dumps({"inputs": examples[:1]}).encode()
    query = f"/get_preds?model={MODEL}&dataset_name={DATASET}"
    for headers in (
        {},  # Python, curl, the notebook
        {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"},
        {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"},
        {"Host": f"lit.test:{port}", "Origin": f"http://lit.test:{port}"},  # --allowed_hosts
        {"Origin": "https://trusted.test", "Sec-Fetch-Site": "cross-site"},  # --allowed_origins
    ):
        status, text = call(port, query, body, Content_Type="text/plain", **headers)
        assert status == 200, (headers, text)
        assert len(json.loads(text)) == 1
    assert call(port, "/", method="GET")[0] == 200


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "dir_symlink", "file_symlink"])
def test_http_datapoint_paths_are_confined(server, examples, kind, unharmed):
    port, log, data, outside = server
    data.mkdir(exist_ok=True)
    link = data / f"link-{kind}"
    path = {
        "dotdot": f"../{outside.name}/evil",
        "absolute": str(outside / "evil"),
        "dir_symlink": f"{link.name}/evil",
        "file_symlink": link.name,
    }[kind]
    if kind == "dir_symlink":
        link.symlink_to(outside, target_is_directory=True)
    elif kind == "file_symlink":
        # LIT writes PATH.lit.jsonl: a link by that name must not lead out.
        link = data / f"{link.name}.lit.jsonl"
        link.symlink_to(outside / "evil.lit.jsonl")
    try:
        body = json.dumps({"inputs": examples}).encode()
        status, text = call(port, _save_query(path), body)
        assert status == 403, text
        assert "data directory" in text
        query = urllib.parse.urlencode({"dataset_name": DATASET, "path": path})
        assert call(port, f"/load_datapoints?{query}")[0] == 403
    finally:
        if link.is_symlink():
            link.unlink()
    assert count_in_log(log, rf"{REFUSED} POST /load_datapoints") >= 1


def test_http_oversized_bodies_get_413(server, unharmed):
    port, log = server[0], server[1]
    # Content-Length over the cap and no body sent: answered at once, unread.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("POST", "/get_info")
        conn.putheader("Content-Length", str(100 * 2**20))
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413
        assert "1 MB limit" in response.read().decode()
    finally:
        conn.close()
    # A chunked body: refused once it passes the cap (the rest never sent).
    limit = 2**20
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"POST /get_info HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n{limit + 1000:x}\r\n".encode()
        )
        sock.sendall(b"x" * (limit + 1))
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.") and b" 413 " in reply.split(b"\r\n")[0], reply[:200]
    assert count_in_log(log, rf"{REFUSED} POST /get_info \(413") >= 2


def test_http_error_bodies_have_no_traceback(server, examples):
    port, log = server[0], server[1]
    status, text = call(port, "/get_dataset?dataset_name=nope")
    assert status == 500
    assert "'nope'" in text
    for leak in ("Traceback", 'File "', ".py", os.path.expanduser("~")):
        assert leak not in text
    assert "Traceback" in log.read_text()
    # Our ValueError texts (written for users) are kept.
    status, text = call(
        port,
        "/get_interpretations?"
        + urllib.parse.urlencode(
            {
                "model": MODEL,
                "dataset_name": DATASET,
                "interpreter": registration.INTEGRATED_GRADIENTS,
                "do_predict": 1,
            }
        ),
        json.dumps({"inputs": examples[:1], "config": {"Interpolation steps": 0}}).encode(),
    )
    assert status == 500 and "[1, 1024]" in text and "Traceback" not in text, text


def test_http_save_restart_load_round_trip(server, examples, tmp_path):
    port, _, data, _ = server
    saved = post(
        port,
        "save_datapoints",
        {"dataset_name": DATASET, "path": "trip/points"},
        {"inputs": examples},
    )
    assert saved == str(data / "trip" / "points.lit.jsonl")
    args = (f"--datapoints_dir={data}",)
    with demo_server(tmp_path / "restart.log", MAX_EXAMPLES, extra_args=args) as (port2, _, _):
        loaded = post(port2, "load_datapoints", {"dataset_name": DATASET, "path": "trip/points"})
        again = post(port2, "load_datapoints", {"dataset_name": DATASET, "path": saved})
    assert loaded == examples
    assert again == examples


def test_http_non_loopback_host_needs_allowed_hosts():
    result = subprocess.run(
        [sys.executable, "-m", "demos.demo", "--host=0.0.0.0", "--port=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode != 0
    assert "--allowed_hosts" in result.stdout + result.stderr


# --------------------------------------------------------- 3. browser --


ATTACK_PAGE = """<!doctype html><title>innocent page</title>
<form id="f" method="POST" enctype="text/plain"></form>
<script>
async function attack(target, savePath, body) {
  const out = [];
  for (const path of [
      `/save_datapoints?dataset_name=sentiment-dev&path=${encodeURIComponent(savePath)}`,
      `/get_preds?model=minilm-finetuned&dataset_name=sentiment-dev`]) {
    try {
      const r = await fetch(target + path, {method: "POST", mode: "no-cors", body});
      out.push(r.type);
    } catch (e) { out.push(String(e)); }
  }
  return out;
}
</script>"""


@contextlib.contextmanager
def attacker_site():
    """A page on another local origin (a second port); yields its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = ATTACK_PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    browser_kit.chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=browser_kit.CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            timeout=UI_TIMEOUT_MS,
        )
        try:
            yield chromium
        finally:
            chromium.close()


def _offline_page(browser, allowed_ports):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(UI_TIMEOUT_MS)

    def route(r):
        netloc = urllib.parse.urlsplit(r.request.url).netloc
        if any(netloc.endswith(f":{p}") for p in allowed_ports):
            r.continue_()
        else:
            r.abort()  # no network (web fonts)

    page.route("**/*", route)
    return page


def test_browser_other_origin_cannot_use_the_server(server, browser, examples):
    port, log, data, outside = server
    before = count_in_log(log, REFUSED)
    with attacker_site() as attacker:
        attacker_port = int(urllib.parse.urlsplit(attacker).port)
        page = _offline_page(browser, [port, attacker_port])
        try:
            page.goto(attacker)
            body = json.dumps({"inputs": examples})
            for target in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
                results = page.evaluate(
                    "([t, p, b]) => attack(t, p, b)", [target, str(outside / "evil"), body]
                )
                assert results == ["opaque", "opaque"], results  # sent, unreadable
            # A cross-site form POST (a navigation) is refused as well.
            page.evaluate(
                """([t, p]) => { const f = document.getElementById('f');
                f.action = t + '/save_datapoints?dataset_name=sentiment-dev&path=' + p;
                f.submit(); }""",
                [f"http://127.0.0.1:{port}", str(outside / "evil")],
            )
            page.wait_for_url(lambda url: url.startswith(f"http://127.0.0.1:{port}/"))
            assert "Refused (403" in page.content()
        finally:
            page.close()
    deadline = time.time() + 10
    while count_in_log(log, REFUSED) < before + 5 and time.time() < deadline:
        time.sleep(0.2)
    text = log.read_text()
    assert count_in_log(log, REFUSED) >= before + 5, text[-3000:]
    assert "Origin='http://127.0.0.1:" in text
    assert _files(outside) == []
    assert not any(p.startswith("evil") for p in _files(data))


def test_browser_dns_rebinding_name_is_refused(server, browser):
    port = server[0]
    page = _offline_page(browser, [port])
    try:
        response = page.goto(f"http://rebind.test:{port}/")
        assert response.status == 400
        assert "models" not in page.content()
    finally:
        page.close()


def test_browser_lit_ui_still_works(server, browser, examples):
    port, log = server[0], server[1]
    refused_before = count_in_log(log, REFUSED)
    page = _offline_page(browser, [port])
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(
            f"http://127.0.0.1:{port}/?models={MODEL}&dataset={DATASET}",
            wait_until="domcontentloaded",
        )
        rows = page.locator("lit-data-table tbody tr")
        for example in examples:  # the data table shows the whole dataset
            rows.filter(has_text=example["data"]["sentence"][:60]).first.wait_for()
    finally:
        page.close()
    assert not [e for e in errors if "403" in e or "Refused" in e], errors
    assert count_in_log(log, REFUSED) == refused_before  # none of the UI's requests
