#include "storage_node/connection_pool.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"

namespace conductor {
namespace storage_node {
namespace {

// How often a waiter looks at its call's cancellation (deadlines wake it
// exactly).
constexpr absl::Duration kCancelPollInterval = absl::Milliseconds(50);

}  // namespace

ConnectionPool::Lease::~Lease() {
  if (pool_ != nullptr) pool_->Release(connection_);
}

ConnectionPool::ConnectionPool(std::vector<std::unique_ptr<Connection>> connections)
    : connections_(std::move(connections)) {
  for (const auto& connection : connections_) free_.push_back(connection.get());
}

absl::StatusOr<ConnectionPool::Lease> ConnectionPool::Acquire(const CallControl& control) {
  std::unique_lock<std::mutex> lock(mu_);
  while (free_.empty()) {
    if (auto s = control.Check("while waiting for a database connection"); !s.ok()) return s;
    const absl::Time wake = std::min(control.deadline, absl::Now() + kCancelPollInterval);
    returned_.wait_until(lock, absl::ToChronoTime(wake));
  }
  Connection* connection = free_.back();
  free_.pop_back();
  return Lease(this, connection);
}

void ConnectionPool::Release(Connection* connection) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(connection);
  }
  returned_.notify_one();
}

}  // namespace storage_node
}  // namespace conductor
