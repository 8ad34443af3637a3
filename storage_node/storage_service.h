// The storage.v1.Storage gRPC service of a storage node: the edge where
// requests become NodeDatabase calls and statuses become gRPC statuses.
#ifndef CONDUCTOR_STORAGE_NODE_STORAGE_SERVICE_H_
#define CONDUCTOR_STORAGE_NODE_STORAGE_SERVICE_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"
#include "storage/v1/storage.grpc.pb.h"
#include "storage_node/node_database.h"

namespace conductor {
namespace storage_node {

// OK when `node_id` is 1..128 characters among letters, digits, '-', '_', '.'.
absl::Status ValidateNodeId(absl::string_view node_id);

// Thread-safe (synchronous gRPC service; calls run on gRPC's threads).
class StorageService final : public storage::v1::Storage::Service {
 public:
  // REQUIRES: ValidateNodeId(node_id) is OK; `database` is not null.
  StorageService(std::string node_id, std::unique_ptr<NodeDatabase> database);

  // Answers the node id, the SQLite library version and the database path.
  grpc::Status GetNodeInfo(grpc::ServerContext* context,
                           const storage::v1::GetNodeInfoRequest* request,
                           storage::v1::GetNodeInfoResponse* response) override;

  // Runs the batch (NodeDatabase::ExecuteBatch) within the call's deadline;
  // the client cancelling or its deadline passing interrupts the statement.
  grpc::Status ExecuteBatch(grpc::ServerContext* context,
                            const storage::v1::ExecuteBatchRequest* request,
                            storage::v1::ExecuteBatchResponse* response) override;

  // Streams the shard's blocks (NodeDatabase::ScanShard) as they are read;
  // the client cancelling, its deadline passing or the stream breaking stops
  // the scan, between blocks or inside one.
  grpc::Status ScanShard(grpc::ServerContext* context, const storage::v1::ScanShardRequest* request,
                         grpc::ServerWriter<storage::v1::ScanShardResponse>* writer) override;

  // Streams a snapshot of the whole database (NodeDatabase::Backup).
  grpc::Status Backup(grpc::ServerContext* context, const storage::v1::BackupRequest* request,
                      grpc::ServerWriter<storage::v1::BackupResponse>* writer) override;

 private:
  const std::string node_id_;
  const std::unique_ptr<NodeDatabase> database_;
};

}  // namespace storage_node
}  // namespace conductor

#endif  // CONDUCTOR_STORAGE_NODE_STORAGE_SERVICE_H_
