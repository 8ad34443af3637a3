#include "storage_node/storage_service.h"

#include <chrono>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/errors.h"
#include "common/logging.h"

namespace conductor {
namespace storage_node {
namespace {

constexpr size_t kMaxNodeIdLength = 128;

CallControl ControlOf(grpc::ServerContext* context) {
  CallControl control;
  const auto deadline = context->deadline();
  // gRPC reports "no deadline" as the largest time point.
  control.deadline = deadline == std::chrono::system_clock::time_point::max()
                         ? absl::InfiniteFuture()
                         : absl::FromChrono(deadline);
  control.is_cancelled = [context] { return context->IsCancelled(); };
  return control;
}

}  // namespace

absl::Status ValidateNodeId(absl::string_view node_id) {
  if (node_id.empty() || node_id.size() > kMaxNodeIdLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("node id must be 1..", kMaxNodeIdLength, " characters long"));
  }
  for (char c : node_id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return absl::InvalidArgumentError(absl::StrCat(
          "node id \"", node_id, "\" may only contain letters, digits, '-', '_' and '.'"));
    }
  }
  return absl::OkStatus();
}

StorageService::StorageService(std::string node_id, std::unique_ptr<NodeDatabase> database)
    : node_id_(std::move(node_id)), database_(std::move(database)) {}

grpc::Status StorageService::GetNodeInfo(grpc::ServerContext* /*context*/,
                                         const storage::v1::GetNodeInfoRequest* /*request*/,
                                         storage::v1::GetNodeInfoResponse* response) {
  response->set_node_id(node_id_);
  response->set_sqlite_version(sqlite3_libversion());
  response->set_database_path(database_->path());
  return grpc::Status::OK;
}

grpc::Status StorageService::ExecuteBatch(grpc::ServerContext* context,
                                          const storage::v1::ExecuteBatchRequest* request,
                                          storage::v1::ExecuteBatchResponse* response) {
  absl::Status status = database_->ExecuteBatch(*request, ControlOf(context), response);
  if (!status.ok() && (status.code() == absl::StatusCode::kInternal ||
                       status.code() == absl::StatusCode::kResourceExhausted)) {
    LogWarning("ExecuteBatch failed: %s", status.ToString());
  }
  return ToGrpcStatus(status);
}

grpc::Status StorageService::ScanShard(grpc::ServerContext* context,
                                       const storage::v1::ScanShardRequest* request,
                                       grpc::ServerWriter<storage::v1::ScanShardResponse>* writer) {
  absl::Status status = database_->ScanShard(
      *request, ControlOf(context),
      [writer](const storage::v1::ScanShardResponse& block) { return writer->Write(block); });
  if (!status.ok() && (status.code() == absl::StatusCode::kInternal ||
                       status.code() == absl::StatusCode::kResourceExhausted)) {
    LogWarning("ScanShard of %s failed: %s", request->table(), status.ToString());
  }
  return ToGrpcStatus(status);
}

grpc::Status StorageService::Backup(grpc::ServerContext* context,
                                    const storage::v1::BackupRequest* request,
                                    grpc::ServerWriter<storage::v1::BackupResponse>* writer) {
  absl::Status status = database_->Backup(
      *request, ControlOf(context),
      [writer](const storage::v1::BackupResponse& chunk) { return writer->Write(chunk); });
  if (!status.ok()) LogWarning("Backup failed: %s", status.ToString());
  return ToGrpcStatus(status);
}

}  // namespace storage_node
}  // namespace conductor
