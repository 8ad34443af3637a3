#!/usr/bin/env bash
# //tests:buf_lint_test: `buf lint` (STANDARD rules, exceptions in proto/buf.yaml,
# see docs/api-lint.md) over the protos this test has as data.
# Needs BUF=/abs/path/to/buf in the test environment: run it with ./dev test.
set -euo pipefail

if [[ -z "${BUF:-}" ]]; then
  echo "FAIL: BUF is not set. Run this test via ./dev test (it passes --test_env=BUF=\$PWD/node_modules/.bin/buf)." >&2
  exit 1
fi
if [[ ! -x "$BUF" ]]; then
  echo "FAIL: BUF=$BUF is not executable: run ./dev deps" >&2
  exit 1
fi

ROOT="${RUNFILES_DIR:-${TEST_SRCDIR:?not run by bazel}}/conductor"
cd "$ROOT/proto"
[[ -f buf.yaml ]] || { echo "FAIL: proto/buf.yaml missing from runfiles" >&2; exit 1; }

# buf keeps a cache under $HOME/.cache; keep it inside the test's temp dir.
export HOME="${TEST_TMPDIR:-$(mktemp -d)}"
export XDG_CACHE_HOME="$HOME/.cache"

echo "linting:"; find -L . -name '*.proto' | sort | sed 's/^/  /'
if "$BUF" lint; then
  echo "PASS: buf lint found nothing"
else
  echo "FAIL: buf lint reported the findings above (exceptions: proto/buf.yaml, docs/api-lint.md)" >&2
  exit 1
fi
