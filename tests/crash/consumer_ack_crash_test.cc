// Consumer acks under power loss and kill -9, on the fault seam: 2 publisher threads and a
// consumer thread (fetch, then ack every delivery) run against a fsync=always stream with 4 KiB
// segments until the power fails (random, drop-all or keep-all by seed) or the process is
// killed, at a random moment; 3 crashes per seed. After each reopen:
//   - the crash checker: 0 acked publishes lost, moved or duplicated, 0 unexpected;
//   - the consumer's ack floor and delivered offset are at most the partition's log end, and the
//     ack floor never goes back (acks wait for the state log's fdatasync);
//   - the consumer thread, which keeps the set of deliveries whose ack returned ok, never gets
//     one of them again, neither before the crash nor after it; after the last crash it drains
//     the consumer (ack_wait_ms 20, so every unacked delivery comes back) and every stored
//     message has then been acked (an ack whose settle call the crash interrupted may have
//     been made durable without returning: it counts as acked).
// CRASH_SEEDS (default 10) / CRASH_SEED replay as for every crash test.
#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "crash/harness.h"
#include "msgstore/consumer.h"

namespace msgstore::crash {
namespace {

using namespace std::chrono_literals;
using PartitionOffset = std::pair<std::uint32_t, Offset>;
const std::filesystem::path data_directory = "/data";

Result<std::unique_ptr<Store>> open_on(const std::shared_ptr<ProcessFileSystem>& process) {
  StoreOptions options;
  options.file_system = process;
  options.background_maintenance = false;
  return Store::open(data_directory, options);
}

struct ConsumerState {
  std::set<PartitionOffset> acked;  // settle returned ok for the token
  // settle was called; when the process died during it the ack may be durable or not.
  std::set<PartitionOffset> ack_attempted;
  std::uint64_t redelivered_after_ack = 0;
  std::uint64_t deliveries = 0;
};

// Fetches and acks until `stop` or an error (the process died). Returns false on a violation.
void consume(Store& store, ConsumerState& state, const std::atomic<bool>& stop, bool drain) {
  int empty_in_a_row = 0;
  while (!stop.load()) {
    FetchOptions options;
    options.max_messages = 16;
    auto fetched = store.consumers().fetch("s", "c", options);
    if (!fetched) return;
    if (fetched->empty()) {
      if (drain && ++empty_in_a_row > 6) return;
      std::this_thread::sleep_for(drain ? 10ms : 1ms);
      continue;
    }
    empty_in_a_row = 0;
    std::vector<std::string> tokens;
    std::vector<PartitionOffset> places;
    for (const ConsumedMessage& message : *fetched) {
      const PartitionOffset place{message.partition, message.message.offset};
      ++state.deliveries;
      if (state.acked.count(place) != 0) {
        ++state.redelivered_after_ack;
        ADD_FAILURE() << "partition " << place.first << " offset " << place.second << " delivered again after its ack returned ok";
      }
      tokens.push_back(message.delivery.to_string());
      places.push_back(place);
    }
    state.ack_attempted.insert(places.begin(), places.end());
    auto settled = store.consumers().settle("s", "c", AckKind::ack, tokens);
    if (!settled) return;
    for (std::size_t i = 0; i < places.size(); ++i) {
      if ((*settled)[i].is_ok()) state.acked.insert(places[i]);
    }
  }
}

void run_seed(std::uint64_t seed, Figures& figures) {
  std::mt19937_64 random(seed);
  auto disk = std::make_shared<FaultFileSystem>();
  Checker checker;
  ConsumerState consumer_state;
  std::map<std::uint32_t, Offset> floor_seen;
  std::uint64_t sequences[2] = {0, 0};
  Event event = Event::none;
  constexpr int crashes = 3;
  for (int cycle = 0; cycle <= crashes; ++cycle) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " cycle " + std::to_string(cycle) + " after " + event_name(event));
    auto process = std::make_shared<ProcessFileSystem>(disk);
    const auto open_started = std::chrono::steady_clock::now();
    auto opened = open_on(process);
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    const double open_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - open_started).count();
    std::unique_ptr<Store> store = std::move(*opened);
    if (cycle == 0) {
      StreamConfig config;
      config.name = "s";
      config.subjects = {"s.>"};
      config.partitions = 2;
      config.segment_bytes = 4096;
      ASSERT_TRUE(store->create_stream(config).is_ok());
      ConsumerConfig consumer;
      consumer.name = "c";
      consumer.ack_wait_ms = 20;
      ASSERT_TRUE(store->consumers().create("s", consumer).is_ok());
      checker.expect_stream("s", {FsyncPolicy::always, 0});
    } else {
      const CheckReport report = checker.check(*store, event, open_ms);
      figures.add(report);
      EXPECT_TRUE(report.ok()) << report.summary();
      auto info = store->describe_stream("s");
      auto consumer = store->consumers().describe("s", "c");
      ASSERT_TRUE(info.is_ok() && consumer.is_ok());
      for (const ConsumerPartitionInfo& position : consumer->partitions) {
        const Offset end = info->partitions.at(position.partition).next_offset;
        EXPECT_LE(position.ack_floor, end) << "partition " << position.partition << ": ack floor past the log end";
        EXPECT_LE(position.delivered_offset, end) << "partition " << position.partition << ": delivered offset past the log end";
        EXPECT_GE(position.ack_floor, floor_seen[position.partition]) << "partition " << position.partition << ": ack floor went back";
        floor_seen[position.partition] = position.ack_floor;
      }
    }
    if (cycle == crashes) {
      std::this_thread::sleep_for(30ms);  // past ack_wait_ms: every unacked delivery is due again
      std::atomic<bool> never{false};
      consume(*store, consumer_state, never, true);
      auto info = store->describe_stream("s");
      ASSERT_TRUE(info.is_ok());
      for (const PartitionInfo& partition : info->partitions) {
        for (Offset offset = partition.first_offset; offset < partition.next_offset; ++offset) {
          EXPECT_TRUE(consumer_state.acked.count({partition.partition, offset}) ||
                      consumer_state.ack_attempted.count({partition.partition, offset}))
              << "partition " << partition.partition << " offset " << offset << " never acked after the drain";
        }
      }
      ASSERT_TRUE(store->close().is_ok());
      break;
    }
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (std::uint32_t producer = 0; producer < 2; ++producer) {
      threads.emplace_back([&, producer] {
        while (!stop.load()) {
          const MessageId id{producer, sequences[producer]++};
          checker.attempted(id);
          const std::string payload = make_payload(id, 30);
          OutgoingMessage message;
          message.subject = producer == 0 ? "s.a" : "s.b";
          message.payload = payload;
          auto positions = store->publish(message);
          if (!positions) return;  // the process died
          for (const Position& position : *positions) checker.acked(position, id);
        }
      });
    }
    threads.emplace_back([&] { consume(*store, consumer_state, stop, false); });
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + random() % 40));
    if (random() % 4 == 0) {
      process->process_crash();
      event = Event::process_crash;
    } else {
      const PowerLossMode modes[] = {PowerLossMode::random, PowerLossMode::drop_all_unsynced, PowerLossMode::keep_all_unsynced};
      process->power_loss(random(), modes[random() % 3]);
      event = Event::power_loss;
    }
    stop.store(true);
    for (std::thread& thread : threads) thread.join();
    store.reset();  // the dead process's store: every call fails, nothing reaches the disk
  }
  figures.other_violations += consumer_state.redelivered_after_ack;
}

TEST(ConsumerAckCrash, AckedDeliveriesAreNeverRedeliveredAfterPowerLossOrKill) {
  Figures figures("consumer_ack_crash");
  for_each_seed(10, figures, [&](std::uint64_t seed) { run_seed(seed, figures); });
  figures.print();
}

}  // namespace
}  // namespace msgstore::crash
