#include "conductor/sql/sql_front_door.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/errors.h"
#include "common/sql/dml.h"
#include "common/sql/parser.h"
#include "common/sql/tokenizer.h"
#include "common/sqlite.h"
#include "conductor/planner/query_planner.h"

namespace conductor {
namespace {

// Builds one named result set row by row.
class ResultSetBuilder {
 public:
  ResultSetBuilder(v1::ExecuteResponse* response, const std::string& name,
                   std::initializer_list<const char*> columns)
      : set_(response->add_result_sets()) {
    set_->set_name(name);
    for (const char* column : columns) set_->add_columns(column);
  }
  ResultSetBuilder& Row(std::initializer_list<Value> values) {
    auto* row = set_->add_rows();
    for (const Value& value : values) *row->add_values() = value;
    return *this;
  }

 private:
  v1::ResultSet* set_;
};

Value Text(const std::string& s) { return TextValue(s); }
Value Int(int64_t v) { return IntegerValue(v); }

std::string Joined(const google::protobuf::RepeatedPtrField<std::string>& list) {
  return absl::StrJoin(list, ",");
}

absl::Status NotYet(const char* what, const char* capability) {
  return Error(
      absl::StatusCode::kUnimplemented, reason::kUnsupportedStatement,
      absl::StrCat(what, " is not available in this version of Conductor yet (", capability, ")"));
}

void AddShowTables(const v1::ListTablesResponse& tables, v1::ExecuteResponse* response) {
  ResultSetBuilder set(
      response, "TABLES",
      {"name", "primary_key", "shard_key", "num_shards", "strategy", "block_size", "created_at"});
  for (const auto& t : tables.tables()) {
    set.Row({Text(t.name()), Text(Joined(t.primary_key())), Text(t.shard_key()),
             Int(t.num_shards()), Text(t.strategy()), Int(t.block_size()),
             Text(FormatTimestamp(t.created_at_ms()))});
  }
}

void AddDescribe(const v1::DescribeTableResponse& d, v1::ExecuteResponse* response) {
  const auto& t = d.table();
  ResultSetBuilder(response, "TABLE_INFO",
                   {"table_name", "primary_key", "shard_key", "strategy", "num_shards",
                    "block_size", "created_at", "updated_at"})
      .Row({Text(t.name()), Text(Joined(t.primary_key())), Text(t.shard_key()), Text(t.strategy()),
            Int(t.num_shards()), Int(t.block_size()), Text(FormatTimestamp(t.created_at_ms())),
            Text(FormatTimestamp(t.updated_at_ms()))});
  ResultSetBuilder shards(response, "SHARDS", {"shard_id", "node_id", "status"});
  for (const auto& s : d.shards())
    shards.Row({Int(s.shard_id()), Text(s.node_id()), Text(s.status())});
  ResultSetBuilder indexes(response, "INDEXES", {"index_name", "columns", "index_type", "status"});
  for (const auto& i : d.indexes()) {
    indexes.Row({Text(i.name()), Text(Joined(i.columns())), Text(i.type()), Text(i.status())});
  }
  ResultSetBuilder columns(response, "COLUMNS",
                           {"name", "type", "notnull", "default_value", "primary_key"});
  for (const auto& c : d.columns()) {
    columns.Row({Text(c.name()), Text(c.type()), Int(c.not_null() ? 1 : 0),
                 c.default_value().empty() ? NullValue() : Text(c.default_value()),
                 Int(c.primary_key() ? 1 : 0)});
  }
}

void AddStats(const v1::GetTableStatsResponse& s, v1::ExecuteResponse* response) {
  ResultSetBuilder(response, "TABLE_STATS",
                   {"table_name", "total_rows", "total_shards", "avg_rows_per_shard"})
      .Row({Text(s.table()), Int(s.total_rows()), Int(s.total_shards()),
            RealValue(s.avg_rows_per_shard())});
  ResultSetBuilder shards(response, "SHARD_STATS", {"shard_id", "node_id", "row_count", "status"});
  for (const auto& shard : s.shards()) {
    // A shard that could not be counted has no row count (NULL), not zero.
    shards.Row({Int(shard.shard_id()), Text(shard.node_id()),
                shard.status() == "error" ? NullValue() : Int(shard.row_count()),
                Text(shard.status())});
  }
}

// A write that failed with one of these may still have been applied by a
// storage node (it answered too late, or the connection broke mid-call).
bool MayHaveApplied(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kAborted:
      return true;
    default:
      return false;
  }
}

absl::Status TooManyParams(int64_t count, int limit) {
  return Error(absl::StatusCode::kInvalidArgument, reason::kRequestTooLarge,
               absl::StrCat("the statement has ", count, " parameters; the limit is ", limit,
                            " (--max_params); split it into several statements"));
}

}  // namespace

absl::Time RequestLimits::EffectiveDeadline(absl::Time deadline, absl::Time now) const {
  if (deadline == absl::InfiniteFuture()) {
    if (default_deadline == absl::InfiniteDuration()) return deadline;
    return now + default_deadline;
  }
  if (max_deadline != absl::InfiniteDuration()) deadline = std::min(deadline, now + max_deadline);
  return deadline;
}

absl::Status SqlFrontDoor::CheckSqlLength(absl::string_view sql) const {
  if (sql.size() <= limits_.max_sql_bytes) return absl::OkStatus();
  return Error(
      absl::StatusCode::kInvalidArgument, reason::kRequestTooLarge,
      absl::StrCat("the statement is ", sql.size(), " bytes; the limit is ", limits_.max_sql_bytes,
                   " bytes (--max_sql_bytes); bind large values as ? parameters "
                   "or split the statement"));
}

absl::StatusOr<v1::ExecuteResponse> SqlFrontDoor::RunData(absl::string_view sql,
                                                          const std::vector<Value>& params,
                                                          absl::Time deadline, bool explain) {
  auto statement = sql::AnalyzeDml(sql);
  if (!statement.ok()) return statement.status();
  if (statement->parameter_count > limits_.max_params) {
    return TooManyParams(statement->parameter_count, limits_.max_params);
  }
  // A write takes its ticket before it reads the topology: a shard scan
  // that starts later waits for it (see IndexManager).
  std::unique_ptr<IndexManager::Write> write;
  if (!explain && indexes_ != nullptr && statement->kind != sql::StatementKind::kSelect) {
    write = indexes_->BeginWrite();
  }
  auto snapshot = store_->snapshot();
  const TableMeta* table = nullptr;
  std::unique_ptr<WriteGate::Pass> pass;
  for (int round = 0; round < 2; ++round) {
    table = nullptr;
    if (!statement->table.empty()) {
      table = snapshot->FindActive(statement->table);
      if (table == nullptr) {
        return Error(
            absl::StatusCode::kNotFound, reason::kTableNotFound,
            absl::StrCat("no such table: ", statement->table, " (SHOW TABLES lists the tables)"));
      }
    }
    if (explain || gate_ == nullptr || table == nullptr ||
        statement->kind == sql::StatementKind::kSelect || pass != nullptr) {
      break;
    }
    // Through the table's write gate; if it was closed, the topology may
    // have changed meanwhile (a reshard switch): plan with a fresh one.
    const int64_t version = snapshot->version;
    auto entered = gate_->Enter(table->table_id, deadline);
    if (!entered.ok()) return entered.status();
    pass = std::move(*entered);
    snapshot = store_->snapshot();
    if (snapshot->version == version) break;
  }
  auto plan = PlanQuery(*statement, table, *snapshot, params, indexes_, limits_.max_response_rows);
  if (!plan.ok()) return plan.status();
  if (explain) return QueryExecutor::Explain(*plan);
  if (write != nullptr && table != nullptr) {
    if (auto s = indexes_->PrepareWrite(*write, *table, *plan, deadline); !s.ok()) return s;
  }
  auto result = executor_->Run(*plan, table != nullptr ? table->name : "", deadline,
                               limits_.max_response_rows);
  if (write != nullptr) {
    if (result.ok()) {
      write->set_succeeded();
    } else if (MayHaveApplied(result.status().code())) {
      write->set_outcome_unknown();
    }
  }
  return result;
}

std::string FormatTimestamp(int64_t epoch_ms) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(epoch_ms),
                          absl::UTCTimeZone());
}

absl::StatusOr<v1::ExecuteResponse> SqlFrontDoor::Execute(const v1::ExecuteRequest& request,
                                                          absl::Time deadline) {
  if (auto s = CheckSqlLength(request.sql()); !s.ok()) return s;
  if (request.params_size() > limits_.max_params) {
    return TooManyParams(request.params_size(), limits_.max_params);
  }
  if (absl::Now() >= deadline) {
    return absl::DeadlineExceededError("the deadline passed before the statement started");
  }
  if (request.sql().find('\0') != std::string::npos) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kSqlSyntax,
                 "the statement contains a NUL character");
  }
  auto parsed = sql::ParseStatement(request.sql());
  if (!parsed.ok()) return parsed.status();
  const sql::ParsedStatement& stmt = *parsed;
  bool takes_params =
      stmt.kind == sql::StatementKind::kSelect || stmt.kind == sql::StatementKind::kInsert ||
      stmt.kind == sql::StatementKind::kUpdate || stmt.kind == sql::StatementKind::kDelete ||
      stmt.kind == sql::StatementKind::kExplain;
  if (!takes_params && request.params_size() > 0) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kInvalidArgument,
                 absl::StrCat(sql::StatementKindName(stmt.kind),
                              " takes no parameters; only SELECT, INSERT, UPDATE, DELETE (and "
                              "EXPLAIN of them) bind ? placeholders"));
  }

  v1::ExecuteResponse response;
  switch (stmt.kind) {
    case sql::StatementKind::kCreateTable: {
      v1::CreateTableRequest create;
      create.set_sql(request.sql());
      auto result = tables_->CreateTable(create, deadline);
      if (!result.ok()) return result.status();
      return response;
    }
    case sql::StatementKind::kDropTable: {
      v1::DropTableRequest drop;
      drop.set_table(stmt.table);
      drop.set_if_exists(stmt.if_exists);
      auto result = tables_->DropTable(drop, deadline);
      if (!result.ok()) return result.status();
      return response;
    }
    case sql::StatementKind::kRenameTable: {
      v1::RenameTableRequest rename;
      rename.set_table(stmt.table);
      rename.set_new_name(stmt.new_name);
      auto result = tables_->RenameTable(rename, deadline);
      if (!result.ok()) return result.status();
      return response;
    }
    case sql::StatementKind::kSetBlockSize: {
      v1::SetBlockSizeRequest set;
      set.set_table(stmt.table);
      // Out-of-int32 values are clamped so the range check reports them.
      set.set_block_size(static_cast<int32_t>(
          std::max<int64_t>(INT32_MIN, std::min<int64_t>(INT32_MAX, stmt.number))));
      auto result = tables_->SetBlockSize(set, deadline);
      if (!result.ok()) return result.status();
      return response;
    }
    case sql::StatementKind::kShowTables:
      AddShowTables(tables_->ListTables(), &response);
      return response;
    case sql::StatementKind::kDescribeTable: {
      v1::DescribeTableRequest describe;
      describe.set_table(stmt.table);
      auto result = tables_->DescribeTable(describe);
      if (!result.ok()) return result.status();
      AddDescribe(*result, &response);
      return response;
    }
    case sql::StatementKind::kTableStats: {
      v1::GetTableStatsRequest stats;
      stats.set_table(stmt.table);
      auto result = tables_->GetTableStats(stats, deadline);
      if (!result.ok()) return result.status();
      AddStats(*result, &response);
      return response;
    }
    case sql::StatementKind::kShowIndexes: {
      v1::ListIndexesRequest list;
      list.set_table(stmt.table);
      auto result = tables_->ListIndexes(list);
      if (!result.ok()) return result.status();
      ResultSetBuilder set(
          &response, "INDEXES",
          {"index_name", "table_name", "columns", "index_type", "status", "created_at"});
      for (const auto& i : result->indexes()) {
        set.Row({Text(i.name()), Text(i.table()), Text(Joined(i.columns())), Text(i.type()),
                 Text(i.status()), Text(FormatTimestamp(i.created_at_ms()))});
      }
      return response;
    }
    case sql::StatementKind::kCreateIndex: {
      v1::CreateIndexRequest create;
      create.set_name(stmt.index_name);
      create.set_table(stmt.table);
      for (const auto& column : stmt.columns) create.add_columns(column);
      create.set_unique(stmt.unique);
      create.set_if_not_exists(stmt.if_not_exists);
      auto result = tables_->CreateIndex(create, deadline);
      if (!result.ok()) return result.status();
      return response;
    }
    case sql::StatementKind::kDropIndex: {
      v1::DropIndexRequest drop;
      drop.set_name(stmt.index_name);
      drop.set_table(stmt.table);
      drop.set_if_exists(stmt.if_exists);
      auto result = tables_->DropIndex(drop, deadline);
      if (!result.ok()) return result.status();
      return response;
    }
    case sql::StatementKind::kReshardTable: {
      if (reshards_ == nullptr) return NotYet("PRAGMA reshardTable", "online resharding");
      v1::ReshardTableRequest reshard;
      reshard.set_table(stmt.table);
      reshard.set_new_shard_count(static_cast<int32_t>(
          std::max<int64_t>(INT32_MIN, std::min<int64_t>(INT32_MAX, stmt.number))));
      auto result = reshards_->Start(reshard, deadline);
      if (!result.ok()) return result.status();
      const v1::ReshardStatus& s = result->status();
      const bool nothing = result->change_log_id().empty();
      ResultSetBuilder(&response, "RESHARD",
                       {"change_log_id", "status", "message", "table_name", "source_shard_count",
                        "target_shard_count"})
          .Row({nothing ? NullValue() : Text(result->change_log_id()),
                Text(nothing ? "unchanged" : "started"),
                Text(nothing ? absl::StrCat("table ", s.table(), " already has ",
                                            s.target_shard_count(), " shard(s); nothing to do")
                             : absl::StrCat("resharding ", s.table(), " from ",
                                            s.source_shard_count(), " to ", s.target_shard_count(),
                                            " shards; follow it with PRAGMA reshardStatus('",
                                            result->change_log_id(), "')")),
                Text(s.table()), Int(s.source_shard_count()), Int(s.target_shard_count())});
      return response;
    }
    case sql::StatementKind::kReshardStatus: {
      if (reshards_ == nullptr) return NotYet("PRAGMA reshardStatus", "online resharding");
      auto s = reshards_->Status(stmt.change_log_id);
      if (!s.ok()) return s.status();
      static const char* kPhases[] = {"unspecified", "pending",  "copying",
                                      "switching",   "complete", "failed"};
      const int phase = static_cast<int>(s->phase());
      ResultSetBuilder(
          &response, "RESHARD_STATUS",
          {"change_log_id", "table_name", "phase", "rows_copied", "rows_total", "error"})
          .Row({Text(s->change_log_id()), Text(s->table()),
                Text(phase >= 0 && phase < 6 ? kPhases[phase] : "unspecified"),
                Int(s->rows_copied()), Int(s->rows_total()),
                s->error().empty() ? NullValue() : Text(s->error())});
      return response;
    }
    case sql::StatementKind::kSelect:
    case sql::StatementKind::kInsert:
    case sql::StatementKind::kUpdate:
    case sql::StatementKind::kDelete:
      return RunData(request.sql(), {request.params().begin(), request.params().end()}, deadline,
                     false);
    case sql::StatementKind::kExplain: {
      sql::StatementKind inner =
          stmt.explained.empty() ? sql::StatementKind::kExplain : stmt.explained[0].kind;
      if (inner != sql::StatementKind::kSelect && inner != sql::StatementKind::kInsert &&
          inner != sql::StatementKind::kUpdate && inner != sql::StatementKind::kDelete) {
        return Error(absl::StatusCode::kUnimplemented, reason::kUnsupportedStatement,
                     "EXPLAIN describes SELECT, INSERT, UPDATE and DELETE statements");
      }
      // The statement after the EXPLAIN keyword.
      auto tokens = sql::Tokenize(request.sql());
      if (!tokens.ok()) return tokens.status();
      size_t start = 0;
      for (const auto& token : *tokens) {
        if (sql::IsKeyword(token, "EXPLAIN")) {
          start = token.offset + token.text.size();
          break;
        }
      }
      return RunData(absl::string_view(request.sql()).substr(start),
                     {request.params().begin(), request.params().end()}, deadline, true);
    }
  }
  return absl::InternalError("unhandled statement kind");
}

}  // namespace conductor
