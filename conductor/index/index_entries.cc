#include "conductor/index/index_entries.h"

#include <algorithm>
#include <functional>

#include "absl/strings/str_cat.h"
#include "common/errors.h"

namespace conductor {
namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS entries (
  index_id INTEGER NOT NULL,
  key BLOB NOT NULL,
  shard_id INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (index_id, key, shard_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_shard ON entries (index_id, shard_id, seq);
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('high_water_seq', 0);
)sql";

absl::Status Check(const absl::Status& s, const char* what) {
  return s.ok() ? s : Annotate(s, absl::StrCat("index entry store: ", what));
}

}  // namespace

absl::StatusOr<std::unique_ptr<IndexEntryStore>> IndexEntryStore::Open(const std::string& path) {
  DatabaseOptions options;
  options.synchronous_full = false;
  auto writer = Database::Open(path, options);
  if (!writer.ok()) return Annotate(writer.status(), absl::StrCat("index entry store ", path));
  if (auto s = (*writer)->Exec(kSchema); !s.ok()) {
    return Annotate(s, absl::StrCat("index entry store ", path));
  }
  auto reader = Database::Open(path, options);
  if (!reader.ok()) return Annotate(reader.status(), absl::StrCat("index entry store ", path));
  auto counter = Database::Open(path, options);
  if (!counter.ok()) return Annotate(counter.status(), absl::StrCat("index entry store ", path));
  return std::unique_ptr<IndexEntryStore>(
      new IndexEntryStore(std::move(*writer), std::move(*reader), std::move(*counter)));
}

absl::Status IndexEntryStore::InTransaction(const std::function<absl::Status()>& body) {
  if (auto s = writer_->Exec("BEGIN IMMEDIATE"); !s.ok()) return Check(s, "begin");
  absl::Status s = body();
  if (s.ok()) s = writer_->Exec("COMMIT");
  if (!s.ok()) writer_->Exec("ROLLBACK").IgnoreError();
  return Check(s, "write");
}

absl::Status IndexEntryStore::Add(int64_t index_id, const std::vector<IndexEntry>& entries,
                                  int64_t seq) {
  if (entries.empty()) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(write_mu_);
  return InTransaction([&]() -> absl::Status {
    auto stmt = writer_->Prepare(
        "INSERT INTO entries (index_id, key, shard_id, seq) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT (index_id, key, shard_id) DO UPDATE SET seq = max(seq, excluded.seq)");
    if (!stmt.ok()) return stmt.status();
    for (const IndexEntry& entry : entries) {
      stmt->Reset().IgnoreError();
      stmt->BindInt64(1, index_id).IgnoreError();
      stmt->Bind(2, BlobValue(entry.key)).IgnoreError();
      stmt->BindInt64(3, entry.shard_id).IgnoreError();
      stmt->BindInt64(4, seq).IgnoreError();
      if (auto r = stmt->Run(); !r.ok()) return r;
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::set<int32_t>> IndexEntryStore::Lookup(int64_t index_id,
                                                          const std::vector<std::string>& keys) {
  auto each = LookupEach(index_id, keys);
  if (!each.ok()) return each.status();
  std::set<int32_t> shards;
  for (const auto& [key, key_shards] : *each) shards.insert(key_shards.begin(), key_shards.end());
  return shards;
}

absl::StatusOr<std::map<std::string, std::set<int32_t>>> IndexEntryStore::LookupEach(
    int64_t index_id, const std::vector<std::string>& keys) {
  std::map<std::string, std::set<int32_t>> shards;
  std::lock_guard<std::mutex> lock(read_mu_);
  auto stmt = reader_->Prepare("SELECT shard_id FROM entries WHERE index_id = ? AND key = ?");
  if (!stmt.ok()) return Check(stmt.status(), "lookup");
  // One read transaction, so every key is looked up in the same state.
  if (auto s = reader_->Exec("BEGIN"); !s.ok()) return Check(s, "lookup");
  absl::Status status;
  for (const std::string& key : keys) {
    stmt->Reset().IgnoreError();
    stmt->BindInt64(1, index_id).IgnoreError();
    stmt->Bind(2, BlobValue(key)).IgnoreError();
    while (true) {
      auto row = stmt->Step();
      if (!row.ok()) {
        status = row.status();
        break;
      }
      if (!*row) break;
      shards[key].insert(static_cast<int32_t>(stmt->ColumnInt64(0)));
    }
    if (!status.ok()) break;
  }
  stmt->Reset().IgnoreError();
  reader_->Exec("COMMIT").IgnoreError();
  if (!status.ok()) return Check(status, "lookup");
  return shards;
}

absl::StatusOr<int64_t> IndexEntryStore::DeleteOlderThan(int64_t index_id, int32_t shard_id,
                                                         int64_t seq) {
  std::lock_guard<std::mutex> lock(write_mu_);
  auto stmt =
      writer_->Prepare("DELETE FROM entries WHERE index_id = ? AND shard_id = ? AND seq < ?");
  if (!stmt.ok()) return Check(stmt.status(), "delete");
  stmt->BindInt64(1, index_id).IgnoreError();
  stmt->BindInt64(2, shard_id).IgnoreError();
  stmt->BindInt64(3, seq).IgnoreError();
  if (auto r = stmt->Run(); !r.ok()) return Check(r, "delete");
  return writer_->Changes();
}

absl::Status IndexEntryStore::DropIndex(int64_t index_id) {
  std::lock_guard<std::mutex> lock(write_mu_);
  auto stmt = writer_->Prepare("DELETE FROM entries WHERE index_id = ?");
  if (!stmt.ok()) return Check(stmt.status(), "drop");
  stmt->BindInt64(1, index_id).IgnoreError();
  return Check(stmt->Run(), "drop");
}

absl::StatusOr<int64_t> IndexEntryStore::Count(int64_t index_id) {
  // A connection of its own: counting a large index must not hold up the
  // lookups that routing does.
  std::lock_guard<std::mutex> lock(count_mu_);
  auto stmt = counter_->Prepare("SELECT count(*) FROM entries WHERE index_id = ?");
  if (!stmt.ok()) return Check(stmt.status(), "count");
  stmt->BindInt64(1, index_id).IgnoreError();
  auto row = stmt->Step();
  if (!row.ok()) return Check(row.status(), "count");
  return stmt->ColumnInt64(0);
}

absl::StatusOr<int64_t> IndexEntryStore::MaxSeq() {
  std::lock_guard<std::mutex> lock(read_mu_);
  auto stmt = reader_->Prepare(
      "SELECT max((SELECT coalesce(max(seq), 0) FROM entries), "
      "(SELECT value FROM meta WHERE key = 'high_water_seq'))");
  if (!stmt.ok()) return Check(stmt.status(), "max seq");
  auto row = stmt->Step();
  if (!row.ok()) return Check(row.status(), "max seq");
  return stmt->ColumnInt64(0);
}

absl::Status IndexEntryStore::RaiseHighWater(int64_t seq) {
  std::lock_guard<std::mutex> lock(write_mu_);
  auto stmt =
      writer_->Prepare("UPDATE meta SET value = max(value, ?) WHERE key = 'high_water_seq'");
  if (!stmt.ok()) return Check(stmt.status(), "high water");
  stmt->BindInt64(1, seq).IgnoreError();
  // This one commit is synced (with every commit before it): scan numbers
  // saved in jobs' progress must stay below the numbers handed out after
  // any crash, power loss included.
  if (auto s = writer_->Exec("PRAGMA synchronous = FULL"); !s.ok()) return Check(s, "high water");
  absl::Status s = stmt->Run();
  writer_->Exec("PRAGMA synchronous = NORMAL").IgnoreError();
  return Check(s, "high water");
}

}  // namespace conductor
