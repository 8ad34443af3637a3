// Table operations end to end: a real conductor and three real storage
// nodes on loopback, driven through both the typed RPCs and Execute, with
// the physical result checked by opening the nodes' SQLite files.
#include <signal.h>

#include <future>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/sqlite.h"
#include "gtest/gtest.h"
#include "tests/harness/cluster.h"

namespace conductor {
namespace {

using testing::TestCluster;
namespace v1 = ::conductor::v1;

class TableOpsIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cluster = TestCluster::Start({});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  static grpc::Status Execute(const std::string& sql, v1::ExecuteResponse* response = nullptr) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::ExecuteRequest request;
    request.set_sql(sql);
    v1::ExecuteResponse ignored;
    return cluster_->ops().Execute(&context, request, response ? response : &ignored);
  }

  // After a node restarts, the conductor's channel may still be backing off
  // (at most a second): retry while the answer is UNAVAILABLE.
  static grpc::Status ExecuteEventually(const std::string& sql) {
    grpc::Status status;
    for (int attempt = 0; attempt < 50; ++attempt) {
      status = Execute(sql);
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return status;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return status;
  }

  template <typename Req, typename Resp>
  static grpc::Status Call(grpc::Status (v1::TableOps::Stub::*method)(grpc::ClientContext*,
                                                                      const Req&, Resp*),
                           const Req& request, Resp* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return (cluster_->ops().*method)(&context, request, response);
  }

  // Columns of `table` on node i, read from its SQLite file: name → pk position.
  static std::vector<std::pair<std::string, int>> PhysicalColumns(int node,
                                                                  const std::string& table) {
    DatabaseOptions options;
    options.read_only = true;
    auto db = Database::Open(cluster_->node_database(node), options);
    EXPECT_TRUE(db.ok()) << db.status();
    std::vector<std::pair<std::string, int>> columns;
    auto stmt = (*db)->Prepare("SELECT name, pk FROM pragma_table_info(?)");
    EXPECT_TRUE(stmt.ok()) << stmt.status();
    stmt->BindText(1, table).IgnoreError();
    while (*stmt->Step()) columns.emplace_back(stmt->ColumnText(0), stmt->ColumnInt64(1));
    return columns;
  }

  static bool PhysicalTableExists(int node, const std::string& table) {
    return !PhysicalColumns(node, table).empty();
  }

  // Writes rows straight into a node's file (the data path is not under test here).
  static void InsertDirect(int node, const std::string& sql) {
    auto db = Database::Open(cluster_->node_database(node));
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Exec(sql).ok()) << sql;
  }

  // The index of the node hosting `shard` of `table`.
  static int NodeOfShard(const std::string& table, int shard) {
    v1::DescribeTableRequest describe;
    describe.set_table(table);
    v1::DescribeTableResponse described;
    EXPECT_TRUE(Call(&v1::TableOps::Stub::DescribeTable, describe, &described).ok());
    for (const auto& s : described.shards()) {
      if (s.shard_id() == shard) return std::stoi(s.node_id().substr(5)) - 1;
    }
    ADD_FAILURE() << "no shard " << shard;
    return 0;
  }

  static void ExpectError(const grpc::Status& status, grpc::StatusCode code,
                          const std::string& reason) {
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_EQ(ErrorReason(FromGrpcStatus(status)), reason) << status.error_message();
    EXPECT_FALSE(status.error_message().empty());
  }

  static const v1::ResultSet* Set(const v1::ExecuteResponse& response, const std::string& name) {
    for (const auto& set : response.result_sets()) {
      if (set.name() == name) return &set;
    }
    return nullptr;
  }

  static TestCluster* cluster_;
};

TestCluster* TableOpsIntegrationTest::cluster_ = nullptr;

TEST_F(TableOpsIntegrationTest, CreateThroughTypedRpcPlacesShardsOnEveryNode) {
  v1::CreateTableRequest request;
  request.set_sql(
      "CREATE TABLE accounts (region TEXT, id INTEGER, balance REAL DEFAULT 0, "
      "PRIMARY KEY (region, id))");
  request.set_num_shards(6);
  request.set_block_size(250);
  request.set_shard_key("id");
  v1::CreateTableResponse response;
  ASSERT_TRUE(Call(&v1::TableOps::Stub::CreateTable, request, &response).ok());
  EXPECT_TRUE(response.created());
  EXPECT_EQ(response.table().name(), "accounts");
  EXPECT_EQ(response.table().num_shards(), 6);
  EXPECT_EQ(response.table().block_size(), 250);
  EXPECT_EQ(response.table().shard_key(), "id");
  EXPECT_EQ(response.table().strategy(), "hash");
  ASSERT_EQ(response.table().primary_key_size(), 2);
  EXPECT_EQ(response.table().primary_key(0), "region");
  EXPECT_GT(response.table().created_at_ms(), 0);

  v1::DescribeTableRequest describe;
  describe.set_table("ACCOUNTS");
  v1::DescribeTableResponse described;
  ASSERT_TRUE(Call(&v1::TableOps::Stub::DescribeTable, describe, &described).ok());
  ASSERT_EQ(described.shards_size(), 6);
  std::set<std::string> nodes;
  for (const auto& shard : described.shards()) {
    nodes.insert(shard.node_id());
    EXPECT_EQ(shard.status(), "active");
  }
  EXPECT_EQ(nodes.size(), 3u) << "6 shards over 3 nodes use every node";
  ASSERT_EQ(described.columns_size(), 3) << "_virtualShard is hidden";
  EXPECT_EQ(described.columns(0).name(), "region");
  EXPECT_TRUE(described.columns(0).primary_key());
  EXPECT_FALSE(described.columns(2).primary_key());
  EXPECT_EQ(described.columns(2).default_value(), "0");

  // Physically: on every node, PK (_virtualShard, region, id).
  for (int i = 0; i < cluster_->node_count(); ++i) {
    auto columns = PhysicalColumns(i, "accounts");
    ASSERT_EQ(columns.size(), 4u) << "node " << i;
    std::map<std::string, int> pk(columns.begin(), columns.end());
    EXPECT_EQ(pk["_virtualShard"], 1);
    EXPECT_EQ(pk["region"], 2);
    EXPECT_EQ(pk["id"], 3);
    EXPECT_EQ(pk["balance"], 0);
  }
}

TEST_F(TableOpsIntegrationTest, CreateThroughSqlWithShardsHintAndIfNotExists) {
  ASSERT_TRUE(Execute("create table \"Order Items\" (\"item id\" TEXT PRIMARY KEY, qty INTEGER "
                      "NOT NULL CHECK (qty > 0)) /* SHARDS=4 */")
                  .ok());
  v1::ExecuteResponse show;
  ASSERT_TRUE(Execute("SHOW TABLES", &show).ok());
  const v1::ResultSet* tables = Set(show, "TABLES");
  ASSERT_NE(tables, nullptr);
  ASSERT_EQ(tables->columns_size(), 7);
  EXPECT_EQ(tables->columns(0), "name");
  bool found = false;
  for (const auto& row : tables->rows()) {
    if (row.values(0).text() != "Order Items") continue;
    found = true;
    EXPECT_EQ(row.values(1).text(), "item id");
    EXPECT_EQ(row.values(3).integer(), 4);
    EXPECT_EQ(row.values(5).integer(), 500);
  }
  EXPECT_TRUE(found);

  EXPECT_TRUE(Execute("CREATE TABLE IF NOT EXISTS \"order items\" (x INTEGER PRIMARY KEY)").ok());
  ExpectError(Execute("CREATE TABLE \"Order Items\" (x INTEGER PRIMARY KEY)"),
              grpc::StatusCode::ALREADY_EXISTS, "TABLE_ALREADY_EXISTS");
  v1::CreateTableRequest again;
  again.set_sql("CREATE TABLE \"Order Items\" (x INTEGER PRIMARY KEY)");
  again.set_if_not_exists(true);
  v1::CreateTableResponse response;
  ASSERT_TRUE(Call(&v1::TableOps::Stub::CreateTable, again, &response).ok());
  EXPECT_FALSE(response.created());
  EXPECT_EQ(response.table().num_shards(), 4);

  // The CHECK survived the rewrite: the node itself refuses qty <= 0.
  auto db = Database::Open(cluster_->node_database(0));
  ASSERT_TRUE(db.ok());
  EXPECT_FALSE((*db)->Exec("INSERT INTO \"Order Items\" VALUES ('a', 0, 0)").ok());
}

TEST_F(TableOpsIntegrationTest, CreateErrors) {
  ExpectError(Execute("CREATE TABLE nokey (a INTEGER, b TEXT)"), grpc::StatusCode::INVALID_ARGUMENT,
              "SQL_SYNTAX");
  ExpectError(Execute("CREATE TABLE hidden (id INTEGER PRIMARY KEY, _VirtualShard INTEGER)"),
              grpc::StatusCode::INVALID_ARGUMENT, "SQL_SYNTAX");
  ExpectError(Execute("CREATE TABLE broken (id INTEGER PRIMARY KEY,"),
              grpc::StatusCode::INVALID_ARGUMENT, "SQL_SYNTAX");
  ExpectError(Execute("CREATE TABLE big (id INTEGER PRIMARY KEY) /* SHARDS=257 */"),
              grpc::StatusCode::INVALID_ARGUMENT, "INVALID_SHARD_COUNT");
  v1::CreateTableRequest request;
  request.set_sql("CREATE TABLE sized (id INTEGER PRIMARY KEY)");
  request.set_block_size(10001);
  v1::CreateTableResponse response;
  ExpectError(Call(&v1::TableOps::Stub::CreateTable, request, &response),
              grpc::StatusCode::INVALID_ARGUMENT, "INVALID_BLOCK_SIZE");
  request.set_block_size(0);
  request.set_num_shards(-1);
  ExpectError(Call(&v1::TableOps::Stub::CreateTable, request, &response),
              grpc::StatusCode::INVALID_ARGUMENT, "INVALID_SHARD_COUNT");
  request.set_num_shards(2);
  request.set_shard_key("nope");
  ExpectError(Call(&v1::TableOps::Stub::CreateTable, request, &response),
              grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT");
  // None of these left anything behind.
  for (const char* name : {"nokey", "hidden", "broken", "big", "sized"}) {
    for (int i = 0; i < cluster_->node_count(); ++i) {
      EXPECT_FALSE(PhysicalTableExists(i, name)) << name << " on node " << i;
    }
  }
  ExpectError(Execute("CREATE TABLE t1 (id INTEGER PRIMARY KEY); DROP TABLE t1"),
              grpc::StatusCode::INVALID_ARGUMENT, "SQL_SYNTAX");
  ExpectError(Execute(""), grpc::StatusCode::INVALID_ARGUMENT, "SQL_SYNTAX");
}

TEST_F(TableOpsIntegrationTest, DescribeThroughSqlHasFourSets) {
  ASSERT_TRUE(Execute("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT NOT NULL "
                      "DEFAULT 'none', age INTEGER) /* SHARDS=3 */")
                  .ok());
  v1::ExecuteResponse response;
  ASSERT_TRUE(Execute("DESCRIBE TABLE people", &response).ok());
  ASSERT_EQ(response.result_sets_size(), 4);
  EXPECT_EQ(response.result_sets(0).name(), "TABLE_INFO");
  EXPECT_EQ(response.result_sets(1).name(), "SHARDS");
  EXPECT_EQ(response.result_sets(2).name(), "INDEXES");
  EXPECT_EQ(response.result_sets(3).name(), "COLUMNS");
  const auto& info = response.result_sets(0);
  ASSERT_EQ(info.rows_size(), 1);
  EXPECT_EQ(info.columns(1), "primary_key");
  EXPECT_EQ(info.rows(0).values(1).text(), "id");
  EXPECT_EQ(info.rows(0).values(4).integer(), 3);
  EXPECT_EQ(response.result_sets(1).rows_size(), 3);
  const auto& columns = response.result_sets(3);
  ASSERT_EQ(columns.rows_size(), 3);
  EXPECT_EQ(columns.rows(1).values(0).text(), "email");
  EXPECT_EQ(columns.rows(1).values(2).integer(), 1);
  EXPECT_EQ(columns.rows(1).values(3).text(), "'none'");
  EXPECT_EQ(columns.rows(0).values(4).integer(), 1);
  for (const auto& row : columns.rows()) EXPECT_NE(row.values(0).text(), "_virtualShard");

  v1::ExecuteResponse same;
  ASSERT_TRUE(Execute("describe PEOPLE", &same).ok());
  EXPECT_EQ(same.result_sets_size(), 4);
  ExpectError(Execute("DESCRIBE nosuch"), grpc::StatusCode::NOT_FOUND, "TABLE_NOT_FOUND");
}

TEST_F(TableOpsIntegrationTest, StatsCountEveryShardAndReportDeadNodes) {
  v1::CreateTableRequest request;
  request.set_sql("CREATE TABLE counted (id INTEGER PRIMARY KEY, v TEXT)");
  request.set_num_shards(6);
  v1::CreateTableResponse created;
  ASSERT_TRUE(Call(&v1::TableOps::Stub::CreateTable, request, &created).ok());
  v1::DescribeTableRequest describe;
  describe.set_table("counted");
  v1::DescribeTableResponse described;
  ASSERT_TRUE(Call(&v1::TableOps::Stub::DescribeTable, describe, &described).ok());
  // Shard s gets s+1 rows, written into the node that hosts it.
  int64_t expected_total = 0;
  for (const auto& shard : described.shards()) {
    int node = NodeOfShard("counted", shard.shard_id());
    for (int r = 0; r <= shard.shard_id(); ++r) {
      InsertDirect(node,
                   absl::StrCat("INSERT INTO counted (id, v, _virtualShard) VALUES (",
                                shard.shard_id() * 100 + r, ", 'x', ", shard.shard_id(), ")"));
      ++expected_total;
    }
  }
  v1::GetTableStatsRequest stats_request;
  stats_request.set_table("counted");
  v1::GetTableStatsResponse stats;
  ASSERT_TRUE(Call(&v1::TableOps::Stub::GetTableStats, stats_request, &stats).ok());
  EXPECT_EQ(stats.total_rows(), expected_total);
  EXPECT_EQ(stats.total_shards(), 6);
  EXPECT_DOUBLE_EQ(stats.avg_rows_per_shard(), expected_total / 6.0);
  ASSERT_EQ(stats.shards_size(), 6);
  for (const auto& shard : stats.shards()) {
    EXPECT_EQ(shard.row_count(), shard.shard_id() + 1);
    EXPECT_EQ(shard.status(), "active");
  }

  v1::ExecuteResponse sql_stats;
  ASSERT_TRUE(Execute("SELECT * FROM TABLE_STATS('counted')", &sql_stats).ok());
  ASSERT_NE(Set(sql_stats, "TABLE_STATS"), nullptr);
  ASSERT_NE(Set(sql_stats, "SHARD_STATS"), nullptr);
  EXPECT_EQ(Set(sql_stats, "TABLE_STATS")->rows(0).values(1).integer(), expected_total);
  EXPECT_EQ(Set(sql_stats, "SHARD_STATS")->rows_size(), 6);

  // Node 3 down: its shards say "error"; the others still count.
  ASSERT_TRUE(cluster_->KillNode(2, SIGKILL).ok());
  v1::GetTableStatsResponse partial;
  ASSERT_TRUE(Call(&v1::TableOps::Stub::GetTableStats, stats_request, &partial).ok());
  int64_t alive_total = 0;
  int errors = 0;
  for (const auto& shard : partial.shards()) {
    if (shard.node_id() == "node-3") {
      EXPECT_EQ(shard.status(), "error");
      EXPECT_NE(shard.error().find("node-3"), std::string::npos) << shard.error();
      ++errors;
    } else {
      EXPECT_EQ(shard.status(), "active");
      alive_total += shard.row_count();
    }
  }
  EXPECT_EQ(errors, 2);
  EXPECT_EQ(partial.total_rows(), alive_total);
  ASSERT_TRUE(cluster_->RestartNode(2).ok());
  v1::GetTableStatsResponse healed;
  for (int attempt = 0; attempt < 50; ++attempt) {
    ASSERT_TRUE(Call(&v1::TableOps::Stub::GetTableStats, stats_request, &healed).ok());
    if (healed.total_rows() == expected_total) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(healed.total_rows(), expected_total);
  for (const auto& shard : healed.shards()) EXPECT_EQ(shard.status(), "active");
  ExpectError(Execute("SELECT * FROM TABLE_STATS('nosuch')"), grpc::StatusCode::NOT_FOUND,
              "TABLE_NOT_FOUND");
}

TEST_F(TableOpsIntegrationTest, RenameMovesThePhysicalTablesOnEveryNode) {
  ASSERT_TRUE(Execute("CREATE TABLE old_name (id INTEGER PRIMARY KEY) /* SHARDS=3 */").ok());
  InsertDirect(NodeOfShard("old_name", 0),
               "INSERT INTO old_name (id, _virtualShard) VALUES (7, 0)");
  ASSERT_TRUE(Execute("ALTER TABLE old_name RENAME TO new_name").ok());
  for (int i = 0; i < cluster_->node_count(); ++i) {
    EXPECT_FALSE(PhysicalTableExists(i, "old_name"));
    EXPECT_TRUE(PhysicalTableExists(i, "new_name"));
  }
  ExpectError(Execute("DESCRIBE old_name"), grpc::StatusCode::NOT_FOUND, "TABLE_NOT_FOUND");
  v1::GetTableStatsRequest stats_request;
  stats_request.set_table("new_name");
  v1::GetTableStatsResponse stats;
  ASSERT_TRUE(Call(&v1::TableOps::Stub::GetTableStats, stats_request, &stats).ok());
  EXPECT_EQ(stats.total_rows(), 1) << "rows follow a rename; nothing is copied";

  v1::RenameTableRequest rename;
  rename.set_table("new_name");
  rename.set_new_name("third_name");
  v1::RenameTableResponse renamed;
  ASSERT_TRUE(Call(&v1::TableOps::Stub::RenameTable, rename, &renamed).ok());
  EXPECT_EQ(renamed.table().name(), "third_name");
  EXPECT_EQ(renamed.table().num_shards(), 3);

  ASSERT_TRUE(Execute("CREATE TABLE taken (id INTEGER PRIMARY KEY)").ok());
  ExpectError(Execute("ALTER TABLE third_name RENAME TO TAKEN"), grpc::StatusCode::ALREADY_EXISTS,
              "TABLE_ALREADY_EXISTS");
  ExpectError(Execute("ALTER TABLE ghost RENAME TO spirit"), grpc::StatusCode::NOT_FOUND,
              "TABLE_NOT_FOUND");
  rename.set_table("third_name");
  rename.set_new_name("sqlite_master2");
  ExpectError(Call(&v1::TableOps::Stub::RenameTable, rename, &renamed),
              grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT");
}

TEST_F(TableOpsIntegrationTest, BlockSize) {
  ASSERT_TRUE(Execute("CREATE TABLE blocks (id INTEGER PRIMARY KEY)").ok());
  ASSERT_TRUE(Execute("ALTER TABLE blocks MODIFY BLOCK_SIZE 1000").ok());
  v1::DescribeTableRequest describe;
  describe.set_table("blocks");
  v1::DescribeTableResponse described;
  ASSERT_TRUE(Call(&v1::TableOps::Stub::DescribeTable, describe, &described).ok());
  EXPECT_EQ(described.table().block_size(), 1000);
  ExpectError(Execute("ALTER TABLE blocks MODIFY BLOCK_SIZE 0"), grpc::StatusCode::INVALID_ARGUMENT,
              "INVALID_BLOCK_SIZE");
  ExpectError(Execute("ALTER TABLE blocks MODIFY BLOCK_SIZE 10001"),
              grpc::StatusCode::INVALID_ARGUMENT, "INVALID_BLOCK_SIZE");
  v1::SetBlockSizeRequest set;
  set.set_table("blocks");
  set.set_block_size(10000);
  v1::SetBlockSizeResponse response;
  ASSERT_TRUE(Call(&v1::TableOps::Stub::SetBlockSize, set, &response).ok());
  EXPECT_EQ(response.table().block_size(), 10000);
  EXPECT_GE(response.table().updated_at_ms(), response.table().created_at_ms());
  set.set_table("nosuch");
  ExpectError(Call(&v1::TableOps::Stub::SetBlockSize, set, &response), grpc::StatusCode::NOT_FOUND,
              "TABLE_NOT_FOUND");
}

TEST_F(TableOpsIntegrationTest, UnsupportedAlterationsSaySo) {
  ASSERT_TRUE(Execute("CREATE TABLE fixed (id INTEGER PRIMARY KEY, a TEXT)").ok());
  for (const char* sql : {"ALTER TABLE fixed ADD COLUMN b TEXT", "ALTER TABLE fixed DROP COLUMN a",
                          "ALTER TABLE fixed RENAME COLUMN a TO b"}) {
    grpc::Status status = Execute(sql);
    ExpectError(status, grpc::StatusCode::UNIMPLEMENTED, "UNSUPPORTED_STATEMENT");
    EXPECT_NE(status.error_message().find("RENAME TO"), std::string::npos)
        << "the message says what is supported: " << status.error_message();
  }
}

TEST_F(TableOpsIntegrationTest, DropRemovesEverything) {
  ASSERT_TRUE(Execute("CREATE TABLE doomed (id INTEGER PRIMARY KEY) /* SHARDS=3 */").ok());
  ASSERT_TRUE(Execute("DROP TABLE doomed").ok());
  for (int i = 0; i < cluster_->node_count(); ++i) EXPECT_FALSE(PhysicalTableExists(i, "doomed"));
  ExpectError(Execute("DROP TABLE doomed"), grpc::StatusCode::NOT_FOUND, "TABLE_NOT_FOUND");
  EXPECT_TRUE(Execute("DROP TABLE IF EXISTS doomed").ok());
  v1::DropTableRequest drop;
  drop.set_table("doomed");
  drop.set_if_exists(true);
  v1::DropTableResponse dropped;
  ASSERT_TRUE(Call(&v1::TableOps::Stub::DropTable, drop, &dropped).ok());
  EXPECT_FALSE(dropped.dropped());
  // The name is free again, with a different shape.
  ASSERT_TRUE(Execute("CREATE TABLE doomed (k TEXT PRIMARY KEY, v BLOB)").ok());
  EXPECT_EQ(PhysicalColumns(0, "doomed").size(), 3u);
  drop.set_if_exists(false);
  ASSERT_TRUE(Call(&v1::TableOps::Stub::DropTable, drop, &dropped).ok());
  EXPECT_TRUE(dropped.dropped());
}

TEST_F(TableOpsIntegrationTest, DeadNodeRefusesDropAndRenameWithoutChangingAnything) {
  ASSERT_TRUE(Execute("CREATE TABLE steady (id INTEGER PRIMARY KEY) /* SHARDS=3 */").ok());
  ASSERT_TRUE(cluster_->KillNode(1, SIGKILL).ok());
  ExpectError(Execute("DROP TABLE steady"), grpc::StatusCode::UNAVAILABLE, "STORAGE_UNAVAILABLE");
  ExpectError(Execute("ALTER TABLE steady RENAME TO moved"), grpc::StatusCode::UNAVAILABLE,
              "STORAGE_UNAVAILABLE");
  ASSERT_TRUE(cluster_->RestartNode(1).ok());
  for (int i = 0; i < cluster_->node_count(); ++i) EXPECT_TRUE(PhysicalTableExists(i, "steady"));
  v1::ExecuteResponse described;
  ASSERT_TRUE(Execute("DESCRIBE steady", &described).ok());
  ASSERT_TRUE(ExecuteEventually("DROP TABLE steady").ok());
}

TEST_F(TableOpsIntegrationTest, NodeKilledDuringCreateLeavesNothingAndRetryConverges) {
  // Freeze node 2 so the create is in flight on it, then kill it.
  cluster_->node_process(1)->Freeze();
  auto create = std::async(std::launch::async, [] {
    return Execute("CREATE TABLE fragile (id INTEGER PRIMARY KEY, v TEXT) /* SHARDS=3 */");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(cluster_->KillNode(1, SIGKILL).ok());
  grpc::Status status = create.get();
  ExpectError(status, grpc::StatusCode::UNAVAILABLE, "STORAGE_UNAVAILABLE");
  EXPECT_NE(status.error_message().find("node-2"), std::string::npos) << status.error_message();
  ExpectError(Execute("DESCRIBE fragile"), grpc::StatusCode::NOT_FOUND, "TABLE_NOT_FOUND");
  EXPECT_FALSE(PhysicalTableExists(0, "fragile")) << "rolled back on the nodes that answered";
  EXPECT_FALSE(PhysicalTableExists(2, "fragile"));
  // While the node is away, a retry fails the same clean way.
  ExpectError(Execute("CREATE TABLE fragile (id INTEGER PRIMARY KEY, v TEXT) /* SHARDS=3 */"),
              grpc::StatusCode::UNAVAILABLE, "STORAGE_UNAVAILABLE");

  ASSERT_TRUE(cluster_->RestartNode(1).ok());
  grpc::Status retried =
      ExecuteEventually("CREATE TABLE fragile (id INTEGER PRIMARY KEY, v TEXT) /* SHARDS=3 */");
  ASSERT_TRUE(retried.ok()) << retried.error_message();
  for (int i = 0; i < cluster_->node_count(); ++i) {
    EXPECT_EQ(PhysicalColumns(i, "fragile").size(), 3u) << "node " << i;
  }
}

TEST_F(TableOpsIntegrationTest, ConductorKilledMidCreateRollsBackOnRestart) {
  cluster_->node_process(2)->Freeze();
  auto create = std::async(std::launch::async, [] {
    return Execute("CREATE TABLE orphan (id INTEGER PRIMARY KEY) /* SHARDS=3 */");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(cluster_->KillConductor(SIGKILL).ok());
  create.get();
  cluster_->node_process(2)->Thaw();
  // Let the thawed node finish whatever the dead conductor had sent it.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(cluster_->RestartConductor().ok());
  ExpectError(Execute("DESCRIBE orphan"), grpc::StatusCode::NOT_FOUND, "TABLE_NOT_FOUND");
  // The reconciler drops the half-created physical tables.
  bool clean = false;
  for (int attempt = 0; attempt < 100 && !clean; ++attempt) {
    clean = true;
    for (int i = 0; i < cluster_->node_count(); ++i) clean &= !PhysicalTableExists(i, "orphan");
    if (!clean) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(clean);
  ASSERT_TRUE(Execute("CREATE TABLE orphan (id INTEGER PRIMARY KEY) /* SHARDS=3 */").ok());
}

TEST_F(TableOpsIntegrationTest, TopologySurvivesConductorRestart) {
  ASSERT_TRUE(
      Execute("CREATE TABLE durable (id INTEGER PRIMARY KEY, name TEXT) /* SHARDS=5 */").ok());
  ASSERT_TRUE(Execute("ALTER TABLE durable MODIFY BLOCK_SIZE 77").ok());
  v1::DescribeTableRequest describe;
  describe.set_table("durable");
  v1::DescribeTableResponse before;
  ASSERT_TRUE(Call(&v1::TableOps::Stub::DescribeTable, describe, &before).ok());
  v1::ListTablesResponse tables_before;
  ASSERT_TRUE(Call(&v1::TableOps::Stub::ListTables, v1::ListTablesRequest(), &tables_before).ok());

  ASSERT_TRUE(cluster_->KillConductor(SIGTERM).ok());
  EXPECT_EQ(cluster_->conductor_process()->running(), false);
  ASSERT_TRUE(cluster_->RestartConductor().ok());

  v1::DescribeTableResponse after;
  ASSERT_TRUE(Call(&v1::TableOps::Stub::DescribeTable, describe, &after).ok());
  EXPECT_EQ(after.SerializeAsString(), before.SerializeAsString());
  v1::ListTablesResponse tables_after;
  ASSERT_TRUE(Call(&v1::TableOps::Stub::ListTables, v1::ListTablesRequest(), &tables_after).ok());
  EXPECT_EQ(tables_after.SerializeAsString(), tables_before.SerializeAsString());
}

TEST(TableOpsGrowthTest, ANodeAddedLaterGetsTheExistingTables) {
  auto cluster = TestCluster::Start({.storage_nodes = 2});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto execute = [&](const std::string& sql) {
    grpc::ClientContext context;
    v1::ExecuteRequest request;
    request.set_sql(sql);
    v1::ExecuteResponse response;
    return (*cluster)->ops().Execute(&context, request, &response);
  };
  ASSERT_TRUE(execute("CREATE TABLE early (id INTEGER PRIMARY KEY, v TEXT) /* SHARDS=2 */").ok());
  ASSERT_TRUE(execute("ALTER TABLE early RENAME TO renamed").ok());
  ASSERT_TRUE((*cluster)->AddNodeAndRestartConductor().ok());
  DatabaseOptions options;
  options.read_only = true;
  auto db = Database::Open((*cluster)->node_database(2), options);
  ASSERT_TRUE(db.ok());
  auto columns = (*db)->Prepare("SELECT count(*) FROM pragma_table_info('renamed')");
  ASSERT_TRUE(columns.ok());
  ASSERT_TRUE(*columns->Step());
  EXPECT_EQ(columns->ColumnInt64(0), 3) << "the new node has the table under its current name";
  grpc::Status renamed = execute("ALTER TABLE renamed RENAME TO final");
  EXPECT_TRUE(renamed.ok()) << renamed.error_message();
  grpc::Status dropped = execute("DROP TABLE final");
  EXPECT_TRUE(dropped.ok()) << dropped.error_message();
}

TEST_F(TableOpsIntegrationTest, LaterCapabilitiesAnswer) {
  ASSERT_TRUE(Execute("CREATE TABLE later (id INTEGER PRIMARY KEY)").ok());
  // No queue worker runs here: the reshard starts and stays copying, and
  // blocks what it must (tests/reshard_integration_test.cc runs them).
  v1::ExecuteResponse started;
  ASSERT_TRUE(Execute("PRAGMA reshardTable('later', 2)", &started).ok());
  ASSERT_NE(Set(started, "RESHARD"), nullptr);
  EXPECT_EQ(Set(started, "RESHARD")->rows(0).values(1).text(), "started");
  ExpectError(Execute("DROP TABLE later"), grpc::StatusCode::FAILED_PRECONDITION,
              "RESHARD_IN_PROGRESS");
  ExpectError(Execute("ALTER TABLE later RENAME TO later2"), grpc::StatusCode::FAILED_PRECONDITION,
              "RESHARD_IN_PROGRESS");
  ExpectError(Execute("VACUUM"), grpc::StatusCode::UNIMPLEMENTED, "UNSUPPORTED_STATEMENT");
  v1::ExecuteResponse indexes;
  ASSERT_TRUE(Execute("SHOW INDEXES FROM later", &indexes).ok());
  ASSERT_NE(Set(indexes, "INDEXES"), nullptr);
  EXPECT_EQ(Set(indexes, "INDEXES")->rows_size(), 0);
  ExpectError(Execute("SHOW INDEXES FROM ghost"), grpc::StatusCode::NOT_FOUND, "TABLE_NOT_FOUND");
  v1::ReshardTableRequest reshard;
  reshard.set_table("later");
  reshard.set_new_shard_count(2);
  v1::ReshardTableResponse resharded;
  ExpectError(Call(&v1::TableOps::Stub::ReshardTable, reshard, &resharded),
              grpc::StatusCode::FAILED_PRECONDITION, "RESHARD_IN_PROGRESS");
  // Virtual indexes exist now (tests/index_integration_test.cc covers
  // them); without a queue worker the index stays building.
  v1::CreateIndexRequest index;
  index.set_name("i");
  index.set_table("later");
  index.add_columns("id");
  v1::CreateIndexResponse indexed;
  ASSERT_TRUE(Call(&v1::TableOps::Stub::CreateIndex, index, &indexed).ok());
  EXPECT_TRUE(indexed.created());
  EXPECT_EQ(indexed.index().status(), "building");
  ASSERT_TRUE(Execute("SHOW INDEXES FROM later", &indexes).ok());
  ASSERT_EQ(Set(indexes, "INDEXES")->rows_size(), 1);
  EXPECT_EQ(Set(indexes, "INDEXES")->rows(0).values(0).text(), "i");
}

TEST_F(TableOpsIntegrationTest, WaitingForAnotherSchemaChangeRespectsTheDeadline) {
  ASSERT_TRUE(Execute("CREATE TABLE waiter (id INTEGER PRIMARY KEY)").ok());
  // A CREATE stuck on a frozen node holds the schema lock.
  cluster_->node_process(0)->Freeze();
  auto stuck = std::async(std::launch::async, [] {
    return Execute("CREATE TABLE blocker (id INTEGER PRIMARY KEY) /* SHARDS=3 */");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(700));
  v1::SetBlockSizeRequest set;
  set.set_table("waiter");
  set.set_block_size(77);
  v1::SetBlockSizeResponse response;
  grpc::Status status = cluster_->ops().SetBlockSize(&context, set, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  cluster_->node_process(0)->Thaw();
  stuck.get();
  // The change that timed out was not applied later either.
  v1::DescribeTableRequest describe;
  describe.set_table("waiter");
  v1::DescribeTableResponse described;
  ASSERT_TRUE(Call(&v1::TableOps::Stub::DescribeTable, describe, &described).ok());
  EXPECT_EQ(described.table().block_size(), 500);
  ExecuteEventually("DROP TABLE IF EXISTS blocker");
}

TEST_F(TableOpsIntegrationTest, RenameThatOnlyChangesCase) {
  ASSERT_TRUE(Execute("CREATE TABLE Casey (id INTEGER PRIMARY KEY) /* SHARDS=3 */").ok());
  grpc::Status renamed = Execute("ALTER TABLE Casey RENAME TO casey");
  ASSERT_TRUE(renamed.ok()) << renamed.error_message();
  v1::ExecuteResponse show;
  ASSERT_TRUE(Execute("SHOW TABLES", &show).ok());
  bool found = false;
  for (const auto& row : Set(show, "TABLES")->rows()) found |= row.values(0).text() == "casey";
  EXPECT_TRUE(found) << "the new spelling is shown";
  ASSERT_TRUE(Execute("ALTER TABLE casey RENAME TO other_case").ok()) << "and it is not stuck";
  for (int i = 0; i < cluster_->node_count(); ++i) {
    EXPECT_TRUE(PhysicalTableExists(i, "other_case"));
  }
}

}  // namespace
}  // namespace conductor
