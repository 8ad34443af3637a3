#include "conductor/planner/query_planner.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/errors.h"
#include "common/routing.h"
#include "common/sql/create_table.h"
#include "common/sql/tokenizer.h"

namespace conductor {
namespace {

using sql::DmlStatement;
using sql::Span;
using sql::StatementKind;
using sql::TextEdit;

// SQLite's default SQLITE_MAX_VARIABLE_NUMBER.
constexpr int kMaxSqliteParameters = 32766;

const sql::ColumnSchema* FindColumn(const TableMeta& table, const std::string& name) {
  for (const auto& column : table.columns) {
    if (sql::SameName(column.name, name)) return &column;
  }
  return nullptr;
}

std::string QuotedColumns(const TableMeta& table, const std::string& qualifier,
                          bool include_generated) {
  std::vector<std::string> names;
  for (const auto& column : table.columns) {
    if (column.generated && !include_generated) continue;
    names.push_back(qualifier.empty() ? QuoteIdentifier(column.name)
                                      : absl::StrCat(QuoteIdentifier(qualifier), ".",
                                                     QuoteIdentifier(column.name)));
  }
  return absl::StrJoin(names, ", ");
}

// Rewrites every parameter as ?N (its SQLite number), so text can be
// inserted anywhere without renumbering the parameters after it.
absl::StatusOr<DmlStatement> NormalizeParameters(const DmlStatement& statement) {
  std::vector<TextEdit> edits;
  for (const auto& [span, number] : statement.parameters) {
    std::string explicit_form = absl::StrCat("?", number);
    if (statement.Text(span) != explicit_form) edits.push_back({span, explicit_form});
  }
  std::string text = statement.sql.substr(0, statement.end_offset);
  if (edits.empty() && text.size() == statement.sql.size()) return statement;
  return sql::AnalyzeDml(sql::ApplyEdits(text, edits));
}

// Expands `*` and `q.*` items into the user's columns.
void ExpandStars(const std::vector<sql::SelectItem>& items, const TableMeta& table,
                 std::vector<TextEdit>* edits) {
  for (const auto& item : items) {
    if (!item.star) continue;
    edits->push_back({item.whole, QuotedColumns(table, item.star_qualifier, true)});
  }
}

// `_virtualShard = ?K AND (<where>)`, or just the filter without a WHERE.
std::string ShardCondition(const DmlStatement& s, int shard_param) {
  std::string filter = absl::StrCat(sql::kVirtualShardColumn, " = ?", shard_param);
  if (s.where.empty()) return filter;
  return absl::StrCat(filter, " AND (", s.Text(s.where), ")");
}

// Makes the statement name exactly one virtual shard: ?shard_param.
void InjectShardFilter(const DmlStatement& s, size_t insert_at, int shard_param,
                       std::vector<TextEdit>* edits) {
  if (!s.where.empty()) {
    edits->push_back({s.where, ShardCondition(s, shard_param)});
  } else {
    edits->push_back(
        {Span{insert_at, insert_at}, absl::StrCat(" WHERE ", ShardCondition(s, shard_param), " ")});
  }
}

Value PinToValue(const sql::PinValue& pin, const std::vector<Value>& params) {
  switch (pin.kind) {
    case sql::PinValue::Kind::kInteger:
      return IntegerValue(pin.integer);
    case sql::PinValue::Kind::kReal:
      return RealValue(pin.real);
    case sql::PinValue::Kind::kText:
      return TextValue(pin.bytes);
    case sql::PinValue::Kind::kBlob:
      return BlobValue(pin.bytes);
    case sql::PinValue::Kind::kParameter:
      return pin.parameter <= static_cast<int>(params.size()) ? params[pin.parameter - 1]
                                                              : NullValue();
    case sql::PinValue::Kind::kNull:
    default:
      return NullValue();
  }
}

// Where a statement goes: its route ("shard_key", "virtual_index" or
// "scatter"), the index used, and the target shards sorted by id.
struct Targets {
  std::string route = "scatter";
  std::string index_name;
  std::vector<const ShardMeta*> shards;
};

// The most value tuples an IN list over index columns may expand to before
// the planner gives up on the index and scatters.
constexpr size_t kMaxIndexTuples = 1000;

// The shards a statement can touch: those owning the pinned shard-key values;
// else those a ready virtual index names for its pinned columns; else every
// active shard.
absl::StatusOr<Targets> TargetShards(const DmlStatement& s, const TableMeta& table,
                                     const std::vector<Value>& params,
                                     const IndexResolver* resolver) {
  std::vector<const ShardMeta*> all = ActiveShards(table);
  Targets out;
  auto finish = [&](std::vector<const ShardMeta*> targets) {
    if (targets.empty()) targets.push_back(all.front());  // nothing can match; ask one shard
    std::sort(targets.begin(), targets.end(),
              [](const ShardMeta* a, const ShardMeta* b) { return a->shard_id < b->shard_id; });
    out.shards = std::move(targets);
    return out;
  };
  for (const auto& pin : s.pins) {
    if (!sql::SameName(pin.column, table.shard_key)) continue;
    std::set<int32_t> ids;
    std::vector<const ShardMeta*> targets;
    for (const auto& pin_value : pin.values) {
      Value value = PinToValue(pin_value, params);
      if (value.kind_case() == Value::kNullValue || value.kind_case() == Value::KIND_NOT_SET) {
        continue;  // `key = NULL` matches no row
      }
      const ShardMeta* shard = OwningShard(table, value);
      if (ids.insert(shard->shard_id).second) targets.push_back(shard);
    }
    out.route = "shard_key";
    return finish(std::move(targets));
  }
  if (resolver != nullptr) {
    // Unique indexes first: they name the fewest shards.
    std::vector<const IndexMeta*> ready;
    for (const IndexMeta& index : table.indexes) {
      if (index.status == index_status::kReady) ready.push_back(&index);
    }
    std::stable_sort(ready.begin(), ready.end(),
                     [](const IndexMeta* a, const IndexMeta* b) { return a->unique > b->unique; });
    for (const IndexMeta* index : ready) {
      // Every column pinned; the tuples are the product of the pinned values.
      std::vector<std::vector<Value>> tuples = {{}};
      bool usable = true;
      for (const std::string& column : index->columns) {
        const sql::ColumnPin* found = nullptr;
        for (const auto& pin : s.pins) {
          if (sql::SameName(pin.column, column)) {
            found = &pin;
            break;
          }
        }
        if (found == nullptr || tuples.size() * found->values.size() > kMaxIndexTuples) {
          usable = false;
          break;
        }
        std::vector<std::vector<Value>> next;
        for (const auto& tuple : tuples) {
          for (const auto& pin_value : found->values) {
            next.push_back(tuple);
            next.back().push_back(PinToValue(pin_value, params));
          }
        }
        tuples = std::move(next);
      }
      if (!usable) continue;
      auto ids = resolver->ShardsFor(table, *index, tuples);
      if (!ids.ok()) return ids.status();
      std::set<int32_t> wanted(ids->begin(), ids->end());
      std::vector<const ShardMeta*> targets;
      for (const ShardMeta* shard : all) {
        if (wanted.count(shard->shard_id) > 0) targets.push_back(shard);
      }
      out.route = "virtual_index";
      out.index_name = index->name;
      return finish(std::move(targets));
    }
  }
  out.shards = std::move(all);
  return out;
}

ShardStatement MakeShardStatement(const ShardMeta& shard, const Snapshot& snapshot, std::string sql,
                                  const std::vector<Value>& params) {
  ShardStatement out;
  out.shard_id = shard.shard_id;
  const NodeMeta* node = snapshot.FindNode(shard.node_id);
  out.node = node != nullptr ? *node : NodeMeta{shard.node_id, ""};
  out.sql = std::move(sql);
  out.params = params;
  out.params.push_back(IntegerValue(shard.shard_id));
  return out;
}

// Evaluates integer expressions (LIMIT / OFFSET) the way SQLite would.
absl::StatusOr<int64_t> EvaluateInteger(absl::string_view expression,
                                        const std::vector<Value>& params, int64_t absent) {
  if (expression.empty()) return absent;
  int64_t literal = 0;
  if (absl::SimpleAtoi(expression, &literal)) return literal;
  auto db = Database::Open(":memory:");
  if (!db.ok()) return db.status();
  auto stmt = (*db)->Prepare(absl::StrCat("SELECT (", expression, ")"));
  if (!stmt.ok()) return stmt.status();
  for (int i = 1; i <= stmt->ParameterCount() && i <= static_cast<int>(params.size()); ++i) {
    stmt->Bind(i, params[i - 1]).IgnoreError();
  }
  auto row = stmt->Step();
  if (!row.ok()) return row.status();
  // As SQLite's OP_MustBeInt: numeric conversion without loss, else an error.
  Value value = routing::ApplyAffinity(stmt->ColumnValue(0), routing::Affinity::kInteger);
  if (value.kind_case() != Value::kInteger) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kSqlError, "datatype mismatch");
  }
  return value.integer();
}

bool InsideAny(const Span& span, const std::vector<Span>& outer) {
  for (const Span& o : outer) {
    if (span.begin >= o.begin && span.end <= o.end) return true;
  }
  return false;
}

bool Overlaps(const Span& span, const Span& outer) {
  return !outer.empty() && span.begin >= outer.begin && span.end <= outer.end;
}

// True when WHERE refers to a result-column alias (SQLite allows it): such a
// WHERE cannot be pushed below a select list that lacks the alias.
bool WhereUsesAlias(const DmlStatement& s, const TableMeta& table) {
  for (const auto& [span, name] : s.identifiers) {
    if (!Overlaps(span, s.where) || FindColumn(table, name) != nullptr) continue;
    for (const auto& item : s.items) {
      if (!item.alias.empty() && sql::SameName(item.alias, name)) return true;
    }
  }
  return false;
}

struct AggregatePlan {
  std::vector<const sql::ColumnSchema*> group_columns;
};

// Whether SELECT can be answered from per-shard partial aggregates.
bool CanPushAggregates(const DmlStatement& s, const TableMeta& table, AggregatePlan* plan) {
  if (s.aggregates.empty() && s.group_by.empty()) return false;
  if (s.distinct || s.has_window || WhereUsesAlias(s, table)) return false;
  for (const auto& item : s.items) {
    if (item.star) return false;
  }
  static const std::set<std::string> kPushable = {"count", "sum", "total", "min", "max", "avg"};
  std::vector<Span> calls;
  for (const auto& call : s.aggregates) {
    if (kPushable.count(call.function) == 0 || call.distinct || call.filtered || call.windowed) {
      return false;
    }
    if (call.star && call.function != "count") return false;
    if (call.function == "min" || call.function == "max") {
      // An explicit COLLATE decides the comparison; the merge would use BINARY.
      auto argument_tokens = sql::Tokenize(s.Text(call.argument));
      if (!argument_tokens.ok()) return false;
      for (const auto& token : *argument_tokens) {
        if (sql::IsKeyword(token, "COLLATE")) return false;
      }
      // A bare column argument brings its collation; only BINARY merges as-is.
      const sql::ColumnSchema* column = FindColumn(table, std::string(s.Text(call.argument)));
      if (column != nullptr && !sql::SameName(column->collation, "BINARY")) return false;
      // A quoted or qualified bare column is judged the same way.
      for (const auto& [span, name] : s.identifiers) {
        if (Overlaps(span, call.argument)) {
          const sql::ColumnSchema* c = FindColumn(table, name);
          if (c != nullptr && !sql::SameName(c->collation, "BINARY")) return false;
        }
      }
    }
    calls.push_back(call.call);
  }
  // GROUP BY terms must be plain columns of the table (BINARY collation).
  std::set<std::string> grouped;
  if (!s.group_by.empty()) {
    auto tokens = sql::Tokenize(s.Text(s.group_by));
    if (!tokens.ok()) return false;
    bool expect_name = true;
    for (const auto& token : *tokens) {
      if (token.kind == sql::TokenKind::kWhitespace || token.kind == sql::TokenKind::kComment ||
          token.kind == sql::TokenKind::kEnd) {
        continue;
      }
      if (expect_name) {
        if (token.kind != sql::TokenKind::kIdentifier &&
            token.kind != sql::TokenKind::kQuotedIdentifier) {
          return false;
        }
        const sql::ColumnSchema* column = FindColumn(table, sql::IdentifierValue(token));
        if (column == nullptr || !sql::SameName(column->collation, "BINARY")) return false;
        if (grouped.insert(absl::AsciiStrToLower(column->name)).second) {
          plan->group_columns.push_back(column);
        }
        expect_name = false;
      } else if (token.kind == sql::TokenKind::kOperator && token.text == ",") {
        expect_name = true;
      } else {
        return false;  // qualified names, expressions, COLLATE…: not a plain column
      }
    }
  }
  // Outside aggregate calls, only grouped columns may be referenced.
  for (const auto& [span, name] : s.identifiers) {
    if (InsideAny(span, calls) || Overlaps(span, s.where) || Overlaps(span, s.group_by)) {
      continue;
    }
    const sql::ColumnSchema* column = FindColumn(table, name);
    if (column != nullptr && grouped.count(absl::AsciiStrToLower(column->name)) == 0) {
      bool is_alias = false;
      for (const auto& item : s.items) is_alias |= sql::SameName(item.alias, name);
      if (!is_alias) return false;
    }
  }
  return true;
}

std::string FromClause(const DmlStatement& s) { return std::string(s.Text(s.from)); }

std::string ShardWhere(const DmlStatement& s, int shard_param) {
  return absl::StrCat(" WHERE ", ShardCondition(s, shard_param));
}

// `name type COLLATE c` for a merge table column with the user column's
// affinity and collation.
std::string TypedColumn(const sql::ColumnSchema& column) {
  return absl::StrCat(QuoteIdentifier(column.name), " ", column.type, " COLLATE ",
                      column.collation.empty() ? "BINARY" : column.collation);
}

std::string ReplicaTableSql(const TableMeta& table) {
  std::vector<std::string> columns;
  for (const auto& column : table.columns) columns.push_back(TypedColumn(column));
  return absl::StrCat("CREATE TABLE ", QuoteIdentifier(table.name), " (",
                      absl::StrJoin(columns, ", "), ")");
}

absl::StatusOr<QueryPlan> PlanAggregate(const DmlStatement& s, const TableMeta& table,
                                        const AggregatePlan& agg,
                                        const std::vector<const ShardMeta*>& targets,
                                        const Snapshot& snapshot,
                                        const std::vector<Value>& params) {
  QueryPlan plan;
  plan.merge = MergeKind::kInMemory;
  plan.merge_detail = "aggregate (partial aggregates per shard, combined in memory)";
  std::vector<std::string> shard_columns;
  std::vector<std::string> table_columns;
  for (const auto* column : agg.group_columns) {
    shard_columns.push_back(QuoteIdentifier(column->name));
    // Typed like the source column, so comparisons in HAVING and the select
    // list apply the same affinity as on one SQLite database.
    table_columns.push_back(TypedColumn(*column));
  }
  std::vector<TextEdit> edits;
  int partial = 0;
  std::map<std::string, std::string> combined_of;  // the same call is computed once
  for (const auto& call : s.aggregates) {
    std::string argument = call.star ? "*" : std::string(s.Text(call.argument));
    std::string key = absl::StrCat(call.function, "(", argument, ")");
    if (auto it = combined_of.find(key); it != combined_of.end()) {
      edits.push_back({call.call, it->second});
      continue;
    }
    auto add = [&](const std::string& expression) {
      shard_columns.push_back(expression);
      std::string name = absl::StrCat("__p", partial++);
      table_columns.push_back(QuoteIdentifier(name));
      return QuoteIdentifier(name);
    };
    std::string combined;
    if (call.function == "avg") {
      // total(), as SQLite's avg() sums in floating point and never overflows.
      std::string sum = add(absl::StrCat("total(", argument, ")"));
      std::string count = add(absl::StrCat("count(", argument, ")"));
      combined = absl::StrCat("(total(", sum, ") / sum(", count, "))");
    } else if (call.function == "count") {
      combined = absl::StrCat("sum(", add(absl::StrCat("count(", argument, ")")), ")");
    } else {
      std::string p = add(absl::StrCat(call.function, "(", argument, ")"));
      combined = absl::StrCat(call.function, "(", p, ")");
    }
    combined_of[key] = combined;
    edits.push_back({call.call, combined});
  }
  // Result columns keep the names SQLite would give them.
  for (const auto& item : s.items) {
    if (!item.alias.empty()) continue;
    bool has_call = false;
    for (const auto& call : s.aggregates) has_call |= Overlaps(call.call, item.expression);
    if (has_call) {
      edits.push_back({Span{item.whole.end, item.whole.end},
                       absl::StrCat(" AS ", QuoteIdentifier(s.Text(item.expression)))});
    }
  }
  if (!s.where_clause.empty()) edits.push_back({s.where_clause, ""});
  plan.final_sql = sql::ApplyEdits(s.sql.substr(0, s.end_offset), edits);
  plan.final_params = params;
  plan.merge_table = table.name;
  plan.merge_setup.push_back(absl::StrCat("CREATE TABLE ", QuoteIdentifier(table.name), " (",
                                          absl::StrJoin(table_columns, ", "), ")"));
  const int shard_param = s.parameter_count + 1;
  std::string shard_sql = absl::StrCat("SELECT ", absl::StrJoin(shard_columns, ", "), " FROM ",
                                       FromClause(s), ShardWhere(s, shard_param));
  if (!s.group_by.empty()) absl::StrAppend(&shard_sql, " GROUP BY ", s.Text(s.group_by));
  for (const ShardMeta* shard : targets) {
    plan.statements.push_back(MakeShardStatement(*shard, snapshot, shard_sql, params));
  }
  return plan;
}

// Every matching row of every shard, copied into an in-memory replica of the
// table where the user's statement runs unchanged: SQLite's own semantics for
// anything (DISTINCT, window functions, complex aggregates).
absl::StatusOr<QueryPlan> PlanReplica(const DmlStatement& s, const TableMeta& table,
                                      const std::vector<const ShardMeta*>& targets,
                                      const Snapshot& snapshot, const std::vector<Value>& params) {
  QueryPlan plan;
  plan.merge = MergeKind::kInMemory;
  plan.merge_detail = "replica (matching rows copied, statement run in memory)";
  // Columns only: declared type (affinity) and collation, no constraints.
  // Rows come from shards whose UNIQUE constraints are per shard, and
  // generated columns arrive computed.
  plan.merge_setup.push_back(ReplicaTableSql(table));
  plan.merge_table = table.name;
  plan.merge_columns = QuotedColumns(table, "", true);
  plan.final_sql = s.sql.substr(0, s.end_offset);
  plan.final_params = params;
  const int shard_param = s.parameter_count + 1;
  DmlStatement fetch = s;
  if (WhereUsesAlias(s, table)) fetch.where = Span{};
  std::string shard_sql = absl::StrCat("SELECT ", QuotedColumns(table, "", true), " FROM ",
                                       FromClause(s), ShardWhere(fetch, shard_param));
  for (const ShardMeta* shard : targets) {
    plan.statements.push_back(MakeShardStatement(*shard, snapshot, shard_sql, params));
  }
  return plan;
}

// A term of ORDER BY split into its expression and modifiers.
struct OrderTerm {
  std::string expression;
  std::string collation;  // "" = the expression's own
  std::string direction;  // "ASC" / "DESC" / ""
  std::string nulls;      // "NULLS FIRST" / "NULLS LAST" / ""
};

absl::StatusOr<OrderTerm> SplitOrderTerm(absl::string_view text) {
  auto tokens = sql::Tokenize(text);
  if (!tokens.ok()) return tokens.status();
  std::vector<sql::Token> sig;
  for (const auto& token : *tokens) {
    if (token.kind != sql::TokenKind::kWhitespace && token.kind != sql::TokenKind::kComment &&
        token.kind != sql::TokenKind::kEnd) {
      sig.push_back(token);
    }
  }
  OrderTerm term;
  size_t end = sig.size();
  if (end >= 2 && sql::IsKeyword(sig[end - 2], "NULLS") &&
      (sql::IsKeyword(sig[end - 1], "FIRST") || sql::IsKeyword(sig[end - 1], "LAST"))) {
    term.nulls = absl::StrCat("NULLS ", absl::AsciiStrToUpper(sig[end - 1].text));
    end -= 2;
  }
  if (end >= 1 && (sql::IsKeyword(sig[end - 1], "ASC") || sql::IsKeyword(sig[end - 1], "DESC"))) {
    term.direction = absl::AsciiStrToUpper(sig[end - 1].text);
    end -= 1;
  }
  if (end >= 2 && sql::IsKeyword(sig[end - 2], "COLLATE")) {
    term.collation = sql::IdentifierValue(sig[end - 1]);
    end -= 2;
  }
  if (end == 0) return absl::InvalidArgumentError("empty ORDER BY term");
  size_t from = sig[0].offset;
  size_t to = sig[end - 1].offset + sig[end - 1].text.size();
  term.expression = std::string(text.substr(from, to - from));
  return term;
}

// The column `expression` is, when it is one (optionally qualified) name.
const sql::ColumnSchema* BareColumn(const TableMeta& table, const std::string& expression) {
  auto tokens = sql::Tokenize(expression);
  if (!tokens.ok()) return nullptr;
  std::vector<sql::Token> sig;
  for (const auto& t : *tokens) {
    if (t.kind != sql::TokenKind::kWhitespace && t.kind != sql::TokenKind::kComment &&
        t.kind != sql::TokenKind::kEnd) {
      sig.push_back(t);
    }
  }
  const sql::Token* name = nullptr;
  if (sig.size() == 1) name = &sig[0];
  if (sig.size() == 3 && sig[1].kind == sql::TokenKind::kOperator && sig[1].text == ".") {
    name = &sig[2];
  }
  if (name == nullptr || (name->kind != sql::TokenKind::kIdentifier &&
                          name->kind != sql::TokenKind::kQuotedIdentifier)) {
    return nullptr;
  }
  return FindColumn(table, sql::IdentifierValue(*name));
}

// What ORDER BY term `expression` sorts by, as an expression over the table:
// `k` names the k-th result column (after * expansion), an alias its item.
absl::StatusOr<std::string> ResolveOrderExpression(const DmlStatement& s, const TableMeta& table,
                                                   const std::string& expression, size_t term) {
  // SQLite reads ORDER BY (1) as the first column too.
  absl::string_view core = absl::StripAsciiWhitespace(expression);
  while (core.size() >= 2 && core.front() == '(' && core.back() == ')') {
    core = absl::StripAsciiWhitespace(core.substr(1, core.size() - 2));
  }
  int64_t position = 0;
  if (absl::SimpleAtoi(core, &position)) {
    int index = 0;
    std::string found;
    for (const auto& item : s.items) {
      if (item.star) {
        for (const auto& column : table.columns) {
          if (++index == position) found = QuoteIdentifier(column.name);
        }
      } else if (++index == position) {
        found = std::string(s.Text(item.expression));
      }
    }
    if (found.empty()) {
      return Error(absl::StatusCode::kInvalidArgument, reason::kSqlError,
                   absl::StrCat("ORDER BY term ", term + 1,
                                " out of range - should be between 1 and ", index));
    }
    return found;
  }
  for (const auto& item : s.items) {
    if (!item.alias.empty() && sql::SameName(item.alias, expression)) {
      return std::string(s.Text(item.expression));
    }
  }
  return expression;
}

// Whether ORDER BY can be merged by sort keys computed on the shards. Not
// when a term's expression takes a non-BINARY collation from a column other
// than as a bare name (SQLite keeps it through + and CAST), or refers to a
// result alias inside an expression (the alias does not exist on the shard).
bool CanMergeBySortKeys(const DmlStatement& s, const TableMeta& table) {
  for (size_t i = 0; i < s.order_terms.size(); ++i) {
    const Span& term_span = s.order_terms[i];
    auto term = SplitOrderTerm(s.Text(term_span));
    if (!term.ok()) return false;
    // A position or an alias stands for a select-list expression: judge that.
    auto resolved = ResolveOrderExpression(s, table, term->expression, i);
    if (!resolved.ok()) return false;
    if (term->collation.empty() && BareColumn(table, *resolved) == nullptr) {
      auto tokens = sql::Tokenize(*resolved);
      if (!tokens.ok()) return false;
      for (const auto& token : *tokens) {
        if (token.kind != sql::TokenKind::kIdentifier &&
            token.kind != sql::TokenKind::kQuotedIdentifier) {
          continue;
        }
        const sql::ColumnSchema* column = FindColumn(table, sql::IdentifierValue(token));
        if (column != nullptr && !sql::SameName(column->collation, "BINARY")) return false;
      }
    }
    bool bare = BareColumn(table, term->expression) != nullptr;
    for (const auto& [span, name] : s.identifiers) {
      if (!Overlaps(span, term_span)) continue;
      const sql::ColumnSchema* column = FindColumn(table, name);
      if (column != nullptr && !bare && term->collation.empty() &&
          !sql::SameName(column->collation, "BINARY")) {
        return false;
      }
      if (column == nullptr && !sql::SameName(term->expression, name)) {
        for (const auto& item : s.items) {
          if (!item.alias.empty() && sql::SameName(item.alias, name)) return false;
        }
      }
    }
  }
  return true;
}

// Plain rows from several shards: each shard sorts and limits (to
// OFFSET + LIMIT rows); the conductor merges by the same sort keys. With
// `max_rows` (not negative), no shard returns more than OFFSET + max_rows + 1
// rows: enough for the merge to tell that the answer is over the limit
// without every shard sending all of its rows.
absl::StatusOr<QueryPlan> PlanRows(const DmlStatement& s, const TableMeta& table,
                                   const std::vector<const ShardMeta*>& targets,
                                   const Snapshot& snapshot, const std::vector<Value>& params,
                                   int64_t max_rows) {
  QueryPlan plan;
  auto limit = EvaluateInteger(s.Text(s.limit), params, -1);
  if (!limit.ok()) return limit.status();
  auto offset = EvaluateInteger(s.Text(s.offset), params, 0);
  if (!offset.ok()) return offset.status();
  if (*offset < 0) *offset = 0;
  plan.limit = *limit;
  plan.offset = *offset;
  const int shard_param = s.parameter_count + 1;
  std::vector<TextEdit> edits;
  ExpandStars(s.items, table, &edits);
  InjectShardFilter(s, s.from.end, shard_param, &edits);
  int64_t shard_limit =
      *limit < 0 ? -1 : (*offset > INT64_MAX - *limit ? INT64_MAX : *limit + *offset);
  if (max_rows >= 0) {
    const int64_t cap = *offset > INT64_MAX - max_rows - 1 ? INT64_MAX : *offset + max_rows + 1;
    if (shard_limit < 0 || shard_limit > cap) shard_limit = cap;
  }
  const std::string shard_limit_clause =
      shard_limit < 0 ? std::string() : absl::StrCat("LIMIT ", shard_limit);
  if (!s.limit_clause.empty()) {
    edits.push_back({s.limit_clause, shard_limit_clause});
  } else if (!shard_limit_clause.empty()) {
    edits.push_back({Span{s.end_offset, s.end_offset}, " " + shard_limit_clause});
  }
  if (s.order_terms.empty()) {
    plan.merge = MergeKind::kConcat;
    plan.merge_detail = "concat";
    std::string shard_sql = sql::ApplyEdits(s.sql.substr(0, s.end_offset), edits);
    for (const ShardMeta* shard : targets) {
      plan.statements.push_back(MakeShardStatement(*shard, snapshot, shard_sql, params));
    }
    return plan;
  }
  // Sort keys travel as extra trailing columns of each shard row.
  plan.merge = MergeKind::kSort;
  plan.merge_detail = "sort (each shard sorted and limited, merged by the same keys)";
  std::vector<std::string> keys;
  for (size_t i = 0; i < s.order_terms.size(); ++i) {
    auto term = SplitOrderTerm(s.Text(s.order_terms[i]));
    if (!term.ok()) return term.status();
    auto expression = ResolveOrderExpression(s, table, term->expression, i);
    if (!expression.ok()) return expression.status();
    std::string collation = term->collation;
    if (collation.empty()) {
      const sql::ColumnSchema* column = BareColumn(table, *expression);
      if (column != nullptr) collation = column->collation;
    }
    keys.push_back(absl::StrCat("(", *expression, ")"));
    plan.sort_keys.push_back({collation, term->direction, term->nulls});
  }
  // Append the keys to the select list (after its last item).
  size_t list_end = s.items.back().whole.end;
  edits.push_back({Span{list_end, list_end}, absl::StrCat(", ", absl::StrJoin(keys, ", "))});
  std::string shard_sql = sql::ApplyEdits(s.sql.substr(0, s.end_offset), edits);
  for (const ShardMeta* shard : targets) {
    plan.statements.push_back(MakeShardStatement(*shard, snapshot, shard_sql, params));
  }
  return plan;
}

absl::StatusOr<QueryPlan> PlanSelect(const DmlStatement& s, const TableMeta& table,
                                     const Snapshot& snapshot, const std::vector<Value>& params,
                                     const IndexResolver* resolver, int64_t max_rows) {
  auto routed = TargetShards(s, table, params, resolver);
  if (!routed.ok()) return routed.status();
  const std::vector<const ShardMeta*>& targets = routed->shards;
  absl::StatusOr<QueryPlan> plan;
  if (targets.size() == 1) {
    QueryPlan single;
    single.merge = MergeKind::kPassThrough;
    single.merge_detail = "none (one shard)";
    std::vector<TextEdit> edits;
    ExpandStars(s.items, table, &edits);
    InjectShardFilter(s, s.from.end, s.parameter_count + 1, &edits);
    single.statements.push_back(MakeShardStatement(
        *targets[0], snapshot, sql::ApplyEdits(s.sql.substr(0, s.end_offset), edits), params));
    plan = std::move(single);
  } else {
    AggregatePlan agg;
    if (CanPushAggregates(s, table, &agg)) {
      plan = PlanAggregate(s, table, agg, targets, snapshot, params);
    } else if (s.aggregates.empty() && s.group_by.empty() && !s.distinct && !s.has_window &&
               CanMergeBySortKeys(s, table)) {
      plan = PlanRows(s, table, targets, snapshot, params, max_rows);
    } else {
      plan = PlanReplica(s, table, targets, snapshot, params);
    }
  }
  if (!plan.ok()) return plan;
  plan->route = routed->route;
  plan->index_name = routed->index_name;
  plan->read_only = true;
  return plan;
}

absl::StatusOr<QueryPlan> PlanUpdateOrDelete(const DmlStatement& s, const TableMeta& table,
                                             const Snapshot& snapshot,
                                             const std::vector<Value>& params,
                                             const IndexResolver* resolver) {
  for (const auto& column : s.assigned_columns) {
    if (sql::SameName(column, table.shard_key)) {
      return Error(absl::StatusCode::kInvalidArgument, reason::kInvalidArgument,
                   absl::StrCat("UPDATE may not change the shard key ", table.shard_key,
                                " (it decides where the row lives); DELETE the row and INSERT "
                                "it with the new key instead"));
    }
  }
  auto routed = TargetShards(s, table, params, resolver);
  if (!routed.ok()) return routed.status();
  const std::vector<const ShardMeta*>& targets = routed->shards;
  std::vector<TextEdit> edits;
  ExpandStars(s.returning_items, table, &edits);
  size_t insert_at = s.returning_clause.empty() ? s.end_offset : s.returning_clause.begin;
  if (s.kind == StatementKind::kUpdate) insert_at = s.set_clause.end;
  InjectShardFilter(s, insert_at, s.parameter_count + 1, &edits);
  std::string shard_sql = sql::ApplyEdits(s.sql.substr(0, s.end_offset), edits);
  QueryPlan plan;
  plan.route = routed->route;
  plan.index_name = routed->index_name;
  plan.read_only = false;
  plan.assigned_columns = s.assigned_columns;
  plan.merge = targets.size() == 1 ? MergeKind::kPassThrough : MergeKind::kConcat;
  plan.merge_detail = targets.size() == 1 ? "none (one shard)" : "concat, rows_affected summed";
  for (const ShardMeta* shard : targets) {
    plan.statements.push_back(MakeShardStatement(*shard, snapshot, shard_sql, params));
  }
  return plan;
}

// The columns an upsert (`ON CONFLICT … DO UPDATE SET`) assigns, as written.
absl::StatusOr<std::vector<std::string>> UpsertAssignedColumns(absl::string_view tail) {
  auto tokens = sql::Tokenize(tail);
  if (!tokens.ok()) return tokens.status();
  std::vector<const sql::Token*> t;
  for (const auto& token : *tokens) {
    if (token.kind != sql::TokenKind::kWhitespace && token.kind != sql::TokenKind::kComment &&
        token.kind != sql::TokenKind::kEnd) {
      t.push_back(&token);
    }
  }
  auto is_op = [&](size_t i, const char* op) {
    return i < t.size() && t[i]->kind == sql::TokenKind::kOperator && t[i]->text == op;
  };
  std::vector<std::string> names;
  int depth = 0;
  bool in_set = false, at_assignment = false;
  for (size_t i = 0; i < t.size(); ++i) {
    if (depth == 0 && sql::IsKeyword(*t[i], "SET")) {
      in_set = at_assignment = true;
      continue;
    }
    if (depth == 0 && (sql::IsKeyword(*t[i], "WHERE") || sql::IsKeyword(*t[i], "ON"))) {
      in_set = at_assignment = false;
    }
    if (in_set && at_assignment) {
      if (is_op(i, "(")) {
        for (size_t j = i + 1; j < t.size() && !is_op(j, ")"); ++j) {
          if (!is_op(j, ",")) names.push_back(sql::IdentifierValue(*t[j]));
        }
      } else {
        names.push_back(sql::IdentifierValue(*t[i]));
      }
      at_assignment = false;
    }
    if (is_op(i, "(")) ++depth;
    if (is_op(i, ")")) --depth;
    if (in_set && depth == 0 && is_op(i, ",")) at_assignment = true;
  }
  return names;
}

// Whether an upsert clause ends in DO NOTHING (some ON CONFLICT … DO NOTHING).
bool UpsertDoesNothing(absl::string_view tail) {
  auto tokens = sql::Tokenize(tail);
  if (!tokens.ok()) return false;
  const sql::Token* previous = nullptr;
  for (const auto& token : *tokens) {
    if (token.kind == sql::TokenKind::kWhitespace || token.kind == sql::TokenKind::kComment ||
        token.kind == sql::TokenKind::kEnd) {
      continue;
    }
    if (previous != nullptr && sql::IsKeyword(*previous, "DO") &&
        sql::IsKeyword(token, "NOTHING")) {
      return true;
    }
    previous = &token;
  }
  return false;
}

// "ABORT" for INSERT, "REPLACE" for REPLACE, else the word after INSERT OR.
std::string InsertConflict(absl::string_view head) {
  auto tokens = sql::Tokenize(head);
  std::vector<std::string> words;
  if (tokens.ok()) {
    for (const auto& token : *tokens) {
      if (token.kind == sql::TokenKind::kWhitespace || token.kind == sql::TokenKind::kComment ||
          token.kind == sql::TokenKind::kEnd) {
        continue;
      }
      words.push_back(absl::AsciiStrToUpper(token.text));
    }
  }
  if (!words.empty() && words[0] == "REPLACE") return "REPLACE";
  if (words.size() >= 3 && words[1] == "OR") return words[2];
  return "ABORT";
}

// Refuses an upsert that assigns the shard key: the row would keep living on
// the shard of its old key.
absl::Status CheckUpsertKeepsShardKey(const std::vector<std::string>& assigned,
                                      const TableMeta& table) {
  for (const auto& name : assigned) {
    if (sql::SameName(name, table.shard_key)) {
      return Error(absl::StatusCode::kInvalidArgument, reason::kInvalidArgument,
                   absl::StrCat("ON CONFLICT … DO UPDATE may not change the shard key ",
                                table.shard_key, " (it decides where the row lives)"));
    }
  }
  return absl::OkStatus();
}

// Runs the INSERT's rows against an empty in-memory copy of the user's table,
// so what SQLite itself would refuse (datatype mismatch on an INTEGER
// PRIMARY KEY, CHECK, NOT NULL, a key repeated within the statement) fails
// before any node is written.
//
// With `stored`, also returns each row as SQLite stored it (every column of
// the table, in order), or nullopt for a row that was not inserted (OR
// IGNORE, DO NOTHING) — what index maintenance needs.
absl::Status ValidateRows(const DmlStatement& s, const TableMeta& table,
                          const std::vector<std::string>& columns,
                          const std::vector<std::vector<Value>>& rows,
                          const std::vector<Value>& params,
                          std::vector<std::optional<std::vector<Value>>>* stored) {
  auto db = Database::Open(":memory:");
  if (!db.ok()) return db.status();
  if (auto status = (*db)->Exec(table.user_sql); !status.ok()) return status;
  auto created = sql::ParseStatement(table.user_sql);
  if (!created.ok()) return created.status();
  // UNIQUE virtual indexes made with CREATE INDEX: rows of one statement
  // must not repeat their values either, and ON CONFLICT (c) may name them.
  for (const IndexMeta& index : table.indexes) {
    if (!index.unique || index.constraint_backed || !index.Maintained()) continue;
    std::vector<std::string> quoted;
    for (const auto& column : index.columns) quoted.push_back(QuoteIdentifier(column));
    if (auto status = (*db)->Exec(absl::StrCat("CREATE UNIQUE INDEX ", QuoteIdentifier(index.name),
                                               " ON ", QuoteIdentifier(created->table), " (",
                                               absl::StrJoin(quoted, ", "), ")"));
        !status.ok()) {
      return status;
    }
  }
  // Only the upsert tail may use the user's parameters; rows are numbered
  // after them when it does, from ?1 otherwise. (Binding every parameter of
  // a 1000-row statement for each row was quadratic.)
  std::vector<int> tail_params;
  for (const auto& [span, number] : s.parameters) {
    if (Overlaps(span, s.insert_tail)) tail_params.push_back(number);
  }
  const int base = tail_params.empty() ? 0 : s.parameter_count;
  std::vector<std::string> quoted, marks;
  for (const auto& column : columns) quoted.push_back(QuoteIdentifier(column));
  for (size_t c = 0; c < columns.size(); ++c) marks.push_back(absl::StrCat("?", base + 1 + c));
  std::string sql = absl::StrCat(
      s.Text(s.insert_head), " INTO ", QuoteIdentifier(created->table),
      s.table_alias.empty() ? "" : absl::StrCat(" AS ", QuoteIdentifier(s.table_alias)), " (",
      absl::StrJoin(quoted, ", "), ") VALUES (", absl::StrJoin(marks, ", "), ") ",
      s.Text(s.insert_tail));
  if (stored != nullptr) {
    std::vector<std::string> all;
    for (const auto& column : table.columns) all.push_back(QuoteIdentifier(column.name));
    absl::StrAppend(&sql, " RETURNING ", absl::StrJoin(all, ", "));
  }
  auto insert = (*db)->Prepare(sql);
  if (!insert.ok()) return insert.status();
  if (auto status = (*db)->Exec("BEGIN"); !status.ok()) return status;
  for (const auto& row : rows) {
    insert->Reset().IgnoreError();
    for (int number : tail_params) insert->Bind(number, params[number - 1]).IgnoreError();
    for (size_t c = 0; c < row.size(); ++c) {
      insert->Bind(base + 1 + static_cast<int>(c), row[c]).IgnoreError();
    }
    if (stored == nullptr) {
      if (auto status = insert->Run(); !status.ok()) return status;
      continue;
    }
    std::optional<std::vector<Value>> returned;
    while (true) {
      auto has_row = insert->Step();
      if (!has_row.ok()) return has_row.status();
      if (!*has_row) break;
      returned.emplace();
      for (int c = 0; c < insert->ColumnCount(); ++c) {
        auto value = insert->ColumnValueUtf8(c);
        if (!value.ok()) return value.status();
        returned->push_back(*std::move(value));
      }
    }
    stored->push_back(std::move(returned));
  }
  return absl::OkStatus();
}

// For a plain INSERT (no OR, no upsert) over several nodes: one read per
// shard that finds any of the new primary keys already present, run before
// anything is written (see QueryPlan::prechecks).
absl::Status AddKeyPrechecks(
    const DmlStatement& s, const TableMeta& table, const std::vector<std::string>& columns,
    const std::string& tail,
    const std::map<int32_t, std::vector<std::vector<Value>>>& rows_by_shard,
    const std::map<int32_t, const ShardMeta*>& shard_by_id, const Snapshot& snapshot,
    QueryPlan* plan) {
  std::set<std::string> nodes;
  for (const auto& statement : plan->statements) nodes.insert(statement.node.node_id);
  if (!sql::SameName(s.Text(s.insert_head), "INSERT") || !tail.empty() || nodes.size() < 2) {
    return absl::OkStatus();
  }
  std::vector<int> positions;
  std::vector<std::string> key_columns, failed;
  for (const auto& pk : table.primary_key) {
    for (size_t i = 0; i < columns.size(); ++i) {
      if (sql::SameName(columns[i], pk)) positions.push_back(static_cast<int>(i));
    }
    key_columns.push_back(QuoteIdentifier(pk));
    failed.push_back(absl::StrCat(table.name, ".", pk));
  }
  if (positions.size() != table.primary_key.size()) return absl::OkStatus();
  plan->precheck_error = absl::StrCat("UNIQUE constraint failed: ", absl::StrJoin(failed, ", "));
  const int width = static_cast<int>(positions.size());
  const size_t per_statement = std::max(1, (kMaxSqliteParameters - 1) / width);
  const std::string lhs =
      width == 1 ? key_columns[0] : absl::StrCat("(", absl::StrJoin(key_columns, ", "), ")");
  for (const auto& [shard_id, rows] : rows_by_shard) {
    for (size_t start = 0; start < rows.size(); start += per_statement) {
      size_t end = std::min(rows.size(), start + per_statement);
      std::vector<std::string> tuples;
      std::vector<Value> values;
      for (size_t r = start; r < end; ++r) {
        std::vector<std::string> marks;
        for (int position : positions) {
          values.push_back(rows[r][position]);
          marks.push_back(absl::StrCat("?", values.size()));
        }
        tuples.push_back(width == 1 ? marks[0]
                                    : absl::StrCat("(", absl::StrJoin(marks, ", "), ")"));
      }
      std::string rhs = width == 1 ? absl::StrCat("(", absl::StrJoin(tuples, ", "), ")")
                                   : absl::StrCat("(VALUES ", absl::StrJoin(tuples, ", "), ")");
      plan->prechecks.push_back(
          MakeShardStatement(*shard_by_id.at(shard_id), snapshot,
                             absl::StrCat("SELECT 1 FROM ", QuoteIdentifier(table.name), " WHERE ",
                                          sql::kVirtualShardColumn, " = ?", values.size() + 1,
                                          " AND ", lhs, " IN ", rhs, " LIMIT 1"),
                             values));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<QueryPlan> PlanInsert(const DmlStatement& s, const TableMeta& table,
                                     const Snapshot& snapshot, const std::vector<Value>& params) {
  std::vector<std::string> columns = s.insert_columns;
  if (columns.empty()) {
    for (const auto& column : table.columns) {
      if (!column.generated) columns.push_back(column.name);
    }
  }
  int key_position = -1;
  for (size_t i = 0; i < columns.size(); ++i) {
    if (sql::SameName(columns[i], table.shard_key)) key_position = static_cast<int>(i);
  }
  if (key_position < 0 || s.default_values) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kShardKeyRequired,
                 absl::StrCat("INSERT into ", table.name, " must give the shard key ",
                              table.shard_key, " a value: it decides which shard holds the row"));
  }
  // Evaluate the VALUES rows once, here, exactly as SQLite would. Parameters
  // are written as plain `?` bound in order: SQLite finds each numbered ?N by
  // a linear search, which made large batches quadratic.
  std::vector<TextEdit> plain;
  std::vector<int> bind_order;
  for (const auto& [span, number] : s.parameters) {
    bool in_rows = !s.value_rows.empty() && span.begin >= s.value_rows.front().begin &&
                   span.end <= s.value_rows.back().end;
    if (!in_rows) continue;
    plain.push_back(
        {Span{span.begin - s.value_rows.front().begin, span.end - s.value_rows.front().begin},
         "?"});
    bind_order.push_back(number);
  }
  Span rows_span{s.value_rows.empty() ? 0 : s.value_rows.front().begin,
                 s.value_rows.empty() ? 0 : s.value_rows.back().end};
  auto db = Database::Open(":memory:");
  if (!db.ok()) return db.status();
  auto values = (*db)->Prepare(absl::StrCat("VALUES ", sql::ApplyEdits(s.Text(rows_span), plain)));
  if (!values.ok()) return values.status();
  if (values->ColumnCount() != static_cast<int>(columns.size())) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kSqlError,
                 absl::StrCat(values->ColumnCount(), " values for ", columns.size(), " columns"));
  }
  for (size_t i = 0; i < bind_order.size(); ++i) {
    values->Bind(static_cast<int>(i) + 1, params[bind_order[i] - 1]).IgnoreError();
  }
  const sql::ColumnSchema* key_column = FindColumn(table, table.shard_key);
  routing::Affinity affinity = routing::AffinityOf(key_column != nullptr ? key_column->type : "");
  std::map<int32_t, std::vector<std::vector<Value>>> rows_by_shard;
  std::map<int32_t, const ShardMeta*> shard_by_id;
  std::vector<std::vector<Value>> all_rows;
  std::vector<int32_t> row_shards;  // parallel to all_rows
  const std::vector<const ShardMeta*> active = ActiveShards(table);
  int row_number = 0;
  while (true) {
    auto has_row = values->Step();
    if (!has_row.ok()) return has_row.status();
    if (!*has_row) break;
    ++row_number;
    std::vector<Value> row;
    for (int c = 0; c < values->ColumnCount(); ++c) {
      auto value = values->ColumnValueUtf8(c);
      if (!value.ok()) return value.status();
      row.push_back(*std::move(value));
    }
    Value key = routing::ApplyAffinity(row[key_position], affinity);
    if (key.kind_case() == Value::kNullValue || key.kind_case() == Value::KIND_NOT_SET) {
      return Error(absl::StatusCode::kInvalidArgument, reason::kShardKeyRequired,
                   absl::StrCat("row ", row_number, " has no value (NULL) for the shard key ",
                                table.shard_key));
    }
    const ShardMeta* shard = active[routing::ShardIndex(routing::RoutingHash(key, affinity),
                                                        static_cast<int>(active.size()))];
    shard_by_id[shard->shard_id] = shard;
    row_shards.push_back(shard->shard_id);
    all_rows.push_back(row);
    rows_by_shard[shard->shard_id].push_back(std::move(row));
  }
  auto assigned = UpsertAssignedColumns(s.Text(s.insert_tail));
  if (!assigned.ok()) return assigned.status();
  if (auto status = CheckUpsertKeepsShardKey(*assigned, table); !status.ok()) return status;
  const bool indexed = std::any_of(table.indexes.begin(), table.indexes.end(),
                                   [](const IndexMeta& index) { return index.Maintained(); });
  std::vector<std::optional<std::vector<Value>>> stored;
  if (auto status = ValidateRows(s, table, columns, all_rows, params, indexed ? &stored : nullptr);
      !status.ok()) {
    return status;
  }
  // The tail (upsert) and RETURNING keep the user's parameters ?1..?P; row
  // values follow as ?P+1…
  std::vector<TextEdit> returning_edits;
  ExpandStars(s.returning_items, table, &returning_edits);
  std::string returning;
  if (!s.returning_clause.empty()) {
    std::string clause(s.Text(s.returning_clause));
    for (auto& edit : returning_edits) {
      edit.span.begin -= s.returning_clause.begin;
      edit.span.end -= s.returning_clause.begin;
    }
    returning = sql::ApplyEdits(clause, returning_edits);
  }
  std::string tail(s.Text(s.insert_tail));
  // Every physical uniqueness leads with _virtualShard, so conflict targets must too.
  if (auto tokens = sql::Tokenize(tail); tokens.ok()) {
    std::vector<const sql::Token*> sig;
    for (const auto& token : *tokens) {
      if (token.kind != sql::TokenKind::kWhitespace && token.kind != sql::TokenKind::kComment) {
        sig.push_back(&token);
      }
    }
    std::vector<TextEdit> conflict_edits;
    for (size_t i = 0; i + 2 < sig.size(); ++i) {
      if (sql::IsKeyword(*sig[i], "ON") && sql::IsKeyword(*sig[i + 1], "CONFLICT") &&
          sig[i + 2]->kind == sql::TokenKind::kOperator && sig[i + 2]->text == "(") {
        size_t at = sig[i + 2]->offset + 1;
        conflict_edits.push_back({Span{at, at}, absl::StrCat(sql::kVirtualShardColumn, ", ")});
      }
    }
    tail = sql::ApplyEdits(tail, conflict_edits);
  }
  bool keep_params =
      !s.parameters.empty() &&
      (std::any_of(s.parameters.begin(), s.parameters.end(), [&](const auto& p) {
        return Overlaps(p.first, s.insert_tail) || Overlaps(p.first, s.returning_clause);
      }));
  const int base = keep_params ? s.parameter_count : 0;
  std::vector<std::string> quoted;
  for (const auto& column : columns) quoted.push_back(QuoteIdentifier(column));
  quoted.push_back(sql::kVirtualShardColumn);
  std::string head = absl::StrCat(
      s.Text(s.insert_head), " INTO ", QuoteIdentifier(table.name),
      s.table_alias.empty() ? "" : absl::StrCat(" AS ", QuoteIdentifier(s.table_alias)), " (",
      absl::StrJoin(quoted, ", "), ") VALUES ");
  const int width = static_cast<int>(columns.size()) + 1;
  const int rows_per_statement = std::max(1, (kMaxSqliteParameters - base) / width);

  QueryPlan plan;
  plan.read_only = false;
  plan.route = shard_by_id.size() == 1 ? "shard_key" : "scatter";
  plan.insert_conflict = InsertConflict(s.Text(s.insert_head));
  plan.insert_columns = columns;
  plan.upsert = !s.insert_tail.empty();
  plan.upsert_does_nothing = UpsertDoesNothing(s.Text(s.insert_tail));
  plan.upsert_assigned = std::move(*assigned);
  for (size_t r = 0; r < stored.size(); ++r) {
    if (stored[r].has_value()) {
      plan.inserted_rows.push_back({row_shards[r], std::move(*stored[r])});
    }
  }
  for (auto& [shard_id, shard_rows] : rows_by_shard) {
    const ShardMeta* shard = shard_by_id[shard_id];
    for (size_t start = 0; start < shard_rows.size(); start += rows_per_statement) {
      size_t end = std::min(shard_rows.size(), start + rows_per_statement);
      ShardStatement statement;
      statement.shard_id = shard_id;
      const NodeMeta* node = snapshot.FindNode(shard->node_id);
      statement.node = node != nullptr ? *node : NodeMeta{shard->node_id, ""};
      if (keep_params) statement.params = params;
      std::string sql = head;
      int next = base;
      for (size_t r = start; r < end; ++r) {
        absl::StrAppend(&sql, r == start ? "(" : ", (");
        for (int c = 0; c < width; ++c) {
          // Plain ? when the user's parameters are not kept (cheaper to
          // prepare); explicit numbers after them otherwise.
          ++next;
          if (keep_params) {
            absl::StrAppend(&sql, c == 0 ? "" : ", ", "?", next);
          } else {
            absl::StrAppend(&sql, c == 0 ? "?" : ", ?");
          }
        }
        absl::StrAppend(&sql, ")");
        for (const Value& v : shard_rows[r]) statement.params.push_back(v);
        statement.params.push_back(IntegerValue(shard_id));
      }
      if (!tail.empty()) absl::StrAppend(&sql, " ", tail);
      if (!returning.empty()) absl::StrAppend(&sql, " ", returning);
      statement.sql = std::move(sql);
      plan.statements.push_back(std::move(statement));
    }
  }
  plan.merge = plan.statements.size() == 1 ? MergeKind::kPassThrough : MergeKind::kConcat;
  plan.merge_detail =
      plan.statements.size() == 1 ? "none (one shard)" : "concat, rows_affected summed";
  if (auto status =
          AddKeyPrechecks(s, table, columns, tail, rows_by_shard, shard_by_id, snapshot, &plan);
      !status.ok()) {
    return status;
  }
  return plan;
}

}  // namespace

const char* MergeKindName(MergeKind kind) {
  switch (kind) {
    case MergeKind::kPassThrough:
      return "pass_through";
    case MergeKind::kConcat:
      return "concat";
    case MergeKind::kSort:
      return "sort";
    case MergeKind::kInMemory:
      return "in_memory";
    case MergeKind::kLocal:
      return "local";
  }
  return "unknown";
}

std::vector<const ShardMeta*> ActiveShards(const TableMeta& table) {
  std::vector<const ShardMeta*> shards;
  for (const ShardMeta& shard : table.shards) {
    if (shard.status == shard_status::kActive) shards.push_back(&shard);
  }
  std::sort(shards.begin(), shards.end(),
            [](const ShardMeta* a, const ShardMeta* b) { return a->shard_id < b->shard_id; });
  return shards;
}

const ShardMeta* OwningShard(const TableMeta& table, const Value& value) {
  std::vector<const ShardMeta*> shards = ActiveShards(table);
  const sql::ColumnSchema* key = FindColumn(table, table.shard_key);
  uint64_t hash = routing::RoutingHash(value, routing::AffinityOf(key != nullptr ? key->type : ""));
  return shards[routing::ShardIndex(hash, static_cast<int>(shards.size()))];
}

absl::StatusOr<QueryPlan> PlanQuery(const sql::DmlStatement& original, const TableMeta* table,
                                    const Snapshot& snapshot, const std::vector<Value>& params,
                                    const IndexResolver* resolver, int64_t max_rows) {
  if (static_cast<int>(params.size()) != original.parameter_count) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kInvalidArgument,
                 absl::StrCat("the statement has ", original.parameter_count, " parameter(s) but ",
                              params.size(), " value(s) were given"));
  }
  auto normalized = NormalizeParameters(original);
  if (!normalized.ok()) return normalized.status();
  const DmlStatement& s = *normalized;
  if (table == nullptr) {  // SELECT without FROM: computed right here.
    QueryPlan plan;
    plan.route = "local";
    plan.merge = MergeKind::kLocal;
    plan.merge_detail = "local (no table)";
    plan.final_sql = s.sql.substr(0, s.end_offset);
    plan.final_params = params;
    for (size_t i = 0; i < original.items.size() && i < s.items.size(); ++i) {
      const sql::SelectItem& item = original.items[i];
      std::string before(original.Text(item.expression));
      bool differs = item.alias.empty() && before != s.Text(s.items[i].expression);
      plan.column_names.push_back(differs ? before : "");
    }
    return plan;
  }
  if (ActiveShards(*table).empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("table ", table->name, " has no active shard"));
  }
  absl::StatusOr<QueryPlan> plan;
  switch (s.kind) {
    case StatementKind::kSelect:
      plan = PlanSelect(s, *table, snapshot, params, resolver, max_rows);
      break;
    case StatementKind::kInsert:
      plan = PlanInsert(s, *table, snapshot, params);
      break;
    case StatementKind::kUpdate:
    case StatementKind::kDelete:
      plan = PlanUpdateOrDelete(s, *table, snapshot, params, resolver);
      break;
    default:
      return absl::InternalError("not a data statement");
  }
  if (!plan.ok()) return plan;
  plan->kind = s.kind;
  if (s.kind == StatementKind::kSelect && s.sql != original.sql) {
    bool renamed = false;
    std::vector<std::string> names;
    for (size_t i = 0; i < original.items.size() && i < s.items.size(); ++i) {
      const sql::SelectItem& item = original.items[i];
      if (item.star) {
        names.insert(names.end(), table->columns.size(), "");
        continue;
      }
      std::string before(original.Text(item.expression));
      bool differs = item.alias.empty() && before != s.Text(s.items[i].expression);
      names.push_back(differs ? before : "");
      renamed |= differs;
    }
    if (renamed) plan->column_names = std::move(names);
  }
  return plan;
}

}  // namespace conductor
