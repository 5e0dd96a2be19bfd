// EIO on the N-th write / sync / rename / directory sync / open / truncate of a workload that
// publishes (single and batch, fsync=always and fsync=never), rolls segments and runs
// retention and checkpoints.
//
// A fresh run counts each kind's calls in the workload (C); then for N = 1..C+1 (every N for
// seed 1, a dozen random ones for the other seeds) the same workload runs with the N-th call of
// that kind failing, and:
//   * no acknowledgement after the first error: once a publish to a partition failed, no later
//     publish to it succeeds (log_failed until restart), and a publish during which the
//     partition's log file failed a write or sync does not succeed;
//   * every error is io_error or log_failed;
//   * after a restart (kill -9 or power loss, faults cleared) the store opens, every earlier
//     ack is present, nothing unexpected (checker.h), verify is clean, and every partition
//     takes writes again.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <set>

#include "base/hash.h"
#include "crash/checker.h"
#include "crash/harness.h"

namespace msgstore::crash {
namespace {

using Operation = FaultFileSystem::Operation;
const std::filesystem::path data_directory = "/data";

// Streams "io" (fsync=always, 2 partitions) and "lazy" (fsync=never, 1 partition).
const WorkloadShape workload_shape{.steps = 160, .maintenance_one_in = 12, .stream = "io", .other_stream = "lazy",
                                   .keys = 6, .batch_one_in = 4, .filler_spread_bytes = 250};

std::vector<StreamConfig> stream_configs() {
  StreamConfig io;
  io.name = "io";
  io.subjects = {"io.*"};
  io.partitions = 2;
  io.segment_bytes = limits::segment_bytes_min;
  io.max_messages = 120;
  StreamConfig lazy;
  lazy.name = "lazy";
  lazy.subjects = {"lazy.*"};
  lazy.partitions = 1;
  lazy.fsync = FsyncPolicy::never;
  lazy.segment_bytes = limits::segment_bytes_min;
  return {io, lazy};
}

std::uint64_t counter_of(const FaultFileSystem::Counters& counters, Operation operation) {
  switch (operation) {
    case Operation::write: return counters.writes;
    case Operation::sync: return counters.syncs;
    case Operation::rename: return counters.renames;
    case Operation::open: return counters.opens;
    case Operation::sync_directory: return counters.directory_syncs;
    case Operation::truncate: return counters.truncates;
  }
  return 0;
}

const char* operation_name(Operation operation) {
  switch (operation) {
    case Operation::write: return "write";
    case Operation::sync: return "sync";
    case Operation::rename: return "rename";
    case Operation::open: return "open";
    case Operation::sync_directory: return "sync_directory";
    case Operation::truncate: return "truncate";
  }
  return "?";
}

// "<stream>/<partition>" of a path inside a partition directory, or "".
std::string partition_of(const std::filesystem::path& path) {
  for (std::filesystem::path at = path; at.has_parent_path() && at != at.parent_path(); at = at.parent_path()) {
    const std::string name = at.filename().string();
    if (name.rfind("partition-", 0) == 0) return at.parent_path().filename().string() + "/" + name.substr(10);
  }
  return "";
}

struct FaultRun {
  std::uint64_t calls_of_kind = 0;  // in the workload (counting run)
  bool injected = false;
};

// Runs the workload with the n-th call of `operation` failing (n = 0: no fault).
FaultRun run_once(std::uint64_t seed, const std::vector<WorkloadStep>& workload, Operation operation, std::uint64_t n, Figures& figures) {
  FaultRun run;
  auto disk = std::make_shared<FaultFileSystem>();
  auto process = std::make_shared<ProcessFileSystem>(disk);
  auto opened = Store::open(data_directory, replayable_store_options(process));
  EXPECT_TRUE(opened.is_ok()) << opened.status().to_string();
  if (!opened) return run;
  std::unique_ptr<Store> store = std::move(*opened);
  Checker checker;
  for (const StreamConfig& config : stream_configs()) {
    EXPECT_TRUE(store->create_stream(config).is_ok());
    checker.expect_stream(config.name, {config.fsync, config.max_messages});
  }
  const std::uint64_t counted_before = counter_of(disk->counters(), operation);
  if (n > 0) disk->fail_after(operation, n);

  std::map<std::string, std::size_t> failed_at;  // partition -> first failed publish step
  std::map<std::string, bool> log_faulted;        // its log file failed a write or sync
  std::size_t faults_seen = 0;
  std::uint64_t sequence = 0;
  std::uint64_t violations = 0;
  for (std::size_t i = 0; i < workload.size(); ++i) {
    const WorkloadStep& step = workload[i];
    SCOPED_TRACE("workload step " + std::to_string(i));
    if (step.maintenance) {
      (void)store->run_maintenance();  // may fail: it reports, nothing is acknowledged by it
    }
    std::string target;
    Result<std::vector<Position>> positions = std::vector<Position>{};
    std::vector<MessageId> ids;
    if (!step.maintenance) {
      const std::uint32_t partition = step.stream == "io" ? base::partition_for_key(step.key, 2) : 0;
      target = step.stream + "/" + std::to_string(partition);
      StepMessages batch = step_messages(step, sequence, checker);
      ids = std::move(batch.ids);
      positions = store->publish_batch(batch.outgoing());
    }
    // Faults the disk injected during this step.
    const auto faults = process->faults();
    std::set<std::string> faulted_now;
    for (; faults_seen < faults.size(); ++faults_seen) {
      const auto& fault = faults[faults_seen];
      run.injected = true;
      if (fault.path.extension() == ".log" && (fault.operation == "write" || fault.operation == "sync")) {
        log_faulted[partition_of(fault.path)] = true;
        faulted_now.insert(partition_of(fault.path));
      }
    }
    if (step.maintenance) continue;
    if (positions) {
      for (const Position& position : *positions) checker.acked(position, ids[position.message_index]);
      if (failed_at.count(target)) {
        ++violations;
        ADD_FAILURE() << "publish to " << target << " acknowledged after it failed at step " << failed_at[target];
      }
      if (log_faulted[target]) {
        ++violations;
        ADD_FAILURE() << "publish to " << target << " acknowledged after its log file failed a "
                      << (faulted_now.count(target) ? "write or sync during this publish" : "write or sync earlier");
      }
    } else {
      const ErrorCode code = positions.status().code();
      if (code != ErrorCode::io_error && code != ErrorCode::log_failed) {
        ++violations;
        ADD_FAILURE() << "publish failed with " << positions.status().to_string() << ", expected io_error or log_failed";
      }
      if (!failed_at.count(target)) failed_at[target] = i;
    }
  }
  run.calls_of_kind = counter_of(disk->counters(), operation) - counted_before;
  figures.other_violations += violations;

  // Restart: faults gone, the process killed or the power lost.
  disk->clear_faults();
  const bool power = (seed + n) % 3 == 0;
  if (power) {
    process->power_loss(seed * 1000003 + n, (seed + n) % 2 ? PowerLossMode::random : PowerLossMode::drop_all_unsynced);
  } else {
    process->process_crash();
  }
  store.reset();
  double open_ms = 0;
  auto reopened = open_timed(data_directory, std::make_shared<ProcessFileSystem>(disk), open_ms);
  EXPECT_TRUE(reopened.is_ok()) << "no reopen after the fault: " << reopened.status().to_string();
  if (!reopened) return run;
  store = std::move(*reopened);
  CheckReport report = checker.check(*store, power ? Event::power_loss : Event::process_crash, open_ms);
  figures.add(report);
  EXPECT_TRUE(report.ok()) << report.summary();
  // Writes work again everywhere after the restart.
  for (const auto& [stream, keys] : std::map<std::string, std::vector<std::string>>{{"io", {"k0", "k1", "k2", "k3"}}, {"lazy", {"k0"}}}) {
    for (const std::string& key : keys) {
      const MessageId id{0, sequence++};
      const std::string payload = make_payload(id, 10);
      checker.attempted(id);
      OutgoingMessage message;
      message.subject = stream + ".after";
      message.key = key;
      message.payload = payload;
      auto positions = store->publish(message);
      EXPECT_TRUE(positions.is_ok()) << "after restart: " << positions.status().to_string();
      if (positions) {
        for (const Position& position : *positions) checker.acked(position, id);
      }
    }
  }
  CheckReport after = checker.check(*store, Event::none, 0);
  EXPECT_TRUE(after.ok()) << "after restart and new writes: " << after.summary();
  return run;
}

TEST(IoError, NoAckAfterTheFirstErrorAndEveryEarlierAckSurvives) {
  Figures figures("io_error");
  std::map<std::string, std::uint64_t> runs_per_kind;
  const char* only_fault = std::getenv("CRASH_FAULT");  // "<operation>:<n>", e.g. "sync:17"

  for_each_seed(8, figures, [&](std::uint64_t seed) {
    const std::vector<WorkloadStep> workload = make_workload(seed, workload_shape);
    for (Operation operation : {Operation::write, Operation::sync, Operation::rename, Operation::sync_directory,
                                Operation::open, Operation::truncate}) {
      Figures unused("count");
      FaultRun counting = run_once(seed, workload, operation, 0, unused);
      if (::testing::Test::HasFailure()) return;
      std::vector<std::uint64_t> values;
      if (seed == 1 || counting.calls_of_kind <= 12) {
        for (std::uint64_t n = 1; n <= counting.calls_of_kind + 1; ++n) values.push_back(n);
      } else {
        std::mt19937_64 random(seed * 31 + static_cast<std::uint64_t>(operation));
        for (int i = 0; i < 12; ++i) values.push_back(1 + random() % (counting.calls_of_kind + 1));
      }
      for (std::uint64_t n : values) {
        const std::string fault = std::string(operation_name(operation)) + ":" + std::to_string(n);
        if (only_fault != nullptr && *only_fault != '\0' && fault != only_fault) continue;
        SCOPED_TRACE("fail_after(" + fault + ") of " + std::to_string(counting.calls_of_kind) + " calls (CRASH_FAULT=" + fault +
                     " replays only it)");
        const int before = failures_so_far();
        run_once(seed, workload, operation, n, figures);
        ++runs_per_kind[operation_name(operation)];
        if (failures_so_far() != before) return;
      }
    }
  });
  for (const auto& [kind, runs] : runs_per_kind) std::printf("io_error: %s: %llu runs\n", kind.c_str(), static_cast<unsigned long long>(runs));
  figures.print();
}

// A printed replay command must reproduce the failing run: the same seed and fault give the
// same calls and the same figures (replayable_store_options; an index thread once broke this).
TEST(IoError, ASeedAndFaultReplayTheSameRun) {
  const std::uint64_t seed = 2;
  const std::vector<WorkloadStep> workload = make_workload(seed, workload_shape);
  for (Operation operation : {Operation::write, Operation::sync}) {
    Figures first_count("count"), second_count("count");
    const FaultRun counting = run_once(seed, workload, operation, 0, first_count);
    ASSERT_EQ(run_once(seed, workload, operation, 0, second_count).calls_of_kind, counting.calls_of_kind);
    ASSERT_GT(counting.calls_of_kind, 4u);
    for (std::uint64_t n : {std::uint64_t{1}, counting.calls_of_kind / 2, counting.calls_of_kind}) {
      SCOPED_TRACE(std::string(operation_name(operation)) + ":" + std::to_string(n));
      Figures first("first"), second("second");
      const FaultRun one = run_once(seed, workload, operation, n, first);
      const FaultRun two = run_once(seed, workload, operation, n, second);
      EXPECT_TRUE(one.injected);
      EXPECT_EQ(one.calls_of_kind, two.calls_of_kind);
      EXPECT_EQ(first.messages_checked, second.messages_checked);
      EXPECT_EQ(first.acked, second.acked);
      EXPECT_EQ(first.lost_allowed, second.lost_allowed);
      EXPECT_EQ(first.index_checks, second.index_checks);
      EXPECT_EQ(first.cycles, second.cycles);
    }
  }
}

}  // namespace
}  // namespace msgstore::crash
