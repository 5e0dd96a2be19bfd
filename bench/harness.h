// bench/harness.h: measurement plumbing shared by every workload of msgstore_bench.
//
// A workload run is one system (msgstore, SQLite, the bare disk) doing one job once, bounded
// by a message count and a time limit, in a fresh scratch directory that is removed after the
// run. It reports a RunResult; the report (report.h) turns repetitions into medians, spreads
// and ratios. Nothing here prints; errors come back as strings in the results.
//
// Thread safety: PayloadSource is immutable after construction and may be shared by threads.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace msgstore::bench {

using SteadyClock = std::chrono::steady_clock;

double seconds_between(SteadyClock::time_point begin, SteadyClock::time_point end);
SteadyClock::time_point deadline_after(SteadyClock::time_point begin, double seconds);
// User + system CPU time of this process, all threads included.
double process_cpu_seconds();

// Every run stops at whichever comes first.
struct RunLimits {
  std::uint64_t messages_max = 0;
  double seconds_max = 0;
};

// One timed run of one system on one workload.
struct RunResult {
  std::string error;                 // empty when the run worked
  std::uint64_t messages = 0;        // messages (rows) completed inside the timed region
  double elapsed_seconds = 0;
  double cpu_seconds = 0;            // process CPU (all threads) during the timed region
  bool time_bound_hit = false;       // stopped by the time limit before the message count
  std::uint64_t bytes_written = 0;   // msgstore: bytes of segment log files; raw: bytes written
  std::uint64_t payload_checksum = 0;  // replays: sum of one byte per payload, to cross-check systems

  bool ok() const { return error.empty(); }
  double messages_per_second() const { return elapsed_seconds > 0 ? static_cast<double>(messages) / elapsed_seconds : 0; }
};

// The timed loop of a publisher that works in batches: calls publish_batch(first_index, count),
// count <= batch_messages, until `messages` are published or `deadline` has passed. first_index
// continues from `next_index`, which the loop advances. publish_batch returns an error message,
// empty on success; the first error stops the loop and is the result's error. The result's
// elapsed and CPU time cover the whole loop; bytes_written is the caller's to fill in.
template <typename PublishBatch>
RunResult run_batches(std::uint64_t messages, std::uint64_t batch_messages, SteadyClock::time_point deadline,
                      std::uint64_t& next_index, PublishBatch&& publish_batch) {
  RunResult result;
  const double cpu_begin = process_cpu_seconds();
  const auto begin = SteadyClock::now();
  while (result.messages < messages) {
    if (SteadyClock::now() >= deadline) {
      result.time_bound_hit = true;
      break;
    }
    const std::uint64_t count = std::min(batch_messages, messages - result.messages);
    result.error = publish_batch(next_index, count);
    if (!result.ok()) break;
    result.messages += count;
    next_index += count;
  }
  result.elapsed_seconds = seconds_between(begin, SteadyClock::now());
  result.cpu_seconds = process_cpu_seconds() - cpu_begin;
  return result;
}

// The timed run of `threads` publishers sending one message at a time: every thread claims the
// next message index (from `next_index` on, up to `messages` in all) and calls
// publish_one(thread_index, message_index, error) until the messages run out, the deadline
// passes or one thread fails. publish_one returns true once the message is stored; false with
// `error` set is a failure (the run's error; every thread stops); false with `error` empty means
// it gave up at the deadline. The threads start together; elapsed and CPU time cover them all.
// `next_index` advances past every claimed message.
RunResult run_concurrently(unsigned threads, std::uint64_t messages, SteadyClock::time_point deadline,
                           std::uint64_t& next_index,
                           const std::function<bool(unsigned thread_index, std::uint64_t message_index, std::string& error)>& publish_one);

// A system under test that is opened once and then driven in slices, so that several systems
// can take turns within one repetition and a slow spell of the shared machine hits them all
// (run_interleaved). Not thread-safe; one driver thread.
class PublishSession {
 public:
  virtual ~PublishSession() = default;
  virtual std::string name() const = 0;
  // Opens the system in `directory` (empty; the caller removes it afterwards). Returns an
  // error message, empty on success. Untimed.
  virtual std::string open(const std::filesystem::path& directory) = 0;
  // Publishes up to `messages` more messages, continuing the message sequence where the
  // previous slice stopped, and stops early at `deadline`. Timed; returns this slice's result.
  virtual RunResult run_slice(std::uint64_t messages, SteadyClock::time_point deadline) = 0;
  // Closes the system. Returns an error message, empty on success. Untimed.
  virtual std::string close() = 0;
};

// Drives `sessions` side by side in `slices` rounds. In each round every session gets
// limits[i].messages_max / slices messages and limits[i].seconds_max / slices seconds, in an
// order rotated by `rotation` + round; `before_slice` runs (untimed) before every slice.
// Returns one result per session, the sums over its slices; a session stops at its first
// failed slice. The sessions must be open.
std::vector<RunResult> run_interleaved(const std::vector<PublishSession*>& sessions, const std::vector<RunLimits>& limits,
                                       unsigned slices, unsigned rotation, const std::function<void()>& before_slice);

// The bytes every system stores: message i has payload payload(i) and key key(i). Payloads are
// views into one pseudo-random buffer at varying starts, so consecutive messages differ
// without any per-message copy or generation cost.
class PayloadSource {
 public:
  explicit PayloadSource(std::size_t payload_bytes);
  std::size_t payload_bytes() const { return payload_bytes_; }
  std::string_view payload(std::uint64_t index) const;
  std::string_view key(std::uint64_t index) const;  // "key-000" .. "key-999"
  // The byte a replay sums for message i (its payload's first byte).
  static unsigned char touched_byte(std::string_view payload) { return static_cast<unsigned char>(payload.front()); }

 private:
  std::size_t payload_bytes_;
  std::string buffer_;
  std::vector<std::string> keys_;
};

// A fresh directory under `parent`, removed with everything in it on destruction.
class ScratchDirectory {
 public:
  ScratchDirectory(const std::filesystem::path& parent, const std::string& prefix);
  ~ScratchDirectory();
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  const std::filesystem::path& path() const { return path_; }
  bool created() const { return !path_.empty(); }

 private:
  std::filesystem::path path_;
};

// Sum of the sizes of the regular files under `directory` whose names end with `suffix`.
std::uint64_t file_bytes_with_suffix(const std::filesystem::path& directory, std::string_view suffix);
// Writes `bytes` into a file in `directory` in 1 MiB pieces and deletes it unsynced: the page
// cache pages it used are free again, and resident, when the next run allocates its own. On a
// VM with free page reporting (this one), memory that stayed free for a few seconds goes back
// to the host, and writing into it again runs at the speed of host page faults (~100-200 MB/s
// here instead of 2-4 GB/s); a warm-up right before each run keeps that out of the figures.
void warm_page_cache(const std::filesystem::path& directory, std::uint64_t bytes);
// Free bytes for an unprivileged user on the file system holding `path` (0 if unknown).
std::uint64_t free_disk_bytes(const std::filesystem::path& path);

// A value from /proc/self/status such as "VmRSS" or "VmHWM", in KiB (0 if absent).
std::uint64_t proc_status_kib(const char* field);

// What the report says about the machine. No host name and no path ever goes in here.
struct MachineDescription {
  std::string processor_model;   // /proc/cpuinfo "model name"
  unsigned logical_processors = 0;
  std::uint64_t memory_bytes = 0;  // /proc/meminfo MemTotal
  std::string file_system_type;  // of the benchmark directory, from /proc/self/mountinfo
  std::string kernel_release;    // uname -r
  std::string sqlite_version;
  std::string compiler;
  std::string build_type;
};
MachineDescription describe_machine(const std::filesystem::path& benchmark_directory);

}  // namespace msgstore::bench
