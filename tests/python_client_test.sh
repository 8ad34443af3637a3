#!/usr/bin/env bash
# Bazel entry point of //tests:python_client_test: runs the Python client test
# with Debian's interpreter (it has grpcio; the pyenv python3 on PATH does not).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# -I: ignore PYTHON* variables and the user's site-packages; -B: write no .pyc.
exec /usr/bin/python3 -I -B "$HERE/python_client_test.py" "$@"
