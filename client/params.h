// Parsing of conductorctl's statement parameters (`sql "..." PARAM...`).
#ifndef CONDUCTOR_CLIENT_PARAMS_H_
#define CONDUCTOR_CLIENT_PARAMS_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "conductor/v1/value.pb.h"

namespace conductor {

// One command-line parameter as a SQL value:
//   an integer that fits in 64 bits ("42", "-7", "+3")    → integer
//   a number with '.', 'e' or 'E' ("1.5", "2e3"), or an
//   integer literal too large for 64 bits                 → real
//   exactly "NULL"                                        → null
//   x'HEX' or X'HEX' (even number of hex digits)          → blob
//   anything else (including "", " 1", "0x10", "null")    → text
// INVALID_ARGUMENT for an x'…' whose digits are not valid hex.
absl::StatusOr<v1::Value> ParseParam(absl::string_view arg);

}  // namespace conductor

#endif  // CONDUCTOR_CLIENT_PARAMS_H_
