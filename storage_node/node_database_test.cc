// Drives NodeDatabase directly: what the gRPC edge cannot show (the exact
// status of an interrupted call) and opening unusable data directories.
#include "storage_node/node_database.h"

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/errors.h"
#include "common/sqlite.h"
#include "gtest/gtest.h"

namespace conductor {
namespace storage_node {
namespace {

using storage::v1::ExecuteBatchRequest;
using storage::v1::ExecuteBatchResponse;
using storage::v1::ScanShardRequest;
using storage::v1::ScanShardResponse;

constexpr char kEndlessQuery[] =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
    "SELECT count(*) FROM c WHERE x < 0 LIMIT 1";

std::string FreshDir(const std::string& name) {
  std::string dir = ::testing::TempDir() + "/node_database_test/" + name;
  std::filesystem::remove_all(dir);
  return dir;
}

ExecuteBatchRequest Batch(std::initializer_list<const char*> sqls, bool read_only = false) {
  ExecuteBatchRequest request;
  for (const char* sql : sqls) request.add_statements()->set_sql(sql);
  request.set_read_only(read_only);
  return request;
}

std::unique_ptr<NodeDatabase> OpenOrDie(const std::string& dir, int reader_connections = 2) {
  NodeDatabaseOptions options;
  options.data_dir = dir;
  options.reader_connections = reader_connections;
  auto database = NodeDatabase::Open(options);
  EXPECT_TRUE(database.ok()) << database.status();
  return database.ok() ? std::move(*database) : nullptr;
}

CallControl WithTimeout(absl::Duration timeout) {
  CallControl control;
  control.deadline = absl::Now() + timeout;
  return control;
}

TEST(NodeDatabaseTest, DeadlineInterruptsWriteBatchAndRollsBack) {
  auto database = OpenOrDie(FreshDir("deadline"));
  ASSERT_NE(database, nullptr);
  ExecuteBatchResponse response;
  ASSERT_TRUE(database->ExecuteBatch(Batch({"CREATE TABLE t (x)"}), {}, &response).ok());
  absl::Time start = absl::Now();
  absl::Status status = database->ExecuteBatch(Batch({"INSERT INTO t VALUES (1)", kEndlessQuery}),
                                               WithTimeout(absl::Milliseconds(200)), &response);
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_TRUE(absl::StartsWith(status.message(), "statement 2: deadline exceeded")) << status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(response.results_size(), 0);
  ASSERT_TRUE(database->ExecuteBatch(Batch({"SELECT count(*) FROM t"}, true), {}, &response).ok());
  EXPECT_EQ(response.results(0).rows(0).values(0).integer(), 0);
}

TEST(NodeDatabaseTest, CancellationInterruptsReadBatch) {
  auto database = OpenOrDie(FreshDir("cancel"));
  ASSERT_NE(database, nullptr);
  std::atomic<bool> cancelled{false};
  CallControl control;
  control.is_cancelled = [&cancelled] { return cancelled.load(); };
  std::thread canceller([&cancelled] {
    absl::SleepFor(absl::Milliseconds(200));
    cancelled = true;
  });
  ExecuteBatchResponse response;
  absl::Status status = database->ExecuteBatch(Batch({kEndlessQuery}, true), control, &response);
  canceller.join();
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
}

TEST(NodeDatabaseTest, WaitingForTheWriterHonoursTheDeadline) {
  auto database = OpenOrDie(FreshDir("writer_wait"));
  ASSERT_NE(database, nullptr);
  std::thread long_write([&database] {
    ExecuteBatchResponse response;
    absl::Status status =
        database->ExecuteBatch(Batch({kEndlessQuery}), WithTimeout(absl::Seconds(1)), &response);
    EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  });
  absl::SleepFor(absl::Milliseconds(100));
  ExecuteBatchResponse response;
  absl::Status waited =
      database->ExecuteBatch(Batch({"SELECT 1"}), WithTimeout(absl::Milliseconds(200)), &response);
  EXPECT_EQ(waited.code(), absl::StatusCode::kDeadlineExceeded) << waited;
  EXPECT_TRUE(absl::StrContains(waited.message(), "waiting")) << waited;
  // Readers are not held up by the writer.
  EXPECT_TRUE(
      database->ExecuteBatch(Batch({"SELECT 1"}, true), WithTimeout(absl::Seconds(1)), &response)
          .ok());
  long_write.join();
}

TEST(NodeDatabaseTest, RefusesUnusableDataDirs) {
  const std::string base = FreshDir("unusable");
  std::filesystem::create_directories(base);
  NodeDatabaseOptions options;

  options.data_dir = base + "/a_file";
  std::ofstream(options.data_dir) << "not a directory";
  auto file = NodeDatabase::Open(options);
  ASSERT_FALSE(file.ok());
  EXPECT_TRUE(absl::StrContains(file.status().message(), "not a directory")) << file.status();

  options.data_dir = base + "/a_file/below";
  EXPECT_FALSE(NodeDatabase::Open(options).ok());

  options.data_dir = base + "/corrupt";
  std::filesystem::create_directories(options.data_dir);
  std::ofstream(options.data_dir + "/storage.db") << std::string(8192, 'x');
  auto corrupt = NodeDatabase::Open(options);
  ASSERT_FALSE(corrupt.ok());
  EXPECT_TRUE(absl::StrContains(corrupt.status().message(), "storage.db")) << corrupt.status();

  options.data_dir = base + "/fine";
  options.reader_connections = 0;
  EXPECT_EQ(NodeDatabase::Open(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NodeDatabaseTest, CreatesMissingDataDirWithParents) {
  const std::string dir = FreshDir("created") + "/deep/er";
  auto database = OpenOrDie(dir);
  ASSERT_NE(database, nullptr);
  EXPECT_EQ(database->path(), dir + "/storage.db");
  EXPECT_TRUE(std::filesystem::exists(database->path()));
}

// ---------------------------------------------------------------------------
// ScanShard

// Runs one write statement and expects success.
void MustWrite(NodeDatabase& database, const std::string& sql, std::vector<Value> params = {}) {
  ExecuteBatchRequest request;
  auto* statement = request.add_statements();
  statement->set_sql(sql);
  for (Value& value : params) *statement->add_params() = std::move(value);
  ExecuteBatchResponse response;
  absl::Status status = database.ExecuteBatch(request, {}, &response);
  ASSERT_TRUE(status.ok()) << sql << ": " << status;
}

// One row or value, readable in failure messages and exact about storage
// classes.
std::string Render(const Row& row) { return row.ShortDebugString(); }
std::string Render(const Value& value) { return value.ShortDebugString(); }

std::vector<std::string> Render(const std::vector<Row>& rows) {
  std::vector<std::string> rendered;
  for (const Row& row : rows) rendered.push_back(Render(row));
  return rendered;
}

// The rows of one read_only query.
std::vector<Row> Query(NodeDatabase& database, const std::string& sql) {
  ExecuteBatchResponse response;
  absl::Status status = database.ExecuteBatch(Batch({sql.c_str()}, true), {}, &response);
  EXPECT_TRUE(status.ok()) << sql << ": " << status;
  if (!status.ok()) return {};
  return {response.results(0).rows().begin(), response.results(0).rows().end()};
}

struct Scanned {
  absl::Status status;
  std::vector<ScanShardResponse> blocks;

  std::vector<Row> rows() const {
    std::vector<Row> all;
    for (const auto& block : blocks)
      all.insert(all.end(), block.rows().begin(), block.rows().end());
    return all;
  }
};

Scanned Scan(NodeDatabase& database, const ScanShardRequest& request,
             const CallControl& control = {}) {
  Scanned scanned;
  scanned.status = database.ScanShard(request, control, [&scanned](const ScanShardResponse& block) {
    scanned.blocks.push_back(block);
    return true;
  });
  return scanned;
}

ScanShardRequest ScanOf(const std::string& table, int shard_id, std::vector<std::string> columns,
                        std::vector<std::string> key_columns, int block_size) {
  ScanShardRequest request;
  request.set_table(table);
  request.set_shard_id(shard_id);
  for (auto& column : columns) request.add_columns(std::move(column));
  for (auto& column : key_columns) request.add_key_columns(std::move(column));
  request.set_block_size(block_size);
  return request;
}

// Every block but the last is full and not done; the last is done.
void ExpectWellFormedBlocks(const Scanned& scanned, int block_size) {
  ASSERT_FALSE(scanned.blocks.empty());
  for (size_t i = 0; i < scanned.blocks.size(); ++i) {
    const ScanShardResponse& block = scanned.blocks[i];
    const bool last = i + 1 == scanned.blocks.size();
    EXPECT_EQ(block.done(), last) << "block " << i;
    if (last) {
      EXPECT_LE(block.rows_size(), block_size) << "block " << i;
    } else {
      EXPECT_EQ(block.rows_size(), block_size) << "block " << i;
    }
  }
}

// Table t: ids 1..3000 with a name, id % 3 as virtual shard (1000 rows each).
void FillShardedTable(NodeDatabase& database) {
  MustWrite(database,
            "CREATE TABLE t (id INTEGER, name TEXT, _virtualShard INTEGER NOT NULL DEFAULT 0, "
            "PRIMARY KEY (_virtualShard, id))");
  MustWrite(database,
            "INSERT INTO t (id, name, _virtualShard) "
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3000) "
            "SELECT x, 'name-' || x, x % 3 FROM c");
}

constexpr char kShardOneRows[] = "SELECT name, id FROM t WHERE _virtualShard = 1 ORDER BY id";

TEST(ScanShardTest, ReadsTheWholeShardInBlocks) {
  auto database = OpenOrDie(FreshDir("scan_blocks"));
  ASSERT_NE(database, nullptr);
  FillShardedTable(*database);
  const std::vector<Row> expected = Query(*database, kShardOneRows);
  ASSERT_EQ(expected.size(), 1000u);
  for (int block_size : {1, 7, 1000, 10000}) {
    SCOPED_TRACE(absl::StrCat("block_size ", block_size));
    Scanned scanned = Scan(*database, ScanOf("t", 1, {"name", "id"}, {"id"}, block_size));
    ASSERT_TRUE(scanned.status.ok()) << scanned.status;
    EXPECT_EQ(Render(scanned.rows()), Render(expected));
    EXPECT_EQ(scanned.blocks.size(), static_cast<size_t>((1000 + block_size - 1) / block_size));
    ExpectWellFormedBlocks(scanned, block_size);
    for (const ScanShardResponse& block : scanned.blocks) {
      ASSERT_EQ(block.last_key_size(), 1);
      EXPECT_EQ(Render(block.last_key(0)),
                Render(block.rows(block.rows_size() - 1).values(1)));  // The id.
    }
  }
}

TEST(ScanShardTest, NeverReturnsOtherShards) {
  auto database = OpenOrDie(FreshDir("scan_other_shards"));
  ASSERT_NE(database, nullptr);
  FillShardedTable(*database);
  for (int shard : {0, 1, 2}) {
    Scanned scanned = Scan(*database, ScanOf("t", shard, {"_virtualShard", "id"}, {"id"}, 333));
    ASSERT_TRUE(scanned.status.ok()) << scanned.status;
    const std::vector<Row> rows = scanned.rows();
    EXPECT_EQ(rows.size(), 1000u);
    for (const Row& row : rows) {
      ASSERT_EQ(row.values(0).integer(), shard) << Render(row);
      ASSERT_EQ(row.values(1).integer() % 3, shard) << Render(row);
    }
  }
}

TEST(ScanShardTest, ResumesStrictlyAfterAKey) {
  auto database = OpenOrDie(FreshDir("scan_resume"));
  ASSERT_NE(database, nullptr);
  FillShardedTable(*database);
  const std::vector<Row> expected = Query(*database, kShardOneRows);
  Scanned full = Scan(*database, ScanOf("t", 1, {"name", "id"}, {"id"}, 64));
  ASSERT_TRUE(full.status.ok()) << full.status;
  ASSERT_GT(full.blocks.size(), 4u);

  // After the fourth block's last key: exactly the rest.
  ScanShardRequest request = ScanOf("t", 1, {"name", "id"}, {"id"}, 64);
  *request.mutable_after_key() = full.blocks[3].last_key();
  Scanned rest = Scan(*database, request);
  ASSERT_TRUE(rest.status.ok()) << rest.status;
  EXPECT_EQ(Render(rest.rows()),
            Render(std::vector<Row>(expected.begin() + 4 * 64, expected.end())));
  ExpectWellFormedBlocks(rest, 64);

  // A key that is not in the shard resumes at the next one.
  request.clear_after_key();
  *request.add_after_key() = IntegerValue(1500);
  Scanned after_1500 = Scan(*database, request);
  ASSERT_TRUE(after_1500.status.ok()) << after_1500.status;
  EXPECT_EQ(Render(after_1500.rows()),
            Render(Query(*database,
                         "SELECT name, id FROM t WHERE _virtualShard = 1 AND id > 1500 ORDER BY "
                         "id")));
  EXPECT_EQ(after_1500.rows().front().values(1).integer(), 1501);
}

TEST(ScanShardTest, MaxBlocksStopsBeforeTheEnd) {
  auto database = OpenOrDie(FreshDir("scan_max_blocks"));
  ASSERT_NE(database, nullptr);
  FillShardedTable(*database);
  const std::vector<Row> expected = Query(*database, kShardOneRows);
  ScanShardRequest request = ScanOf("t", 1, {"name", "id"}, {"id"}, 100);
  request.set_max_blocks(3);
  Scanned first = Scan(*database, request);
  ASSERT_TRUE(first.status.ok()) << first.status;
  ASSERT_EQ(first.blocks.size(), 3u);
  for (const auto& block : first.blocks) {
    EXPECT_FALSE(block.done());
    EXPECT_EQ(block.rows_size(), 100);
  }
  // The rest, resumed from the last block sent.
  request.set_max_blocks(0);
  *request.mutable_after_key() = first.blocks.back().last_key();
  Scanned rest = Scan(*database, request);
  ASSERT_TRUE(rest.status.ok()) << rest.status;
  EXPECT_EQ(rest.blocks.size(), 7u);
  ExpectWellFormedBlocks(rest, 100);
  std::vector<Row> all = first.rows();
  for (const Row& row : rest.rows()) all.push_back(row);
  EXPECT_EQ(Render(all), Render(expected));

  // Reaching the end within max_blocks says done.
  request.clear_after_key();
  for (int max_blocks : {10, 11, 1000}) {
    request.set_max_blocks(max_blocks);
    Scanned whole = Scan(*database, request);
    ASSERT_TRUE(whole.status.ok()) << whole.status;
    EXPECT_EQ(whole.blocks.size(), 10u) << max_blocks;
    ExpectWellFormedBlocks(whole, 100);
  }
}

TEST(ScanShardTest, EmptyShardYieldsOneDoneBlock) {
  auto database = OpenOrDie(FreshDir("scan_empty"));
  ASSERT_NE(database, nullptr);
  FillShardedTable(*database);
  MustWrite(*database, "CREATE TABLE empty (id INTEGER, _virtualShard INTEGER NOT NULL)");
  ScanShardRequest past_the_end = ScanOf("t", 1, {"name"}, {"id"}, 10);
  *past_the_end.add_after_key() = IntegerValue(3000);
  ScanShardRequest distinct = ScanOf("t", 7, {}, {"name"}, 10);
  distinct.set_distinct(true);
  for (const ScanShardRequest& request :
       {ScanOf("t", 7, {"name"}, {"id"}, 10), ScanOf("empty", 0, {"id"}, {"id"}, 1), past_the_end,
        distinct}) {
    SCOPED_TRACE(request.ShortDebugString());
    Scanned scanned = Scan(*database, request);
    ASSERT_TRUE(scanned.status.ok()) << scanned.status;
    ASSERT_EQ(scanned.blocks.size(), 1u);
    EXPECT_TRUE(scanned.blocks[0].done());
    EXPECT_EQ(scanned.blocks[0].rows_size(), 0);
    EXPECT_EQ(scanned.blocks[0].last_key_size(), 0);
  }
}

TEST(ScanShardTest, DistinctSkipsNullTuplesWithACompositeKey) {
  auto database = OpenOrDie(FreshDir("scan_distinct"));
  ASSERT_NE(database, nullptr);
  MustWrite(*database,
            "CREATE TABLE u (id INTEGER, a TEXT, b INTEGER, _virtualShard INTEGER NOT NULL, "
            "PRIMARY KEY (_virtualShard, id))");
  std::set<std::pair<std::string, int64_t>> pairs;
  std::set<std::string> singles;
  for (int i = 0; i < 600; ++i) {
    const bool a_null = i % 7 == 0;
    const bool b_null = i % 11 == 0;
    const std::string a = absl::StrCat("k", i % 5);
    const int64_t b = i % 4;
    const int shard = i % 3;
    MustWrite(*database, "INSERT INTO u VALUES (?, ?, ?, ?)",
              {IntegerValue(i), a_null ? NullValue() : TextValue(a),
               b_null ? NullValue() : IntegerValue(b), IntegerValue(shard)});
    if (shard != 0) continue;
    if (!a_null && !b_null) pairs.insert({a, b});
    if (!a_null) singles.insert(a);
  }
  std::vector<std::string> expected_pairs;
  for (const auto& [a, b] : pairs) {
    Row row;
    *row.add_values() = TextValue(a);
    *row.add_values() = IntegerValue(b);
    expected_pairs.push_back(Render(row));
  }
  ASSERT_EQ(expected_pairs.size(), 20u);
  for (int block_size : {1, 3, 20, 10000}) {
    SCOPED_TRACE(absl::StrCat("block_size ", block_size));
    // columns are ignored when distinct.
    ScanShardRequest request = ScanOf("u", 0, {"id"}, {"a", "b"}, block_size);
    request.set_distinct(true);
    Scanned scanned = Scan(*database, request);
    ASSERT_TRUE(scanned.status.ok()) << scanned.status;
    EXPECT_EQ(Render(scanned.rows()), expected_pairs);
    ExpectWellFormedBlocks(scanned, block_size);
    for (const auto& block : scanned.blocks) {
      if (block.rows_size() == 0) continue;
      EXPECT_EQ(Render(block.rows(block.rows_size() - 1)),
                absl::StrCat("values { ", block.last_key(0).ShortDebugString(), " } values { ",
                             block.last_key(1).ShortDebugString(), " }"));
    }

    request.clear_key_columns();
    request.add_key_columns("a");
    Scanned single = Scan(*database, request);
    ASSERT_TRUE(single.status.ok()) << single.status;
    std::vector<std::string> got;
    for (const Row& row : single.rows()) {
      ASSERT_EQ(row.values_size(), 1);
      got.push_back(row.values(0).text());
    }
    EXPECT_EQ(got, std::vector<std::string>(singles.begin(), singles.end()));
  }
}

TEST(ScanShardTest, DistinctResumesWithTheColumnsCollation) {
  auto database = OpenOrDie(FreshDir("scan_collation"));
  ASSERT_NE(database, nullptr);
  MustWrite(*database,
            "CREATE TABLE n (id INTEGER PRIMARY KEY, w TEXT COLLATE NOCASE, "
            "_virtualShard INTEGER NOT NULL DEFAULT 0)");
  MustWrite(*database,
            "INSERT INTO n (w) VALUES ('b'), ('A'), ('a'), ('B'), ('c'), ('C'), ('a'), (NULL)");
  ScanShardRequest request = ScanOf("n", 0, {}, {"w"}, 1);
  request.set_distinct(true);
  Scanned scanned = Scan(*database, request);
  ASSERT_TRUE(scanned.status.ok()) << scanned.status;
  std::vector<std::string> got;
  for (const Row& row : scanned.rows()) got.push_back(absl::AsciiStrToLower(row.values(0).text()));
  EXPECT_EQ(got, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(scanned.blocks.size(), 3u);
}

TEST(ScanShardTest, ResumesAcrossKeysWithNulls) {
  auto database = OpenOrDie(FreshDir("scan_null_keys"));
  ASSERT_NE(database, nullptr);
  // A rowid table's key columns may hold NULL; NULL sorts first.
  MustWrite(*database, "CREATE TABLE p (a INTEGER, b TEXT, v TEXT, _virtualShard INTEGER)");
  MustWrite(*database,
            "INSERT INTO p VALUES (NULL, NULL, 'r1', 0), (NULL, 'x', 'r2', 0), (1, NULL, 'r3', 0), "
            "(1, 'x', 'r4', 0), (NULL, 'y', 'r5', 0), (2, NULL, 'r6', 0), (1, 'y', 'r7', 0), "
            "(2, 'a', 'r8', 0), (1, 'x', 'other shard', 1)");
  const std::vector<Row> expected =
      Query(*database, "SELECT v FROM p WHERE _virtualShard = 0 ORDER BY a, b");
  ASSERT_EQ(expected.size(), 8u);
  for (int block_size : {1, 2, 3, 8}) {
    SCOPED_TRACE(absl::StrCat("block_size ", block_size));
    Scanned scanned = Scan(*database, ScanOf("p", 0, {"v"}, {"a", "b"}, block_size));
    ASSERT_TRUE(scanned.status.ok()) << scanned.status;
    EXPECT_EQ(Render(scanned.rows()), Render(expected));
    ExpectWellFormedBlocks(scanned, block_size);
  }
}

TEST(ScanShardTest, RefusesMalformedRequests) {
  auto database = OpenOrDie(FreshDir("scan_malformed"));
  ASSERT_NE(database, nullptr);
  FillShardedTable(*database);
  const ScanShardRequest good = ScanOf("t", 1, {"name"}, {"id"}, 10);
  ASSERT_TRUE(Scan(*database, good).status.ok());
  auto with = [&good](const std::function<void(ScanShardRequest&)>& change) {
    ScanShardRequest request = good;
    change(request);
    return request;
  };
  const std::string nul("i\0d", 3);
  const std::vector<std::pair<std::string, ScanShardRequest>> cases = {
      {"empty table", with([](auto& r) { r.clear_table(); })},
      {"no key columns", with([](auto& r) { r.clear_key_columns(); })},
      {"no columns", with([](auto& r) { r.clear_columns(); })},
      {"block_size 0", with([](auto& r) { r.set_block_size(0); })},
      {"block_size -1", with([](auto& r) { r.set_block_size(-1); })},
      {"block_size 10001", with([](auto& r) { r.set_block_size(10001); })},
      {"after_key too long", with([](auto& r) {
         *r.add_after_key() = IntegerValue(1);
         *r.add_after_key() = IntegerValue(2);
       })},
      {"after_key too short", with([](auto& r) {
         r.add_key_columns("name");
         *r.add_after_key() = IntegerValue(1);
       })},
      {"NUL in table", with([&nul](auto& r) { r.set_table(nul); })},
      {"NUL in column", with([&nul](auto& r) { r.add_columns(nul); })},
      {"NUL in key column", with([&nul](auto& r) { r.set_key_columns(0, nul); })},
      {"empty column", with([](auto& r) { r.add_columns(""); })},
      {"empty key column", with([](auto& r) { r.add_key_columns(""); })},
      {"negative max_blocks", with([](auto& r) { r.set_max_blocks(-1); })},
  };
  for (const auto& [name, request] : cases) {
    Scanned scanned = Scan(*database, request);
    EXPECT_EQ(scanned.status.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_EQ(ErrorReason(scanned.status), reason::kInvalidArgument) << name << scanned.status;
    EXPECT_TRUE(scanned.blocks.empty()) << name;
  }
  // Distinct needs no columns.
  ScanShardRequest distinct = with([](auto& r) {
    r.clear_columns();
    r.set_distinct(true);
  });
  EXPECT_TRUE(Scan(*database, distinct).status.ok());
}

TEST(ScanShardTest, UnknownNamesFailWithSqlitesMessage) {
  auto database = OpenOrDie(FreshDir("scan_unknown"));
  ASSERT_NE(database, nullptr);
  FillShardedTable(*database);
  Scanned table = Scan(*database, ScanOf("nope", 1, {"name"}, {"id"}, 10));
  EXPECT_EQ(table.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorReason(table.status), reason::kSqlError);
  EXPECT_EQ(table.status.message(), "no such table: nope");
  EXPECT_TRUE(table.blocks.empty());
  // Double-quoted unknown names are errors, never string literals; quotes in
  // a name cannot escape it.
  for (const char* column : {"nope", "name\" FROM t --", "Name\"\""}) {
    for (bool as_key : {false, true}) {
      ScanShardRequest request =
          as_key ? ScanOf("t", 1, {"name"}, {column}, 10) : ScanOf("t", 1, {column}, {"id"}, 10);
      Scanned scanned = Scan(*database, request);
      EXPECT_EQ(scanned.status.code(), absl::StatusCode::kInvalidArgument) << column;
      EXPECT_EQ(ErrorReason(scanned.status), reason::kSqlError) << column;
      EXPECT_TRUE(absl::StartsWith(scanned.status.message(), "no such column: ")) << scanned.status;
      if (as_key) {
        request.set_distinct(true);
        EXPECT_EQ(Scan(*database, request).status.code(), absl::StatusCode::kInvalidArgument)
            << column;
      }
    }
  }
  // A table without a _virtualShard column.
  MustWrite(*database, "CREATE TABLE plain (id INTEGER)");
  Scanned plain = Scan(*database, ScanOf("plain", 0, {"id"}, {"id"}, 10));
  EXPECT_EQ(plain.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(plain.status.message(), "_virtualShard")) << plain.status;
  // Names that need quoting work.
  MustWrite(*database,
            "CREATE TABLE \"we\"\"ird\" (\"sp ace\" TEXT, \"se;ect\" INTEGER, "
            "_virtualShard INTEGER)");
  MustWrite(*database, "INSERT INTO \"we\"\"ird\" VALUES ('x', 2, 4), ('y', 1, 4)");
  Scanned weird = Scan(*database, ScanOf("we\"ird", 4, {"sp ace"}, {"se;ect"}, 1));
  ASSERT_TRUE(weird.status.ok()) << weird.status;
  ASSERT_EQ(weird.rows().size(), 2u);
  EXPECT_EQ(weird.rows()[0].values(0).text(), "y");
  EXPECT_EQ(weird.rows()[1].values(0).text(), "x");
}

TEST(ScanShardTest, EachBlockIsItsOwnReadTransaction) {
  // One reader: the scan must give it back before each block is emitted.
  auto database = OpenOrDie(FreshDir("scan_transactions"), /*reader_connections=*/1);
  ASSERT_NE(database, nullptr);
  FillShardedTable(*database);
  int emitted = 0;
  absl::Status inner_read;
  absl::Status status = database->ScanShard(
      ScanOf("t", 1, {"name"}, {"id"}, 400), {}, [&](const ScanShardResponse& block) {
        if (emitted++ == 0) {
          // Written after the first block: later blocks see it.
          ExecuteBatchResponse response;
          inner_read = database->ExecuteBatch(Batch({"SELECT count(*) FROM t"}, true),
                                              WithTimeout(absl::Seconds(2)), &response);
          MustWrite(*database, "INSERT INTO t VALUES (5000, 'late', 1)");
        }
        if (block.done()) {
          EXPECT_EQ(block.rows(block.rows_size() - 1).values(0).text(), "late");
        }
        return true;
      });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(inner_read.ok()) << "the reader was held while the block was emitted: " << inner_read;
  EXPECT_EQ(emitted, 3);
}

TEST(ScanShardTest, StopsWhenTheReceiverGoesAway) {
  auto database = OpenOrDie(FreshDir("scan_receiver_gone"));
  ASSERT_NE(database, nullptr);
  FillShardedTable(*database);
  int emitted = 0;
  absl::Status status =
      database->ScanShard(ScanOf("t", 1, {"name"}, {"id"}, 10), {},
                          [&emitted](const ScanShardResponse&) { return ++emitted < 2; });
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  EXPECT_EQ(emitted, 2);
}

TEST(ScanShardTest, StopsBetweenBlocksOnceCancelled) {
  auto database = OpenOrDie(FreshDir("scan_cancel_between"));
  ASSERT_NE(database, nullptr);
  FillShardedTable(*database);
  bool cancelled = false;
  CallControl control;
  control.is_cancelled = [&cancelled] { return cancelled; };
  int emitted = 0;
  absl::Status status = database->ScanShard(ScanOf("t", 1, {"name"}, {"id"}, 10), control,
                                            [&](const ScanShardResponse&) {
                                              ++emitted;
                                              cancelled = true;
                                              return true;
                                            });
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  EXPECT_EQ(emitted, 1);
}

// A "table" whose every block runs until interrupted.
constexpr char kEndlessView[] =
    "CREATE VIEW endless AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
    "SELECT x AS id, 0 AS _virtualShard FROM c";

TEST(ScanShardTest, DeadlineAndCancellationInterruptABlock) {
  auto database = OpenOrDie(FreshDir("scan_interrupt"), /*reader_connections=*/1);
  ASSERT_NE(database, nullptr);
  MustWrite(*database, kEndlessView);
  const ScanShardRequest request = ScanOf("endless", 0, {"id"}, {"id"}, 10);

  absl::Time start = absl::Now();
  Scanned timed_out = Scan(*database, request, WithTimeout(absl::Milliseconds(200)));
  EXPECT_EQ(timed_out.status.code(), absl::StatusCode::kDeadlineExceeded) << timed_out.status;
  EXPECT_TRUE(timed_out.blocks.empty());
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));

  std::atomic<bool> cancelled{false};
  CallControl control;
  control.is_cancelled = [&cancelled] { return cancelled.load(); };
  std::thread canceller([&cancelled] {
    absl::SleepFor(absl::Milliseconds(200));
    cancelled = true;
  });
  Scanned interrupted = Scan(*database, request, control);
  canceller.join();
  EXPECT_EQ(interrupted.status.code(), absl::StatusCode::kCancelled) << interrupted.status;
  // The reader is back in the pool, out of any transaction.
  ExecuteBatchResponse response;
  EXPECT_TRUE(database
                  ->ExecuteBatch(Batch({"SELECT count(*) FROM sqlite_schema"}, true),
                                 WithTimeout(absl::Seconds(1)), &response)
                  .ok());
}

TEST(ScanShardTest, BlockOverTheResponseLimitIsResourceExhausted) {
  NodeDatabaseOptions options;
  options.data_dir = FreshDir("scan_too_big");
  options.reader_connections = 1;
  options.limits.max_response_bytes = 10000;
  auto database = NodeDatabase::Open(options);
  ASSERT_TRUE(database.ok()) << database.status();
  MustWrite(**database,
            "CREATE TABLE b (id INTEGER PRIMARY KEY, data BLOB, _virtualShard INTEGER)");
  MustWrite(**database,
            "INSERT INTO b WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
            "LIMIT 100) SELECT x, randomblob(1000), 0 FROM c");
  Scanned big = Scan(**database, ScanOf("b", 0, {"data"}, {"id"}, 100));
  EXPECT_EQ(big.status.code(), absl::StatusCode::kResourceExhausted) << big.status;
  EXPECT_TRUE(absl::StrContains(big.status.message(), "block_size")) << big.status;
  Scanned small = Scan(**database, ScanOf("b", 0, {"data"}, {"id"}, 5));
  ASSERT_TRUE(small.status.ok()) << small.status;
  EXPECT_EQ(small.rows().size(), 100u);
}

}  // namespace
}  // namespace storage_node
}  // namespace conductor
