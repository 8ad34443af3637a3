// TableOperations: CREATE / DROP / LIST of virtual indexes (DESIGN.md §5,
// docs/indexes.md). The index record is a persisted state machine:
//   creating --(SQLite index on every node)--> building --(IndexBuildJob)--> ready
//       |                                          \--(job failed)--> failed
//       \--(a node failed)--> rolled back (record removed)
//   building/ready/failed --(DROP INDEX)--> dropping --> removed
// The reconciler rolls back a creating index and finishes a dropping one.
#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/sql/create_table.h"
#include "common/sql/parser.h"
#include "common/sql/tokenizer.h"
#include "common/sqlite.h"
#include "conductor/index/index_key.h"
#include "conductor/schema/table_operations.h"

namespace conductor {
namespace {

absl::Status IndexNotFound(const std::string& name, const std::string& detail = "") {
  return Error(absl::StatusCode::kNotFound, reason::kIndexNotFound,
               absl::StrCat("index ", name, " does not exist",
                            detail.empty() ? " (SHOW INDEXES lists the indexes)" : detail));
}

std::string DropIndexSql(const IndexMeta& index) {
  return absl::StrCat("DROP INDEX IF EXISTS ", QuoteIdentifier(index.name));
}

}  // namespace

std::string TableOperations::PhysicalIndexSql(const TableMeta& table, const IndexMeta& index) {
  // The SQLite index leads with _virtualShard: every shard statement names
  // its shard, and no uniqueness may span shards (DESIGN.md §2).
  std::vector<std::string> physical = {sql::kVirtualShardColumn};
  for (const auto& column : index.columns) physical.push_back(QuoteIdentifier(column));
  return absl::StrCat("CREATE ", index.unique ? "UNIQUE " : "", "INDEX IF NOT EXISTS ",
                      QuoteIdentifier(index.name), " ON ", QuoteIdentifier(table.name), " (",
                      absl::StrJoin(physical, ", "), ")");
}

v1::IndexInfo TableOperations::ToIndexInfo(const TableMeta& table, const IndexMeta& index) const {
  v1::IndexInfo info;
  info.set_name(index.name);
  info.set_table(table.name);
  for (const auto& column : index.columns) info.add_columns(column);
  info.set_type(index.TypeName());
  info.set_status(index.status);
  info.set_error(index.error);
  info.set_created_at_ms(index.created_at_ms);
  if (indexes_ != nullptr && index.Maintained()) {
    IndexCounts counts = indexes_->Counts(index.index_id);
    info.set_entry_count(counts.entry_count);
    info.set_stale_shards(counts.stale_shards);
  }
  return info;
}

absl::StatusOr<v1::ListIndexesResponse> TableOperations::ListIndexes(
    const v1::ListIndexesRequest& request) const {
  auto snapshot = store_->snapshot();
  const TableMeta* only = nullptr;
  if (!request.table().empty()) {
    if (auto s = sql::ValidateName(request.table(), "table name"); !s.ok()) return s;
    only = snapshot->FindActive(request.table());
    if (only == nullptr) {
      return Error(absl::StatusCode::kNotFound, reason::kTableNotFound,
                   absl::StrCat("table ", request.table(),
                                " does not exist (SHOW TABLES lists the tables)"));
    }
  }
  v1::ListIndexesResponse response;
  std::vector<std::pair<const TableMeta*, const IndexMeta*>> all;
  for (const auto& [unused, table] : snapshot->tables) {
    if (table.state != TableState::kActive || (only != nullptr && only != &table)) continue;
    for (const IndexMeta& index : table.indexes) {
      if (index.Visible()) all.emplace_back(&table, &index);
    }
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return LowerName(a.second->name) < LowerName(b.second->name);
  });
  for (const auto& [table, index] : all) *response.add_indexes() = ToIndexInfo(*table, *index);
  return response;
}

absl::StatusOr<v1::CreateIndexResponse> TableOperations::CreateIndex(
    const v1::CreateIndexRequest& request, absl::Time deadline) {
  if (indexes_ == nullptr || jobs_ == nullptr) {
    return absl::FailedPreconditionError("virtual indexes are not enabled on this conductor");
  }
  if (auto s = sql::ValidateName(request.name(), "index name"); !s.ok()) return s;
  if (absl::StartsWithIgnoreCase(request.name(), "sqlite_")) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kInvalidArgument,
                 absl::StrCat("index name ", request.name(),
                              " is reserved: names beginning with sqlite_ belong to SQLite"));
  }
  if (auto s = sql::ValidateName(request.table(), "table name"); !s.ok()) return s;
  if (request.columns().empty()) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kInvalidArgument,
                 absl::StrCat("index ", request.name(), " needs at least one column"));
  }
  auto lock = LockSchema(deadline);
  if (!lock.ok()) return lock.status();
  auto snapshot = store_->snapshot();
  const TableMeta* table = snapshot->FindActive(request.table());
  if (table == nullptr) {
    return Error(
        absl::StatusCode::kNotFound, reason::kTableNotFound,
        absl::StrCat("table ", request.table(), " does not exist (SHOW TABLES lists the tables)"));
  }
  std::vector<std::string> columns;
  for (const std::string& name : request.columns()) {
    if (auto s = sql::ValidateName(name, "column name"); !s.ok()) return s;
    const sql::ColumnSchema* column = nullptr;
    for (const auto& c : table->columns) {
      if (sql::SameName(c.name, name)) column = &c;
    }
    if (column == nullptr) {
      return Error(absl::StatusCode::kInvalidArgument, reason::kSqlError,
                   absl::StrCat("table ", table->name, " has no column named ", name));
    }
    for (const auto& seen : columns) {
      if (sql::SameName(seen, column->name)) {
        return Error(
            absl::StatusCode::kInvalidArgument, reason::kInvalidArgument,
            absl::StrCat("column ", column->name, " appears twice in index ", request.name()));
      }
    }
    columns.push_back(column->name);
  }
  auto [owner, existing] = snapshot->FindIndex(request.name());
  if (existing != nullptr && !existing->Visible()) {
    // A create or drop that never finished holds the name: finish it first.
    if (auto s = ReconcileIndex(*existing, deadline); !s.ok()) {
      return Annotate(s, absl::StrCat("cannot create index ", request.name(),
                                      ": an earlier operation on that name is unfinished"));
    }
    snapshot = store_->snapshot();
    table = snapshot->FindActive(request.table());
    if (table == nullptr) return absl::AbortedError("the table went away; retry");
    std::tie(owner, existing) = snapshot->FindIndex(request.name());
  }
  if (existing != nullptr) {
    if (request.if_not_exists()) {
      v1::CreateIndexResponse response;
      *response.mutable_index() = ToIndexInfo(*owner, *existing);
      response.set_created(false);
      return response;
    }
    return Error(
        absl::StatusCode::kAlreadyExists, reason::kIndexAlreadyExists,
        absl::StrCat("index ", existing->name, " already exists (on table ", owner->name, ")"));
  }
  if (auto s = CheckReachable(*storage_, snapshot->nodes, StorageDeadline(deadline)); !s.ok()) {
    return Annotate(s, absl::StrCat("index ", request.name(), " was not created"));
  }

  IndexMeta index;
  index.table_id = table->table_id;
  index.name = request.name();
  index.columns = columns;
  index.unique = request.unique();
  index.status = index_status::kCreating;
  int64_t index_id = 0;
  if (auto s = store_->Mutate([&](Database& db) -> absl::Status {
        auto id = TopologyStore::InsertIndexIn(db, index);
        if (!id.ok()) return id.status();
        index_id = *id;
        return absl::OkStatus();
      });
      !s.ok()) {
    return s;
  }
  index.index_id = index_id;

  absl::Status created = OnEveryNode(snapshot->nodes, PhysicalIndexSql(*table, index), deadline);
  if (!created.ok() && index.unique && ErrorReason(created) == reason::kUniqueViolation) {
    // Rows of one shard already repeat a value: the index fails, naming one.
    std::vector<std::string> quoted, not_null;
    for (const auto& column : columns) {
      quoted.push_back(QuoteIdentifier(column));
      not_null.push_back(absl::StrCat(QuoteIdentifier(column), " IS NOT NULL"));
    }
    const std::string find_sql = absl::StrCat(
        "SELECT ", absl::StrJoin(quoted, ", "), " FROM ", QuoteIdentifier(table->name), " WHERE ",
        absl::StrJoin(not_null, " AND "), " GROUP BY ", sql::kVirtualShardColumn, ", ",
        absl::StrJoin(quoted, ", "), " HAVING count(*) > 1 LIMIT 1");
    std::string duplicate;
    std::vector<NodeBatch> batches;
    for (const NodeMeta& node : snapshot->nodes) {
      NodeBatch batch{node, {}};
      batch.request.set_read_only(true);
      batch.request.add_statements()->set_sql(find_sql);
      batches.push_back(std::move(batch));
    }
    for (const auto& answer : FanOut(*storage_, batches, StorageDeadline(deadline))) {
      if (!answer.ok() || answer->results_size() == 0 || answer->results(0).rows_size() == 0) {
        continue;
      }
      const auto& row = answer->results(0).rows(0);
      duplicate = DescribeTuple({row.values().begin(), row.values().end()});
      break;
    }
    index.error =
        absl::StrCat("cannot build UNIQUE index ", index.name, ": the value ",
                     duplicate.empty() ? "(unknown)" : duplicate, " of ",
                     absl::StrJoin(columns, ", "), " appears more than once in ", table->name);
    if (auto s = OnEveryNode(snapshot->nodes, DropIndexSql(index), deadline); !s.ok()) {
      LogWarning("could not drop the partial SQLite index %s: %s", index.name, s.message());
    }
    if (auto s = store_->Mutate([&](Database& db) {
          return TopologyStore::SetIndexStatusIn(db, index_id, index_status::kFailed, index.error);
        });
        !s.ok()) {
      return s;
    }
    LogInfo("index %s failed: %s", index.name, index.error);
    auto failed_snapshot = store_->snapshot();
    auto [failed_table, failed_index] = failed_snapshot->FindIndex(index.name);
    if (failed_index == nullptr) return absl::InternalError("failed index vanished");
    v1::CreateIndexResponse response;
    *response.mutable_index() = ToIndexInfo(*failed_table, *failed_index);
    response.set_created(true);
    return response;
  }
  if (!created.ok()) {
    LogWarning("create of index %s failed (%s); rolling back", index.name, created.ToString());
    ReconcileIndex(index, deadline).IgnoreError();  // the reconciler retries if a node is away
    return Annotate(
        created, absl::StrCat("index ", index.name, " was not created (nothing is left behind)"));
  }

  // Until the build has scanned a shard, unique checks must look there.
  std::vector<int32_t> shard_ids;
  for (const ShardMeta& shard : table->shards) {
    if (shard.status == shard_status::kActive) shard_ids.push_back(shard.shard_id);
  }
  indexes_->MarkDirty(index_id, shard_ids);
  if (auto s = store_->Mutate([&](Database& db) -> absl::Status {
        if (auto r = TopologyStore::SetIndexStatusIn(db, index_id, index_status::kBuilding, "");
            !r.ok()) {
          return r;
        }
        auto job = JobQueue::EnqueueIn(
            db, IndexManager::kBuildJobKind, IndexManager::JobPayload(index_id, shard_ids),
            IndexManager::Operation(index_id), jobs_->options().max_attempts, jobs_->NowMs());
        return job.status();
      });
      !s.ok()) {
    ReconcileIndex(index, deadline).IgnoreError();
    return s;
  }
  jobs_->NotifyEnqueued();
  LogInfo("index %s on %s (%s) is building", index.name, table->name, absl::StrJoin(columns, ", "));
  auto built = store_->snapshot();
  auto [new_table, new_index] = built->FindIndex(index.name);
  if (new_index == nullptr) return absl::InternalError("created index vanished");
  v1::CreateIndexResponse response;
  *response.mutable_index() = ToIndexInfo(*new_table, *new_index);
  response.set_created(true);
  return response;
}

absl::StatusOr<v1::DropIndexResponse> TableOperations::DropIndex(
    const v1::DropIndexRequest& request, absl::Time deadline) {
  if (auto s = sql::ValidateName(request.name(), "index name"); !s.ok()) return s;
  if (!request.table().empty()) {
    if (auto s = sql::ValidateName(request.table(), "table name"); !s.ok()) return s;
  }
  auto lock = LockSchema(deadline);
  if (!lock.ok()) return lock.status();
  auto snapshot = store_->snapshot();
  auto [table, index] = snapshot->FindIndex(request.name());
  if (index == nullptr || !index->Visible() || table->state != TableState::kActive) {
    if (request.if_exists()) return v1::DropIndexResponse();
    return IndexNotFound(request.name());
  }
  if (!request.table().empty() && !sql::SameName(table->name, request.table())) {
    if (request.if_exists()) return v1::DropIndexResponse();
    return IndexNotFound(request.name(), absl::StrCat(" on table ", request.table(),
                                                      " (it is an index of ", table->name, ")"));
  }
  if (index->constraint_backed) {
    return Error(absl::StatusCode::kFailedPrecondition, reason::kSqlError,
                 absl::StrCat("index ", index->name, " enforces a UNIQUE constraint of table ",
                              table->name, " and cannot be dropped (it goes with the table)"));
  }
  if (auto s = CheckReachable(*storage_, snapshot->nodes, StorageDeadline(deadline)); !s.ok()) {
    return Annotate(s, absl::StrCat("index ", request.name(), " was not dropped"));
  }
  IndexMeta dropping = *index;
  if (auto s = store_->Mutate([&](Database& db) {
        return TopologyStore::SetIndexStatusIn(db, dropping.index_id, index_status::kDropping,
                                               dropping.error);
      });
      !s.ok()) {
    return s;
  }
  dropping.status = index_status::kDropping;
  if (auto s = ReconcileIndex(dropping, deadline); !s.ok()) {
    // Invisible already; the reconciler finishes it.
    LogWarning("drop of index %s will be finished in the background: %s", dropping.name,
               s.message());
  }
  LogInfo("dropped index %s", dropping.name);
  v1::DropIndexResponse response;
  response.set_dropped(true);
  return response;
}

absl::Status TableOperations::ReconcileIndex(const IndexMeta& index, absl::Time deadline) {
  if (index.status == index_status::kCreating) {
    if (auto s = store_->Mutate([&](Database& db) {
          return TopologyStore::SetIndexStatusIn(db, index.index_id, index_status::kDropping, "");
        });
        !s.ok()) {
      return s;
    }
  } else if (index.status != index_status::kDropping) {
    return absl::OkStatus();
  }
  ForgetIndex(index.index_id);  // no job may write entries from here on
  auto snapshot = store_->snapshot();
  if (!index.constraint_backed) {
    if (auto s = OnEveryNode(snapshot->nodes, DropIndexSql(index), deadline); !s.ok()) return s;
  }
  if (auto s = store_->Mutate(
          [&](Database& db) { return TopologyStore::DeleteIndexIn(db, index.index_id); });
      !s.ok()) {
    return s;
  }
  ForgetIndex(index.index_id);
  return absl::OkStatus();
}

void TableOperations::ForgetIndex(int64_t index_id) {
  if (jobs_ != nullptr) {
    if (auto s = jobs_->Cancel(IndexManager::Operation(index_id)); !s.ok()) {
      LogWarning("could not cancel the jobs of index %d: %s", index_id, s.status().message());
    }
  }
  if (indexes_ != nullptr) {
    if (auto s = indexes_->Forget(index_id); !s.ok()) {
      LogWarning("could not remove the entries of index %d: %s", index_id, s.message());
    }
  }
}

}  // namespace conductor
