// The routing function (DESIGN.md §2): which virtual shard owns a shard-key value.
//
//   h     = xxh64(CanonicalText(ApplyAffinity(value, AffinityOf(declared_type))), seed 0)
//   index = (h * n) >> 64   (128-bit product; n = number of ACTIVE shards)
//
// `index` selects among the table's active shards sorted by shard id. Each shard owns a contiguous
// range of the hash space, so going from n to 2n shards splits shard i into 2i and 2i+1.
//
// Affinity is applied exactly as SQLite 3.40 applies it when storing into a column of the
// declared type, so values that SQLite stores as the same value (1, '1', 1.0, ' 1', '1e0' in an
// INTEGER column) route to the same shard. docs/routing.md describes the algorithm for other
// languages and lists golden vectors.
//
// Everything here is pure, allocation-light and thread-safe; nothing calls into SQLite.
#ifndef CONDUCTOR_COMMON_ROUTING_H_
#define CONDUCTOR_COMMON_ROUTING_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "conductor/v1/value.pb.h"

namespace conductor::routing {

// SQLite's column affinities (https://www.sqlite.org/datatype3.html §3).
enum class Affinity { kInteger, kText, kBlob, kReal, kNumeric };

// The affinity SQLite gives a column declared with `declared_type` (datatype3.html §3.1), matched
// case-insensitively (ASCII) as substrings, first rule wins:
//   contains "INT"                       → kInteger  ("BIGINT", "POINT", "FLOATING POINT")
//   contains "CHAR", "CLOB" or "TEXT"    → kText     ("VARCHAR(10)")
//   contains "BLOB", or is empty         → kBlob
//   contains "REAL", "FLOA" or "DOUB"    → kReal
//   anything else                        → kNumeric  ("NUMERIC", "DECIMAL(10,2)", "BOOLEAN",
//                                                      "DATE", "STRING")
// Like SQLite, the declared type ends at the first NUL byte.
Affinity AffinityOf(absl::string_view declared_type);

// The value SQLite 3.40 stores when `value` is written through a bound parameter into a column
// with `affinity` (datatype3.html §3, §4.2), in the storage class SQLite reports when the column
// is read back:
//   kInteger, kNumeric: text that is a well-formed decimal integer or real literal (leading and
//       trailing whitespace allowed; "+5", ".5", "5.", "1e3"; hex such as "0x10" is NOT
//       converted) becomes INTEGER if its value is an integer that fits int64, else REAL
//       ("1e999" → Inf). A REAL whose value is an int64 other than INT64_MIN becomes INTEGER
//       (-0.0 → 0). Other values are unchanged.
//   kReal: as above, then INTEGER results become REAL (so -0.0 → 0.0, 7 → 7.0).
//   kText: INTEGER → its decimal text; REAL → the text SQLite renders (printf "%!.15g":
//       1.0 → "1.0", 0.1 → "0.1", 1e20 → "1.0e+20", Inf → "Inf").
//   kBlob: unchanged.
// NULL (and an unset Value) and BLOBs are never converted. A NaN REAL becomes NULL, as SQLite
// stores NULL for a bound NaN. Text is parsed with SQLite's own algorithm (sqlite3AtoF), so the
// resulting double is bit-for-bit what SQLite stores.
conductor::v1::Value ApplyAffinity(const conductor::v1::Value& value, Affinity affinity);

// The canonical routing text of a value that has already been through ApplyAffinity:
//   INTEGER → decimal ("-12"); REAL → C printf "%.17g" ("0.10000000000000001", "1e+20", "-0",
//   "inf"); TEXT → its bytes (UTF-8); BLOB → its bytes.
// NULL (also an unset Value or a NaN REAL) has no routing text: returns std::nullopt, and callers
// must refuse NULL shard keys.
std::optional<std::string> CanonicalText(const conductor::v1::Value& value);

// xxh64(CanonicalText(ApplyAffinity(value, affinity)), seed 0), without building intermediate
// protos. REQUIRES: value is not NULL (nor a NaN REAL). If violated, returns the hash of the empty
// string rather than crashing.
uint64_t RoutingHash(const conductor::v1::Value& value, Affinity affinity);

// (hash * num_shards) >> 64 computed with a 128-bit product: the index, in [0, num_shards), into
// the table's ACTIVE shards sorted by shard id. Monotone in `hash`; every index owns one
// contiguous hash range; ShardIndex(h, 2n) / 2 == ShardIndex(h, n).
// REQUIRES: num_shards >= 1 (a smaller value is treated as 1).
int ShardIndex(uint64_t hash, int num_shards);

}  // namespace conductor::routing

#endif  // CONDUCTOR_COMMON_ROUTING_H_
