#include "common/backup_file.h"

#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

namespace conductor {
namespace {

constexpr uint32_t kRoundConstants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline uint32_t Rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using SqlitePtr = std::unique_ptr<sqlite3, SqliteCloser>;

absl::Status SqliteError(sqlite3* db, int rc, const std::string& what) {
  return absl::InternalError(
      absl::StrCat(what, ": ", db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
}

}  // namespace

Sha256::Sha256()
    : state_{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
             0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19} {}

void Sha256::Compress(const unsigned char* block) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i) {
    w[i] = (uint32_t{block[4 * i]} << 24) | (uint32_t{block[4 * i + 1]} << 16) |
           (uint32_t{block[4 * i + 2]} << 8) | uint32_t{block[4 * i + 3]};
  }
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = Rotr(w[i - 15], 7) ^ Rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = Rotr(w[i - 2], 17) ^ Rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3], e = state_[4], f = state_[5],
           g = state_[6], h = state_[7];
  for (int i = 0; i < 64; ++i) {
    uint32_t s1 = Rotr(e, 6) ^ Rotr(e, 11) ^ Rotr(e, 25);
    uint32_t ch = (e & f) ^ (~e & g);
    uint32_t t1 = h + s1 + ch + kRoundConstants[i] + w[i];
    uint32_t s0 = Rotr(a, 2) ^ Rotr(a, 13) ^ Rotr(a, 22);
    uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
    uint32_t t2 = s0 + maj;
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  state_[0] += a;
  state_[1] += b;
  state_[2] += c;
  state_[3] += d;
  state_[4] += e;
  state_[5] += f;
  state_[6] += g;
  state_[7] += h;
}

void Sha256::Update(absl::string_view data) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t n = data.size();
  length_ += n;
  if (buffered_ > 0) {
    size_t take = std::min(n, sizeof(buffer_) - buffered_);
    memcpy(buffer_ + buffered_, p, take);
    buffered_ += take;
    p += take;
    n -= take;
    if (buffered_ < sizeof(buffer_)) return;
    Compress(buffer_);
    buffered_ = 0;
  }
  for (; n >= 64; n -= 64, p += 64) Compress(p);
  memcpy(buffer_, p, n);
  buffered_ = n;
}

std::string Sha256::HexDigest() {
  const uint64_t bits = length_ * 8;
  unsigned char pad[72] = {0x80};
  size_t pad_len = (buffered_ < 56 ? 56 - buffered_ : 120 - buffered_);
  Update(absl::string_view(reinterpret_cast<const char*>(pad), pad_len));
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(bits >> (56 - 8 * i));
  Update(absl::string_view(reinterpret_cast<const char*>(len), 8));
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (uint32_t word : state_) {
    for (int shift = 28; shift >= 0; shift -= 4) out.push_back(kHex[(word >> shift) & 0xf]);
  }
  return out;
}

std::string Sha256Hex(absl::string_view data) {
  Sha256 hash;
  hash.Update(data);
  return hash.HexDigest();
}

absl::Status SnapshotDatabase(const std::string& source_path, const std::string& dest_path) {
  std::error_code error;
  if (std::filesystem::exists(dest_path, error)) {
    return absl::AlreadyExistsError(absl::StrCat("snapshot target ", dest_path, " exists"));
  }
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(source_path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  SqlitePtr source(raw);
  if (rc != SQLITE_OK) return SqliteError(raw, rc, absl::StrCat("cannot open ", source_path));
  sqlite3_busy_timeout(source.get(), 5000);
  raw = nullptr;
  rc =
      sqlite3_open_v2(dest_path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  SqlitePtr dest(raw);
  auto fail = [&](absl::Status status) {
    dest.reset();
    std::error_code ignored;
    std::filesystem::remove(dest_path, ignored);
    std::filesystem::remove(dest_path + "-journal", ignored);
    return status;
  };
  if (rc != SQLITE_OK) return fail(SqliteError(raw, rc, absl::StrCat("cannot create ", dest_path)));
  // The copy is written once and read back at once: no need to sync it.
  sqlite3_exec(dest.get(), "PRAGMA synchronous=OFF", nullptr, nullptr, nullptr);
  sqlite3_backup* backup = sqlite3_backup_init(dest.get(), "main", source.get(), "main");
  if (backup == nullptr) {
    return fail(SqliteError(dest.get(), SQLITE_ERROR, "cannot start the online backup"));
  }
  // step(-1) copies every page within one read transaction of the source: a
  // consistent snapshot. BUSY / LOCKED (a writer holding the WAL lock for a
  // moment, a recovery) are retried.
  for (int attempt = 0;; ++attempt) {
    rc = sqlite3_backup_step(backup, -1);
    if (rc == SQLITE_DONE) break;
    if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && attempt < 500) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    sqlite3_backup_finish(backup);
    return fail(SqliteError(nullptr, rc, absl::StrCat("online backup of ", source_path)));
  }
  rc = sqlite3_backup_finish(backup);
  if (rc != SQLITE_OK) {
    return fail(SqliteError(dest.get(), rc, absl::StrCat("online backup of ", source_path)));
  }
  dest.reset();
  return absl::OkStatus();
}

absl::Status ReadFileInChunks(const std::string& path, int64_t chunk_bytes,
                              const std::function<bool(int64_t, absl::string_view)>& emit,
                              int64_t* size_bytes, std::string* sha256_hex) {
  if (chunk_bytes <= 0) return absl::InvalidArgumentError("chunk size must be positive");
  std::unique_ptr<FILE, int (*)(FILE*)> file(fopen(path.c_str(), "rb"), &fclose);
  if (file == nullptr) {
    return absl::InternalError(absl::StrCat("cannot open ", path, ": ", strerror(errno)));
  }
  Sha256 hash;
  std::vector<char> buffer(static_cast<size_t>(chunk_bytes));
  int64_t offset = 0;
  while (true) {
    size_t n = fread(buffer.data(), 1, buffer.size(), file.get());
    if (n == 0) {
      if (ferror(file.get())) {
        return absl::InternalError(absl::StrCat("cannot read ", path, ": ", strerror(errno)));
      }
      break;
    }
    absl::string_view chunk(buffer.data(), n);
    hash.Update(chunk);
    if (emit && !emit(offset, chunk)) return absl::CancelledError("the receiver went away");
    offset += static_cast<int64_t>(n);
  }
  if (size_bytes != nullptr) *size_bytes = offset;
  if (sha256_hex != nullptr) *sha256_hex = hash.HexDigest();
  return absl::OkStatus();
}

absl::Status HashFile(const std::string& path, int64_t* size_bytes, std::string* sha256_hex) {
  return ReadFileInChunks(path, 1 << 20, nullptr, size_bytes, sha256_hex);
}

}  // namespace conductor
