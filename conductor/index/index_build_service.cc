#include "conductor/index/index_build_service.h"

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/server.h"

namespace conductor {
namespace {

absl::Status Invalid(absl::string_view message) {
  return Error(absl::StatusCode::kInvalidArgument, reason::kInvalidArgument, message);
}

absl::Status ValidateIds(int64_t index_id, int32_t shard_id, int64_t scan_seq, bool with_seq) {
  if (index_id < 1) return Invalid(absl::StrCat("index_id must be positive, not ", index_id));
  if (shard_id < 0) return Invalid(absl::StrCat("shard_id must not be negative, not ", shard_id));
  if (with_seq && scan_seq < 1) {
    return Invalid(absl::StrCat("scan_seq must be positive, not ", scan_seq));
  }
  return absl::OkStatus();
}

}  // namespace

grpc::Status IndexBuildService::GetIndexBuildPlan(
    grpc::ServerContext*, const internal::v1::GetIndexBuildPlanRequest* request,
    internal::v1::GetIndexBuildPlanResponse* response) {
  if (auto s = ValidateIds(request->index_id(), 0, 0, false); !s.ok()) return ToGrpcStatus(s);
  auto snapshot = store_->snapshot();
  for (const auto& [unused, table] : snapshot->tables) {
    for (const IndexMeta& index : table.indexes) {
      if (index.index_id != request->index_id() || !index.Maintained()) continue;
      auto* plan = response->mutable_plan();
      plan->set_index_id(index.index_id);
      plan->set_index_name(index.name);
      plan->set_table(table.name);
      for (const auto& column : index.columns) plan->add_columns(column);
      plan->set_block_size(table.block_size);
      for (const ShardMeta& shard : table.shards) {
        if (shard.status != shard_status::kActive) continue;
        auto* out = plan->add_shards();
        out->set_shard_id(shard.shard_id);
        out->set_node_id(shard.node_id);
        const NodeMeta* node = snapshot->FindNode(shard.node_id);
        if (node != nullptr) out->set_address(node->address);
      }
      return grpc::Status::OK;
    }
  }
  return ToGrpcStatus(Error(
      absl::StatusCode::kNotFound, reason::kIndexNotFound,
      absl::StrCat("index ", request->index_id(), " no longer exists or is not being maintained")));
}

grpc::Status IndexBuildService::BeginShardScan(grpc::ServerContext* context,
                                               const internal::v1::BeginShardScanRequest* request,
                                               internal::v1::BeginShardScanResponse* response) {
  if (auto s = ValidateIds(request->index_id(), request->shard_id(), 0, false); !s.ok()) {
    return ToGrpcStatus(s);
  }
  auto seq = indexes_->BeginScan(request->index_id(), request->shard_id(), CallDeadline(*context));
  if (!seq.ok()) return ToGrpcStatus(seq.status());
  response->set_scan_seq(*seq);
  return grpc::Status::OK;
}

grpc::Status IndexBuildService::AddScannedKeys(grpc::ServerContext* context,
                                               const internal::v1::AddScannedKeysRequest* request,
                                               internal::v1::AddScannedKeysResponse*) {
  if (auto s = ValidateIds(request->index_id(), request->shard_id(), request->scan_seq(), true);
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (request->keys_size() > kMaxKeysPerCall) {
    return ToGrpcStatus(Invalid(
        absl::StrCat("at most ", kMaxKeysPerCall, " keys per call, not ", request->keys_size())));
  }
  std::vector<std::vector<Value>> tuples;
  tuples.reserve(request->keys_size());
  for (const auto& row : request->keys())
    tuples.emplace_back(row.values().begin(), row.values().end());
  return ToGrpcStatus(indexes_->AddScanned(request->index_id(), request->shard_id(),
                                           request->scan_seq(), tuples, CallDeadline(*context)));
}

grpc::Status IndexBuildService::FinishShardScan(grpc::ServerContext*,
                                                const internal::v1::FinishShardScanRequest* request,
                                                internal::v1::FinishShardScanResponse*) {
  if (auto s = ValidateIds(request->index_id(), request->shard_id(), request->scan_seq(), true);
      !s.ok()) {
    return ToGrpcStatus(s);
  }
  return ToGrpcStatus(
      indexes_->FinishScan(request->index_id(), request->shard_id(), request->scan_seq()));
}

}  // namespace conductor
