#include "conductor/jobs/job_queue_service.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/errors.h"

namespace conductor {
namespace {

// Margin left between the end of a long-poll and the caller's deadline, so
// that the answer arrives before the caller gives up.
constexpr int64_t kDeadlineMarginMs = 200;

absl::Status Invalid(absl::string_view message) {
  return Error(absl::StatusCode::kInvalidArgument, reason::kInvalidArgument, message);
}

absl::Status ValidateLease(int64_t job_id, int32_t attempt) {
  if (job_id < 1) return Invalid(absl::StrCat("job_id must be positive, not ", job_id));
  if (attempt < 1) return Invalid(absl::StrCat("attempt must be positive, not ", attempt));
  return absl::OkStatus();
}

}  // namespace

grpc::Status JobQueueService::Lease(grpc::ServerContext* context,
                                    const internal::v1::LeaseRequest* request,
                                    internal::v1::LeaseResponse* response) {
  if (request->worker_id().empty()) return ToGrpcStatus(Invalid("worker_id is required"));
  if (request->wait_ms() < 0 || request->wait_ms() > JobQueue::kMaxWaitMs) {
    return ToGrpcStatus(Invalid(absl::StrCat("wait_ms must be within 0..", JobQueue::kMaxWaitMs,
                                             ", not ", request->wait_ms())));
  }
  if (request->kinds_size() > kMaxKinds) {
    return ToGrpcStatus(Invalid(absl::StrCat("at most ", kMaxKinds, " kinds per lease")));
  }
  std::vector<std::string> kinds(request->kinds().begin(), request->kinds().end());
  for (const std::string& kind : kinds) {
    if (kind.empty()) return ToGrpcStatus(Invalid("kinds must not contain an empty kind"));
  }
  int64_t wait_ms = request->wait_ms();
  const auto deadline = context->deadline();
  if (deadline != std::chrono::system_clock::time_point::max()) {
    const int64_t left = std::chrono::duration_cast<std::chrono::milliseconds>(
                             deadline - std::chrono::system_clock::now())
                             .count();
    wait_ms = std::clamp<int64_t>(left - kDeadlineMarginMs, 0, wait_ms);
  }
  auto job = queue_->Lease(request->worker_id(), kinds, absl::Milliseconds(wait_ms));
  if (!job.ok()) return ToGrpcStatus(job.status());
  if (!job->has_value()) return grpc::Status::OK;
  const JobRecord& record = **job;
  if (context->IsCancelled()) {
    // Nobody will run it: give it back without counting the attempt.
    queue_->Release(record.job_id, record.attempt).IgnoreError();
    return grpc::Status(grpc::StatusCode::CANCELLED, "the lease call was cancelled");
  }
  internal::v1::Job* out = response->mutable_job();
  out->set_job_id(record.job_id);
  out->set_attempt(record.attempt);
  out->set_kind(record.kind);
  out->set_payload(record.payload);
  out->set_progress(record.progress);
  out->set_lease_expires_at_ms(record.lease_expires_at_ms);
  out->set_lease_duration_ms(queue_->options().lease_ms);
  return grpc::Status::OK;
}

grpc::Status JobQueueService::Heartbeat(grpc::ServerContext* context,
                                        const internal::v1::HeartbeatRequest* request,
                                        internal::v1::HeartbeatResponse* response) {
  if (auto s = ValidateLease(request->job_id(), request->attempt()); !s.ok()) {
    return ToGrpcStatus(s);
  }
  auto result = queue_->Heartbeat(request->job_id(), request->attempt(), request->progress());
  if (!result.ok()) return ToGrpcStatus(result.status());
  response->set_lease_expires_at_ms(result->lease_expires_at_ms);
  response->set_lease_duration_ms(result->cancel ? 0 : queue_->options().lease_ms);
  response->set_cancel(result->cancel);
  return grpc::Status::OK;
}

grpc::Status JobQueueService::Complete(grpc::ServerContext* context,
                                       const internal::v1::CompleteRequest* request,
                                       internal::v1::CompleteResponse* response) {
  if (auto s = ValidateLease(request->job_id(), request->attempt()); !s.ok()) {
    return ToGrpcStatus(s);
  }
  return ToGrpcStatus(queue_->Complete(request->job_id(), request->attempt(), request->result()));
}

grpc::Status JobQueueService::Fail(grpc::ServerContext* context,
                                   const internal::v1::FailRequest* request,
                                   internal::v1::FailResponse* response) {
  if (auto s = ValidateLease(request->job_id(), request->attempt()); !s.ok()) {
    return ToGrpcStatus(s);
  }
  return ToGrpcStatus(
      queue_->Fail(request->job_id(), request->attempt(), request->error(), request->retryable()));
}

}  // namespace conductor
