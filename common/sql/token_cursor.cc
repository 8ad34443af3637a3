#include "common/sql/token_cursor.h"

#include "absl/strings/str_cat.h"
#include "common/errors.h"

namespace conductor::sql {
namespace {

constexpr size_t kMaxShownToken = 40;

}  // namespace

bool IsTrivia(const Token& token) {
  return token.kind == TokenKind::kWhitespace || token.kind == TokenKind::kComment;
}

bool IsOperator(const Token& token, absl::string_view op) {
  return token.kind == TokenKind::kOperator && token.text == op;
}

bool IsNameToken(const Token& token) {
  return token.kind == TokenKind::kIdentifier || token.kind == TokenKind::kQuotedIdentifier ||
         token.kind == TokenKind::kString;
}

std::string DescribeToken(const Token& token) {
  if (token.kind == TokenKind::kEnd) {
    return absl::StrCat("end of statement (offset ", token.offset, ")");
  }
  absl::string_view text = token.text;
  std::string shown = text.size() > kMaxShownToken
                          ? absl::StrCat(text.substr(0, kMaxShownToken), "...")
                          : std::string(text);
  return absl::StrCat("\"", shown, "\" (offset ", token.offset, ")");
}

absl::Status SyntaxError(const Token& token, absl::string_view expected) {
  absl::string_view where = token.kind == TokenKind::kEnd ? "at " : "near ";
  return Error(absl::StatusCode::kInvalidArgument, reason::kSqlSyntax,
               absl::StrCat(where, DescribeToken(token), ": expected ", expected));
}

absl::StatusOr<std::vector<Token>> FirstStatement(const std::vector<Token>& tokens) {
  // Leading ';' are empty statements (SQLite skips them). Comments after
  // the last of them belong to the statement; whitespace does not matter.
  size_t i = 0;
  for (size_t j = 0; j < tokens.size() && (IsTrivia(tokens[j]) || IsOperator(tokens[j], ";"));
       ++j) {
    if (IsOperator(tokens[j], ";")) i = j + 1;
  }
  while (i < tokens.size() && tokens[i].kind == TokenKind::kWhitespace) ++i;
  std::vector<Token> statement;
  for (; i < tokens.size() && tokens[i].kind != TokenKind::kEnd; ++i) {
    if (IsOperator(tokens[i], ";")) break;
    statement.push_back(tokens[i]);
  }
  // The statement's kEnd sits where the terminator (or the input) ends it.
  statement.push_back(Token{TokenKind::kEnd, tokens[i].text.substr(0, 0), tokens[i].offset});
  for (; i < tokens.size(); ++i) {
    const Token& token = tokens[i];
    if (token.kind == TokenKind::kEnd || IsTrivia(token) || IsOperator(token, ";")) continue;
    return Error(absl::StatusCode::kInvalidArgument, reason::kSqlSyntax,
                 absl::StrCat("only one statement is allowed per request; found another starting "
                              "near ",
                              DescribeToken(token)));
  }
  return statement;
}

TokenCursor::TokenCursor(const std::vector<Token>& tokens) : tokens_(tokens) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    if (!IsTrivia(tokens_[i])) significant_.push_back(i);
    if (tokens_[i].kind == TokenKind::kEnd) break;
  }
}

size_t TokenCursor::PeekIndex(size_t ahead) const {
  size_t at = pos_ + ahead;
  if (at >= significant_.size()) at = significant_.size() - 1;
  return significant_[at];
}

const Token& TokenCursor::Peek(size_t ahead) const { return tokens_[PeekIndex(ahead)]; }

const Token& TokenCursor::Next() {
  const Token& token = Peek();
  last_ = PeekIndex();
  if (pos_ + 1 < significant_.size()) ++pos_;
  return token;
}

bool TokenCursor::TryKeyword(absl::string_view keyword) {
  if (!PeekKeyword(keyword)) return false;
  Next();
  return true;
}

bool TokenCursor::TryOperator(absl::string_view op) {
  if (!PeekOperator(op)) return false;
  Next();
  return true;
}

absl::Status TokenCursor::ExpectKeyword(absl::string_view keyword) {
  if (TryKeyword(keyword)) return absl::OkStatus();
  return SyntaxError(Peek(), keyword);
}

absl::Status TokenCursor::ExpectOperator(absl::string_view op) {
  if (TryOperator(op)) return absl::OkStatus();
  return SyntaxError(Peek(), absl::StrCat("\"", op, "\""));
}

absl::Status TokenCursor::ExpectEnd() {
  if (AtEnd()) return absl::OkStatus();
  return SyntaxError(Peek(), "end of statement");
}

absl::Status TokenCursor::SkipParenthesized() {
  const Token& open = Peek();
  if (!IsOperator(open, "(")) return SyntaxError(open, "\"(\"");
  int depth = 0;
  while (!AtEnd()) {
    const Token& token = Next();
    if (IsOperator(token, "(")) ++depth;
    if (IsOperator(token, ")") && --depth == 0) return absl::OkStatus();
  }
  return SyntaxError(Peek(), absl::StrCat("\")\" to close the \"(\" at offset ", open.offset));
}

}  // namespace conductor::sql
