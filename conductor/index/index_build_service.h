// The gRPC face of index builds and recounts
// (conductor.internal.v1.IndexBuildService): validates requests, answers
// from the topology and the IndexManager, and converts statuses here only.
#ifndef CONDUCTOR_CONDUCTOR_INDEX_INDEX_BUILD_SERVICE_H_
#define CONDUCTOR_CONDUCTOR_INDEX_INDEX_BUILD_SERVICE_H_

#include "conductor/index/index_manager.h"
#include "conductor/internal/v1/index_build.grpc.pb.h"
#include "conductor/topo/topology_store.h"

namespace conductor {

class IndexBuildService final : public internal::v1::IndexBuildService::Service {
 public:
  // At most this many tuples in one AddScannedKeys (the table's block size
  // is at most 10000).
  static constexpr int kMaxKeysPerCall = 10000;

  // The pointers must outlive the service.
  IndexBuildService(TopologyStore* store, IndexManager* indexes)
      : store_(store), indexes_(indexes) {}

  // NOT_FOUND (INDEX_NOT_FOUND) when the index is gone or not maintained.
  grpc::Status GetIndexBuildPlan(grpc::ServerContext* context,
                                 const internal::v1::GetIndexBuildPlanRequest* request,
                                 internal::v1::GetIndexBuildPlanResponse* response) override;
  grpc::Status BeginShardScan(grpc::ServerContext* context,
                              const internal::v1::BeginShardScanRequest* request,
                              internal::v1::BeginShardScanResponse* response) override;
  grpc::Status AddScannedKeys(grpc::ServerContext* context,
                              const internal::v1::AddScannedKeysRequest* request,
                              internal::v1::AddScannedKeysResponse* response) override;
  grpc::Status FinishShardScan(grpc::ServerContext* context,
                               const internal::v1::FinishShardScanRequest* request,
                               internal::v1::FinishShardScanResponse* response) override;

 private:
  TopologyStore* const store_;
  IndexManager* const indexes_;
};

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_INDEX_INDEX_BUILD_SERVICE_H_
