// Storage.Backup (NodeDatabase::Backup) through a real in-process gRPC server:
// the streamed file is a consistent SQLite snapshot whose size and SHA-256
// match, taken while a writer keeps writing, and no temporary file is left.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/backup_file.h"
#include "common/sqlite.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "storage/v1/storage.grpc.pb.h"
#include "storage_node/storage_service.h"

namespace conductor {
namespace storage_node {
namespace {

class StorageBackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = ::testing::TempDir() + "/storage_backup_test/" + info->name();
    std::filesystem::remove_all(dir_);
    NodeDatabaseOptions options;
    options.data_dir = dir_ + "/data";
    auto database = NodeDatabase::Open(options);
    ASSERT_TRUE(database.ok()) << database.status();
    service_ = std::make_unique<StorageService>("node-1", std::move(*database));
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = storage::v1::Storage::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                              grpc::InsecureChannelCredentials()));
    Write("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    Write(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) "
        "INSERT INTO t SELECT i, printf('value %08d', i) FROM n");
  }

  void TearDown() override {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    server_->Wait();
  }

  grpc::Status Write(const std::string& sql) {
    storage::v1::ExecuteBatchRequest request;
    request.add_statements()->set_sql(sql);
    storage::v1::ExecuteBatchResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub_->ExecuteBatch(&context, request, &response);
    EXPECT_TRUE(status.ok()) << sql << ": " << status.error_message();
    return status;
  }

  struct Received {
    grpc::Status status;
    std::string bytes;
    int messages = 0;
    bool offsets_in_order = true;
    storage::v1::BackupResponse last;
  };

  Received Backup(int32_t chunk_bytes) {
    Received received;
    storage::v1::BackupRequest request;
    request.set_chunk_bytes(chunk_bytes);
    grpc::ClientContext context;
    auto reader = stub_->Backup(&context, request);
    storage::v1::BackupResponse message;
    while (reader->Read(&message)) {
      ++received.messages;
      if (message.offset() != static_cast<int64_t>(received.bytes.size())) {
        received.offsets_in_order = false;
      }
      received.bytes += message.data();
      received.last = message;
    }
    received.status = reader->Finish();
    return received;
  }

  int64_t CountRows(const std::string& bytes, std::string* integrity) {
    const std::string path = dir_ + "/restored-" + std::to_string(restored_++) + ".db";
    std::ofstream(path, std::ios::binary) << bytes;
    auto db = Database::Open(path, {.create = false, .wal = false});
    EXPECT_TRUE(db.ok()) << db.status();
    if (!db.ok()) return -1;
    int64_t count = -1;
    EXPECT_TRUE((*db)
                    ->ForEachRow("PRAGMA integrity_check",
                                 [&](const Statement& row) {
                                   *integrity = row.ColumnText(0);
                                   return absl::OkStatus();
                                 })
                    .ok());
    EXPECT_TRUE((*db)
                    ->ForEachRow("SELECT count(*) FROM t",
                                 [&](const Statement& row) {
                                   count = row.ColumnInt64(0);
                                   return absl::OkStatus();
                                 })
                    .ok());
    return count;
  }

  std::string dir_;
  int restored_ = 0;
  std::unique_ptr<StorageService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<storage::v1::Storage::Stub> stub_;
};

TEST_F(StorageBackupTest, StreamsAConsistentSnapshotInChunksWithItsChecksum) {
  Received received = Backup(64 * 1024);
  ASSERT_TRUE(received.status.ok()) << received.status.error_message();
  EXPECT_TRUE(received.offsets_in_order);
  ASSERT_TRUE(received.last.last());
  EXPECT_TRUE(received.last.data().empty());
  EXPECT_EQ(received.last.size_bytes(), static_cast<int64_t>(received.bytes.size()));
  EXPECT_EQ(received.last.sha256(), Sha256Hex(received.bytes));
  // Data messages of 64 KiB each, then the closing message.
  EXPECT_EQ(received.messages, (received.bytes.size() + 65535) / 65536 + 1);
  std::string integrity;
  EXPECT_EQ(CountRows(received.bytes, &integrity), 20000);
  EXPECT_EQ(integrity, "ok");
  // The temporary snapshot is gone.
  for (const auto& entry : std::filesystem::directory_iterator(dir_ + "/data")) {
    EXPECT_FALSE(absl::StrContains(entry.path().filename().string(), ".backup-")) << entry.path();
  }
}

TEST_F(StorageBackupTest, WritersKeepGoingWhileABackupRuns) {
  std::atomic<bool> stop{false};
  std::atomic<int64_t> written{0};
  std::thread writer([&] {
    for (int64_t k = 100000; !stop.load(); ++k) {
      if (!Write(absl::StrCat("INSERT INTO t VALUES (", k, ", 'written during the backup')"))
               .ok()) {
        return;
      }
      written.fetch_add(1);
    }
  });
  // Several backups in a row, a small chunk size so each takes a while.
  for (int i = 0; i < 3; ++i) {
    const int64_t before = written.load();
    Received received = Backup(4096);
    const int64_t after = written.load();
    ASSERT_TRUE(received.status.ok()) << received.status.error_message();
    EXPECT_EQ(received.last.sha256(), Sha256Hex(received.bytes));
    std::string integrity;
    const int64_t rows = CountRows(received.bytes, &integrity);
    EXPECT_EQ(integrity, "ok");
    EXPECT_GE(rows, 20000 + before);
    EXPECT_LE(rows, 20000 + after + 1);
  }
  stop = true;
  writer.join();
  EXPECT_GT(written.load(), 0);
}

TEST_F(StorageBackupTest, OpenRemovesSnapshotsLeftByACrash) {
  const std::string data = dir_ + "/data";
  std::ofstream(data + "/.backup-123-0.tmp") << "half a snapshot";
  std::ofstream(data + "/.backup-123-0.tmp-journal") << "journal";
  std::ofstream(data + "/keep.txt") << "not ours";
  NodeDatabaseOptions options;
  options.data_dir = data;
  auto second = NodeDatabase::Open(options);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(std::filesystem::exists(data + "/.backup-123-0.tmp"));
  EXPECT_FALSE(std::filesystem::exists(data + "/.backup-123-0.tmp-journal"));
  EXPECT_TRUE(std::filesystem::exists(data + "/keep.txt"));
}

TEST_F(StorageBackupTest, RefusesAnOutOfRangeChunkSize) {
  EXPECT_EQ(Backup(-1).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Backup(17 << 20).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace storage_node
}  // namespace conductor
