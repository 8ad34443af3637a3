// The cluster topology as the conductor sees it: an immutable snapshot with a
// version number. Routing and table operations read a snapshot; every change
// is made through TopologyStore, which publishes a new snapshot.
#ifndef CONDUCTOR_CONDUCTOR_TOPO_TOPOLOGY_H_
#define CONDUCTOR_CONDUCTOR_TOPO_TOPOLOGY_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/sql/create_table.h"

namespace conductor {

// Lifecycle of a table's topology record. Only kActive tables are visible to
// users; the others are steps of a persisted state machine that the
// SchemaReconciler drives to an end after any crash.
enum class TableState {
  kCreating,  // physical tables being created on the nodes
  kActive,
  kDropping,  // invisible; physical tables being dropped on the nodes
  kRenaming,  // physical tables being renamed to pending_name
};

const char* TableStateName(TableState state);
bool ParseTableState(const std::string& text, TableState* state);

namespace shard_status {
inline constexpr char kActive[] = "active";
inline constexpr char kPending[] = "pending";
inline constexpr char kRetiring[] = "retiring";
inline constexpr char kFailed[] = "failed";
}  // namespace shard_status

struct NodeMeta {
  std::string node_id;
  std::string address;
};

struct ShardMeta {
  int32_t shard_id = 0;
  std::string node_id;
  std::string status;
};

// Lifecycle of a virtual index (DESIGN.md §5 CREATE INDEX). Users see
// building, ready and failed; creating and dropping are steps of persisted
// state machines that the reconciler finishes after a crash.
namespace index_status {
inline constexpr char kCreating[] = "creating";  // SQLite indexes being created on the nodes
inline constexpr char kBuilding[] = "building";  // entries being filled by an IndexBuildJob
inline constexpr char kReady[] = "ready";        // routing may use it
inline constexpr char kFailed[] = "failed";      // see error; DROP INDEX removes it
inline constexpr char kDropping[] = "dropping";  // SQLite indexes being dropped on the nodes
}  // namespace index_status

struct IndexMeta {
  int64_t index_id = 0;
  int64_t table_id = 0;
  std::string name;
  std::vector<std::string> columns;  // as declared in the table
  bool unique = false;
  // Enforces a UNIQUE constraint of the table's CREATE TABLE: the table's own
  // SQLite index backs it on the nodes, and it lives and dies with the table.
  bool constraint_backed = false;
  std::string status = index_status::kCreating;
  std::string error;
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;

  // building or ready: writes keep its entries a superset of the truth.
  bool Maintained() const;
  // building, ready or failed: shown by SHOW INDEXES, DESCRIBE, ListIndexes.
  bool Visible() const;
  // "unique" or "hash", as IndexInfo.type.
  const char* TypeName() const { return unique ? "unique" : "hash"; }
};

struct TableMeta {
  int64_t table_id = 0;
  std::string name;
  TableState state = TableState::kCreating;
  std::string pending_name;  // kRenaming only
  std::vector<std::string> primary_key;
  std::string shard_key;
  std::string strategy = "hash";
  int32_t block_size = 500;
  std::string user_sql;
  std::string physical_sql;
  std::vector<sql::ColumnSchema> columns;
  std::vector<std::vector<std::string>> unique_constraints;
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
  std::vector<ShardMeta> shards;   // sorted by shard_id
  std::vector<IndexMeta> indexes;  // every state, sorted by index_id

  // The number of active shards (what users see as num_shards).
  int32_t ActiveShardCount() const;
};

struct Snapshot {
  int64_t version = 0;
  std::vector<NodeMeta> nodes;  // sorted by node_id
  // Every table, whatever its state, keyed by lower-cased name.
  std::map<std::string, TableMeta> tables;

  // The active table called `name` (ASCII case-insensitive), or null.
  const TableMeta* FindActive(const std::string& name) const;
  // Any table record holding `name`, as its name or as a rename target.
  const TableMeta* FindAny(const std::string& name) const;
  const NodeMeta* FindNode(const std::string& node_id) const;
  // The index called `name` (ASCII case-insensitive) in any state, and its
  // table; {null, null} when there is none.
  std::pair<const TableMeta*, const IndexMeta*> FindIndex(const std::string& name) const;
};

// ASCII lower-casing, as SQLite folds names.
std::string LowerName(const std::string& name);

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_TOPO_TOPOLOGY_H_
