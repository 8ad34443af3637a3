#include "queue_worker/reshard_jobs.h"

#include <chrono>
#include <future>
#include <memory>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/shard_copy/change_capture.h"
#include "common/shard_copy/copier.h"
#include "common/sqlite.h"
#include "common/tls.h"

namespace conductor {
namespace {

using internal::v1::ReshardJobPayload;
using internal::v1::ReshardJobProgress;

constexpr int kBlocksPerCall = 16;
// Rows written to the targets per ApplyRows call (at least one block).
constexpr int kRowsPerApply = 8000;

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  return conductor::MakeChannel(address, args);
}

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

}  // namespace

ReshardJobs::ReshardJobs(ReshardJobOptions options)
    : options_(std::move(options)),
      conductor_(internal::v1::ReshardService::NewStub(MakeChannel(options_.conductor))) {}

absl::Status ReshardJobs::RegisterWith(JobRunner& runner) {
  return runner.Register(kKind, [this](const internal::v1::Job& job, JobContext& context) {
    return Run(job, context);
  });
}

storage::v1::Storage::Stub* ReshardJobs::StorageStub(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& stub = storage_[address];
  if (stub == nullptr) stub = storage::v1::Storage::NewStub(MakeChannel(address));
  return stub.get();
}

absl::Status ReshardJobs::Run(const internal::v1::Job& job, JobContext& context) {
  ReshardJobPayload payload;
  if (!payload.ParseFromString(job.payload()) || payload.change_log_id().empty()) {
    return absl::InvalidArgumentError("the job's payload is not a ReshardJobPayload");
  }
  ReshardJobProgress progress;
  if (!context.progress().empty() && !progress.ParseFromString(context.progress())) {
    return absl::InvalidArgumentError("the job's progress is not a ReshardJobProgress");
  }
  if (progress.copy_done()) return absl::OkStatus();
  internal::v1::GetReshardPlanRequest plan_request;
  plan_request.set_change_log_id(payload.change_log_id());
  plan_request.set_source_shard_id(payload.source_shard_id());
  internal::v1::GetReshardPlanResponse plan_response;
  {
    grpc::ClientContext call;
    SetDeadline(&call, options_.rpc_timeout);
    absl::Status s =
        FromGrpcStatus(conductor_->GetReshardPlan(&call, plan_request, &plan_response));
    if (s.code() == absl::StatusCode::kNotFound ||
        s.code() == absl::StatusCode::kFailedPrecondition) {
      context.set_result(std::string(s.message()));
      return absl::OkStatus();  // nothing left to copy
    }
    if (!s.ok()) return s;
  }
  const internal::v1::ReshardPlan& plan = plan_response.plan();
  shard_copy::TableLayout layout;
  layout.table = plan.table();
  layout.columns.assign(plan.columns().begin(), plan.columns().end());
  layout.primary_key.assign(plan.primary_key().begin(), plan.primary_key().end());
  layout.shard_key = plan.shard_key();
  layout.shard_key_type = plan.shard_key_type();
  std::vector<shard_copy::TargetShard> targets;
  for (const auto& target : plan.targets())
    targets.push_back({target.shard_id(), target.address()});
  const int32_t source = plan.source().shard_id();
  const int64_t attempt = job.attempt();

  // Fence: from now on only this attempt may write this source's rows.
  for (const auto& target : targets) {
    storage::v1::ExecuteBatchRequest fence;
    fence.add_statements()->set_sql(shard_copy::CreateFenceSql(layout.table));
    auto* raise = fence.add_statements();
    raise->set_sql(shard_copy::RaiseFenceSql(layout.table));
    *raise->add_params() = IntegerValue(source);
    *raise->add_params() = IntegerValue(attempt);
    storage::v1::ExecuteBatchResponse ignored;
    grpc::ClientContext call;
    SetDeadline(&call, options_.rpc_timeout);
    if (auto s = FromGrpcStatus(StorageStub(target.node)->ExecuteBatch(&call, fence, &ignored));
        !s.ok()) {
      return Annotate(s, "raising the copy fence");
    }
  }
  // Every write batch starts with the fence guard (its result is dropped).
  shard_copy::NodeExecutor execute = [&](const std::string& address,
                                         const storage::v1::ExecuteBatchRequest& request)
      -> absl::StatusOr<storage::v1::ExecuteBatchResponse> {
    storage::v1::ExecuteBatchRequest guarded;
    if (!request.read_only()) {
      auto* guard = guarded.add_statements();
      guard->set_sql(shard_copy::FenceGuardSql(layout.table));
      *guard->add_params() = IntegerValue(source);
      *guard->add_params() = IntegerValue(attempt);
    }
    for (const auto& statement : request.statements()) *guarded.add_statements() = statement;
    guarded.set_read_only(request.read_only());
    storage::v1::ExecuteBatchResponse response;
    grpc::ClientContext call;
    SetDeadline(&call, options_.rpc_timeout);
    absl::Status s = FromGrpcStatus(StorageStub(address)->ExecuteBatch(&call, guarded, &response));
    if (!s.ok()) {
      if (!request.read_only() && absl::StrContains(s.message(), "integer overflow")) {
        return absl::AbortedError("this copy attempt was fenced off (another took over)");
      }
      return s;
    }
    if (!request.read_only() && response.results_size() > 0) {
      response.mutable_results()->erase(response.mutable_results()->begin());
    }
    return response;
  };

  const auto started = std::chrono::steady_clock::now();
  int64_t copied_this_attempt = 0;
  // Where the next scan call starts: the last key read. It runs ahead of
  // progress.last_key() (the last key written, the point a new attempt
  // resumes from) while a write is in flight.
  google::protobuf::RepeatedPtrField<Value> scan_after = progress.last_key();
  // Reading overlaps writing: one batch of rows is written to the targets on
  // another thread while the next is read from the source. At most one write
  // is in flight, and the saved point moves only past rows that are written.
  std::vector<std::vector<Value>> pending;
  struct InFlight {
    std::future<absl::StatusOr<int64_t>> written;
    google::protobuf::RepeatedPtrField<Value> last_key;
    int64_t rows = 0;
  } in_flight;
  auto settle = [&]() -> absl::Status {
    if (!in_flight.written.valid()) return absl::OkStatus();
    absl::StatusOr<int64_t> written = in_flight.written.get();
    if (!written.ok()) return written.status();
    *progress.mutable_last_key() = in_flight.last_key;
    progress.set_rows_copied(progress.rows_copied() + in_flight.rows);
    return absl::OkStatus();
  };
  auto flush = [&](bool wait) -> absl::Status {
    if (auto s = settle(); !s.ok()) return s;
    if (!pending.empty()) {
      auto rows = std::make_shared<std::vector<std::vector<Value>>>(std::move(pending));
      pending.clear();
      in_flight.last_key = scan_after;
      in_flight.rows = static_cast<int64_t>(rows->size());
      // (A future of std::async joins in its destructor: no write outlives
      // this function, whichever way it returns.)
      in_flight.written = std::async(std::launch::async, [&layout, &targets, &execute, rows] {
        return shard_copy::ApplyRows(layout, targets, *rows, execute, /*parallel_nodes=*/true);
      });
    }
    return wait ? settle() : absl::OkStatus();
  };
  bool done = false;
  while (!done) {
    storage::v1::ScanShardRequest scan;
    scan.set_table(layout.table);
    scan.set_shard_id(source);
    for (const auto& column : layout.columns) scan.add_columns(column);
    for (const auto& column : layout.primary_key) scan.add_key_columns(column);
    *scan.mutable_after_key() = scan_after;
    scan.set_block_size(std::max(1, plan.block_size()));
    scan.set_max_blocks(kBlocksPerCall);
    grpc::ClientContext scan_call;
    absl::Duration allowance = options_.rpc_timeout * 2;
    if (options_.scan_rows_per_s > 0) {
      allowance += absl::Seconds(static_cast<double>(kBlocksPerCall) * scan.block_size() /
                                 options_.scan_rows_per_s);
    }
    SetDeadline(&scan_call, allowance);
    auto reader = StorageStub(plan.source().address())->ScanShard(&scan_call, scan);
    storage::v1::ScanShardResponse block;
    absl::Status failed;
    int blocks = 0;
    while (reader->Read(&block)) {
      ++blocks;
      if (block.rows_size() > 0) {
        for (const auto& row : block.rows()) {
          pending.emplace_back(row.values().begin(), row.values().end());
        }
        scan_after = block.last_key();
        copied_this_attempt += block.rows_size();
      }
      done = block.done();
      // Throttled copies write every block at once (fine-grained progress).
      const bool throttled = options_.scan_rows_per_s > 0;
      if (done || throttled || static_cast<int>(pending.size()) >= kRowsPerApply) {
        failed = flush(/*wait=*/done || throttled);
        if (!failed.ok()) break;
      }
      if (done) progress.set_copy_done(true);
      if (!context.Heartbeat(progress.SerializeAsString())) {
        failed = absl::CancelledError("the job was cancelled or its lease lost");
        break;
      }
      if (throttled) {
        auto due = started + std::chrono::microseconds(copied_this_attempt * 1000000 /
                                                       options_.scan_rows_per_s);
        while (std::chrono::steady_clock::now() < due && !context.cancelled()) {
          std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
              due - std::chrono::steady_clock::now(), std::chrono::milliseconds(50)));
        }
      }
      if (done) break;
    }
    if (!failed.ok()) {
      scan_call.TryCancel();
      reader->Finish().ok();
      return failed;
    }
    if (auto s = FromGrpcStatus(reader->Finish()); !s.ok()) {
      return Annotate(s, absl::StrCat("scanning source shard ", source));
    }
    if (blocks == 0 && !done) return absl::InternalError("a shard scan ended without a block");
  }
  context.set_result(absl::StrCat(progress.rows_copied(), " rows copied from shard ", source));
  return absl::OkStatus();
}

}  // namespace conductor
