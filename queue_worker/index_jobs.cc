#include "queue_worker/index_jobs.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/tls.h"

namespace conductor {
namespace {

using internal::v1::IndexJobPayload;
using internal::v1::IndexJobProgress;

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetMaxReceiveMessageSize(64 << 20);
  return conductor::MakeChannel(address, args);
}

// A failed scan stream, naming the node it came from.
absl::Status StorageCallError(const std::string& node_id, const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return Annotate(FromGrpcStatus(status), absl::StrCat("scanning on storage node ", node_id));
}

// Blocks read per ScanShard call.
constexpr int kBlocksPerCall = 16;
// Tuples sent per AddScannedKeys call (at least one block's worth).
constexpr int kKeysPerCall = 4000;

// IndexManager::kScanRestartReason on the conductor.
constexpr char kScanRestartReason[] = "SCAN_RESTART";

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

}  // namespace

IndexJobs::IndexJobs(IndexJobOptions options)
    : options_(std::move(options)),
      conductor_(internal::v1::IndexBuildService::NewStub(MakeChannel(options_.conductor))) {}

absl::Status IndexJobs::RegisterWith(JobRunner& runner) {
  for (const char* kind : {kBuildKind, kRecountKind}) {
    if (auto s = runner.Register(kind, [this](const internal::v1::Job& job,
                                              JobContext& context) { return Run(job, context); });
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

storage::v1::Storage::Stub* IndexJobs::StorageStub(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& stub = storage_[address];
  if (stub == nullptr) stub = storage::v1::Storage::NewStub(MakeChannel(address));
  return stub.get();
}

absl::Status IndexJobs::Run(const internal::v1::Job& job, JobContext& context) {
  IndexJobPayload payload;
  if (!payload.ParseFromString(job.payload()) || payload.index_id() < 1) {
    return absl::InvalidArgumentError("the job's payload is not an IndexJobPayload");
  }
  IndexJobProgress progress;
  progress.set_shard_id(-1);
  if (!context.progress().empty() && !progress.ParseFromString(context.progress())) {
    return absl::InvalidArgumentError("the job's progress is not an IndexJobProgress");
  }
  internal::v1::GetIndexBuildPlanRequest plan_request;
  plan_request.set_index_id(payload.index_id());
  internal::v1::GetIndexBuildPlanResponse plan_response;
  {
    grpc::ClientContext call;
    SetDeadline(&call, options_.rpc_timeout);
    absl::Status s =
        FromGrpcStatus(conductor_->GetIndexBuildPlan(&call, plan_request, &plan_response));
    if (s.code() == absl::StatusCode::kNotFound) {
      context.set_result("the index no longer exists");
      return absl::OkStatus();
    }
    if (!s.ok()) return s;
  }
  const internal::v1::IndexBuildPlan& plan = plan_response.plan();
  std::set<int32_t> done(progress.done_shard_ids().begin(), progress.done_shard_ids().end());
  const auto started = std::chrono::steady_clock::now();
  int64_t scanned_this_attempt = 0;

  for (int32_t shard_id : payload.shard_ids()) {
    if (done.count(shard_id) > 0) continue;
    const internal::v1::IndexBuildPlan::Shard* shard = nullptr;
    for (const auto& s : plan.shards()) {
      if (s.shard_id() == shard_id) shard = &s;
    }
    if (shard == nullptr) continue;  // no longer an active shard of the table
    if (shard->address().empty()) {
      return absl::UnavailableError(
          absl::StrCat("storage node ", shard->node_id(), " has no known address"));
    }
    // Scans the shard from the saved point; FinishShardScan included.
    auto scan_shard = [&]() -> absl::Status {
      if (progress.shard_id() != shard_id || progress.scan_seq() < 1) {
        internal::v1::BeginShardScanRequest begin;
        begin.set_index_id(payload.index_id());
        begin.set_shard_id(shard_id);
        internal::v1::BeginShardScanResponse begun;
        grpc::ClientContext call;
        SetDeadline(&call, options_.rpc_timeout);
        if (auto s = FromGrpcStatus(conductor_->BeginShardScan(&call, begin, &begun)); !s.ok()) {
          return s;
        }
        progress.set_shard_id(shard_id);
        progress.set_scan_seq(begun.scan_seq());
        progress.clear_after_key();
        if (!context.Heartbeat(progress.SerializeAsString())) return absl::CancelledError();
      }
      // Stream the shard's distinct tuples, one block per message, a few
      // blocks per call so that every call has a deadline (a node that
      // hangs fails the attempt instead of stalling it).
      bool shard_done = false;
      while (!shard_done) {
        storage::v1::ScanShardRequest scan;
        scan.set_table(plan.table());
        scan.set_shard_id(shard_id);
        for (const auto& column : plan.columns()) scan.add_key_columns(column);
        *scan.mutable_after_key() = progress.after_key();
        scan.set_block_size(std::max(1, plan.block_size()));
        scan.set_distinct(true);
        scan.set_max_blocks(kBlocksPerCall);
        absl::Duration allowance = options_.rpc_timeout;
        if (options_.scan_rows_per_s > 0) {
          allowance += absl::Seconds(static_cast<double>(kBlocksPerCall) * scan.block_size() /
                                     options_.scan_rows_per_s);
        }
        grpc::ClientContext scan_call;
        SetDeadline(&scan_call, allowance);
        auto reader = StorageStub(shard->address())->ScanShard(&scan_call, scan);
        storage::v1::ScanShardResponse block;
        absl::Status failed;
        int blocks = 0;
        // Tuples go to the conductor a few blocks at a time (fewer, larger
        // transactions there); the saved point moves only once they are in.
        internal::v1::AddScannedKeysRequest pending;
        google::protobuf::RepeatedPtrField<conductor::v1::Value> pending_last_key;
        auto flush = [&]() -> absl::Status {
          if (pending.keys_size() == 0) return absl::OkStatus();
          pending.set_index_id(payload.index_id());
          pending.set_shard_id(shard_id);
          pending.set_scan_seq(progress.scan_seq());
          internal::v1::AddScannedKeysResponse added;
          grpc::ClientContext call;
          SetDeadline(&call, options_.rpc_timeout);
          absl::Status s = FromGrpcStatus(conductor_->AddScannedKeys(&call, pending, &added));
          if (!s.ok()) return s;
          *progress.mutable_after_key() = pending_last_key;
          progress.set_keys_scanned(progress.keys_scanned() + pending.keys_size());
          pending.clear_keys();
          return absl::OkStatus();
        };
        while (reader->Read(&block)) {
          ++blocks;
          if (block.rows_size() > 0) {
            for (auto& row : *block.mutable_rows()) *pending.add_keys() = std::move(row);
            pending_last_key = block.last_key();
            scanned_this_attempt += block.rows_size();
          }
          if (pending.keys_size() >= kKeysPerCall || block.done() || options_.scan_rows_per_s > 0) {
            failed = flush();
            if (!failed.ok()) break;
          }
          if (!context.Heartbeat(progress.SerializeAsString())) {
            failed = absl::CancelledError("the job was cancelled or its lease lost");
            break;
          }
          if (options_.scan_rows_per_s > 0) {
            // Sleep until the attempt's average rate is back under the limit.
            auto due = started + std::chrono::microseconds(scanned_this_attempt * 1000000 /
                                                           options_.scan_rows_per_s);
            while (std::chrono::steady_clock::now() < due && !context.cancelled()) {
              std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
                  due - std::chrono::steady_clock::now(), std::chrono::milliseconds(50)));
            }
          }
          if (block.done()) {
            shard_done = true;
            break;
          }
        }
        if (failed.ok()) failed = flush();  // the next call resumes after these
        if (!failed.ok()) {
          scan_call.TryCancel();
          reader->Finish().ok();
          return failed;
        }
        if (auto s = StorageCallError(shard->node_id(), reader->Finish()); !s.ok()) return s;
        if (blocks == 0 && !shard_done) {
          return absl::InternalError(absl::StrCat("storage node ", shard->node_id(),
                                                  " ended a shard scan without a block"));
        }
      }
      internal::v1::FinishShardScanRequest finish;
      finish.set_index_id(payload.index_id());
      finish.set_shard_id(shard_id);
      finish.set_scan_seq(progress.scan_seq());
      internal::v1::FinishShardScanResponse finished;
      grpc::ClientContext call;
      SetDeadline(&call, options_.rpc_timeout);
      if (auto s = FromGrpcStatus(conductor_->FinishShardScan(&call, finish, &finished)); !s.ok()) {
        return s;
      }
      return absl::OkStatus();
    };
    absl::Status scanned = scan_shard();
    if (!scanned.ok() && ErrorReason(scanned) == kScanRestartReason) {
      // The conductor does not know the saved scan (its entry file was
      // replaced): scan the shard again from its start.
      LogWarning("index %d shard %d: %s", payload.index_id(), shard_id, scanned.message());
      progress.set_scan_seq(0);
      progress.clear_after_key();
      scanned = scan_shard();
    }
    if (!scanned.ok()) return scanned;
    progress.add_done_shard_ids(shard_id);
    done.insert(shard_id);
    progress.set_shard_id(-1);
    progress.set_scan_seq(0);
    progress.clear_after_key();
    if (!context.Heartbeat(progress.SerializeAsString())) return absl::CancelledError();
  }
  context.set_result(
      absl::StrCat(progress.keys_scanned(), " tuples scanned in index ", plan.index_name()));
  return absl::OkStatus();
}

}  // namespace conductor
