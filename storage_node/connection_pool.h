// A fixed set of connections, each lent to one caller at a time.
#ifndef CONDUCTOR_STORAGE_NODE_CONNECTION_POOL_H_
#define CONDUCTOR_STORAGE_NODE_CONNECTION_POOL_H_

#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "storage_node/call_control.h"
#include "storage_node/connection.h"

namespace conductor {
namespace storage_node {

// Thread-safe. A pool of one connection is a mutex whose wait honours the
// call's deadline and cancellation.
class ConnectionPool {
 public:
  // A borrowed connection; returns it to the pool when destroyed. Movable.
  class Lease {
   public:
    Lease(Lease&& other) noexcept : pool_(other.pool_), connection_(other.connection_) {
      other.pool_ = nullptr;
      other.connection_ = nullptr;
    }
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    ~Lease();

    Connection* operator->() const { return connection_; }
    Connection& operator*() const { return *connection_; }

   private:
    friend class ConnectionPool;
    Lease(ConnectionPool* pool, Connection* connection) : pool_(pool), connection_(connection) {}
    ConnectionPool* pool_;
    Connection* connection_;
  };

  // REQUIRES: `connections` is not empty.
  explicit ConnectionPool(std::vector<std::unique_ptr<Connection>> connections);
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // Waits for a free connection. Fails with DEADLINE_EXCEEDED or CANCELLED when
  // `control` says so first. REQUIRES: every Lease is destroyed before the pool.
  absl::StatusOr<Lease> Acquire(const CallControl& control);

  int size() const { return static_cast<int>(connections_.size()); }

 private:
  void Release(Connection* connection);

  const std::vector<std::unique_ptr<Connection>> connections_;
  // std::mutex rather than absl::Mutex: Debian's Abseil is not instrumented,
  // so ThreadSanitizer would not see absl::Mutex's synchronisation.
  std::mutex mu_;
  // Signalled when a connection is returned.
  std::condition_variable returned_;
  std::vector<Connection*> free_ ABSL_GUARDED_BY(mu_);
};

}  // namespace storage_node
}  // namespace conductor

#endif  // CONDUCTOR_STORAGE_NODE_CONNECTION_POOL_H_
