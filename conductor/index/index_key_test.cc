#include "conductor/index/index_key.h"

#include <string>
#include <vector>

#include "common/sqlite.h"
#include "gtest/gtest.h"

namespace conductor {
namespace {

sql::ColumnSchema Column(const std::string& type, const std::string& collation = "BINARY") {
  sql::ColumnSchema column;
  column.name = "c";
  column.type = type;
  column.collation = collation;
  return column;
}

std::optional<std::string> Key(const sql::ColumnSchema& column, const Value& value) {
  return EncodeIndexKey({value}, {&column});
}

// Two values get one key exactly when SQLite's `=` on the column holds.
// Checked against SQLite itself: a one-column table with the column's type
// and collation, both values inserted, and `a = b` evaluated on the rows.
bool SqliteEqual(const sql::ColumnSchema& column, const Value& a, const Value& b) {
  auto db = Database::Open(":memory:");
  EXPECT_TRUE(db.ok());
  EXPECT_TRUE((*db)
                  ->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, c " + column.type + " COLLATE " +
                         column.collation + ")")
                  .ok());
  auto insert = (*db)->Prepare("INSERT INTO t (id, c) VALUES (?, ?)");
  EXPECT_TRUE(insert.ok());
  for (int i = 0; i < 2; ++i) {
    insert->Reset().IgnoreError();
    insert->BindInt64(1, i + 1).IgnoreError();
    insert->Bind(2, i == 0 ? a : b).IgnoreError();
    EXPECT_TRUE(insert->Run().ok());
  }
  auto eq = (*db)->Prepare("SELECT x.c = y.c FROM t x, t y WHERE x.id = 1 AND y.id = 2");
  EXPECT_TRUE(eq.ok());
  auto row = eq->Step();
  EXPECT_TRUE(row.ok() && *row);
  return !eq->ColumnIsNull(0) && eq->ColumnInt64(0) == 1;
}

TEST(IndexKeyTest, NullIsNotIndexed) {
  sql::ColumnSchema text = Column("TEXT");
  EXPECT_FALSE(Key(text, NullValue()).has_value());
  sql::ColumnSchema other = Column("INTEGER");
  EXPECT_FALSE(EncodeIndexKey({TextValue("a"), NullValue()}, {&text, &other}).has_value());
  EXPECT_TRUE(EncodeIndexKey({TextValue("a"), IntegerValue(1)}, {&text, &other}).has_value());
}

TEST(IndexKeyTest, AgreesWithSqliteEquality) {
  const std::vector<Value> values = {
      IntegerValue(1),         RealValue(1.0),
      TextValue("1"),          TextValue("1.0"),
      BlobValue("1"),          IntegerValue(-7),
      RealValue(-7.5),         TextValue("abc"),
      TextValue("ABC"),        TextValue("abc  "),
      TextValue(" abc"),       BlobValue("abc"),
      RealValue(1e20),         TextValue("1e20"),
      IntegerValue(0),         RealValue(-0.0),
      TextValue(""),           BlobValue(""),
      RealValue(0.1),          TextValue("0.1"),
      IntegerValue(INT64_MAX), RealValue(9223372036854775808.0),
      TextValue("x'00'"),
  };
  int checked = 0;
  for (const char* type : {"INTEGER", "TEXT", "BLOB", "REAL", "NUMERIC", ""}) {
    for (const char* collation : {"BINARY", "NOCASE", "RTRIM"}) {
      sql::ColumnSchema column = Column(type, collation);
      for (const Value& a : values) {
        for (const Value& b : values) {
          bool same_key = Key(column, a) == Key(column, b);
          EXPECT_EQ(same_key, SqliteEqual(column, a, b))
              << "type '" << type << "' " << collation << ": " << DescribeTuple({a}) << " vs "
              << DescribeTuple({b});
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 9000);
}

TEST(IndexKeyTest, CompositeKeysDoNotRunTogether) {
  sql::ColumnSchema text = Column("TEXT");
  EXPECT_NE(EncodeIndexKey({TextValue("ab"), TextValue("c")}, {&text, &text}),
            EncodeIndexKey({TextValue("a"), TextValue("bc")}, {&text, &text}));
}

TEST(IndexKeyTest, DescribesTuplesForMessages) {
  EXPECT_EQ(DescribeTuple({TextValue("it's")}), "'it''s'");
  EXPECT_EQ(DescribeTuple({IntegerValue(3), BlobValue("\x01")}), "(3, X'01')");
  EXPECT_EQ(DescribeTuple({NullValue()}), "NULL");
}

}  // namespace
}  // namespace conductor
