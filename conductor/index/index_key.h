// The key of a virtual index entry: a tuple of index column values encoded
// so that two tuples get the same key exactly when SQLite's `=` (with each
// column's affinity and collation) holds between them column by column —
// which is also what the SQLite UNIQUE index on the same columns enforces.
#ifndef CONDUCTOR_CONDUCTOR_INDEX_INDEX_KEY_H_
#define CONDUCTOR_CONDUCTOR_INDEX_INDEX_KEY_H_

#include <optional>
#include <string>
#include <vector>

#include "common/sql/create_table.h"
#include "conductor/v1/value.pb.h"

namespace conductor {

// Encodes `values` (one per column of `columns`, in order). Each value first
// gets its column's affinity; integers and integral reals encode alike
// (1 = 1.0); text is folded by the column's collation (NOCASE: ASCII
// lower-case; RTRIM: trailing spaces dropped). nullopt when any value is
// NULL: NULLs are not indexed. REQUIRES: values.size() == columns.size().
std::optional<std::string> EncodeIndexKey(const std::vector<conductor::v1::Value>& values,
                                          const std::vector<const sql::ColumnSchema*>& columns);

// The tuple for messages: `'a@b.c'`, `(1, 'x')`, blobs as X'..'.
std::string DescribeTuple(const std::vector<conductor::v1::Value>& values);

}  // namespace conductor

#endif  // CONDUCTOR_CONDUCTOR_INDEX_INDEX_KEY_H_
