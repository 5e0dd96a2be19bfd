// Shared machinery of the crash tests (tests/crash/README.md): seeds from the environment and
// the command that replays one, the "process" file system that dies at a crash, and the
// figures every test prints.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "crash/checker.h"
#include "io/fault_file_system.h"
#include "msgstore/file_system.h"
#include "msgstore/store.h"

namespace msgstore::crash {

// ---- Seeds ----------------------------------------------------------------------------------
// CRASH_SEED=<s>: exactly seed s (a replay). Otherwise CRASH_SEEDS=<n> seeds (default
// `default_count`) starting at CRASH_SEED_FIRST (default 1).
std::vector<std::uint64_t> seeds_from_environment(std::uint64_t default_count);
// A number from the environment: for tests whose unit of work is not only a seed (the n of
// fail_after, the quota levels), or a replay parameter. `fallback` when unset.
std::uint64_t environment_u64(const char* name, std::uint64_t fallback);
// "CRASH_SEED=<seed> <this binary> --gtest_filter=<current test>"
std::string replay_command(std::uint64_t seed);
// Failed test parts recorded so far in the current test (to tell whether one seed failed).
int failures_so_far();

// Runs `body(seed)` for every seed; prints the replay command of every seed that failed and
// stops after `max_failed_seeds` of them. Counts seeds and failures into `figures`.
template <typename Body>
void for_each_seed(std::uint64_t default_count, Figures& figures, Body&& body, int max_failed_seeds = 3) {
  int failed_seeds = 0;
  for (std::uint64_t seed : seeds_from_environment(default_count)) {
    const int before = failures_so_far();
    body(seed);
    ++figures.seeds;
    if (failures_so_far() != before) {
      ++figures.failures;
      std::fprintf(stderr, "CRASH-FAILED seed=%llu replay: %s\n", static_cast<unsigned long long>(seed),
                   replay_command(seed).c_str());
      if (++failed_seeds >= max_failed_seeds) break;
    }
  }
}

// ---- The file system of one "process" -------------------------------------------------------
// Forwards to a FaultFileSystem (the disk, which outlives processes) until the process dies.
// After that every call, and every call on a File it opened, fails with io_error: the threads
// of a process that lost power (or was killed) must not keep writing to the rebooted disk.
// A death waits for calls in flight, so it falls between two operations.
//
// It also counts operations (for crash-at-step-k tests), can die by itself right after the
// k-th mutating operation, logs the faults the disk injected, and remembers every version of
// each metadata file (*.meta) that a rename installed.
class ProcessFileSystem final : public FileSystem {
 public:
  struct Fault {
    std::uint64_t call = 0;  // calls() when it happened
    std::string operation;   // "write", "sync", "rename", "sync_directory", "open", "truncate"
    std::filesystem::path path;
    ErrorCode code = ErrorCode::ok;
  };
  struct Shared;  // state shared with the Files it opened

  explicit ProcessFileSystem(std::shared_ptr<FaultFileSystem> disk);
  ~ProcessFileSystem() override;

  // Deaths. power_loss and process_crash kill the process, then crash the disk.
  void kill();
  void power_loss(std::uint64_t seed, PowerLossMode mode = PowerLossMode::random);
  void process_crash();
  bool dead() const;
  // Dies right after the count-th mutating operation from now completes (0: never).
  void die_after(std::uint64_t count);
  // Called before each rename while the process lives; an error fails the rename without
  // renaming (it still counts as a mutating operation, so die_after(1) inside the hook makes
  // the process die at that rename). The hook may call back into the store. Set it only while
  // no other thread uses this file system; empty: none.
  using RenameHook = std::function<Status(const std::filesystem::path& from, const std::filesystem::path& to)>;
  void set_before_rename(RenameHook hook);

  // Every call (reads included) and mutating calls (create, write, sync, truncate, rename,
  // remove, mkdir, directory sync) so far.
  std::uint64_t calls() const;
  std::uint64_t mutations() const;
  std::vector<Fault> faults() const;
  // For each file: calls() as it was when the file's most recent successful sync (sync_data or
  // sync) started. Every write to that file that completed before then is durable.
  std::map<std::filesystem::path, std::uint64_t> last_sync_starts() const;
  // Every content a rename installed at each *.meta path, in order.
  std::map<std::filesystem::path, std::vector<std::string>> metadata_versions() const;

  FaultFileSystem& disk() { return *disk_; }

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
  Result<std::unique_ptr<FileLock>> lock(const std::filesystem::path& path) override;

 private:
  std::shared_ptr<FaultFileSystem> disk_;
  std::shared_ptr<Shared> shared_;
};

// ---- A mixed publish workload (io_error_test, no_space_test) -------------------------------
// One step: a maintenance pass, or one batch of `count` messages with one key to one stream.
struct WorkloadStep {
  bool maintenance = false;
  std::string stream;
  std::string key;
  std::size_t count = 1;
  std::size_t filler = 0;  // bytes of filler in the first message's payload (+1 per later one)
};

struct WorkloadShape {
  std::size_t steps = 0;
  std::uint64_t maintenance_one_in = 1;  // a step is a maintenance pass with chance 1 in this
  std::string stream;                    // the stream of 3 in 4 publish steps
  std::string other_stream;              // the stream of the other publish steps
  std::uint64_t keys = 1;                // keys "k0" .. "k<keys-1>"
  std::uint64_t batch_one_in = 1;        // a batch of 2-5 messages with chance 1 in this, else one
  std::uint64_t filler_spread_bytes = 1;  // filler 20 .. 20 + spread - 1 bytes
};

// The same seed and shape give the same steps (a seed's replay command depends on it).
std::vector<WorkloadStep> make_workload(std::uint64_t seed, const WorkloadShape& shape);

// The messages of one publish step (subject "<stream>.m", the step's key), each with the next id
// of producer 0 from `sequence`, recorded as attempted in `checker`. OutgoingMessage holds views:
// `outgoing()` points into this object, which must outlive the publish.
struct StepMessages {
  std::vector<MessageId> ids;
  std::string subject;
  std::string key;
  std::vector<std::string> payloads;
  std::vector<OutgoingMessage> outgoing() const;
};
StepMessages step_messages(const WorkloadStep& step, std::uint64_t& sequence, Checker& checker);

// ---- Small helpers --------------------------------------------------------------------------
// Every *.meta file on the disk (current namespace) must decode (header, checksum); returns
// one line per problem.
std::vector<std::string> check_metadata_files(const FaultFileSystem& disk);

// Options for a single-threaded test whose seed must replay the same file system calls:
// background maintenance off (the test runs it) and inline indexing (index_threads = 0: a
// sealed segment's index file is written by the appending thread, not by an index thread whose
// timing would move the N-th write). The index thread's concurrency under crashes is
// power_loss_test's and dedup_crash_test's to cover.
StoreOptions replayable_store_options(std::shared_ptr<FileSystem> file_system);

// Opens a store on `file_system` with background maintenance off, timing the open.
Result<std::unique_ptr<Store>> open_timed(const std::filesystem::path& directory, std::shared_ptr<FileSystem> file_system,
                                          double& milliseconds);
// The same with the caller's options (replayable_store_options, for instance).
Result<std::unique_ptr<Store>> open_timed(const std::filesystem::path& directory, StoreOptions options, double& milliseconds);

}  // namespace msgstore::crash
