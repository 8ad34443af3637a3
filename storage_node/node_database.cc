#include "storage_node/node_database.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/backup_file.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/sqlite.h"
#include "storage_node/shard_scan.h"

namespace conductor {
namespace storage_node {
namespace {

absl::Status PrepareDataDir(const std::string& dir) {
  namespace fs = std::filesystem;
  if (dir.empty()) return absl::InvalidArgumentError("the data dir must not be empty");
  std::error_code error;
  if (fs::exists(dir, error) && !fs::is_directory(dir, error)) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", dir, " exists and is not a directory"));
  }
  fs::create_directories(dir, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create data dir ", dir, ": ", error.message()));
  }
  if (access(dir.c_str(), R_OK | W_OK | X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", dir, " is not writable: ", strerror(errno)));
  }
  return absl::OkStatus();
}

// Names the file in a message that does not already.
absl::Status AboutFile(const absl::Status& status, const std::string& path) {
  if (status.ok() || absl::StrContains(status.message(), path)) return status;
  return Annotate(status, absl::StrCat("cannot use database ", path));
}

// Reads the schema and the journal mode: fails on a file that is not a
// SQLite database or cannot run in WAL mode.
absl::Status CheckWriter(Connection& writer) {
  if (auto s = writer.ExecInternal("SELECT count(*) FROM sqlite_schema"); !s.ok()) return s;
  // Delete triggers also fire for rows that REPLACE removes, so that change
  // capture during a reshard (common/reshard/change_capture.h) sees them.
  if (auto s = writer.ExecInternal("PRAGMA recursive_triggers = ON"); !s.ok()) return s;
  auto mode = writer.db().Prepare("PRAGMA journal_mode");
  if (!mode.ok()) return mode.status();
  auto row = mode->Step();
  if (!row.ok()) return row.status();
  std::string journal_mode = *row ? mode->ColumnText(0) : "";
  if (journal_mode != "wal") {
    return absl::FailedPreconditionError(
        absl::StrCat("journal_mode is \"", journal_mode, "\", not wal (unsupported file system?)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status NodeDatabase::ClaimNodeId(const std::string& node_id) {
  storage::v1::ExecuteBatchRequest request;
  request.add_statements()->set_sql(
      "CREATE TABLE IF NOT EXISTS _conductor_node (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  auto* claim = request.add_statements();
  claim->set_sql("INSERT OR IGNORE INTO _conductor_node (key, value) VALUES ('node_id', ?)");
  *claim->add_params() = TextValue(node_id);
  request.add_statements()->set_sql("SELECT value FROM _conductor_node WHERE key = 'node_id'");
  storage::v1::ExecuteBatchResponse response;
  if (auto s = ExecuteBatch(request, CallControl(), &response); !s.ok()) {
    return AboutFile(s, path_);
  }
  const auto& rows = response.results(2).rows();
  const std::string recorded = rows.empty() ? "" : rows[0].values(0).text();
  if (recorded != node_id) {
    return absl::FailedPreconditionError(absl::StrCat(
        path_, " belongs to storage node \"", recorded, "\", not to --node_id=", node_id,
        " (a restored or copied file in the wrong data directory?); start it with "
        "--node_id=",
        recorded, " or restore the right file"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<NodeDatabase>> NodeDatabase::Open(
    const NodeDatabaseOptions& options) {
  if (options.reader_connections < 1) {
    return absl::InvalidArgumentError("reader_connections must be at least 1");
  }
  if (auto s = PrepareDataDir(options.data_dir); !s.ok()) return s;
  std::error_code error;
  std::filesystem::path dir = std::filesystem::absolute(options.data_dir, error);
  if (error) dir = options.data_dir;
  const std::string path = (dir / kDatabaseFileName).string();
  // Snapshots left by backups that a crash interrupted (see Backup()).
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, ".backup-") &&
        (absl::EndsWith(name, ".tmp") || absl::EndsWith(name, ".tmp-journal"))) {
      std::error_code ignored;
      std::filesystem::remove(entry.path(), ignored);
    }
  }
  error.clear();

  DatabaseOptions writer_options;
  writer_options.wal = true;
  writer_options.synchronous_full = options.synchronous_full;
  auto writer = Connection::Open(path, writer_options, /*query_only=*/false);
  if (!writer.ok()) return AboutFile(writer.status(), path);
  if (auto s = CheckWriter(**writer); !s.ok()) return AboutFile(s, path);
  std::vector<std::unique_ptr<Connection>> writers;
  writers.push_back(std::move(*writer));

  // Readers open the file the writer created; it is already in WAL mode.
  DatabaseOptions reader_options;
  reader_options.create = false;
  reader_options.wal = false;
  reader_options.synchronous_full = options.synchronous_full;
  std::vector<std::unique_ptr<Connection>> readers;
  for (int i = 0; i < options.reader_connections; ++i) {
    auto reader = Connection::Open(path, reader_options, /*query_only=*/true);
    if (!reader.ok()) return AboutFile(reader.status(), path);
    readers.push_back(std::move(*reader));
  }
  LogInfo("opened %s (SQLite %s, synchronous=%s, %d readers)", path, sqlite3_libversion(),
          options.synchronous_full ? "full" : "normal", options.reader_connections);
  return std::unique_ptr<NodeDatabase>(
      new NodeDatabase(path, options.limits, std::make_unique<ConnectionPool>(std::move(writers)),
                       std::make_unique<ConnectionPool>(std::move(readers))));
}

NodeDatabase::NodeDatabase(std::string path, BatchLimits limits,
                           std::unique_ptr<ConnectionPool> writer,
                           std::unique_ptr<ConnectionPool> readers)
    : path_(std::move(path)),
      limits_(limits),
      writer_(std::move(writer)),
      readers_(std::move(readers)) {}

absl::Status NodeDatabase::ExecuteBatch(const storage::v1::ExecuteBatchRequest& request,
                                        const CallControl& control,
                                        storage::v1::ExecuteBatchResponse* response) {
  response->Clear();
  if (request.statements_size() == 0) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kInvalidArgument,
                 "the batch has no statements");
  }
  ConnectionPool& pool = request.read_only() ? *readers_ : *writer_;
  auto connection = pool.Acquire(control);
  if (!connection.ok()) return connection.status();
  return RunBatch(**connection, request, control, limits_, response);
}

absl::Status NodeDatabase::ScanShard(
    const storage::v1::ScanShardRequest& request, const CallControl& control,
    const std::function<bool(const storage::v1::ScanShardResponse&)>& emit) {
  auto scan = ShardScan::Create(request);
  if (!scan.ok()) return scan.status();
  storage::v1::ScanShardResponse block;
  for (int64_t blocks = 0;
       !scan->done() && (request.max_blocks() == 0 || blocks < request.max_blocks()); ++blocks) {
    if (auto s = control.Check("between blocks of the scan"); !s.ok()) return s;
    {
      // Held for one block only: a long read transaction would keep the WAL
      // from being checkpointed, and a slow receiver must not hold a reader.
      auto reader = readers_->Acquire(control);
      if (!reader.ok()) return reader.status();
      if (auto s = scan->ReadBlock(**reader, control, limits_.max_response_bytes, &block);
          !s.ok()) {
        return s;
      }
    }
    if (!emit(block)) return absl::CancelledError("the receiver of the scan went away");
  }
  return absl::OkStatus();
}

absl::Status NodeDatabase::Backup(
    const storage::v1::BackupRequest& request, const CallControl& control,
    const std::function<bool(const storage::v1::BackupResponse&)>& emit) {
  constexpr int32_t kDefaultChunk = 1 << 20;
  constexpr int32_t kMaxChunk = 16 << 20;
  if (request.chunk_bytes() < 0 || request.chunk_bytes() > kMaxChunk) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kInvalidArgument,
                 absl::StrCat("chunk_bytes must be within 0..", kMaxChunk));
  }
  const int64_t chunk = request.chunk_bytes() == 0 ? kDefaultChunk : request.chunk_bytes();
  if (auto s = control.Check("before the backup"); !s.ok()) return s;
  static std::atomic<int64_t> counter{0};
  const std::string tmp = absl::StrCat(std::filesystem::path(path_).parent_path().string(),
                                       "/.backup-", getpid(), "-", counter.fetch_add(1), ".tmp");
  struct Remove {
    std::string path;
    ~Remove() {
      std::error_code ignored;
      std::filesystem::remove(path, ignored);
      std::filesystem::remove(path + "-journal", ignored);
    }
  } remove{tmp};
  const absl::Time started = absl::Now();
  if (auto s = SnapshotDatabase(path_, tmp); !s.ok()) return s;
  LogInfo("backup: snapshot of %s taken in %s", path_, absl::FormatDuration(absl::Now() - started));
  storage::v1::BackupResponse message;
  absl::Status stop;
  int64_t size = 0;
  std::string sha256;
  absl::Status s = ReadFileInChunks(
      tmp, chunk,
      [&](int64_t offset, absl::string_view data) {
        if (stop = control.Check("between chunks of the backup"); !stop.ok()) return false;
        message.Clear();
        message.set_offset(offset);
        message.set_data(data.data(), data.size());
        return emit(message);
      },
      &size, &sha256);
  if (!stop.ok()) return stop;
  if (!s.ok()) return s;
  message.Clear();
  message.set_offset(size);
  message.set_last(true);
  message.set_size_bytes(size);
  message.set_sha256(sha256);
  if (!emit(message)) return absl::CancelledError("the receiver of the backup went away");
  return absl::OkStatus();
}

}  // namespace storage_node
}  // namespace conductor
