// Building blocks of online backups (docs/operations.md#backups-and-restore):
// a consistent snapshot of a live SQLite file with SQLite's online backup
// API, SHA-256, and reading a file in chunks.
#ifndef CONDUCTOR_COMMON_BACKUP_FILE_H_
#define CONDUCTOR_COMMON_BACKUP_FILE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace conductor {

// Incremental SHA-256 (FIPS 180-4).
class Sha256 {
 public:
  Sha256();
  void Update(absl::string_view data);
  // The digest as 64 lower-case hex digits. Call once; the object is spent.
  std::string HexDigest();

 private:
  void Compress(const unsigned char* block);
  uint32_t state_[8];
  unsigned char buffer_[64];
  size_t buffered_ = 0;
  uint64_t length_ = 0;
};

// SHA-256 of `data`, hex.
std::string Sha256Hex(absl::string_view data);

// Copies the live database at `source_path` into a new file `dest_path` with
// the online backup API (sqlite3_backup_*) in one step, inside one read
// transaction of a separate read-only connection: the copy is one consistent
// snapshot of the committed state. In WAL mode (every database here) writers
// are not blocked while it runs; only WAL checkpoints cannot reset the log
// until it ends. `dest_path` must not exist. Fails with SQLite's error (the
// destination is then removed).
absl::Status SnapshotDatabase(const std::string& source_path, const std::string& dest_path);

// Reads `path` in chunks of `chunk_bytes` and passes each (with its offset)
// to `emit`, which returns false to stop (the result is then CANCELLED).
// Sets `*size_bytes` and `*sha256_hex` of the whole file when it succeeds.
absl::Status ReadFileInChunks(const std::string& path, int64_t chunk_bytes,
                              const std::function<bool(int64_t, absl::string_view)>& emit,
                              int64_t* size_bytes, std::string* sha256_hex);

// Size and SHA-256 of a file.
absl::Status HashFile(const std::string& path, int64_t* size_bytes, std::string* sha256_hex);

}  // namespace conductor

#endif  // CONDUCTOR_COMMON_BACKUP_FILE_H_
