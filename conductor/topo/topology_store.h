// TopologyStore: the single source of truth for the cluster layout, kept in
// one SQLite file (WAL, synchronous=FULL) on the conductor.
//
// Every topology change is one SQLite transaction; after it commits, the
// store bumps the topology version and publishes a fresh immutable Snapshot.
// Readers take snapshot() without locks held for long; writers are serialised.
//
// The same file holds non-topology state that changes often (the job queue's
// `jobs` table): Transact() changes it in a transaction that neither bumps
// the version nor rebuilds the snapshot, and Mutate() lets a caller change
// topology and such state together, atomically.
#ifndef CONDUCTOR_CONDUCTOR_TOPO_TOPOLOGY_STORE_H_
#define CONDUCTOR_CONDUCTOR_TOPO_TOPOLOGY_STORE_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/sqlite.h"
#include "conductor/topo/topology.h"

namespace conductor {

class TopologyStore {
 public:
  // The schema version this code writes; older files are migrated on open.
  // History: 1 = topology tables; 2 = + `jobs` (docs/job-queue.md);
  // 3 = + `virtual_indexes`, `virtual_index_columns` (docs/indexes.md);
  // 4 = + `reshard_operations` (docs/resharding.md).
  static constexpr int kSchemaVersion = 4;

  // Opens or creates the store at `path` (":memory:" for tests). Fails with
  // FAILED_PRECONDITION when the file was written by a newer version.
  static absl::StatusOr<std::unique_ptr<TopologyStore>> Open(const std::string& path);

  // The current snapshot. Never null.
  std::shared_ptr<const Snapshot> snapshot() const;

  // Adds a storage node, or updates the address of a known node_id.
  absl::Status UpsertNode(const NodeMeta& node);

  // Records a new table in state kCreating with its shards. `table.table_id`
  // is ignored; the new id is returned. ALREADY_EXISTS if the name is taken
  // by any record (whatever its state).
  absl::StatusOr<int64_t> InsertTable(const TableMeta& table);

  // Moves a table to `state`; `pending_name` is kept only for kRenaming.
  absl::Status SetTableState(int64_t table_id, TableState state,
                             const std::string& pending_name = "");

  // Completes a rename: the record takes its pending name and becomes active.
  absl::Status FinishRename(int64_t table_id);

  absl::Status SetBlockSize(int64_t table_id, int32_t block_size);

  // Removes a table record and everything that hangs off it (its index
  // records included).
  absl::Status DeleteTable(int64_t table_id);

  // Index records, for use inside Mutate(). InsertIndexIn records `index`
  // (its index_id and timestamps ignored) and returns the new id;
  // ALREADY_EXISTS (INDEX_ALREADY_EXISTS) when an index or a table already
  // has the name. SetIndexStatusIn: NOT_FOUND for an unknown id.
  static absl::StatusOr<int64_t> InsertIndexIn(Database& db, const IndexMeta& index);
  static absl::Status SetIndexStatusIn(Database& db, int64_t index_id, const std::string& status,
                                       const std::string& error);
  static absl::Status DeleteIndexIn(Database& db, int64_t index_id);

  // Runs `body` in one IMMEDIATE transaction on the store's connection, bumps
  // the topology version, commits and republishes the snapshot. Rolls back
  // (and returns body's error) when `body` fails. Use it for any change that
  // touches topology tables, including one that also writes other state
  // (e.g. a table operation that enqueues its job: JobQueue::EnqueueIn).
  // `body` must not call back into this store (the connection lock is held).
  absl::Status Mutate(const std::function<absl::Status(Database&)>& body);

  // Runs `body` in one IMMEDIATE transaction on the store's connection and
  // commits; rolls back (and returns body's error) when `body` fails. Does
  // NOT bump the topology version or reload the snapshot: for state that is
  // not topology (jobs) and for consistent reads. `body` must not touch
  // topology tables (the snapshot would go stale) and must not call back
  // into this store.
  absl::Status Transact(const std::function<absl::Status(Database&)>& body);

  // Milliseconds since the epoch, the clock used for created/updated stamps.
  static int64_t NowMs();

 private:
  explicit TopologyStore(std::unique_ptr<Database> db) : db_(std::move(db)) {}
  absl::Status Migrate();
  // BEGIN IMMEDIATE, `body`, then (when ok and `bump_version`) the version
  // bump, COMMIT; rolls back on any error. REQUIRES: write_mu_ held.
  absl::Status RunTransaction(const std::function<absl::Status(Database&)>& body,
                              bool bump_version);
  absl::StatusOr<std::shared_ptr<const Snapshot>> Load();

  std::mutex write_mu_;  // serialises Mutate() and Transact(); guards db_
  std::unique_ptr<Database> db_;
  mutable std::mutex snapshot_mu_;
  std::shared_ptr<const Snapshot> snapshot_;  // GUARDED_BY(snapshot_mu_)
};

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_TOPO_TOPOLOGY_STORE_H_
