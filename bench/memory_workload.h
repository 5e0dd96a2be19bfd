// bench/memory_workload.h: msgstore's resident memory while it publishes a large volume.
//
// The publisher runs in a child process (fork, then exec of this same binary with
// memory_child_flag), so the resident set measured is msgstore's alone: not the parent's
// buffers, not SQLite's caches. The child samples VmRSS from /proc/self/status every 10 ms on
// a thread of its own, reads VmHWM (the kernel's own high-water mark) at the end, and reports
// one line of key=value pairs on its standard output, which the parent reads through a pipe.
// The parent removes the data afterwards and kills the child (by its process id) if it
// overruns its time limit.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace msgstore::bench {

inline constexpr const char* memory_child_flag = "--internal-memory-child";

struct MemoryRun {
  std::string error;           // the run failed
  std::string skipped_reason;  // the run did not start (for example, too little free disk)
  std::uint64_t payload_bytes_target = 0;
  std::uint64_t payload_bytes_published = 0;
  std::uint64_t log_bytes = 0;            // segment log file bytes at the end
  std::uint64_t baseline_rss_kib = 0;     // before the store was opened
  std::uint64_t peak_sampled_rss_kib = 0; // largest VmRSS sample
  std::uint64_t high_water_rss_kib = 0;   // VmHWM at the end
  std::uint64_t final_rss_kib = 0;        // VmRSS after the store was closed
  std::uint64_t samples = 0;
  double elapsed_seconds = 0;
  bool time_bound_hit = false;

  bool ok() const { return error.empty() && skipped_reason.empty(); }
};

// Publishes `payload_bytes_target` bytes of 1 KiB payloads in batches of 1000 (fsync=never,
// default segment size) in a child process, in a scratch directory under `parent_directory`.
// Checks free disk space first (target plus a margin) and skips with a reason if short.
MemoryRun measure_publish_memory(const std::filesystem::path& parent_directory, std::uint64_t payload_bytes_target,
                                 double seconds_max);

// The child's side; main() calls it when argv[1] is memory_child_flag. Returns the exit code.
int run_memory_child(int argc, char** argv);

}  // namespace msgstore::bench
