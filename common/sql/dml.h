// DML analysis: the light structure of one INSERT / SELECT / UPDATE / DELETE
// that routing and rewriting need (DESIGN.md §5a) — its table, clause
// boundaries as byte spans of the statement text, parameter numbering, and the
// WHERE conjuncts that pin columns to values. Expressions are never
// evaluated here; SQLite does that on the nodes and in the merge.
#ifndef CONDUCTOR_COMMON_SQL_DML_H_
#define CONDUCTOR_COMMON_SQL_DML_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/sql/parser.h"
#include "common/sql/tokenizer.h"

namespace conductor::sql {

// A byte range [begin, end) of DmlStatement::sql. Empty when absent.
struct Span {
  size_t begin = 0;
  size_t end = 0;
  bool empty() const { return end <= begin; }
};

// A value written in the statement: a literal token or a bound parameter.
struct PinValue {
  enum class Kind { kNull, kInteger, kReal, kText, kBlob, kParameter };
  Kind kind = Kind::kNull;
  int64_t integer = 0;
  double real = 0;
  std::string bytes;  // text or blob
  int parameter = 0;  // 1-based, kParameter only
};

// `column = value`, `value = column` or `column IN (value, …)` as a top-level
// conjunct of WHERE (so every row the statement touches satisfies it).
struct ColumnPin {
  std::string column;
  std::vector<PinValue> values;
};

struct SelectItem {
  Span expression;             // without the alias
  Span whole;                  // expression and alias
  std::string alias;           // "" when none
  bool star = false;           // * or q.*
  std::string star_qualifier;  // q of q.*
};

// A call of an aggregate function somewhere in the statement.
struct AggregateCall {
  std::string function;   // lower-cased: count, sum, total, min, max, avg, group_concat…
  Span call;              // name through ")"
  Span argument;          // inside the parentheses; empty for count(*)
  bool star = false;      // count(*)
  bool distinct = false;  // f(DISTINCT x)
  bool filtered = false;  // FILTER (WHERE …) follows
  bool windowed = false;  // OVER … follows: a window function, not an aggregate
};

struct DmlStatement {
  StatementKind kind = StatementKind::kSelect;
  std::string sql;          // the statement text; every Span refers to it
  size_t end_offset = 0;    // where the statement ends (before any ';')
  std::string table;        // unquoted; "" for SELECT without FROM
  std::string table_alias;  // FROM t AS a / INSERT INTO t AS a
  int parameter_count = 0;  // highest parameter number (SQLite's numbering)
  // Every parameter token and its number, in text order.
  std::vector<std::pair<Span, int>> parameters;
  // Every bare or quoted identifier that is followed by neither "(" nor ".",
  // with its value: column references (and aliases, keywords used as names).
  std::vector<std::pair<Span, std::string>> identifiers;

  // SELECT
  bool distinct = false;
  std::vector<SelectItem> items;
  Span from;          // the table reference after FROM (name and alias)
  Span where;         // the expression after WHERE
  Span where_clause;  // WHERE and its expression
  Span group_by;      // terms after GROUP BY
  Span having;        // expression after HAVING
  std::vector<Span> order_terms;
  Span limit_clause;  // LIMIT … [OFFSET …]
  Span limit;         // the row-count expression
  Span offset;        // the offset expression (either syntax)
  std::vector<AggregateCall> aggregates;
  bool has_window = false;  // a window function or WINDOW clause

  // INSERT
  Span insert_head;                         // "INSERT [OR x]" / "REPLACE"
  std::vector<std::string> insert_columns;  // as written; empty = every column
  std::vector<Span> value_rows;             // each "( … )" of VALUES
  Span insert_tail;                         // upsert clause, up to RETURNING
  bool default_values = false;

  // UPDATE
  Span set_clause;  // assignments after SET
  std::vector<std::string> assigned_columns;

  // INSERT / UPDATE / DELETE
  Span returning;         // the list after RETURNING
  Span returning_clause;  // RETURNING and its list
  std::vector<SelectItem> returning_items;

  std::vector<ColumnPin> pins;

  absl::string_view Text(const Span& span) const {
    return absl::string_view(sql).substr(span.begin, span.end - span.begin);
  }
};

// Analyses one data statement. Errors: INVALID_ARGUMENT / SQL_SYNTAX for
// malformed text; INVALID_ARGUMENT / SQL_ERROR ("no such column") for any
// reference to the hidden _virtualShard column;
// UNIMPLEMENTED / UNSUPPORTED_STATEMENT naming the construct for what the
// cluster cannot run correctly: JOINs and comma joins, subqueries, compound
// SELECTs (UNION, INTERSECT, EXCEPT), WITH, INSERT … SELECT, UPDATE … FROM.
absl::StatusOr<DmlStatement> AnalyzeDml(absl::string_view sql);

// Replaces spans of `text` (non-overlapping, any order) and returns the result.
struct TextEdit {
  Span span;
  std::string replacement;
};
std::string ApplyEdits(absl::string_view text, std::vector<TextEdit> edits);

}  // namespace conductor::sql

#endif  // CONDUCTOR_COMMON_SQL_DML_H_
