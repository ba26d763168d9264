#!/usr/bin/env bash
# pyarrow for the streamcore-connectors `parquet` tests: an independent reader (Apache Arrow's
# C++ Parquet implementation) of the files the Parquet sink writes, installed from PyPI
# (pinned below) into a venv:
#
#   venv      ~/.cache/streamcore-tools/pyarrow-venv   (the tests run its bin/python;
#             STREAMCORE_PYARROW_PYTHON overrides the interpreter)
#
# No server. About 45 MB of wheels, 170 MB on disk (docs/testing.md has the install time).
# Idempotent: a second run finds the pinned version installed and returns in well under a
# second.
set -euo pipefail

PYARROW_VERSION=21.0.0
VENV="${HOME}/.cache/streamcore-tools/pyarrow-venv"

if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.streamcore-pyarrow" 2>/dev/null)" = "$PYARROW_VERSION" ] &&
  "$VENV/bin/python" -c 'import pyarrow.parquet' 2>/dev/null; then
  exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1; then
  echo "installing python3-venv (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq python3 python3-venv >/dev/null
fi
echo "installing pyarrow==$PYARROW_VERSION into $VENV" >&2
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir "pyarrow==$PYARROW_VERSION"
"$VENV/bin/python" -c 'import pyarrow.parquet'
echo "$PYARROW_VERSION" >"$VENV/.streamcore-pyarrow"
echo "pyarrow $PYARROW_VERSION installed: $VENV/bin/python" >&2
