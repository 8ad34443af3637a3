// The queue worker's index jobs (docs/indexes.md): IndexBuildJob fills a new
// virtual index from every shard of its table; IndexRecountJob rescans one
// shard so that entries of deleted or changed rows disappear. Both scan each
// shard directly on its storage node (storage.v1.Storage/ScanShard, distinct
// tuples of the index columns in blocks of the table's block size) and
// report to the conductor's IndexBuildService. Progress (shards done, the
// shard being scanned, its scan sequence and last tuple) rides on the job's
// heartbeats, so a new attempt resumes where the last one stopped.
#ifndef CONDUCTOR_QUEUE_WORKER_INDEX_JOBS_H_
#define CONDUCTOR_QUEUE_WORKER_INDEX_JOBS_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "conductor/internal/v1/index_build.grpc.pb.h"
#include "queue_worker/job_runner.h"
#include "storage/v1/storage.grpc.pb.h"

namespace conductor {

struct IndexJobOptions {
  // HOST:PORT of the conductor.
  std::string conductor;
  // Throttle: at most this many scanned tuples per second per job; 0 = no limit.
  int64_t scan_rows_per_s = 0;
  // Deadline of one call to the conductor or one scan block.
  absl::Duration rpc_timeout = absl::Seconds(30);
};

class IndexJobs {
 public:
  static constexpr char kBuildKind[] = "IndexBuildJob";
  static constexpr char kRecountKind[] = "IndexRecountJob";

  explicit IndexJobs(IndexJobOptions options);

  // Registers both kinds with `runner` (this object must outlive it).
  absl::Status RegisterWith(JobRunner& runner);

  // Runs one build or recount job. OK when the index is gone (nothing to
  // do). ALREADY_EXISTS (not retried) when a UNIQUE index meets a duplicate.
  absl::Status Run(const internal::v1::Job& job, JobContext& context);

 private:
  storage::v1::Storage::Stub* StorageStub(const std::string& address);

  const IndexJobOptions options_;
  std::unique_ptr<internal::v1::IndexBuildService::Stub> conductor_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<storage::v1::Storage::Stub>> storage_;  // GUARDED_BY(mu_)
};

}  // namespace conductor

#endif  // CONDUCTOR_QUEUE_WORKER_INDEX_JOBS_H_
