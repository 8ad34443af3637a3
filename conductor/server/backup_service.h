// conductor.internal.v1.BackupService: an online backup of the whole cluster,
// streamed to `conductorctl backup` (docs/operations.md#backups-and-restore).
#ifndef CONDUCTOR_CONDUCTOR_SERVER_BACKUP_SERVICE_H_
#define CONDUCTOR_CONDUCTOR_SERVER_BACKUP_SERVICE_H_

#include <functional>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "conductor/internal/v1/backup.grpc.pb.h"
#include "conductor/storage/storage_client.h"
#include "conductor/topo/topology_store.h"
#include "grpcpp/grpcpp.h"

namespace conductor {

// The path of each file inside a backup directory.
inline constexpr char kBackupTopologyPath[] = "conductor/topology.db";
inline constexpr char kBackupIndexEntriesPath[] = "conductor/index_entries.db";
inline constexpr char kBackupManifestName[] = "manifest.json";
inline constexpr char kBackupFormat[] = "conductor-backup/1";
// `conductorctl restore` replaces every node address of a restored topology
// with this prefix and the node id; the conductor then registers each node
// at the --storage_nodes address where it answers with that id, and refuses
// to start while one is left unassigned.
inline constexpr char kRestoredAddressPrefix[] = "restored-unassigned:";
std::string BackupNodePath(const std::string& node_id);

// Thread-safe; one backup runs at a time (a second waits for the first).
class BackupService final : public conductor::internal::v1::BackupService::Service {
 public:
  // `data_dir` holds topology.db and index_entries.db; `store` and `storage`
  // outlive the service.
  BackupService(std::string data_dir, TopologyStore* store, GrpcStorageClient* storage);

  grpc::Status Backup(grpc::ServerContext* context,
                      const conductor::internal::v1::BackupRequest* request,
                      grpc::ServerWriter<conductor::internal::v1::BackupResponse>* writer) override;

 private:
  using Emit = std::function<bool(const conductor::internal::v1::BackupResponse&)>;
  absl::Status Run(grpc::ServerContext* context, int64_t chunk_bytes, const Emit& emit);

  const std::string data_dir_;
  TopologyStore* const store_;
  GrpcStorageClient* const storage_;
  std::mutex mu_;  // one backup at a time
};

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_SERVER_BACKUP_SERVICE_H_
