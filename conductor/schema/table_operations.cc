#include "conductor/schema/table_operations.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/sql/create_table.h"
#include "common/sql/parser.h"
#include "common/sql/tokenizer.h"
#include "common/sqlite.h"

namespace conductor {
namespace {

absl::Status TableNotFound(const std::string& name) {
  return Error(absl::StatusCode::kNotFound, reason::kTableNotFound,
               absl::StrCat("table ", name, " does not exist (SHOW TABLES lists the tables)"));
}

absl::Status ValidateBlockSize(int64_t block_size) {
  if (block_size < kMinBlockSize || block_size > kMaxBlockSize) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kInvalidBlockSize,
                 absl::StrCat("block size ", block_size, " is out of range; it must be between ",
                              kMinBlockSize, " and ", kMaxBlockSize));
  }
  return absl::OkStatus();
}

absl::Status ValidateShardCount(int64_t count) {
  if (count < kMinShards || count > kMaxShards) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kInvalidShardCount,
                 absl::StrCat("shard count ", count, " is out of range; it must be between ",
                              kMinShards, " and ", kMaxShards));
  }
  return absl::OkStatus();
}

// The table a schema operation cannot touch right now because another one is
// unfinished on it (the reconciler is finishing it).
absl::Status TableBusy(const TableMeta& table) {
  return Error(absl::StatusCode::kUnavailable, reason::kTableBusy,
               absl::StrCat("table ", table.name, " is still being ", TableStateName(table.state),
                            " on a storage node that did not answer; retry once every storage "
                            "node is reachable"));
}

// The physical CREATE statement under the table's current name (the stored
// one keeps the name it was created with; SQLite itself does the renaming).
absl::StatusOr<std::string> CurrentPhysicalSql(const TableMeta& table) {
  auto parsed = sql::ParseStatement(table.physical_sql);
  if (!parsed.ok()) return parsed.status();
  if (sql::SameName(parsed->table, table.name)) return table.physical_sql;
  auto db = Database::Open(":memory:");
  if (!db.ok()) return db.status();
  if (auto s = (*db)->Exec(table.physical_sql); !s.ok()) return s;
  if (auto s = (*db)->Exec(absl::StrCat("ALTER TABLE ", QuoteIdentifier(parsed->table),
                                        " RENAME TO ", QuoteIdentifier(table.name)));
      !s.ok()) {
    return s;
  }
  auto stmt = (*db)->Prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->BindText(1, table.name).IgnoreError();
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::InternalError("renamed table missing from sqlite_master");
  std::string sql = stmt->ColumnText(0);
  // sqlite_master keeps "CREATE TABLE name (…)"; creation must stay idempotent.
  const std::string prefix = "CREATE TABLE ";
  if (sql.compare(0, prefix.size(), prefix) == 0) {
    sql = absl::StrCat("CREATE TABLE IF NOT EXISTS ", sql.substr(prefix.size()));
  }
  return sql;
}

}  // namespace

absl::Status TableOperations::CreateTablesOn(const NodeMeta& node, absl::Time deadline) {
  auto lock = LockSchema(deadline);
  if (!lock.ok()) return lock.status();
  auto snapshot = store_->snapshot();
  NodeBatch batch{node, {}};
  for (const auto& [unused, table] : snapshot->tables) {
    if (table.state != TableState::kActive) continue;
    auto sql = CurrentPhysicalSql(table);
    if (!sql.ok()) return sql.status();
    batch.request.add_statements()->set_sql(*sql);
    for (const IndexMeta& index : table.indexes) {
      if (index.Maintained() && !index.constraint_backed) {
        batch.request.add_statements()->set_sql(PhysicalIndexSql(table, index));
      }
    }
  }
  if (batch.request.statements_size() == 0) return absl::OkStatus();
  auto results = FanOut(*storage_, {batch}, StorageDeadline(deadline));
  if (!results[0].ok()) return results[0].status();
  LogInfo("created %d existing table(s) on storage node %s", batch.request.statements_size(),
          node.node_id);
  return absl::OkStatus();
}

TableOperations::TableOperations(TopologyStore* store, StorageClient* storage,
                                 TableOperationsOptions options, IndexManager* indexes,
                                 JobQueue* jobs)
    : store_(store), storage_(storage), options_(options), indexes_(indexes), jobs_(jobs) {}

TableOperations::~TableOperations() {
  {
    std::lock_guard<std::mutex> lock(reconciler_mu_);
    stopping_ = true;
  }
  reconciler_cv_.notify_all();
  if (reconciler_.joinable()) reconciler_.join();
}

absl::Time TableOperations::StorageDeadline(absl::Time deadline) const {
  return std::min(deadline, absl::Now() + options_.storage_timeout);
}

v1::TableInfo TableOperations::ToTableInfo(const TableMeta& table) {
  v1::TableInfo info;
  info.set_name(table.name);
  for (const auto& column : table.primary_key) info.add_primary_key(column);
  info.set_shard_key(table.shard_key);
  info.set_strategy(table.strategy);
  info.set_num_shards(table.ActiveShardCount());
  info.set_block_size(table.block_size);
  info.set_created_at_ms(table.created_at_ms);
  info.set_updated_at_ms(table.updated_at_ms);
  return info;
}

std::vector<ShardMeta> TableOperations::PlaceShards(const Snapshot& snapshot, int count) const {
  // Least-loaded first: every node's current shard count, ties by node id.
  std::map<std::string, int> load;
  for (const NodeMeta& node : snapshot.nodes) load[node.node_id] = 0;
  for (const auto& [unused, table] : snapshot.tables) {
    if (table.state == TableState::kDropping) continue;
    for (const ShardMeta& shard : table.shards) {
      if (load.count(shard.node_id) != 0) ++load[shard.node_id];
    }
  }
  std::vector<ShardMeta> shards;
  for (int i = 0; i < count; ++i) {
    auto best = load.begin();
    for (auto it = load.begin(); it != load.end(); ++it) {
      if (it->second < best->second) best = it;
    }
    shards.push_back({i, best->first, shard_status::kActive});
    ++best->second;
  }
  return shards;
}

absl::Status TableOperations::OnEveryNode(const std::vector<NodeMeta>& nodes,
                                          const std::string& sql, absl::Time deadline) {
  std::vector<NodeBatch> batches;
  for (const NodeMeta& node : nodes) {
    NodeBatch batch{node, {}};
    batch.request.add_statements()->set_sql(sql);
    batches.push_back(std::move(batch));
  }
  absl::Status first;
  auto results = FanOut(*storage_, batches, StorageDeadline(deadline));
  for (const auto& result : results) {
    if (!result.ok() && first.ok()) first = result.status();
  }
  return first;
}

absl::Status TableOperations::RenameOnEveryNode(const std::vector<NodeMeta>& nodes,
                                                const std::string& from, const std::string& to,
                                                absl::Time deadline) {
  // Step 1: where does each node stand? Step 2: rename where still needed.
  std::vector<NodeBatch> probes;
  for (const NodeMeta& node : nodes) {
    NodeBatch batch{node, {}};
    batch.request.set_read_only(true);
    for (const std::string& name : {from, to}) {
      auto* stmt = batch.request.add_statements();
      stmt->set_sql(
          "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE");
      *stmt->add_params() = TextValue(name);
    }
    probes.push_back(std::move(batch));
  }
  auto states = FanOut(*storage_, probes, StorageDeadline(deadline));
  std::vector<NodeBatch> renames;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (!states[i].ok()) return states[i].status();
    bool has_from = states[i]->results(0).rows_size() > 0;
    bool has_to = states[i]->results(1).rows_size() > 0;
    bool case_only = sql::SameName(from, to);
    if (has_from && (!has_to || case_only)) {
      NodeBatch batch{nodes[i], {}};
      batch.request.add_statements()->set_sql(
          absl::StrCat("ALTER TABLE ", QuoteIdentifier(from), " RENAME TO ", QuoteIdentifier(to)));
      renames.push_back(std::move(batch));
    } else if (!has_to) {
      // Nothing to rename there (e.g. a node that joined before CreateTablesOn
      // existed); the table is created on it under its new name later.
      LogWarning("storage node %s has neither table %s nor %s; nothing to rename there",
                 nodes[i].node_id, from, to);
    }
  }
  auto results = FanOut(*storage_, renames, StorageDeadline(deadline));
  for (const auto& result : results) {
    if (!result.ok()) return result.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::CreateTableResponse> TableOperations::CreateTable(
    const v1::CreateTableRequest& request, absl::Time deadline) {
  auto schema = sql::AnalyzeCreateTable(request.sql());
  if (!schema.ok()) return schema.status();

  // Shard count: the typed field, else the /* SHARDS=n */ hint, else 1.
  int64_t num_shards = 1;
  if (request.num_shards() != 0 && schema->shards_hint.has_value() &&
      *schema->shards_hint != request.num_shards()) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kInvalidShardCount,
                 absl::StrCat("num_shards is ", request.num_shards(),
                              " but the statement says SHARDS=", *schema->shards_hint,
                              "; give one or make them agree"));
  }
  if (request.num_shards() != 0) {
    num_shards = request.num_shards();
  } else if (schema->shards_hint.has_value()) {
    num_shards = *schema->shards_hint;
  }
  if (auto s = ValidateShardCount(num_shards); !s.ok()) return s;
  int64_t block_size = request.block_size() == 0 ? kDefaultBlockSize : request.block_size();
  if (auto s = ValidateBlockSize(block_size); !s.ok()) return s;

  std::string shard_key = schema->primary_key.front();
  if (!request.shard_key().empty()) {
    auto it =
        std::find_if(schema->primary_key.begin(), schema->primary_key.end(),
                     [&](const std::string& c) { return sql::SameName(c, request.shard_key()); });
    if (it == schema->primary_key.end()) {
      return Error(absl::StatusCode::kInvalidArgument, reason::kInvalidArgument,
                   absl::StrCat("shard key ", request.shard_key(),
                                " must be one of the primary-key columns (",
                                absl::StrJoin(schema->primary_key, ", "),
                                "), so that every key lives on exactly one shard"));
    }
    shard_key = *it;
  }
  for (const sql::ColumnSchema& column : schema->columns) {
    if (!sql::SameName(column.name, shard_key)) continue;
    if (!sql::SameName(column.collation, "BINARY")) {
      return Error(absl::StatusCode::kInvalidArgument, reason::kInvalidArgument,
                   absl::StrCat("shard key ", shard_key, " has collation ", column.collation,
                                "; a shard key must compare exactly (BINARY), because rows are "
                                "routed by a hash of the exact value"));
    }
    if (column.generated) {
      return Error(absl::StatusCode::kInvalidArgument, reason::kInvalidArgument,
                   absl::StrCat("shard key ", shard_key,
                                " is a generated column; a shard key "
                                "must be written by INSERT"));
    }
  }
  bool if_not_exists = request.if_not_exists() || schema->if_not_exists;

  auto lock = LockSchema(deadline);
  if (!lock.ok()) return lock.status();
  auto snapshot = store_->snapshot();
  if (const TableMeta* existing = snapshot->FindAny(schema->name)) {
    if (existing->state == TableState::kActive &&
        LowerName(existing->name) == LowerName(schema->name)) {
      if (if_not_exists) {
        v1::CreateTableResponse response;
        *response.mutable_table() = ToTableInfo(*existing);
        response.set_created(false);
        return response;
      }
      return Error(absl::StatusCode::kAlreadyExists, reason::kTableAlreadyExists,
                   absl::StrCat("table ", existing->name, " already exists"));
    }
    if (existing->state == TableState::kRenaming) return TableBusy(*existing);
    // A create or drop that never finished holds the name: finish it first.
    if (auto s = ReconcileTable(*existing, deadline); !s.ok()) {
      return Annotate(s, absl::StrCat("cannot create ", schema->name,
                                      ": an earlier operation on that name is unfinished"));
    }
    snapshot = store_->snapshot();
  }
  if (auto [owner, index] = snapshot->FindIndex(schema->name); index != nullptr) {
    return Error(absl::StatusCode::kAlreadyExists, reason::kTableAlreadyExists,
                 absl::StrCat("an index is named ", index->name, " (on table ", owner->name,
                              "); tables and indexes share one namespace"));
  }
  if (snapshot->nodes.empty()) {
    return absl::FailedPreconditionError(
        "no storage nodes are registered; start the conductor with --storage_nodes");
  }

  TableMeta table;
  table.name = schema->name;
  table.state = TableState::kCreating;
  table.primary_key = schema->primary_key;
  table.shard_key = shard_key;
  table.block_size = static_cast<int32_t>(block_size);
  table.user_sql = schema->user_sql;
  table.physical_sql = schema->physical_sql;
  table.columns = schema->columns;
  table.unique_constraints = schema->unique_constraints;
  table.shards = PlaceShards(*snapshot, static_cast<int>(num_shards));
  auto table_id = store_->InsertTable(table);
  if (!table_id.ok()) return table_id.status();

  absl::Status created = OnEveryNode(snapshot->nodes, schema->physical_sql, deadline);
  if (!created.ok()) {
    LogWarning("create of table %s failed (%s); rolling back", table.name, created.ToString());
    table.table_id = *table_id;
    table.state = TableState::kCreating;
    // Best effort now; the reconciler finishes it if a node stays away.
    ReconcileTable(table, deadline).IgnoreError();
    return Annotate(
        created, absl::StrCat("table ", table.name, " was not created (nothing is left behind)"));
  }
  // Visible at last, together with the UNIQUE virtual indexes that carry
  // its UNIQUE constraints across shards (one transaction).
  std::vector<int32_t> shard_ids;
  for (const ShardMeta& shard : table.shards) shard_ids.push_back(shard.shard_id);
  bool enqueued = false;
  if (auto s = store_->Mutate([&](Database& db) -> absl::Status {
        auto activate = db.Prepare(
            "UPDATE tables SET state = ?, updated_at_ms = ? WHERE table_id = ? AND state = ?");
        if (!activate.ok()) return activate.status();
        activate->BindText(1, TableStateName(TableState::kActive)).IgnoreError();
        activate->BindInt64(2, TopologyStore::NowMs()).IgnoreError();
        activate->BindInt64(3, *table_id).IgnoreError();
        activate->BindText(4, TableStateName(TableState::kCreating)).IgnoreError();
        if (auto r = activate->Run(); !r.ok()) return r;
        if (db.Changes() != 1) return absl::AbortedError("the table being created went away");
        if (indexes_ == nullptr || jobs_ == nullptr) return absl::OkStatus();
        for (const auto& columns : table.unique_constraints) {
          // Rows with one shard-key value share a shard, where the table's
          // own constraint already holds: no index needed.
          if (std::any_of(columns.begin(), columns.end(), [&](const std::string& c) {
                return sql::SameName(c, table.shard_key);
              })) {
            continue;
          }
          IndexMeta index;
          index.table_id = *table_id;
          index.columns = columns;
          index.unique = true;
          index.constraint_backed = true;
          index.status = index_status::kBuilding;
          absl::StatusOr<int64_t> index_id = absl::UnknownError("unset");
          // <table>_<columns>_key, as PostgreSQL names them; a suffix on a clash.
          const std::string base =
              absl::StrCat(table.name, "_", absl::StrJoin(columns, "_"), "_key");
          for (int n = 1; n < 100; ++n) {
            index.name = n == 1 ? base : absl::StrCat(base, "_", n);
            index_id = TopologyStore::InsertIndexIn(db, index);
            if (index_id.ok() || index_id.status().code() != absl::StatusCode::kAlreadyExists) {
              break;
            }
          }
          if (!index_id.ok()) return index_id.status();
          indexes_->MarkDirty(*index_id, shard_ids);
          auto job = JobQueue::EnqueueIn(
              db, IndexManager::kBuildJobKind, IndexManager::JobPayload(*index_id, shard_ids),
              IndexManager::Operation(*index_id), jobs_->options().max_attempts, jobs_->NowMs());
          if (!job.ok()) return job.status();
          enqueued = true;
        }
        return absl::OkStatus();
      });
      !s.ok()) {
    return s;
  }
  if (enqueued) jobs_->NotifyEnqueued();
  auto created_snapshot = store_->snapshot();
  const TableMeta* now_active = created_snapshot->FindActive(table.name);
  if (now_active == nullptr) return absl::InternalError("created table vanished");
  v1::CreateTableResponse response;
  *response.mutable_table() = ToTableInfo(*now_active);
  response.set_created(true);
  LogInfo("created table %s with %d shard(s)", table.name, static_cast<int>(num_shards));
  return response;
}

absl::StatusOr<v1::DropTableResponse> TableOperations::DropTable(
    const v1::DropTableRequest& request, absl::Time deadline) {
  if (auto s = sql::ValidateName(request.table(), "table name"); !s.ok()) return s;
  auto lock = LockSchema(deadline);
  if (!lock.ok()) return lock.status();
  auto snapshot = store_->snapshot();
  const TableMeta* table = snapshot->FindActive(request.table());
  if (table == nullptr) {
    const TableMeta* busy = snapshot->FindAny(request.table());
    if (busy != nullptr && busy->state == TableState::kRenaming) return TableBusy(*busy);
    if (request.if_exists()) return v1::DropTableResponse();
    return TableNotFound(request.table());
  }
  if (auto s = CheckNoReshard(*table, "dropped"); !s.ok()) return s;
  if (auto s = CheckReachable(*storage_, snapshot->nodes, StorageDeadline(deadline)); !s.ok()) {
    return Annotate(s, absl::StrCat("table ", table->name, " was not dropped"));
  }
  // From here the drop is committed: the table is invisible at once and the
  // physical tables go now or, if a node fails late, in the background.
  if (auto s = store_->SetTableState(table->table_id, TableState::kDropping); !s.ok()) return s;
  TableMeta dropping = *table;
  dropping.state = TableState::kDropping;
  if (auto s = ReconcileTable(dropping, deadline); !s.ok()) {
    LogWarning("drop of %s will finish in the background: %s", dropping.name, s.ToString());
  }
  LogInfo("dropped table %s", dropping.name);
  v1::DropTableResponse response;
  response.set_dropped(true);
  return response;
}

absl::StatusOr<v1::RenameTableResponse> TableOperations::RenameTable(
    const v1::RenameTableRequest& request, absl::Time deadline) {
  if (auto s = sql::ValidateName(request.table(), "table name"); !s.ok()) return s;
  if (auto s = sql::ValidateName(request.new_name(), "new table name"); !s.ok()) return s;
  auto lock = LockSchema(deadline);
  if (!lock.ok()) return lock.status();
  auto snapshot = store_->snapshot();
  const TableMeta* table = snapshot->FindActive(request.table());
  if (table == nullptr) {
    const TableMeta* busy = snapshot->FindAny(request.table());
    if (busy != nullptr && busy->state == TableState::kRenaming) return TableBusy(*busy);
    return TableNotFound(request.table());
  }
  if (auto s = CheckNoReshard(*table, "renamed"); !s.ok()) return s;
  if (table->name == request.new_name()) {
    v1::RenameTableResponse response;
    *response.mutable_table() = ToTableInfo(*table);
    return response;
  }
  if (sql::SameName(table->name, request.new_name())) {
    // Only the case changes: SQLite's names are case-insensitive, so the
    // nodes' tables already answer to it (and SQLite refuses such a rename).
    const int64_t table_id = table->table_id;
    if (auto s = store_->SetTableState(table_id, TableState::kRenaming, request.new_name());
        !s.ok()) {
      return s;
    }
    if (auto s = store_->FinishRename(table_id); !s.ok()) return s;
    auto renamed = store_->snapshot();
    const TableMeta* now = renamed->FindActive(request.new_name());
    if (now == nullptr) return absl::InternalError("renamed table vanished");
    v1::RenameTableResponse response;
    *response.mutable_table() = ToTableInfo(*now);
    return response;
  }
  if (auto [owner, index] = snapshot->FindIndex(request.new_name()); index != nullptr) {
    return Error(absl::StatusCode::kAlreadyExists, reason::kTableAlreadyExists,
                 absl::StrCat("cannot rename ", table->name, " to ", request.new_name(),
                              ": an index has that name; tables and indexes share one namespace"));
  }
  const TableMeta* taken = snapshot->FindAny(request.new_name());
  if (taken != nullptr && taken->table_id != table->table_id) {
    return Error(absl::StatusCode::kAlreadyExists, reason::kTableAlreadyExists,
                 absl::StrCat("cannot rename ", table->name, " to ", request.new_name(),
                              ": a table with that name already exists"));
  }
  if (auto s = CheckReachable(*storage_, snapshot->nodes, StorageDeadline(deadline)); !s.ok()) {
    return Annotate(s, absl::StrCat("table ", table->name, " was not renamed"));
  }
  const int64_t table_id = table->table_id;
  const std::string old_name = table->name;
  if (auto s = store_->SetTableState(table_id, TableState::kRenaming, request.new_name());
      !s.ok()) {
    return s;
  }
  absl::Status renamed = RenameOnEveryNode(snapshot->nodes, old_name, request.new_name(), deadline);
  if (!renamed.ok()) {
    LogWarning("rename of %s failed (%s); rolling back", old_name, renamed.ToString());
    TableMeta rolling_back = *table;
    rolling_back.state = TableState::kRenaming;
    rolling_back.pending_name = request.new_name();
    ReconcileTable(rolling_back, deadline).IgnoreError();
    return Annotate(renamed, absl::StrCat("table ", old_name, " was not renamed"));
  }
  if (auto s = store_->FinishRename(table_id); !s.ok()) return s;
  auto renamed_snapshot = store_->snapshot();
  const TableMeta* now = renamed_snapshot->FindActive(request.new_name());
  if (now == nullptr) return absl::InternalError("renamed table vanished");
  LogInfo("renamed table %s to %s", old_name, now->name);
  v1::RenameTableResponse response;
  *response.mutable_table() = ToTableInfo(*now);
  return response;
}

absl::StatusOr<v1::SetBlockSizeResponse> TableOperations::SetBlockSize(
    const v1::SetBlockSizeRequest& request, absl::Time deadline) {
  if (auto s = sql::ValidateName(request.table(), "table name"); !s.ok()) return s;
  if (auto s = ValidateBlockSize(request.block_size()); !s.ok()) return s;
  auto lock = LockSchema(deadline);
  if (!lock.ok()) return lock.status();
  auto before = store_->snapshot();
  const TableMeta* table = before->FindActive(request.table());
  if (table == nullptr) return TableNotFound(request.table());
  if (auto s = store_->SetBlockSize(table->table_id, request.block_size()); !s.ok()) return s;
  auto after = store_->snapshot();
  const TableMeta* now = after->FindActive(request.table());
  if (now == nullptr) return absl::InternalError("table vanished");
  v1::SetBlockSizeResponse response;
  *response.mutable_table() = ToTableInfo(*now);
  return response;
}

absl::StatusOr<v1::DescribeTableResponse> TableOperations::DescribeTable(
    const v1::DescribeTableRequest& request) const {
  if (auto s = sql::ValidateName(request.table(), "table name"); !s.ok()) return s;
  auto snapshot = store_->snapshot();
  const TableMeta* table = snapshot->FindActive(request.table());
  if (table == nullptr) return TableNotFound(request.table());
  v1::DescribeTableResponse response;
  *response.mutable_table() = ToTableInfo(*table);
  for (const ShardMeta& shard : table->shards) {
    if (shard.status != shard_status::kActive) continue;
    auto* info = response.add_shards();
    info->set_shard_id(shard.shard_id);
    info->set_node_id(shard.node_id);
    info->set_status(shard.status);
  }
  for (const IndexMeta& index : table->indexes) {
    if (index.Visible()) *response.add_indexes() = ToIndexInfo(*table, index);
  }
  for (const sql::ColumnSchema& column : table->columns) {
    auto* info = response.add_columns();
    info->set_name(column.name);
    info->set_type(column.type);
    info->set_not_null(column.not_null);
    info->set_default_value(column.default_value);
    info->set_primary_key(column.primary_key_position > 0);
  }
  return response;
}

absl::StatusOr<v1::GetTableStatsResponse> TableOperations::GetTableStats(
    const v1::GetTableStatsRequest& request, absl::Time deadline) {
  if (auto s = sql::ValidateName(request.table(), "table name"); !s.ok()) return s;
  auto snapshot = store_->snapshot();
  const TableMeta* table = snapshot->FindActive(request.table());
  if (table == nullptr) return TableNotFound(request.table());

  // One read-only batch per node, one COUNT(*) per shard (served by the
  // primary-key index, which leads with _virtualShard).
  std::string count_sql = absl::StrCat("SELECT COUNT(*) FROM ", QuoteIdentifier(table->name),
                                       " WHERE ", sql::kVirtualShardColumn, " = ?");
  std::vector<NodeBatch> batches;
  std::map<std::string, size_t> batch_of_node;
  std::vector<std::pair<size_t, int>> where;  // per active shard: (batch, statement)
  std::vector<const ShardMeta*> shards;
  for (const ShardMeta& shard : table->shards) {
    if (shard.status != shard_status::kActive) continue;
    auto it = batch_of_node.find(shard.node_id);
    if (it == batch_of_node.end()) {
      const NodeMeta* node = snapshot->FindNode(shard.node_id);
      NodeBatch batch{node != nullptr ? *node : NodeMeta{shard.node_id, ""}, {}};
      batch.request.set_read_only(true);
      batches.push_back(std::move(batch));
      it = batch_of_node.emplace(shard.node_id, batches.size() - 1).first;
    }
    auto* stmt = batches[it->second].request.add_statements();
    stmt->set_sql(count_sql);
    *stmt->add_params() = IntegerValue(shard.shard_id);
    where.emplace_back(it->second, batches[it->second].request.statements_size() - 1);
    shards.push_back(&shard);
  }
  auto results = FanOut(*storage_, batches, StorageDeadline(deadline));

  v1::GetTableStatsResponse response;
  response.set_table(table->name);
  int64_t total = 0;
  int answered = 0;
  for (size_t i = 0; i < shards.size(); ++i) {
    auto* stats = response.add_shards();
    stats->set_shard_id(shards[i]->shard_id);
    stats->set_node_id(shards[i]->node_id);
    const auto& result = results[where[i].first];
    if (!result.ok()) {
      stats->set_status("error");
      stats->set_error(std::string(result.status().message()));
      continue;
    }
    const auto& rows = result->results(where[i].second).rows();
    int64_t count = rows.empty() ? 0 : rows[0].values(0).integer();
    stats->set_row_count(count);
    stats->set_status(shards[i]->status);
    total += count;
    ++answered;
  }
  response.set_total_rows(total);
  response.set_total_shards(static_cast<int32_t>(shards.size()));
  response.set_avg_rows_per_shard(answered == 0 ? 0.0 : static_cast<double>(total) / answered);
  return response;
}

absl::Status TableOperations::CheckNoReshard(const TableMeta& table, const char* what) {
  if (resharder_ == nullptr) return absl::OkStatus();
  auto active = resharder_->Active(table.table_id);
  if (!active.ok()) return active.status();
  if (!*active) return absl::OkStatus();
  return Error(absl::StatusCode::kFailedPrecondition, reason::kReshardInProgress,
               absl::StrCat("table ", table.name, " is being resharded and cannot be ", what,
                            " until that finishes (PRAGMA reshardStatus follows it)"));
}

v1::ListTablesResponse TableOperations::ListTables() const {
  auto snapshot = store_->snapshot();
  v1::ListTablesResponse response;
  for (const auto& [unused, table] : snapshot->tables) {  // ordered by lower-cased name
    if (table.state == TableState::kActive) *response.add_tables() = ToTableInfo(table);
  }
  return response;
}

absl::Status TableOperations::ReconcileTable(const TableMeta& table, absl::Time deadline) {
  auto snapshot = store_->snapshot();
  switch (table.state) {
    case TableState::kActive:
      return absl::OkStatus();
    case TableState::kCreating:
      // Never became visible: roll back by dropping.
      if (auto s = store_->SetTableState(table.table_id, TableState::kDropping); !s.ok()) return s;
      [[fallthrough]];
    case TableState::kDropping: {
      absl::Status s =
          OnEveryNode(snapshot->nodes,
                      absl::StrCat("DROP TABLE IF EXISTS ", QuoteIdentifier(table.name)), deadline);
      if (!s.ok()) return s;
      if (auto deleted = store_->DeleteTable(table.table_id); !deleted.ok()) return deleted;
      for (const IndexMeta& index : table.indexes) ForgetIndex(index.index_id);
      return absl::OkStatus();
    }
    case TableState::kRenaming: {
      // Roll back: every node goes back to the old name.
      absl::Status s = RenameOnEveryNode(snapshot->nodes, table.pending_name, table.name, deadline);
      if (!s.ok()) return s;
      return store_->SetTableState(table.table_id, TableState::kActive);
    }
  }
  return absl::OkStatus();
}

absl::Status TableOperations::Reconcile(absl::Time deadline) {
  // One table at a time, releasing the schema lock in between, so a node
  // that does not answer delays other schema changes by one table at most.
  absl::Status first;
  std::vector<int64_t> unfinished;
  std::vector<int64_t> unfinished_indexes;
  for (const auto& [unused, table] : store_->snapshot()->tables) {
    if (table.state != TableState::kActive) unfinished.push_back(table.table_id);
    for (const IndexMeta& index : table.indexes) {
      if (index.status == index_status::kCreating || index.status == index_status::kDropping) {
        unfinished_indexes.push_back(index.index_id);
      }
    }
  }
  for (int64_t index_id : unfinished_indexes) {
    auto lock = LockSchema(deadline);
    if (!lock.ok()) return lock.status();
    auto snapshot = store_->snapshot();
    for (const auto& [unused, t] : snapshot->tables) {
      for (const IndexMeta& index : t.indexes) {
        if (index.index_id != index_id) continue;
        if (index.status != index_status::kCreating && index.status != index_status::kDropping) {
          continue;
        }
        absl::Status s = ReconcileIndex(index, deadline);
        if (s.ok()) {
          LogInfo("finished unfinished %s of index %s", index.status, index.name);
        } else if (first.ok()) {
          first = s;
        }
      }
    }
  }
  for (int64_t table_id : unfinished) {
    auto lock = LockSchema(deadline);
    if (!lock.ok()) return lock.status();
    auto snapshot = store_->snapshot();
    const TableMeta* table = nullptr;
    for (const auto& [unused, t] : snapshot->tables) {
      if (t.table_id == table_id) table = &t;
    }
    if (table == nullptr || table->state == TableState::kActive) continue;
    absl::Status s = ReconcileTable(*table, deadline);
    if (s.ok()) {
      LogInfo("finished unfinished %s of table %s", TableStateName(table->state), table->name);
    } else if (first.ok()) {
      first = s;
    }
  }
  return first;
}

absl::StatusOr<std::unique_lock<std::timed_mutex>> TableOperations::LockSchema(
    absl::Time deadline) {
  std::unique_lock<std::timed_mutex> lock(ddl_mu_, std::defer_lock);
  if (deadline == absl::InfiniteFuture()) {
    lock.lock();
  } else if (!lock.try_lock_until(absl::ToChronoTime(deadline))) {
    return Error(absl::StatusCode::kDeadlineExceeded, "DEADLINE_EXCEEDED",
                 "the deadline passed while waiting for another schema change (CREATE, DROP, "
                 "RENAME, a node joining) to finish");
  }
  return lock;
}

void TableOperations::StartBackgroundReconciler() {
  reconciler_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(reconciler_mu_);
    while (!stopping_) {
      lock.unlock();
      absl::Status s = Reconcile(absl::Now() + options_.storage_timeout);
      if (!s.ok()) LogWarning("schema reconciler: %s (will retry)", s.ToString());
      lock.lock();
      reconciler_cv_.wait_for(lock, absl::ToChronoSeconds(options_.reconcile_interval),
                              [this] { return stopping_; });
    }
  });
}

}  // namespace conductor
