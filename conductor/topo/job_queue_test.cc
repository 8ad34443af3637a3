// JobQueue over a real SQLite file with a fake clock: leasing order, long
// polls, lease expiry, heartbeats, fencing, back-off, the retry limit and
// its hook, cancellation, a conductor restart with jobs in every state, and
// the v1 -> v2 schema migration. Then JobQueueService over real gRPC:
// validation, statuses, deadlines, cancelled polls and shutdown.
#include "conductor/topo/job_queue.h"

#include <sys/resource.h>
#include <sys/time.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/sqlite.h"
#include "conductor/jobs/job_queue_service.h"
#include "conductor/topo/topology_store.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace conductor {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr int64_t kStart = 1'700'000'000'000;  // the fake clock's first reading
constexpr int64_t kLeaseMs = 10'000;

std::string TempPath(const std::string& name) {
  const char* dir = getenv("TEST_TMPDIR");
  std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
  std::remove(path.c_str());
  std::remove((path + "-wal").c_str());
  std::remove((path + "-shm").c_str());
  return path;
}

// CPU time this thread has used, in ms.
int64_t ThreadCpuMs() {
  struct rusage usage;
  getrusage(RUSAGE_THREAD, &usage);
  return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000 +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1000;
}

class JobQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = TempPath(std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) +
                     ".db");
    Open();
  }

  // (Re)opens store and queue on path_, as a restarted conductor would.
  void Open() {
    queue_.reset();
    store_.reset();
    auto store = TopologyStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    JobQueueOptions options;
    options.lease_ms = kLeaseMs;
    options.backoff_base_ms = 1000;
    options.backoff_max_ms = 8000;
    options.max_attempts = 3;
    options.now_ms = [this] { return now_.load(); };
    queue_ = std::make_unique<JobQueue>(store_.get(), options);
  }

  int64_t Enqueue(const std::string& kind = "k", const std::string& operation = "op:1",
                  int max_attempts = 0) {
    auto id = queue_->Enqueue(kind, "payload-" + kind, operation, max_attempts);
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : -1;
  }

  // Leases without waiting; fails the test when nothing is runnable.
  JobRecord MustLease(const std::vector<std::string>& kinds = {"k"},
                      const std::string& worker = "w1") {
    auto job = queue_->Lease(worker, kinds, absl::ZeroDuration());
    EXPECT_TRUE(job.ok()) << job.status();
    EXPECT_TRUE(job.ok() && job->has_value()) << "nothing runnable";
    return job.ok() && job->has_value() ? **job : JobRecord{};
  }

  bool NothingRunnable(const std::vector<std::string>& kinds = {"k"}) {
    auto job = queue_->Lease("w1", kinds, absl::ZeroDuration());
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() && !job->has_value();
  }

  JobRecord MustGet(int64_t job_id) {
    auto job = queue_->Get(job_id);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : JobRecord{};
  }

  void Advance(int64_t ms) { now_ += ms; }

  std::string path_;
  std::atomic<int64_t> now_{kStart};
  std::unique_ptr<TopologyStore> store_;
  std::unique_ptr<JobQueue> queue_;
};

void ExpectLeaseLost(const absl::Status& status) {
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_EQ(ErrorReason(status), JobQueue::kLeaseLostReason) << status;
}

TEST_F(JobQueueTest, LeaseReturnsTheOldestRunnableJobOfTheAskedKinds) {
  int64_t a = Enqueue("k");
  int64_t other = Enqueue("other");
  int64_t b = Enqueue("k");
  JobRecord first = MustLease();
  EXPECT_EQ(first.job_id, a);
  EXPECT_EQ(first.state, JobState::kLeased);
  EXPECT_EQ(first.attempt, 1);
  EXPECT_EQ(first.kind, "k");
  EXPECT_EQ(first.payload, "payload-k");
  EXPECT_EQ(first.lease_owner, "w1");
  EXPECT_EQ(first.lease_expires_at_ms, kStart + kLeaseMs);
  EXPECT_EQ(MustLease().job_id, b);
  EXPECT_TRUE(NothingRunnable()) << "the 'other' job is not of kind k";
  EXPECT_EQ(MustLease({"k", "other"}).job_id, other);
  EXPECT_TRUE(NothingRunnable({"k", "other"}));
  EXPECT_EQ(MustGet(a).state, JobState::kLeased);
}

TEST_F(JobQueueTest, PayloadsAndProgressAreBinarySafe) {
  std::string payload("\0\x01\xff\0zz", 6);
  auto id = queue_->Enqueue("k", payload, "op");
  ASSERT_TRUE(id.ok());
  JobRecord job = MustLease();
  EXPECT_EQ(job.payload, payload);
  std::string progress("\0\0\x80", 3);
  ASSERT_TRUE(queue_->Heartbeat(job.job_id, job.attempt, progress).ok());
  EXPECT_EQ(MustGet(job.job_id).progress, progress);
}

TEST_F(JobQueueTest, LongPollReturnsPromptlyWhenAJobIsEnqueued) {
  auto start = steady_clock::now();
  auto waiter =
      std::async(std::launch::async, [&] { return queue_->Lease("w1", {"k"}, absl::Seconds(20)); });
  std::this_thread::sleep_for(milliseconds(200));
  int64_t id = Enqueue();
  auto job = waiter.get();
  auto elapsed = steady_clock::now() - start;
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_TRUE(job->has_value());
  EXPECT_EQ((*job)->job_id, id);
  EXPECT_LT(elapsed, milliseconds(2000)) << "the enqueue must wake the long poll";
}

TEST_F(JobQueueTest, LongPollTimesOutWithoutBusyWaiting) {
  // A job of another kind, and one of ours in back-off far in the future:
  // neither may make the poll spin.
  Enqueue("other");
  int64_t backing_off = Enqueue("k");
  JobRecord job = MustLease();
  ASSERT_TRUE(queue_->Fail(job.job_id, job.attempt, "x", /*retryable=*/true).ok());
  ASSERT_EQ(MustGet(backing_off).state, JobState::kQueued);

  auto start = steady_clock::now();
  int64_t cpu_before = ThreadCpuMs();
  auto none = queue_->Lease("w1", {"k"}, absl::Milliseconds(700));
  int64_t cpu_ms = ThreadCpuMs() - cpu_before;
  auto elapsed = steady_clock::now() - start;
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());
  EXPECT_GE(elapsed, milliseconds(690));
  EXPECT_LT(elapsed, milliseconds(3000));
  EXPECT_LT(cpu_ms, 100) << "a long poll must sleep, not spin";
}

TEST_F(JobQueueTest, LongPollWakesWhenABackOffEnds) {
  int64_t id = Enqueue();
  JobRecord job = MustLease();
  ASSERT_TRUE(queue_->Fail(job.job_id, job.attempt, "x", /*retryable=*/true).ok());
  // The fake clock stands still, so the back-off (1 s) ends in real time
  // only because the poll sleeps until not_before on the queue clock; move
  // the clock forward meanwhile and the poll must then see the job.
  auto start = steady_clock::now();
  auto waiter =
      std::async(std::launch::async, [&] { return queue_->Lease("w1", {"k"}, absl::Seconds(10)); });
  std::this_thread::sleep_for(milliseconds(100));
  Advance(1000);
  auto again = waiter.get();
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_TRUE(again->has_value());
  EXPECT_EQ((*again)->job_id, id);
  EXPECT_EQ((*again)->attempt, 2);
  EXPECT_LT(steady_clock::now() - start, milliseconds(3000));
}

TEST_F(JobQueueTest, EmptyKindsWaitOutThePollWithoutLeasing) {
  int64_t id = Enqueue();
  auto start = steady_clock::now();
  auto none = queue_->Lease("w1", {}, absl::Milliseconds(300));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_GE(steady_clock::now() - start, milliseconds(290));
  EXPECT_EQ(MustGet(id).state, JobState::kQueued);
}

TEST_F(JobQueueTest, ShutdownWakesEveryWaiter) {
  auto with_kinds =
      std::async(std::launch::async, [&] { return queue_->Lease("w1", {"k"}, absl::Seconds(30)); });
  auto without_kinds =
      std::async(std::launch::async, [&] { return queue_->Lease("w2", {}, absl::Seconds(30)); });
  std::this_thread::sleep_for(milliseconds(200));
  auto start = steady_clock::now();
  queue_->Shutdown();
  auto a = with_kinds.get();
  auto b = without_kinds.get();
  EXPECT_LT(steady_clock::now() - start, milliseconds(1000));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_FALSE(a->has_value());
  EXPECT_FALSE(b->has_value());
  Enqueue();
  EXPECT_TRUE(NothingRunnable()) << "no leases after shutdown";
}

TEST_F(JobQueueTest, AnExpiredLeaseReturnsTheJobAsAFailedAttempt) {
  int64_t id = Enqueue();
  JobRecord first = MustLease({"k"}, "w1");
  Advance(kLeaseMs - 1);
  EXPECT_TRUE(NothingRunnable()) << "still leased";
  Advance(1);  // the lease ends now
  ExpectLeaseLost(queue_->Heartbeat(id, first.attempt, "").status());
  EXPECT_TRUE(NothingRunnable()) << "back-off after the expired attempt";
  JobRecord queued = MustGet(id);
  EXPECT_EQ(queued.state, JobState::kQueued);
  EXPECT_EQ(queued.attempt, 1) << "the expired lease counts as an attempt";
  EXPECT_EQ(queued.not_before_ms, first.lease_expires_at_ms + 1000);
  EXPECT_NE(queued.error.find("expired"), std::string::npos) << queued.error;
  EXPECT_NE(queued.error.find("w1"), std::string::npos) << queued.error;

  Advance(1000);
  JobRecord second = MustLease({"k"}, "w2");
  EXPECT_EQ(second.job_id, id);
  EXPECT_EQ(second.attempt, 2);
  EXPECT_EQ(second.lease_owner, "w2");
  // The first worker wakes up late: fenced off.
  ExpectLeaseLost(queue_->Heartbeat(id, first.attempt, "old").status());
  ExpectLeaseLost(queue_->Complete(id, first.attempt, "old"));
  ExpectLeaseLost(queue_->Fail(id, first.attempt, "old", true));
  EXPECT_TRUE(queue_->Complete(id, second.attempt, "ok").ok());
  JobRecord done = MustGet(id);
  EXPECT_EQ(done.state, JobState::kDone);
  EXPECT_EQ(done.result, "ok");
}

TEST_F(JobQueueTest, ReapingLateStillBacksOffFromTheExpiry) {
  int64_t id = Enqueue();
  JobRecord first = MustLease();
  Advance(kLeaseMs + 5000);  // nobody looked for 5 s after the expiry
  auto reaped = queue_->ReapExpired();
  ASSERT_TRUE(reaped.ok());
  EXPECT_EQ(*reaped, 1);
  EXPECT_EQ(MustGet(id).not_before_ms, first.lease_expires_at_ms + 1000);
  EXPECT_EQ(MustLease().attempt, 2) << "the back-off has long passed";
}

TEST_F(JobQueueTest, HeartbeatExtendsTheLeaseAndSavesProgress) {
  int64_t id = Enqueue();
  JobRecord job = MustLease();
  Advance(8000);
  auto beat = queue_->Heartbeat(id, job.attempt, "row 100");
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_FALSE(beat->cancel);
  EXPECT_EQ(beat->lease_expires_at_ms, kStart + 8000 + kLeaseMs);
  Advance(5000);  // past the first expiry, within the extended one
  auto reaped = queue_->ReapExpired();
  ASSERT_TRUE(reaped.ok());
  EXPECT_EQ(*reaped, 0);
  ASSERT_TRUE(queue_->Heartbeat(id, job.attempt, "").ok()) << "still held";
  EXPECT_EQ(MustGet(id).progress, "row 100") << "an empty progress keeps the saved one";

  // The worker dies; the next attempt resumes from the saved progress.
  Advance(kLeaseMs);  // the lease from the last heartbeat ends now; the back-off starts
  EXPECT_TRUE(NothingRunnable());
  Advance(1000);
  JobRecord again = MustLease();
  EXPECT_EQ(again.job_id, id);
  EXPECT_EQ(again.attempt, 2);
  EXPECT_EQ(again.progress, "row 100");
}

TEST_F(JobQueueTest, FencingRejectsStaleAndUnknownLeases) {
  int64_t id = Enqueue();
  JobRecord job = MustLease();
  ExpectLeaseLost(queue_->Heartbeat(id, job.attempt + 1, "").status());
  ExpectLeaseLost(queue_->Complete(id, job.attempt + 1, ""));
  ExpectLeaseLost(queue_->Fail(id, job.attempt - 1, "", true));
  EXPECT_EQ(queue_->Heartbeat(id + 100, 1, "").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(queue_->Complete(id + 100, 1, "").code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(queue_->Complete(id, job.attempt, "r").ok());
  EXPECT_TRUE(queue_->Complete(id, job.attempt, "r").ok()) << "a retried Complete is OK";
  ExpectLeaseLost(queue_->Fail(id, job.attempt, "late", true));
  ExpectLeaseLost(queue_->Heartbeat(id, job.attempt, "").status());
  EXPECT_EQ(MustGet(id).state, JobState::kDone);
}

TEST_F(JobQueueTest, BackOffDoublesAndCaps) {
  EXPECT_EQ(queue_->BackoffMs(1), 1000);
  EXPECT_EQ(queue_->BackoffMs(2), 2000);
  EXPECT_EQ(queue_->BackoffMs(3), 4000);
  EXPECT_EQ(queue_->BackoffMs(4), 8000);
  EXPECT_EQ(queue_->BackoffMs(5), 8000);
  EXPECT_EQ(queue_->BackoffMs(60), 8000) << "no overflow";

  int64_t id = Enqueue("k", "op", /*max_attempts=*/10);
  for (int attempt = 1; attempt <= 6; ++attempt) {
    JobRecord job = MustLease();
    ASSERT_EQ(job.job_id, id);
    ASSERT_EQ(job.attempt, attempt);
    ASSERT_TRUE(queue_->Fail(id, attempt, "boom " + std::to_string(attempt), true).ok());
    JobRecord queued = MustGet(id);
    ASSERT_EQ(queued.state, JobState::kQueued);
    const int64_t backoff = std::min<int64_t>(8000, 1000LL << (attempt - 1));
    EXPECT_EQ(queued.not_before_ms, now_.load() + backoff) << "attempt " << attempt;
    EXPECT_EQ(queued.error, "boom " + std::to_string(attempt));
    Advance(backoff - 1);
    EXPECT_TRUE(NothingRunnable()) << "leased during the back-off of attempt " << attempt;
    Advance(1);
  }
}

// The hook of the tests below records outcomes in a table of its own, in the
// transaction that finishes the job.
absl::Status CreateOutcomes(TopologyStore& store) {
  return store.Transact([](Database& db) {
    return db.Exec("CREATE TABLE outcomes (job_id INTEGER, state TEXT, error TEXT, result BLOB)");
  });
}

JobFinishedHook RecordOutcome(absl::Status verdict = absl::OkStatus()) {
  return [verdict](Database& db, const JobRecord& job) -> absl::Status {
    auto stmt = db.Prepare("INSERT INTO outcomes VALUES (?, ?, ?, ?)");
    if (!stmt.ok()) return stmt.status();
    stmt->BindInt64(1, job.job_id).IgnoreError();
    stmt->BindText(2, JobStateName(job.state)).IgnoreError();
    stmt->BindText(3, job.error).IgnoreError();
    stmt->BindText(4, job.result).IgnoreError();
    if (auto s = stmt->Run(); !s.ok()) return s;
    return verdict;
  };
}

// The outcomes rows, "state:error:result" each.
std::vector<std::string> Outcomes(TopologyStore& store) {
  std::vector<std::string> rows;
  EXPECT_TRUE(store
                  .Transact([&](Database& db) -> absl::Status {
                    auto stmt = db.Prepare(
                        "SELECT job_id, state, error, result FROM outcomes ORDER BY rowid");
                    if (!stmt.ok()) return stmt.status();
                    while (true) {
                      auto row = stmt->Step();
                      if (!row.ok()) return row.status();
                      if (!*row) return absl::OkStatus();
                      rows.push_back(stmt->ColumnText(1) + ":" + stmt->ColumnText(2) + ":" +
                                     stmt->ColumnText(3));
                    }
                  })
                  .ok());
  return rows;
}

TEST_F(JobQueueTest, RetryLimitFailsTheJobAndRunsTheHookInTheSameTransaction) {
  ASSERT_TRUE(CreateOutcomes(*store_).ok());
  queue_->OnFinished("k", RecordOutcome());
  int64_t id = Enqueue();  // max_attempts 3 (the queue default here)
  for (int attempt = 1; attempt <= 3; ++attempt) {
    JobRecord job = MustLease();
    ASSERT_EQ(job.attempt, attempt);
    EXPECT_TRUE(Outcomes(*store_).empty());
    ASSERT_TRUE(queue_->Fail(id, attempt, "disk " + std::to_string(attempt), true).ok());
    Advance(10000);
  }
  JobRecord failed = MustGet(id);
  EXPECT_EQ(failed.state, JobState::kFailed);
  EXPECT_EQ(failed.error, "disk 3");
  EXPECT_EQ(Outcomes(*store_), std::vector<std::string>{"failed:disk 3:"});
  EXPECT_TRUE(NothingRunnable());

  // A non-retryable failure ends the job at once.
  int64_t permanent = Enqueue();
  JobRecord job = MustLease();
  ASSERT_EQ(job.job_id, permanent);
  ASSERT_TRUE(queue_->Fail(permanent, 1, "bad payload", /*retryable=*/false).ok());
  EXPECT_EQ(MustGet(permanent).state, JobState::kFailed);
  EXPECT_EQ(Outcomes(*store_).back(), "failed:bad payload:");

  // Success runs the hook too, with the result.
  int64_t good = Enqueue();
  job = MustLease();
  ASSERT_TRUE(queue_->Complete(good, job.attempt, "42 rows").ok());
  EXPECT_EQ(Outcomes(*store_).back(), "done::42 rows");
}

TEST_F(JobQueueTest, TheLastExpiredAttemptFailsTheJobThroughTheHook) {
  ASSERT_TRUE(CreateOutcomes(*store_).ok());
  queue_->OnFinished("k", RecordOutcome());
  int64_t id = Enqueue("k", "op", /*max_attempts=*/2);
  MustLease();
  Advance(kLeaseMs);
  EXPECT_TRUE(NothingRunnable());
  Advance(1000);
  EXPECT_EQ(MustLease().attempt, 2);
  Advance(kLeaseMs);
  auto reaped = queue_->ReapExpired();
  ASSERT_TRUE(reaped.ok());
  EXPECT_EQ(*reaped, 1);
  JobRecord failed = MustGet(id);
  EXPECT_EQ(failed.state, JobState::kFailed);
  EXPECT_NE(failed.error.find("attempt 2 of 2"), std::string::npos) << failed.error;
  ASSERT_EQ(Outcomes(*store_).size(), 1u);
  EXPECT_EQ(Outcomes(*store_)[0].rfind("failed:attempt 2 of 2", 0), 0u) << Outcomes(*store_)[0];
}

TEST_F(JobQueueTest, AFailingHookRollsTheStateChangeBack) {
  ASSERT_TRUE(CreateOutcomes(*store_).ok());
  queue_->OnFinished("k", RecordOutcome(absl::AbortedError("operation busy")));
  int64_t id = Enqueue();
  JobRecord job = MustLease();
  int64_t version = store_->snapshot()->version;
  absl::Status refused = queue_->Complete(id, job.attempt, "r");
  EXPECT_EQ(refused.code(), absl::StatusCode::kAborted) << refused;
  EXPECT_EQ(MustGet(id).state, JobState::kLeased) << "the state change rolled back";
  EXPECT_TRUE(Outcomes(*store_).empty()) << "and the hook's own row with it";
  EXPECT_EQ(store_->snapshot()->version, version);
  EXPECT_EQ(queue_->Fail(id, job.attempt, "e", false).code(), absl::StatusCode::kAborted);
  EXPECT_EQ(MustGet(id).state, JobState::kLeased);

  queue_->OnFinished("k", RecordOutcome());
  ASSERT_TRUE(queue_->Complete(id, job.attempt, "r").ok());
  EXPECT_EQ(MustGet(id).state, JobState::kDone);
  EXPECT_EQ(Outcomes(*store_), std::vector<std::string>{"done::r"});
  EXPECT_GT(store_->snapshot()->version, version) << "a hooked finish runs in a topology mutation";
}

TEST_F(JobQueueTest, JobTrafficDoesNotBumpTheTopologyVersion) {
  int64_t version = store_->snapshot()->version;
  int64_t id = Enqueue();
  JobRecord job = MustLease();
  ASSERT_TRUE(queue_->Heartbeat(id, job.attempt, "p").ok());
  ASSERT_TRUE(queue_->Complete(id, job.attempt, "r").ok());
  EXPECT_EQ(store_->snapshot()->version, version);
}

TEST_F(JobQueueTest, EnqueueInCommitsWithATopologyChangeOrNotAtAll) {
  // A failing mutation takes its job with it.
  absl::Status refused = store_->Mutate([&](Database& db) -> absl::Status {
    auto id = JobQueue::EnqueueIn(db, "k", "p", "op:2", 3, queue_->NowMs());
    if (!id.ok()) return id.status();
    return absl::AbortedError("the topology change failed");
  });
  EXPECT_EQ(refused.code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(NothingRunnable());
  int64_t version = store_->snapshot()->version;
  int64_t job_id = 0;
  ASSERT_TRUE(store_
                  ->Mutate([&](Database& db) -> absl::Status {
                    if (auto s =
                            db.Exec("INSERT INTO storage_nodes VALUES ('n9', '127.0.0.1:9', 0)");
                        !s.ok()) {
                      return s;
                    }
                    auto id = JobQueue::EnqueueIn(db, "k", "p", "op:2", 3, queue_->NowMs());
                    if (!id.ok()) return id.status();
                    job_id = *id;
                    return absl::OkStatus();
                  })
                  .ok());
  queue_->NotifyEnqueued();
  EXPECT_EQ(store_->snapshot()->version, version + 1);
  ASSERT_EQ(store_->snapshot()->nodes.size(), 1u);
  EXPECT_EQ(store_->snapshot()->nodes[0].node_id, "n9");
  EXPECT_EQ(MustLease().job_id, job_id);
  auto scratch = Database::Open(":memory:");
  ASSERT_TRUE(scratch.ok());
  EXPECT_EQ(JobQueue::EnqueueIn(**scratch, "", "p", "op", 1, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(JobQueue::EnqueueIn(**scratch, "k", "p", "op", 0, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(JobQueueTest, ReleaseGivesAnUnusedLeaseBackWithoutCountingIt) {
  int64_t id = Enqueue();
  JobRecord job = MustLease();
  ASSERT_TRUE(queue_->Release(id, job.attempt).ok());
  JobRecord queued = MustGet(id);
  EXPECT_EQ(queued.state, JobState::kQueued);
  EXPECT_EQ(queued.attempt, 0);
  EXPECT_EQ(MustLease().attempt, 1) << "runnable at once";
  ExpectLeaseLost(queue_->Release(id, 7));
}

TEST_F(JobQueueTest, CancelStopsAnOperationsJobs) {
  int64_t leased = Enqueue("k", "index:7");
  int64_t queued = Enqueue("k", "index:7");
  int64_t unrelated = Enqueue("k", "index:8");
  JobRecord job = MustLease();
  ASSERT_EQ(job.job_id, leased);
  auto cancelled = queue_->Cancel("index:7");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(*cancelled, 2);
  auto beat = queue_->Heartbeat(leased, job.attempt, "p");
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_TRUE(beat->cancel);
  ExpectLeaseLost(queue_->Complete(leased, job.attempt, "r"));
  EXPECT_EQ(MustLease().job_id, unrelated) << "the cancelled queued job is skipped";
  auto jobs = queue_->ListByOperation("index:7");
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].job_id, leased);
  EXPECT_EQ((*jobs)[1].job_id, queued);
  for (const JobRecord& j : *jobs) EXPECT_EQ(j.state, JobState::kCancelled);
  EXPECT_EQ(*queue_->Cancel("index:7"), 0) << "nothing left to cancel";
  EXPECT_EQ(queue_->Cancel("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(JobQueueTest, ARestartedConductorHandlesJobsInEveryState) {
  // Built in this order, so ids ascend: done, failed, expired, live, backoff, queued.
  int64_t done = Enqueue();
  JobRecord j = MustLease();
  ASSERT_TRUE(queue_->Complete(done, j.attempt, "result").ok());
  int64_t failed = Enqueue();
  j = MustLease();
  ASSERT_TRUE(queue_->Fail(failed, j.attempt, "fatal", false).ok());
  int64_t expired = Enqueue();
  JobRecord expired_lease = MustLease();
  ASSERT_TRUE(queue_->Heartbeat(expired, expired_lease.attempt, "half").ok());
  Advance(5000);
  int64_t live = Enqueue();
  JobRecord live_lease = MustLease();
  Advance(4500);
  int64_t backoff = Enqueue();
  j = MustLease();
  ASSERT_TRUE(queue_->Fail(backoff, j.attempt, "flaky", true).ok());  // not before +10.5 s
  int64_t queued = Enqueue();
  ASSERT_EQ(MustGet(expired).state, JobState::kLeased);

  // The conductor stops at +9.5 s and comes back at +10.2 s: the first lease
  // (granted at +0 s, until +10 s) has expired, the one granted at +5 s has
  // not, and the back-off runs until +10.5 s.
  queue_.reset();
  store_.reset();
  Advance(700);
  Open();
  EXPECT_EQ(MustGet(done).state, JobState::kDone);
  EXPECT_EQ(MustGet(done).result, "result");
  EXPECT_EQ(MustGet(failed).state, JobState::kFailed);
  EXPECT_EQ(MustGet(failed).error, "fatal");
  EXPECT_EQ(MustGet(backoff).state, JobState::kQueued);
  EXPECT_EQ(MustGet(queued).state, JobState::kQueued);
  EXPECT_EQ(MustGet(live).state, JobState::kLeased);

  // The live worker's heartbeats keep working across the restart.
  auto beat = queue_->Heartbeat(live, live_lease.attempt, "p");
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_EQ(beat->lease_expires_at_ms, now_.load() + kLeaseMs);
  // The dead worker's lease has expired: fenced off, and the job returns.
  ExpectLeaseLost(queue_->Heartbeat(expired, expired_lease.attempt, "").status());
  // Runnable now: only `queued` (expired is backing off from its expiry,
  // backoff until its not_before).
  EXPECT_EQ(MustLease().job_id, queued);
  JobRecord reaped = MustGet(expired);
  EXPECT_EQ(reaped.state, JobState::kQueued);
  EXPECT_EQ(reaped.not_before_ms, expired_lease.lease_expires_at_ms + 1000);
  EXPECT_TRUE(NothingRunnable());
  Advance(800);  // both back-offs are over (+11 s)
  JobRecord resumed = MustLease();
  EXPECT_EQ(resumed.job_id, expired);
  EXPECT_EQ(resumed.attempt, 2);
  EXPECT_EQ(resumed.progress, "half");
  EXPECT_EQ(MustLease().job_id, backoff);
  EXPECT_TRUE(NothingRunnable());
  EXPECT_TRUE(queue_->Complete(live, live_lease.attempt, "late but fine").ok());
  EXPECT_EQ(MustGet(done).state, JobState::kDone) << "finished jobs stay finished";
  EXPECT_EQ(MustGet(failed).state, JobState::kFailed);
}

// The topology schema as version 1 wrote it (frozen: a fixture, not code).
constexpr char kSchemaV1Fixture[] = R"sql(
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE storage_nodes (node_id TEXT PRIMARY KEY, address TEXT NOT NULL,
  added_at_ms INTEGER NOT NULL);
CREATE TABLE tables (table_id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE COLLATE NOCASE, state TEXT NOT NULL, pending_name TEXT,
  shard_key TEXT NOT NULL, strategy TEXT NOT NULL, block_size INTEGER NOT NULL,
  user_sql TEXT NOT NULL, physical_sql TEXT NOT NULL, created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL);
CREATE TABLE table_columns (table_id INTEGER NOT NULL REFERENCES tables (table_id),
  position INTEGER NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL, not_null INTEGER NOT NULL,
  default_value TEXT NOT NULL, pk_position INTEGER NOT NULL, generated INTEGER NOT NULL,
  collation TEXT NOT NULL, PRIMARY KEY (table_id, position));
CREATE TABLE table_unique_constraints (table_id INTEGER NOT NULL REFERENCES tables (table_id),
  constraint_no INTEGER NOT NULL, position INTEGER NOT NULL, column_name TEXT NOT NULL,
  PRIMARY KEY (table_id, constraint_no, position));
CREATE TABLE table_shards (table_id INTEGER NOT NULL REFERENCES tables (table_id),
  shard_id INTEGER NOT NULL, node_id TEXT NOT NULL REFERENCES storage_nodes (node_id),
  status TEXT NOT NULL, PRIMARY KEY (table_id, shard_id));
INSERT INTO meta VALUES ('topology_version', 7);
INSERT INTO storage_nodes VALUES ('n1', '127.0.0.1:1', 1);
INSERT INTO tables VALUES (1, 'users', 'active', NULL, 'id', 'hash', 500,
  'CREATE TABLE users (id INTEGER PRIMARY KEY)', 'CREATE TABLE users (id INTEGER PRIMARY KEY)',
  1, 1);
INSERT INTO table_columns VALUES (1, 0, 'id', 'INTEGER', 0, '', 1, 0, '');
INSERT INTO table_shards VALUES (1, 0, 'n1', 'active');
PRAGMA user_version = 1;
)sql";

int64_t UserVersion(const std::string& path) {
  auto db = Database::Open(path);
  if (!db.ok()) return -1;
  auto stmt = (*db)->Prepare("PRAGMA user_version");
  if (!stmt.ok() || !stmt->Step().ok()) return -1;
  return stmt->ColumnInt64(0);
}

TEST(TopologyMigrationTest, AVersion1FileGainsTheJobsTableWithItsTopologyIntact) {
  std::string path = TempPath("topology_v1.db");
  {
    auto db = Database::Open(path);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Exec(kSchemaV1Fixture).ok());
  }
  ASSERT_EQ(UserVersion(path), 1);
  {
    auto store = TopologyStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    auto snapshot = (*store)->snapshot();
    EXPECT_EQ(snapshot->version, 7);
    ASSERT_EQ(snapshot->nodes.size(), 1u);
    EXPECT_EQ(snapshot->nodes[0].address, "127.0.0.1:1");
    const TableMeta* users = snapshot->FindActive("users");
    ASSERT_NE(users, nullptr);
    EXPECT_EQ(users->shards.size(), 1u);
    EXPECT_EQ(users->primary_key, std::vector<std::string>{"id"});
    JobQueue queue(store->get());
    auto id = queue.Enqueue("k", "p", "op");
    ASSERT_TRUE(id.ok()) << id.status();
  }
  EXPECT_EQ(UserVersion(path), TopologyStore::kSchemaVersion);
  // Reopening a current file migrates nothing and keeps the job.
  auto store = TopologyStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  JobQueue queue(store->get());
  auto jobs = queue.ListByOperation("op");
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*store)->snapshot()->version, 7);
}

TEST(TopologyMigrationTest, ANewFileGetsEveryStep) {
  std::string path = TempPath("topology_v0.db");
  {
    auto store = TopologyStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    JobQueue queue(store->get());
    ASSERT_TRUE(queue.Enqueue("k", "p").ok());
    ASSERT_TRUE((*store)->UpsertNode({"n1", "a:1"}).ok());
  }
  EXPECT_EQ(UserVersion(path), TopologyStore::kSchemaVersion);
}

// --- JobQueueService over real gRPC -------------------------------------------

class JobQueueServiceTest : public JobQueueTest {
 protected:
  void SetUp() override {
    JobQueueTest::SetUp();
    service_ = std::make_unique<JobQueueService>(queue_.get());
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = internal::v1::JobQueueService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    queue_->Shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + milliseconds(500));
  }

  absl::Status Lease(const std::string& worker, int wait_ms, internal::v1::LeaseResponse* out,
                     std::vector<std::string> kinds = {"k"},
                     absl::Duration deadline = absl::Seconds(40)) {
    internal::v1::LeaseRequest request;
    request.set_worker_id(worker);
    request.set_wait_ms(wait_ms);
    for (const auto& kind : kinds) request.add_kinds(kind);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    return FromGrpcStatus(stub_->Lease(&context, request, out));
  }
  absl::Status Heartbeat(int64_t job_id, int attempt, const std::string& progress,
                         internal::v1::HeartbeatResponse* out) {
    internal::v1::HeartbeatRequest request;
    request.set_job_id(job_id);
    request.set_attempt(attempt);
    request.set_progress(progress);
    grpc::ClientContext context;
    return FromGrpcStatus(stub_->Heartbeat(&context, request, out));
  }
  absl::Status Complete(int64_t job_id, int attempt, const std::string& result) {
    internal::v1::CompleteRequest request;
    request.set_job_id(job_id);
    request.set_attempt(attempt);
    request.set_result(result);
    internal::v1::CompleteResponse response;
    grpc::ClientContext context;
    return FromGrpcStatus(stub_->Complete(&context, request, &response));
  }
  absl::Status Fail(int64_t job_id, int attempt, const std::string& error, bool retryable) {
    internal::v1::FailRequest request;
    request.set_job_id(job_id);
    request.set_attempt(attempt);
    request.set_error(error);
    request.set_retryable(retryable);
    internal::v1::FailResponse response;
    grpc::ClientContext context;
    return FromGrpcStatus(stub_->Fail(&context, request, &response));
  }

  std::unique_ptr<JobQueueService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<internal::v1::JobQueueService::Stub> stub_;
};

TEST_F(JobQueueServiceTest, ALeaseRoundTripsOverTheWire) {
  int64_t id = Enqueue();
  internal::v1::LeaseResponse leased;
  ASSERT_TRUE(Lease("w1", 0, &leased).ok());
  ASSERT_TRUE(leased.has_job());
  const internal::v1::Job& job = leased.job();
  EXPECT_EQ(job.job_id(), id);
  EXPECT_EQ(job.attempt(), 1);
  EXPECT_EQ(job.kind(), "k");
  EXPECT_EQ(job.payload(), "payload-k");
  EXPECT_EQ(job.lease_expires_at_ms(), kStart + kLeaseMs);
  EXPECT_EQ(job.lease_duration_ms(), kLeaseMs);
  internal::v1::HeartbeatResponse beat;
  Advance(100);
  ASSERT_TRUE(Heartbeat(id, 1, "half", &beat).ok());
  EXPECT_FALSE(beat.cancel());
  EXPECT_EQ(beat.lease_expires_at_ms(), kStart + 100 + kLeaseMs);
  EXPECT_EQ(beat.lease_duration_ms(), kLeaseMs);
  ASSERT_TRUE(Fail(id, 1, "flaky", true).ok());
  Advance(1000);
  ASSERT_TRUE(Lease("w2", 0, &leased).ok());
  ASSERT_TRUE(leased.has_job());
  EXPECT_EQ(leased.job().attempt(), 2);
  EXPECT_EQ(leased.job().progress(), "half");
  ASSERT_TRUE(Complete(id, 2, "r").ok());
  EXPECT_EQ(MustGet(id).state, JobState::kDone);

  internal::v1::LeaseResponse none;
  ASSERT_TRUE(Lease("w1", 0, &none).ok());
  EXPECT_FALSE(none.has_job());
}

TEST_F(JobQueueServiceTest, BadRequestsAndStaleLeasesGetPreciseStatuses) {
  internal::v1::LeaseResponse leased;
  EXPECT_EQ(Lease("", 0, &leased).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Lease("w", -1, &leased).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Lease("w", 30001, &leased).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Lease("w", 0, &leased, {"k", ""}).code(), absl::StatusCode::kInvalidArgument);
  internal::v1::HeartbeatResponse beat;
  EXPECT_EQ(Heartbeat(0, 1, "", &beat).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Heartbeat(1, 0, "", &beat).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Heartbeat(999, 1, "", &beat).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Complete(999, 1, "").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Fail(-3, 1, "", true).code(), absl::StatusCode::kInvalidArgument);

  int64_t id = Enqueue();
  ASSERT_TRUE(Lease("w1", 0, &leased).ok());
  absl::Status stale = Heartbeat(id, 2, "", &beat);
  EXPECT_EQ(stale.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrorReason(stale), JobQueue::kLeaseLostReason) << "the reason survives the wire";
  EXPECT_EQ(Complete(id, 2, "").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(queue_->Cancel("op:1").ok());
  ASSERT_TRUE(Heartbeat(id, 1, "", &beat).ok());
  EXPECT_TRUE(beat.cancel());
}

TEST_F(JobQueueServiceTest, ALongPollEndsBeforeTheCallersDeadline) {
  internal::v1::LeaseResponse none;
  auto start = steady_clock::now();
  absl::Status s = Lease("w1", 20000, &none, {"k"}, absl::Milliseconds(1500));
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_FALSE(none.has_job());
  EXPECT_LT(steady_clock::now() - start, milliseconds(1500));
}

TEST_F(JobQueueServiceTest, AJobLeasedForACallerThatLeftGoesBackUncounted) {
  internal::v1::LeaseRequest request;
  request.set_worker_id("gone");
  request.set_wait_ms(5000);
  request.add_kinds("k");
  grpc::ClientContext context;
  internal::v1::LeaseResponse response;
  auto call =
      std::async(std::launch::async, [&] { return stub_->Lease(&context, request, &response); });
  std::this_thread::sleep_for(milliseconds(300));  // the server is long-polling now
  context.TryCancel();
  EXPECT_EQ(call.get().error_code(), grpc::StatusCode::CANCELLED);
  int64_t id = Enqueue();  // wakes the abandoned poll, which leases and gives back
  std::this_thread::sleep_for(milliseconds(500));
  JobRecord job = MustGet(id);
  EXPECT_EQ(job.state, JobState::kQueued);
  EXPECT_EQ(job.attempt, 0);
  EXPECT_EQ(MustLease().attempt, 1);
}

TEST_F(JobQueueServiceTest, ShutdownEndsLongPollsAtOnce) {
  auto poll = std::async(std::launch::async, [&] {
    internal::v1::LeaseResponse response;
    return Lease("w1", 30000, &response);
  });
  std::this_thread::sleep_for(milliseconds(300));
  auto start = steady_clock::now();
  queue_->Shutdown();
  EXPECT_TRUE(poll.get().ok());
  EXPECT_LT(steady_clock::now() - start, milliseconds(1000));
}

}  // namespace
}  // namespace conductor
