// bench/report.h: turns repeated runs into the Markdown report of msgstore_bench.
//
// A Series is every repetition of one system on one workload at one payload size. A Goal
// compares two series: the ratio is median(subject) / median(baseline) of messages per
// second, and the goal passes when that ratio reaches the target and no run failed. The
// per-run ratio range pairs runs of the same repetition (they ran back to back).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "harness.h"
#include "memory_workload.h"

namespace msgstore::bench {

struct Series {
  std::string system;       // "msgstore", "SQLite", "write+fdatasync"
  std::string workload;     // what was done, with the settings that matter
  std::size_t payload_bytes = 0;
  std::vector<RunResult> runs;
};

struct RateSummary {
  std::size_t runs_ok = 0;
  std::size_t runs_failed = 0;
  std::size_t runs_time_bounded = 0;
  double median = 0, minimum = 0, maximum = 0;  // messages per second over the runs that worked
  double median_messages = 0;
  double median_cpu_microseconds_per_message = 0;
  std::string first_error;
};
RateSummary summarize(const Series& series);

struct Goal {
  std::string id;           // "1a"
  std::string description;  // the workload as the acceptance criterion states it
  const Series* subject = nullptr;
  const Series* baseline = nullptr;
  double ratio_target = 0;  // pass when the median ratio >= this
};

struct MemoryGoal {
  bool requested = false;
  MemoryRun run;
  std::uint64_t limit_bytes = 0;
};

struct ReportContext {
  std::string title_date;   // UTC date and time of the run
  std::string label;        // a machine label such as "2vcpu-xeon" (never a host name)
  std::string command;      // how the run was started, without paths
  std::string mode;         // "full" or "quick"
  unsigned repetitions = 0;
  MachineDescription machine;
  std::vector<std::string> notes;  // printed under the tables
};

// Renders the report; sets all_passed to whether every goal (and the memory goal, if
// requested) passed.
std::string render_report(const ReportContext& context, const std::vector<Goal>& goals,
                          const std::vector<Goal>& informational, const MemoryGoal& memory,
                          const std::vector<const Series*>& details, bool& all_passed);

// "1.23M", "456k", "35.2k", "812".
std::string format_rate(double messages_per_second);

}  // namespace msgstore::bench
