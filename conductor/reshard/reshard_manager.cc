#include "conductor/reshard/reshard_manager.h"

#include <algorithm>
#include <future>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/shard_copy/change_capture.h"
#include "common/shard_copy/copier.h"
#include "common/sqlite.h"

namespace conductor {

struct ReshardManager::OpRecord {
  std::string id;
  int64_t table_id = 0;
  std::string table_name;
  std::string phase;
  bool switched = false;
  std::vector<int32_t> sources;
  std::vector<int32_t> targets;
  int64_t rows_total = 0;
  std::string error;
  int64_t write_pause_ms = 0;
  int64_t started_at_ms = 0;
  int64_t updated_at_ms = 0;
};

namespace {

std::string JoinIds(const std::vector<int32_t>& ids) { return absl::StrJoin(ids, ","); }

std::vector<int32_t> ParseIds(const std::string& text) {
  std::vector<int32_t> ids;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int32_t id;
    if (absl::SimpleAtoi(part, &id)) ids.push_back(id);
  }
  return ids;
}

v1::ReshardPhase PhaseOf(const std::string& phase) {
  if (phase == "pending") return v1::RESHARD_PHASE_PENDING;
  if (phase == "copying") return v1::RESHARD_PHASE_COPYING;
  if (phase == "switching") return v1::RESHARD_PHASE_SWITCHING;
  if (phase == "complete") return v1::RESHARD_PHASE_COMPLETE;
  if (phase == "failed") return v1::RESHARD_PHASE_FAILED;
  return v1::RESHARD_PHASE_UNSPECIFIED;
}

absl::Status NotFound(const std::string& id) {
  return Error(absl::StatusCode::kNotFound, reason::kReshardNotFound,
               absl::StrCat("no reshard operation with change_log_id ", id));
}

std::string NewChangeLogId() {
  static std::mutex mu;
  static std::mt19937_64 random(std::random_device{}());
  std::lock_guard<std::mutex> lock(mu);
  return absl::StrCat("rs-", absl::Hex(TopologyStore::NowMs()), "-",
                      absl::Hex(random() & 0xffffff));
}

constexpr char kColumns[] =
    "change_log_id, table_id, table_name, phase, switched, source_shard_ids, target_shard_ids, "
    "rows_total, error, write_pause_ms, started_at_ms, updated_at_ms";

}  // namespace

std::string ReshardManager::JobOperation(const std::string& change_log_id) {
  return absl::StrCat("reshard:", change_log_id);
}

ReshardManager::ReshardManager(TopologyStore* store, StorageClient* storage, JobQueue* jobs,
                               IndexManager* indexes, WriteGate* gate, TableOperations* tables,
                               ReshardOptions options)
    : store_(store),
      storage_(storage),
      jobs_(jobs),
      indexes_(indexes),
      gate_(gate),
      tables_(tables),
      options_(options) {}

ReshardManager::~ReshardManager() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (coordinator_.joinable()) coordinator_.join();
}

// ---- records ----

namespace {

template <typename Op>
Op ReadOperation(const Statement& row) {
  Op op;
  op.id = row.ColumnText(0);
  op.table_id = row.ColumnInt64(1);
  op.table_name = row.ColumnText(2);
  op.phase = row.ColumnText(3);
  op.switched = row.ColumnInt64(4) != 0;
  op.sources = ParseIds(row.ColumnText(5));
  op.targets = ParseIds(row.ColumnText(6));
  op.rows_total = row.ColumnInt64(7);
  op.error = row.ColumnText(8);
  op.write_pause_ms = row.ColumnInt64(9);
  op.started_at_ms = row.ColumnInt64(10);
  op.updated_at_ms = row.ColumnInt64(11);
  return op;
}

}  // namespace

absl::StatusOr<std::vector<ReshardManager::OpRecord>> ReshardManager::LoadActive() {
  std::vector<OpRecord> ops;
  absl::Status s = store_->Transact([&](Database& db) {
    return db.ForEachRow(
        absl::StrCat("SELECT ", kColumns,
                     " FROM reshard_operations WHERE phase IN ('pending', 'copying', "
                     "'switching') ORDER BY started_at_ms"),
        [&](const Statement& row) {
          ops.push_back(ReadOperation<OpRecord>(row));
          return absl::OkStatus();
        });
  });
  if (!s.ok()) return s;
  return ops;
}

absl::StatusOr<ReshardManager::OpRecord> ReshardManager::Load(const std::string& id) {
  std::optional<OpRecord> found;
  absl::Status s = store_->Transact([&](Database& db) -> absl::Status {
    auto stmt = db.Prepare(
        absl::StrCat("SELECT ", kColumns, " FROM reshard_operations WHERE change_log_id = ?"));
    if (!stmt.ok()) return stmt.status();
    stmt->BindText(1, id).IgnoreError();
    auto row = stmt->Step();
    if (!row.ok()) return row.status();
    if (*row) found = ReadOperation<OpRecord>(*stmt);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!found.has_value()) return NotFound(id);
  return *found;
}

absl::Status ReshardManager::SetPhase(const std::string& id, const std::string& phase,
                                      const std::string& error) {
  return store_->Transact([&](Database& db) -> absl::Status {
    auto stmt = db.Prepare(
        "UPDATE reshard_operations SET phase = ?, error = ?, updated_at_ms = ? "
        "WHERE change_log_id = ?");
    if (!stmt.ok()) return stmt.status();
    stmt->BindText(1, phase).IgnoreError();
    stmt->BindText(2, error).IgnoreError();
    stmt->BindInt64(3, TopologyStore::NowMs()).IgnoreError();
    stmt->BindText(4, id).IgnoreError();
    return stmt->Run();
  });
}

absl::StatusOr<bool> ReshardManager::Active(int64_t table_id) {
  auto ops = LoadActive();
  if (!ops.ok()) return ops.status();
  for (const OpRecord& op : *ops) {
    if (op.table_id == table_id) return true;
  }
  return false;
}

absl::StatusOr<v1::ReshardStatus> ReshardManager::Status(const std::string& id) {
  auto op = Load(id);
  if (!op.ok()) return op.status();
  v1::ReshardStatus status;
  status.set_change_log_id(op->id);
  status.set_table(op->table_name);
  status.set_phase(PhaseOf(op->phase));
  status.set_source_shard_count(static_cast<int32_t>(op->sources.size()));
  status.set_target_shard_count(static_cast<int32_t>(op->targets.size()));
  status.set_rows_total(op->rows_total);
  status.set_error(op->error);
  status.set_started_at_ms(op->started_at_ms);
  status.set_updated_at_ms(op->updated_at_ms);
  status.set_write_pause_ms(op->write_pause_ms);
  // Rows copied: what each source's job has saved with its heartbeats.
  int64_t copied = 0;
  auto jobs = jobs_->ListByOperation(JobOperation(id));
  if (jobs.ok()) {
    std::map<int32_t, int64_t> by_source;
    for (const JobRecord& job : *jobs) {
      internal::v1::ReshardJobPayload payload;
      internal::v1::ReshardJobProgress progress;
      if (!payload.ParseFromString(job.payload) || !progress.ParseFromString(job.progress)) {
        continue;
      }
      by_source[payload.source_shard_id()] =
          std::max(by_source[payload.source_shard_id()], progress.rows_copied());
    }
    for (const auto& [source, rows] : by_source) copied += rows;
  }
  if (op->phase == "complete") copied = std::max(copied, op->rows_total);
  status.set_rows_copied(copied);
  return status;
}

// ---- helpers over the topology ----

namespace {

const TableMeta* TableById(const Snapshot& snapshot, int64_t table_id) {
  for (const auto& [unused, table] : snapshot.tables) {
    if (table.table_id == table_id) return &table;
  }
  return nullptr;
}

NodeMeta NodeOf(const Snapshot& snapshot, const std::string& node_id) {
  const NodeMeta* node = snapshot.FindNode(node_id);
  return node != nullptr ? *node : NodeMeta{node_id, ""};
}

const ShardMeta* ShardById(const TableMeta& table, int32_t shard_id) {
  for (const ShardMeta& shard : table.shards) {
    if (shard.shard_id == shard_id) return &shard;
  }
  return nullptr;
}

shard_copy::TableLayout LayoutOf(const TableMeta& table) {
  shard_copy::TableLayout layout;
  layout.table = table.name;
  for (const auto& column : table.columns) {
    if (!column.generated) layout.columns.push_back(column.name);
    if (sql::SameName(column.name, table.shard_key)) layout.shard_key_type = column.type;
  }
  layout.primary_key = table.primary_key;
  layout.shard_key = table.shard_key;
  return layout;
}

// Runs batches by node id through the storage client (copier's executor).
shard_copy::NodeExecutor ExecutorFor(StorageClient* storage,
                                     std::shared_ptr<const Snapshot> snapshot,
                                     absl::Duration timeout) {
  return [storage, snapshot, timeout](const std::string& node_id,
                                      const storage::v1::ExecuteBatchRequest& request) {
    return storage->ExecuteBatchBlocking(NodeOf(*snapshot, node_id), request,
                                         absl::Now() + timeout);
  };
}

}  // namespace

// ---- start ----

absl::StatusOr<v1::ReshardTableResponse> ReshardManager::Start(
    const v1::ReshardTableRequest& request, absl::Time deadline) {
  if (auto s = sql::ValidateName(request.table(), "table name"); !s.ok()) return s;
  if (request.new_shard_count() < kMinShards || request.new_shard_count() > kMaxShards) {
    return Error(
        absl::StatusCode::kInvalidArgument, reason::kInvalidShardCount,
        absl::StrCat("shard count ", request.new_shard_count(),
                     " is out of range; it must be between ", kMinShards, " and ", kMaxShards));
  }
  auto lock = tables_->LockSchema(deadline);
  if (!lock.ok()) return lock.status();
  auto snapshot = store_->snapshot();
  const TableMeta* table = snapshot->FindActive(request.table());
  if (table == nullptr) {
    return Error(
        absl::StatusCode::kNotFound, reason::kTableNotFound,
        absl::StrCat("table ", request.table(), " does not exist (SHOW TABLES lists the tables)"));
  }
  auto active = Active(table->table_id);
  if (!active.ok()) return active.status();
  if (*active) {
    return Error(absl::StatusCode::kFailedPrecondition, reason::kReshardInProgress,
                 absl::StrCat("table ", table->name,
                              " is being resharded; wait for that to finish (PRAGMA "
                              "reshardStatus) before starting another"));
  }
  std::vector<int32_t> sources;
  int32_t next_id = 0;
  for (const ShardMeta& shard : table->shards) {
    if (shard.status == shard_status::kActive) sources.push_back(shard.shard_id);
    next_id = std::max(next_id, shard.shard_id + 1);
  }
  // Shard ids only grow: not even the targets of a failed reshard come back.
  if (auto s = store_->Transact([&](Database& db) -> absl::Status {
        auto stmt =
            db.Prepare("SELECT target_shard_ids FROM reshard_operations WHERE table_id = ?");
        if (!stmt.ok()) return stmt.status();
        stmt->BindInt64(1, table->table_id).IgnoreError();
        while (true) {
          auto row = stmt->Step();
          if (!row.ok()) return row.status();
          if (!*row) break;
          for (int32_t id : ParseIds(stmt->ColumnText(0))) next_id = std::max(next_id, id + 1);
        }
        return absl::OkStatus();
      });
      !s.ok()) {
    return s;
  }
  v1::ReshardTableResponse response;
  if (static_cast<int>(sources.size()) == request.new_shard_count()) {
    // Nothing to do: no operation is recorded.
    response.mutable_status()->set_table(table->name);
    response.mutable_status()->set_phase(v1::RESHARD_PHASE_COMPLETE);
    response.mutable_status()->set_source_shard_count(static_cast<int32_t>(sources.size()));
    response.mutable_status()->set_target_shard_count(static_cast<int32_t>(sources.size()));
    return response;
  }
  if (auto s = CheckReachable(*storage_, snapshot->nodes, StorageDeadline()); !s.ok()) {
    return Annotate(s, absl::StrCat("the reshard of ", table->name, " was not started"));
  }
  std::vector<ShardMeta> targets = tables_->PlaceShards(*snapshot, request.new_shard_count());
  std::vector<int32_t> target_ids;
  for (ShardMeta& shard : targets) {
    shard.shard_id += next_id;
    shard.status = shard_status::kPending;
    target_ids.push_back(shard.shard_id);
  }
  const std::string id = NewChangeLogId();
  const int64_t now = TopologyStore::NowMs();
  {
    std::lock_guard<std::mutex> lock(mu_);
    starting_.insert(id);
  }
  struct Started {
    ReshardManager* self;
    std::string id;
    ~Started() {
      std::lock_guard<std::mutex> lock(self->mu_);
      self->starting_.erase(id);
    }
  } started{this, id};
  if (auto s = store_->Mutate([&](Database& db) -> absl::Status {
        auto shard = db.Prepare(
            "INSERT INTO table_shards (table_id, shard_id, node_id, status) VALUES (?, ?, ?, ?)");
        if (!shard.ok()) return shard.status();
        for (const ShardMeta& target : targets) {
          shard->Reset().IgnoreError();
          shard->BindInt64(1, table->table_id).IgnoreError();
          shard->BindInt64(2, target.shard_id).IgnoreError();
          shard->BindText(3, target.node_id).IgnoreError();
          shard->BindText(4, shard_status::kPending).IgnoreError();
          if (auto r = shard->Run(); !r.ok()) return r;
        }
        auto op = db.Prepare(
            "INSERT INTO reshard_operations (change_log_id, table_id, table_name, phase, "
            "source_shard_ids, target_shard_ids, started_at_ms, updated_at_ms) VALUES "
            "(?, ?, ?, 'pending', ?, ?, ?, ?)");
        if (!op.ok()) return op.status();
        op->BindText(1, id).IgnoreError();
        op->BindInt64(2, table->table_id).IgnoreError();
        op->BindText(3, table->name).IgnoreError();
        op->BindText(4, JoinIds(sources)).IgnoreError();
        op->BindText(5, JoinIds(target_ids)).IgnoreError();
        op->BindInt64(6, now).IgnoreError();
        op->BindInt64(7, now).IgnoreError();
        return op->Run();
      });
      !s.ok()) {
    return s;
  }
  // Capture first, then count and copy: no write can fall between.
  std::vector<NodeBatch> capture;
  for (const NodeMeta& node : snapshot->nodes) {
    NodeBatch batch{node, {}};
    for (const auto& sql : shard_copy::EnableCaptureSql(table->name, table->primary_key, sources)) {
      batch.request.add_statements()->set_sql(sql);
    }
    capture.push_back(std::move(batch));
  }
  for (const auto& answer : FanOut(*storage_, capture, StorageDeadline())) {
    if (!answer.ok()) {
      OpRecord op;
      op.id = id;
      op.table_id = table->table_id;
      op.table_name = table->name;
      op.sources = sources;
      op.targets = target_ids;
      Fail(op, absl::StrCat("could not switch change capture on: ", answer.status().message()))
          .IgnoreError();
      return Annotate(answer.status(), absl::StrCat("the reshard of ", table->name,
                                                    " was not started (nothing is left behind)"));
    }
  }
  std::vector<shard_copy::SourceShard> counted;
  for (int32_t source : sources) {
    counted.push_back({source, ShardById(*table, source)->node_id});
  }
  auto total = shard_copy::CountShards(LayoutOf(*table), counted,
                                       ExecutorFor(storage_, snapshot, options_.storage_timeout));
  if (!total.ok()) return total.status();
  if (auto s = store_->Mutate([&](Database& db) -> absl::Status {
        auto op = db.Prepare(
            "UPDATE reshard_operations SET phase = 'copying', rows_total = ?, updated_at_ms = ? "
            "WHERE change_log_id = ?");
        if (!op.ok()) return op.status();
        op->BindInt64(1, *total).IgnoreError();
        op->BindInt64(2, TopologyStore::NowMs()).IgnoreError();
        op->BindText(3, id).IgnoreError();
        if (auto r = op->Run(); !r.ok()) return r;
        for (int32_t source : sources) {
          internal::v1::ReshardJobPayload payload;
          payload.set_change_log_id(id);
          payload.set_source_shard_id(source);
          auto job =
              JobQueue::EnqueueIn(db, kJobKind, payload.SerializeAsString(), JobOperation(id),
                                  jobs_->options().max_attempts, jobs_->NowMs());
          if (!job.ok()) return job.status();
        }
        return absl::OkStatus();
      });
      !s.ok()) {
    return s;
  }
  jobs_->NotifyEnqueued();
  LogInfo("reshard %s of %s: %d -> %d shards, %d rows, copying", id, table->name,
          static_cast<int>(sources.size()), request.new_shard_count(), static_cast<int>(*total));
  response.set_change_log_id(id);
  auto status = Status(id);
  if (status.ok()) *response.mutable_status() = *status;
  return response;
}

absl::StatusOr<internal::v1::ReshardPlan> ReshardManager::Plan(const std::string& id,
                                                               int32_t source_shard_id) {
  auto op = Load(id);
  if (!op.ok()) return op.status();
  if (op->phase != "copying" && op->phase != "switching") {
    return absl::FailedPreconditionError(
        absl::StrCat("reshard ", id, " is ", op->phase, "; there is nothing left to copy"));
  }
  auto snapshot = store_->snapshot();
  const TableMeta* table = TableById(*snapshot, op->table_id);
  if (table == nullptr) return NotFound(id);
  const ShardMeta* source = ShardById(*table, source_shard_id);
  if (source == nullptr ||
      std::find(op->sources.begin(), op->sources.end(), source_shard_id) == op->sources.end()) {
    return Error(absl::StatusCode::kNotFound, reason::kReshardNotFound,
                 absl::StrCat("shard ", source_shard_id, " is not a source of reshard ", id));
  }
  const shard_copy::TableLayout layout = LayoutOf(*table);
  internal::v1::ReshardPlan plan;
  plan.set_change_log_id(id);
  plan.set_table(layout.table);
  for (const auto& column : layout.columns) plan.add_columns(column);
  for (const auto& column : layout.primary_key) plan.add_primary_key(column);
  plan.set_shard_key(layout.shard_key);
  plan.set_shard_key_type(layout.shard_key_type);
  plan.set_block_size(table->block_size);
  auto fill = [&](const ShardMeta& shard, internal::v1::ReshardPlan::Shard* out) {
    out->set_shard_id(shard.shard_id);
    out->set_node_id(shard.node_id);
    out->set_address(NodeOf(*snapshot, shard.node_id).address);
  };
  fill(*source, plan.mutable_source());
  std::vector<int32_t> targets = op->targets;
  std::sort(targets.begin(), targets.end());
  for (int32_t target : targets) {
    const ShardMeta* shard = ShardById(*table, target);
    if (shard == nullptr) return absl::InternalError("a target shard has no record");
    fill(*shard, plan.add_targets());
  }
  return plan;
}

// ---- the coordinator ----

void ReshardManager::StartCoordinator() {
  coordinator_ = std::thread([this] { CoordinatorLoop(); });
}

void ReshardManager::CoordinatorLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, absl::ToChronoNanoseconds(options_.tick));
    if (stopping_) break;
    lock.unlock();
    auto ops = LoadActive();
    if (!ops.ok()) {
      LogWarning("reshard coordinator: %s", ops.status().message());
    } else {
      for (const OpRecord& op : *ops) {
        if (auto s = Advance(op); !s.ok()) {
          LogWarning("reshard %s of %s: %s (will retry)", op.id, op.table_name, s.message());
        }
      }
    }
    lock.lock();
  }
}

absl::Status ReshardManager::Advance(const OpRecord& op) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (starting_.count(op.id) > 0) return absl::OkStatus();
  }
  if (op.phase == "pending") {
    // Start never got to copying (a crash): nothing was copied; give up.
    return Fail(op, "the conductor stopped before the copy began");
  }
  if (op.switched) {
    // Reads planned before the switch may still be reading the retired
    // shards; they end within the storage timeout.
    if (absl::Now() <
        absl::FromUnixMillis(op.updated_at_ms) + options_.storage_timeout + absl::Seconds(1)) {
      return absl::OkStatus();
    }
    return CleanUp(op);
  }
  if (op.phase == "switching") {
    // The switch did not commit before a crash: the gate lives in memory,
    // so no write is held; copy on.
    if (auto s = SetPhase(op.id, "copying", ""); !s.ok()) return s;
  }
  // A job that failed for good fails the operation.
  auto jobs = jobs_->ListByOperation(JobOperation(op.id));
  if (!jobs.ok()) return jobs.status();
  std::set<int32_t> copied;
  for (const JobRecord& job : *jobs) {
    internal::v1::ReshardJobPayload payload;
    if (!payload.ParseFromString(job.payload)) continue;
    if (job.state == JobState::kFailed) {
      return Fail(op, absl::StrCat("copying source shard ", payload.source_shard_id(),
                                   " failed: ", job.error));
    }
    if (job.state == JobState::kDone) copied.insert(payload.source_shard_id());
  }
  bool all_caught_up = false;
  if (auto s = CatchUp(op, copied, &all_caught_up); !s.ok()) return s;
  if (!all_caught_up) return absl::OkStatus();
  {
    // After a switch that rolled back, wait before pausing writes again.
    std::lock_guard<std::mutex> lock(mu_);
    auto it = switch_backoff_.find(op.id);
    if (it != switch_backoff_.end() && absl::Now() < it->second.second) return absl::OkStatus();
  }
  absl::Status switched = Switch(op);
  std::lock_guard<std::mutex> lock(mu_);
  auto& [failures, not_before] = switch_backoff_[op.id];
  if (switched.ok()) {
    switch_backoff_.erase(op.id);
  } else {
    ++failures;
    not_before =
        absl::Now() + std::min(absl::Seconds(30), absl::Seconds(1) * (1 << std::min(failures, 5)));
  }
  return switched;
}

absl::Status ReshardManager::CatchUp(const OpRecord& op, const std::set<int32_t>& copied,
                                     bool* all_caught_up) {
  auto snapshot = store_->snapshot();
  const TableMeta* table = TableById(*snapshot, op.table_id);
  if (table == nullptr) return Fail(op, "the table went away");
  const shard_copy::TableLayout layout = LayoutOf(*table);
  std::vector<shard_copy::TargetShard> targets;
  std::vector<int32_t> target_ids = op.targets;
  std::sort(target_ids.begin(), target_ids.end());
  for (int32_t id : target_ids) {
    const ShardMeta* shard = ShardById(*table, id);
    if (shard == nullptr) return absl::InternalError("a target shard has no record");
    targets.push_back({id, shard->node_id});
  }
  auto executor = ExecutorFor(storage_, snapshot, options_.storage_timeout);
  *all_caught_up = true;
  for (int32_t source : op.sources) {
    if (copied.count(source) == 0) {
      *all_caught_up = false;
      continue;
    }
    bool fenced;
    int64_t after = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      fenced = fenced_[op.id].count(source) > 0;
      after = applied_seq_[op.id][source];
    }
    if (!fenced) {
      // No worker may write to the targets for this source any more.
      std::vector<NodeBatch> batches;
      for (const auto& target : targets) {
        NodeBatch batch{NodeOf(*snapshot, target.node), {}};
        batch.request.add_statements()->set_sql(shard_copy::CreateFenceSql(layout.table));
        auto* raise = batch.request.add_statements();
        raise->set_sql(shard_copy::RaiseFenceSql(layout.table));
        *raise->add_params() = IntegerValue(source);
        *raise->add_params() = IntegerValue(shard_copy::kFenceClosed);
        batches.push_back(std::move(batch));
      }
      for (const auto& answer : FanOut(*storage_, batches, StorageDeadline())) {
        if (!answer.ok()) return answer.status();
      }
      std::lock_guard<std::mutex> lock(mu_);
      fenced_[op.id].insert(source);
    }
    const ShardMeta* shard = ShardById(*table, source);
    if (shard == nullptr) return absl::InternalError("a source shard has no record");
    // Passes until the backlog is small.
    for (int pass = 0; pass < 100; ++pass) {
      auto result = shard_copy::CatchUpOnce(layout, {source, shard->node_id}, targets, after,
                                            options_.caught_up_changes * 5, executor);
      if (!result.ok()) return result.status();
      after = result->last_seq;
      {
        std::lock_guard<std::mutex> lock(mu_);
        applied_seq_[op.id][source] = after;
      }
      if (result->changes < options_.caught_up_changes) break;
      if (pass == 99) *all_caught_up = false;
    }
  }
  return absl::OkStatus();
}

void ReshardManager::TestingHold(const OpRecord& op, absl::Duration hold, const char* where) {
  if (hold <= absl::ZeroDuration()) return;
  LogWarning("reshard %s of %s: TESTING: holding the switch %d ms %s its topology transaction",
             op.id, op.table_name, static_cast<int>(absl::ToInt64Milliseconds(hold)), where);
  absl::SleepFor(hold);
}

absl::Status ReshardManager::Switch(const OpRecord& op) {
  if (auto s = SetPhase(op.id, "switching", ""); !s.ok()) return s;
  auto snapshot = store_->snapshot();
  const TableMeta* table = TableById(*snapshot, op.table_id);
  if (table == nullptr) return Fail(op, "the table went away");
  const shard_copy::TableLayout layout = LayoutOf(*table);
  std::vector<shard_copy::TargetShard> targets;
  std::vector<int32_t> target_ids = op.targets;
  std::sort(target_ids.begin(), target_ids.end());
  for (int32_t id : target_ids) targets.push_back({id, ShardById(*table, id)->node_id});
  std::vector<shard_copy::SourceShard> sources;
  for (int32_t id : op.sources) sources.push_back({id, ShardById(*table, id)->node_id});
  auto executor = ExecutorFor(storage_, snapshot, options_.storage_timeout);

  const absl::Time paused_at = absl::Now();
  const absl::Time give_up = paused_at + options_.max_pause;
  auto back_to_copying = [&](const std::string& why) -> absl::Status {
    gate_->Open(op.table_id);
    LogWarning("reshard %s of %s: switch rolled back to copying: %s", op.id, op.table_name, why);
    if (auto s = SetPhase(op.id, "copying", ""); !s.ok()) return s;
    return absl::AbortedError(absl::StrCat("switch rolled back: ", why));
  };
  if (auto s = gate_->CloseAndDrain(op.table_id, give_up); !s.ok()) {
    return back_to_copying(std::string(s.message()));
  }
  // The last changes: no write can add more while the gate is closed.
  for (const auto& source : sources) {
    int64_t after;
    {
      std::lock_guard<std::mutex> lock(mu_);
      after = applied_seq_[op.id][source.shard_id];
    }
    while (true) {
      if (absl::Now() >= give_up) return back_to_copying("the pause limit was reached");
      auto result = shard_copy::CatchUpOnce(layout, source, targets, after, 5000, executor);
      if (!result.ok()) return back_to_copying(std::string(result.status().message()));
      after = result->last_seq;
      if (result->changes == 0) break;
    }
    std::lock_guard<std::mutex> lock(mu_);
    applied_seq_[op.id][source.shard_id] = after;
  }
  const absl::Time caught_up_at = absl::Now();
  // The sources' counts come from the counters the capture triggers keep
  // (a read each); the targets are counted, every shard on its own call.
  auto source_rows = shard_copy::CountCapturedShards(layout, sources, executor);
  if (!source_rows.ok()) {
    // No counters (capture switched on by a conductor without them, before
    // an upgrade): count the sources themselves.
    LogWarning("reshard %s of %s: counting the source shards (%s)", op.id, op.table_name,
               source_rows.status().message());
    source_rows = shard_copy::CountShards(layout, sources, executor, /*parallel=*/true);
  }
  auto target_rows = shard_copy::CountShards(
      layout, std::vector<shard_copy::SourceShard>(targets.begin(), targets.end()), executor,
      /*parallel=*/true);
  if (!source_rows.ok() || !target_rows.ok()) {
    return back_to_copying(
        absl::StrCat("the row counts could not be taken: ",
                     (!source_rows.ok() ? source_rows.status() : target_rows.status()).message()));
  }
  if (*source_rows != *target_rows) {
    return back_to_copying(absl::StrCat("source shards hold ", *source_rows,
                                        " rows but target shards ", *target_rows));
  }
  if (options_.verify_checksums) {
    auto summing_sources = std::async(std::launch::async, [&] {
      return shard_copy::ChecksumShards(layout, sources, kChecksumBlockRows, executor);
    });
    auto target_sum = shard_copy::ChecksumShards(
        layout, std::vector<shard_copy::SourceShard>(targets.begin(), targets.end()),
        kChecksumBlockRows, executor);
    auto source_sum = summing_sources.get();
    if (!source_sum.ok() || !target_sum.ok()) {
      return back_to_copying("the checksums could not be taken");
    }
    if (*source_sum != *target_sum) {
      return back_to_copying(absl::StrFormat(
          "the checksums differ: sources %016x over %d rows, targets %016x over %d rows",
          source_sum->checksum, source_sum->rows, target_sum->checksum, target_sum->rows));
    }
    LogInfo("reshard %s of %s: checksums equal over %d rows (%016x)", op.id, op.table_name,
            source_sum->rows, source_sum->checksum);
  }
  const absl::Time counted_at = absl::Now();
  TestingHold(op, options_.testing_hold_before_switch, "before");
  if (absl::Now() >= give_up) return back_to_copying("the pause limit was reached");
  const int64_t pause_ms = absl::ToInt64Milliseconds(absl::Now() - paused_at);
  // The one switch point: targets active, sources retiring.
  absl::Status switched = store_->Mutate([&](Database& db) -> absl::Status {
    auto shards = db.Prepare(
        "UPDATE table_shards SET status = CASE status WHEN 'pending' THEN 'active' "
        "ELSE 'retiring' END WHERE table_id = ? AND status IN ('pending', 'active')");
    if (!shards.ok()) return shards.status();
    shards->BindInt64(1, op.table_id).IgnoreError();
    if (auto r = shards->Run(); !r.ok()) return r;
    auto record = db.Prepare(
        "UPDATE reshard_operations SET switched = 1, write_pause_ms = ?, updated_at_ms = ? "
        "WHERE change_log_id = ?");
    if (!record.ok()) return record.status();
    record->BindInt64(1, pause_ms).IgnoreError();
    record->BindInt64(2, TopologyStore::NowMs()).IgnoreError();
    record->BindText(3, op.id).IgnoreError();
    if (auto r = record->Run(); !r.ok()) return r;
    // Index entries still name the sources: every target is dirty until recounted.
    for (const IndexMeta& index : table->indexes) {
      if (index.Maintained()) indexes_->MarkDirty(index.index_id, target_ids);
    }
    return absl::OkStatus();
  });
  if (!switched.ok()) return back_to_copying(std::string(switched.message()));
  TestingHold(op, options_.testing_hold_after_switch, "after");
  gate_->Open(op.table_id);
  const absl::Time opened_at = absl::Now();
  // The pause recorded above ends before the topology transaction; now that
  // writes flow again, record the whole of it (best effort: a failure leaves
  // the first figure).
  const int64_t whole_pause_ms = absl::ToInt64Milliseconds(opened_at - paused_at);
  store_
      ->Transact([&](Database& db) -> absl::Status {
        auto record =
            db.Prepare("UPDATE reshard_operations SET write_pause_ms = ? WHERE change_log_id = ?");
        if (!record.ok()) return record.status();
        record->BindInt64(1, whole_pause_ms).IgnoreError();
        record->BindText(2, op.id).IgnoreError();
        return record->Run();
      })
      .IgnoreError();
  LogInfo(
      "reshard %s of %s: switched to %d shards; writes paused %d ms (drain and last catch-up "
      "%d ms, row counts%s %d ms, topology transaction %d ms)",
      op.id, op.table_name, static_cast<int>(target_ids.size()), static_cast<int>(whole_pause_ms),
      static_cast<int>(absl::ToInt64Milliseconds(caught_up_at - paused_at)),
      options_.verify_checksums ? " and checksums" : "",
      static_cast<int>(absl::ToInt64Milliseconds(counted_at - caught_up_at)),
      static_cast<int>(absl::ToInt64Milliseconds(opened_at - counted_at)));
  return absl::OkStatus();  // the clean-up follows (Advance)
}

absl::Status ReshardManager::DeleteShardRows(const Snapshot& snapshot, const TableMeta& table,
                                             const std::vector<int32_t>& shard_ids) {
  std::vector<std::string> key;
  for (const auto& column : table.primary_key) key.push_back(QuoteIdentifier(column));
  const std::string tuple =
      key.size() == 1 ? key[0] : absl::StrCat("(", absl::StrJoin(key, ", "), ")");
  const std::string name = QuoteIdentifier(table.name);
  const std::string sql =
      absl::StrCat("DELETE FROM ", name, " WHERE ", sql::kVirtualShardColumn, " = ?1 AND ", tuple,
                   " IN (SELECT ", absl::StrJoin(key, ", "), " FROM ", name, " WHERE ",
                   sql::kVirtualShardColumn, " = ?1 LIMIT ", kDeleteBlockRows, ")");
  for (int32_t shard_id : shard_ids) {
    const ShardMeta* shard = ShardById(table, shard_id);
    if (shard == nullptr) continue;
    const NodeMeta node = NodeOf(snapshot, shard->node_id);
    while (true) {
      storage::v1::ExecuteBatchRequest request;
      auto* statement = request.add_statements();
      statement->set_sql(sql);
      *statement->add_params() = IntegerValue(shard_id);
      auto answer = storage_->ExecuteBatchBlocking(node, request, StorageDeadline());
      if (!answer.ok()) return answer.status();
      if (answer->results_size() == 0 || answer->results(0).rows_affected() == 0) break;
    }
  }
  return absl::OkStatus();
}

absl::Status ReshardManager::CleanUp(const OpRecord& op) {
  auto snapshot = store_->snapshot();
  const TableMeta* table = TableById(*snapshot, op.table_id);
  if (table == nullptr) return SetPhase(op.id, "complete", "");
  // Retired rows go in small transactions, so that the node's writer is
  // never held for long (one DELETE of a million rows stalls every write).
  if (auto s = DeleteShardRows(*snapshot, *table, op.sources); !s.ok()) return s;
  std::vector<NodeBatch> batches;
  for (const NodeMeta& node : snapshot->nodes) {
    NodeBatch batch{node, {}};
    for (const auto& sql : shard_copy::DisableCaptureSql(table->name)) {
      batch.request.add_statements()->set_sql(sql);
    }
    batch.request.add_statements()->set_sql(shard_copy::DropFenceSql(table->name));
    batches.push_back(std::move(batch));
  }
  for (const auto& answer : FanOut(*storage_, batches, StorageDeadline())) {
    if (!answer.ok()) return answer.status();
  }
  if (auto s = EndOperation(op, shard_status::kRetiring, "complete", ""); !s.ok()) return s;
  for (const IndexMeta& index : table->indexes) {
    for (int32_t source : op.sources) indexes_->ForgetShard(index.index_id, source).IgnoreError();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fenced_.erase(op.id);
    applied_seq_.erase(op.id);
    switch_backoff_.erase(op.id);
  }
  LogInfo("reshard %s of %s: complete", op.id, op.table_name);
  return absl::OkStatus();
}

absl::Status ReshardManager::EndOperation(const OpRecord& op, const char* dropped_status,
                                          const std::string& phase, const std::string& error) {
  return store_->Mutate([&](Database& db) -> absl::Status {
    auto shards = db.Prepare("DELETE FROM table_shards WHERE table_id = ? AND status = ?");
    if (!shards.ok()) return shards.status();
    shards->BindInt64(1, op.table_id).IgnoreError();
    shards->BindText(2, dropped_status).IgnoreError();
    if (auto r = shards->Run(); !r.ok()) return r;
    auto record = db.Prepare(
        "UPDATE reshard_operations SET phase = ?, error = ?, updated_at_ms = ? "
        "WHERE change_log_id = ?");
    if (!record.ok()) return record.status();
    record->BindText(1, phase).IgnoreError();
    record->BindText(2, error).IgnoreError();
    record->BindInt64(3, TopologyStore::NowMs()).IgnoreError();
    record->BindText(4, op.id).IgnoreError();
    return record->Run();
  });
}

absl::Status ReshardManager::Fail(const OpRecord& op, const std::string& error) {
  auto cancelled = jobs_->Cancel(JobOperation(op.id));
  if (!cancelled.ok()) return cancelled.status();
  // The record first: the sources keep serving whatever happens next, and
  // the target shard ids are never used again (Start skips them), so rows a
  // dead node still holds for them can never become visible.
  if (auto s = EndOperation(op, shard_status::kPending, "failed", error); !s.ok()) return s;
  LogWarning("reshard %s of %s failed: %s", op.id, op.table_name, error);
  // Then, best effort, the targets' rows, capture and fences on every node
  // that answers.
  auto snapshot = store_->snapshot();
  const TableMeta* table = TableById(*snapshot, op.table_id);
  if (table != nullptr) {
    std::vector<NodeBatch> batches;
    const std::string targets = JoinIds(op.targets);
    for (const NodeMeta& node : snapshot->nodes) {
      NodeBatch batch{node, {}};
      batch.request.add_statements()->set_sql(
          absl::StrCat("DELETE FROM ", QuoteIdentifier(table->name), " WHERE ",
                       sql::kVirtualShardColumn, " IN (", targets.empty() ? "NULL" : targets, ")"));
      for (const auto& sql : shard_copy::DisableCaptureSql(table->name)) {
        batch.request.add_statements()->set_sql(sql);
      }
      batch.request.add_statements()->set_sql(shard_copy::DropFenceSql(table->name));
      batches.push_back(std::move(batch));
    }
    auto answers = FanOut(*storage_, batches, StorageDeadline());
    for (size_t i = 0; i < answers.size(); ++i) {
      if (!answers[i].ok()) {
        LogWarning("reshard %s: could not clean node %s up: %s", op.id, batches[i].node.node_id,
                   answers[i].status().message());
      }
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fenced_.erase(op.id);
    applied_seq_.erase(op.id);
  }
  return absl::OkStatus();
}

}  // namespace conductor
