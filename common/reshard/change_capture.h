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
#ifndef CONDUCTOR_COMMON_RESHARD_CHANGE_CAPTURE_H_
#define CONDUCTOR_COMMON_RESHARD_CHANGE_CAPTURE_H_

#include <cstdint>
#include <string>
#include <vector>

namespace conductor::reshard {

// The changes table of physical table `table`:
//   "_conductor_changes_<table>" (seq INTEGER PRIMARY KEY AUTOINCREMENT,
//                                 shard INTEGER NOT NULL, <primary key columns>)
std::string ChangesTable(const std::string& table);

// Statements (one write batch) that create the changes table and the three
// triggers capturing writes to rows of `shard_ids`: INSERT records the new
// key, DELETE the old, UPDATE both. Idempotent; switching capture on again
// with other shard ids replaces the triggers.
std::vector<std::string> EnableCaptureSql(const std::string& table,
                                          const std::vector<std::string>& primary_key,
                                          const std::vector<int32_t>& shard_ids);

// Statements that drop the triggers and the changes table. Idempotent.
std::vector<std::string> DisableCaptureSql(const std::string& table);

// Reads captured changes after a sequence number, oldest first:
//   SELECT seq, shard, <primary key columns> FROM <changes> WHERE seq > ?1
//   ORDER BY seq LIMIT ?2
std::string ReadChangesSql(const std::string& table, const std::vector<std::string>& primary_key);

// Forgets the changes up to a sequence number (applied): DELETE … WHERE seq <= ?1.
std::string TrimChangesSql(const std::string& table);

}  // namespace conductor::reshard

#endif  // CONDUCTOR_COMMON_RESHARD_CHANGE_CAPTURE_H_
