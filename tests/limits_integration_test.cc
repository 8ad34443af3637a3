// Limits of the public API end to end (docs/data-path.md#limits): oversized
// and malformed requests against a real conductor and three storage nodes
// started with small limits. Every one is answered with a clear status, the
// processes keep serving, and the table's data is unchanged (a checksum
// taken by paging through it before and after).
#include <chrono>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/errors.h"
#include "common/sqlite.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/codegen/client_unary_call.h"
#include "grpcpp/impl/codegen/rpc_method.h"
#include "gtest/gtest.h"
#include "tests/harness/cluster.h"

namespace conductor {
namespace {

using testing::TestCluster;
namespace v1 = ::conductor::v1;

constexpr int kMaxSqlBytes = 1 << 20;
constexpr int kMaxRequestBytes = 4 << 20;
constexpr int kMaxParams = 1000;
constexpr int kMaxRows = 500;
constexpr int kDefaultDeadlineMs = 700;
constexpr int kRows = 1200;

class LimitsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    TestCluster::Options options;
    options.extra_conductor_flags = {
        absl::StrCat("--max_sql_bytes=", kMaxSqlBytes),
        absl::StrCat("--max_request_bytes=", kMaxRequestBytes),
        absl::StrCat("--max_params=", kMaxParams),
        absl::StrCat("--max_response_rows=", kMaxRows),
        absl::StrCat("--default_deadline_ms=", kDefaultDeadlineMs),
        // Room for the deliberately slow statement of the deadline test.
        "--storage_timeout_ms=30000",
    };
    auto cluster = TestCluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = cluster->release();
    ASSERT_TRUE(Run("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, v BLOB) "
                    "/* SHARDS=4 */")
                    .ok());
    ASSERT_TRUE(Run("CREATE TABLE one (id INTEGER PRIMARY KEY, name TEXT) /* SHARDS=1 */").ok());
    // 300 rows (900 parameters) per statement, under --max_params.
    for (int first = 0; first < kRows; first += 300) {
      std::vector<std::string> rows;
      std::vector<Value> params;
      for (int id = first; id < first + 300; ++id) {
        rows.push_back("(?, ?, ?)");
        params.push_back(IntegerValue(id));
        params.push_back(TextValue(absl::StrCat("item-", id, id % 7 == 0 ? "-Zoë" : "")));
        params.push_back(BlobValue(std::string(id % 5, static_cast<char>(id % 256))));
      }
      grpc::Status status =
          Run(absl::StrCat("INSERT INTO items (id, name, v) VALUES ", absl::StrJoin(rows, ", ")),
              params);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
    std::vector<std::string> rows;
    for (int id = 0; id < kMaxRows + 100; ++id) rows.push_back(absl::StrCat("(", id, ", 'x')"));
    ASSERT_TRUE(Run(absl::StrCat("INSERT INTO one VALUES ", absl::StrJoin(rows, ", "))).ok());
    checksum_before_ = Checksum();
    ASSERT_FALSE(checksum_before_.empty());
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  // Every test ends with the cluster serving (a scatter read reaches every
  // node) and the data unchanged.
  void TearDown() override {
    v1::ExecuteResponse response;
    grpc::Status status = Run("SELECT count(*) FROM items", {}, &response);
    ASSERT_TRUE(status.ok()) << "the cluster stopped serving: " << status.error_message();
    EXPECT_EQ(response.result_sets(0).rows(0).values(0).integer(), kRows);
    EXPECT_EQ(Checksum(), checksum_before_) << "the data changed";
    v1::ExecuteResponse tables;
    ASSERT_TRUE(Run("SHOW TABLES", {}, &tables).ok());
    EXPECT_EQ(tables.result_sets(0).rows_size(), 2) << "a refused CREATE TABLE left a table";
  }

  // deadline_ms < 0: the call carries no deadline.
  static grpc::Status Run(const std::string& sql, const std::vector<Value>& params = {},
                          v1::ExecuteResponse* response = nullptr, int deadline_ms = 30000) {
    grpc::ClientContext context;
    if (deadline_ms >= 0) {
      context.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::milliseconds(deadline_ms));
    }
    v1::ExecuteRequest request;
    request.set_sql(sql);
    for (const auto& p : params) *request.add_params() = p;
    v1::ExecuteResponse ignored;
    return cluster_->ops().Execute(&context, request, response ? response : &ignored);
  }

  // Every row of `items`, paged by key under --max_response_rows, rendered
  // into one string (the way a client pages through a large table).
  static std::string Checksum() {
    std::string all;
    int64_t last = -1;
    while (true) {
      v1::ExecuteResponse response;
      grpc::Status status =
          Run("SELECT id, name, hex(v) FROM items WHERE id > ? ORDER BY id LIMIT ?",
              {IntegerValue(last), IntegerValue(kMaxRows - 100)}, &response);
      if (!status.ok()) {
        ADD_FAILURE() << "paging: " << status.error_message();
        return "";
      }
      const v1::ResultSet& set = response.result_sets(0);
      if (set.rows_size() == 0) break;
      for (const auto& row : set.rows()) {
        absl::StrAppend(&all, row.values(0).integer(), "|", row.values(1).text(), "|",
                        row.values(2).text(), "\n");
        last = row.values(0).integer();
      }
    }
    return absl::StrCat(std::hash<std::string>()(all), ":", all.size());
  }

  static void ExpectError(const grpc::Status& status, grpc::StatusCode code,
                          const std::string& reason) {
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_EQ(ErrorReason(FromGrpcStatus(status)), reason) << status.error_message();
    EXPECT_FALSE(status.error_message().empty());
  }

  // Sends `serialized` as the request of TableOps method `method` as raw
  // bytes, bypassing the client's own serialization (for bytes a `string`
  // field may not hold).
  static grpc::Status RawCall(const std::string& method, const std::string& serialized,
                              std::string* response_bytes = nullptr) {
    auto channel =
        grpc::CreateChannel(cluster_->conductor_address(), grpc::InsecureChannelCredentials());
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::Slice slice(serialized);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    const std::string path = "/conductor.v1.TableOps/" + method;
    grpc::Status status = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
        channel.get(),
        grpc::internal::RpcMethod(path.c_str(), grpc::internal::RpcMethod::NORMAL_RPC), &context,
        request, &response);
    if (status.ok() && response_bytes != nullptr) {
      std::vector<grpc::Slice> slices;
      (void)response.Dump(&slices);
      response_bytes->clear();
      for (const auto& s : slices) response_bytes->append(s.begin(), s.end());
    }
    return status;
  }

  // Field 1 (`sql` of ExecuteRequest, `table` of DescribeTableRequest…) as a
  // length-delimited field holding `bytes`, whatever they are.
  static std::string StringField1(const std::string& bytes) {
    std::string out = "\x0a";
    size_t n = bytes.size();
    do {
      char byte = static_cast<char>(n & 0x7f);
      n >>= 7;
      if (n != 0) byte = static_cast<char>(byte | 0x80);
      out.push_back(byte);
    } while (n != 0);
    return out + bytes;
  }

  static TestCluster* cluster_;
  static std::string checksum_before_;
};

TestCluster* LimitsTest::cluster_ = nullptr;
std::string LimitsTest::checksum_before_;

TEST_F(LimitsTest, SqlLongerThanMaxSqlBytesIsRefusedNamingTheLimitAndTheSize) {
  const std::string padding(kMaxSqlBytes, ' ');
  const std::string select = "SELECT count(*) FROM items" + padding;
  grpc::Status status = Run(select);
  ExpectError(status, grpc::StatusCode::INVALID_ARGUMENT, reason::kRequestTooLarge);
  EXPECT_NE(status.error_message().find(absl::StrCat(select.size(), " bytes")), std::string::npos)
      << status.error_message();
  EXPECT_NE(status.error_message().find(absl::StrCat("limit is ", kMaxSqlBytes)), std::string::npos)
      << status.error_message();
  EXPECT_NE(status.error_message().find("--max_sql_bytes"), std::string::npos);

  // A write is refused before anything happens.
  std::vector<std::string> rows;
  for (int id = 100000; rows.size() * 40 < kMaxSqlBytes + 1000; ++id) {
    rows.push_back(absl::StrCat("(", id, ", 'a name that is rather long ok')"));
  }
  ExpectError(Run(absl::StrCat("INSERT INTO items (id, name) VALUES ", absl::StrJoin(rows, ", "))),
              grpc::StatusCode::INVALID_ARGUMENT, reason::kRequestTooLarge);
  // CREATE TABLE goes through the same door.
  ExpectError(Run("CREATE TABLE big (id INTEGER PRIMARY KEY)" + padding),
              grpc::StatusCode::INVALID_ARGUMENT, reason::kRequestTooLarge);
  // So does the typed CreateTable.
  v1::CreateTableRequest create;
  create.set_sql("CREATE TABLE big (id INTEGER PRIMARY KEY)" + padding);
  v1::CreateTableResponse created;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  ExpectError(cluster_->ops().CreateTable(&context, create, &created),
              grpc::StatusCode::INVALID_ARGUMENT, reason::kRequestTooLarge);
  // Just under the limit is fine.
  EXPECT_TRUE(Run("SELECT count(*) FROM items" + padding.substr(100)).ok());
}

TEST_F(LimitsTest, RequestLargerThanMaxRequestBytesIsRefusedByGrpc) {
  // gRPC itself refuses the message before the conductor sees it: no ErrorInfo.
  grpc::Status status = Run("SELECT 1 /*" + std::string(kMaxRequestBytes, 'x') + "*/");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_NE(status.error_message().find("Received message larger than max"), std::string::npos)
      << status.error_message();
  EXPECT_EQ(ErrorReason(FromGrpcStatus(status)), "");
  // Large parameters count against it too.
  status = Run("SELECT length(?)", {BlobValue(std::string(kMaxRequestBytes + 10, 'b'))});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  // Under it, a large parameter is fine.
  v1::ExecuteResponse response;
  ASSERT_TRUE(Run("SELECT length(?)", {BlobValue(std::string(2 << 20, 'b'))}, &response).ok());
  EXPECT_EQ(response.result_sets(0).rows(0).values(0).integer(), 2 << 20);
}

TEST_F(LimitsTest, ThousandsOfParametersAreRefused) {
  std::vector<std::string> marks;
  std::vector<Value> params;
  for (int i = 0; i < 5000; ++i) {
    marks.push_back("?");
    params.push_back(IntegerValue(i));
  }
  grpc::Status status = Run(
      absl::StrCat("SELECT id FROM items WHERE id IN (", absl::StrJoin(marks, ", "), ")"), params);
  ExpectError(status, grpc::StatusCode::INVALID_ARGUMENT, reason::kRequestTooLarge);
  EXPECT_NE(status.error_message().find("5000 parameters"), std::string::npos)
      << status.error_message();
  EXPECT_NE(status.error_message().find("--max_params"), std::string::npos);

  // The same for writes: a bulk INSERT of 2500 rows (5000 parameters)
  // writes nothing, and too many params sent with few markers.
  std::vector<std::string> rows;
  std::vector<Value> values;
  for (int i = 0; i < 2500; ++i) {
    rows.push_back("(?, ?)");
    values.push_back(IntegerValue(50000 + i));
    values.push_back(TextValue("new"));
  }
  ExpectError(
      Run(absl::StrCat("INSERT INTO items (id, name) VALUES ", absl::StrJoin(rows, ", ")), values),
      grpc::StatusCode::INVALID_ARGUMENT, reason::kRequestTooLarge);
  ExpectError(Run("DELETE FROM items WHERE id = ?", params), grpc::StatusCode::INVALID_ARGUMENT,
              reason::kRequestTooLarge);
  // A parameter number above the limit needs as many params: refused by
  // number, before the count is compared.
  ExpectError(Run(absl::StrCat("SELECT id FROM items WHERE id = ?", kMaxParams + 1)),
              grpc::StatusCode::INVALID_ARGUMENT, reason::kRequestTooLarge);
  // SQLite's own ceiling stays a syntax error.
  ExpectError(Run("SELECT id FROM items WHERE id = ?40000"), grpc::StatusCode::INVALID_ARGUMENT,
              reason::kSqlSyntax);

  // At the limit it works.
  marks.resize(kMaxParams);
  params.resize(kMaxParams);
  v1::ExecuteResponse response;
  status =
      Run(absl::StrCat("SELECT count(*) FROM items WHERE id IN (", absl::StrJoin(marks, ", "), ")"),
          params, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.result_sets(0).rows(0).values(0).integer(), kMaxParams);
}

TEST_F(LimitsTest, DeepNestingIsInvalidArgumentAndNeverACrash) {
  const int kDeep = 100000;
  const std::string open(kDeep, '('), close(kDeep, ')');
  struct Case {
    std::string what;
    std::string sql;
  };
  std::vector<Case> cases = {
      {"parentheses, no table", "SELECT " + open + "1" + close},
      {"parentheses in WHERE", "SELECT id FROM items WHERE " + open + "id = 1" + close},
      {"parentheses in UPDATE", "UPDATE items SET name = " + open + "'x'" + close},
      {"parentheses in CREATE TABLE",
       "CREATE TABLE deep (id INTEGER PRIMARY KEY CHECK " + open + "id > 0" + close + ")"},
      {"unclosed parentheses", "SELECT " + open + "1"},
      {"parentheses in EXPLAIN", "EXPLAIN SELECT id FROM items WHERE " + open + "id" + close},
  };
  std::string subqueries = "SELECT id FROM items WHERE id IN (SELECT id FROM items WHERE id IN (";
  for (int i = 0; i < 20000; ++i) subqueries += "SELECT id FROM items WHERE id IN (";
  subqueries += "1" + std::string(20002, ')');
  cases.push_back({"nested subqueries", subqueries});
  std::string unary = "SELECT ";
  for (int i = 0; i < kDeep; ++i) unary += "NOT ";
  cases.push_back({"unary operators, no table", unary + "1"});
  cases.push_back(
      {"unary operators in WHERE", "SELECT id FROM items WHERE " + unary.substr(7) + "1"});
  std::string minus = "SELECT ";
  for (int i = 0; i < kDeep; ++i) minus += "- ";
  cases.push_back({"unary minus", minus + "1"});
  std::string cases_sql = "SELECT ";
  for (int i = 0; i < 20000; ++i) cases_sql += "CASE WHEN 1 THEN ";
  cases_sql += "1";
  for (int i = 0; i < 20000; ++i) cases_sql += " END";
  cases.push_back({"nested CASE", cases_sql + " FROM items"});
  std::string calls = "SELECT ";
  for (int i = 0; i < 50000; ++i) calls += "abs(";
  cases.push_back({"nested function calls", calls + "1" + std::string(50000, ')') + " FROM items"});

  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ASSERT_LT(c.sql.size(), static_cast<size_t>(kMaxSqlBytes)) << "the SQL length limit would hit";
    grpc::Status status = Run(c.sql);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_NE(ErrorReason(FromGrpcStatus(status)), "") << status.error_message();
    EXPECT_LT(status.error_message().size(), 2000u) << "the message quotes the whole statement";
    std::cerr << c.what << ": " << ErrorReason(FromGrpcStatus(status)) << " "
              << status.error_message().substr(0, 200) << "\n";
  }
  // Moderate nesting is fine (SQLite's own parser stops near 100 levels:
  // "parser stack overflow").
  v1::ExecuteResponse response;
  grpc::Status status = Run(
      "SELECT count(*) FROM items WHERE " + std::string(40, '(') + "id >= 0" + std::string(40, ')'),
      {}, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.result_sets(0).rows(0).values(0).integer(), kRows);
}

TEST_F(LimitsTest, InvalidUtf8InAStringFieldIsInvalidArgument) {
  // Raw bytes that are not UTF-8 in ExecuteRequest.sql (a proto3 string):
  // the server's protobuf parser refuses the message before the conductor
  // sees the call, and the server's interceptor answers INVALID_ARGUMENT.
  for (const std::string& sql :
       {std::string("SELECT \"\xff\xfe\" FROM items"), std::string("SELECT * FROM \xc3\x28"),
        std::string("CREATE TABLE \"t\xed\xa0\x80\" (id INTEGER PRIMARY KEY)"),
        std::string("SELECT 'overlong \xc0\xaf'")}) {
    grpc::Status status = RawCall("Execute", StringField1(sql));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_EQ(ErrorReason(FromGrpcStatus(status)), reason::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(status.error_message(), "not UTF-8")) << status.error_message();
  }
  // The same for a typed request's name (DescribeTableRequest.table).
  grpc::Status status = RawCall("DescribeTable", StringField1("items\xff"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  // Bytes that are no protobuf message at all (a field with a length past the end).
  status = RawCall("Execute", std::string("\x0a\x7f\x41", 3));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_EQ(ErrorReason(FromGrpcStatus(status)), reason::kInvalidArgument);
  // A well-formed raw request through the same path works.
  std::string response;
  status = RawCall("Execute", StringField1("SELECT count(*) FROM items"), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  v1::ExecuteResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(response));
  EXPECT_EQ(parsed.result_sets(0).rows(0).values(0).integer(), kRows);
}

TEST_F(LimitsTest, UnacceptableCharactersInIdentifiersAreInvalidArgument) {
  // Valid UTF-8, but not allowed in a name: control characters, NUL.
  ExpectError(Run("CREATE TABLE \"bad\x01name\" (id INTEGER PRIMARY KEY)"),
              grpc::StatusCode::INVALID_ARGUMENT, reason::kSqlSyntax);
  ExpectError(Run("CREATE TABLE ok (\"col\x1b\" TEXT, id INTEGER PRIMARY KEY)"),
              grpc::StatusCode::INVALID_ARGUMENT, reason::kSqlSyntax);
  ExpectError(Run(std::string("SELECT id FROM \"items\0\"", 22)),
              grpc::StatusCode::INVALID_ARGUMENT, reason::kSqlSyntax);
  ExpectError(Run("CREATE INDEX \"i\x7f\" ON items (name)"), grpc::StatusCode::INVALID_ARGUMENT,
              reason::kSqlSyntax);
  v1::DescribeTableRequest describe;
  describe.set_table("items\x01");
  v1::DescribeTableResponse described;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  ExpectError(cluster_->ops().DescribeTable(&context, describe, &described),
              grpc::StatusCode::INVALID_ARGUMENT, reason::kInvalidArgument);
  // A noncharacter (U+FFFF) is valid UTF-8: an unknown column, not a crash.
  ExpectError(Run("SELECT [\xef\xbf\xbf] FROM items WHERE id = 1"),
              grpc::StatusCode::INVALID_ARGUMENT, reason::kSqlError);
  // TEXT that is not UTF-8 (made by CAST of a blob) cannot travel in a
  // proto3 string: asking for it is INVALID_ARGUMENT naming the remedy, from
  // the conductor's own SQLite and from a storage node alike; as a BLOB it
  // travels.
  v1::ExecuteResponse cast;
  ExpectError(Run("SELECT CAST(x'ff41' AS TEXT)", {}, &cast), grpc::StatusCode::INVALID_ARGUMENT,
              reason::kSqlError);
  ExpectError(Run("SELECT CAST(x'fe' AS TEXT), id FROM items WHERE id = 7", {}, &cast),
              grpc::StatusCode::INVALID_ARGUMENT, reason::kSqlError);
  grpc::Status status =
      Run("SELECT CAST(CAST(x'fe' AS TEXT) AS BLOB), id FROM items WHERE id = 7", {}, &cast);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(cast.result_sets(0).rows(0).values(0).blob(), "\xfe");
  // Nor can such a value be inserted (the conductor evaluates VALUES).
  ExpectError(Run("INSERT INTO items (id, name) VALUES (999999, CAST(x'ff' AS TEXT))"),
              grpc::StatusCode::INVALID_ARGUMENT, reason::kSqlError);
  // Bytes that are not UTF-8 can still travel as a blob parameter.
  v1::ExecuteResponse response;
  ASSERT_TRUE(
      Run("SELECT count(*) FROM items WHERE v = ?", {BlobValue("\xff\xfe")}, &response).ok());
}

TEST_F(LimitsTest, MoreRowsThanMaxResponseRowsAskForLimitOrPaging) {
  struct Case {
    std::string what;
    std::string sql;
  };
  const std::vector<Case> cases = {
      {"scatter, concatenated", "SELECT * FROM items"},
      {"scatter, LIMIT above the limit", "SELECT id FROM items LIMIT 100000"},
      {"scatter, sorted", "SELECT id, name FROM items ORDER BY name DESC"},
      {"scatter, replica (DISTINCT)", "SELECT DISTINCT name FROM items"},
      {"scatter, aggregate per group", "SELECT id, count(*) FROM items GROUP BY id"},
      {"one shard, pass-through", "SELECT * FROM one"},
      {"one shard, sorted", "SELECT * FROM one ORDER BY id DESC"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    grpc::Status status = Run(c.sql);
    ExpectError(status, grpc::StatusCode::RESOURCE_EXHAUSTED, reason::kResultTooLarge);
    EXPECT_NE(status.error_message().find(absl::StrCat("more than ", kMaxRows, " rows")),
              std::string::npos)
        << status.error_message();
    EXPECT_NE(status.error_message().find("LIMIT"), std::string::npos) << status.error_message();
    EXPECT_NE(status.error_message().find("page"), std::string::npos) << status.error_message();
  }
  // A scatter asks no shard for more rows than it takes to see the excess.
  v1::ExecuteResponse explained;
  ASSERT_TRUE(Run("EXPLAIN SELECT * FROM items", {}, &explained).ok());
  for (const auto& row : explained.result_sets(0).rows()) {
    EXPECT_NE(row.values(3).text().find(absl::StrCat("LIMIT ", kMaxRows + 1)), std::string::npos)
        << row.values(3).text();
  }
  // At the limit, or with OFFSET / LIMIT bringing it under, it works.
  v1::ExecuteResponse response;
  for (const std::string& sql :
       {absl::StrCat("SELECT id FROM items LIMIT ", kMaxRows),
        absl::StrCat("SELECT id FROM items ORDER BY id LIMIT ", kMaxRows, " OFFSET 1000"),
        std::string("SELECT id FROM items LIMIT -1 OFFSET 1000"),
        std::string("SELECT name, count(*) FROM items GROUP BY name HAVING count(*) > 1"),
        std::string("SELECT count(*) FROM items"),
        std::string("SELECT * FROM one WHERE id < 10")}) {
    grpc::Status status = Run(sql, {}, &response);
    EXPECT_TRUE(status.ok()) << sql << ": " << status.error_message();
  }
  ASSERT_TRUE(
      Run(absl::StrCat("SELECT id FROM items WHERE id >= 0 LIMIT ", kMaxRows), {}, &response).ok());
  EXPECT_EQ(response.result_sets(0).rows_size(), kMaxRows);
}

TEST_F(LimitsTest, DefaultDeadlineAppliesWhenTheClientSendsNone) {
  // Slow on every node (about 2 s of CPU in all, several times the default
  // deadline): over 1 MB of hex per row.
  const std::string slow =
      "SELECT count(*) FROM items WHERE length(hex(randomblob(600000 + id))) > 0";
  const auto start = std::chrono::steady_clock::now();
  grpc::Status status = Run(slow, {}, nullptr, /*deadline_ms=*/-1);
  const auto took = std::chrono::steady_clock::now() - start;
  ExpectError(status, grpc::StatusCode::DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED");
  EXPECT_LT(took, std::chrono::milliseconds(kDefaultDeadlineMs + 5000))
      << "the storage nodes were not interrupted at the default deadline";
  // A quick statement without a deadline is unaffected, and the client's own
  // deadline wins over the default.
  EXPECT_TRUE(Run("SELECT count(*) FROM items", {}, nullptr, -1).ok());
  v1::ExecuteResponse response;
  status = Run(slow, {}, &response, 60000);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.result_sets(0).rows(0).values(0).integer(), kRows);
}

}  // namespace
}  // namespace conductor
