// IndexManager: keeps virtual index entries true while clients write
// (DESIGN.md §5 CREATE INDEX; docs/indexes.md has the whole argument).
//
// The invariant: for a building or ready index, every (value, shard) that a
// row holds has an entry, or the shard is marked *dirty* (routing then
// includes it whatever the value). Extra entries are allowed but must go.
//
//  - Every data write takes a Write ticket (a sequence number) before it
//    reads the topology snapshot, and gives it back when it is answered.
//  - INSERT adds the entries of its rows (as SQLite stored them) before any
//    node is written, with the write's sequence number.
//  - UPDATE of an indexed column marks its target shards dirty before it is
//    sent; DELETE, REPLACE and upserts mark them *stale* (extra entries may
//    exist). Dirty and stale shards get a recount job.
//  - A shard scan (build or recount) starts with BeginScan: it takes a new
//    sequence number c and waits for every write with a smaller number to
//    finish, so the scan sees all their rows. The scan confirms each tuple it
//    finds with c; FinishScan deletes the shard's entries below c (neither
//    confirmed nor added by a later write) and clears the marks older than c.
//
// Dirty/stale marks live in memory. At start every shard of every
// maintained index is marked, so a crash costs a recount, never a wrong
// answer. Sequence numbers survive restarts (IndexEntryStore::MaxSeq).
//
// UNIQUE indexes: an INSERT locks its keys (in the conductor), then checks
// every shard that an entry or a dirty mark names by reading the row on its
// node; a value held by another row fails the write with UNIQUE_VIOLATION
// before anything is written. Concurrent inserts of one value serialise on
// the key lock, so exactly one wins.
//
// Thread-safe.
#ifndef CONDUCTOR_CONDUCTOR_INDEX_INDEX_MANAGER_H_
#define CONDUCTOR_CONDUCTOR_INDEX_INDEX_MANAGER_H_

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "conductor/index/index_entries.h"
#include "conductor/planner/query_planner.h"
#include "conductor/storage/storage_client.h"
#include "conductor/topo/job_queue.h"
#include "conductor/topo/topology_store.h"

namespace conductor {

struct IndexManagerOptions {
  // Upper bound on one round of storage calls (unique checks).
  absl::Duration storage_timeout = absl::Seconds(10);
  // How often dirty and stale shards are looked at to schedule recounts.
  absl::Duration recount_interval = absl::Milliseconds(200);
  // How long after a failed recount job the shard is tried again.
  absl::Duration recount_retry_delay = absl::Seconds(2);
  // A write whose outcome is unknown stays in flight (holding its unique
  // locks) for storage_timeout plus this, after which no node can still
  // commit it.
  absl::Duration unknown_outcome_grace = absl::Seconds(5);
};

// What ListIndexes shows besides the topology record.
struct IndexCounts {
  int64_t entry_count = 0;
  int32_t stale_shards = 0;
};

class IndexManager : public IndexResolver {
 public:
  static constexpr char kBuildJobKind[] = "IndexBuildJob";
  static constexpr char kRecountJobKind[] = "IndexRecountJob";
  // ErrorInfo reason of the FAILED_PRECONDITION for a scan sequence number
  // this conductor never handed out (its entry file was replaced): the
  // worker begins that shard's scan again.
  static constexpr char kScanRestartReason[] = "SCAN_RESTART";
  // The job-queue operation of an index's jobs ("index:<id>").
  static std::string Operation(int64_t index_id);
  // The payload of a build or recount job (IndexJobPayload).
  static std::string JobPayload(int64_t index_id, const std::vector<int32_t>& shard_ids);

  // The pointers must outlive the manager.
  IndexManager(TopologyStore* store, StorageClient* storage, JobQueue* jobs,
               std::unique_ptr<IndexEntryStore> entries, IndexManagerOptions options = {});
  // Stops the recount scheduler.
  ~IndexManager();
  IndexManager(const IndexManager&) = delete;
  IndexManager& operator=(const IndexManager&) = delete;

  // Continues the sequence numbers from the entry store, marks every shard
  // of every maintained index for a recount, and registers the build job's
  // completion hook (ready / failed). Call once, before serving.
  absl::Status Init();
  // Starts the thread that schedules recount jobs.
  void StartScheduler();

  // A data write in flight. Give it back by destroying it; call
  // set_succeeded() first when every shard statement succeeded (a failed
  // write that added entries gets its shards recounted).
  class Write {
   public:
    ~Write();
    Write(const Write&) = delete;
    Write& operator=(const Write&) = delete;
    int64_t seq() const { return seq_; }
    void set_succeeded() { succeeded_ = true; }
    // The write failed in a way that leaves its outcome open (deadline,
    // node unreachable mid-call): a node may still commit it.
    void set_outcome_unknown() { outcome_unknown_ = true; }

   private:
    friend class IndexManager;
    Write(IndexManager* manager, int64_t seq) : manager_(manager), seq_(seq) {}
    IndexManager* const manager_;
    const int64_t seq_;
    bool succeeded_ = false;
    bool outcome_unknown_ = false;
    std::vector<std::string> locks_;                      // unique keys held
    std::vector<std::pair<int64_t, int32_t>> entries_on;  // (index, shard) given entries
  };

  // Ends the hold of writes with an unknown outcome whose time is up;
  // returns how many. The scheduler calls it; tests may too.
  int ReleaseSettledWrites(absl::Time now);

  // Takes a ticket. Call before reading the topology snapshot the write is
  // planned with (the ordering BeginScan's drain relies on).
  std::unique_ptr<Write> BeginWrite();

  // Does what the maintained indexes of `table` need before `plan` (a write)
  // is sent: unique checks, entries, marks. Errors: ALREADY_EXISTS
  // (UNIQUE_VIOLATION) naming the value; UNIMPLEMENTED for writes whose
  // uniqueness cannot be checked (see docs/indexes.md); UNAVAILABLE /
  // DEADLINE_EXCEEDED from the storage reads of a unique check.
  absl::Status PrepareWrite(Write& write, const TableMeta& table, const QueryPlan& plan,
                            absl::Time deadline);

  // IndexResolver: entries of `tuples` plus the index's dirty shards.
  absl::StatusOr<std::vector<int32_t>> ShardsFor(
      const TableMeta& table, const IndexMeta& index,
      const std::vector<std::vector<Value>>& tuples) const override;

  // Shard scans (the IndexBuildService RPCs). BeginScan returns the scan's
  // sequence number once every earlier write has finished (DEADLINE_EXCEEDED
  // if that takes past `deadline`). NOT_FOUND (INDEX_NOT_FOUND) for an index
  // that is gone or not maintained, or a shard the table does not have.
  absl::StatusOr<int64_t> BeginScan(int64_t index_id, int32_t shard_id, absl::Time deadline);
  // Records the tuples found; for a UNIQUE index, ALREADY_EXISTS
  // (UNIQUE_VIOLATION) when another shard holds one of them.
  absl::Status AddScanned(int64_t index_id, int32_t shard_id, int64_t seq,
                          const std::vector<std::vector<Value>>& tuples, absl::Time deadline);
  absl::Status FinishScan(int64_t index_id, int32_t shard_id, int64_t seq);

  // Marks shards to be scanned (a new index: all its shards, so that unique
  // checks look there until the build has been through them).
  void MarkDirty(int64_t index_id, const std::vector<int32_t>& shard_ids);
  // Removes an index's entries and marks (after DROP INDEX / DROP TABLE).
  absl::Status Forget(int64_t index_id);
  // Removes the entries and marks of one shard (retired by a reshard).
  absl::Status ForgetShard(int64_t index_id, int32_t shard_id);
  // entry_count may miss entries added in the last second (counting scans
  // the entries, so it is cached; a finished scan refreshes it).
  IndexCounts Counts(int64_t index_id) const;

 private:
  struct Mark {
    int64_t dirty_seq = -1;  // >= 0: routing must include the shard
    int64_t stale_seq = -1;  // >= 0: extra entries may exist
    int64_t job_id = 0;      // the recount job scheduled, 0 = none
    int failures = 0;        // recount jobs failed in a row
    absl::Time retry_after = absl::InfinitePast();
    bool NeedsScan() const { return dirty_seq >= 0 || stale_seq >= 0; }
  };
  using ShardKey = std::pair<int64_t, int32_t>;  // (index_id, shard_id)

  void EndWrite(Write* write);
  // Drops the cached entry count (after a scan removed entries).
  void ForgetCount(int64_t index_id) const;
  // The index's shards marked dirty.
  std::set<int32_t> DirtyShards(int64_t index_id) const;
  absl::Status CheckScanSeq(int64_t seq);
  void MarkLocked(int64_t index_id, int32_t shard_id, int64_t seq, bool dirty);
  // Takes the keys' locks (sorted) into `write`, waiting until `deadline`.
  absl::Status LockKeys(Write& write, std::vector<std::string> keys, absl::Time deadline);
  // A row being written with a key of a unique index.
  struct NewRow {
    int32_t shard_id = 0;
    std::vector<Value> tuple;        // the index columns' values
    std::vector<Value> primary_key;  // the row's primary key values
  };
  // Fails with UNIQUE_VIOLATION when a row other than the one being written
  // holds one of the keys of `rows`. A row on the writer's own shard is not
  // a conflict for REPLACE (SQLite replaces it there) nor, with the same
  // primary key, for an upsert (it becomes the update).
  absl::Status CheckUnique(const TableMeta& table, const IndexMeta& index,
                           const std::map<std::string, NewRow>& rows, const std::string& conflict,
                           bool upsert, absl::Time deadline);
  // Whether a row of `shard_id` holds `tuple` in the index's columns.
  absl::StatusOr<bool> ShardHolds(const TableMeta& table, const IndexMeta& index, int32_t shard_id,
                                  const std::vector<Value>& tuple, absl::Time deadline);
  void SchedulerLoop();
  void ScheduleRecounts();

  TopologyStore* const store_;
  StorageClient* const storage_;
  JobQueue* const jobs_;
  const std::unique_ptr<IndexEntryStore> entries_;
  const IndexManagerOptions options_;

  // Writes in flight, by sequence number; BeginScan waits on drain_cv_.
  std::mutex flight_mu_;
  std::condition_variable drain_cv_;
  int64_t next_seq_ = 1;         // GUARDED_BY(flight_mu_)
  std::set<int64_t> in_flight_;  // GUARDED_BY(flight_mu_)
  // Writes with an unknown outcome, held in flight until release_at.
  struct Zombie {
    int64_t seq;
    std::vector<std::string> locks;
    absl::Time release_at;
  };
  std::vector<Zombie> zombies_;  // GUARDED_BY(flight_mu_)

  mutable std::mutex marks_mu_;
  std::map<ShardKey, Mark> marks_;  // GUARDED_BY(marks_mu_)

  // Entry counts for Counts(), each good until its time (counting is a scan).
  static constexpr absl::Duration kCountCacheTime = absl::Seconds(1);
  mutable std::mutex counts_mu_;
  mutable std::map<int64_t, std::pair<int64_t, absl::Time>>
      entry_counts_;  // GUARDED_BY(counts_mu_)

  std::mutex locks_mu_;
  std::condition_variable locks_cv_;
  std::set<std::string> locked_;  // GUARDED_BY(locks_mu_)

  std::mutex scheduler_mu_;
  std::condition_variable scheduler_cv_;
  bool stopping_ = false;                         // GUARDED_BY(scheduler_mu_)
  absl::Time next_purge_ = absl::InfinitePast();  // scheduler thread only
  std::thread scheduler_;
};

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_INDEX_INDEX_MANAGER_H_
