#include "common/sql/create_table.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/errors.h"
#include "common/sql/create_table_rewrite.h"
#include "common/sql/parse_helpers.h"
#include "common/sql/parser.h"
#include "common/sql/token_cursor.h"
#include "common/sql/tokenizer.h"
#include "common/sqlite.h"

namespace conductor::sql {
namespace {

// No reason constant exists for our own bugs; this matches the one
// ToGrpcStatus would derive from the code.
constexpr char kInternalReason[] = "INTERNAL";

// One row of PRAGMA table_xinfo.
struct PragmaColumn {
  std::string name;
  std::string type;
  bool not_null = false;
  std::string default_value;
  int primary_key = 0;
  int hidden = 0;
};

// A unique index SQLite made for a PRIMARY KEY ("pk") or UNIQUE ("u").
struct UniqueIndex {
  std::string name;
  std::string origin;
  std::vector<std::string> columns;
};

absl::Status InvalidCreate(absl::string_view message) {
  return Error(absl::StatusCode::kInvalidArgument, reason::kSqlSyntax, message);
}

absl::Status RewriteBug(absl::string_view problem, absl::string_view physical_sql) {
  return Error(absl::StatusCode::kInternal, kInternalReason,
               absl::StrCat("CREATE TABLE rewrite failed its self-check (a Conductor bug): ",
                            problem, "; rewritten statement: ", physical_sql));
}

// Runs one CREATE TABLE on a private, empty in-memory database.
absl::StatusOr<std::unique_ptr<Database>> CreateInScratchDatabase(absl::string_view sql) {
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(":memory:");
  if (!db.ok()) return db.status();
  absl::StatusOr<Statement> statement = (*db)->Prepare(sql);
  if (!statement.ok()) return statement.status();
  if (absl::Status status = statement->Run(); !status.ok()) return status;
  return db;
}

absl::StatusOr<std::vector<PragmaColumn>> ReadColumns(Database& db, absl::string_view table) {
  // table_xinfo rather than table_info: the latter hides generated columns.
  absl::StatusOr<Statement> query = db.Prepare(
      "SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?) "
      "ORDER BY cid");
  if (!query.ok()) return query.status();
  if (absl::Status status = query->BindText(1, table); !status.ok()) return status;
  std::vector<PragmaColumn> columns;
  while (true) {
    absl::StatusOr<bool> row = query->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    PragmaColumn column;
    column.name = query->ColumnText(0);
    column.type = query->ColumnText(1);
    column.not_null = query->ColumnInt64(2) != 0;
    column.default_value = query->ColumnIsNull(3) ? "" : query->ColumnText(3);
    column.primary_key = static_cast<int>(query->ColumnInt64(4));
    column.hidden = static_cast<int>(query->ColumnInt64(5));
    columns.push_back(std::move(column));
  }
  return columns;
}

absl::StatusOr<std::vector<std::string>> ReadIndexColumns(Database& db, absl::string_view index) {
  absl::StatusOr<Statement> query =
      db.Prepare("SELECT name FROM pragma_index_info(?) ORDER BY seqno");
  if (!query.ok()) return query.status();
  if (absl::Status status = query->BindText(1, index); !status.ok()) return status;
  std::vector<std::string> columns;
  while (true) {
    absl::StatusOr<bool> row = query->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    columns.push_back(query->ColumnText(0));
  }
  return columns;
}

// SQLite numbers its constraint indexes sqlite_autoindex_<table>_<n> in
// statement order; index_list lists them newest first.
int AutoindexNumber(absl::string_view name) {
  int number = 0;
  size_t underscore = name.rfind('_');
  if (underscore == absl::string_view::npos ||
      !absl::SimpleAtoi(name.substr(underscore + 1), &number)) {
    return 0;
  }
  return number;
}

absl::StatusOr<std::vector<UniqueIndex>> ReadUniqueIndexes(Database& db, absl::string_view table) {
  absl::StatusOr<Statement> query =
      db.Prepare("SELECT name, origin FROM pragma_index_list(?) WHERE \"unique\"");
  if (!query.ok()) return query.status();
  if (absl::Status status = query->BindText(1, table); !status.ok()) return status;
  std::vector<UniqueIndex> indexes;
  while (true) {
    absl::StatusOr<bool> row = query->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    indexes.push_back(UniqueIndex{query->ColumnText(0), query->ColumnText(1), {}});
  }
  for (UniqueIndex& index : indexes) {
    absl::StatusOr<std::vector<std::string>> columns = ReadIndexColumns(db, index.name);
    if (!columns.ok()) return columns.status();
    index.columns = *std::move(columns);
  }
  std::stable_sort(indexes.begin(), indexes.end(), [](const UniqueIndex& a, const UniqueIndex& b) {
    return AutoindexNumber(a.name) < AutoindexNumber(b.name);
  });
  return indexes;
}

bool SameNames(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const std::string& x, const std::string& y) { return SameName(x, y); });
}

// The statement as the user sent it, from its first token to its last
// significant one (so without the ';' and trailing whitespace).
std::string UserSql(const std::vector<Token>& statement) {
  size_t last = 0;
  for (size_t i = 0; i < statement.size() && statement[i].kind != TokenKind::kEnd; ++i) {
    if (statement[i].kind != TokenKind::kWhitespace) last = i;
  }
  const Token& first = statement.front();
  const Token& end = statement[last];
  std::string sql(first.text.data(), end.offset + end.text.size() - first.offset);
  // A trailing -- comment must not swallow whatever a caller appends.
  if (end.kind == TokenKind::kComment && absl::StartsWith(end.text, "--")) sql += "\n";
  return sql;
}

absl::StatusOr<bool> IsWithoutRowid(Database& db, absl::string_view table) {
  absl::StatusOr<Statement> query =
      db.Prepare("SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?");
  if (!query.ok()) return query.status();
  if (absl::Status status = query->BindText(1, table); !status.ok()) return status;
  absl::StatusOr<bool> row = query->Step();
  if (!row.ok()) return row.status();
  return *row && query->ColumnInt64(0) != 0;
}

// The checks Conductor adds to SQLite's: names, AUTOINCREMENT, a PRIMARY KEY.
absl::Status CheckUserTable(const std::vector<Token>& statement,
                            const std::vector<PragmaColumn>& columns, absl::string_view table) {
  for (const PragmaColumn& column : columns) {
    if (absl::Status status = CheckName(column.name, "column name", reason::kSqlSyntax);
        !status.ok()) {
      return status;
    }
  }
  for (const Token& token : statement) {
    if (IsKeyword(token, "AUTOINCREMENT")) {
      return InvalidCreate(absl::StrCat(
          "AUTOINCREMENT (offset ", token.offset,
          ") is not supported: a sharded table has no cluster-wide counter; supply the key "
          "values (for example UUIDs or ids allocated by the application)"));
    }
  }
  bool has_key = std::any_of(columns.begin(), columns.end(),
                             [](const PragmaColumn& column) { return column.primary_key > 0; });
  if (!has_key) {
    return InvalidCreate(absl::StrCat("table ", table,
                                      " has no PRIMARY KEY; every Conductor table needs one (it "
                                      "routes and identifies rows)"));
  }
  return absl::OkStatus();
}

void FillColumns(Database& db, const std::vector<PragmaColumn>& columns, TableSchema* schema) {
  std::vector<std::pair<int, std::string>> key;
  for (const PragmaColumn& column : columns) {
    ColumnSchema out{column.name, column.type, column.not_null, column.default_value,
                     column.primary_key};
    // table_xinfo's hidden is 2 for VIRTUAL and 3 for STORED generated columns.
    out.generated = column.hidden == 2 || column.hidden == 3;
    const char* collation = nullptr;
    if (sqlite3_table_column_metadata(db.handle(), "main", schema->name.c_str(),
                                      column.name.c_str(), nullptr, &collation, nullptr, nullptr,
                                      nullptr) == SQLITE_OK &&
        collation != nullptr) {
      out.collation = collation;
    }
    schema->columns.push_back(std::move(out));
    if (column.primary_key > 0) key.emplace_back(column.primary_key, column.name);
  }
  std::sort(key.begin(), key.end());
  for (auto& [position, name] : key) schema->primary_key.push_back(std::move(name));
}

absl::Status FillUniqueConstraints(Database& db, TableSchema* schema) {
  absl::StatusOr<std::vector<UniqueIndex>> indexes = ReadUniqueIndexes(db, schema->name);
  if (!indexes.ok()) return indexes.status();
  for (UniqueIndex& index : *indexes) {
    // A UNIQUE that repeats the key adds nothing; SQLite itself folds it into
    // the key's index except when the key is a rowid alias.
    if (index.origin != "u" || SameNames(index.columns, schema->primary_key)) continue;
    schema->unique_constraints.push_back(std::move(index.columns));
  }
  return absl::OkStatus();
}

// The physical table must have the user's columns unchanged (bar NOT NULL on
// key columns), then _virtualShard, a key of (_virtualShard, user key…), and
// every unique index leading with _virtualShard.
absl::Status CheckPhysicalColumns(const TableSchema& schema,
                                  const std::vector<PragmaColumn>& physical,
                                  const std::string& sql) {
  const std::vector<ColumnSchema>& user = schema.columns;
  if (physical.size() != user.size() + 1) {
    return RewriteBug(
        absl::StrCat("expected ", user.size() + 1, " columns, SQLite reports ", physical.size()),
        sql);
  }
  for (size_t i = 0; i < user.size(); ++i) {
    const PragmaColumn& got = physical[i];
    const ColumnSchema& want = user[i];
    int want_key = want.primary_key_position > 0 ? want.primary_key_position + 1 : 0;
    bool not_null_ok = got.not_null == (want.not_null || want_key > 0);
    if (got.name != want.name || got.type != want.type || got.default_value != want.default_value ||
        got.primary_key != want_key || !not_null_ok) {
      return RewriteBug(absl::StrCat("column ", want.name, " came out as ", got.name, " ", got.type,
                                     " notnull=", got.not_null, " default=", got.default_value,
                                     " pk=", got.primary_key, "; expected pk=", want_key),
                        sql);
    }
  }
  const PragmaColumn& hidden = physical.back();
  if (hidden.name != kVirtualShardColumn || hidden.type != "INTEGER" || !hidden.not_null ||
      hidden.default_value != "0" || hidden.primary_key != 1) {
    return RewriteBug("the _virtualShard column is not the first key column", sql);
  }
  return absl::OkStatus();
}

absl::Status CheckPhysicalIndexes(const TableSchema& schema,
                                  const std::vector<UniqueIndex>& physical,
                                  const std::string& sql) {
  for (const UniqueIndex& index : physical) {
    if (index.columns.empty() || index.columns[0] != kVirtualShardColumn) {
      return RewriteBug(
          absl::StrCat("unique index ", index.name, " (", absl::StrJoin(index.columns, ", "),
                       ") does not lead with _virtualShard"),
          sql);
    }
  }
  // SQLite folds a UNIQUE that repeats the key into the key's index, so look
  // for each constraint among all unique indexes.
  for (const std::vector<std::string>& unique : schema.unique_constraints) {
    std::vector<std::string> want = {kVirtualShardColumn};
    want.insert(want.end(), unique.begin(), unique.end());
    bool found = std::any_of(physical.begin(), physical.end(), [&](const UniqueIndex& index) {
      return SameNames(index.columns, want);
    });
    if (!found) {
      return RewriteBug(absl::StrCat("UNIQUE (", absl::StrJoin(unique, ", "), ") was lost"), sql);
    }
  }
  return absl::OkStatus();
}

absl::Status VerifyPhysical(const TableSchema& schema) {
  absl::StatusOr<std::unique_ptr<Database>> db = CreateInScratchDatabase(schema.physical_sql);
  if (!db.ok()) return RewriteBug(db.status().message(), schema.physical_sql);
  absl::StatusOr<std::vector<PragmaColumn>> columns = ReadColumns(**db, schema.name);
  if (!columns.ok()) return columns.status();
  if (absl::Status status = CheckPhysicalColumns(schema, *columns, schema.physical_sql);
      !status.ok()) {
    return status;
  }
  absl::StatusOr<std::vector<UniqueIndex>> indexes = ReadUniqueIndexes(**db, schema.name);
  if (!indexes.ok()) return indexes.status();
  return CheckPhysicalIndexes(schema, *indexes, schema.physical_sql);
}

// Step 2: SQLite judges the user's statement; metadata is read back from it.
absl::Status AnalyzeWithSqlite(const std::vector<Token>& statement, TableSchema* schema) {
  absl::StatusOr<std::unique_ptr<Database>> db = CreateInScratchDatabase(schema->user_sql);
  if (!db.ok()) {
    return InvalidCreate(absl::StrCat("invalid CREATE TABLE: ", db.status().message()));
  }
  absl::StatusOr<std::vector<PragmaColumn>> columns = ReadColumns(**db, schema->name);
  if (!columns.ok()) return columns.status();
  if (absl::Status status = CheckUserTable(statement, *columns, schema->name); !status.ok()) {
    return status;
  }
  FillColumns(**db, *columns, schema);
  absl::StatusOr<bool> without_rowid = IsWithoutRowid(**db, schema->name);
  if (!without_rowid.ok()) return without_rowid.status();
  schema->without_rowid = *without_rowid;
  return FillUniqueConstraints(**db, schema);
}

}  // namespace

absl::StatusOr<TableSchema> AnalyzeCreateTable(absl::string_view sql) {
  // Step 1: the statement's shape (kind, name, TEMP, AS SELECT, SHARDS hint).
  absl::StatusOr<ParsedStatement> parsed = ParseStatement(sql);
  if (!parsed.ok()) return parsed.status();
  if (parsed->kind != StatementKind::kCreateTable) {
    return InvalidCreate(
        absl::StrCat("expected a CREATE TABLE statement, got ", StatementKindName(parsed->kind)));
  }
  absl::StatusOr<std::vector<Token>> tokens = Tokenize(sql);
  if (!tokens.ok()) return tokens.status();
  absl::StatusOr<std::vector<Token>> statement = FirstStatement(*tokens);
  if (!statement.ok()) return statement.status();

  TableSchema schema;
  schema.name = parsed->table;
  schema.if_not_exists = parsed->if_not_exists;
  schema.shards_hint = parsed->shards_hint;
  schema.user_sql = UserSql(*statement);
  if (absl::Status status = AnalyzeWithSqlite(*statement, &schema); !status.ok()) return status;

  // Step 3: the token-level rewrite; step 4: SQLite checks its result.
  absl::StatusOr<std::string> physical =
      RewriteCreateTable(*statement, schema.name, schema.columns);
  if (!physical.ok()) return physical.status();
  schema.physical_sql = *std::move(physical);
  if (absl::Status status = VerifyPhysical(schema); !status.ok()) return status;
  return schema;
}

}  // namespace conductor::sql
