#include "client/backup.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/backup_file.h"
#include "common/errors.h"
#include "common/sqlite.h"
#include "conductor/internal/v1/backup.grpc.pb.h"
#include "google/protobuf/util/json_util.h"

namespace conductor {
namespace {

namespace fs = std::filesystem;
using conductor::internal::v1::BackupFile;
using conductor::internal::v1::BackupManifest;
using conductor::internal::v1::BackupResponse;

constexpr char kFormat[] = "conductor-backup/1";
constexpr char kManifest[] = "manifest.json";
constexpr char kRestoredAddressPrefix[] = "restored-unassigned:";

bool ValidName(absl::string_view name) {
  if (name.empty() || name == "." || name == "..") return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

// A path the conductor may send: "conductor/<name>.db" or
// "nodes/<node_id>/storage.db", nothing that leaves the directory.
bool ValidBackupPath(const std::string& path) {
  std::vector<std::string> parts = absl::StrSplit(path, '/');
  if (parts.size() == 2) {
    return parts[0] == "conductor" && (parts[1] == "topology.db" || parts[1] == "index_entries.db");
  }
  return parts.size() == 3 && parts[0] == "nodes" && ValidName(parts[1]) &&
         parts[2] == "storage.db";
}

// Whether `dir` holds nothing but a file system's lost+found (a freshly
// formatted volume, e.g. a Kubernetes PersistentVolume, has one).
bool EffectivelyEmpty(const std::string& dir) {
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(dir, error)) {
    if (entry.path().filename() != "lost+found") return false;
  }
  return !error;
}

// OK when `dir` does not exist (it is created) or is an empty directory
// (lost+found aside).
absl::Status PrepareEmptyDir(const std::string& dir, const char* what) {
  std::error_code error;
  if (fs::exists(dir, error)) {
    if (!fs::is_directory(dir, error)) {
      return absl::FailedPreconditionError(absl::StrCat(what, " ", dir, " is not a directory"));
    }
    if (!EffectivelyEmpty(dir)) {
      return absl::FailedPreconditionError(
          absl::StrCat("refusing to write into ", what, " ", dir,
                       ": it is not empty (use a new or empty directory)"));
    }
  }
  fs::create_directories(dir, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", what, " ", dir, ": ", error.message()));
  }
  return absl::OkStatus();
}

absl::Status SyncFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) != 0) {
    int saved = errno;
    if (fd >= 0) close(fd);
    return absl::InternalError(absl::StrCat("cannot sync ", path, ": ", strerror(saved)));
  }
  close(fd);
  return absl::OkStatus();
}

absl::Status WriteManifest(const BackupManifest& manifest, const std::string& dir) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  auto s = google::protobuf::util::MessageToJsonString(manifest, &json, options);
  if (!s.ok()) return absl::InternalError(std::string(s.message()));
  const std::string tmp = absl::StrCat(dir, "/", kManifest, ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << json;
    if (!out.good()) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  if (auto s2 = SyncFile(tmp); !s2.ok()) return s2;
  std::error_code error;
  fs::rename(tmp, absl::StrCat(dir, "/", kManifest), error);
  if (error)
    return absl::InternalError(absl::StrCat("cannot write the manifest: ", error.message()));
  return absl::OkStatus();
}

// Copies `from` to `to` (which must not exist), checking its size and
// SHA-256 against `expected` on the way.
absl::Status CopyVerified(const std::string& from, const std::string& to,
                          const BackupFile& expected) {
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  if (!out) return absl::InternalError(absl::StrCat("cannot create ", to));
  int64_t size = 0;
  std::string sha256;
  absl::Status s = ReadFileInChunks(
      from, 1 << 20,
      [&](int64_t, absl::string_view data) {
        out.write(data.data(), static_cast<std::streamsize>(data.size()));
        return out.good();
      },
      &size, &sha256);
  out.close();
  if (!s.ok()) {
    return Annotate(s, absl::StrCat("cannot read backup file ", from));
  }
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", to));
  if (size != expected.size_bytes() || sha256 != expected.sha256()) {
    return Error(
        absl::StatusCode::kDataLoss, reason::kBackupCorrupt,
        absl::StrCat("backup file ", from, " is corrupt: it has ", size, " bytes with SHA-256 ",
                     sha256, ", the manifest says ", expected.size_bytes(), " bytes with SHA-256 ",
                     expected.sha256(), "; nothing was restored"));
  }
  return SyncFile(to);
}

struct Placement {
  BackupFile file;
  std::string target;  // file name inside the data dir
};

// Restores `files` into `data_dir`; on failure removes what it wrote.
absl::Status RestoreFiles(const std::string& backup_dir, const std::vector<Placement>& files,
                          const std::string& data_dir,
                          const std::function<absl::Status()>& after_copy) {
  if (auto s = PrepareEmptyDir(data_dir, "data directory"); !s.ok()) return s;
  std::vector<std::string> written;
  auto undo = [&](absl::Status status) {
    std::error_code ignored;
    for (const std::string& path : written) {
      fs::remove(path, ignored);
      fs::remove(path + "-wal", ignored);
      fs::remove(path + "-shm", ignored);
      fs::remove(path + ".restoring", ignored);
    }
    return status;
  };
  for (const Placement& placement : files) {
    const std::string target = absl::StrCat(data_dir, "/", placement.target);
    written.push_back(target);
    const std::string partial = target + ".restoring";
    if (auto s = CopyVerified(absl::StrCat(backup_dir, "/", placement.file.path()), partial,
                              placement.file);
        !s.ok()) {
      return undo(s);
    }
    std::error_code error;
    fs::rename(partial, target, error);
    if (error) {
      return undo(
          absl::InternalError(absl::StrCat("cannot rename ", partial, ": ", error.message())));
    }
  }
  if (after_copy) {
    if (auto s = after_copy(); !s.ok()) return undo(s);
  }
  return absl::OkStatus();
}

const BackupFile* FindFile(const BackupManifest& manifest, const std::string& kind,
                           const std::string& node_id = "") {
  for (const BackupFile& file : manifest.files()) {
    if (file.kind() == kind && file.node_id() == node_id) return &file;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<BackupManifest> TakeBackup(std::shared_ptr<grpc::Channel> channel,
                                          const std::string& out_dir, int32_t chunk_bytes,
                                          const std::function<void(const std::string&)>& progress) {
  if (auto s = PrepareEmptyDir(out_dir, "backup directory"); !s.ok()) return s;
  auto stub = conductor::internal::v1::BackupService::NewStub(channel);
  grpc::ClientContext context;
  conductor::internal::v1::BackupRequest request;
  request.set_chunk_bytes(chunk_bytes);
  auto reader = stub->Backup(&context, request);

  struct Open {
    std::ofstream out;
    Sha256 hash;
    int64_t size = 0;
  };
  std::map<std::string, Open> open;
  std::map<std::string, std::string> done;  // path -> sha256
  std::set<std::string> created;
  absl::Status broken;
  BackupManifest manifest;
  bool have_manifest = false;
  BackupResponse message;
  while (broken.ok() && reader->Read(&message)) {
    if (message.has_manifest()) {
      manifest = message.manifest();
      have_manifest = true;
      continue;
    }
    const std::string& path = message.path();
    if (!ValidBackupPath(path) || done.count(path) > 0) {
      broken =
          absl::InternalError(absl::StrCat("the conductor sent an unexpected file \"", path, "\""));
      break;
    }
    auto it = open.find(path);
    if (it == open.end()) {
      const std::string local = absl::StrCat(out_dir, "/", path);
      std::error_code error;
      fs::create_directories(fs::path(local).parent_path(), error);
      created.insert(local);
      it = open.emplace(path, Open()).first;
      it->second.out.open(local, std::ios::binary | std::ios::trunc);
      if (!it->second.out) {
        broken = absl::InternalError(absl::StrCat("cannot create ", local));
        break;
      }
    }
    Open& file = it->second;
    if (message.offset() != file.size) {
      broken = Error(
          absl::StatusCode::kDataLoss, "BACKUP_CHECKSUM_MISMATCH",
          absl::StrCat(path, ": chunk at offset ", message.offset(), ", expected ", file.size));
      break;
    }
    if (!message.data().empty()) {
      file.out.write(message.data().data(), static_cast<std::streamsize>(message.data().size()));
      file.hash.Update(message.data());
      file.size += static_cast<int64_t>(message.data().size());
      if (!file.out) {
        broken = absl::InternalError(absl::StrCat("cannot write ", out_dir, "/", path));
        break;
      }
    }
    if (message.file_end()) {
      file.out.close();
      const std::string sha256 = file.hash.HexDigest();
      if (!file.out || file.size != message.size_bytes() || sha256 != message.sha256()) {
        broken = Error(absl::StatusCode::kDataLoss, "BACKUP_CHECKSUM_MISMATCH",
                       absl::StrCat(path, ": received ", file.size, " bytes with SHA-256 ", sha256,
                                    ", the conductor sent ", message.size_bytes(),
                                    " bytes with SHA-256 ", message.sha256()));
        break;
      }
      if (auto s = SyncFile(absl::StrCat(out_dir, "/", path)); !s.ok()) {
        broken = s;
        break;
      }
      done[path] = sha256;
      open.erase(it);
      if (progress) progress(absl::StrCat(path, ": ", file.size, " bytes, sha256 ", sha256));
    }
  }
  if (!broken.ok()) context.TryCancel();
  grpc::Status finished = reader->Finish();
  if (broken.ok() && !finished.ok()) broken = FromGrpcStatus(finished);
  if (broken.ok() && (!have_manifest || !open.empty())) {
    broken = absl::InternalError("the backup stream ended without its manifest");
  }
  if (broken.ok()) {
    for (const BackupFile& file : manifest.files()) {
      auto it = done.find(file.path());
      if (it == done.end() || it->second != file.sha256()) {
        broken =
            Error(absl::StatusCode::kDataLoss, "BACKUP_CHECKSUM_MISMATCH",
                  absl::StrCat("the manifest lists ", file.path(), " which did not arrive intact"));
        break;
      }
    }
    if (broken.ok() && done.size() != static_cast<size_t>(manifest.files_size())) {
      broken = absl::InternalError("the manifest does not list every file received");
    }
  }
  if (broken.ok()) broken = WriteManifest(manifest, out_dir);
  if (!broken.ok()) {
    open.clear();
    std::error_code ignored;
    for (const std::string& local : created) fs::remove(local, ignored);
    fs::remove_all(absl::StrCat(out_dir, "/nodes"), ignored);
    fs::remove_all(absl::StrCat(out_dir, "/conductor"), ignored);
    return broken;
  }
  return manifest;
}

absl::StatusOr<BackupManifest> ReadBackupManifest(const std::string& backup_dir) {
  const std::string path = absl::StrCat(backup_dir, "/", kManifest);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Error(absl::StatusCode::kNotFound, "BACKUP_NOT_FOUND",
                 absl::StrCat("no ", path, ": not a backup directory, or an incomplete backup"));
  }
  std::stringstream text;
  text << in.rdbuf();
  BackupManifest manifest;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto s = google::protobuf::util::JsonStringToMessage(text.str(), &manifest, options);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a valid manifest: ", s.message().as_string()));
  }
  if (manifest.format() != kFormat) {
    return absl::InvalidArgumentError(absl::StrCat(path, " has format \"", manifest.format(),
                                                   "\"; this conductorctl reads ", kFormat));
  }
  for (const BackupFile& file : manifest.files()) {
    if (!ValidBackupPath(file.path())) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " lists an invalid file path \"", file.path(), "\""));
    }
  }
  return manifest;
}

absl::Status RestoreConductor(const std::string& backup_dir, const std::string& data_dir) {
  auto manifest = ReadBackupManifest(backup_dir);
  if (!manifest.ok()) return manifest.status();
  const BackupFile* topology = FindFile(*manifest, "topology");
  const BackupFile* entries = FindFile(*manifest, "index_entries");
  if (topology == nullptr || entries == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("the backup in ", backup_dir, " has no topology or index entry file"));
  }
  return RestoreFiles(backup_dir, {{*topology, "topology.db"}, {*entries, "index_entries.db"}},
                      data_dir, [&]() -> absl::Status {
                        // Nodes are matched by id when the conductor starts: forget the old
                        // addresses, which a new cluster may give to other nodes.
                        auto db = Database::Open(absl::StrCat(data_dir, "/topology.db"));
                        if (!db.ok()) return db.status();
                        return (*db)->Exec(absl::StrCat("UPDATE storage_nodes SET address = '",
                                                        kRestoredAddressPrefix, "' || node_id"));
                      });
}

absl::Status RestoreNode(const std::string& backup_dir, const std::string& node_id,
                         const std::string& data_dir) {
  auto manifest = ReadBackupManifest(backup_dir);
  if (!manifest.ok()) return manifest.status();
  const BackupFile* file = FindFile(*manifest, "storage_node", node_id);
  if (file == nullptr) {
    std::string ids;
    for (const auto& node : manifest->nodes()) {
      absl::StrAppend(&ids, ids.empty() ? "" : ", ", node.node_id());
    }
    return Error(absl::StatusCode::kNotFound, "NODE_NOT_FOUND",
                 absl::StrCat("the backup in ", backup_dir, " has no storage node \"", node_id,
                              "\"; it has: ", ids));
  }
  return RestoreFiles(backup_dir, {{*file, "storage.db"}}, data_dir, nullptr);
}

}  // namespace conductor
