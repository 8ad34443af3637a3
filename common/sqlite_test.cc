#include "common/sqlite.h"

#include "absl/strings/match.h"
#include "common/errors.h"
#include "gtest/gtest.h"

namespace conductor {
namespace {

std::unique_ptr<Database> Memory() {
  auto db = Database::Open(":memory:");
  EXPECT_TRUE(db.ok()) << db.status();
  return std::move(*db);
}

TEST(SqliteTest, ValuesKeepTheirStorageClass) {
  auto db = Memory();
  auto stmt = db->Prepare("SELECT ?, ?, ?, ?, ?");
  ASSERT_TRUE(stmt.ok()) << stmt.status();
  ASSERT_TRUE(stmt->BindAll({IntegerValue(INT64_MIN), RealValue(0.5), TextValue("héllo"),
                             BlobValue(std::string("\0\1", 2)), NullValue()})
                  .ok());
  ASSERT_TRUE(*stmt->Step());
  EXPECT_EQ(stmt->ColumnValue(0).integer(), INT64_MIN);
  EXPECT_EQ(stmt->ColumnValue(1).real(), 0.5);
  EXPECT_EQ(stmt->ColumnValue(2).text(), "héllo");
  EXPECT_EQ(stmt->ColumnValue(3).blob(), std::string("\0\1", 2));
  EXPECT_EQ(stmt->ColumnValue(4).kind_case(), Value::kNullValue);
}

TEST(SqliteTest, TextThatIsNotUtf8IsKeptExactlyAndRefusedForMessages) {
  auto db = Memory();
  auto stmt = db->Prepare("SELECT CAST(x'ff41' AS TEXT) AS bad, CAST(x'c3a9' AS TEXT)");
  ASSERT_TRUE(stmt.ok()) << stmt.status();
  ASSERT_TRUE(*stmt->Step());
  EXPECT_EQ(stmt->ColumnValue(0).text(), "\xff\x41") << "exact: never converted";
  auto refused = stmt->ColumnValueUtf8(0);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorReason(refused.status()), "SQL_ERROR");
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "CAST(bad AS BLOB)"))
      << refused.status();
  auto fine = stmt->ColumnValueUtf8(1);
  ASSERT_TRUE(fine.ok()) << fine.status();
  EXPECT_EQ(fine->text(), "é");
}

TEST(SqliteTest, ConstraintErrorsMapToCodesAndReasons) {
  auto db = Memory();
  ASSERT_TRUE(db->Exec("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT NOT NULL)").ok());
  ASSERT_TRUE(db->Exec("INSERT INTO t VALUES (1, 'x')").ok());
  absl::Status dup = db->Exec("INSERT INTO t VALUES (1, 'y')");
  EXPECT_EQ(dup.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ErrorReason(dup), "UNIQUE_VIOLATION");
  absl::Status null = db->Exec("INSERT INTO t VALUES (2, NULL)");
  EXPECT_EQ(null.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorReason(null), "CONSTRAINT_VIOLATION");
  auto bad = db->Prepare("SELECT nope FROM t");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("no such column"), std::string::npos);
}

TEST(SqliteTest, PrepareRefusesSecondStatement) {
  auto db = Memory();
  EXPECT_TRUE(db->Prepare("SELECT 1; -- trailing comment\n;").ok());
  auto two = db->Prepare("SELECT 1; SELECT 2");
  EXPECT_EQ(two.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(db->Prepare("   ").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SqliteTest, ParameterCountMismatchIsAnError) {
  auto db = Memory();
  auto stmt = db->Prepare("SELECT ?");
  ASSERT_TRUE(stmt.ok());
  EXPECT_EQ(stmt->BindAll({}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(SqliteTest, ForEachRowVisitsRowsAndStopsAtTheFirstError) {
  auto db = Memory();
  std::vector<int64_t> seen;
  ASSERT_TRUE(db->Exec("CREATE TABLE n (v INTEGER); INSERT INTO n VALUES (1), (2), (3)").ok());
  ASSERT_TRUE(db->ForEachRow("SELECT v FROM n ORDER BY v", [&](const Statement& row) {
                  seen.push_back(row.ColumnInt64(0));
                  return absl::OkStatus();
                }).ok());
  EXPECT_EQ(seen, (std::vector<int64_t>{1, 2, 3}));
  seen.clear();
  absl::Status stopped = db->ForEachRow("SELECT v FROM n ORDER BY v", [&](const Statement& row) {
    seen.push_back(row.ColumnInt64(0));
    return row.ColumnInt64(0) == 2 ? absl::DataLossError("stop") : absl::OkStatus();
  });
  EXPECT_EQ(stopped.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(seen, (std::vector<int64_t>{1, 2}));
  EXPECT_FALSE(
      db->ForEachRow("SELECT nope FROM n", [](const Statement&) { return absl::OkStatus(); }).ok());
}

TEST(SqliteTest, Quoting) {
  EXPECT_EQ(QuoteIdentifier("a\"b"), "\"a\"\"b\"");
  EXPECT_EQ(QuoteString("it's"), "'it''s'");
}

}  // namespace
}  // namespace conductor
