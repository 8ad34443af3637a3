#include "conductor/executor/query_executor.h"

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/errors.h"
#include "common/sqlite.h"

namespace conductor {
namespace {

using storage::v1::StatementResult;

// A node's error as the user should read it: storage nodes number the
// statements of a batch ("statement 3: …"), which mean nothing to a user who
// sent one statement, and SQLite names the hidden _virtualShard column in
// constraint messages ("UNIQUE constraint failed: t._virtualShard, t.email").
absl::Status UserFacing(const absl::Status& status) {
  std::string message(status.message());
  size_t colon = message.find(": ");
  int number = 0;
  if (absl::StartsWith(message, "statement ") && colon != std::string::npos &&
      absl::SimpleAtoi(absl::string_view(message).substr(10, colon - 10), &number)) {
    message = message.substr(colon + 2);
  }
  for (size_t at = message.find("_virtualShard"); at != std::string::npos;
       at = message.find("_virtualShard")) {
    // Remove "<qualifier>._virtualShard, " (or a trailing ", …_virtualShard").
    size_t begin = at;
    while (begin > 0 && message[begin - 1] != ' ' && message[begin - 1] != '(') --begin;
    size_t end = at + std::string("_virtualShard").size();
    if (message.compare(end, 2, ", ") == 0) {
      end += 2;
    } else if (begin >= 2 && message.compare(begin - 2, 2, ", ") == 0) {
      begin -= 2;
    }
    message.erase(begin, end - begin);
  }
  if (message == status.message()) return status;
  absl::Status out(status.code(), message);
  status.ForEachPayload(
      [&out](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

void RenameColumns(const QueryPlan& plan, v1::ResultSet* set) {
  for (size_t i = 0; i < plan.column_names.size() && i < static_cast<size_t>(set->columns_size());
       ++i) {
    if (!plan.column_names[i].empty()) set->set_columns(static_cast<int>(i), plan.column_names[i]);
  }
}

// One batch per node (statements in plan order); `where` maps each statement
// to its (batch, index).
std::vector<NodeBatch> BatchByNode(const std::vector<ShardStatement>& statements, bool read_only,
                                   std::vector<std::pair<size_t, int>>* where) {
  std::vector<NodeBatch> batches;
  std::map<std::string, size_t> batch_of_node;
  where->assign(statements.size(), {0, 0});
  for (size_t i = 0; i < statements.size(); ++i) {
    const ShardStatement& statement = statements[i];
    auto it = batch_of_node.find(statement.node.node_id);
    if (it == batch_of_node.end()) {
      NodeBatch batch{statement.node, {}};
      batch.request.set_read_only(read_only);
      batches.push_back(std::move(batch));
      it = batch_of_node.emplace(statement.node.node_id, batches.size() - 1).first;
    }
    auto* stmt = batches[it->second].request.add_statements();
    stmt->set_sql(statement.sql);
    for (const Value& v : statement.params) *stmt->add_params() = v;
    (*where)[i] = {it->second, batches[it->second].request.statements_size() - 1};
  }
  return batches;
}

// RESOURCE_EXHAUSTED / RESULT_TOO_LARGE for an answer above `max_rows` rows.
absl::Status TooManyRows(int64_t max_rows) {
  return Error(absl::StatusCode::kResourceExhausted, reason::kResultTooLarge,
               absl::StrCat("the result has more than ", max_rows,
                            " rows, the most one response may carry (--max_response_rows); add "
                            "a LIMIT, or page by key (WHERE id > <last id> ORDER BY id LIMIT n)"));
}

absl::Status BindUpTo(Statement& stmt, const std::vector<Value>& params) {
  int count = std::min<int>(stmt.ParameterCount(), static_cast<int>(params.size()));
  for (int i = 1; i <= count; ++i) {
    if (auto s = stmt.Bind(i, params[i - 1]); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// Runs `sql` and appends its rows to `out`; more than `max_rows` rows (when
// not negative) stop it with TooManyRows before the rest is read.
absl::Status RunInto(Database& db, const std::string& sql, const std::vector<Value>& params,
                     v1::ResultSet* out, int64_t max_rows = -1) {
  auto stmt = db.Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  if (auto s = BindUpTo(*stmt, params); !s.ok()) return s;
  for (int c = 0; c < stmt->ColumnCount(); ++c) out->add_columns(stmt->ColumnName(c));
  while (true) {
    auto row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
    if (max_rows >= 0 && out->rows_size() >= max_rows) return TooManyRows(max_rows);
    auto* r = out->add_rows();
    for (int c = 0; c < stmt->ColumnCount(); ++c) {
      auto value = stmt->ColumnValueUtf8(c);
      if (!value.ok()) return value.status();
      *r->add_values() = *std::move(value);
    }
  }
}

// Loads shard rows into `table` of `db` (columns `columns`, or positionally).
absl::Status Load(Database& db, const std::string& table, const std::string& columns, int width,
                  const std::vector<const StatementResult*>& results) {
  std::vector<std::string> marks(width, "?");
  auto insert = db.Prepare(absl::StrCat("INSERT INTO ", QuoteIdentifier(table),
                                        columns.empty() ? "" : absl::StrCat(" (", columns, ")"),
                                        " VALUES (", absl::StrJoin(marks, ", "), ")"));
  if (!insert.ok()) return insert.status();
  if (auto s = db.Exec("BEGIN"); !s.ok()) return s;
  for (const StatementResult* result : results) {
    for (const auto& row : result->rows()) {
      insert->Reset().IgnoreError();
      for (int c = 0; c < width && c < row.values_size(); ++c) {
        insert->Bind(c + 1, row.values(c)).IgnoreError();
      }
      if (auto s = insert->Run(); !s.ok()) return s;
    }
  }
  return db.Exec("COMMIT");
}

// Rows that end with their sort keys: loaded into a table whose key columns
// carry each key's collation, read back in ORDER BY order, keys dropped.
absl::StatusOr<v1::ResultSet> MergeSorted(const QueryPlan& plan,
                                          const std::vector<const StatementResult*>& results,
                                          int64_t max_rows) {
  v1::ResultSet out;
  if (results.empty()) return out;
  const int width = results[0]->columns_size();
  const int keys = static_cast<int>(plan.sort_keys.size());
  const int visible = width - keys;
  auto db = Database::Open(":memory:");
  if (!db.ok()) return db.status();
  std::vector<std::string> columns, definitions, order;
  for (int c = 0; c < visible; ++c) {
    columns.push_back(QuoteIdentifier(absl::StrCat("c", c)));
    definitions.push_back(columns.back());
  }
  for (int k = 0; k < keys; ++k) {
    const QueryPlan::SortKey& key = plan.sort_keys[k];
    std::string name = QuoteIdentifier(absl::StrCat("k", k));
    definitions.push_back(key.collation.empty() ? name
                                                : absl::StrCat(name, " COLLATE ", key.collation));
    order.push_back(absl::StrCat(name, " ", key.direction, " ", key.nulls));
  }
  if (auto s = (*db)->Exec(absl::StrCat("CREATE TABLE m (", absl::StrJoin(definitions, ", "), ")"));
      !s.ok()) {
    return s;
  }
  if (auto s = Load(**db, "m", "", width, results); !s.ok()) return s;
  std::string query = absl::StrCat("SELECT ", absl::StrJoin(columns, ", "), " FROM m ORDER BY ",
                                   absl::StrJoin(order, ", "));
  if (plan.limit >= 0) absl::StrAppend(&query, " LIMIT ", plan.limit);
  if (plan.offset > 0)
    absl::StrAppend(&query, plan.limit >= 0 ? "" : " LIMIT -1", " OFFSET ", plan.offset);
  if (auto s = RunInto(**db, query, {}, &out, max_rows); !s.ok()) return s;
  for (int c = 0; c < visible; ++c) out.set_columns(c, results[0]->columns(c));
  return out;
}

absl::StatusOr<v1::ResultSet> MergeInMemory(const QueryPlan& plan,
                                            const std::vector<const StatementResult*>& results,
                                            int64_t max_rows) {
  v1::ResultSet out;
  auto db = Database::Open(":memory:");
  if (!db.ok()) return db.status();
  const StatementResult* first = results.empty() ? nullptr : results[0];
  const int width = first != nullptr ? first->columns_size() : 0;
  for (const std::string& setup : plan.merge_setup) {
    if (auto s = (*db)->Exec(setup); !s.ok()) return Annotate(s, "merge setup");
  }
  if (first != nullptr) {
    if (auto s = Load(**db, plan.merge_table, plan.merge_columns, width, results); !s.ok()) {
      return s;
    }
  }
  if (auto s = RunInto(**db, plan.final_sql, plan.final_params, &out, max_rows); !s.ok()) {
    return s;
  }
  return out;
}

}  // namespace

absl::StatusOr<v1::ExecuteResponse> QueryExecutor::Run(const QueryPlan& plan,
                                                       const std::string& result_name,
                                                       absl::Time deadline, int64_t max_rows) {
  v1::ExecuteResponse response;
  // Only a SELECT's answer is limited: the rows RETURNING gives back belong
  // to a write that has already happened.
  if (plan.kind != sql::StatementKind::kSelect) max_rows = -1;
  if (plan.merge == MergeKind::kLocal) {
    auto db = Database::Open(":memory:");
    if (!db.ok()) return db.status();
    v1::ResultSet* set = response.add_result_sets();
    if (auto s = RunInto(**db, plan.final_sql, plan.final_params, set, max_rows); !s.ok()) {
      return s;
    }
    RenameColumns(plan, set);
    return response;
  }

  std::vector<std::pair<size_t, int>> where;
  std::vector<NodeBatch> batches = BatchByNode(plan.statements, plan.read_only, &where);
  const absl::Time storage_deadline = std::min(deadline, absl::Now() + storage_timeout_);
  // A write over several nodes is atomic per node only; checking first that
  // every node answers keeps a dead node from leaving it half applied (a
  // node dying in the next instant still can: see docs/data-path.md).
  if (!plan.prechecks.empty()) {
    std::vector<std::pair<size_t, int>> precheck_where;
    std::vector<NodeBatch> probes = BatchByNode(plan.prechecks, true, &precheck_where);
    auto answers = FanOut(*storage_, probes, storage_deadline);
    for (const auto& answer : answers) {
      if (!answer.ok()) return Annotate(UserFacing(answer.status()), "nothing was written");
    }
    for (const auto& [batch, index] : precheck_where) {
      if (answers[batch]->results(index).rows_size() > 0) {
        return Error(absl::StatusCode::kAlreadyExists, reason::kUniqueViolation,
                     plan.precheck_error);
      }
    }
  } else if (!plan.read_only && batches.size() > 1) {
    std::vector<NodeMeta> nodes;
    for (const NodeBatch& batch : batches) nodes.push_back(batch.node);
    if (auto s = CheckReachable(*storage_, nodes, storage_deadline); !s.ok()) {
      return Annotate(s, "nothing was written");
    }
  }
  auto answers = FanOut(*storage_, batches, storage_deadline);
  for (const auto& answer : answers) {
    if (answer.ok()) continue;
    // The node's time ran out but the client's has not: the node did not
    // answer within --storage_timeout_ms, which is unavailability.
    if (answer.status().code() == absl::StatusCode::kDeadlineExceeded && absl::Now() < deadline) {
      return Error(absl::StatusCode::kUnavailable, reason::kStorageUnavailable,
                   absl::StrCat(answer.status().message(),
                                " (no answer within the storage "
                                "timeout, --storage_timeout_ms)"));
    }
    return UserFacing(answer.status());
  }
  std::vector<const StatementResult*> results;
  int64_t rows_affected = 0;
  for (const auto& [batch, index] : where) {
    results.push_back(&answers[batch]->results(index));
    rows_affected += results.back()->rows_affected();
  }
  response.set_rows_affected(rows_affected);
  const bool returns_rows = plan.kind == sql::StatementKind::kSelect ||
                            (!results.empty() && results[0]->columns_size() > 0);
  if (!returns_rows) return response;

  v1::ResultSet* set = response.add_result_sets();
  switch (plan.merge) {
    case MergeKind::kPassThrough:
    case MergeKind::kConcat: {
      if (max_rows >= 0) {
        // Counted before any row is copied: the answer is refused whole.
        int64_t total = 0;
        for (const StatementResult* result : results) total += result->rows_size();
        if (plan.merge == MergeKind::kConcat) {
          total = std::max<int64_t>(0, total - plan.offset);
          if (plan.limit >= 0) total = std::min(total, plan.limit);
        }
        if (total > max_rows) return TooManyRows(max_rows);
      }
      if (!results.empty()) *set->mutable_columns() = results[0]->columns();
      int64_t skipped = 0, kept = 0;
      for (const StatementResult* result : results) {
        for (const auto& row : result->rows()) {
          if (plan.merge == MergeKind::kConcat) {
            if (skipped < plan.offset) {
              ++skipped;
              continue;
            }
            if (plan.limit >= 0 && kept >= plan.limit) break;
          }
          *set->add_rows() = row;
          ++kept;
        }
      }
      break;
    }
    case MergeKind::kSort:
    case MergeKind::kInMemory: {
      auto merged = plan.merge == MergeKind::kSort ? MergeSorted(plan, results, max_rows)
                                                   : MergeInMemory(plan, results, max_rows);
      if (!merged.ok()) return UserFacing(merged.status());
      *set = std::move(*merged);
      break;
    }
    case MergeKind::kLocal:
      break;
  }
  RenameColumns(plan, set);
  set->set_name(result_name);
  return response;
}

v1::ExecuteResponse QueryExecutor::Explain(const QueryPlan& plan) {
  v1::ExecuteResponse response;
  v1::ResultSet* set = response.add_result_sets();
  set->set_name("EXPLAIN");
  for (const char* column : {"route", "shard_id", "node_id", "sql", "merge", "index_name"}) {
    set->add_columns(column);
  }
  if (plan.statements.empty()) {
    auto* row = set->add_rows();
    *row->add_values() = TextValue(plan.route);
    *row->add_values() = NullValue();
    *row->add_values() = NullValue();
    *row->add_values() = TextValue(plan.final_sql);
    *row->add_values() = TextValue(plan.merge_detail);
    *row->add_values() = NullValue();
  }
  for (const ShardStatement& statement : plan.statements) {
    auto* row = set->add_rows();
    *row->add_values() = TextValue(plan.route);
    *row->add_values() = IntegerValue(statement.shard_id);
    *row->add_values() = TextValue(statement.node.node_id);
    *row->add_values() = TextValue(statement.sql);
    *row->add_values() = TextValue(plan.merge_detail);
    *row->add_values() = plan.index_name.empty() ? NullValue() : TextValue(plan.index_name);
  }
  return response;
}

}  // namespace conductor
