#include "conductor/server/backup_service.h"

#include <atomic>
#include <filesystem>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/backup_file.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/sqlite.h"

namespace conductor {
namespace {

using conductor::internal::v1::BackupFile;
using conductor::internal::v1::BackupManifest;
using conductor::internal::v1::BackupResponse;

constexpr int32_t kDefaultChunk = 1 << 20;
constexpr int32_t kMaxChunk = 16 << 20;

constexpr char kConsistency[] =
    "Each file is a consistent snapshot of its database (SQLite online backup API), taken one "
    "after another while writes continued: topology.db first, then the storage nodes in "
    "node-id order, then index_entries.db. No table, index or reshard operation ran between the "
    "first and the last snapshot (the topology version did not change, and no reshard was "
    "active), so every table of the topology exists with the same shards on every node. A row "
    "lives on one shard of one node, so each row is present or absent as a whole; rows written "
    "while the backup ran may or may not be in it, and a statement that touched several shards "
    "may be partly in it. There is no cross-node point in time. The restored conductor "
    "recounts every virtual index when it starts.";

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

struct TopologyFacts {
  int32_t schema_version = 0;
  int64_t topology_version = 0;
  std::vector<NodeMeta> nodes;
  std::string active_reshard;  // "table (change_log_id)" or ""
};

absl::StatusOr<TopologyFacts> ReadFacts(const std::string& path) {
  DatabaseOptions options;
  options.read_only = true;
  options.create = false;
  options.wal = false;
  auto db = Database::Open(path, options);
  if (!db.ok()) return db.status();
  TopologyFacts facts;
  absl::Status s = (*db)->ForEachRow("PRAGMA user_version", [&](const Statement& row) {
    facts.schema_version = static_cast<int32_t>(row.ColumnInt64(0));
    return absl::OkStatus();
  });
  if (s.ok()) {
    s = (*db)->ForEachRow("SELECT value FROM meta WHERE key = 'topology_version'",
                          [&](const Statement& row) {
                            facts.topology_version = row.ColumnInt64(0);
                            return absl::OkStatus();
                          });
  }
  if (s.ok()) {
    s = (*db)->ForEachRow("SELECT node_id, address FROM storage_nodes ORDER BY node_id",
                          [&](const Statement& row) {
                            facts.nodes.push_back({row.ColumnText(0), row.ColumnText(1)});
                            return absl::OkStatus();
                          });
  }
  bool has_reshards = false;
  if (s.ok()) {
    s = (*db)->ForEachRow(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'reshard_operations'",
        [&](const Statement&) {
          has_reshards = true;
          return absl::OkStatus();
        });
  }
  if (s.ok() && has_reshards) {
    s = (*db)->ForEachRow(
        "SELECT table_name, change_log_id FROM reshard_operations "
        "WHERE phase NOT IN ('complete', 'failed') LIMIT 1",
        [&](const Statement& row) {
          facts.active_reshard = absl::StrCat(row.ColumnText(0), " (", row.ColumnText(1), ")");
          return absl::OkStatus();
        });
  }
  if (!s.ok()) return Annotate(s, "reading the snapshot of the topology");
  return facts;
}

}  // namespace

std::string BackupNodePath(const std::string& node_id) {
  return absl::StrCat("nodes/", node_id, "/storage.db");
}

BackupService::BackupService(std::string data_dir, TopologyStore* store, GrpcStorageClient* storage)
    : data_dir_(std::move(data_dir)), store_(store), storage_(storage) {
  // Snapshots left behind by a backup that a crash interrupted.
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(data_dir_, error)) {
    const std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, ".backup-") && absl::EndsWith(name, ".tmp")) {
      std::error_code ignored;
      std::filesystem::remove_all(entry.path(), ignored);
    }
  }
}

grpc::Status BackupService::Backup(grpc::ServerContext* context,
                                   const conductor::internal::v1::BackupRequest* request,
                                   grpc::ServerWriter<BackupResponse>* writer) {
  if (request->chunk_bytes() < 0 || request->chunk_bytes() > kMaxChunk) {
    return ToGrpcStatus(Error(absl::StatusCode::kInvalidArgument, reason::kInvalidArgument,
                              absl::StrCat("chunk_bytes must be within 0..", kMaxChunk)));
  }
  const int64_t chunk = request->chunk_bytes() == 0 ? kDefaultChunk : request->chunk_bytes();
  // One backup at a time; a second one is refused rather than queued (a
  // stalled client must not hold every later backup and a thread each).
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) {
    return ToGrpcStatus(Error(absl::StatusCode::kAborted, reason::kBackupInProgress,
                              "another backup is running on this conductor; run this one after "
                              "it ends (or cancel it)"));
  }
  const absl::Time started = absl::Now();
  absl::Status status = Run(
      context, chunk, [writer](const BackupResponse& message) { return writer->Write(message); });
  if (status.ok()) {
    LogInfo("backup: done in %s", absl::FormatDuration(absl::Now() - started));
  } else {
    LogWarning("backup failed: %s", status.ToString());
  }
  return ToGrpcStatus(status);
}

absl::Status BackupService::Run(grpc::ServerContext* context, int64_t chunk_bytes,
                                const Emit& emit) {
  static std::atomic<int64_t> counter{0};
  const std::string tmp = absl::StrCat(data_dir_, "/.backup-", counter.fetch_add(1), ".tmp");
  struct RemoveAll {
    std::string path;
    ~RemoveAll() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  } cleanup{tmp};
  {
    std::error_code ignored;
    std::filesystem::remove_all(tmp, ignored);
  }
  std::error_code error;
  std::filesystem::create_directories(tmp, error);
  if (error) {
    return absl::InternalError(absl::StrCat("cannot create ", tmp, ": ", error.message()));
  }
  const auto gone = [] { return absl::CancelledError("the receiver of the backup went away"); };

  BackupManifest manifest;
  manifest.set_format(kBackupFormat);
  manifest.set_started_at_ms(NowMs());

  // 1. The topology first: it fixes which nodes and tables the backup holds.
  const int64_t topology_at = NowMs();
  if (auto s = SnapshotDatabase(data_dir_ + "/topology.db", tmp + "/topology.db"); !s.ok()) {
    return Annotate(s, "snapshot of the topology store");
  }
  auto facts = ReadFacts(tmp + "/topology.db");
  if (!facts.ok()) return facts.status();
  if (!facts->active_reshard.empty()) {
    return Error(absl::StatusCode::kFailedPrecondition, reason::kReshardInProgress,
                 absl::StrCat("a reshard is active: ", facts->active_reshard,
                              "; a backup cannot be taken while a table is being resharded. "
                              "Wait until it completes (WatchReshard, conductorctl reshard "
                              "--wait) and run the backup again"));
  }
  manifest.set_topology_schema_version(facts->schema_version);
  manifest.set_topology_version(facts->topology_version);
  for (const NodeMeta& node : facts->nodes) {
    auto* entry = manifest.add_nodes();
    entry->set_node_id(node.node_id);
    entry->set_address(node.address);
  }

  // Streams a local file under `path`, ending with its size and checksum.
  auto stream_file = [&](const std::string& local, const std::string& path, const char* kind,
                         int64_t snapshot_at) -> absl::Status {
    BackupResponse message;
    int64_t size = 0;
    std::string sha256;
    absl::Status s = ReadFileInChunks(
        local, chunk_bytes,
        [&](int64_t offset, absl::string_view data) {
          message.Clear();
          message.set_path(path);
          message.set_offset(offset);
          message.set_data(data.data(), data.size());
          return emit(message);
        },
        &size, &sha256);
    if (!s.ok()) return s;
    message.Clear();
    message.set_path(path);
    message.set_offset(size);
    message.set_file_end(true);
    message.set_size_bytes(size);
    message.set_sha256(sha256);
    if (!emit(message)) return gone();
    BackupFile* file = manifest.add_files();
    file->set_path(path);
    file->set_kind(kind);
    file->set_size_bytes(size);
    file->set_sha256(sha256);
    file->set_snapshot_at_ms(snapshot_at);
    return absl::OkStatus();
  };

  // 2. Every storage node, one after the other, proxied chunk by chunk.
  for (const NodeMeta& node : facts->nodes) {
    const std::string path = BackupNodePath(node.node_id);
    auto call = grpc::ClientContext::FromServerContext(*context);
    storage::v1::BackupRequest request;
    request.set_chunk_bytes(static_cast<int32_t>(chunk_bytes));
    const int64_t snapshot_at = NowMs();
    auto reader = storage_->stub(node.address)->Backup(call.get(), request);
    storage::v1::BackupResponse chunk;
    BackupResponse message;
    Sha256 hash;
    int64_t received = 0;
    bool ended = false;
    absl::Status broken;
    while (reader->Read(&chunk)) {
      if (chunk.last()) {
        ended = true;
        const std::string sha256 = hash.HexDigest();
        if (chunk.size_bytes() != received || chunk.sha256() != sha256) {
          broken = Error(absl::StatusCode::kDataLoss, reason::kBackupChecksumMismatch,
                         absl::StrCat("the backup of storage node ", node.node_id, " arrived with ",
                                      received, " bytes, SHA-256 ", sha256, "; the node sent ",
                                      chunk.size_bytes(), " bytes, SHA-256 ", chunk.sha256()));
          call->TryCancel();
          break;
        }
        message.Clear();
        message.set_path(path);
        message.set_offset(received);
        message.set_file_end(true);
        message.set_size_bytes(received);
        message.set_sha256(sha256);
        if (!emit(message)) {
          broken = gone();
          call->TryCancel();
          break;
        }
        BackupFile* file = manifest.add_files();
        file->set_path(path);
        file->set_kind("storage_node");
        file->set_node_id(node.node_id);
        file->set_size_bytes(received);
        file->set_sha256(sha256);
        file->set_snapshot_at_ms(snapshot_at);
        continue;
      }
      if (chunk.offset() != received) {
        broken = Error(absl::StatusCode::kDataLoss, reason::kBackupChecksumMismatch,
                       absl::StrCat("the backup of storage node ", node.node_id,
                                    " skipped bytes: chunk at offset ", chunk.offset(),
                                    ", expected ", received));
        call->TryCancel();
        break;
      }
      hash.Update(chunk.data());
      received += static_cast<int64_t>(chunk.data().size());
      message.Clear();
      message.set_path(path);
      message.set_offset(chunk.offset());
      message.set_data(std::move(*chunk.mutable_data()));
      if (!emit(message)) {
        broken = gone();
        call->TryCancel();
        break;
      }
    }
    grpc::Status finished = reader->Finish();
    if (!broken.ok()) return broken;
    if (!finished.ok()) {
      return Annotate(StorageCallStatus(node, finished),
                      absl::StrCat("backup of storage node ", node.node_id));
    }
    if (!ended) {
      return Error(absl::StatusCode::kUnavailable, reason::kStorageUnavailable,
                   absl::StrCat("the backup stream of storage node ", node.node_id,
                                " ended without its checksum"));
    }
    LogInfo("backup: storage node %s (%s): %d bytes", node.node_id, node.address, received);
  }

  // 3. The index entries (rebuilt by the recount at start anyway).
  const int64_t entries_at = NowMs();
  if (auto s = SnapshotDatabase(data_dir_ + "/index_entries.db", tmp + "/index_entries.db");
      !s.ok()) {
    return Annotate(s, "snapshot of the index entries");
  }

  // 4. Nothing in the topology may have changed since its snapshot.
  const int64_t now_version = store_->snapshot()->version;
  if (now_version != facts->topology_version) {
    return Error(absl::StatusCode::kAborted, reason::kTopologyChanged,
                 absl::StrCat("the topology changed while the backup ran (version ",
                              facts->topology_version, " -> ", now_version,
                              ": a table, index or reshard operation); run the backup again"));
  }
  if (auto s = stream_file(tmp + "/index_entries.db", kBackupIndexEntriesPath, "index_entries",
                           entries_at);
      !s.ok()) {
    return s;
  }
  if (auto s = stream_file(tmp + "/topology.db", kBackupTopologyPath, "topology", topology_at);
      !s.ok()) {
    return s;
  }

  const absl::Time finished = absl::Now();
  manifest.set_finished_at_ms(absl::ToUnixMillis(finished));
  manifest.set_finished_at(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", finished, absl::UTCTimeZone()));
  manifest.set_consistency(kConsistency);
  BackupResponse last;
  *last.mutable_manifest() = std::move(manifest);
  if (!emit(last)) return gone();
  return absl::OkStatus();
}

}  // namespace conductor
