#include "client/views.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace conductor {
namespace {

v1::Value Text(const std::string& text) {
  v1::Value value;
  value.set_text(text);
  return value;
}

v1::Value Int(int64_t integer) {
  v1::Value value;
  value.set_integer(integer);
  return value;
}

v1::Value Real(double real) {
  v1::Value value;
  value.set_real(real);
  return value;
}

v1::Value TextOrNull(const std::string& text) {
  v1::Value value;
  if (text.empty()) {
    value.set_null_value(true);
  } else {
    value.set_text(text);
  }
  return value;
}

v1::ResultSet NewSet(const std::string& name, std::initializer_list<const char*> columns) {
  v1::ResultSet set;
  set.set_name(name);
  for (const char* column : columns) set.add_columns(column);
  return set;
}

void AddRow(v1::ResultSet* set, std::initializer_list<v1::Value> values) {
  v1::Row* row = set->add_rows();
  for (const v1::Value& value : values) *row->add_values() = value;
}

std::string Joined(const google::protobuf::RepeatedPtrField<std::string>& list) {
  return absl::StrJoin(list, ",");
}

}  // namespace

std::string FormatTimestampMs(int64_t epoch_ms) {
  if (epoch_ms == 0) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(epoch_ms),
                          absl::UTCTimeZone());
}

v1::ResultSet TablesView(const std::vector<v1::TableInfo>& tables) {
  v1::ResultSet set = NewSet("TABLES", {"name", "primary_key", "shard_key", "num_shards",
                                        "strategy", "block_size", "created_at"});
  for (const v1::TableInfo& t : tables) {
    AddRow(&set,
           {Text(t.name()), Text(Joined(t.primary_key())), Text(t.shard_key()), Int(t.num_shards()),
            Text(t.strategy()), Int(t.block_size()), Text(FormatTimestampMs(t.created_at_ms()))});
  }
  return set;
}

std::vector<v1::ResultSet> DescribeView(const v1::DescribeTableResponse& d) {
  const v1::TableInfo& t = d.table();
  v1::ResultSet info =
      NewSet("TABLE_INFO", {"table_name", "primary_key", "shard_key", "strategy", "num_shards",
                            "block_size", "created_at", "updated_at"});
  AddRow(&info,
         {Text(t.name()), Text(Joined(t.primary_key())), Text(t.shard_key()), Text(t.strategy()),
          Int(t.num_shards()), Int(t.block_size()), Text(FormatTimestampMs(t.created_at_ms())),
          Text(FormatTimestampMs(t.updated_at_ms()))});
  v1::ResultSet shards = NewSet("SHARDS", {"shard_id", "node_id", "status"});
  for (const v1::ShardInfo& s : d.shards()) {
    AddRow(&shards, {Int(s.shard_id()), Text(s.node_id()), Text(s.status())});
  }
  v1::ResultSet indexes = NewSet("INDEXES", {"index_name", "columns", "index_type", "status"});
  for (const v1::IndexInfo& i : d.indexes()) {
    AddRow(&indexes, {Text(i.name()), Text(Joined(i.columns())), Text(i.type()), Text(i.status())});
  }
  v1::ResultSet columns =
      NewSet("COLUMNS", {"name", "type", "notnull", "default_value", "primary_key"});
  for (const v1::ColumnInfo& c : d.columns()) {
    AddRow(&columns, {Text(c.name()), Text(c.type()), Int(c.not_null() ? 1 : 0),
                      TextOrNull(c.default_value()), Int(c.primary_key() ? 1 : 0)});
  }
  return {info, shards, indexes, columns};
}

std::vector<v1::ResultSet> StatsView(const v1::GetTableStatsResponse& r) {
  v1::ResultSet totals =
      NewSet("TABLE_STATS", {"table_name", "total_rows", "total_shards", "avg_rows_per_shard"});
  AddRow(&totals, {Text(r.table()), Int(r.total_rows()), Int(r.total_shards()),
                   Real(r.avg_rows_per_shard())});
  v1::ResultSet shards =
      NewSet("SHARD_STATS", {"shard_id", "node_id", "row_count", "status", "error"});
  for (const v1::ShardStats& s : r.shards()) {
    AddRow(&shards, {Int(s.shard_id()), Text(s.node_id()), Int(s.row_count()), Text(s.status()),
                     TextOrNull(s.error())});
  }
  return {totals, shards};
}

v1::ResultSet IndexesView(const std::vector<v1::IndexInfo>& indexes) {
  v1::ResultSet set =
      NewSet("INDEXES", {"index_name", "table_name", "columns", "index_type", "status", "entries",
                         "stale_shards", "error", "created_at"});
  for (const v1::IndexInfo& i : indexes) {
    AddRow(&set, {Text(i.name()), Text(i.table()), Text(Joined(i.columns())), Text(i.type()),
                  Text(i.status()), Int(i.entry_count()), Int(i.stale_shards()),
                  TextOrNull(i.error()), Text(FormatTimestampMs(i.created_at_ms()))});
  }
  return set;
}

std::string PhaseName(v1::ReshardPhase phase) {
  switch (phase) {
    case v1::RESHARD_PHASE_PENDING:
      return "pending";
    case v1::RESHARD_PHASE_COPYING:
      return "copying";
    case v1::RESHARD_PHASE_SWITCHING:
      return "switching";
    case v1::RESHARD_PHASE_COMPLETE:
      return "complete";
    case v1::RESHARD_PHASE_FAILED:
      return "failed";
    default:
      return "unspecified";
  }
}

std::string FormatEta(absl::Duration duration) {
  int64_t seconds =
      std::max<int64_t>(0, absl::ToInt64Seconds(absl::Ceil(duration, absl::Seconds(1))));
  if (seconds < 60) return absl::StrCat(seconds, "s");
  if (seconds < 3600) return absl::StrFormat("%dm%02ds", seconds / 60, seconds % 60);
  return absl::StrFormat("%dh%02dm", seconds / 3600, seconds % 3600 / 60);
}

void ReshardProgress::Update(const v1::ReshardStatus& status, absl::Time now) {
  if (!seen_) {
    seen_ = true;
    first_rows_ = status.rows_copied();
    first_time_ = now;
  }
  last_ = status;
  last_time_ = now;
}

std::string ReshardProgress::Line() const {
  constexpr int kBarWidth = 20;
  const int64_t copied = last_.rows_copied();
  const int64_t total = last_.rows_total();
  std::string line = PhaseName(last_.phase());
  if (total <= 0) return absl::StrCat(line, "  ", copied, " rows copied");
  double fraction = std::min(1.0, static_cast<double>(copied) / static_cast<double>(total));
  int filled = static_cast<int>(fraction * kBarWidth);
  absl::StrAppend(&line, " [", std::string(filled, '#'), std::string(kBarWidth - filled, '-'),
                  "]  ", copied, "/", total, " rows  ", absl::StrFormat("%.1f%%", fraction * 100));
  double elapsed = absl::ToDoubleSeconds(last_time_ - first_time_);
  if (elapsed <= 0 || copied <= first_rows_) return line;
  double rate = static_cast<double>(copied - first_rows_) / elapsed;
  absl::StrAppend(&line, absl::StrFormat("  %.0f rows/s", rate));
  if (copied < total) {
    absl::StrAppend(&line, "  ETA ",
                    FormatEta(absl::Seconds(static_cast<double>(total - copied) / rate)));
  }
  return line;
}

}  // namespace conductor
