// When a call in progress must stop: its deadline and its cancellation.
#ifndef CONDUCTOR_STORAGE_NODE_CALL_CONTROL_H_
#define CONDUCTOR_STORAGE_NODE_CALL_CONTROL_H_

#include <functional>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace conductor {
namespace storage_node {

// The limits of one call. Copyable; `is_cancelled` must be safe to call from
// the thread doing the work.
struct CallControl {
  absl::Time deadline = absl::InfiniteFuture();
  // Returns true once the caller gave up (e.g. ServerContext::IsCancelled).
  // May be empty.
  std::function<bool()> is_cancelled;

  // True once the deadline passed or the caller cancelled. Cancellation is
  // looked at most every kCancelCheckInterval. Not thread-safe: one call's
  // statements run on one thread.
  bool ShouldStop() const;
  // OK while the call may go on; DEADLINE_EXCEEDED or CANCELLED (mentioning
  // `what`) once it must stop.
  absl::Status Check(const char* what) const;

  static constexpr absl::Duration kCancelCheckInterval = absl::Milliseconds(5);

 private:
  mutable absl::Time next_cancel_check_ = absl::InfinitePast();
};

}  // namespace storage_node
}  // namespace conductor

#endif  // CONDUCTOR_STORAGE_NODE_CALL_CONTROL_H_
