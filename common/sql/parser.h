// Classifies one SQL statement sent to the conductor and extracts what the
// conductor needs to act on it. Table operations are parsed completely; data
// statements (SELECT/INSERT/UPDATE/DELETE) are recognised and their table
// named, and later analysis lives with the router.
#ifndef CONDUCTOR_COMMON_SQL_PARSER_H_
#define CONDUCTOR_COMMON_SQL_PARSER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace conductor::sql {

enum class StatementKind {
  kCreateTable,      // CREATE TABLE [IF NOT EXISTS] t (…) [/* SHARDS=n */]
  kDropTable,        // DROP TABLE [IF EXISTS] t
  kRenameTable,      // ALTER TABLE t RENAME TO u
  kSetBlockSize,     // ALTER TABLE t MODIFY BLOCK_SIZE n
  kShowTables,       // SHOW TABLES
  kDescribeTable,    // DESCRIBE [TABLE] t   (also DESC t)
  kTableStats,       // SELECT * FROM TABLE_STATS('t')
  kReshardTable,     // PRAGMA reshardTable('t', n)
  kReshardStatus,    // PRAGMA reshardStatus('id')
  kCreateIndex,      // CREATE [UNIQUE] INDEX [IF NOT EXISTS] i ON t (c, …)
  kDropIndex,        // DROP INDEX [IF EXISTS] i
  kShowIndexes,      // SHOW INDEXES [FROM t]   (also SHOW INDEX)
  kSelect,           // SELECT … / WITH … SELECT …
  kInsert,           // INSERT / REPLACE
  kUpdate,
  kDelete,
  kExplain,          // EXPLAIN <statement>; `explained` holds the inner statement
};

// The name of the kind for messages ("CREATE TABLE", "SELECT", …).
const char* StatementKindName(StatementKind kind);

struct ParsedStatement {
  StatementKind kind;
  // The table the statement is about (unquoted). Empty for SHOW TABLES,
  // reshardStatus, DROP INDEX and SHOW INDEXES without FROM.
  std::string table;
  bool if_not_exists = false;  // CREATE TABLE / CREATE INDEX
  bool if_exists = false;      // DROP TABLE / DROP INDEX
  // kRenameTable: the new name.
  std::string new_name;
  // kSetBlockSize: the block size; kReshardTable: the shard count. The value
  // as written (range checks belong to the caller, which knows the limits).
  int64_t number = 0;
  // kCreateTable: n from a /* SHARDS=n */ comment anywhere in the statement.
  std::optional<int64_t> shards_hint;
  // kReshardStatus: the change_log_id.
  std::string change_log_id;
  // kCreateIndex / kDropIndex: the index name; kCreateIndex: its columns
  // (ASC/DESC accepted and dropped). DROP INDEX i ON t also sets `table`.
  std::string index_name;
  std::vector<std::string> columns;
  bool unique = false;
  // kExplain: the statement being explained (its own kind, table, …). The
  // outer statement's `table` repeats the inner one's.
  std::vector<ParsedStatement> explained;
};

// Parses exactly one statement (a trailing ';' and comments are fine).
// Errors, all with a message a person can act on:
//   INVALID_ARGUMENT / SQL_SYNTAX      — malformed statement, several statements,
//                                        empty input, a bad or schema-qualified name
//                                        (only "main." is accepted and dropped)
//   UNIMPLEMENTED / UNSUPPORTED_STATEMENT — valid SQL the product does not
//     support: ALTER TABLE ADD/DROP/RENAME COLUMN (the message lists what ALTER
//     supports), CREATE TEMP TABLE, CREATE TABLE … AS SELECT, CREATE VIEW /
//     TRIGGER / VIRTUAL TABLE, other PRAGMAs, ATTACH, VACUUM, BEGIN/COMMIT/
//     ROLLBACK/SAVEPOINT (multi-statement transactions), partial or expression
//     indexes (CREATE INDEX … WHERE, or on expressions).
absl::StatusOr<ParsedStatement> ParseStatement(absl::string_view sql);

// Checks a table, index or column name given outside SQL (typed RPCs):
// non-empty, at most 128 bytes, valid UTF-8, no NUL or control characters,
// not starting with "sqlite_" (reserved by SQLite), not "_virtualShard"
// (any case). `what` names it in the message ("table name").
// INVALID_ARGUMENT / INVALID_ARGUMENT reason on failure.
absl::Status ValidateName(absl::string_view name, absl::string_view what);

}  // namespace conductor::sql

#endif  // CONDUCTOR_COMMON_SQL_PARSER_H_
