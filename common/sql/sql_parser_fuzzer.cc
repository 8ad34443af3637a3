// libFuzzer entry point for the SQL parsing the conductor's front door does
// on every Execute (conductor/sql_front_door.cc, table_operations.cc):
// Tokenize, ParseStatement, AnalyzeDml, AnalyzeCreateTable and ValidateName.
//
// Besides "does not crash" (ASan and UBSan find memory and undefined
// behaviour), it checks cheap invariants and aborts when one breaks:
//   - every failure is an ordinary status (INVALID_ARGUMENT, UNIMPLEMENTED…),
//     never OK-with-garbage, and carries a message;
//   - tokens tile the input exactly, in order, and end with one kEnd token;
//   - every span AnalyzeDml reports lies inside the statement text, and the
//     statement can be rewritten (ApplyEdits over its spans) and analysed
//     again, giving the same kind, table and parameter count;
//   - a CREATE TABLE that analyses produces a physical statement that parses
//     again as a CREATE TABLE of the same table.
//
// Built and run by //common/sql:sql_parser_fuzz_test (sql_parser_fuzz_test.sh).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/sql/create_table.h"
#include "common/sql/dml.h"
#include "common/sql/parser.h"
#include "common/sql/tokenizer.h"

namespace {

using conductor::sql::AnalyzeCreateTable;
using conductor::sql::AnalyzeDml;
using conductor::sql::ApplyEdits;
using conductor::sql::DmlStatement;
using conductor::sql::ParseStatement;
using conductor::sql::Span;
using conductor::sql::StatementKind;
using conductor::sql::TextEdit;
using conductor::sql::TokenKind;

// Statements longer than this are not interesting and slow the search; the
// front door refuses far shorter ones (--max_sql_bytes) only in size.
constexpr size_t kMaxInput = 64 << 10;

[[noreturn]] void Fail(const char* what, absl::string_view sql) {
  fprintf(stderr, "invariant broken: %s\ninput (%zu bytes): %.*s\n", what, sql.size(),
          static_cast<int>(std::min<size_t>(sql.size(), 2000)), sql.data());
  abort();
}

void CheckError(const absl::Status& status, absl::string_view sql) {
  if (status.ok()) return;
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kUnimplemented:
    case absl::StatusCode::kFailedPrecondition:  // SQLite refusing in AnalyzeCreateTable
    case absl::StatusCode::kResourceExhausted:   // SQLite out of memory / too big
      break;
    default:
      Fail("unexpected status code", sql);
  }
  if (status.message().empty()) Fail("an error without a message", sql);
}

void CheckTokens(absl::string_view sql) {
  auto tokens = conductor::sql::Tokenize(sql);
  CheckError(tokens.status(), sql);
  if (!tokens.ok()) return;
  if (tokens->empty() || tokens->back().kind != TokenKind::kEnd) Fail("no final kEnd", sql);
  size_t at = 0;
  for (const auto& token : *tokens) {
    if (token.offset != at) Fail("tokens do not tile the input", sql);
    if (token.text.data() != sql.data() + token.offset) Fail("token text not a view", sql);
    at += token.text.size();
    if (token.kind == TokenKind::kEnd) {
      if (&token != &tokens->back()) Fail("kEnd before the last token", sql);
    } else if (token.text.empty()) {
      Fail("an empty token", sql);
    }
    if (token.kind == TokenKind::kIdentifier || token.kind == TokenKind::kQuotedIdentifier) {
      (void)conductor::sql::IdentifierValue(token);
    }
    if (token.kind == TokenKind::kString) (void)conductor::sql::StringValue(token);
  }
  if (at != sql.size()) Fail("tokens do not cover the input", sql);
}

bool Inside(const Span& span, size_t size) { return span.begin <= span.end && span.end <= size; }

void CheckSpan(const Span& span, const DmlStatement& dml, absl::string_view sql) {
  // An empty span may sit anywhere; a non-empty one must be inside.
  if (!span.empty() && !Inside(span, dml.sql.size())) Fail("span outside the statement", sql);
}

void CheckDml(absl::string_view sql) {
  auto dml = AnalyzeDml(sql);
  CheckError(dml.status(), sql);
  if (!dml.ok()) return;
  if (dml->sql != sql) Fail("sql not kept", sql);
  if (dml->end_offset > dml->sql.size()) Fail("end_offset outside", sql);
  for (const auto& [span, number] : dml->parameters) {
    CheckSpan(span, *dml, sql);
    if (number < 1 || number > dml->parameter_count) Fail("parameter number out of range", sql);
  }
  for (const auto& [span, name] : dml->identifiers) CheckSpan(span, *dml, sql);
  for (const auto& item : dml->items) {
    CheckSpan(item.expression, *dml, sql);
    CheckSpan(item.whole, *dml, sql);
  }
  for (const auto& item : dml->returning_items) {
    CheckSpan(item.expression, *dml, sql);
    CheckSpan(item.whole, *dml, sql);
  }
  for (const Span& span :
       {dml->from, dml->where, dml->where_clause, dml->group_by, dml->having, dml->limit_clause,
        dml->limit, dml->offset, dml->insert_head, dml->insert_tail, dml->set_clause,
        dml->returning, dml->returning_clause}) {
    CheckSpan(span, *dml, sql);
    (void)dml->Text(span.empty() ? Span{} : span);
  }
  for (const Span& span : dml->order_terms) CheckSpan(span, *dml, sql);
  for (const Span& span : dml->value_rows) CheckSpan(span, *dml, sql);
  for (const auto& call : dml->aggregates) {
    CheckSpan(call.call, *dml, sql);
    CheckSpan(call.argument, *dml, sql);
  }

  // The planner's kind of rewrite: replace every parameter with a numbered
  // one (?N, as the planner does) and append a clause after the statement.
  std::vector<TextEdit> edits;
  for (const auto& [span, number] : dml->parameters) {
    edits.push_back({span, "?" + std::to_string(number)});
  }
  std::string rewritten = ApplyEdits(dml->sql, edits);
  auto again = AnalyzeDml(rewritten);
  if (!again.ok()) {
    // Renumbering must not turn an accepted statement into a refused one.
    Fail("a statement with its parameters renumbered no longer analyses", sql);
  }
  if (again->kind != dml->kind || again->table != dml->table ||
      again->parameter_count != dml->parameter_count) {
    Fail("renumbering parameters changed the statement", sql);
  }
}

void CheckParse(absl::string_view sql) {
  auto parsed = ParseStatement(sql);
  CheckError(parsed.status(), sql);
  if (!parsed.ok()) return;
  if (parsed->kind == StatementKind::kExplain && parsed->explained.size() != 1) {
    Fail("EXPLAIN without one explained statement", sql);
  }
}

void CheckCreateTable(absl::string_view sql) {
  auto schema = AnalyzeCreateTable(sql);
  CheckError(schema.status(), sql);
  if (!schema.ok()) return;
  if (schema->columns.empty() || schema->primary_key.empty())
    Fail("a table without columns/key", sql);
  auto physical = ParseStatement(schema->physical_sql);
  if (!physical.ok() || physical->kind != StatementKind::kCreateTable) {
    Fail("the physical CREATE TABLE does not parse", sql);
  }
  if (!conductor::sql::SameName(physical->table, schema->name)) {
    Fail("the physical CREATE TABLE names another table", sql);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxInput) return 0;
  const std::string sql(reinterpret_cast<const char*>(data), size);
  // The front door refuses NUL before parsing; the parser must still cope.
  CheckTokens(sql);
  CheckParse(sql);
  CheckDml(sql);
  (void)conductor::sql::ValidateName(sql, "fuzzed name");
  // AnalyzeCreateTable runs SQLite on the statement: only worth it when the
  // input looks like one (the front door only sends CREATE TABLE there).
  auto parsed = ParseStatement(sql);
  if (parsed.ok() && parsed->kind == StatementKind::kCreateTable) CheckCreateTable(sql);
  return 0;
}
