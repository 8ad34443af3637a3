#include "common/routing.h"

#include <xxhash.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/numeric/int128.h"

namespace conductor::routing {

using conductor::v1::Value;

namespace {

constexpr int64_t kLargestInt64 = std::numeric_limits<int64_t>::max();
constexpr int64_t kSmallestInt64 = std::numeric_limits<int64_t>::min();

// Big enough for any int64 in decimal, "%.17g" of any double and SQLite's "%!.15g".
constexpr size_t kNumberBufferSize = 40;

// sqlite3Isspace: ' ', \t, \n, \v, \f, \r.
inline bool IsSpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
inline bool IsDigit(char c) { return c >= '0' && c <= '9'; }

inline char ToLowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// True when `haystack` contains `needle` (lower-case ASCII), ignoring ASCII case.
bool ContainsIgnoreCase(absl::string_view haystack, absl::string_view needle) {
  if (needle.size() > haystack.size()) return false;
  for (size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    size_t j = 0;
    while (j < needle.size() && ToLowerAscii(haystack[i + j]) == needle[j]) ++j;
    if (j == needle.size()) return true;
  }
  return false;
}

// --- Ports of SQLite 3.40's numeric helpers (src/util.c, src/vdbemem.c, src/printf.c). ---------
// They use `long double` exactly where SQLite does (LONGDOUBLE_TYPE), so the results are
// bit-for-bit those of the SQLite library built for the same platform.

// sqlite3Pow10: 10^e for 0 <= e <= 341, in long double.
long double Pow10(int e) {
  long double x = 10.0;
  long double r = 1.0;
  while (true) {
    if (e & 1) r *= x;
    e >>= 1;
    if (e == 0) break;
    x *= x;
  }
  return r;
}

// sqlite3AtoF for UTF-8 text of `length` bytes. Writes the (prefix) value to *result and returns
//   1 for a pure integer, 2 or 3 for a literal with a decimal point and/or exponent,
//   0 or -1 when the text is not a well-formed number.
int AtoF(const char* z, size_t length, double* result) {
  const char* const end = z + length;
  int sign = 1;
  int64_t s = 0;  // Significand.
  int d = 0;      // Decimal-point adjustment of the exponent.
  int esign = 1;
  int e = 0;
  bool e_valid = true;
  int n_digit = 0;
  int e_type = 1;
  *result = 0.0;
  if (length == 0) return 0;

  while (z < end && IsSpace(*z)) ++z;
  if (z >= end) return 0;
  if (*z == '-') {
    sign = -1;
    ++z;
  } else if (*z == '+') {
    ++z;
  }
  // Significant digits; the rest only shift the exponent.
  while (z < end && IsDigit(*z)) {
    s = s * 10 + (*z - '0');
    ++z;
    ++n_digit;
    if (s >= (kLargestInt64 - 9) / 10) {
      while (z < end && IsDigit(*z)) {
        ++z;
        ++d;
      }
    }
  }
  if (z < end && *z == '.') {
    ++z;
    ++e_type;
    while (z < end && IsDigit(*z)) {
      if (s < (kLargestInt64 - 9) / 10) {
        s = s * 10 + (*z - '0');
        --d;
        ++n_digit;
      }
      ++z;
    }
  }
  if (z < end && (*z == 'e' || *z == 'E')) {
    ++z;
    e_valid = false;
    ++e_type;
    if (z < end) {
      if (*z == '-') {
        esign = -1;
        ++z;
      } else if (*z == '+') {
        ++z;
      }
      while (z < end && IsDigit(*z)) {
        e = e < 10000 ? (e * 10 + (*z - '0')) : 10000;
        ++z;
        e_valid = true;
      }
    }
  }
  while (z < end && IsSpace(*z)) ++z;

  e = e * esign + d;
  if (e < 0) {
    esign = -1;
    e = -e;
  } else {
    esign = 1;
  }
  double value;
  if (s == 0) {
    value = sign < 0 ? -0.0 : 0.0;
  } else {
    while (e > 0) {
      if (esign > 0) {
        if (s >= kLargestInt64 / 10) break;
        s *= 10;
      } else {
        if (s % 10 != 0) break;
        s /= 10;
      }
      --e;
    }
    s = sign < 0 ? -s : s;
    if (e == 0) {
      value = static_cast<double>(s);
    } else if (e > 307) {
      if (e < 342) {
        long double scale = Pow10(e - 308);
        if (esign < 0) {
          value = static_cast<double>(s / scale);
          value /= 1.0e+308;
        } else {
          value = static_cast<double>(s * scale);
          value *= 1.0e+308;
        }
      } else if (esign < 0) {
        value = 0.0 * static_cast<double>(s);
      } else {
        value = std::numeric_limits<double>::infinity() * static_cast<double>(s);
      }
    } else {
      long double scale = Pow10(e);
      value = static_cast<double>(esign < 0 ? s / scale : s * scale);
    }
  }
  *result = value;

  if (z == end && n_digit > 0 && e_valid && e_type > 0) return e_type;
  if (e_type >= 2 && (e_type == 3 || e_valid) && n_digit > 0) return -1;
  return 0;
}

// sqlite3Atoi64 for UTF-8 text: 0 when the text is a decimal integer (surrounding whitespace
// allowed) that fits int64, written to *out; non-zero otherwise.
int Atoi64(const char* z, size_t length, int64_t* out) {
  const char* const end = z + length;
  uint64_t u = 0;
  bool neg = false;
  while (z < end && IsSpace(*z)) ++z;
  if (z < end) {
    if (*z == '-') {
      neg = true;
      ++z;
    } else if (*z == '+') {
      ++z;
    }
  }
  const char* const start = z;
  while (z < end && *z == '0') ++z;
  size_t i = 0;
  for (; z + i < end && IsDigit(z[i]); ++i) u = u * 10 + static_cast<uint64_t>(z[i] - '0');
  if (u > static_cast<uint64_t>(kLargestInt64)) {
    *out = neg ? kSmallestInt64 : kLargestInt64;
  } else {
    *out = neg ? -static_cast<int64_t>(u) : static_cast<int64_t>(u);
  }
  int rc = 0;
  if (i == 0 && start == z) {
    rc = -1;
  } else {
    for (size_t j = i; z + j < end; ++j) {
      if (!IsSpace(z[j])) {
        rc = 1;
        break;
      }
    }
  }
  if (i < 19) return rc;
  int cmp = i > 19 ? 1 : absl::string_view(z, 19).compare("9223372036854775808");
  if (cmp < 0) return rc;
  *out = neg ? kSmallestInt64 : kLargestInt64;
  if (cmp > 0) return 2;
  return neg ? rc : 3;
}

// sqlite3RealToI64.
int64_t RealToI64(double r) {
  if (r < -9223372036854774784.0) return kSmallestInt64;
  if (r > +9223372036854774784.0) return kLargestInt64;
  return static_cast<int64_t>(r);
}

// sqlite3RealSameAsInt.
bool RealSameAsInt(double r1, int64_t i) {
  double r2 = static_cast<double>(i);
  // Bit-for-bit, as SQLite compares (so -0.0 and NaN behave as in SQLite).
  bool same_bits = std::memcmp(&r1, &r2, sizeof(r1)) == 0;  // NOLINT(bugprone-*)
  return r1 == 0.0 || (same_bits && i >= -2251799813685248LL && i < 2251799813685248LL);
}

// sqlite3VdbeIntegerAffinity (with doubleToInt64): true, and *out set, when the non-NaN real `r`
// is stored as an INTEGER by a column with INTEGER, NUMERIC or REAL affinity.
bool RealIsStoredAsInteger(double r, int64_t* out) {
  int64_t ix;
  if (r <= static_cast<double>(kSmallestInt64)) {
    ix = kSmallestInt64;
  } else if (r >= static_cast<double>(kLargestInt64)) {
    ix = kLargestInt64;
  } else {
    ix = static_cast<int64_t>(r);
  }
  if (r == static_cast<double>(ix) && ix > kSmallestInt64 && ix < kLargestInt64) {
    *out = ix;
    return true;
  }
  return false;
}

// et_getdigit from SQLite's printf.
char GetDigit(long double* val, int* count) {
  if (*count <= 0) return '0';
  --*count;
  int digit = static_cast<int>(*val);
  long double d = digit;
  *val = (*val - d) * 10.0;
  return static_cast<char>('0' + digit);
}

// SQLite's printf("%!.15g", value) for a non-NaN double: how SQLite renders a REAL as TEXT.
// Writes at most 32 bytes to `buf` and returns the length.
size_t RenderRealAsSqliteText(double value, char* buf) {
  char* out = buf;
  long double real = value;
  char prefix = 0;
  if (real < 0.0) {
    real = -real;
    prefix = '-';
  }
  int precision = 15 - 1;    // %g counts the leading digit.
  double rounder = 5.0e-05;  // arRound[precision % 10] ...
  rounder *= 1.0e-10;        // ... scaled once per ten digits.
  int exp = 0;
  if (real > 0.0) {
    long double scale = 1.0;
    while (real >= 1e100 * scale && exp <= 350) {
      scale *= 1e100;
      exp += 100;
    }
    while (real >= 1e10 * scale && exp <= 350) {
      scale *= 1e10;
      exp += 10;
    }
    while (real >= 10.0 * scale && exp <= 350) {
      scale *= 10.0;
      exp++;
    }
    real /= scale;
    while (real < 1e-8) {
      real *= 1e8;
      exp -= 8;
    }
    while (real < 1.0) {
      real *= 10.0;
      exp--;
    }
    if (exp > 350) {
      if (prefix) *out++ = prefix;
      // A length is returned, not a C string.
      std::memcpy(out, "Inf", 3);  // NOLINT
      return static_cast<size_t>(out + 3 - buf);
    }
  }
  real += rounder;
  if (real >= 10.0) {
    real *= 0.1;
    exp++;
  }
  const bool exponential = exp < -4 || exp > precision;
  int e2 = 0;
  if (!exponential) {
    precision -= exp;
    e2 = exp;
  }
  int significant = 16 + 10;  // The '!' flag allows 26 significant digits.
  if (prefix) *out++ = prefix;
  if (e2 < 0) {
    *out++ = '0';
  } else {
    for (; e2 >= 0; e2--) *out++ = GetDigit(&real, &significant);
  }
  *out++ = '.';
  for (e2++; e2 < 0; precision--, e2++) *out++ = '0';
  while (precision-- > 0) *out++ = GetDigit(&real, &significant);
  // Drop trailing zeros, but keep one digit after the point ('!' flag).
  while (out[-1] == '0') --out;
  if (out[-1] == '.') *out++ = '0';
  if (exponential) {
    *out++ = 'e';
    if (exp < 0) {
      *out++ = '-';
      exp = -exp;
    } else {
      *out++ = '+';
    }
    if (exp >= 100) {
      *out++ = static_cast<char>(exp / 100 + '0');
      exp %= 100;
    }
    *out++ = static_cast<char>(exp / 10 + '0');
    *out++ = static_cast<char>(exp % 10 + '0');
  }
  return static_cast<size_t>(out - buf);
}

// --- The routing value, without protos. ---------------------------------------------------------

// A value after affinity. `bytes` points into the input Value or into `buffer`, so a Scalar is
// neither copied nor moved.
struct Scalar {
  enum Kind { kNull, kInteger, kReal, kText, kBlob };
  Scalar() = default;
  Scalar(const Scalar&) = delete;
  Scalar& operator=(const Scalar&) = delete;

  void SetInteger(int64_t v) {
    kind = kInteger;
    integer = v;
  }
  void SetReal(double v) {
    kind = kReal;
    real = v;
  }

  Kind kind = kNull;
  int64_t integer = 0;
  double real = 0;
  absl::string_view bytes;
  char buffer[kNumberBufferSize];
};

// applyNumericAffinity(bTryForInt=1): converts numeric text to INTEGER or REAL. Returns false,
// leaving `out` alone, when the text is not a well-formed number.
bool NumericFromText(absl::string_view text, Scalar* out) {
  double r;
  int rc = AtoF(text.data(), text.size(), &r);
  if (rc <= 0) return false;
  if (rc == 1) {
    int64_t i = RealToI64(r);
    if (RealSameAsInt(r, i)) {
      out->SetInteger(i);
      return true;
    }
    if (Atoi64(text.data(), text.size(), &i) == 0) {
      out->SetInteger(i);
      return true;
    }
  }
  int64_t i;
  if (RealIsStoredAsInteger(r, &i)) {
    out->SetInteger(i);
  } else {
    out->SetReal(r);
  }
  return true;
}

void Apply(const Value& value, Affinity affinity, Scalar* out) {
  switch (value.kind_case()) {
    case Value::kInteger:
      out->SetInteger(value.integer());
      break;
    case Value::kReal:
      if (std::isnan(value.real())) {
        out->kind = Scalar::kNull;  // sqlite3_bind_double stores NULL for NaN.
        return;
      }
      out->SetReal(value.real());
      break;
    case Value::kText:
      out->kind = Scalar::kText;
      out->bytes = value.text();
      break;
    case Value::kBlob:
      out->kind = Scalar::kBlob;
      out->bytes = value.blob();
      return;
    case Value::kNullValue:
    case Value::KIND_NOT_SET:
    default:
      out->kind = Scalar::kNull;
      return;
  }

  switch (affinity) {
    case Affinity::kBlob:
      return;
    case Affinity::kText:
      if (out->kind == Scalar::kInteger) {
        auto result = std::to_chars(out->buffer, out->buffer + sizeof(out->buffer), out->integer);
        out->bytes = absl::string_view(out->buffer, result.ptr - out->buffer);
        out->kind = Scalar::kText;
      } else if (out->kind == Scalar::kReal) {
        out->bytes = absl::string_view(out->buffer, RenderRealAsSqliteText(out->real, out->buffer));
        out->kind = Scalar::kText;
      }
      return;
    case Affinity::kInteger:
    case Affinity::kNumeric:
    case Affinity::kReal: {
      if (out->kind == Scalar::kText) {
        NumericFromText(out->bytes, out);
      } else if (out->kind == Scalar::kReal) {
        int64_t i;
        if (RealIsStoredAsInteger(out->real, &i)) out->SetInteger(i);
      }
      // A REAL column stores integers as such but always reads them back as REAL.
      if (affinity == Affinity::kReal && out->kind == Scalar::kInteger) {
        out->SetReal(static_cast<double>(out->integer));
      }
      return;
    }
  }
}

// The canonical text of `scalar`, possibly pointing into `buffer`; false for NULL.
bool Canonical(const Scalar& scalar, char* buffer, absl::string_view* text) {
  switch (scalar.kind) {
    case Scalar::kInteger: {
      auto result = std::to_chars(buffer, buffer + kNumberBufferSize, scalar.integer);
      *text = absl::string_view(buffer, result.ptr - buffer);
      return true;
    }
    case Scalar::kReal: {
      if (std::isnan(scalar.real)) return false;
      // Same output as C printf("%.17g") in the "C" locale, whatever the process locale.
      auto result = std::to_chars(buffer, buffer + kNumberBufferSize, scalar.real,
                                  std::chars_format::general, 17);
      *text = absl::string_view(buffer, result.ptr - buffer);
      return true;
    }
    case Scalar::kText:
    case Scalar::kBlob:
      *text = scalar.bytes;
      return true;
    case Scalar::kNull:
    default:
      return false;
  }
}

}  // namespace

Affinity AffinityOf(absl::string_view declared_type) {
  declared_type = declared_type.substr(0, declared_type.find('\0'));
  if (ContainsIgnoreCase(declared_type, "int")) return Affinity::kInteger;
  if (ContainsIgnoreCase(declared_type, "char") || ContainsIgnoreCase(declared_type, "clob") ||
      ContainsIgnoreCase(declared_type, "text")) {
    return Affinity::kText;
  }
  if (declared_type.empty() || ContainsIgnoreCase(declared_type, "blob")) return Affinity::kBlob;
  if (ContainsIgnoreCase(declared_type, "real") || ContainsIgnoreCase(declared_type, "floa") ||
      ContainsIgnoreCase(declared_type, "doub")) {
    return Affinity::kReal;
  }
  return Affinity::kNumeric;
}

Value ApplyAffinity(const Value& value, Affinity affinity) {
  Scalar scalar;
  Apply(value, affinity, &scalar);
  Value result;
  switch (scalar.kind) {
    case Scalar::kInteger:
      result.set_integer(scalar.integer);
      break;
    case Scalar::kReal:
      result.set_real(scalar.real);
      break;
    case Scalar::kText:
      result.set_text(scalar.bytes.data(), scalar.bytes.size());
      break;
    case Scalar::kBlob:
      result.set_blob(scalar.bytes.data(), scalar.bytes.size());
      break;
    case Scalar::kNull:
    default:
      result.set_null_value(true);
      break;
  }
  return result;
}

std::optional<std::string> CanonicalText(const Value& value) {
  Scalar scalar;
  Apply(value, Affinity::kBlob, &scalar);  // No conversion: only maps NaN and unset to NULL.
  char buffer[kNumberBufferSize];
  absl::string_view text;
  if (!Canonical(scalar, buffer, &text)) return std::nullopt;
  return std::string(text);
}

uint64_t RoutingHash(const Value& value, Affinity affinity) {
  Scalar scalar;
  Apply(value, affinity, &scalar);
  char buffer[kNumberBufferSize];
  absl::string_view text;
  if (!Canonical(scalar, buffer, &text)) text = absl::string_view();
  return XXH64(text.data(), text.size(), /*seed=*/0);
}

int ShardIndex(uint64_t hash, int num_shards) {
  if (num_shards <= 1) return 0;
  absl::uint128 product = absl::uint128(hash) * static_cast<uint64_t>(num_shards);
  return static_cast<int>(absl::Uint128High64(product));
}

}  // namespace conductor::routing
