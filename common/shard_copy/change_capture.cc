#include "common/shard_copy/change_capture.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/sql/create_table.h"
#include "common/sqlite.h"

namespace conductor::shard_copy {
namespace {

std::string Trigger(const std::string& table, const char* event) {
  return QuoteIdentifier(absl::StrCat("_conductor_capture_", event, "_", table));
}

// INSERT INTO changes (shard, pk…) VALUES (<row>._virtualShard, <row>.pk…);
std::string RecordRow(const std::string& table, const std::vector<std::string>& primary_key,
                      const char* row) {
  std::vector<std::string> columns = {"shard"};
  std::vector<std::string> values = {absl::StrCat(row, ".", sql::kVirtualShardColumn)};
  for (const auto& column : primary_key) {
    columns.push_back(QuoteIdentifier(column));
    values.push_back(absl::StrCat(row, ".", QuoteIdentifier(column)));
  }
  return absl::StrCat("INSERT INTO ", QuoteIdentifier(ChangesTable(table)), " (",
                      absl::StrJoin(columns, ", "), ") VALUES (", absl::StrJoin(values, ", "),
                      ");");
}

// The per-shard row counters follow every row a write adds or removes.
std::string CountRow(const std::string& table, const char* row, const char* delta) {
  return absl::StrCat("UPDATE ", QuoteIdentifier(CountsTable(table)), " SET n = n ", delta,
                      " 1 WHERE shard = ", row, ".", sql::kVirtualShardColumn, ";");
}

}  // namespace

std::string CountsTable(const std::string& table) {
  return absl::StrCat("_conductor_counts_", table);
}

std::string ReadCountsSql(const std::string& table) {
  return absl::StrCat("SELECT shard, n FROM ", QuoteIdentifier(CountsTable(table)));
}

std::string ChangesTable(const std::string& table) {
  return absl::StrCat("_conductor_changes_", table);
}

std::vector<std::string> EnableCaptureSql(const std::string& table,
                                          const std::vector<std::string>& primary_key,
                                          const std::vector<int32_t>& shard_ids) {
  std::vector<std::string> key_columns;
  for (const auto& column : primary_key) key_columns.push_back(QuoteIdentifier(column));
  std::vector<std::string> statements = DisableCaptureSql(table);
  statements.erase(statements.end() - 1);  // keep the changes table (and what it holds)
  statements.push_back(
      absl::StrCat("CREATE TABLE IF NOT EXISTS ", QuoteIdentifier(ChangesTable(table)),
                   " (seq INTEGER PRIMARY KEY AUTOINCREMENT, shard INTEGER NOT NULL, ",
                   absl::StrJoin(key_columns, ", "), ")"));
  std::string ids = absl::StrJoin(shard_ids, ", ");
  if (ids.empty()) ids = "NULL";
  const std::string quoted = QuoteIdentifier(table);
  const std::string vs = sql::kVirtualShardColumn;
  // The counters start from exact counts, in the transaction that creates
  // the triggers: no write can fall between the two.
  const std::string counts = QuoteIdentifier(CountsTable(table));
  statements.push_back(absl::StrCat("CREATE TABLE IF NOT EXISTS ", counts,
                                    " (shard INTEGER PRIMARY KEY, n INTEGER NOT NULL)"));
  statements.push_back(absl::StrCat("DELETE FROM ", counts));
  for (int32_t id : shard_ids) {
    statements.push_back(absl::StrCat("INSERT INTO ", counts, " (shard, n) SELECT ", id,
                                      ", count(*) FROM ", quoted, " WHERE ", vs, " = ", id));
  }
  statements.push_back(absl::StrCat("CREATE TRIGGER ", Trigger(table, "insert"),
                                    " AFTER INSERT ON ", quoted, " WHEN NEW.", vs, " IN (", ids,
                                    ") BEGIN ", RecordRow(table, primary_key, "NEW"), " ",
                                    CountRow(table, "NEW", "+"), " END"));
  statements.push_back(absl::StrCat("CREATE TRIGGER ", Trigger(table, "delete"),
                                    " AFTER DELETE ON ", quoted, " WHEN OLD.", vs, " IN (", ids,
                                    ") BEGIN ", RecordRow(table, primary_key, "OLD"), " ",
                                    CountRow(table, "OLD", "-"), " END"));
  statements.push_back(
      absl::StrCat("CREATE TRIGGER ", Trigger(table, "update"), " AFTER UPDATE ON ", quoted,
                   " WHEN OLD.", vs, " IN (", ids, ") OR NEW.", vs, " IN (", ids, ") BEGIN ",
                   RecordRow(table, primary_key, "OLD"), " ", RecordRow(table, primary_key, "NEW"),
                   " ", CountRow(table, "OLD", "-"), " ", CountRow(table, "NEW", "+"), " END"));
  return statements;
}

std::vector<std::string> DisableCaptureSql(const std::string& table) {
  return {absl::StrCat("DROP TRIGGER IF EXISTS ", Trigger(table, "insert")),
          absl::StrCat("DROP TRIGGER IF EXISTS ", Trigger(table, "delete")),
          absl::StrCat("DROP TRIGGER IF EXISTS ", Trigger(table, "update")),
          absl::StrCat("DROP TABLE IF EXISTS ", QuoteIdentifier(CountsTable(table))),
          absl::StrCat("DROP TABLE IF EXISTS ", QuoteIdentifier(ChangesTable(table)))};
}

std::string ReadChangesSql(const std::string& table, const std::vector<std::string>& primary_key) {
  std::vector<std::string> columns = {"seq", "shard"};
  for (const auto& column : primary_key) columns.push_back(QuoteIdentifier(column));
  return absl::StrCat("SELECT ", absl::StrJoin(columns, ", "), " FROM ",
                      QuoteIdentifier(ChangesTable(table)),
                      " WHERE seq > ?1 ORDER BY seq LIMIT ?2");
}

std::string TrimChangesSql(const std::string& table) {
  return absl::StrCat("DELETE FROM ", QuoteIdentifier(ChangesTable(table)), " WHERE seq <= ?1");
}

std::string ReadShardChangesSql(const std::string& table,
                                const std::vector<std::string>& primary_key) {
  std::vector<std::string> columns = {"seq", "shard"};
  for (const auto& column : primary_key) columns.push_back(QuoteIdentifier(column));
  return absl::StrCat("SELECT ", absl::StrJoin(columns, ", "), " FROM ",
                      QuoteIdentifier(ChangesTable(table)),
                      " WHERE seq > ?1 AND shard = ?3 ORDER BY seq LIMIT ?2");
}

std::string TrimShardChangesSql(const std::string& table) {
  return absl::StrCat("DELETE FROM ", QuoteIdentifier(ChangesTable(table)),
                      " WHERE seq <= ?1 AND shard = ?2");
}

std::string FenceTable(const std::string& table) {
  return absl::StrCat("_conductor_fence_", table);
}

std::string CreateFenceSql(const std::string& table) {
  return absl::StrCat("CREATE TABLE IF NOT EXISTS ", QuoteIdentifier(FenceTable(table)),
                      " (source INTEGER PRIMARY KEY, attempt INTEGER NOT NULL)");
}

std::string RaiseFenceSql(const std::string& table) {
  return absl::StrCat("INSERT INTO ", QuoteIdentifier(FenceTable(table)),
                      " (source, attempt) VALUES (?1, ?2) ON CONFLICT (source) DO UPDATE SET "
                      "attempt = max(attempt, excluded.attempt)");
}

std::string FenceGuardSql(const std::string& table) {
  return absl::StrCat("SELECT CASE WHEN (SELECT attempt FROM ", QuoteIdentifier(FenceTable(table)),
                      " WHERE source = ?1) = ?2 THEN 1 ELSE abs(-9223372036854775807 - 1) END");
}

std::string DropFenceSql(const std::string& table) {
  return absl::StrCat("DROP TABLE IF EXISTS ", QuoteIdentifier(FenceTable(table)));
}

}  // namespace conductor::shard_copy
