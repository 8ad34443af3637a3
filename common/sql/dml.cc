#include "common/sql/dml.h"

#include <algorithm>
#include <cstdlib>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/sql/create_table.h"
#include "common/sql/parse_helpers.h"
#include "common/sql/token_cursor.h"

namespace conductor::sql {
namespace {

// Deeper nesting is refused (SQLite's own expression depth limit is 1000).
constexpr int kMaxNesting = 1000;

// The significant tokens of one statement with their parenthesis depth.
class Tokens {
 public:
  explicit Tokens(std::vector<Token> all) : all_(std::move(all)) {
    int depth = 0;
    std::vector<size_t> open;
    for (const Token& token : all_) {
      if (IsTrivia(token)) continue;
      if (IsOperator(token, ")")) --depth;
      list_.push_back(&token);
      depth_.push_back(depth);
      match_.push_back(0);
      if (IsOperator(token, "(")) {
        ++depth;
        max_depth_ = std::max(max_depth_, depth);
        open.push_back(list_.size() - 1);
      } else if (IsOperator(token, ")") && !open.empty()) {
        match_[open.back()] = list_.size() - 1;
        open.pop_back();
      }
      if (token.kind == TokenKind::kEnd) break;
    }
    for (size_t i : open) match_[i] = list_.size() - 1;  // unbalanced: up to the end
  }
  int max_depth() const { return max_depth_; }
  size_t size() const { return list_.size(); }  // includes the final kEnd
  const Token& operator[](size_t i) const { return *list_[std::min(i, list_.size() - 1)]; }
  int depth(size_t i) const { return depth_[std::min(i, depth_.size() - 1)]; }
  bool Keyword(size_t i, absl::string_view word) const { return IsKeyword((*this)[i], word); }
  bool Op(size_t i, absl::string_view op) const { return IsOperator((*this)[i], op); }
  bool End(size_t i) const { return (*this)[i].kind == TokenKind::kEnd; }
  // Bytes covered by significant tokens [from, to).
  Span SpanOf(size_t from, size_t to) const {
    if (to <= from) return Span{(*this)[from].offset, (*this)[from].offset};
    const Token& last = (*this)[to - 1];
    return Span{(*this)[from].offset, last.offset + last.text.size()};
  }
  // The index of the ")" matching the "(" at `open`, or size()-1.
  size_t Match(size_t open) const {
    return open < match_.size() && IsOperator(*list_[open], "(") ? match_[open] : size() - 1;
  }

 private:
  std::vector<Token> all_;
  std::vector<const Token*> list_;
  std::vector<int> depth_;
  std::vector<size_t> match_;  // for "(": the index of its ")"
  int max_depth_ = 0;
};

bool IsIdentifierToken(const Token& token) {
  return token.kind == TokenKind::kIdentifier || token.kind == TokenKind::kQuotedIdentifier;
}

// Top-level keywords that end the current clause of a SELECT.
bool IsSelectClauseKeyword(const Tokens& t, size_t i) {
  if (t.depth(i) != 0) return false;
  for (const char* word : {"FROM", "WHERE", "GROUP", "HAVING", "WINDOW", "ORDER", "LIMIT", "UNION",
                           "INTERSECT", "EXCEPT", "RETURNING"}) {
    if (t.Keyword(i, word)) {
      // `a IS [NOT] DISTINCT FROM b` is an expression, not a clause.
      if (std::string(word) == "FROM" && i >= 2 && t.Keyword(i - 1, "DISTINCT") &&
          (t.Keyword(i - 2, "IS") || t.Keyword(i - 2, "NOT"))) {
        return false;
      }
      return true;
    }
  }
  return false;
}

size_t SkipToClauseEnd(const Tokens& t, size_t i) {
  while (!t.End(i) && !IsSelectClauseKeyword(t, i)) ++i;
  return i;
}

// Splits [from, to) at top-level commas (depth equal to `depth`).
std::vector<std::pair<size_t, size_t>> SplitCommas(const Tokens& t, size_t from, size_t to,
                                                   int depth) {
  std::vector<std::pair<size_t, size_t>> parts;
  size_t start = from;
  for (size_t i = from; i < to; ++i) {
    if (t.Op(i, ",") && t.depth(i) == depth) {
      parts.emplace_back(start, i);
      start = i + 1;
    }
  }
  if (start < to) parts.emplace_back(start, to);
  return parts;
}

// Whether the token at i can end an expression, so that a name after it is an
// implicit alias (`SELECT a b`), not an operand (`SELECT a AND b`, `a LIKE b`).
bool EndsAnExpression(const Tokens& t, size_t i) {
  const Token& token = t[i];
  switch (token.kind) {
    case TokenKind::kString:
    case TokenKind::kNumber:
    case TokenKind::kBlob:
    case TokenKind::kParameter:
    case TokenKind::kQuotedIdentifier:
      return true;
    case TokenKind::kOperator:
      return token.text == ")";
    case TokenKind::kIdentifier: {
      if (IsReservedWord(token.text)) return IsKeyword(token, "NULL") || IsKeyword(token, "END");
      for (const char* word :
           {"LIKE", "GLOB", "MATCH", "REGEXP", "IS", "NOT", "ESCAPE", "COLLATE", "AND", "OR", "IN",
            "BETWEEN", "CASE", "WHEN", "THEN", "ELSE", "DISTINCT", "CAST", "AS"}) {
        if (IsKeyword(token, word)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

absl::StatusOr<SelectItem> ParseItem(const Tokens& t, size_t from, size_t to) {
  if (from >= to) return SyntaxError(t[from], "an expression");
  SelectItem item;
  item.whole = t.SpanOf(from, to);
  if (to - from == 1 && t.Op(from, "*")) {
    item.star = true;
    item.expression = item.whole;
    return item;
  }
  if (to - from == 3 && t.Op(from + 1, ".") && t.Op(from + 2, "*")) {
    item.star = true;
    item.star_qualifier = IdentifierValue(t[from]);
    item.expression = item.whole;
    return item;
  }
  size_t end = to;
  if (to - from >= 3 && t.Keyword(to - 2, "AS") && IsNameToken(t[to - 1])) {
    item.alias = IdentifierValue(t[to - 1]);
    end = to - 2;
  } else if (to - from >= 2 && IsIdentifierToken(t[to - 1]) &&
             !(t[to - 1].kind == TokenKind::kIdentifier && IsReservedWord(t[to - 1].text)) &&
             EndsAnExpression(t, to - 2)) {
    item.alias = IdentifierValue(t[to - 1]);
    end = to - 1;
  }
  item.expression = t.SpanOf(from, end);
  return item;
}

absl::Status Unsupported(absl::string_view construct, absl::string_view hint) {
  return Error(absl::StatusCode::kUnimplemented, reason::kUnsupportedStatement,
               absl::StrCat(construct, " is not supported: ", hint));
}

// Parses a table name ([main.]name) at i; returns the index after it.
absl::StatusOr<size_t> ParseTableName(const Tokens& t, size_t i, std::string* table) {
  if (!IsNameToken(t[i])) return SyntaxError(t[i], "a table name");
  if (t.Op(i + 1, ".")) {
    if (!SameName(IdentifierValue(t[i]), "main")) {
      return Error(
          absl::StatusCode::kInvalidArgument, reason::kSqlSyntax,
          absl::StrCat("schema ", IdentifierValue(t[i]), " does not exist; tables live in main"));
    }
    i += 2;
    if (!IsNameToken(t[i])) return SyntaxError(t[i], "a table name");
  }
  *table = IdentifierValue(t[i]);
  if (auto s = CheckName(*table, "table name", reason::kSqlSyntax); !s.ok()) return s;
  return i + 1;
}

// Parses an optional alias ([AS] name) at i when followed by one of `stops`.
size_t ParseAlias(const Tokens& t, size_t i, std::string* alias) {
  if (t.Keyword(i, "AS") && IsNameToken(t[i + 1])) {
    *alias = IdentifierValue(t[i + 1]);
    return i + 2;
  }
  if (IsIdentifierToken(t[i]) && !(t[i].kind == TokenKind::kIdentifier &&
                                   (IsReservedWord(t[i].text) || t.Keyword(i, "INDEXED") ||
                                    t.Keyword(i, "RETURNING") || t.Keyword(i, "WINDOW")))) {
    *alias = IdentifierValue(t[i]);
    return i + 1;
  }
  return i;
}

std::optional<PinValue> ParseValue(const Tokens& t, size_t from, size_t to,
                                   const std::map<size_t, int>& param_numbers) {
  bool negative = false;
  if (to - from == 2 && (t.Op(from, "-") || t.Op(from, "+"))) {
    negative = t.Op(from, "-");
    ++from;
    if (t[from].kind != TokenKind::kNumber) return std::nullopt;
  }
  if (to - from != 1) return std::nullopt;
  const Token& token = t[from];
  PinValue value;
  switch (token.kind) {
    case TokenKind::kNumber: {
      if (IsIntegerLiteral(token)) {
        auto v = IntegerValue(token, negative);
        if (!v.ok()) return std::nullopt;
        value.kind = PinValue::Kind::kInteger;
        value.integer = *v;
      } else {
        double d = 0;
        if (!absl::SimpleAtod(token.text, &d)) return std::nullopt;
        value.kind = PinValue::Kind::kReal;
        value.real = negative ? -d : d;
      }
      return value;
    }
    case TokenKind::kString:
      value.kind = PinValue::Kind::kText;
      value.bytes = StringValue(token);
      return value;
    case TokenKind::kBlob:
      value.kind = PinValue::Kind::kBlob;
      value.bytes = absl::HexStringToBytes(token.text.substr(2, token.text.size() - 3));
      return value;
    case TokenKind::kParameter: {
      auto it = param_numbers.find(from);
      if (it == param_numbers.end()) return std::nullopt;
      value.kind = PinValue::Kind::kParameter;
      value.parameter = it->second;
      return value;
    }
    case TokenKind::kIdentifier:
      if (IsKeyword(token, "NULL")) return value;
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

// A column reference spanning [from, to): col or q.col with q the table or alias.
std::optional<std::string> ParseColumnRef(const Tokens& t, size_t from, size_t to,
                                          const DmlStatement& out) {
  if (to - from == 1 && IsIdentifierToken(t[from])) return IdentifierValue(t[from]);
  if (to - from == 3 && IsNameToken(t[from]) && t.Op(from + 1, ".") &&
      IsIdentifierToken(t[from + 2])) {
    std::string q = IdentifierValue(t[from]);
    if (SameName(q, out.table) || (!out.table_alias.empty() && SameName(q, out.table_alias))) {
      return IdentifierValue(t[from + 2]);
    }
  }
  return std::nullopt;
}

// The pins among the top-level conjuncts of the WHERE expression [from, to).
void FindPins(const Tokens& t, size_t from, size_t to, const std::map<size_t, int>& params,
              DmlStatement* out) {
  const int depth = t.depth(from);
  std::vector<std::pair<size_t, size_t>> conjuncts;
  size_t start = from;
  bool in_between = false;
  for (size_t i = from; i < to; ++i) {
    if (t.depth(i) != depth) continue;
    // A disjunction pins nothing (conservative); neither does CASE, whose
    // WHEN … AND … THEN has no parentheses to mark it off.
    if (t.Keyword(i, "OR") || t.Keyword(i, "CASE")) return;
    if (t.Keyword(i, "BETWEEN")) in_between = true;
    if (t.Keyword(i, "AND")) {
      if (in_between) {
        in_between = false;
        continue;
      }
      conjuncts.emplace_back(start, i);
      start = i + 1;
    }
  }
  conjuncts.emplace_back(start, to);
  for (auto [a, b] : conjuncts) {
    // Peel redundant parentheses: (x = 1).
    while (b - a >= 2 && t.Op(a, "(") && t.Match(a) == b - 1) {
      ++a;
      --b;
    }
    size_t eq = a;
    while (eq < b && !(t.depth(eq) == t.depth(a) && (t.Op(eq, "=") || t.Op(eq, "==")))) ++eq;
    if (eq < b) {
      auto column = ParseColumnRef(t, a, eq, *out);
      auto value = ParseValue(t, eq + 1, b, params);
      if (!column.has_value() || !value.has_value()) {
        column = ParseColumnRef(t, eq + 1, b, *out);
        value = ParseValue(t, a, eq, params);
      }
      if (column.has_value() && value.has_value()) {
        out->pins.push_back(ColumnPin{*column, {*value}});
      }
      continue;
    }
    size_t in = a;
    while (in < b && !(t.depth(in) == t.depth(a) && t.Keyword(in, "IN"))) ++in;
    if (in >= b || in == a || t.Keyword(in - 1, "NOT") || !t.Op(in + 1, "(") ||
        t.Match(in + 1) != b - 1) {
      continue;
    }
    auto column = ParseColumnRef(t, a, in, *out);
    if (!column.has_value()) continue;
    ColumnPin pin{*column, {}};
    bool all_values = true;
    for (auto [va, vb] : SplitCommas(t, in + 2, b - 1, t.depth(in + 2))) {
      auto value = ParseValue(t, va, vb, params);
      if (!value.has_value()) {
        all_values = false;
        break;
      }
      pin.values.push_back(*value);
    }
    if (all_values && !pin.values.empty()) out->pins.push_back(std::move(pin));
  }
}

void FindAggregates(const Tokens& t, DmlStatement* out) {
  static const char* kAggregates[] = {"count", "sum", "total",        "min",
                                      "max",   "avg", "group_concat", "string_agg"};
  for (size_t i = 0; i + 1 < t.size(); ++i) {
    if (t.Keyword(i, "OVER") || t.Keyword(i, "WINDOW")) out->has_window = true;
    if (t[i].kind != TokenKind::kIdentifier || !t.Op(i + 1, "(")) continue;
    std::string name = absl::AsciiStrToLower(t[i].text);
    if (std::find(std::begin(kAggregates), std::end(kAggregates), name) == std::end(kAggregates)) {
      continue;
    }
    size_t close = t.Match(i + 1);
    AggregateCall call;
    call.function = name;
    size_t arg = i + 2;
    if (t.Keyword(arg, "DISTINCT")) {
      call.distinct = true;
      ++arg;
    }
    if (arg + 1 == close && t.Op(arg, "*")) {
      call.star = true;
    } else {
      call.argument = t.SpanOf(arg, close);
    }
    // min(a, b) and max(a, b) are scalar functions.
    if ((name == "min" || name == "max") &&
        SplitCommas(t, arg, close, t.depth(i + 1) + 1).size() > 1) {
      continue;
    }
    size_t after = close + 1;
    if (t.Keyword(after, "FILTER")) {
      call.filtered = true;
      if (t.Op(after + 1, "(")) after = t.Match(after + 1) + 1;
    }
    if (t.Keyword(after, "OVER")) call.windowed = true;
    call.call = t.SpanOf(i, close + 1);
    out->aggregates.push_back(call);
  }
}

absl::Status ParseReturning(const Tokens& t, size_t i, DmlStatement* out) {
  // REQUIRES: t[i] is RETURNING.
  size_t end = i + 1;
  while (!t.End(end)) ++end;
  out->returning = t.SpanOf(i + 1, end);
  out->returning_clause = t.SpanOf(i, end);
  for (auto [a, b] : SplitCommas(t, i + 1, end, 0)) {
    auto item = ParseItem(t, a, b);
    if (!item.ok()) return item.status();
    out->returning_items.push_back(*item);
  }
  if (out->returning_items.empty()) return SyntaxError(t[i + 1], "a RETURNING list");
  return absl::OkStatus();
}

absl::Status ParseSelect(const Tokens& t, const std::map<size_t, int>& params, DmlStatement* out) {
  size_t i = 1;
  if (t.Keyword(i, "DISTINCT")) {
    out->distinct = true;
    ++i;
  } else if (t.Keyword(i, "ALL")) {
    ++i;
  }
  size_t list_end = SkipToClauseEnd(t, i);
  for (auto [a, b] : SplitCommas(t, i, list_end, 0)) {
    auto item = ParseItem(t, a, b);
    if (!item.ok()) return item.status();
    out->items.push_back(*item);
  }
  if (out->items.empty()) return SyntaxError(t[i], "a result column");
  i = list_end;
  if (t.Keyword(i, "FROM")) {
    size_t from_end = SkipToClauseEnd(t, i + 1);
    for (size_t j = i + 1; j < from_end; ++j) {
      if (t.depth(j) == 0 && (t.Op(j, ",") || t.Keyword(j, "JOIN") || t.Keyword(j, "NATURAL") ||
                              t.Keyword(j, "CROSS"))) {
        return Unsupported("a JOIN",
                           "a query reads one table (JOINs across tables are not "
                           "supported yet)");
      }
      if (t.Op(j, "(")) {
        return Unsupported("a subquery or table-valued function in FROM",
                           "a query reads one table by name");
      }
    }
    auto after = ParseTableName(t, i + 1, &out->table);
    if (!after.ok()) return after.status();
    size_t k = ParseAlias(t, *after, &out->table_alias);
    if (t.Keyword(k, "INDEXED") || (t.Keyword(k, "NOT") && t.Keyword(k + 1, "INDEXED"))) {
      k = from_end;
    }
    if (k != from_end) return SyntaxError(t[k], "WHERE, GROUP BY, ORDER BY, LIMIT or the end");
    out->from = t.SpanOf(i + 1, from_end);
    i = from_end;
  }
  if (t.Keyword(i, "WHERE")) {
    size_t end = SkipToClauseEnd(t, i + 1);
    if (end == i + 1) return SyntaxError(t[end], "an expression after WHERE");
    out->where = t.SpanOf(i + 1, end);
    out->where_clause = t.SpanOf(i, end);
    FindPins(t, i + 1, end, params, out);
    i = end;
  }
  if (t.Keyword(i, "GROUP")) {
    if (!t.Keyword(i + 1, "BY")) return SyntaxError(t[i + 1], "BY");
    size_t end = SkipToClauseEnd(t, i + 2);
    out->group_by = t.SpanOf(i + 2, end);
    i = end;
  }
  if (t.Keyword(i, "HAVING")) {
    size_t end = SkipToClauseEnd(t, i + 1);
    out->having = t.SpanOf(i + 1, end);
    i = end;
  }
  if (t.Keyword(i, "WINDOW")) {
    out->has_window = true;
    i = SkipToClauseEnd(t, i + 1);
  }
  if (t.Keyword(i, "UNION") || t.Keyword(i, "INTERSECT") || t.Keyword(i, "EXCEPT")) {
    return Unsupported("a compound SELECT (UNION, INTERSECT, EXCEPT)",
                       "run the SELECTs separately");
  }
  if (t.Keyword(i, "ORDER")) {
    if (!t.Keyword(i + 1, "BY")) return SyntaxError(t[i + 1], "BY");
    size_t end = SkipToClauseEnd(t, i + 2);
    for (auto [a, b] : SplitCommas(t, i + 2, end, 0)) out->order_terms.push_back(t.SpanOf(a, b));
    i = end;
  }
  if (t.Keyword(i, "LIMIT")) {
    size_t end = SkipToClauseEnd(t, i + 1);
    out->limit_clause = t.SpanOf(i, end);
    size_t split = i + 1;
    while (split < end &&
           !(t.depth(split) == 0 && (t.Keyword(split, "OFFSET") || t.Op(split, ","))))
      ++split;
    if (split == end) {
      out->limit = t.SpanOf(i + 1, end);
    } else if (t.Op(split, ",")) {  // LIMIT offset, count
      out->offset = t.SpanOf(i + 1, split);
      out->limit = t.SpanOf(split + 1, end);
    } else {
      out->limit = t.SpanOf(i + 1, split);
      out->offset = t.SpanOf(split + 1, end);
    }
    i = end;
  }
  if (t.Keyword(i, "UNION") || t.Keyword(i, "INTERSECT") || t.Keyword(i, "EXCEPT")) {
    return Unsupported("a compound SELECT (UNION, INTERSECT, EXCEPT)",
                       "run the SELECTs separately");
  }
  if (!t.End(i)) return SyntaxError(t[i], "the end of the SELECT");
  FindAggregates(t, out);
  return absl::OkStatus();
}

absl::Status ParseInsert(const Tokens& t, DmlStatement* out) {
  size_t i = 0;
  if (t.Keyword(0, "REPLACE")) {
    i = 1;
  } else {
    i = 1;
    if (t.Keyword(i, "OR")) i += 2;
  }
  out->insert_head = t.SpanOf(0, i);
  if (!t.Keyword(i, "INTO")) return SyntaxError(t[i], "INTO");
  auto after = ParseTableName(t, i + 1, &out->table);
  if (!after.ok()) return after.status();
  i = *after;
  if (t.Keyword(i, "AS")) {
    if (!IsNameToken(t[i + 1])) return SyntaxError(t[i + 1], "an alias");
    out->table_alias = IdentifierValue(t[i + 1]);
    i += 2;
  }
  if (t.Op(i, "(")) {
    size_t close = t.Match(i);
    for (auto [a, b] : SplitCommas(t, i + 1, close, 1)) {
      if (b - a != 1 || !IsNameToken(t[a])) return SyntaxError(t[a], "a column name");
      out->insert_columns.push_back(IdentifierValue(t[a]));
    }
    i = close + 1;
  }
  if (t.Keyword(i, "SELECT") || t.Keyword(i, "WITH")) {
    return Unsupported("INSERT … SELECT", "insert rows with VALUES");
  }
  if (t.Keyword(i, "DEFAULT") && t.Keyword(i + 1, "VALUES")) {
    out->default_values = true;
    i += 2;
  } else {
    if (!t.Keyword(i, "VALUES")) return SyntaxError(t[i], "VALUES");
    ++i;
    while (true) {
      if (!t.Op(i, "(")) return SyntaxError(t[i], "a parenthesised row of values");
      size_t close = t.Match(i);
      out->value_rows.push_back(t.SpanOf(i, close + 1));
      i = close + 1;
      if (!t.Op(i, ",")) break;
      ++i;
    }
  }
  size_t tail_start = i;
  while (!t.End(i) && !(t.depth(i) == 0 && t.Keyword(i, "RETURNING"))) ++i;
  out->insert_tail = t.SpanOf(tail_start, i);
  if (t.Keyword(i, "RETURNING")) return ParseReturning(t, i, out);
  return absl::OkStatus();
}

absl::Status ParseWhereAndReturning(const Tokens& t, size_t i, const std::map<size_t, int>& params,
                                    DmlStatement* out) {
  if (t.Keyword(i, "FROM")) {
    return Unsupported("UPDATE … FROM", "an UPDATE changes one table by its own columns");
  }
  if (t.Keyword(i, "WHERE")) {
    size_t end = i + 1;
    while (!t.End(end) &&
           !(t.depth(end) == 0 &&
             (t.Keyword(end, "RETURNING") || t.Keyword(end, "ORDER") || t.Keyword(end, "LIMIT")))) {
      ++end;
    }
    if (end == i + 1) return SyntaxError(t[end], "an expression after WHERE");
    out->where = t.SpanOf(i + 1, end);
    out->where_clause = t.SpanOf(i, end);
    FindPins(t, i + 1, end, params, out);
    i = end;
  }
  if (t.Keyword(i, "ORDER") || t.Keyword(i, "LIMIT")) {
    return Unsupported("ORDER BY or LIMIT on UPDATE / DELETE",
                       "select the keys first, then change them by key");
  }
  if (t.Keyword(i, "RETURNING")) return ParseReturning(t, i, out);
  if (!t.End(i)) return SyntaxError(t[i], "WHERE, RETURNING or the end");
  return absl::OkStatus();
}

absl::Status ParseUpdate(const Tokens& t, const std::map<size_t, int>& params, DmlStatement* out) {
  size_t i = 1;
  if (t.Keyword(i, "OR")) i += 2;
  auto after = ParseTableName(t, i, &out->table);
  if (!after.ok()) return after.status();
  i = ParseAlias(t, *after, &out->table_alias);
  if (t.Keyword(i, "INDEXED")) i += 3;
  if (t.Keyword(i, "NOT") && t.Keyword(i + 1, "INDEXED")) i += 2;
  if (!t.Keyword(i, "SET")) return SyntaxError(t[i], "SET");
  size_t end = i + 1;
  while (!t.End(end) &&
         !(t.depth(end) == 0 &&
           (t.Keyword(end, "WHERE") || t.Keyword(end, "FROM") || t.Keyword(end, "RETURNING") ||
            t.Keyword(end, "ORDER") || t.Keyword(end, "LIMIT")))) {
    ++end;
  }
  out->set_clause = t.SpanOf(i + 1, end);
  for (auto [a, b] : SplitCommas(t, i + 1, end, 0)) {
    if (t.Op(a, "(")) {
      size_t close = t.Match(a);
      for (auto [ca, cb] : SplitCommas(t, a + 1, close, 1)) {
        if (cb - ca != 1 || !IsNameToken(t[ca])) return SyntaxError(t[ca], "a column name");
        out->assigned_columns.push_back(IdentifierValue(t[ca]));
      }
    } else if (IsNameToken(t[a])) {
      out->assigned_columns.push_back(IdentifierValue(t[a]));
    } else {
      return SyntaxError(t[a], "a column name");
    }
  }
  if (out->assigned_columns.empty()) return SyntaxError(t[i + 1], "an assignment");
  return ParseWhereAndReturning(t, end, params, out);
}

absl::Status ParseDelete(const Tokens& t, const std::map<size_t, int>& params, DmlStatement* out) {
  if (!t.Keyword(1, "FROM")) return SyntaxError(t[1], "FROM");
  auto after = ParseTableName(t, 2, &out->table);
  if (!after.ok()) return after.status();
  size_t i = ParseAlias(t, *after, &out->table_alias);
  if (t.Keyword(i, "INDEXED")) i += 3;
  if (t.Keyword(i, "NOT") && t.Keyword(i + 1, "INDEXED")) i += 2;
  return ParseWhereAndReturning(t, i, params, out);
}

}  // namespace

absl::StatusOr<DmlStatement> AnalyzeDml(absl::string_view sql) {
  if (sql.find('\0') != absl::string_view::npos) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kSqlSyntax,
                 "the statement contains a NUL character");
  }
  auto all = Tokenize(sql);
  if (!all.ok()) return all.status();
  auto statement = FirstStatement(*all);
  if (!statement.ok()) return statement.status();
  Tokens t(std::move(*statement));
  if (t.End(0)) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kSqlSyntax, "empty statement");
  }
  if (t.max_depth() > kMaxNesting) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kSqlSyntax,
                 absl::StrCat("parentheses nest deeper than ", kMaxNesting, " levels"));
  }
  if (t.Keyword(0, "WITH")) {
    return Unsupported("WITH (common table expressions)", "write the query without WITH");
  }
  DmlStatement out;
  out.sql = std::string(sql);
  // Up to the end of the last significant token: a trailing `-- comment`
  // must not swallow text the planner appends.
  out.end_offset = t.size() >= 2 ? t.SpanOf(t.size() - 2, t.size() - 1).end : t[0].offset;

  // Parameters, SQLite's numbering: ? is one past the largest so far, ?NNN is
  // NNN, a name keeps the number it first got.
  std::map<size_t, int> param_numbers;
  std::map<std::string, int> named;
  for (size_t i = 0; i < t.size(); ++i) {
    const Token& token = t[i];
    if (token.kind == TokenKind::kParameter) {
      int number = 0;
      if (token.text == "?") {
        number = out.parameter_count + 1;
      } else if (token.text[0] == '?') {
        if (!absl::SimpleAtoi(token.text.substr(1), &number) || number < 1 || number > 32766) {
          return SyntaxError(token, "a parameter number between 1 and 32766");
        }
      } else {
        auto it = named.find(std::string(token.text));
        number = it != named.end() ? it->second : out.parameter_count + 1;
        named[std::string(token.text)] = number;
      }
      out.parameter_count = std::max(out.parameter_count, number);
      param_numbers[i] = number;
      out.parameters.emplace_back(t.SpanOf(i, i + 1), number);
    }
    if (IsIdentifierToken(token) && !t.Op(i + 1, "(") && !t.Op(i + 1, ".")) {
      std::string value = IdentifierValue(token);
      if (SameName(value, kVirtualShardColumn)) {
        return Error(absl::StatusCode::kInvalidArgument, reason::kSqlError,
                     absl::StrCat("no such column: ", value));
      }
      out.identifiers.emplace_back(t.SpanOf(i, i + 1), std::move(value));
    }
    if (t.depth(i) > 0 && t.Keyword(i, "SELECT")) {
      return Unsupported("a subquery",
                         "a statement reads or changes one table, without "
                         "nested SELECTs");
    }
  }

  absl::Status status;
  if (t.Keyword(0, "SELECT")) {
    out.kind = StatementKind::kSelect;
    status = ParseSelect(t, param_numbers, &out);
  } else if (t.Keyword(0, "INSERT") || t.Keyword(0, "REPLACE")) {
    out.kind = StatementKind::kInsert;
    status = ParseInsert(t, &out);
  } else if (t.Keyword(0, "UPDATE")) {
    out.kind = StatementKind::kUpdate;
    status = ParseUpdate(t, param_numbers, &out);
  } else if (t.Keyword(0, "DELETE")) {
    out.kind = StatementKind::kDelete;
    status = ParseDelete(t, param_numbers, &out);
  } else {
    status = SyntaxError(t[0], "SELECT, INSERT, UPDATE or DELETE");
  }
  if (!status.ok()) return status;
  return out;
}

std::string ApplyEdits(absl::string_view text, std::vector<TextEdit> edits) {
  std::sort(edits.begin(), edits.end(),
            [](const TextEdit& a, const TextEdit& b) { return a.span.begin < b.span.begin; });
  std::string out;
  size_t at = 0;
  for (const TextEdit& edit : edits) {
    if (edit.span.begin < at) continue;  // overlapping edits: the first wins
    absl::StrAppend(&out, text.substr(at, edit.span.begin - at), edit.replacement);
    at = edit.span.end;
  }
  absl::StrAppend(&out, text.substr(at));
  return out;
}

}  // namespace conductor::sql
