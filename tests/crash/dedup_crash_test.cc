// Duplicate suppression across power loss and kill -9, under concurrent publishers.
//
// Per seed, on one simulated disk, several crash cycles of { open ; every publisher re-sends
// every id it ever attempted (the retries a client makes after losing its connection) and
// then new ids, singly and in batches, some with a TTL, until the power fails (or the process
// is killed) at a random point }. After each crash the store is reopened and checked:
//   * an acknowledged id answers a re-send with duplicate = true at exactly its acked position;
//   * every id is stored at most once per stream (reading everything back), and every
//     acknowledged id is stored;
//   * an id that was attempted but not acknowledged is stored once after its re-send.
// The dedup table is rebuilt from the log on each open, so this checks that rebuild against
// torn tails, dropped unsynced writes and lost directory entries.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "crash/checker.h"
#include "crash/harness.h"

namespace msgstore::crash {
namespace {

constexpr int publishers = 4;
const std::filesystem::path data_directory = "/data";

struct Stored {
  std::uint32_t partition = 0;
  Offset offset = 0;
  bool operator==(const Stored&) const = default;
};

// Everything the publishers were told, across cycles.
struct Ledger {
  std::mutex mutex;
  std::map<std::string, std::map<std::string, Stored>> acked;  // id -> stream -> position
  std::set<std::string> attempted;
};

void check_everything(Store& store, Ledger& ledger, Figures& figures, const std::string& where) {
  std::map<std::string, std::map<std::string, Stored>> stored;  // id -> stream -> position
  for (const std::string stream : {"orders", "audit"}) {
    auto info = store.describe_stream(stream);
    ASSERT_TRUE(info.is_ok()) << where << ": " << info.status().to_string();
    for (const PartitionInfo& partition : info->partitions) {
      Offset next = partition.first_offset;
      while (next < partition.next_offset) {
        auto page = store.read(stream, partition.partition, next, ReadOptions{.max_messages = 500});
        ASSERT_TRUE(page.is_ok()) << where << ": " << page.status().to_string();
        for (const Message& message : page->messages) {
          ++figures.messages_checked;
          std::optional<std::string> id;
          for (const Header& header : message.headers) {
            if (header.name == message_id_header) id = header.value;
          }
          ASSERT_TRUE(id.has_value()) << where << ": a message without its id at " << stream << "/" << message.offset;
          if (message.payload != "payload of " + *id) ++figures.inconsistent;
          if (!stored[*id].emplace(stream, Stored{partition.partition, message.offset}).second) {
            ++figures.duplicates;
            ADD_FAILURE() << where << ": id " << *id << " stored twice in " << stream;
          }
        }
        if (page->next_offset <= next) break;
        next = page->next_offset;
      }
    }
  }
  std::lock_guard lock(ledger.mutex);
  for (const auto& [id, streams] : ledger.acked) {
    for (const auto& [stream, position] : streams) {
      ++figures.acked;
      auto found = stored.find(id);
      if (found == stored.end() || !found->second.count(stream)) {
        ++figures.lost;
        ADD_FAILURE() << where << ": acknowledged id " << id << " is not in " << stream;
      } else if (!(found->second.at(stream) == position)) {
        ++figures.inconsistent;
        ADD_FAILURE() << where << ": id " << id << " moved in " << stream;
      }
    }
  }
  for (const auto& [id, streams] : stored) {
    if (!ledger.attempted.count(id)) {
      ++figures.unexpected;
      ADD_FAILURE() << where << ": id " << id << " was never published";
    }
  }
}

// One publisher's cycle: re-send every id it attempted before, then new ones, until the store
// fails (the crash). Returns false on a broken rule.
void publish_until_crash(Store& store, Ledger& ledger, int publisher, std::uint64_t seed, int cycle,
                         std::vector<std::string>& own_ids, std::atomic<bool>& crashed, std::atomic<int>& violations) {
  std::mt19937_64 random(seed * 1000 + static_cast<std::uint64_t>(cycle * publishers + publisher));
  auto send = [&](const std::vector<std::string>& ids) -> bool {
    std::vector<std::string> payloads;
    for (const std::string& id : ids) payloads.push_back("payload of " + id);
    std::vector<OutgoingMessage> batch;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      OutgoingMessage message;
      message.subject = random() % 3 == 0 ? "orders.audited" : "orders.created";
      message.payload = payloads[i];
      message.message_id = ids[i];
      // A long TTL: reads still return it, while the rebuild must treat it like any other.
      if (random() % 4 == 0) message.ttl_ms = 3'600'000;
      batch.push_back(message);
    }
    auto positions = store.publish_batch(batch);
    if (!positions) return false;  // the crash
    std::lock_guard lock(ledger.mutex);
    for (const Position& position : *positions) {
      const std::string& id = ids[position.message_index];
      auto& known = ledger.acked[id];
      auto [it, inserted] = known.emplace(position.stream, Stored{position.partition, position.offset});
      if (!inserted && !(it->second == Stored{position.partition, position.offset})) {
        ++violations;
        ADD_FAILURE() << "id " << id << " acked at two positions in " << position.stream;
      }
      if (!inserted && !position.duplicate) {
        ++violations;
        ADD_FAILURE() << "id " << id << " acked again in " << position.stream << " without duplicate = true";
      }
    }
    return true;
  };
  // Retries first (in small batches), so most re-sends meet the rebuilt table.
  std::vector<std::string> retries = own_ids;
  std::shuffle(retries.begin(), retries.end(), random);
  for (std::size_t i = 0; i < retries.size() && !crashed.load();) {
    const std::size_t count = std::min<std::size_t>(1 + random() % 3, retries.size() - i);
    if (!send(std::vector<std::string>(retries.begin() + static_cast<std::ptrdiff_t>(i),
                                       retries.begin() + static_cast<std::ptrdiff_t>(i + count)))) {
      return;
    }
    i += count;
  }
  for (int n = 0; !crashed.load(); ++n) {
    std::vector<std::string> ids;
    const std::size_t count = 1 + random() % 3;
    for (std::size_t j = 0; j < count; ++j) {
      ids.push_back("p" + std::to_string(publisher) + "c" + std::to_string(cycle) + "n" + std::to_string(n) + "-" + std::to_string(j));
    }
    {
      std::lock_guard lock(ledger.mutex);
      for (const std::string& id : ids) ledger.attempted.insert(id);
    }
    own_ids.insert(own_ids.end(), ids.begin(), ids.end());
    if (!send(ids)) return;
  }
}

TEST(DedupCrash, AcknowledgedIdsAreNeverStoredTwiceAcrossPowerLossAndKill) {
  Figures figures("dedup_crash_test");
  for_each_seed(12, figures, [&](std::uint64_t seed) {
    SCOPED_TRACE(replay_command(seed));
    auto disk = std::make_shared<FaultFileSystem>();
    std::mt19937_64 random(seed);
    Ledger ledger;
    std::vector<std::vector<std::string>> own_ids(publishers);
    const int cycles = 3;
    for (int cycle = 0; cycle <= cycles; ++cycle) {
      auto process = std::make_shared<ProcessFileSystem>(disk);
      double open_ms = 0;
      auto opened = open_timed(data_directory, process, open_ms);
      ASSERT_TRUE(opened.is_ok()) << "cycle " << cycle << ": " << opened.status().to_string();
      figures.add_recovery(open_ms);
      std::unique_ptr<Store> store = std::move(*opened);
      if (cycle == 0) {
        StreamConfig orders;
        orders.name = "orders";
        orders.subjects = {"orders.>"};
        orders.partitions = 3;
        orders.segment_bytes = limits::segment_bytes_min;  // rolls often: the rebuild crosses segments
        orders.fsync = FsyncPolicy::always;  // an ack means durable, so a re-send must find it
        StreamConfig audit;
        audit.name = "audit";
        audit.subjects = {"orders.audited"};
        audit.fsync = FsyncPolicy::always;
        ASSERT_TRUE(store->create_stream(orders).is_ok());
        ASSERT_TRUE(store->create_stream(audit).is_ok());
      } else {
        ++figures.cycles;
        check_everything(*store, ledger, figures, "after crash " + std::to_string(cycle));
        if (::testing::Test::HasFailure()) return;
      }
      if (cycle == cycles) {
        // Last round: every id ever attempted is re-sent once more, single-threaded; then each is
        // stored exactly once and every publish of it answered with that one position.
        for (int publisher = 0; publisher < publishers; ++publisher) {
          for (const std::string& id : own_ids[publisher]) {
            OutgoingMessage message;
            message.subject = "orders.created";
            const std::string payload = "payload of " + id;
            message.payload = payload;
            message.message_id = id;
            auto positions = store->publish(message);
            ASSERT_TRUE(positions.is_ok()) << positions.status().to_string();
            std::lock_guard lock(ledger.mutex);
            for (const Position& position : *positions) {
              auto& known = ledger.acked[id];
              auto [it, inserted] = known.emplace(position.stream, Stored{position.partition, position.offset});
              if (!inserted) {
                EXPECT_TRUE(position.duplicate) << id;
                EXPECT_TRUE(it->second == (Stored{position.partition, position.offset})) << id;
              }
            }
          }
        }
        check_everything(*store, ledger, figures, "final");
        return;
      }
      std::atomic<bool> crashed{false};
      std::atomic<int> violations{0};
      std::vector<std::thread> threads;
      for (int publisher = 0; publisher < publishers; ++publisher) {
        threads.emplace_back([&, publisher] {
          publish_until_crash(*store, ledger, publisher, seed, cycle, own_ids[publisher], crashed, violations);
        });
      }
      std::this_thread::sleep_for(std::chrono::microseconds(2000 + random() % 20000));
      crashed = true;
      if (random() % 4 == 0) {
        process->process_crash();
      } else {
        process->power_loss(seed * 10 + static_cast<std::uint64_t>(cycle));
      }
      for (auto& thread : threads) thread.join();
      figures.other_violations += static_cast<std::uint64_t>(violations.load());
      store.reset();  // the process is gone
    }
  });
  figures.print();
  EXPECT_EQ(figures.lost, 0u);
  EXPECT_EQ(figures.duplicates, 0u);
  EXPECT_EQ(figures.unexpected, 0u);
  EXPECT_EQ(figures.inconsistent, 0u);
  EXPECT_EQ(figures.other_violations, 0u);
}

}  // namespace
}  // namespace msgstore::crash
