// Text and JSON rendering of SQL values and result sets, for conductorctl.
//
// Text tables are aligned by display width counted in Unicode code points
// (not bytes), so UTF-8 text lines up. Values render the way the sqlite3
// shell shows them: NULL as `NULL`, reals with 15 significant digits and a
// ".0" when they would otherwise look like integers, blobs as x'hex'.
#ifndef CONDUCTOR_CLIENT_TABLE_FORMAT_H_
#define CONDUCTOR_CLIENT_TABLE_FORMAT_H_

#include <string>

#include "absl/strings/string_view.h"
#include "conductor/v1/table_ops.pb.h"
#include "conductor/v1/value.pb.h"

namespace conductor {

// The number of code points in `utf8`; a byte that is not part of a valid
// UTF-8 sequence counts as one.
int DisplayWidth(absl::string_view utf8);

// A real as SQLite prints it: "%.15g", then ".0" appended (or inserted before
// the exponent) when the result has no '.', e.g. 1 → "1.0", 1e20 → "1.0e+20".
// Infinities print as "Inf" / "-Inf", NaN as "NaN".
std::string FormatReal(double value);

// One table cell. Text is shown as is, except that control characters are
// escaped (\n, \t, \r, \xHH) so a cell stays on one line.
std::string FormatCell(const v1::Value& value);

// An aligned table: the set's name as a title line (when not empty), the
// header, a line of dashes, one line per row; columns separated by two
// spaces, numeric columns right-aligned, no trailing spaces. An empty set
// shows "(0 rows)" under its header. Ends with a newline.
std::string FormatResultSet(const v1::ResultSet& set);

// Every result set, separated by blank lines, then "N row(s) affected" when
// rows_affected > 0 or there are no result sets.
std::string FormatExecuteResponse(const v1::ExecuteResponse& response);

// `text` as a JSON string literal (quotes included). Invalid UTF-8 bytes
// become U+FFFD so the output is always valid JSON.
std::string JsonQuote(absl::string_view text);

// A value as JSON: null, an integer, a real (shortest exact digits, always
// with a '.' or exponent, e.g. 2.0), a string for text, and
// {"blob":"<base64>"} for a blob. Non-finite reals become the strings
// "Inf", "-Inf" and "NaN".
std::string ValueToJson(const v1::Value& value);

// {"name":…,"columns":[…],"rows":[[…],…]} with values as by ValueToJson.
std::string ResultSetToJson(const v1::ResultSet& set);

// {"resultSets":[…],"rowsAffected":N} (one line).
std::string ExecuteResponseToJson(const v1::ExecuteResponse& response);

}  // namespace conductor

#endif  // CONDUCTOR_CLIENT_TABLE_FORMAT_H_
