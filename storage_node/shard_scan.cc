#include "storage_node/shard_scan.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/errors.h"

namespace conductor {
namespace storage_node {
namespace {

using storage::v1::ScanShardRequest;
using storage::v1::ScanShardResponse;

// Approximate wire overhead of one nested message (tag and length).
constexpr int64_t kMessageOverhead = 4;

absl::Status InvalidRequest(absl::string_view message) {
  return Error(absl::StatusCode::kInvalidArgument, reason::kInvalidArgument, message);
}

// OK when `name` can be quoted as an identifier.
absl::Status CheckName(absl::string_view what, absl::string_view name) {
  if (name.empty()) return InvalidRequest(absl::StrCat(what, " must not be empty"));
  if (name.find('\0') != absl::string_view::npos) {
    return InvalidRequest(absl::StrCat(what, " must not contain NUL characters"));
  }
  return absl::OkStatus();
}

absl::Status CheckNames(absl::string_view what,
                        const google::protobuf::RepeatedPtrField<std::string>& names) {
  for (const std::string& name : names) {
    if (auto s = CheckName(what, name); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// The parameter that holds key value `i` (0-based); ?1 is the shard id.
std::string KeyParameter(size_t i) { return absl::StrCat("?", i + 2); }

// "Strictly after `after_key` in ORDER BY key_columns order". A row value
// comparison when the key has no NULL: SQLite seeks it in the table's key
// index. NULL sorts first but compares as unknown, so a key with a NULL is
// spelled out: k1 > v1 OR (k1 = v1 AND k2 > v2) OR ..., where "k > NULL" is
// "k IS NOT NULL" and "k = NULL" is "k IS NULL".
std::string AfterCondition(const std::vector<std::string>& key_columns,
                           const std::vector<Value>& after_key) {
  bool has_null = false;
  for (const Value& value : after_key) has_null |= value.kind_case() == Value::kNullValue;
  std::vector<std::string> parameters;
  for (size_t i = 0; i < key_columns.size(); ++i) parameters.push_back(KeyParameter(i));
  if (!has_null) {
    return absl::StrCat("(", absl::StrJoin(key_columns, ", "), ") > (",
                        absl::StrJoin(parameters, ", "), ")");
  }
  std::vector<std::string> alternatives;
  std::vector<std::string> equal_prefix;
  for (size_t i = 0; i < key_columns.size(); ++i) {
    const bool null = after_key[i].kind_case() == Value::kNullValue;
    std::vector<std::string> terms = equal_prefix;
    terms.push_back(null ? absl::StrCat(key_columns[i], " IS NOT NULL")
                         : absl::StrCat(key_columns[i], " > ", parameters[i]));
    alternatives.push_back(absl::StrCat("(", absl::StrJoin(terms, " AND "), ")"));
    equal_prefix.push_back(null ? absl::StrCat(key_columns[i], " IS NULL")
                                : absl::StrCat(key_columns[i], " = ", parameters[i]));
  }
  return absl::StrCat("(", absl::StrJoin(alternatives, " OR "), ")");
}

}  // namespace

absl::StatusOr<ShardScan> ShardScan::Create(const ScanShardRequest& request) {
  if (auto s = CheckName("table", request.table()); !s.ok()) return s;
  if (request.key_columns().empty()) return InvalidRequest("key_columns must not be empty");
  if (auto s = CheckNames("a key column name", request.key_columns()); !s.ok()) return s;
  if (!request.distinct()) {
    if (request.columns().empty()) {
      return InvalidRequest("columns must not be empty unless distinct is set");
    }
    if (auto s = CheckNames("a column name", request.columns()); !s.ok()) return s;
  }
  if (request.block_size() < 1 || request.block_size() > kMaxScanBlockSize) {
    return InvalidRequest(
        absl::StrCat("block_size must be 1..", kMaxScanBlockSize, ", not ", request.block_size()));
  }
  if (!request.after_key().empty() && request.after_key_size() != request.key_columns_size()) {
    return InvalidRequest(absl::StrCat("after_key has ", request.after_key_size(),
                                       " values; it must be empty or have one per key column (",
                                       request.key_columns_size(), ")"));
  }
  if (request.max_blocks() < 0) {
    return InvalidRequest(
        absl::StrCat("max_blocks must not be negative, not ", request.max_blocks()));
  }

  ShardScan scan;
  scan.quoted_table_ = QuoteIdentifier(request.table());
  auto qualified = [&scan](const std::string& column) {
    return absl::StrCat(scan.quoted_table_, ".", QuoteIdentifier(column));
  };
  if (!request.distinct()) {
    for (const std::string& column : request.columns()) scan.columns_.push_back(qualified(column));
  }
  for (const std::string& column : request.key_columns()) {
    scan.key_columns_.push_back(qualified(column));
  }
  scan.shard_id_ = request.shard_id();
  scan.block_size_ = request.block_size();
  scan.distinct_ = request.distinct();
  scan.after_key_.assign(request.after_key().begin(), request.after_key().end());
  return scan;
}

std::string ShardScan::NextBlockSql() const {
  const std::string keys = absl::StrJoin(key_columns_, ", ");
  std::string sql =
      absl::StrCat("SELECT ", distinct_ ? "" : absl::StrJoin(columns_, ", "), distinct_ ? "" : ", ",
                   keys, " FROM ", quoted_table_, " WHERE ", quoted_table_, "._virtualShard = ?1");
  if (distinct_) {
    for (const std::string& key : key_columns_) absl::StrAppend(&sql, " AND ", key, " IS NOT NULL");
  }
  if (!after_key_.empty()) absl::StrAppend(&sql, " AND ", AfterCondition(key_columns_, after_key_));
  if (distinct_) absl::StrAppend(&sql, " GROUP BY ", keys);
  // One row more than the block: whether it exists tells whether this block
  // is the last, so the last block always says done.
  absl::StrAppend(&sql, " ORDER BY ", keys, " LIMIT ?", key_columns_.size() + 2);
  return sql;
}

absl::Status ShardScan::ReadRows(Connection& connection, int64_t max_block_bytes,
                                 ScanShardResponse* block) {
  auto statement = connection.db().Prepare(NextBlockSql());
  if (!statement.ok()) return statement.status();
  if (auto s = statement->BindInt64(1, shard_id_); !s.ok()) return s;
  for (size_t i = 0; i < after_key_.size(); ++i) {
    if (auto s = statement->Bind(static_cast<int>(i) + 2, after_key_[i]); !s.ok()) return s;
  }
  const int key_count = static_cast<int>(key_columns_.size());
  if (auto s = statement->BindInt64(key_count + 2, int64_t{block_size_} + 1); !s.ok()) return s;

  // Row values come first, then (unless distinct, where they are the row) the key.
  const int row_width = distinct_ ? key_count : static_cast<int>(columns_.size());
  const int key_offset = distinct_ ? 0 : row_width;
  int64_t bytes = 0;
  bool more = false;
  while (true) {
    absl::StatusOr<bool> has_row = statement->Step();
    if (!has_row.ok()) return has_row.status();
    if (!*has_row) break;
    if (block->rows_size() == block_size_) {
      more = true;
      break;
    }
    conductor::v1::Row* row = block->add_rows();
    for (int i = 0; i < row_width; ++i) {
      absl::StatusOr<Value> value = statement->ColumnValueUtf8(i);
      if (!value.ok()) return value.status();
      *row->add_values() = *std::move(value);
    }
    bytes += static_cast<int64_t>(row->ByteSizeLong()) + kMessageOverhead;
    if (bytes > max_block_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("a block of the scan would exceed ", max_block_bytes,
                       " bytes; use a smaller block_size (", block_size_, " now)"));
    }
    if (!distinct_) {
      block->clear_last_key();
      for (int i = 0; i < key_count; ++i) {
        absl::StatusOr<Value> key = statement->ColumnValueUtf8(key_offset + i);
        if (!key.ok()) return key.status();
        *block->add_last_key() = *std::move(key);
      }
    }
  }
  if (distinct_ && block->rows_size() > 0) {
    *block->mutable_last_key() = block->rows(block->rows_size() - 1).values();
  }
  block->set_done(!more);
  return absl::OkStatus();
}

absl::Status ShardScan::ReadBlock(Connection& connection, const CallControl& control,
                                  int64_t max_block_bytes, ScanShardResponse* block) {
  block->Clear();
  // A connection is never left inside a transaction, but be sure: a stale one
  // would keep serving an old snapshot.
  connection.RollbackIfOpen();
  if (auto s = connection.ExecInternal("BEGIN"); !s.ok()) {
    return Annotate(s, "cannot begin a transaction");
  }
  connection.BeginCall(&control);
  absl::Status status = ReadRows(connection, max_block_bytes, block);
  connection.EndCall();
  // Ends the block's snapshot.
  connection.RollbackIfOpen();
  if (status.code() == absl::StatusCode::kCancelled) {
    // SQLITE_INTERRUPT: say why the block was interrupted.
    if (auto why = control.Check("while a block of the scan was read"); !why.ok()) status = why;
  }
  if (!status.ok()) {
    block->Clear();
    return status;
  }
  if (block->rows_size() > 0) {
    after_key_.assign(block->last_key().begin(), block->last_key().end());
  }
  done_ = block->done();
  return absl::OkStatus();
}

}  // namespace storage_node
}  // namespace conductor
