#include "queue_worker/job_runner.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/server.h"

namespace conductor {
namespace {

using std::chrono::steady_clock;

constexpr absl::Duration kFirstRetryBackoff = absl::Milliseconds(100);
// A Lease call's deadline is its poll plus this margin.
constexpr absl::Duration kLeaseCallMargin = absl::Seconds(10);
// Heartbeats go no more often than this, whatever the lease.
constexpr int64_t kMinHeartbeatPeriodMs = 50;
// Used when the conductor did not say how long its leases last.
constexpr int64_t kDefaultLeaseMs = 30000;

std::chrono::system_clock::time_point DeadlineIn(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

bool Unreachable(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE ||
         status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

}  // namespace

// --- JobContext ---------------------------------------------------------------

JobContext::JobContext(internal::v1::Job job) : job_(std::move(job)) {
  progress_ = job_.progress();
  sent_progress_ = job_.progress();
  lease_duration_ms_ = job_.lease_duration_ms() > 0 ? job_.lease_duration_ms() : kDefaultLeaseMs;
  last_sent_ = steady_clock::time_point::min();
}

bool JobContext::Heartbeat(const std::string& progress) {
  bool send = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    progress_ = progress;
    if (lost_ || stopping_) return false;
    send = last_sent_ == steady_clock::time_point::min() ||
           steady_clock::now() - last_sent_ >=
               absl::ToChronoMilliseconds(runner_->options_.min_heartbeat_interval);
  }
  if (send) runner_->SendHeartbeat(this, runner_->options_.rpc_timeout);
  return !cancelled();
}

bool JobContext::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lost_ || stopping_;
}

std::string JobContext::progress() const {
  std::lock_guard<std::mutex> lock(mu_);
  return progress_;
}

void JobContext::set_result(std::string result) {
  std::lock_guard<std::mutex> lock(mu_);
  result_ = std::move(result);
}

// --- JobRunner ----------------------------------------------------------------

JobRunner::JobRunner(JobRunnerOptions options) : options_(std::move(options)) {}

JobRunner::~JobRunner() { Stop(); }

bool JobRunner::IsRetryable(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
      return true;
    default:
      return false;
  }
}

absl::Status JobRunner::Register(const std::string& kind, JobHandler handler) {
  if (kind.empty()) return absl::InvalidArgumentError("a job kind must not be empty");
  if (!handler) return absl::InvalidArgumentError(absl::StrCat("no handler for kind ", kind));
  std::lock_guard<std::mutex> lock(mu_);
  if (started_) return absl::FailedPreconditionError("Register after Start");
  if (!handlers_.emplace(kind, std::move(handler)).second) {
    return absl::AlreadyExistsError(absl::StrCat("kind ", kind, " is registered twice"));
  }
  kinds_.push_back(kind);
  return absl::OkStatus();
}

absl::Status JobRunner::Start() {
  if (auto s = ValidateListenAddress(options_.conductor); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("conductor address: ", s.message()));
  }
  if (options_.worker_id.empty()) return absl::InvalidArgumentError("worker_id is required");
  if (options_.concurrency < 1) return absl::InvalidArgumentError("concurrency must be >= 1");
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  std::lock_guard<std::mutex> lock(mu_);
  if (started_) return absl::FailedPreconditionError("JobRunner already started");
  if (stopping_) return absl::FailedPreconditionError("JobRunner already stopped");
  grpc::ChannelArguments args;
  const int max_backoff_ms = static_cast<int>(
      std::max<int64_t>(100, absl::ToInt64Milliseconds(options_.max_retry_backoff)));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, std::min(100, max_backoff_ms));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, std::min(100, max_backoff_ms));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_backoff_ms);
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  channel_ = MakeChannel(options_.conductor, args);
  stub_ = internal::v1::JobQueueService::NewStub(channel_);
  started_ = true;
  LogInfo("worker %s: %d lease loop(s) for kinds [%s] from %s", options_.worker_id,
          options_.concurrency, absl::StrJoin(kinds_, ", "), options_.conductor);
  for (int i = 0; i < options_.concurrency; ++i) {
    loops_.emplace_back([this, i] { LeaseLoop(i); });
  }
  return absl::OkStatus();
}

void JobRunner::Stop() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_ && started_) {
      LogInfo("worker %s: stopping; %d running job(s) go back to the queue", options_.worker_id,
              static_cast<int>(running_.size()));
    }
    stopping_ = true;
    for (grpc::ClientContext* call : lease_calls_) call->TryCancel();
    for (JobContext* context : running_) {
      std::lock_guard<std::mutex> context_lock(context->mu_);
      context->stopping_ = true;
    }
  }
  stop_cv_.notify_all();
  for (std::thread& loop : loops_) loop.join();
  loops_.clear();
}

bool JobRunner::stopping() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_;
}

bool JobRunner::SleepUnlessStopping(absl::Duration d) {
  std::unique_lock<std::mutex> lock(mu_);
  stop_cv_.wait_for(lock, absl::ToChronoMilliseconds(d), [this] { return stopping_; });
  return !stopping_;
}

void JobRunner::LeaseLoop(int loop) {
  absl::Duration backoff = kFirstRetryBackoff;
  internal::v1::LeaseRequest request;
  request.set_worker_id(options_.worker_id);
  for (const std::string& kind : kinds_) request.add_kinds(kind);
  request.set_wait_ms(static_cast<int32_t>(
      std::clamp<int64_t>(absl::ToInt64Milliseconds(options_.lease_wait), 0, 30000)));
  while (true) {
    grpc::ClientContext call;
    call.set_deadline(DeadlineIn(absl::Milliseconds(request.wait_ms()) + kLeaseCallMargin));
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      lease_calls_.insert(&call);
    }
    internal::v1::LeaseResponse response;
    grpc::Status status = stub_->Lease(&call, request, &response);
    bool stop_now = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      lease_calls_.erase(&call);
      stop_now = stopping_;
      if (!status.ok() && !stop_now && !unreachable_logged_) {
        unreachable_logged_ = true;
        LogWarning("worker %s: cannot lease from %s (%s); retrying", options_.worker_id,
                   options_.conductor, status.error_message());
      } else if (status.ok() && unreachable_logged_) {
        unreachable_logged_ = false;
        LogInfo("worker %s: conductor %s reachable again", options_.worker_id, options_.conductor);
      }
    }
    if (!status.ok()) {
      if (stop_now || !SleepUnlessStopping(backoff)) return;
      backoff = std::min(backoff * 2, options_.max_retry_backoff);
      continue;
    }
    backoff = kFirstRetryBackoff;
    if (response.has_job()) RunJob(response.job());
  }
}

void JobRunner::SendHeartbeat(JobContext* context, absl::Duration timeout) {
  std::lock_guard<std::mutex> send_lock(context->send_mu_);
  internal::v1::HeartbeatRequest request;
  request.set_job_id(context->job_.job_id());
  request.set_attempt(context->job_.attempt());
  {
    std::lock_guard<std::mutex> lock(context->mu_);
    if (context->lost_) return;
    request.set_progress(context->progress_);
    context->last_sent_ = steady_clock::now();
  }
  grpc::ClientContext call;
  call.set_deadline(DeadlineIn(timeout));
  internal::v1::HeartbeatResponse response;
  grpc::Status status = stub_->Heartbeat(&call, request, &response);
  std::lock_guard<std::mutex> lock(context->mu_);
  if (status.ok()) {
    if (response.cancel()) {
      if (!context->lost_) {
        LogInfo("job %d attempt %d: cancelled by the conductor", request.job_id(),
                request.attempt());
      }
      context->lost_ = true;
      return;
    }
    context->sent_progress_ = request.progress();
    if (response.lease_duration_ms() > 0) {
      context->lease_duration_ms_ = response.lease_duration_ms();
    }
  } else if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
             status.error_code() == grpc::StatusCode::NOT_FOUND) {
    LogWarning("job %d attempt %d: %s; stopping it", request.job_id(), request.attempt(),
               status.error_message());
    context->lost_ = true;
  } else {
    // Unreachable or slow: the lease may well still hold; try again next time.
    LogWarning("job %d attempt %d: heartbeat failed: %s", request.job_id(), request.attempt(),
               status.error_message());
  }
}

void JobRunner::HeartbeatLoop(JobContext* context) {
  while (true) {
    int64_t period_ms = 0;
    {
      std::unique_lock<std::mutex> lock(context->mu_);
      period_ms = std::max<int64_t>(kMinHeartbeatPeriodMs, context->lease_duration_ms_ / 3);
      context->finished_cv_.wait_for(lock, std::chrono::milliseconds(period_ms),
                                     [context] { return context->finished_; });
      if (context->finished_ || context->lost_) return;
    }
    // A heartbeat slower than its period is as good as lost; the next one
    // retries.
    SendHeartbeat(context, std::min(options_.rpc_timeout, absl::Milliseconds(period_ms)));
  }
}

absl::Status JobRunner::CallWithRetry(const std::function<grpc::Status(grpc::ClientContext*)>& call,
                                      absl::Duration budget) {
  const absl::Time give_up = absl::Now() + budget;
  absl::Duration backoff = kFirstRetryBackoff;
  while (true) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(std::min(absl::Now() + options_.rpc_timeout, give_up)));
    grpc::Status status = call(&context);
    if (status.ok()) return absl::OkStatus();
    if (!Unreachable(status) || absl::Now() + backoff >= give_up) return FromGrpcStatus(status);
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, options_.max_retry_backoff);
  }
}

void JobRunner::RunJob(const internal::v1::Job& job) {
  const int64_t job_id = job.job_id();
  const int32_t attempt = job.attempt();
  JobContext context(job);
  context.runner_ = this;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::lock_guard<std::mutex> context_lock(context.mu_);
    context.stopping_ = stopping_;  // leased just as Stop began: hand it straight back
    running_.insert(&context);
  }
  LogInfo("job %d (%s) attempt %d: started", job_id, job.kind(), attempt);
  absl::Status outcome;
  auto handler = handlers_.find(job.kind());
  if (handler == handlers_.end()) {
    // The conductor only sends kinds we asked for; be safe anyway.
    outcome = absl::UnavailableError(
        absl::StrCat("worker ", options_.worker_id, " has no handler for kind ", job.kind()));
  } else if (context.cancelled()) {
    outcome = absl::CancelledError("not started");
  } else {
    std::thread heartbeats([this, &context] { HeartbeatLoop(&context); });
    outcome = handler->second(job, context);
    {
      std::lock_guard<std::mutex> lock(context.mu_);
      context.finished_ = true;
    }
    context.finished_cv_.notify_all();
    heartbeats.join();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_.erase(&context);
  }

  bool lost, shutting_down;
  int64_t lease_ms;
  std::string result, progress, sent_progress;
  {
    std::lock_guard<std::mutex> lock(context.mu_);
    lost = context.lost_;
    shutting_down = context.stopping_;
    lease_ms = context.lease_duration_ms_;
    result = context.result_;
    progress = context.progress_;
    sent_progress = context.sent_progress_;
  }
  if (lost) {
    LogInfo("job %d attempt %d: ended without a report (cancelled or lease lost): %s", job_id,
            attempt, outcome.ToString());
    return;
  }
  const absl::Duration budget =
      shutting_down ? options_.shutdown_report_budget : absl::Milliseconds(lease_ms);
  const absl::Time give_up = absl::Now() + budget;
  absl::Status reported;
  if (outcome.ok()) {
    internal::v1::CompleteRequest request;
    request.set_job_id(job_id);
    request.set_attempt(attempt);
    request.set_result(result);
    reported = CallWithRetry(
        [&](grpc::ClientContext* call) {
          internal::v1::CompleteResponse response;
          return stub_->Complete(call, request, &response);
        },
        budget);
    if (reported.ok()) LogInfo("job %d attempt %d: done", job_id, attempt);
  } else {
    const bool retryable = shutting_down || IsRetryable(outcome.code());
    // Code and message only (ToString would add the ErrorInfo payload bytes).
    std::string error =
        absl::StrCat(absl::StatusCodeToString(outcome.code()), ": ", outcome.message());
    if (shutting_down) error = absl::StrCat("worker shutting down: ", error);
    if (retryable && progress != sent_progress) {
      // Save the latest progress first, so the next attempt resumes from it.
      SendHeartbeat(&context, std::min(options_.rpc_timeout, budget / 2));
    }
    internal::v1::FailRequest request;
    request.set_job_id(job_id);
    request.set_attempt(attempt);
    request.set_error(error);
    request.set_retryable(retryable);
    reported = CallWithRetry(
        [&](grpc::ClientContext* call) {
          internal::v1::FailResponse response;
          return stub_->Fail(call, request, &response);
        },
        std::max(absl::ZeroDuration(), give_up - absl::Now()));
    if (reported.ok()) {
      LogInfo("job %d attempt %d: failed (%s): %s", job_id, attempt,
              retryable ? "retryable" : "permanent", error);
    }
  }
  if (!reported.ok()) {
    LogWarning("job %d attempt %d: cannot report the outcome (%s); the lease will expire", job_id,
               attempt, reported.ToString());
  }
}

}  // namespace conductor
