// Online resharding end to end (DESIGN.md §4 and §5 RESHARD): a real
// conductor, three real storage nodes and real queue workers on loopback.
// Every reshard is checked against the truth of the nodes' SQLite files: after
// `complete` the table has exactly the new active shards (fresh ids), every
// row lives exactly once, on the shard the routing function gives its shard
// key, on that shard's node; the retired shard ids hold no rows anywhere; no
// change-capture or fence object is left behind; shard-key queries hit one
// shard; a virtual index made before the reshard converges on the new shards.
//
// Every wait polls with a generous deadline; nothing asserts on how long
// anything took. Copies are slowed with the workers' --scan_rows_per_s where
// a test needs to act during one (and each such test checks that it did).
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/errors.h"
#include "common/routing.h"
#include "common/sqlite.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/harness/cluster.h"
#include "tests/harness/cluster_sql_test.h"

namespace conductor {
namespace {

using testing::Render;
using testing::RenderRow;
using testing::RenderValues;
using testing::TestCluster;
namespace v1 = ::conductor::v1;

// A reshard of a few thousand rows takes a second or two unthrottled, and
// ~10-20 s with the throttles below; the deadlines are for slow, loaded
// machines.
constexpr absl::Duration kReshardTimeout = absl::Seconds(120);
constexpr absl::Duration kIndexTimeout = absl::Seconds(120);

template <typename T>
std::string SetText(const std::set<T>& values) {
  return absl::StrCat("{", absl::StrJoin(values, ","), "}");
}

std::string PhaseName(v1::ReshardPhase phase) { return v1::ReshardPhase_Name(phase); }

bool IsActivePhase(v1::ReshardPhase phase) {
  return phase == v1::RESHARD_PHASE_PENDING || phase == v1::RESHARD_PHASE_COPYING ||
         phase == v1::RESHARD_PHASE_SWITCHING;
}

bool IsTerminalPhase(v1::ReshardPhase phase) {
  return phase == v1::RESHARD_PHASE_COMPLETE || phase == v1::RESHARD_PHASE_FAILED;
}

// What differs between two row multisets, briefly (the first few of each side).
std::string DiffRows(const std::vector<std::string>& expected,
                     const std::vector<std::string>& actual) {
  std::map<std::string, int> balance;
  for (const auto& row : expected) ++balance[row];
  for (const auto& row : actual) --balance[row];
  std::vector<std::string> missing, extra;
  for (const auto& [row, n] : balance) {
    if (n > 0) missing.push_back(absl::StrCat(row, " ×", n));
    if (n < 0) extra.push_back(absl::StrCat(row, " ×", -n));
  }
  if (missing.empty() && extra.empty()) return "";
  auto head = [](const std::vector<std::string>& rows) {
    std::vector<std::string> first(rows.begin(), rows.begin() + std::min<size_t>(rows.size(), 8));
    return absl::StrJoin(first, "\n    ");
  };
  return absl::StrCat(expected.size(), " rows expected, ", actual.size(), " found; ",
                      missing.size(), " missing (or too few), e.g.\n    ", head(missing), "\n  ",
                      extra.size(), " unexpected (or too many), e.g.\n    ", head(extra));
}

// A table as the checks see it: its user columns (the order rows are rendered
// in), its primary key (the ORDER BY) and its shard key.
struct Shape {
  std::string table;
  std::vector<std::string> columns;
  std::string order_by;
  std::string shard_key;
  int shard_key_at = 0;  // position of the shard key in `columns`

  std::string Select() const {
    std::vector<std::string> quoted;
    for (const auto& c : columns) quoted.push_back(QuoteIdentifier(c));
    return absl::StrCat("SELECT ", absl::StrJoin(quoted, ", "), " FROM ", QuoteIdentifier(table));
  }
};

// One row as a node's file holds it.
struct NodeRow {
  int node = 0;
  int64_t shard = 0;
  std::vector<Value> values;
  std::string rendered;
};

class ReshardIntegrationTest : public testing::ClusterSqlTest {
 protected:
  static std::vector<std::string> Columns(const v1::ResultSet& set) {
    return std::vector<std::string>(set.columns().begin(), set.columns().end());
  }

  // --- reshard calls -------------------------------------------------------

  // ReshardTable through the typed RPC; the call must start an operation.
  // Returns its change_log_id ("" after a failure, already reported).
  std::string StartReshard(const std::string& table, int n) {
    v1::ReshardTableRequest request;
    request.set_table(table);
    request.set_new_shard_count(n);
    v1::ReshardTableResponse response;
    grpc::Status status = Call(&v1::TableOps::Stub::ReshardTable, request, &response);
    if (!status.ok()) {
      ADD_FAILURE() << "ReshardTable(" << table << ", " << n << "): " << status.error_code() << " "
                    << status.error_message();
      return "";
    }
    EXPECT_FALSE(response.change_log_id().empty()) << response.DebugString();
    EXPECT_EQ(response.status().change_log_id(), response.change_log_id())
        << response.DebugString();
    EXPECT_EQ(response.status().table(), table) << response.DebugString();
    EXPECT_EQ(response.status().target_shard_count(), n) << response.DebugString();
    EXPECT_NE(response.status().phase(), v1::RESHARD_PHASE_FAILED) << response.DebugString();
    return response.change_log_id();
  }

  // The same through `PRAGMA reshardTable('t', n)`: one set RESHARD, status
  // 'started'.
  std::string StartReshardSql(const std::string& table, int n, int source_count) {
    v1::ExecuteResponse response;
    grpc::Status status =
        Run(absl::StrCat("PRAGMA reshardTable(", QuoteString(table), ", ", n, ")"), {}, &response);
    if (!status.ok()) {
      ADD_FAILURE() << "PRAGMA reshardTable(" << table << ", " << n << "): " << status.error_code()
                    << " " << status.error_message();
      return "";
    }
    EXPECT_EQ(response.result_sets_size(), 1) << response.DebugString();
    const v1::ResultSet* set = Set(response, "RESHARD");
    if (set == nullptr) {
      ADD_FAILURE() << "no result set RESHARD: " << response.DebugString();
      return "";
    }
    EXPECT_EQ(Columns(*set),
              (std::vector<std::string>{"change_log_id", "status", "message", "table_name",
                                        "source_shard_count", "target_shard_count"}));
    if (set->rows_size() != 1 || set->rows(0).values_size() != 6) {
      ADD_FAILURE() << "RESHARD is not one row of 6: " << set->DebugString();
      return "";
    }
    const v1::Row& row = set->rows(0);
    EXPECT_EQ(row.values(1).text(), "started") << set->DebugString();
    EXPECT_EQ(row.values(3).text(), table) << set->DebugString();
    EXPECT_EQ(row.values(4).integer(), source_count) << set->DebugString();
    EXPECT_EQ(row.values(5).integer(), n) << set->DebugString();
    EXPECT_EQ(row.values(0).kind_case(), Value::kText) << set->DebugString();
    EXPECT_FALSE(row.values(0).text().empty()) << set->DebugString();
    return row.values(0).text();
  }

  absl::StatusOr<v1::ReshardStatus> GetStatus(const std::string& change_log_id) {
    v1::GetReshardStatusRequest request;
    request.set_change_log_id(change_log_id);
    v1::ReshardStatus response;
    grpc::Status status = Call(&v1::TableOps::Stub::GetReshardStatus, request, &response);
    if (!status.ok()) return FromGrpcStatus(status);
    return response;
  }

  // Polls GetReshardStatus until `done` holds. Gives up early when the
  // operation failed and `done` does not accept that. UNAVAILABLE and
  // DEADLINE_EXCEEDED (a conductor restarting) are waited out. `observe`,
  // when given, sees every status polled.
  absl::StatusOr<v1::ReshardStatus> WaitReshard(
      const std::string& change_log_id, const std::function<bool(const v1::ReshardStatus&)>& done,
      absl::Duration timeout, const std::string& what,
      const std::function<void(const v1::ReshardStatus&)>& observe = nullptr) {
    absl::Time give_up = absl::Now() + timeout;
    std::optional<v1::ReshardStatus> last;
    absl::Status last_error = absl::OkStatus();
    while (true) {
      auto status = GetStatus(change_log_id);
      if (status.ok()) {
        last = *status;
        if (observe) observe(*status);
        if (done(*status)) return *status;
        if (status->phase() == v1::RESHARD_PHASE_FAILED) {
          return absl::FailedPreconditionError(absl::StrCat("reshard ", change_log_id,
                                                            " failed while waiting for ", what,
                                                            ": ", status->DebugString()));
        }
      } else if (status.status().code() != absl::StatusCode::kUnavailable &&
                 status.status().code() != absl::StatusCode::kDeadlineExceeded) {
        return absl::Status(status.status().code(),
                            absl::StrCat("waiting for ", what, ": ", status.status().message()));
      } else {
        last_error = status.status();
      }
      if (absl::Now() >= give_up) {
        return absl::DeadlineExceededError(absl::StrCat(
            "reshard ", change_log_id, " never reached ", what, " within ",
            absl::FormatDuration(timeout), "; last seen: ", last ? last->DebugString() : "nothing",
            "; last error: ", last_error.ToString()));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  // Waits until the reshard is copying with some, not all, rows copied: the
  // moment to interrupt it (the copies are throttled by --scan_rows_per_s).
  void WaitCopyingMidway(const std::string& change_log_id) {
    auto copying = WaitReshard(
        change_log_id,
        [](const v1::ReshardStatus& s) {
          return s.phase() == v1::RESHARD_PHASE_COPYING && s.rows_copied() > 0;
        },
        kReshardTimeout, "copying with rows copied");
    ASSERT_TRUE(copying.ok()) << copying.status();
    ASSERT_LT(copying->rows_copied(), copying->rows_total())
        << "the copy ended before it could be interrupted; slow --scan_rows_per_s further";
  }

  absl::StatusOr<v1::ReshardStatus> WaitComplete(const std::string& change_log_id) {
    return WaitReshard(
        change_log_id,
        [](const v1::ReshardStatus& s) { return s.phase() == v1::RESHARD_PHASE_COMPLETE; },
        kReshardTimeout, "complete");
  }

  // WatchReshard until the stream ends; every status it sent.
  std::vector<v1::ReshardStatus> Watch(const std::string& change_log_id, grpc::Status* end,
                                       absl::Duration timeout = kReshardTimeout) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
    v1::GetReshardStatusRequest request;
    request.set_change_log_id(change_log_id);
    auto reader = cluster_->ops().WatchReshard(&context, request);
    std::vector<v1::ReshardStatus> seen;
    v1::ReshardStatus status;
    while (reader->Read(&status)) seen.push_back(status);
    *end = reader->Finish();
    return seen;
  }

  // Checks what a WatchReshard stream sent: phases never go back, the last
  // is `final_phase` and nothing follows a terminal phase.
  void ExpectWatchStream(const std::vector<v1::ReshardStatus>& seen, const grpc::Status& end,
                         const std::string& change_log_id, v1::ReshardPhase final_phase) {
    EXPECT_TRUE(IsOk(end)) << "WatchReshard ended with an error";
    ASSERT_FALSE(seen.empty()) << "WatchReshard sent nothing";
    std::vector<std::string> phases;
    for (size_t i = 0; i < seen.size(); ++i) {
      phases.push_back(PhaseName(seen[i].phase()));
      EXPECT_EQ(seen[i].change_log_id(), change_log_id);
      if (i > 0) {
        // Phases are ordered pending < copying < switching < complete;
        // switching may fall back to copying (a retried switch).
        const bool back_to_copying = seen[i - 1].phase() == v1::RESHARD_PHASE_SWITCHING &&
                                     seen[i].phase() == v1::RESHARD_PHASE_COPYING;
        if (seen[i].phase() != v1::RESHARD_PHASE_FAILED && !back_to_copying) {
          EXPECT_GE(seen[i].phase(), seen[i - 1].phase())
              << "phase went back: " << absl::StrJoin(phases, " → ");
        }
        EXPECT_FALSE(IsTerminalPhase(seen[i - 1].phase()))
            << "the stream went on after a terminal phase: " << absl::StrJoin(phases, " → ");
      }
    }
    ASSERT_EQ(seen.back().phase(), final_phase)
        << absl::StrJoin(phases, " → ") << "; last: " << seen.back().ShortDebugString();
  }

  // --- topology and data -------------------------------------------------

  v1::DescribeTableResponse Describe(const std::string& table) {
    v1::DescribeTableRequest request;
    request.set_table(table);
    v1::DescribeTableResponse response;
    grpc::Status status = Call(&v1::TableOps::Stub::DescribeTable, request, &response);
    EXPECT_TRUE(status.ok()) << "DescribeTable " << table << ": " << status.error_message();
    return response;
  }

  static std::set<int32_t> ShardIds(const v1::DescribeTableResponse& described,
                                    const std::string& status) {
    std::set<int32_t> ids;
    for (const auto& shard : described.shards()) {
      if (shard.status() == status) ids.insert(shard.shard_id());
    }
    return ids;
  }

  static std::string ShardsText(const v1::DescribeTableResponse& described) {
    std::vector<std::string> parts;
    for (const auto& shard : described.shards()) {
      parts.push_back(absl::StrCat(shard.shard_id(), "@", shard.node_id(), ":", shard.status()));
    }
    return absl::StrJoin(parts, " ");
  }

  std::set<int32_t> ActiveShardIds(const std::string& table) {
    return ShardIds(Describe(table), "active");
  }

  // The table through the conductor, in primary-key order, rendered.
  std::vector<std::string> TableRows(const Shape& shape) {
    v1::ResultSet set = Query(absl::StrCat(shape.Select(), " ORDER BY ", shape.order_by));
    std::vector<std::string> rows;
    for (const auto& row : set.rows()) rows.push_back(RenderRow(row));
    return rows;
  }

  // Every row of the table in every node's file, with its _virtualShard.
  std::vector<NodeRow> ReadNodeRows(const Shape& shape) {
    std::vector<NodeRow> rows;
    std::vector<std::string> quoted;
    for (const auto& c : shape.columns) quoted.push_back(QuoteIdentifier(c));
    const std::string sql = absl::StrCat("SELECT _virtualShard, ", absl::StrJoin(quoted, ", "),
                                         " FROM ", QuoteIdentifier(shape.table));
    for (int n = 0; n < cluster_->node_count(); ++n) {
      DatabaseOptions options;
      options.read_only = true;
      options.create = false;
      auto db = Database::Open(cluster_->node_database(n), options);
      if (!db.ok()) {
        ADD_FAILURE() << "node " << n << ": " << db.status();
        continue;
      }
      absl::Status read = (*db)->ForEachRow(sql, [&](const Statement& statement) {
        NodeRow row;
        row.node = n;
        row.shard = statement.ColumnInt64(0);
        for (size_t c = 0; c < shape.columns.size(); ++c) {
          row.values.push_back(statement.ColumnValue(1 + static_cast<int>(c)));
        }
        row.rendered = RenderValues(row.values);
        rows.push_back(std::move(row));
        return absl::OkStatus();
      });
      if (!read.ok()) ADD_FAILURE() << "node " << n << ": " << sql << ": " << read;
    }
    return rows;
  }

  // The sum over every node's file of a count query.
  int64_t CountOnNodes(const std::string& sql) {
    int64_t total = 0;
    for (int n = 0; n < cluster_->node_count(); ++n) {
      DatabaseOptions options;
      options.read_only = true;
      options.create = false;
      auto db = Database::Open(cluster_->node_database(n), options);
      if (!db.ok()) {
        ADD_FAILURE() << "node " << n << ": " << db.status();
        continue;
      }
      absl::Status read = (*db)->ForEachRow(sql, [&](const Statement& statement) {
        total += statement.ColumnInt64(0);
        return absl::OkStatus();
      });
      if (!read.ok()) ADD_FAILURE() << "node " << n << ": " << sql << ": " << read;
    }
    return total;
  }

  // Objects of the reshard machinery left in the nodes' files: the changes
  // tables, the fences, the capture triggers ("node-2: table _conductor_…").
  std::vector<std::string> LeftoverReshardObjects() {
    std::vector<std::string> found;
    for (int n = 0; n < cluster_->node_count(); ++n) {
      DatabaseOptions options;
      options.read_only = true;
      options.create = false;
      auto db = Database::Open(cluster_->node_database(n), options);
      if (!db.ok()) {
        ADD_FAILURE() << "node " << n << ": " << db.status();
        continue;
      }
      absl::Status read = (*db)->ForEachRow(
          "SELECT type, name FROM sqlite_master WHERE name LIKE '\\_conductor\\_changes\\_%' "
          "ESCAPE '\\' OR name LIKE '\\_conductor\\_fence\\_%' ESCAPE '\\' OR "
          "name LIKE '\\_conductor\\_capture\\_%' ESCAPE '\\' OR "
          "name LIKE '\\_conductor\\_counts\\_%' ESCAPE '\\'",
          [&](const Statement& statement) {
            found.push_back(absl::StrCat(cluster_->node_id(n), ": ", statement.ColumnText(0), " ",
                                         statement.ColumnText(1)));
            return absl::OkStatus();
          });
      if (!read.ok()) ADD_FAILURE() << "node " << n << ": " << read;
    }
    return found;
  }

  // The route EXPLAIN reports for one statement: (route, shard ids, rows).
  struct Route {
    grpc::Status status;
    std::string route;
    std::string index_name;
    std::set<int64_t> shards;
    int rows = 0;
    std::string Describe() const {
      return absl::StrCat("route=", route, " index_name=", index_name, " shards=", SetText(shards),
                          " rows=", rows, status.ok() ? "" : " error=" + status.error_message());
    }
  };
  Route Explain(const std::string& sql, const std::vector<Value>& params) {
    Route route;
    v1::ExecuteResponse response;
    route.status = Run("EXPLAIN " + sql, params, &response);
    if (!route.status.ok() || response.result_sets_size() != 1) return route;
    const v1::ResultSet& set = response.result_sets(0);
    const int route_at = ColumnIndex(set, "route");
    const int shard_at = ColumnIndex(set, "shard_id");
    const int index_at = ColumnIndex(set, "index_name");
    route.rows = set.rows_size();
    for (const auto& row : set.rows()) {
      if (route_at >= 0 && route_at < row.values_size()) route.route = row.values(route_at).text();
      if (index_at >= 0 && index_at < row.values_size()) {
        route.index_name = row.values(index_at).text();
      }
      if (shard_at >= 0 && shard_at < row.values_size()) {
        route.shards.insert(row.values(shard_at).integer());
      }
    }
    return route;
  }

  std::multiset<std::string> SelectRows(const std::string& sql, const std::vector<Value>& params) {
    std::multiset<std::string> rows;
    const v1::ResultSet set = Query(sql, params);
    for (const auto& row : set.rows()) rows.insert(RenderRow(row));
    return rows;
  }

  // Everything that must hold once a reshard of `shape.table` from
  // `old_ids` to `n` shards is complete, with `expected_rows` (rendered, in
  // primary-key order) as the table's content.
  void ExpectResharded(const Shape& shape, const std::string& change_log_id,
                       const std::set<int32_t>& old_ids, int n,
                       const std::vector<std::string>& expected_rows) {
    ASSERT_FALSE(old_ids.empty());
    std::set<int32_t> new_ids;
    for (int i = 1; i <= n; ++i) new_ids.insert(*old_ids.rbegin() + i);

    // The operation.
    auto status = GetStatus(change_log_id);
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_EQ(status->change_log_id(), change_log_id);
    EXPECT_EQ(status->table(), shape.table);
    ASSERT_EQ(status->phase(), v1::RESHARD_PHASE_COMPLETE) << status->DebugString();
    EXPECT_EQ(status->source_shard_count(), static_cast<int>(old_ids.size()));
    EXPECT_EQ(status->target_shard_count(), n);
    EXPECT_EQ(status->error(), "");
    EXPECT_GT(status->started_at_ms(), 0);
    EXPECT_GE(status->updated_at_ms(), status->started_at_ms());
    EXPECT_GE(status->write_pause_ms(), 0);
    EXPECT_GE(status->rows_copied(), 0);
    {
      v1::ExecuteResponse response;
      ASSERT_TRUE(IsOk(Run(absl::StrCat("PRAGMA reshardStatus(", QuoteString(change_log_id), ")"),
                           {}, &response)));
      const v1::ResultSet* set = Set(response, "RESHARD_STATUS");
      ASSERT_NE(set, nullptr) << response.DebugString();
      EXPECT_EQ(Columns(*set), (std::vector<std::string>{"change_log_id", "table_name", "phase",
                                                         "rows_copied", "rows_total", "error"}));
      ASSERT_EQ(set->rows_size(), 1);
      ASSERT_EQ(set->rows(0).values_size(), 6);
      const v1::Row& row = set->rows(0);
      EXPECT_EQ(row.values(0).text(), change_log_id);
      EXPECT_EQ(row.values(1).text(), shape.table);
      EXPECT_EQ(row.values(2).text(), "complete");
      EXPECT_EQ(row.values(3).integer(), status->rows_copied());
      EXPECT_EQ(row.values(4).integer(), status->rows_total());
      EXPECT_TRUE(row.values(5).kind_case() == Value::kNullValue || row.values(5).text().empty())
          << "error: " << row.DebugString();
    }

    // The topology: exactly the n new shards, all active.
    const v1::DescribeTableResponse described = Describe(shape.table);
    EXPECT_EQ(ShardIds(described, "active"), new_ids)
        << "shards after the reshard: " << ShardsText(described) << "; old ids "
        << SetText(old_ids);
    EXPECT_EQ(described.shards_size(), n) << ShardsText(described);
    EXPECT_EQ(described.table().num_shards(), n);
    std::map<int64_t, std::string> node_of;
    for (const auto& shard : described.shards()) node_of[shard.shard_id()] = shard.node_id();
    {
      v1::ExecuteResponse response;
      ASSERT_TRUE(
          IsOk(Run(absl::StrCat("DESCRIBE ", QuoteIdentifier(shape.table)), {}, &response)));
      const v1::ResultSet* info = Set(response, "TABLE_INFO");
      const v1::ResultSet* shards = Set(response, "SHARDS");
      ASSERT_NE(info, nullptr);
      ASSERT_NE(shards, nullptr);
      const int num_shards_at = ColumnIndex(*info, "num_shards");
      ASSERT_GE(num_shards_at, 0);
      ASSERT_EQ(info->rows_size(), 1);
      EXPECT_EQ(info->rows(0).values(num_shards_at).integer(), n);
      EXPECT_EQ(shards->rows_size(), n);
      const int status_at = ColumnIndex(*shards, "status");
      const int id_at = ColumnIndex(*shards, "shard_id");
      ASSERT_GE(status_at, 0);
      ASSERT_GE(id_at, 0);
      std::set<int32_t> listed;
      for (const auto& row : shards->rows()) {
        EXPECT_EQ(row.values(status_at).text(), "active");
        listed.insert(static_cast<int32_t>(row.values(id_at).integer()));
      }
      EXPECT_EQ(listed, new_ids);
    }

    // The rows through the conductor: exactly the expected ones, in order.
    const std::vector<std::string> after = TableRows(shape);
    const std::string diff = DiffRows(expected_rows, after);
    EXPECT_TRUE(diff.empty()) << "the table through the conductor: " << diff;
    if (diff.empty()) {
      EXPECT_TRUE(after == expected_rows) << "the same rows, not in primary-key order";
    }

    // The nodes' files: every row once, in a new shard, on that shard's
    // node, where the routing function puts it; nothing left in old ids.
    const std::vector<NodeRow> on_nodes = ReadNodeRows(shape);
    std::vector<std::string> file_rows;
    std::vector<int32_t> sorted_new(new_ids.begin(), new_ids.end());
    routing::Affinity affinity = routing::Affinity::kBlob;
    for (const auto& column : described.columns()) {
      if (column.name() == shape.shard_key) affinity = routing::AffinityOf(column.type());
    }
    int stray = 0, misplaced = 0, wrong_node = 0;
    std::string examples;
    for (const auto& row : on_nodes) {
      file_rows.push_back(row.rendered);
      if (!new_ids.count(static_cast<int32_t>(row.shard))) {
        if (++stray <= 3) {
          absl::StrAppend(&examples, "\n  on ", cluster_->node_id(row.node), " in shard ",
                          row.shard, ": ", row.rendered);
        }
        continue;
      }
      if (node_of[row.shard] != cluster_->node_id(row.node)) {
        if (++wrong_node <= 3) {
          absl::StrAppend(&examples, "\n  shard ", row.shard, " belongs on ", node_of[row.shard],
                          " but this row is on ", cluster_->node_id(row.node), ": ", row.rendered);
        }
      }
      const int index =
          routing::ShardIndex(routing::RoutingHash(row.values[shape.shard_key_at], affinity), n);
      if (sorted_new[index] != row.shard) {
        if (++misplaced <= 3) {
          absl::StrAppend(&examples, "\n  routed to ", sorted_new[index], " but in shard ",
                          row.shard, ": ", row.rendered);
        }
      }
    }
    EXPECT_EQ(stray, 0) << "rows outside the new shards " << SetText(new_ids) << examples;
    EXPECT_EQ(wrong_node, 0) << examples;
    EXPECT_EQ(misplaced, 0) << "rows not where the routing function puts them" << examples;
    const std::string file_diff = DiffRows(expected_rows, file_rows);
    EXPECT_TRUE(file_diff.empty()) << "the rows in the nodes' files: " << file_diff;
    std::vector<std::string> old_list;
    for (int32_t id : old_ids) old_list.push_back(absl::StrCat(id));
    EXPECT_EQ(
        CountOnNodes(absl::StrCat("SELECT count(*) FROM ", QuoteIdentifier(shape.table),
                                  " WHERE _virtualShard IN (", absl::StrJoin(old_list, ", "), ")")),
        0)
        << "rows of the retired shards " << SetText(old_ids) << " remain";
    const std::vector<std::string> leftovers = LeftoverReshardObjects();
    EXPECT_TRUE(leftovers.empty()) << absl::StrJoin(leftovers, "\n");

    // Shard-key queries hit one shard: the one holding the key's rows.
    std::map<std::string, std::pair<Value, std::set<int64_t>>> keys;
    std::map<std::string, std::multiset<std::string>> rows_of_key;
    for (const auto& row : on_nodes) {
      const std::string key = Render(row.values[shape.shard_key_at]);
      keys[key].first = row.values[shape.shard_key_at];
      keys[key].second.insert(row.shard);
      rows_of_key[key].insert(row.rendered);
    }
    const std::string by_key =
        absl::StrCat(shape.Select(), " WHERE ", QuoteIdentifier(shape.shard_key), " = ?");
    const size_t step = std::max<size_t>(1, keys.size() / 40);
    size_t at = 0;
    int checked = 0, wrong = 0;
    std::string wrong_examples;
    for (const auto& [key, value_and_shards] : keys) {
      if (at++ % step != 0) continue;
      ++checked;
      const auto& [value, shards] = value_and_shards;
      const Route route = Explain(by_key, {value});
      const bool rows_ok = SelectRows(by_key, {value}) == rows_of_key[key];
      if (shards.size() != 1 || route.route != "shard_key" || route.rows != 1 ||
          route.shards != shards || !rows_ok) {
        if (++wrong <= 5) {
          absl::StrAppend(&wrong_examples, "\n  ", key, ": files ", SetText(shards), ", explain ",
                          route.Describe(), rows_ok ? "" : ", SELECT by key: wrong rows");
        }
      }
    }
    EXPECT_EQ(wrong, 0) << "of " << checked
                        << " shard keys (expected: one shard, route shard_key, the shard of the "
                           "files, the rows of the files)"
                        << wrong_examples;

    // Stats count the new shards.
    v1::GetTableStatsRequest stats_request;
    stats_request.set_table(shape.table);
    v1::GetTableStatsResponse stats;
    ASSERT_TRUE(IsOk(Call(&v1::TableOps::Stub::GetTableStats, stats_request, &stats)));
    EXPECT_EQ(stats.total_rows(), static_cast<int64_t>(expected_rows.size()));
    EXPECT_EQ(stats.total_shards(), n);
    for (const auto& shard : stats.shards()) {
      EXPECT_TRUE(new_ids.count(shard.shard_id())) << shard.DebugString();
      EXPECT_EQ(shard.status(), "active") << shard.DebugString();
    }
  }

  // After a reshard that failed: the sources still serve, the targets are
  // gone (records and rows), the machinery is gone, the rows are intact.
  void ExpectRolledBack(const Shape& shape, const std::string& change_log_id,
                        const std::set<int32_t>& old_ids,
                        const std::vector<std::string>& expected_rows) {
    auto status = GetStatus(change_log_id);
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_EQ(status->phase(), v1::RESHARD_PHASE_FAILED);
    EXPECT_FALSE(status->error().empty()) << "a failed reshard says why: " << status->DebugString();
    const v1::DescribeTableResponse described = Describe(shape.table);
    EXPECT_EQ(ShardIds(described, "active"), old_ids) << ShardsText(described);
    EXPECT_EQ(described.shards_size(), static_cast<int>(old_ids.size()))
        << "pending shards left behind: " << ShardsText(described);
    EXPECT_EQ(described.table().num_shards(), static_cast<int>(old_ids.size()));
    const std::string diff = DiffRows(expected_rows, TableRows(shape));
    EXPECT_TRUE(diff.empty()) << diff;
    std::vector<std::string> file_rows;
    int stray = 0;
    for (const auto& row : ReadNodeRows(shape)) {
      file_rows.push_back(row.rendered);
      stray += !old_ids.count(static_cast<int32_t>(row.shard));
    }
    EXPECT_EQ(stray, 0) << "rows of the abandoned target shards remain";
    const std::string file_diff = DiffRows(expected_rows, file_rows);
    EXPECT_TRUE(file_diff.empty()) << file_diff;
    const std::vector<std::string> leftovers = LeftoverReshardObjects();
    EXPECT_TRUE(leftovers.empty()) << absl::StrJoin(leftovers, "\n");
  }

  // --- virtual indexes -----------------------------------------------------

  absl::StatusOr<v1::IndexInfo> GetIndex(const std::string& table, const std::string& name) {
    v1::ListIndexesRequest request;
    request.set_table(table);
    v1::ListIndexesResponse response;
    grpc::Status status = Call(&v1::TableOps::Stub::ListIndexes, request, &response);
    if (!status.ok()) return FromGrpcStatus(status);
    for (const auto& index : response.indexes()) {
      if (index.name() == name) return index;
    }
    return absl::NotFoundError(absl::StrCat("index ", name, " not listed for table ", table));
  }

  // Ready, no shard awaiting a recount, and exactly `entries` entries.
  absl::StatusOr<v1::IndexInfo> WaitConverged(const std::string& table, const std::string& name,
                                              int64_t entries) {
    absl::Time give_up = absl::Now() + kIndexTimeout;
    while (true) {
      auto index = GetIndex(table, name);
      if (!index.ok()) return index.status();
      if (index->status() == "ready" && index->stale_shards() == 0 &&
          index->entry_count() == entries) {
        return index;
      }
      if (index->status() == "failed") {
        return absl::FailedPreconditionError("index failed: " + index->DebugString());
      }
      if (absl::Now() >= give_up) {
        return absl::DeadlineExceededError(
            absl::StrCat("index ", name, " never converged (ready, stale_shards 0, entry_count ",
                         entries, "); last seen: ", index->DebugString()));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  // The index on `column` converges to the (value → shards) pairs of the
  // nodes' files, and routes every value (a sample) to exactly its shards.
  void ExpectIndexRoutes(const Shape& shape, const std::string& index, const std::string& column) {
    int at = -1;
    for (size_t c = 0; c < shape.columns.size(); ++c) {
      if (shape.columns[c] == column) at = static_cast<int>(c);
    }
    ASSERT_GE(at, 0) << column;
    std::map<std::string, Value> values;
    std::map<std::string, std::set<int64_t>> shards;
    std::map<std::string, std::multiset<std::string>> rows;
    for (const auto& row : ReadNodeRows(shape)) {
      if (row.values[at].kind_case() == Value::kNullValue ||
          row.values[at].kind_case() == Value::KIND_NOT_SET) {
        continue;
      }
      const std::string key = Render(row.values[at]);
      values[key] = row.values[at];
      shards[key].insert(row.shard);
      rows[key].insert(row.rendered);
    }
    int64_t entries = 0;
    for (const auto& [key, key_shards] : shards) entries += key_shards.size();
    auto converged = WaitConverged(shape.table, index, entries);
    ASSERT_TRUE(converged.ok()) << converged.status();
    const std::string select =
        absl::StrCat(shape.Select(), " WHERE ", QuoteIdentifier(column), " = ?");
    const size_t step = std::max<size_t>(1, values.size() / 40);
    size_t i = 0;
    int checked = 0, wrong = 0;
    std::string wrong_examples;
    for (const auto& [key, value] : values) {
      if (i++ % step != 0) continue;
      ++checked;
      const Route route = Explain(select, {value});
      const bool rows_ok = SelectRows(select, {value}) == rows[key];
      if (route.route != "virtual_index" || route.index_name != index ||
          route.shards != shards[key] || !rows_ok) {
        if (++wrong <= 5) {
          absl::StrAppend(&wrong_examples, "\n  ", key, ": files ", SetText(shards[key]),
                          ", explain ", route.Describe(),
                          rows_ok ? "" : ", SELECT by value: wrong rows");
        }
      }
    }
    EXPECT_EQ(wrong, 0) << "of " << checked << " values of " << column
                        << " (expected: route virtual_index via " << index
                        << ", exactly the shards of the files, the rows of the files)"
                        << wrong_examples;
  }
};

// ---------------------------------------------------------------------------
// 1. Shapes: 1 → 4 → 8 → 3 over a few thousand rows of every storage class.

TEST_F(ReshardIntegrationTest, ReshardOneToFourToEightToThree) {
  // Every switch here also compares checksums of all rows.
  ASSERT_NO_FATAL_FAILURE(StartCluster(2, {}, {"--reshard_verify_checksums"}));
  // A composite primary key, a TEXT shard key (the first key column), REAL,
  // BLOB and NULLs; 100-row blocks so that every copy takes several.
  ASSERT_NO_FATAL_FAILURE(
      CreateTable("CREATE TABLE shapes (g TEXT, id INTEGER, score REAL, data BLOB, note TEXT, "
                  "PRIMARY KEY (g, id))",
                  1, 100));
  const Shape shape{"shapes", {"g", "id", "score", "data", "note"}, "g, id", "g", 0};
  std::vector<std::string> rows;
  for (int i = 0; i < 3000; ++i) {
    const std::string g = i % 97 == 0 ? absl::StrCat("ü-", i % 700) : absl::StrCat("g", i % 700);
    const std::string score =
        i % 7 == 0 ? "NULL" : (i % 13 == 0 ? "-1.5e300" : absl::StrCat(i * 0.25 - 100));
    const std::string data =
        i % 5 == 0 ? "NULL" : absl::StrCat("X'00", absl::StrFormat("%04x", i), "ff'");
    const std::string note = i % 11 == 0 ? "NULL" : QuoteString(absl::StrCat("note-", i % 40));
    rows.push_back(
        absl::StrCat("(", QuoteString(g), ", ", i, ", ", score, ", ", data, ", ", note, ")"));
  }
  ASSERT_NO_FATAL_FAILURE(InsertRows("shapes (g, id, score, data, note)", rows));
  ASSERT_TRUE(IsOk(Run("CREATE INDEX shapes_note ON shapes (note)")));
  ASSERT_NO_FATAL_FAILURE(ExpectIndexRoutes(shape, "shapes_note", "note"));

  struct Step {
    int to;
    enum { kTyped, kPragma, kWatch } how;
  };
  int next_id = 100000;
  for (const Step step : {Step{4, Step::kTyped}, Step{8, Step::kPragma}, Step{3, Step::kWatch}}) {
    const std::set<int32_t> old_ids = ActiveShardIds("shapes");
    SCOPED_TRACE(absl::StrCat("reshard ", old_ids.size(), " → ", step.to));
    const std::vector<std::string> before = TableRows(shape);
    ASSERT_FALSE(before.empty());
    const std::string id =
        step.how == Step::kPragma
            ? StartReshardSql("shapes", step.to, static_cast<int>(old_ids.size()))
            : StartReshard("shapes", step.to);
    ASSERT_FALSE(id.empty());
    if (step.how == Step::kWatch) {
      grpc::Status end;
      std::vector<v1::ReshardStatus> seen = Watch(id, &end);
      ASSERT_NO_FATAL_FAILURE(ExpectWatchStream(seen, end, id, v1::RESHARD_PHASE_COMPLETE));
    }
    auto done = WaitComplete(id);
    ASSERT_TRUE(done.ok()) << done.status();
    // Nothing wrote meanwhile: every row was copied exactly once.
    EXPECT_EQ(done->rows_total(), static_cast<int64_t>(before.size()));
    EXPECT_EQ(done->rows_copied(), done->rows_total());
    std::cout << "reshard " << old_ids.size() << " → " << step.to
              << ": write_pause_ms=" << done->write_pause_ms() << "\n";
    {
      // The switch compared checksums (--reshard_verify_checksums).
      std::ifstream log(cluster_->root() + "/conductor.log");
      const std::string text((std::istreambuf_iterator<char>(log)),
                             std::istreambuf_iterator<char>());
      EXPECT_TRUE(
          absl::StrContains(text, absl::StrCat("reshard ", id, " of shapes: checksums equal over ",
                                               before.size(), " rows")))
          << "no checksum line for " << id << " in the conductor's log";
    }
    ASSERT_NO_FATAL_FAILURE(ExpectResharded(shape, id, old_ids, step.to, before));
    ASSERT_NO_FATAL_FAILURE(ExpectIndexRoutes(shape, "shapes_note", "note"));

    // The new shards take writes: inserts, updates of the indexed column,
    // deletes; the next step starts from the result.
    for (int k = 0; k < 20; ++k, ++next_id) {
      ASSERT_TRUE(IsOk(Run(
          "INSERT INTO shapes VALUES (?, ?, ?, ?, ?)",
          {TextValue(absl::StrCat("new", next_id)), IntegerValue(next_id), RealValue(next_id / 3.0),
           BlobValue(std::string("\0x", 2)), TextValue(absl::StrCat("fresh-", step.to))})));
    }
    v1::ExecuteResponse updated;
    ASSERT_TRUE(IsOk(Run("UPDATE shapes SET note = ? WHERE g = ?",
                         {TextValue(absl::StrCat("moved-", step.to)), TextValue("g3")}, &updated)));
    EXPECT_GT(updated.rows_affected(), 0);
    v1::ExecuteResponse deleted;
    ASSERT_TRUE(IsOk(Run("DELETE FROM shapes WHERE g = ?",
                         {TextValue(absl::StrCat("g", 10 + step.to))}, &deleted)));
    EXPECT_GT(deleted.rows_affected(), 0);
  }
  ASSERT_NO_FATAL_FAILURE(ExpectIndexRoutes(shape, "shapes_note", "note"));
}

// ---------------------------------------------------------------------------
// 2. Live load: four writers and a reader during a throttled reshard 2 → 5.
//    No acknowledged write is lost, duplicated or undone; reads never fail.

TEST_F(ReshardIntegrationTest, LiveWritesAndReadsDuringReshardAreNeverLost) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(2, {"--scan_rows_per_s=150"}));
  ASSERT_NO_FATAL_FAILURE(CreateTable(
      "CREATE TABLE live (id INTEGER PRIMARY KEY, grp INTEGER, v INTEGER, r REAL, txt TEXT, "
      "b BLOB)",
      2, 50));
  const Shape shape{"live", {"id", "grp", "v", "r", "txt", "b"}, "id", "id", 0};
  // Hot keys 0..1199 belong to writer id % 4 (so each key's writes are
  // ordered by one thread); cold keys 1200..3199 are never written and let
  // the reader check exact answers throughout.
  constexpr int kWriters = 4;
  constexpr int64_t kHot = 1200, kColdEnd = 3200;
  auto make_row = [](int64_t id, int64_t version, int writer) {
    std::vector<Value> row = {IntegerValue(id), IntegerValue(id % 10), IntegerValue(version)};
    row.push_back(version % 5 == 0 ? NullValue() : RealValue(version * 0.5 + id));
    row.push_back(version % 7 == 0 ? NullValue()
                                   : TextValue(absl::StrCat("w", writer, "-v", version, "-ü")));
    row.push_back(version % 3 == 0
                      ? NullValue()
                      : BlobValue(absl::StrCat(std::string(1, '\0'), id, "/", version)));
    return row;
  };
  std::map<int64_t, std::optional<std::string>> initial;  // id → rendered row or absent
  {
    std::vector<std::vector<Value>> load;
    for (int64_t id = 0; id < kColdEnd; ++id) {
      if (id < kHot && id % 2 == 1) {
        initial[id] = std::nullopt;
        continue;
      }
      load.push_back(make_row(id, 1, id < kHot ? static_cast<int>(id % kWriters) : 9));
      initial[id] = RenderValues(load.back());
    }
    for (size_t at = 0; at < load.size(); at += 100) {
      std::vector<Value> params;
      std::vector<std::string> tuples;
      for (size_t r = at; r < std::min(load.size(), at + 100); ++r) {
        tuples.push_back("(?, ?, ?, ?, ?, ?)");
        params.insert(params.end(), load[r].begin(), load[r].end());
      }
      v1::ExecuteResponse response;
      ASSERT_TRUE(IsOk(Run(absl::StrCat("INSERT INTO live (id, grp, v, r, txt, b) VALUES ",
                                        absl::StrJoin(tuples, ", ")),
                           params, &response)));
      ASSERT_EQ(response.rows_affected(), static_cast<int64_t>(tuples.size()));
    }
  }
  const std::set<int32_t> old_ids = ActiveShardIds("live");
  ASSERT_EQ(old_ids.size(), 2u);
  {
    std::vector<std::string> expected;
    for (const auto& [id, row] : initial) {
      if (row) expected.push_back(*row);
    }
    ASSERT_EQ(TableRows(shape), expected);
  }

  // --- the load ---
  struct Uncertain {
    std::optional<std::string> before, after;
    std::string error;
  };
  struct Writer {
    std::map<int64_t, std::optional<std::string>> ledger;  // acknowledged state
    std::map<int64_t, Uncertain> uncertain;                // outcome unknown
    std::vector<std::string> errors;                       // contract violations seen
    int64_t acked = 0, failed = 0;
  };
  std::vector<Writer> writers(kWriters);
  for (const auto& [id, row] : initial) {
    if (id < kHot) writers[id % kWriters].ledger[id] = row;
  }
  std::atomic<bool> stop{false};
  std::atomic<int64_t> acked{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      Writer& me = writers[w];
      std::mt19937_64 random(1000 + w);
      std::vector<int64_t> keys;
      for (const auto& [id, row] : me.ledger) keys.push_back(id);
      int64_t version = 1;
      while (!stop.load() && !keys.empty()) {
        const size_t pick = random() % keys.size();
        const int64_t id = keys[pick];
        const std::optional<std::string> before = me.ledger[id];
        ++version;
        std::string sql;
        std::vector<Value> params;
        std::optional<std::string> after;
        std::string kind;
        if (!before) {
          kind = "INSERT";
          std::vector<Value> row = make_row(id, version, w);
          sql = "INSERT INTO live (id, grp, v, r, txt, b) VALUES (?, ?, ?, ?, ?, ?)";
          params = row;
          after = RenderValues(row);
        } else if (random() % 10 < 6) {
          kind = "UPDATE";
          std::vector<Value> row = make_row(id, version, w);
          sql = "UPDATE live SET v = ?, r = ?, txt = ?, b = ? WHERE id = ?";
          params = {row[2], row[3], row[4], row[5], IntegerValue(id)};
          after = RenderValues(row);
        } else {
          kind = "DELETE";
          sql = "DELETE FROM live WHERE id = ?";
          params = {IntegerValue(id)};
        }
        v1::ExecuteResponse response;
        grpc::Status status = Run(sql, params, &response);
        if (status.ok()) {
          if (response.rows_affected() != 1 && me.errors.size() < 20) {
            me.errors.push_back(absl::StrCat(kind, " of id ", id, " affected ",
                                             response.rows_affected(),
                                             " rows (ledger: ", before.value_or("absent"), ")"));
          }
          me.ledger[id] = after;
          ++me.acked;
          acked.fetch_add(1);
        } else {
          // Unknown outcome: resolved by reading the key back at the end;
          // this writer leaves the key alone from now on.
          ++me.failed;
          me.uncertain[id] = Uncertain{
              before, after,
              absl::StrCat(kind, ": code ", status.error_code(), " ", status.error_message())};
          keys.erase(keys.begin() + pick);
          if (status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED &&
              status.error_code() != grpc::StatusCode::UNAVAILABLE && me.errors.size() < 20) {
            me.errors.push_back(absl::StrCat(kind, " of id ", id, " failed with code ",
                                             status.error_code(), ": ", status.error_message()));
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
  }
  // The reader: cold keys must read back exactly, hot keys must answer, and
  // a scatter count over the cold keys must never see a row twice or miss one.
  std::mutex reader_mu;
  std::vector<std::string> read_errors;
  std::atomic<int64_t> reads{0}, read_failures{0};
  threads.emplace_back([&] {
    std::mt19937_64 random(7);
    auto report = [&](const std::string& what) {
      read_failures.fetch_add(1);
      std::lock_guard<std::mutex> lock(reader_mu);
      if (read_errors.size() < 20) read_errors.push_back(what);
    };
    for (int64_t i = 0; !stop.load(); ++i) {
      const int64_t cold = kHot + static_cast<int64_t>(random() % (kColdEnd - kHot));
      v1::ExecuteResponse response;
      grpc::Status status = Run("SELECT id, grp, v, r, txt, b FROM live WHERE id = ?",
                                {IntegerValue(cold)}, &response);
      reads.fetch_add(1);
      if (!status.ok()) {
        report(absl::StrCat("read of id ", cold, ": code ", status.error_code(), " ",
                            status.error_message()));
      } else if (response.result_sets_size() != 1 || response.result_sets(0).rows_size() != 1 ||
                 RenderRow(response.result_sets(0).rows(0)) != *initial.at(cold)) {
        report(absl::StrCat("read of id ", cold, " gave ", response.ShortDebugString()));
      }
      const int64_t hot = static_cast<int64_t>(random() % kHot);
      status = Run("SELECT id, grp, v, r, txt, b FROM live WHERE id = ?", {IntegerValue(hot)},
                   &response);
      reads.fetch_add(1);
      if (!status.ok()) {
        report(absl::StrCat("read of id ", hot, ": code ", status.error_code(), " ",
                            status.error_message()));
      } else if (response.result_sets_size() != 1 || response.result_sets(0).rows_size() > 1) {
        report(absl::StrCat("read of id ", hot, " gave ", response.ShortDebugString()));
      }
      if (i % 10 == 0) {
        status = Run("SELECT count(*) FROM live WHERE id >= ?", {IntegerValue(kHot)}, &response);
        reads.fetch_add(1);
        if (!status.ok()) {
          report(absl::StrCat("scatter count: code ", status.error_code(), " ",
                              status.error_message()));
        } else if (response.result_sets_size() != 1 || response.result_sets(0).rows_size() != 1 ||
                   response.result_sets(0).rows(0).values(0).integer() != kColdEnd - kHot) {
          report(absl::StrCat("scatter count over the cold keys gave ", response.ShortDebugString(),
                              ", expected ", kColdEnd - kHot));
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  auto stop_load = [&] {
    stop = true;
    for (auto& t : threads) t.join();
    threads.clear();
  };

  // Let the load run a little, then reshard under it.
  const absl::Time warm_up = absl::Now() + absl::Seconds(30);
  while (acked.load() < 100 && absl::Now() < warm_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (acked.load() < 100) {
    stop_load();
    FAIL() << "the writers got only " << acked.load() << " writes through before the reshard";
  }
  const std::string id = StartReshard("live", 5);
  if (id.empty()) {
    stop_load();
    FAIL() << "no reshard";
  }
  std::map<v1::ReshardPhase, int64_t> acked_at_first;  // phase → acked writes when first seen
  auto final_status = WaitReshard(
      id, [](const v1::ReshardStatus& s) { return IsTerminalPhase(s.phase()); }, kReshardTimeout,
      "complete or failed",
      [&](const v1::ReshardStatus& s) { acked_at_first.emplace(s.phase(), acked.load()); });
  // The new shards under load for a moment, then stop.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const int64_t acked_at_end = acked.load();
  stop_load();
  ASSERT_TRUE(final_status.ok()) << final_status.status();
  ASSERT_EQ(final_status->phase(), v1::RESHARD_PHASE_COMPLETE) << final_status->DebugString();
  std::cout << "live reshard 2 → 5: write_pause_ms=" << final_status->write_pause_ms()
            << " rows_copied=" << final_status->rows_copied()
            << " rows_total=" << final_status->rows_total() << " writes acknowledged "
            << acked_at_end << " reads " << reads.load() << "\n";
  ASSERT_TRUE(acked_at_first.count(v1::RESHARD_PHASE_COPYING))
      << "copying was never observed; the test needs a slower --scan_rows_per_s";
  EXPECT_GT(acked_at_first[v1::RESHARD_PHASE_COMPLETE], acked_at_first[v1::RESHARD_PHASE_COPYING])
      << "no write was acknowledged while the copy ran; the test needs a slower --scan_rows_per_s";
  EXPECT_GT(acked_at_end, acked_at_first[v1::RESHARD_PHASE_COMPLETE])
      << "no write acknowledged after the switch";

  // Writers: no contract violation seen live.
  int64_t failed_writes = 0;
  for (int w = 0; w < kWriters; ++w) {
    failed_writes += writers[w].failed;
    EXPECT_TRUE(writers[w].errors.empty())
        << "writer " << w << ":\n  " << absl::StrJoin(writers[w].errors, "\n  ");
  }
  std::cout << "writes with an unknown outcome: " << failed_writes << "\n";
  EXPECT_EQ(read_failures.load(), 0) << absl::StrJoin(read_errors, "\n");
  EXPECT_GT(reads.load(), 0);

  // Unknown outcomes: the row now must be the state before or after.
  std::map<int64_t, std::optional<std::string>> ledger;
  for (const auto& [id_, row] : initial) {
    if (id_ >= kHot) ledger[id_] = row;
  }
  for (int w = 0; w < kWriters; ++w) {
    for (const auto& [key, row] : writers[w].ledger) ledger[key] = row;
    for (const auto& [key, unsure] : writers[w].uncertain) {
      v1::ResultSet set =
          Query("SELECT id, grp, v, r, txt, b FROM live WHERE id = ?", {IntegerValue(key)});
      ASSERT_LE(set.rows_size(), 1);
      std::optional<std::string> now;
      if (set.rows_size() == 1) now = RenderRow(set.rows(0));
      EXPECT_TRUE(now == unsure.before || now == unsure.after)
          << "id " << key << " after a write with an unknown outcome (" << unsure.error << ") is "
          << now.value_or("absent") << "; before " << unsure.before.value_or("absent") << ", after "
          << unsure.after.value_or("absent");
      ledger[key] = now;
    }
  }
  std::vector<std::string> expected;
  for (const auto& [key, row] : ledger) {
    if (row) expected.push_back(*row);
  }
  ASSERT_NO_FATAL_FAILURE(ExpectResharded(shape, id, old_ids, 5, expected));
}

// ---------------------------------------------------------------------------
// 3. The only worker is SIGKILLed mid-copy; another resumes its jobs.

TEST_F(ReshardIntegrationTest, CopySurvivesItsWorkerBeingKilled) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(1, {"--scan_rows_per_s=100"}));
  ASSERT_NO_FATAL_FAILURE(CreateTable(
      "CREATE TABLE copies (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)", 2, 50));
  const Shape shape{"copies", {"id", "name", "score", "data"}, "id", "id", 0};
  std::vector<std::string> rows;
  for (int id = 0; id < 2400; ++id) {
    rows.push_back(absl::StrCat("(", id, ", ",
                                id % 9 == 0 ? "NULL" : QuoteString(absl::StrCat("n", id)), ", ",
                                id * 1.5, ", ", id % 4 == 0 ? "NULL" : "X'deadbeef'", ")"));
  }
  ASSERT_NO_FATAL_FAILURE(InsertRows("copies (id, name, score, data)", rows));
  const std::set<int32_t> old_ids = ActiveShardIds("copies");
  const std::vector<std::string> before = TableRows(shape);
  ASSERT_EQ(before.size(), 2400u);

  const std::string id = StartReshard("copies", 4);
  ASSERT_FALSE(id.empty());
  ASSERT_NO_FATAL_FAILURE(WaitCopyingMidway(id));
  absl::Status killed = cluster_->KillWorker(0, SIGKILL);
  ASSERT_TRUE(killed.ok()) << killed;
  auto interrupted = GetStatus(id);
  ASSERT_TRUE(interrupted.ok()) << interrupted.status();
  ASSERT_EQ(interrupted->phase(), v1::RESHARD_PHASE_COPYING)
      << "the worker was killed after the copy ended: " << interrupted->DebugString();
  ASSERT_LT(interrupted->rows_copied(), interrupted->rows_total());
  std::cout << "worker killed at rows_copied=" << interrupted->rows_copied() << " of "
            << interrupted->rows_total() << "\n";
  absl::Status replaced = cluster_->StartWorker(1);
  ASSERT_TRUE(replaced.ok()) << replaced;

  auto done = WaitComplete(id);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->rows_total(), 2400);
  EXPECT_EQ(done->rows_copied(), done->rows_total())
      << "rows_copied counts each source's copied rows once, the resumed jobs continuing the count";
  EXPECT_LT(done->rows_copied(), 2 * done->rows_total())
      << "the new worker recopied from the start instead of resuming";
  EXPECT_GE(done->rows_copied(), interrupted->rows_copied());
  ASSERT_NO_FATAL_FAILURE(ExpectResharded(shape, id, old_ids, 4, before));
}

// ---------------------------------------------------------------------------
// 4. The conductor is SIGKILLed while the copy runs and restarted: the
//    reshard completes or fails cleanly, never half-switched.

TEST_F(ReshardIntegrationTest, ConductorKilledDuringCopyNeverHalfSwitches) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(2, {"--scan_rows_per_s=100"}));
  ASSERT_NO_FATAL_FAILURE(CreateTable(
      "CREATE TABLE crash (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)", 3, 50));
  const Shape shape{"crash", {"id", "name", "score", "data"}, "id", "id", 0};
  std::vector<std::string> rows;
  for (int id = 0; id < 2400; ++id) {
    rows.push_back(absl::StrCat("(", id, ", ", QuoteString(absl::StrCat("c", id % 31)), ", ",
                                id % 6 == 0 ? "NULL" : absl::StrCat(id / 8.0), ", X'",
                                absl::StrFormat("%06x", id), "')"));
  }
  ASSERT_NO_FATAL_FAILURE(InsertRows("crash (id, name, score, data)", rows));
  const std::set<int32_t> old_ids = ActiveShardIds("crash");
  ASSERT_EQ(old_ids.size(), 3u);
  std::set<int32_t> new_ids;
  for (int i = 1; i <= 6; ++i) new_ids.insert(*old_ids.rbegin() + i);
  const std::vector<std::string> before = TableRows(shape);
  ASSERT_EQ(before.size(), 2400u);

  const std::string id = StartReshard("crash", 6);
  ASSERT_FALSE(id.empty());
  ASSERT_NO_FATAL_FAILURE(WaitCopyingMidway(id));
  absl::Status killed = cluster_->KillConductor(SIGKILL);
  ASSERT_TRUE(killed.ok()) << killed;
  absl::Status restarted = cluster_->RestartConductor();
  ASSERT_TRUE(restarted.ok()) << restarted;

  // While it recovers: the active shards are all old or all new, and every
  // row is answered exactly once.
  int observations = 0;
  auto final_status = WaitReshard(
      id, [](const v1::ReshardStatus& s) { return IsTerminalPhase(s.phase()); }, kReshardTimeout,
      "complete or failed",
      [&](const v1::ReshardStatus& s) {
        if (++observations % 5 != 1) return;
        const v1::DescribeTableResponse described = Describe("crash");
        const std::set<int32_t> active = ShardIds(described, "active");
        EXPECT_TRUE(active == old_ids || active == new_ids)
            << "half-switched in phase " << PhaseName(s.phase()) << ": " << ShardsText(described);
        EXPECT_EQ(Count("SELECT count(*) FROM crash"), 2400) << "in phase " << PhaseName(s.phase());
      });
  ASSERT_TRUE(final_status.ok()) << final_status.status();
  std::cout << "after the conductor restart the reshard ended " << PhaseName(final_status->phase())
            << ": " << final_status->ShortDebugString() << "\n";
  if (final_status->phase() == v1::RESHARD_PHASE_COMPLETE) {
    EXPECT_EQ(final_status->rows_total(), 2400);
    ASSERT_NO_FATAL_FAILURE(ExpectResharded(shape, id, old_ids, 6, before));
  } else {
    ASSERT_NO_FATAL_FAILURE(ExpectRolledBack(shape, id, old_ids, before));
  }

  // Writes work afterwards, and a new reshard may start.
  ASSERT_TRUE(IsOk(Run("INSERT INTO crash VALUES (5000, 'after', 1.25, X'01')")));
  v1::ExecuteResponse response;
  ASSERT_TRUE(IsOk(Run("UPDATE crash SET name = 'updated' WHERE id = 7", {}, &response)));
  EXPECT_EQ(response.rows_affected(), 1);
  ASSERT_TRUE(IsOk(Run("DELETE FROM crash WHERE id = 8", {}, &response)));
  EXPECT_EQ(response.rows_affected(), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM crash"), 2400);
  EXPECT_EQ(Count("SELECT count(*) FROM crash WHERE id = 5000 AND name = 'after'"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM crash WHERE id = 7 AND name = 'updated'"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM crash WHERE id = 8"), 0);
  if (final_status->phase() == v1::RESHARD_PHASE_FAILED) {
    const std::vector<std::string> now = TableRows(shape);
    const std::string again = StartReshard("crash", 6);
    ASSERT_FALSE(again.empty());
    auto done = WaitComplete(again);
    ASSERT_TRUE(done.ok()) << done.status();
    ASSERT_NO_FATAL_FAILURE(ExpectResharded(shape, again, old_ids, 6, now));
  }
}

// ---------------------------------------------------------------------------
// 4b. The conductor is SIGKILLed in the middle of the switch, with writes
//     held: just before the topology transaction (the switch never happened:
//     after the restart the reshard copies on and switches again) and just
//     after it (the switch happened: the restarted conductor cleans up). A
//     test-only flag holds the switch there long enough to aim the kill.
//     Either way: never half-switched, no acknowledged write lost, writes
//     not left blocked after the restart.

class ReshardSwitchCrashTest : public ReshardIntegrationTest,
                               public ::testing::WithParamInterface<const char*> {};

TEST_P(ReshardSwitchCrashTest, ConductorKilledDuringSwitchNeverHalfSwitches) {
  const std::string where = GetParam();
  ASSERT_NO_FATAL_FAILURE(
      StartCluster(2, {},
                   {absl::StrCat("--testing_reshard_switch_hold_", where, "_ms=1500"),
                    "--reshard_max_pause_ms=20000"}));
  ASSERT_NO_FATAL_FAILURE(
      CreateTable("CREATE TABLE sw (id INTEGER PRIMARY KEY, name TEXT)", 3, 100));
  const Shape shape{"sw", {"id", "name"}, "id", "id", 0};
  auto row_of = [](int64_t id) {
    return RenderValues({IntegerValue(id), TextValue(absl::StrCat("name-", id))});
  };
  std::vector<std::string> rows;
  for (int id = 0; id < 900; ++id) {
    rows.push_back(absl::StrCat("(", id, ", ", QuoteString(absl::StrCat("name-", id)), ")"));
  }
  ASSERT_NO_FATAL_FAILURE(InsertRows("sw (id, name)", rows));
  const std::set<int32_t> old_ids = ActiveShardIds("sw");
  ASSERT_EQ(old_ids.size(), 3u);
  std::set<int32_t> new_ids;
  for (int i = 1; i <= 5; ++i) new_ids.insert(*old_ids.rbegin() + i);

  // One writer on its own channel (the cluster's stub is replaced by the
  // restart): inserts, each acknowledged or of unknown outcome.
  std::atomic<bool> stop{false};
  std::atomic<int64_t> acknowledged_count{0};
  std::vector<int64_t> acknowledged, unknown;
  std::thread writer([&] {
    auto stub = v1::TableOps::NewStub(
        grpc::CreateChannel(cluster_->conductor_address(), grpc::InsecureChannelCredentials()));
    for (int64_t id = 10000; !stop.load(); ++id) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      v1::ExecuteRequest request;
      request.set_sql("INSERT INTO sw (id, name) VALUES (?, ?)");
      *request.add_params() = IntegerValue(id);
      *request.add_params() = TextValue(absl::StrCat("name-", id));
      v1::ExecuteResponse response;
      if (stub->Execute(&context, request, &response).ok()) {
        acknowledged.push_back(id);
        acknowledged_count.fetch_add(1);
      } else {
        unknown.push_back(id);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  });

  const std::string id = StartReshard("sw", 5);
  ASSERT_FALSE(id.empty());
  auto switching = WaitReshard(
      id, [](const v1::ReshardStatus& s) { return s.phase() == v1::RESHARD_PHASE_SWITCHING; },
      kReshardTimeout, "switching");
  ASSERT_TRUE(switching.ok()) << switching.status();
  // The switch now holds writes for 1.5 s at the chosen point (its catch-up
  // and count take milliseconds here); writes must stand still.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  const int64_t held_at = acknowledged_count.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(acknowledged_count.load(), held_at) << "writes were acknowledged during the switch";
  absl::Status killed = cluster_->KillConductor(SIGKILL);
  ASSERT_TRUE(killed.ok()) << killed;
  absl::Status restarted = cluster_->RestartConductor();
  ASSERT_TRUE(restarted.ok()) << restarted;

  // Writes flow again soon after the restart (nothing left closed): the
  // writer's acknowledgements move within a few seconds, and keep every
  // answer exactly once while the reshard finishes.
  const int64_t at_restart = acknowledged_count.load();
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (acknowledged_count.load() < at_restart + 20 && absl::Now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GE(acknowledged_count.load(), at_restart + 20)
      << "writes stayed blocked after the conductor restart";
  int observations = 0;
  auto final_status = WaitReshard(
      id, [](const v1::ReshardStatus& s) { return IsTerminalPhase(s.phase()); }, kReshardTimeout,
      "complete or failed",
      [&](const v1::ReshardStatus& s) {
        if (++observations % 5 != 1) return;
        const v1::DescribeTableResponse described = Describe("sw");
        const std::set<int32_t> active = ShardIds(described, "active");
        EXPECT_TRUE(active == old_ids || active == new_ids)
            << "half-switched in phase " << PhaseName(s.phase()) << ": " << ShardsText(described);
      });
  stop = true;
  writer.join();
  ASSERT_TRUE(final_status.ok()) << final_status.status();
  std::cout << "killed " << where << " the switch's topology transaction; after the restart: "
            << final_status->ShortDebugString() << "; " << acknowledged.size()
            << " writes acknowledged, " << unknown.size() << " of unknown outcome\n";
  ASSERT_EQ(final_status->phase(), v1::RESHARD_PHASE_COMPLETE)
      << "a reshard whose switch was interrupted is retried, not failed";

  // The table: the first rows, every acknowledged insert, and each insert of
  // unknown outcome either present (whole) or absent.
  std::map<int64_t, std::string> expected;
  for (int i = 0; i < 900; ++i) expected[i] = row_of(i);
  for (int64_t key : acknowledged) expected[key] = row_of(key);
  for (int64_t key : unknown) {
    v1::ResultSet set = Query("SELECT id, name FROM sw WHERE id = ?", {IntegerValue(key)});
    ASSERT_LE(set.rows_size(), 1);
    if (set.rows_size() == 1) {
      EXPECT_EQ(RenderRow(set.rows(0)), row_of(key));
      expected[key] = row_of(key);
    }
  }
  std::vector<std::string> expected_rows;
  for (const auto& [key, row] : expected) expected_rows.push_back(row);
  ASSERT_NO_FATAL_FAILURE(ExpectResharded(shape, id, old_ids, 5, expected_rows));
}

INSTANTIATE_TEST_SUITE_P(HoldPoints, ReshardSwitchCrashTest, ::testing::Values("before", "after"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return absl::StrCat(info.param, "TopologyTransaction");
                         });

// ---------------------------------------------------------------------------
// 5. What a reshard refuses and blocks; same-count and invalid counts.
//
// The cluster starts without workers, so the reshard stays active (pending
// or copying, nothing copied) for as long as the checks take; two workers
// are started afterwards to finish it.

TEST_F(ReshardIntegrationTest, BlockedOperationsUnchangedAndInvalidCounts) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(/*workers=*/0));
  ASSERT_NO_FATAL_FAILURE(
      CreateTable("CREATE TABLE blocked (id INTEGER PRIMARY KEY, name TEXT)", 3, 20));
  ASSERT_NO_FATAL_FAILURE(
      CreateTable("CREATE TABLE bystander (id INTEGER PRIMARY KEY, name TEXT)", 2));
  const Shape shape{"blocked", {"id", "name"}, "id", "id", 0};
  std::vector<std::string> rows;
  for (int id = 0; id < 300; ++id) rows.push_back(absl::StrCat("(", id, ", 'b", id, "')"));
  ASSERT_NO_FATAL_FAILURE(InsertRows("blocked (id, name)", rows));
  ASSERT_NO_FATAL_FAILURE(InsertRows("bystander (id, name)", {"(1, 'x')", "(2, 'y')"}));

  v1::ReshardTableRequest request;
  v1::ReshardTableResponse response;
  // Invalid counts, typed and through the PRAGMA.
  for (int n : {0, -1, 257, 1000}) {
    SCOPED_TRACE(absl::StrCat("n = ", n));
    request.set_table("blocked");
    request.set_new_shard_count(n);
    ExpectError(Call(&v1::TableOps::Stub::ReshardTable, request, &response),
                grpc::StatusCode::INVALID_ARGUMENT, "INVALID_SHARD_COUNT");
    ExpectError(Run(absl::StrCat("PRAGMA reshardTable('blocked', ", n, ")")),
                grpc::StatusCode::INVALID_ARGUMENT, "INVALID_SHARD_COUNT");
  }
  // An unknown table.
  request.set_table("ghost");
  request.set_new_shard_count(4);
  ExpectError(Call(&v1::TableOps::Stub::ReshardTable, request, &response),
              grpc::StatusCode::NOT_FOUND, "TABLE_NOT_FOUND");
  ExpectError(Run("PRAGMA reshardTable('ghost', 4)"), grpc::StatusCode::NOT_FOUND,
              "TABLE_NOT_FOUND");
  // An unknown change_log_id.
  EXPECT_EQ(GetStatus("no-such-reshard").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrorReason(GetStatus("no-such-reshard").status()), "RESHARD_NOT_FOUND");
  ExpectError(Run("PRAGMA reshardStatus('no-such-reshard')"), grpc::StatusCode::NOT_FOUND,
              "RESHARD_NOT_FOUND");
  {
    grpc::Status end;
    std::vector<v1::ReshardStatus> seen = Watch("no-such-reshard", &end, absl::Seconds(30));
    EXPECT_TRUE(seen.empty());
    ExpectError(end, grpc::StatusCode::NOT_FOUND, "RESHARD_NOT_FOUND");
  }
  // The same count: nothing to do.
  request.set_table("blocked");
  request.set_new_shard_count(3);
  ASSERT_TRUE(IsOk(Call(&v1::TableOps::Stub::ReshardTable, request, &response)));
  EXPECT_EQ(response.change_log_id(), "") << response.DebugString();
  {
    v1::ExecuteResponse same;
    ASSERT_TRUE(IsOk(Run("PRAGMA reshardTable('blocked', 3)", {}, &same)));
    const v1::ResultSet* set = Set(same, "RESHARD");
    ASSERT_NE(set, nullptr) << same.DebugString();
    EXPECT_EQ(Columns(*set),
              (std::vector<std::string>{"change_log_id", "status", "message", "table_name",
                                        "source_shard_count", "target_shard_count"}));
    ASSERT_EQ(set->rows_size(), 1);
    ASSERT_EQ(set->rows(0).values_size(), 6);
    EXPECT_EQ(set->rows(0).values(0).kind_case(), Value::kNullValue) << set->DebugString();
    EXPECT_EQ(set->rows(0).values(1).text(), "unchanged");
    EXPECT_EQ(set->rows(0).values(3).text(), "blocked");
    EXPECT_EQ(set->rows(0).values(4).integer(), 3);
    EXPECT_EQ(set->rows(0).values(5).integer(), 3);
  }
  const std::set<int32_t> old_ids = ActiveShardIds("blocked");
  ASSERT_EQ(old_ids.size(), 3u);
  EXPECT_EQ(Describe("blocked").shards_size(), 3) << "an unchanged reshard made no shards";

  // A real one, which cannot progress (no workers).
  const std::vector<std::string> before = TableRows(shape);
  const std::string id = StartReshardSql("blocked", 6, 3);
  ASSERT_FALSE(id.empty());
  auto status = GetStatus(id);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE(IsActivePhase(status->phase())) << status->DebugString();
  EXPECT_EQ(status->table(), "blocked");
  EXPECT_EQ(status->source_shard_count(), 3);
  EXPECT_EQ(status->target_shard_count(), 6);
  EXPECT_EQ(status->rows_copied(), 0);
  EXPECT_EQ(status->error(), "");
  EXPECT_GT(status->started_at_ms(), 0);
  {
    v1::ExecuteResponse pragma;
    ASSERT_TRUE(
        IsOk(Run(absl::StrCat("PRAGMA reshardStatus(", QuoteString(id), ")"), {}, &pragma)));
    const v1::ResultSet* set = Set(pragma, "RESHARD_STATUS");
    ASSERT_NE(set, nullptr) << pragma.DebugString();
    EXPECT_EQ(Columns(*set), (std::vector<std::string>{"change_log_id", "table_name", "phase",
                                                       "rows_copied", "rows_total", "error"}));
    ASSERT_EQ(set->rows_size(), 1);
    ASSERT_EQ(set->rows(0).values_size(), 6);
    EXPECT_EQ(set->rows(0).values(0).text(), id);
    EXPECT_EQ(set->rows(0).values(1).text(), "blocked");
    const std::string phase = set->rows(0).values(2).text();
    EXPECT_TRUE(phase == "pending" || phase == "copying") << phase;
    EXPECT_EQ(set->rows(0).values(3).integer(), 0);
  }
  // The table still has its three shards. DescribeTable may list the
  // targets as `pending` (the contract does not say it must); if it does,
  // all six, with new ids.
  {
    const v1::DescribeTableResponse described = Describe("blocked");
    EXPECT_EQ(ShardIds(described, "active"), old_ids) << ShardsText(described);
    const size_t pending = ShardIds(described, "pending").size();
    EXPECT_TRUE(pending == 0 || pending == 6) << ShardsText(described);
    for (int32_t pending : ShardIds(described, "pending")) {
      EXPECT_GT(pending, *old_ids.rbegin()) << "target ids are new: " << ShardsText(described);
    }
    EXPECT_EQ(described.table().num_shards(), 3);
  }

  // Blocked while active: a second reshard, DROP TABLE, RENAME — typed and SQL.
  request.set_table("blocked");
  request.set_new_shard_count(4);
  ExpectError(Call(&v1::TableOps::Stub::ReshardTable, request, &response),
              grpc::StatusCode::FAILED_PRECONDITION, "RESHARD_IN_PROGRESS");
  ExpectError(Run("PRAGMA reshardTable('blocked', 8)"), grpc::StatusCode::FAILED_PRECONDITION,
              "RESHARD_IN_PROGRESS");
  ExpectError(Run("DROP TABLE blocked"), grpc::StatusCode::FAILED_PRECONDITION,
              "RESHARD_IN_PROGRESS");
  ExpectError(Run("DROP TABLE IF EXISTS blocked"), grpc::StatusCode::FAILED_PRECONDITION,
              "RESHARD_IN_PROGRESS");
  {
    v1::DropTableRequest drop;
    drop.set_table("blocked");
    v1::DropTableResponse dropped;
    ExpectError(Call(&v1::TableOps::Stub::DropTable, drop, &dropped),
                grpc::StatusCode::FAILED_PRECONDITION, "RESHARD_IN_PROGRESS");
  }
  ExpectError(Run("ALTER TABLE blocked RENAME TO blocked2"), grpc::StatusCode::FAILED_PRECONDITION,
              "RESHARD_IN_PROGRESS");
  {
    v1::RenameTableRequest rename;
    rename.set_table("blocked");
    rename.set_new_name("blocked2");
    v1::RenameTableResponse renamed;
    ExpectError(Call(&v1::TableOps::Stub::RenameTable, rename, &renamed),
                grpc::StatusCode::FAILED_PRECONDITION, "RESHARD_IN_PROGRESS");
  }
  // Nothing of that happened; the table still serves reads and writes.
  {
    v1::ListTablesResponse tables;
    ASSERT_TRUE(IsOk(Call(&v1::TableOps::Stub::ListTables, v1::ListTablesRequest(), &tables)));
    std::set<std::string> names;
    for (const auto& table : tables.tables()) names.insert(table.name());
    EXPECT_EQ(names, (std::set<std::string>{"blocked", "bystander"}));
  }
  EXPECT_TRUE(TableRows(shape) == before);
  auto still = GetStatus(id);
  ASSERT_TRUE(still.ok()) << still.status();
  EXPECT_TRUE(IsActivePhase(still->phase())) << still->DebugString();
  EXPECT_EQ(still->target_shard_count(), 6) << "the refused reshard changed the running one";
  ASSERT_TRUE(IsOk(Run("INSERT INTO blocked VALUES (1000, 'during')")));
  ASSERT_TRUE(IsOk(Run("UPDATE blocked SET name = 'changed' WHERE id = 5")));
  ASSERT_TRUE(IsOk(Run("DELETE FROM blocked WHERE id = 6")));
  // Other tables are not blocked.
  ASSERT_TRUE(IsOk(Run("ALTER TABLE bystander RENAME TO bystander2")));
  ASSERT_TRUE(IsOk(Run("DROP TABLE bystander2")));

  // Workers finish it; WatchReshard follows it to the end.
  ASSERT_TRUE(cluster_->StartWorker(0).ok());
  ASSERT_TRUE(cluster_->StartWorker(1).ok());
  grpc::Status end;
  std::vector<v1::ReshardStatus> seen = Watch(id, &end);
  ASSERT_NO_FATAL_FAILURE(ExpectWatchStream(seen, end, id, v1::RESHARD_PHASE_COMPLETE));
  std::vector<std::string> expected;
  for (int row_id = 0; row_id < 300; ++row_id) {
    if (row_id == 6) continue;
    expected.push_back(
        absl::StrCat("i:", row_id, "|t:", row_id == 5 ? "changed" : absl::StrCat("b", row_id)));
  }
  expected.push_back("i:1000|t:during");
  ASSERT_NO_FATAL_FAILURE(ExpectResharded(shape, id, old_ids, 6, expected));

  // No longer blocked: another reshard, RENAME, DROP.
  const std::string again = StartReshard("blocked", 2);
  ASSERT_FALSE(again.empty());
  EXPECT_NE(again, id);
  auto done = WaitComplete(again);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(Describe("blocked").table().num_shards(), 2);
  ASSERT_TRUE(IsOk(Run("ALTER TABLE blocked RENAME TO blocked2")));
  EXPECT_EQ(Count("SELECT count(*) FROM blocked2"), 300);
  ASSERT_TRUE(IsOk(Run("DROP TABLE blocked2")));
}

// ---------------------------------------------------------------------------
// 6./7. A storage node holding target shards (but not the source) is
//    SIGKILLed during the copy. Restarted, the copy job's retries finish the
//    reshard; never restarted, the retries run out and the reshard fails
//    cleanly, the table serving from its source shard throughout.

class ReshardTargetNodeTest : public ReshardIntegrationTest {
 protected:
  // A 1-shard table of 2000 rows; fills `shape`, `old_ids`, `before` and the
  // index of the source shard's node.
  void SetUpTable(const std::string& table) {
    ASSERT_NO_FATAL_FAILURE(StartCluster(2, {"--scan_rows_per_s=300"}));
    ASSERT_NO_FATAL_FAILURE(
        CreateTable(absl::StrCat("CREATE TABLE ", table,
                                 " (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)"),
                    1, 50));
    shape_ = Shape{table, {"id", "name", "score", "data"}, "id", "id", 0};
    std::vector<std::string> rows;
    for (int id = 0; id < 2000; ++id) {
      rows.push_back(absl::StrCat("(", id, ", ",
                                  id % 7 == 0 ? "NULL" : QuoteString(absl::StrCat("t", id)), ", ",
                                  id % 5 == 0 ? "NULL" : absl::StrCat(id / 4.0), ", ",
                                  id % 3 == 0 ? "NULL" : absl::StrFormat("X'%06x'", id), ")"));
    }
    ASSERT_NO_FATAL_FAILURE(InsertRows(absl::StrCat(table, " (id, name, score, data)"), rows));
    const v1::DescribeTableResponse described = Describe(table);
    old_ids_ = ShardIds(described, "active");
    ASSERT_EQ(old_ids_.size(), 1u) << ShardsText(described);
    ASSERT_EQ(described.shards_size(), 1) << ShardsText(described);
    source_node_ = -1;
    for (int n = 0; n < cluster_->node_count(); ++n) {
      if (cluster_->node_id(n) == described.shards(0).node_id()) source_node_ = n;
    }
    ASSERT_GE(source_node_, 0) << "source shard on an unknown node: " << ShardsText(described);
    // Any other node: 6 targets over 3 nodes put targets on every node.
    victim_ = (source_node_ + 1) % cluster_->node_count();
    for (int i = 1; i <= 6; ++i) new_ids_.insert(*old_ids_.rbegin() + i);
    before_ = TableRows(shape_);
    ASSERT_EQ(before_.size(), 2000u);
  }

  // Starts the 1 → 6 reshard, waits for the copy to be under way, checks
  // that the victim holds target shards and not the source, SIGKILLs it.
  void StartReshardAndKillVictim() {
    id_ = StartReshard(shape_.table, 6);
    ASSERT_FALSE(id_.empty());
    ASSERT_NO_FATAL_FAILURE(WaitCopyingMidway(id_));
    const v1::DescribeTableResponse during = Describe(shape_.table);
    int victim_targets = 0;
    for (const auto& shard : during.shards()) {
      if (old_ids_.count(shard.shard_id())) {
        EXPECT_NE(shard.node_id(), cluster_->node_id(victim_)) << ShardsText(during);
        continue;
      }
      new_ids_.insert(shard.shard_id());  // whatever ids the targets have
      if (shard.node_id() == cluster_->node_id(victim_)) ++victim_targets;
    }
    std::cout << "during the copy: " << ShardsText(during) << "; killing "
              << cluster_->node_id(victim_) << " (source on " << cluster_->node_id(source_node_)
              << ")\n";
    // Only if DescribeTable lists the targets while they are copied (it
    // does not today; test 6 checks the placement on the result instead).
    if (during.shards_size() > 1) {
      EXPECT_GT(victim_targets, 0) << "the victim holds no target shard: " << ShardsText(during);
    }
    absl::Status killed = cluster_->KillNode(victim_, SIGKILL);
    ASSERT_TRUE(killed.ok()) << killed;
    auto interrupted = GetStatus(id_);
    ASSERT_TRUE(interrupted.ok()) << interrupted.status();
    ASSERT_EQ(interrupted->phase(), v1::RESHARD_PHASE_COPYING)
        << "the node was killed after the copy ended: " << interrupted->DebugString();
    std::cout << "node killed at rows_copied=" << interrupted->rows_copied() << " of "
              << interrupted->rows_total() << "\n";
  }

  Shape shape_;
  std::set<int32_t> old_ids_;
  std::set<int32_t> new_ids_;
  std::vector<std::string> before_;
  int source_node_ = -1;
  int victim_ = -1;
  std::string id_;
};

TEST_F(ReshardTargetNodeTest, TargetNodeKilledAndRestartedDuringCopy) {
  ASSERT_NO_FATAL_FAILURE(SetUpTable("revived"));
  ASSERT_NO_FATAL_FAILURE(StartReshardAndKillVictim());
  std::this_thread::sleep_for(std::chrono::seconds(2));
  absl::Status restarted = cluster_->RestartNode(victim_);
  ASSERT_TRUE(restarted.ok()) << restarted;

  auto done = WaitComplete(id_);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->rows_total(), 2000);
  ASSERT_NO_FATAL_FAILURE(ExpectResharded(shape_, id_, old_ids_, 6, before_));
  // The killed node did hold targets (DescribeTable lists no pending shards
  // during the copy, so this is checked on the result).
  const v1::DescribeTableResponse after = Describe(shape_.table);
  int on_victim = 0;
  for (const auto& shard : after.shards()) {
    on_victim += shard.node_id() == cluster_->node_id(victim_);
  }
  EXPECT_GT(on_victim, 0) << "the killed node holds none of the new shards: " << ShardsText(after);
}

TEST_F(ReshardTargetNodeTest, TargetNodeThatNeverReturnsFailsTheReshardCleanly) {
  ASSERT_NO_FATAL_FAILURE(SetUpTable("orphaned"));
  ASSERT_NO_FATAL_FAILURE(StartReshardAndKillVictim());

  // The copy job's attempts (with back-off) run out: the reshard fails.
  auto failed = WaitReshard(
      id_, [](const v1::ReshardStatus& s) { return IsTerminalPhase(s.phase()); },
      absl::Seconds(150), "failed");
  ASSERT_TRUE(failed.ok()) << failed.status();
  ASSERT_EQ(failed->phase(), v1::RESHARD_PHASE_FAILED) << failed->DebugString();
  EXPECT_FALSE(failed->error().empty()) << "a failed reshard says why: " << failed->DebugString();
  std::cout << "the reshard failed: " << failed->error() << "\n";

  // The topology: the original single active shard, nothing else.
  const v1::DescribeTableResponse described = Describe(shape_.table);
  EXPECT_EQ(ShardIds(described, "active"), old_ids_) << ShardsText(described);
  EXPECT_EQ(described.shards_size(), 1) << "target shards left behind: " << ShardsText(described);
  EXPECT_EQ(described.table().num_shards(), 1);
  {
    v1::ExecuteResponse response;
    ASSERT_TRUE(IsOk(Run(absl::StrCat("DESCRIBE ", QuoteIdentifier(shape_.table)), {}, &response)));
    const v1::ResultSet* shards = Set(response, "SHARDS");
    ASSERT_NE(shards, nullptr) << response.DebugString();
    const int status_at = ColumnIndex(*shards, "status");
    const int id_at = ColumnIndex(*shards, "shard_id");
    ASSERT_GE(status_at, 0);
    ASSERT_GE(id_at, 0);
    ASSERT_EQ(shards->rows_size(), 1) << shards->DebugString();
    EXPECT_EQ(shards->rows(0).values(status_at).text(), "active");
    EXPECT_EQ(shards->rows(0).values(id_at).integer(), *old_ids_.begin());
  }

  // Every original row reads back through the conductor.
  {
    const std::string diff = DiffRows(before_, TableRows(shape_));
    EXPECT_TRUE(diff.empty()) << "the table through the conductor: " << diff;
  }

  // The live nodes' files: no rows of the target shards, no machinery.
  std::vector<std::string> target_list;
  for (int32_t id : new_ids_) target_list.push_back(absl::StrCat(id));
  const std::string target_rows_sql =
      absl::StrCat("SELECT count(*) FROM ", QuoteIdentifier(shape_.table),
                   " WHERE _virtualShard IN (", absl::StrJoin(target_list, ", "), ")");
  for (int n = 0; n < cluster_->node_count(); ++n) {
    if (n == victim_) continue;
    SCOPED_TRACE(cluster_->node_id(n));
    DatabaseOptions options;
    options.read_only = true;
    options.create = false;
    auto db = Database::Open(cluster_->node_database(n), options);
    ASSERT_TRUE(db.ok()) << db.status();
    int64_t target_rows = 0;
    // A node that never held the table has no such table: no rows.
    bool has_table = false;
    ASSERT_TRUE((*db)
                    ->ForEachRow(absl::StrCat("SELECT count(*) FROM sqlite_master WHERE type = "
                                              "'table' AND name = ",
                                              QuoteString(shape_.table)),
                                 [&](const Statement& statement) {
                                   has_table = statement.ColumnInt64(0) > 0;
                                   return absl::OkStatus();
                                 })
                    .ok());
    if (has_table) {
      absl::Status read = (*db)->ForEachRow(target_rows_sql, [&](const Statement& statement) {
        target_rows += statement.ColumnInt64(0);
        return absl::OkStatus();
      });
      ASSERT_TRUE(read.ok()) << read;
    }
    EXPECT_EQ(target_rows, 0) << "rows of the abandoned target shards " << SetText(new_ids_);
    std::vector<std::string> leftovers;
    absl::Status read = (*db)->ForEachRow(
        "SELECT type, name FROM sqlite_master WHERE name LIKE '\\_conductor\\_changes\\_%' "
        "ESCAPE '\\' OR name LIKE '\\_conductor\\_fence\\_%' ESCAPE '\\' OR "
        "name LIKE '\\_conductor\\_counts\\_%' ESCAPE '\\'",
        [&](const Statement& statement) {
          leftovers.push_back(absl::StrCat(statement.ColumnText(0), " ", statement.ColumnText(1)));
          return absl::OkStatus();
        });
    ASSERT_TRUE(read.ok()) << read;
    EXPECT_TRUE(leftovers.empty()) << absl::StrJoin(leftovers, "\n");
  }

  // Writes to the source shard's keys succeed.
  v1::ExecuteResponse response;
  ASSERT_TRUE(
      IsOk(Run(absl::StrCat("INSERT INTO ", shape_.table, " VALUES (5000, 'after', 1.25, X'01')"),
               {}, &response)));
  EXPECT_EQ(response.rows_affected(), 1);
  ASSERT_TRUE(IsOk(Run(absl::StrCat("UPDATE ", shape_.table, " SET name = 'updated' WHERE id = 7"),
                       {}, &response)));
  EXPECT_EQ(response.rows_affected(), 1);
  ASSERT_TRUE(
      IsOk(Run(absl::StrCat("DELETE FROM ", shape_.table, " WHERE id = 8"), {}, &response)));
  EXPECT_EQ(response.rows_affected(), 1);
  EXPECT_EQ(Count(absl::StrCat("SELECT count(*) FROM ", shape_.table)), 2000);
  EXPECT_EQ(Count(absl::StrCat("SELECT count(*) FROM ", shape_.table,
                               " WHERE id = 5000 AND name = 'after'")),
            1);
  EXPECT_EQ(Count(absl::StrCat("SELECT count(*) FROM ", shape_.table,
                               " WHERE id = 7 AND name = 'updated'")),
            1);
  EXPECT_EQ(Count(absl::StrCat("SELECT count(*) FROM ", shape_.table, " WHERE id = 8")), 0);

  // The failed reshard no longer blocks a new one (which may be refused as
  // UNAVAILABLE while a node is down).
  v1::ReshardTableRequest request;
  request.set_table(shape_.table);
  request.set_new_shard_count(6);
  v1::ReshardTableResponse reshard;
  grpc::Status again = Call(&v1::TableOps::Stub::ReshardTable, request, &reshard);
  std::cout << "a new reshard afterwards: code " << again.error_code() << " "
            << again.error_message() << "\n";
  EXPECT_TRUE(again.ok() || again.error_code() == grpc::StatusCode::UNAVAILABLE)
      << "gRPC code " << again.error_code() << ": " << again.error_message();
  EXPECT_NE(again.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << again.error_message();
  if (!again.ok()) {
    EXPECT_NE(ErrorReason(FromGrpcStatus(again)), "RESHARD_IN_PROGRESS") << again.error_message();
  }
}

}  // namespace
}  // namespace conductor
