// A SQLite-compatible tokenizer. It follows SQLite's own lexical rules
// (tokenize.c): identifiers (bare, "double", [bracket] and `backtick`
// quoted), 'string' literals with '' escapes, numeric literals (incl. hex and
// exponents), x'blob' literals, parameters (?, ?NNN, :name, @name, $name),
// operators, -- line and /* block */ comments, and whitespace.
#ifndef CONDUCTOR_COMMON_SQL_TOKENIZER_H_
#define CONDUCTOR_COMMON_SQL_TOKENIZER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace conductor::sql {

enum class TokenKind {
  kWhitespace,
  kComment,            // -- … or /* … */ (text includes the delimiters)
  kIdentifier,         // bare word: keywords are identifiers too (see IsKeyword)
  kQuotedIdentifier,   // "x", [x] or `x`
  kString,             // 'text'
  kNumber,             // 12, 1.5e3, 0x1F, .5
  kBlob,               // x'00ff'
  kParameter,          // ?, ?3, :name, @name, $name
  kOperator,           // ( ) , ; . + - * / % = == != <> < <= > >= || << >> & | ~ ->
  kEnd,                // always the last token; empty text
};

struct Token {
  TokenKind kind;
  absl::string_view text;  // a view into the tokenized SQL
  size_t offset;           // byte offset of text in the SQL
};

// Splits `sql` into tokens, trivia (whitespace, comments) included, ending
// with one kEnd token. Errors (INVALID_ARGUMENT, reason SQL_SYNTAX, message
// naming the offset): unterminated string, quoted identifier, block comment
// or blob literal; a malformed blob literal; a character SQLite does not accept.
absl::StatusOr<std::vector<Token>> Tokenize(absl::string_view sql);

// The value of an identifier token: bare words as written, quoted ones
// unquoted with doubled quote characters collapsed.
std::string IdentifierValue(const Token& token);

// The value of a 'string' token with '' collapsed.
std::string StringValue(const Token& token);

// True when `token` is a bare identifier equal to `keyword`, ASCII
// case-insensitively. Quoted identifiers are never keywords.
bool IsKeyword(const Token& token, absl::string_view keyword);

// ASCII case-insensitive identifier equality, as SQLite compares names.
bool SameName(absl::string_view a, absl::string_view b);

}  // namespace conductor::sql

#endif  // CONDUCTOR_COMMON_SQL_TOKENIZER_H_
