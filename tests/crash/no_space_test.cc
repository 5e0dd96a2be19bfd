// ENOSPC at many disk quotas across a workload that publishes (single and key-routed batches,
// fsync=always and fsync=never), rolls segments and runs maintenance.
//
// A fresh run measures the disk use before (U0) and after (U1) the workload; then the workload
// runs under quotas spread over [U0, U1] (100 levels for seed 1, 15 random ones for the other
// seeds), and:
//   * a publish either succeeds or fails with no_space (a clean error), and a refused message
//     is never stored (the checker reports it as unexpected if it ever appears);
//   * while the disk is full, reads, time lookups and verify keep working and find no torn
//     batch;
//   * writes resume without a restart once space returns: the quota is raised, or (every other
//     level) retention is tightened and maintenance deletes segments;
//   * after a restart (clean, kill -9 or power loss) verify is clean, every ack is present and
//     nothing refused appeared.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "crash/checker.h"
#include "crash/harness.h"

namespace msgstore::crash {
namespace {

const std::filesystem::path data_directory = "/data";

struct Tally {
  std::uint64_t runs_full = 0;             // runs where the disk filled up
  std::uint64_t refused = 0;               // publishes refused with no_space
  std::uint64_t resumed_by_retention = 0;  // writes resumed after maintenance freed space
  std::uint64_t resumed_by_quota = 0;      // writes resumed after the quota was raised
  std::uint64_t updates_refused = 0;       // update_stream refused with no_space
  std::uint64_t retention_blocked = 0;     // maintenance on a full disk failed with no_space, freeing nothing
} tally;

// Streams "full" (fsync=always, 2 partitions) and "rel" (fsync=never, 1 partition).
const WorkloadShape workload_shape{.steps = 220, .maintenance_one_in = 15, .stream = "full", .other_stream = "rel",
                                   .keys = 5, .batch_one_in = 5, .filler_spread_bytes = 300};

// With `retention`, max_messages is set from the start but maintenance only runs once the disk
// is full, so a full disk holds deletable segments.
std::vector<StreamConfig> stream_configs(bool retention) {
  StreamConfig full;
  full.name = "full";
  full.subjects = {"full.*"};
  full.partitions = 2;
  full.segment_bytes = limits::segment_bytes_min;
  if (retention) full.max_messages = 30;
  StreamConfig rel;
  rel.name = "rel";
  rel.subjects = {"rel.*"};
  rel.partitions = 1;
  rel.fsync = FsyncPolicy::never;
  rel.segment_bytes = limits::segment_bytes_min;
  if (retention) rel.max_messages = 20;
  return {full, rel};
}

struct Fixture {
  std::shared_ptr<FaultFileSystem> disk = std::make_shared<FaultFileSystem>();
  std::shared_ptr<ProcessFileSystem> process = std::make_shared<ProcessFileSystem>(disk);
  std::unique_ptr<Store> store;
  Checker checker;
  std::uint64_t sequence = 0;

  void open() {
    auto opened = Store::open(data_directory, replayable_store_options(process));
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    store = std::move(*opened);
  }

  // Publishes one step; the status of the publish.
  Status publish(const WorkloadStep& step) {
    const StepMessages batch = step_messages(step, sequence, checker);
    const std::vector<MessageId>& ids = batch.ids;
    auto positions = store->publish_batch(batch.outgoing());
    if (!positions) {
      // One key, one partition: a refused batch is refused whole.
      if (positions.status().code() == ErrorCode::no_space) {
        for (const MessageId& id : ids) checker.refused(id);
      }
      return positions.status();
    }
    for (const Position& position : *positions) checker.acked(position, ids[position.message_index]);
    return Status::ok();
  }
};

// Runs the workload under `quota` (0: none). Returns the bytes used at the start and the end.
std::pair<std::uint64_t, std::uint64_t> run_once(std::uint64_t seed, const std::vector<WorkloadStep>& workload, std::uint64_t quota,
                                                 bool free_by_retention, Figures& figures) {
  Fixture f;
  f.open();
  if (!f.store) return {0, 0};
  for (const StreamConfig& config : stream_configs(free_by_retention)) {
    EXPECT_TRUE(f.store->create_stream(config).is_ok());
    f.checker.expect_stream(config.name, {config.fsync, config.max_messages});
  }
  const std::uint64_t start_bytes = f.disk->used_bytes();
  f.disk->set_quota_bytes(quota);
  std::uint64_t refused = 0;
  std::uint64_t violations = 0;
  StreamConfig expected_full_config = f.store->describe_stream("full")->config;
  for (std::size_t i = 0; i < workload.size(); ++i) {
    SCOPED_TRACE("workload step " + std::to_string(i));
    const WorkloadStep& step = workload[i];
    if (step.maintenance) {
      if (!free_by_retention) (void)f.store->run_maintenance();
      continue;
    }
    Status published = f.publish(step);
    if (published.is_ok()) continue;
    if (published.code() != ErrorCode::no_space) {
      ++violations;
      ADD_FAILURE() << "publish failed with " << published.to_string() << ", expected no_space";
      break;
    }
    ++tally.refused;
    if (++refused == 1) {
      ++tally.runs_full;
      // The disk is full: everything already stored is still readable, with no torn batch.
      CheckReport full = f.checker.check(*f.store, Event::none, 0);
      figures.add(full);
      EXPECT_TRUE(full.ok()) << "reads while the disk is full: " << full.summary();
    }
  }
  const std::uint64_t end_bytes = f.disk->used_bytes();

  if (refused > 0) {
    // Space returns without a restart; writes resume on every partition.
    // A configuration change on a full disk: done, or refused cleanly (then the old one stays).
    StreamConfig changed = f.store->describe_stream("full")->config;
    changed.max_age_ms = 86'400'000;
    Status updated = f.store->update_stream(changed);
    EXPECT_TRUE(updated.is_ok() || updated.code() == ErrorCode::no_space) << updated.to_string();
    if (updated.is_ok()) expected_full_config = changed;
    if (!updated.is_ok()) ++tally.updates_refused;
    if (free_by_retention) {
      // Retention persists the new log start (partition.meta, tmp + rename) before it deletes
      // anything, so on a disk with no byte left it frees nothing: give it room for that.
      const std::uint64_t full_bytes = f.disk->used_bytes();
      if (f.store->run_maintenance().code() == ErrorCode::no_space && f.disk->used_bytes() >= full_bytes) {
        ++tally.retention_blocked;
      }
      f.disk->set_quota_bytes(std::max(quota, f.disk->used_bytes()) + 1024);
      const std::uint64_t before = f.disk->used_bytes();
      (void)f.store->run_maintenance();
      if (before - f.disk->used_bytes() < 2 * limits::segment_bytes_min) {
        f.disk->set_quota_bytes(0);  // little to free
        ++tally.resumed_by_quota;
      } else {
        ++tally.resumed_by_retention;
      }
    } else {
      f.disk->set_quota_bytes(0);
      ++tally.resumed_by_quota;
    }
    for (const auto& [stream, keys] : std::map<std::string, std::vector<std::string>>{{"full", {"k0", "k1", "k2", "k3"}}, {"rel", {"k0"}}}) {
      for (const std::string& key : keys) {
        Status published = f.publish(WorkloadStep{false, stream, key, 1, 40});
        if (!published.is_ok()) {
          ++violations;
          ADD_FAILURE() << "writes did not resume once space returned (" << (free_by_retention ? "retention" : "quota raised")
                        << "): " << stream << " key " << key << ": " << published.to_string();
        }
      }
    }
  }
  figures.other_violations += violations;

  // Restart and check everything.
  f.disk->set_quota_bytes(0);
  const int restart = static_cast<int>((seed + quota) % 3);
  Event event = Event::clean_restart;
  if (restart == 0) {
    EXPECT_TRUE(f.store->close().is_ok());
  } else if (restart == 1) {
    f.process->process_crash();
    event = Event::process_crash;
  } else {
    f.process->power_loss(seed * 7 + quota, PowerLossMode::random);
    event = Event::power_loss;
  }
  f.store.reset();
  double open_ms = 0;
  auto reopened = open_timed(data_directory, std::make_shared<ProcessFileSystem>(f.disk), open_ms);
  EXPECT_TRUE(reopened.is_ok()) << reopened.status().to_string();
  if (!reopened) return {start_bytes, end_bytes};
  for (const std::string& problem : check_metadata_files(*f.disk)) ADD_FAILURE() << problem;
  auto full_info = (*reopened)->describe_stream("full");
  EXPECT_TRUE(full_info.is_ok() && full_info->config == expected_full_config) << "stream.meta is not the last acknowledged version";
  CheckReport report = f.checker.check(**reopened, event, open_ms);
  figures.add(report);
  EXPECT_TRUE(report.ok()) << "after " << event_name(event) << ": " << report.summary();
  return {start_bytes, end_bytes};
}

TEST(NoSpace, CleanErrorNoTornBatchReadsWorkWritesResume) {
  Figures figures("no_space");
  std::uint64_t levels_run = 0;
  for_each_seed(10, figures, [&](std::uint64_t seed) {
    const std::vector<WorkloadStep> workload = make_workload(seed, workload_shape);
    Figures unused("measure");
    const auto [start_bytes, end_bytes] = run_once(seed, workload, 0, false, unused);
    if (::testing::Test::HasFailure()) return;
    ASSERT_GT(end_bytes, start_bytes);
    std::vector<std::uint64_t> quotas;
    const std::uint64_t span = end_bytes - start_bytes;
    if (seed == 1) {
      for (std::uint64_t level = 0; level < 100; ++level) quotas.push_back(start_bytes + 1 + span * level / 100);
    } else {
      std::mt19937_64 random(seed);
      for (int level = 0; level < 15; ++level) quotas.push_back(start_bytes + 1 + random() % span);
    }
    const std::uint64_t only_level = environment_u64("CRASH_LEVEL", 0);  // replay one level (1-based)
    for (std::size_t level = 0; level < quotas.size(); ++level) {
      if (only_level != 0 && level + 1 != only_level) continue;
      SCOPED_TRACE("level " + std::to_string(level + 1) + " (CRASH_LEVEL=" + std::to_string(level + 1) + " replays it): " +"quota " + std::to_string(quotas[level]) + " bytes (workload uses " + std::to_string(start_bytes) + " to " +
                   std::to_string(end_bytes) + ")");
      const int before = failures_so_far();
      run_once(seed, workload, quotas[level], level % 2 == 1, figures);
      ++levels_run;
      if (failures_so_far() != before) return;
    }
  });
  std::printf("no_space: %llu quota levels, %llu filled the disk, %llu publishes refused, writes resumed %llu times after "
              "retention and %llu after the quota was raised, %llu update_stream refused, %llu retention passes on a full disk freed nothing\n",
              static_cast<unsigned long long>(levels_run), static_cast<unsigned long long>(tally.runs_full),
              static_cast<unsigned long long>(tally.refused), static_cast<unsigned long long>(tally.resumed_by_retention),
              static_cast<unsigned long long>(tally.resumed_by_quota), static_cast<unsigned long long>(tally.updates_refused), static_cast<unsigned long long>(tally.retention_blocked));
  figures.print();
}

}  // namespace
}  // namespace msgstore::crash
