#!/usr/bin/env bash
# Installs what tests/app/test_browser_e2e.py needs outside the venv: Debian's
# Chromium (Playwright's own browser download is not used) and a local copy
# of the Material icon font (LIT otherwise fetches it from the web).
#
# Idempotent and quiet: does nothing (exit 0) when /usr/bin/chromium exists.
# Needs root (or password-less sudo) and apt-get; without them it only warns
# (exit 0) and the browser test skips itself. A failed install exits 1.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
PACKAGES=(chromium fonts-liberation fonts-material-design-icons-iconfont)

[ -x "$CHROMIUM" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "browser_setup: no apt-get; install Chromium at $CHROMIUM yourself," \
       "or the browser test will be skipped" >&2
  exit 0
fi
SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "browser_setup: need root to apt-get install ${PACKAGES[*]};" \
         "the browser test will be skipped" >&2
    exit 0
  fi
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
echo "browser_setup: installing ${PACKAGES[*]} (apt-get) ..." >&2
if ! { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
       "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
         --no-install-recommends "${PACKAGES[@]}"; } >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  echo "browser_setup: apt-get failed" >&2
  exit 1
fi
[ -x "$CHROMIUM" ] || { echo "browser_setup: $CHROMIUM still missing" >&2; exit 1; }
