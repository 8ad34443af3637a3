#include "common/sql/tokenizer.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"

namespace conductor::sql {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'; }

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsHexDigit(char c) { return absl::ascii_isxdigit(static_cast<unsigned char>(c)); }

// SQLite treats every byte >= 0x80 as part of an identifier, which is how
// UTF-8 names work without the tokenizer decoding them.
bool IsIdStart(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return absl::ascii_isalpha(u) || c == '_' || u >= 0x80;
}

bool IsIdChar(char c) { return IsIdStart(c) || IsDigit(c) || c == '$'; }

absl::Status TokenError(size_t offset, absl::string_view what) {
  return Error(absl::StatusCode::kInvalidArgument, reason::kSqlSyntax,
               absl::StrCat(what, " at offset ", offset));
}

// Scans the SQL one token at a time. Each Scan* method is entered with pos_
// at the token's first byte and returns the token's length.
class Scanner {
 public:
  explicit Scanner(absl::string_view sql) : sql_(sql) {}

  absl::StatusOr<std::vector<Token>> Run() {
    std::vector<Token> tokens;
    while (pos_ < sql_.size()) {
      TokenKind kind;
      absl::StatusOr<size_t> length = ScanOne(&kind);
      if (!length.ok()) return length.status();
      tokens.push_back(Token{kind, sql_.substr(pos_, *length), pos_});
      pos_ += *length;
    }
    tokens.push_back(Token{TokenKind::kEnd, sql_.substr(sql_.size(), 0), sql_.size()});
    return tokens;
  }

 private:
  char At(size_t i) const { return i < sql_.size() ? sql_[i] : '\0'; }

  absl::StatusOr<size_t> ScanOne(TokenKind* kind) {
    char c = sql_[pos_];
    char next = At(pos_ + 1);
    if (IsSpace(c)) {
      *kind = TokenKind::kWhitespace;
      size_t i = pos_;
      while (i < sql_.size() && IsSpace(sql_[i])) ++i;
      return i - pos_;
    }
    if (c == '-' && next == '-') {
      *kind = TokenKind::kComment;
      size_t end = sql_.find('\n', pos_);
      return (end == absl::string_view::npos ? sql_.size() : end) - pos_;
    }
    if (c == '/' && next == '*') {
      *kind = TokenKind::kComment;
      size_t end = sql_.find("*/", pos_ + 2);
      if (end == absl::string_view::npos) return TokenError(pos_, "unterminated /* comment");
      return end + 2 - pos_;
    }
    if ((c == 'x' || c == 'X') && next == '\'') {
      *kind = TokenKind::kBlob;
      return ScanBlob();
    }
    if (c == '\'') {
      *kind = TokenKind::kString;
      return ScanQuoted('\'', "unterminated string literal");
    }
    if (c == '"' || c == '`') {
      *kind = TokenKind::kQuotedIdentifier;
      return ScanQuoted(c, "unterminated quoted identifier");
    }
    if (c == '[') {
      *kind = TokenKind::kQuotedIdentifier;
      size_t end = sql_.find(']', pos_);
      if (end == absl::string_view::npos) return TokenError(pos_, "unterminated [identifier]");
      return end + 1 - pos_;
    }
    if (IsDigit(c) || (c == '.' && IsDigit(next))) {
      *kind = TokenKind::kNumber;
      return ScanNumber();
    }
    if (c == '?' || c == ':' || c == '@' || c == '$' || c == '#') {
      *kind = TokenKind::kParameter;
      return ScanParameter();
    }
    if (IsIdStart(c)) {
      *kind = TokenKind::kIdentifier;
      size_t i = pos_;
      while (i < sql_.size() && IsIdChar(sql_[i])) ++i;
      return i - pos_;
    }
    *kind = TokenKind::kOperator;
    return ScanOperator();
  }

  // 'text', "ident" or `ident`: the quote character doubled is an escape.
  absl::StatusOr<size_t> ScanQuoted(char quote, absl::string_view unterminated) {
    size_t i = pos_ + 1;
    while (i < sql_.size()) {
      if (sql_[i] == quote) {
        if (At(i + 1) != quote) return i + 1 - pos_;
        i += 2;
      } else {
        ++i;
      }
    }
    return TokenError(pos_, unterminated);
  }

  // x'hex': an even number of hex digits.
  absl::StatusOr<size_t> ScanBlob() {
    size_t i = pos_ + 2;
    while (i < sql_.size() && IsHexDigit(sql_[i])) ++i;
    if (i >= sql_.size()) return TokenError(pos_, "unterminated blob literal");
    if (sql_[i] != '\'') {
      size_t close = sql_.find('\'', i);
      if (close == absl::string_view::npos) return TokenError(pos_, "unterminated blob literal");
      return TokenError(pos_, "malformed blob literal (only hex digits are allowed)");
    }
    if ((i - pos_ - 2) % 2 != 0) {
      return TokenError(pos_, "malformed blob literal (odd number of hex digits)");
    }
    return i + 1 - pos_;
  }

  // 12, 1.5, .5, 1e10, 1.5E-3, 0x1F. Like SQLite, a number running straight
  // into identifier characters (12abc, 1e, 0x) is not a token.
  absl::StatusOr<size_t> ScanNumber() {
    size_t i = pos_;
    if (sql_[i] == '0' && (At(i + 1) == 'x' || At(i + 1) == 'X') && IsHexDigit(At(i + 2))) {
      i += 2;
      while (i < sql_.size() && IsHexDigit(sql_[i])) ++i;
    } else {
      while (IsDigit(At(i))) ++i;
      if (At(i) == '.') {
        ++i;
        while (IsDigit(At(i))) ++i;
      }
      char e = At(i);
      if ((e == 'e' || e == 'E') &&
          (IsDigit(At(i + 1)) || ((At(i + 1) == '+' || At(i + 1) == '-') && IsDigit(At(i + 2))))) {
        i += 2;
        while (IsDigit(At(i))) ++i;
      }
    }
    if (IsIdChar(At(i))) return TokenError(pos_, "malformed number");
    return i - pos_;
  }

  // ?, ?NNN, :name, @name, $name (with Tcl-style :: separators), #name.
  absl::StatusOr<size_t> ScanParameter() {
    size_t i = pos_ + 1;
    if (sql_[pos_] == '?') {
      while (IsDigit(At(i))) ++i;
      return i - pos_;
    }
    while (i < sql_.size()) {
      if (IsIdChar(sql_[i])) {
        ++i;
      } else if (sql_[i] == ':' && At(i + 1) == ':') {
        i += 2;
      } else {
        break;
      }
    }
    if (i == pos_ + 1) return TokenError(pos_, "parameter without a name");
    return i - pos_;
  }

  absl::StatusOr<size_t> ScanOperator() {
    char c = sql_[pos_];
    char next = At(pos_ + 1);
    switch (c) {
      case '(':
      case ')':
      case ',':
      case ';':
      case '.':
      case '+':
      case '*':
      case '/':
      case '%':
      case '&':
      case '~':
        return 1;
      case '-':
        if (next == '>') return At(pos_ + 2) == '>' ? 3 : 2;
        return 1;
      case '=':
        return next == '=' ? 2 : 1;
      case '<':
        return (next == '=' || next == '>' || next == '<') ? 2 : 1;
      case '>':
        return (next == '=' || next == '>') ? 2 : 1;
      case '|':
        return next == '|' ? 2 : 1;
      case '!':
        if (next == '=') return 2;
        break;
      default:
        break;
    }
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return TokenError(
          pos_, absl::StrCat("unexpected control character 0x", absl::Hex(u, absl::kZeroPad2)));
    }
    return TokenError(pos_, absl::StrCat("unrecognized token \"", sql_.substr(pos_, 1), "\""));
  }

  absl::string_view sql_;
  size_t pos_ = 0;
};

// Strips the outer quotes and collapses the doubled `quote` escapes.
std::string Unquote(absl::string_view text, char quote) {
  std::string out;
  if (text.size() < 2) return out;
  absl::string_view inner = text.substr(1, text.size() - 2);
  out.reserve(inner.size());
  for (size_t i = 0; i < inner.size(); ++i) {
    out.push_back(inner[i]);
    if (inner[i] == quote && i + 1 < inner.size() && inner[i + 1] == quote) ++i;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<Token>> Tokenize(absl::string_view sql) { return Scanner(sql).Run(); }

std::string IdentifierValue(const Token& token) {
  absl::string_view text = token.text;
  switch (token.kind) {
    case TokenKind::kQuotedIdentifier:
      if (text.empty()) return "";
      if (text[0] == '[') return std::string(text.substr(1, text.size() - 2));
      return Unquote(text, text[0]);
    case TokenKind::kString:
      // SQLite accepts 'name' where a name is expected, for compatibility.
      return Unquote(text, '\'');
    default:
      return std::string(text);
  }
}

std::string StringValue(const Token& token) { return Unquote(token.text, '\''); }

bool IsKeyword(const Token& token, absl::string_view keyword) {
  return token.kind == TokenKind::kIdentifier && absl::EqualsIgnoreCase(token.text, keyword);
}

bool SameName(absl::string_view a, absl::string_view b) { return absl::EqualsIgnoreCase(a, b); }

}  // namespace conductor::sql
