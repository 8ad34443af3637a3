#!/usr/bin/env bash
# //tests:buf_curl_test: a client that knows nothing of our protos (buf curl, by
# server reflection) can list, call and health-check the conductor.
#
# Also runs the grpcurl walkthrough of docs/operations.md (cases walkthrough_*).
#
# Starts 2 storage nodes, a conductor and a queue worker through tests/local_cluster.py, which
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
  # One queue worker: the walkthrough's reshard copies run on it.
  exec /usr/bin/python3 -I -B "$HERE/local_cluster.py" --storage-nodes 2 --workers 1 \
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

# --- The grpcurl walkthrough of docs/operations.md, step by step -------------
# Each step below is one command of docs/operations.md#walkthrough-with-grpcurl
# (grpcurl there, buf curl here, the same JSON bodies); keep them in step.

# Checks $OUT with a Python expression over `msgs`, the JSON messages buf
# curl printed (one per streamed response), and `m`, the last one.
check() {
  /usr/bin/python3 -I -c '
import json, sys
text = open(sys.argv[1]).read()
dec, msgs, i = json.JSONDecoder(), [], 0
while True:
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text):
        break
    obj, i = dec.raw_decode(text, i)
    msgs.append(obj)
m = msgs[-1] if msgs else {}
sys.exit(0 if eval(sys.argv[2]) else 1)
' "$OUT" "$1"
}
field() { /usr/bin/python3 -I -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$OUT" "$1"; }

# W1. List the services and their methods (grpcurl list / list SERVICE).
run --list-methods "$URL"
if ((RC != 0)); then
  fail walkthrough_list_methods "buf curl --list-methods exited $RC"
elif ! grep -qx 'conductor.v1.TableOps/Execute' "$OUT" ||
  ! grep -qx 'conductor.v1.TableOps/ReshardTable' "$OUT" ||
  ! grep -qx 'conductor.v1.TableOps/WatchReshard' "$OUT" ||
  ! grep -qx 'conductor.v1.TableOps/GetReshardStatus' "$OUT" ||
  ! grep -qx 'conductor.internal.v1.BackupService/Backup' "$OUT"; then
  fail walkthrough_list_methods "a TableOps or BackupService method is not listed"
else
  pass walkthrough_list_methods
fi

# W2. Describe a service (grpcurl describe conductor.v1.TableOps): what
# grpcurl asks the reflection service for.
run -d '{"fileContainingSymbol":"conductor.v1.TableOps"}' \
  "$URL/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
if ((RC != 0)); then
  fail walkthrough_describe "exited $RC"
elif ! check 'any(b"WatchReshard" in __import__("base64").b64decode(d) for d in m["fileDescriptorResponse"]["fileDescriptorProto"])'; then
  fail walkthrough_describe "the descriptor of conductor.v1.TableOps does not describe WatchReshard"
else
  pass walkthrough_describe
fi

# W3. Execute: CREATE TABLE with two shards.
run -d '{"sql":"CREATE TABLE walk (id INTEGER PRIMARY KEY, name TEXT) /* SHARDS=2 */"}' \
  "$URL/conductor.v1.TableOps/Execute"
if ((RC == 0)); then pass walkthrough_create_table; else fail walkthrough_create_table "exited $RC"; fi

# W4. Execute: INSERT with bound parameters.
run -d '{"sql":"INSERT INTO walk VALUES (?, ?), (?, ?), (?, ?)","params":[{"integer":"1"},{"text":"Ada"},{"integer":"2"},{"text":"Grace"},{"integer":"3"},{"text":"Edsger"}]}' \
  "$URL/conductor.v1.TableOps/Execute"
if ((RC != 0)); then
  fail walkthrough_insert "exited $RC"
elif ! check 'm.get("rowsAffected") == "3"'; then
  fail walkthrough_insert "rowsAffected is not 3"
else
  pass walkthrough_insert
fi

# W5. Execute: SELECT.
WALK_ROWS='[[v.get("integer") or v.get("text") for v in r["values"]] for r in m["resultSets"][0]["rows"]] == [["1", "Ada"], ["2", "Grace"], ["3", "Edsger"]]'
run -d '{"sql":"SELECT id, name FROM walk ORDER BY id"}' "$URL/conductor.v1.TableOps/Execute"
if ((RC != 0)); then
  fail walkthrough_select "exited $RC"
elif ! check "$WALK_ROWS"; then
  fail walkthrough_select "not the three rows inserted"
else
  pass walkthrough_select
fi

# W6. ReshardTable: 2 -> 4 shards; the answer carries the change_log_id.
run -d '{"table":"walk","newShardCount":4}' "$URL/conductor.v1.TableOps/ReshardTable"
ID=""
if ((RC != 0)); then
  fail walkthrough_reshard_table "exited $RC"
elif ! check 'm["changeLogId"] and m["status"]["sourceShardCount"] == 2 and m["status"]["targetShardCount"] == 4'; then
  fail walkthrough_reshard_table "no changeLogId, or not 2 -> 4"
else
  ID="$(field changeLogId)"
  pass walkthrough_reshard_table
fi

# W7. WatchReshard streams the status until the reshard completes.
RC=0
timeout 180 "$BUF" curl --protocol grpc --http2-prior-knowledge -d "{\"changeLogId\":\"$ID\"}" \
  "$URL/conductor.v1.TableOps/WatchReshard" >"$OUT" 2>"$ERR" || RC=$?
if ((RC != 0)); then
  fail walkthrough_watch_reshard "exited $RC"
elif ! check 'len(msgs) >= 1 and m["phase"] == "RESHARD_PHASE_COMPLETE" and all(x["changeLogId"] == msgs[0]["changeLogId"] for x in msgs)'; then
  fail walkthrough_watch_reshard "the stream did not end with RESHARD_PHASE_COMPLETE"
else
  pass walkthrough_watch_reshard
fi

# W8. GetReshardStatus: the final status.
run -d "{\"changeLogId\":\"$ID\"}" "$URL/conductor.v1.TableOps/GetReshardStatus"
if ((RC != 0)); then
  fail walkthrough_get_reshard_status "exited $RC"
elif ! check 'm["phase"] == "RESHARD_PHASE_COMPLETE" and m["targetShardCount"] == 4 and m["rowsCopied"] == "3"'; then
  fail walkthrough_get_reshard_status "not complete with 3 rows copied to 4 shards"
else
  pass walkthrough_get_reshard_status
fi

# W9. The table now has 4 shards and the same rows.
run -d '{"table":"walk"}' "$URL/conductor.v1.TableOps/DescribeTable"
if ((RC != 0)); then
  fail walkthrough_after_reshard "DescribeTable exited $RC"
elif ! check 'm["table"]["numShards"] == 4 and len(m["shards"]) == 4'; then
  fail walkthrough_after_reshard "walk does not have 4 shards"
else
  run -d '{"sql":"SELECT id, name FROM walk ORDER BY id"}' "$URL/conductor.v1.TableOps/Execute"
  if ((RC != 0)) || ! check "$WALK_ROWS"; then
    fail walkthrough_after_reshard "the rows changed (exit $RC)"
  else
    pass walkthrough_after_reshard
  fi
fi

echo "${#CASES[@]} cases, $failures failed"
((failures == 0))
