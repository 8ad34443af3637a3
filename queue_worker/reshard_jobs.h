// The queue worker's ReshardTableJob (docs/resharding.md): copies one
// source shard of a reshard, in primary-key order, to the target shards the
// routing function names, block by block (the table's block_size rows per
// block, read with storage.v1.Storage/ScanShard). The last copied key rides
// on the heartbeats, so a new attempt resumes after it instead of starting
// over. Every write batch is fenced by the attempt number on the target
// node: a worker that lost its lease can never overwrite newer rows.
// Writes made meanwhile are captured on the source node and applied by the
// conductor once the copy is done.
#ifndef CONDUCTOR_QUEUE_WORKER_RESHARD_JOBS_H_
#define CONDUCTOR_QUEUE_WORKER_RESHARD_JOBS_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "conductor/internal/v1/reshard.grpc.pb.h"
#include "queue_worker/job_runner.h"
#include "storage/v1/storage.grpc.pb.h"

namespace conductor {

struct ReshardJobOptions {
  std::string conductor;        // HOST:PORT
  int64_t scan_rows_per_s = 0;  // throttle; 0 = none
  absl::Duration rpc_timeout = absl::Seconds(30);
};

class ReshardJobs {
 public:
  static constexpr char kKind[] = "ReshardTableJob";

  explicit ReshardJobs(ReshardJobOptions options);
  absl::Status RegisterWith(JobRunner& runner);
  absl::Status Run(const internal::v1::Job& job, JobContext& context);

 private:
  storage::v1::Storage::Stub* StorageStub(const std::string& address);

  const ReshardJobOptions options_;
  std::unique_ptr<internal::v1::ReshardService::Stub> conductor_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<storage::v1::Storage::Stub>> storage_;  // GUARDED_BY(mu_)
};

}  // namespace conductor

#endif  // CONDUCTOR_QUEUE_WORKER_RESHARD_JOBS_H_
