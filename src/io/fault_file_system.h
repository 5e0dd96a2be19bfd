// FaultFileSystem: an in-memory FileSystem for tests that models power loss and injects I/O
// faults (EIO, ENOSPC). Nothing touches the real disk.
//
// Namespace. Paths are normalized with lexically_normal(); a relative path is resolved against
// the root, so "a/b" and "/a/b" name the same file. Directories are explicit: open() under a
// missing directory fails with io_error (ENOENT), as POSIX does. The root always exists.
//
// Durability model (what survives simulate_power_loss):
//   * Every file has its current bytes (what read_at sees) and a durable image. A successful
//     File::sync_data() or File::sync() copies the current bytes, size included, into the
//     durable image. Writes and truncates since the last successful sync are kept as an
//     ordered list of unsynced operations. A failed sync leaves them unsynced; a later
//     successful sync makes them durable (see README.md on why real kernels can be worse).
//   * Every directory has its current entries and a durable set of entries (name -> file or
//     directory object). sync_directory(d) copies d's current entries into its durable set.
//     Nothing else makes an entry durable: not File::sync(), not syncing a subdirectory.
//     A create, remove or rename is therefore durable only once the directory that holds the
//     changed name is synced; a rename touches two names, and each side becomes durable
//     independently when its own directory is synced (so a crash may leave both names, or
//     neither). A new directory's own entry is durable when its parent is synced.
//
// simulate_power_loss(seed, mode) then computes the post-crash state deterministically from
// the seed and "reboots":
//   1. Namespace: starting at the root, each reachable directory's entries are reset to its
//      durable set (walked in name order). If the revert would make one directory reachable
//      twice (both sides of an unsynced directory rename survived), only the first name the
//      walk meets keeps it. A file may end up with two names (a hard link); that is a
//      legitimate crash outcome of an unsynced rename.
//   2. Contents: for every file reachable afterwards, its unsynced operations are replayed in
//      order on top of its durable image. PowerLossMode::random decides independently for
//      each operation: keep it, drop it, or (writes only) tear it, where each 512-byte sector
//      (aligned to the file offset) that the write covers gets the new bytes, keeps its old
//      bytes, or gets random garbage. A torn write extends the file to the write's end.
//      keep_all_unsynced keeps every operation, drop_all_unsynced drops every one.
//   3. The result becomes both the current and the durable state. Every File handle opened
//      before the crash fails with io_error("file handle invalidated by simulated crash")
//      and every FileLock is released.
// simulate_process_crash() models kill -9 instead: nothing is lost, handles and locks go.
//
// Faults (settable at any time): fail_after() makes the count-th next call of one operation
// kind fail with io_error (EIO), applying nothing; set_quota_bytes() bounds the total size of
// all files (ENOSPC -> no_space). lock() and the test accessors never consume faults.
//
// Thread safety: every member function may be called from any thread; one internal mutex
// serializes the file system, its File handles and its FileLocks. Handles and locks may
// outlive the FaultFileSystem (they share its state).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "msgstore/file_system.h"
#include "msgstore/status.h"

namespace msgstore {

enum class PowerLossMode : std::uint8_t {
  random,             // each unsynced operation is kept, dropped or torn, chosen by the seed
  keep_all_unsynced,  // every unsynced write and truncate survives (the namespace still reverts)
  drop_all_unsynced,  // only durable images survive
};

class FaultFileSystem final : public FileSystem {
 public:
  // The operation kinds that fail_after() can fail.
  enum class Operation : std::uint8_t {
    write,           // File::write_at
    sync,            // File::sync_data and File::sync
    rename,          // FileSystem::rename
    open,            // FileSystem::open
    sync_directory,  // FileSystem::sync_directory
    truncate,        // File::truncate
  };

  // Successful calls only: a failed (faulted, refused) call is not counted.
  struct Counters {
    std::uint64_t opens = 0;
    std::uint64_t writes = 0;
    std::uint64_t written_bytes = 0;
    std::uint64_t syncs = 0;  // File::sync_data plus File::sync
    std::uint64_t directory_syncs = 0;
    std::uint64_t renames = 0;
    std::uint64_t truncates = 0;
    std::uint64_t power_losses = 0;  // simulate_power_loss plus simulate_process_crash
    std::uint64_t will_need_hints = 0;  // File::will_need calls (advice only: no effect on data)
    std::uint64_t will_need_bytes = 0;
    std::uint64_t cold_reads = 0;  // File::read_at_if_cached calls answered "not in memory"
  };

  // A file is refused (io_error, EFBIG) beyond this size: it bounds memory when a caller
  // computes a wild offset.
  static constexpr std::uint64_t file_size_max_bytes = std::uint64_t{1} << 30;

  FaultFileSystem();
  ~FaultFileSystem() override;
  FaultFileSystem(const FaultFileSystem&) = delete;
  FaultFileSystem& operator=(const FaultFileSystem&) = delete;

  // FileSystem.
  Result<std::unique_ptr<File>> open(const std::filesystem::path& path, OpenMode mode) override;
  Status create_directories(const std::filesystem::path& path) override;
  Status sync_directory(const std::filesystem::path& path) override;
  Status rename(const std::filesystem::path& from, const std::filesystem::path& to) override;
  Status remove(const std::filesystem::path& path) override;
  Status remove_all(const std::filesystem::path& path) override;
  Result<std::vector<std::string>> list_directory(const std::filesystem::path& path) override;
  bool exists(const std::filesystem::path& path) override;
  bool is_directory(const std::filesystem::path& path) override;
  // Exclusive per normalized path within this instance; creates the (empty) file if missing.
  Result<std::unique_ptr<FileLock>> lock(const std::filesystem::path& path) override;

  // Crashes. The file system stays usable afterwards, as if rebooted.
  void simulate_power_loss(std::uint64_t seed, PowerLossMode mode = PowerLossMode::random);
  void simulate_process_crash();
  // Syncs every named file and directory at once, uncounted and unfaulted: for test setup,
  // e.g. making a fixture's directories durable before the code under test runs.
  void make_all_durable();

  // Fault injection. fail_after(op, n): the n-th call of kind `op` from now fails (n = 1
  // fails the next one), once; n = 0 cancels a pending failure of that kind.
  void fail_after(Operation operation, std::uint64_t count);
  void clear_faults();  // cancels every pending fail_after; the quota is unchanged
  // Total bytes of all files (named, or unlinked but still open) may not exceed the quota: a
  // write_at that would grow the total beyond it fails with no_space and writes nothing.
  // Truncate is never refused. 0 means unlimited.
  void set_quota_bytes(std::uint64_t quota_bytes);
  std::uint64_t used_bytes() const;

  Counters counters() const;
  void reset_counters();
  // File::read_at_if_cached answers "not in memory" while this is set (a cold page cache),
  // and reads like read_at otherwise (the default: everything is in memory).
  void set_cold_reads(bool cold);

  // Test access by path; nullopt (or io_error) when no file is named `path` now.
  std::optional<std::string> current_contents(const std::filesystem::path& path) const;
  // The durable image of the file object that `path` names now (its name may not be durable).
  std::optional<std::string> durable_contents(const std::filesystem::path& path) const;
  // On-disk damage: overwrites bytes of both the current and the durable image (each where
  // the range falls inside it). io_error if no file is named `path`, invalid_argument if the
  // range lies wholly outside both images.
  Status corrupt(const std::filesystem::path& path, std::uint64_t offset, const std::string& bytes);
  // Flips bit `bit` (0..7) of one byte in both images (each where it falls inside it).
  Status flip_bit(const std::filesystem::path& path, std::uint64_t byte_offset, unsigned bit);
  // Every file in the current namespace as an absolute normalized path, sorted.
  std::vector<std::filesystem::path> all_files() const;

  struct State;  // shared with File handles and FileLocks; defined in the .cc

 private:
  std::shared_ptr<State> state_;
};

}  // namespace msgstore
