#include "common/shard_copy/copier.h"

#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/errors.h"
#include "common/routing.h"
#include "common/shard_copy/change_capture.h"
#include "common/sql/create_table.h"
#include "common/sqlite.h"

namespace conductor::shard_copy {
namespace {

using conductor::v1::Value;
using storage::v1::ExecuteBatchRequest;
using storage::v1::ExecuteBatchResponse;

// A validated TableLayout, with what the statements need precomputed.
struct Plan {
  const TableLayout* layout = nullptr;
  routing::Affinity affinity = routing::Affinity::kBlob;
  // Position in layout.columns of each primary-key column, in key order.
  std::vector<int> key_in_row;
  // Position of the shard key in layout.columns and in layout.primary_key.
  int shard_key_in_row = 0;
  int shard_key_in_key = 0;
  std::string table;                     // "t"
  std::vector<std::string> columns;      // "c1", "c2", …
  std::vector<std::string> key_columns;  // "k1", "k2", …
  std::string virtual_shard;             // "_virtualShard"
};

int Find(const std::vector<std::string>& names, const std::string& name) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (absl::EqualsIgnoreCase(names[i], name)) return static_cast<int>(i);
  }
  return -1;
}

absl::StatusOr<Plan> MakePlan(const TableLayout& layout) {
  if (auto s = ValidateLayout(layout); !s.ok()) return s;
  Plan plan;
  plan.layout = &layout;
  plan.affinity = routing::AffinityOf(layout.shard_key_type);
  for (const std::string& column : layout.primary_key) {
    plan.key_in_row.push_back(Find(layout.columns, column));
  }
  plan.shard_key_in_row = Find(layout.columns, layout.shard_key);
  plan.shard_key_in_key = Find(layout.primary_key, layout.shard_key);
  plan.table = QuoteIdentifier(layout.table);
  for (const std::string& column : layout.columns) plan.columns.push_back(QuoteIdentifier(column));
  for (const std::string& column : layout.primary_key) {
    plan.key_columns.push_back(QuoteIdentifier(column));
  }
  plan.virtual_shard = QuoteIdentifier(sql::kVirtualShardColumn);
  return plan;
}

absl::Status CheckTargets(const std::vector<TargetShard>& targets) {
  if (targets.empty()) return absl::InvalidArgumentError("there are no target shards");
  for (size_t i = 1; i < targets.size(); ++i) {
    if (targets[i].shard_id <= targets[i - 1].shard_id) {
      return absl::InvalidArgumentError(
          absl::StrCat("target shards must be sorted by strictly increasing shard id (routing "
                       "order); shard ",
                       targets[i].shard_id, " follows shard ", targets[i - 1].shard_id));
    }
  }
  return absl::OkStatus();
}

bool IsNull(const Value& value) {
  return value.kind_case() == Value::kNullValue || value.kind_case() == Value::KIND_NOT_SET;
}

// "?<n>".
std::string Parameter(int n) { return absl::StrCat("?", n); }

// Roughly what a value adds to a serialized request.
int64_t ApproximateBytes(const Value& value) {
  switch (value.kind_case()) {
    case Value::kText:
      return static_cast<int64_t>(value.text().size()) + 6;
    case Value::kBlob:
      return static_cast<int64_t>(value.blob().size()) + 6;
    default:
      return 12;
  }
}

// Runs one batch and checks that the response has one result per statement.
absl::StatusOr<ExecuteBatchResponse> Run(const NodeExecutor& execute, const std::string& node,
                                         const ExecuteBatchRequest& request) {
  absl::StatusOr<ExecuteBatchResponse> response = execute(node, request);
  if (!response.ok()) return Annotate(response.status(), absl::StrCat("node ", node));
  if (response->results_size() != request.statements_size()) {
    return absl::InternalError(absl::StrCat("node ", node, " answered ", response->results_size(),
                                            " results to a batch of ", request.statements_size(),
                                            " statements"));
  }
  return response;
}

// Write statements grouped by node, split into batches of about
// kMaxBatchBytes; nodes run in the order they were first named.
class NodeBatches {
 public:
  void Add(const std::string& node, storage::v1::Statement statement, int64_t bytes) {
    auto [it, inserted] = index_.emplace(node, nodes_.size());
    if (inserted) nodes_.push_back({node, {}, 0});
    PerNode& per_node = nodes_[it->second];
    if (per_node.batches.empty() ||
        (per_node.last_bytes > 0 && per_node.last_bytes + bytes > kMaxBatchBytes)) {
      per_node.batches.emplace_back();
      per_node.last_bytes = 0;
    }
    *per_node.batches.back().add_statements() = std::move(statement);
    per_node.last_bytes += bytes;
  }

  // Each node's batches in order; with `parallel`, the nodes at once (one
  // thread per node beyond the first).
  absl::Status RunAll(const NodeExecutor& execute, bool parallel = false) const {
    auto run_node = [&](const PerNode& per_node) -> absl::Status {
      for (const ExecuteBatchRequest& batch : per_node.batches) {
        if (auto response = Run(execute, per_node.node, batch); !response.ok()) {
          return response.status();
        }
      }
      return absl::OkStatus();
    };
    if (!parallel || nodes_.size() < 2) {
      for (const PerNode& per_node : nodes_) {
        if (auto s = run_node(per_node); !s.ok()) return s;
      }
      return absl::OkStatus();
    }
    std::vector<absl::Status> results(nodes_.size());
    std::vector<std::thread> threads;
    for (size_t i = 1; i < nodes_.size(); ++i) {
      threads.emplace_back([&, i] { results[i] = run_node(nodes_[i]); });
    }
    results[0] = run_node(nodes_[0]);
    for (auto& thread : threads) thread.join();
    for (const absl::Status& s : results) {
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

 private:
  struct PerNode {
    std::string node;
    std::vector<ExecuteBatchRequest> batches;
    int64_t last_bytes;
  };
  std::vector<PerNode> nodes_;
  std::map<std::string, size_t> index_;
};

// A finished statement and its approximate size.
using StatementSink = std::function<void(storage::v1::Statement statement, int64_t bytes)>;

// Packs items into statements of at most kMaxSqlParameters parameters and
// about kMaxBatchBytes bytes each:
//   <head><item>, <item>, …<tail>
// Every item starts with ?1 (the `shared` value, bound once) and numbers its
// other parameters with a plain "?" (the next number). Only the first ?1 of
// a statement assigns a number, so item parameters follow in bind order; and
// SQLite resolves "?" in constant time but each "?NNN" with a linear search,
// which costs seconds in a statement of 30000 parameters.
class StatementPacker {
 public:
  // Each item binds `params_per_item` parameters besides ?1.
  StatementPacker(std::string head, std::string tail, int params_per_item, Value shared,
                  StatementSink sink)
      : head_(std::move(head)),
        tail_(std::move(tail)),
        max_items_((kMaxSqlParameters - 1) / params_per_item),
        shared_(std::move(shared)),
        sink_(std::move(sink)) {}
  StatementPacker(const StatementPacker&) = delete;
  StatementPacker& operator=(const StatementPacker&) = delete;
  ~StatementPacker() { Flush(); }

  // Adds an item: its SQL ("(?1, ?, …)"), the values of its "?"s and their
  // approximate size.
  template <typename Values>
  void Add(absl::string_view item, const Values& values, int64_t bytes) {
    bytes += static_cast<int64_t>(item.size());
    if (items_ == max_items_ || (items_ > 0 && bytes_ + bytes > kMaxBatchBytes)) Flush();
    if (items_ == 0) {
      sql_ = head_;
      *statement_.add_params() = shared_;
      bytes_ = static_cast<int64_t>(head_.size() + tail_.size()) + 16;
    } else {
      sql_ += ", ";
    }
    absl::StrAppend(&sql_, item);
    for (const Value& value : values) *statement_.add_params() = value;
    ++items_;
    bytes_ += bytes;
  }

  void Flush() {
    if (items_ == 0) return;
    sql_ += tail_;
    statement_.set_sql(std::move(sql_));
    sink_(std::move(statement_), bytes_);
    statement_ = storage::v1::Statement();
    sql_.clear();
    items_ = 0;
    bytes_ = 0;
  }

 private:
  const std::string head_;
  const std::string tail_;
  const int max_items_;
  const Value shared_;
  const StatementSink sink_;
  storage::v1::Statement statement_;
  std::string sql_;
  int items_ = 0;
  int64_t bytes_ = 0;
};

StatementSink ToNode(const std::string& node, NodeBatches* out) {
  return [node, out](storage::v1::Statement statement, int64_t bytes) {
    out->Add(node, std::move(statement), bytes);
  };
}

int64_t ApproximateBytes(const std::vector<Value>& values) {
  int64_t bytes = 0;
  for (const Value& value : values) bytes += ApproximateBytes(value);
  return bytes;
}

// "(?1, <prefix>?, ?, …)" with `count` plain parameters.
std::string Item(int count, absl::string_view prefix = "") {
  std::string out = absl::StrCat("(?1, ", prefix);
  for (int i = 0; i < count; ++i) out += i > 0 ? ", ?" : "?";
  return out + ")";
}

// TargetFor with the plan's affinity.
int Owner(const Plan& plan, const std::vector<TargetShard>& targets, const Value& shard_key) {
  return routing::ShardIndex(routing::RoutingHash(shard_key, plan.affinity),
                             static_cast<int>(targets.size()));
}

// The rows owned by each target, by index into `targets`.
using RowsByTarget = std::vector<std::vector<const std::vector<Value>*>>;

// Adds to `out` the upserts of `rows_by_target` into their targets.
void AddUpserts(const Plan& plan, const std::vector<TargetShard>& targets,
                const RowsByTarget& rows_by_target, NodeBatches* out) {
  const int width = static_cast<int>(plan.columns.size());
  const std::string head =
      absl::StrCat("INSERT OR REPLACE INTO ", plan.table, " (", plan.virtual_shard, ", ",
                   absl::StrJoin(plan.columns, ", "), ") VALUES ");
  const std::string item = Item(width);
  for (size_t t = 0; t < targets.size(); ++t) {
    if (rows_by_target[t].empty()) continue;
    StatementPacker packer(head, "", width, IntegerValue(targets[t].shard_id),
                           ToNode(targets[t].node, out));
    for (const std::vector<Value>* row : rows_by_target[t]) {
      packer.Add(item, *row, ApproximateBytes(*row));
    }
  }
}

// OK, or INVALID_ARGUMENT for a NULL shard key (which cannot be routed).
absl::Status CheckShardKey(const Plan& plan, const Value& value) {
  if (IsNull(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("a row of table ", plan.layout->table, " has a NULL shard key (",
                     plan.layout->shard_key, "): it cannot be routed"));
  }
  return absl::OkStatus();
}

// Appends the canonical encoding of `value` (see RowHash).
void AppendFixed64(uint64_t bits, std::string* out) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
}

void AppendCanonical(const Value& value, std::string* out) {
  switch (value.kind_case()) {
    case Value::kInteger:
      out->push_back('i');
      AppendFixed64(static_cast<uint64_t>(value.integer()), out);
      break;
    case Value::kReal: {
      uint64_t bits;
      const double real = value.real();
      std::memcpy(&bits, &real, sizeof(bits));
      out->push_back('r');
      AppendFixed64(bits, out);
      break;
    }
    case Value::kText:
      out->push_back('t');
      AppendFixed64(value.text().size(), out);
      out->append(value.text());
      break;
    case Value::kBlob:
      out->push_back('b');
      AppendFixed64(value.blob().size(), out);
      out->append(value.blob());
      break;
    default:
      out->push_back('n');
      break;
  }
}

template <typename Values>
uint64_t HashValues(const Values& values) {
  std::string encoded;
  for (const Value& value : values) AppendCanonical(value, &encoded);
  return XXH64(encoded.data(), encoded.size(), 0);
}

// "Strictly after `after_key` in ORDER BY key_columns order", parameters from
// ?<first_parameter> on (as storage_node/shard_scan.cc): a row value comparison (an index
// seek) unless the key holds a NULL, which compares as unknown and is spelled
// out: k1 > v1 OR (k1 = v1 AND k2 > v2) OR …, where NULL sorts first, so
// "k > NULL" is "k IS NOT NULL" and "k = NULL" is "k IS NULL" (written with
// the parameter, "k IS NOT ?n", so that every parameter is used).
std::string AfterCondition(const std::vector<std::string>& key_columns,
                           const std::vector<Value>& after_key, int first_parameter) {
  bool has_null = false;
  for (const Value& value : after_key) has_null |= IsNull(value);
  std::vector<std::string> parameters;
  for (size_t i = 0; i < key_columns.size(); ++i) {
    parameters.push_back(Parameter(first_parameter + static_cast<int>(i)));
  }
  if (!has_null) {
    return absl::StrCat("(", absl::StrJoin(key_columns, ", "), ") > (",
                        absl::StrJoin(parameters, ", "), ")");
  }
  std::vector<std::string> alternatives;
  std::vector<std::string> equal_prefix;
  for (size_t i = 0; i < key_columns.size(); ++i) {
    const bool null = IsNull(after_key[i]);
    std::vector<std::string> terms = equal_prefix;
    terms.push_back(absl::StrCat(key_columns[i], null ? " IS NOT " : " > ", parameters[i]));
    alternatives.push_back(absl::StrCat("(", absl::StrJoin(terms, " AND "), ")"));
    equal_prefix.push_back(absl::StrCat(key_columns[i], null ? " IS " : " = ", parameters[i]));
  }
  return absl::StrCat("(", absl::StrJoin(alternatives, " OR "), ")");
}

}  // namespace

absl::Status ValidateLayout(const TableLayout& layout) {
  if (layout.table.empty()) return absl::InvalidArgumentError("the table name is empty");
  const std::string where = absl::StrCat(" (table ", layout.table, ")");
  if (layout.columns.empty()) return absl::InvalidArgumentError("no columns to move" + where);
  if (static_cast<int>(layout.columns.size()) + 1 > kMaxSqlParameters) {
    return absl::InvalidArgumentError(absl::StrCat("too many columns", where));
  }
  for (size_t i = 0; i < layout.columns.size(); ++i) {
    const std::string& column = layout.columns[i];
    if (column.empty()) return absl::InvalidArgumentError("an empty column name" + where);
    if (absl::EqualsIgnoreCase(column, sql::kVirtualShardColumn)) {
      return absl::InvalidArgumentError(
          absl::StrCat(sql::kVirtualShardColumn, " is not a user column", where));
    }
    if (Find(layout.columns, column) != static_cast<int>(i)) {
      return absl::InvalidArgumentError(absl::StrCat("column ", column, " is listed twice", where));
    }
  }
  if (layout.primary_key.empty()) return absl::InvalidArgumentError("no primary key" + where);
  for (size_t i = 0; i < layout.primary_key.size(); ++i) {
    const std::string& column = layout.primary_key[i];
    if (Find(layout.columns, column) < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("primary-key column ", column, " is not among the columns", where));
    }
    if (Find(layout.primary_key, column) != static_cast<int>(i)) {
      return absl::InvalidArgumentError(
          absl::StrCat("primary-key column ", column, " is listed twice", where));
    }
  }
  if (Find(layout.primary_key, layout.shard_key) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the shard key ", layout.shard_key, " is not a primary-key column", where));
  }
  return absl::OkStatus();
}

int TargetFor(const TableLayout& layout, const std::vector<TargetShard>& targets,
              const Value& shard_key_value) {
  const uint64_t hash =
      routing::RoutingHash(shard_key_value, routing::AffinityOf(layout.shard_key_type));
  return routing::ShardIndex(hash, static_cast<int>(targets.size()));
}

absl::StatusOr<int64_t> ApplyRows(const TableLayout& layout,
                                  const std::vector<TargetShard>& targets,
                                  const std::vector<std::vector<Value>>& rows,
                                  const NodeExecutor& execute, bool parallel_nodes) {
  absl::StatusOr<Plan> plan = MakePlan(layout);
  if (!plan.ok()) return plan.status();
  if (auto s = CheckTargets(targets); !s.ok()) return s;
  RowsByTarget rows_by_target(targets.size());
  for (const std::vector<Value>& row : rows) {
    if (row.size() != plan->columns.size()) {
      return absl::InvalidArgumentError(absl::StrCat("a row of table ", layout.table, " has ",
                                                     row.size(), " values, not ",
                                                     plan->columns.size()));
    }
    const Value& shard_key = row[plan->shard_key_in_row];
    if (auto s = CheckShardKey(*plan, shard_key); !s.ok()) return s;
    rows_by_target[Owner(*plan, targets, shard_key)].push_back(&row);
  }
  NodeBatches batches;
  AddUpserts(*plan, targets, rows_by_target, &batches);
  if (auto s = batches.RunAll(execute, parallel_nodes); !s.ok()) return s;
  return static_cast<int64_t>(rows.size());
}

absl::StatusOr<CatchUpResult> CatchUpOnce(const TableLayout& layout, const SourceShard& source,
                                          const std::vector<TargetShard>& targets,
                                          int64_t after_seq, int max_changes,
                                          const NodeExecutor& execute) {
  absl::StatusOr<Plan> plan = MakePlan(layout);
  if (!plan.ok()) return plan.status();
  if (auto s = CheckTargets(targets); !s.ok()) return s;
  if (max_changes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_changes must be at least 1, not ", max_changes));
  }
  const int key_width = static_cast<int>(plan->key_columns.size());
  const int width = static_cast<int>(plan->columns.size());

  // 1. The captured changes of this shard.
  ExecuteBatchRequest read_changes;
  read_changes.set_read_only(true);
  {
    storage::v1::Statement* statement = read_changes.add_statements();
    statement->set_sql(ReadShardChangesSql(layout.table, layout.primary_key));
    *statement->add_params() = IntegerValue(after_seq);
    *statement->add_params() = IntegerValue(max_changes);
    *statement->add_params() = IntegerValue(source.shard_id);
  }
  absl::StatusOr<ExecuteBatchResponse> changes = Run(execute, source.node, read_changes);
  if (!changes.ok()) return changes.status();

  CatchUpResult result;
  result.last_seq = after_seq;
  // Distinct keys (by exact value), in the order first seen.
  std::vector<std::vector<Value>> keys;
  std::set<std::string> seen;
  for (conductor::v1::Row& row : *changes->mutable_results(0)->mutable_rows()) {
    if (row.values_size() != 2 + key_width || row.values(0).kind_case() != Value::kInteger) {
      return absl::InternalError(absl::StrCat(
          "node ", source.node, " answered a malformed change of table ", layout.table));
    }
    if (row.values(1).kind_case() != Value::kInteger ||
        row.values(1).integer() != source.shard_id) {
      continue;  // another shard's (the query filters them already)
    }
    result.last_seq = std::max(result.last_seq, row.values(0).integer());
    ++result.changes;
    std::vector<Value> key(std::make_move_iterator(row.mutable_values()->begin() + 2),
                           std::make_move_iterator(row.mutable_values()->end()));
    if (auto s = CheckShardKey(*plan, key[plan->shard_key_in_key]); !s.ok()) return s;
    std::string encoded;
    for (const Value& value : key) AppendCanonical(value, &encoded);
    if (seen.insert(std::move(encoded)).second) keys.push_back(std::move(key));
  }
  if (keys.empty()) return result;

  // 2. The current source row of each key, in one read batch of
  //   SELECT k.column2, s."_virtualShard", s."c1", …
  //   FROM (VALUES (?1, 0, ?, …), (?1, 1, ?, …), …) AS k
  //   LEFT JOIN "t" AS s ON s."_virtualShard" = k.column1
  //     AND s."k1" = k.column3 AND s."k1" = k.column3 COLLATE BINARY AND …
  // (?1: the source shard; k.column2: the key's ordinal). `=` on the column's
  // own collation lets the primary-key index serve the join; the COLLATE
  // BINARY twin makes the match exact, so a key found is the very key
  // captured and a key not found can be deleted exactly on the target,
  // whatever the collations. (One snapshot is not needed: each key is re-read
  // after its change was captured.)
  // The rows may be too many for one response (RESOURCE_EXHAUSTED from the
  // node): then each half of the keys is read on its own, down to one key.
  std::vector<std::vector<Value>> rows;
  rows.reserve(keys.size());
  std::vector<bool> found(keys.size(), false);
  {
    const std::string keys_alias = "_conductor_keys";
    const std::string row_alias = "_conductor_row";
    std::vector<std::string> select = {absl::StrCat(keys_alias, ".column2"),
                                       absl::StrCat(row_alias, ".", plan->virtual_shard)};
    for (const std::string& column : plan->columns) {
      select.push_back(absl::StrCat(row_alias, ".", column));
    }
    std::vector<std::string> on = {
        absl::StrCat(row_alias, ".", plan->virtual_shard, " = ", keys_alias, ".column1")};
    for (int i = 0; i < key_width; ++i) {
      const std::string column = absl::StrCat(row_alias, ".", plan->key_columns[i]);
      const std::string value = absl::StrCat(keys_alias, ".column", i + 3);
      on.push_back(absl::StrCat(column, " = ", value));
      on.push_back(absl::StrCat(column, " = ", value, " COLLATE BINARY"));
    }
    const std::string head = absl::StrCat("SELECT ", absl::StrJoin(select, ", "), " FROM (VALUES ");
    const std::string tail = absl::StrCat(") AS ", keys_alias, " LEFT JOIN ", plan->table, " AS ",
                                          row_alias, " ON ", absl::StrJoin(on, " AND "));
    // Reads the keys [begin, end).
    std::function<absl::Status(size_t, size_t)> read = [&](size_t begin,
                                                           size_t end) -> absl::Status {
      ExecuteBatchRequest request;
      request.set_read_only(true);
      {
        StatementPacker packer(head, tail, key_width, IntegerValue(source.shard_id),
                               [&request](storage::v1::Statement statement, int64_t) {
                                 *request.add_statements() = std::move(statement);
                               });
        for (size_t i = begin; i < end; ++i) {
          packer.Add(Item(key_width, absl::StrCat(i, ", ")), keys[i], ApproximateBytes(keys[i]));
        }
      }
      absl::StatusOr<ExecuteBatchResponse> current = Run(execute, source.node, request);
      if (current.status().code() == absl::StatusCode::kResourceExhausted && end - begin > 1) {
        const size_t middle = begin + (end - begin) / 2;
        if (absl::Status s = read(begin, middle); !s.ok()) return s;
        return read(middle, end);
      }
      if (!current.ok()) return current.status();
      for (auto& statement_result : *current->mutable_results()) {
        for (conductor::v1::Row& row : *statement_result.mutable_rows()) {
          if (row.values_size() != 2 + width || row.values(0).kind_case() != Value::kInteger ||
              row.values(0).integer() < static_cast<int64_t>(begin) ||
              row.values(0).integer() >= static_cast<int64_t>(end)) {
            return absl::InternalError(absl::StrCat(
                "node ", source.node, " answered a malformed row of table ", layout.table));
          }
          if (IsNull(row.values(1))) continue;  // no source row for this key
          found[row.values(0).integer()] = true;
          rows.emplace_back(std::make_move_iterator(row.mutable_values()->begin() + 2),
                            std::make_move_iterator(row.mutable_values()->end()));
        }
      }
      return absl::OkStatus();
    };
    if (absl::Status s = read(0, keys.size()); !s.ok()) return s;
  }

  // 3. Deletes and upserts on the targets.
  NodeBatches writes;
  // Deletes first: a node's batch then never removes a row it upserts. One
  // statement per key,
  //   DELETE FROM "t" WHERE "_virtualShard" = ?1 AND "k1" = ?2
  //                     AND "k1" = ?2 COLLATE BINARY AND …
  // seeks the whole primary key (a row-value IN over several key columns
  // only seeks the first) and matches exactly (see the read above).
  {
    std::string sql =
        absl::StrCat("DELETE FROM ", plan->table, " WHERE ", plan->virtual_shard, " = ?1");
    for (int i = 0; i < key_width; ++i) {
      absl::StrAppend(&sql, " AND ", plan->key_columns[i], " = ?", i + 2, " AND ",
                      plan->key_columns[i], " = ?", i + 2, " COLLATE BINARY");
    }
    for (size_t i = 0; i < keys.size(); ++i) {
      if (found[i]) continue;
      const TargetShard& target = targets[Owner(*plan, targets, keys[i][plan->shard_key_in_key])];
      storage::v1::Statement statement;
      statement.set_sql(sql);
      *statement.add_params() = IntegerValue(target.shard_id);
      for (const Value& value : keys[i]) *statement.add_params() = value;
      writes.Add(target.node, std::move(statement),
                 ApproximateBytes(keys[i]) + static_cast<int64_t>(sql.size()) + 16);
      ++result.deleted;
    }
  }
  {
    RowsByTarget rows_by_target(targets.size());
    for (const std::vector<Value>& row : rows) {
      const Value& shard_key = row[plan->shard_key_in_row];
      if (auto s = CheckShardKey(*plan, shard_key); !s.ok()) return s;
      rows_by_target[Owner(*plan, targets, shard_key)].push_back(&row);
    }
    AddUpserts(*plan, targets, rows_by_target, &writes);
    result.upserted = static_cast<int64_t>(rows.size());
  }
  if (auto s = writes.RunAll(execute); !s.ok()) return s;

  // 4. Forget what was applied.
  ExecuteBatchRequest trim;
  {
    storage::v1::Statement* statement = trim.add_statements();
    statement->set_sql(TrimShardChangesSql(layout.table));
    *statement->add_params() = IntegerValue(result.last_seq);
    *statement->add_params() = IntegerValue(source.shard_id);
  }
  if (auto response = Run(execute, source.node, trim); !response.ok()) return response.status();
  return result;
}

// Counts running at once in CountShards(parallel).
constexpr size_t kMaxParallelCounts = 16;

absl::StatusOr<int64_t> CountShards(const TableLayout& layout,
                                    const std::vector<ShardOnNode>& shards,
                                    const NodeExecutor& execute, bool parallel) {
  absl::StatusOr<Plan> plan = MakePlan(layout);
  if (!plan.ok()) return plan.status();
  const std::string sql =
      absl::StrCat("SELECT count(*) FROM ", plan->table, " WHERE ", plan->virtual_shard, " = ?1");
  // The calls: per node (one batch) or per shard.
  std::vector<std::pair<std::string, ExecuteBatchRequest>> calls;
  std::map<std::string, size_t> call_of_node;
  for (const ShardOnNode& shard : shards) {
    size_t at = calls.size();
    if (!parallel) {
      auto [it, inserted] = call_of_node.emplace(shard.node, calls.size());
      at = it->second;
    }
    if (at == calls.size()) {
      calls.emplace_back(shard.node, ExecuteBatchRequest());
      calls.back().second.set_read_only(true);
    }
    storage::v1::Statement* statement = calls[at].second.add_statements();
    statement->set_sql(sql);
    *statement->add_params() = IntegerValue(shard.shard_id);
  }
  std::vector<absl::StatusOr<ExecuteBatchResponse>> responses(calls.size(),
                                                              absl::UnknownError("not run"));
  if (parallel && calls.size() > 1) {
    // At most kMaxParallelCounts calls at once (a table may have 256 shards).
    std::atomic<size_t> next{0};
    std::vector<std::thread> threads;
    const size_t width = std::min(calls.size(), kMaxParallelCounts);
    for (size_t t = 0; t < width; ++t) {
      threads.emplace_back([&] {
        for (size_t i; (i = next.fetch_add(1)) < calls.size();) {
          responses[i] = Run(execute, calls[i].first, calls[i].second);
        }
      });
    }
    for (auto& thread : threads) thread.join();
  } else {
    for (size_t i = 0; i < calls.size(); ++i) {
      responses[i] = Run(execute, calls[i].first, calls[i].second);
    }
  }
  int64_t total = 0;
  for (size_t i = 0; i < calls.size(); ++i) {
    if (!responses[i].ok()) return responses[i].status();
    for (const storage::v1::StatementResult& result : responses[i]->results()) {
      if (result.rows_size() != 1 || result.rows(0).values_size() != 1 ||
          result.rows(0).values(0).kind_case() != Value::kInteger) {
        return absl::InternalError(absl::StrCat(
            "node ", calls[i].first, " answered a malformed count of table ", layout.table));
      }
      total += result.rows(0).values(0).integer();
    }
  }
  return total;
}

absl::StatusOr<int64_t> CountCapturedShards(const TableLayout& layout,
                                            const std::vector<ShardOnNode>& sources,
                                            const NodeExecutor& execute) {
  std::map<std::string, std::set<int32_t>> by_node;
  for (const ShardOnNode& shard : sources) by_node[shard.node].insert(shard.shard_id);
  int64_t total = 0;
  for (const auto& [node, shard_ids] : by_node) {
    ExecuteBatchRequest request;
    request.set_read_only(true);
    request.add_statements()->set_sql(ReadCountsSql(layout.table));
    absl::StatusOr<ExecuteBatchResponse> response = Run(execute, node, request);
    if (!response.ok()) return response.status();
    std::set<int32_t> seen;
    for (const auto& row : response->results(0).rows()) {
      if (row.values_size() != 2 || row.values(0).kind_case() != Value::kInteger ||
          row.values(1).kind_case() != Value::kInteger) {
        return absl::InternalError(
            absl::StrCat("node ", node, " answered malformed counters of table ", layout.table));
      }
      const int32_t shard = static_cast<int32_t>(row.values(0).integer());
      if (shard_ids.count(shard) == 0) continue;
      seen.insert(shard);
      total += row.values(1).integer();
    }
    for (int32_t shard : shard_ids) {
      if (seen.count(shard) == 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("node ", node, " keeps no row counter for shard ", shard, " of table ",
                         layout.table, " (change capture is not on there)"));
      }
    }
  }
  return total;
}

uint64_t RowHash(const std::vector<Value>& values) { return HashValues(values); }

absl::StatusOr<ShardsChecksum> ChecksumShards(const TableLayout& layout,
                                              const std::vector<ShardOnNode>& shards,
                                              int block_size, const NodeExecutor& execute) {
  absl::StatusOr<Plan> plan = MakePlan(layout);
  if (!plan.ok()) return plan.status();
  if (block_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("block_size must be at least 1, not ", block_size));
  }
  const int width = static_cast<int>(plan->columns.size());
  // Qualified names: a bare "name" that is not a column would be a string.
  std::vector<std::string> columns;
  for (const std::string& column : plan->columns) {
    columns.push_back(absl::StrCat(plan->table, ".", column));
  }
  std::vector<std::string> key_columns;
  for (const std::string& column : plan->key_columns) {
    key_columns.push_back(absl::StrCat(plan->table, ".", column));
  }
  const std::string select =
      absl::StrCat("SELECT ", absl::StrJoin(columns, ", "), " FROM ", plan->table, " WHERE ",
                   plan->table, ".", plan->virtual_shard, " = ?1");
  // ?1 the shard, ?2 the block size, ?3… the last key of the previous block.
  const std::string order =
      absl::StrCat(" ORDER BY ", absl::StrJoin(key_columns, ", "), " LIMIT ?2");

  ShardsChecksum sum;
  for (const ShardOnNode& shard : shards) {
    std::vector<Value> after_key;
    // Halved while a block is too large for one response (RESOURCE_EXHAUSTED).
    int block = block_size;
    while (true) {
      ExecuteBatchRequest request;
      request.set_read_only(true);
      storage::v1::Statement* statement = request.add_statements();
      statement->set_sql(
          after_key.empty()
              ? absl::StrCat(select, order)
              : absl::StrCat(select, " AND ", AfterCondition(key_columns, after_key, 3), order));
      *statement->add_params() = IntegerValue(shard.shard_id);
      *statement->add_params() = IntegerValue(block);
      for (const Value& value : after_key) *statement->add_params() = value;
      absl::StatusOr<ExecuteBatchResponse> response = Run(execute, shard.node, request);
      if (response.status().code() == absl::StatusCode::kResourceExhausted && block > 1) {
        block /= 2;
        continue;
      }
      if (!response.ok()) return response.status();
      const auto& rows = response->results(0).rows();
      for (const conductor::v1::Row& row : rows) {
        if (row.values_size() != width) {
          return absl::InternalError(absl::StrCat(
              "node ", shard.node, " answered a malformed row of table ", layout.table));
        }
        sum.checksum += HashValues(row.values());
        ++sum.rows;
      }
      if (rows.size() < block) break;
      const conductor::v1::Row& last = rows[rows.size() - 1];
      after_key.clear();
      for (int index : plan->key_in_row) after_key.push_back(last.values(index));
    }
  }
  return sum;
}

}  // namespace conductor::shard_copy
