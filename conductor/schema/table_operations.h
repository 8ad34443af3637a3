// TableOperations: CREATE / DROP / RENAME / MODIFY BLOCK_SIZE / DESCRIBE /
// STATS / LIST of tables (DESIGN.md §5), shared by the typed RPCs and the SQL
// front door.
//
// Schema changes that touch storage nodes are persisted state machines:
// the topology records the intent (creating, dropping, renaming) before any
// node is touched, and Reconcile() drives every unfinished record to an end —
// creates roll back, drops complete, renames roll back — so a crash at any
// instant leaves nothing half-visible.
#ifndef CONDUCTOR_CONDUCTOR_SCHEMA_TABLE_OPERATIONS_H_
#define CONDUCTOR_CONDUCTOR_SCHEMA_TABLE_OPERATIONS_H_

#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "conductor/index/index_manager.h"
#include "conductor/reshard/resharder.h"
#include "conductor/storage/storage_client.h"
#include "conductor/topo/job_queue.h"
#include "conductor/topo/topology_store.h"
#include "conductor/v1/table_ops.pb.h"

namespace conductor {

namespace v1 = ::conductor::v1;

struct TableOperationsOptions {
  // Upper bound on any one round of storage calls (a client deadline may be shorter).
  absl::Duration storage_timeout = absl::Seconds(10);
  // How often unfinished schema operations are retried in the background.
  absl::Duration reconcile_interval = absl::Seconds(2);
};

inline constexpr int kMinShards = 1;
inline constexpr int kMaxShards = 256;
inline constexpr int kDefaultBlockSize = 500;
inline constexpr int kMinBlockSize = 1;
inline constexpr int kMaxBlockSize = 10000;

class TableOperations {
 public:
  // `indexes` and `jobs` may be null (no virtual indexes: the index
  // operations answer FAILED_PRECONDITION).
  TableOperations(TopologyStore* store, StorageClient* storage, TableOperationsOptions options,
                  IndexManager* indexes = nullptr, JobQueue* jobs = nullptr);
  ~TableOperations();

  // Creates the table on every storage node in parallel; it becomes visible
  // only once all have it. A node failure rolls the create back and answers
  // UNAVAILABLE; a retry converges.
  absl::StatusOr<v1::CreateTableResponse> CreateTable(const v1::CreateTableRequest& request,
                                                      absl::Time deadline);
  // Refuses with UNAVAILABLE, changing nothing, when a node cannot be reached.
  // Once begun, the drop completes (in the background if a node fails late).
  absl::StatusOr<v1::DropTableResponse> DropTable(const v1::DropTableRequest& request,
                                                  absl::Time deadline);
  absl::StatusOr<v1::RenameTableResponse> RenameTable(const v1::RenameTableRequest& request,
                                                      absl::Time deadline);
  absl::StatusOr<v1::SetBlockSizeResponse> SetBlockSize(const v1::SetBlockSizeRequest& request,
                                                        absl::Time deadline);
  // Served from the topology alone: no storage node is contacted.
  absl::StatusOr<v1::DescribeTableResponse> DescribeTable(
      const v1::DescribeTableRequest& request) const;
  // Counts every active shard, one batch per node, all nodes in parallel. A
  // shard whose node fails shows status "error" with the reason; the others
  // still count.
  absl::StatusOr<v1::GetTableStatsResponse> GetTableStats(const v1::GetTableStatsRequest& request,
                                                          absl::Time deadline);
  v1::ListTablesResponse ListTables() const;

  // Virtual indexes (DESIGN.md §5, docs/indexes.md). CreateIndex creates the
  // SQLite index on (_virtualShard, columns…) on every node, records the
  // index as building with its IndexBuildJob, and returns at once. A UNIQUE
  // index over rows that already repeat a value within one shard is
  // recorded as failed (the answer says so; the build finds repeats across
  // shards). UNAVAILABLE, changing nothing, when a node cannot be reached.
  absl::StatusOr<v1::CreateIndexResponse> CreateIndex(const v1::CreateIndexRequest& request,
                                                      absl::Time deadline);
  absl::StatusOr<v1::DropIndexResponse> DropIndex(const v1::DropIndexRequest& request,
                                                  absl::Time deadline);
  absl::StatusOr<v1::ListIndexesResponse> ListIndexes(const v1::ListIndexesRequest& request) const;
  v1::IndexInfo ToIndexInfo(const TableMeta& table, const IndexMeta& index) const;
  // CREATE [UNIQUE] INDEX IF NOT EXISTS on (_virtualShard, columns…) for the nodes.
  static std::string PhysicalIndexSql(const TableMeta& table, const IndexMeta& index);

  // Creates every active table on `node` (idempotent), for a node that joins
  // after the tables were created.
  absl::Status CreateTablesOn(const NodeMeta& node, absl::Time deadline);

  // Drives every unfinished schema operation to its end. OK when none is left.
  absl::Status Reconcile(absl::Time deadline);
  // Runs Reconcile() now and then every reconcile_interval until destruction.
  void StartBackgroundReconciler();

  static v1::TableInfo ToTableInfo(const TableMeta& table);

  // DROP TABLE and RENAME refuse (FAILED_PRECONDITION, RESHARD_IN_PROGRESS)
  // while `resharder` says a reshard of the table is active.
  void SetResharder(Resharder* resharder) { resharder_ = resharder; }

  // `count` shards on the least-loaded nodes (ids 0..count-1, active).
  std::vector<ShardMeta> PlaceShards(const Snapshot& snapshot, int count) const;
  // Serialises schema changes: takes the lock, waiting no longer than
  // `deadline` (DEADLINE_EXCEEDED).
  absl::StatusOr<std::unique_lock<std::timed_mutex>> LockSchema(absl::Time deadline);

 private:
  absl::Time StorageDeadline(absl::Time deadline) const;
  // Runs one write batch of `sql` on every node; returns the first failure.
  absl::Status OnEveryNode(const std::vector<NodeMeta>& nodes, const std::string& sql,
                           absl::Time deadline);
  // Renames the physical table on every node; idempotent per node.
  absl::Status RenameOnEveryNode(const std::vector<NodeMeta>& nodes, const std::string& from,
                                 const std::string& to, absl::Time deadline);
  // Finishes or rolls back the unfinished record `table`. REQUIRES: ddl_mu_ held.
  absl::Status ReconcileTable(const TableMeta& table, absl::Time deadline);
  // Rolls back a creating index, finishes a dropping one. REQUIRES: ddl_mu_ held.
  absl::Status ReconcileIndex(const IndexMeta& index, absl::Time deadline);
  // What is left of an index once its record is gone: entries, marks, jobs.
  void ForgetIndex(int64_t index_id);

  TopologyStore* store_;
  StorageClient* storage_;
  TableOperationsOptions options_;
  IndexManager* indexes_;
  JobQueue* jobs_;
  Resharder* resharder_ = nullptr;
  // FAILED_PRECONDITION (RESHARD_IN_PROGRESS) while a reshard of `table` is active.
  absl::Status CheckNoReshard(const TableMeta& table, const char* what);

  // Serialises schema changes (they are rare; data statements never take it).
  std::timed_mutex ddl_mu_;

  std::mutex reconciler_mu_;
  std::condition_variable reconciler_cv_;
  bool stopping_ = false;  // GUARDED_BY(reconciler_mu_)
  std::thread reconciler_;
};

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_SCHEMA_TABLE_OPERATIONS_H_
