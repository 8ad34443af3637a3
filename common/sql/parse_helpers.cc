#include "common/sql/parse_helpers.h"

#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/sql/token_cursor.h"

namespace conductor::sql {
namespace {

// Keywords SQLite's grammar never accepts as an unquoted name (the ones
// without a %fallback ID in parse.y). Others (KEY, TEMP, LEFT…) are fine.
constexpr absl::string_view kReservedWords[] = {
    "ADD",     "ALL",        "ALTER",       "AND",     "AS",       "AUTOINCREMENT",
    "BETWEEN", "CASE",       "CHECK",       "COLLATE", "COMMIT",   "CONSTRAINT",
    "CREATE",  "DEFAULT",    "DEFERRABLE",  "DELETE",  "DISTINCT", "DROP",
    "ELSE",    "ESCAPE",     "EXCEPT",      "EXISTS",  "FOREIGN",  "FROM",
    "GROUP",   "HAVING",     "IN",          "INDEX",   "INSERT",   "INTERSECT",
    "INTO",    "IS",         "ISNULL",      "JOIN",    "LIMIT",    "NOT",
    "NOTHING", "NOTNULL",    "NULL",        "ON",      "OR",       "ORDER",
    "PRIMARY", "REFERENCES", "RETURNING",   "SELECT",  "SET",      "TABLE",
    "THEN",    "TO",         "TRANSACTION", "UNION",   "UNIQUE",   "UPDATE",
    "USING",   "VALUES",     "WHEN",        "WHERE",
};

constexpr absl::string_view kShardsWord = "shards";

// create_table.h's kVirtualShardColumn; not included to keep the dependency
// pointing from create_table to the parser only.
constexpr absl::string_view kHiddenColumn = "_virtualShard";

bool IsWordChar(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return absl::ascii_isalnum(u) || c == '_' || c == '$' || u >= 0x80;
}

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

// The first control character (C0, DEL, or C1 U+0080..U+009F) in valid
// UTF-8 `text`, or -1.
int FirstControlCharacter(absl::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) return c;
    if (c == 0xc2 && i + 1 < text.size()) {
      unsigned char next = static_cast<unsigned char>(text[i + 1]);
      if (next >= 0x80 && next <= 0x9f) return next;
    }
  }
  return -1;
}

absl::Status HintError(const Token& comment, absl::string_view problem) {
  return Error(absl::StatusCode::kInvalidArgument, reason::kSqlSyntax,
               absl::StrCat("invalid SHARDS hint in the comment at offset ", comment.offset, ": ",
                            problem, "; write /* SHARDS=<n> */"));
}

// Accumulates decimal or hex digits into a value no larger than `limit`.
bool AccumulateDigits(absl::string_view digits, int base, uint64_t limit, uint64_t* out) {
  uint64_t value = 0;
  for (char c : digits) {
    int digit;
    if (absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      digit = c - '0';
    } else if (base == 16 && absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      digit = absl::ascii_tolower(static_cast<unsigned char>(c)) - 'a' + 10;
    } else {
      return false;
    }
    if (value > (limit - digit) / base) return false;
    value = value * base + digit;
  }
  *out = value;
  return !digits.empty();
}

// Parses "<spaces><sign?><digits>" at `text[pos]` for a SHARDS hint.
absl::StatusOr<int64_t> HintValue(const Token& comment, absl::string_view text, size_t pos) {
  while (pos < text.size() && IsBlank(text[pos])) ++pos;
  bool negative = false;
  if (pos < text.size() && (text[pos] == '-' || text[pos] == '+')) {
    negative = text[pos] == '-';
    ++pos;
  }
  size_t start = pos;
  while (pos < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[pos]))) ++pos;
  if (pos == start || (pos < text.size() && (IsWordChar(text[pos]) || text[pos] == '.'))) {
    return HintError(comment, "SHARDS= must be followed by an integer");
  }
  Token number{TokenKind::kNumber, text.substr(start, pos - start), comment.offset};
  absl::StatusOr<int64_t> value = IntegerValue(number, negative);
  if (!value.ok()) return HintError(comment, "the shard count is out of range");
  return value;
}

// The hint inside one block comment, if it has one.
absl::StatusOr<std::optional<int64_t>> HintInComment(const Token& comment) {
  absl::string_view text = comment.text;
  if (!absl::StartsWith(text, "/*")) return std::nullopt;
  for (size_t i = 0; i + kShardsWord.size() <= text.size(); ++i) {
    if (i > 0 && IsWordChar(text[i - 1])) continue;
    if (!absl::EqualsIgnoreCase(text.substr(i, kShardsWord.size()), kShardsWord)) continue;
    size_t pos = i + kShardsWord.size();
    if (pos < text.size() && IsWordChar(text[pos])) continue;
    while (pos < text.size() && IsBlank(text[pos])) ++pos;
    // "shards" without '=' is prose ("/* few shards */"), not a hint.
    if (pos >= text.size() || text[pos] != '=') continue;
    absl::StatusOr<int64_t> value = HintValue(comment, text, pos + 1);
    if (!value.ok()) return value.status();
    return std::optional<int64_t>(*value);
  }
  return std::nullopt;
}

}  // namespace

bool IsValidUtf8(absl::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    unsigned char lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    // The lead byte gives the sequence length and the smallest code point
    // that needs that length (anything smaller is an overlong encoding).
    size_t length = 0;
    uint32_t minimum = 0;
    if ((lead & 0xe0) == 0xc0) {
      length = 2;
      minimum = 0x80;
    } else if ((lead & 0xf0) == 0xe0) {
      length = 3;
      minimum = 0x800;
    } else if ((lead & 0xf8) == 0xf0) {
      length = 4;
      minimum = 0x10000;
    } else {
      return false;  // a continuation byte or 0xf8..0xff where a character must start
    }
    uint32_t code_point = lead & (0x7f >> length);
    if (i + length > text.size()) return false;
    for (size_t k = 1; k < length; ++k) {
      unsigned char next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xc0) != 0x80) return false;
      code_point = (code_point << 6) | (next & 0x3f);
    }
    if (code_point < minimum || code_point > 0x10ffff) return false;
    if (code_point >= 0xd800 && code_point <= 0xdfff) return false;
    i += length;
  }
  return true;
}

absl::Status CheckName(absl::string_view name, absl::string_view what,
                       absl::string_view error_reason) {
  auto fail = [&](absl::string_view problem) {
    return Error(absl::StatusCode::kInvalidArgument, error_reason, absl::StrCat(what, problem));
  };
  if (name.empty()) return fail(" is empty");
  if (name.size() > kMaxNameBytes) {
    return fail(absl::StrCat(" is ", name.size(), " bytes long; the limit is ", kMaxNameBytes));
  }
  if (!IsValidUtf8(name)) return fail(" is not valid UTF-8");
  if (int c = FirstControlCharacter(name); c >= 0) {
    return fail(absl::StrCat(" contains the control character 0x", absl::Hex(c, absl::kZeroPad2),
                             "; names must be printable"));
  }
  if (absl::StartsWithIgnoreCase(name, "sqlite_")) {
    return fail(absl::StrCat(" \"", name,
                             "\" is reserved: names starting with sqlite_ belong to "
                             "SQLite"));
  }
  if (absl::StartsWithIgnoreCase(name, "_conductor_")) {
    return fail(absl::StrCat(" \"", name,
                             "\" is reserved: names starting with _conductor_ belong to "
                             "Conductor (change capture, fences, node records)"));
  }
  if (SameName(name, kHiddenColumn)) {
    return fail(absl::StrCat(" \"", name, "\" is reserved: ", kHiddenColumn,
                             " is Conductor's hidden routing column"));
  }
  return absl::OkStatus();
}

bool IsReservedWord(absl::string_view word) {
  for (absl::string_view reserved : kReservedWords) {
    if (absl::EqualsIgnoreCase(word, reserved)) return true;
  }
  return false;
}

bool IsIntegerLiteral(const Token& token) {
  if (token.kind != TokenKind::kNumber) return false;
  absl::string_view text = token.text;
  bool hex = absl::StartsWithIgnoreCase(text, "0x");
  if (hex) text.remove_prefix(2);
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (!(hex ? absl::ascii_isxdigit(u) : absl::ascii_isdigit(u))) return false;
  }
  return !text.empty();
}

absl::StatusOr<int64_t> IntegerValue(const Token& number, bool negative) {
  if (!IsIntegerLiteral(number)) return SyntaxError(number, "an integer");
  absl::string_view text = number.text;
  int base = 10;
  if (absl::StartsWithIgnoreCase(text, "0x")) {
    base = 16;
    text.remove_prefix(2);
  }
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t magnitude = 0;
  if (!AccumulateDigits(text, base, negative ? kMax + 1 : kMax, &magnitude)) {
    return Error(absl::StatusCode::kInvalidArgument, reason::kSqlSyntax,
                 absl::StrCat("the integer ", negative ? "-" : "", number.text, " at offset ",
                              number.offset, " is out of range"));
  }
  if (!negative) return static_cast<int64_t>(magnitude);
  // -(2^63) has no positive counterpart, so negate in unsigned arithmetic.
  return static_cast<int64_t>(~magnitude + 1);
}

absl::StatusOr<std::optional<int64_t>> FindShardsHint(const std::vector<Token>& tokens) {
  std::optional<int64_t> found;
  for (const Token& token : tokens) {
    if (token.kind != TokenKind::kComment) continue;
    absl::StatusOr<std::optional<int64_t>> hint = HintInComment(token);
    if (!hint.ok()) return hint.status();
    if (!hint->has_value()) continue;
    if (found.has_value() && *found != **hint) {
      return HintError(token, absl::StrCat("it disagrees with the earlier SHARDS=", *found));
    }
    found = *hint;
  }
  return found;
}

absl::Status Unsupported(absl::string_view message) {
  return Error(absl::StatusCode::kUnimplemented, reason::kUnsupportedStatement, message);
}

}  // namespace conductor::sql
