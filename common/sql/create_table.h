// CREATE TABLE analysis and the _virtualShard rewrite (DESIGN.md §2).
//
// SQLite's own parser is the judge of validity: the user's statement is run
// against a private in-memory database first, and metadata (columns, primary
// key order, UNIQUE constraints) is read back from SQLite with PRAGMAs. The
// token-level rewrite then produces the physical statement sent to storage
// nodes, which is itself checked the same way.
#ifndef CONDUCTOR_COMMON_SQL_CREATE_TABLE_H_
#define CONDUCTOR_COMMON_SQL_CREATE_TABLE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace conductor::sql {

// The hidden routing column on every storage node.
inline constexpr char kVirtualShardColumn[] = "_virtualShard";

struct ColumnSchema {
  std::string name;
  std::string type;           // declared type as written ("" when none)
  bool not_null = false;      // as the user declared it (as SQLite reports it:
                              // WITHOUT ROWID key columns are always NOT NULL)
  std::string default_value;  // DEFAULT expression text, "" when none
  int primary_key_position = 0;  // 1-based position in the PK, 0 = not in PK
  bool generated = false;        // GENERATED ALWAYS AS (…): never written by INSERT
  std::string collation = "BINARY";  // the column's collating sequence
};

struct TableSchema {
  std::string name;  // unquoted, as written
  std::vector<ColumnSchema> columns;  // user columns, in order
  std::vector<std::string> primary_key;  // user PK columns, in key order
  // Column sets of UNIQUE constraints (column- and table-level), in order.
  // Cluster-wide uniqueness for these is the job of UNIQUE virtual indexes.
  // Duplicates, and a UNIQUE that only repeats the primary key, are left out.
  std::vector<std::vector<std::string>> unique_constraints;
  bool without_rowid = false;
  bool if_not_exists = false;
  std::optional<int64_t> shards_hint;  // /* SHARDS=n */
  // The user's statement, as sent (trimmed of a trailing ';').
  std::string user_sql;
  // The statement to run on storage nodes: always CREATE TABLE IF NOT EXISTS,
  // with `_virtualShard INTEGER NOT NULL DEFAULT 0` added after the last user
  // column, the primary key rewritten to (_virtualShard, pk…) as a table
  // constraint (ordering, collation and conflict clause kept), every UNIQUE
  // constraint rewritten to lead with _virtualShard, the user's PK columns made
  // NOT NULL (a NULL key can be neither routed nor matched), and everything
  // else — types, defaults, CHECKs, COLLATE, generated columns, WITHOUT ROWID,
  // STRICT, comments — preserved.
  std::string physical_sql;
};

// Analyses one CREATE TABLE statement. Errors:
//   INVALID_ARGUMENT / SQL_SYNTAX: not valid SQLite (SQLite's message quoted),
//     no PRIMARY KEY, a column named _virtualShard (any case), AUTOINCREMENT
//     (a cluster-wide counter does not exist), a reserved table name.
//   UNIMPLEMENTED / UNSUPPORTED_STATEMENT: TEMP tables, CREATE TABLE … AS SELECT.
absl::StatusOr<TableSchema> AnalyzeCreateTable(absl::string_view sql);

}  // namespace conductor::sql

#endif  // CONDUCTOR_COMMON_SQL_CREATE_TABLE_H_
