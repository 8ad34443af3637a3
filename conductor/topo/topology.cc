#include "conductor/topo/topology.h"

#include <algorithm>

namespace conductor {

const char* TableStateName(TableState state) {
  switch (state) {
    case TableState::kCreating:
      return "creating";
    case TableState::kActive:
      return "active";
    case TableState::kDropping:
      return "dropping";
    case TableState::kRenaming:
      return "renaming";
  }
  return "unknown";
}

bool ParseTableState(const std::string& text, TableState* state) {
  for (TableState s :
       {TableState::kCreating, TableState::kActive, TableState::kDropping, TableState::kRenaming}) {
    if (text == TableStateName(s)) {
      *state = s;
      return true;
    }
  }
  return false;
}

int32_t TableMeta::ActiveShardCount() const {
  return static_cast<int32_t>(std::count_if(shards.begin(), shards.end(), [](const ShardMeta& s) {
    return s.status == shard_status::kActive;
  }));
}

std::string LowerName(const std::string& name) {
  std::string out = name;
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

const TableMeta* Snapshot::FindActive(const std::string& name) const {
  auto it = tables.find(LowerName(name));
  if (it == tables.end() || it->second.state != TableState::kActive) return nullptr;
  return &it->second;
}

const TableMeta* Snapshot::FindAny(const std::string& name) const {
  std::string key = LowerName(name);
  auto it = tables.find(key);
  if (it != tables.end()) return &it->second;
  for (const auto& [unused, table] : tables) {
    if (table.state == TableState::kRenaming && LowerName(table.pending_name) == key) {
      return &table;
    }
  }
  return nullptr;
}

const NodeMeta* Snapshot::FindNode(const std::string& node_id) const {
  for (const NodeMeta& node : nodes) {
    if (node.node_id == node_id) return &node;
  }
  return nullptr;
}

std::pair<const TableMeta*, const IndexMeta*> Snapshot::FindIndex(const std::string& name) const {
  const std::string key = LowerName(name);
  for (const auto& [unused, table] : tables) {
    for (const IndexMeta& index : table.indexes) {
      if (LowerName(index.name) == key) return {&table, &index};
    }
  }
  return {nullptr, nullptr};
}

bool IndexMeta::Maintained() const {
  return status == index_status::kBuilding || status == index_status::kReady;
}

bool IndexMeta::Visible() const { return Maintained() || status == index_status::kFailed; }

}  // namespace conductor
