#include "common/sql/dml.h"

#include "common/errors.h"
#include "gtest/gtest.h"

namespace conductor::sql {
namespace {

DmlStatement Analyze(const std::string& sql) {
  auto out = AnalyzeDml(sql);
  EXPECT_TRUE(out.ok()) << sql << ": " << out.status();
  return out.ok() ? *out : DmlStatement();
}

void ExpectUnsupported(const std::string& sql, const std::string& construct) {
  auto out = AnalyzeDml(sql);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kUnimplemented) << sql;
  EXPECT_EQ(ErrorReason(out.status()), "UNSUPPORTED_STATEMENT") << sql;
  EXPECT_NE(out.status().message().find(construct), std::string::npos) << out.status();
}

TEST(DmlTest, SelectClauses) {
  DmlStatement s = Analyze(
      "select distinct a, b AS bee, count(*) c FROM main.t x WHERE a > 1 GROUP BY a, b "
      "HAVING count(*) > 2 ORDER BY a DESC, 2 LIMIT 10 OFFSET ?;");
  EXPECT_EQ(s.kind, StatementKind::kSelect);
  EXPECT_EQ(s.table, "t");
  EXPECT_EQ(s.table_alias, "x");
  EXPECT_TRUE(s.distinct);
  ASSERT_EQ(s.items.size(), 3u);
  EXPECT_EQ(s.Text(s.items[0].expression), "a");
  EXPECT_EQ(s.items[1].alias, "bee");
  EXPECT_EQ(s.Text(s.items[1].expression), "b");
  EXPECT_EQ(s.items[2].alias, "c");
  EXPECT_EQ(s.Text(s.items[2].expression), "count(*)");
  EXPECT_EQ(s.Text(s.where), "a > 1");
  EXPECT_EQ(s.Text(s.group_by), "a, b");
  EXPECT_EQ(s.Text(s.having), "count(*) > 2");
  ASSERT_EQ(s.order_terms.size(), 2u);
  EXPECT_EQ(s.Text(s.order_terms[0]), "a DESC");
  EXPECT_EQ(s.Text(s.limit), "10");
  EXPECT_EQ(s.Text(s.offset), "?");
  EXPECT_EQ(s.parameter_count, 1);
  ASSERT_EQ(s.aggregates.size(), 2u);
  EXPECT_TRUE(s.aggregates[0].star);
}

TEST(DmlTest, LimitCommaFormPutsOffsetFirst) {
  DmlStatement s = Analyze("SELECT * FROM t LIMIT 5, 10");
  EXPECT_EQ(s.Text(s.offset), "5");
  EXPECT_EQ(s.Text(s.limit), "10");
  EXPECT_TRUE(s.items[0].star);
}

TEST(DmlTest, PinsFromEqualityAndIn) {
  DmlStatement s = Analyze(
      "SELECT * FROM t WHERE id = ? AND 'x' = t.name AND k IN (1, -2.5, "
      "x'00ff', NULL) AND v > 3 AND z BETWEEN 1 AND 2");
  ASSERT_EQ(s.pins.size(), 3u);
  EXPECT_EQ(s.pins[0].column, "id");
  EXPECT_EQ(s.pins[0].values[0].kind, PinValue::Kind::kParameter);
  EXPECT_EQ(s.pins[0].values[0].parameter, 1);
  EXPECT_EQ(s.pins[1].column, "name");
  EXPECT_EQ(s.pins[1].values[0].bytes, "x");
  ASSERT_EQ(s.pins[2].values.size(), 4u);
  EXPECT_EQ(s.pins[2].values[0].integer, 1);
  EXPECT_DOUBLE_EQ(s.pins[2].values[1].real, -2.5);
  EXPECT_EQ(s.pins[2].values[2].bytes, std::string("\x00\xff", 2));
  EXPECT_EQ(s.pins[2].values[3].kind, PinValue::Kind::kNull);
}

TEST(DmlTest, DisjunctionsAndNegationsPinNothing) {
  EXPECT_TRUE(Analyze("SELECT * FROM t WHERE id = 1 OR id = 2").pins.empty());
  EXPECT_TRUE(Analyze("SELECT * FROM t WHERE id = 1 AND b = 2 OR c = 3").pins.empty());
  EXPECT_TRUE(Analyze("SELECT * FROM t WHERE id NOT IN (1, 2)").pins.empty());
  EXPECT_TRUE(Analyze("SELECT * FROM t WHERE id = a + 1").pins.empty());
  EXPECT_TRUE(Analyze("SELECT * FROM t WHERE other.id = 1").pins.empty());
  EXPECT_EQ(Analyze("SELECT * FROM t WHERE (id = 1)").pins.size(), 1u);
}

TEST(DmlTest, ParameterNumberingFollowsSqlite) {
  DmlStatement s = Analyze(
      "SELECT * FROM t WHERE a = ? AND b = ?5 AND c = ? AND d = :x AND "
      "e = :x AND f = ?");
  std::vector<int> numbers;
  for (const auto& [span, n] : s.parameters) numbers.push_back(n);
  EXPECT_EQ(numbers, (std::vector<int>{1, 5, 6, 7, 7, 8}));
  EXPECT_EQ(s.parameter_count, 8);
}

TEST(DmlTest, Insert) {
  DmlStatement s = Analyze(
      "INSERT OR REPLACE INTO t (id, name) VALUES (1, 'a'), (?, upper(?)) ON CONFLICT (id) DO "
      "UPDATE SET name = excluded.name RETURNING *");
  EXPECT_EQ(s.kind, StatementKind::kInsert);
  EXPECT_EQ(s.Text(s.insert_head), "INSERT OR REPLACE");
  EXPECT_EQ(s.insert_columns, (std::vector<std::string>{"id", "name"}));
  ASSERT_EQ(s.value_rows.size(), 2u);
  EXPECT_EQ(s.Text(s.value_rows[1]), "(?, upper(?))");
  EXPECT_EQ(s.Text(s.insert_tail), "ON CONFLICT (id) DO UPDATE SET name = excluded.name");
  EXPECT_EQ(s.Text(s.returning), "*");
  ASSERT_EQ(s.returning_items.size(), 1u);
  EXPECT_TRUE(s.returning_items[0].star);
  DmlStatement r = Analyze("REPLACE INTO t VALUES (1)");
  EXPECT_EQ(r.Text(r.insert_head), "REPLACE");
  EXPECT_TRUE(r.insert_columns.empty());
}

TEST(DmlTest, UpdateAndDelete) {
  DmlStatement u = Analyze("UPDATE t SET a = 1, (b, c) = (2, 3) WHERE id = 4 RETURNING a");
  EXPECT_EQ(u.kind, StatementKind::kUpdate);
  EXPECT_EQ(u.assigned_columns, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(u.Text(u.where), "id = 4");
  ASSERT_EQ(u.pins.size(), 1u);
  EXPECT_EQ(u.Text(u.returning), "a");
  DmlStatement d = Analyze("DELETE FROM t WHERE id IN (1, 2)");
  EXPECT_EQ(d.kind, StatementKind::kDelete);
  EXPECT_EQ(d.pins.size(), 1u);
  EXPECT_TRUE(Analyze("DELETE FROM t").where.empty());
}

TEST(DmlTest, UnsupportedConstructsAreNamed) {
  ExpectUnsupported("SELECT * FROM a JOIN b ON a.id = b.id", "JOIN");
  ExpectUnsupported("SELECT * FROM a, b", "JOIN");
  ExpectUnsupported("SELECT * FROM t WHERE id IN (SELECT id FROM u)", "subquery");
  ExpectUnsupported("SELECT a FROM t UNION SELECT a FROM u", "compound");
  ExpectUnsupported("WITH x AS (SELECT 1) SELECT * FROM x", "WITH");
  ExpectUnsupported("INSERT INTO t SELECT * FROM u", "INSERT … SELECT");
  ExpectUnsupported("UPDATE t SET a = u.a FROM u", "UPDATE … FROM");
}

TEST(DmlTest, HiddenColumnIsNotAColumn) {
  auto out = AnalyzeDml("SELECT _virtualShard FROM t");
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("no such column"), std::string::npos);
}

TEST(DmlTest, IsDistinctFromIsAnExpression) {
  DmlStatement s = Analyze("SELECT a IS NOT DISTINCT FROM b FROM t");
  EXPECT_EQ(s.table, "t");
  EXPECT_EQ(s.items.size(), 1u);
}

TEST(DmlTest, ANameAfterAnOperatorIsNotAnAlias) {
  DmlStatement s = Analyze("SELECT a AND b, c LIKE d, e f, g.h i, 'x' y, (1) z FROM t");
  ASSERT_EQ(s.items.size(), 6u);
  EXPECT_EQ(s.items[0].alias, "");
  EXPECT_EQ(s.Text(s.items[0].expression), "a AND b");
  EXPECT_EQ(s.items[1].alias, "");
  EXPECT_EQ(s.items[2].alias, "f");
  EXPECT_EQ(s.items[3].alias, "i");
  EXPECT_EQ(s.items[4].alias, "y");
  EXPECT_EQ(s.items[5].alias, "z");
}

TEST(DmlTest, ScalarMinMaxAreNotAggregates) {
  DmlStatement s = Analyze("SELECT max(a, b), min(c) FROM t");
  ASSERT_EQ(s.aggregates.size(), 1u);
  EXPECT_EQ(s.aggregates[0].function, "min");
}

TEST(DmlTest, ApplyEditsReplacesSpans) {
  EXPECT_EQ(ApplyEdits("SELECT * FROM t", {{{7, 8}, "a, b"}, {{14, 15}, "\"t\""}}),
            "SELECT a, b FROM \"t\"");
}

}  // namespace
}  // namespace conductor::sql
