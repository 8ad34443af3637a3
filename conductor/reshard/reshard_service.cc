#include "conductor/reshard/reshard_service.h"

#include "common/errors.h"

namespace conductor {

grpc::Status ReshardService::GetReshardPlan(grpc::ServerContext*,
                                            const internal::v1::GetReshardPlanRequest* request,
                                            internal::v1::GetReshardPlanResponse* response) {
  if (request->change_log_id().empty() || request->source_shard_id() < 0) {
    return ToGrpcStatus(Error(absl::StatusCode::kInvalidArgument, reason::kInvalidArgument,
                              "change_log_id and a source_shard_id >= 0 are required"));
  }
  auto plan = reshards_->Plan(request->change_log_id(), request->source_shard_id());
  if (!plan.ok()) return ToGrpcStatus(plan.status());
  *response->mutable_plan() = std::move(*plan);
  return grpc::Status::OK;
}

}  // namespace conductor
