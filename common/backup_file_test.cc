#include "common/backup_file.h"

#include <sqlite3.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace conductor {
namespace {

TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // A million 'a', fed in uneven pieces.
  Sha256 hash;
  std::string piece(997, 'a');
  int left = 1000000;
  while (left > 0) {
    int n = std::min<int>(left, static_cast<int>(piece.size()));
    hash.Update(absl::string_view(piece.data(), n));
    left -= n;
  }
  EXPECT_EQ(hash.HexDigest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(SnapshotDatabaseTest, CopiesAWalDatabaseWhileAWriterHoldsItOpen) {
  const std::string dir = std::string(getenv("TEST_TMPDIR")) + "/snap";
  std::filesystem::create_directories(dir);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir + "/src.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "PRAGMA journal_mode=WAL; CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT);"
                         "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i "
                         "< 5000) INSERT INTO t SELECT i, printf('row %d', i) FROM n;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  // An open write transaction on the source does not block the snapshot,
  // and its uncommitted rows are not in it.
  ASSERT_EQ(sqlite3_exec(db, "BEGIN IMMEDIATE; INSERT INTO t VALUES (9999, 'uncommitted');",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  ASSERT_TRUE(SnapshotDatabase(dir + "/src.db", dir + "/copy.db").ok());
  ASSERT_EQ(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  EXPECT_FALSE(SnapshotDatabase(dir + "/src.db", dir + "/copy.db").ok()) << "target exists";

  sqlite3* copy = nullptr;
  ASSERT_EQ(sqlite3_open((dir + "/copy.db").c_str(), &copy), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(copy, "SELECT count(*), max(k) FROM t", -1, &stmt, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(stmt, 0), 5000);
  EXPECT_EQ(sqlite3_column_int(stmt, 1), 5000);
  sqlite3_finalize(stmt);
  sqlite3_close(copy);

  int64_t size = 0;
  std::string sha;
  ASSERT_TRUE(HashFile(dir + "/copy.db", &size, &sha).ok());
  EXPECT_GT(size, 0);
  EXPECT_EQ(sha.size(), 64u);
  std::string assembled;
  int64_t chunks = 0;
  ASSERT_TRUE(ReadFileInChunks(
                  dir + "/copy.db", 1000,
                  [&](int64_t offset, absl::string_view data) {
                    EXPECT_EQ(offset, static_cast<int64_t>(assembled.size()));
                    assembled.append(data.data(), data.size());
                    ++chunks;
                    return true;
                  },
                  nullptr, nullptr)
                  .ok());
  EXPECT_EQ(static_cast<int64_t>(assembled.size()), size);
  EXPECT_EQ(chunks, (size + 999) / 1000);
  EXPECT_EQ(Sha256Hex(assembled), sha);
}

}  // namespace
}  // namespace conductor
