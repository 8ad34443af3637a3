// The database of one storage node: one SQLite file in WAL mode, one writer
// connection and a pool of query-only reader connections.
#ifndef CONDUCTOR_STORAGE_NODE_NODE_DATABASE_H_
#define CONDUCTOR_STORAGE_NODE_NODE_DATABASE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/v1/storage.pb.h"
#include "storage_node/batch_runner.h"
#include "storage_node/call_control.h"
#include "storage_node/connection_pool.h"

namespace conductor {
namespace storage_node {

struct NodeDatabaseOptions {
  // Directory holding storage.db; created (with parents) when missing.
  std::string data_dir;
  // PRAGMA synchronous=FULL when true, NORMAL when false.
  bool synchronous_full = true;
  // Size of the reader pool: how many read_only batches run at once.
  int reader_connections = 8;
  BatchLimits limits;
};

// The file name of the database inside the data directory.
inline constexpr char kDatabaseFileName[] = "storage.db";

// Thread-safe. Write batches are serialised on the writer; read_only batches
// run concurrently with each other and with the writer, each on one snapshot.
class NodeDatabase {
 public:
  // Prepares the data directory and opens the database. Fails (with a message
  // naming the directory or file) when the directory cannot be created or
  // written, is a file, or holds a file that is not a usable SQLite database.
  static absl::StatusOr<std::unique_ptr<NodeDatabase>> Open(const NodeDatabaseOptions& options);

  NodeDatabase(const NodeDatabase&) = delete;
  NodeDatabase& operator=(const NodeDatabase&) = delete;

  // Runs `request` (see RunBatch) on a reader for a read_only batch, on the
  // writer otherwise. Fails with INVALID_ARGUMENT for an empty batch, and with
  // DEADLINE_EXCEEDED / CANCELLED when `control` ends the call while it waits
  // for a connection or runs. Never UNAVAILABLE.
  absl::Status ExecuteBatch(const storage::v1::ExecuteBatchRequest& request,
                            const CallControl& control,
                            storage::v1::ExecuteBatchResponse* response);

  // Streams one virtual shard of a table (see storage.v1.ScanShardRequest):
  // validates `request` (ShardScan::Create), then reads block after block,
  // each in its own read transaction on a reader that goes back to the pool
  // before the block is passed to `emit`, until the shard's last block (done)
  // or max_blocks blocks. `emit` returns false when the receiver went away; the
  // scan then stops with CANCELLED. Fails with INVALID_ARGUMENT for a malformed
  // request, SQLite's error for an unknown table or column, RESOURCE_EXHAUSTED
  // for a block larger than the response limit, and DEADLINE_EXCEEDED /
  // CANCELLED once `control` ends the call (while waiting for a reader, while
  // reading, or between blocks). Blocks emitted before an error stay valid.
  absl::Status ScanShard(const storage::v1::ScanShardRequest& request, const CallControl& control,
                         const std::function<bool(const storage::v1::ScanShardResponse&)>& emit);

  // Streams a consistent snapshot of the whole database (storage.v1 Backup):
  // copies it with SQLite's online backup API into a temporary file beside
  // the database (".backup-*.tmp", removed afterwards; writers are not
  // blocked, see SnapshotDatabase), then passes it to `emit` in chunks of
  // request.chunk_bytes (0: 1 MiB), the last message carrying the size and
  // SHA-256. `emit` returns false when the receiver went away (CANCELLED).
  // INVALID_ARGUMENT for a chunk size outside 0..16 MiB; DEADLINE_EXCEEDED /
  // CANCELLED once `control` ends the call between chunks.
  absl::Status Backup(const storage::v1::BackupRequest& request, const CallControl& control,
                      const std::function<bool(const storage::v1::BackupResponse&)>& emit);

  // Records `node_id` in the database (table _conductor_node) at the first
  // start; afterwards, FAILED_PRECONDITION when the file belongs to another
  // node (a restored or copied file in the wrong data directory), so that a
  // conductor never takes one node's data for another's.
  absl::Status ClaimNodeId(const std::string& node_id);

  // The database file (an absolute path).
  const std::string& path() const { return path_; }

 private:
  NodeDatabase(std::string path, BatchLimits limits, std::unique_ptr<ConnectionPool> writer,
               std::unique_ptr<ConnectionPool> readers);

  const std::string path_;
  const BatchLimits limits_;
  // A pool of one: the lease is the writer mutex.
  const std::unique_ptr<ConnectionPool> writer_;
  const std::unique_ptr<ConnectionPool> readers_;
};

}  // namespace storage_node
}  // namespace conductor

#endif  // CONDUCTOR_STORAGE_NODE_NODE_DATABASE_H_
