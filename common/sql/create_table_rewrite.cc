#include "common/sql/create_table_rewrite.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/sql/parse_helpers.h"
#include "common/sql/token_cursor.h"
#include "common/sqlite.h"

namespace conductor::sql {
namespace {

constexpr char kHiddenColumnDefinition[] = "_virtualShard INTEGER NOT NULL DEFAULT 0";
constexpr char kHiddenKeyPrefix[] = "_virtualShard, ";

// Words that end a column's type name and start one of its constraints.
constexpr absl::string_view kColumnConstraintWords[] = {
    "CONSTRAINT", "PRIMARY", "NOT",        "NULL",      "UNIQUE", "CHECK",
    "DEFAULT",    "COLLATE", "REFERENCES", "GENERATED", "AS",
};

// Words that start a table constraint (and so end the column definitions).
constexpr absl::string_view kTableConstraintWords[] = {
    "CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN",
};

constexpr absl::string_view kConflictActions[] = {"ROLLBACK", "ABORT", "FAIL", "IGNORE", "REPLACE"};

template <size_t N>
bool IsAnyKeyword(const Token& token, const absl::string_view (&words)[N]) {
  for (absl::string_view word : words) {
    if (IsKeyword(token, word)) return true;
  }
  return false;
}

bool IsLineComment(const Token& token) {
  return token.kind == TokenKind::kComment && absl::StartsWith(token.text, "--");
}

// Tokens that need whitespace between them and a preceding word.
bool IsWordLike(const Token& token) {
  switch (token.kind) {
    case TokenKind::kIdentifier:
    case TokenKind::kQuotedIdentifier:
    case TokenKind::kString:
    case TokenKind::kNumber:
    case TokenKind::kBlob:
    case TokenKind::kParameter:
      return true;
    default:
      return false;
  }
}

// A column-level PRIMARY KEY or UNIQUE, which moves to the table constraints
// so that _virtualShard can lead its key.
struct MovedConstraint {
  bool primary_key = false;
  std::string name_clause;  // "CONSTRAINT <name>" or ""
  std::string order;        // "ASC", "DESC" or ""
  std::string conflict;     // "ON CONFLICT <action>" or ""
};

// What happens to one input token; the output is assembled from these.
struct Edit {
  bool removed = false;
  std::string before;
  std::string after;
};

class Rewriter {
 public:
  Rewriter(const std::vector<Token>& tokens, absl::string_view table,
           const std::vector<ColumnSchema>& columns)
      : tokens_(tokens), table_(table), columns_(columns), cursor_(tokens), edits_(tokens.size()) {}

  absl::StatusOr<std::string> Run();

 private:
  absl::Status ParseHeader();
  absl::Status ParseColumnDefinition();
  void ParseTypeName();
  absl::Status ParseColumnConstraint(const std::string& column, size_t start,
                                     std::string name_clause);
  absl::Status ParseTableConstraint();
  absl::Status LeadWithVirtualShard();
  absl::Status ParseConflictClause(std::string* text);
  absl::Status ParseDefault();
  absl::Status ParseGenerated();
  absl::Status ParseForeignKeyClause();
  absl::Status ParseForeignKeyAction();
  absl::StatusOr<std::string> ParseNameToken(absl::string_view what);

  void Move(const std::string& column, size_t start, const MovedConstraint& constraint);
  void Remove(size_t first, size_t last);
  size_t LastKept(size_t first, size_t last) const;
  const ColumnSchema* FindColumn(absl::string_view name) const;
  std::string Assemble() const;
  absl::Status Unexpected(const Token& token, absl::string_view expected) const;

  const std::vector<Token>& tokens_;
  std::string table_;
  const std::vector<ColumnSchema>& columns_;
  TokenCursor cursor_;
  std::vector<Edit> edits_;
  size_t open_ = 0;                 // the "(" of the definitions
  size_t close_ = 0;                // its ")"
  size_t last_column_end_ = 0;      // the token the hidden column follows
  std::vector<std::string> moved_;  // table constraints made from column constraints
};

absl::StatusOr<std::string> Rewriter::Run() {
  if (absl::Status status = ParseHeader(); !status.ok()) return status;
  do {
    if (IsAnyKeyword(cursor_.Peek(), kTableConstraintWords)) break;
    if (absl::Status status = ParseColumnDefinition(); !status.ok()) return status;
  } while (cursor_.TryOperator(","));
  // Table constraints may be separated by commas or, in SQLite, by nothing.
  while (!cursor_.PeekOperator(")")) {
    if (absl::Status status = ParseTableConstraint(); !status.ok()) return status;
    cursor_.TryOperator(",");
  }
  close_ = cursor_.PeekIndex();
  std::string& after = edits_[last_column_end_].after;
  absl::StrAppend(&after, ", ", kHiddenColumnDefinition);
  for (const std::string& constraint : moved_) absl::StrAppend(&after, ", ", constraint);
  return Assemble();
}

// CREATE TABLE [IF NOT EXISTS] [schema.]name (
absl::Status Rewriter::ParseHeader() {
  for (absl::string_view word : {"CREATE", "TABLE"}) {
    if (absl::Status status = cursor_.ExpectKeyword(word); !status.ok()) return status;
  }
  if (cursor_.TryKeyword("IF")) {
    cursor_.TryKeyword("NOT");
    cursor_.TryKeyword("EXISTS");
  }
  if (absl::StatusOr<std::string> name = ParseNameToken("a table name"); !name.ok()) {
    return name.status();
  }
  if (cursor_.TryOperator(".")) {
    if (absl::StatusOr<std::string> name = ParseNameToken("a table name"); !name.ok()) {
      return name.status();
    }
  }
  if (!cursor_.PeekOperator("(")) return Unexpected(cursor_.Peek(), "\"(\"");
  open_ = cursor_.PeekIndex();
  cursor_.Next();
  return absl::OkStatus();
}

// name [type] [constraint …]
absl::Status Rewriter::ParseColumnDefinition() {
  size_t first = cursor_.PeekIndex();
  absl::StatusOr<std::string> column = ParseNameToken("a column name");
  if (!column.ok()) return column.status();
  const ColumnSchema* schema = FindColumn(*column);
  if (schema == nullptr) return Unexpected(tokens_[first], "a column SQLite reported");
  ParseTypeName();
  while (!cursor_.PeekOperator(",") && !cursor_.PeekOperator(")") && !cursor_.AtEnd()) {
    size_t start = cursor_.PeekIndex();
    std::string name_clause;
    if (cursor_.TryKeyword("CONSTRAINT")) {
      absl::StatusOr<std::string> name = ParseNameToken("a constraint name");
      if (!name.ok()) return name.status();
      name_clause = absl::StrCat("CONSTRAINT ", tokens_[cursor_.LastIndex()].text);
      // A name followed by nothing names nothing; SQLite allows it.
      if (cursor_.PeekOperator(",") || cursor_.PeekOperator(")")) break;
    }
    if (absl::Status status = ParseColumnConstraint(*column, start, std::move(name_clause));
        !status.ok()) {
      return status;
    }
  }
  size_t end = LastKept(first, cursor_.LastIndex());
  // A NULL key can be neither routed nor matched, so key columns get NOT NULL.
  if (schema->primary_key_position > 0 && !schema->not_null) {
    absl::StrAppend(&edits_[end].after, " NOT NULL");
  }
  last_column_end_ = end;
  return absl::OkStatus();
}

// Words up to the first constraint keyword, then an optional "(n[, m])".
void Rewriter::ParseTypeName() {
  bool any = false;
  while (true) {
    const Token& token = cursor_.Peek();
    bool word =
        (token.kind == TokenKind::kIdentifier && !IsAnyKeyword(token, kColumnConstraintWords)) ||
        token.kind == TokenKind::kQuotedIdentifier || token.kind == TokenKind::kString;
    if (!word) break;
    cursor_.Next();
    any = true;
  }
  if (any && cursor_.PeekOperator("(")) cursor_.SkipParenthesized().IgnoreError();
}

absl::Status Rewriter::ParseColumnConstraint(const std::string& column, size_t start,
                                             std::string name_clause) {
  MovedConstraint moved;
  moved.name_clause = std::move(name_clause);
  if (cursor_.TryKeyword("PRIMARY")) {
    if (absl::Status status = cursor_.ExpectKeyword("KEY"); !status.ok()) return status;
    moved.primary_key = true;
    if (cursor_.PeekKeyword("ASC") || cursor_.PeekKeyword("DESC")) {
      moved.order = std::string(cursor_.Next().text);
    }
    if (absl::Status status = ParseConflictClause(&moved.conflict); !status.ok()) return status;
    cursor_.TryKeyword("AUTOINCREMENT");  // refused by the caller before the rewrite
    Move(column, start, moved);
    return absl::OkStatus();
  }
  if (cursor_.TryKeyword("UNIQUE")) {
    if (absl::Status status = ParseConflictClause(&moved.conflict); !status.ok()) return status;
    Move(column, start, moved);
    return absl::OkStatus();
  }
  if (cursor_.TryKeyword("NOT")) {
    if (absl::Status status = cursor_.ExpectKeyword("NULL"); !status.ok()) return status;
    return ParseConflictClause(nullptr);
  }
  if (cursor_.TryKeyword("NULL")) return ParseConflictClause(nullptr);
  if (cursor_.TryKeyword("CHECK")) return cursor_.SkipParenthesized();
  if (cursor_.TryKeyword("DEFAULT")) return ParseDefault();
  if (cursor_.TryKeyword("COLLATE")) return ParseNameToken("a collation name").status();
  if (cursor_.TryKeyword("REFERENCES")) return ParseForeignKeyClause();
  if (cursor_.TryKeyword("GENERATED")) {
    if (absl::Status status = cursor_.ExpectKeyword("ALWAYS"); !status.ok()) return status;
    if (!cursor_.PeekKeyword("AS")) return Unexpected(cursor_.Peek(), "AS");
  }
  if (cursor_.TryKeyword("AS")) return ParseGenerated();
  return Unexpected(cursor_.Peek(), "a column constraint");
}

// [CONSTRAINT name] PRIMARY KEY (…) | UNIQUE (…) | CHECK (…) | FOREIGN KEY …
absl::Status Rewriter::ParseTableConstraint() {
  if (cursor_.TryKeyword("CONSTRAINT")) {
    if (absl::Status status = ParseNameToken("a constraint name").status(); !status.ok()) {
      return status;
    }
  }
  if (cursor_.TryKeyword("PRIMARY")) {
    if (absl::Status status = cursor_.ExpectKeyword("KEY"); !status.ok()) return status;
    if (absl::Status status = LeadWithVirtualShard(); !status.ok()) return status;
    return ParseConflictClause(nullptr);
  }
  if (cursor_.TryKeyword("UNIQUE")) {
    if (absl::Status status = LeadWithVirtualShard(); !status.ok()) return status;
    return ParseConflictClause(nullptr);
  }
  if (cursor_.TryKeyword("CHECK")) return cursor_.SkipParenthesized();
  if (cursor_.TryKeyword("FOREIGN")) {
    if (absl::Status status = cursor_.ExpectKeyword("KEY"); !status.ok()) return status;
    if (absl::Status status = cursor_.SkipParenthesized(); !status.ok()) return status;
    if (absl::Status status = cursor_.ExpectKeyword("REFERENCES"); !status.ok()) return status;
    return ParseForeignKeyClause();
  }
  return Unexpected(cursor_.Peek(), "a table constraint");
}

// "(a, b DESC)" → "(_virtualShard, a, b DESC)", the rest kept as written.
absl::Status Rewriter::LeadWithVirtualShard() {
  if (!cursor_.PeekOperator("(")) return Unexpected(cursor_.Peek(), "\"(\"");
  absl::StrAppend(&edits_[cursor_.PeekIndex(1)].before, kHiddenKeyPrefix);
  return cursor_.SkipParenthesized();
}

// [ON CONFLICT action]; `text` (when given) receives it normalised.
absl::Status Rewriter::ParseConflictClause(std::string* text) {
  if (!cursor_.PeekKeyword("ON") || !cursor_.PeekKeyword("CONFLICT", 1)) return absl::OkStatus();
  cursor_.Next();
  cursor_.Next();
  const Token& action = cursor_.Peek();
  if (!IsAnyKeyword(action, kConflictActions)) return Unexpected(action, "a conflict action");
  cursor_.Next();
  if (text != nullptr) *text = absl::StrCat("ON CONFLICT ", action.text);
  return absl::OkStatus();
}

// DEFAULT (expr) | DEFAULT [+|-] literal | DEFAULT word (TRUE, CURRENT_TIME…)
absl::Status Rewriter::ParseDefault() {
  if (cursor_.PeekOperator("(")) return cursor_.SkipParenthesized();
  if (!cursor_.TryOperator("-")) cursor_.TryOperator("+");
  const Token& value = cursor_.Peek();
  if (!IsWordLike(value)) return Unexpected(value, "a default value");
  cursor_.Next();
  return absl::OkStatus();
}

// AS (expr) [STORED | VIRTUAL], the cursor after AS.
absl::Status Rewriter::ParseGenerated() {
  if (absl::Status status = cursor_.SkipParenthesized(); !status.ok()) return status;
  if (!cursor_.TryKeyword("STORED")) cursor_.TryKeyword("VIRTUAL");
  return absl::OkStatus();
}

// After REFERENCES: table [(columns)] then ON DELETE/UPDATE actions, MATCH
// and [NOT] DEFERRABLE [INITIALLY DEFERRED|IMMEDIATE], in any order.
absl::Status Rewriter::ParseForeignKeyClause() {
  if (absl::Status status = ParseNameToken("a table name").status(); !status.ok()) return status;
  if (cursor_.PeekOperator("(")) {
    if (absl::Status status = cursor_.SkipParenthesized(); !status.ok()) return status;
  }
  while (true) {
    if (cursor_.PeekKeyword("ON") &&
        (cursor_.PeekKeyword("DELETE", 1) || cursor_.PeekKeyword("UPDATE", 1) ||
         cursor_.PeekKeyword("INSERT", 1))) {
      cursor_.Next();
      cursor_.Next();
      if (absl::Status status = ParseForeignKeyAction(); !status.ok()) return status;
    } else if (cursor_.TryKeyword("MATCH")) {
      if (absl::Status status = ParseNameToken("a MATCH name").status(); !status.ok()) {
        return status;
      }
    } else if (cursor_.PeekKeyword("DEFERRABLE") ||
               (cursor_.PeekKeyword("NOT") && cursor_.PeekKeyword("DEFERRABLE", 1))) {
      cursor_.TryKeyword("NOT");
      cursor_.Next();
      if (cursor_.TryKeyword("INITIALLY") && !cursor_.TryKeyword("DEFERRED") &&
          !cursor_.TryKeyword("IMMEDIATE")) {
        return Unexpected(cursor_.Peek(), "DEFERRED or IMMEDIATE");
      }
    } else {
      return absl::OkStatus();
    }
  }
}

// SET NULL | SET DEFAULT | CASCADE | RESTRICT | NO ACTION
absl::Status Rewriter::ParseForeignKeyAction() {
  if (cursor_.TryKeyword("SET")) {
    if (cursor_.TryKeyword("NULL") || cursor_.TryKeyword("DEFAULT")) return absl::OkStatus();
  } else if (cursor_.TryKeyword("CASCADE") || cursor_.TryKeyword("RESTRICT")) {
    return absl::OkStatus();
  } else if (cursor_.TryKeyword("NO")) {
    if (cursor_.TryKeyword("ACTION")) return absl::OkStatus();
  }
  return Unexpected(cursor_.Peek(), "a foreign key action");
}

absl::StatusOr<std::string> Rewriter::ParseNameToken(absl::string_view what) {
  const Token& token = cursor_.Peek();
  if (!IsNameToken(token)) return Unexpected(token, what);
  cursor_.Next();
  return IdentifierValue(token);
}

void Rewriter::Move(const std::string& column, size_t start, const MovedConstraint& constraint) {
  Remove(start, cursor_.LastIndex());
  std::string text = constraint.name_clause;
  if (!text.empty()) text += " ";
  absl::StrAppend(&text, constraint.primary_key ? "PRIMARY KEY" : "UNIQUE", " (", kHiddenKeyPrefix,
                  QuoteIdentifier(column));
  if (!constraint.order.empty()) absl::StrAppend(&text, " ", constraint.order);
  text += ")";
  if (!constraint.conflict.empty()) absl::StrAppend(&text, " ", constraint.conflict);
  moved_.push_back(std::move(text));
}

// Drops tokens first..last and the whitespace that separated them from what
// came before. Comments stay where they were, and so does a newline ending a
// -- comment (without it the comment would swallow the next line).
void Rewriter::Remove(size_t first, size_t last) {
  for (size_t i = first; i <= last; ++i) {
    if (tokens_[i].kind == TokenKind::kComment) continue;
    if (tokens_[i].kind == TokenKind::kWhitespace && IsLineComment(tokens_[i - 1])) continue;
    edits_[i].removed = true;
  }
  if (first < 2 || tokens_[first - 1].kind != TokenKind::kWhitespace) return;
  if (IsLineComment(tokens_[first - 2])) return;
  // "a INT PRIMARY KEY" + "x" would glue "INT" and "x" together.
  if (last + 1 < tokens_.size() && IsWordLike(tokens_[last + 1])) return;
  edits_[first - 1].removed = true;
}

// The last significant token in first..last that survives the edits.
size_t Rewriter::LastKept(size_t first, size_t last) const {
  for (size_t i = last; i > first; --i) {
    if (!edits_[i].removed && !IsTrivia(tokens_[i])) return i;
  }
  return first;
}

const ColumnSchema* Rewriter::FindColumn(absl::string_view name) const {
  for (const ColumnSchema& column : columns_) {
    if (SameName(column.name, name)) return &column;
  }
  return nullptr;
}

std::string Rewriter::Assemble() const {
  std::string out = absl::StrCat("CREATE TABLE IF NOT EXISTS ", QuoteIdentifier(table_));
  // Comments around the table name survive, in front of the "(".
  for (size_t i = 0; i < open_; ++i) {
    if (tokens_[i].kind != TokenKind::kComment) continue;
    absl::StrAppend(&out, " ", tokens_[i].text, IsLineComment(tokens_[i]) ? "\n" : "");
  }
  if (out.back() != '\n') out += " ";
  out += "(";
  for (size_t i = open_ + 1; i < close_; ++i) {
    const Edit& edit = edits_[i];
    absl::StrAppend(&out, edit.before, edit.removed ? "" : tokens_[i].text, edit.after);
  }
  out += ")";
  // Table options (WITHOUT ROWID, STRICT) and comments, as written.
  size_t last_written = close_;
  for (size_t i = close_ + 1; i < tokens_.size() && tokens_[i].kind != TokenKind::kEnd; ++i) {
    if (tokens_[i].kind == TokenKind::kWhitespace) continue;
    for (size_t j = last_written + 1; j <= i; ++j) absl::StrAppend(&out, tokens_[j].text);
    last_written = i;
  }
  if (IsLineComment(tokens_[last_written])) out += "\n";
  return out;
}

absl::Status Rewriter::Unexpected(const Token& token, absl::string_view expected) const {
  return Unsupported(absl::StrCat(
      "Conductor cannot rewrite this CREATE TABLE (SQLite accepts it, but the _virtualShard "
      "rewrite does not know this syntax): near ",
      DescribeToken(token), ": expected ", expected));
}

}  // namespace

absl::StatusOr<std::string> RewriteCreateTable(const std::vector<Token>& statement,
                                               absl::string_view table,
                                               const std::vector<ColumnSchema>& columns) {
  return Rewriter(statement, table, columns).Run();
}

}  // namespace conductor::sql
