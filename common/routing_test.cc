#include "common/routing.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/sqlite.h"
#include "gtest/gtest.h"

namespace conductor::routing {
namespace {

using conductor::v1::Value;

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr double kInf = std::numeric_limits<double>::infinity();

// The declared column types the oracle tests cover.
const char* const kDeclaredTypes[] = {"INTEGER", "INT",  "TEXT",   "VARCHAR(10)", "BLOB",
                                      "",        "REAL", "DOUBLE", "NUMERIC",     "DECIMAL(10,2)",
                                      "BOOLEAN", "DATE"};

std::string Describe(const Value& v) {
  switch (v.kind_case()) {
    case Value::kInteger:
      return absl::StrCat("INTEGER ", v.integer());
    case Value::kReal: {
      uint64_t bits;
      double r = v.real();
      std::memcpy(&bits, &r, sizeof(bits));
      return absl::StrFormat("REAL %.17g (0x%016x)", r, bits);
    }
    case Value::kText:
      return absl::StrCat("TEXT '", absl::CEscape(v.text()), "'");
    case Value::kBlob:
      return absl::StrCat("BLOB x'", absl::BytesToHexString(v.blob()), "'");
    default:
      return "NULL";
  }
}

// Same storage class and the same value; reals must be bit-identical (so -0.0 != 0.0).
bool SameValue(const Value& a, const Value& b) {
  bool a_null = a.kind_case() == Value::kNullValue || a.kind_case() == Value::KIND_NOT_SET;
  bool b_null = b.kind_case() == Value::kNullValue || b.kind_case() == Value::KIND_NOT_SET;
  if (a_null || b_null) return a_null && b_null;
  if (a.kind_case() != b.kind_case()) return false;
  switch (a.kind_case()) {
    case Value::kInteger:
      return a.integer() == b.integer();
    case Value::kReal: {
      double x = a.real(), y = b.real();
      return std::memcmp(&x, &y, sizeof(x)) == 0;
    }
    case Value::kText:
      return a.text() == b.text();
    case Value::kBlob:
      return a.blob() == b.blob();
    default:
      return false;
  }
}

std::unique_ptr<Database> Memory() {
  auto db = Database::Open(":memory:");
  EXPECT_TRUE(db.ok()) << db.status();
  return std::move(*db);
}

// Stores every value through a bound parameter into a column declared `declared_type` and returns
// what SQLite reads back, in order.
std::vector<Value> StoreInSqlite(Database* db, absl::string_view declared_type,
                                 const std::vector<Value>& values) {
  EXPECT_TRUE(db->Exec("DROP TABLE IF EXISTS oracle").ok());
  absl::Status created = db->Exec(absl::StrCat("CREATE TABLE oracle (c ", declared_type, ")"));
  EXPECT_TRUE(created.ok()) << created;
  auto insert = db->Prepare("INSERT INTO oracle (c) VALUES (?)");
  EXPECT_TRUE(insert.ok()) << insert.status();
  for (const Value& v : values) {
    EXPECT_TRUE(insert->Reset().ok());
    EXPECT_TRUE(insert->Bind(1, v).ok());
    absl::Status run = insert->Run();
    EXPECT_TRUE(run.ok()) << run;
  }
  auto select = db->Prepare("SELECT c FROM oracle ORDER BY rowid");
  EXPECT_TRUE(select.ok()) << select.status();
  std::vector<Value> stored;
  while (true) {
    auto row = select->Step();
    EXPECT_TRUE(row.ok()) << row.status();
    if (!row.ok() || !*row) break;
    stored.push_back(select->ColumnValue(0));
  }
  EXPECT_EQ(stored.size(), values.size());
  return stored;
}

std::string RandomDigits(std::mt19937_64& rng, int max_len) {
  std::string s;
  int n = static_cast<int>(rng() % (max_len + 1));
  for (int i = 0; i < n; ++i) s.push_back(static_cast<char>('0' + rng() % 10));
  return s;
}

// Strings shaped like numbers, well-formed or not.
std::string RandomNumericText(std::mt19937_64& rng) {
  static const char* const kSpace[] = {"", "", "", " ", "  ", "\t", "\n", "\r\n", "\v", "\f"};
  static const char* const kSign[] = {"", "", "", "-", "+"};
  static const char* const kJunk[] = {"", "", "", "", "", "", "x", " 1", ".", "e", "-", "\xc2\xa0"};
  std::string s = kSpace[rng() % 10];
  s += kSign[rng() % 5];
  s += RandomDigits(rng, 25);
  if (rng() % 2) s += "." + RandomDigits(rng, 25);
  if (rng() % 3 == 0)
    s += absl::StrCat(rng() % 2 ? "e" : "E", kSign[rng() % 5], RandomDigits(rng, 4));
  s += kSpace[rng() % 10];
  s += kJunk[rng() % 12];
  return s;
}

double RandomDouble(std::mt19937_64& rng) {
  switch (rng() % 6) {
    case 0: {  // Any bit pattern (NaN included).
      uint64_t bits = rng();
      double d;
      std::memcpy(&d, &bits, sizeof(d));
      return d;
    }
    case 1:  // Integral.
      return static_cast<double>(static_cast<int64_t>(rng()) >> (rng() % 64));
    case 2:  // Short decimals.
      return static_cast<double>(static_cast<int64_t>(rng() % 2000001) - 1000000) /
             std::pow(10.0, static_cast<double>(rng() % 12));
    case 3:  // Around powers of two and ten.
      return std::ldexp(1.0, static_cast<int>(rng() % 140) - 70) * (rng() % 2 ? 1 : -1) +
             static_cast<double>(static_cast<int>(rng() % 3) - 1);
    case 4:
      return std::pow(10.0, static_cast<double>(static_cast<int>(rng() % 700) - 350));
    default: {  // Any magnitude, moderate bit patterns.
      double mantissa = static_cast<double>(rng() >> 11) / 9007199254740992.0;
      return std::ldexp(mantissa, static_cast<int>(rng() % 2100) - 1075) * (rng() % 2 ? 1 : -1);
    }
  }
}

std::vector<Value> OracleValues() {
  std::vector<Value> values;
  values.push_back(NullValue());
  for (int64_t i :
       {int64_t{0}, int64_t{1}, int64_t{-1}, int64_t{-12}, int64_t{42}, kMin, kMax, kMin + 1,
        kMax - 1, int64_t{1} << 53, (int64_t{1} << 53) + 1, -(int64_t{1} << 53) - 1,
        int64_t{1} << 51, (int64_t{1} << 51) - 1, -(int64_t{1} << 51), int64_t{1} << 62,
        int64_t{999999999999999}, int64_t{1000000000000000}}) {
    values.push_back(IntegerValue(i));
  }
  for (double d : {0.0,
                   -0.0,
                   1.0,
                   -1.0,
                   0.1,
                   0.5,
                   1.5,
                   2.0,
                   -2.5,
                   1e20,
                   1e15,
                   1e14,
                   1e16,
                   1e-4,
                   1e-5,
                   123456789012345.67,
                   999999999999999.9,
                   0.30000000000000004,
                   1.0 / 3,
                   2.0 / 3,
                   1e308,
                   -1e308,
                   1.7976931348623157e308,
                   4.9e-324,
                   2.2250738585072014e-308,
                   kInf,
                   -kInf,
                   std::nan(""),
                   9223372036854775808.0,
                   -9223372036854775808.0,
                   9223372036854774784.0,
                   -9223372036854774784.0,
                   4503599627370496.5,
                   9007199254740992.0,
                   9007199254740994.0,
                   3.14159,
                   100.0,
                   1e100,
                   12345.678}) {
    values.push_back(RealValue(d));
  }
  for (const char* t : {"1",
                        " 12 ",
                        "1e3",
                        "0x10",
                        "0X1F",
                        "12abc",
                        "12 abc",
                        "-7",
                        "1.5",
                        "9223372036854775807",
                        "9223372036854775808",
                        "-9223372036854775808",
                        "-9223372036854775809",
                        "18446744073709551616",
                        "00000000000000000000001",
                        "",
                        " ",
                        "héllo",
                        "日本語",
                        "+5",
                        ".5",
                        "5.",
                        "1e999",
                        "-1e999",
                        "1e-999",
                        "-1e-999",
                        "-0",
                        "-0.0",
                        "0.0",
                        "+0",
                        "1e",
                        "1e+",
                        "1.5e",
                        ".",
                        "+",
                        "-",
                        "-.5",
                        "+.5e1",
                        "\t7\n",
                        "1 2",
                        "1_000",
                        "Infinity",
                        "NaN",
                        "inf",
                        "1e308",
                        "1.7976931348623157e308",
                        "1.8e308",
                        "4.9e-324",
                        "2.5e-324",
                        "1e-400",
                        "0.1",
                        "1.0",
                        "1e0",
                        "1E3",
                        "1e+3",
                        "1e-3",
                        "100000000000000000000",
                        "123456789012345678901234567890",
                        "0.000000000000000000000000000001",
                        "- 1",
                        "\v1\f",
                        "\xc2\xa0"
                        "1",
                        "4503599627370496",
                        "2251799813685248",
                        "2251799813685247",
                        "-2251799813685248",
                        "-2251799813685249",
                        "9007199254740993",
                        "9223372036854775807.0",
                        "9.223372036854775807e18",
                        "1e18",
                        "1e19",
                        "12.000",
                        "48.00",
                        "1e-1",
                        "0.1e1",
                        "10e-1",
                        "1.5E+2",
                        "  -  1",
                        "0001",
                        "1e0003",
                        "1e10000",
                        "1e99999999999",
                        "0e999",
                        "-0e-5",
                        "99999999999999999999e-20"}) {
    values.push_back(TextValue(t));
  }
  values.push_back(TextValue(std::string("1\0", 2)));
  values.push_back(
      TextValue(std::string("\0"
                            "1",
                            2)));
  for (absl::string_view b : {absl::string_view(""), absl::string_view("1"),
                              absl::string_view("\0\1\xff", 3), absl::string_view("12.5")}) {
    values.push_back(BlobValue(b));
  }

  std::mt19937_64 rng(20240229);
  for (int i = 0; i < 1500; ++i) {
    uint64_t bits = rng();
    int shift = static_cast<int>(rng() % 64);
    values.push_back(IntegerValue(static_cast<int64_t>(bits) >> shift));
  }
  for (int i = 0; i < 3000; ++i) values.push_back(RealValue(RandomDouble(rng)));
  static const char* const kFormats[] = {"%.17g", "%.15g", "%.16g", "%g", "%.3e", "%f", "%.20g"};
  for (int i = 0; i < 3000; ++i) {
    char buf[512];
    double d = RandomDouble(rng);
    if (std::isnan(d)) continue;
    std::snprintf(buf, sizeof(buf), kFormats[rng() % 7], d);
    values.push_back(TextValue(buf));
  }
  for (int i = 0; i < 1500; ++i) {
    values.push_back(TextValue(absl::StrCat(static_cast<int64_t>(rng()) >> (rng() % 64))));
  }
  for (int i = 0; i < 4000; ++i) values.push_back(TextValue(RandomNumericText(rng)));
  return values;
}

// ApplyAffinity agrees with what SQLite stores, for every value and declared type.
TEST(RoutingTest, ApplyAffinityMatchesSqlite) {
  auto db = Memory();
  std::vector<Value> values = OracleValues();
  for (const char* declared_type : kDeclaredTypes) {
    SCOPED_TRACE(absl::StrCat("declared type '", declared_type, "'"));
    Affinity affinity = AffinityOf(declared_type);
    std::vector<Value> stored = StoreInSqlite(db.get(), declared_type, values);
    ASSERT_EQ(stored.size(), values.size());
    int failures = 0;
    for (size_t i = 0; i < values.size() && failures < 20; ++i) {
      Value mine = ApplyAffinity(values[i], affinity);
      if (!SameValue(mine, stored[i])) {
        ++failures;
        ADD_FAILURE() << "input " << Describe(values[i]) << ": SQLite stored "
                      << Describe(stored[i]) << ", ApplyAffinity gave " << Describe(mine);
      }
    }
  }
}

// AffinityOf agrees with SQLite, probed through storage classes and CAST.
TEST(RoutingTest, AffinityOfMatchesSqlite) {
  auto db = Memory();
  std::vector<std::string> types(std::begin(kDeclaredTypes), std::end(kDeclaredTypes));
  for (const char* extra : {"integer",
                            "BIGINT",
                            "int8",
                            "POINT",
                            "FLOATING POINT",
                            "CHARINT",
                            "BLOBCHAR",
                            "REALBLOB",
                            "BLOBREAL",
                            "TEXTREAL",
                            "CLOB",
                            "nvarchar(255)",
                            "character varying",
                            "STRING",
                            "FLOAT",
                            "DOUBLE PRECISION",
                            "real",
                            "Blob",
                            "ANY",
                            "DATETIME",
                            "MONEY",
                            "TINYTEXT",
                            "JSON"}) {
    types.push_back(extra);
  }
  for (const std::string& type : types) {
    SCOPED_TRACE(absl::StrCat("declared type '", type, "'"));
    std::vector<Value> stored =
        StoreInSqlite(db.get(), type, {TextValue("12"), IntegerValue(12), TextValue("1.5")});
    ASSERT_EQ(stored.size(), 3u);
    Affinity expected;
    if (stored[0].kind_case() == Value::kReal) {
      expected = Affinity::kReal;
    } else if (stored[0].kind_case() == Value::kInteger) {
      // INTEGER and NUMERIC store alike; CAST tells them apart (CAST('1.5' AS INTEGER) is 1).
      // CAST needs a type name, and an empty declared type is BLOB, so this is never empty.
      auto cast = db->Prepare(absl::StrCat("SELECT typeof(CAST('1.5' AS ", type, "))"));
      ASSERT_TRUE(cast.ok()) << cast.status();
      ASSERT_TRUE(*cast->Step());
      expected = cast->ColumnText(0) == "integer" ? Affinity::kInteger : Affinity::kNumeric;
    } else {
      ASSERT_EQ(stored[0].kind_case(), Value::kText);
      expected = stored[1].kind_case() == Value::kText ? Affinity::kText : Affinity::kBlob;
    }
    EXPECT_EQ(static_cast<int>(AffinityOf(type)), static_cast<int>(expected));
  }
  EXPECT_EQ(AffinityOf(absl::string_view("TEXT\0INT", 8)), Affinity::kText);
}

// RoutingHash is the composition the header documents.
TEST(RoutingTest, RoutingHashIsXxh64OfCanonicalText) {
  std::vector<Value> values = OracleValues();
  for (const char* declared_type : kDeclaredTypes) {
    Affinity affinity = AffinityOf(declared_type);
    for (const Value& v : values) {
      std::optional<std::string> text = CanonicalText(ApplyAffinity(v, affinity));
      if (!text.has_value()) continue;
      EXPECT_EQ(RoutingHash(v, affinity), XXH64(text->data(), text->size(), 0))
          << Describe(v) << " as " << declared_type;
    }
  }
}

TEST(RoutingTest, CanonicalText) {
  EXPECT_EQ(CanonicalText(IntegerValue(-12)), "-12");
  EXPECT_EQ(CanonicalText(IntegerValue(kMin)), "-9223372036854775808");
  EXPECT_EQ(CanonicalText(RealValue(0.1)), "0.10000000000000001");
  EXPECT_EQ(CanonicalText(RealValue(1e20)), "1e+20");
  EXPECT_EQ(CanonicalText(RealValue(1.0)), "1");
  EXPECT_EQ(CanonicalText(RealValue(1.5)), "1.5");
  EXPECT_EQ(CanonicalText(RealValue(-0.0)), "-0");
  EXPECT_EQ(CanonicalText(RealValue(1e-5)), "1.0000000000000001e-05");
  EXPECT_EQ(CanonicalText(RealValue(kInf)), "inf");
  EXPECT_EQ(CanonicalText(RealValue(-kInf)), "-inf");
  EXPECT_EQ(CanonicalText(TextValue("héllo")), "héllo");
  EXPECT_EQ(CanonicalText(BlobValue(absl::string_view("\0\1", 2))), std::string("\0\1", 2));
  EXPECT_EQ(CanonicalText(NullValue()), std::nullopt);
  EXPECT_EQ(CanonicalText(Value()), std::nullopt);
  EXPECT_EQ(CanonicalText(RealValue(std::nan(""))), std::nullopt);
  // Matches C printf("%.17g") on many doubles.
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    double d = RandomDouble(rng);
    if (std::isnan(d)) continue;
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.17g", d);
    EXPECT_EQ(CanonicalText(RealValue(d)), std::string(buf));
  }
}

TEST(RoutingTest, ApplyAffinityExamples) {
  EXPECT_TRUE(SameValue(ApplyAffinity(TextValue(" 12 "), Affinity::kInteger), IntegerValue(12)));
  EXPECT_TRUE(SameValue(ApplyAffinity(TextValue("1e3"), Affinity::kInteger), IntegerValue(1000)));
  EXPECT_TRUE(SameValue(ApplyAffinity(TextValue("0x10"), Affinity::kInteger), TextValue("0x10")));
  EXPECT_TRUE(SameValue(ApplyAffinity(TextValue("+5"), Affinity::kNumeric), IntegerValue(5)));
  EXPECT_TRUE(SameValue(ApplyAffinity(TextValue(".5"), Affinity::kNumeric), RealValue(0.5)));
  EXPECT_TRUE(SameValue(ApplyAffinity(TextValue("5."), Affinity::kInteger), IntegerValue(5)));
  EXPECT_TRUE(SameValue(ApplyAffinity(TextValue("1e999"), Affinity::kInteger), RealValue(kInf)));
  EXPECT_TRUE(SameValue(ApplyAffinity(RealValue(2.0), Affinity::kNumeric), IntegerValue(2)));
  EXPECT_TRUE(SameValue(ApplyAffinity(RealValue(-0.0), Affinity::kInteger), IntegerValue(0)));
  EXPECT_TRUE(SameValue(ApplyAffinity(RealValue(-0.0), Affinity::kReal), RealValue(0.0)));
  EXPECT_TRUE(SameValue(ApplyAffinity(IntegerValue(7), Affinity::kReal), RealValue(7.0)));
  EXPECT_TRUE(SameValue(ApplyAffinity(RealValue(1.0), Affinity::kText), TextValue("1.0")));
  EXPECT_TRUE(SameValue(ApplyAffinity(RealValue(0.1), Affinity::kText), TextValue("0.1")));
  EXPECT_TRUE(SameValue(ApplyAffinity(RealValue(1e20), Affinity::kText), TextValue("1.0e+20")));
  EXPECT_TRUE(SameValue(ApplyAffinity(IntegerValue(-3), Affinity::kText), TextValue("-3")));
  EXPECT_TRUE(SameValue(ApplyAffinity(IntegerValue(1), Affinity::kBlob), IntegerValue(1)));
  EXPECT_TRUE(SameValue(ApplyAffinity(BlobValue("1"), Affinity::kInteger), BlobValue("1")));
  EXPECT_TRUE(SameValue(ApplyAffinity(NullValue(), Affinity::kText), NullValue()));
  EXPECT_TRUE(SameValue(ApplyAffinity(RealValue(std::nan("")), Affinity::kReal), NullValue()));
}

// Values SQLite stores as the same value route the same.
TEST(RoutingTest, EqualUnderSqliteRoutesEqually) {
  const std::vector<Value> ones = {IntegerValue(1), TextValue("1"),   RealValue(1.0),
                                   TextValue(" 1"), TextValue("1.0"), TextValue("1e0"),
                                   TextValue("+1"), TextValue("1 "),  TextValue("0.1e1")};
  for (Affinity affinity : {Affinity::kInteger, Affinity::kNumeric, Affinity::kReal}) {
    for (const Value& v : ones) {
      EXPECT_EQ(RoutingHash(v, affinity), RoutingHash(IntegerValue(1), affinity)) << Describe(v);
    }
  }
  EXPECT_EQ(RoutingHash(IntegerValue(1), Affinity::kText),
            RoutingHash(TextValue("1"), Affinity::kText));
  EXPECT_EQ(RoutingHash(RealValue(1.5), Affinity::kText),
            RoutingHash(TextValue("1.5"), Affinity::kText));
  EXPECT_EQ(RoutingHash(TextValue("0.1"), Affinity::kReal),
            RoutingHash(RealValue(0.1), Affinity::kReal));
  EXPECT_EQ(RoutingHash(TextValue("1e20"), Affinity::kInteger),
            RoutingHash(RealValue(1e20), Affinity::kInteger));

  // In a TEXT column 1 and 1.0 are stored as different texts ('1' and '1.0').
  EXPECT_NE(RoutingHash(IntegerValue(1), Affinity::kText),
            RoutingHash(RealValue(1.0), Affinity::kText));
  // In a BLOB-affinity column nothing is converted: 1 and '1' are different values to SQLite.
  // They share the canonical text "1" (the encoding carries no type tag), so they hash alike,
  // which is harmless: distinct keys may share a shard; equal keys must.
  EXPECT_FALSE(SameValue(ApplyAffinity(IntegerValue(1), Affinity::kBlob),
                         ApplyAffinity(TextValue("1"), Affinity::kBlob)));
  EXPECT_EQ(RoutingHash(IntegerValue(1), Affinity::kBlob),
            RoutingHash(TextValue("1"), Affinity::kBlob));
  // ...whereas in an INTEGER column ' 1' and '1' become the same value, but in a BLOB column they
  // stay different texts and route differently.
  EXPECT_NE(RoutingHash(TextValue(" 1"), Affinity::kBlob),
            RoutingHash(TextValue("1"), Affinity::kBlob));
  EXPECT_NE(RoutingHash(TextValue("1.0"), Affinity::kBlob),
            RoutingHash(TextValue("1"), Affinity::kBlob));

  // Every group of oracle inputs that SQLite stores identically hashes identically.
  auto db = Memory();
  std::vector<Value> values = OracleValues();
  for (const char* declared_type : kDeclaredTypes) {
    Affinity affinity = AffinityOf(declared_type);
    std::vector<Value> stored = StoreInSqlite(db.get(), declared_type, values);
    ASSERT_EQ(stored.size(), values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      if (stored[i].kind_case() == Value::kNullValue) continue;
      Value same = stored[i];  // Storing SQLite's own output is a fixed point.
      EXPECT_EQ(RoutingHash(values[i], affinity), RoutingHash(same, affinity))
          << Describe(values[i]) << " as '" << declared_type << "'";
    }
  }
}

TEST(RoutingTest, Xxh64KnownVectors) {
  EXPECT_EQ(XXH64("", 0, 0), 0xEF46DB3751D8E999ULL);
  EXPECT_EQ(XXH64("a", 1, 0), 0xD24EC4F1A98C6E5BULL);
  EXPECT_EQ(XXH64("abc", 3, 0), 0x44BC2CF5AD770999ULL);
  EXPECT_EQ(RoutingHash(TextValue(""), Affinity::kText), 0xEF46DB3751D8E999ULL);
  EXPECT_EQ(RoutingHash(TextValue("a"), Affinity::kText), 0xD24EC4F1A98C6E5BULL);
  EXPECT_EQ(RoutingHash(BlobValue("abc"), Affinity::kInteger), 0x44BC2CF5AD770999ULL);
}

// --- Golden vectors. These freeze the routing function: any change breaks them (and every
// client and every stored row's placement). docs/routing.md lists the same table. ---------------

constexpr int kShardCounts[] = {1, 2, 3, 4, 8, 16, 256};

struct Golden {
  const char* declared_type;
  Value input;
  std::string canonical;
  uint64_t hash;
  int index[7];
};

std::vector<Golden> GoldenVectors() {
  return {
      {"INTEGER", IntegerValue(1), "1", 0xB7B41276360564D4ULL, {0, 1, 2, 2, 5, 11, 183}},
      {"INTEGER", TextValue("1"), "1", 0xB7B41276360564D4ULL, {0, 1, 2, 2, 5, 11, 183}},
      {"INTEGER", RealValue(1.0), "1", 0xB7B41276360564D4ULL, {0, 1, 2, 2, 5, 11, 183}},
      {"INTEGER", TextValue(" 12 "), "12", 0x5460F49ADBE7ABA2ULL, {0, 0, 0, 1, 2, 5, 84}},
      {"INTEGER", TextValue("1e3"), "1000", 0x6AA48FBA1835CAB3ULL, {0, 0, 1, 1, 3, 6, 106}},
      {"INTEGER", TextValue("0x10"), "0x10", 0x2CE0AB9580C6619FULL, {0, 0, 0, 0, 1, 2, 44}},
      {"INTEGER", IntegerValue(-12), "-12", 0xB2F39FCFF1279B09ULL, {0, 1, 2, 2, 5, 11, 178}},
      {"INTEGER",
       IntegerValue(kMin),
       "-9223372036854775808",
       0x9E606AB2DD272C10ULL,
       {0, 1, 1, 2, 4, 9, 158}},
      {"INTEGER",
       IntegerValue(kMax),
       "9223372036854775807",
       0xD8AFFF7B1FB07EB3ULL,
       {0, 1, 2, 3, 6, 13, 216}},
      {"INTEGER", RealValue(1.5), "1.5", 0x7599CF6A858394DDULL, {0, 0, 1, 1, 3, 7, 117}},
      {"INTEGER",
       TextValue("9223372036854775808"),
       "9.2233720368547758e+18",
       0xD2EAFBB86021E974ULL,
       {0, 1, 2, 3, 6, 13, 210}},
      {"INTEGER", TextValue("-0"), "0", 0x633457081244AFECULL, {0, 0, 1, 1, 3, 6, 99}},
      {"INTEGER", TextValue("1e999"), "inf", 0xE747E6775630C9B6ULL, {0, 1, 2, 3, 7, 14, 231}},
      {"BIGINT",
       IntegerValue(1234567890123),
       "1234567890123",
       0x81F613829897771FULL,
       {0, 1, 1, 2, 4, 8, 129}},
      {"REAL", IntegerValue(1), "1", 0xB7B41276360564D4ULL, {0, 1, 2, 2, 5, 11, 183}},
      {"REAL",
       RealValue(0.1),
       "0.10000000000000001",
       0x7B05F0A58EC99AE3ULL,
       {0, 0, 1, 1, 3, 7, 123}},
      {"REAL", TextValue("1e20"), "1e+20", 0x025BA9FDE672FE2EULL, {0, 0, 0, 0, 0, 0, 2}},
      {"DOUBLE", RealValue(-0.0), "0", 0x633457081244AFECULL, {0, 0, 1, 1, 3, 6, 99}},
      {"TEXT", IntegerValue(1), "1", 0xB7B41276360564D4ULL, {0, 1, 2, 2, 5, 11, 183}},
      {"TEXT", RealValue(1.0), "1.0", 0x34B03868A385768CULL, {0, 0, 0, 0, 1, 3, 52}},
      {"TEXT", RealValue(0.1), "0.1", 0x9FFBE06A93CC668FULL, {0, 1, 1, 2, 4, 9, 159}},
      {"TEXT", RealValue(1e20), "1.0e+20", 0x24A0FDCCF26FC670ULL, {0, 0, 0, 0, 1, 2, 36}},
      {"TEXT", TextValue(""), "", 0xEF46DB3751D8E999ULL, {0, 1, 2, 3, 7, 14, 239}},
      {"TEXT",
       TextValue("h\xc3\xa9llo"),
       "h\xc3\xa9llo",
       0x3BD06310388EBBE4ULL,
       {0, 0, 0, 0, 1, 3, 59}},
      {"VARCHAR(10)",
       TextValue("user-42"),
       "user-42",
       0x397E9D3A76AF7C81ULL,
       {0, 0, 0, 0, 1, 3, 57}},
      {"", IntegerValue(1), "1", 0xB7B41276360564D4ULL, {0, 1, 2, 2, 5, 11, 183}},
      {"", TextValue("1"), "1", 0xB7B41276360564D4ULL, {0, 1, 2, 2, 5, 11, 183}},
      {"", RealValue(-0.0), "-0", 0x8E56E730C4927269ULL, {0, 1, 1, 2, 4, 8, 142}},
      {"BLOB",
       BlobValue(std::string("\x00\x01\xff", 3)),
       std::string("\x00\x01\xff", 3),
       0x53C61D8D17B3D6D6ULL,
       {0, 0, 0, 1, 2, 5, 83}},
      {"NUMERIC", TextValue("1.5"), "1.5", 0x7599CF6A858394DDULL, {0, 0, 1, 1, 3, 7, 117}},
      {"NUMERIC", RealValue(2.0), "2", 0x6021B5621680598BULL, {0, 0, 1, 1, 3, 6, 96}},
      {"DECIMAL(10,2)",
       TextValue("19.99"),
       "19.989999999999998",
       0xA62F4F00C21E8658ULL,
       {0, 1, 1, 2, 5, 10, 166}},
      {"DATE",
       TextValue("2024-02-29"),
       "2024-02-29",
       0x3CCEAF535F36A888ULL,
       {0, 0, 0, 0, 1, 3, 60}},
  };
}

TEST(RoutingTest, GoldenVectors) {
  for (const Golden& g : GoldenVectors()) {
    SCOPED_TRACE(absl::StrCat(g.declared_type, " ", Describe(g.input)));
    Affinity affinity = AffinityOf(g.declared_type);
    EXPECT_EQ(CanonicalText(ApplyAffinity(g.input, affinity)), g.canonical);
    EXPECT_EQ(XXH64(g.canonical.data(), g.canonical.size(), 0), g.hash);
    EXPECT_EQ(RoutingHash(g.input, affinity), g.hash);
    for (int k = 0; k < 7; ++k) EXPECT_EQ(ShardIndex(g.hash, kShardCounts[k]), g.index[k]);
  }
}

// --- ShardIndex properties.
// -----------------------------------------------------------------------

// The first hash owned by shard `i` of `n`: ceil(i * 2^64 / n).
uint64_t FirstHashOf(int i, int n) {
  absl::uint128 start = (absl::uint128(static_cast<uint64_t>(i)) << 64) + (n - 1);
  return absl::Uint128Low64(start / n);
}

TEST(RoutingTest, ShardIndexRangesAreContiguous) {
  for (int n : {1, 2, 3, 4, 5, 7, 8, 16, 100, 255, 256}) {
    SCOPED_TRACE(n);
    EXPECT_EQ(ShardIndex(0, n), 0);
    EXPECT_EQ(ShardIndex(~uint64_t{0}, n), n - 1);
    for (int i = 1; i < n; ++i) {
      uint64_t first = FirstHashOf(i, n);
      EXPECT_EQ(ShardIndex(first, n), i);
      EXPECT_EQ(ShardIndex(first - 1, n), i - 1);
    }
  }
  EXPECT_EQ(ShardIndex(0x8000000000000000ULL, 2), 1);
  EXPECT_EQ(ShardIndex(0x7FFFFFFFFFFFFFFFULL, 2), 0);
  EXPECT_EQ(ShardIndex(0x5555555555555555ULL, 3), 0);
  EXPECT_EQ(ShardIndex(0x5555555555555556ULL, 3), 1);
}

TEST(RoutingTest, ShardIndexIsMonotoneAndSplitsInTwo) {
  std::mt19937_64 rng(42);
  std::vector<uint64_t> hashes(20000);
  for (uint64_t& h : hashes) h = rng();
  std::sort(hashes.begin(), hashes.end());
  for (int n = 1; n <= 256; ++n) {
    int previous = 0;
    for (uint64_t h : hashes) {
      int index = ShardIndex(h, n);
      ASSERT_GE(index, previous) << n;
      ASSERT_LT(index, n);
      previous = index;
      if (n <= 128) {
        ASSERT_EQ(ShardIndex(h, 2 * n) / 2, index) << h << " n=" << n;
      }
    }
  }
}

TEST(RoutingTest, KeysSpreadEvenly) {
  constexpr int kShards = 16;
  constexpr int kKeys = 100000;
  std::mt19937_64 rng(1234);
  int counts[kShards] = {};
  for (int i = 0; i < kKeys; ++i) {
    Value key = (i % 2 == 0) ? IntegerValue(static_cast<int64_t>(rng() % 1000000000))
                             : TextValue(absl::StrCat("user-", rng() % 1000000000));
    ++counts[ShardIndex(RoutingHash(key, Affinity::kInteger), kShards)];
  }
  // Sequential integer keys too.
  int sequential[kShards] = {};
  for (int i = 0; i < kKeys; ++i)
    ++sequential[ShardIndex(RoutingHash(IntegerValue(i), Affinity::kInteger), kShards)];
  const double mean = static_cast<double>(kKeys) / kShards;
  for (int s = 0; s < kShards; ++s) {
    EXPECT_NEAR(counts[s], mean, mean * 0.10) << "shard " << s;
    EXPECT_NEAR(sequential[s], mean, mean * 0.10) << "shard " << s;
  }
}

}  // namespace
}  // namespace conductor::routing
