// Drives NodeDatabase directly: what the gRPC edge cannot show (the exact
// status of an interrupted call) and opening unusable data directories.
#include "storage_node/node_database.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace conductor {
namespace storage_node {
namespace {

using storage::v1::ExecuteBatchRequest;
using storage::v1::ExecuteBatchResponse;

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

std::unique_ptr<NodeDatabase> OpenOrDie(const std::string& dir) {
  NodeDatabaseOptions options;
  options.data_dir = dir;
  options.reader_connections = 2;
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

}  // namespace
}  // namespace storage_node
}  // namespace conductor
