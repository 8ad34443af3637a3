// Helpers shared by the statement parser and the CREATE TABLE rewriter: a
// cursor that walks the significant tokens (skipping whitespace and comments
// while leaving them in the list, so rewrites can keep them), and the
// uniform "near <token>: expected …" syntax error.
#ifndef CONDUCTOR_COMMON_SQL_TOKEN_CURSOR_H_
#define CONDUCTOR_COMMON_SQL_TOKEN_CURSOR_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/sql/tokenizer.h"

namespace conductor::sql {

// True for whitespace and comments.
bool IsTrivia(const Token& token);

// True for the operator token `op` (e.g. "(" or ",").
bool IsOperator(const Token& token, absl::string_view op);

// True for tokens that can name something: bare words, quoted identifiers and
// 'strings' (SQLite accepts a string literal where a name is expected).
bool IsNameToken(const Token& token);

// How a token is shown in messages: `"FROM" (offset 14)`, or "end of
// statement (offset 20)". Long tokens are shortened.
std::string DescribeToken(const Token& token);

// INVALID_ARGUMENT / SQL_SYNTAX: `near "FROM" (offset 14): expected a table name`.
absl::Status SyntaxError(const Token& token, absl::string_view expected);

// The tokens of the first statement of `tokens` (up to, not including, its
// ';'), ending with a kEnd token placed where the statement ends. Leading
// empty statements (";") and whitespace are skipped; the result is just the
// kEnd token when there is no statement at all. INVALID_ARGUMENT / SQL_SYNTAX
// when anything but ';' and trivia follows the statement.
absl::StatusOr<std::vector<Token>> FirstStatement(const std::vector<Token>& tokens);

// Walks the significant tokens of a token list that ends with kEnd. Peeking
// past the end keeps returning the kEnd token.
class TokenCursor {
 public:
  explicit TokenCursor(const std::vector<Token>& tokens);

  const Token& Peek(size_t ahead = 0) const;
  // The index in the token list of the token Peek(ahead) returns.
  size_t PeekIndex(size_t ahead = 0) const;
  // Returns the current token and advances past it.
  const Token& Next();
  bool AtEnd() const { return Peek().kind == TokenKind::kEnd; }
  // The index in the token list of the token Next() last returned.
  size_t LastIndex() const { return last_; }

  bool PeekKeyword(absl::string_view keyword, size_t ahead = 0) const {
    return IsKeyword(Peek(ahead), keyword);
  }
  bool PeekOperator(absl::string_view op, size_t ahead = 0) const {
    return IsOperator(Peek(ahead), op);
  }
  // Consume the current token when it matches.
  bool TryKeyword(absl::string_view keyword);
  bool TryOperator(absl::string_view op);
  // Consume the current token or fail with a syntax error naming `expected`.
  absl::Status ExpectKeyword(absl::string_view keyword);
  absl::Status ExpectOperator(absl::string_view op);
  absl::Status ExpectEnd();

  // Skips a balanced parenthesised group; the cursor must be on its "(".
  // Leaves the cursor after the matching ")".
  absl::Status SkipParenthesized();

  const std::vector<Token>& tokens() const { return tokens_; }

 private:
  const std::vector<Token>& tokens_;
  std::vector<size_t> significant_;  // indices of non-trivia tokens; last is kEnd
  size_t pos_ = 0;                   // into significant_
  size_t last_ = 0;
};

}  // namespace conductor::sql

#endif  // CONDUCTOR_COMMON_SQL_TOKEN_CURSOR_H_
