// conductorctl's views of typed responses: tables, descriptions, stats and
// indexes turned into result sets (rendered by table_format.h), timestamps,
// and the reshard progress line.
#ifndef CONDUCTOR_CLIENT_VIEWS_H_
#define CONDUCTOR_CLIENT_VIEWS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "conductor/v1/table_ops.pb.h"

namespace conductor {

// ISO 8601 in UTC with milliseconds ("2024-05-01T12:00:00.000Z"); "" for 0.
std::string FormatTimestampMs(int64_t epoch_ms);

// "TABLES": name, primary_key, shard_key, num_shards, strategy, block_size,
// created_at (the columns of SHOW TABLES).
v1::ResultSet TablesView(const std::vector<v1::TableInfo>& tables);

// "TABLE_INFO", "SHARDS", "INDEXES" and "COLUMNS", as DESCRIBE shows them.
std::vector<v1::ResultSet> DescribeView(const v1::DescribeTableResponse& response);

// "TABLE_STATS" (totals) and "SHARD_STATS" (one row per shard, with error).
std::vector<v1::ResultSet> StatsView(const v1::GetTableStatsResponse& response);

// "INDEXES": index_name, table_name, columns, index_type, status, error,
// created_at.
v1::ResultSet IndexesView(const std::vector<v1::IndexInfo>& indexes);

// The lower-case word of a phase: pending, copying, switching, complete,
// failed ("unspecified" for anything else).
std::string PhaseName(v1::ReshardPhase phase);

// A duration as "45s", "3m07s" or "2h05m".
std::string FormatEta(absl::Duration duration);

// Follows a reshard's statuses and renders a one-line progress report:
//   copying [########----------]  4000/10000 rows  40.0%  1250 rows/s  ETA 5s
// The rate is measured from the first status seen to the latest one.
class ReshardProgress {
 public:
  // Records `status`, observed at `now`.
  void Update(const v1::ReshardStatus& status, absl::Time now);
  // The progress line for the latest status (no newline). Without a total
  // yet, shows the phase and rows copied only.
  std::string Line() const;
  const v1::ReshardStatus& last() const { return last_; }
  bool seen() const { return seen_; }

 private:
  bool seen_ = false;
  v1::ReshardStatus last_;
  int64_t first_rows_ = 0;
  absl::Time first_time_;
  absl::Time last_time_;
};

}  // namespace conductor

#endif  // CONDUCTOR_CLIENT_VIEWS_H_
