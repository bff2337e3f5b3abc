#!/usr/bin/env bash
# Set-up and everyday commands. On a fresh machine:
#   ./dev.sh demo   install into .venv, then open JupyterLab on notebooks/quickstart.ipynb
#   ./dev.sh test   install into .venv, then lint, type-check and run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV=.venv

setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        "$PY" -m venv "$VENV"
    fi
    # constraints-dev.txt pins torch/torchvision as a working pair for the dev environment.
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    # the widget's front end: js/ sources bundled by esbuild into src/va_widgets/static/
    (cd js && npm ci --no-audit --no-fund --silent && npm run --silent build)
    "$VENV/bin/python" -m pip install --quiet -e ".[dev]" -c constraints-dev.txt
}

case "${1:-}" in
demo)
    setup
    shift
    root_flag=()
    [ "$(id -u)" -ne 0 ] || root_flag=(--allow-root)  # JupyterLab refuses root without it
    exec "$VENV/bin/jupyter" lab "${root_flag[@]}" notebooks/quickstart.ipynb "$@"
    ;;
test)
    setup
    shift
    # Debian's Chromium for the browser tests (needs root; CI runs as root). Elsewhere the
    # browser tests say what to install and skip, except under CI=true, where they fail.
    ./scripts/install-browser.sh || [ "${CI:-}" != "true" ] || exit 1
    "$VENV/bin/ruff" check src tests benchmarks notebooks
    "$VENV/bin/ruff" format --check src tests benchmarks notebooks
    "$VENV/bin/mypy"
    (cd js && npm test --silent)
    # pytest exits 5 when it collected no test: set -e makes that a failure too.
    "$VENV/bin/python" -m pytest "$@"
    ;;
*)
    echo "usage: ./dev.sh demo|test [args]" >&2
    exit 2
    ;;
esac
