// The gRPC face of copy plans for queue workers
// (conductor.internal.v1.ReshardService).
#ifndef CONDUCTOR_CONDUCTOR_RESHARD_RESHARD_SERVICE_H_
#define CONDUCTOR_CONDUCTOR_RESHARD_RESHARD_SERVICE_H_

#include "conductor/internal/v1/reshard.grpc.pb.h"
#include "conductor/reshard/reshard_manager.h"

namespace conductor {

class ReshardService final : public internal::v1::ReshardService::Service {
 public:
  explicit ReshardService(ReshardManager* reshards) : reshards_(reshards) {}
  grpc::Status GetReshardPlan(grpc::ServerContext* context,
                              const internal::v1::GetReshardPlanRequest* request,
                              internal::v1::GetReshardPlanResponse* response) override;

 private:
  ReshardManager* const reshards_;
};

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_RESHARD_RESHARD_SERVICE_H_
