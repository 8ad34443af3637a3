// JobRunner against an in-process fake JobQueueService over real gRPC on
// 127.0.0.1: concurrency, heartbeats with progress, the retry flag of a
// failure, cancellation by the conductor, shutdown, and reconnection after
// the conductor restarts. Finally, against the real JobQueueService and
// JobQueue: a retried job resumes from its progress, and Stop hands a job
// back to the real queue.
#include "queue_worker/job_runner.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "conductor/internal/v1/job_queue.grpc.pb.h"
#include "conductor/jobs/job_queue_service.h"
#include "conductor/topo/job_queue.h"
#include "conductor/topo/topology_store.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace conductor {
namespace {

using internal::v1::Job;

// A JobQueueService that hands out the jobs a test gives it and records
// everything workers send.
class FakeJobQueue final : public internal::v1::JobQueueService::Service {
 public:
  explicit FakeJobQueue(int64_t lease_duration_ms) : lease_duration_ms_(lease_duration_ms) {}

  void AddJob(int64_t job_id, const std::string& kind, const std::string& progress = "") {
    Job job;
    job.set_job_id(job_id);
    job.set_attempt(1);
    job.set_kind(kind);
    job.set_payload("payload-" + std::to_string(job_id));
    job.set_progress(progress);
    job.set_lease_duration_ms(lease_duration_ms_);
    std::lock_guard<std::mutex> lock(mu_);
    queued_.push_back(job);
    cv_.notify_all();
  }
  // Heartbeats of the job answer cancel=true.
  void CancelJob(int64_t job_id) {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_.insert(job_id);
  }
  // Heartbeats of the job are refused as lease lost.
  void LoseLease(int64_t job_id) {
    std::lock_guard<std::mutex> lock(mu_);
    lost_.insert(job_id);
  }
  // Makes waiting Lease calls return.
  void Stop() {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    cv_.notify_all();
  }

  // Waits until `pred` (called with the lock held) is true.
  bool WaitFor(const std::function<bool()>& pred, absl::Duration timeout = absl::Seconds(10)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoMilliseconds(timeout), pred);
  }

  // Accessors; call with the lock held (inside WaitFor) or through Locked().
  std::mutex& mu() { return mu_; }
  int lease_calls_ = 0;                                     // GUARDED_BY(mu_)
  std::vector<std::vector<std::string>> lease_kinds_;       // GUARDED_BY(mu_)
  std::vector<internal::v1::HeartbeatRequest> heartbeats_;  // GUARDED_BY(mu_)
  std::vector<internal::v1::CompleteRequest> completes_;    // GUARDED_BY(mu_)
  std::vector<internal::v1::FailRequest> fails_;            // GUARDED_BY(mu_)

  grpc::Status Lease(grpc::ServerContext* context, const internal::v1::LeaseRequest* request,
                     internal::v1::LeaseResponse* response) override {
    std::unique_lock<std::mutex> lock(mu_);
    ++lease_calls_;
    lease_kinds_.emplace_back(request->kinds().begin(), request->kinds().end());
    cv_.notify_all();
    const std::set<std::string> kinds(request->kinds().begin(), request->kinds().end());
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(request->wait_ms());
    while (true) {
      for (auto it = queued_.begin(); it != queued_.end(); ++it) {
        if (kinds.count(it->kind()) > 0) {
          *response->mutable_job() = *it;
          queued_.erase(it);
          return grpc::Status::OK;
        }
      }
      if (stopped_ || context->IsCancelled() || std::chrono::steady_clock::now() >= deadline) {
        return grpc::Status::OK;
      }
      // A fake may poll its own cancellation: 20 ms slices.
      cv_.wait_for(lock, std::chrono::milliseconds(20));
    }
  }

  grpc::Status Heartbeat(grpc::ServerContext*, const internal::v1::HeartbeatRequest* request,
                         internal::v1::HeartbeatResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    heartbeats_.push_back(*request);
    cv_.notify_all();
    if (lost_.count(request->job_id()) > 0) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "lease lost: test");
    }
    response->set_cancel(cancelled_.count(request->job_id()) > 0);
    response->set_lease_duration_ms(lease_duration_ms_);
    return grpc::Status::OK;
  }

  grpc::Status Complete(grpc::ServerContext*, const internal::v1::CompleteRequest* request,
                        internal::v1::CompleteResponse*) override {
    std::lock_guard<std::mutex> lock(mu_);
    completes_.push_back(*request);
    cv_.notify_all();
    return grpc::Status::OK;
  }

  grpc::Status Fail(grpc::ServerContext*, const internal::v1::FailRequest* request,
                    internal::v1::FailResponse*) override {
    std::lock_guard<std::mutex> lock(mu_);
    fails_.push_back(*request);
    cv_.notify_all();
    return grpc::Status::OK;
  }

 private:
  const int64_t lease_duration_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queued_;              // GUARDED_BY(mu_)
  std::set<int64_t> cancelled_, lost_;  // GUARDED_BY(mu_)
  bool stopped_ = false;                // GUARDED_BY(mu_)
};

// A fake conductor: the fake service on a real gRPC server.
class FakeConductor {
 public:
  // Listens on 127.0.0.1:`port` (0 picks one).
  static std::unique_ptr<FakeConductor> Start(int port = 0, int64_t lease_duration_ms = 3000) {
    auto conductor = std::unique_ptr<FakeConductor>(new FakeConductor(lease_duration_ms));
    grpc::ServerBuilder builder;
    builder.AddListeningPort(absl::StrCat("127.0.0.1:", port), grpc::InsecureServerCredentials(),
                             &conductor->port_);
    builder.RegisterService(&conductor->service_);
    conductor->server_ = builder.BuildAndStart();
    if (conductor->server_ == nullptr || conductor->port_ == 0) return nullptr;
    return conductor;
  }
  ~FakeConductor() { Stop(); }

  void Stop() {
    if (server_ == nullptr) return;
    service_.Stop();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    server_->Wait();
    server_.reset();
  }

  FakeJobQueue& queue() { return service_; }
  int port() const { return port_; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  explicit FakeConductor(int64_t lease_duration_ms) : service_(lease_duration_ms) {}
  FakeJobQueue service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

JobRunnerOptions Options(const FakeConductor& conductor, int concurrency) {
  JobRunnerOptions options;
  options.conductor = conductor.address();
  options.worker_id = "test-worker";
  options.concurrency = concurrency;
  options.lease_wait = absl::Seconds(2);
  options.min_heartbeat_interval = absl::ZeroDuration();
  options.rpc_timeout = absl::Seconds(5);
  return options;
}

TEST(JobRunnerTest, RunsUpToConcurrencyJobsAtOnce) {
  auto conductor = FakeConductor::Start();
  ASSERT_NE(conductor, nullptr);
  std::mutex mu;
  std::condition_variable cv;
  int running = 0, most = 0;
  bool release = false;
  JobRunner runner(Options(*conductor, 3));
  ASSERT_TRUE(runner
                  .Register("slow",
                            [&](const Job& job, JobContext& ctx) -> absl::Status {
                              std::unique_lock<std::mutex> lock(mu);
                              most = std::max(most, ++running);
                              cv.notify_all();
                              cv.wait_for(lock, std::chrono::seconds(20), [&] { return release; });
                              --running;
                              ctx.set_result("result-" + std::to_string(job.job_id()));
                              return absl::OkStatus();
                            })
                  .ok());
  for (int id = 1; id <= 4; ++id) conductor->queue().AddJob(id, "slow");
  ASSERT_TRUE(runner.Start().ok());
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return running == 3; }))
        << "three jobs must run at once";
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(running, 3) << "and no more than three";
    release = true;
    cv.notify_all();
  }
  FakeJobQueue& q = conductor->queue();
  ASSERT_TRUE(q.WaitFor([&] { return q.completes_.size() == 4; }));
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(most, 3);
  }
  std::lock_guard<std::mutex> lock(q.mu());
  std::set<std::string> results;
  for (const auto& c : q.completes_) {
    EXPECT_EQ(c.attempt(), 1);
    EXPECT_EQ(c.result(), "result-" + std::to_string(c.job_id()));
    results.insert(c.result());
  }
  EXPECT_EQ(results.size(), 4u);
  EXPECT_TRUE(q.fails_.empty());
  EXPECT_EQ(q.lease_kinds_.front(), std::vector<std::string>{"slow"});
}

TEST(JobRunnerTest, HeartbeatsCarryTheLatestProgressAndJobsStartFromTheSavedOne) {
  auto conductor = FakeConductor::Start(0, /*lease_duration_ms=*/300);  // beats every 100 ms
  ASSERT_NE(conductor, nullptr);
  std::string started_from;
  JobRunner runner(Options(*conductor, 1));
  ASSERT_TRUE(runner
                  .Register("scan",
                            [&](const Job& job, JobContext& ctx) -> absl::Status {
                              started_from = ctx.progress();
                              EXPECT_EQ(job.payload(), "payload-7");
                              if (!ctx.Heartbeat("p1")) return absl::AbortedError("lost");
                              absl::SleepFor(absl::Milliseconds(700));  // automatic beats
                              if (!ctx.Heartbeat("p2")) return absl::AbortedError("lost");
                              absl::SleepFor(absl::Milliseconds(250));
                              return absl::OkStatus();
                            })
                  .ok());
  conductor->queue().AddJob(7, "scan", "from-before");
  ASSERT_TRUE(runner.Start().ok());
  FakeJobQueue& q = conductor->queue();
  ASSERT_TRUE(q.WaitFor([&] { return q.completes_.size() == 1; }));
  runner.Stop();
  EXPECT_EQ(started_from, "from-before");
  std::lock_guard<std::mutex> lock(q.mu());
  int p1 = 0, p2 = 0;
  for (const auto& h : q.heartbeats_) {
    EXPECT_EQ(h.job_id(), 7);
    EXPECT_EQ(h.attempt(), 1);
    p1 += h.progress() == "p1";
    p2 += h.progress() == "p2";
  }
  EXPECT_GE(p1, 3) << "the automatic heartbeats carry the latest progress";
  EXPECT_GE(p2, 2);
  EXPECT_EQ(q.heartbeats_.front().progress(), "p1");
  EXPECT_EQ(q.heartbeats_.back().progress(), "p2");
}

TEST(JobRunnerTest, HandlerErrorsFailTheJobWithTheRightRetryableFlag) {
  auto conductor = FakeConductor::Start();
  ASSERT_NE(conductor, nullptr);
  JobRunner runner(Options(*conductor, 2));
  ASSERT_TRUE(runner
                  .Register("transient",
                            [](const Job&, JobContext&) {
                              return absl::UnavailableError("storage node n1 is down");
                            })
                  .ok());
  ASSERT_TRUE(runner
                  .Register("permanent",
                            [](const Job&, JobContext&) {
                              return absl::InvalidArgumentError("bad payload");
                            })
                  .ok());
  conductor->queue().AddJob(1, "transient");
  conductor->queue().AddJob(2, "permanent");
  ASSERT_TRUE(runner.Start().ok());
  FakeJobQueue& q = conductor->queue();
  ASSERT_TRUE(q.WaitFor([&] { return q.fails_.size() == 2; }));
  std::lock_guard<std::mutex> lock(q.mu());
  for (const auto& f : q.fails_) {
    if (f.job_id() == 1) {
      EXPECT_TRUE(f.retryable());
      EXPECT_NE(f.error().find("storage node n1 is down"), std::string::npos) << f.error();
    } else {
      EXPECT_FALSE(f.retryable());
      EXPECT_NE(f.error().find("bad payload"), std::string::npos) << f.error();
    }
  }
  EXPECT_TRUE(q.completes_.empty());
}

TEST(JobRunnerTest, RetryPolicy) {
  for (auto code :
       {absl::StatusCode::kUnavailable, absl::StatusCode::kAborted,
        absl::StatusCode::kDeadlineExceeded, absl::StatusCode::kResourceExhausted,
        absl::StatusCode::kCancelled, absl::StatusCode::kInternal, absl::StatusCode::kUnknown}) {
    EXPECT_TRUE(JobRunner::IsRetryable(code)) << absl::StatusCodeToString(code);
  }
  for (auto code : {absl::StatusCode::kInvalidArgument, absl::StatusCode::kNotFound,
                    absl::StatusCode::kAlreadyExists, absl::StatusCode::kFailedPrecondition,
                    absl::StatusCode::kOutOfRange, absl::StatusCode::kUnimplemented,
                    absl::StatusCode::kPermissionDenied, absl::StatusCode::kUnauthenticated,
                    absl::StatusCode::kDataLoss}) {
    EXPECT_FALSE(JobRunner::IsRetryable(code)) << absl::StatusCodeToString(code);
  }
}

TEST(JobRunnerTest, CancelOrALostLeaseStopsTheHandlerWithoutAReport) {
  auto conductor = FakeConductor::Start();
  ASSERT_NE(conductor, nullptr);
  FakeJobQueue& q = conductor->queue();
  q.CancelJob(1);
  q.LoseLease(2);
  std::atomic<int> stopped{0};
  JobRunner runner(Options(*conductor, 2));
  ASSERT_TRUE(runner
                  .Register("long",
                            [&](const Job&, JobContext& ctx) -> absl::Status {
                              absl::Time give_up = absl::Now() + absl::Seconds(10);
                              while (ctx.Heartbeat("x") && absl::Now() < give_up) {
                                absl::SleepFor(absl::Milliseconds(10));
                              }
                              if (ctx.cancelled()) ++stopped;
                              return absl::CancelledError("stopped");
                            })
                  .ok());
  q.AddJob(1, "long");
  q.AddJob(2, "long");
  ASSERT_TRUE(runner.Start().ok());
  ASSERT_TRUE(q.WaitFor([&] { return q.heartbeats_.size() >= 2; }));
  for (int i = 0; i < 200 && stopped < 2; ++i) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(stopped.load(), 2);
  absl::SleepFor(absl::Milliseconds(300));
  runner.Stop();
  std::lock_guard<std::mutex> lock(q.mu());
  EXPECT_TRUE(q.fails_.empty()) << "nothing to report without a lease";
  EXPECT_TRUE(q.completes_.empty());
}

TEST(JobRunnerTest, StopCancelsRunningHandlersAndHandsTheirJobsBack) {
  auto conductor = FakeConductor::Start();
  ASSERT_NE(conductor, nullptr);
  FakeJobQueue& q = conductor->queue();
  std::atomic<int> running{0};
  JobRunnerOptions options = Options(*conductor, 2);
  options.min_heartbeat_interval = absl::Hours(1);  // progress rides on the final flush
  JobRunner runner(options);
  ASSERT_TRUE(runner
                  .Register("endless",
                            [&](const Job&, JobContext& ctx) -> absl::Status {
                              ++running;
                              ctx.Heartbeat("first");
                              ctx.Heartbeat("half way");
                              while (!ctx.cancelled()) absl::SleepFor(absl::Milliseconds(10));
                              return absl::CancelledError("interrupted");
                            })
                  .ok());
  q.AddJob(1, "endless");
  q.AddJob(2, "endless");
  ASSERT_TRUE(runner.Start().ok());
  for (int i = 0; i < 1000 && running < 2; ++i) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_EQ(running.load(), 2);
  auto start = absl::Now();
  runner.Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3)) << "a prompt exit";
  int lease_calls = 0;
  {
    std::lock_guard<std::mutex> lock(q.mu());
    ASSERT_EQ(q.fails_.size(), 2u);
    for (const auto& f : q.fails_) {
      EXPECT_TRUE(f.retryable());
      EXPECT_NE(f.error().find("worker shutting down"), std::string::npos) << f.error();
    }
    EXPECT_TRUE(q.completes_.empty());
    int half_way = 0;
    for (const auto& h : q.heartbeats_) half_way += h.progress() == "half way";
    EXPECT_GE(half_way, 2) << "the latest progress is saved before the job is handed back";
    lease_calls = q.lease_calls_;
  }
  absl::SleepFor(absl::Milliseconds(300));
  std::lock_guard<std::mutex> lock(q.mu());
  EXPECT_EQ(q.lease_calls_, lease_calls) << "no leasing after Stop";
}

TEST(JobRunnerTest, ResumesLeasingAfterTheConductorRestarts) {
  auto first = FakeConductor::Start();
  ASSERT_NE(first, nullptr);
  const int port = first->port();
  JobRunner runner(Options(*first, 1));
  ASSERT_TRUE(runner
                  .Register("k",
                            [](const Job& job, JobContext& ctx) {
                              ctx.set_result("ran " + std::to_string(job.job_id()));
                              return absl::OkStatus();
                            })
                  .ok());
  ASSERT_TRUE(runner.Start().ok());
  FakeJobQueue& q1 = first->queue();
  ASSERT_TRUE(q1.WaitFor([&] { return q1.lease_calls_ >= 1; }));
  first->Stop();
  absl::SleepFor(absl::Milliseconds(500));  // the worker finds nobody home
  auto second = FakeConductor::Start(port);
  ASSERT_NE(second, nullptr) << "port " << port << " could not be reused";
  second->queue().AddJob(9, "k");
  FakeJobQueue& q2 = second->queue();
  ASSERT_TRUE(q2.WaitFor([&] { return q2.completes_.size() == 1; }, absl::Seconds(15)))
      << "the worker must reconnect and lease from the restarted conductor";
  std::lock_guard<std::mutex> lock(q2.mu());
  EXPECT_EQ(q2.completes_[0].result(), "ran 9");
}

TEST(JobRunnerTest, WithoutKindsItLongPollsAnEmptyListWithoutSpinning) {
  auto conductor = FakeConductor::Start();
  ASSERT_NE(conductor, nullptr);
  JobRunnerOptions options = Options(*conductor, 2);
  options.lease_wait = absl::Seconds(1);
  JobRunner runner(options);
  ASSERT_TRUE(runner.Start().ok());
  absl::SleepFor(absl::Milliseconds(1500));
  runner.Stop();
  FakeJobQueue& q = conductor->queue();
  std::lock_guard<std::mutex> lock(q.mu());
  EXPECT_GE(q.lease_calls_, 2);
  EXPECT_LE(q.lease_calls_, 6) << "each loop polls about once per second";
  for (const auto& kinds : q.lease_kinds_) EXPECT_TRUE(kinds.empty());
}

TEST(JobRunnerTest, RegisterAndStartValidate) {
  JobRunnerOptions options;
  options.conductor = "127.0.0.1:1";
  options.worker_id = "w";
  JobRunner runner(options);
  auto ok = [](const Job&, JobContext&) { return absl::OkStatus(); };
  EXPECT_EQ(runner.Register("", ok).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(runner.Register("k", nullptr).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(runner.Register("k", ok).ok());
  EXPECT_EQ(runner.Register("k", ok).code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(runner.Start().ok());
  EXPECT_EQ(runner.Register("k2", ok).code(), absl::StatusCode::kFailedPrecondition);
  runner.Stop();

  options.worker_id = "";
  EXPECT_EQ(JobRunner(options).Start().code(), absl::StatusCode::kInvalidArgument);
  options.worker_id = "w";
  options.conductor = "nowhere";
  EXPECT_EQ(JobRunner(options).Start().code(), absl::StatusCode::kInvalidArgument);
}

// --- against the real queue ----------------------------------------------------

// A conductor's job queue in-process: TopologyStore file, JobQueue (real
// clock, short leases and back-offs) and JobQueueService on real gRPC.
class RealConductor {
 public:
  explicit RealConductor(const std::string& name) {
    const char* dir = getenv("TEST_TMPDIR");
    std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/" + name + ".db";
    for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
    auto store = TopologyStore::Open(path);
    EXPECT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    JobQueueOptions options;
    options.lease_ms = 1500;
    options.backoff_base_ms = 50;
    options.backoff_max_ms = 200;
    queue_ = std::make_unique<JobQueue>(store_.get(), options);
    service_ = std::make_unique<JobQueueService>(queue_.get());
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
  }
  ~RealConductor() {
    queue_->Shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  }
  JobQueue& queue() { return *queue_; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  // Waits until job `id` satisfies `pred`.
  bool WaitForJob(int64_t id, const std::function<bool(const JobRecord&)>& pred) {
    for (int i = 0; i < 1000; ++i) {
      auto job = queue_->Get(id);
      if (job.ok() && pred(*job)) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }

 private:
  std::unique_ptr<TopologyStore> store_;
  std::unique_ptr<JobQueue> queue_;
  std::unique_ptr<JobQueueService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

JobRunnerOptions RealOptions(const RealConductor& conductor, const std::string& worker_id) {
  JobRunnerOptions options;
  options.conductor = conductor.address();
  options.worker_id = worker_id;
  options.concurrency = 1;
  options.lease_wait = absl::Seconds(2);
  options.min_heartbeat_interval = absl::ZeroDuration();
  return options;
}

TEST(JobRunnerWithTheRealQueueTest, ARetriedJobResumesFromItsProgressAndCompletes) {
  RealConductor conductor("resume");
  std::mutex mu;
  std::vector<std::string> finished;  // GUARDED_BY(mu)
  conductor.queue().OnFinished("build", [&](Database&, const JobRecord& job) {
    std::lock_guard<std::mutex> lock(mu);
    finished.push_back(absl::StrCat(JobStateName(job.state), ":", job.result));
    return absl::OkStatus();
  });
  std::string second_start;
  JobRunner runner(RealOptions(conductor, "w1"));
  ASSERT_TRUE(runner
                  .Register("build",
                            [&](const Job& job, JobContext& ctx) -> absl::Status {
                              if (job.attempt() == 1) {
                                ctx.Heartbeat("block 3");
                                absl::SleepFor(absl::Milliseconds(1800));  // beyond one lease
                                return absl::UnavailableError("storage node away");
                              }
                              second_start = ctx.progress();
                              ctx.set_result("built");
                              return absl::OkStatus();
                            })
                  .ok());
  ASSERT_TRUE(runner.Start().ok());
  auto id = conductor.queue().Enqueue("build", "payload", "index:1");
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(
      conductor.WaitForJob(*id, [](const JobRecord& j) { return j.state == JobState::kDone; }));
  runner.Stop();
  JobRecord job = *conductor.queue().Get(*id);
  EXPECT_EQ(job.attempt, 2) << "the heartbeats kept attempt 1 alive past its first lease";
  EXPECT_EQ(job.result, "built");
  EXPECT_EQ(job.error, "UNAVAILABLE: storage node away");
  EXPECT_EQ(second_start, "block 3");
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(finished, std::vector<std::string>{"done:built"});
}

TEST(JobRunnerWithTheRealQueueTest, StopHandsTheJobBackForAnotherWorker) {
  RealConductor conductor("handback");
  std::atomic<bool> running{false};
  JobRunner first(RealOptions(conductor, "w1"));
  ASSERT_TRUE(first
                  .Register("build",
                            [&](const Job&, JobContext& ctx) -> absl::Status {
                              running = true;
                              while (!ctx.cancelled()) absl::SleepFor(absl::Milliseconds(10));
                              return absl::CancelledError("interrupted");
                            })
                  .ok());
  ASSERT_TRUE(first.Start().ok());
  auto id = conductor.queue().Enqueue("build", "payload", "index:2");
  ASSERT_TRUE(id.ok());
  for (int i = 0; i < 1000 && !running; ++i) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_TRUE(running);
  first.Stop();
  JobRecord back = *conductor.queue().Get(*id);
  EXPECT_EQ(back.state, JobState::kQueued) << "returned at once, not after the lease expiry";
  EXPECT_EQ(back.attempt, 1);
  EXPECT_NE(back.error.find("worker shutting down"), std::string::npos) << back.error;

  JobRunner second(RealOptions(conductor, "w2"));
  ASSERT_TRUE(
      second.Register("build", [](const Job&, JobContext&) { return absl::OkStatus(); }).ok());
  ASSERT_TRUE(second.Start().ok());
  ASSERT_TRUE(
      conductor.WaitForJob(*id, [](const JobRecord& j) { return j.state == JobState::kDone; }));
  EXPECT_EQ(conductor.queue().Get(*id)->lease_owner, "w2");
}

}  // namespace
}  // namespace conductor
