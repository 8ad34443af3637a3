// JobQueue: the durable job queue of DESIGN.md section 6, kept in the
// topology store's `jobs` table (docs/job-queue.md has the state diagram).
//
// A job is queued, leased by one worker at a time for a bounded time
// (extended by heartbeats that also save progress), and ends done, failed or
// cancelled. Every lease increments the job's `attempt`, which is the fencing
// token: Heartbeat/Complete/Fail name the attempt they hold and are refused
// with FAILED_PRECONDITION ("lease lost") once it is no longer the job's live
// lease. A failed or expired attempt goes back to the queue after an
// exponential back-off until max_attempts is used up; then the job fails.
//
// Each state change is one SQLite transaction. Time is an injectable clock
// (ms since the epoch) so that tests control it; long-poll waits use the real
// (steady) clock for their length and the queue clock to find when the next
// job becomes runnable.
//
// Thread-safe. Lock order: mu_ is never held while the store's connection is
// in use (hooks run without mu_), so the two never nest.
#ifndef CONDUCTOR_CONDUCTOR_TOPO_JOB_QUEUE_H_
#define CONDUCTOR_CONDUCTOR_TOPO_JOB_QUEUE_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/sqlite.h"
#include "conductor/topo/topology_store.h"

namespace conductor {

enum class JobState { kQueued, kLeased, kDone, kFailed, kCancelled };

// "queued", "leased", "done", "failed", "cancelled" (as stored).
const char* JobStateName(JobState state);
bool ParseJobState(absl::string_view name, JobState* state);

// One row of `jobs`. Times are ms since the epoch on the queue's clock.
struct JobRecord {
  int64_t job_id = 0;
  std::string kind;
  std::string payload;
  JobState state = JobState::kQueued;
  // Leases so far (0 until the first lease); the current lease's fencing token.
  int attempt = 0;
  int max_attempts = 0;
  // The worker of the current (or, once finished, the last) lease.
  std::string lease_owner;
  int64_t lease_expires_at_ms = 0;  // meaningful while kLeased
  int64_t not_before_ms = 0;        // a queued job is not leased before this
  std::string progress;             // the last heartbeat's
  std::string result;               // Complete's
  std::string error;                // the last failure's (or why it failed)
  std::string operation;            // opaque key of the operation served
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
};

struct JobQueueOptions {
  // How long a lease (and each heartbeat's extension) lasts.
  int64_t lease_ms = 30000;
  // Back-off after failed attempt n: min(backoff_max_ms, backoff_base_ms * 2^(n-1)).
  int64_t backoff_base_ms = 1000;
  int64_t backoff_max_ms = 60000;
  // Used by Enqueue() when the caller passes max_attempts <= 0.
  int max_attempts = 5;
  // The queue clock, ms since the epoch; null means TopologyStore::NowMs.
  std::function<int64_t()> now_ms;
};

struct HeartbeatResult {
  int64_t lease_expires_at_ms = 0;
  // The job was cancelled (or failed) meanwhile; the worker should stop.
  bool cancel = false;
};

// Runs inside the transaction that moves a job of its kind to done or failed
// (the record passed is the new state: result or error filled in). A non-OK
// return rolls the whole transaction back, and the state change with it.
// Runs through TopologyStore::Mutate, so it may change topology tables.
// Must not call back into the JobQueue or the TopologyStore.
using JobFinishedHook = std::function<absl::Status(Database&, const JobRecord&)>;

class JobQueue {
 public:
  // The longest long-poll Lease accepts.
  static constexpr int64_t kMaxWaitMs = 30000;
  // ErrorInfo reason of the FAILED_PRECONDITION that fences a stale attempt.
  static constexpr char kLeaseLostReason[] = "LEASE_LOST";

  // `store` must outlive the queue. A queue over an existing file carries on
  // where the last one stopped: jobs keep their state, leases their expiry.
  explicit JobQueue(TopologyStore* store, JobQueueOptions options = {});
  // Shutdown() and waits for the reaper thread.
  ~JobQueue();
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // Inserts a queued job using `db`, for a caller already inside a store
  // transaction (typically TopologyStore::Mutate, so that a topology change
  // and its job commit together). Call NotifyEnqueued() after that
  // transaction commits so that long-polling workers see the job at once.
  // INVALID_ARGUMENT when kind is empty or max_attempts < 1.
  static absl::StatusOr<int64_t> EnqueueIn(Database& db, const std::string& kind,
                                           const std::string& payload, const std::string& operation,
                                           int max_attempts, int64_t now_ms);

  // EnqueueIn in a transaction of its own, then NotifyEnqueued(). A
  // max_attempts <= 0 means options().max_attempts. Returns the job id.
  absl::StatusOr<int64_t> Enqueue(const std::string& kind, const std::string& payload,
                                  const std::string& operation = "", int max_attempts = 0);

  // Wakes every long-polling Lease so it looks again. Also what a test calls
  // after moving its fake clock.
  void NotifyEnqueued();

  // Leases the oldest (lowest job_id) runnable job of one of `kinds` to
  // `worker_id`: a queued job whose not_before has passed. Expired leases of
  // any kind are first turned into failed attempts (ReapExpired). Leasing
  // increments attempt and sets lease_expires_at = now + lease_ms.
  // When nothing is runnable, waits up to `wait` (capped at kMaxWaitMs) on a
  // condition variable woken by enqueues and by jobs returning to the queue,
  // and timed for the earliest not_before / lease expiry among `kinds`; it
  // never polls. Returns nullopt when `wait` passes, at once after
  // Shutdown(), and — without leasing — after `wait` when `kinds` is empty.
  absl::StatusOr<std::optional<JobRecord>> Lease(const std::string& worker_id,
                                                 const std::vector<std::string>& kinds,
                                                 absl::Duration wait);

  // Extends the lease of (job_id, attempt) to now + lease_ms and saves
  // `progress` (empty leaves the saved progress as it is). When the job was
  // cancelled or failed while this attempt held it: OK with cancel=true.
  // NOT_FOUND for an unknown job; FAILED_PRECONDITION ("lease lost") when
  // `attempt` is not the job's current attempt, the job is no longer leased,
  // or the lease has expired (even when not yet reaped).
  absl::StatusOr<HeartbeatResult> Heartbeat(int64_t job_id, int attempt,
                                            const std::string& progress);

  // Ends the lease of (job_id, attempt): the job is done with `result`, and
  // the kind's OnFinished hook runs in the same transaction. Repeating a
  // Complete that already succeeded is OK (a retried RPC). Same errors as
  // Heartbeat, plus FAILED_PRECONDITION when the job was cancelled.
  absl::Status Complete(int64_t job_id, int attempt, const std::string& result);

  // Ends the lease of (job_id, attempt) with `error`. Retryable with attempts
  // left: queued again with not_before = now + BackoffMs(attempt). Otherwise
  // failed with `error`, and the kind's OnFinished hook runs in the same
  // transaction. Same errors as Complete.
  absl::Status Fail(int64_t job_id, int attempt, const std::string& error, bool retryable);

  // Gives back a lease that was never used (the worker's call was cancelled
  // before the job reached it): queued again at once and the attempt not
  // counted. FAILED_PRECONDITION when (job_id, attempt) is not leased.
  absl::Status Release(int64_t job_id, int attempt);

  // Marks every queued or leased job of `operation` cancelled (no hook runs:
  // the operation itself is the canceller). Heartbeats of those leases then
  // get cancel=true. Returns how many jobs were cancelled.
  absl::StatusOr<int> Cancel(const std::string& operation);

  // Deletes the done and cancelled jobs last changed before `older_than_ms`
  // (queue clock); failed jobs stay for operators to read. Returns how many.
  absl::StatusOr<int> PurgeFinished(int64_t older_than_ms);

  // One job; NOT_FOUND when unknown.
  absl::StatusOr<JobRecord> Get(int64_t job_id);
  // Every job of `operation`, oldest first.
  absl::StatusOr<std::vector<JobRecord>> ListByOperation(const std::string& operation);

  // Turns every lease that has expired into a failed attempt: queued again
  // with not_before = lease_expires_at + BackoffMs(attempt), or, with no
  // attempts left, failed (hook included). Each job is its own transaction;
  // a job whose hook fails is logged and left for the next call. Returns the
  // number of jobs handled.
  absl::StatusOr<int> ReapExpired();

  // Registers the hook for jobs of `kind` (one per kind; a second replaces
  // the first). Call before workers can finish jobs of that kind.
  void OnFinished(const std::string& kind, JobFinishedHook hook);

  // Starts a thread that calls ReapExpired() at each lease's expiry (so an
  // abandoned job fails or returns on time even when no worker asks for its
  // kind). Optional: Lease reaps too. Production starts it; unit tests with
  // a fake clock do not.
  void StartReaper();

  // Makes every waiting and future Lease return nullopt at once and stops the
  // reaper. Heartbeat/Complete/Fail keep working (a shutting-down server may
  // still record outcomes). Idempotent.
  void Shutdown();

  // min(backoff_max_ms, backoff_base_ms * 2^(attempt-1)), for attempt >= 1.
  int64_t BackoffMs(int attempt) const;
  // The queue clock.
  int64_t NowMs() const { return now_ms_(); }
  const JobQueueOptions& options() const { return options_; }

 private:
  // Leases one job in one transaction, or reports through `next_due_ms` the
  // earliest time (queue clock) at which a job of `kinds` may become
  // runnable (nullopt: none pending).
  absl::StatusOr<std::optional<JobRecord>> TryLease(const std::string& worker_id,
                                                    const std::vector<std::string>& kinds,
                                                    std::optional<int64_t>* next_due_ms);
  // The earliest lease expiry of any kind, or nullopt.
  absl::StatusOr<std::optional<int64_t>> NextLeaseExpiry();
  // Turns one expired lease into a failed attempt (see ReapExpired). OK and
  // no change when (job_id, attempt) is no longer an expired lease.
  absl::Status ExpireOne(int64_t job_id, int attempt, bool* requeued);
  // Ends the lease of (job_id, attempt) in one transaction: `change` edits
  // the record (already checked to be that live lease) in place; the kind's
  // hook runs when the new state is terminal. With `complete_is_idempotent`,
  // a job already done by this attempt is OK and left alone.
  absl::Status EndLease(int64_t job_id, int attempt, bool complete_is_idempotent,
                        const std::function<void(JobRecord&)>& change);
  // Runs `body` on the job's row in one transaction: a TopologyStore::Mutate
  // when the job's kind has a hook (hooks may change topology), else a
  // Transact. `body` gets the hook (or null).
  absl::Status InJobTransaction(
      int64_t job_id, const std::function<absl::Status(Database&, const JobFinishedHook*)>& body);
  JobFinishedHook HookFor(const std::string& kind);
  void NotifyReaper();
  void ReaperLoop();

  TopologyStore* const store_;
  const JobQueueOptions options_;
  const std::function<int64_t()> now_ms_;

  mutable std::mutex mu_;
  std::condition_variable waiters_cv_;            // Lease long-polls wait here
  std::condition_variable reaper_cv_;             // the reaper waits here
  bool shutdown_ = false;                         // GUARDED_BY(mu_)
  uint64_t generation_ = 0;                       // GUARDED_BY(mu_); bumped by NotifyEnqueued()
  uint64_t reaper_generation_ = 0;                // GUARDED_BY(mu_); bumped by new leases
  std::map<std::string, JobFinishedHook> hooks_;  // GUARDED_BY(mu_)

  std::mutex reaper_mu_;  // serialises StartReaper/Shutdown's join; guards reaper_
  std::thread reaper_;    // GUARDED_BY(reaper_mu_)
};

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_TOPO_JOB_QUEUE_H_
