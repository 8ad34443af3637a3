// QueryPlanner: turns one analysed data statement into the per-shard
// statements to send and the way their answers combine (DESIGN.md §5a).
// Pure logic over a topology snapshot: no I/O, unit-testable.
//
// Every per-shard statement names exactly one virtual shard, bound as a
// parameter (`_virtualShard = ?K`, K one past the user's parameters), and
// never exposes _virtualShard (`*` is expanded to the user's columns).
#ifndef CONDUCTOR_CONDUCTOR_PLANNER_QUERY_PLANNER_H_
#define CONDUCTOR_CONDUCTOR_PLANNER_QUERY_PLANNER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/sql/dml.h"
#include "common/sqlite.h"
#include "conductor/topo/topology.h"

namespace conductor {

// How the answers of the shard statements become the statement's answer.
enum class MergeKind {
  kPassThrough,  // one shard statement: its answer is the answer
  kConcat,       // rows appended in shard order, then OFFSET/LIMIT; writes sum rows_affected
  kSort,         // sorted rows carrying their sort keys, merged by those keys, then OFFSET/LIMIT
  kInMemory,     // rows loaded into an in-memory SQLite table, a final query run there
  kLocal,        // no table: the statement runs in the conductor's in-memory SQLite
};

const char* MergeKindName(MergeKind kind);

struct ShardStatement {
  int32_t shard_id = -1;
  NodeMeta node;
  std::string sql;
  std::vector<Value> params;
};

struct QueryPlan {
  sql::StatementKind kind = sql::StatementKind::kSelect;
  // "shard_key" (pinned by the shard key), "virtual_index" (pinned by the
  // columns of a ready virtual index), "scatter" (every active shard) or "local".
  std::string route;
  // route "virtual_index": the index used.
  std::string index_name;
  bool read_only = true;
  std::vector<ShardStatement> statements;
  MergeKind merge = MergeKind::kPassThrough;
  // kConcat / kSort: applied to the merged rows; -1 = no limit.
  int64_t limit = -1;
  int64_t offset = 0;
  // kSort: each shard row ends with one column per sort key; these describe
  // them (the merge column's collation and the ORDER BY direction).
  struct SortKey {
    std::string collation;  // "" = BINARY
    std::string direction;  // "", "ASC" or "DESC"
    std::string nulls;      // "", "NULLS FIRST" or "NULLS LAST"
  };
  std::vector<SortKey> sort_keys;
  // kInMemory / kLocal: statements that create the merge table(s), the table
  // the shard rows go into (all columns, positionally; "" = none), and the
  // final query with its parameters.
  std::vector<std::string> merge_setup;
  std::string merge_table;
  // The quoted columns the shard rows fill, in order; "" = all, positionally.
  std::string merge_columns;
  std::string final_sql;
  std::vector<Value> final_params;
  // Result column names to show instead of the ones the merge produced
  // ("" = keep): parameters are renumbered (? → ?N) before planning, which
  // would otherwise leak into names SQLite takes from the expression text.
  std::vector<std::string> column_names;
  // Read-only statements run before a multi-node INSERT; if any returns a
  // row, the INSERT fails with UNIQUE_VIOLATION `precheck_error` and nothing
  // is written (a duplicate key would otherwise leave the other nodes' rows).
  std::vector<ShardStatement> prechecks;
  std::string precheck_error;
  // A short description of the merge for EXPLAIN ("aggregate", "sort", …).
  std::string merge_detail;

  // INSERT into a table with maintained virtual indexes: each row as SQLite
  // stores it when inserted into an empty table (every column of the table,
  // in order: defaults and generated columns filled in), with its shard.
  // Index maintenance takes the entries to add from these.
  struct InsertedRow {
    int32_t shard_id = 0;
    std::vector<Value> values;
  };
  std::vector<InsertedRow> inserted_rows;
  // INSERT: the conflict resolution ("ABORT" for plain INSERT, "REPLACE",
  // "IGNORE", …) and, for an upsert, the columns its DO UPDATE SET assigns.
  std::string insert_conflict;
  // INSERT: the columns the statement gives values to.
  std::vector<std::string> insert_columns;
  bool upsert = false;
  bool upsert_does_nothing = false;  // an ON CONFLICT … DO NOTHING clause
  std::vector<std::string> upsert_assigned;
  // UPDATE: the columns its SET assigns, as written.
  std::vector<std::string> assigned_columns;
};

// Finds the shards that may hold rows with given values of a virtual
// index's columns (the index's entries). The planner's only I/O, behind an
// interface so that planning stays testable.
class IndexResolver {
 public:
  virtual ~IndexResolver() = default;
  // The shards whose entries hold any of `tuples` (values of index.columns,
  // in order; tuples with a NULL match nothing), plus any shard whose
  // entries are not trustworthy right now. May name inactive shards.
  virtual absl::StatusOr<std::vector<int32_t>> ShardsFor(
      const TableMeta& table, const IndexMeta& index,
      const std::vector<std::vector<Value>>& tuples) const = 0;
};

// Plans `statement` against `table` (active) in `snapshot` with the bound
// `params`. Errors: INVALID_ARGUMENT for a parameter-count mismatch, a
// missing shard-key value (SHARD_KEY_REQUIRED), an UPDATE of the shard key,
// a VALUES row of the wrong width. With a `resolver`, statements that pin the
// columns of a ready virtual index (equality or IN; every column of a
// composite index) go only to the shards its entries name. With `max_rows`
// (--max_response_rows; negative: none), a SELECT whose rows are merged from
// several shards asks each shard for at most OFFSET + max_rows + 1 rows.
absl::StatusOr<QueryPlan> PlanQuery(const sql::DmlStatement& statement, const TableMeta* table,
                                    const Snapshot& snapshot, const std::vector<Value>& params,
                                    const IndexResolver* resolver = nullptr, int64_t max_rows = -1);

// The active shards of `table` sorted by id: the routing order.
std::vector<const ShardMeta*> ActiveShards(const TableMeta& table);

// The active shard that owns `value` of the shard key (after the column's
// affinity). REQUIRES: value is not NULL; the table has an active shard.
const ShardMeta* OwningShard(const TableMeta& table, const Value& value);

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_PLANNER_QUERY_PLANNER_H_
