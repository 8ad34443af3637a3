// Small building blocks behind ParseStatement and AnalyzeCreateTable: name
// rules, UTF-8 validation, integer literals and the /* SHARDS=n */ hint.
#ifndef CONDUCTOR_COMMON_SQL_PARSE_HELPERS_H_
#define CONDUCTOR_COMMON_SQL_PARSE_HELPERS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/sql/tokenizer.h"

namespace conductor::sql {

// Names longer than this many bytes are refused.
inline constexpr size_t kMaxNameBytes = 128;

// True when `text` is well-formed UTF-8: no overlong forms, no surrogates,
// nothing above U+10FFFF.
bool IsValidUtf8(absl::string_view text);

// The rules of ValidateName; failures are INVALID_ARGUMENT with `error_reason`
// (SQL_SYNTAX for names inside SQL, INVALID_ARGUMENT for typed requests).
absl::Status CheckName(absl::string_view name, absl::string_view what,
                       absl::string_view error_reason);

// True for the SQLite keywords that can never be a bare (unquoted) name.
bool IsReservedWord(absl::string_view word);

// True for a number token written as an integer: decimal digits or 0x hex.
bool IsIntegerLiteral(const Token& token);

// The value of an integer literal token (decimal or 0x hex), negated when
// `negative`. INVALID_ARGUMENT / SQL_SYNTAX for a non-integer or a value
// outside int64.
absl::StatusOr<int64_t> IntegerValue(const Token& number, bool negative);

// n from the first /* SHARDS=n */ block comment among `tokens` (the word
// SHARDS in any case, optional spaces around '='), or nullopt when there is
// none. A comment whose SHARDS= is not followed by an integer, or two hints
// that disagree, are INVALID_ARGUMENT / SQL_SYNTAX.
absl::StatusOr<std::optional<int64_t>> FindShardsHint(const std::vector<Token>& tokens);

// UNIMPLEMENTED / UNSUPPORTED_STATEMENT with `message`.
absl::Status Unsupported(absl::string_view message);

}  // namespace conductor::sql

#endif  // CONDUCTOR_COMMON_SQL_PARSE_HELPERS_H_
