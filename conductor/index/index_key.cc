#include "conductor/index/index_key.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/routing.h"
#include "common/sql/tokenizer.h"

namespace conductor {
namespace {

using conductor::v1::Value;

void AppendUint64(uint64_t v, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

void AppendBytes(char tag, const std::string& bytes, std::string* out) {
  out->push_back(tag);
  AppendUint64(bytes.size(), out);
  out->append(bytes);
}

// Text as the column's collation compares it.
std::string Fold(const std::string& text, const std::string& collation) {
  if (sql::SameName(collation, "NOCASE")) return absl::AsciiStrToLower(text);
  if (sql::SameName(collation, "RTRIM")) {
    size_t end = text.size();
    while (end > 0 && text[end - 1] == ' ') --end;
    return text.substr(0, end);
  }
  return text;
}

}  // namespace

std::optional<std::string> EncodeIndexKey(const std::vector<Value>& values,
                                          const std::vector<const sql::ColumnSchema*>& columns) {
  std::string key;
  for (size_t i = 0; i < values.size() && i < columns.size(); ++i) {
    const sql::ColumnSchema& column = *columns[i];
    Value v = routing::ApplyAffinity(values[i], routing::AffinityOf(column.type));
    switch (v.kind_case()) {
      case Value::kInteger:
        key.push_back('i');
        AppendUint64(static_cast<uint64_t>(v.integer()), &key);
        break;
      case Value::kReal: {
        const double r = v.real();
        // An integral real equal to an int64 compares equal to that integer.
        if (std::isfinite(r) && std::trunc(r) == r && r >= -9223372036854775808.0 &&
            r < 9223372036854775808.0) {
          key.push_back('i');
          AppendUint64(static_cast<uint64_t>(static_cast<int64_t>(r)), &key);
        } else {
          uint64_t bits;
          std::memcpy(&bits, &r, sizeof bits);
          key.push_back('r');
          AppendUint64(bits, &key);
        }
        break;
      }
      case Value::kText:
        AppendBytes('t', Fold(v.text(), column.collation), &key);
        break;
      case Value::kBlob:
        AppendBytes('b', v.blob(), &key);
        break;
      default:
        return std::nullopt;  // NULL (or NaN, stored as NULL)
    }
  }
  return key;
}

std::string DescribeTuple(const std::vector<Value>& values) {
  std::vector<std::string> parts;
  for (const Value& v : values) {
    switch (v.kind_case()) {
      case Value::kInteger:
        parts.push_back(absl::StrCat(v.integer()));
        break;
      case Value::kReal:
        parts.push_back(absl::StrCat(v.real()));
        break;
      case Value::kText:
        parts.push_back(absl::StrCat("'", absl::StrReplaceAll(v.text(), {{"'", "''"}}), "'"));
        break;
      case Value::kBlob:
        parts.push_back(absl::StrCat("X'", absl::BytesToHexString(v.blob()), "'"));
        break;
      default:
        parts.push_back("NULL");
    }
  }
  if (parts.size() == 1) return parts[0];
  return absl::StrCat("(", absl::StrJoin(parts, ", "), ")");
}

}  // namespace conductor
