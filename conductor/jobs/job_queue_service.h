// The gRPC face of the job queue (conductor.internal.v1.JobQueueService):
// validates requests, calls JobQueue, and converts statuses with
// ToGrpcStatus here and only here. Sync API; a Lease long-poll occupies a
// server thread while it waits, and JobQueue::Shutdown() releases them all.
#ifndef CONDUCTOR_CONDUCTOR_JOBS_JOB_QUEUE_SERVICE_H_
#define CONDUCTOR_CONDUCTOR_JOBS_JOB_QUEUE_SERVICE_H_

#include "conductor/internal/v1/job_queue.grpc.pb.h"
#include "conductor/topo/job_queue.h"

namespace conductor {

class JobQueueService final : public internal::v1::JobQueueService::Service {
 public:
  // At most this many kinds in one LeaseRequest.
  static constexpr int kMaxKinds = 64;

  // `queue` must outlive the service.
  explicit JobQueueService(JobQueue* queue) : queue_(queue) {}

  // INVALID_ARGUMENT for an empty worker_id, wait_ms outside 0..30000, an
  // empty kind or more than kMaxKinds kinds. The wait is also cut short to
  // end before the caller's deadline. A job leased for a caller that has
  // gone away meanwhile is released unused (JobQueue::Release).
  grpc::Status Lease(grpc::ServerContext* context, const internal::v1::LeaseRequest* request,
                     internal::v1::LeaseResponse* response) override;
  // INVALID_ARGUMENT for job_id or attempt < 1; NOT_FOUND for an unknown job;
  // FAILED_PRECONDITION (reason LEASE_LOST) for a stale attempt.
  grpc::Status Heartbeat(grpc::ServerContext* context,
                         const internal::v1::HeartbeatRequest* request,
                         internal::v1::HeartbeatResponse* response) override;
  grpc::Status Complete(grpc::ServerContext* context, const internal::v1::CompleteRequest* request,
                        internal::v1::CompleteResponse* response) override;
  grpc::Status Fail(grpc::ServerContext* context, const internal::v1::FailRequest* request,
                    internal::v1::FailResponse* response) override;

 private:
  JobQueue* const queue_;
};

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_JOBS_JOB_QUEUE_SERVICE_H_
