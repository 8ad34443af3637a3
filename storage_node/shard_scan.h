// Reads one virtual shard of a table block by block, each block in its own
// read transaction (the ScanShard RPC).
#ifndef CONDUCTOR_STORAGE_NODE_SHARD_SCAN_H_
#define CONDUCTOR_STORAGE_NODE_SHARD_SCAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/sqlite.h"
#include "storage/v1/storage.pb.h"
#include "storage_node/call_control.h"
#include "storage_node/connection.h"

namespace conductor {
namespace storage_node {

// The largest ScanShardRequest.block_size.
inline constexpr int kMaxScanBlockSize = 10000;

// A validated ScanShardRequest and how far it has read. Movable; not
// thread-safe (one call reads its blocks one after the other).
class ShardScan {
 public:
  // Checks `request`: INVALID_ARGUMENT (reason INVALID_ARGUMENT) for an empty
  // table, empty key_columns, columns empty when not distinct, an empty name or
  // one with a NUL, block_size outside 1..kMaxScanBlockSize, after_key neither
  // empty nor one value per key column, or a negative max_blocks. Names are
  // not looked up here: an unknown table or column fails the first block.
  static absl::StatusOr<ShardScan> Create(const storage::v1::ScanShardRequest& request);

  // Reads the next block on `connection` in one read transaction (BEGIN ...
  // ROLLBACK) into `block`: its rows, the key of its last row, and whether it
  // is the shard's last. Then the scan resumes after that key. Fails with
  // SQLite's error (an unknown table or column is INVALID_ARGUMENT, SQL_ERROR),
  // RESOURCE_EXHAUSTED when the block's rows exceed `max_block_bytes`
  // (approximately, serialized), and DEADLINE_EXCEEDED / CANCELLED once
  // `control` ends the call; `block` is then cleared and the position kept.
  // REQUIRES: the caller has `connection` to itself; !done().
  absl::Status ReadBlock(Connection& connection, const CallControl& control,
                         int64_t max_block_bytes, storage::v1::ScanShardResponse* block);

  // True once a block ended the shard.
  bool done() const { return done_; }

 private:
  ShardScan() = default;
  // The query of the next block. Parameters: ?1 the shard id, ?2... the
  // after_key values, then the row limit.
  std::string NextBlockSql() const;
  // Runs the next block's query on `connection` into `block` (rows, last_key,
  // done); ReadBlock does the transaction and the bookkeeping around it.
  absl::Status ReadRows(Connection& connection, int64_t max_block_bytes,
                        storage::v1::ScanShardResponse* block);

  // FROM "<table>", and each column as "<table>"."<column>": qualified names
  // never fall back to string literals as a bare "unknown" would.
  std::string quoted_table_;
  std::vector<std::string> columns_;
  std::vector<std::string> key_columns_;
  int32_t shard_id_ = 0;
  int block_size_ = 0;
  bool distinct_ = false;
  // Resume strictly after this key; empty at the start.
  std::vector<Value> after_key_;
  bool done_ = false;
};

}  // namespace storage_node
}  // namespace conductor

#endif  // CONDUCTOR_STORAGE_NODE_SHARD_SCAN_H_
