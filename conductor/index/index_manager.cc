#include "conductor/index/index_manager.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/sql/create_table.h"
#include "common/sql/tokenizer.h"
#include "common/sqlite.h"
#include "conductor/index/index_key.h"
#include "conductor/internal/v1/index_build.pb.h"

namespace conductor {
namespace {

const sql::ColumnSchema* FindColumn(const TableMeta& table, const std::string& name) {
  for (const auto& column : table.columns) {
    if (sql::SameName(column.name, name)) return &column;
  }
  return nullptr;
}

// The index's columns as the table declares them (null for a column the
// table lost, which cannot happen while the index exists).
std::vector<const sql::ColumnSchema*> IndexColumns(const TableMeta& table, const IndexMeta& index) {
  std::vector<const sql::ColumnSchema*> columns;
  for (const auto& name : index.columns) columns.push_back(FindColumn(table, name));
  return columns;
}

// Positions of `names` among the table's columns (-1 when absent).
std::vector<int> Positions(const TableMeta& table, const std::vector<std::string>& names) {
  std::vector<int> positions;
  for (const auto& name : names) {
    int found = -1;
    for (size_t i = 0; i < table.columns.size(); ++i) {
      if (sql::SameName(table.columns[i].name, name)) found = static_cast<int>(i);
    }
    positions.push_back(found);
  }
  return positions;
}

std::vector<Value> Pick(const std::vector<Value>& row, const std::vector<int>& positions) {
  std::vector<Value> out;
  for (int p : positions)
    out.push_back(p >= 0 && p < static_cast<int>(row.size()) ? row[p] : NullValue());
  return out;
}

// Whether a DEFAULT is a constant (a literal, possibly signed or in
// parentheses): the value the conductor computes for a row is then the one
// the node stores. CURRENT_TIMESTAMP, random() and other expressions are not.
bool ConstantDefault(const std::string& text) {
  auto tokens = sql::Tokenize(text);
  if (!tokens.ok()) return false;
  for (const auto& token : *tokens) {
    switch (token.kind) {
      case sql::TokenKind::kWhitespace:
      case sql::TokenKind::kComment:
      case sql::TokenKind::kEnd:
      case sql::TokenKind::kNumber:
      case sql::TokenKind::kString:
      case sql::TokenKind::kBlob:
        continue;
      case sql::TokenKind::kOperator:
        if (token.text == "(" || token.text == ")" || token.text == "-" || token.text == "+") {
          continue;
        }
        return false;
      default:
        if (sql::IsKeyword(token, "NULL") || sql::IsKeyword(token, "TRUE") ||
            sql::IsKeyword(token, "FALSE")) {
          continue;
        }
        return false;
    }
  }
  return true;
}

bool Intersects(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  for (const auto& x : a) {
    for (const auto& y : b) {
      if (sql::SameName(x, y)) return true;
    }
  }
  return false;
}

// Values compare as SQLite's IS would for primary keys read back from a node.
bool SameValues(const std::vector<Value>& a, const std::vector<Value>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].SerializeAsString() != b[i].SerializeAsString()) return false;
  }
  return true;
}

absl::Status UniqueViolation(const TableMeta& table, const IndexMeta& index,
                             const std::vector<Value>& tuple) {
  return Error(
      absl::StatusCode::kAlreadyExists, reason::kUniqueViolation,
      absl::StrCat("UNIQUE index ", index.name, " on ", table.name, " (",
                   absl::StrJoin(index.columns, ", "), ") already holds ", DescribeTuple(tuple)));
}

absl::Status IndexNotFound(int64_t index_id) {
  return Error(absl::StatusCode::kNotFound, reason::kIndexNotFound,
               absl::StrCat("index ", index_id, " no longer exists or is not being maintained"));
}

// The table and index with `index_id` in `snapshot`, or {null, null}.
std::pair<const TableMeta*, const IndexMeta*> FindIndexById(const Snapshot& snapshot,
                                                            int64_t index_id) {
  for (const auto& [unused, table] : snapshot.tables) {
    for (const IndexMeta& index : table.indexes) {
      if (index.index_id == index_id) return {&table, &index};
    }
  }
  return {nullptr, nullptr};
}

}  // namespace

std::string IndexManager::Operation(int64_t index_id) { return absl::StrCat("index:", index_id); }

std::string IndexManager::JobPayload(int64_t index_id, const std::vector<int32_t>& shard_ids) {
  internal::v1::IndexJobPayload payload;
  payload.set_index_id(index_id);
  for (int32_t id : shard_ids) payload.add_shard_ids(id);
  return payload.SerializeAsString();
}

IndexManager::IndexManager(TopologyStore* store, StorageClient* storage, JobQueue* jobs,
                           std::unique_ptr<IndexEntryStore> entries, IndexManagerOptions options)
    : store_(store),
      storage_(storage),
      jobs_(jobs),
      entries_(std::move(entries)),
      options_(options) {}

IndexManager::~IndexManager() {
  {
    std::lock_guard<std::mutex> lock(scheduler_mu_);
    stopping_ = true;
  }
  scheduler_cv_.notify_all();
  if (scheduler_.joinable()) scheduler_.join();
}

absl::Status IndexManager::Init() {
  auto max_seq = entries_->MaxSeq();
  if (!max_seq.ok()) return max_seq.status();
  int64_t start_seq;
  {
    std::lock_guard<std::mutex> lock(flight_mu_);
    next_seq_ = *max_seq + 1;
    start_seq = next_seq_++;
  }
  // Marks are not persisted: after a restart nothing is known about writes
  // that were in flight, so every shard of every maintained index is
  // recounted (and treated as holding any value until then).
  auto snapshot = store_->snapshot();
  {
    std::lock_guard<std::mutex> lock(marks_mu_);
    for (const auto& [unused, table] : snapshot->tables) {
      for (const IndexMeta& index : table.indexes) {
        if (!index.Maintained()) continue;
        for (const ShardMeta& shard : table.shards) {
          if (shard.status != shard_status::kActive) continue;
          MarkLocked(index.index_id, shard.shard_id, start_seq, /*dirty=*/true);
        }
      }
    }
  }
  jobs_->OnFinished(kBuildJobKind, [](Database& db, const JobRecord& job) -> absl::Status {
    internal::v1::IndexJobPayload payload;
    if (!payload.ParseFromString(job.payload)) return absl::OkStatus();
    // Only a build still in progress changes state (a dropped index is gone;
    // a failed one stays failed).
    auto stmt = db.Prepare(
        "UPDATE virtual_indexes SET status = ?, error = ?, updated_at_ms = ? "
        "WHERE index_id = ? AND status = 'building'");
    if (!stmt.ok()) return stmt.status();
    const bool done = job.state == JobState::kDone;
    stmt->BindText(1, done ? index_status::kReady : index_status::kFailed).IgnoreError();
    stmt->BindText(2, done ? "" : job.error).IgnoreError();
    stmt->BindInt64(3, TopologyStore::NowMs()).IgnoreError();
    stmt->BindInt64(4, payload.index_id()).IgnoreError();
    return stmt->Run();
  });
  return absl::OkStatus();
}

void IndexManager::StartScheduler() {
  scheduler_ = std::thread([this] { SchedulerLoop(); });
}

// ---- writes ----

IndexManager::Write::~Write() { manager_->EndWrite(this); }

std::unique_ptr<IndexManager::Write> IndexManager::BeginWrite() {
  std::lock_guard<std::mutex> lock(flight_mu_);
  const int64_t seq = next_seq_++;
  in_flight_.insert(seq);
  return std::unique_ptr<Write>(new Write(this, seq));
}

void IndexManager::EndWrite(Write* write) {
  if (write->outcome_unknown_) {
    // The nodes may still commit it (a statement that began before the
    // deadline ends with a COMMIT): until they cannot, its ticket stays in
    // flight, so no shard scan starts before the row could land, and its
    // unique values stay locked.
    std::lock_guard<std::mutex> lock(flight_mu_);
    zombies_.push_back({write->seq_, std::move(write->locks_),
                        absl::Now() + options_.storage_timeout + options_.unknown_outcome_grace});
    write->locks_.clear();
  }
  if (!write->succeeded_ && !write->entries_on.empty()) {
    // Entries were added for rows that may not exist: recount those shards.
    std::lock_guard<std::mutex> lock(marks_mu_);
    for (const auto& [index_id, shard_id] : write->entries_on) {
      MarkLocked(index_id, shard_id, write->seq_, /*dirty=*/false);
    }
  }
  if (!write->locks_.empty()) {
    {
      std::lock_guard<std::mutex> lock(locks_mu_);
      for (const auto& key : write->locks_) locked_.erase(key);
    }
    locks_cv_.notify_all();
  }
  if (write->outcome_unknown_) return;
  {
    std::lock_guard<std::mutex> lock(flight_mu_);
    in_flight_.erase(write->seq_);
  }
  drain_cv_.notify_all();
}

int IndexManager::ReleaseSettledWrites(absl::Time now) {
  std::vector<Zombie> settled;
  {
    std::lock_guard<std::mutex> lock(flight_mu_);
    for (auto it = zombies_.begin(); it != zombies_.end();) {
      if (it->release_at > now) {
        ++it;
        continue;
      }
      in_flight_.erase(it->seq);
      settled.push_back(std::move(*it));
      it = zombies_.erase(it);
    }
  }
  if (settled.empty()) return 0;
  {
    std::lock_guard<std::mutex> lock(locks_mu_);
    for (const Zombie& zombie : settled) {
      for (const auto& key : zombie.locks) locked_.erase(key);
    }
  }
  locks_cv_.notify_all();
  drain_cv_.notify_all();
  return static_cast<int>(settled.size());
}

void IndexManager::MarkLocked(int64_t index_id, int32_t shard_id, int64_t seq, bool dirty) {
  Mark& mark = marks_[{index_id, shard_id}];
  mark.stale_seq = std::max(mark.stale_seq, seq);
  if (dirty) mark.dirty_seq = std::max(mark.dirty_seq, seq);
}

void IndexManager::MarkDirty(int64_t index_id, const std::vector<int32_t>& shard_ids) {
  int64_t seq;
  {
    std::lock_guard<std::mutex> lock(flight_mu_);
    seq = next_seq_++;
  }
  std::lock_guard<std::mutex> lock(marks_mu_);
  for (int32_t shard_id : shard_ids) MarkLocked(index_id, shard_id, seq, /*dirty=*/true);
}

absl::Status IndexManager::LockKeys(Write& write, std::vector<std::string> keys,
                                    absl::Time deadline) {
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  std::unique_lock<std::mutex> lock(locks_mu_);
  for (const std::string& key : keys) {
    // Sorted order: two writes never wait for each other in a cycle.
    while (locked_.count(key) > 0) {
      if (locks_cv_.wait_until(lock, absl::ToChronoTime(deadline)) == std::cv_status::timeout &&
          locked_.count(key) > 0) {
        return absl::DeadlineExceededError(
            "deadline reached while waiting for a concurrent write of the same unique value");
      }
    }
    locked_.insert(key);
    write.locks_.push_back(key);
  }
  return absl::OkStatus();
}

absl::Status IndexManager::PrepareWrite(Write& write, const TableMeta& table, const QueryPlan& plan,
                                        absl::Time deadline) {
  std::vector<const IndexMeta*> maintained;
  for (const IndexMeta& index : table.indexes) {
    if (index.Maintained()) maintained.push_back(&index);
  }
  if (maintained.empty()) return absl::OkStatus();
  std::set<int32_t> targets;
  for (const ShardStatement& statement : plan.statements) targets.insert(statement.shard_id);

  if (plan.kind == sql::StatementKind::kDelete) {
    std::lock_guard<std::mutex> lock(marks_mu_);
    for (const IndexMeta* index : maintained) {
      for (int32_t shard : targets) MarkLocked(index->index_id, shard, write.seq(), false);
    }
    return absl::OkStatus();
  }
  if (plan.kind == sql::StatementKind::kUpdate) {
    std::lock_guard<std::mutex> lock(marks_mu_);
    for (const IndexMeta* index : maintained) {
      // A generated column changes with the columns it is computed from.
      bool generated = false;
      for (const auto& name : index->columns) {
        const sql::ColumnSchema* column = FindColumn(table, name);
        generated |= column != nullptr && column->generated;
      }
      if (!generated && !Intersects(plan.assigned_columns, index->columns)) continue;
      if (index->unique) {
        return Error(absl::StatusCode::kUnimplemented, reason::kUnsupportedStatement,
                     absl::StrCat("UPDATE of ", absl::StrJoin(index->columns, ", "),
                                  ", a column of UNIQUE index ", index->name,
                                  ", is not supported yet; DELETE the row and INSERT it with "
                                  "the new value"));
      }
      for (int32_t shard : targets) MarkLocked(index->index_id, shard, write.seq(), true);
    }
    return absl::OkStatus();
  }
  if (plan.kind != sql::StatementKind::kInsert) return absl::OkStatus();

  // INSERT: unique checks first (nothing is changed if they fail), then
  // entries and marks.
  const std::vector<int> pk_positions = Positions(table, table.primary_key);
  for (const IndexMeta* index : maintained) {
    if (!index->unique) continue;
    if (plan.insert_conflict == "IGNORE" || plan.upsert_does_nothing) {
      return Error(absl::StatusCode::kUnimplemented, reason::kUnsupportedStatement,
                   absl::StrCat("INSERT OR IGNORE / ON CONFLICT DO NOTHING into ", table.name,
                                ", which has UNIQUE index ", index->name,
                                ", is not supported yet; use INSERT and handle "
                                "UNIQUE_VIOLATION"));
    }
    for (const auto& name : index->columns) {
      bool given = false;
      for (const auto& column : plan.insert_columns) given |= sql::SameName(column, name);
      const sql::ColumnSchema* column = FindColumn(table, name);
      if (!given && column != nullptr && !column->generated && !column->default_value.empty() &&
          !ConstantDefault(column->default_value)) {
        return Error(absl::StatusCode::kUnimplemented, reason::kUnsupportedStatement,
                     absl::StrCat("INSERT into ", table.name, " must give ", column->name,
                                  " a value: its DEFAULT (", column->default_value,
                                  ") is computed on the storage node, so UNIQUE index ",
                                  index->name, " could not be checked"));
      }
    }
    if (plan.upsert && Intersects(plan.upsert_assigned, index->columns)) {
      return Error(
          absl::StatusCode::kUnimplemented, reason::kUnsupportedStatement,
          absl::StrCat("ON CONFLICT … DO UPDATE of ", absl::StrJoin(index->columns, ", "),
                       ", a column of UNIQUE index ", index->name, ", is not supported yet"));
    }
  }
  std::vector<std::string> lock_keys;
  std::map<int64_t, std::map<std::string, NewRow>> unique_rows;
  for (const IndexMeta* index : maintained) {
    if (!index->unique) continue;
    const auto columns = IndexColumns(table, *index);
    const std::vector<int> positions = Positions(table, index->columns);
    auto& rows = unique_rows[index->index_id];
    for (const auto& row : plan.inserted_rows) {
      std::vector<Value> tuple = Pick(row.values, positions);
      auto key = EncodeIndexKey(tuple, columns);
      if (!key.has_value()) continue;
      NewRow fresh{row.shard_id, tuple, Pick(row.values, pk_positions)};
      auto [it, inserted] = rows.emplace(*key, fresh);
      if (!inserted) {
        // Two rows of this statement: fine only when they are one row
        // (same shard and key) that REPLACE or the upsert folds together.
        bool same_row = it->second.shard_id == fresh.shard_id &&
                        SameValues(it->second.primary_key, fresh.primary_key);
        bool folds = plan.insert_conflict == "REPLACE" || plan.upsert;
        if (!(folds && (same_row || (plan.insert_conflict == "REPLACE" &&
                                     it->second.shard_id == fresh.shard_id)))) {
          return UniqueViolation(table, *index, tuple);
        }
        it->second = fresh;
      }
      lock_keys.push_back(absl::StrCat(index->index_id, ":", *key));
    }
  }
  if (!lock_keys.empty()) {
    if (auto s = LockKeys(write, std::move(lock_keys), deadline); !s.ok()) return s;
    for (const IndexMeta* index : maintained) {
      if (!index->unique) continue;
      if (auto s = CheckUnique(table, *index, unique_rows[index->index_id], plan.insert_conflict,
                               plan.upsert, deadline);
          !s.ok()) {
        return s;
      }
    }
  }
  const bool may_remove = plan.insert_conflict == "REPLACE" || plan.upsert;
  for (const IndexMeta* index : maintained) {
    // A column the INSERT leaves to a DEFAULT that is not a constant
    // (CURRENT_TIMESTAMP, random()) gets its value on the node, which the
    // entries cannot know: the shards are dirty until recounted.
    bool unknowable = false;
    for (const auto& name : index->columns) {
      bool given = false;
      for (const auto& column : plan.insert_columns) given |= sql::SameName(column, name);
      const sql::ColumnSchema* column = FindColumn(table, name);
      if (!given && column != nullptr && !column->generated && !column->default_value.empty() &&
          !ConstantDefault(column->default_value)) {
        unknowable = true;
      }
    }
    if (unknowable) {
      std::lock_guard<std::mutex> lock(marks_mu_);
      for (int32_t shard : targets) MarkLocked(index->index_id, shard, write.seq(), true);
    }
    const auto columns = IndexColumns(table, *index);
    const std::vector<int> positions = Positions(table, index->columns);
    std::vector<IndexEntry> added;
    std::set<int32_t> shards;
    for (const auto& row : plan.inserted_rows) {
      auto key = EncodeIndexKey(Pick(row.values, positions), columns);
      if (!key.has_value()) continue;
      added.push_back({*key, row.shard_id});
      shards.insert(row.shard_id);
    }
    // The entries go in before any node is written (the invariant).
    if (auto s = entries_->Add(index->index_id, added, write.seq()); !s.ok()) return s;
    for (int32_t shard : shards) write.entries_on.emplace_back(index->index_id, shard);
    const bool changes_values = plan.upsert && Intersects(plan.upsert_assigned, index->columns);
    if (may_remove || changes_values) {
      std::lock_guard<std::mutex> lock(marks_mu_);
      for (int32_t shard : targets) {
        MarkLocked(index->index_id, shard, write.seq(), /*dirty=*/changes_values);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status IndexManager::CheckUnique(const TableMeta& table, const IndexMeta& index,
                                       const std::map<std::string, NewRow>& rows,
                                       const std::string& conflict, bool upsert,
                                       absl::Time deadline) {
  if (rows.empty()) return absl::OkStatus();
  std::vector<std::string> keys;
  for (const auto& [key, row] : rows) keys.push_back(key);
  const std::set<int32_t> dirty = DirtyShards(index.index_id);  // before the entries (ShardsFor)
  auto found = entries_->LookupEach(index.index_id, keys);
  if (!found.ok()) return found.status();
  // Per shard to read: the keys whose rows may be there.
  std::map<int32_t, std::vector<const std::string*>> by_shard;
  for (const auto& [key, row] : rows) {
    std::set<int32_t> candidates = dirty;
    auto it = found->find(key);
    if (it != found->end()) candidates.insert(it->second.begin(), it->second.end());
    for (int32_t shard : candidates) by_shard[shard].push_back(&key);
  }
  if (by_shard.empty()) return absl::OkStatus();
  auto snapshot = store_->snapshot();
  const auto columns = IndexColumns(table, index);
  std::vector<std::string> select;
  for (const auto& name : index.columns) select.push_back(QuoteIdentifier(name));
  for (const auto& name : table.primary_key) select.push_back(QuoteIdentifier(name));
  // One statement per shard (and per chunk of keys): `c IN (…)` for one
  // column, `(a = ? AND b = ?) OR …` for a tuple. Every row answered is
  // matched back to the key it holds.
  const std::string head =
      absl::StrCat("SELECT ", absl::StrJoin(select, ", "), " FROM ", QuoteIdentifier(table.name),
                   " WHERE ", sql::kVirtualShardColumn, " = ?1 AND ");
  const size_t width = index.columns.size();
  const size_t per_statement = std::max<size_t>(1, 900 / width);
  std::map<std::string, NodeBatch> batches;                        // by node
  std::map<std::string, std::vector<int32_t>> shard_by_statement;  // by node, statement order
  for (const auto& [shard_id, shard_keys] : by_shard) {
    const ShardMeta* shard = nullptr;
    for (const ShardMeta& s : table.shards) {
      if (s.shard_id == shard_id) shard = &s;
    }
    // Only active shards hold the table's rows (pending and retiring ones
    // of a reshard hold copies).
    if (shard == nullptr || shard->status != shard_status::kActive) continue;
    const NodeMeta* node = snapshot->FindNode(shard->node_id);
    NodeBatch& batch = batches[shard->node_id];
    batch.node = node != nullptr ? *node : NodeMeta{shard->node_id, ""};
    batch.request.set_read_only(true);
    for (size_t start = 0; start < shard_keys.size(); start += per_statement) {
      const size_t end = std::min(shard_keys.size(), start + per_statement);
      auto* statement = batch.request.add_statements();
      *statement->add_params() = IntegerValue(shard_id);
      std::vector<std::string> terms;
      for (size_t k = start; k < end; ++k) {
        std::vector<std::string> equalities;
        for (size_t c = 0; c < width; ++c) {
          *statement->add_params() = rows.at(*shard_keys[k]).tuple[c];
          equalities.push_back(
              absl::StrCat(QuoteIdentifier(index.columns[c]), " = ?", statement->params_size()));
        }
        terms.push_back(width == 1 ? absl::StrCat("?", statement->params_size())
                                   : absl::StrCat("(", absl::StrJoin(equalities, " AND "), ")"));
      }
      statement->set_sql(
          absl::StrCat(head, width == 1 ? absl::StrCat(QuoteIdentifier(index.columns[0]), " IN (",
                                                       absl::StrJoin(terms, ", "), ")")
                                        : absl::StrCat("(", absl::StrJoin(terms, " OR "), ")")));
      shard_by_statement[shard->node_id].push_back(shard_id);
    }
  }
  std::vector<NodeBatch> list;
  std::vector<std::string> node_order;
  for (auto& [node_id, batch] : batches) {
    list.push_back(std::move(batch));
    node_order.push_back(node_id);
  }
  auto answers =
      FanOut(*storage_, list, std::min(deadline, absl::Now() + options_.storage_timeout));
  for (size_t n = 0; n < answers.size(); ++n) {
    if (!answers[n].ok()) return answers[n].status();
    const auto& shards = shard_by_statement[node_order[n]];
    for (int i = 0; i < answers[n]->results_size() && i < static_cast<int>(shards.size()); ++i) {
      const int32_t shard_id = shards[i];
      for (const auto& row : answers[n]->results(i).rows()) {
        std::vector<Value> values(row.values().begin(), row.values().end());
        std::vector<Value> tuple(values.begin(), values.begin() + std::min(width, values.size()));
        std::vector<Value> pk(values.begin() + std::min(width, values.size()), values.end());
        auto key = EncodeIndexKey(tuple, columns);
        if (!key.has_value()) continue;
        auto mine_it = rows.find(*key);
        if (mine_it == rows.end()) continue;
        const NewRow& mine = mine_it->second;
        const bool same_shard = shard_id == mine.shard_id;
        if (same_shard && conflict == "REPLACE") continue;  // SQLite replaces it
        if (same_shard && upsert && SameValues(pk, mine.primary_key)) continue;  // the update
        return UniqueViolation(table, index, mine.tuple);
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> IndexManager::ShardHolds(const TableMeta& table, const IndexMeta& index,
                                              int32_t shard_id, const std::vector<Value>& tuple,
                                              absl::Time deadline) {
  auto snapshot = store_->snapshot();
  const ShardMeta* shard = nullptr;
  for (const ShardMeta& s : table.shards) {
    if (s.shard_id == shard_id) shard = &s;
  }
  if (shard == nullptr) return false;
  const NodeMeta* node = snapshot->FindNode(shard->node_id);
  std::vector<std::string> conditions;
  for (size_t i = 0; i < index.columns.size(); ++i) {
    conditions.push_back(absl::StrCat(QuoteIdentifier(index.columns[i]), " = ?", i + 2));
  }
  NodeBatch batch{node != nullptr ? *node : NodeMeta{shard->node_id, ""}, {}};
  batch.request.set_read_only(true);
  auto* statement = batch.request.add_statements();
  statement->set_sql(absl::StrCat("SELECT 1 FROM ", QuoteIdentifier(table.name), " WHERE ",
                                  sql::kVirtualShardColumn, " = ?1 AND ",
                                  absl::StrJoin(conditions, " AND "), " LIMIT 1"));
  *statement->add_params() = IntegerValue(shard_id);
  for (const Value& v : tuple) *statement->add_params() = v;
  auto answers =
      FanOut(*storage_, {batch}, std::min(deadline, absl::Now() + options_.storage_timeout));
  if (!answers[0].ok()) return answers[0].status();
  return answers[0]->results_size() > 0 && answers[0]->results(0).rows_size() > 0;
}

// ---- routing ----

std::set<int32_t> IndexManager::DirtyShards(int64_t index_id) const {
  std::set<int32_t> dirty;
  std::lock_guard<std::mutex> lock(marks_mu_);
  for (auto it = marks_.lower_bound({index_id, INT32_MIN});
       it != marks_.end() && it->first.first == index_id; ++it) {
    if (it->second.dirty_seq >= 0) dirty.insert(it->first.second);
  }
  return dirty;
}

absl::StatusOr<std::vector<int32_t>> IndexManager::ShardsFor(
    const TableMeta& table, const IndexMeta& index,
    const std::vector<std::vector<Value>>& tuples) const {
  const auto columns = IndexColumns(table, index);
  for (const auto* column : columns) {
    if (column == nullptr) return absl::InternalError("index column missing from its table");
  }
  std::vector<std::string> keys;
  for (const auto& tuple : tuples) {
    auto key = EncodeIndexKey(tuple, columns);
    if (key.has_value()) keys.push_back(std::move(*key));
  }
  // Marks first, entries second: a scan confirms its entries before it
  // clears a mark, so one of the two reads sees every shard holding a value.
  std::set<int32_t> shards = DirtyShards(index.index_id);
  if (!keys.empty()) {
    auto found = entries_->Lookup(index.index_id, keys);
    if (!found.ok()) return found.status();
    shards.insert(found->begin(), found->end());
  }
  return std::vector<int32_t>(shards.begin(), shards.end());
}

// ---- scans ----

absl::StatusOr<int64_t> IndexManager::BeginScan(int64_t index_id, int32_t shard_id,
                                                absl::Time deadline) {
  auto snapshot = store_->snapshot();
  auto [table, index] = FindIndexById(*snapshot, index_id);
  if (index == nullptr || !index->Maintained()) return IndexNotFound(index_id);
  bool has_shard = false;
  for (const ShardMeta& shard : table->shards) has_shard |= shard.shard_id == shard_id;
  if (!has_shard) {
    return Error(absl::StatusCode::kNotFound, reason::kIndexNotFound,
                 absl::StrCat("table ", table->name, " has no shard ", shard_id));
  }
  int64_t seq;
  {
    std::lock_guard<std::mutex> lock(flight_mu_);
    seq = next_seq_++;
  }
  // Persist first: sequence numbers after a restart must start above it.
  if (auto s = entries_->RaiseHighWater(seq); !s.ok()) return s;
  std::unique_lock<std::mutex> lock(flight_mu_);
  while (!in_flight_.empty() && *in_flight_.begin() < seq) {
    if (drain_cv_.wait_until(lock, absl::ToChronoTime(deadline)) == std::cv_status::timeout &&
        !in_flight_.empty() && *in_flight_.begin() < seq) {
      return absl::DeadlineExceededError(
          "deadline reached while waiting for writes in flight to finish before a shard scan");
    }
  }
  return seq;
}

absl::Status IndexManager::CheckScanSeq(int64_t seq) {
  std::lock_guard<std::mutex> lock(flight_mu_);
  if (seq >= next_seq_) {
    // Handed out by a conductor whose entry file this one does not have
    // (deleted or restored from an older copy): the scan must start again.
    return Error(absl::StatusCode::kFailedPrecondition, kScanRestartReason,
                 absl::StrCat("shard scan ", seq,
                              " is unknown to this conductor; begin the "
                              "shard's scan again"));
  }
  return absl::OkStatus();
}

absl::Status IndexManager::AddScanned(int64_t index_id, int32_t shard_id, int64_t seq,
                                      const std::vector<std::vector<Value>>& tuples,
                                      absl::Time deadline) {
  if (auto s = CheckScanSeq(seq); !s.ok()) return s;
  auto snapshot = store_->snapshot();
  auto [table, index] = FindIndexById(*snapshot, index_id);
  if (index == nullptr || !index->Maintained()) return IndexNotFound(index_id);
  bool has_shard = false;
  for (const ShardMeta& shard : table->shards) has_shard |= shard.shard_id == shard_id;
  if (!has_shard) {
    return Error(absl::StatusCode::kNotFound, reason::kIndexNotFound,
                 absl::StrCat("table ", table->name, " has no shard ", shard_id));
  }
  const auto columns = IndexColumns(*table, *index);
  for (const auto* column : columns) {
    if (column == nullptr) return absl::InternalError("index column missing from its table");
  }
  std::vector<IndexEntry> added;
  std::map<std::string, const std::vector<Value>*> by_key;
  for (const auto& tuple : tuples) {
    if (tuple.size() != columns.size()) {
      return Error(absl::StatusCode::kInvalidArgument, reason::kInvalidArgument,
                   absl::StrCat("a scanned tuple has ", tuple.size(), " values; index ",
                                index->name, " has ", columns.size(), " columns"));
    }
    auto key = EncodeIndexKey(tuple, columns);
    if (!key.has_value()) continue;
    if (index->unique) by_key[*key] = &tuple;
    added.push_back({std::move(*key), shard_id});
  }
  if (index->unique && !by_key.empty()) {
    // A value that another shard's entries hold is a duplicate if that
    // shard really has a row with it.
    std::vector<std::string> keys;
    for (const auto& [key, tuple] : by_key) keys.push_back(key);
    auto found = entries_->LookupEach(index_id, keys);
    if (!found.ok()) return found.status();
    for (const auto& [key, shards] : *found) {
      std::set<int32_t> others = shards;
      others.erase(shard_id);
      if (others.empty()) continue;
      // Hold the value's lock (writers of it wait), and count it a duplicate
      // only if the scanned shard still has it: the row may have moved to
      // the other shard since the scan read it.
      auto holder = BeginWrite();
      if (auto s = LockKeys(*holder, {absl::StrCat(index_id, ":", key)}, deadline); !s.ok()) {
        return s;
      }
      auto still = ShardHolds(*table, *index, shard_id, *by_key[key], deadline);
      if (!still.ok()) return still.status();
      if (!*still) continue;
      // "REPLACE": a row on the scanned shard itself is not a conflict.
      std::map<std::string, NewRow> one = {{key, NewRow{shard_id, *by_key[key], {}}}};
      if (auto s = CheckUnique(*table, *index, one, "REPLACE", false, deadline); !s.ok()) {
        return s;
      }
    }
  }
  return entries_->Add(index_id, added, seq);
}

absl::Status IndexManager::FinishScan(int64_t index_id, int32_t shard_id, int64_t seq) {
  if (auto s = CheckScanSeq(seq); !s.ok()) return s;
  ForgetCount(index_id);
  auto removed = entries_->DeleteOlderThan(index_id, shard_id, seq);
  if (!removed.ok()) return removed.status();
  std::lock_guard<std::mutex> lock(marks_mu_);
  auto it = marks_.find({index_id, shard_id});
  if (it != marks_.end()) {
    if (it->second.dirty_seq < seq) it->second.dirty_seq = -1;
    if (it->second.stale_seq < seq) it->second.stale_seq = -1;
    if (!it->second.NeedsScan() && it->second.job_id == 0) marks_.erase(it);
  }
  return absl::OkStatus();
}

void IndexManager::ForgetCount(int64_t index_id) const {
  std::lock_guard<std::mutex> lock(counts_mu_);
  entry_counts_.erase(index_id);
}

absl::Status IndexManager::Forget(int64_t index_id) {
  ForgetCount(index_id);
  {
    std::lock_guard<std::mutex> lock(marks_mu_);
    for (auto it = marks_.lower_bound({index_id, INT32_MIN});
         it != marks_.end() && it->first.first == index_id;) {
      it = marks_.erase(it);
    }
  }
  return entries_->DropIndex(index_id);
}

absl::Status IndexManager::ForgetShard(int64_t index_id, int32_t shard_id) {
  {
    std::lock_guard<std::mutex> lock(marks_mu_);
    marks_.erase({index_id, shard_id});
  }
  ForgetCount(index_id);
  auto removed = entries_->DeleteOlderThan(index_id, shard_id, INT64_MAX);
  return removed.status();
}

IndexCounts IndexManager::Counts(int64_t index_id) const {
  IndexCounts counts;
  {
    // Counting reads every entry of the index: at most once a second.
    std::lock_guard<std::mutex> lock(counts_mu_);
    auto cached = entry_counts_.find(index_id);
    if (cached != entry_counts_.end() && absl::Now() < cached->second.second) {
      counts.entry_count = cached->second.first;
    } else {
      auto count = entries_->Count(index_id);
      if (count.ok()) {
        counts.entry_count = *count;
        entry_counts_[index_id] = {*count, absl::Now() + kCountCacheTime};
      }
    }
  }
  std::lock_guard<std::mutex> lock(marks_mu_);
  for (auto it = marks_.lower_bound({index_id, INT32_MIN});
       it != marks_.end() && it->first.first == index_id; ++it) {
    if (it->second.NeedsScan()) ++counts.stale_shards;
  }
  return counts;
}

// ---- recount scheduling ----

void IndexManager::SchedulerLoop() {
  std::unique_lock<std::mutex> lock(scheduler_mu_);
  while (!stopping_) {
    scheduler_cv_.wait_for(lock, absl::ToChronoNanoseconds(options_.recount_interval));
    if (stopping_) break;
    lock.unlock();
    ScheduleRecounts();
    lock.lock();
  }
}

void IndexManager::ScheduleRecounts() {
  ReleaseSettledWrites(absl::Now());
  if (absl::Now() >= next_purge_) {
    // Recounts are frequent: finished jobs are dropped after an hour.
    next_purge_ = absl::Now() + absl::Minutes(1);
    auto purged = jobs_->PurgeFinished(jobs_->NowMs() - 3600 * 1000);
    if (!purged.ok()) LogWarning("could not purge finished jobs: %s", purged.status().message());
  }
  auto snapshot = store_->snapshot();
  std::vector<std::pair<ShardKey, int64_t>> running;
  std::vector<ShardKey> wanted;
  {
    std::lock_guard<std::mutex> lock(marks_mu_);
    const absl::Time now = absl::Now();
    for (auto it = marks_.begin(); it != marks_.end();) {
      auto [table, index] = FindIndexById(*snapshot, it->first.first);
      bool active = false;
      if (table != nullptr) {
        for (const ShardMeta& shard : table->shards) {
          active |= shard.shard_id == it->first.second && shard.status == shard_status::kActive;
        }
      }
      if (index == nullptr || !index->Maintained() || !active) {
        it = marks_.erase(it);  // the index is gone or failed, or the shard retired
        continue;
      }
      if (it->second.job_id != 0) {
        running.emplace_back(it->first, it->second.job_id);
      } else if (it->second.NeedsScan() && index->status == index_status::kReady &&
                 now >= it->second.retry_after) {
        wanted.push_back(it->first);
      }
      ++it;
    }
  }
  // Jobs that ended free their shard for the next recount.
  for (const auto& [shard_key, job_id] : running) {
    auto job = jobs_->Get(job_id);
    if (job.ok() && (job->state == JobState::kQueued || job->state == JobState::kLeased)) continue;
    std::lock_guard<std::mutex> lock(marks_mu_);
    auto it = marks_.find(shard_key);
    if (it == marks_.end() || it->second.job_id != job_id) continue;
    it->second.job_id = 0;
    if (!job.ok() || job->state != JobState::kDone) {
      // Back off: the delay doubles with each failure in a row, up to a minute.
      ++it->second.failures;
      absl::Duration delay = options_.recount_retry_delay;
      for (int i = 1; i < it->second.failures && delay < absl::Minutes(1); ++i) delay *= 2;
      it->second.retry_after = absl::Now() + std::min(delay, absl::Minutes(1));
      LogWarning("recount of index %d shard %d failed (%d in a row): %s", shard_key.first,
                 shard_key.second, it->second.failures,
                 job.ok() ? job->error : std::string(job.status().message()));
    } else {
      it->second.failures = 0;
    }
    if (!it->second.NeedsScan()) marks_.erase(it);
  }
  for (const ShardKey& shard_key : wanted) {
    auto job_id = jobs_->Enqueue(kRecountJobKind, JobPayload(shard_key.first, {shard_key.second}),
                                 Operation(shard_key.first));
    if (!job_id.ok()) {
      LogWarning("could not schedule the recount of index %d shard %d: %s", shard_key.first,
                 shard_key.second, job_id.status().message());
      continue;
    }
    std::lock_guard<std::mutex> lock(marks_mu_);
    auto it = marks_.find(shard_key);
    if (it != marks_.end()) it->second.job_id = *job_id;
  }
}

}  // namespace conductor
