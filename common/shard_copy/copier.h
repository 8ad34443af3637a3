// The data-moving logic of an online reshard (DESIGN.md §5 RESHARD,
// docs/resharding.md), independent of where it runs: a queue worker
// copies a source shard and catches up; the conductor runs the last catch-up
// and the verification inside the table's write gate.
//
// Nothing here knows about gRPC or topology: every statement goes to a storage
// node through a NodeExecutor, which runs one storage.v1 ExecuteBatch request
// (one transaction) on the node it names. The executor is only ever called
// from the calling thread, one batch at a time.
//
// Every SQL identifier is quoted and every value is bound as a parameter; no
// statement binds more than kMaxSqlParameters parameters. Writes to targets are
// idempotent (INSERT OR REPLACE, DELETE), so any step may be re-run after a
// failure.
#ifndef CONDUCTOR_COMMON_SHARD_COPY_COPIER_H_
#define CONDUCTOR_COMMON_SHARD_COPY_COPIER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "conductor/v1/value.pb.h"
#include "storage/v1/storage.pb.h"

namespace conductor::shard_copy {

// SQLite's default SQLITE_MAX_VARIABLE_NUMBER (3.32+): the most parameters one
// statement may bind. Nodes may allow more; nothing here relies on it.
inline constexpr int kMaxSqlParameters = 32766;

// The approximate size (serialized bytes) past which the statements for one
// node are split over several write batches, well under the nodes' 64 MiB
// request limit. A statement holds at least one row, so one huge row still
// makes one (large) statement.
inline constexpr int64_t kMaxBatchBytes = int64_t{16} << 20;

// What moving the rows of one table needs.
struct TableLayout {
  // Physical table name (unquoted).
  std::string table;
  // The user columns to move, in order: no _virtualShard, no generated columns
  // (SQLite recomputes those on the target).
  std::vector<std::string> columns;
  // The user primary-key columns, in key order; each is one of `columns`.
  std::vector<std::string> primary_key;
  // The shard key: one of `primary_key`.
  std::string shard_key;
  // The shard key's declared type: its SQLite affinity is the routing affinity.
  std::string shard_key_type;
};

// OK, or INVALID_ARGUMENT naming the problem: an empty table name or column
// list, a duplicate column (names compare case-insensitively, as in SQL), a
// column named _virtualShard, an empty primary key, a key column that is not a
// column, a shard key that is not a key column.
absl::Status ValidateLayout(const TableLayout& layout);

// A virtual shard and the node holding it. `node` is opaque here: whatever the
// NodeExecutor needs to reach the node (an id or an address).
struct ShardOnNode {
  int32_t shard_id = 0;
  std::string node;
};
using SourceShard = ShardOnNode;
using TargetShard = ShardOnNode;

// Runs one batch on a node and returns its response (one result per statement).
// The caller adapts its storage client; an error fails the step that called it.
using NodeExecutor = std::function<absl::StatusOr<storage::v1::ExecuteBatchResponse>(
    const std::string& node, const storage::v1::ExecuteBatchRequest& request)>;

// The index into `targets` (the reshard's target shards, sorted by shard id)
// of the target that owns a row whose shard key is `shard_key_value`: the
// routing function (common/routing.h) over targets.size() shards,
//   ShardIndex(RoutingHash(value, AffinityOf(layout.shard_key_type)), targets.size()).
// REQUIRES: `targets` is not empty and `shard_key_value` is not NULL (callers
// check; ApplyRows and CatchUpOnce refuse NULL shard keys).
int TargetFor(const TableLayout& layout, const std::vector<TargetShard>& targets,
              const conductor::v1::Value& shard_key_value);

// Writes `rows` (values of layout.columns, in order) to the target shards that
// own them: for each target node, write batches (one, unless it would exceed
// kMaxBatchBytes) of multi-row
//   INSERT OR REPLACE INTO "t" ("_virtualShard", "c1", …) VALUES (?1, ?, …), …
// statements, nodes one after the other in any order. Idempotent: writing a
// row again, or a newer version of it, leaves one row. Returns the number of
// rows written (rows.size()). Errors: INVALID_ARGUMENT for an invalid layout,
// `targets` empty or not sorted by strictly increasing shard id, a row of the
// wrong width or with a NULL shard key (nothing is written then); otherwise the
// executor's first error (batches already run stay applied: re-run the call).
// With `parallel_nodes`, the target nodes are written at once (one thread
// per node), so `execute` must then be safe to call from several threads.
absl::StatusOr<int64_t> ApplyRows(const TableLayout& layout,
                                  const std::vector<TargetShard>& targets,
                                  const std::vector<std::vector<conductor::v1::Value>>& rows,
                                  const NodeExecutor& execute, bool parallel_nodes = false);

struct CatchUpResult {
  // The sequence number of the last change applied (and trimmed); after_seq
  // when there was nothing to do.
  int64_t last_seq = 0;
  // Captured changes of the source shard read (several may name one key).
  int64_t changes = 0;
  // Distinct keys whose current source row was written to its target.
  int64_t upserted = 0;
  // Distinct keys with no source row any more, deleted on their owning target
  // (whether or not the target still held them).
  int64_t deleted = 0;
};

// One catch-up pass for a source shard, with change capture on (see
// change_capture.h):
//  1. reads up to `max_changes` captured changes of `source` after `after_seq`
//     (ReadShardChangesSql, one read batch on the source node);
//  2. re-reads the CURRENT source row of each distinct key: one read batch
//     (split in halves while the node answers RESOURCE_EXHAUSTED) of a VALUES
//     list of keys LEFT JOINed to the table on the whole primary key, each key
//     column compared both with `=`, so that the key index serves it, and with
//     `= … COLLATE BINARY`, so that only the very key captured matches,
//     whatever the collations;
//  3. on the target nodes, deletes each key whose row is gone from its owning
//     target (by its shard-key value), matched the same way:
//       DELETE FROM "t" WHERE "_virtualShard" = ?1 AND "k1" = ?2
//                         AND "k1" = ?2 COLLATE BINARY AND …
//     then upserts the rows that exist (as ApplyRows); per node one write
//     batch (unless over kMaxBatchBytes), deletes first;
//  4. forgets the applied changes of this shard on the source
//     (TrimShardChangesSql, one write batch).
// A later write to a key is captured after the change that this pass read, so
// re-reading current rows makes every pass idempotent and order-free:
// re-running a pass, or running it after a failure at any step, is harmless.
// Key columns hold no NULL (the conductor declares them NOT NULL): a NULL
// matches nothing with `=`, so such a key would be neither upserted nor
// deleted.
// Errors: INVALID_ARGUMENT for an invalid layout or targets (as ApplyRows),
// max_changes < 1, a captured key with a NULL shard key; INTERNAL for a
// response of the wrong shape; otherwise the executor's first error (nothing
// is trimmed then, so the next pass from the same after_seq redoes it).
absl::StatusOr<CatchUpResult> CatchUpOnce(const TableLayout& layout, const SourceShard& source,
                                          const std::vector<TargetShard>& targets,
                                          int64_t after_seq, int max_changes,
                                          const NodeExecutor& execute);

// Verification for the switch. Rows cannot be attributed to a source shard on
// the targets (each target mixes rows of several sources), so the switch
// compares all sources with all targets: equal row counts, and optionally
// equal checksums.

// The number of rows in `shards`: one
//   SELECT count(*) FROM "t" WHERE "_virtualShard" = ?1
// per shard (served by the primary-key index); one read batch per node, or
// with `parallel` one call per shard, up to 16 at once (a node counts several
// shards on several reader connections), so that the count takes as long as
// the largest shard's. `execute` must then be safe to call from several
// threads.
absl::StatusOr<int64_t> CountShards(const TableLayout& layout,
                                    const std::vector<ShardOnNode>& shards,
                                    const NodeExecutor& execute, bool parallel = false);

// The number of rows in the captured `sources`, from the counters that the
// capture triggers keep (change_capture.h, CountsTable): one small read per
// node, whatever the shards' size. FAILED_PRECONDITION when a source has no
// counter on its node (capture is not on there).
absl::StatusOr<int64_t> CountCapturedShards(const TableLayout& layout,
                                            const std::vector<ShardOnNode>& sources,
                                            const NodeExecutor& execute);

// An order-independent digest of the rows of a set of shards.
struct ShardsChecksum {
  int64_t rows = 0;
  // The sum, modulo 2^64, of RowHash over the rows: equal for equal multisets
  // of rows whichever shards hold them.
  uint64_t checksum = 0;

  bool operator==(const ShardsChecksum& other) const {
    return rows == other.rows && checksum == other.checksum;
  }
  bool operator!=(const ShardsChecksum& other) const { return !(*this == other); }
};

// xxh64 (seed 0) of the canonical encoding of a row's values, in order: each
// value is a storage-class tag and its exact contents (integers and the bits of
// reals as 8 bytes little-endian, text and blobs as an 8-byte length and their
// bytes), so 1, 1.0, '1' and x'31' all differ. _virtualShard is not part of it.
uint64_t RowHash(const std::vector<conductor::v1::Value>& values);

// Reads every row of `shards` (layout.columns), shard after shard, in
// primary-key order blocks of `block_size` rows (each block one read batch on
// the shard's node, resuming strictly after the previous block's last key;
// the block is halved while the node answers RESOURCE_EXHAUSTED) and sums
// RowHash. Key order is the key columns' own collations (as ScanShard's). Errors: INVALID_ARGUMENT
// for an invalid layout or block_size < 1; INTERNAL for a response of the wrong shape; the
// executor's first error.
absl::StatusOr<ShardsChecksum> ChecksumShards(const TableLayout& layout,
                                              const std::vector<ShardOnNode>& shards,
                                              int block_size, const NodeExecutor& execute);

}  // namespace conductor::shard_copy

#endif  // CONDUCTOR_COMMON_SHARD_COPY_COPIER_H_
