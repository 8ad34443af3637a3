// Drives StorageService through a real in-process gRPC server and channel.
#include "storage_node/storage_service.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "common/errors.h"
#include "common/sqlite.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "storage/v1/storage.grpc.pb.h"

namespace conductor {
namespace storage_node {
namespace {

using storage::v1::ExecuteBatchRequest;
using storage::v1::ExecuteBatchResponse;
using storage::v1::ScanShardRequest;
using storage::v1::ScanShardResponse;

constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
// A statement that runs until interrupted (for all practical purposes).
constexpr char kEndlessQuery[] =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
    "SELECT count(*) FROM c WHERE x < 0 LIMIT 1";

storage::v1::Statement Stmt(const std::string& sql, std::vector<Value> params = {}) {
  storage::v1::Statement statement;
  statement.set_sql(sql);
  for (Value& value : params) *statement.add_params() = std::move(value);
  return statement;
}

ExecuteBatchRequest Batch(std::vector<storage::v1::Statement> statements, bool read_only = false) {
  ExecuteBatchRequest request;
  for (auto& statement : statements) *request.add_statements() = std::move(statement);
  request.set_read_only(read_only);
  return request;
}

std::string FreshDir(const std::string& name) {
  std::string dir = ::testing::TempDir() + "/storage_service_test/" + name;
  std::filesystem::remove_all(dir);
  return dir;
}

class StorageServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    options_.data_dir = FreshDir(info->name());
    StartServer();
  }

  void TearDown() override { StopServer(); }

  void StartServer() {
    auto database = NodeDatabase::Open(options_);
    ASSERT_TRUE(database.ok()) << database.status();
    service_ = std::make_unique<StorageService>("node-1", std::move(*database));
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.SetMaxSendMessageSize(256 << 20);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    stub_ = storage::v1::Storage::NewStub(grpc::CreateCustomChannel(
        "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials(), args));
  }

  void StopServer() {
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
      server_->Wait();
    }
    stub_.reset();
    server_.reset();
    service_.reset();
  }

  // Sends `request`; the status comes back as the client sees it.
  absl::StatusOr<ExecuteBatchResponse> Execute(
      const ExecuteBatchRequest& request,
      std::chrono::milliseconds timeout = std::chrono::milliseconds(20000)) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + timeout);
    ExecuteBatchResponse response;
    grpc::Status status = stub_->ExecuteBatch(&context, request, &response);
    if (!status.ok()) return FromGrpcStatus(status);
    return response;
  }

  // Runs one write statement and expects success.
  ExecuteBatchResponse MustExecute(const std::string& sql, std::vector<Value> params = {}) {
    auto response = Execute(Batch({Stmt(sql, std::move(params))}));
    EXPECT_TRUE(response.ok()) << sql << ": " << response.status();
    return response.ok() ? *response : ExecuteBatchResponse();
  }

  int64_t Count(const std::string& table) {
    auto response = Execute(Batch({Stmt("SELECT count(*) FROM " + table)}, /*read_only=*/true));
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) return -1;
    return response->results(0).rows(0).values(0).integer();
  }

  NodeDatabaseOptions options_;
  std::unique_ptr<StorageService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<storage::v1::Storage::Stub> stub_;
};

TEST_F(StorageServiceTest, GetNodeInfo) {
  grpc::ClientContext context;
  storage::v1::GetNodeInfoResponse response;
  ASSERT_TRUE(stub_->GetNodeInfo(&context, {}, &response).ok());
  EXPECT_EQ(response.node_id(), "node-1");
  EXPECT_EQ(response.sqlite_version(), sqlite3_libversion());
  EXPECT_EQ(response.database_path(), options_.data_dir + "/storage.db");
  EXPECT_TRUE(std::filesystem::exists(response.database_path()));
}

TEST_F(StorageServiceTest, RoundTripsEveryStorageClass) {
  const std::string blob("a\0b\0\xff", 5);
  const std::string text = "héllo, 世界 🎉";
  auto created = MustExecute("CREATE TABLE t (id INTEGER PRIMARY KEY, v)");
  ASSERT_EQ(created.results_size(), 1);
  EXPECT_EQ(created.results(0).rows_affected(), 0);

  auto inserted = Execute(Batch({
      Stmt("INSERT INTO t VALUES (1, ?), (2, ?)",
           {IntegerValue(kInt64Min), IntegerValue(kInt64Max)}),
      Stmt("INSERT INTO t VALUES (3, ?), (4, ?), (5, ?)",
           {RealValue(0.1), RealValue(-1.5e308), RealValue(3.0)}),
      Stmt("INSERT INTO t VALUES (6, ?)", {TextValue(text)}),
      Stmt("INSERT INTO t VALUES (7, ?)", {BlobValue(blob)}),
      Stmt("INSERT INTO t VALUES (8, ?)", {NullValue()}),
      Stmt("INSERT INTO t VALUES (9, ?)", {BlobValue("")}),
  }));
  ASSERT_TRUE(inserted.ok()) << inserted.status();
  ASSERT_EQ(inserted->results_size(), 6);
  EXPECT_EQ(inserted->results(0).rows_affected(), 2);
  EXPECT_EQ(inserted->results(1).rows_affected(), 3);
  EXPECT_EQ(inserted->results(2).rows_affected(), 1);
  EXPECT_TRUE(inserted->results(0).columns().empty());

  auto read = Execute(Batch({Stmt("SELECT id, v, typeof(v) AS type FROM t ORDER BY id")}, true));
  ASSERT_TRUE(read.ok()) << read.status();
  const auto& result = read->results(0);
  EXPECT_EQ(result.rows_affected(), 0);
  ASSERT_EQ(result.columns_size(), 3);
  EXPECT_EQ(result.columns(0), "id");
  EXPECT_EQ(result.columns(2), "type");
  ASSERT_EQ(result.rows_size(), 9);
  auto v = [&](int row) { return result.rows(row).values(1); };
  EXPECT_EQ(v(0).integer(), kInt64Min);
  EXPECT_EQ(v(1).integer(), kInt64Max);
  EXPECT_EQ(v(2).real(), 0.1);
  EXPECT_EQ(v(3).real(), -1.5e308);
  // 3.0 stays a REAL: no affinity converts it.
  EXPECT_EQ(v(4).kind_case(), Value::kReal);
  EXPECT_EQ(v(4).real(), 3.0);
  EXPECT_EQ(v(5).kind_case(), Value::kText);
  EXPECT_EQ(v(5).text(), text);
  EXPECT_EQ(v(6).kind_case(), Value::kBlob);
  EXPECT_EQ(v(6).blob(), blob);
  EXPECT_EQ(v(7).kind_case(), Value::kNullValue);
  EXPECT_EQ(v(8).kind_case(), Value::kBlob);
  EXPECT_EQ(v(8).blob(), "");
  EXPECT_EQ(result.rows(5).values(2).text(), "text");
  EXPECT_EQ(result.rows(0).values(0).kind_case(), Value::kInteger);

  // Parameters come back unchanged through an expression too.
  auto echo =
      Execute(Batch({Stmt("SELECT ?, ?", {BlobValue(blob), IntegerValue(kInt64Min)})}, true));
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(echo->results(0).rows(0).values(0).blob(), blob);
  EXPECT_EQ(echo->results(0).rows(0).values(1).integer(), kInt64Min);
}

TEST_F(StorageServiceTest, RowsAffectedCountsOnlyTheStatementItself) {
  MustExecute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
  MustExecute("CREATE TABLE log (id INTEGER)");
  MustExecute("CREATE TRIGGER t_log AFTER UPDATE ON t BEGIN INSERT INTO log VALUES (new.id); END");
  auto response = Execute(Batch({
      Stmt("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')"),
      Stmt("UPDATE t SET v = 'z' WHERE id >= 2"),
      Stmt("SELECT * FROM t"),
      Stmt("CREATE INDEX t_v ON t (v)"),
      Stmt("DELETE FROM t WHERE id = 99"),
      Stmt("DELETE FROM t WHERE id = 1 RETURNING id"),
      Stmt("DROP TABLE log"),
  }));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->results(0).rows_affected(), 3);
  EXPECT_EQ(response->results(1).rows_affected(), 2);
  EXPECT_EQ(response->results(2).rows_affected(), 0);
  EXPECT_EQ(response->results(2).rows_size(), 3);
  EXPECT_EQ(response->results(3).rows_affected(), 0);
  EXPECT_EQ(response->results(4).rows_affected(), 0);
  EXPECT_EQ(response->results(5).rows_affected(), 1);
  EXPECT_EQ(response->results(5).rows_size(), 1);
  EXPECT_EQ(response->results(6).rows_affected(), 0);
}

TEST_F(StorageServiceTest, FailingStatementRollsBackTheWholeBatch) {
  MustExecute("CREATE TABLE t (id INTEGER PRIMARY KEY)");
  auto failed = Execute(Batch({
      Stmt("INSERT INTO t VALUES (1)"),
      Stmt("CREATE TABLE u (id INTEGER)"),
      Stmt("INSERT INTO missing VALUES (2)"),
  }));
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(failed.status().message(), "statement 3: no such table: missing");
  EXPECT_EQ(Count("t"), 0);
  auto u = Execute(Batch({Stmt("SELECT * FROM u")}, true));
  EXPECT_EQ(u.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(u.status().message(), "no such table: u")) << u.status();
  // A single statement's error carries no prefix.
  EXPECT_EQ(Execute(Batch({Stmt("SELECT nope FROM t")})).status().message(),
            "no such column: nope");
  // The writer is usable afterwards.
  MustExecute("INSERT INTO t VALUES (1)");
  EXPECT_EQ(Count("t"), 1);
}

TEST_F(StorageServiceTest, ReadOnlyBatchRefusesWrites) {
  MustExecute("CREATE TABLE t (id INTEGER PRIMARY KEY)");
  for (const char* sql : {"INSERT INTO t VALUES (1)", "CREATE TABLE u (x)", "DELETE FROM t",
                          "PRAGMA query_only=0", "BEGIN"}) {
    auto response = Execute(Batch({Stmt("SELECT count(*) FROM t"), Stmt(sql)}, /*read_only=*/true));
    ASSERT_FALSE(response.ok()) << sql;
    EXPECT_TRUE(response.status().code() == absl::StatusCode::kFailedPrecondition ||
                response.status().code() == absl::StatusCode::kInvalidArgument)
        << sql << ": " << response.status();
    EXPECT_TRUE(absl::StartsWith(response.status().message(), "statement 2: "))
        << response.status();
  }
  EXPECT_EQ(Execute(Batch({Stmt("INSERT INTO t VALUES (1)")}, true)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Count("t"), 0);
}

TEST_F(StorageServiceTest, RefusesTransactionControlAndAttach) {
  MustExecute("CREATE TABLE t (id INTEGER PRIMARY KEY)");
  for (const char* sql :
       {"COMMIT", "BEGIN", "SAVEPOINT s", "ROLLBACK", "ATTACH DATABASE ':memory:' AS other",
        "PRAGMA journal_mode=DELETE", "PRAGMA synchronous=OFF", "PRAGMA recursive_triggers=OFF"}) {
    auto response = Execute(Batch({Stmt("INSERT INTO t VALUES (1)"), Stmt(sql)}));
    ASSERT_FALSE(response.ok()) << sql;
    EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument) << sql;
    EXPECT_EQ(ErrorReason(response.status()), reason::kUnsupportedStatement) << sql;
  }
  EXPECT_EQ(Count("t"), 0);
  // Reading pragmas is fine.
  auto mode = Execute(Batch({Stmt("PRAGMA journal_mode")}));
  ASSERT_TRUE(mode.ok()) << mode.status();
  EXPECT_EQ(mode->results(0).rows(0).values(0).text(), "wal");
  // The writer fires delete triggers for rows REPLACE removes (reshard capture).
  auto recursive = Execute(Batch({Stmt("PRAGMA recursive_triggers")}));
  ASSERT_TRUE(recursive.ok()) << recursive.status();
  EXPECT_EQ(recursive->results(0).rows(0).values(0).integer(), 1);
  auto columns = Execute(Batch({Stmt("PRAGMA table_info(t)")}, /*read_only=*/true));
  ASSERT_TRUE(columns.ok()) << columns.status();
  EXPECT_EQ(columns->results(0).rows(0).values(1).text(), "id");
}

TEST_F(StorageServiceTest, ParameterCountMustMatch) {
  MustExecute("CREATE TABLE t (a, b)");
  auto few = Execute(Batch({Stmt("INSERT INTO t VALUES (?, ?)", {IntegerValue(1)})}));
  EXPECT_EQ(few.status().code(), absl::StatusCode::kInvalidArgument);
  auto many = Execute(Batch({Stmt("SELECT ?", {IntegerValue(1), IntegerValue(2)})}, true));
  EXPECT_EQ(many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(many.status().message(), "parameter")) << many.status();
  EXPECT_EQ(Count("t"), 0);
}

TEST_F(StorageServiceTest, UniqueViolationIsAlreadyExists) {
  MustExecute("CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT UNIQUE)");
  MustExecute("INSERT INTO t VALUES (1, 'a@x')");
  auto pk = Execute(
      Batch({Stmt("INSERT INTO t VALUES (2, 'b@x')"), Stmt("INSERT INTO t VALUES (1, 'c@x')")}));
  EXPECT_EQ(pk.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ErrorReason(pk.status()), reason::kUniqueViolation);
  auto unique = Execute(Batch({Stmt("INSERT INTO t VALUES (3, ?)", {TextValue("a@x")})}));
  EXPECT_EQ(unique.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ErrorReason(unique.status()), reason::kUniqueViolation);
  auto not_null =
      Execute(Batch({Stmt("INSERT INTO t VALUES (NULL, 'x') RETURNING id"),
                     Stmt("CREATE TABLE n (x NOT NULL)"), Stmt("INSERT INTO n VALUES (NULL)")}));
  EXPECT_EQ(not_null.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorReason(not_null.status()), reason::kConstraintViolation);
  EXPECT_EQ(Count("t"), 1);
}

TEST_F(StorageServiceTest, MalformedBatches) {
  auto empty = Execute(ExecuteBatchRequest());
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  auto two = Execute(Batch({Stmt("SELECT 1; SELECT 2")}));
  EXPECT_EQ(two.status().code(), absl::StatusCode::kInvalidArgument);
  auto blank = Execute(Batch({Stmt("  ")}));
  EXPECT_EQ(blank.status().code(), absl::StatusCode::kInvalidArgument);
  auto syntax = Execute(Batch({Stmt("SELEKT 1")}));
  EXPECT_EQ(syntax.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(StorageServiceTest, ReadersRunConcurrentlyWithALongWriteTransaction) {
  constexpr int kReaders = 8;
  constexpr int kRowsPerBatch = 1000;
  MustExecute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB)");

  std::atomic<bool> done{false};
  std::atomic<bool> writing{false};
  std::atomic<int> reads{0};
  std::atomic<int> reads_during_write{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < kReaders; ++i) {
    readers.emplace_back([&] {
      while (!done.load()) {
        const bool write_was_running = writing.load();
        // Two statements of one read batch see one snapshot.
        auto response =
            Execute(Batch({Stmt("SELECT count(*) FROM t"), Stmt("SELECT count(*) FROM t")},
                          /*read_only=*/true));
        if (!response.ok()) {
          ADD_FAILURE() << response.status();
          ++failures;
          continue;
        }
        int64_t first = response->results(0).rows(0).values(0).integer();
        int64_t second = response->results(1).rows(0).values(0).integer();
        EXPECT_EQ(first, second);
        EXPECT_EQ(first % kRowsPerBatch, 0) << "saw half a write batch";
        ++reads;
        if (write_was_running && writing.load()) ++reads_during_write;
      }
    });
  }

  const std::string insert =
      "INSERT INTO t (payload) SELECT randomblob(64) FROM "
      "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT " +
      std::to_string(kRowsPerBatch) + ") SELECT x FROM c)";
  // The long transaction: rows, then a statement that only ends when the
  // call's deadline (1 s) interrupts it; the whole batch is rolled back.
  writing = true;
  auto long_write =
      Execute(Batch({Stmt(insert), Stmt(kEndlessQuery)}), std::chrono::milliseconds(1000));
  writing = false;
  EXPECT_EQ(long_write.status().code(), absl::StatusCode::kDeadlineExceeded) << long_write.status();
  // Then committed batches, each all-or-nothing for the readers.
  for (int i = 0; i < 20; ++i) MustExecute(insert);
  done = true;
  for (auto& reader : readers) reader.join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(reads_during_write.load(), 0) << "readers were blocked by the writer";
  EXPECT_GT(reads.load(), kReaders);
  EXPECT_EQ(Count("t"), 20 * kRowsPerBatch);
}

TEST_F(StorageServiceTest, DeadlineInterruptsALongStatementAndAppliesNothing) {
  MustExecute("CREATE TABLE t (id INTEGER PRIMARY KEY)");
  auto start = std::chrono::steady_clock::now();
  auto write = Execute(Batch({Stmt("INSERT INTO t VALUES (1)"), Stmt(kEndlessQuery)}),
                       std::chrono::milliseconds(300));
  EXPECT_EQ(write.status().code(), absl::StatusCode::kDeadlineExceeded) << write.status();
  auto read = Execute(Batch({Stmt(kEndlessQuery)}, true), std::chrono::milliseconds(300));
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDeadlineExceeded) << read.status();
  // The writer was released: the server interrupted the statement.
  MustExecute("INSERT INTO t VALUES (2)");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  auto rows = Execute(Batch({Stmt("SELECT id FROM t")}, true));
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->results(0).rows_size(), 1);
  EXPECT_EQ(rows->results(0).rows(0).values(0).integer(), 2);
}

TEST_F(StorageServiceTest, HugeResultIsResourceExhausted) {
  StopServer();
  options_.limits.max_response_bytes = 1 << 20;
  StartServer();
  auto big = Execute(
      Batch({Stmt("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100000) "
                  "SELECT x, randomblob(100) FROM c")},
            true));
  EXPECT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted) << big.status();
  auto small = Execute(Batch({Stmt("SELECT randomblob(1000)")}, true));
  EXPECT_TRUE(small.ok()) << small.status();
}

TEST_F(StorageServiceTest, DataPersistsAcrossReopen) {
  MustExecute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
  MustExecute("INSERT INTO t VALUES (1, 'kept')");
  StopServer();
  StartServer();
  auto response = Execute(Batch({Stmt("SELECT v FROM t WHERE id = 1")}, true));
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->results(0).rows_size(), 1);
  EXPECT_EQ(response->results(0).rows(0).values(0).text(), "kept");
}

// ---------------------------------------------------------------------------
// ScanShard

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

// Rows rendered exactly (storage classes included), for comparisons.
std::vector<std::string> Render(const std::vector<Row>& rows) {
  std::vector<std::string> rendered;
  for (const Row& row : rows) rendered.push_back(row.ShortDebugString());
  return rendered;
}

// What a client received from one ScanShard call.
struct Streamed {
  absl::Status status;
  std::vector<ScanShardResponse> blocks;

  std::vector<Row> rows() const {
    std::vector<Row> all;
    for (const auto& block : blocks)
      all.insert(all.end(), block.rows().begin(), block.rows().end());
    return all;
  }
};

class ScanShardTest : public StorageServiceTest {
 protected:
  Streamed Scan(const ScanShardRequest& request,
                std::chrono::milliseconds timeout = std::chrono::milliseconds(20000)) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + timeout);
    Streamed streamed;
    auto reader = stub_->ScanShard(&context, request);
    ScanShardResponse block;
    while (reader->Read(&block)) streamed.blocks.push_back(block);
    streamed.status = FromGrpcStatus(reader->Finish());
    return streamed;
  }

  std::vector<Row> Query(const std::string& sql) {
    auto response = Execute(Batch({Stmt(sql)}, /*read_only=*/true));
    EXPECT_TRUE(response.ok()) << sql << ": " << response.status();
    if (!response.ok()) return {};
    return {response->results(0).rows().begin(), response->results(0).rows().end()};
  }

  // Table t: ids 1..25000, id % 2 as virtual shard.
  void FillShardedTable() {
    MustExecute(
        "CREATE TABLE t (id INTEGER, name TEXT, _virtualShard INTEGER NOT NULL DEFAULT 0, "
        "PRIMARY KEY (_virtualShard, id))");
    MustExecute(
        "INSERT INTO t (id, name, _virtualShard) "
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 25000) "
        "SELECT x, 'name-' || x, x % 2 FROM c");
  }

  // Every block but the last is full and not done; the last is done.
  static void ExpectWellFormedBlocks(const Streamed& streamed, int block_size) {
    ASSERT_FALSE(streamed.blocks.empty());
    for (size_t i = 0; i < streamed.blocks.size(); ++i) {
      const bool last = i + 1 == streamed.blocks.size();
      ASSERT_EQ(streamed.blocks[i].done(), last) << "block " << i;
      if (last) {
        ASSERT_LE(streamed.blocks[i].rows_size(), block_size);
      } else {
        ASSERT_EQ(streamed.blocks[i].rows_size(), block_size) << "block " << i;
      }
    }
  }
};

TEST_F(ScanShardTest, StreamsTheWholeShardInBlocks) {
  FillShardedTable();
  const std::vector<Row> expected =
      Query("SELECT _virtualShard, name, id FROM t WHERE _virtualShard = 1 ORDER BY id");
  ASSERT_EQ(expected.size(), 12500u);
  for (int block_size : {1, 999, 10000}) {
    SCOPED_TRACE(block_size);
    Streamed streamed = Scan(ScanOf("t", 1, {"_virtualShard", "name", "id"}, {"id"}, block_size));
    ASSERT_TRUE(streamed.status.ok()) << streamed.status;
    EXPECT_EQ(Render(streamed.rows()), Render(expected));
    EXPECT_EQ(streamed.blocks.size(), static_cast<size_t>((12500 + block_size - 1) / block_size));
    ExpectWellFormedBlocks(streamed, block_size);
    const ScanShardResponse& last = streamed.blocks.back();
    ASSERT_EQ(last.last_key_size(), 1);
    EXPECT_EQ(last.last_key(0).integer(), 24999);
  }
}

TEST_F(ScanShardTest, ResumesAfterAKeyAndStopsAtMaxBlocks) {
  FillShardedTable();
  const std::vector<Row> expected = Query("SELECT name FROM t WHERE _virtualShard = 0 ORDER BY id");
  ScanShardRequest request = ScanOf("t", 0, {"name"}, {"id"}, 1000);
  request.set_max_blocks(5);
  Streamed first = Scan(request);
  ASSERT_TRUE(first.status.ok()) << first.status;
  ASSERT_EQ(first.blocks.size(), 5u);
  EXPECT_FALSE(first.blocks.back().done());
  EXPECT_EQ(first.blocks.back().last_key(0).integer(), 10000);

  request.set_max_blocks(0);
  *request.mutable_after_key() = first.blocks.back().last_key();
  Streamed rest = Scan(request);
  ASSERT_TRUE(rest.status.ok()) << rest.status;
  ExpectWellFormedBlocks(rest, 1000);
  EXPECT_EQ(Render(rest.rows()), Render(std::vector<Row>(expected.begin() + 5000, expected.end())));
}

TEST_F(ScanShardTest, DistinctCompositeKeySkipsNulls) {
  MustExecute(
      "CREATE TABLE u (id INTEGER PRIMARY KEY, a TEXT, b INTEGER, "
      "_virtualShard INTEGER NOT NULL DEFAULT 0)");
  MustExecute(
      "INSERT INTO u (a, b, _virtualShard) "
      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 2000) "
      "SELECT CASE WHEN x % 7 = 0 THEN NULL ELSE 'k' || (x % 13) END, "
      "CASE WHEN x % 11 = 0 THEN NULL ELSE x % 17 END, x % 3 FROM c");
  const std::vector<Row> expected = Query(
      "SELECT DISTINCT a, b FROM u WHERE _virtualShard = 2 AND a IS NOT NULL AND b IS NOT NULL "
      "ORDER BY a, b");
  ASSERT_EQ(expected.size(), 13u * 17u);
  ScanShardRequest request = ScanOf("u", 2, {}, {"a", "b"}, 10);
  request.set_distinct(true);
  Streamed streamed = Scan(request);
  ASSERT_TRUE(streamed.status.ok()) << streamed.status;
  EXPECT_EQ(Render(streamed.rows()), Render(expected));
  ExpectWellFormedBlocks(streamed, 10);
}

TEST_F(ScanShardTest, EmptyShardIsOneDoneMessage) {
  FillShardedTable();
  Streamed streamed = Scan(ScanOf("t", 5, {"name"}, {"id"}, 100));
  ASSERT_TRUE(streamed.status.ok()) << streamed.status;
  ASSERT_EQ(streamed.blocks.size(), 1u);
  EXPECT_TRUE(streamed.blocks[0].done());
  EXPECT_EQ(streamed.blocks[0].rows_size(), 0);
}

TEST_F(ScanShardTest, ErrorsReachTheClient) {
  FillShardedTable();
  for (int block_size : {0, 10001}) {
    Streamed bad = Scan(ScanOf("t", 1, {"name"}, {"id"}, block_size));
    EXPECT_EQ(bad.status.code(), absl::StatusCode::kInvalidArgument) << bad.status;
    EXPECT_EQ(ErrorReason(bad.status), reason::kInvalidArgument) << bad.status;
    EXPECT_TRUE(bad.blocks.empty());
  }
  ScanShardRequest mismatched = ScanOf("t", 1, {"name"}, {"id"}, 10);
  *mismatched.add_after_key() = IntegerValue(1);
  *mismatched.add_after_key() = IntegerValue(2);
  EXPECT_EQ(ErrorReason(Scan(mismatched).status), reason::kInvalidArgument);
  EXPECT_EQ(ErrorReason(Scan(ScanOf("", 1, {"name"}, {"id"}, 10)).status),
            reason::kInvalidArgument);
  EXPECT_EQ(ErrorReason(Scan(ScanOf("t", 1, {"name"}, {}, 10)).status), reason::kInvalidArgument);
  EXPECT_EQ(ErrorReason(Scan(ScanOf("t", 1, {}, {"id"}, 10)).status), reason::kInvalidArgument);

  Streamed table = Scan(ScanOf("nope", 1, {"name"}, {"id"}, 10));
  EXPECT_EQ(table.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorReason(table.status), reason::kSqlError);
  EXPECT_EQ(table.status.message(), "no such table: nope");
  Streamed column = Scan(ScanOf("t", 1, {"nope"}, {"id"}, 10));
  EXPECT_EQ(column.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorReason(column.status), reason::kSqlError);
  EXPECT_TRUE(absl::StrContains(column.status.message(), "no such column")) << column.status;
}

TEST_F(ScanShardTest, TextThatIsNotUtf8FailsTheScanInsteadOfChangingIt) {
  // A key past such a value would be skipped if it were sent converted (a
  // BLOB sorts after every TEXT); the scan stops with an error naming it.
  MustExecute(
      "CREATE TABLE w (k TEXT, v TEXT, _virtualShard INTEGER NOT NULL DEFAULT 0, "
      "PRIMARY KEY (_virtualShard, k))");
  MustExecute("INSERT INTO w (k, v) VALUES ('a', 'x'), ('b', CAST(x'ff' AS TEXT)), ('c', 'z')");
  MustExecute("INSERT INTO w (k, v) VALUES (CAST(x'41ff' AS TEXT), 'y')");
  for (const auto& [columns, keys] :
       std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>>{
           {{"k", "v"}, {"k"}}, {{"k"}, {"k"}}}) {
    Streamed streamed = Scan(ScanOf("w", 0, columns, keys, 1));
    EXPECT_EQ(streamed.status.code(), absl::StatusCode::kInvalidArgument) << streamed.status;
    EXPECT_EQ(ErrorReason(streamed.status), reason::kSqlError) << streamed.status;
    EXPECT_TRUE(absl::StrContains(streamed.status.message(), "not valid UTF-8")) << streamed.status;
  }
  // And ExecuteBatch reads of it.
  auto read = Execute(Batch({Stmt("SELECT v FROM w WHERE k = 'b'")}, /*read_only=*/true));
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument) << read.status();
}

// A "table" whose every block runs until interrupted.
constexpr char kEndlessView[] =
    "CREATE VIEW endless AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
    "SELECT x AS id, 0 AS _virtualShard FROM c";

TEST_F(ScanShardTest, CancellingOrTheDeadlineInterruptsABlock) {
  // One reader: reading again proves the scan gave it back.
  StopServer();
  options_.reader_connections = 1;
  StartServer();
  MustExecute(kEndlessView);
  const ScanShardRequest request = ScanOf("endless", 0, {"id"}, {"id"}, 10);

  auto start = std::chrono::steady_clock::now();
  Streamed timed_out = Scan(request, std::chrono::milliseconds(300));
  EXPECT_EQ(timed_out.status.code(), absl::StatusCode::kDeadlineExceeded) << timed_out.status;
  EXPECT_TRUE(timed_out.blocks.empty());
  EXPECT_TRUE(Execute(Batch({Stmt("SELECT 1")}, true), std::chrono::milliseconds(2000)).ok());

  grpc::ClientContext context;
  auto reader = stub_->ScanShard(&context, request);
  std::thread canceller([&context] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    context.TryCancel();
  });
  ScanShardResponse block;
  EXPECT_FALSE(reader->Read(&block));
  canceller.join();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  auto read = Execute(Batch({Stmt("SELECT 1")}, true), std::chrono::milliseconds(2000));
  EXPECT_TRUE(read.ok()) << "the scan still holds the only reader: " << read.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST_F(ScanShardTest, CancellingMidStreamStopsTheScan) {
  // About 0.1 s per block and 200000 blocks: it only ends if stopped.
  MustExecute(
      "CREATE VIEW slow AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
      "LIMIT 200000) SELECT x AS id, 0 AS _virtualShard FROM c");
  grpc::ClientContext context;
  auto reader = stub_->ScanShard(&context, ScanOf("slow", 0, {"id"}, {"id"}, 1));
  ScanShardResponse block;
  for (int i = 1; i <= 2; ++i) {
    ASSERT_TRUE(reader->Read(&block));
    ASSERT_EQ(block.rows(0).values(0).integer(), i);
    EXPECT_FALSE(block.done());
  }
  context.TryCancel();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // Server::Wait() returns only once every call's handler has: a scan that
  // went on would hold it (for hours).
  auto start = std::chrono::steady_clock::now();
  StopServer();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST(ValidateNodeIdTest, AcceptsTheDocumentedAlphabet) {
  EXPECT_TRUE(ValidateNodeId("node-1_a.B").ok());
  EXPECT_FALSE(ValidateNodeId("").ok());
  EXPECT_FALSE(ValidateNodeId("node 1").ok());
  EXPECT_FALSE(ValidateNodeId("node/1").ok());
  EXPECT_FALSE(ValidateNodeId(std::string(129, 'a')).ok());
}

}  // namespace
}  // namespace storage_node
}  // namespace conductor
