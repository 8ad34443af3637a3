// WriteGate: per-table admission for data writes, so that an operation can
// hold a table's new writes for a moment and wait for the ones in flight —
// the reshard switch (docs/resharding.md): close, drain, change the
// topology, open. Reads never pass through it.
//
// Thread-safe. A write holds a Pass from Enter() until it is answered.
#ifndef CONDUCTOR_CONDUCTOR_SQL_WRITE_GATE_H_
#define CONDUCTOR_CONDUCTOR_SQL_WRITE_GATE_H_

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace conductor {

class WriteGate {
 public:
  // Leaves the gate when destroyed.
  class Pass {
   public:
    ~Pass();
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;

   private:
    friend class WriteGate;
    Pass(WriteGate* gate, int64_t table_id) : gate_(gate), table_id_(table_id) {}
    WriteGate* const gate_;
    const int64_t table_id_;
  };

  // Admits a write to `table_id`, waiting while its gate is closed.
  // UNAVAILABLE (reason TABLE_BUSY) when it is still closed at `deadline`.
  absl::StatusOr<std::unique_ptr<Pass>> Enter(int64_t table_id, absl::Time deadline);

  // Closes the table's gate (new writes wait) and waits until every write
  // admitted before has left. If that takes past `deadline`, opens the gate
  // again and fails with DEADLINE_EXCEEDED. FAILED_PRECONDITION when the
  // gate is already closed (one closer at a time).
  absl::Status CloseAndDrain(int64_t table_id, absl::Time deadline);

  // Opens the table's gate; waiting writes go on. Idempotent.
  void Open(int64_t table_id);

  // Writes of the table admitted and not yet left.
  int InFlight(int64_t table_id) const;

 private:
  struct Table {
    int in_flight = 0;
    bool closed = false;
  };
  void Leave(int64_t table_id);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, Table> tables_;  // GUARDED_BY(mu_); entries with nothing to say are erased
};

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_SQL_WRITE_GATE_H_
