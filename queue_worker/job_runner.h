// JobRunner: the queue worker's engine. Leases jobs from the conductor's
// JobQueueService, runs each with the handler registered for its kind, keeps
// the lease alive with heartbeats that carry the handler's progress, and
// reports the outcome (docs/job-queue.md).
//
//   JobRunner runner(options);
//   runner.Register("index_build", [](const Job& job, JobContext& ctx) { ... });
//   runner.Start();
//   ...
//   runner.Stop();  // at SIGTERM: running jobs are handed back at once
//
// Each of `concurrency` loops long-polls Lease (only for registered kinds;
// with none it polls with an empty list, which just waits), runs one job at a
// time, and backs off (capped at max_retry_backoff) while the conductor is
// unreachable, so it resumes by itself when the conductor comes back.
//
// Outcome of a handler:
//   OK                              -> Complete(result set by the handler).
//   an error, IsRetryable(code)     -> Fail(retryable=true): the job is retried
//                                      after a back-off, up to its attempt limit.
//   any other error                 -> Fail(retryable=false): the job fails.
//   the lease was lost or the job cancelled by the conductor (cancelled()
//   turned true that way) -> nothing is reported: there is no lease left.
//   the worker is stopping (Stop)   -> Fail(retryable=true, "worker shutting
//                                      down: ...") unless the handler
//                                      returned OK, which completes the job.
#ifndef CONDUCTOR_QUEUE_WORKER_JOB_RUNNER_H_
#define CONDUCTOR_QUEUE_WORKER_JOB_RUNNER_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "conductor/internal/v1/job_queue.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace conductor {

class JobRunner;

// A running job as its handler sees it. Thread-safe; owned by the runner,
// valid for the duration of the handler call.
class JobContext {
 public:
  JobContext(const JobContext&) = delete;
  JobContext& operator=(const JobContext&) = delete;

  // The leased job (id, attempt, kind, payload, the progress it starts from).
  const internal::v1::Job& job() const { return job_; }

  // Records `progress` as the job's latest (saved by the conductor with the
  // next heartbeat, so a later attempt resumes from it). Sends a heartbeat
  // at once when none went out for min_heartbeat_interval; otherwise the
  // automatic heartbeat (every third of the lease) carries it. Returns
  // whether to carry on: false once cancelled() is true.
  bool Heartbeat(const std::string& progress);

  // True once the handler should stop: the conductor cancelled the job or
  // the lease was lost (a heartbeat was refused), or the worker is shutting
  // down. Handlers must check it (or Heartbeat's answer) regularly.
  bool cancelled() const;

  // The latest progress: at first the progress saved by an earlier attempt
  // (empty for a fresh job), then the last one given to Heartbeat.
  std::string progress() const;

  // The bytes Complete reports when the handler returns OK.
  void set_result(std::string result);

 private:
  friend class JobRunner;
  explicit JobContext(internal::v1::Job job);

  const internal::v1::Job job_;
  std::mutex send_mu_;  // one heartbeat RPC at a time, so progress is saved in order
  mutable std::mutex mu_;
  std::condition_variable finished_cv_;  // wakes the heartbeat thread
  std::string progress_;                 // GUARDED_BY(mu_)
  std::string sent_progress_;            // GUARDED_BY(mu_); the last progress the conductor saved
  std::string result_;                   // GUARDED_BY(mu_)
  bool lost_ = false;              // GUARDED_BY(mu_); cancelled by the conductor or lease lost
  bool stopping_ = false;          // GUARDED_BY(mu_); the worker is shutting down
  bool finished_ = false;          // GUARDED_BY(mu_); the handler has returned
  int64_t lease_duration_ms_ = 0;  // GUARDED_BY(mu_)
  std::chrono::steady_clock::time_point last_sent_;  // GUARDED_BY(mu_)
  JobRunner* runner_ = nullptr;
};

// Runs one job. Return OK for success (after ctx.set_result if there is a
// result), or an error whose code says whether a retry may help (see
// JobRunner::IsRetryable). Must return soon after ctx.cancelled() turns true.
using JobHandler = std::function<absl::Status(const internal::v1::Job& job, JobContext& context)>;

struct JobRunnerOptions {
  // HOST:PORT of the conductor. Required.
  std::string conductor;
  // Names this worker in leases and logs. Required.
  std::string worker_id;
  // Jobs run at once (one lease loop each).
  int concurrency = 2;
  // How long each Lease long-polls (the conductor caps it at 30 s).
  absl::Duration lease_wait = absl::Seconds(20);
  // Deadline of one Heartbeat / Complete / Fail call.
  absl::Duration rpc_timeout = absl::Seconds(10);
  // JobContext::Heartbeat sends at most this often; the rest ride on the
  // automatic heartbeat.
  absl::Duration min_heartbeat_interval = absl::Seconds(1);
  // Cap of the back-off between attempts to reach an unreachable conductor
  // (and of the channel's reconnect back-off).
  absl::Duration max_retry_backoff = absl::Seconds(1);
  // At Stop, how long handing the running jobs back may take in all.
  absl::Duration shutdown_report_budget = absl::Seconds(2);
};

class JobRunner {
 public:
  explicit JobRunner(JobRunnerOptions options);
  // Stop().
  ~JobRunner();
  JobRunner(const JobRunner&) = delete;
  JobRunner& operator=(const JobRunner&) = delete;

  // Registers the handler of `kind`. INVALID_ARGUMENT for an empty kind or
  // handler, ALREADY_EXISTS for a kind registered twice, FAILED_PRECONDITION
  // after Start().
  absl::Status Register(const std::string& kind, JobHandler handler);

  // Checks the options and starts the lease loops. Does not wait for the
  // conductor: the loops keep trying until it answers.
  absl::Status Start();

  // Stops leasing (cancelling the polls in flight), marks every running job
  // cancelled, waits for the handlers to return and hands their jobs back
  // (see the header comment), then returns. Idempotent. Before Start() it
  // only makes a later Start() fail.
  void Stop();

  // The retry policy for a handler's error code: retryable are UNAVAILABLE,
  // ABORTED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, CANCELLED, INTERNAL and
  // UNKNOWN (transient trouble, or trouble of unknown cause: the attempt limit
  // bounds the cost); everything else (INVALID_ARGUMENT, NOT_FOUND,
  // ALREADY_EXISTS, FAILED_PRECONDITION, OUT_OF_RANGE, UNIMPLEMENTED,
  // PERMISSION_DENIED, UNAUTHENTICATED, DATA_LOSS) fails the job at once.
  static bool IsRetryable(absl::StatusCode code);

 private:
  friend class JobContext;
  using Stub = internal::v1::JobQueueService::Stub;

  void LeaseLoop(int loop);
  void RunJob(const internal::v1::Job& job);
  void HeartbeatLoop(JobContext* context);
  // Sends the context's latest progress; records a refusal or cancel.
  void SendHeartbeat(JobContext* context, absl::Duration timeout);
  // Calls `call` until it succeeds, fails for good, or `budget` runs out,
  // backing off while the conductor is unreachable.
  absl::Status CallWithRetry(const std::function<grpc::Status(grpc::ClientContext*)>& call,
                             absl::Duration budget);
  // Sleeps `d` unless Stop() begins meanwhile; returns false when stopping.
  bool SleepUnlessStopping(absl::Duration d);
  bool stopping() const;

  const JobRunnerOptions options_;
  std::map<std::string, JobHandler> handlers_;  // written before Start only
  std::vector<std::string> kinds_;              // written before Start only
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Stub> stub_;

  // Lock order: mu_, then a JobContext's mu_; a JobContext's send_mu_, then
  // its mu_. Never mu_ while an RPC is in flight.
  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  bool started_ = false;                        // GUARDED_BY(mu_)
  bool stopping_ = false;                       // GUARDED_BY(mu_)
  bool unreachable_logged_ = false;             // GUARDED_BY(mu_)
  std::set<grpc::ClientContext*> lease_calls_;  // GUARDED_BY(mu_); polls in flight
  std::set<JobContext*> running_;               // GUARDED_BY(mu_); jobs being handled
  std::vector<std::thread> loops_;              // joined by Stop (under stop_mu_)
  std::mutex stop_mu_;                          // serialises Stop()
};

}  // namespace conductor

#endif  // CONDUCTOR_QUEUE_WORKER_JOB_RUNNER_H_
