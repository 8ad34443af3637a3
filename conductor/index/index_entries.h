// IndexEntryStore: the value → shard entries of every virtual index, in a
// SQLite file of their own next to the topology store (DATA_DIR/
// index_entries.db). Entries change on every indexed write, so they are kept
// out of the topology file (whose transactions are few and fully synced).
//
// Every entry carries a sequence number: the id of the write that added it,
// or the scan sequence of the last shard scan that confirmed it. A shard
// scan with sequence c removes the shard's entries older than c that it did
// not confirm (DeleteOlderThan), which is how entries of deleted or changed
// rows disappear. See docs/indexes.md.
//
// The file is written with synchronous=NORMAL: it survives a crash of the
// conductor process, and the conductor recounts every index on start
// anyway, so losing the last commits to a power failure costs a recount,
// never a wrong answer.
//
// Thread-safe: writes are serialised on one connection, lookups use another,
// counts a third.
#ifndef CONDUCTOR_CONDUCTOR_INDEX_INDEX_ENTRIES_H_
#define CONDUCTOR_CONDUCTOR_INDEX_INDEX_ENTRIES_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/sqlite.h"

namespace conductor {

struct IndexEntry {
  std::string key;  // EncodeIndexKey
  int32_t shard_id = 0;
};

class IndexEntryStore {
 public:
  // Opens or creates the file at `path`.
  static absl::StatusOr<std::unique_ptr<IndexEntryStore>> Open(const std::string& path);

  // Adds `entries` to index `index_id` with sequence `seq`; an entry that
  // exists keeps the larger of its sequence and `seq`. One transaction.
  absl::Status Add(int64_t index_id, const std::vector<IndexEntry>& entries, int64_t seq);

  // The shards that entries of `keys` name.
  absl::StatusOr<std::set<int32_t>> Lookup(int64_t index_id, const std::vector<std::string>& keys);
  // The same, key by key (keys without entries are absent).
  absl::StatusOr<std::map<std::string, std::set<int32_t>>> LookupEach(
      int64_t index_id, const std::vector<std::string>& keys);

  // Removes the entries of (index_id, shard_id) whose sequence is below
  // `seq`; returns how many.
  absl::StatusOr<int64_t> DeleteOlderThan(int64_t index_id, int32_t shard_id, int64_t seq);

  // Removes every entry of the index.
  absl::Status DropIndex(int64_t index_id);

  // The number of entries of the index.
  absl::StatusOr<int64_t> Count(int64_t index_id);

  // The largest sequence ever used: over the entries and the recorded
  // high-water mark. Sequences handed out after a restart start above it.
  absl::StatusOr<int64_t> MaxSeq();
  // Records that sequences up to `seq` have been handed out.
  absl::Status RaiseHighWater(int64_t seq);

 private:
  IndexEntryStore(std::unique_ptr<Database> writer, std::unique_ptr<Database> reader,
                  std::unique_ptr<Database> counter)
      : writer_(std::move(writer)), reader_(std::move(reader)), counter_(std::move(counter)) {}
  absl::Status InTransaction(const std::function<absl::Status()>& body);

  std::mutex write_mu_;
  std::unique_ptr<Database> writer_;  // GUARDED_BY(write_mu_)
  std::mutex read_mu_;
  std::unique_ptr<Database> reader_;  // GUARDED_BY(read_mu_)
  std::mutex count_mu_;
  std::unique_ptr<Database> counter_;  // GUARDED_BY(count_mu_)
};

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_INDEX_INDEX_ENTRIES_H_
