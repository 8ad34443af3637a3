#!/usr/bin/env bash
# Runs one of the Node.js checks of deploy/ (tests/deploy/*.js) under Bazel:
#   node_test.sh SCRIPT.js [ARGS...]
# The npm packages come from the repository's node_modules, found next to
# BUF (node_modules/.bin/buf), which ./dev test passes as --test_env.
set -euo pipefail

if [[ -z "${BUF:-}" ]]; then
  echo "FAIL: BUF is not set. Run this test via ./dev test (it passes --test_env=BUF=\$PWD/node_modules/.bin/buf)." >&2
  exit 1
fi
NODE_MODULES="$(dirname "$(dirname "$BUF")")"
for mod in kubernetes-models yaml; do
  if [[ ! -f "$NODE_MODULES/$mod/package.json" ]]; then
    echo "FAIL: $NODE_MODULES/$mod is missing: run ./dev deps" >&2
    exit 1
  fi
done
NODE="$(command -v node || true)"
if [[ -z "$NODE" ]]; then
  echo "FAIL: node is not on PATH: run ./dev deps" >&2
  exit 1
fi

# Bazel runs a test in its runfiles tree, where data files keep their
# workspace paths (deploy/k8s/..., conductor/conductor, ...).
export NODE_MODULES
script="$1"
shift
exec "$NODE" "$script" "$@"
