#include "client/table_format.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace conductor {
namespace {

v1::Value Null() {
  v1::Value v;
  v.set_null_value(true);
  return v;
}
v1::Value Int(int64_t i) {
  v1::Value v;
  v.set_integer(i);
  return v;
}
v1::Value Real(double d) {
  v1::Value v;
  v.set_real(d);
  return v;
}
v1::Value Text(const std::string& s) {
  v1::Value v;
  v.set_text(s);
  return v;
}
v1::Value Blob(const std::string& s) {
  v1::Value v;
  v.set_blob(s);
  return v;
}

v1::ResultSet Set(const std::string& name, std::vector<std::string> columns,
                  std::vector<std::vector<v1::Value>> rows) {
  v1::ResultSet set;
  set.set_name(name);
  for (const auto& c : columns) set.add_columns(c);
  for (const auto& r : rows) {
    auto* row = set.add_rows();
    for (const auto& v : r) *row->add_values() = v;
  }
  return set;
}

TEST(DisplayWidthTest, CountsCodePointsNotBytes) {
  EXPECT_EQ(DisplayWidth(""), 0);
  EXPECT_EQ(DisplayWidth("abc"), 3);
  EXPECT_EQ(DisplayWidth("h\xC3\xA9llo"), 5);              // héllo
  EXPECT_EQ(DisplayWidth("\xE6\x97\xA5\xE6\x9C\xAC"), 2);  // 日本
  EXPECT_EQ(DisplayWidth("\xF0\x9F\x98\x80"), 1);          // an emoji
  EXPECT_EQ(DisplayWidth(std::string("a\xFF") + "b"), 3) << "an invalid byte counts as one";
  EXPECT_EQ(DisplayWidth("\xC3"), 1) << "a truncated sequence counts per byte";
}

TEST(FormatRealTest, LikeSqlite) {
  EXPECT_EQ(FormatReal(1.0), "1.0");
  EXPECT_EQ(FormatReal(-3.0), "-3.0");
  EXPECT_EQ(FormatReal(0.0), "0.0");
  EXPECT_EQ(FormatReal(1.5), "1.5");
  EXPECT_EQ(FormatReal(0.1), "0.1");
  EXPECT_EQ(FormatReal(1.0 / 3), "0.333333333333333");
  EXPECT_EQ(FormatReal(1e20), "1.0e+20");
  EXPECT_EQ(FormatReal(1.5e-7), "1.5e-07");
  EXPECT_EQ(FormatReal(123456789012345.0), "123456789012345.0");
  EXPECT_EQ(FormatReal(std::numeric_limits<double>::infinity()), "Inf");
  EXPECT_EQ(FormatReal(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatReal(std::nan("")), "NaN");
}

TEST(FormatCellTest, EveryStorageClass) {
  EXPECT_EQ(FormatCell(Null()), "NULL");
  EXPECT_EQ(FormatCell(v1::Value()), "NULL") << "an unset value is NULL";
  EXPECT_EQ(FormatCell(Int(-42)), "-42");
  EXPECT_EQ(FormatCell(Int(INT64_MAX)), "9223372036854775807");
  EXPECT_EQ(FormatCell(Real(2)), "2.0");
  EXPECT_EQ(FormatCell(Text("NULL")), "NULL");
  EXPECT_EQ(FormatCell(Blob(std::string("\x00\xff\x10", 3))), "x'00ff10'");
  EXPECT_EQ(FormatCell(Blob("")), "x''");
  EXPECT_EQ(FormatCell(Text("a\nb\tc\x01")), "a\\nb\\tc\\x01");
}

TEST(FormatResultSetTest, AlignsColumnsWithUnicodeText) {
  std::string out = FormatResultSet(Set("PEOPLE", {"id", "name", "score"},
                                        {{Int(1), Text("Zo\xC3\xAB"), Real(9.5)},
                                         {Int(10), Text("Al"), Null()},
                                         {Int(200), Text("\xE6\x97\xA5\xE6\x9C\xAC"), Real(1)}}));
  EXPECT_EQ(out,
            "PEOPLE\n"
            " id  name  score\n"
            "---  ----  -----\n"
            "  1  Zo\xC3\xAB     9.5\n"
            " 10  Al     NULL\n"
            "200  \xE6\x97\xA5\xE6\x9C\xAC      1.0\n");
}

TEST(FormatResultSetTest, TextColumnsLeftAlignedWithoutTrailingSpaces) {
  std::string out = FormatResultSet(
      Set("", {"k", "v"}, {{Text("long key"), Blob("\x01")}, {Text("k"), Text("x")}}));
  EXPECT_EQ(out,
            "k         v\n"
            "--------  -----\n"
            "long key  x'01'\n"
            "k         x\n");
}

TEST(FormatResultSetTest, EmptySetShowsHeaderAndNoRows) {
  EXPECT_EQ(FormatResultSet(Set("INDEXES", {"index_name", "columns"}, {})),
            "INDEXES\n"
            "index_name  columns\n"
            "----------  -------\n"
            "(0 rows)\n");
}

TEST(FormatResultSetTest, ShortRowsAndNullOnlyColumns) {
  EXPECT_EQ(FormatResultSet(Set("", {"a", "b"}, {{Null()}, {Null(), Null()}})),
            "a     b\n"
            "----  ----\n"
            "NULL\n"
            "NULL  NULL\n");
}

TEST(FormatExecuteResponseTest, SetsThenRowsAffected) {
  v1::ExecuteResponse none;
  EXPECT_EQ(FormatExecuteResponse(none), "0 row(s) affected\n");
  none.set_rows_affected(3);
  EXPECT_EQ(FormatExecuteResponse(none), "3 row(s) affected\n");

  v1::ExecuteResponse two;
  *two.add_result_sets() = Set("A", {"x"}, {{Int(1)}});
  *two.add_result_sets() = Set("B", {"y"}, {});
  EXPECT_EQ(FormatExecuteResponse(two), "A\nx\n-\n1\n\nB\ny\n-\n(0 rows)\n");
  two.set_rows_affected(1);
  EXPECT_EQ(FormatExecuteResponse(two), "A\nx\n-\n1\n\nB\ny\n-\n(0 rows)\n\n1 row(s) affected\n");
}

TEST(JsonTest, Quote) {
  EXPECT_EQ(JsonQuote(""), "\"\"");
  EXPECT_EQ(JsonQuote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonQuote("\n\t\r\x01"), "\"\\n\\t\\r\\u0001\"");
  EXPECT_EQ(JsonQuote("h\xC3\xA9"), "\"h\xC3\xA9\"") << "valid UTF-8 passes through";
  EXPECT_EQ(JsonQuote("a\xFF"), "\"a\\ufffd\"");
}

TEST(JsonTest, Values) {
  EXPECT_EQ(ValueToJson(Null()), "null");
  EXPECT_EQ(ValueToJson(v1::Value()), "null");
  EXPECT_EQ(ValueToJson(Int(-9223372036854775807 - 1)), "-9223372036854775808");
  EXPECT_EQ(ValueToJson(Real(0.1)), "0.1");
  EXPECT_EQ(ValueToJson(Real(2)), "2.0");
  EXPECT_EQ(ValueToJson(Real(1.0 / 3)), "0.3333333333333333");
  EXPECT_EQ(ValueToJson(Real(1e300)), "1.0e+300");
  EXPECT_EQ(ValueToJson(Real(std::numeric_limits<double>::infinity())), "\"Inf\"");
  EXPECT_EQ(ValueToJson(Text("x\"y")), "\"x\\\"y\"");
  EXPECT_EQ(ValueToJson(Blob("hi")), "{\"blob\":\"aGk=\"}");
}

TEST(JsonTest, ExecuteResponse) {
  v1::ExecuteResponse response;
  *response.add_result_sets() = Set("T", {"a", "b"}, {{Int(1), Text("x")}, {Null(), Real(1.5)}});
  response.set_rows_affected(0);
  EXPECT_EQ(ExecuteResponseToJson(response),
            "{\"resultSets\":[{\"name\":\"T\",\"columns\":[\"a\",\"b\"],"
            "\"rows\":[[1,\"x\"],[null,1.5]]}],\"rowsAffected\":0}");
  EXPECT_EQ(ExecuteResponseToJson(v1::ExecuteResponse()), "{\"resultSets\":[],\"rowsAffected\":0}");
}

}  // namespace
}  // namespace conductor
