#include "conductor/topo/job_queue.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/errors.h"
#include "common/logging.h"

namespace conductor {
namespace {

// When something is overdue but could not be handled (a hook keeps failing),
// waiters look again after this long instead of spinning.
constexpr int64_t kOverdueRetryMs = 1000;

constexpr char kJobColumns[] =
    "job_id, kind, payload, state, attempt, max_attempts, lease_owner, lease_expires_at_ms, "
    "not_before_ms, progress, result, error, operation, created_at_ms, updated_at_ms";

bool IsTerminal(JobState state) {
  return state == JobState::kDone || state == JobState::kFailed || state == JobState::kCancelled;
}

std::string ColumnBytes(const Statement& stmt, int i) {
  const void* data = sqlite3_column_blob(stmt.handle(), i);
  int size = sqlite3_column_bytes(stmt.handle(), i);
  return data == nullptr ? std::string() : std::string(static_cast<const char*>(data), size);
}

absl::Status BindBytes(Statement& stmt, int i, const std::string& bytes) {
  return stmt.Bind(i, BlobValue(bytes));
}

// Reads the current row of a statement that selects kJobColumns.
absl::StatusOr<JobRecord> RowToRecord(const Statement& stmt) {
  JobRecord r;
  r.job_id = stmt.ColumnInt64(0);
  r.kind = stmt.ColumnText(1);
  r.payload = ColumnBytes(stmt, 2);
  if (!ParseJobState(stmt.ColumnText(3), &r.state)) {
    return absl::DataLossError(
        absl::StrCat("job ", r.job_id, " has unknown state ", stmt.ColumnText(3)));
  }
  r.attempt = static_cast<int>(stmt.ColumnInt64(4));
  r.max_attempts = static_cast<int>(stmt.ColumnInt64(5));
  r.lease_owner = stmt.ColumnText(6);
  r.lease_expires_at_ms = stmt.ColumnInt64(7);
  r.not_before_ms = stmt.ColumnInt64(8);
  r.progress = ColumnBytes(stmt, 9);
  r.result = ColumnBytes(stmt, 10);
  r.error = stmt.ColumnText(11);
  r.operation = stmt.ColumnText(12);
  r.created_at_ms = stmt.ColumnInt64(13);
  r.updated_at_ms = stmt.ColumnInt64(14);
  return r;
}

absl::StatusOr<JobRecord> ReadJob(Database& db, int64_t job_id) {
  auto stmt = db.Prepare(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE job_id = ?"));
  if (!stmt.ok()) return stmt.status();
  stmt->BindInt64(1, job_id).IgnoreError();
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::NotFoundError(absl::StrCat("no job with id ", job_id));
  return RowToRecord(*stmt);
}

// Writes every mutable column of `r` back to its row.
absl::Status WriteJob(Database& db, const JobRecord& r) {
  auto stmt = db.Prepare(
      "UPDATE jobs SET state = ?, attempt = ?, lease_owner = ?, lease_expires_at_ms = ?, "
      "not_before_ms = ?, progress = ?, result = ?, error = ?, updated_at_ms = ? "
      "WHERE job_id = ?");
  if (!stmt.ok()) return stmt.status();
  stmt->BindText(1, JobStateName(r.state)).IgnoreError();
  stmt->BindInt64(2, r.attempt).IgnoreError();
  stmt->BindText(3, r.lease_owner).IgnoreError();
  stmt->BindInt64(4, r.lease_expires_at_ms).IgnoreError();
  stmt->BindInt64(5, r.not_before_ms).IgnoreError();
  BindBytes(*stmt, 6, r.progress).IgnoreError();
  BindBytes(*stmt, 7, r.result).IgnoreError();
  stmt->BindText(8, r.error).IgnoreError();
  stmt->BindInt64(9, r.updated_at_ms).IgnoreError();
  stmt->BindInt64(10, r.job_id).IgnoreError();
  return stmt->Run();
}

absl::Status LeaseLost(absl::string_view message) {
  return Error(absl::StatusCode::kFailedPrecondition, JobQueue::kLeaseLostReason,
               absl::StrCat("lease lost: ", message));
}

// OK when (job, attempt) is the job's live lease at `now`; otherwise the
// FAILED_PRECONDITION that fences the caller.
absl::Status CheckHeld(const JobRecord& r, int attempt, int64_t now) {
  if (r.attempt != attempt) {
    return LeaseLost(
        absl::StrCat("job ", r.job_id, " is at attempt ", r.attempt, ", not ", attempt));
  }
  switch (r.state) {
    case JobState::kLeased:
      if (now >= r.lease_expires_at_ms) {
        return LeaseLost(absl::StrCat("the lease of job ", r.job_id, " attempt ", attempt,
                                      " expired at ", r.lease_expires_at_ms, " (now ", now, ")"));
      }
      return absl::OkStatus();
    case JobState::kQueued:
      return LeaseLost(absl::StrCat("job ", r.job_id, " attempt ", attempt,
                                    " already ended (expired or released)"));
    case JobState::kDone:
      return LeaseLost(absl::StrCat("job ", r.job_id, " is already done"));
    case JobState::kFailed:
      return LeaseLost(absl::StrCat("job ", r.job_id, " has failed: ", r.error));
    case JobState::kCancelled:
      return LeaseLost(absl::StrCat("job ", r.job_id, " was cancelled"));
  }
  return absl::InternalError("unreachable");
}

std::chrono::milliseconds Ms(int64_t ms) { return std::chrono::milliseconds(ms); }

}  // namespace

const char* JobStateName(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return "queued";
    case JobState::kLeased:
      return "leased";
    case JobState::kDone:
      return "done";
    case JobState::kFailed:
      return "failed";
    case JobState::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

bool ParseJobState(absl::string_view name, JobState* state) {
  for (JobState s : {JobState::kQueued, JobState::kLeased, JobState::kDone, JobState::kFailed,
                     JobState::kCancelled}) {
    if (name == JobStateName(s)) {
      *state = s;
      return true;
    }
  }
  return false;
}

JobQueue::JobQueue(TopologyStore* store, JobQueueOptions options)
    : store_(store),
      options_(std::move(options)),
      now_ms_(options_.now_ms ? options_.now_ms : &TopologyStore::NowMs) {}

JobQueue::~JobQueue() { Shutdown(); }

int64_t JobQueue::BackoffMs(int attempt) const {
  int64_t backoff = options_.backoff_base_ms;
  for (int i = 1; i < attempt && backoff < options_.backoff_max_ms; ++i) backoff *= 2;
  return std::min(backoff, options_.backoff_max_ms);
}

absl::StatusOr<int64_t> JobQueue::EnqueueIn(Database& db, const std::string& kind,
                                            const std::string& payload,
                                            const std::string& operation, int max_attempts,
                                            int64_t now_ms) {
  if (kind.empty()) return absl::InvalidArgumentError("a job needs a kind");
  if (max_attempts < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_attempts must be at least 1, not ", max_attempts));
  }
  // not_before_ms = 0: runnable at once, whatever clock the caller used.
  auto stmt = db.Prepare(
      "INSERT INTO jobs (kind, payload, state, attempt, max_attempts, not_before_ms, operation, "
      "created_at_ms, updated_at_ms) VALUES (?, ?, 'queued', 0, ?, 0, ?, ?, ?)");
  if (!stmt.ok()) return stmt.status();
  stmt->BindText(1, kind).IgnoreError();
  BindBytes(*stmt, 2, payload).IgnoreError();
  stmt->BindInt64(3, max_attempts).IgnoreError();
  stmt->BindText(4, operation).IgnoreError();
  stmt->BindInt64(5, now_ms).IgnoreError();
  stmt->BindInt64(6, now_ms).IgnoreError();
  if (auto s = stmt->Run(); !s.ok()) return Annotate(s, "enqueueing a job");
  return sqlite3_last_insert_rowid(db.handle());
}

absl::StatusOr<int64_t> JobQueue::Enqueue(const std::string& kind, const std::string& payload,
                                          const std::string& operation, int max_attempts) {
  if (max_attempts <= 0) max_attempts = options_.max_attempts;
  int64_t job_id = 0;
  absl::Status s = store_->Transact([&](Database& db) -> absl::Status {
    auto id = EnqueueIn(db, kind, payload, operation, max_attempts, now_ms_());
    if (!id.ok()) return id.status();
    job_id = *id;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  LogInfo("job %d (%s) enqueued for %s", job_id, kind, operation.empty() ? "-" : operation);
  NotifyEnqueued();
  return job_id;
}

void JobQueue::NotifyEnqueued() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++generation_;
  }
  waiters_cv_.notify_all();
}

void JobQueue::NotifyReaper() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++reaper_generation_;
  }
  reaper_cv_.notify_all();
}

absl::StatusOr<std::optional<JobRecord>> JobQueue::TryLease(const std::string& worker_id,
                                                            const std::vector<std::string>& kinds,
                                                            std::optional<int64_t>* next_due_ms) {
  std::optional<JobRecord> leased;
  *next_due_ms = std::nullopt;
  const std::string in_kinds =
      absl::StrCat("(", absl::StrJoin(std::vector<std::string>(kinds.size(), "?"), ", "), ")");
  absl::Status s = store_->Transact([&](Database& db) -> absl::Status {
    const int64_t now = now_ms_();
    auto pick = db.Prepare(absl::StrCat(
        "SELECT job_id FROM jobs WHERE state = 'queued' AND not_before_ms <= ? AND kind IN ",
        in_kinds, " ORDER BY job_id LIMIT 1"));
    if (!pick.ok()) return pick.status();
    pick->BindInt64(1, now).IgnoreError();
    for (size_t i = 0; i < kinds.size(); ++i) pick->BindText(2 + i, kinds[i]).IgnoreError();
    auto row = pick->Step();
    if (!row.ok()) return row.status();
    if (*row) {
      auto record = ReadJob(db, pick->ColumnInt64(0));
      if (!record.ok()) return record.status();
      record->state = JobState::kLeased;
      record->attempt += 1;
      record->lease_owner = worker_id;
      record->lease_expires_at_ms = now + options_.lease_ms;
      record->updated_at_ms = now;
      if (auto w = WriteJob(db, *record); !w.ok()) return w;
      leased = std::move(*record);
      return absl::OkStatus();
    }
    auto due = db.Prepare(absl::StrCat(
        "SELECT MIN(CASE state WHEN 'queued' THEN not_before_ms ELSE lease_expires_at_ms END) "
        "FROM jobs WHERE state IN ('queued', 'leased') AND kind IN ",
        in_kinds));
    if (!due.ok()) return due.status();
    for (size_t i = 0; i < kinds.size(); ++i) due->BindText(1 + i, kinds[i]).IgnoreError();
    auto due_row = due->Step();
    if (!due_row.ok()) return due_row.status();
    if (*due_row && !due->ColumnIsNull(0)) *next_due_ms = due->ColumnInt64(0);
    return absl::OkStatus();
  });
  if (!s.ok()) return Annotate(s, "leasing a job");
  return leased;
}

absl::StatusOr<std::optional<JobRecord>> JobQueue::Lease(const std::string& worker_id,
                                                         const std::vector<std::string>& kinds,
                                                         absl::Duration wait) {
  if (worker_id.empty()) return absl::InvalidArgumentError("a lease needs a worker_id");
  const int64_t wait_ms = std::clamp<int64_t>(absl::ToInt64Milliseconds(wait), 0, kMaxWaitMs);
  const auto deadline = std::chrono::steady_clock::now() + Ms(wait_ms);
  if (kinds.empty()) {
    // Nothing can be leased: wait out the poll (or until shutdown), never spin.
    std::unique_lock<std::mutex> lock(mu_);
    waiters_cv_.wait_until(lock, deadline, [&] { return shutdown_; });
    return std::nullopt;
  }
  bool looked_again = false;  // whether an overdue job already got one immediate retry
  while (true) {
    uint64_t seen = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (shutdown_) return std::nullopt;
      seen = generation_;
    }
    if (auto reaped = ReapExpired(); !reaped.ok()) return reaped.status();
    std::optional<int64_t> next_due_ms;
    auto leased = TryLease(worker_id, kinds, &next_due_ms);
    if (!leased.ok()) return leased.status();
    if (leased->has_value()) {
      const JobRecord& job = **leased;
      LogInfo("job %d (%s) attempt %d/%d leased to %s until %d", job.job_id, job.kind, job.attempt,
              job.max_attempts, worker_id, job.lease_expires_at_ms);
      NotifyReaper();
      return leased;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return std::nullopt;
    auto until = deadline;
    if (next_due_ms.has_value()) {
      int64_t delay = *next_due_ms - now_ms_();
      if (delay <= 0) {
        // Due by now: it became due since TryLease looked (look again at
        // once), or it cannot be handled (a failing hook: do not spin).
        if (!looked_again) {
          looked_again = true;
          continue;
        }
        delay = kOverdueRetryMs;
      } else {
        looked_again = false;
      }
      until = std::min(until, now + Ms(delay));
    }
    std::unique_lock<std::mutex> lock(mu_);
    waiters_cv_.wait_until(lock, until, [&] { return shutdown_ || generation_ != seen; });
  }
}

absl::StatusOr<JobRecord> JobQueue::Get(int64_t job_id) {
  JobRecord record;
  absl::Status s = store_->Transact([&](Database& db) -> absl::Status {
    auto r = ReadJob(db, job_id);
    if (!r.ok()) return r.status();
    record = std::move(*r);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return record;
}

absl::StatusOr<std::vector<JobRecord>> JobQueue::ListByOperation(const std::string& operation) {
  std::vector<JobRecord> jobs;
  absl::Status s = store_->Transact([&](Database& db) -> absl::Status {
    auto stmt = db.Prepare(
        absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE operation = ? ORDER BY job_id"));
    if (!stmt.ok()) return stmt.status();
    stmt->BindText(1, operation).IgnoreError();
    while (true) {
      auto row = stmt->Step();
      if (!row.ok()) return row.status();
      if (!*row) return absl::OkStatus();
      auto r = RowToRecord(*stmt);
      if (!r.ok()) return r.status();
      jobs.push_back(std::move(*r));
    }
  });
  if (!s.ok()) return s;
  return jobs;
}

JobFinishedHook JobQueue::HookFor(const std::string& kind) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = hooks_.find(kind);
  return it == hooks_.end() ? nullptr : it->second;
}

void JobQueue::OnFinished(const std::string& kind, JobFinishedHook hook) {
  std::lock_guard<std::mutex> lock(mu_);
  hooks_[kind] = std::move(hook);
}

absl::Status JobQueue::InJobTransaction(
    int64_t job_id, const std::function<absl::Status(Database&, const JobFinishedHook*)>& body) {
  // A job's kind never changes, so reading it first (to choose the kind of
  // transaction) cannot race with anything.
  auto job = Get(job_id);
  if (!job.ok()) return job.status();
  const JobFinishedHook hook = HookFor(job->kind);
  auto run = [&](Database& db) { return body(db, hook ? &hook : nullptr); };
  return hook ? store_->Mutate(run) : store_->Transact(run);
}

absl::StatusOr<HeartbeatResult> JobQueue::Heartbeat(int64_t job_id, int attempt,
                                                    const std::string& progress) {
  HeartbeatResult result;
  absl::Status s = store_->Transact([&](Database& db) -> absl::Status {
    const int64_t now = now_ms_();
    auto r = ReadJob(db, job_id);
    if (!r.ok()) return r.status();
    if (r->attempt == attempt &&
        (r->state == JobState::kCancelled || r->state == JobState::kFailed)) {
      result.lease_expires_at_ms = r->lease_expires_at_ms;
      result.cancel = true;
      return absl::OkStatus();
    }
    if (auto held = CheckHeld(*r, attempt, now); !held.ok()) return held;
    r->lease_expires_at_ms = now + options_.lease_ms;
    if (!progress.empty()) r->progress = progress;
    r->updated_at_ms = now;
    result.lease_expires_at_ms = r->lease_expires_at_ms;
    return WriteJob(db, *r);
  });
  if (!s.ok()) return s;
  return result;
}

absl::Status JobQueue::EndLease(int64_t job_id, int attempt, bool complete_is_idempotent,
                                const std::function<void(JobRecord&)>& change) {
  JobRecord after;
  bool changed = false;
  absl::Status s =
      InJobTransaction(job_id, [&](Database& db, const JobFinishedHook* hook) -> absl::Status {
        const int64_t now = now_ms_();
        auto r = ReadJob(db, job_id);
        if (!r.ok()) return r.status();
        if (complete_is_idempotent && r->state == JobState::kDone && r->attempt == attempt) {
          return absl::OkStatus();
        }
        if (auto held = CheckHeld(*r, attempt, now); !held.ok()) return held;
        change(*r);
        r->updated_at_ms = now;
        if (auto w = WriteJob(db, *r); !w.ok()) return w;
        if (hook != nullptr && IsTerminal(r->state)) {
          if (auto h = (*hook)(db, *r); !h.ok()) {
            return Annotate(h, absl::StrCat("job ", job_id, " finish hook"));
          }
        }
        after = std::move(*r);
        changed = true;
        return absl::OkStatus();
      });
  if (!s.ok() || !changed) return s;
  if (after.state == JobState::kQueued) {
    LogInfo("job %d (%s) attempt %d/%d failed, retry after %d: %s", job_id, after.kind, attempt,
            after.max_attempts, after.not_before_ms, after.error);
    NotifyEnqueued();
  } else if (after.state == JobState::kFailed) {
    LogWarning("job %d (%s) failed at attempt %d/%d: %s", job_id, after.kind, attempt,
               after.max_attempts, after.error);
  } else {
    LogInfo("job %d (%s) %s at attempt %d", job_id, after.kind, JobStateName(after.state), attempt);
  }
  return absl::OkStatus();
}

absl::Status JobQueue::Complete(int64_t job_id, int attempt, const std::string& result) {
  return EndLease(job_id, attempt, /*complete_is_idempotent=*/true, [&](JobRecord& r) {
    r.state = JobState::kDone;
    r.result = result;
  });
}

absl::Status JobQueue::Fail(int64_t job_id, int attempt, const std::string& error, bool retryable) {
  return EndLease(job_id, attempt, /*complete_is_idempotent=*/false, [&](JobRecord& r) {
    r.error = error;
    if (retryable && r.attempt < r.max_attempts) {
      r.state = JobState::kQueued;
      r.not_before_ms = now_ms_() + BackoffMs(r.attempt);
      r.lease_owner.clear();
      r.lease_expires_at_ms = 0;
    } else {
      r.state = JobState::kFailed;
    }
  });
}

absl::Status JobQueue::Release(int64_t job_id, int attempt) {
  absl::Status s = store_->Transact([&](Database& db) -> absl::Status {
    auto r = ReadJob(db, job_id);
    if (!r.ok()) return r.status();
    if (r->state != JobState::kLeased || r->attempt != attempt) {
      return LeaseLost(absl::StrCat("job ", job_id, " attempt ", attempt, " is not leased"));
    }
    r->state = JobState::kQueued;
    r->attempt -= 1;
    r->lease_owner.clear();
    r->lease_expires_at_ms = 0;
    r->updated_at_ms = now_ms_();
    return WriteJob(db, *r);
  });
  if (!s.ok()) return s;
  LogInfo("job %d attempt %d released unused", job_id, attempt);
  NotifyEnqueued();
  return absl::OkStatus();
}

absl::StatusOr<int> JobQueue::Cancel(const std::string& operation) {
  if (operation.empty()) return absl::InvalidArgumentError("Cancel needs an operation");
  int cancelled = 0;
  absl::Status s = store_->Transact([&](Database& db) -> absl::Status {
    auto stmt = db.Prepare(
        "UPDATE jobs SET state = 'cancelled', updated_at_ms = ? "
        "WHERE operation = ? AND state IN ('queued', 'leased')");
    if (!stmt.ok()) return stmt.status();
    stmt->BindInt64(1, now_ms_()).IgnoreError();
    stmt->BindText(2, operation).IgnoreError();
    if (auto r = stmt->Run(); !r.ok()) return r;
    cancelled = static_cast<int>(db.Changes());
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (cancelled > 0) LogInfo("cancelled %d job(s) of %s", cancelled, operation);
  return cancelled;
}

absl::StatusOr<int> JobQueue::PurgeFinished(int64_t older_than_ms) {
  int purged = 0;
  absl::Status s = store_->Transact([&](Database& db) -> absl::Status {
    auto stmt =
        db.Prepare("DELETE FROM jobs WHERE state IN ('done', 'cancelled') AND updated_at_ms < ?");
    if (!stmt.ok()) return stmt.status();
    stmt->BindInt64(1, older_than_ms).IgnoreError();
    if (auto r = stmt->Run(); !r.ok()) return r;
    purged = static_cast<int>(db.Changes());
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return purged;
}

absl::Status JobQueue::ExpireOne(int64_t job_id, int attempt, bool* requeued) {
  JobRecord after;
  bool changed = false;
  absl::Status s =
      InJobTransaction(job_id, [&](Database& db, const JobFinishedHook* hook) -> absl::Status {
        const int64_t now = now_ms_();
        auto r = ReadJob(db, job_id);
        if (!r.ok()) return r.status();
        if (r->state != JobState::kLeased || r->attempt != attempt ||
            now < r->lease_expires_at_ms) {
          return absl::OkStatus();  // heartbeat, completed or reaped meanwhile
        }
        r->error =
            absl::StrCat("attempt ", r->attempt, " of ", r->max_attempts, ": the lease of worker ",
                         r->lease_owner, " expired without a heartbeat");
        if (r->attempt < r->max_attempts) {
          r->state = JobState::kQueued;
          // Back-off from the moment the attempt failed, however late we look.
          r->not_before_ms = r->lease_expires_at_ms + BackoffMs(r->attempt);
          r->lease_owner.clear();
          r->lease_expires_at_ms = 0;
        } else {
          r->state = JobState::kFailed;
        }
        r->updated_at_ms = now;
        if (auto w = WriteJob(db, *r); !w.ok()) return w;
        if (hook != nullptr && r->state == JobState::kFailed) {
          if (auto h = (*hook)(db, *r); !h.ok()) {
            return Annotate(h, absl::StrCat("job ", job_id, " finish hook"));
          }
        }
        after = std::move(*r);
        changed = true;
        return absl::OkStatus();
      });
  if (!s.ok() || !changed) return s;
  *requeued = after.state == JobState::kQueued;
  if (*requeued) {
    LogWarning("job %d (%s): %s; retry after %d", job_id, after.kind, after.error,
               after.not_before_ms);
  } else {
    LogWarning("job %d (%s) failed: %s", job_id, after.kind, after.error);
  }
  return absl::OkStatus();
}

absl::StatusOr<int> JobQueue::ReapExpired() {
  std::vector<std::pair<int64_t, int>> expired;  // (job_id, attempt)
  absl::Status s = store_->Transact([&](Database& db) -> absl::Status {
    auto stmt = db.Prepare(
        "SELECT job_id, attempt FROM jobs WHERE state = 'leased' AND lease_expires_at_ms <= ? "
        "ORDER BY job_id");
    if (!stmt.ok()) return stmt.status();
    stmt->BindInt64(1, now_ms_()).IgnoreError();
    while (true) {
      auto row = stmt->Step();
      if (!row.ok()) return row.status();
      if (!*row) return absl::OkStatus();
      expired.emplace_back(stmt->ColumnInt64(0), static_cast<int>(stmt->ColumnInt64(1)));
    }
  });
  if (!s.ok()) return Annotate(s, "looking for expired leases");
  int handled = 0;
  bool any_requeued = false;
  for (const auto& [job_id, attempt] : expired) {
    bool requeued = false;
    if (auto e = ExpireOne(job_id, attempt, &requeued); !e.ok()) {
      LogError("job %d: cannot end its expired lease: %s", job_id, e.ToString());
      continue;
    }
    ++handled;
    any_requeued |= requeued;
  }
  if (any_requeued) NotifyEnqueued();
  return handled;
}

absl::StatusOr<std::optional<int64_t>> JobQueue::NextLeaseExpiry() {
  std::optional<int64_t> next;
  absl::Status s = store_->Transact([&](Database& db) -> absl::Status {
    auto stmt = db.Prepare("SELECT MIN(lease_expires_at_ms) FROM jobs WHERE state = 'leased'");
    if (!stmt.ok()) return stmt.status();
    auto row = stmt->Step();
    if (!row.ok()) return row.status();
    if (*row && !stmt->ColumnIsNull(0)) next = stmt->ColumnInt64(0);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return next;
}

void JobQueue::ReaperLoop() {
  bool looked_again = false;  // whether an overdue lease already got one immediate retry
  while (true) {
    uint64_t seen = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (shutdown_) return;
      seen = reaper_generation_;
    }
    if (auto reaped = ReapExpired(); !reaped.ok()) {
      LogError("job reaper: %s", reaped.status().ToString());
    }
    auto next = NextLeaseExpiry();
    std::unique_lock<std::mutex> lock(mu_);
    auto woken = [&] { return shutdown_ || reaper_generation_ != seen; };
    if (!next.ok()) {
      LogError("job reaper: %s", next.status().ToString());
      reaper_cv_.wait_for(lock, Ms(kOverdueRetryMs), woken);
    } else if (!next->has_value()) {
      reaper_cv_.wait(lock, woken);  // no lease at all: sleep until one is granted
    } else {
      int64_t delay = **next - now_ms_();
      if (delay <= 0 && !looked_again) {
        looked_again = true;  // expired since ReapExpired looked: look again at once
        continue;
      }
      looked_again = false;
      if (delay <= 0) delay = kOverdueRetryMs;  // cannot be handled: do not spin
      reaper_cv_.wait_for(lock, Ms(delay), woken);
    }
  }
}

void JobQueue::StartReaper() {
  std::lock_guard<std::mutex> reaper_lock(reaper_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_) return;
  }
  if (reaper_.joinable()) return;
  reaper_ = std::thread([this] { ReaperLoop(); });
}

void JobQueue::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  waiters_cv_.notify_all();
  reaper_cv_.notify_all();
  std::lock_guard<std::mutex> reaper_lock(reaper_mu_);
  if (reaper_.joinable()) reaper_.join();
}

}  // namespace conductor
