#include "client/params.h"

#include "gtest/gtest.h"

namespace conductor {
namespace {

v1::Value Parse(const std::string& arg) {
  auto value = ParseParam(arg);
  EXPECT_TRUE(value.ok()) << arg << ": " << value.status();
  return value.ok() ? *value : v1::Value();
}

TEST(ParseParamTest, Integers) {
  EXPECT_EQ(Parse("42").integer(), 42);
  EXPECT_EQ(Parse("-7").integer(), -7);
  EXPECT_EQ(Parse("+3").integer(), 3);
  EXPECT_EQ(Parse("0").kind_case(), v1::Value::kInteger);
  EXPECT_EQ(Parse("9223372036854775807").integer(), INT64_MAX);
}

TEST(ParseParamTest, Reals) {
  EXPECT_EQ(Parse("1.5").real(), 1.5);
  EXPECT_EQ(Parse("-.5").real(), -0.5);
  EXPECT_EQ(Parse("2e3").real(), 2000);
  EXPECT_EQ(Parse("1E-2").real(), 0.01);
  EXPECT_EQ(Parse("3.").real(), 3);
  EXPECT_EQ(Parse("9223372036854775808").kind_case(), v1::Value::kReal) << "too big for int64";
}

TEST(ParseParamTest, NullAndBlob) {
  EXPECT_EQ(Parse("NULL").kind_case(), v1::Value::kNullValue);
  EXPECT_EQ(Parse("x'00ff'").blob(), std::string("\x00\xff", 2));
  EXPECT_EQ(Parse("X'AbCd'").blob(), "\xab\xcd");
  EXPECT_EQ(Parse("x''").kind_case(), v1::Value::kBlob);
  EXPECT_FALSE(ParseParam("x'abc'").ok()) << "odd number of digits";
  EXPECT_FALSE(ParseParam("x'zz'").ok());
}

TEST(ParseParamTest, EverythingElseIsText) {
  for (const char* text : {"", "null", "Null", "abc", " 1", "1 ", "0x10", "1e", "e5", ".", "-",
                           "1.2.3", "x'", "inf", "nan", "'5'"}) {
    v1::Value value = Parse(text);
    EXPECT_EQ(value.kind_case(), v1::Value::kText) << text;
    EXPECT_EQ(value.text(), text);
  }
}

}  // namespace
}  // namespace conductor
