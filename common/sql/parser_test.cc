#include "common/sql/parser.h"

#include <limits>
#include <string>

#include "common/errors.h"
#include "gtest/gtest.h"

namespace conductor::sql {
namespace {

ParsedStatement MustParse(absl::string_view sql) {
  absl::StatusOr<ParsedStatement> parsed = ParseStatement(sql);
  EXPECT_TRUE(parsed.ok()) << sql << " → " << parsed.status();
  return parsed.ok() ? *std::move(parsed) : ParsedStatement{};
}

// Expects `sql` to fail with `code`, `reason` and a message containing `fragment`.
void ExpectError(absl::string_view sql, absl::StatusCode code, absl::string_view error_reason,
                 absl::string_view fragment) {
  absl::StatusOr<ParsedStatement> parsed = ParseStatement(sql);
  ASSERT_FALSE(parsed.ok()) << sql << " parsed as " << StatementKindName(parsed->kind);
  EXPECT_EQ(parsed.status().code(), code) << sql << " → " << parsed.status();
  EXPECT_EQ(ErrorReason(parsed.status()), error_reason) << sql << " → " << parsed.status();
  EXPECT_NE(parsed.status().message().find(fragment), absl::string_view::npos)
      << sql << " → " << parsed.status();
}

void ExpectSyntax(absl::string_view sql, absl::string_view fragment) {
  ExpectError(sql, absl::StatusCode::kInvalidArgument, reason::kSqlSyntax, fragment);
}

void ExpectUnsupported(absl::string_view sql, absl::string_view fragment) {
  ExpectError(sql, absl::StatusCode::kUnimplemented, reason::kUnsupportedStatement, fragment);
}

TEST(ParserTest, CreateTable) {
  ParsedStatement s = MustParse("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)");
  EXPECT_EQ(s.kind, StatementKind::kCreateTable);
  EXPECT_EQ(s.table, "orders");
  EXPECT_FALSE(s.if_not_exists);
  EXPECT_FALSE(s.shards_hint.has_value());

  s = MustParse(
      "create table if not exists \"My \"\"T\"\"\" (a primary key) without rowid, strict;");
  EXPECT_EQ(s.table, "My \"T\"");
  EXPECT_TRUE(s.if_not_exists);

  s = MustParse("CREATE TABLE main.[t 1] (a PRIMARY KEY) STRICT");
  EXPECT_EQ(s.table, "t 1");
  s = MustParse("CREATE TABLE `t` (a PRIMARY KEY, CHECK (a > (1)))");
  EXPECT_EQ(s.table, "t");
}

TEST(ParserTest, ShardsHint) {
  EXPECT_EQ(MustParse("CREATE TABLE t (a PRIMARY KEY) /* SHARDS=8 */").shards_hint, 8);
  EXPECT_EQ(MustParse("CREATE TABLE t (a PRIMARY KEY) /*shards = 4*/").shards_hint, 4);
  EXPECT_EQ(MustParse("CREATE /* Shards=\t3 please */ TABLE t (a PRIMARY KEY)").shards_hint, 3);
  EXPECT_EQ(MustParse("CREATE TABLE t (a PRIMARY KEY); /* SHARDS=2 */").shards_hint, 2);
  EXPECT_EQ(MustParse("CREATE TABLE t (a PRIMARY KEY) /* SHARDS=-1 */").shards_hint, -1);
  // Prose mentioning shards is not a hint; neither is a line comment nor a
  // longer word.
  EXPECT_FALSE(MustParse("CREATE TABLE t (a PRIMARY KEY) /* many shards here */").shards_hint);
  EXPECT_FALSE(MustParse("CREATE TABLE t (a PRIMARY KEY) -- SHARDS=4").shards_hint);
  EXPECT_FALSE(MustParse("CREATE TABLE t (a PRIMARY KEY) /* NUMSHARDS=4 */").shards_hint);
  EXPECT_FALSE(MustParse("CREATE TABLE t (a PRIMARY KEY, b DEFAULT '/* SHARDS=4 */')").shards_hint);
  // Agreeing repeats are fine.
  EXPECT_EQ(MustParse("CREATE TABLE t (a PRIMARY KEY) /* SHARDS=2 */ /* SHARDS=2 */").shards_hint,
            2);

  ExpectSyntax("CREATE TABLE t (a PRIMARY KEY) /* SHARDS=many */", "invalid SHARDS hint");
  ExpectSyntax("CREATE TABLE t (a PRIMARY KEY) /* SHARDS= */", "SHARDS=<n>");
  ExpectSyntax("CREATE TABLE t (a PRIMARY KEY) /* SHARDS=4x */", "integer");
  ExpectSyntax("CREATE TABLE t (a PRIMARY KEY) /* SHARDS=1.5 */", "integer");
  ExpectSyntax("CREATE TABLE t (a PRIMARY KEY) /* SHARDS=99999999999999999999 */", "out of range");
  ExpectSyntax("CREATE TABLE t (a PRIMARY KEY) /* SHARDS=2 */ /* SHARDS=3 */", "disagrees");
}

TEST(ParserTest, CreateTableRefusals) {
  ExpectUnsupported("CREATE TEMP TABLE t (a PRIMARY KEY)", "CREATE TEMP is not supported");
  ExpectUnsupported("CREATE TEMPORARY TABLE t (a PRIMARY KEY)", "not supported");
  ExpectUnsupported("CREATE TABLE t AS SELECT 1", "AS SELECT is not supported");
  ExpectUnsupported("CREATE VIEW v AS SELECT 1", "CREATE VIEW is not supported");
  ExpectUnsupported("CREATE VIRTUAL TABLE v USING fts5(a)", "CREATE VIRTUAL is not supported");
  ExpectUnsupported("CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END",
                    "CREATE TRIGGER is not supported");
  ExpectUnsupported("CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END", "TRIGGER");
  ExpectSyntax("CREATE TABLE t", "at end of statement (offset 14): expected \"(\"");
  ExpectSyntax("CREATE TABLE (a PRIMARY KEY)", "near \"(\" (offset 13): expected a table name");
  ExpectSyntax("CREATE TABLE t (a PRIMARY KEY", "expected \")\"");
  ExpectSyntax("CREATE TABLE t (a PRIMARY KEY) WITHOUT", "expected ROWID");
  ExpectSyntax("CREATE TABLE t (a PRIMARY KEY) FOO", "expected WITHOUT ROWID, STRICT");
  ExpectSyntax("CREATE TABLE IF EXISTS t (a)", "expected NOT");
  ExpectSyntax("CREATE SEQUENCE s", "expected TABLE, INDEX or UNIQUE INDEX");
}

TEST(ParserTest, Names) {
  ExpectSyntax("CREATE TABLE temp.t (a PRIMARY KEY)", "schema \"temp\" is not supported");
  ExpectSyntax("DROP TABLE other.t", "schema \"other\"");
  EXPECT_EQ(MustParse("DROP TABLE MAIN.t").table, "t");
  ExpectSyntax("CREATE TABLE sqlite_stuff (a PRIMARY KEY)", "reserved");
  ExpectSyntax("DROP TABLE SQLITE_master", "names starting with sqlite_ belong to SQLite");
  ExpectSyntax("SELECT * FROM sqlite_master", "reserved");
  ExpectSyntax("CREATE TABLE _VirtualShard (a PRIMARY KEY)", "hidden routing column");
  ExpectSyntax("CREATE TABLE \"\" (a PRIMARY KEY)", "table name is empty");
  ExpectSyntax(absl::StrCat("DROP TABLE \"", std::string(129, 'x'), "\""), "limit is 128");
  ExpectSyntax("DROP TABLE \"a\tb\"", "control character 0x09");
  ExpectSyntax("DROP TABLE \"a\xff\"", "not valid UTF-8");
  ExpectSyntax("DROP TABLE FROM", "near \"FROM\" (offset 11): expected a table name");
  ExpectSyntax("DROP TABLE 1", "expected a table name");
  // Reserved words are fine when quoted; non-reserved keywords are fine bare.
  EXPECT_EQ(MustParse("DROP TABLE \"from\"").table, "from");
  EXPECT_EQ(MustParse("DROP TABLE key").table, "key");
  EXPECT_EQ(MustParse("DROP TABLE 'quoted'").table, "quoted");
  EXPECT_EQ(MustParse("DROP TABLE [ünïcode näme]").table, "ünïcode näme");
}

TEST(ParserTest, ValidateName) {
  EXPECT_TRUE(ValidateName("orders", "table name").ok());
  EXPECT_TRUE(ValidateName("名前 with spaces", "table name").ok());
  EXPECT_TRUE(ValidateName(std::string(128, 'a'), "table name").ok());
  struct Case {
    std::string name;
    const char* fragment;
  };
  for (const Case& c : std::vector<Case>{
           {"", "table name is empty"},
           {std::string(129, 'a'), "129 bytes long"},
           {"sqlite_x", "reserved"},
           {"SQLite_x", "reserved"},
           {"_virtualshard", "hidden routing column"},
           {std::string("a\0b", 3), "control character 0x00"},
           {"a\x7f", "control character 0x7f"},
           {"a\xc2\x85", "control character 0x85"},  // U+0085 NEXT LINE
           {"\xff", "not valid UTF-8"},
           {"\xc0\xaf", "not valid UTF-8"},          // overlong '/'
           {"\xed\xa0\x80", "not valid UTF-8"},      // a surrogate
           {"\xf4\x90\x80\x80", "not valid UTF-8"},  // above U+10FFFF
           {"\xe2\x82", "not valid UTF-8"},          // truncated
           {"\x80", "not valid UTF-8"},              // stray continuation byte
       }) {
    absl::Status status = ValidateName(c.name, "table name");
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.fragment;
    EXPECT_EQ(ErrorReason(status), reason::kInvalidArgument) << c.fragment;
    EXPECT_NE(status.message().find(c.fragment), std::string::npos) << status;
  }
  EXPECT_NE(ValidateName("", "index name").message().find("index name is empty"),
            std::string::npos);
  // Valid multi-byte sequences of every length.
  EXPECT_TRUE(ValidateName("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "column name").ok());
}

TEST(ParserTest, DropTable) {
  ParsedStatement s = MustParse("drop table if exists Orders;");
  EXPECT_EQ(s.kind, StatementKind::kDropTable);
  EXPECT_EQ(s.table, "Orders");
  EXPECT_TRUE(s.if_exists);
  s = MustParse("DROP TABLE \"x y\"");
  EXPECT_FALSE(s.if_exists);
  EXPECT_EQ(s.table, "x y");
  ExpectSyntax("DROP TABLE t CASCADE", "near \"CASCADE\" (offset 13): expected end of statement");
  ExpectSyntax("DROP TABLE IF t", "expected EXISTS");
  ExpectUnsupported("DROP VIEW v", "DROP VIEW is not supported");
  ExpectSyntax("DROP DATABASE d", "expected TABLE or INDEX");
}

TEST(ParserTest, AlterTable) {
  ParsedStatement s = MustParse("ALTER TABLE t RENAME TO \"u v\"");
  EXPECT_EQ(s.kind, StatementKind::kRenameTable);
  EXPECT_EQ(s.table, "t");
  EXPECT_EQ(s.new_name, "u v");

  s = MustParse("alter table main.t modify block_size 250;");
  EXPECT_EQ(s.kind, StatementKind::kSetBlockSize);
  EXPECT_EQ(s.table, "t");
  EXPECT_EQ(s.number, 250);
  EXPECT_EQ(MustParse("ALTER TABLE t MODIFY BLOCK_SIZE = 7").number, 7);
  EXPECT_EQ(MustParse("ALTER TABLE t MODIFY BLOCK_SIZE -3").number, -3);  // range: caller's job
  EXPECT_EQ(MustParse("ALTER TABLE t MODIFY BLOCK_SIZE 0x10").number, 16);

  const char* supports = "ALTER TABLE supports RENAME TO <name> and MODIFY BLOCK_SIZE <n>";
  ExpectUnsupported("ALTER TABLE t ADD COLUMN c INT",
                    "ALTER TABLE ADD COLUMN is not supported; ALTER TABLE supports RENAME TO");
  ExpectUnsupported("ALTER TABLE t ADD c INT", supports);
  ExpectUnsupported("ALTER TABLE t DROP COLUMN c", "ALTER TABLE DROP COLUMN is not supported");
  ExpectUnsupported("ALTER TABLE t RENAME COLUMN a TO b", "RENAME COLUMN is not supported");
  ExpectUnsupported("ALTER TABLE t RENAME a TO b", "RENAME COLUMN is not supported");
  ExpectUnsupported("ALTER TABLE t MODIFY c TEXT", "type");
  ExpectUnsupported("ALTER TABLE t ALTER COLUMN c TYPE TEXT", "type");
  ExpectUnsupported("ALTER TABLE t ADD PRIMARY KEY (a)", "primary key");
  ExpectUnsupported("ALTER TABLE t DROP PRIMARY KEY", "primary key");

  ExpectSyntax("ALTER TABLE t MODIFY BLOCK_SIZE 1.5", "expected an integer");
  ExpectSyntax("ALTER TABLE t MODIFY BLOCK_SIZE 1e3", "expected an integer");
  ExpectSyntax("ALTER TABLE t MODIFY BLOCK_SIZE 'ten'", "expected an integer (the block size)");
  ExpectSyntax("ALTER TABLE t MODIFY BLOCK_SIZE", "at end of statement");
  ExpectSyntax("ALTER TABLE t MODIFY BLOCK_SIZE 9223372036854775808", "out of range");
  EXPECT_EQ(MustParse("ALTER TABLE t MODIFY BLOCK_SIZE 9223372036854775807").number,
            std::numeric_limits<int64_t>::max());
  EXPECT_EQ(MustParse("ALTER TABLE t MODIFY BLOCK_SIZE -9223372036854775808").number,
            std::numeric_limits<int64_t>::min());
  ExpectSyntax("ALTER TABLE t MODIFY BLOCK_SIZE 1 2", "expected end of statement");
  ExpectSyntax("ALTER TABLE t RENAME TO", "expected a table name");
  ExpectSyntax("ALTER TABLE t RENAME TO sqlite_u", "reserved");
  ExpectSyntax("ALTER TABLE t OWNER TO bob", "expected RENAME TO <name> or MODIFY BLOCK_SIZE <n>");
  ExpectSyntax("ALTER INDEX i RENAME TO j", "expected TABLE");
}

TEST(ParserTest, ShowAndDescribe) {
  EXPECT_EQ(MustParse("SHOW TABLES").kind, StatementKind::kShowTables);
  EXPECT_EQ(MustParse("  show\n tables ; ").kind, StatementKind::kShowTables);
  ParsedStatement s = MustParse("SHOW INDEXES");
  EXPECT_EQ(s.kind, StatementKind::kShowIndexes);
  EXPECT_EQ(s.table, "");
  s = MustParse("show index from \"T\"");
  EXPECT_EQ(s.kind, StatementKind::kShowIndexes);
  EXPECT_EQ(s.table, "T");
  EXPECT_EQ(MustParse("SHOW INDEXES IN t").table, "t");
  ExpectUnsupported("SHOW DATABASES", "SHOW supports TABLES and INDEXES");
  ExpectSyntax("SHOW", "expected TABLES or INDEXES");
  ExpectSyntax("SHOW TABLES LIKE 'x'", "near \"LIKE\"");
  ExpectSyntax("SHOW INDEXES FROM", "expected a table name");

  for (const char* sql : {"DESCRIBE t", "describe table t", "DESC t", "desc TABLE main.t;"}) {
    s = MustParse(sql);
    EXPECT_EQ(s.kind, StatementKind::kDescribeTable) << sql;
    EXPECT_EQ(s.table, "t") << sql;
  }
  ExpectSyntax("DESCRIBE", "expected a table name");
  ExpectSyntax("DESCRIBE t u", "expected end of statement");
}

TEST(ParserTest, TableStats) {
  ParsedStatement s = MustParse("SELECT * FROM TABLE_STATS('orders')");
  EXPECT_EQ(s.kind, StatementKind::kTableStats);
  EXPECT_EQ(s.table, "orders");
  s = MustParse("select *\nfrom table_stats ( 'it''s' ) ;");
  EXPECT_EQ(s.kind, StatementKind::kTableStats);
  EXPECT_EQ(s.table, "it's");
  EXPECT_EQ(MustParse("SELECT * FROM Table_Stats(\"q t\")").table, "q t");
  ExpectUnsupported("SELECT total_rows FROM TABLE_STATS('t')",
                    "TABLE_STATS supports only SELECT * FROM TABLE_STATS('<table>')");
  ExpectUnsupported("SELECT * FROM TABLE_STATS('t') WHERE 1", "nothing after it");
  ExpectSyntax("SELECT * FROM TABLE_STATS()", "expected a table name");
  ExpectSyntax("SELECT * FROM TABLE_STATS('t', 2)", "expected \")\"");
  ExpectSyntax("SELECT * FROM TABLE_STATS('sqlite_master')", "reserved");
}

TEST(ParserTest, Pragmas) {
  ParsedStatement s = MustParse("PRAGMA reshardTable('orders', 8)");
  EXPECT_EQ(s.kind, StatementKind::kReshardTable);
  EXPECT_EQ(s.table, "orders");
  EXPECT_EQ(s.number, 8);
  s = MustParse("pragma RESHARDTABLE(\"my t\", +4);");
  EXPECT_EQ(s.table, "my t");
  EXPECT_EQ(s.number, 4);
  s = MustParse("PRAGMA main.reshardtable(orders, -2)");
  EXPECT_EQ(s.table, "orders");
  EXPECT_EQ(s.number, -2);

  s = MustParse("PRAGMA reshardStatus('c0ffee-12')");
  EXPECT_EQ(s.kind, StatementKind::kReshardStatus);
  EXPECT_EQ(s.change_log_id, "c0ffee-12");
  EXPECT_EQ(s.table, "");
  EXPECT_EQ(MustParse("PRAGMA reshardstatus(42)").change_log_id, "42");

  ExpectUnsupported("PRAGMA table_info(t)", "PRAGMA table_info is not supported; supported");
  ExpectUnsupported("PRAGMA journal_mode = WAL", "reshardTable('<table>', <n>)");
  ExpectSyntax("PRAGMA reshardTable('t')", "near \")\" (offset 23): expected \",\"");
  ExpectSyntax("PRAGMA reshardTable('t', 'x')", "expected an integer (the new shard count)");
  ExpectSyntax("PRAGMA reshardTable('t', 2.5)", "expected an integer");
  ExpectSyntax("PRAGMA reshardTable = 3", "expected \"(\"");
  ExpectSyntax("PRAGMA reshardStatus('')", "non-empty change_log_id");
  ExpectSyntax("PRAGMA reshardStatus()", "expected a change_log_id");
  ExpectSyntax("PRAGMA", "expected a pragma name");
}

TEST(ParserTest, CreateIndex) {
  ParsedStatement s = MustParse("CREATE INDEX by_email ON users (email)");
  EXPECT_EQ(s.kind, StatementKind::kCreateIndex);
  EXPECT_EQ(s.index_name, "by_email");
  EXPECT_EQ(s.table, "users");
  EXPECT_EQ(s.columns, (std::vector<std::string>{"email"}));
  EXPECT_FALSE(s.unique);
  EXPECT_FALSE(s.if_not_exists);

  s = MustParse("create unique index if not exists \"i x\" on main.t ([a b], \"C\" DESC, d asc) ;");
  EXPECT_TRUE(s.unique);
  EXPECT_TRUE(s.if_not_exists);
  EXPECT_EQ(s.index_name, "i x");
  EXPECT_EQ(s.table, "t");
  EXPECT_EQ(s.columns, (std::vector<std::string>{"a b", "C", "d"}));

  ExpectUnsupported("CREATE INDEX i ON t (a) WHERE a > 0", "partial indexes");
  ExpectUnsupported("CREATE INDEX i ON t (lower(a))", "indexes on expressions");
  ExpectUnsupported("CREATE INDEX i ON t (a + b)", "expressions");
  ExpectUnsupported("CREATE INDEX i ON t (a COLLATE NOCASE)", "COLLATE");
  ExpectSyntax("CREATE INDEX i ON t ()", "expected a column name");
  ExpectSyntax("CREATE INDEX i ON t (a,)", "expected a column name");
  ExpectSyntax("CREATE INDEX i t (a)", "near \"t\" (offset 15): expected ON");
  ExpectSyntax("CREATE INDEX sqlite_i ON t (a)", "index name \"sqlite_i\" is reserved");
  ExpectSyntax("CREATE INDEX _Conductor_node ON t (a)",
               "index name \"_Conductor_node\" is reserved");
  ExpectSyntax("CREATE INDEX i ON t (_virtualShard)", "column name");
  ExpectSyntax("CREATE UNIQUE TABLE t (a)", "expected INDEX");
}

TEST(ParserTest, DropIndex) {
  ParsedStatement s = MustParse("DROP INDEX IF EXISTS by_email");
  EXPECT_EQ(s.kind, StatementKind::kDropIndex);
  EXPECT_EQ(s.index_name, "by_email");
  EXPECT_TRUE(s.if_exists);
  EXPECT_EQ(s.table, "");
  s = MustParse("drop index \"i\" on users");
  EXPECT_EQ(s.index_name, "i");
  EXPECT_EQ(s.table, "users");
  ExpectSyntax("DROP INDEX", "expected an index name");
}

TEST(ParserTest, DataStatements) {
  struct Case {
    const char* sql;
    StatementKind kind;
    const char* table;
  };
  for (const Case& c : std::vector<Case>{
           {"SELECT * FROM orders WHERE id = ?", StatementKind::kSelect, "orders"},
           {"select a, (SELECT max(x) FROM other) FROM \"Orders\" o JOIN b", StatementKind::kSelect,
            "Orders"},
           {"SELECT CAST(a AS TEXT) FROM main.t", StatementKind::kSelect, "t"},
           {"SELECT 1", StatementKind::kSelect, ""},
           {"SELECT * FROM (SELECT * FROM t)", StatementKind::kSelect, ""},
           {"SELECT * FROM json_each('[1]')", StatementKind::kSelect, ""},
           {"VALUES (1), (2)", StatementKind::kSelect, ""},
           {"WITH c AS (SELECT 1) SELECT * FROM c", StatementKind::kSelect, ""},
           {"WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c) SELECT * FROM t",
            StatementKind::kSelect, "t"},
           {"WITH c AS NOT MATERIALIZED (SELECT 1), d AS (SELECT 2) SELECT * FROM d",
            StatementKind::kSelect, ""},
           {"WITH c AS (SELECT 1) INSERT INTO t SELECT * FROM c", StatementKind::kInsert, "t"},
           {"INSERT INTO t (a, b) VALUES (1, 2)", StatementKind::kInsert, "t"},
           {"insert or replace into \"x y\" values (1)", StatementKind::kInsert, "x y"},
           {"REPLACE INTO t VALUES (1)", StatementKind::kInsert, "t"},
           {"UPDATE t SET a = 1 WHERE id = 2", StatementKind::kUpdate, "t"},
           {"UPDATE OR IGNORE main.t SET a = 1", StatementKind::kUpdate, "t"},
           {"DELETE FROM t WHERE id = 1;", StatementKind::kDelete, "t"},
           {"-- leading comment\n/* block */ SELECT a FROM t -- trailing", StatementKind::kSelect,
            "t"},
       }) {
    ParsedStatement s = MustParse(c.sql);
    EXPECT_EQ(s.kind, c.kind) << c.sql;
    EXPECT_EQ(s.table, c.table) << c.sql;
  }
  ExpectSyntax("INSERT t VALUES (1)", "near \"t\" (offset 7): expected INTO");
  ExpectSyntax("INSERT OR MAYBE INTO t VALUES (1)", "ROLLBACK, ABORT, REPLACE, FAIL or IGNORE");
  ExpectSyntax("DELETE t", "expected FROM");
  ExpectSyntax("UPDATE SET a = 1", "expected a table name");
  ExpectSyntax("SELECT * FROM other.t", "schema \"other\"");
  ExpectSyntax("SELECT * FROM WHERE", "expected a table name");
  ExpectSyntax("WITH c AS (SELECT 1) DROP TABLE t", "SELECT, INSERT, UPDATE or DELETE after WITH");
}

TEST(ParserTest, Explain) {
  ParsedStatement s = MustParse("EXPLAIN SELECT * FROM t WHERE id = 1");
  EXPECT_EQ(s.kind, StatementKind::kExplain);
  EXPECT_EQ(s.table, "t");
  ASSERT_EQ(s.explained.size(), 1u);
  EXPECT_EQ(s.explained[0].kind, StatementKind::kSelect);
  EXPECT_EQ(s.explained[0].table, "t");
  s = MustParse("EXPLAIN CREATE TABLE t (a PRIMARY KEY) /* SHARDS=3 */");
  ASSERT_EQ(s.explained.size(), 1u);
  EXPECT_EQ(s.explained[0].kind, StatementKind::kCreateTable);
  EXPECT_EQ(s.explained[0].shards_hint, 3);
  s = MustParse("explain delete from u");
  ASSERT_EQ(s.explained.size(), 1u);
  EXPECT_EQ(s.explained[0].kind, StatementKind::kDelete);
  ExpectUnsupported("EXPLAIN QUERY PLAN SELECT 1", "EXPLAIN QUERY PLAN is not supported");
  ExpectSyntax("EXPLAIN EXPLAIN SELECT 1", "expected a statement to explain");
  ExpectSyntax("EXPLAIN", "expected a statement");
}

TEST(ParserTest, RefusedStatements) {
  for (const char* sql :
       {"BEGIN", "BEGIN TRANSACTION", "COMMIT", "END", "ROLLBACK", "SAVEPOINT s", "RELEASE s"}) {
    ExpectUnsupported(sql, "not supported");
  }
  ExpectUnsupported("begin", "transactions are not supported");
  ExpectUnsupported("ATTACH 'x.db' AS x", "ATTACH is not supported");
  ExpectUnsupported("DETACH x", "DETACH is not supported");
  ExpectUnsupported("VACUUM", "VACUUM is not supported");
  ExpectUnsupported("ANALYZE", "ANALYZE is not supported");
  ExpectUnsupported("REINDEX", "REINDEX is not supported");
}

TEST(ParserTest, EmptyAndMultipleStatements) {
  for (const char* sql : {"", "   ", "\n\t", ";", " ; ; ", "-- only a comment", "/* c */;"}) {
    ExpectSyntax(sql, "empty statement");
  }
  EXPECT_EQ(MustParse("SHOW TABLES;;").kind, StatementKind::kShowTables);
  EXPECT_EQ(MustParse(";SHOW TABLES").kind, StatementKind::kShowTables);
  EXPECT_EQ(MustParse("SHOW TABLES; -- bye").kind, StatementKind::kShowTables);
  ExpectSyntax("SHOW TABLES; SHOW TABLES", "only one statement");
  ExpectSyntax("SELECT 1; DROP TABLE t", "only one statement");
  ExpectSyntax("SELECT ';'; x", "only one statement");
  EXPECT_EQ(MustParse("SELECT ';' FROM t").table, "t");
}

TEST(ParserTest, UnknownStatements) {
  ExpectSyntax("GRANT ALL ON t TO bob", "near \"GRANT\" (offset 0): expected a statement");
  ExpectSyntax("  (SELECT 1)", "near \"(\" (offset 2)");
  ExpectSyntax("SELECT 'unterminated", "unterminated string literal at offset 7");
}

TEST(ParserTest, KindNames) {
  EXPECT_STREQ(StatementKindName(StatementKind::kCreateTable), "CREATE TABLE");
  EXPECT_STREQ(StatementKindName(StatementKind::kSelect), "SELECT");
  EXPECT_STREQ(StatementKindName(StatementKind::kExplain), "EXPLAIN");
  EXPECT_STREQ(StatementKindName(StatementKind::kShowIndexes), "SHOW INDEXES");
}

}  // namespace
}  // namespace conductor::sql
