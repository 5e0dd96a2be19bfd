// Power loss (and kill -9) under concurrent load, many crash cycles per seed.
//
// Per seed: on one simulated disk, cycles of { open (timed) ; check everything against the
// checker ; four publisher threads (single and batch publishes, keyed and round robin, one
// subject captured by two streams) plus a maintenance thread (retention by max_messages,
// interval syncs, checkpoints) ; at a random point the power fails (or the process is killed)
// }. Small segments make the load roll segments all the time and retention delete them.
//
// Pass (docs/RELIABILITY.md): fsync=always: 0 acked lost, 0 unexpected, 0 duplicates, 0
// inconsistent offsets, the store always reopens. fsync=interval: loss only as a
// per-partition suffix of what was not synced. fsync=never / interval + kill -9: 0 acked lost.
//
// The PowerLossRewrite tests (ctest: power_loss_rewrite_test) add compaction and erase to the
// load: stream s1 is cleanup=compact, publishers use a few keys per producer, tag some messages
// with a header and publish tombstones (fresh, and already past tombstone_retention_ms), and a
// rewrite thread calls Store::compact and Store::erase (by key or by tag header, removing now or
// leaving it to maintenance) on both streams while the power fails. The checker is told each
// message's key, tag and tombstone, and each erase's start and return, and allows exactly what
// compaction and erase may remove (checker.h); an erase that returned ok must have removed every
// match acknowledged before it began.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>

#include "crash/checker.h"
#include "crash/harness.h"
#include "log/segment.h"

namespace msgstore::crash {
namespace {

constexpr int producers = 4;
const std::filesystem::path data_directory = "/data";
constexpr std::int64_t tombstone_retention_ms = 3'600'000;
constexpr int keys_per_producer = 4;
constexpr int tags = 3;

TimestampMs system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct Scenario {
  FsyncPolicy fsync = FsyncPolicy::always;
  bool power_loss = true;  // else a process crash (kill -9)
  bool mixed = false;      // stream s1 uses fsync=always whatever `fsync` says
  int maintainers = 1;     // threads calling run_maintenance (the API allows concurrent calls)
  bool rewrites = false;   // s1 is cleanup=compact; a thread runs compact and erase
};

std::vector<StreamConfig> stream_configs(const Scenario& scenario, std::mt19937_64& random) {
  StreamConfig s0;
  s0.name = "s0";
  s0.subjects = {"s0.>", "all.>"};
  s0.partitions = 2;
  s0.fsync = scenario.fsync;
  s0.fsync_interval_ms = scenario.fsync == FsyncPolicy::interval ? 1 + static_cast<std::uint32_t>(random() % 5) : 0;
  s0.segment_bytes = limits::segment_bytes_min;
  s0.max_messages = 60 + random() % 200;
  StreamConfig s1;
  s1.name = "s1";
  s1.subjects = {"s1.*", "all.>"};
  s1.partitions = 3;
  s1.fsync = scenario.mixed ? FsyncPolicy::always : scenario.fsync;
  s1.fsync_interval_ms = s1.fsync == FsyncPolicy::interval ? 1 + static_cast<std::uint32_t>(random() % 5) : 0;
  s1.segment_bytes = 2 * limits::segment_bytes_min;
  if (random() % 2 == 0) s1.max_messages = 100 + random() % 300;
  if (scenario.rewrites) {
    s1.cleanup = CleanupPolicy::compact;
    s1.tombstone_retention_ms = tombstone_retention_ms;
  }
  return {s0, s1};
}

struct Ack {
  Position position;
  std::uint64_t returned_at = 0;  // ProcessFileSystem::calls() once the publish returned
};

// One crash cycle's load: publishers and a maintenance thread until `stop`.
struct Load {
  bool rewrites = false;  // keys per producer, tags, tombstones (Scenario::rewrites)
  Store* store = nullptr;
  Checker* checker = nullptr;
  ProcessFileSystem* process = nullptr;
  std::mutex acks_mutex;
  std::vector<Ack> cycle_acks;
  std::atomic<bool> stop{false};
  std::atomic<bool> crashed{false};
  std::atomic<std::uint64_t> acks{0};
  std::mutex errors_mutex;
  std::vector<std::string> errors;  // errors before the crash (there should be none)

  void error(const std::string& text) {
    if (crashed.load()) return;
    std::lock_guard lock(errors_mutex);
    if (errors.size() < 5) errors.push_back(text);
  }

  void produce(std::uint32_t producer, std::uint64_t& sequence, std::uint64_t seed) {
    std::mt19937_64 random(seed);
    static const char* subjects[] = {"s0.a", "s0.b.c", "s1.x", "all.y"};
    std::vector<std::string> payloads;
    std::vector<OutgoingMessage> batch;
    std::vector<MessageId> ids;
    std::vector<std::array<HeaderView, 3>> headers;
    std::string key = "key-" + std::to_string(producer);
    while (!stop.load()) {
      const std::size_t count = random() % 3 == 0 ? 1 + random() % 6 : 1;
      const bool keyed = random() % 2 == 0;
      const char* subject = subjects[random() % 4];
      if (rewrites) key = "k" + std::to_string(producer) + "-" + std::to_string(random() % keys_per_producer);
      // A tombstone: single, keyed, empty payload; its id travels in a header.
      const bool tombstone = rewrites && keyed && count == 1 && random() % 5 == 0;
      const bool expired_tombstone = tombstone && random() % 2 == 0;
      const std::string tag = "t" + std::to_string(random() % tags);
      const bool tagged = rewrites && random() % 3 == 0;
      payloads.clear();
      ids.clear();
      batch.clear();
      headers.clear();
      headers.reserve(count);  // the spans below point into it
      MessageTraits traits;
      if (keyed) traits.key = key;
      if (tagged) traits.tag = tag;
      traits.tombstone = tombstone;
      traits.timestamp_ms = expired_tombstone ? system_now_ms() - 2 * tombstone_retention_ms : system_now_ms();
      for (std::size_t i = 0; i < count; ++i) {
        const MessageId id{producer, sequence++};
        ids.push_back(id);
        payloads.push_back(make_payload(id, tombstone ? 0 : random() % 3 == 0 ? random() % 700 : random() % 60));
        checker->attempted(id, traits);
      }
      for (std::size_t i = 0; i < count; ++i) {
        OutgoingMessage message;
        message.subject = subject;
        if (keyed) message.key = key;
        message.payload = payloads[i];
        std::array<HeaderView, 3>& list = headers.emplace_back();
        std::size_t count_headers = 0;
        if (tagged) list[count_headers++] = HeaderView{tag_header_name, tag};
        if (tombstone) {
          list[count_headers++] = HeaderView{tombstone_header_name, "1"};
          list[count_headers++] = HeaderView{id_header_name, payloads[i]};
          message.payload = {};
          if (expired_tombstone) message.timestamp_ms = traits.timestamp_ms;
        }
        message.headers = std::span<const HeaderView>(list.data(), count_headers);
        batch.push_back(message);
      }
      auto positions = count == 1 ? store->publish(batch[0]) : store->publish_batch(batch);
      if (!positions) {
        error("publish by producer " + std::to_string(producer) + ": " + positions.status().to_string());
        return;  // the crash (or an error, reported above)
      }
      const std::uint64_t returned_at = process->calls();
      for (const Position& position : *positions) checker->acked(position, ids[position.message_index]);
      {
        std::lock_guard lock(acks_mutex);
        for (const Position& position : *positions) cycle_acks.push_back(Ack{position, returned_at});
      }
      acks.fetch_add(positions->size());
    }
  }

  // Compaction of s1 and erases (by key or by tag, now or by maintenance) on both streams.
  void rewrite(std::uint64_t seed) {
    std::mt19937_64 random(seed);
    while (!stop.load()) {
      if (random() % 2 == 0) {
        auto compacted = store->compact("s1");
        if (!compacted) {
          error("compact: " + compacted.status().to_string());
          return;
        }
      } else {
        EraseRequest request;
        request.stream = random() % 2 == 0 ? "s0" : "s1";
        request.actor = "power-loss-test";
        request.remove_now = random() % 2 == 0;
        if (random() % 2 == 0) {
          request.criteria.key = "k" + std::to_string(random() % producers) + "-" + std::to_string(random() % keys_per_producer);
        } else {
          request.criteria.header = Header{std::string(tag_header_name), "t" + std::to_string(random() % tags)};
        }
        const std::uint64_t ticket = checker->erase_started(request.stream, request.criteria);
        auto erased = store->erase(request);
        if (!erased) {
          error("erase: " + erased.status().to_string());
          return;
        }
        checker->erase_returned(ticket);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200 + random() % 3000));
    }
  }

  void maintain() {
    while (!stop.load()) {
      Status status = store->run_maintenance();
      if (!status.is_ok()) {
        error("maintenance: " + status.to_string());
        return;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
  }
};

// Marks every ack of this cycle that a later sync of its segment file covers as durable (the
// process is dead, the disk not yet crashed); returns how many.
std::uint64_t mark_synced_acks(const FaultFileSystem& disk, const ProcessFileSystem& process, Load& load, Checker& checker) {
  const auto syncs = process.last_sync_starts();
  // Segment bases of every partition directory, before the crash.
  std::map<std::filesystem::path, std::vector<Offset>> bases;
  for (const auto& path : disk.all_files()) {
    if (auto base = log::parse_segment_log_name(path.filename().string())) bases[path.parent_path()].push_back(*base);
  }
  for (auto& [directory, list] : bases) std::sort(list.begin(), list.end());
  std::uint64_t claimed = 0;
  std::lock_guard lock(load.acks_mutex);
  for (const Ack& ack : load.cycle_acks) {
    const auto directory = data_directory / "streams" / ack.position.stream / ("partition-" + std::to_string(ack.position.partition));
    auto found = bases.find(directory);
    if (found == bases.end()) continue;
    auto after = std::upper_bound(found->second.begin(), found->second.end(), ack.position.offset);
    if (after == found->second.begin()) continue;  // deleted by retention
    const auto file = log::segment_file_path(directory, *std::prev(after), log::SegmentFileKind::log);
    auto sync = syncs.find(file);
    if (sync == syncs.end() || sync->second <= ack.returned_at) continue;
    checker.mark_durable(ack.position.stream, ack.position.partition, ack.position.offset);
    ++claimed;
  }
  return claimed;
}

void run_seed(std::uint64_t seed, const Scenario& scenario, Figures& figures, std::uint64_t& durable_claims) {
  std::mt19937_64 random(seed * 0x9e3779b97f4a7c15ULL + static_cast<std::uint64_t>(scenario.fsync) * 7 + scenario.power_loss);
  auto disk = std::make_shared<FaultFileSystem>();
  Checker checker;
  std::vector<std::uint64_t> sequences(producers, 0);
  const int crashes = 2 + static_cast<int>(random() % 3);
  Event event = Event::none;
  for (int cycle = 0; cycle <= crashes; ++cycle) {
    SCOPED_TRACE("cycle " + std::to_string(cycle) + " of seed " + std::to_string(seed));
    auto process = std::make_shared<ProcessFileSystem>(disk);
    double open_ms = 0;
    auto opened = open_timed(data_directory, process, open_ms);
    ASSERT_TRUE(opened.is_ok()) << "the store did not reopen after " << event_name(event) << ": " << opened.status().to_string();
    std::unique_ptr<Store> store = std::move(*opened);
    if (cycle == 0) {
      for (const StreamConfig& config : stream_configs(scenario, random)) {
        ASSERT_TRUE(store->create_stream(config).is_ok());
        checker.expect_stream(config.name, expectation_of(config));
      }
    } else {
      CheckOptions options;
      options.sample_seed = seed * 131 + static_cast<std::uint64_t>(cycle);
      CheckReport report = checker.check(*store, event, open_ms, options);
      figures.add(report);
      EXPECT_TRUE(report.ok()) << "after " << event_name(event) << ": " << report.summary();
      if (!report.ok()) return;
    }
    if (cycle == crashes) break;
    if (cycle > 0 && random() % 3 == 0) {
      // Retention limits change between cycles (update_stream, then the maintenance thread).
      auto streams = store->list_streams();
      std::erase_if(streams, [](const StreamConfig& config) { return config.name == audit_stream_name; });
      StreamConfig changed = streams[random() % streams.size()];
      changed.max_messages = random() % 2 ? 40 + random() % 200 : 0;
      ASSERT_TRUE(store->update_stream(changed).is_ok());
      checker.expect_stream(changed.name, expectation_of(changed));
    }

    Load load;
    load.rewrites = scenario.rewrites;
    load.store = store.get();
    load.checker = &checker;
    load.process = process.get();
    std::vector<std::thread> threads;
    std::vector<std::uint64_t> thread_seeds;
    for (int p = 0; p < producers; ++p) thread_seeds.push_back(random());
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&, p] { load.produce(static_cast<std::uint32_t>(p), sequences[p], thread_seeds[p]); });
    }
    for (int m = 0; m < scenario.maintainers; ++m) threads.emplace_back([&] { load.maintain(); });
    if (scenario.rewrites) {
      const std::uint64_t rewrite_seed = random();
      threads.emplace_back([&load, rewrite_seed] { load.rewrite(rewrite_seed); });
    }
    const std::uint64_t target = 20 + random() % 600;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (load.acks.load() < target && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 500));
    load.crashed = true;
    const std::uint64_t crash_seed = seed * 1000 + static_cast<std::uint64_t>(cycle);
    if (scenario.power_loss) {
      process->kill();
      // "Loss only after the last sync": an ack whose segment file had a sync start after the
      // ack returned is on stable storage whatever the fsync policy.
      durable_claims += mark_synced_acks(*disk, *process, load, checker);
      disk->simulate_power_loss(crash_seed, PowerLossMode::random);
      event = Event::power_loss;
    } else {
      process->process_crash();
      event = Event::process_crash;
    }
    load.stop = true;
    for (auto& thread : threads) thread.join();
    store.reset();  // its close() fails: the process is dead
    for (const std::string& error : load.errors) ADD_FAILURE() << "before the crash: " << error;
    if (!load.errors.empty()) return;
  }
}

void run_scenario(const char* name, const Scenario& scenario, std::uint64_t default_seeds) {
  Figures figures(name);
  std::uint64_t durable_claims = 0;
  for_each_seed(default_seeds, figures, [&](std::uint64_t seed) { run_seed(seed, scenario, figures, durable_claims); });
  if (scenario.power_loss) {
    std::printf("%s: %llu acks proven synced before the power loss (must survive under any policy)\n", name,
                static_cast<unsigned long long>(durable_claims));
  }
  figures.print();
  EXPECT_GT(figures.acked, 0u);
}

TEST(PowerLoss, FsyncAlways) {
  run_scenario("power_loss.always", Scenario{.fsync = FsyncPolicy::always, .power_loss = true}, 40);
}

TEST(PowerLoss, FsyncIntervalLosesOnlyAnUnsyncedSuffix) {
  run_scenario("power_loss.interval", Scenario{.fsync = FsyncPolicy::interval, .power_loss = true}, 40);
}

TEST(PowerLoss, ConcurrentMaintenanceCalls) {
  run_scenario("power_loss.two_maintainers", Scenario{.fsync = FsyncPolicy::always, .power_loss = true, .maintainers = 2}, 25);
}

TEST(PowerLoss, MixedPoliciesInOneStore) {
  run_scenario("power_loss.mixed", Scenario{.fsync = FsyncPolicy::never, .power_loss = true, .mixed = true}, 25);
}

TEST(ProcessCrash, FsyncNeverKeepsEveryAck) {
  run_scenario("process_crash.never", Scenario{.fsync = FsyncPolicy::never, .power_loss = false}, 25);
}

TEST(ProcessCrash, FsyncIntervalKeepsEveryAck) {
  run_scenario("process_crash.interval", Scenario{.fsync = FsyncPolicy::interval, .power_loss = false}, 25);
}

// Compaction and erase running beside the publishers when the power fails.
TEST(PowerLossRewrite, FsyncAlways) {
  run_scenario("power_loss_rewrite.always", Scenario{.fsync = FsyncPolicy::always, .power_loss = true, .rewrites = true}, 30);
}

TEST(PowerLossRewrite, FsyncIntervalLosesOnlyAnUnsyncedSuffix) {
  run_scenario("power_loss_rewrite.interval", Scenario{.fsync = FsyncPolicy::interval, .power_loss = true, .rewrites = true}, 30);
}

TEST(PowerLossRewrite, MixedPoliciesInOneStore) {
  run_scenario("power_loss_rewrite.mixed",
               Scenario{.fsync = FsyncPolicy::never, .power_loss = true, .mixed = true, .rewrites = true}, 20);
}

TEST(ProcessCrashRewrite, FsyncNeverKeepsEveryAck) {
  run_scenario("process_crash_rewrite.never", Scenario{.fsync = FsyncPolicy::never, .power_loss = false, .rewrites = true}, 20);
}

}  // namespace
}  // namespace msgstore::crash
