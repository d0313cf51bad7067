#!/usr/bin/env bash
# Creates (or reuses) the project-local virtual environment .venv with everything mmtrackgen needs
# on a CPU machine. Idempotent: a second run checks a stamp of the requirement files and returns in
# seconds. GPU users: see README "Installing on a GPU machine" instead.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MMTRACKGEN_VENV:-.venv}
PY=${PYTHON:-python3}
stamp="$VENV/.mmtrackgen-stamp"
want=$(cat requirements/*.txt setup.py | sha256sum | cut -d' ' -f1)

# Checked before the stamp: the browser is a system package, outside the venv. The drawing
# page's browser test (tests/app/) drives Debian's Chromium through its driver; apt needs root
# (CI runs as root).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if [[ $(id -u) -eq 0 ]]; then
        echo "[setup_env] installing Debian's chromium and chromium-driver"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "[setup_env] warning: the page's browser test needs Debian's chromium and" \
            "chromium-driver: sudo apt-get install chromium chromium-driver" >&2
    fi
fi
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
# This machine's pip config names local wheel folders that pip reports as ignored on every
# package; drop those lines so real errors stay visible.
pip() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
echo "[setup_env] installing into $VENV (the first time compiles mmcv's CPU ops: ~15 min on 2 cores)"
pip install -q --upgrade pip
pip install -q -r requirements/build.txt
# mmcv imports torch while it builds and needs pkg_resources: build without isolation.
MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} pip install -q --no-build-isolation -r requirements/mminstall.txt
pip install -q -r requirements/runtime.txt -r requirements/tests.txt -r requirements/app.txt
pip install -q --no-build-isolation --no-deps -e .
"$VENV/bin/python" -c "import mmcv.ops, mmdet, mmengine, diffusers, mmtrackgen; print('[setup_env] ok: mmcv', mmcv.__version__, 'mmdet', mmdet.__version__, 'diffusers', diffusers.__version__)"
echo "$want" > "$stamp"
