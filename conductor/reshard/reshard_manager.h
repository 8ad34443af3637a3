// ReshardManager: online resharding (DESIGN.md §5 RESHARD; the plan and its
// argument are in docs/resharding.md).
//
//   Start: target shards recorded `pending`, the operation `pending`;
//          change capture switched on for the source shards on their nodes;
//          then `copying` with one ReshardTableJob per source shard.
//   copying: queue workers copy each source shard (fenced per attempt on the
//          target nodes); once a source's copy is done the conductor fences
//          the workers out and runs catch-up passes from the captured changes.
//   switching: the table's write gate closes, writes in flight drain, the
//          last changes are applied, row counts of sources and targets are
//          compared, and one topology transaction activates the targets and
//          retires the sources; the gate opens. Past max_pause, or on a
//          count mismatch, the switch rolls back to copying and is retried.
//   complete: retired rows deleted, capture and fences removed.
//   failed: targets' rows and records removed, capture off; the sources
//          never stopped serving.
//
// One coordinator thread drives every operation; after a restart it picks
// them up where the topology says they are. Thread-safe.
#ifndef CONDUCTOR_CONDUCTOR_RESHARD_RESHARD_MANAGER_H_
#define CONDUCTOR_CONDUCTOR_RESHARD_RESHARD_MANAGER_H_

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "conductor/index/index_manager.h"
#include "conductor/internal/v1/reshard.pb.h"
#include "conductor/reshard/resharder.h"
#include "conductor/schema/table_operations.h"
#include "conductor/sql/write_gate.h"
#include "conductor/storage/storage_client.h"
#include "conductor/topo/job_queue.h"
#include "conductor/topo/topology_store.h"
#include "conductor/v1/table_ops.pb.h"

namespace conductor {

struct ReshardOptions {
  absl::Duration storage_timeout = absl::Seconds(10);
  // The longest the switch may hold a table's writes.
  absl::Duration max_pause = absl::Seconds(2);
  // A source is "caught up" when a catch-up pass finds fewer changes.
  int caught_up_changes = 200;
  // How often the coordinator looks at the operations.
  absl::Duration tick = absl::Milliseconds(100);
  // Whether the switch also compares checksums of every row of the sources
  // and the targets (--reshard_verify_checksums): a read of the whole table
  // while writes are held, so a longer pause.
  bool verify_checksums = false;
  // Fault injection for tests (--testing_reshard_switch_hold_*_ms): the
  // switch sleeps this long with writes held, just before / just after its
  // topology transaction, so that a test can kill the conductor there.
  absl::Duration testing_hold_before_switch = absl::ZeroDuration();
  absl::Duration testing_hold_after_switch = absl::ZeroDuration();
};

class ReshardManager : public Resharder {
 public:
  static constexpr char kJobKind[] = "ReshardTableJob";
  // The job-queue operation of a reshard's jobs ("reshard:<change_log_id>").
  static std::string JobOperation(const std::string& change_log_id);

  ReshardManager(TopologyStore* store, StorageClient* storage, JobQueue* jobs,
                 IndexManager* indexes, WriteGate* gate, TableOperations* tables,
                 ReshardOptions options = {});
  ~ReshardManager() override;

  // ReshardTable / PRAGMA reshardTable. INVALID_SHARD_COUNT outside 1..256;
  // RESHARD_IN_PROGRESS when one is active on the table; the same count as
  // now answers OK with no operation (empty change_log_id, phase complete).
  absl::StatusOr<v1::ReshardTableResponse> Start(const v1::ReshardTableRequest& request,
                                                 absl::Time deadline) override;
  // NOT_FOUND (RESHARD_NOT_FOUND) for an unknown id.
  absl::StatusOr<v1::ReshardStatus> Status(const std::string& change_log_id) override;
  // Whether a reshard of `table_id` is pending, copying or switching.
  absl::StatusOr<bool> Active(int64_t table_id) override;
  // The copy plan of one source shard, for its job.
  absl::StatusOr<internal::v1::ReshardPlan> Plan(const std::string& change_log_id,
                                                 int32_t source_shard_id);

  void StartCoordinator();

 private:
  struct OpRecord;  // a row of reshard_operations
  absl::StatusOr<std::vector<OpRecord>> LoadActive();
  absl::StatusOr<OpRecord> Load(const std::string& change_log_id);
  absl::Status SetPhase(const std::string& id, const std::string& phase, const std::string& error);
  void CoordinatorLoop();
  absl::Status Advance(const OpRecord& op);
  absl::Status CatchUp(const OpRecord& op, const std::set<int32_t>& copied, bool* all_caught_up);
  absl::Status Switch(const OpRecord& op);
  // Sleeps `hold` (test fault injection; a no-op when zero), logging where.
  void TestingHold(const OpRecord& op, absl::Duration hold, const char* where);
  absl::Status CleanUp(const OpRecord& op);
  // One topology transaction: the table's shard records of `dropped_status`
  // removed, the operation in its final `phase` (complete / failed).
  absl::Status EndOperation(const OpRecord& op, const char* dropped_status,
                            const std::string& phase, const std::string& error);
  // Deletes the rows of `shard_ids` on their nodes, kDeleteBlockRows per
  // transaction.
  absl::Status DeleteShardRows(const Snapshot& snapshot, const TableMeta& table,
                               const std::vector<int32_t>& shard_ids);
  static constexpr int kDeleteBlockRows = 5000;
  // Rows per read of a checksum pass in the switch.
  static constexpr int kChecksumBlockRows = 20000;
  absl::Status Fail(const OpRecord& op, const std::string& error);
  absl::Time StorageDeadline() const { return absl::Now() + options_.storage_timeout; }

  TopologyStore* const store_;
  StorageClient* const storage_;
  JobQueue* const jobs_;
  IndexManager* const indexes_;
  WriteGate* const gate_;
  TableOperations* const tables_;
  const ReshardOptions options_;

  std::mutex mu_;
  // Per operation: sources fenced (their copy done; the conductor applies
  // their changes now), the last change applied per source, and sources
  // caught up. In memory: after a restart they are rebuilt (fencing and
  // catch-up are idempotent).
  std::map<std::string, std::set<int32_t>> fenced_;                // GUARDED_BY(mu_)
  std::map<std::string, std::map<int32_t, int64_t>> applied_seq_;  // GUARDED_BY(mu_)
  // Operations Start() is still setting up (the coordinator leaves them be;
  // a pending operation not in here was cut short by a crash).
  std::set<std::string> starting_;  // GUARDED_BY(mu_)
  // Switches rolled back in a row, and when the next may be tried.
  std::map<std::string, std::pair<int, absl::Time>> switch_backoff_;  // GUARDED_BY(mu_)
  std::condition_variable cv_;
  bool stopping_ = false;  // GUARDED_BY(mu_)
  std::thread coordinator_;
};

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_RESHARD_RESHARD_MANAGER_H_
