#!/usr/bin/env bash
# Builds the SQL parser's libFuzzer target (sql_parser_fuzzer.cc) with clang
# -fsanitize=fuzzer,address,undefined from the parser's own sources (Bazel
# builds with gcc, which has no libFuzzer), then fuzzes it for
# FUZZ_SECONDS (default 25) starting from fuzz_corpus/. Fails on any crash,
# sanitizer report, invariant violation, timeout or out-of-memory.
#
#   FUZZ_SECONDS=300 bazel test //common/sql:sql_parser_fuzz_test   # longer run
#   FUZZ_BINARY_OUT=/tmp/fuzzer ...   # also copy the built fuzzer there
set -euo pipefail

seconds="${FUZZ_SECONDS:-25}"
root="${TEST_SRCDIR:?run under bazel test}/${TEST_WORKSPACE:-conductor}"
rpc_protos="$TEST_SRCDIR/system/googleapis"
work="${TEST_TMPDIR:-$(mktemp -d)}/fuzz"
rm -rf "$work"
mkdir -p "$work/gen" "$work/obj" "$work/corpus"

CXX="${CXX_FUZZ:-/usr/bin/clang++}"
if [[ ! -x "$CXX" ]]; then
  echo "FAIL: $CXX not found: ./dev deps installs clang and libclang-rt-14-dev" >&2
  exit 1
fi

# Generated code the parser's dependencies include (common/errors.cc,
# common/sqlite.h), from the same .proto files the Bazel build uses.
/usr/bin/protoc -I"$root/proto" -I/usr/include --cpp_out="$work/gen" \
  "$root/proto/conductor/v1/value.proto"
/usr/bin/protoc -I"$rpc_protos" -I/usr/include --cpp_out="$work/gen" \
  "$rpc_protos/google/rpc/status.proto" "$rpc_protos/google/rpc/error_details.proto"

common=(-std=c++17 -O1 -g -fno-omit-frame-pointer -I"$root" -I"$work/gen"
  -Wno-unused-command-line-argument)
san=(-fsanitize=address,undefined -fno-sanitize-recover=all)
# Coverage instrumentation (what libFuzzer steers by) only for the parser.
fuzz=(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all)

compile() {  # compile OUT FLAGS... SRC
  local out="$1"
  shift
  "$CXX" "${common[@]}" "$@" -c -o "$out" || {
    echo "FAIL: compiling ${*: -1}" >&2
    return 1
  }
}

pids=()
n=0
for src in "$root"/common/sql/{tokenizer,token_cursor,parse_helpers,parser,dml,create_table,create_table_rewrite}.cc \
  "$root/common/sql/sql_parser_fuzzer.cc"; do
  n=$((n + 1))
  compile "$work/obj/$n.o" "${fuzz[@]}" "$src" &
  pids+=($!)
done
for src in "$root/common/errors.cc" "$root/common/sqlite.cc" \
  "$work/gen/conductor/v1/value.pb.cc" "$work/gen/google/rpc/status.pb.cc" \
  "$work/gen/google/rpc/error_details.pb.cc"; do
  n=$((n + 1))
  compile "$work/obj/$n.o" "${san[@]}" "$src" &
  pids+=($!)
  # At most a few compilers at a time.
  if ((${#pids[@]} >= 4)); then
    wait "${pids[0]}" || exit 1
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || exit 1; done

# shellcheck disable=SC2046
"$CXX" -fsanitize=fuzzer,address,undefined -o "$work/sql_parser_fuzzer" "$work"/obj/*.o \
  $(pkg-config --libs grpc++ protobuf sqlite3 absl_status absl_statusor absl_strings \
    absl_str_format absl_cord)
[[ -n "${FUZZ_BINARY_OUT:-}" ]] && cp "$work/sql_parser_fuzzer" "$FUZZ_BINARY_OUT"

# A sanity pass over the seeds alone, then the timed run. New inputs go to
# a scratch directory: the committed corpus stays as it is.
cp "$root"/common/sql/fuzz_corpus/seed_* "$work/corpus/"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd "$work"
echo "fuzzing the SQL parser for ${seconds}s"
status=0
./sql_parser_fuzzer -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
  -dict="$root/common/sql/fuzz_corpus/sql.dict" -print_final_stats=1 \
  -artifact_prefix="${TEST_UNDECLARED_OUTPUTS_DIR:-$work}/" \
  "$work/corpus" >"$work/log" 2>&1 || status=$?
if ((status != 0)); then
  # The report (sanitizer, invariant or libFuzzer's own), then the input.
  first="$(grep -n -m1 -E "ERROR: |runtime error|invariant broken|==ERROR" "$work/log" | cut -d: -f1)"
  sed -n "${first:-1},\$p" "$work/log" | head -n 80
  echo "..."
  tail -n 12 "$work/log"
else
  tail -n 8 "$work/log"
fi
if ((status != 0)); then
  echo "FAIL: the fuzzer stopped with status $status (crash input in the test's outputs)" >&2
  exit 1
fi
grep -E "stat::number_of_executed_units" "$work/log" || true
echo "PASS"
