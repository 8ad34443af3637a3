#include "common/sql/create_table.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/errors.h"
#include "common/sqlite.h"
#include "gtest/gtest.h"

namespace conductor::sql {
namespace {

using Strings = std::vector<std::string>;

TableSchema MustAnalyze(absl::string_view sql) {
  absl::StatusOr<TableSchema> schema = AnalyzeCreateTable(sql);
  EXPECT_TRUE(schema.ok()) << sql << "\n→ " << schema.status();
  return schema.ok() ? *std::move(schema) : TableSchema{};
}

void ExpectError(absl::string_view sql, absl::StatusCode code, absl::string_view error_reason,
                 absl::string_view fragment) {
  absl::StatusOr<TableSchema> schema = AnalyzeCreateTable(sql);
  ASSERT_FALSE(schema.ok()) << sql << " → " << schema->physical_sql;
  EXPECT_EQ(schema.status().code(), code) << sql << " → " << schema.status();
  EXPECT_EQ(ErrorReason(schema.status()), error_reason) << sql << " → " << schema.status();
  EXPECT_NE(schema.status().message().find(fragment), absl::string_view::npos)
      << sql << " → " << schema.status();
}

// The rewritten table, created in a scratch database and read back from SQLite.
class Physical {
 public:
  explicit Physical(const TableSchema& schema) : schema_(schema) {
    auto db = Database::Open(":memory:");
    EXPECT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    absl::Status created = db_->Exec(schema.physical_sql);
    EXPECT_TRUE(created.ok()) << created << "\n" << schema.physical_sql;
  }

  // Each column as "name|type|notnull|default|pk", from PRAGMA table_xinfo.
  Strings Columns() {
    return Column0(Query(
        "SELECT name || '|' || type || '|' || \"notnull\" || '|' || ifnull(dflt_value, '') || '|' "
        "|| pk FROM pragma_table_xinfo(?) ORDER BY cid",
        schema_.name));
  }

  // The columns of every unique index, each as "a,b,c", in creation order.
  Strings UniqueIndexes() {
    std::vector<std::pair<int, std::string>> found;
    for (const std::string& index :
         Column0(Query("SELECT name FROM pragma_index_list(?) WHERE \"unique\"", schema_.name))) {
      int number = 0;
      EXPECT_TRUE(absl::SimpleAtoi(index.substr(index.rfind('_') + 1), &number)) << index;
      found.emplace_back(number, absl::StrJoin(Column0(Query("SELECT name FROM "
                                                             "pragma_index_info(?) ORDER BY seqno",
                                                             index)),
                                               ","));
    }
    std::sort(found.begin(), found.end());
    Strings out;
    for (auto& [number, columns] : found) out.push_back(columns);
    return out;
  }

  // "name:desc:collation" for each column of the primary key's index.
  Strings KeyIndex() {
    std::string index = Column0(
        Query("SELECT name FROM pragma_index_list(?) WHERE origin = 'pk'", schema_.name))[0];
    return Column0(
        Query("SELECT name || ':' || \"desc\" || ':' || coll FROM pragma_index_xinfo(?) "
              "WHERE key ORDER BY seqno",
              index));
  }

  absl::Status Exec(absl::string_view sql) { return db_->Exec(sql); }

  // The rows of `sql`, each as "v1|v2|…" with NULL for nulls.
  Strings Rows(absl::string_view sql) {
    auto statement = db_->Prepare(sql);
    EXPECT_TRUE(statement.ok()) << statement.status();
    Strings rows;
    while (statement.ok()) {
      auto row = statement->Step();
      EXPECT_TRUE(row.ok()) << row.status();
      if (!row.ok() || !*row) break;
      Strings values;
      for (int i = 0; i < statement->ColumnCount(); ++i) {
        values.push_back(statement->ColumnIsNull(i) ? "NULL" : statement->ColumnText(i));
      }
      rows.push_back(absl::StrJoin(values, "|"));
    }
    return rows;
  }

 private:
  std::vector<Strings> Query(absl::string_view sql, absl::string_view arg) {
    auto statement = db_->Prepare(sql);
    EXPECT_TRUE(statement.ok()) << statement.status();
    std::vector<Strings> rows;
    if (!statement.ok()) return rows;
    EXPECT_TRUE(statement->BindText(1, arg).ok());
    while (true) {
      auto row = statement->Step();
      if (!row.ok() || !*row) break;
      Strings values;
      for (int i = 0; i < statement->ColumnCount(); ++i) values.push_back(statement->ColumnText(i));
      rows.push_back(values);
    }
    return rows;
  }

  static Strings Column0(const std::vector<Strings>& rows) {
    Strings out;
    for (const Strings& row : rows) out.push_back(row[0]);
    if (out.empty()) out.push_back("<none>");
    return out;
  }

  TableSchema schema_;
  std::unique_ptr<Database> db_;
};

constexpr char kHidden[] = "_virtualShard|INTEGER|1|0|1";

TEST(CreateTableTest, SingleColumnPrimaryKey) {
  TableSchema schema =
      MustAnalyze("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);");
  EXPECT_EQ(schema.name, "users");
  EXPECT_EQ(schema.primary_key, Strings{"id"});
  EXPECT_FALSE(schema.if_not_exists);
  EXPECT_FALSE(schema.without_rowid);
  EXPECT_FALSE(schema.shards_hint.has_value());
  EXPECT_TRUE(schema.unique_constraints.empty());
  EXPECT_EQ(schema.user_sql,
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT)");
  EXPECT_EQ(schema.physical_sql,
            "CREATE TABLE IF NOT EXISTS \"users\" (id INTEGER NOT NULL, name TEXT NOT NULL, "
            "email TEXT, _virtualShard INTEGER NOT NULL DEFAULT 0, "
            "PRIMARY KEY (_virtualShard, \"id\"))");
  ASSERT_EQ(schema.columns.size(), 3u);
  EXPECT_EQ(schema.columns[0].name, "id");
  EXPECT_EQ(schema.columns[0].type, "INTEGER");
  EXPECT_FALSE(schema.columns[0].not_null);  // as declared
  EXPECT_EQ(schema.columns[0].primary_key_position, 1);
  EXPECT_TRUE(schema.columns[1].not_null);
  EXPECT_EQ(schema.columns[1].primary_key_position, 0);

  Physical physical(schema);
  EXPECT_EQ(physical.Columns(),
            (Strings{"id|INTEGER|1||2", "name|TEXT|1||0", "email|TEXT|0||0", kHidden}));
  EXPECT_EQ(physical.UniqueIndexes(), Strings{"_virtualShard,id"});
  // The same id may live in two virtual shards, but not twice in one.
  EXPECT_TRUE(physical.Exec("INSERT INTO users VALUES (1, 'a', NULL, 0)").ok());
  EXPECT_TRUE(physical.Exec("INSERT INTO users VALUES (1, 'b', NULL, 1)").ok());
  EXPECT_FALSE(physical.Exec("INSERT INTO users VALUES (1, 'c', NULL, 1)").ok());
  // No longer a rowid alias: a NULL key is refused rather than auto-assigned.
  EXPECT_FALSE(physical.Exec("INSERT INTO users (id, name) VALUES (NULL, 'd')").ok());
  // _virtualShard defaults to 0.
  EXPECT_TRUE(physical.Exec("INSERT INTO users (id, name) VALUES (2, 'e')").ok());
  EXPECT_EQ(physical.Rows("SELECT _virtualShard FROM users WHERE id = 2"), Strings{"0"});
}

TEST(CreateTableTest, TableLevelPrimaryKey) {
  TableSchema schema = MustAnalyze("create table t (a TEXT, b INT, primary key (A))");
  EXPECT_EQ(schema.primary_key, Strings{"a"});
  EXPECT_EQ(schema.physical_sql,
            "CREATE TABLE IF NOT EXISTS \"t\" (a TEXT NOT NULL, b INT, _virtualShard INTEGER NOT "
            "NULL DEFAULT 0, primary key (_virtualShard, A))");
  Physical physical(schema);
  EXPECT_EQ(physical.Columns(), (Strings{"a|TEXT|1||2", "b|INT|0||0", kHidden}));
}

TEST(CreateTableTest, CompositeKeyKeepsOrderDescendingAndCollation) {
  TableSchema schema = MustAnalyze(
      "CREATE TABLE t (a TEXT, b TEXT NOT NULL, c INT, "
      "PRIMARY KEY ( b, a COLLATE NOCASE DESC ) ON CONFLICT FAIL)");
  EXPECT_EQ(schema.primary_key, (Strings{"b", "a"}));
  EXPECT_EQ(schema.columns[0].primary_key_position, 2);
  EXPECT_EQ(schema.columns[1].primary_key_position, 1);
  EXPECT_NE(schema.physical_sql.find(
                "PRIMARY KEY ( _virtualShard, b, a COLLATE NOCASE DESC ) ON CONFLICT FAIL)"),
            std::string::npos)
      << schema.physical_sql;
  Physical physical(schema);
  EXPECT_EQ(physical.Columns(), (Strings{"a|TEXT|1||3", "b|TEXT|1||2", "c|INT|0||0", kHidden}));
  EXPECT_EQ(physical.KeyIndex(), (Strings{"_virtualShard:0:BINARY", "b:0:BINARY", "a:1:NOCASE"}));
  EXPECT_TRUE(physical.Exec("INSERT INTO t (a, b) VALUES ('X', 'k')").ok());
  EXPECT_FALSE(physical.Exec("INSERT INTO t (a, b) VALUES ('x', 'k')").ok());  // NOCASE kept
}

TEST(CreateTableTest, ColumnKeyWithOrderAndConflictClause) {
  TableSchema schema =
      MustAnalyze("CREATE TABLE t (id TEXT PRIMARY KEY DESC ON CONFLICT REPLACE, v INT)");
  EXPECT_EQ(schema.physical_sql,
            "CREATE TABLE IF NOT EXISTS \"t\" (id TEXT NOT NULL, v INT, _virtualShard INTEGER NOT "
            "NULL DEFAULT 0, PRIMARY KEY (_virtualShard, \"id\" DESC) ON CONFLICT REPLACE)");
  Physical physical(schema);
  EXPECT_EQ(physical.KeyIndex(), (Strings{"_virtualShard:0:BINARY", "id:1:BINARY"}));
  EXPECT_TRUE(physical.Exec("INSERT INTO t VALUES ('a', 1, 0)").ok());
  EXPECT_TRUE(physical.Exec("INSERT INTO t VALUES ('a', 2, 0)").ok());  // REPLACE kept
  EXPECT_EQ(physical.Rows("SELECT v FROM t"), Strings{"2"});
}

TEST(CreateTableTest, QuotedIdentifiers) {
  TableSchema schema = MustAnalyze(
      "CREATE TABLE \"my \"\"big\"\" table\" (\"user id\" INTEGER PRIMARY KEY, "
      "[we\"ird] TEXT UNIQUE, `back``tick` INT, 'single' INT)");
  EXPECT_EQ(schema.name, "my \"big\" table");
  EXPECT_EQ(schema.primary_key, Strings{"user id"});
  EXPECT_EQ(schema.unique_constraints, std::vector<Strings>{{"we\"ird"}});
  ASSERT_EQ(schema.columns.size(), 4u);
  EXPECT_EQ(schema.columns[2].name, "back`tick");
  EXPECT_EQ(schema.columns[3].name, "single");
  EXPECT_EQ(schema.physical_sql.rfind("CREATE TABLE IF NOT EXISTS \"my \"\"big\"\" table\" (", 0),
            0u)
      << schema.physical_sql;
  Physical physical(schema);
  EXPECT_EQ(physical.Columns(), (Strings{"user id|INTEGER|1||2", "we\"ird|TEXT|0||0",
                                         "back`tick|INT|0||0", "single|INT|0||0", kHidden}));
  EXPECT_EQ(physical.UniqueIndexes(), (Strings{"_virtualShard,user id", "_virtualShard,we\"ird"}));
}

TEST(CreateTableTest, ColumnConstraintsAndDefaultsSurvive) {
  TableSchema schema = MustAnalyze(
      "CREATE TABLE t (\n"
      "  id TEXT COLLATE NOCASE PRIMARY KEY,\n"
      "  n INT DEFAULT -1,\n"
      "  p REAL DEFAULT +2.5,\n"
      "  s TEXT DEFAULT 'it''s' NOT NULL,\n"
      "  e INT DEFAULT (1 + 2) CHECK (e > 0),\n"
      "  ts TEXT DEFAULT CURRENT_TIMESTAMP,\n"
      "  b BLOB DEFAULT x'00ff',\n"
      "  f BOOLEAN DEFAULT TRUE,\n"
      "  price DECIMAL(10, 2) NOT NULL DEFAULT 0.0,\n"
      "  v VARYING CHARACTER (255) NULL,\n"
      "  r INT REFERENCES other (id) ON DELETE CASCADE ON UPDATE SET NULL NOT DEFERRABLE "
      "INITIALLY IMMEDIATE NOT NULL,\n"
      "  bare\n"
      ")");
  ASSERT_EQ(schema.columns.size(), 12u);
  EXPECT_EQ(schema.columns[1].default_value, "-1");
  EXPECT_EQ(schema.columns[3].default_value, "'it''s'");
  // SQLite keeps the expression without its outer parentheses.
  EXPECT_EQ(schema.columns[4].default_value, "1 + 2");
  EXPECT_EQ(schema.columns[8].type, "DECIMAL(10, 2)");
  EXPECT_EQ(schema.columns[9].type, "VARYING CHARACTER (255)");
  EXPECT_EQ(schema.columns[11].type, "");
  EXPECT_NE(schema.physical_sql.find("id TEXT COLLATE NOCASE NOT NULL,\n"), std::string::npos)
      << schema.physical_sql;
  Physical physical(schema);
  EXPECT_EQ(physical.Columns(),
            (Strings{"id|TEXT|1||2", "n|INT|0|-1|0", "p|REAL|0|+2.5|0", "s|TEXT|1|'it''s'|0",
                     "e|INT|0|1 + 2|0", "ts|TEXT|0|CURRENT_TIMESTAMP|0", "b|BLOB|0|x'00ff'|0",
                     "f|BOOLEAN|0|TRUE|0", "price|DECIMAL(10, 2)|1|0.0|0",
                     "v|VARYING CHARACTER (255)|0||0", "r|INT|1||0", "bare||0||0", kHidden}));
  ASSERT_TRUE(physical.Exec("INSERT INTO t (id, r) VALUES ('k', 1)").ok());
  // NUMERIC affinity stores the 0.0 default as 0.
  EXPECT_EQ(physical.Rows("SELECT n, p, s, e, ts IS NOT NULL, hex(b), f, price FROM t"),
            Strings{"-1|2.5|it's|3|1|00FF|1|0"});
  // The column collation still applies to the key.
  EXPECT_FALSE(physical.Exec("INSERT INTO t (id, r) VALUES ('K', 1)").ok());
  EXPECT_FALSE(physical.Exec("INSERT INTO t (id, r, e) VALUES ('z', 1, 0)").ok());  // CHECK
  EXPECT_FALSE(physical.Exec("INSERT INTO t (id) VALUES ('y')").ok());              // r NOT NULL
}

TEST(CreateTableTest, CheckConstraintsAreEnforced) {
  TableSchema schema = MustAnalyze(
      "CREATE TABLE acct (id INT PRIMARY KEY, balance INT CHECK (balance >= 0), lo INT, hi INT, "
      "CONSTRAINT ordered CHECK (lo <= hi))");
  Physical physical(schema);
  EXPECT_TRUE(physical.Exec("INSERT INTO acct VALUES (1, 5, 1, 2, 0)").ok());
  absl::Status negative = physical.Exec("INSERT INTO acct VALUES (2, -5, 1, 2, 0)");
  EXPECT_FALSE(negative.ok());
  EXPECT_NE(negative.message().find("CHECK constraint failed"), std::string::npos) << negative;
  absl::Status unordered = physical.Exec("INSERT INTO acct VALUES (3, 5, 3, 2, 0)");
  EXPECT_NE(unordered.message().find("ordered"), std::string::npos) << unordered;
}

TEST(CreateTableTest, WithoutRowid) {
  TableSchema schema =
      MustAnalyze("CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID /* tail */");
  EXPECT_TRUE(schema.without_rowid);
  EXPECT_EQ(schema.physical_sql,
            "CREATE TABLE IF NOT EXISTS \"kv\" (k TEXT, v BLOB, _virtualShard INTEGER NOT NULL "
            "DEFAULT 0, PRIMARY KEY (_virtualShard, \"k\")) WITHOUT ROWID /* tail */");
  // WITHOUT ROWID keys are NOT NULL already; SQLite reports them so.
  EXPECT_TRUE(schema.columns[0].not_null);
  Physical physical(schema);
  EXPECT_EQ(physical.Rows("SELECT wr FROM pragma_table_list WHERE name = 'kv'"), Strings{"1"});
  EXPECT_EQ(physical.Columns(), (Strings{"k|TEXT|1||2", "v|BLOB|0||0", kHidden}));
}

TEST(CreateTableTest, Strict) {
  TableSchema schema =
      MustAnalyze("CREATE TABLE s (id INTEGER, n INT, PRIMARY KEY (id)) STRICT, WITHOUT ROWID");
  EXPECT_TRUE(schema.without_rowid);
  EXPECT_NE(schema.physical_sql.find(") STRICT, WITHOUT ROWID"), std::string::npos);
  Physical physical(schema);
  EXPECT_EQ(physical.Rows("SELECT strict, wr FROM pragma_table_list WHERE name = 's'"),
            Strings{"1|1"});
  EXPECT_FALSE(physical.Exec("INSERT INTO s VALUES (1, 'abc', 0)").ok());
  EXPECT_TRUE(physical.Exec("INSERT INTO s VALUES (1, 2, 0)").ok());
}

TEST(CreateTableTest, UniqueConstraintsLeadWithVirtualShard) {
  TableSchema schema = MustAnalyze(
      "CREATE TABLE u (id INT PRIMARY KEY, email TEXT UNIQUE ON CONFLICT IGNORE, a INT, b INT, "
      "UNIQUE (a, b), UNIQUE(b))");
  EXPECT_EQ(schema.unique_constraints, (std::vector<Strings>{{"email"}, {"a", "b"}, {"b"}}));
  EXPECT_NE(schema.physical_sql.find(
                "_virtualShard INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (_virtualShard, \"id\"), "
                "UNIQUE (_virtualShard, \"email\") ON CONFLICT IGNORE, UNIQUE (_virtualShard, a, "
                "b), UNIQUE(_virtualShard, b))"),
            std::string::npos)
      << schema.physical_sql;
  Physical physical(schema);
  EXPECT_EQ(physical.UniqueIndexes(), (Strings{"_virtualShard,id", "_virtualShard,email",
                                               "_virtualShard,a,b", "_virtualShard,b"}));
  // Uniqueness is per virtual shard on a node (cluster-wide is a virtual index's job).
  EXPECT_TRUE(physical.Exec("INSERT INTO u VALUES (1, 'x@y', 1, 1, 0)").ok());
  EXPECT_TRUE(physical.Exec("INSERT INTO u VALUES (1, 'x@y', 1, 1, 1)").ok());
  EXPECT_FALSE(physical.Exec("INSERT INTO u VALUES (2, 'z', 1, 1, 1)").ok());
  // ON CONFLICT IGNORE survived the move: the duplicate email is skipped.
  EXPECT_TRUE(physical.Exec("INSERT INTO u VALUES (3, 'x@y', 3, 3, 1)").ok());
  EXPECT_EQ(physical.Rows("SELECT count(*) FROM u"), Strings{"2"});
}

TEST(CreateTableTest, UniqueOnARowidAliasKey) {
  // SQLite keeps UNIQUE(id) as its own index here, but folds it into the new
  // (_virtualShard, id) key after the rewrite; the self-check must allow that.
  TableSchema schema = MustAnalyze("CREATE TABLE t (id INTEGER PRIMARY KEY UNIQUE, v TEXT)");
  EXPECT_TRUE(schema.unique_constraints.empty());  // it only repeats the key
  Physical physical(schema);
  EXPECT_EQ(physical.UniqueIndexes(), Strings{"_virtualShard,id"});
}

TEST(CreateTableTest, NamedConstraints) {
  TableSchema schema = MustAnalyze(
      "CREATE TABLE n (id INT CONSTRAINT pk_n PRIMARY KEY, "
      "e TEXT CONSTRAINT u_e UNIQUE CONSTRAINT nn_e NOT NULL, "
      "x INT CONSTRAINT lonely, "
      "CONSTRAINT ck CHECK (id > 0), CONSTRAINT u_x UNIQUE (x))");
  const std::string& sql = schema.physical_sql;
  EXPECT_NE(sql.find("id INT NOT NULL, e TEXT CONSTRAINT nn_e NOT NULL, x INT CONSTRAINT lonely, "
                     "_virtualShard"),
            std::string::npos)
      << sql;
  EXPECT_NE(sql.find("CONSTRAINT pk_n PRIMARY KEY (_virtualShard, \"id\"), CONSTRAINT u_e UNIQUE "
                     "(_virtualShard, \"e\"), CONSTRAINT ck CHECK (id > 0), CONSTRAINT u_x UNIQUE "
                     "(_virtualShard, x))"),
            std::string::npos)
      << sql;
  Physical physical(schema);
  EXPECT_EQ(physical.Columns(), (Strings{"id|INT|1||2", "e|TEXT|1||0", "x|INT|0||0", kHidden}));
  EXPECT_EQ(physical.UniqueIndexes(),
            (Strings{"_virtualShard,id", "_virtualShard,e", "_virtualShard,x"}));
  absl::Status check = physical.Exec("INSERT INTO n VALUES (0, 'a', 1, 0)");
  EXPECT_NE(check.message().find("ck"), std::string::npos) << check;
}

TEST(CreateTableTest, GeneratedColumns) {
  TableSchema schema = MustAnalyze(
      "CREATE TABLE g (a INT PRIMARY KEY, b INT GENERATED ALWAYS AS (a * 2) STORED, "
      "c TEXT AS (a || 'x'), d INT AS (a + 1) VIRTUAL)");
  ASSERT_EQ(schema.columns.size(), 4u);
  EXPECT_EQ(schema.columns[1].name, "b");
  Physical physical(schema);
  EXPECT_EQ(physical.Columns(),
            (Strings{"a|INT|1||2", "b|INT|0||0", "c|TEXT|0||0", "d|INT|0||0", kHidden}));
  ASSERT_TRUE(physical.Exec("INSERT INTO g (a) VALUES (5)").ok());
  EXPECT_EQ(physical.Rows("SELECT a, b, c, d FROM g"), Strings{"5|10|5x|6"});
}

TEST(CreateTableTest, CommentsArePreserved) {
  TableSchema schema = MustAnalyze(
      "CREATE TABLE /* SHARDS=4 */ t ( -- the key\n"
      "  id INTEGER PRIMARY /* inner */ KEY, -- trailing\n"
      "  name TEXT -- last column\n"
      ")");
  EXPECT_EQ(schema.shards_hint, 4);
  EXPECT_EQ(schema.physical_sql,
            "CREATE TABLE IF NOT EXISTS \"t\" /* SHARDS=4 */ ( -- the key\n"
            "  id INTEGER NOT NULL/* inner */, -- trailing\n"
            "  name TEXT, _virtualShard INTEGER NOT NULL DEFAULT 0, "
            "PRIMARY KEY (_virtualShard, \"id\") -- last column\n"
            ")");
  Physical physical(schema);
  EXPECT_EQ(physical.Columns(), (Strings{"id|INTEGER|1||2", "name|TEXT|0||0", kHidden}));
}

TEST(CreateTableTest, LineCommentBeforeRemovedKeyKeepsItsNewline) {
  TableSchema schema =
      MustAnalyze("CREATE TABLE t (id INTEGER -- note\n PRIMARY KEY, v INT) -- bye");
  EXPECT_EQ(
      schema.physical_sql,
      "CREATE TABLE IF NOT EXISTS \"t\" (id INTEGER NOT NULL -- note\n , v INT, _virtualShard "
      "INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (_virtualShard, \"id\")) -- bye\n");
  EXPECT_EQ(schema.user_sql, "CREATE TABLE t (id INTEGER -- note\n PRIMARY KEY, v INT) -- bye\n");
  Physical physical(schema);
  EXPECT_EQ(physical.Columns(), (Strings{"id|INTEGER|1||2", "v|INT|0||0", kHidden}));
}

TEST(CreateTableTest, HintIfNotExistsSchemaAndTrailingSemicolon) {
  TableSchema schema = MustAnalyze(
      "  create TABLE if NOT exists main.Events (k PRIMARY KEY, v) /* shards = 16 */ ;  ");
  EXPECT_EQ(schema.name, "Events");
  EXPECT_TRUE(schema.if_not_exists);
  EXPECT_EQ(schema.shards_hint, 16);
  EXPECT_EQ(schema.user_sql,
            "create TABLE if NOT exists main.Events (k PRIMARY KEY, v) /* shards = 16 */");
  EXPECT_EQ(schema.physical_sql,
            "CREATE TABLE IF NOT EXISTS \"Events\" (k NOT NULL, v, _virtualShard INTEGER NOT NULL "
            "DEFAULT 0, PRIMARY KEY (_virtualShard, \"k\")) /* shards = 16 */");
  Physical physical(schema);
  EXPECT_EQ(physical.Columns(), (Strings{"k||1||2", "v||0||0", kHidden}));
}

TEST(CreateTableTest, TableConstraintsWithoutCommasAndForeignKeys) {
  TableSchema schema = MustAnalyze(
      "CREATE TABLE c (a INT, b INT, p INT, PRIMARY KEY (a, b) UNIQUE (b) "
      "FOREIGN KEY (p) REFERENCES parent (id) ON UPDATE NO ACTION MATCH SIMPLE DEFERRABLE "
      "INITIALLY DEFERRED)");
  EXPECT_EQ(schema.primary_key, (Strings{"a", "b"}));
  Physical physical(schema);
  EXPECT_EQ(physical.Columns(), (Strings{"a|INT|1||2", "b|INT|1||3", "p|INT|0||0", kHidden}));
  EXPECT_EQ(physical.UniqueIndexes(), (Strings{"_virtualShard,a,b", "_virtualShard,b"}));
  EXPECT_EQ(physical.Rows("SELECT \"table\", \"from\", \"to\" FROM pragma_foreign_key_list('c')"),
            Strings{"parent|p|id"});
}

TEST(CreateTableTest, KeywordLikeColumnNames) {
  TableSchema schema = MustAnalyze("CREATE TABLE k (key TEXT PRIMARY KEY, \"check\" INT, temp)");
  EXPECT_EQ(schema.primary_key, Strings{"key"});
  Physical physical(schema);
  EXPECT_EQ(physical.Columns(),
            (Strings{"key|TEXT|1||2", "check|INT|0||0", "temp||0||0", kHidden}));
}

TEST(CreateTableTest, OddButValidSyntax) {
  struct Case {
    const char* sql;
    const char* columns;  // "name|pk" for each physical column
  };
  for (const Case& c : std::vector<Case>{
           {"CREATE TABLE t (a INT CONSTRAINT c1 NOT NULL CONSTRAINT c2 PRIMARY KEY, b)",
            "a|2,b|0,_virtualShard|1"},
           {"CREATE TABLE t (\"a\" PRIMARY KEY UNIQUE NOT NULL DEFAULT 1 CHECK(a>0) COLLATE "
            "BINARY REFERENCES x)",
            "a|2,_virtualShard|1"},
           {"CREATE TABLE t (a INT PRIMARY KEY ASC ON CONFLICT ROLLBACK)", "a|2,_virtualShard|1"},
           {"CREATE TABLE t(a INT PRIMARY KEY,\"b\"TEXT)", "a|2,b|0,_virtualShard|1"},
           {"CREATE TABLE t (a INT DEFAULT(0)PRIMARY KEY)", "a|2,_virtualShard|1"},
           {"CREATE TABLE t (a INT PRIMARY KEY/*c*/,b)", "a|2,b|0,_virtualShard|1"},
           {"CREATE TABLE t (a UNIQUE PRIMARY KEY)", "a|2,_virtualShard|1"},
           {"CREATE TABLE t (a \"my type\" PRIMARY KEY)", "a|2,_virtualShard|1"},
           {"CREATE TABLE t (a INT NOT NULL ON CONFLICT IGNORE PRIMARY KEY, b)",
            "a|2,b|0,_virtualShard|1"},
           {"CREATE TABLE t (a, b, PRIMARY KEY (b, a), CONSTRAINT u UNIQUE (b) ON CONFLICT "
            "REPLACE)",
            "a|3,b|2,_virtualShard|1"},
           {"CREATE TABLE t (a INT, b INT REFERENCES p ON DELETE SET DEFAULT, PRIMARY KEY(a))",
            "a|2,b|0,_virtualShard|1"},
           {"CREATE TABLE t (k PRIMARY KEY, w WITHOUT, s STRICT)", "k|2,w|0,s|0,_virtualShard|1"},
       }) {
    TableSchema schema = MustAnalyze(c.sql);
    if (schema.physical_sql.empty()) continue;
    Physical physical(schema);
    EXPECT_EQ(
        absl::StrJoin(physical.Rows("SELECT name || '|' || pk FROM pragma_table_info('t')"), ","),
        c.columns)
        << c.sql << "\n→ " << schema.physical_sql;
  }
}

TEST(CreateTableTest, InvalidSqlQuotesSqlite) {
  ExpectError("CREATE TABLE t (a INT PRIMARY KEY, b INT, PRIMARY KEY (b))",
              absl::StatusCode::kInvalidArgument, reason::kSqlSyntax,
              "invalid CREATE TABLE: table \"t\" has more than one primary key");
  ExpectError("CREATE TABLE t (a INT PRIMARY, b)", absl::StatusCode::kInvalidArgument,
              reason::kSqlSyntax, "invalid CREATE TABLE: near \",\": syntax error");
  ExpectError("CREATE TABLE t (a INT PRIMARY KEY, a TEXT)", absl::StatusCode::kInvalidArgument,
              reason::kSqlSyntax, "duplicate column name: a");
  ExpectError("CREATE TABLE t (PRIMARY KEY (a))", absl::StatusCode::kInvalidArgument,
              reason::kSqlSyntax, "invalid CREATE TABLE");
  ExpectError("CREATE TABLE t (a FOO PRIMARY KEY) STRICT", absl::StatusCode::kInvalidArgument,
              reason::kSqlSyntax, "invalid CREATE TABLE: unknown datatype for t.a: \"FOO\"");
}

TEST(CreateTableTest, ConductorRules) {
  ExpectError("CREATE TABLE t (a INT, b TEXT)", absl::StatusCode::kInvalidArgument,
              reason::kSqlSyntax,
              "table t has no PRIMARY KEY; every Conductor table needs one (it routes and "
              "identifies rows)");
  ExpectError("CREATE TABLE t (id INT PRIMARY KEY, _VIRTUALshard INT)",
              absl::StatusCode::kInvalidArgument, reason::kSqlSyntax, "hidden routing column");
  ExpectError("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT)",
              absl::StatusCode::kInvalidArgument, reason::kSqlSyntax,
              "AUTOINCREMENT (offset 39) is not supported: a sharded table has no cluster-wide "
              "counter");
  ExpectError("CREATE TABLE sqlite_t (id INT PRIMARY KEY)", absl::StatusCode::kInvalidArgument,
              reason::kSqlSyntax, "reserved");
  ExpectError("CREATE TABLE other.t (id INT PRIMARY KEY)", absl::StatusCode::kInvalidArgument,
              reason::kSqlSyntax, "schema \"other\"");
  ExpectError("CREATE TEMP TABLE t (id INT PRIMARY KEY)", absl::StatusCode::kUnimplemented,
              reason::kUnsupportedStatement, "TEMP");
  ExpectError("CREATE TABLE t AS SELECT 1 AS id", absl::StatusCode::kUnimplemented,
              reason::kUnsupportedStatement, "AS SELECT");
  ExpectError("SELECT 1", absl::StatusCode::kInvalidArgument, reason::kSqlSyntax,
              "expected a CREATE TABLE statement, got SELECT");
  ExpectError("CREATE TABLE a (id INT PRIMARY KEY); CREATE TABLE b (id INT PRIMARY KEY)",
              absl::StatusCode::kInvalidArgument, reason::kSqlSyntax, "only one statement");
  ExpectError(" ", absl::StatusCode::kInvalidArgument, reason::kSqlSyntax, "empty statement");
  ExpectError("CREATE TABLE t (id INT PRIMARY KEY) /* SHARDS=x */",
              absl::StatusCode::kInvalidArgument, reason::kSqlSyntax, "SHARDS");
}

}  // namespace
}  // namespace conductor::sql
