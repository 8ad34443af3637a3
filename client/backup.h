// conductorctl backup / restore (docs/operations.md#backups-and-restore).
#ifndef CONDUCTOR_CLIENT_BACKUP_H_
#define CONDUCTOR_CLIENT_BACKUP_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "conductor/internal/v1/backup.pb.h"
#include "grpcpp/channel.h"

namespace conductor {

// Takes an online backup of the cluster through the conductor's
// BackupService on `channel` and writes it to `out_dir`, which must not exist
// or be empty: one file per database (conductor/topology.db,
// conductor/index_entries.db, nodes/<node_id>/storage.db) and, written last,
// manifest.json. Every file's size and SHA-256 are checked against what the
// conductor sent. `progress` (may be empty) gets one line per file. On
// failure the files written so far are removed (no manifest is left).
absl::StatusOr<conductor::internal::v1::BackupManifest> TakeBackup(
    std::shared_ptr<grpc::Channel> channel, const std::string& out_dir, int32_t chunk_bytes,
    const std::function<void(const std::string&)>& progress);

// Reads and checks DIR/manifest.json (NOT_FOUND without one: an incomplete
// backup; INVALID_ARGUMENT when it is not a manifest of this format).
absl::StatusOr<conductor::internal::v1::BackupManifest> ReadBackupManifest(
    const std::string& backup_dir);

// Restores the conductor's files (topology.db, index_entries.db) from a
// backup into `data_dir`, which must not exist or be empty. Each file's size
// and SHA-256 are checked against the manifest (DATA_LOSS on a mismatch,
// nothing left behind). The node addresses in the restored topology are
// cleared: the conductor matches nodes by id at the --storage_nodes
// addresses it is started with.
absl::Status RestoreConductor(const std::string& backup_dir, const std::string& data_dir);

// Restores storage node `node_id`'s database into `data_dir` (must not exist
// or be empty); start the node with --node_id=`node_id`. NOT_FOUND when the
// backup has no such node.
absl::Status RestoreNode(const std::string& backup_dir, const std::string& node_id,
                         const std::string& data_dir);

}  // namespace conductor

#endif  // CONDUCTOR_CLIENT_BACKUP_H_
