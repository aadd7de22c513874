"""LIT's web client with its Material icon font served by the LIT server.

LIT 1.3's index.html loads its icon font (families 'Material Icons',
'Material Icons Outlined', 'Google Material Icons') from fonts.googleapis.com;
offline every icon then shows as its ligature name ('search', 'palette',
'push_pin'). `client_root()` builds, once per LIT client and font, a copy of
LIT's client directory (symlinks, plus a patched index.html) whose icon
stylesheet and fonts are static files of the same server. Pass it as LIT's
``client_root`` (the demo does unless ``--client_root`` is given).

The font comes from the npm package ``material-icons`` (Apache-2.0), which
``./run`` installs into ``.venv/npm``; ``LIT_PLUGINS_ICON_FONT_DIR`` names
another directory holding ``material-icons.woff2`` (and optionally
``material-icons-outlined.woff2``).  The other web fonts LIT links (Roboto,
Google Sans) are left as they are: offline the browser uses local fonts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile

from absl import logging

ICON_PACKAGE = "material-icons"  # npm package, pinned in ./run
FONT_DIR_ENV = "LIT_PLUGINS_ICON_FONT_DIR"
REGULAR = "material-icons.woff2"
OUTLINED = "material-icons-outlined.woff2"
ICONS_DIR = "lit-plugins-icons"  # under the client's static/
ICONS_CSS = f"static/{ICONS_DIR}/icons.css"
_FORMAT = 1  # bump when the generated layout changes

# LIT's <link> to the Google-hosted icon font stylesheet.
_ICON_LINK = re.compile(
    r'<link[^>]*href="https://fonts\.googleapis\.com/css\?family=[^"]*Material\+Icons[^"]*"[^>]*>'
)

_ICON_CLASS = (
    "font-weight: normal; font-style: normal; font-size: 24px; line-height: 1; "
    "letter-spacing: normal; text-transform: none; display: inline-block; "
    "white-space: nowrap; word-wrap: normal; direction: ltr; "
    "font-feature-settings: 'liga'; -webkit-font-smoothing: antialiased;"
)


def icon_font_dir() -> str | None:
    """The first directory holding the icon font: $LIT_PLUGINS_ICON_FONT_DIR,
    else the npm package in the running venv (or the repo's .venv)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    candidates = [
        os.environ.get(FONT_DIR_ENV),
        os.path.join(sys.prefix, "npm", "node_modules", ICON_PACKAGE, "iconfont"),
        os.path.join(repo, ".venv", "npm", "node_modules", ICON_PACKAGE, "iconfont"),
    ]
    for directory in candidates:
        if directory and os.path.isfile(os.path.join(directory, REGULAR)):
            return os.path.abspath(directory)
    return None


def lit_client_dir() -> str:
    """LIT's own client build (the default of its --client_root flag)."""
    import lit_nlp  # pylint: disable=g-import-not-at-top

    return os.path.join(os.path.dirname(lit_nlp.__file__), "client", "build", "default")


def icons_css(outlined: bool) -> str:
    faces = [
        ("Material Icons", REGULAR),
        ("Google Material Icons", REGULAR),
        ("Material Icons Outlined", OUTLINED if outlined else REGULAR),
    ]
    css = [
        f"/* {ICON_PACKAGE} (npm, Apache-2.0), served by lit-plugins: LIT's icons "
        "without the network. */"
    ]
    css += [
        f"@font-face {{ font-family: '{family}'; font-style: normal; font-weight: 400; "
        f"font-display: block; src: url({file}) format('woff2'); }}"
        for family, file in faces
    ]
    css += [
        f".material-icons {{ font-family: 'Material Icons'; {_ICON_CLASS} }}",
        f".material-icons-outlined {{ font-family: 'Material Icons Outlined'; {_ICON_CLASS} }}",
    ]
    return "\n".join(css) + "\n"


def client_root(cache_dir: str | None = None, lit_client: str | None = None) -> str | None:
    """A LIT client directory that serves the icon font itself, built once
    under `cache_dir` (default: the lit-plugins cache). None, with a warning,
    when no icon font is installed or LIT's index.html has no icon-font link
    to replace (LIT's own client is then used unchanged)."""
    fonts = icon_font_dir()
    if fonts is None:
        logging.warning(
            "lit-plugins: no local Material icon font (npm package %r; ./run installs it): "
            "offline, LIT's icons show as words.",
            ICON_PACKAGE,
        )
        return None
    lit_client = os.path.abspath(lit_client or lit_client_dir())
    with open(os.path.join(lit_client, "static", "index.html"), encoding="utf-8") as f:
        index = f.read()
    patched, found = _ICON_LINK.subn(f'<link href="{ICONS_CSS}" rel="stylesheet">', index)
    if found != 1:
        logging.warning(
            "lit-plugins: LIT's index.html has %d icon-font links (expected 1); "
            "serving LIT's client unchanged.",
            found,
        )
        return None
    outlined = os.path.isfile(os.path.join(fonts, OUTLINED))
    files = [REGULAR] + ([OUTLINED] if outlined else [])
    key_src = json.dumps(
        {
            "format": _FORMAT,
            "client": lit_client,
            "index": index,
            "fonts": {f: os.path.getsize(os.path.join(fonts, f)) for f in files},
            "fonts_dir": fonts,
        },
        sort_keys=True,
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    if cache_dir is None:
        from lit_plugins.hf import finetune

        cache_dir = finetune.cache_root()
    out = os.path.join(cache_dir, f"lit-client-{key}")
    if os.path.isfile(os.path.join(out, ICONS_CSS)):
        return out
    os.makedirs(cache_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=cache_dir, prefix=".tmp-client-")
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        for name in os.listdir(lit_client):
            if name != "static":
                _link(os.path.join(lit_client, name), os.path.join(tmp, name))
        static = os.path.join(lit_client, "static")
        os.makedirs(os.path.join(tmp, "static", ICONS_DIR))
        for name in os.listdir(static):
            if name != "index.html":
                _link(os.path.join(static, name), os.path.join(tmp, "static", name))
        with open(os.path.join(tmp, "static", "index.html"), "w", encoding="utf-8") as f:
            f.write(patched)
        for name in files:
            shutil.copyfile(os.path.join(fonts, name), os.path.join(tmp, "static", ICONS_DIR, name))
        with open(os.path.join(tmp, ICONS_CSS), "w", encoding="utf-8") as f:
            f.write(icons_css(outlined))
        os.replace(tmp, out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.isfile(os.path.join(out, ICONS_CSS)):  # not a lost race
            raise
    logging.info("lit-plugins: LIT client with local icon font at %s", out)
    return out


def _link(src: str, dst: str) -> None:
    try:
        os.symlink(src, dst)
    except OSError:  # no symlinks here: copy
        if os.path.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)
