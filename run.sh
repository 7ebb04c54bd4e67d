#!/usr/bin/env bash
# pointsam set-up and entry point. Idempotent; safe to re-run.
#
#   bash run.sh demo     set up, then run the demo (the main job)
#   bash run.sh test     set up, then run the test suite
#   bash run.sh test-numerics   the numerics-heavy tests again under MKL summation
#                        orders of other CPUs (MKL_CBWR=AVX2, then COMPATIBLE)
#   bash run.sh typecheck   mypy (pinned) over the packages pyproject.toml lists
#   bash run.sh docs     set up, install the docs extras, build the site into
#                        docs/_build/html (warnings are errors, the examples run)
#                        and check it offline in headless Chromium
#   bash run.sh setup    set up only
#
# Set-up: Debian packages Open3D needs (when root with apt), a .venv beside this
# file, torch pinned to the CPU wheel (no multi-GB CUDA download), then pointsam
# with its dev extras in editable mode. torch-cluster is never compiled here.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV=${POINTSAM_VENV:-.venv}
TORCH_SPEC=${POINTSAM_TORCH:-torch==2.13.0}
DEB_PKGS="libusb-1.0-0 libvulkan1 mesa-vulkan-drivers libgl1 libegl1 libgomp1"
# headless Chromium drives the HTML viewer's browser tests (skipped without it)
DEB_PKGS="$DEB_PKGS chromium"

say() { printf '[pointsam] %s\n' "$*"; }

setup_system() {
  local missing=()
  for p in $DEB_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "missing Debian packages (Open3D needs them): ${missing[*]}"
    say "install them with: sudo apt-get install -y ${missing[*]}"
  fi
}

setup_python() {
  if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    say "Python >= 3.10 is required (found $("$PY" --version 2>&1))"; exit 1
  fi
  [ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PY" -m venv "$VENV"; }
  local pip="$VENV/bin/python -m pip"
  if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    say "installing $TORCH_SPEC"
    $pip install -q "$TORCH_SPEC"
  fi
  local stamp="$VENV/.pointsam-installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || ! "$VENV/bin/python" -c 'import pointsam' 2>/dev/null; then
    say "installing pointsam[dev] (editable)"
    $pip install -q -e ".[dev]"
    touch "$stamp"
  fi
}

setup() { setup_system; setup_python; }

setup_docs() {
  local stamp="$VENV/.pointsam-docs-installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] \
      || ! "$VENV/bin/python" -c 'import sphinx, sphinx_gallery, myst_parser, pydata_sphinx_theme' 2>/dev/null; then
    say "installing pointsam[dev,docs] (editable)"
    "$VENV/bin/python" -m pip install -q -e ".[dev,docs]"
    touch "$stamp"
  fi
}

cmd=${1:-demo}; shift || true
case "$cmd" in
  setup) setup ;;
  demo) setup; exec "$VENV/bin/pointsam" demo "$@" ;;
  test) setup; exec "$VENV/bin/python" -m pytest -n 2 "$@" ;;
  test-numerics)
    # MKL picks its summation order by CPU: AVX2 is the order of an AMD EPYC (or
    # an AVX2 Intel) on an AVX-512 machine, COMPATIBLE the order of none in
    # particular. A float test that fails under either ties its tolerance to one
    # CPU (tests/tolerance.py says how to compare reductions instead).
    setup
    for cbwr in AVX2 COMPATIBLE; do
      say "numerics tests under MKL_CBWR=$cbwr"
      MKL_CBWR=$cbwr "$VENV/bin/python" -m pytest -n 2 -q -p no:cacheprovider \
        tests/nn tests/ops tests/models tests/export pointsam/nn pointsam/ops "$@"
    done ;;
  typecheck) setup; exec "$VENV/bin/python" -m mypy "$@" ;;
  docs)
    # extra arguments go to sphinx-build (-E: read every source again); the
    # examples (docs/examples) run during the build, and again only when edited.
    # The HTML is written afresh, so no page of an earlier build lingers.
    setup; setup_docs
    rm -rf docs/_build/html
    "$VENV/bin/sphinx-build" -W --keep-going -b html "$@" docs docs/_build/html
    say "built docs/_build/html/index.html; checking it offline in headless Chromium"
    POINTSAM_DOCS_BUILT=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider -m docs \
      tests/docs ;;
  *) echo "usage: bash run.sh {demo|test|test-numerics|typecheck|docs|setup} [args...]"; exit 2 ;;
esac
