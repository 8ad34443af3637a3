#include "client/views.h"

#include "client/table_format.h"
#include "gtest/gtest.h"

namespace conductor {
namespace {

TEST(FormatTimestampMsTest, Iso8601Utc) {
  EXPECT_EQ(FormatTimestampMs(0), "");
  EXPECT_EQ(FormatTimestampMs(1700000000123), "2023-11-14T22:13:20.123Z");
}

TEST(ViewsTest, TablesViewHasShowTablesColumns) {
  v1::TableInfo t;
  t.set_name("accounts");
  t.add_primary_key("region");
  t.add_primary_key("id");
  t.set_shard_key("id");
  t.set_num_shards(4);
  t.set_strategy("hash");
  t.set_block_size(500);
  t.set_created_at_ms(1700000000000);
  EXPECT_EQ(FormatResultSet(TablesView({t})),
            "TABLES\n"
            "name      primary_key  shard_key  num_shards  strategy  block_size  created_at\n"
            "--------  -----------  ---------  ----------  --------  ----------  "
            "------------------------\n"
            "accounts  region,id    id                  4  hash             500  "
            "2023-11-14T22:13:20.000Z\n");
}

TEST(ViewsTest, DescribeViewHasFourSets) {
  v1::DescribeTableResponse d;
  d.mutable_table()->set_name("t");
  auto* shard = d.add_shards();
  shard->set_shard_id(3);
  shard->set_node_id("node-1");
  shard->set_status("active");
  auto* column = d.add_columns();
  column->set_name("id");
  column->set_type("INTEGER");
  column->set_primary_key(true);
  auto sets = DescribeView(d);
  ASSERT_EQ(sets.size(), 4u);
  EXPECT_EQ(sets[0].name(), "TABLE_INFO");
  EXPECT_EQ(sets[0].rows_size(), 1);
  EXPECT_EQ(sets[1].name(), "SHARDS");
  EXPECT_EQ(sets[1].rows(0).values(0).integer(), 3);
  EXPECT_EQ(sets[2].name(), "INDEXES");
  EXPECT_EQ(sets[2].rows_size(), 0);
  EXPECT_EQ(sets[3].name(), "COLUMNS");
  EXPECT_EQ(sets[3].rows(0).values(3).kind_case(), v1::Value::kNullValue) << "no default";
  EXPECT_EQ(sets[3].rows(0).values(4).integer(), 1);
}

TEST(ViewsTest, StatsViewShowsShardErrors) {
  v1::GetTableStatsResponse r;
  r.set_table("t");
  r.set_total_rows(10);
  r.set_total_shards(2);
  r.set_avg_rows_per_shard(5);
  auto* ok = r.add_shards();
  ok->set_shard_id(0);
  ok->set_row_count(10);
  ok->set_status("active");
  auto* bad = r.add_shards();
  bad->set_shard_id(1);
  bad->set_status("error");
  bad->set_error("node down");
  auto sets = StatsView(r);
  ASSERT_EQ(sets.size(), 2u);
  EXPECT_EQ(FormatCell(sets[0].rows(0).values(3)), "5.0");
  EXPECT_EQ(sets[1].rows(1).values(4).text(), "node down");
  EXPECT_EQ(sets[1].rows(0).values(4).kind_case(), v1::Value::kNullValue);
}

TEST(ViewsTest, IndexesView) {
  v1::IndexInfo i;
  i.set_name("by_email");
  i.set_table("users");
  i.add_columns("email");
  i.add_columns("org");
  i.set_type("unique");
  i.set_status("ready");
  i.set_entry_count(1234);
  i.set_stale_shards(2);
  auto set = IndexesView({i});
  EXPECT_EQ(set.name(), "INDEXES");
  EXPECT_EQ(set.columns_size(), 9);
  EXPECT_EQ(set.rows(0).values(2).text(), "email,org");
  EXPECT_EQ(set.rows(0).values(5).integer(), 1234);
  EXPECT_EQ(set.rows(0).values(6).integer(), 2);
}

TEST(ReshardProgressTest, PhaseNamesAndEta) {
  EXPECT_EQ(PhaseName(v1::RESHARD_PHASE_COPYING), "copying");
  EXPECT_EQ(PhaseName(v1::RESHARD_PHASE_FAILED), "failed");
  EXPECT_EQ(PhaseName(v1::RESHARD_PHASE_UNSPECIFIED), "unspecified");
  EXPECT_EQ(FormatEta(absl::Seconds(4.2)), "5s");
  EXPECT_EQ(FormatEta(absl::Seconds(187)), "3m07s");
  EXPECT_EQ(FormatEta(absl::Hours(2) + absl::Minutes(5)), "2h05m");
}

TEST(ReshardProgressTest, RateAndEta) {
  ReshardProgress progress;
  EXPECT_FALSE(progress.seen());
  absl::Time start = absl::FromUnixSeconds(1000);
  v1::ReshardStatus status;
  status.set_phase(v1::RESHARD_PHASE_PENDING);
  progress.Update(status, start);
  EXPECT_EQ(progress.Line(), "pending  0 rows copied");

  status.set_phase(v1::RESHARD_PHASE_COPYING);
  status.set_rows_total(10000);
  progress.Update(status, start);
  EXPECT_EQ(progress.Line(), "copying [--------------------]  0/10000 rows  0.0%");

  status.set_rows_copied(4000);
  progress.Update(status, start + absl::Seconds(2));
  EXPECT_EQ(progress.Line(),
            "copying [########------------]  4000/10000 rows  40.0%  2000 rows/s  ETA 3s");

  status.set_phase(v1::RESHARD_PHASE_COMPLETE);
  status.set_rows_copied(10000);
  progress.Update(status, start + absl::Seconds(5));
  EXPECT_EQ(progress.Line(),
            "complete [####################]  10000/10000 rows  100.0%  2000 rows/s");
}

}  // namespace
}  // namespace conductor
