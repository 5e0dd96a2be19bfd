// msgstore/file_system.h: the I/O seam.
//
// Every file operation msgstore performs goes through a FileSystem. The POSIX implementation
// is the default; tests substitute a fault-injecting one (src/io/fault_file_system.h) that
// models power loss, EIO and ENOSPC. The contract of each call is the POSIX one it names, and
// the fault model in docs/reliability.md is stated against these calls.
//
// Errors: ENOSPC and EDQUOT map to ErrorCode::no_space, everything else to io_error, with the
// path and the system's message in Status::message().
//
// Thread safety: a FileSystem may be used from any thread. A File may be used from several
// threads at once for read_at/write_at at distinct ranges and sync_data; truncate must not
// race with writes (the log's append lock guarantees that).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "msgstore/status.h"

namespace msgstore {

class File {
 public:
  virtual ~File() = default;
  // pwrite until all `size` bytes are written, or an error.
  virtual Status write_at(std::uint64_t offset, const void* data, std::size_t size) = 0;
  // pread; returns the number of bytes read (short only at end of file).
  virtual Result<std::size_t> read_at(std::uint64_t offset, void* buffer, std::size_t size) const = 0;
  virtual Status sync_data() = 0;  // fdatasync
  virtual Status sync() = 0;       // fsync
  virtual Status truncate(std::uint64_t size) = 0;
  virtual Result<std::uint64_t> size() const = 0;
  // read_at if every byte asked for is in memory now (the page cache: preadv2 RWF_NOWAIT);
  // nothing, without waiting, when a read would have to wait for the disk or could not say.
  virtual Result<std::optional<std::size_t>> read_at_if_cached(std::uint64_t offset, void* buffer, std::size_t size) const {
    auto got = read_at(offset, buffer, size);
    if (!got) return got.status();
    return std::optional<std::size_t>(*got);
  }
  // A hint that [offset, offset + size) will be read soon (posix_fadvise WILLNEED): the reads
  // of several ranges can then be in flight at once. Changes no data; errors are ignored.
  virtual void will_need(std::uint64_t offset, std::uint64_t size) const {
    (void)offset;
    (void)size;
  }
};

// Held while a data directory is open; releasing it (destroying it) unlocks.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

enum class OpenMode : std::uint8_t {
  read_only,         // must exist
  read_write,        // must exist
  create,            // read-write, created empty if missing
  create_truncate,   // read-write, created or emptied
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  virtual Result<std::unique_ptr<File>> open(const std::filesystem::path& path, OpenMode mode) = 0;
  virtual Status create_directories(const std::filesystem::path& path) = 0;
  // fsync of a directory: makes entries created, renamed or removed in it durable.
  virtual Status sync_directory(const std::filesystem::path& path) = 0;
  // Atomically replaces `to` with `from` (rename(2)).
  virtual Status rename(const std::filesystem::path& from, const std::filesystem::path& to) = 0;
  // Removes a file or an empty directory; a missing path is not an error.
  virtual Status remove(const std::filesystem::path& path) = 0;
  // Removes a directory tree; a missing path is not an error.
  virtual Status remove_all(const std::filesystem::path& path) = 0;
  // Names (not paths) of the entries of a directory, unsorted.
  virtual Result<std::vector<std::string>> list_directory(const std::filesystem::path& path) = 0;
  virtual bool exists(const std::filesystem::path& path) = 0;
  virtual bool is_directory(const std::filesystem::path& path) = 0;
  // Takes an exclusive lock on `path` (created if missing) for this process; store_locked if
  // another holder has it.
  virtual Result<std::unique_ptr<FileLock>> lock(const std::filesystem::path& path) = 0;
};

// The real file system. One shared instance.
std::shared_ptr<FileSystem> posix_file_system();

}  // namespace msgstore
