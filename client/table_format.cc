#include "client/table_format.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace conductor {
namespace {

// Length of the valid UTF-8 sequence at the start of `s`, or 0 when invalid.
size_t Utf8SequenceLength(absl::string_view s) {
  auto byte = [&s](size_t i) { return static_cast<unsigned char>(s[i]); };
  unsigned char lead = byte(0);
  size_t length;
  uint32_t min;
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) {
    length = 2;
    min = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
    min = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() < length) return 0;
  uint32_t code = lead & (0x7F >> length);
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(i) & 0x3F);
  }
  if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
  return length;
}

// Adds ".0" to a printed real that looks like an integer ("1" → "1.0",
// "1e+20" → "1.0e+20").
std::string WithDecimalPoint(std::string text) {
  if (text.find('.') != std::string::npos) return text;
  size_t exponent = text.find('e');
  if (exponent == std::string::npos) return text + ".0";
  return text.insert(exponent, ".0");
}

// The shortest "%.Ng" rendering of a finite `value` that reads back exactly.
std::string RoundTripReal(double value) {
  std::string text;
  for (int digits = 15; digits <= 17; ++digits) {
    text = absl::StrFormat("%.*g", digits, value);
    if (std::strtod(text.c_str(), nullptr) == value) break;
  }
  return WithDecimalPoint(text);
}

bool IsNumeric(const v1::Value& value) {
  return value.kind_case() == v1::Value::kInteger || value.kind_case() == v1::Value::kReal;
}

// Pads `cell` to `width` code points, on the left when `right` is set.
std::string Pad(const std::string& cell, int width, bool right) {
  std::string padding(std::max(0, width - DisplayWidth(cell)), ' ');
  return right ? padding + cell : cell + padding;
}

// Appends one table line, without trailing spaces.
void AppendLine(const std::vector<std::string>& cells, const std::vector<int>& widths,
                const std::vector<bool>& right, std::string* out) {
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) {
    if (i > 0) line += "  ";
    line += Pad(cells[i], widths[i], right[i]);
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  absl::StrAppend(out, line, "\n");
}

}  // namespace

int DisplayWidth(absl::string_view utf8) {
  int width = 0;
  while (!utf8.empty()) {
    size_t length = Utf8SequenceLength(utf8);
    utf8.remove_prefix(length == 0 ? 1 : length);
    ++width;
  }
  return width;
}

std::string FormatReal(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Inf" : "-Inf";
  return WithDecimalPoint(absl::StrFormat("%.15g", value));
}

std::string FormatCell(const v1::Value& value) {
  switch (value.kind_case()) {
    case v1::Value::kInteger:
      return absl::StrCat(value.integer());
    case v1::Value::kReal:
      return FormatReal(value.real());
    case v1::Value::kBlob:
      return absl::StrCat("x'", absl::BytesToHexString(value.blob()), "'");
    case v1::Value::kText: {
      std::string out;
      for (char c : value.text()) {
        unsigned char u = static_cast<unsigned char>(c);
        if (c == '\n') {
          out += "\\n";
        } else if (c == '\t') {
          out += "\\t";
        } else if (c == '\r') {
          out += "\\r";
        } else if (u < 0x20 || u == 0x7F) {
          out += absl::StrFormat("\\x%02x", u);
        } else {
          out += c;
        }
      }
      return out;
    }
    default:
      return "NULL";
  }
}

std::string FormatResultSet(const v1::ResultSet& set) {
  const int n = set.columns_size();
  std::vector<int> widths(n, 0);
  std::vector<bool> right(n, false);
  std::vector<bool> any_value(n, false);
  std::vector<bool> all_numeric(n, true);
  std::vector<std::vector<std::string>> cells;
  for (const v1::Row& row : set.rows()) {
    std::vector<std::string> line(n);
    for (int i = 0; i < n; ++i) {
      if (i >= row.values_size()) continue;
      const v1::Value& value = row.values(i);
      line[i] = FormatCell(value);
      if (value.kind_case() != v1::Value::kNullValue &&
          value.kind_case() != v1::Value::KIND_NOT_SET) {
        any_value[i] = true;
        if (!IsNumeric(value)) all_numeric[i] = false;
      }
    }
    cells.push_back(std::move(line));
  }
  std::vector<std::string> header(set.columns().begin(), set.columns().end());
  std::vector<std::string> dashes(n);
  for (int i = 0; i < n; ++i) {
    right[i] = any_value[i] && all_numeric[i];
    widths[i] = DisplayWidth(header[i]);
    for (const auto& line : cells) widths[i] = std::max(widths[i], DisplayWidth(line[i]));
    dashes[i] = std::string(std::max(widths[i], 1), '-');
  }
  std::string out;
  if (!set.name().empty()) absl::StrAppend(&out, set.name(), "\n");
  AppendLine(header, widths, right, &out);
  AppendLine(dashes, widths, std::vector<bool>(n, false), &out);
  for (const auto& line : cells) AppendLine(line, widths, right, &out);
  if (cells.empty()) out += "(0 rows)\n";
  return out;
}

std::string FormatExecuteResponse(const v1::ExecuteResponse& response) {
  std::vector<std::string> parts;
  for (const v1::ResultSet& set : response.result_sets()) parts.push_back(FormatResultSet(set));
  std::string out = absl::StrJoin(parts, "\n");
  if (response.rows_affected() > 0 || response.result_sets().empty()) {
    if (!out.empty()) out += "\n";
    absl::StrAppend(&out, response.rows_affected(), " row(s) affected\n");
  }
  return out;
}

std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  while (!text.empty()) {
    size_t length = Utf8SequenceLength(text);
    if (length == 0) {
      out += "\\ufffd";
      text.remove_prefix(1);
      continue;
    }
    char c = text[0];
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (u < 0x20) {
      out += absl::StrFormat("\\u%04x", u);
    } else {
      out.append(text.data(), length);
    }
    text.remove_prefix(length);
  }
  return out + "\"";
}

std::string ValueToJson(const v1::Value& value) {
  switch (value.kind_case()) {
    case v1::Value::kInteger:
      return absl::StrCat(value.integer());
    case v1::Value::kReal:
      if (!std::isfinite(value.real())) return JsonQuote(FormatReal(value.real()));
      return RoundTripReal(value.real());
    case v1::Value::kText:
      return JsonQuote(value.text());
    case v1::Value::kBlob:
      return absl::StrCat("{\"blob\":", JsonQuote(absl::Base64Escape(value.blob())), "}");
    default:
      return "null";
  }
}

std::string ResultSetToJson(const v1::ResultSet& set) {
  std::vector<std::string> columns;
  for (const std::string& column : set.columns()) columns.push_back(JsonQuote(column));
  std::vector<std::string> rows;
  for (const v1::Row& row : set.rows()) {
    std::vector<std::string> values;
    for (const v1::Value& value : row.values()) values.push_back(ValueToJson(value));
    rows.push_back(absl::StrCat("[", absl::StrJoin(values, ","), "]"));
  }
  return absl::StrCat("{\"name\":", JsonQuote(set.name()), ",\"columns\":[",
                      absl::StrJoin(columns, ","), "],\"rows\":[", absl::StrJoin(rows, ","), "]}");
}

std::string ExecuteResponseToJson(const v1::ExecuteResponse& response) {
  std::vector<std::string> sets;
  for (const v1::ResultSet& set : response.result_sets()) sets.push_back(ResultSetToJson(set));
  return absl::StrCat("{\"resultSets\":[", absl::StrJoin(sets, ","),
                      "],\"rowsAffected\":", response.rows_affected(), "}");
}

}  // namespace conductor
