// Change capture for online resharding (DESIGN.md §5 RESHARD, copying):
// SQLite triggers on a storage node record the primary key of every row
// that a write touches in the source shards, in a changes table, inside the
// writer's own transaction — so no committed write can escape the capture.
// Catch-up then re-reads the current source row of each captured key.
//
// Only SQL text lives here: the conductor sends it through ExecuteBatch (the
// node knows nothing of resharding). The node's writer runs with
// recursive_triggers on, so rows that INSERT OR REPLACE removes through
// another UNIQUE constraint are captured too.
#ifndef CONDUCTOR_COMMON_SHARD_COPY_CHANGE_CAPTURE_H_
#define CONDUCTOR_COMMON_SHARD_COPY_CHANGE_CAPTURE_H_

#include <cstdint>
#include <string>
#include <vector>

namespace conductor::shard_copy {

// The changes table of physical table `table`:
//   "_conductor_changes_<table>" (seq INTEGER PRIMARY KEY AUTOINCREMENT,
//                                 shard INTEGER NOT NULL, <primary key columns>)
std::string ChangesTable(const std::string& table);

// The row counters of the captured shards of physical table `table`:
//   "_conductor_counts_<table>" (shard INTEGER PRIMARY KEY, n INTEGER NOT NULL)
// kept by the capture triggers in the writer's transaction, so that the
// switch reads a source shard's row count at once instead of counting it.
std::string CountsTable(const std::string& table);
//   SELECT shard, n FROM <counts>
std::string ReadCountsSql(const std::string& table);

// Statements (one write batch) that create the changes table and the three
// triggers capturing writes to rows of `shard_ids`: INSERT records the new
// key, DELETE the old, UPDATE both; and the counters of `shard_ids`, set to
// their exact row counts and then kept by the same triggers. Idempotent;
// switching capture on again with other shard ids replaces the triggers and
// recounts.
std::vector<std::string> EnableCaptureSql(const std::string& table,
                                          const std::vector<std::string>& primary_key,
                                          const std::vector<int32_t>& shard_ids);

// Statements that drop the triggers, the counters and the changes table.
// Idempotent.
std::vector<std::string> DisableCaptureSql(const std::string& table);

// Reads captured changes after a sequence number, oldest first:
//   SELECT seq, shard, <primary key columns> FROM <changes> WHERE seq > ?1
//   ORDER BY seq LIMIT ?2
std::string ReadChangesSql(const std::string& table, const std::vector<std::string>& primary_key);

// Forgets the changes up to a sequence number (applied): DELETE … WHERE seq <= ?1.
std::string TrimChangesSql(const std::string& table);

// The same for one source shard. Several source shards of a table can live on
// one node and share its changes table, and each is caught up on its own: a
// catch-up must neither skip nor forget another shard's changes.
//   SELECT seq, shard, <primary key columns> FROM <changes>
//   WHERE seq > ?1 AND shard = ?3 ORDER BY seq LIMIT ?2
std::string ReadShardChangesSql(const std::string& table,
                                const std::vector<std::string>& primary_key);
//   DELETE FROM <changes> WHERE seq <= ?1 AND shard = ?2
std::string TrimShardChangesSql(const std::string& table);

// Fencing of copy attempts on a target node: each ReshardTableJob attempt
// raises the fence of its source shard to its attempt number, and every
// batch it writes starts with the guard, which fails the whole batch
// (integer overflow) unless the fence still holds that attempt. The
// conductor raises the fence to kFenceClosed before it applies changes
// itself, so a stale worker can never overwrite a newer row.
inline constexpr int64_t kFenceClosed = INT64_MAX;
std::string FenceTable(const std::string& table);
// CREATE TABLE IF NOT EXISTS <fence> (source INTEGER PRIMARY KEY, attempt INTEGER NOT NULL)
std::string CreateFenceSql(const std::string& table);
// Raises the fence of source ?1 to ?2 (never lowers it).
std::string RaiseFenceSql(const std::string& table);
// The guard: binds ?1 = source, ?2 = attempt.
std::string FenceGuardSql(const std::string& table);
std::string DropFenceSql(const std::string& table);

}  // namespace conductor::shard_copy

#endif  // CONDUCTOR_COMMON_SHARD_COPY_CHANGE_CAPTURE_H_
