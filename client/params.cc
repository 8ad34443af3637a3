#include "client/params.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace conductor {
namespace {

// Optional sign, then digits, with an optional '.', and an optional exponent;
// at least one digit before the exponent.
bool LooksNumeric(absl::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  bool digits = false;
  while (i < s.size() && absl::ascii_isdigit(s[i])) ++i, digits = true;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && absl::ascii_isdigit(s[i])) ++i, digits = true;
  }
  if (!digits) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    bool exponent_digits = false;
    while (i < s.size() && absl::ascii_isdigit(s[i])) ++i, exponent_digits = true;
    if (!exponent_digits) return false;
  }
  return i == s.size();
}

}  // namespace

absl::StatusOr<v1::Value> ParseParam(absl::string_view arg) {
  v1::Value value;
  if (arg == "NULL") {
    value.set_null_value(true);
    return value;
  }
  if (arg.size() >= 3 && (arg[0] == 'x' || arg[0] == 'X') && arg[1] == '\'' && arg.back() == '\'') {
    absl::string_view hex = arg.substr(2, arg.size() - 3);
    bool valid = hex.size() % 2 == 0;
    for (char c : hex) valid = valid && absl::ascii_isxdigit(c);
    if (!valid) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter ", arg, ": a blob needs an even number of hex digits"));
    }
    value.set_blob(absl::HexStringToBytes(hex));
    return value;
  }
  if (LooksNumeric(arg)) {
    int64_t integer = 0;
    bool integral = arg.find_first_of(".eE") == absl::string_view::npos;
    if (integral && absl::SimpleAtoi(arg, &integer)) {
      value.set_integer(integer);
    } else {
      value.set_real(std::strtod(std::string(arg).c_str(), nullptr));
    }
    return value;
  }
  value.set_text(std::string(arg));
  return value;
}

}  // namespace conductor
