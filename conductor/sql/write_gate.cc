#include "conductor/sql/write_gate.h"

#include "absl/strings/str_cat.h"
#include "common/errors.h"

namespace conductor {

WriteGate::Pass::~Pass() { gate_->Leave(table_id_); }

absl::StatusOr<std::unique_ptr<WriteGate::Pass>> WriteGate::Enter(int64_t table_id,
                                                                  absl::Time deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    auto it = tables_.find(table_id);
    if (it == tables_.end() || !it->second.closed) break;
    if (cv_.wait_until(lock, absl::ToChronoTime(deadline)) == std::cv_status::timeout) {
      it = tables_.find(table_id);
      if (it != tables_.end() && it->second.closed) {
        return Error(absl::StatusCode::kUnavailable, reason::kTableBusy,
                     "the table's writes are paused (a reshard is switching to its new shards) "
                     "and the deadline came first; retry");
      }
    }
  }
  ++tables_[table_id].in_flight;
  return std::unique_ptr<Pass>(new Pass(this, table_id));
}

void WriteGate::Leave(int64_t table_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tables_.find(table_id);
    if (it == tables_.end()) return;
    --it->second.in_flight;
    if (it->second.in_flight == 0 && !it->second.closed) tables_.erase(it);
  }
  cv_.notify_all();
}

absl::Status WriteGate::CloseAndDrain(int64_t table_id, absl::Time deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  Table& table = tables_[table_id];
  if (table.closed) {
    return absl::FailedPreconditionError(
        absl::StrCat("the write gate of table ", table_id, " is already closed"));
  }
  table.closed = true;
  while (tables_[table_id].in_flight > 0) {
    if (cv_.wait_until(lock, absl::ToChronoTime(deadline)) == std::cv_status::timeout &&
        tables_[table_id].in_flight > 0) {
      tables_[table_id].closed = false;
      lock.unlock();
      cv_.notify_all();
      return absl::DeadlineExceededError(
          absl::StrCat("writes in flight to table ", table_id, " did not finish in time"));
    }
  }
  return absl::OkStatus();
}

void WriteGate::Open(int64_t table_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tables_.find(table_id);
    if (it == tables_.end()) return;
    it->second.closed = false;
    if (it->second.in_flight == 0) tables_.erase(it);
  }
  cv_.notify_all();
}

int WriteGate::InFlight(int64_t table_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tables_.find(table_id);
  return it == tables_.end() ? 0 : it->second.in_flight;
}

}  // namespace conductor
