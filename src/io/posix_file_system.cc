// The real file system: thin wrappers over POSIX calls that turn errno into Status values.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>

#include "io/errors.h"
#include "msgstore/file_system.h"

namespace msgstore {
namespace {

class PosixFile final : public File {
 public:
  PosixFile(int descriptor, std::filesystem::path path) : descriptor_(descriptor), path_(std::move(path)) {}
  ~PosixFile() override { ::close(descriptor_); }

  Status write_at(std::uint64_t offset, const void* data, std::size_t size) override {
    const char* bytes = static_cast<const char*>(data);
    while (size > 0) {
      ssize_t written = ::pwrite(descriptor_, bytes, size, static_cast<off_t>(offset));
      if (written < 0) {
        if (errno == EINTR) continue;
        return io::status_from_errno(errno, "write", path_);
      }
      bytes += written;
      offset += static_cast<std::uint64_t>(written);
      size -= static_cast<std::size_t>(written);
    }
    return Status::ok();
  }

  Result<std::size_t> read_at(std::uint64_t offset, void* buffer, std::size_t size) const override {
    char* bytes = static_cast<char*>(buffer);
    std::size_t total = 0;
    while (total < size) {
      ssize_t got = ::pread(descriptor_, bytes + total, size - total, static_cast<off_t>(offset + total));
      if (got < 0) {
        if (errno == EINTR) continue;
        return io::status_from_errno(errno, "read", path_);
      }
      if (got == 0) break;
      total += static_cast<std::size_t>(got);
    }
    return total;
  }

  Result<std::optional<std::size_t>> read_at_if_cached(std::uint64_t offset, void* buffer, std::size_t size) const override {
    struct iovec vector {buffer, size};
    while (true) {
      const ssize_t got = ::preadv2(descriptor_, &vector, 1, static_cast<off_t>(offset), RWF_NOWAIT);
      if (got >= 0) {
        // A short read is the end of the file or a part in memory: the caller reads again.
        if (static_cast<std::size_t>(got) == size) return std::optional<std::size_t>(size);
        return std::optional<std::size_t>();
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EOPNOTSUPP || errno == ENOSYS) return std::optional<std::size_t>();
      return io::status_from_errno(errno, "read", path_);
    }
  }

  void will_need(std::uint64_t offset, std::uint64_t size) const override {
    // Starts reading the pages in the background; the readahead of a later pread would read
    // only after it misses, one range at a time. Advice: a failure changes nothing.
    (void)::posix_fadvise(descriptor_, static_cast<off_t>(offset), static_cast<off_t>(size), POSIX_FADV_WILLNEED);
  }

  Status sync_data() override {
    if (::fdatasync(descriptor_) != 0) return io::status_from_errno(errno, "fdatasync", path_);
    return Status::ok();
  }

  Status sync() override {
    if (::fsync(descriptor_) != 0) return io::status_from_errno(errno, "fsync", path_);
    return Status::ok();
  }

  Status truncate(std::uint64_t size) override {
    if (::ftruncate(descriptor_, static_cast<off_t>(size)) != 0) return io::status_from_errno(errno, "truncate", path_);
    return Status::ok();
  }

  Result<std::uint64_t> size() const override {
    struct stat info {};
    if (::fstat(descriptor_, &info) != 0) return io::status_from_errno(errno, "stat", path_);
    return static_cast<std::uint64_t>(info.st_size);
  }

 private:
  int descriptor_;
  std::filesystem::path path_;
};

// flock() locks belong to the open file description, so two opens in one process conflict,
// as they must (two Stores on one directory in one process would corrupt it).
class PosixFileLock final : public FileLock {
 public:
  explicit PosixFileLock(int descriptor) : descriptor_(descriptor) {}
  ~PosixFileLock() override {
    ::flock(descriptor_, LOCK_UN);
    ::close(descriptor_);
  }

 private:
  int descriptor_;
};

class PosixFileSystem final : public FileSystem {
 public:
  Result<std::unique_ptr<File>> open(const std::filesystem::path& path, OpenMode mode) override {
    int flags = O_CLOEXEC;
    switch (mode) {
      case OpenMode::read_only: flags |= O_RDONLY; break;
      case OpenMode::read_write: flags |= O_RDWR; break;
      case OpenMode::create: flags |= O_RDWR | O_CREAT; break;
      case OpenMode::create_truncate: flags |= O_RDWR | O_CREAT | O_TRUNC; break;
    }
    int descriptor = ::open(path.c_str(), flags, 0644);
    if (descriptor < 0) return io::status_from_errno(errno, "open", path);
    return std::unique_ptr<File>(new PosixFile(descriptor, path));
  }

  Status create_directories(const std::filesystem::path& path) override {
    std::error_code error;
    std::filesystem::create_directories(path, error);
    if (error) return io::status_from_errno(error.value(), "mkdir", path);
    return Status::ok();
  }

  Status sync_directory(const std::filesystem::path& path) override {
    int descriptor = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (descriptor < 0) return io::status_from_errno(errno, "open directory", path);
    int result = ::fsync(descriptor);
    int saved = errno;
    ::close(descriptor);
    if (result != 0) return io::status_from_errno(saved, "fsync directory", path);
    return Status::ok();
  }

  Status rename(const std::filesystem::path& from, const std::filesystem::path& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return io::status_from_errno(errno, "rename", from);
    return Status::ok();
  }

  Status remove(const std::filesystem::path& path) override {
    if (::remove(path.c_str()) != 0 && errno != ENOENT) return io::status_from_errno(errno, "remove", path);
    return Status::ok();
  }

  Status remove_all(const std::filesystem::path& path) override {
    std::error_code error;
    std::filesystem::remove_all(path, error);
    if (error) return io::status_from_errno(error.value(), "remove", path);
    return Status::ok();
  }

  Result<std::vector<std::string>> list_directory(const std::filesystem::path& path) override {
    DIR* directory = ::opendir(path.c_str());
    if (directory == nullptr) return io::status_from_errno(errno, "list", path);
    std::vector<std::string> names;
    errno = 0;
    while (dirent* entry = ::readdir(directory)) {
      std::string_view name = entry->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
    }
    int saved = errno;
    ::closedir(directory);
    if (saved != 0) return io::status_from_errno(saved, "list", path);
    return names;
  }

  bool exists(const std::filesystem::path& path) override {
    struct stat info {};
    return ::stat(path.c_str(), &info) == 0;
  }

  bool is_directory(const std::filesystem::path& path) override {
    struct stat info {};
    return ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
  }

  Result<std::unique_ptr<FileLock>> lock(const std::filesystem::path& path) override {
    int descriptor = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (descriptor < 0) return io::status_from_errno(errno, "open lock file", path);
    if (::flock(descriptor, LOCK_EX | LOCK_NB) != 0) {
      int saved = errno;
      ::close(descriptor);
      if (saved == EWOULDBLOCK) {
        return Status(ErrorCode::store_locked,
                      "data directory is in use by another msgstore process (lock file " + path.string() + ")");
      }
      return io::status_from_errno(saved, "lock", path);
    }
    // Record the holder's pid for operators; the lock, not the content, is what matters.
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(descriptor, 0) == 0) {
      [[maybe_unused]] ssize_t ignored = ::pwrite(descriptor, pid.data(), pid.size(), 0);
    }
    return std::unique_ptr<FileLock>(new PosixFileLock(descriptor));
  }
};

}  // namespace

std::shared_ptr<FileSystem> posix_file_system() {
  static std::shared_ptr<FileSystem> instance = std::make_shared<PosixFileSystem>();
  return instance;
}

}  // namespace msgstore
