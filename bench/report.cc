#include "report.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace msgstore::bench {
namespace {

double median_of(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t middle = values.size() / 2;
  return values.size() % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

std::string format(const char* pattern, double value) {
  char text[64];
  std::snprintf(text, sizeof text, pattern, value);
  return text;
}

std::string format_payload(std::size_t bytes) {
  if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes / 1024) + " KiB";
  return std::to_string(bytes) + " B";
}

std::string format_mib(std::uint64_t bytes) { return format("%.0f MiB", static_cast<double>(bytes) / (1024.0 * 1024)); }

std::string rate_cell(const RateSummary& summary) {
  if (summary.runs_ok == 0) return summary.runs_failed == 0 ? "not run" : "failed";
  std::string cell = format_rate(summary.median) + " (" + format_rate(summary.minimum) + ".." + format_rate(summary.maximum) + ")";
  if (summary.runs_time_bounded > 0) cell += " [" + std::to_string(summary.runs_time_bounded) + " time-bounded]";
  return cell;
}

struct GoalOutcome {
  double ratio = 0;            // median of the per-repetition ratios: what pass/fail uses
  double ratio_minimum = 0;
  double ratio_maximum = 0;
  double ratio_of_medians = 0;
  bool passed = false;
  std::string problem;  // why it failed besides the ratio
};

// Systems of one repetition ran side by side (interleaved or back to back), so the ratio of
// each pair cancels most of what the shared machine was doing at the time; the median of
// those ratios is the figure the goals are judged by.
GoalOutcome evaluate(const Goal& goal) {
  GoalOutcome outcome;
  const RateSummary subject = summarize(*goal.subject);
  const RateSummary baseline = summarize(*goal.baseline);
  if (subject.runs_failed > 0) outcome.problem = goal.subject->system + " failed: " + subject.first_error;
  if (baseline.runs_failed > 0) outcome.problem = goal.baseline->system + " failed: " + baseline.first_error;
  if (subject.runs_ok == 0 || baseline.runs_ok == 0 || baseline.median <= 0) return outcome;
  outcome.ratio_of_medians = subject.median / baseline.median;
  std::vector<double> ratios;
  const std::size_t pairs = std::min(goal.subject->runs.size(), goal.baseline->runs.size());
  for (std::size_t index = 0; index < pairs; ++index) {
    const RunResult& left = goal.subject->runs[index];
    const RunResult& right = goal.baseline->runs[index];
    if (left.ok() && right.ok() && right.messages_per_second() > 0) {
      ratios.push_back(left.messages_per_second() / right.messages_per_second());
    }
  }
  if (ratios.empty()) return outcome;
  outcome.ratio = median_of(ratios);
  outcome.ratio_minimum = *std::min_element(ratios.begin(), ratios.end());
  outcome.ratio_maximum = *std::max_element(ratios.begin(), ratios.end());
  outcome.passed = outcome.problem.empty() && outcome.ratio >= goal.ratio_target;
  return outcome;
}

void render_goal_table(std::ostringstream& out, const std::vector<Goal>& goals, bool informational, bool& all_passed,
                       std::vector<std::string>& problems) {
  out << "| goal | workload | payload | " << (informational ? "measured" : "msgstore")
      << " msgs/s, median (min..max) | baseline | baseline msgs/s, median (min..max) "
         "| ratio: median of repetitions (min..max) | ratio of medians | target | result |\n";
  out << "|---|---|---|---|---|---|---|---|---|---|\n";
  for (const Goal& goal : goals) {
    const GoalOutcome outcome = evaluate(goal);
    const RateSummary subject = summarize(*goal.subject);
    const RateSummary baseline = summarize(*goal.baseline);
    std::string result = informational ? (outcome.ratio >= goal.ratio_target ? "(meets)" : "(below)")
                                       : (outcome.passed ? "**PASS**" : "**FAIL**");
    if (!informational && !outcome.passed) all_passed = false;
    if (!outcome.problem.empty()) problems.push_back(goal.id + ": " + outcome.problem);
    out << "| " << goal.id << " | " << goal.description << " | " << format_payload(goal.subject->payload_bytes) << " | "
        << (goal.subject->system == "msgstore" ? "" : goal.subject->system + ": ") << rate_cell(subject) << " | "
        << goal.baseline->system << ": " << goal.baseline->workload << " | "
        << rate_cell(baseline) << " | **" << format("%.2fx", outcome.ratio) << "** (" << format("%.2f", outcome.ratio_minimum)
        << ".." << format("%.2f", outcome.ratio_maximum) << ") | " << format("%.2fx", outcome.ratio_of_medians) << " | >= "
        << format("%.1fx", goal.ratio_target) << " | " << result << " |\n";
  }
}

}  // namespace

std::string format_rate(double messages_per_second) {
  if (messages_per_second >= 1e6) return format("%.2fM", messages_per_second / 1e6);
  if (messages_per_second >= 1e5) return format("%.0fk", messages_per_second / 1e3);
  if (messages_per_second >= 1e3) return format("%.1fk", messages_per_second / 1e3);
  return format("%.0f", messages_per_second);
}

RateSummary summarize(const Series& series) {
  RateSummary summary;
  std::vector<double> rates, messages, cpu;
  for (const RunResult& run : series.runs) {
    if (!run.ok()) {
      ++summary.runs_failed;
      if (summary.first_error.empty()) summary.first_error = run.error;
      continue;
    }
    ++summary.runs_ok;
    if (run.time_bound_hit) ++summary.runs_time_bounded;
    rates.push_back(run.messages_per_second());
    messages.push_back(static_cast<double>(run.messages));
    if (run.messages > 0) cpu.push_back(run.cpu_seconds * 1e6 / static_cast<double>(run.messages));
  }
  if (!rates.empty()) {
    summary.median = median_of(rates);
    summary.minimum = *std::min_element(rates.begin(), rates.end());
    summary.maximum = *std::max_element(rates.begin(), rates.end());
  }
  summary.median_messages = median_of(messages);
  summary.median_cpu_microseconds_per_message = median_of(cpu);
  return summary;
}

std::string render_report(const ReportContext& context, const std::vector<Goal>& goals,
                          const std::vector<Goal>& informational, const MemoryGoal& memory,
                          const std::vector<const Series*>& details, bool& all_passed) {
  all_passed = true;
  std::ostringstream out;
  std::vector<std::string> problems;
  const MachineDescription& machine = context.machine;
  out << "# msgstore_bench " << context.mode << " run, " << context.title_date << "\n\n";
  out << "- machine: " << context.label << " — " << machine.logical_processors << " logical CPUs ("
      << machine.processor_model << "), " << format("%.1f GiB", static_cast<double>(machine.memory_bytes) / (1 << 30))
      << " memory, benchmark directory on " << machine.file_system_type << ", Linux " << machine.kernel_release << "\n";
  out << "- software: SQLite " << machine.sqlite_version << ", " << machine.compiler << ", build type "
      << machine.build_type << "\n";
  out << "- command: `" << context.command << "`\n";
  out << "- " << context.repetitions << " repetitions. Within a repetition the systems of goals 1 and 3 take turns in "
      << "interleaved slices and those of goals 2 and 4 run back to back, in an order rotated per repetition. Rates are "
      << "medians over repetitions, (min..max) the spread; a goal is judged by the median of the per-repetition ratios, "
      << "since systems measured side by side share the machine's mood\n\n";

  out << "## Acceptance goals\n\n";
  if (!goals.empty()) render_goal_table(out, goals, /*informational=*/false, all_passed, problems);
  if (memory.requested) {
    const MemoryRun& run = memory.run;
    std::string result;
    std::string measured;
    if (!run.skipped_reason.empty()) {
      result = "**FAIL** (skipped)";
      measured = "skipped: " + run.skipped_reason;
      all_passed = false;
    } else if (!run.error.empty()) {
      result = "**FAIL**";
      measured = "error: " + run.error;
      all_passed = false;
    } else {
      const std::uint64_t peak_kib = std::max(run.peak_sampled_rss_kib, run.high_water_rss_kib);
      const bool complete = run.payload_bytes_published >= run.payload_bytes_target;
      const bool passed = complete && peak_kib * 1024 < memory.limit_bytes;
      if (!passed) all_passed = false;
      result = passed ? "**PASS**" : (complete ? "**FAIL**" : "**FAIL** (time bound hit before the target volume)");
      measured = "peak VmHWM " + format_mib(run.high_water_rss_kib * 1024) + ", peak sampled VmRSS " +
                 format_mib(run.peak_sampled_rss_kib * 1024) + " (" + std::to_string(run.samples) +
                 " samples; " + format_mib(run.baseline_rss_kib * 1024) + " before opening the store); published " +
                 format("%.2f GiB", static_cast<double>(run.payload_bytes_published) / (1 << 30)) + " in " +
                 format("%.1f s", run.elapsed_seconds) + " (" +
                 format_rate(static_cast<double>(run.payload_bytes_published) / 1024 / std::max(run.elapsed_seconds, 1e-9)) +
                 " msgs/s)";
    }
    out << "\n| goal | workload | payload | measured | limit | result |\n|---|---|---|---|---|---|\n";
    out << "| 5 | resident memory of a child process publishing "
        << format("%.1f GiB", static_cast<double>(run.payload_bytes_target) / (1 << 30))
        << ", batches of 1000, fsync=never, 128 MiB segments | 1 KiB | " << measured << " | < "
        << format_mib(memory.limit_bytes) << " | " << result << " |\n";
  }
  out << "\n**Overall: " << (all_passed ? "all goals pass" : "at least one goal fails") << ".**\n";

  if (!informational.empty()) {
    out << "\n## Further comparisons (information, not goals)\n\n";
    bool ignored = true;
    render_goal_table(out, informational, /*informational=*/true, ignored, problems);
  }

  out << "\n## Every series\n\n";
  out << "| system | workload | payload | runs | msgs/s, median (min..max) | payload MB/s (median) | CPU us/msg (median) "
         "| messages per run (median) |\n";
  out << "|---|---|---|---|---|---|---|---|\n";
  for (const Series* series : details) {
    const RateSummary summary = summarize(*series);
    out << "| " << series->system << " | " << series->workload << " | " << format_payload(series->payload_bytes) << " | "
        << summary.runs_ok << (summary.runs_failed > 0 ? " (+" + std::to_string(summary.runs_failed) + " failed)" : "")
        << " | " << rate_cell(summary) << " | "
        << format("%.0f", summary.median * static_cast<double>(series->payload_bytes) / 1e6) << " | "
        << format("%.2f", summary.median_cpu_microseconds_per_message) << " | " << format("%.0f", summary.median_messages)
        << " |\n";
  }

  if (!problems.empty() || !context.notes.empty()) out << "\n## Notes\n\n";
  for (const std::string& problem : problems) out << "- error: " << problem << "\n";
  for (const std::string& note : context.notes) out << "- " << note << "\n";
  return out.str();
}

}  // namespace msgstore::bench
