// The routed data path end to end: INSERT / SELECT / UPDATE / DELETE through
// Execute on a real conductor and three real storage nodes.
#include <signal.h>

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

class DataPathTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cluster = TestCluster::Start({});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
    ASSERT_TRUE(Run("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                    "score REAL, avatar BLOB) /* SHARDS=6 */")
                    .ok());
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  static grpc::Status Run(const std::string& sql, std::vector<Value> params = {},
                          v1::ExecuteResponse* response = nullptr, int deadline_ms = 30000) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
    v1::ExecuteRequest request;
    request.set_sql(sql);
    for (auto& p : params) *request.add_params() = p;
    v1::ExecuteResponse ignored;
    return cluster_->ops().Execute(&context, request, response ? response : &ignored);
  }

  static v1::ResultSet Query(const std::string& sql, std::vector<Value> params = {}) {
    v1::ExecuteResponse response;
    grpc::Status status = Run(sql, params, &response);
    EXPECT_TRUE(status.ok()) << sql << ": " << status.error_message();
    if (response.result_sets_size() == 0) return v1::ResultSet();
    return response.result_sets(0);
  }

  static void ExpectError(const grpc::Status& status, grpc::StatusCode code,
                          const std::string& reason) {
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_EQ(ErrorReason(FromGrpcStatus(status)), reason) << status.error_message();
  }

  static TestCluster* cluster_;
};

TestCluster* DataPathTest::cluster_ = nullptr;

TEST_F(DataPathTest, ValuesKeepTheirStorageClassesThroughTheCluster) {
  ASSERT_TRUE(Run("INSERT INTO users (id, name, score, avatar) VALUES (?, ?, ?, ?), "
                  "(?, ?, ?, ?)",
                  {IntegerValue(INT64_MAX), TextValue("Zoë"), RealValue(0.1),
                   BlobValue(std::string("\0\xff", 2)), IntegerValue(INT64_MIN), TextValue("min"),
                   NullValue(), NullValue()})
                  .ok());
  v1::ResultSet max = Query("SELECT * FROM users WHERE id = ?", {IntegerValue(INT64_MAX)});
  ASSERT_EQ(max.rows_size(), 1);
  ASSERT_EQ(max.columns_size(), 4) << "SELECT * never shows _virtualShard";
  EXPECT_EQ(max.columns(0), "id");
  EXPECT_EQ(max.rows(0).values(0).integer(), INT64_MAX);
  EXPECT_EQ(max.rows(0).values(1).text(), "Zoë");
  EXPECT_EQ(max.rows(0).values(2).real(), 0.1);
  EXPECT_EQ(max.rows(0).values(3).blob(), std::string("\0\xff", 2));
  v1::ResultSet min =
      Query("SELECT score, avatar FROM users WHERE id = ?", {IntegerValue(INT64_MIN)});
  ASSERT_EQ(min.rows_size(), 1);
  EXPECT_EQ(min.rows(0).values(0).kind_case(), Value::kNullValue);
  ASSERT_TRUE(Run("DELETE FROM users WHERE id IN (?, ?)",
                  {IntegerValue(INT64_MAX), IntegerValue(INT64_MIN)})
                  .ok());
}

TEST_F(DataPathTest, RowsLandOnTheirShardAndEveryQueryShapeWorks) {
  std::string sql = "INSERT INTO users (id, name, score) VALUES ";
  for (int i = 1; i <= 60; ++i) {
    absl::StrAppend(&sql, i == 1 ? "" : ", ", "(", i, ", 'user", i % 7, "', ", i * 1.5, ")");
  }
  v1::ExecuteResponse inserted;
  ASSERT_TRUE(Run(sql, {}, &inserted).ok());
  EXPECT_EQ(inserted.rows_affected(), 60);

  // Every row is on the node that hosts its shard, and on no other.
  int64_t physical = 0;
  for (int n = 0; n < cluster_->node_count(); ++n) {
    DatabaseOptions options;
    options.read_only = true;
    auto db = Database::Open(cluster_->node_database(n), options);
    ASSERT_TRUE(db.ok());
    auto count = (*db)->Prepare("SELECT count(*) FROM users WHERE id BETWEEN 1 AND 60");
    ASSERT_TRUE(count.ok());
    ASSERT_TRUE(*count->Step());
    physical += count->ColumnInt64(0);
  }
  EXPECT_EQ(physical, 60) << "each row is stored exactly once";

  v1::ResultSet one = Query("SELECT name FROM users WHERE id = 7");
  ASSERT_EQ(one.rows_size(), 1);
  EXPECT_EQ(one.rows(0).values(0).text(), "user0");
  EXPECT_EQ(Query("SELECT count(*) FROM users WHERE id <= 60").rows(0).values(0).integer(), 60);
  v1::ResultSet top = Query(
      "SELECT id, score FROM users WHERE id <= 60 ORDER BY score DESC LIMIT 3 "
      "OFFSET 1");
  ASSERT_EQ(top.rows_size(), 3);
  EXPECT_EQ(top.rows(0).values(0).integer(), 59);
  EXPECT_EQ(top.rows(2).values(0).integer(), 57);
  v1::ResultSet groups = Query(
      "SELECT name, count(*) AS n, avg(score) FROM users WHERE id <= 60 "
      "GROUP BY name HAVING n > 8 ORDER BY name");
  ASSERT_EQ(groups.rows_size(), 4);  // user1..user4 have 9 rows each; user0,5,6 have 8
  EXPECT_EQ(groups.columns(1), "n");
  EXPECT_EQ(groups.columns(2), "avg(score)");
  EXPECT_EQ(groups.rows(0).values(0).text(), "user1");
  EXPECT_EQ(groups.rows(0).values(1).integer(), 9);
  // avg over ids 1,8,…,57 of id*1.5 = 1.5 * 29 = 43.5, from sums and counts.
  EXPECT_DOUBLE_EQ(groups.rows(0).values(2).real(), 43.5);
  v1::ResultSet distinct = Query("SELECT DISTINCT name FROM users WHERE id <= 60 ORDER BY 1");
  EXPECT_EQ(distinct.rows_size(), 7);

  v1::ExecuteResponse updated;
  ASSERT_TRUE(
      Run("UPDATE users SET score = -1 WHERE name = 'user3' RETURNING id", {}, &updated).ok());
  EXPECT_EQ(updated.rows_affected(), 9);
  ASSERT_EQ(updated.result_sets_size(), 1);
  EXPECT_EQ(updated.result_sets(0).rows_size(), 9);
  v1::ExecuteResponse deleted;
  ASSERT_TRUE(Run("DELETE FROM users WHERE score < 0", {}, &deleted).ok());
  EXPECT_EQ(deleted.rows_affected(), 9);
  EXPECT_EQ(Query("SELECT count(*) FROM users WHERE id <= 60").rows(0).values(0).integer(), 51);
}

TEST_F(DataPathTest, UpsertAndReplace) {
  ASSERT_TRUE(Run("INSERT INTO users (id, name) VALUES (1000, 'a')").ok());
  grpc::Status duplicate = Run("INSERT INTO users (id, name) VALUES (1000, 'b')");
  ExpectError(duplicate, grpc::StatusCode::ALREADY_EXISTS, "UNIQUE_VIOLATION");
  EXPECT_EQ(duplicate.error_message(), "UNIQUE constraint failed: users.id")
      << "the hidden column stays hidden in messages too";
  grpc::Status upsert =
      Run("INSERT INTO users (id, name) VALUES (1000, 'b') ON CONFLICT (id) DO UPDATE SET name = "
          "excluded.name || ?",
          {TextValue("!")});
  ASSERT_TRUE(upsert.ok()) << upsert.error_message();
  EXPECT_EQ(Query("SELECT name FROM users WHERE id = 1000").rows(0).values(0).text(), "b!");
  ASSERT_TRUE(Run("REPLACE INTO users (id, name) VALUES (1000, 'c')").ok());
  EXPECT_EQ(Query("SELECT name FROM users WHERE id = 1000").rows(0).values(0).text(), "c");
}

TEST_F(DataPathTest, ExplainShowsTheRoute) {
  v1::ResultSet point = Query("EXPLAIN SELECT * FROM users WHERE id = 5");
  EXPECT_EQ(point.name(), "EXPLAIN");
  ASSERT_EQ(point.rows_size(), 1);
  EXPECT_EQ(point.rows(0).values(0).text(), "shard_key");
  EXPECT_NE(point.rows(0).values(3).text().find("_virtualShard = ?"), std::string::npos);
  v1::ResultSet with_param =
      Query("EXPLAIN SELECT name FROM users WHERE id = ?", {IntegerValue(5)});
  ASSERT_EQ(with_param.rows_size(), 1);
  EXPECT_EQ(with_param.rows(0).values(1).integer(), point.rows(0).values(1).integer());
  v1::ResultSet scatter = Query("EXPLAIN SELECT * FROM users WHERE name = 'x'");
  ASSERT_EQ(scatter.rows_size(), 6);
  std::set<int64_t> shards;
  for (const auto& row : scatter.rows()) {
    EXPECT_EQ(row.values(0).text(), "scatter");
    shards.insert(row.values(1).integer());
  }
  EXPECT_EQ(shards.size(), 6u);
}

TEST_F(DataPathTest, ErrorsSayWhatIsWrong) {
  ExpectError(Run("INSERT INTO users (name) VALUES ('x')"), grpc::StatusCode::INVALID_ARGUMENT,
              "SHARD_KEY_REQUIRED");
  ExpectError(Run("UPDATE users SET id = 3 WHERE id = 2"), grpc::StatusCode::INVALID_ARGUMENT,
              "INVALID_ARGUMENT");
  grpc::Status unknown = Run("SELECT nope FROM users WHERE id = 1");
  ExpectError(unknown, grpc::StatusCode::INVALID_ARGUMENT, "SQL_ERROR");
  EXPECT_NE(unknown.error_message().find("no such column: nope"), std::string::npos)
      << unknown.error_message();
  ExpectError(Run("SELECT * FROM users JOIN users u2 ON users.id = u2.id"),
              grpc::StatusCode::UNIMPLEMENTED, "UNSUPPORTED_STATEMENT");
  ExpectError(Run("SELECT * FROM ghosts"), grpc::StatusCode::NOT_FOUND, "TABLE_NOT_FOUND");
  ExpectError(Run("SELECT * FROM users WHERE id = ?"), grpc::StatusCode::INVALID_ARGUMENT,
              "INVALID_ARGUMENT");
  ExpectError(Run("SELECT _virtualShard FROM users"), grpc::StatusCode::INVALID_ARGUMENT,
              "SQL_ERROR");
  ExpectError(Run("BEGIN"), grpc::StatusCode::UNIMPLEMENTED, "UNSUPPORTED_STATEMENT");
}

TEST_F(DataPathTest, SelectWithoutTableRunsLocally) {
  v1::ResultSet local = Query("SELECT 1 + 1 AS two, ?", {TextValue("x")});
  ASSERT_EQ(local.rows_size(), 1);
  EXPECT_EQ(local.rows(0).values(0).integer(), 2);
  EXPECT_EQ(local.columns(0), "two");
}

TEST_F(DataPathTest, ANodeDownFailsReadsNamingItAndNeverReturnsPartialRows) {
  ASSERT_TRUE(
      Run("INSERT INTO users (id, name) VALUES (2001, 'p'), (2002, 'q'), (2003, 'r')").ok());
  ASSERT_TRUE(cluster_->KillNode(2, SIGKILL).ok());
  grpc::Status status = Run("SELECT count(*) FROM users");
  ExpectError(status, grpc::StatusCode::UNAVAILABLE, "STORAGE_UNAVAILABLE");
  EXPECT_NE(status.error_message().find("node-3"), std::string::npos) << status.error_message();
  ASSERT_TRUE(cluster_->RestartNode(2).ok());
  grpc::Status healed;
  for (int i = 0; i < 50; ++i) {
    healed = Run("SELECT count(*) FROM users WHERE id > 2000");
    if (healed.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_TRUE(healed.ok()) << healed.error_message();
}

TEST_F(DataPathTest, AWriteOverSeveralNodesWithOneDownChangesNothing) {
  ASSERT_TRUE(Run("INSERT INTO users (id, name, score) VALUES (3001, 'w', 1), (3002, 'w', 1), "
                  "(3003, 'w', 1), (3004, 'w', 1), (3005, 'w', 1), (3006, 'w', 1)")
                  .ok());
  ASSERT_TRUE(cluster_->KillNode(1, SIGKILL).ok());
  ExpectError(Run("UPDATE users SET score = 2 WHERE name = 'w'"), grpc::StatusCode::UNAVAILABLE,
              "STORAGE_UNAVAILABLE");
  std::string insert = "INSERT INTO users (id, name) VALUES ";
  for (int i = 0; i < 30; ++i) absl::StrAppend(&insert, i ? ", " : "", "(", 3100 + i, ", 'v')");
  ExpectError(Run(insert), grpc::StatusCode::UNAVAILABLE, "STORAGE_UNAVAILABLE");
  ASSERT_TRUE(cluster_->RestartNode(1).ok());
  v1::ResultSet changed;
  for (int i = 0; i < 50; ++i) {
    v1::ExecuteResponse response;
    if (Run("SELECT count(*) FROM users WHERE score = 2 OR name = 'v'", {}, &response).ok()) {
      changed = response.result_sets(0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(changed.rows_size(), 1);
  EXPECT_EQ(changed.rows(0).values(0).integer(), 0) << "nothing was half applied";
}

TEST_F(DataPathTest, AMultiNodeInsertWithAnExistingKeyWritesNothing) {
  ASSERT_TRUE(Run("INSERT INTO users (id, name) VALUES (4000, 'old')").ok());
  std::string insert = "INSERT INTO users (id, name) VALUES ";
  for (int i = 1; i <= 20; ++i) absl::StrAppend(&insert, "(", 4000 + i, ", 'new'), ");
  absl::StrAppend(&insert, "(4000, 'dup')");
  grpc::Status status = Run(insert);
  ExpectError(status, grpc::StatusCode::ALREADY_EXISTS, "UNIQUE_VIOLATION");
  EXPECT_EQ(status.error_message(), "UNIQUE constraint failed: users.id");
  EXPECT_EQ(Query("SELECT count(*) FROM users WHERE name = 'new'").rows(0).values(0).integer(), 0);
  // A key repeated within the statement, and a value SQLite's own table refuses.
  ExpectError(Run("INSERT INTO users (id, name) VALUES (4100, 'a'), (4101, 'b'), (4100, 'c')"),
              grpc::StatusCode::ALREADY_EXISTS, "UNIQUE_VIOLATION");
  grpc::Status mismatch = Run("INSERT INTO users (id, name) VALUES ('abc', 'x')");
  EXPECT_EQ(mismatch.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << mismatch.error_message();
  EXPECT_EQ(mismatch.error_message(), "datatype mismatch");
  EXPECT_EQ(Query("SELECT count(*) FROM users WHERE id >= 4100 AND id < 4200")
                .rows(0)
                .values(0)
                .integer(),
            0);
}

TEST_F(DataPathTest, ReviewRegressions) {
  ASSERT_TRUE(Run("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT UNIQUE, g INTEGER, "
                  "nick TEXT COLLATE NOCASE) /* SHARDS=6 */")
                  .ok());
  // UNIQUE holds across shards (the table's UNIQUE virtual index; no queue
  // worker runs here, so it is still building and every shard is checked).
  int a = 1, b = 2;
  auto shard_of = [&](int id) {
    return Query("EXPLAIN SELECT * FROM people WHERE id = " + std::to_string(id))
        .rows(0)
        .values(1)
        .integer();
  };
  while (shard_of(b) == shard_of(a)) ++b;
  // (One statement may not repeat it: its rows are checked like one table.)
  ExpectError(Run(absl::StrCat("INSERT INTO people VALUES (", a, ", 'x@y', 5, 'bob'), (", b,
                               ", 'x@y', 5, 'Alice')")),
              grpc::StatusCode::ALREADY_EXISTS, "UNIQUE_VIOLATION");
  ASSERT_TRUE(Run(absl::StrCat("INSERT INTO people VALUES (", a, ", 'x@y', 5, 'bob')")).ok());
  ExpectError(Run(absl::StrCat("INSERT INTO people VALUES (", b, ", 'x@y', 5, 'Alice')")),
              grpc::StatusCode::ALREADY_EXISTS, "UNIQUE_VIOLATION");
  ASSERT_TRUE(Run(absl::StrCat("INSERT INTO people VALUES (", b,
                               ", 'w@y', 5, 'Alice'), (100, "
                               "'z', 6, 'carol')"))
                  .ok());
  EXPECT_EQ(Query("SELECT DISTINCT email FROM people ORDER BY 1").rows_size(), 3);
  // HAVING compares with the grouped column's affinity ('5' = 5 on INTEGER).
  v1::ResultSet having = Query("SELECT g, count(*) FROM people GROUP BY g HAVING g = '5'");
  ASSERT_EQ(having.rows_size(), 1);
  EXPECT_EQ(having.rows(0).values(1).integer(), 2);
  // CASE … AND … inside WHERE pins nothing: all three rows are considered.
  EXPECT_EQ(Query("SELECT count(*) FROM people WHERE CASE WHEN g = 6 AND id = 100 AND 1 THEN 0 "
                  "ELSE 1 END")
                .rows(0)
                .values(0)
                .integer(),
            2);
  // ORDER BY a position whose expression keeps the NOCASE collation.
  v1::ResultSet ordered = Query("SELECT +nick FROM people ORDER BY 1 LIMIT 2");
  ASSERT_EQ(ordered.rows_size(), 2);
  EXPECT_EQ(ordered.rows(0).values(0).text(), "Alice");
  EXPECT_EQ(ordered.rows(1).values(0).text(), "bob");
  v1::ResultSet parenthesised = Query("SELECT +nick FROM people ORDER BY (1) LIMIT 2");
  ASSERT_EQ(parenthesised.rows_size(), 2);
  EXPECT_EQ(parenthesised.rows(0).values(0).text(), "Alice") << "(1) is column 1, not a constant";
  // A trailing line comment cannot swallow the shard filter.
  v1::ExecuteResponse deleted;
  ASSERT_TRUE(Run("DELETE FROM people WHERE id = 100 -- bye", {}, &deleted).ok());
  EXPECT_EQ(deleted.rows_affected(), 1);
  ASSERT_TRUE(Run("DELETE FROM people -- purge everything", {}, &deleted).ok());
  EXPECT_EQ(deleted.rows_affected(), 2);
  // A NUL would make SQLite ignore the rest of the statement.
  static const char kWithNul[] = "SELECT * FROM people -- \0\n WHERE id = 1";
  ExpectError(Run(std::string(kWithNul, sizeof(kWithNul) - 1)), grpc::StatusCode::INVALID_ARGUMENT,
              "SQL_SYNTAX");
  // Nesting beyond 1000 levels is refused quickly rather than parsed.
  std::string deep =
      "SELECT * FROM people WHERE " + std::string(5000, '(') + "id = 1" + std::string(5000, ')');
  ExpectError(Run(deep), grpc::StatusCode::INVALID_ARGUMENT, "SQL_SYNTAX");
  // Longer than --max_sql_bytes (4 MiB by default; docs/data-path.md#limits).
  ExpectError(Run(std::string(5 << 20, ' ') + "SELECT 1"), grpc::StatusCode::INVALID_ARGUMENT,
              "REQUEST_TOO_LARGE");
}

// The client's deadline travels to the storage call: a write that reaches a
// node only after the deadline is not applied there.
TEST(DataPathDeadlineTest, TheClientDeadlineReachesTheStorageNode) {
  auto cluster = TestCluster::Start(
      {.storage_nodes = 1, .extra_conductor_flags = {"--storage_timeout_ms=60000"}});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto run = [&](const std::string& sql, int deadline_ms) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
    v1::ExecuteRequest request;
    request.set_sql(sql);
    v1::ExecuteResponse response;
    grpc::Status status = (*cluster)->ops().Execute(&context, request, &response);
    return std::make_pair(status, response);
  };
  ASSERT_TRUE(run("CREATE TABLE t (id INTEGER PRIMARY KEY)", 30000).first.ok());
  (*cluster)->node_process(0)->Freeze();
  auto [status, unused] = run("INSERT INTO t (id) VALUES (1)", 700);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  (*cluster)->node_process(0)->Thaw();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto [count_status, count] = run("SELECT count(*) FROM t", 30000);
  ASSERT_TRUE(count_status.ok()) << count_status.error_message();
  EXPECT_EQ(count.result_sets(0).rows(0).values(0).integer(), 0)
      << "the node received the write after its deadline and must not apply it";
}

// A node that does not answer within --storage_timeout_ms, while the client
// still has time, is unavailability (retry later), not the client's deadline.
TEST(DataPathDeadlineTest, AHungNodeIsUnavailable) {
  auto cluster = TestCluster::Start(
      {.storage_nodes = 1, .extra_conductor_flags = {"--storage_timeout_ms=500"}});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  grpc::ClientContext create_context;
  v1::ExecuteRequest create;
  create.set_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)");
  v1::ExecuteResponse ignored;
  ASSERT_TRUE((*cluster)->ops().Execute(&create_context, create, &ignored).ok());
  (*cluster)->node_process(0)->Freeze();
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::ExecuteRequest request;
  request.set_sql("SELECT * FROM t WHERE id = 1");
  grpc::Status status = (*cluster)->ops().Execute(&context, request, &ignored);
  (*cluster)->node_process(0)->Thaw();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_EQ(ErrorReason(FromGrpcStatus(status)), "STORAGE_UNAVAILABLE");
}

}  // namespace
}  // namespace conductor
