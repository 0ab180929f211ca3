#!/usr/bin/env bash
# Set up (or reuse) the project's virtual environment in .venv with the pinned stack.
# Idempotent: a second run only re-installs when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY="$cand"; break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "bootstrap: Python 3.11 is required (torch==2.14.1 wheels here are for 3.11); install it or set PYTHON=/path/to/python3.11" >&2
  exit 2
fi

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $PY" >&2
  "$PY" -m venv .venv
fi

stamp=.venv/.auditor-setup-stamp
want="$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "bootstrap: installing the pinned stack into .venv (first run takes a few minutes)" >&2
  log=.venv/pip-install.log
  if ! { .venv/bin/python -m pip install --disable-pip-version-check --upgrade "pip>=23.2" \
         && .venv/bin/python -m pip install --disable-pip-version-check -e ".[dev]"; } >"$log" 2>&1 \
     || ! .venv/bin/python -c "import auditor, torch, torchvision, scipy, fairlearn"; then
    grep -v "is ignored: it is neither" "$log" | tail -n 40 >&2
    echo "bootstrap: install failed; the pip log is in $log" >&2
    exit 2
  fi
  # PDF reports need Pango (weasyprint loads it at import); install it where we can, else say so.
  if ! .venv/bin/python -c "import weasyprint" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "bootstrap: installing Pango for PDF reports (apt-get)" >&2
      { apt-get update -qq && apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core; } >>"$log" 2>&1 || true
    fi
    .venv/bin/python -c "import weasyprint" >/dev/null 2>&1 \
      || echo "bootstrap: warning: PDF reports are unavailable (install libpango-1.0-0 libpangoft2-1.0-0); HTML, Markdown and JUnit work" >&2
  fi
  echo "$want" > "$stamp"
fi
