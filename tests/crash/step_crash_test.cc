// Crash at every step of a multi-step action.
//
// For each action (stream create / update / delete, a publish that rolls a segment, retention,
// close, and recovery itself): a fresh run counts the file-system mutations the action makes
// (K). Then for k = 1..K, a new disk gets the same deterministic setup, the process dies right
// after the action's k-th mutation, the power fails (a seeded random outcome; seed % 4 == 1
// drops every unsynced write, == 2 keeps them all), and:
//   * every metadata file on the disk decodes and holds a version that existed during the
//     action (the old one or one a rename installed), never a partial one;
//   * the store reopens;
//   * the checker finds every acknowledged message, nothing unexpected (checker.h);
//   * the action's own outcome is all-or-nothing: the stream exists with the new or the old
//     configuration, a deleted stream is gone or whole, the log start is the old or the new;
//   * retention deleted nothing that was not due;
//   * the store then takes new writes, and a clean restart changes nothing.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <random>
#include <set>

#include "crash/checker.h"
#include "crash/harness.h"

namespace msgstore::crash {
namespace {

const std::filesystem::path data_directory = "/data";
constexpr TimestampMs base_time = 1'700'000'000'000;

StreamConfig make_config(std::string name, std::vector<std::string> subjects, std::uint32_t partitions) {
  StreamConfig config;
  config.name = std::move(name);
  config.subjects = std::move(subjects);
  config.partitions = partitions;
  config.segment_bytes = limits::segment_bytes_min;
  return config;
}

// What a fixture's run of the action produced; filled by the counting run.
struct Outcome {
  std::optional<StreamConfig> new_config;
  Offset log_start_before = 0;
  Offset log_start_after = 0;
};

struct Fixture {
  std::shared_ptr<FaultFileSystem> disk = std::make_shared<FaultFileSystem>();
  std::shared_ptr<ProcessFileSystem> process = std::make_shared<ProcessFileSystem>(disk);
  std::unique_ptr<Store> store;
  Checker checker;
  std::uint64_t sequence = 0;
  Outcome outcome;
  bool action_succeeded = false;  // the action returned ok: its outcome must be durable

  void open() {
    auto opened = Store::open(data_directory, replayable_store_options(process));
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    store = std::move(*opened);
  }

  void create(const StreamConfig& config) {
    ASSERT_TRUE(store->create_stream(config).is_ok());
    checker.expect_stream(config.name, {config.fsync, config.max_messages});
  }

  Status publish(const std::string& subject, std::size_t filler, std::optional<std::string> key = std::nullopt) {
    const MessageId id{1, sequence++};
    const std::string payload = make_payload(id, filler);
    checker.attempted(id);
    OutgoingMessage message;
    message.subject = subject;
    message.payload = payload;
    if (key) message.key = *key;
    message.timestamp_ms = base_time + static_cast<TimestampMs>(id.sequence);
    auto positions = store->publish(message);
    if (!positions) return positions.status();
    for (const Position& position : *positions) checker.acked(position, id);
    return Status::ok();
  }

  void publish_many(const std::string& subject, int count, std::size_t filler) {
    for (int i = 0; i < count; ++i) {
      Status status = publish(subject, filler + static_cast<std::size_t>(i % 7), "k" + std::to_string(i % 5));
      ASSERT_TRUE(status.is_ok()) << status.to_string();
    }
  }

  // The common starting point: two streams with data across several segments.
  void base_setup() {
    disk->make_all_durable();
    ASSERT_NO_FATAL_FAILURE(open());
    ASSERT_NO_FATAL_FAILURE(create(make_config("base", {"base.>"}, 2)));
    ASSERT_NO_FATAL_FAILURE(create(make_config("other", {"other.*"}, 1)));
    ASSERT_NO_FATAL_FAILURE(publish_many("base.a", 60, 90));
    ASSERT_NO_FATAL_FAILURE(publish_many("other.b", 25, 40));
  }
};

struct ActionSpec {
  // Deterministic state before the action (the store open unless the action opens it).
  std::function<void(Fixture&)> setup;
  std::function<Status(Fixture&)> action;
  // After the crash and reopen: the action's own all-or-nothing rule.
  std::function<void(Fixture&, Store&)> check;
};

std::map<std::filesystem::path, std::string> metadata_snapshot(const FaultFileSystem& disk) {
  std::map<std::filesystem::path, std::string> snapshot;
  for (const auto& path : disk.all_files()) {
    if (path.extension() != ".meta") continue;
    if (auto content = disk.current_contents(path)) snapshot[path.lexically_normal()] = *content;
  }
  return snapshot;
}

// One run: the process dies right after the action's k-th mutation, then the power fails.
void crash_at_step(const ActionSpec& spec, const Outcome& expected, std::uint64_t k, std::uint64_t seed, Figures& figures) {
  SCOPED_TRACE("crash after mutation " + std::to_string(k));
  Fixture fixture;
  ASSERT_NO_FATAL_FAILURE(spec.setup(fixture));
  fixture.outcome = expected;
  const auto before = metadata_snapshot(*fixture.disk);
  const auto versions_before = fixture.process->metadata_versions();
  fixture.process->die_after(k);
  fixture.action_succeeded = spec.action(fixture).is_ok();
  // The action may have finished (k = K): the process dies right after its last mutation.
  fixture.process->kill();
  auto versions = fixture.process->metadata_versions();
  fixture.store.reset();  // close() fails: the process is dead
  const PowerLossMode mode = seed % 4 == 1 ? PowerLossMode::drop_all_unsynced
                             : seed % 4 == 2 ? PowerLossMode::keep_all_unsynced
                                             : PowerLossMode::random;
  fixture.disk->simulate_power_loss(seed * 7919 + k, mode);

  // Metadata: readable, and a version that existed.
  for (const std::string& problem : check_metadata_files(*fixture.disk)) ADD_FAILURE() << problem;
  // By content, not path: a deleted stream's directory moves into trash/ with its files.
  std::set<std::string> existed;
  for (const auto& [path, content] : before) existed.insert(content);
  for (const auto& [path, installed] : versions) {
    const std::size_t already = versions_before.count(path) ? versions_before.at(path).size() : 0;
    for (std::size_t i = already; i < installed.size(); ++i) existed.insert(installed[i]);
  }
  for (const auto& [path, content] : metadata_snapshot(*fixture.disk)) {
    EXPECT_TRUE(existed.count(content)) << path << " holds a version that never existed:\n" << content;
  }

  auto process = std::make_shared<ProcessFileSystem>(fixture.disk);
  double open_ms = 0;
  auto reopened = open_timed(data_directory, process, open_ms);
  ASSERT_TRUE(reopened.is_ok()) << "store did not reopen: " << reopened.status().to_string();
  std::unique_ptr<Store> store = std::move(*reopened);
  CheckOptions options;
  options.sample_seed = seed + k;
  CheckReport report = fixture.checker.check(*store, Event::power_loss, open_ms, options);
  figures.add(report);
  ASSERT_TRUE(report.ok()) << report.summary();
  ASSERT_NO_FATAL_FAILURE(spec.check(fixture, *store));

  // Second life: new writes to every stream, a clean restart, nothing changes.
  fixture.store = std::move(store);
  fixture.process = process;
  for (const StreamConfig& config : fixture.store->list_streams()) {
    std::string subject = config.subjects.front();
    subject = subject.substr(0, subject.find_first_of("*>")) + "z";
    for (int i = 0; i < 3; ++i) {
      Status published = fixture.publish(subject, 30);
      ASSERT_TRUE(published.is_ok()) << config.name << ": " << published.to_string();
    }
  }
  ASSERT_TRUE(fixture.store->close().is_ok());
  fixture.store.reset();
  auto again = open_timed(data_directory, std::make_shared<ProcessFileSystem>(fixture.disk), open_ms);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  CheckReport second = fixture.checker.check(**again, Event::clean_restart, open_ms, options);
  figures.add(second);
  ASSERT_TRUE(second.ok()) << "after the second life: " << second.summary();
}

void run_action(const char* name, const ActionSpec& spec, std::uint64_t default_seeds) {
  Figures figures(name);
  // The counting run: how many mutations the action makes, and what it leads to.
  Fixture counting;
  ASSERT_NO_FATAL_FAILURE(spec.setup(counting));
  const std::uint64_t start = counting.process->mutations();
  Status done = spec.action(counting);
  ASSERT_TRUE(done.is_ok()) << done.to_string();
  const std::uint64_t steps = counting.process->mutations() - start;
  ASSERT_GT(steps, 0u);
  const Outcome expected = counting.outcome;
  for_each_seed(default_seeds, figures, [&](std::uint64_t seed) {
    for (std::uint64_t k = 1; k <= steps; ++k) {
      const int before = failures_so_far();
      crash_at_step(spec, expected, k, seed, figures);
      if (failures_so_far() != before) return;
    }
  });
  std::printf("%s: %llu mutations per run\n", name, static_cast<unsigned long long>(steps));
  figures.print();
}

// ---- The actions ----------------------------------------------------------------------------

TEST(StepCrash, CreateStream) {
  const StreamConfig fresh = [] {
    StreamConfig config = make_config("fresh", {"fresh.>"}, 3);
    config.max_messages = 500;
    return config;
  }();
  ActionSpec spec;
  spec.setup = [](Fixture& f) { f.base_setup(); };
  spec.action = [&](Fixture& f) { return f.store->create_stream(fresh); };
  spec.check = [&](Fixture& f, Store& store) {
    auto info = store.describe_stream("fresh");
    EXPECT_TRUE(info.is_ok() || !f.action_succeeded) << "create_stream returned ok but the stream is gone";
    if (info) {
      EXPECT_EQ(info->config, fresh);
      EXPECT_EQ(info->messages, 0u);
      f.checker.expect_stream("fresh", {fresh.fsync, fresh.max_messages});
    } else {
      ASSERT_EQ(info.status().code(), ErrorCode::stream_not_found) << info.status().to_string();
      // Whatever the crash left of the creation must not stand in the way of a new one.
      ASSERT_TRUE(store.create_stream(fresh).is_ok());
      f.checker.expect_stream("fresh", {fresh.fsync, fresh.max_messages});
    }
  };
  run_action("step_crash.create_stream", spec, 10);
}

TEST(StepCrash, UpdateStreamConfigAndPartitions) {
  StreamConfig updated = make_config("base", {"base.>", "extra.*"}, 4);
  updated.max_messages = 1000;
  updated.segment_bytes = 2 * limits::segment_bytes_min;
  const StreamConfig original = make_config("base", {"base.>"}, 2);
  ActionSpec spec;
  spec.setup = [](Fixture& f) { f.base_setup(); };
  spec.action = [&](Fixture& f) { return f.store->update_stream(updated); };
  spec.check = [&](Fixture& f, Store& store) {
    auto info = store.describe_stream("base");
    ASSERT_TRUE(info.is_ok()) << info.status().to_string();
    EXPECT_TRUE(info->config == updated || info->config == original) << "partitions " << info->config.partitions;
    EXPECT_TRUE(info->config == updated || !f.action_succeeded) << "update_stream returned ok but did not last";
    EXPECT_EQ(info->partitions.size(), info->config.partitions);
    f.checker.expect_stream("base", {info->config.fsync, info->config.max_messages});
  };
  run_action("step_crash.update_stream", spec, 10);
}

TEST(StepCrash, DeleteStream) {
  ActionSpec spec;
  spec.setup = [](Fixture& f) {
    ASSERT_NO_FATAL_FAILURE(f.base_setup());
    ASSERT_NO_FATAL_FAILURE(f.create(make_config("victim", {"victim.*"}, 2)));
    ASSERT_NO_FATAL_FAILURE(f.publish_many("victim.v", 50, 100));
    f.checker.stream_may_be_gone("victim");
  };
  spec.action = [](Fixture& f) { return f.store->delete_stream("victim"); };
  spec.check = [](Fixture& f, Store& store) {
    // The checker found it whole, or gone. If gone, a new stream of that name starts empty.
    auto info = store.describe_stream("victim");
    EXPECT_TRUE(!info.is_ok() || !f.action_succeeded) << "delete_stream returned ok but the stream came back";
    if (!info) {
      ASSERT_EQ(info.status().code(), ErrorCode::stream_not_found);
      ASSERT_TRUE(store.create_stream(make_config("victim", {"victim.*"}, 2)).is_ok());
      auto recreated = store.describe_stream("victim");
      ASSERT_TRUE(recreated.is_ok());
      EXPECT_EQ(recreated->messages, 0u) << "a deleted stream's data came back";
      for (const PartitionInfo& partition : recreated->partitions) EXPECT_EQ(partition.next_offset, 0u);
      f.checker.expect_stream("victim", {});
    } else {
      f.checker.expect_stream("victim", {});
    }
  };
  run_action("step_crash.delete_stream", spec, 10);
}

// The roll stream's active segment is filled until the next publish must roll.
void fill_until_roll(Fixture& f) {
  ASSERT_NO_FATAL_FAILURE(f.base_setup());
  StreamConfig config = make_config("roll", {"roll.*"}, 1);
  ASSERT_NO_FATAL_FAILURE(f.create(config));
  std::uint64_t previous = 0;
  for (int i = 0; i < 1000; ++i) {
    auto info = f.store->describe_stream("roll");
    ASSERT_TRUE(info.is_ok());
    const std::uint64_t bytes = info->partitions[0].bytes;
    const std::uint64_t step = bytes - previous;
    ASSERT_EQ(info->partitions[0].segments, 1u);
    if (i > 1 && bytes + step > config.segment_bytes) return;
    previous = bytes;
    Status published = f.publish("roll.r", 150);
    ASSERT_TRUE(published.is_ok()) << published.to_string();
  }
  FAIL() << "never reached the roll point";
}

TEST(StepCrash, PublishThatRollsASegment) {
  ActionSpec spec;
  spec.setup = fill_until_roll;
  spec.action = [](Fixture& f) {
    Status status = f.publish("roll.r", 150);
    if (status.is_ok()) {
      auto info = f.store->describe_stream("roll");
      EXPECT_EQ(info->partitions[0].segments, 2u) << "the action did not roll";
    }
    return status;
  };
  spec.check = [](Fixture&, Store&) {};
  run_action("step_crash.segment_roll", spec, 10);
}

TEST(StepCrash, RetentionDeletesSegments) {
  ActionSpec spec;
  spec.setup = [](Fixture& f) {
    ASSERT_NO_FATAL_FAILURE(f.base_setup());
    StreamConfig config = make_config("ret", {"ret.*"}, 1);
    ASSERT_NO_FATAL_FAILURE(f.create(config));
    ASSERT_NO_FATAL_FAILURE(f.publish_many("ret.r", 200, 120));
    config.max_messages = 60;
    ASSERT_TRUE(f.store->update_stream(config).is_ok());
    f.checker.expect_stream("ret", {config.fsync, config.max_messages});
    f.outcome.log_start_before = *f.store->resolve_start("ret", 0, StartPosition::from_beginning());
  };
  spec.action = [](Fixture& f) {
    Status status = f.store->run_maintenance();
    if (status.is_ok()) {
      f.outcome.log_start_after = *f.store->resolve_start("ret", 0, StartPosition::from_beginning());
      EXPECT_GT(f.outcome.log_start_after, f.outcome.log_start_before) << "retention deleted nothing";
    }
    return status;
  };
  spec.check = [](Fixture& f, Store& store) {
    const Offset start = *store.resolve_start("ret", 0, StartPosition::from_beginning());
    EXPECT_TRUE(start == f.outcome.log_start_before || start == f.outcome.log_start_after)
        << "log start " << start << ", expected " << f.outcome.log_start_before << " or " << f.outcome.log_start_after;
    EXPECT_TRUE(start == f.outcome.log_start_after || !f.action_succeeded) << "retention returned ok but did not last";
  };
  run_action("step_crash.retention", spec, 10);
}

TEST(StepCrash, CloseWritesCheckpoints) {
  ActionSpec spec;
  spec.setup = [](Fixture& f) { f.base_setup(); };
  spec.action = [](Fixture& f) { return f.store->close(); };
  spec.check = [](Fixture&, Store&) {};
  run_action("step_crash.close", spec, 10);
}

TEST(StepCrash, RecoveryItself) {
  // The store is reopened after a power loss that tore the tail of an fsync=never stream; the
  // recovery (truncation, index rewrites, checkpoints, a new segment) is the action.
  ActionSpec spec;
  spec.setup = [](Fixture& f) {
    ASSERT_NO_FATAL_FAILURE(f.base_setup());
    StreamConfig lazy = make_config("lazy", {"lazy.*"}, 2);
    lazy.fsync = FsyncPolicy::never;
    ASSERT_NO_FATAL_FAILURE(f.create(lazy));
    ASSERT_NO_FATAL_FAILURE(f.publish_many("lazy.l", 120, 70));
    f.process->kill();
    f.store.reset();
    f.disk->simulate_power_loss(424242, PowerLossMode::random);
    f.process = std::make_shared<ProcessFileSystem>(f.disk);
  };
  spec.action = [](Fixture& f) {
    auto opened = Store::open(data_directory, replayable_store_options(f.process));
    if (!opened) return opened.status();
    f.store = std::move(*opened);
    return Status::ok();
  };
  spec.check = [](Fixture&, Store&) {};
  run_action("step_crash.recovery", spec, 10);
}

}  // namespace
}  // namespace msgstore::crash
