#!/usr/bin/env bash
# //tests:buf_curl_test: a client that knows nothing of our protos (buf curl, by
# server reflection) can list, call and health-check the conductor.
#
# Starts 2 storage nodes and a conductor through tests/local_cluster.py, which
# re-runs this script with CONDUCTOR_ADDR set and stops the cluster afterwards
# (failing unless every process exits 0 on SIGTERM).
# Needs BUF=/abs/path/to/buf in the test environment: run it with ./dev test.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ -z "${BUF:-}" ]]; then
  echo "FAIL: BUF is not set. Run this test via ./dev test (it passes --test_env=BUF=\$PWD/node_modules/.bin/buf)." >&2
  exit 1
fi
if [[ ! -x "$BUF" ]]; then
  echo "FAIL: BUF=$BUF is not executable: run ./dev deps" >&2
  exit 1
fi

TMP="${TEST_TMPDIR:-$(mktemp -d)}"
if [[ -z "${CONDUCTOR_ADDR:-}" ]]; then
  exec /usr/bin/python3 -I -B "$HERE/local_cluster.py" --storage-nodes 2 \
    --workdir "$TMP/cluster" -- bash "${BASH_SOURCE[0]}" "$@"
fi

# buf keeps a cache under $HOME/.cache; keep it inside the test's temp dir.
export HOME="$TMP/home"
export XDG_CACHE_HOME="$HOME/.cache"
mkdir -p "$HOME"

URL="http://$CONDUCTOR_ADDR"
bufcurl() { "$BUF" curl --protocol grpc --http2-prior-knowledge "$@"; }

# --- a tiny test-case runner that also writes JUnit XML for Bazel ----------------
CASES=()   # "name|status|message"
OUT="$TMP/out.txt"
ERR="$TMP/err.txt"
failures=0

pass() { CASES+=("$1|pass|"); echo "PASS: $1"; }
fail() {
  CASES+=("$1|failure|$2"); failures=$((failures + 1))
  echo "FAIL: $1: $2" >&2
  echo "  stdout: $(head -c 2000 "$OUT" 2>/dev/null)" >&2
  echo "  stderr: $(head -c 2000 "$ERR" 2>/dev/null)" >&2
}
xml_escape() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g'; }
write_xml() {
  [[ -n "${XML_OUTPUT_FILE:-}" ]] || return 0
  {
    echo '<?xml version="1.0" encoding="UTF-8"?>'
    echo "<testsuites><testsuite name=\"buf_curl_test\" tests=\"${#CASES[@]}\" failures=\"$failures\">"
    local c name status msg
    for c in "${CASES[@]}"; do
      IFS='|' read -r name status msg <<<"$c"
      if [[ "$status" == pass ]]; then
        echo "<testcase classname=\"buf_curl_test\" name=\"$name\"/>"
      else
        echo "<testcase classname=\"buf_curl_test\" name=\"$name\"><failure message=\"$(printf '%s' "$msg" | xml_escape)\"/></testcase>"
      fi
    done
    echo "</testsuite></testsuites>"
  } >"$XML_OUTPUT_FILE"
}
trap write_xml EXIT

# Runs buf curl with the given arguments; sets RC, output in $OUT / $ERR.
run() { RC=0; bufcurl "$@" >"$OUT" 2>"$ERR" || RC=$?; }

# --- cases ---------------------------------------------------------------------

# 1. Reflection lists the public service and health.
run --list-services "$URL"
if ((RC != 0)); then
  fail list_services "buf curl --list-services exited $RC"
elif ! grep -qx 'conductor.v1.TableOps' "$OUT"; then
  fail list_services "conductor.v1.TableOps not listed"
elif ! grep -qx 'grpc.health.v1.Health' "$OUT"; then
  fail list_services "grpc.health.v1.Health not listed"
else
  pass list_services
fi

# 2. CREATE TABLE through the SQL front door.
run -d '{"sql":"CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)"}' "$URL/conductor.v1.TableOps/Execute"
if ((RC == 0)); then pass execute_create_table; else fail execute_create_table "exited $RC"; fi

# 3. SHOW TABLES lists it.
run -d '{"sql":"SHOW TABLES"}' "$URL/conductor.v1.TableOps/Execute"
if ((RC != 0)); then
  fail execute_show_tables "exited $RC"
elif ! grep -q '"name": *"TABLES"' "$OUT"; then
  fail execute_show_tables "no result set named TABLES"
elif ! grep -q '"text": *"t"' "$OUT"; then
  fail execute_show_tables "table t not in the output"
else
  pass execute_show_tables
fi

# 4. An unknown table is NOT_FOUND: buf curl exits with 8 x the gRPC code (5).
run -d '{"table":"no_such_table"}' "$URL/conductor.v1.TableOps/DescribeTable"
if ((RC == 40)); then
  pass describe_missing_table_not_found
else
  fail describe_missing_table_not_found "exit code $RC, want 40 (8 x NOT_FOUND)"
fi

# 5. The health service answers SERVING.
run -d '{}' "$URL/grpc.health.v1.Health/Check"
if ((RC != 0)); then
  fail health_check "exited $RC"
elif ! grep -q '"status": *"SERVING"' "$OUT"; then
  fail health_check "status is not SERVING"
else
  pass health_check
fi

echo "${#CASES[@]} cases, $failures failed"
((failures == 0))
