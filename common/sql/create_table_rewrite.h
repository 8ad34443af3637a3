// The token-level _virtualShard rewrite behind AnalyzeCreateTable. It assumes
// SQLite has already accepted the statement, and edits only what it must:
// everything it does not move is copied byte for byte, comments included.
#ifndef CONDUCTOR_COMMON_SQL_CREATE_TABLE_REWRITE_H_
#define CONDUCTOR_COMMON_SQL_CREATE_TABLE_REWRITE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/sql/create_table.h"
#include "common/sql/tokenizer.h"

namespace conductor::sql {

// Rewrites the CREATE TABLE statement in `statement` (the tokens of one
// statement, ending with kEnd) into TableSchema::physical_sql. `table` is the
// unqualified table name and `columns` the user's columns as SQLite reported
// them (used for the primary-key positions and existing NOT NULLs).
// UNIMPLEMENTED / UNSUPPORTED_STATEMENT for syntax the rewriter does not know.
absl::StatusOr<std::string> RewriteCreateTable(const std::vector<Token>& statement,
                                               absl::string_view table,
                                               const std::vector<ColumnSchema>& columns);

}  // namespace conductor::sql

#endif  // CONDUCTOR_COMMON_SQL_CREATE_TABLE_REWRITE_H_
