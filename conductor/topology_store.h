// TopologyStore: the single source of truth for the cluster layout, kept in
// one SQLite file (WAL, synchronous=FULL) on the conductor.
//
// Every change is one SQLite transaction; after it commits, the store bumps
// the topology version and publishes a fresh immutable Snapshot. Readers take
// snapshot() without locks held for long; writers are serialised.
#ifndef CONDUCTOR_CONDUCTOR_TOPOLOGY_STORE_H_
#define CONDUCTOR_CONDUCTOR_TOPOLOGY_STORE_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/sqlite.h"
#include "conductor/topology.h"

namespace conductor {

class TopologyStore {
 public:
  // The schema version this code writes; older files are migrated on open.
  static constexpr int kSchemaVersion = 1;

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

  // Removes a table record and everything that hangs off it.
  absl::Status DeleteTable(int64_t table_id);

  // Milliseconds since the epoch, the clock used for created/updated stamps.
  static int64_t NowMs();

 private:
  explicit TopologyStore(std::unique_ptr<Database> db) : db_(std::move(db)) {}
  absl::Status Migrate();
  // Runs `body` in one IMMEDIATE transaction, bumps the version, commits and
  // republishes the snapshot. Rolls back when `body` fails.
  absl::Status Mutate(const std::function<absl::Status(Database&)>& body);
  absl::StatusOr<std::shared_ptr<const Snapshot>> Load();

  std::mutex write_mu_;  // serialises Mutate(); guards db_
  std::unique_ptr<Database> db_;
  mutable std::mutex snapshot_mu_;
  std::shared_ptr<const Snapshot> snapshot_;  // GUARDED_BY(snapshot_mu_)
};

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_TOPOLOGY_STORE_H_
