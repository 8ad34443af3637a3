#include "common/sql/parser.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/sql/parse_helpers.h"
#include "common/sql/token_cursor.h"
#include "common/sql/tokenizer.h"

namespace conductor::sql {
namespace {

constexpr char kAlterSupports[] = "ALTER TABLE supports RENAME TO <name> and MODIFY BLOCK_SIZE <n>";
constexpr char kPragmaSupports[] =
    "supported pragmas are reshardTable('<table>', <n>) and reshardStatus('<change_log_id>')";
constexpr char kTableStatsForm[] = "SELECT * FROM TABLE_STATS('<table>')";
constexpr char kStatementList[] =
    "a statement (SELECT, INSERT, REPLACE, UPDATE, DELETE, CREATE, DROP, ALTER, SHOW, DESCRIBE, "
    "PRAGMA or EXPLAIN)";

// What each top-level keyword that Conductor refuses would have done, and why
// it is refused.
struct RefusedStatement {
  const char* keyword;
  const char* message;
};

constexpr RefusedStatement kRefusedStatements[] = {
    {"BEGIN", "transactions are not supported: every statement commits on its own"},
    {"COMMIT", "transactions are not supported: every statement commits on its own"},
    {"END", "transactions are not supported: every statement commits on its own"},
    {"ROLLBACK", "transactions are not supported: every statement commits on its own"},
    {"SAVEPOINT", "savepoints are not supported: every statement commits on its own"},
    {"RELEASE", "savepoints are not supported: every statement commits on its own"},
    {"ATTACH", "ATTACH is not supported: Conductor manages where tables are stored"},
    {"DETACH", "DETACH is not supported: Conductor manages where tables are stored"},
    {"VACUUM", "VACUUM is not supported: storage nodes maintain their own databases"},
    {"ANALYZE", "ANALYZE is not supported: storage nodes maintain their own databases"},
    {"REINDEX", "REINDEX is not supported: storage nodes maintain their own databases"},
};

// "an index name", "a table name".
std::string WithArticle(absl::string_view noun) {
  bool vowel = !noun.empty() && absl::StrContains("aeiou", noun[0]);
  return absl::StrCat(vowel ? "an " : "a ", noun);
}

ParsedStatement MakeStatement(StatementKind kind) {
  ParsedStatement statement;
  statement.kind = kind;
  return statement;
}

// Recursive descent over the significant tokens of one statement. Table
// operations are parsed to the last token; data statements only as far as
// their kind and main table, the rest being SQLite's business.
class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : cursor_(tokens) {}

  absl::StatusOr<ParsedStatement> ParseStatement();

 private:
  // [main.]name, checked against the name rules. `noun` is "table name"…
  absl::StatusOr<std::string> ParseName(absl::string_view noun);
  // [+|-]integer.
  absl::StatusOr<int64_t> ParseInteger(absl::string_view what);
  absl::Status ParseIfNotExists(bool* present);
  absl::Status ParseIfExists(bool* present);

  absl::StatusOr<ParsedStatement> ParseCreate();
  absl::StatusOr<ParsedStatement> ParseCreateTable();
  absl::Status ParseTableOptions();
  absl::StatusOr<ParsedStatement> ParseCreateIndex(bool unique);
  absl::StatusOr<std::string> ParseIndexedColumn();
  absl::StatusOr<ParsedStatement> ParseDrop();
  absl::StatusOr<ParsedStatement> ParseAlter();
  absl::Status RefuseAlter(absl::string_view what);
  absl::StatusOr<ParsedStatement> ParseShow();
  absl::StatusOr<ParsedStatement> ParseDescribe();
  absl::StatusOr<ParsedStatement> ParsePragma();
  absl::StatusOr<ParsedStatement> ParseExplain();

  absl::StatusOr<ParsedStatement> ParseWith();
  absl::StatusOr<ParsedStatement> ParseDataStatement(const std::vector<std::string>& ctes);
  absl::StatusOr<ParsedStatement> ParseSelect(const std::vector<std::string>& ctes);
  absl::StatusOr<ParsedStatement> ParseTableStats(bool select_star);
  absl::StatusOr<ParsedStatement> ParseInsert();
  absl::StatusOr<ParsedStatement> ParseUpdate();
  absl::StatusOr<ParsedStatement> ParseDelete();
  absl::Status SkipConflictClause();
  void SkipRest();

  TokenCursor cursor_;
};

absl::StatusOr<ParsedStatement> Parser::ParseStatement() {
  const Token& first = cursor_.Peek();
  if (IsKeyword(first, "CREATE")) return ParseCreate();
  if (IsKeyword(first, "DROP")) return ParseDrop();
  if (IsKeyword(first, "ALTER")) return ParseAlter();
  if (IsKeyword(first, "SHOW")) return ParseShow();
  if (IsKeyword(first, "DESCRIBE") || IsKeyword(first, "DESC")) return ParseDescribe();
  if (IsKeyword(first, "PRAGMA")) return ParsePragma();
  if (IsKeyword(first, "EXPLAIN")) return ParseExplain();
  if (IsKeyword(first, "WITH")) return ParseWith();
  for (const RefusedStatement& refused : kRefusedStatements) {
    if (IsKeyword(first, refused.keyword)) return Unsupported(refused.message);
  }
  return ParseDataStatement({});
}

absl::StatusOr<std::string> Parser::ParseName(absl::string_view noun) {
  const Token& token = cursor_.Peek();
  if (!IsNameToken(token) || (token.kind == TokenKind::kIdentifier && IsReservedWord(token.text))) {
    return SyntaxError(token, WithArticle(noun));
  }
  cursor_.Next();
  std::string name = IdentifierValue(token);
  if (cursor_.PeekOperator(".") && IsNameToken(cursor_.Peek(1))) {
    cursor_.Next();
    const Token& qualified = cursor_.Next();
    if (!SameName(name, "main")) {
      return Error(absl::StatusCode::kInvalidArgument, reason::kSqlSyntax,
                   absl::StrCat("near ", DescribeToken(token), ": schema \"", name,
                                "\" is not supported; write the ", noun,
                                " alone (main.<name> is also accepted)"));
    }
    name = IdentifierValue(qualified);
  }
  if (absl::Status status = CheckName(name, noun, reason::kSqlSyntax); !status.ok()) {
    return Annotate(status, absl::StrCat("near ", DescribeToken(token)));
  }
  return name;
}

absl::StatusOr<int64_t> Parser::ParseInteger(absl::string_view what) {
  bool negative = false;
  if (cursor_.TryOperator("-")) {
    negative = true;
  } else {
    cursor_.TryOperator("+");
  }
  const Token& token = cursor_.Peek();
  if (!IsIntegerLiteral(token)) {
    return SyntaxError(token, absl::StrCat("an integer (", what, ")"));
  }
  absl::StatusOr<int64_t> value = IntegerValue(token, negative);
  if (!value.ok()) return Annotate(value.status(), what);
  cursor_.Next();
  return value;
}

absl::Status Parser::ParseIfNotExists(bool* present) {
  *present = cursor_.TryKeyword("IF");
  if (!*present) return absl::OkStatus();
  if (absl::Status status = cursor_.ExpectKeyword("NOT"); !status.ok()) return status;
  return cursor_.ExpectKeyword("EXISTS");
}

absl::Status Parser::ParseIfExists(bool* present) {
  *present = cursor_.TryKeyword("IF");
  if (!*present) return absl::OkStatus();
  return cursor_.ExpectKeyword("EXISTS");
}

absl::StatusOr<ParsedStatement> Parser::ParseCreate() {
  cursor_.Next();  // CREATE
  if (cursor_.PeekKeyword("TEMP") || cursor_.PeekKeyword("TEMPORARY")) {
    return Unsupported(
        "CREATE TEMP is not supported: Conductor tables are permanent and shared by every "
        "client; use CREATE TABLE");
  }
  if (cursor_.TryKeyword("TABLE")) return ParseCreateTable();
  if (cursor_.TryKeyword("INDEX")) return ParseCreateIndex(false);
  if (cursor_.TryKeyword("UNIQUE")) {
    if (absl::Status status = cursor_.ExpectKeyword("INDEX"); !status.ok()) return status;
    return ParseCreateIndex(true);
  }
  if (cursor_.PeekKeyword("VIEW") || cursor_.PeekKeyword("TRIGGER") ||
      cursor_.PeekKeyword("VIRTUAL")) {
    return Unsupported(absl::StrCat("CREATE ", absl::AsciiStrToUpper(cursor_.Peek().text),
                                    " is not supported; CREATE supports TABLE and [UNIQUE] INDEX"));
  }
  return SyntaxError(cursor_.Peek(), "TABLE, INDEX or UNIQUE INDEX after CREATE");
}

absl::StatusOr<ParsedStatement> Parser::ParseCreateTable() {
  ParsedStatement statement = MakeStatement(StatementKind::kCreateTable);
  if (absl::Status status = ParseIfNotExists(&statement.if_not_exists); !status.ok()) {
    return status;
  }
  absl::StatusOr<std::string> table = ParseName("table name");
  if (!table.ok()) return table.status();
  statement.table = *std::move(table);
  if (cursor_.PeekKeyword("AS")) {
    return Unsupported(
        "CREATE TABLE ... AS SELECT is not supported: declare the columns and a PRIMARY KEY, then "
        "INSERT the rows");
  }
  if (!cursor_.PeekOperator("(")) {
    return SyntaxError(cursor_.Peek(), "\"(\" and the column definitions");
  }
  // The column definitions are SQLite's to judge (AnalyzeCreateTable does).
  if (absl::Status status = cursor_.SkipParenthesized(); !status.ok()) return status;
  if (absl::Status status = ParseTableOptions(); !status.ok()) return status;
  return statement;
}

// [WITHOUT ROWID | STRICT] [, …] to the end of the statement.
absl::Status Parser::ParseTableOptions() {
  if (cursor_.AtEnd()) return absl::OkStatus();
  do {
    if (cursor_.TryKeyword("WITHOUT")) {
      if (absl::Status status = cursor_.ExpectKeyword("ROWID"); !status.ok()) return status;
    } else if (!cursor_.TryKeyword("STRICT")) {
      return SyntaxError(cursor_.Peek(), "WITHOUT ROWID, STRICT or the end of the statement");
    }
  } while (cursor_.TryOperator(","));
  return cursor_.ExpectEnd();
}

absl::StatusOr<ParsedStatement> Parser::ParseCreateIndex(bool unique) {
  ParsedStatement statement = MakeStatement(StatementKind::kCreateIndex);
  statement.unique = unique;
  if (absl::Status status = ParseIfNotExists(&statement.if_not_exists); !status.ok()) {
    return status;
  }
  absl::StatusOr<std::string> index = ParseName("index name");
  if (!index.ok()) return index.status();
  statement.index_name = *std::move(index);
  if (absl::Status status = cursor_.ExpectKeyword("ON"); !status.ok()) return status;
  absl::StatusOr<std::string> table = ParseName("table name");
  if (!table.ok()) return table.status();
  statement.table = *std::move(table);
  if (absl::Status status = cursor_.ExpectOperator("("); !status.ok()) return status;
  do {
    absl::StatusOr<std::string> column = ParseIndexedColumn();
    if (!column.ok()) return column.status();
    statement.columns.push_back(*std::move(column));
  } while (cursor_.TryOperator(","));
  if (absl::Status status = cursor_.ExpectOperator(")"); !status.ok()) return status;
  if (cursor_.PeekKeyword("WHERE")) {
    return Unsupported(
        "partial indexes (CREATE INDEX ... WHERE) are not supported; index whole columns");
  }
  if (absl::Status status = cursor_.ExpectEnd(); !status.ok()) return status;
  return statement;
}

// One plain column of CREATE INDEX, optionally ASC or DESC (meaningless for a
// hash-distributed virtual index, so accepted and dropped).
absl::StatusOr<std::string> Parser::ParseIndexedColumn() {
  const Token& token = cursor_.Peek();
  const Token& after = cursor_.Peek(1);
  bool plain =
      (token.kind == TokenKind::kIdentifier || token.kind == TokenKind::kQuotedIdentifier) &&
      (IsOperator(after, ",") || IsOperator(after, ")") || IsKeyword(after, "ASC") ||
       IsKeyword(after, "DESC") || IsKeyword(after, "COLLATE"));
  if (!plain) {
    if (IsOperator(token, ")") || IsOperator(token, ",") || token.kind == TokenKind::kEnd ||
        (token.kind == TokenKind::kIdentifier && IsReservedWord(token.text))) {
      return SyntaxError(token, "a column name");
    }
    return Unsupported(
        "indexes on expressions are not supported; index plain columns: CREATE INDEX <name> ON "
        "<table> (<column>, ...)");
  }
  absl::StatusOr<std::string> column = ParseName("column name");
  if (!column.ok()) return column.status();
  if (cursor_.PeekKeyword("COLLATE")) {
    return Unsupported("COLLATE in CREATE INDEX is not supported; indexes compare values exactly");
  }
  if (!cursor_.TryKeyword("ASC")) cursor_.TryKeyword("DESC");
  return column;
}

absl::StatusOr<ParsedStatement> Parser::ParseDrop() {
  cursor_.Next();  // DROP
  if (cursor_.TryKeyword("TABLE")) {
    ParsedStatement statement = MakeStatement(StatementKind::kDropTable);
    if (absl::Status status = ParseIfExists(&statement.if_exists); !status.ok()) return status;
    absl::StatusOr<std::string> table = ParseName("table name");
    if (!table.ok()) return table.status();
    statement.table = *std::move(table);
    if (absl::Status status = cursor_.ExpectEnd(); !status.ok()) return status;
    return statement;
  }
  if (cursor_.TryKeyword("INDEX")) {
    ParsedStatement statement = MakeStatement(StatementKind::kDropIndex);
    if (absl::Status status = ParseIfExists(&statement.if_exists); !status.ok()) return status;
    absl::StatusOr<std::string> index = ParseName("index name");
    if (!index.ok()) return index.status();
    statement.index_name = *std::move(index);
    // MySQL's DROP INDEX i ON t: the table narrows the lookup.
    if (cursor_.TryKeyword("ON")) {
      absl::StatusOr<std::string> table = ParseName("table name");
      if (!table.ok()) return table.status();
      statement.table = *std::move(table);
    }
    if (absl::Status status = cursor_.ExpectEnd(); !status.ok()) return status;
    return statement;
  }
  if (cursor_.PeekKeyword("VIEW") || cursor_.PeekKeyword("TRIGGER")) {
    return Unsupported(absl::StrCat("DROP ", absl::AsciiStrToUpper(cursor_.Peek().text),
                                    " is not supported; DROP supports TABLE and INDEX"));
  }
  return SyntaxError(cursor_.Peek(), "TABLE or INDEX after DROP");
}

absl::StatusOr<ParsedStatement> Parser::ParseAlter() {
  cursor_.Next();  // ALTER
  if (absl::Status status = cursor_.ExpectKeyword("TABLE"); !status.ok()) return status;
  absl::StatusOr<std::string> table = ParseName("table name");
  if (!table.ok()) return table.status();
  if (cursor_.TryKeyword("RENAME")) {
    if (!cursor_.TryKeyword("TO")) return RefuseAlter("ALTER TABLE RENAME COLUMN");
    ParsedStatement statement = MakeStatement(StatementKind::kRenameTable);
    statement.table = *std::move(table);
    absl::StatusOr<std::string> new_name = ParseName("table name");
    if (!new_name.ok()) return new_name.status();
    statement.new_name = *std::move(new_name);
    if (absl::Status status = cursor_.ExpectEnd(); !status.ok()) return status;
    return statement;
  }
  if (cursor_.TryKeyword("MODIFY")) {
    if (!cursor_.TryKeyword("BLOCK_SIZE")) {
      return RefuseAlter("ALTER TABLE MODIFY <column> (changing a column's type)");
    }
    ParsedStatement statement = MakeStatement(StatementKind::kSetBlockSize);
    statement.table = *std::move(table);
    cursor_.TryOperator("=");
    absl::StatusOr<int64_t> size = ParseInteger("the block size");
    if (!size.ok()) return size.status();
    statement.number = *size;
    if (absl::Status status = cursor_.ExpectEnd(); !status.ok()) return status;
    return statement;
  }
  bool key = cursor_.PeekKeyword("PRIMARY", 1) || cursor_.PeekKeyword("CONSTRAINT", 1);
  if (cursor_.PeekKeyword("ADD")) {
    return RefuseAlter(key ? "ALTER TABLE ADD PRIMARY KEY (changing the primary key)"
                           : "ALTER TABLE ADD COLUMN");
  }
  if (cursor_.PeekKeyword("DROP")) {
    return RefuseAlter(key ? "ALTER TABLE DROP PRIMARY KEY (changing the primary key)"
                           : "ALTER TABLE DROP COLUMN");
  }
  if (cursor_.PeekKeyword("ALTER") || cursor_.PeekKeyword("CHANGE")) {
    return RefuseAlter("ALTER TABLE ALTER COLUMN (changing a column's type)");
  }
  return SyntaxError(cursor_.Peek(), "RENAME TO <name> or MODIFY BLOCK_SIZE <n>");
}

absl::Status Parser::RefuseAlter(absl::string_view what) {
  return Unsupported(absl::StrCat(what, " is not supported; ", kAlterSupports));
}

absl::StatusOr<ParsedStatement> Parser::ParseShow() {
  cursor_.Next();  // SHOW
  if (cursor_.TryKeyword("TABLES")) {
    if (absl::Status status = cursor_.ExpectEnd(); !status.ok()) return status;
    return MakeStatement(StatementKind::kShowTables);
  }
  if (cursor_.TryKeyword("INDEXES") || cursor_.TryKeyword("INDEX")) {
    ParsedStatement statement = MakeStatement(StatementKind::kShowIndexes);
    if (cursor_.TryKeyword("FROM") || cursor_.TryKeyword("IN")) {
      absl::StatusOr<std::string> table = ParseName("table name");
      if (!table.ok()) return table.status();
      statement.table = *std::move(table);
    }
    if (absl::Status status = cursor_.ExpectEnd(); !status.ok()) return status;
    return statement;
  }
  if (cursor_.Peek().kind == TokenKind::kIdentifier) {
    return Unsupported(absl::StrCat("SHOW ", absl::AsciiStrToUpper(cursor_.Peek().text),
                                    " is not supported; SHOW supports TABLES and INDEXES [FROM "
                                    "<table>]"));
  }
  return SyntaxError(cursor_.Peek(), "TABLES or INDEXES after SHOW");
}

absl::StatusOr<ParsedStatement> Parser::ParseDescribe() {
  cursor_.Next();  // DESCRIBE or DESC
  cursor_.TryKeyword("TABLE");
  ParsedStatement statement = MakeStatement(StatementKind::kDescribeTable);
  absl::StatusOr<std::string> table = ParseName("table name");
  if (!table.ok()) return table.status();
  statement.table = *std::move(table);
  if (absl::Status status = cursor_.ExpectEnd(); !status.ok()) return status;
  return statement;
}

absl::StatusOr<ParsedStatement> Parser::ParsePragma() {
  cursor_.Next();  // PRAGMA
  const Token& name_token = cursor_.Peek();
  if (!IsNameToken(name_token)) return SyntaxError(name_token, "a pragma name");
  cursor_.Next();
  std::string name = IdentifierValue(name_token);
  if (SameName(name, "main") && cursor_.TryOperator(".")) {
    const Token& qualified = cursor_.Next();
    if (!IsNameToken(qualified)) return SyntaxError(qualified, "a pragma name");
    name = IdentifierValue(qualified);
  }
  bool reshard = SameName(name, "reshardTable");
  if (!reshard && !SameName(name, "reshardStatus")) {
    return Unsupported(absl::StrCat("PRAGMA ", name, " is not supported; ", kPragmaSupports));
  }
  if (absl::Status status = cursor_.ExpectOperator("("); !status.ok()) return status;
  ParsedStatement statement;
  if (reshard) {
    statement.kind = StatementKind::kReshardTable;
    absl::StatusOr<std::string> table = ParseName("table name");
    if (!table.ok()) return table.status();
    statement.table = *std::move(table);
    if (absl::Status status = cursor_.ExpectOperator(","); !status.ok()) return status;
    absl::StatusOr<int64_t> count = ParseInteger("the new shard count");
    if (!count.ok()) return count.status();
    statement.number = *count;
  } else {
    statement.kind = StatementKind::kReshardStatus;
    const Token& id = cursor_.Peek();
    if (id.kind == TokenKind::kString) {
      statement.change_log_id = StringValue(id);
    } else if (id.kind == TokenKind::kNumber || IsNameToken(id)) {
      statement.change_log_id = IdentifierValue(id);
    } else {
      return SyntaxError(id, "a change_log_id");
    }
    if (statement.change_log_id.empty()) return SyntaxError(id, "a non-empty change_log_id");
    cursor_.Next();
  }
  if (absl::Status status = cursor_.ExpectOperator(")"); !status.ok()) return status;
  if (absl::Status status = cursor_.ExpectEnd(); !status.ok()) return status;
  return statement;
}

absl::StatusOr<ParsedStatement> Parser::ParseExplain() {
  cursor_.Next();  // EXPLAIN
  if (cursor_.PeekKeyword("QUERY") && cursor_.PeekKeyword("PLAN", 1)) {
    return Unsupported(
        "EXPLAIN QUERY PLAN is not supported: plans differ per shard; use EXPLAIN <statement> to "
        "see how Conductor routes it");
  }
  if (cursor_.PeekKeyword("EXPLAIN")) return SyntaxError(cursor_.Peek(), "a statement to explain");
  absl::StatusOr<ParsedStatement> inner = ParseStatement();
  if (!inner.ok()) return inner.status();
  ParsedStatement statement = MakeStatement(StatementKind::kExplain);
  statement.table = inner->table;
  statement.explained.push_back(*std::move(inner));
  return statement;
}

// WITH [RECURSIVE] name [(columns)] AS [[NOT] MATERIALIZED] (select), …
// followed by the statement the CTEs serve.
absl::StatusOr<ParsedStatement> Parser::ParseWith() {
  cursor_.Next();  // WITH
  cursor_.TryKeyword("RECURSIVE");
  std::vector<std::string> ctes;
  do {
    const Token& name = cursor_.Peek();
    if (!IsNameToken(name)) return SyntaxError(name, "a common table expression name");
    cursor_.Next();
    ctes.push_back(IdentifierValue(name));
    if (cursor_.PeekOperator("(")) {
      if (absl::Status status = cursor_.SkipParenthesized(); !status.ok()) return status;
    }
    if (absl::Status status = cursor_.ExpectKeyword("AS"); !status.ok()) return status;
    cursor_.TryKeyword("NOT");
    cursor_.TryKeyword("MATERIALIZED");
    if (absl::Status status = cursor_.SkipParenthesized(); !status.ok()) return status;
  } while (cursor_.TryOperator(","));
  return ParseDataStatement(ctes);
}

absl::StatusOr<ParsedStatement> Parser::ParseDataStatement(const std::vector<std::string>& ctes) {
  const Token& first = cursor_.Peek();
  if (IsKeyword(first, "SELECT") || IsKeyword(first, "VALUES")) return ParseSelect(ctes);
  if (IsKeyword(first, "INSERT") || IsKeyword(first, "REPLACE")) return ParseInsert();
  if (IsKeyword(first, "UPDATE")) return ParseUpdate();
  if (IsKeyword(first, "DELETE")) return ParseDelete();
  if (!ctes.empty()) return SyntaxError(first, "SELECT, INSERT, UPDATE or DELETE after WITH");
  return SyntaxError(first, kStatementList);
}

// The main table of a SELECT is the first table after its top-level FROM.
// Subqueries, table-valued functions and CTEs leave it empty.
absl::StatusOr<ParsedStatement> Parser::ParseSelect(const std::vector<std::string>& ctes) {
  ParsedStatement statement = MakeStatement(StatementKind::kSelect);
  size_t list_tokens = 0;
  bool star = false;
  int depth = 0;
  cursor_.Next();  // SELECT or VALUES
  while (!cursor_.AtEnd()) {
    const Token& token = cursor_.Next();
    if (IsOperator(token, "(")) ++depth;
    if (IsOperator(token, ")")) --depth;
    if (depth != 0 || !IsKeyword(token, "FROM")) {
      ++list_tokens;
      star = IsOperator(token, "*");
      continue;
    }
    if (cursor_.PeekOperator("(")) break;  // FROM (subquery)
    absl::StatusOr<std::string> table = ParseName("table name");
    if (!table.ok()) return table.status();
    if (cursor_.PeekOperator("(")) {
      if (SameName(*table, "TABLE_STATS")) return ParseTableStats(star && list_tokens == 1);
      break;  // another table-valued function
    }
    bool is_cte = false;
    for (const std::string& cte : ctes) is_cte = is_cte || SameName(cte, *table);
    if (!is_cte) statement.table = *std::move(table);
    break;
  }
  SkipRest();
  return statement;
}

// SELECT * FROM TABLE_STATS('t'), with the cursor on the "(".
absl::StatusOr<ParsedStatement> Parser::ParseTableStats(bool select_star) {
  if (!select_star) {
    return Unsupported(absl::StrCat("TABLE_STATS supports only ", kTableStatsForm));
  }
  cursor_.Next();  // (
  ParsedStatement statement = MakeStatement(StatementKind::kTableStats);
  absl::StatusOr<std::string> table = ParseName("table name");
  if (!table.ok()) return table.status();
  statement.table = *std::move(table);
  if (absl::Status status = cursor_.ExpectOperator(")"); !status.ok()) return status;
  if (!cursor_.AtEnd()) {
    return Unsupported(
        absl::StrCat("TABLE_STATS supports only ", kTableStatsForm, ", with nothing after it"));
  }
  return statement;
}

absl::StatusOr<ParsedStatement> Parser::ParseInsert() {
  ParsedStatement statement = MakeStatement(StatementKind::kInsert);
  if (!cursor_.TryKeyword("REPLACE")) {
    cursor_.Next();  // INSERT
    if (absl::Status status = SkipConflictClause(); !status.ok()) return status;
  }
  if (absl::Status status = cursor_.ExpectKeyword("INTO"); !status.ok()) return status;
  absl::StatusOr<std::string> table = ParseName("table name");
  if (!table.ok()) return table.status();
  statement.table = *std::move(table);
  SkipRest();
  return statement;
}

absl::StatusOr<ParsedStatement> Parser::ParseUpdate() {
  ParsedStatement statement = MakeStatement(StatementKind::kUpdate);
  cursor_.Next();  // UPDATE
  if (absl::Status status = SkipConflictClause(); !status.ok()) return status;
  absl::StatusOr<std::string> table = ParseName("table name");
  if (!table.ok()) return table.status();
  statement.table = *std::move(table);
  SkipRest();
  return statement;
}

absl::StatusOr<ParsedStatement> Parser::ParseDelete() {
  ParsedStatement statement = MakeStatement(StatementKind::kDelete);
  cursor_.Next();  // DELETE
  if (absl::Status status = cursor_.ExpectKeyword("FROM"); !status.ok()) return status;
  absl::StatusOr<std::string> table = ParseName("table name");
  if (!table.ok()) return table.status();
  statement.table = *std::move(table);
  SkipRest();
  return statement;
}

// OR ROLLBACK | ABORT | REPLACE | FAIL | IGNORE after INSERT or UPDATE.
absl::Status Parser::SkipConflictClause() {
  if (!cursor_.TryKeyword("OR")) return absl::OkStatus();
  for (const char* action : {"ROLLBACK", "ABORT", "REPLACE", "FAIL", "IGNORE"}) {
    if (cursor_.TryKeyword(action)) return absl::OkStatus();
  }
  return SyntaxError(cursor_.Peek(), "ROLLBACK, ABORT, REPLACE, FAIL or IGNORE after OR");
}

void Parser::SkipRest() {
  while (!cursor_.AtEnd()) cursor_.Next();
}

// CREATE TRIGGER bodies contain ';', so they must be recognised before the
// input is cut at the first ';'.
bool IsCreateTrigger(const std::vector<Token>& tokens) {
  TokenCursor cursor(tokens);
  if (!cursor.TryKeyword("CREATE")) return false;
  if (!cursor.TryKeyword("TEMP")) cursor.TryKeyword("TEMPORARY");
  return cursor.PeekKeyword("TRIGGER");
}

}  // namespace

const char* StatementKindName(StatementKind kind) {
  switch (kind) {
    case StatementKind::kCreateTable:
      return "CREATE TABLE";
    case StatementKind::kDropTable:
      return "DROP TABLE";
    case StatementKind::kRenameTable:
      return "ALTER TABLE RENAME TO";
    case StatementKind::kSetBlockSize:
      return "ALTER TABLE MODIFY BLOCK_SIZE";
    case StatementKind::kShowTables:
      return "SHOW TABLES";
    case StatementKind::kDescribeTable:
      return "DESCRIBE";
    case StatementKind::kTableStats:
      return "TABLE_STATS";
    case StatementKind::kReshardTable:
      return "PRAGMA reshardTable";
    case StatementKind::kReshardStatus:
      return "PRAGMA reshardStatus";
    case StatementKind::kCreateIndex:
      return "CREATE INDEX";
    case StatementKind::kDropIndex:
      return "DROP INDEX";
    case StatementKind::kShowIndexes:
      return "SHOW INDEXES";
    case StatementKind::kSelect:
      return "SELECT";
    case StatementKind::kInsert:
      return "INSERT";
    case StatementKind::kUpdate:
      return "UPDATE";
    case StatementKind::kDelete:
      return "DELETE";
    case StatementKind::kExplain:
      return "EXPLAIN";
  }
  return "UNKNOWN";
}

absl::StatusOr<ParsedStatement> ParseStatement(absl::string_view sql) {
  absl::StatusOr<std::vector<Token>> tokens = Tokenize(sql);
  if (!tokens.ok()) return tokens.status();
  if (IsCreateTrigger(*tokens)) {
    return Unsupported("CREATE TRIGGER is not supported; CREATE supports TABLE and [UNIQUE] INDEX");
  }
  absl::StatusOr<std::vector<Token>> statement_tokens = FirstStatement(*tokens);
  if (!statement_tokens.ok()) return statement_tokens.status();
  if (TokenCursor(*statement_tokens).AtEnd()) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kSqlSyntax, "empty statement");
  }
  absl::StatusOr<ParsedStatement> statement = Parser(*statement_tokens).ParseStatement();
  if (!statement.ok()) return statement.status();
  ParsedStatement* create =
      statement->kind == StatementKind::kExplain ? &statement->explained.front() : &*statement;
  if (create->kind == StatementKind::kCreateTable) {
    // The hint may sit anywhere, even in a comment after the ';'.
    absl::StatusOr<std::optional<int64_t>> hint = FindShardsHint(*tokens);
    if (!hint.ok()) return hint.status();
    create->shards_hint = *hint;
  }
  return statement;
}

absl::Status ValidateName(absl::string_view name, absl::string_view what) {
  return CheckName(name, what, reason::kInvalidArgument);
}

}  // namespace conductor::sql
