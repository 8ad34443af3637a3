#include "conductor/topo/topology_store.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/errors.h"

namespace conductor {
namespace {

// Version 1 of the topology schema. Names follow DESIGN.md §3.
constexpr char kSchemaV1[] = R"sql(
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS storage_nodes (
  node_id TEXT PRIMARY KEY,
  address TEXT NOT NULL,
  added_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tables (
  table_id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE COLLATE NOCASE,
  state TEXT NOT NULL,
  pending_name TEXT,
  shard_key TEXT NOT NULL,
  strategy TEXT NOT NULL,
  block_size INTEGER NOT NULL,
  user_sql TEXT NOT NULL,
  physical_sql TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS table_columns (
  table_id INTEGER NOT NULL REFERENCES tables (table_id),
  position INTEGER NOT NULL,
  name TEXT NOT NULL,
  type TEXT NOT NULL,
  not_null INTEGER NOT NULL,
  default_value TEXT NOT NULL,
  pk_position INTEGER NOT NULL,
  generated INTEGER NOT NULL,
  collation TEXT NOT NULL,
  PRIMARY KEY (table_id, position)
);
CREATE TABLE IF NOT EXISTS table_unique_constraints (
  table_id INTEGER NOT NULL REFERENCES tables (table_id),
  constraint_no INTEGER NOT NULL,
  position INTEGER NOT NULL,
  column_name TEXT NOT NULL,
  PRIMARY KEY (table_id, constraint_no, position)
);
CREATE TABLE IF NOT EXISTS table_shards (
  table_id INTEGER NOT NULL REFERENCES tables (table_id),
  shard_id INTEGER NOT NULL,
  node_id TEXT NOT NULL REFERENCES storage_nodes (node_id),
  status TEXT NOT NULL,
  PRIMARY KEY (table_id, shard_id)
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('topology_version', 0);
)sql";

// Version 2: the durable job queue (docs/job-queue.md). Times are ms since
// the epoch; lease_owner/lease_expires_at_ms describe the current attempt
// while state is 'leased'; progress is the last heartbeat's.
constexpr char kSchemaV2[] = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  job_id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  payload BLOB NOT NULL,
  state TEXT NOT NULL
    CHECK (state IN ('queued', 'leased', 'done', 'failed', 'cancelled')),
  attempt INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
  lease_owner TEXT NOT NULL DEFAULT '',
  lease_expires_at_ms INTEGER NOT NULL DEFAULT 0,
  not_before_ms INTEGER NOT NULL DEFAULT 0,
  progress BLOB NOT NULL DEFAULT x'',
  result BLOB NOT NULL DEFAULT x'',
  error TEXT NOT NULL DEFAULT '',
  operation TEXT NOT NULL DEFAULT '',
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, not_before_ms);
CREATE INDEX IF NOT EXISTS jobs_by_operation ON jobs (operation);
)sql";

// Version 3: virtual indexes (docs/indexes.md). Their value → shard entries
// live in a file of their own (IndexEntryStore), not here.
constexpr char kSchemaV3[] = R"sql(
CREATE TABLE IF NOT EXISTS virtual_indexes (
  index_id INTEGER PRIMARY KEY AUTOINCREMENT,
  table_id INTEGER NOT NULL REFERENCES tables (table_id),
  name TEXT NOT NULL UNIQUE COLLATE NOCASE,
  is_unique INTEGER NOT NULL,
  status TEXT NOT NULL
    CHECK (status IN ('creating', 'building', 'ready', 'failed', 'dropping')),
  error TEXT NOT NULL DEFAULT '',
  -- 1: the index enforces a UNIQUE constraint of the table's CREATE TABLE,
  -- whose own SQLite index on the nodes backs it (none is created or dropped).
  constraint_backed INTEGER NOT NULL DEFAULT 0,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS virtual_index_columns (
  index_id INTEGER NOT NULL REFERENCES virtual_indexes (index_id),
  position INTEGER NOT NULL,
  column_name TEXT NOT NULL,
  PRIMARY KEY (index_id, position)
);
)sql";

// Version 4: online resharding (docs/resharding.md). Shard id lists are
// comma-separated; `switched` = the targets are active and the sources
// retiring (only the clean-up is left).
constexpr char kSchemaV4[] = R"sql(
CREATE TABLE IF NOT EXISTS reshard_operations (
  change_log_id TEXT PRIMARY KEY,
  table_id INTEGER NOT NULL,
  table_name TEXT NOT NULL,
  phase TEXT NOT NULL
    CHECK (phase IN ('pending', 'copying', 'switching', 'complete', 'failed')),
  switched INTEGER NOT NULL DEFAULT 0,
  source_shard_ids TEXT NOT NULL,
  target_shard_ids TEXT NOT NULL,
  rows_total INTEGER NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  write_pause_ms INTEGER NOT NULL DEFAULT 0,
  started_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS reshard_operations_by_table ON reshard_operations (table_id, phase);
)sql";

// Each step upgrades a file of version to_version - 1; Migrate() applies every
// step above the file's version, in order, in one transaction.
struct MigrationStep {
  int to_version;
  const char* sql;
};
constexpr MigrationStep kMigrations[] = {
    {1, kSchemaV1}, {2, kSchemaV2}, {3, kSchemaV3}, {4, kSchemaV4}};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == TopologyStore::kSchemaVersion,
              "one migration step per schema version");

absl::Status Check(const absl::Status& s, const char* what) {
  return s.ok() ? s : Annotate(s, absl::StrCat("topology store: ", what));
}

}  // namespace

int64_t TopologyStore::NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::StatusOr<std::unique_ptr<TopologyStore>> TopologyStore::Open(const std::string& path) {
  DatabaseOptions options;
  options.synchronous_full = true;
  auto db = Database::Open(path, options);
  if (!db.ok()) return Annotate(db.status(), absl::StrCat("topology store ", path));
  std::unique_ptr<TopologyStore> store(new TopologyStore(std::move(*db)));
  if (auto s = store->Migrate(); !s.ok()) return Annotate(s, absl::StrCat("topology store ", path));
  auto snapshot = store->Load();
  if (!snapshot.ok()) return Annotate(snapshot.status(), absl::StrCat("topology store ", path));
  store->snapshot_ = std::move(*snapshot);
  return store;
}

absl::Status TopologyStore::Migrate() {
  // Read and upgrade the version in one write transaction, so two processes
  // opening the same old file cannot both migrate it.
  if (auto s = db_->Exec("BEGIN IMMEDIATE"); !s.ok()) return Check(s, "begin migration");
  absl::Status s = [&]() -> absl::Status {
    auto version_stmt = db_->Prepare("PRAGMA user_version");
    if (!version_stmt.ok()) return version_stmt.status();
    auto row = version_stmt->Step();
    if (!row.ok()) return row.status();
    const int64_t version = version_stmt->ColumnInt64(0);
    if (version > kSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the topology store has schema version ", version,
          ", newer than this conductor understands (", kSchemaVersion, "); run a newer conductor"));
    }
    for (const MigrationStep& step : kMigrations) {
      if (step.to_version <= version) continue;
      if (auto e = db_->Exec(step.sql); !e.ok()) {
        return Annotate(e, absl::StrCat("to version ", step.to_version));
      }
    }
    if (version == kSchemaVersion) return absl::OkStatus();
    return db_->Exec(absl::StrCat("PRAGMA user_version = ", kSchemaVersion));
  }();
  if (!s.ok()) {
    db_->Exec("ROLLBACK").IgnoreError();
    return Check(s, "migrating the schema");
  }
  return Check(db_->Exec("COMMIT"), "committing the migration");
}

std::shared_ptr<const Snapshot> TopologyStore::snapshot() const {
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  return snapshot_;
}

absl::StatusOr<std::shared_ptr<const Snapshot>> TopologyStore::Load() {
  auto snapshot = std::make_shared<Snapshot>();
  absl::Status s = db_->ForEachRow("SELECT value FROM meta WHERE key = 'topology_version'",
                                   [&](const Statement& row) {
                                     snapshot->version = row.ColumnInt64(0);
                                     return absl::OkStatus();
                                   });
  if (s.ok()) {
    s = db_->ForEachRow("SELECT node_id, address FROM storage_nodes ORDER BY node_id",
                        [&](const Statement& row) {
                          snapshot->nodes.push_back({row.ColumnText(0), row.ColumnText(1)});
                          return absl::OkStatus();
                        });
  }
  std::map<int64_t, TableMeta*> by_id;
  if (s.ok()) {
    s = db_->ForEachRow(
        "SELECT table_id, name, state, pending_name, shard_key, strategy, block_size, user_sql, "
        "physical_sql, created_at_ms, updated_at_ms FROM tables",
        [&](const Statement& row) -> absl::Status {
          TableMeta table;
          table.table_id = row.ColumnInt64(0);
          table.name = row.ColumnText(1);
          if (!ParseTableState(row.ColumnText(2), &table.state)) {
            return absl::DataLossError(absl::StrCat("topology store: table ", table.name,
                                                    " has unknown state ", row.ColumnText(2)));
          }
          table.pending_name = row.ColumnText(3);
          table.shard_key = row.ColumnText(4);
          table.strategy = row.ColumnText(5);
          table.block_size = static_cast<int32_t>(row.ColumnInt64(6));
          table.user_sql = row.ColumnText(7);
          table.physical_sql = row.ColumnText(8);
          table.created_at_ms = row.ColumnInt64(9);
          table.updated_at_ms = row.ColumnInt64(10);
          std::string key = LowerName(table.name);
          auto [it, unused] = snapshot->tables.emplace(key, std::move(table));
          by_id[it->second.table_id] = &it->second;
          return absl::OkStatus();
        });
  }
  // Child rows of the tables: `add` is called with the owning table.
  auto children = [&](const char* sql,
                      const std::function<void(TableMeta&, const Statement&)>& add) {
    return db_->ForEachRow(sql, [&](const Statement& row) {
      auto it = by_id.find(row.ColumnInt64(0));
      if (it != by_id.end()) add(*it->second, row);
      return absl::OkStatus();
    });
  };
  if (s.ok()) {
    s = children(
        "SELECT table_id, name, type, not_null, default_value, pk_position, generated, collation "
        "FROM table_columns ORDER BY table_id, position",
        [](TableMeta& table, const Statement& row) {
          sql::ColumnSchema column;
          column.name = row.ColumnText(1);
          column.type = row.ColumnText(2);
          column.not_null = row.ColumnInt64(3) != 0;
          column.default_value = row.ColumnText(4);
          column.primary_key_position = static_cast<int>(row.ColumnInt64(5));
          column.generated = row.ColumnInt64(6) != 0;
          column.collation = row.ColumnText(7);
          table.columns.push_back(std::move(column));
        });
  }
  if (s.ok()) {
    int64_t last_table = -1, last_no = -1;
    s = children(
        "SELECT table_id, constraint_no, column_name FROM table_unique_constraints "
        "ORDER BY table_id, constraint_no, position",
        [&](TableMeta& table, const Statement& row) {
          if (row.ColumnInt64(0) != last_table || row.ColumnInt64(1) != last_no) {
            table.unique_constraints.emplace_back();
            last_table = row.ColumnInt64(0);
            last_no = row.ColumnInt64(1);
          }
          table.unique_constraints.back().push_back(row.ColumnText(2));
        });
  }
  if (s.ok()) {
    s = children(
        "SELECT table_id, shard_id, node_id, status FROM table_shards "
        "ORDER BY table_id, shard_id",
        [](TableMeta& table, const Statement& row) {
          table.shards.push_back(
              {static_cast<int32_t>(row.ColumnInt64(1)), row.ColumnText(2), row.ColumnText(3)});
        });
  }
  std::map<int64_t, IndexMeta*> index_by_id;
  if (s.ok()) {
    s = children(
        "SELECT table_id, index_id, name, is_unique, status, error, created_at_ms, updated_at_ms, "
        "constraint_backed FROM virtual_indexes ORDER BY table_id, index_id",
        [&](TableMeta& table, const Statement& row) {
          IndexMeta index;
          index.table_id = table.table_id;
          index.index_id = row.ColumnInt64(1);
          index.name = row.ColumnText(2);
          index.unique = row.ColumnInt64(3) != 0;
          index.status = row.ColumnText(4);
          index.error = row.ColumnText(5);
          index.created_at_ms = row.ColumnInt64(6);
          index.updated_at_ms = row.ColumnInt64(7);
          index.constraint_backed = row.ColumnInt64(8) != 0;
          table.indexes.push_back(std::move(index));
        });
  }
  if (s.ok()) {
    for (auto& [id, table] : by_id) {
      for (IndexMeta& index : table->indexes) index_by_id[index.index_id] = &index;
    }
    s = db_->ForEachRow(
        "SELECT index_id, column_name FROM virtual_index_columns ORDER BY index_id, position",
        [&](const Statement& row) {
          auto it = index_by_id.find(row.ColumnInt64(0));
          if (it != index_by_id.end()) it->second->columns.push_back(row.ColumnText(1));
          return absl::OkStatus();
        });
  }
  if (!s.ok()) return s;
  // The primary key, in key order, is derived from the columns.
  for (auto& [id, table] : by_id) {
    std::vector<const sql::ColumnSchema*> pk;
    for (const auto& column : table->columns) {
      if (column.primary_key_position > 0) pk.push_back(&column);
    }
    std::sort(pk.begin(), pk.end(), [](const auto* a, const auto* b) {
      return a->primary_key_position < b->primary_key_position;
    });
    for (const auto* column : pk) table->primary_key.push_back(column->name);
  }
  return std::shared_ptr<const Snapshot>(std::move(snapshot));
}

absl::Status TopologyStore::RunTransaction(const std::function<absl::Status(Database&)>& body,
                                           bool bump_version) {
  if (auto s = db_->Exec("BEGIN IMMEDIATE"); !s.ok()) return Check(s, "begin");
  absl::Status s = body(*db_);
  if (s.ok() && bump_version) {
    s = Check(db_->Exec("UPDATE meta SET value = value + 1 WHERE key = 'topology_version'"),
              "bumping the version");
  }
  if (!s.ok()) {
    db_->Exec("ROLLBACK").IgnoreError();
    return s;
  }
  if (auto c = db_->Exec("COMMIT"); !c.ok()) {
    db_->Exec("ROLLBACK").IgnoreError();
    return Check(c, "commit");
  }
  return absl::OkStatus();
}

absl::Status TopologyStore::Mutate(const std::function<absl::Status(Database&)>& body) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (auto s = RunTransaction(body, /*bump_version=*/true); !s.ok()) return s;
  auto snapshot = Load();
  if (!snapshot.ok()) return Check(snapshot.status(), "reloading");
  std::lock_guard<std::mutex> snapshot_lock(snapshot_mu_);
  snapshot_ = std::move(*snapshot);
  return absl::OkStatus();
}

absl::Status TopologyStore::Transact(const std::function<absl::Status(Database&)>& body) {
  std::lock_guard<std::mutex> lock(write_mu_);
  return RunTransaction(body, /*bump_version=*/false);
}

absl::Status TopologyStore::UpsertNode(const NodeMeta& node) {
  return Mutate([&](Database& db) -> absl::Status {
    auto stmt = db.Prepare(
        "INSERT INTO storage_nodes (node_id, address, added_at_ms) VALUES (?, ?, ?) "
        "ON CONFLICT (node_id) DO UPDATE SET address = excluded.address");
    if (!stmt.ok()) return stmt.status();
    stmt->BindText(1, node.node_id).IgnoreError();
    stmt->BindText(2, node.address).IgnoreError();
    stmt->BindInt64(3, NowMs()).IgnoreError();
    return stmt->Run();
  });
}

absl::StatusOr<int64_t> TopologyStore::InsertTable(const TableMeta& table) {
  int64_t table_id = 0;
  absl::Status s = Mutate([&](Database& db) -> absl::Status {
    auto exists = db.Prepare(
        "SELECT name FROM tables WHERE name = ?1 COLLATE NOCASE OR "
        "pending_name = ?1 COLLATE NOCASE");
    if (!exists.ok()) return exists.status();
    exists->BindText(1, table.name).IgnoreError();
    auto found = exists->Step();
    if (!found.ok()) return found.status();
    if (*found) {
      return Error(absl::StatusCode::kAlreadyExists, reason::kTableAlreadyExists,
                   absl::StrCat("table ", table.name, " already exists"));
    }
    auto insert = db.Prepare(
        "INSERT INTO tables (name, state, pending_name, shard_key, strategy, block_size, "
        "user_sql, physical_sql, created_at_ms, updated_at_ms) VALUES (?, ?, NULL, ?, ?, ?, ?, "
        "?, ?, ?)");
    if (!insert.ok()) return insert.status();
    int64_t now = NowMs();
    insert->BindText(1, table.name).IgnoreError();
    insert->BindText(2, TableStateName(table.state)).IgnoreError();
    insert->BindText(3, table.shard_key).IgnoreError();
    insert->BindText(4, table.strategy).IgnoreError();
    insert->BindInt64(5, table.block_size).IgnoreError();
    insert->BindText(6, table.user_sql).IgnoreError();
    insert->BindText(7, table.physical_sql).IgnoreError();
    insert->BindInt64(8, now).IgnoreError();
    insert->BindInt64(9, now).IgnoreError();
    if (auto r = insert->Run(); !r.ok()) return r;
    table_id = sqlite3_last_insert_rowid(db.handle());

    auto column = db.Prepare(
        "INSERT INTO table_columns (table_id, position, name, type, not_null, default_value, "
        "pk_position, generated, collation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!column.ok()) return column.status();
    for (size_t i = 0; i < table.columns.size(); ++i) {
      const sql::ColumnSchema& c = table.columns[i];
      column->Reset().IgnoreError();
      column->BindInt64(1, table_id).IgnoreError();
      column->BindInt64(2, static_cast<int64_t>(i)).IgnoreError();
      column->BindText(3, c.name).IgnoreError();
      column->BindText(4, c.type).IgnoreError();
      column->BindInt64(5, c.not_null ? 1 : 0).IgnoreError();
      column->BindText(6, c.default_value).IgnoreError();
      column->BindInt64(7, c.primary_key_position).IgnoreError();
      column->BindInt64(8, c.generated ? 1 : 0).IgnoreError();
      column->BindText(9, c.collation).IgnoreError();
      if (auto r = column->Run(); !r.ok()) return r;
    }
    auto unique = db.Prepare(
        "INSERT INTO table_unique_constraints (table_id, constraint_no, position, column_name) "
        "VALUES (?, ?, ?, ?)");
    if (!unique.ok()) return unique.status();
    for (size_t n = 0; n < table.unique_constraints.size(); ++n) {
      for (size_t p = 0; p < table.unique_constraints[n].size(); ++p) {
        unique->Reset().IgnoreError();
        unique->BindInt64(1, table_id).IgnoreError();
        unique->BindInt64(2, static_cast<int64_t>(n)).IgnoreError();
        unique->BindInt64(3, static_cast<int64_t>(p)).IgnoreError();
        unique->BindText(4, table.unique_constraints[n][p]).IgnoreError();
        if (auto r = unique->Run(); !r.ok()) return r;
      }
    }
    auto shard = db.Prepare(
        "INSERT INTO table_shards (table_id, shard_id, node_id, status) VALUES (?, ?, ?, ?)");
    if (!shard.ok()) return shard.status();
    for (const ShardMeta& s : table.shards) {
      shard->Reset().IgnoreError();
      shard->BindInt64(1, table_id).IgnoreError();
      shard->BindInt64(2, s.shard_id).IgnoreError();
      shard->BindText(3, s.node_id).IgnoreError();
      shard->BindText(4, s.status).IgnoreError();
      if (auto r = shard->Run(); !r.ok()) return r;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return table_id;
}

namespace {

// Runs an UPDATE/DELETE that must touch exactly one table record.
absl::Status RunOnTable(Database& db, const std::string& sql, int64_t table_id,
                        const std::function<void(Statement&)>& bind) {
  auto stmt = db.Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  bind(*stmt);
  if (auto r = stmt->Run(); !r.ok()) return r;
  if (db.Changes() == 0) {
    return absl::NotFoundError(absl::StrCat("topology store: no table with id ", table_id));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status TopologyStore::SetTableState(int64_t table_id, TableState state,
                                          const std::string& pending_name) {
  return Mutate([&](Database& db) {
    return RunOnTable(
        db, "UPDATE tables SET state = ?, pending_name = ?, updated_at_ms = ? WHERE table_id = ?",
        table_id, [&](Statement& stmt) {
          stmt.BindText(1, TableStateName(state)).IgnoreError();
          if (state == TableState::kRenaming) {
            stmt.BindText(2, pending_name).IgnoreError();
          } else {
            stmt.Bind(2, NullValue()).IgnoreError();
          }
          stmt.BindInt64(3, NowMs()).IgnoreError();
          stmt.BindInt64(4, table_id).IgnoreError();
        });
  });
}

absl::Status TopologyStore::FinishRename(int64_t table_id) {
  return Mutate([&](Database& db) {
    return RunOnTable(db,
                      "UPDATE tables SET name = pending_name, pending_name = NULL, state = ?, "
                      "updated_at_ms = ? WHERE table_id = ? AND state = ?",
                      table_id, [&](Statement& stmt) {
                        stmt.BindText(1, TableStateName(TableState::kActive)).IgnoreError();
                        stmt.BindInt64(2, NowMs()).IgnoreError();
                        stmt.BindInt64(3, table_id).IgnoreError();
                        stmt.BindText(4, TableStateName(TableState::kRenaming)).IgnoreError();
                      });
  });
}

absl::Status TopologyStore::SetBlockSize(int64_t table_id, int32_t block_size) {
  return Mutate([&](Database& db) {
    return RunOnTable(db, "UPDATE tables SET block_size = ?, updated_at_ms = ? WHERE table_id = ?",
                      table_id, [&](Statement& stmt) {
                        stmt.BindInt64(1, block_size).IgnoreError();
                        stmt.BindInt64(2, NowMs()).IgnoreError();
                        stmt.BindInt64(3, table_id).IgnoreError();
                      });
  });
}

absl::Status TopologyStore::DeleteTable(int64_t table_id) {
  return Mutate([&](Database& db) -> absl::Status {
    auto columns = db.Prepare(
        "DELETE FROM virtual_index_columns WHERE index_id IN "
        "(SELECT index_id FROM virtual_indexes WHERE table_id = ?)");
    if (!columns.ok()) return columns.status();
    columns->BindInt64(1, table_id).IgnoreError();
    if (auto r = columns->Run(); !r.ok()) return r;
    for (const char* child :
         {"virtual_indexes", "table_shards", "table_columns", "table_unique_constraints"}) {
      auto stmt = db.Prepare(absl::StrCat("DELETE FROM ", child, " WHERE table_id = ?"));
      if (!stmt.ok()) return stmt.status();
      stmt->BindInt64(1, table_id).IgnoreError();
      if (auto r = stmt->Run(); !r.ok()) return r;
    }
    return RunOnTable(db, "DELETE FROM tables WHERE table_id = ?", table_id,
                      [&](Statement& stmt) { stmt.BindInt64(1, table_id).IgnoreError(); });
  });
}

absl::StatusOr<int64_t> TopologyStore::InsertIndexIn(Database& db, const IndexMeta& index) {
  auto exists = db.Prepare(
      "SELECT 'index' FROM virtual_indexes WHERE name = ?1 COLLATE NOCASE UNION ALL "
      "SELECT 'table' FROM tables WHERE name = ?1 COLLATE NOCASE OR "
      "pending_name = ?1 COLLATE NOCASE");
  if (!exists.ok()) return exists.status();
  exists->BindText(1, index.name).IgnoreError();
  auto found = exists->Step();
  if (!found.ok()) return found.status();
  if (*found) {
    return Error(absl::StatusCode::kAlreadyExists, reason::kIndexAlreadyExists,
                 exists->ColumnText(0) == "index"
                     ? absl::StrCat("index ", index.name, " already exists")
                     : absl::StrCat("a table is named ", index.name,
                                    "; tables and indexes share one namespace"));
  }
  auto insert = db.Prepare(
      "INSERT INTO virtual_indexes (table_id, name, is_unique, status, error, created_at_ms, "
      "updated_at_ms, constraint_backed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  if (!insert.ok()) return insert.status();
  const int64_t now = NowMs();
  insert->BindInt64(1, index.table_id).IgnoreError();
  insert->BindText(2, index.name).IgnoreError();
  insert->BindInt64(3, index.unique ? 1 : 0).IgnoreError();
  insert->BindText(4, index.status).IgnoreError();
  insert->BindText(5, index.error).IgnoreError();
  insert->BindInt64(6, now).IgnoreError();
  insert->BindInt64(7, now).IgnoreError();
  insert->BindInt64(8, index.constraint_backed ? 1 : 0).IgnoreError();
  if (auto r = insert->Run(); !r.ok()) return r;
  const int64_t index_id = sqlite3_last_insert_rowid(db.handle());
  auto column = db.Prepare(
      "INSERT INTO virtual_index_columns (index_id, position, column_name) VALUES (?, ?, ?)");
  if (!column.ok()) return column.status();
  for (size_t i = 0; i < index.columns.size(); ++i) {
    column->Reset().IgnoreError();
    column->BindInt64(1, index_id).IgnoreError();
    column->BindInt64(2, static_cast<int64_t>(i)).IgnoreError();
    column->BindText(3, index.columns[i]).IgnoreError();
    if (auto r = column->Run(); !r.ok()) return r;
  }
  return index_id;
}

absl::Status TopologyStore::SetIndexStatusIn(Database& db, int64_t index_id,
                                             const std::string& status, const std::string& error) {
  auto stmt = db.Prepare(
      "UPDATE virtual_indexes SET status = ?, error = ?, updated_at_ms = ? "
      "WHERE index_id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->BindText(1, status).IgnoreError();
  stmt->BindText(2, error).IgnoreError();
  stmt->BindInt64(3, NowMs()).IgnoreError();
  stmt->BindInt64(4, index_id).IgnoreError();
  if (auto r = stmt->Run(); !r.ok()) return r;
  if (db.Changes() == 0) {
    return absl::NotFoundError(absl::StrCat("topology store: no index with id ", index_id));
  }
  return absl::OkStatus();
}

absl::Status TopologyStore::DeleteIndexIn(Database& db, int64_t index_id) {
  for (const char* sql : {"DELETE FROM virtual_index_columns WHERE index_id = ?",
                          "DELETE FROM virtual_indexes WHERE index_id = ?"}) {
    auto stmt = db.Prepare(sql);
    if (!stmt.ok()) return stmt.status();
    stmt->BindInt64(1, index_id).IgnoreError();
    if (auto r = stmt->Run(); !r.ok()) return r;
  }
  return absl::OkStatus();
}

}  // namespace conductor
