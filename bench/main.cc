// msgstore_bench: msgstore against SQLite and the bare disk, in one run on one machine.
//
// Workloads (goal numbers are the acceptance criteria in bench/README.md):
//   1. publish, batches of 100, one durable commit per batch, one thread
//      vs SQLite WAL synchronous=FULL, 100 rows per transaction (>= 3x)
//      vs write()+fdatasync of the same bytes per batch (>= 0.6x)
//   2. publish, batches of 1000, fsync=never vs SQLite synchronous=NORMAL, 1000 rows/txn (>= 10x)
//   3. 16 threads publishing single messages, fsync=always (group commit)
//      vs 16 SQLite connections, synchronous=FULL, one row per transaction (>= 5x)
//   4. sequential replay of workload 2's data: one Store::scan over everything vs one SQLite
//      SELECT ... ORDER BY seq over everything (>= 3x)
//   5. resident memory of a child process publishing 5 GiB (< 256 MiB)
// Every run has a message count and a time limit and its own scratch directory, removed after.
// The systems of goals 1 and 3 take turns in interleaved slices; those of goals 2 and 4 run
// back to back. Progress goes to stderr; the Markdown report to stdout and to --output.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "harness.h"
#include "msgstore/store.h"
#include "memory_workload.h"
#include "msgstore_workloads.h"
#include "raw_io_workloads.h"
#include "report.h"
#include "sqlite_workloads.h"

namespace msgstore::bench {
namespace {

constexpr unsigned concurrent_threads = 16;
constexpr std::size_t small_batch_messages = 100;
constexpr std::size_t large_batch_messages = 1000;
constexpr std::uint64_t memory_limit_bytes = 256ull * 1024 * 1024;
constexpr std::uint64_t calibration_batches = 200;

struct Options {
  bool quick = false;
  unsigned repetitions = 5;
  std::string directory = "bench/results/tmp";
  std::string output;
  std::string label = "unlabelled";
  std::string workloads = "1,2,3,4,5";
  std::string systems = "msgstore,sqlite,raw";  // fewer only for profiling one side
  bool page_cache_warmup = true;
  bool indexes = false;  // msgstore's key and subject indexes (set_msgstore_indexes)
  std::vector<std::size_t> payload_sizes = {100, 1024};
};

// Message counts and time limits for one mode. Counts are per run.
// Payloads below 1 KiB use the *_100_bytes counts, the others the *_1_kib counts.
struct Plan {
  std::uint64_t small_batch_messages_100_bytes = 0;  // goal 1
  std::uint64_t small_batch_messages_1_kib = 0;
  double small_batch_seconds = 0;
  std::uint64_t large_batch_messages_100_bytes = 0;  // goals 2 and 4
  std::uint64_t large_batch_messages_1_kib = 0;
  double large_batch_seconds = 0;
  std::uint64_t concurrent_msgstore_messages = 0;    // goal 3
  std::uint64_t concurrent_sqlite_messages = 0;
  std::uint64_t single_thread_sqlite_messages = 0;
  double concurrent_seconds = 0;  // the single SQLite thread gets half
  double replay_seconds = 0;
  std::uint64_t memory_payload_bytes = 0;            // goal 5
  double memory_seconds = 0;
  unsigned interleave_slices = 0;  // goals 1 and 3: the systems take turns this many times

  std::uint64_t small_batch_messages_for(std::size_t payload_bytes) const {
    return payload_bytes < 1024 ? small_batch_messages_100_bytes : small_batch_messages_1_kib;
  }
  std::uint64_t large_batch_messages_for(std::size_t payload_bytes) const {
    return payload_bytes < 1024 ? large_batch_messages_100_bytes : large_batch_messages_1_kib;
  }
};

Plan make_plan(bool quick) {
  if (quick) {
    return Plan{.small_batch_messages_100_bytes = 20'000,
                .small_batch_messages_1_kib = 10'000,
                .small_batch_seconds = 2,
                .large_batch_messages_100_bytes = 100'000,
                .large_batch_messages_1_kib = 30'000,
                .large_batch_seconds = 2,
                .concurrent_msgstore_messages = 10'000,
                .concurrent_sqlite_messages = 1'000,
                .single_thread_sqlite_messages = 500,
                .concurrent_seconds = 0.6,
                .replay_seconds = 5,
                .memory_payload_bytes = 512ull << 20,
                .memory_seconds = 120,
                .interleave_slices = 2};
  }
  return Plan{.small_batch_messages_100_bytes = 400'000,
              .small_batch_messages_1_kib = 200'000,
              .small_batch_seconds = 6,
              .large_batch_messages_100_bytes = 2'000'000,
              .large_batch_messages_1_kib = 500'000,
              .large_batch_seconds = 15,
              .concurrent_msgstore_messages = 300'000,
              .concurrent_sqlite_messages = 100'000,
              .single_thread_sqlite_messages = 30'000,
              .concurrent_seconds = 4,
              .replay_seconds = 20,
              .memory_payload_bytes = 5ull << 30,
              .memory_seconds = 600,
              .interleave_slices = 4};
}

// Every series of one payload size.
struct SizeSeries {
  std::size_t payload_bytes = 0;
  std::uint64_t raw_batch_bytes = 0;  // msgstore's bytes per batch of 100, from calibration
  Series small_batch_msgstore, small_batch_sqlite, small_batch_raw, small_batch_raw_preallocated;
  Series large_batch_msgstore, large_batch_sqlite;
  Series concurrent_msgstore, concurrent_sqlite, single_thread_sqlite;
  Series replay_msgstore_scan, replay_msgstore_pages, replay_sqlite_scan, replay_sqlite_pages;
  std::uint64_t checksum_comparisons = 0;
  std::uint64_t checksum_mismatches = 0;
};

void initialise(SizeSeries& series, std::size_t payload_bytes) {
  series.payload_bytes = payload_bytes;
  auto set = [payload_bytes](Series& target, const char* system, const char* workload) {
    target.system = system;
    target.workload = workload;
    target.payload_bytes = payload_bytes;
  };
  set(series.small_batch_msgstore, "msgstore", "publish_batch of 100, fsync=always, 1 thread (D2)");
  set(series.small_batch_sqlite, "SQLite", "WAL, synchronous=FULL, 100 rows/transaction (D2)");
  set(series.small_batch_raw, "write+fdatasync", "one write() of msgstore's batch bytes + fdatasync per 100 messages (D2)");
  set(series.small_batch_raw_preallocated, "write+fdatasync, preallocated",
      "the same, overwriting zeros written 1 MiB ahead as msgstore's segments do (D2)");
  set(series.large_batch_msgstore, "msgstore", "publish_batch of 1000, fsync=never, 1 thread (D1)");
  set(series.large_batch_sqlite, "SQLite", "WAL, synchronous=NORMAL, 1000 rows/transaction (D1)");
  set(series.concurrent_msgstore, "msgstore", "16 threads, single publish, fsync=always, group commit (D2)");
  set(series.concurrent_sqlite, "SQLite", "16 threads/connections, synchronous=FULL, 1 row/transaction (D2)");
  set(series.single_thread_sqlite, "SQLite", "1 thread, synchronous=FULL, 1 row/transaction (D2)");
  set(series.replay_msgstore_scan, "msgstore", "replay: one Store::scan over everything");
  set(series.replay_msgstore_pages, "msgstore", "replay: Store::scan calls of 1000");
  set(series.replay_sqlite_scan, "SQLite", "replay: one SELECT ... ORDER BY seq over everything");
  set(series.replay_sqlite_pages, "SQLite", "replay: paged SELECT ... seq > ? ORDER BY seq LIMIT 1000");
}

void progress(const Series& series, const RunResult& run) {
  if (run.ok()) {
    std::fprintf(stderr, "  %-16s %-5zu B %-70s %10s msgs/s  (%llu msgs, %.2f s%s)\n", series.system.c_str(),
                 series.payload_bytes, series.workload.c_str(), format_rate(run.messages_per_second()).c_str(),
                 static_cast<unsigned long long>(run.messages), run.elapsed_seconds, run.time_bound_hit ? ", time bound" : "");
  } else {
    std::fprintf(stderr, "  %-16s %-5zu B %-70s FAILED: %s\n", series.system.c_str(), series.payload_bytes,
                 series.workload.c_str(), run.error.c_str());
  }
}

// Writes back what earlier runs left dirty, so that no run pays for another's writeback.
void settle_disk() { ::sync(); }

// Page cache a run may fill: its messages at a generous per-message overhead, capped.
std::uint64_t warmup_bytes_for(std::uint64_t messages, std::size_t payload_bytes) {
  constexpr std::uint64_t per_message_overhead_bytes = 96;
  constexpr std::uint64_t warmup_bytes_max = 2ull << 30;
  return std::min<std::uint64_t>(warmup_bytes_max, messages * (payload_bytes + per_message_overhead_bytes) * 5 / 4 + (8ull << 20));
}

std::string utc_now(const char* pattern) {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char text[64];
  std::strftime(text, sizeof text, pattern, &parts);
  return text;
}

// Runs the steps of one workload in an order rotated by the repetition number.
void run_rotated(unsigned repetition, const std::vector<std::function<void()>>& steps) {
  for (std::size_t index = 0; index < steps.size(); ++index) steps[(index + repetition) % steps.size()]();
}

class Benchmark {
 public:
  Benchmark(Options options, Plan plan) : options_(std::move(options)), plan_(plan) {}

  bool wants(int workload) const { return selected_.count(workload) > 0; }
  bool runs(const char* system) const { return ("," + options_.systems + ",").find(std::string(",") + system + ",") != std::string::npos; }

  std::string parse_workloads() {
    std::istringstream list(options_.workloads);
    std::string item;
    while (std::getline(list, item, ',')) {
      if (item.size() != 1 || item[0] < '1' || item[0] > '5') return "--workloads takes numbers 1 to 5, e.g. 1,3";
      selected_.insert(item[0] - '0');
    }
    return {};
  }

  void calibrate(SizeSeries& series, const PayloadSource& payloads) {
    ScratchDirectory scratch(options_.directory, "calibrate");
    const RunLimits limits{calibration_batches * small_batch_messages, 60};
    MsgstorePublishRun run = msgstore_publish(scratch.path(), payloads, small_batch_messages, FsyncPolicy::never, limits,
                                              /*replay_after=*/false, limits);
    if (run.publish.ok() && run.batches > 0) series.raw_batch_bytes = run.publish.bytes_written / run.batches;
    std::fprintf(stderr, "calibration %zu B: msgstore writes %llu bytes per batch of %zu\n", series.payload_bytes,
                 static_cast<unsigned long long>(series.raw_batch_bytes), small_batch_messages);
  }

  // Before every timed run: write back what is dirty, then make the page cache the run will
  // fill resident again (harness.h, warm_page_cache).
  void prepare(const ScratchDirectory& scratch, std::uint64_t messages, std::size_t payload_bytes) {
    settle_disk();
    if (options_.page_cache_warmup) warm_page_cache(scratch.path(), warmup_bytes_for(messages, payload_bytes));
  }

  // One system of a side-by-side workload: its session, where its results go, its limits.
  struct SideBySide {
    std::unique_ptr<PublishSession> session;
    Series* series;
    RunLimits limits;
  };

  // Opens every session in its own scratch directory, runs them interleaved in slices (so a
  // slow spell of the shared machine hits all of them), closes them and records the results.
  void run_side_by_side(unsigned repetition, const char* workload, std::vector<SideBySide>& entries,
                        std::size_t payload_bytes) {
    std::vector<std::unique_ptr<ScratchDirectory>> scratches;
    std::vector<PublishSession*> sessions;
    std::vector<RunLimits> limits;
    std::vector<Series*> targets;
    std::uint64_t warmup_bytes = 0;
    for (SideBySide& entry : entries) {
      scratches.push_back(std::make_unique<ScratchDirectory>(options_.directory, std::string(workload) + "-" + entry.session->name()));
      std::string error = scratches.back()->created() ? entry.session->open(scratches.back()->path()) : "no scratch directory";
      if (!error.empty()) {
        RunResult failed;
        failed.error = error;
        entry.series->runs.push_back(failed);
        progress(*entry.series, failed);
        continue;
      }
      sessions.push_back(entry.session.get());
      limits.push_back(entry.limits);
      targets.push_back(entry.series);
      warmup_bytes += warmup_bytes_for(entry.limits.messages_max, payload_bytes);
    }
    settle_disk();
    if (options_.page_cache_warmup && !scratches.empty()) warm_page_cache(scratches.front()->path(), warmup_bytes);
    const std::vector<RunResult> results =
        run_interleaved(sessions, limits, plan_.interleave_slices, repetition, [] { settle_disk(); });
    for (std::size_t index = 0; index < sessions.size(); ++index) {
      RunResult result = results[index];
      const std::string closed = sessions[index]->close();
      if (result.ok() && !closed.empty()) result.error = closed;
      targets[index]->runs.push_back(result);
      progress(*targets[index], result);
    }
  }

  void run_repetition(unsigned repetition, SizeSeries& series, const PayloadSource& payloads) {
    const std::size_t payload_bytes = series.payload_bytes;
    auto record = [](Series& target, const RunResult& run) {
      target.runs.push_back(run);
      progress(target, run);
    };
    if (wants(1)) {
      const RunLimits limits{plan_.small_batch_messages_for(payload_bytes), plan_.small_batch_seconds};
      std::vector<SideBySide> entries;
      if (runs("msgstore")) {
        entries.push_back({make_msgstore_batch_session(payloads, small_batch_messages, FsyncPolicy::always),
                           &series.small_batch_msgstore, limits});
      }
      if (runs("sqlite")) {
        entries.push_back({make_sqlite_batch_session(payloads, small_batch_messages, SqliteSynchronous::full),
                           &series.small_batch_sqlite, limits});
      }
      if (runs("raw") && series.raw_batch_bytes > 0) {
        entries.push_back({make_raw_append_session(payloads, series.raw_batch_bytes, small_batch_messages, 0),
                           &series.small_batch_raw, limits});
        entries.push_back({make_raw_append_session(payloads, series.raw_batch_bytes, small_batch_messages,
                                                   StoreOptions{}.preallocation_bytes),
                           &series.small_batch_raw_preallocated, limits});
      }
      run_side_by_side(repetition, "w1", entries, payload_bytes);
    }
    if (wants(2) || wants(4)) {
      const RunLimits limits{plan_.large_batch_messages_for(payload_bytes), plan_.large_batch_seconds};
      const RunLimits replay_limits{UINT64_MAX, plan_.replay_seconds};
      const bool replay = wants(4);
      std::uint64_t msgstore_checksum = 0, sqlite_checksum = 0, msgstore_count = 0, sqlite_count = 0;
      run_rotated(repetition, {
          [&] {
            if (!runs("msgstore")) return;
            ScratchDirectory scratch(options_.directory, "w2-msgstore");
            prepare(scratch, limits.messages_max, payload_bytes);
            MsgstorePublishRun run = msgstore_publish(scratch.path(), payloads, large_batch_messages, FsyncPolicy::never, limits,
                                                      replay, replay_limits);
            record(series.large_batch_msgstore, run.publish);
            if (replay && run.publish.ok()) {
              record(series.replay_msgstore_scan, run.replay_single_scan);
              record(series.replay_msgstore_pages, run.replay_pages_of_1000);
              msgstore_checksum = run.replay_single_scan.payload_checksum;
              msgstore_count = run.replay_single_scan.messages;
            }
          },
          [&] {
            if (!runs("sqlite")) return;
            ScratchDirectory scratch(options_.directory, "w2-sqlite");
            prepare(scratch, limits.messages_max, payload_bytes);
            SqlitePublishRun run = sqlite_publish(scratch.path(), payloads, large_batch_messages, SqliteSynchronous::normal, limits,
                                                  replay, replay_limits);
            record(series.large_batch_sqlite, run.insert);
            if (replay && run.insert.ok()) {
              record(series.replay_sqlite_scan, run.replay_single_scan);
              record(series.replay_sqlite_pages, run.replay_pages_of_1000);
              sqlite_checksum = run.replay_single_scan.payload_checksum;
              sqlite_count = run.replay_single_scan.messages;
            }
          },
      });
      if (replay && msgstore_count > 0 && msgstore_count == sqlite_count) {
        ++series.checksum_comparisons;
        if (msgstore_checksum != sqlite_checksum) ++series.checksum_mismatches;
      }
    }
    if (wants(3)) {
      std::vector<SideBySide> entries;
      if (runs("msgstore")) {
        entries.push_back({make_msgstore_concurrent_session(payloads, concurrent_threads, FsyncPolicy::always),
                           &series.concurrent_msgstore, RunLimits{plan_.concurrent_msgstore_messages, plan_.concurrent_seconds}});
      }
      if (runs("sqlite")) {
        entries.push_back({make_sqlite_concurrent_session(payloads, concurrent_threads, SqliteSynchronous::full),
                           &series.concurrent_sqlite, RunLimits{plan_.concurrent_sqlite_messages, plan_.concurrent_seconds}});
        entries.push_back({make_sqlite_concurrent_session(payloads, 1, SqliteSynchronous::full), &series.single_thread_sqlite,
                           RunLimits{plan_.single_thread_sqlite_messages, plan_.concurrent_seconds / 2}});
      }
      run_side_by_side(repetition, "w3", entries, payload_bytes);
    }
  }

  int run() {
    std::fprintf(stderr, "msgstore_bench: %s mode, %u repetitions, workloads %s\n", options_.quick ? "quick" : "full",
                 options_.repetitions, options_.workloads.c_str());
    std::error_code error;
    std::filesystem::create_directories(options_.directory, error);
    if (error) {
      std::fprintf(stderr, "cannot create --dir: %s\n", error.message().c_str());
      return 2;
    }
    std::vector<SizeSeries> sizes(options_.payload_sizes.size());
    std::vector<PayloadSource> payloads;
    for (std::size_t index = 0; index < options_.payload_sizes.size(); ++index) {
      initialise(sizes[index], options_.payload_sizes[index]);
      payloads.emplace_back(options_.payload_sizes[index]);
      if (wants(1) && runs("raw")) calibrate(sizes[index], payloads[index]);
    }
    auto probe = [this](const char* when) {
      ScratchDirectory scratch(options_.directory, "sync-probe");
      const SyncLatency latency = probe_sync_latency(scratch.path(), options_.quick ? 200 : 1000, options_.quick ? 2 : 10);
      std::fprintf(stderr, "fdatasync probe (%s): p50 %.0f us, p99 %.0f us\n", when, latency.p50_microseconds, latency.p99_microseconds);
      char text[160];
      std::snprintf(text, sizeof text, "%s: p50 %.0f us, p99 %.0f us (%zu appends of 4 KiB)", when, latency.p50_microseconds,
                    latency.p99_microseconds, latency.samples);
      sync_probes_.push_back(latency.error.empty() ? text : std::string(when) + ": " + latency.error);
    };
    probe("before the repetitions");
    const auto begin = SteadyClock::now();
    for (unsigned repetition = 0; repetition < options_.repetitions; ++repetition) {
      for (std::size_t index = 0; index < sizes.size(); ++index) {
        std::fprintf(stderr, "repetition %u/%u, payload %zu B (%.0f s so far)\n", repetition + 1, options_.repetitions,
                     sizes[index].payload_bytes, seconds_between(begin, SteadyClock::now()));
        run_repetition(repetition, sizes[index], payloads[index]);
      }
    }
    probe("after the repetitions");
    MemoryGoal memory;
    memory.limit_bytes = memory_limit_bytes;
    if (wants(5)) {
      memory.requested = true;
      std::fprintf(stderr, "memory: publishing %.1f GiB in a child process\n",
                   static_cast<double>(plan_.memory_payload_bytes) / (1 << 30));
      settle_disk();
      memory.run = measure_publish_memory(options_.directory, plan_.memory_payload_bytes, plan_.memory_seconds);
      std::fprintf(stderr, "memory: %s\n",
                   !memory.run.skipped_reason.empty() ? ("SKIPPED: " + memory.run.skipped_reason).c_str()
                   : !memory.run.error.empty()       ? ("FAILED: " + memory.run.error).c_str()
                                                     : ("VmHWM " + std::to_string(memory.run.high_water_rss_kib) + " KiB").c_str());
    }
    const double total_seconds = seconds_between(begin, SteadyClock::now());
    return report(sizes, memory, total_seconds);
  }

 private:
  int report(std::vector<SizeSeries>& sizes, const MemoryGoal& memory, double total_seconds) {
    std::vector<Goal> goals, informational;
    std::vector<const Series*> details;
    ReportContext context;
    for (SizeSeries& series : sizes) {
      if (wants(1)) {
        goals.push_back({"1a", "publish, batches of 100, fsync=always, 1 thread", &series.small_batch_msgstore,
                         &series.small_batch_sqlite, 3.0});
        goals.push_back({"1b", "publish, batches of 100, fsync=always, 1 thread", &series.small_batch_msgstore,
                         &series.small_batch_raw, 0.6});
        informational.push_back({"1 (ceiling)", "write+fdatasync of msgstore's bytes, batches of 100, appending",
                                 &series.small_batch_raw, &series.small_batch_sqlite, 3.0});
        informational.push_back({"1 (ceiling)", "the same into preallocated zeros: the best a log syncing each batch could do",
                                 &series.small_batch_raw_preallocated, &series.small_batch_sqlite, 3.0});
        informational.push_back({"1b (info)", "msgstore against the preallocating loop", &series.small_batch_msgstore,
                                 &series.small_batch_raw_preallocated, 0.6});
        for (const Series* item : {&series.small_batch_msgstore, &series.small_batch_sqlite, &series.small_batch_raw,
                                   &series.small_batch_raw_preallocated}) {
          details.push_back(item);
        }
        context.notes.push_back(std::to_string(series.payload_bytes) + " B: msgstore writes " +
                                std::to_string(series.raw_batch_bytes) + " bytes of segment log per batch of 100 (" +
                                std::to_string(series.raw_batch_bytes / small_batch_messages) +
                                " per message); the write+fdatasync loop writes exactly that per batch.");
      }
      if (wants(2)) {
        goals.push_back({"2", "publish, batches of 1000, fsync=never, 1 thread", &series.large_batch_msgstore,
                         &series.large_batch_sqlite, 10.0});
        for (const Series* item : {&series.large_batch_msgstore, &series.large_batch_sqlite}) details.push_back(item);
      }
      if (wants(3)) {
        goals.push_back({"3", "16 threads, single-message publish, fsync=always", &series.concurrent_msgstore,
                         &series.concurrent_sqlite, 5.0});
        informational.push_back({"3 (info)", "16 threads, single-message publish, fsync=always", &series.concurrent_msgstore,
                                 &series.single_thread_sqlite, 5.0});
        for (const Series* item : {&series.concurrent_msgstore, &series.concurrent_sqlite, &series.single_thread_sqlite}) details.push_back(item);
      }
      if (wants(4)) {
        goals.push_back({"4", "sequential replay, one pass over everything", &series.replay_msgstore_scan,
                         &series.replay_sqlite_scan, 3.0});
        informational.push_back({"4 (info)", "sequential replay in pages of 1000", &series.replay_msgstore_pages,
                                 &series.replay_sqlite_pages, 3.0});
        for (const Series* item : {&series.replay_msgstore_scan, &series.replay_msgstore_pages, &series.replay_sqlite_scan,
                                   &series.replay_sqlite_pages}) {
          details.push_back(item);
        }
        context.notes.push_back(std::to_string(series.payload_bytes) + " B replay cross-check: " +
                                std::to_string(series.checksum_comparisons - series.checksum_mismatches) + " of " +
                                std::to_string(series.checksum_comparisons) +
                                " repetitions read identical payload checksums from msgstore and SQLite.");
      }
    }
    // Goals sorted by number, then payload size.
    std::stable_sort(goals.begin(), goals.end(), [](const Goal& left, const Goal& right) { return left.id < right.id; });
    std::stable_sort(informational.begin(), informational.end(), [](const Goal& left, const Goal& right) { return left.id < right.id; });

    context.title_date = utc_now("%Y-%m-%d %H:%M UTC");
    context.label = options_.label;
    context.mode = options_.quick ? "quick" : "full";
    context.repetitions = options_.repetitions;
    context.machine = describe_machine(options_.directory);
    context.command = std::string("msgstore_bench") + (options_.quick ? " --quick" : "") + " --repetitions " +
                      std::to_string(options_.repetitions) + " --label " + options_.label +
                      (options_.workloads != "1,2,3,4,5" ? " --workloads " + options_.workloads : "") +
                      (options_.systems != "msgstore,sqlite,raw" ? " --systems " + options_.systems : "") +
                      (options_.page_cache_warmup ? "" : " --no-page-cache-warmup") +
                      (options_.indexes ? " --indexes" : "") +
                      (options_.payload_sizes != std::vector<std::size_t>{100, 1024} ? " --payloads (non-default)" : "");
    context.notes.push_back(options_.indexes
                                ? "msgstore's key and subject indexes are on (--indexes), as on a stream by default; "
                                  "the SQLite table has no index on its key column."
                                : "msgstore's key and subject indexes are off, like for like with the SQLite table, "
                                  "which has no key index; --indexes turns them on (goal 5's child keeps them on).");
    context.notes.push_back("Durability classes: D2 = acknowledged after fdatasync; D1 = acknowledged after write() "
                            "(msgstore fsync=never; SQLite synchronous=NORMAL in WAL mode syncs only at checkpoints).");
    context.notes.push_back("Replay (goal 4) reads the data workload 2 just wrote, from the page cache; SQLite's WAL is "
                            "checkpointed (untimed) first. The goal compares one pass with one pass: a single Store::scan "
                            "against a single SELECT ... WHERE stream=? ORDER BY seq; the paged variants are information.");
    context.notes.push_back(options_.page_cache_warmup
                                ? "Before every run, a file as large as the page cache the run will fill is written and "
                                  "deleted (untimed), so runs write into guest-resident memory; see bench/README.md."
                                : "No page cache warm-up (--no-page-cache-warmup): runs may write into memory the "
                                  "hypervisor reclaimed, at the speed of host page faults.");
    context.notes.push_back("Every run starts after sync(2) in a fresh directory that is removed afterwards. "
                            "msgs/s counts messages (rows) completed inside the timed region; opening, creating and "
                            "closing are outside it. CPU us/msg is process CPU (all threads) per message.");
    if (!sync_probes_.empty()) {
      std::string text = "fdatasync latency probe, ";
      for (std::size_t index = 0; index < sync_probes_.size(); ++index) text += (index > 0 ? "; " : "") + sync_probes_[index];
      context.notes.push_back(text + ". Goals 1 and 3 scale with it.");
    }
    context.notes.push_back("Total benchmark time: " + std::to_string(static_cast<int>(total_seconds)) + " s.");

    bool all_passed = false;
    const std::string text = render_report(context, goals, informational, memory, details, all_passed);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    if (!options_.output.empty()) {
      std::error_code error;
      const std::filesystem::path output(options_.output);
      if (output.has_parent_path()) std::filesystem::create_directories(output.parent_path(), error);
      std::ofstream file(output, std::ios::binary | std::ios::trunc);
      file << text;
      if (!file) {
        std::fprintf(stderr, "could not write --output\n");
        return 2;
      }
    }
    return all_passed ? 0 : 1;
  }

  Options options_;
  Plan plan_;
  std::set<int> selected_;
  std::vector<std::string> sync_probes_;
};

}  // namespace
}  // namespace msgstore::bench

int main(int argc, char** argv) {
  using namespace msgstore::bench;
  if (argc >= 2 && std::strcmp(argv[1], memory_child_flag) == 0) return run_memory_child(argc, argv);

  Options options;
  CLI::App app{"msgstore_bench: msgstore against SQLite and a bare write+fdatasync loop, same run, same machine.\n"
               "Exit status: 0 all goals pass, 1 a goal fails or was skipped, 2 usage or setup error."};
  app.add_flag("--quick", options.quick, "small counts for a smoke run (under a minute)");
  app.add_option("--repetitions", options.repetitions, "repetitions of every workload (medians are reported)")
      ->check(CLI::Range(1u, 100u));
  app.add_option("--dir", options.directory, "parent of the scratch directories (removed after each run)");
  app.add_option("--output", options.output, "also write the Markdown report to this file");
  app.add_option("--label", options.label, "machine label for the report, e.g. 2vcpu-xeon (never a host name)");
  app.add_option("--workloads", options.workloads, "comma-separated goals to run, from 1,2,3,4,5");
  app.add_option("--systems", options.systems, "comma-separated systems to run, from msgstore,sqlite,raw (for profiling)");
  app.add_option("--payloads", options.payload_sizes, "comma-separated payload sizes in bytes (default 100,1024; others for profiling)")
      ->delimiter(',')
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  bool no_warmup = false;
  app.add_flag("--indexes", options.indexes,
               "keep msgstore's key and subject indexes on (a stream's default); off by default, like the SQLite "
               "table, which has no key index");
  app.add_flag("--no-page-cache-warmup", no_warmup, "skip the page cache warm-up before each run (see README.md)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int code = app.exit(error);
    return code == 0 ? 0 : 2;
  }
  options.page_cache_warmup = !no_warmup;
  msgstore::bench::set_msgstore_indexes(options.indexes);
  Benchmark benchmark(options, make_plan(options.quick));
  if (auto problem = benchmark.parse_workloads(); !problem.empty()) {
    std::fprintf(stderr, "%s\n", problem.c_str());
    return 2;
  }
  return benchmark.run();
}
