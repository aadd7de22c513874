"""A WSGI layer in front of LIT's app for serving it safely on a workstation.

LIT 1.3's server answers any request that reaches its port: any web page the
user visits can POST to it (a `text/plain` POST needs no CORS preflight, and
LIT's own UI sends exactly that), a DNS-rebinding page can read every answer,
`/save_datapoints` and `/load_datapoints` write and read any path the server's
user can, and error responses carry Python tracebacks. `secure_app` wraps the
app with these rules, checked before LIT sees the request:

- Host allow-list: only loopback names and the operator's names are served
  (any port); others get 400 (DNS rebinding).
- Cross-site requests: a foreign `Origin`, or `Sec-Fetch-Site: cross-site` /
  `same-site`, gets 403. Same-origin UI requests and clients that send no
  `Origin` (Python, curl, notebooks) pass. A cross-site link to (or frame of)
  the UI page itself is still allowed; the API only answers POST.
- Datapoint files: `/save_datapoints` and `/load_datapoints` read and write
  only under one directory; relative paths resolve inside it; absolute paths
  elsewhere, `..` and symlinks that lead out are refused (403).
- Request bodies over the cap get 413 without being read (Content-Length and
  chunked bodies).
- 500 responses keep the error message but lose the traceback (which LIT
  already writes to the server log), unless `debug_errors`.

Every refusal is logged on one line and the server keeps serving.

Use `registration.serve(...)` for one call that builds, wraps and serves a
LIT app, or `secure_app(lit_app, ...)` around a LitApp you serve yourself.
"""

from __future__ import annotations

import io
import ipaddress
import os
import urllib.parse
from collections.abc import Iterable

from absl import logging
from werkzeug import wrappers

DEFAULT_MAX_REQUEST_MB = 32.0
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")
DATAPOINT_ENDPOINTS = ("/save_datapoints", "/load_datapoints")
# LIT 1.3's API endpoints (lit_nlp/app.py); secure_app also reads them from
# the LitApp it wraps.
LIT_API_ENDPOINTS = frozenset(
    {
        "/get_info",
        "/get_dataset",
        "/create_dataset",
        "/create_model",
        "/get_generated",
        "/save_datapoints",
        "/load_datapoints",
        "/annotate_new_data",
        "/post_new_data",
        "/fetch_new_data",
        "/remove_new_data",
        "/push_ui_state",
        "/get_preds",
        "/get_interpretations",
        "/get_metrics",
    }
)
# What LIT's dataset save/load add to a path (lit_nlp/api/dataset.py).
LIT_FILE_EXTENSION = ".lit.jsonl"
LIT_SPEC_EXTENSION = ".spec"
_TRACEBACK = "Traceback (most recent call last):"
_LIT_DETAILS = "\n\nDetails: "
_READ_CHUNK = 64 * 1024


class DatapointPathError(ValueError):
    """A datapoint path outside the server's data directory."""


def default_datapoints_dir() -> str:
    """`<lit-plugins cache>/datapoints` (the cache honours LIT_PLUGINS_CACHE)."""
    from lit_plugins.hf import finetune

    return os.path.join(finetune.cache_root(), "datapoints")


def is_loopback(host: str) -> bool:
    name = _strip_brackets(host.strip().lower())
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, allowed_hosts: Iterable[str] | None) -> str | None:
    """Validates the bind address against the allowed host names.

    Returns None for a loopback bind, else a warning to show the operator.
    Raises ValueError for a non-loopback bind without allowed host names.
    """
    allowed = [h for h in (allowed_hosts or ()) if h.strip()]
    if is_loopback(host):
        return None
    where = "all interfaces" if host.strip() in WILDCARD_BINDS else host
    if not allowed:
        raise ValueError(
            f"--host={host} serves LIT beyond this machine; also pass "
            "--allowed_hosts=NAME[,NAME...] with the host names (or IP "
            "addresses) that clients use in their URLs, e.g. "
            "--allowed_hosts=lit.example.org. Requests for any other host "
            "name are refused (DNS rebinding)."
        )
    return (
        f"WARNING: serving on {where}: anyone who can reach this port can use "
        "the LIT UI and its API without authentication - read every example "
        "of the loaded datasets and every model's predictions, run the "
        "interpreters (CPU/GPU time), load checkpoints from the allowed model "
        "directories and save/load datapoint files in the data directory. "
        f"Host names served: {', '.join(sorted(set(LOOPBACK_HOSTS) | set(allowed)))}. "
        "Put it behind an authenticating reverse proxy or a firewall."
    )


def _strip_brackets(name: str) -> str:
    return name[1:-1] if name.startswith("[") and name.endswith("]") else name


def _split_host(value: str) -> tuple[str, str] | None:
    """('name', 'port') from a Host header value, or None if malformed."""
    value = value.strip().lower()
    if not value or any(c in value for c in ", /\\@\t"):
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:]
    elif value.count(":") > 1:
        return None
    else:
        name, _, port = value.partition(":")
    if not name or (port and not port.isdigit()):
        return None
    return name, port


def _netloc(name: str, port: str) -> str:
    shown = f"[{name}]" if ":" in name else name
    return shown if port in ("", "80", "443") else f"{shown}:{port}"


def _origin_netloc(origin: str) -> str | None:
    try:
        parts = urllib.parse.urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return _netloc(parts.hostname.lower(), str(port) if port is not None else "")


def _route(environ) -> str:
    """The path LIT dispatches on (lit_nlp/lib/wsgi_app.py: urlparse of the
    decoded path, one trailing slash removed)."""
    path = urllib.parse.urlparse(wrappers.Request(environ, populate_request=False).path).path
    return path[:-1] if path.endswith("/") else path


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def resolve_datapoints_path(root: str, requested: str) -> str:
    """The absolute path LIT should use for a requested datapoints path, or
    DatapointPathError. Relative paths resolve inside `root`; the files LIT
    reads or writes for it (`path`, `path.lit.jsonl`, `path.lit.jsonl.spec`)
    must all resolve (symlinks followed) inside `root`."""
    root = os.path.realpath(root)
    hint = f"datapoint files are confined to the server's data directory {root}"
    if not requested or not requested.strip() or "\x00" in requested:
        raise DatapointPathError(f"Empty datapoints path: {hint}.")
    if ".." in requested.replace("\\", "/").split("/"):
        raise DatapointPathError(
            f"Datapoints path {requested!r} contains '..': {hint}; "
            "use a name relative to it, e.g. 'my_datapoints'."
        )
    if os.path.isabs(requested):
        path = os.path.normpath(requested)
        if not (_inside(path, root) or _inside(os.path.realpath(path), root)):
            raise DatapointPathError(
                f"Datapoints path {requested!r} is outside the data directory: "
                f"{hint}; use a name relative to it, e.g. 'my_datapoints'."
            )
    else:
        path = os.path.normpath(os.path.join(root, requested))
    if os.path.realpath(path) == root:
        raise DatapointPathError(
            f"Datapoints path {requested!r} names the data directory itself; "
            "give a file name, e.g. 'my_datapoints'."
        )
    if path.endswith(LIT_FILE_EXTENSION):
        touched = [path, path + LIT_SPEC_EXTENSION]
    else:
        lit_file = path + LIT_FILE_EXTENSION
        touched = [path, lit_file, lit_file + LIT_SPEC_EXTENSION]
    for target in touched:
        if not _inside(os.path.realpath(target), root):
            raise DatapointPathError(
                f"Datapoints path {requested!r} leads outside the data directory "
                f"through a symbolic link: {hint}."
            )
    return path


def strip_traceback(text: str) -> str:
    """An error body without its Python traceback (LIT 1.3 sends
    'Uncaught error: MESSAGE\\n\\nDetails: TRACEBACK'). The 'Details:' marker
    stays: LIT's client shows the line before it in its status bar, and only
    'Unknown error' without it."""
    cut = text.find(_TRACEBACK)
    if cut < 0:
        return text
    text = text[:cut].rstrip()
    if text.endswith(_LIT_DETAILS.strip()):
        text = text[: -len(_LIT_DETAILS.strip())].rstrip()
    return text + _LIT_DETAILS + "(the traceback is in the server log)"


def _drain(result) -> list[bytes]:
    try:
        return list(result)
    finally:
        if hasattr(result, "close"):
            result.close()


class _Refusal(Exception):
    def __init__(self, status: str, reason: str, headers=()):
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, list(headers)


class SecureApp:
    """The WSGI layer; build it with `secure_app`."""

    def __init__(
        self,
        app,
        *,
        allowed_hosts: Iterable[str] = (),
        allowed_origins: Iterable[str] = (),
        datapoints_dir: str | None = None,
        max_request_mb: float = DEFAULT_MAX_REQUEST_MB,
        debug_errors: bool = False,
        api_endpoints: Iterable[str] | None = None,
    ):
        self.app = app
        hosts = {_strip_brackets(h.strip().lower()) for h in allowed_hosts if h.strip()}
        self.any_host = "*" in hosts
        self.allowed_hosts = frozenset(set(LOOPBACK_HOSTS) | (hosts - {"*"}))
        self.allowed_origins = frozenset(
            n for n in (_origin_netloc(o) for o in allowed_origins if o.strip()) if n
        )
        if max_request_mb <= 0:
            raise ValueError(f"max_request_mb must be > 0, got {max_request_mb}")
        self.max_request_bytes = int(max_request_mb * 1024 * 1024)
        self.debug_errors = debug_errors
        self.datapoints_dir = os.path.realpath(datapoints_dir or default_datapoints_dir())
        os.makedirs(self.datapoints_dir, exist_ok=True)
        endpoints = set(LIT_API_ENDPOINTS if api_endpoints is None else api_endpoints)
        inner = getattr(app, "_wsgi_app", None)  # LitApp -> its wsgi_app.App
        endpoints |= set(getattr(inner, "_handlers", None) or ())
        self.api_endpoints = frozenset(e.rstrip("/") for e in endpoints)

    # ------------------------------------------------------------ WSGI --
    def __call__(self, environ, start_response):
        try:
            route = _route(environ)
            self._check_host(environ)
            self._check_site(environ, route)
            if route in self.api_endpoints:
                self._check_method(environ)
            self._check_size(environ)
            if route in DATAPOINT_ENDPOINTS:
                self._confine_datapoints(environ, route)
        except _Refusal as refusal:
            return self._refuse(environ, start_response, refusal)
        if self.debug_errors:
            return self.app(environ, start_response)
        return self._without_tracebacks(environ, start_response)

    # ----------------------------------------------------------- rules --
    def _check_host(self, environ):
        host = environ.get("HTTP_HOST", "")
        parts = _split_host(host)
        if parts is None:
            raise _Refusal("400 Bad Request", f"malformed or missing Host header {host!r}")
        if not self.any_host and parts[0] not in self.allowed_hosts:
            raise _Refusal(
                "400 Bad Request",
                f"host name {parts[0]!r} is not served (allowed: "
                f"{', '.join(sorted(self.allowed_hosts))}; the operator adds "
                "names with --allowed_hosts)",
            )

    def _check_site(self, environ, route):
        origin = environ.get("HTTP_ORIGIN")
        site = environ.get("HTTP_SEC_FETCH_SITE", "").strip().lower()
        if origin is None and site not in ("cross-site", "same-site"):
            return  # same-origin GET, user navigation, or a non-browser client
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if (
            method in ("GET", "HEAD")
            and environ.get("HTTP_SEC_FETCH_MODE", "").strip().lower() == "navigate"
            and route not in self.api_endpoints
        ):
            return  # a link to (or a frame of) the UI page; it has its own origin
        origin_netloc = _origin_netloc(origin) if origin is not None else None
        if origin_netloc is not None and origin_netloc in self.allowed_origins:
            return  # the operator's explicitly allowed origins
        if site in ("cross-site", "same-site"):
            raise _Refusal(
                "403 Forbidden",
                f"{site} request (from origin {origin!r}) to this server is not allowed",
            )
        own = _split_host(environ.get("HTTP_HOST", "")) or ("", "")
        if origin_netloc != _netloc(*own):
            raise _Refusal(
                "403 Forbidden",
                f"cross-origin request from {origin!r} is not allowed (only this "
                "server's own pages, and clients that send no Origin)",
            )

    def _check_method(self, environ):
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if method != "POST":
            raise _Refusal(
                "405 Method Not Allowed",
                f"{method} to an API endpoint (the API answers POST only)",
                headers=[("Allow", "POST")],
            )

    def _check_size(self, environ):
        limit = self.max_request_bytes
        too_large = f"request body over the {limit / 2**20:g} MB limit (--max_request_mb)"
        if environ.get("wsgi.input_terminated"):  # chunked: read at most limit + 1 bytes
            stream, data, size = environ["wsgi.input"], [], 0
            try:
                while size <= limit:
                    chunk = stream.read(min(_READ_CHUNK, limit + 1 - size))
                    if not chunk:
                        break
                    data.append(chunk)
                    size += len(chunk)
            except (OSError, ValueError) as e:
                raise _Refusal("400 Bad Request", f"malformed chunked body ({e})") from None
            if size > limit:
                raise _Refusal("413 Content Too Large", too_large)
            body = b"".join(data)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("wsgi.input_terminated", None)
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            return
        length = environ.get("CONTENT_LENGTH", "").strip()
        if not length:
            return
        if not length.isdigit():
            raise _Refusal("400 Bad Request", f"malformed Content-Length {length!r}")
        if int(length) > limit:
            raise _Refusal("413 Content Too Large", too_large)

    def _confine_datapoints(self, environ, route):
        request = wrappers.Request(environ, populate_request=False)
        args = request.args.to_dict(flat=False)
        if "path" not in args:
            return  # LIT answers with its own "Must provide a path" error
        try:
            path = resolve_datapoints_path(self.datapoints_dir, args["path"][0])
        except DatapointPathError as e:
            raise _Refusal("403 Forbidden", str(e)) from None
        if route == "/save_datapoints":
            os.makedirs(os.path.dirname(path), exist_ok=True)
        args["path"] = [path]
        environ["QUERY_STRING"] = urllib.parse.urlencode(args, doseq=True)

    # ------------------------------------------------------- responses --
    def _refuse(self, environ, start_response, refusal: _Refusal):
        logging.warning(
            "lit-plugins serving: refused %s %s (%s): %s [Host=%r Origin=%r Sec-Fetch-Site=%r]",
            environ.get("REQUEST_METHOD", "?"),
            environ.get("PATH_INFO", "?"),
            refusal.status,
            refusal.reason,
            environ.get("HTTP_HOST"),
            environ.get("HTTP_ORIGIN"),
            environ.get("HTTP_SEC_FETCH_SITE"),
        )
        body = f"Refused ({refusal.status}): {refusal.reason}.\n".encode()
        start_response(
            refusal.status,
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("X-Content-Type-Options", "nosniff"),
                ("Cache-Control", "no-store"),
                *refusal.headers,
            ],
        )
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    def _without_tracebacks(self, environ, start_response):
        """Runs the app; a 500 response's body loses its traceback and is
        sent as text/plain (LIT sends it as text/html with the request's
        text in it)."""
        held, written = {}, []

        def hold_errors(status, headers, exc_info=None):
            held["started"] = True
            if status.startswith("500"):
                held.update(status=status, headers=headers)
                return written.append
            return start_response(status, headers, exc_info)

        result = self.app(environ, hold_errors)
        if not held:  # an app that starts its response lazily
            result = _drain(result)
        if "status" not in held:
            return result
        body = b"".join([*written, *_drain(result)])
        text = strip_traceback(body.decode("utf-8", "replace")).encode()
        headers = [
            (k, v)
            for k, v in held["headers"]
            if k.lower() not in ("content-type", "content-length", "content-encoding")
        ]
        headers += [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(text))),
            ("X-Content-Type-Options", "nosniff"),
        ]
        start_response(held["status"], headers)
        return [text]


def secure_app(
    app,
    *,
    allowed_hosts: Iterable[str] = (),
    allowed_origins: Iterable[str] = (),
    datapoints_dir: str | None = None,
    max_request_mb: float = DEFAULT_MAX_REQUEST_MB,
    debug_errors: bool = False,
    api_endpoints: Iterable[str] | None = None,
) -> SecureApp:
    """Wraps a WSGI app (a LIT `LitApp`) with the rules in this module.

    Args:
      app: the WSGI app, e.g. `dev_server.Server(..., server_type="external").serve()`.
      allowed_hosts: host names (or IP addresses) served besides 127.0.0.1,
        localhost and ::1; "*" serves any (no DNS-rebinding protection).
      allowed_origins: other web origins allowed to call the API, e.g.
        "https://lit.example.org" behind a proxy that rewrites Host.
      datapoints_dir: where /save_datapoints and /load_datapoints may write
        and read (created if missing); default `default_datapoints_dir()`.
      max_request_mb: request bodies above this get 413.
      debug_errors: keep Python tracebacks in 500 responses.
      api_endpoints: the app's API paths (POST only); default LIT 1.3's, plus
        those found on a LitApp.
    """
    return SecureApp(
        app,
        allowed_hosts=allowed_hosts,
        allowed_origins=allowed_origins,
        datapoints_dir=datapoints_dir,
        max_request_mb=max_request_mb,
        debug_errors=debug_errors,
        api_endpoints=api_endpoints,
    )
