#include "conductor/topo/topology_store.h"

#include <cstdio>
#include <string>

#include "common/errors.h"
#include "gtest/gtest.h"

namespace conductor {
namespace {

TableMeta UsersTable() {
  TableMeta table;
  table.name = "Users";
  table.state = TableState::kCreating;
  table.primary_key = {"id"};
  table.shard_key = "id";
  table.block_size = 500;
  table.user_sql = "CREATE TABLE Users (id INTEGER PRIMARY KEY, name TEXT)";
  table.physical_sql = "CREATE TABLE IF NOT EXISTS \"Users\" (…)";
  sql::ColumnSchema id{"id", "INTEGER", false, "", 1};
  sql::ColumnSchema name{"name", "TEXT", true, "'x'", 0};
  table.columns = {id, name};
  table.unique_constraints = {{"name"}};
  table.shards = {{0, "n1", shard_status::kActive}, {1, "n2", shard_status::kActive}};
  return table;
}

std::string TempPath(const std::string& name) {
  const char* dir = getenv("TEST_TMPDIR");
  std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
  std::remove(path.c_str());
  std::remove((path + "-wal").c_str());
  std::remove((path + "-shm").c_str());
  return path;
}

TEST(TopologyStoreTest, TableRoundTripsThroughTheSnapshot) {
  auto store = TopologyStore::Open(":memory:");
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->UpsertNode({"n1", "127.0.0.1:1"}).ok());
  ASSERT_TRUE((*store)->UpsertNode({"n2", "127.0.0.1:2"}).ok());
  int64_t v0 = (*store)->snapshot()->version;
  auto id = (*store)->InsertTable(UsersTable());
  ASSERT_TRUE(id.ok()) << id.status();
  auto snapshot = (*store)->snapshot();
  EXPECT_GT(snapshot->version, v0);
  EXPECT_EQ(snapshot->FindActive("users"), nullptr) << "a creating table is invisible";
  const TableMeta* t = snapshot->FindAny("USERS");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->name, "Users");
  EXPECT_EQ(t->primary_key, std::vector<std::string>{"id"});
  ASSERT_EQ(t->columns.size(), 2u);
  EXPECT_EQ(t->columns[1].default_value, "'x'");
  EXPECT_TRUE(t->columns[1].not_null);
  EXPECT_EQ(t->unique_constraints, std::vector<std::vector<std::string>>{{"name"}});
  EXPECT_EQ(t->shards.size(), 2u);
  EXPECT_EQ(t->ActiveShardCount(), 2);

  ASSERT_TRUE((*store)->SetTableState(*id, TableState::kActive).ok());
  EXPECT_NE((*store)->snapshot()->FindActive("users"), nullptr);
}

TEST(TopologyStoreTest, DuplicateNameIsRefusedAndLeavesNothing) {
  auto store = TopologyStore::Open(":memory:");
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->UpsertNode({"n1", "a:1"}).ok());
  ASSERT_TRUE((*store)->UpsertNode({"n2", "a:2"}).ok());
  ASSERT_TRUE((*store)->InsertTable(UsersTable()).ok());
  int64_t version = (*store)->snapshot()->version;
  TableMeta again = UsersTable();
  again.name = "USERS";
  auto dup = (*store)->InsertTable(again);
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ErrorReason(dup.status()), "TABLE_ALREADY_EXISTS");
  EXPECT_EQ((*store)->snapshot()->version, version) << "a failed change must not bump";
  EXPECT_EQ((*store)->snapshot()->tables.size(), 1u);
}

TEST(TopologyStoreTest, FailedTransactionRollsBackEveryRow) {
  auto store = TopologyStore::Open(":memory:");
  ASSERT_TRUE(store.ok());
  TableMeta table = UsersTable();
  // Two shards with the same id violate the shards primary key mid-transaction,
  // after the table and column rows were written.
  table.shards = {{0, "n1", "active"}, {0, "n1", "active"}};
  ASSERT_TRUE((*store)->UpsertNode({"n1", "a:1"}).ok());
  EXPECT_FALSE((*store)->InsertTable(table).ok());
  EXPECT_TRUE((*store)->snapshot()->tables.empty());
  // And the name is free again.
  table.shards = {{0, "n1", "active"}};
  EXPECT_TRUE((*store)->InsertTable(table).ok());
}

TEST(TopologyStoreTest, RenameDropAndBlockSize) {
  auto store = TopologyStore::Open(":memory:");
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->UpsertNode({"n1", "a:1"}).ok());
  ASSERT_TRUE((*store)->UpsertNode({"n2", "a:2"}).ok());
  auto id = (*store)->InsertTable(UsersTable());
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE((*store)->SetTableState(*id, TableState::kRenaming, "people").ok());
  const TableMeta* renaming = (*store)->snapshot()->FindAny("people");
  ASSERT_NE(renaming, nullptr) << "the pending name is reserved";
  EXPECT_EQ(renaming->state, TableState::kRenaming);
  ASSERT_TRUE((*store)->FinishRename(*id).ok());
  EXPECT_NE((*store)->snapshot()->FindActive("People"), nullptr);
  EXPECT_EQ((*store)->snapshot()->FindAny("users"), nullptr);
  EXPECT_FALSE((*store)->FinishRename(*id).ok()) << "only a renaming table can finish";

  ASSERT_TRUE((*store)->SetBlockSize(*id, 42).ok());
  EXPECT_EQ((*store)->snapshot()->FindActive("people")->block_size, 42);

  ASSERT_TRUE((*store)->DeleteTable(*id).ok());
  EXPECT_TRUE((*store)->snapshot()->tables.empty());
  EXPECT_EQ((*store)->DeleteTable(*id).code(), absl::StatusCode::kNotFound);
}

TEST(TopologyStoreTest, SurvivesReopen) {
  std::string path = TempPath("topology_reopen.db");
  int64_t version = 0;
  {
    auto store = TopologyStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->UpsertNode({"n1", "a:1"}).ok());
    ASSERT_TRUE((*store)->UpsertNode({"n2", "a:2"}).ok());
    auto id = (*store)->InsertTable(UsersTable());
    ASSERT_TRUE(id.ok());
    ASSERT_TRUE((*store)->SetTableState(*id, TableState::kActive).ok());
    version = (*store)->snapshot()->version;
  }
  auto store = TopologyStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  auto snapshot = store.value()->snapshot();
  EXPECT_EQ(snapshot->version, version);
  EXPECT_EQ(snapshot->nodes.size(), 2u);
  const TableMeta* t = snapshot->FindActive("users");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->shards.size(), 2u);
  EXPECT_EQ(t->shards[1].node_id, "n2");
}

TEST(TopologyStoreTest, RefusesANewerSchema) {
  std::string path = TempPath("topology_newer.db");
  {
    auto db = Database::Open(path);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("PRAGMA user_version = 99").ok());
  }
  auto store = TopologyStore::Open(path);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(TopologyStoreTest, NodeAddressCanMove) {
  auto store = TopologyStore::Open(":memory:");
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->UpsertNode({"n1", "a:1"}).ok());
  ASSERT_TRUE((*store)->UpsertNode({"n1", "b:1"}).ok());
  auto snapshot = (*store)->snapshot();
  ASSERT_EQ(snapshot->nodes.size(), 1u);
  EXPECT_EQ(snapshot->nodes[0].address, "b:1");
}

TEST(TopologyStoreTest, IndexRecordsRoundTripAndGoWithTheirTable) {
  const std::string path = TempPath("indexes.db");
  int64_t table_id = 0, index_id = 0;
  {
    auto store = TopologyStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->UpsertNode({"n1", "127.0.0.1:1"}).ok());
    ASSERT_TRUE((*store)->UpsertNode({"n2", "127.0.0.1:2"}).ok());
    auto id = (*store)->InsertTable(UsersTable());
    ASSERT_TRUE(id.ok());
    table_id = *id;
    ASSERT_TRUE((*store)
                    ->Mutate([&](Database& db) -> absl::Status {
                      IndexMeta index;
                      index.table_id = table_id;
                      index.name = "By_Name";
                      index.columns = {"name", "id"};
                      index.unique = true;
                      index.constraint_backed = true;
                      index.status = index_status::kBuilding;
                      auto inserted = TopologyStore::InsertIndexIn(db, index);
                      if (!inserted.ok()) return inserted.status();
                      index_id = *inserted;
                      // The name is taken by an index, and a table's name too.
                      index.name = "by_name";
                      EXPECT_EQ(ErrorReason(TopologyStore::InsertIndexIn(db, index).status()),
                                "INDEX_ALREADY_EXISTS");
                      index.name = "USERS";
                      EXPECT_EQ(ErrorReason(TopologyStore::InsertIndexIn(db, index).status()),
                                "INDEX_ALREADY_EXISTS");
                      return TopologyStore::SetIndexStatusIn(db, index_id, index_status::kFailed,
                                                             "why");
                    })
                    .ok());
  }
  auto store = TopologyStore::Open(path);  // reloaded from the file
  ASSERT_TRUE(store.ok()) << store.status();
  auto [table, index] = (*store)->snapshot()->FindIndex("BY_NAME");
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(table->table_id, table_id);
  EXPECT_EQ(index->index_id, index_id);
  EXPECT_EQ(index->name, "By_Name");
  EXPECT_EQ(index->columns, (std::vector<std::string>{"name", "id"}));
  EXPECT_TRUE(index->unique);
  EXPECT_TRUE(index->constraint_backed);
  EXPECT_EQ(index->status, "failed");
  EXPECT_EQ(index->error, "why");
  EXPECT_TRUE(index->Visible());
  EXPECT_FALSE(index->Maintained());
  ASSERT_TRUE((*store)->DeleteTable(table_id).ok());
  EXPECT_EQ((*store)->snapshot()->FindIndex("by_name").second, nullptr);
  ASSERT_TRUE((*store)
                  ->Transact([](Database& db) {
                    return db.ForEachRow("SELECT * FROM virtual_index_columns",
                                         [](const Statement&) {
                                           ADD_FAILURE() << "index columns left behind";
                                           return absl::OkStatus();
                                         });
                  })
                  .ok());
}

}  // namespace
}  // namespace conductor
