// Tests of the publish policies (src/store/store.cc, "Policies" in docs/ARCHITECTURE.md):
// conditional append on the partition's last offset, duplicate suppression by message id, and
// per-message time to live. Concurrency tests read everything back: nothing lost, nothing twice.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/hash.h"
#include "io/fault_file_system.h"
#include "log/partition_log.h"
#include "msgstore/store.h"
#include "store/dedup_table.h"
#include "store/store_test_support.h"
#include "support/temporary_directory.h"

namespace msgstore {
namespace {

using testing::TemporaryDirectory;
using testing::message;
using testing::open_store;
using testing::read_all;
using testing::stream_config;

OutgoingMessage expecting(std::string_view subject, std::string_view payload, Offset expected_offset) {
  OutgoingMessage result = message(subject, payload);
  result.expected_offset = expected_offset;
  return result;
}

std::vector<std::string> payloads_of(const std::vector<Message>& messages) {
  std::vector<std::string> result;
  for (const Message& read : messages) result.push_back(read.payload);
  return result;
}

// ---- Conditional append ---------------------------------------------------------------------
TEST(ConditionalAppend, ExpectedLastOffsetOfThePartition) {
  TemporaryDirectory directory;
  auto store = open_store(directory.path());
  ASSERT_TRUE(store->create_stream(stream_config("events", {"ev.>"})).is_ok());

  // An empty partition: only expected_offset_empty matches.
  auto wrong = store->publish(expecting("ev.a", "x", 0));
  ASSERT_FALSE(wrong.is_ok());
  EXPECT_EQ(wrong.status().code(), ErrorCode::expected_offset_mismatch);
  EXPECT_STREQ(error_code_name(wrong.status().code()), "expected_offset_mismatch");
  EXPECT_EQ(static_cast<int>(ErrorCode::expected_offset_mismatch), 25);  // a stable catalogue number
  ASSERT_TRUE(wrong.status().actual_offset().has_value());
  EXPECT_EQ(*wrong.status().actual_offset(), expected_offset_empty);

  auto first = store->publish(expecting("ev.a", "first", expected_offset_empty));
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  EXPECT_EQ((*first)[0].offset, 0u);
  auto second = store->publish(expecting("ev.a", "second", 0));
  ASSERT_TRUE(second.is_ok()) << second.status().to_string();
  EXPECT_EQ((*second)[0].offset, 1u);

  // A stale expectation fails with the actual last offset and stores nothing.
  for (Offset stale : {Offset{0}, Offset{5}, expected_offset_empty}) {
    auto failed = store->publish(expecting("ev.a", "stale", stale));
    ASSERT_FALSE(failed.is_ok());
    EXPECT_EQ(failed.status().code(), ErrorCode::expected_offset_mismatch);
    ASSERT_TRUE(failed.status().actual_offset().has_value());
    EXPECT_EQ(*failed.status().actual_offset(), 1u);
  }
  EXPECT_EQ(payloads_of(read_all(*store, "events", 0)), (std::vector<std::string>{"first", "second"}));

  // Unconditional publishes still work and move the last offset.
  ASSERT_TRUE(store->publish(message("ev.a", "free")).is_ok());
  EXPECT_TRUE(store->publish(expecting("ev.a", "third", 2)).is_ok());
  // Other errors carry no offset detail.
  auto unrouted = store->publish(message("nowhere", "x"));
  EXPECT_FALSE(unrouted.status().actual_offset().has_value());
}

TEST(ConditionalAppend, BatchesAreAllOrNothingAndChecksAreSequential) {
  TemporaryDirectory directory;
  auto store = open_store(directory.path());
  ASSERT_TRUE(store->create_stream(stream_config("events", {"ev.>"})).is_ok());
  ASSERT_TRUE(store->publish(message("ev.a", "zero")).is_ok());

  // Message k expects the offset just before it: 0, then 1, then 2.
  std::vector<OutgoingMessage> good = {expecting("ev.a", "one", 0), expecting("ev.a", "two", 1), message("ev.a", "three"),
                                       expecting("ev.a", "four", 3)};
  auto positions = store->publish_batch(good);
  ASSERT_TRUE(positions.is_ok()) << positions.status().to_string();
  ASSERT_EQ(positions->size(), 4u);
  EXPECT_EQ((*positions)[3].offset, 4u);

  // One wrong expectation anywhere in the batch: nothing of it is stored.
  std::vector<OutgoingMessage> bad = {expecting("ev.a", "five", 4), expecting("ev.a", "six", 4)};
  auto failed = store->publish_batch(bad);
  ASSERT_FALSE(failed.is_ok());
  EXPECT_EQ(failed.status().code(), ErrorCode::expected_offset_mismatch);
  EXPECT_EQ(*failed.status().actual_offset(), 4u);  // the partition's last offset, not the batch's
  EXPECT_NE(failed.status().message().find("message 1"), std::string::npos) << failed.status().message();
  EXPECT_EQ(read_all(*store, "events", 0).size(), 5u);
}

TEST(ConditionalAppend, NeedsAKnownSinglePartition) {
  TemporaryDirectory directory;
  auto store = open_store(directory.path());
  ASSERT_TRUE(store->create_stream(stream_config("wide", {"wide.>"}, 4)).is_ok());
  ASSERT_TRUE(store->create_stream(stream_config("narrow", {"narrow.>"})).is_ok());
  ASSERT_TRUE(store->create_stream(stream_config("copy", {"narrow.copied"})).is_ok());

  // No key on a multi-partition stream: the partition is not known in advance.
  auto keyless = store->publish(expecting("wide.a", "x", expected_offset_empty));
  EXPECT_EQ(keyless.status().code(), ErrorCode::invalid_argument);
  // With a key the partition is murmur2(key) % 4.
  OutgoingMessage keyed = expecting("wide.a", "x", expected_offset_empty);
  keyed.key = "order-1";
  auto with_key = store->publish(keyed);
  ASSERT_TRUE(with_key.is_ok()) << with_key.status().to_string();
  keyed.expected_offset = 0;
  EXPECT_TRUE(store->publish(keyed).is_ok());

  // A subject two streams capture is two appends, which cannot be one atomic step.
  auto two_streams = store->publish(expecting("narrow.copied", "x", expected_offset_empty));
  EXPECT_EQ(two_streams.status().code(), ErrorCode::invalid_argument);
  // A batch spread over two partitions likewise.
  std::string other_name = "order-2";
  for (int i = 3; base::partition_for_key(other_name, 4) == base::partition_for_key("order-1", 4); ++i) {
    other_name = "order-" + std::to_string(i);
  }
  OutgoingMessage other_key = message("wide.a", "y");
  other_key.key = other_name;
  keyed.expected_offset = 1;
  std::vector<OutgoingMessage> spread = {keyed, other_key};
  EXPECT_EQ(store->publish_batch(spread).status().code(), ErrorCode::invalid_argument);
  EXPECT_EQ(read_all(*store, "wide", base::partition_for_key(other_name, 4)).size(), 0u);
  // Nothing of the refused publishes was stored.
  EXPECT_TRUE(read_all(*store, "narrow", 0).empty());
  EXPECT_TRUE(read_all(*store, "copy", 0).empty());
  // publish_to names the stream, so a subject two streams capture is fine there.
  std::vector<OutgoingMessage> direct = {expecting("narrow.copied", "x", expected_offset_empty)};
  EXPECT_TRUE(store->publish_to("copy", direct).is_ok());
}

// N publishers expecting the same last offset: exactly one wins, the others learn the winner's
// offset from actual_offset().
TEST(ConditionalAppend, ExactlyOneOfConcurrentPublishersWins) {
  TemporaryDirectory directory;
  auto store = open_store(directory.path());
  ASSERT_TRUE(store->create_stream(stream_config("events", {"ev.>"})).is_ok());
  constexpr int publishers = 16;
  constexpr int rounds = 20;
  for (int round = 0; round < rounds; ++round) {
    const Offset expected = round == 0 ? expected_offset_empty : static_cast<Offset>(round - 1);
    std::atomic<int> winners{0};
    std::atomic<int> mismatches{0};
    std::atomic<bool> wrong_detail{false};
    std::vector<std::thread> threads;
    for (int publisher = 0; publisher < publishers; ++publisher) {
      threads.emplace_back([&, publisher] {
        const std::string payload = "r" + std::to_string(round) + "p" + std::to_string(publisher);
        auto result = store->publish(expecting("ev.a", payload, expected));
        if (result.is_ok()) {
          ++winners;
        } else if (result.status().code() == ErrorCode::expected_offset_mismatch) {
          ++mismatches;
          if (result.status().actual_offset() != std::optional<std::uint64_t>(static_cast<Offset>(round))) wrong_detail = true;
        }
      });
    }
    for (auto& thread : threads) thread.join();
    ASSERT_EQ(winners.load(), 1) << "round " << round;
    ASSERT_EQ(mismatches.load(), publishers - 1) << "round " << round;
    EXPECT_FALSE(wrong_detail.load()) << "round " << round;
  }
  EXPECT_EQ(read_all(*store, "events", 0).size(), static_cast<std::size_t>(rounds));
}

// 16 publishers each append 40 events through a read-expect-retry loop (event sourcing): every
// event is stored exactly once, and the log is a gap-free sequence of successful expectations.
TEST(ConditionalAppend, SixteenPublishersRetryingLoseNothingAndDuplicateNothing) {
  TemporaryDirectory directory;
  auto store = open_store(directory.path());
  ASSERT_TRUE(store->create_stream(stream_config("events", {"ev.>"}, 3)).is_ok());
  constexpr int publishers = 16;
  constexpr int events_each = 40;
  std::atomic<bool> failed{false};
  std::atomic<std::uint64_t> conflicts{0};
  std::vector<std::thread> threads;
  for (int publisher = 0; publisher < publishers; ++publisher) {
    threads.emplace_back([&, publisher] {
      Offset last = expected_offset_empty;
      for (int event = 0; event < events_each && !failed; ++event) {
        const std::string payload = "p" + std::to_string(publisher) + "e" + std::to_string(event);
        OutgoingMessage outgoing = expecting("ev.order", payload, last);
        outgoing.key = "order-42";  // one aggregate: one partition
        while (true) {
          auto result = store->publish(outgoing);
          if (result.is_ok()) {
            last = (*result)[0].offset;
            break;
          }
          if (result.status().code() != ErrorCode::expected_offset_mismatch || !result.status().actual_offset()) {
            failed = true;
            return;
          }
          ++conflicts;
          outgoing.expected_offset = *result.status().actual_offset();
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_FALSE(failed.load());
  EXPECT_GT(conflicts.load(), 0u);  // the test did exercise contention
  std::set<std::string> seen;
  std::size_t total = 0;
  for (std::uint32_t partition = 0; partition < 3; ++partition) {
    const auto all = read_all(*store, "events", partition);
    for (std::size_t i = 0; i < all.size(); ++i) {
      EXPECT_EQ(all[i].offset, i);
      EXPECT_TRUE(seen.insert(all[i].payload).second) << "stored twice: " << all[i].payload;
    }
    total += all.size();
  }
  EXPECT_EQ(total, static_cast<std::size_t>(publishers * events_each));
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(publishers * events_each));
}

// ---- Duplicate suppression ------------------------------------------------------------------
OutgoingMessage with_id(std::string_view subject, std::string_view payload, std::string_view id) {
  OutgoingMessage result = message(subject, payload);
  result.message_id = id;
  return result;
}

std::optional<std::string> header_of(const Message& read, std::string_view name) {
  for (const Header& header : read.headers) {
    if (header.name == name) return header.value;
  }
  return std::nullopt;
}

TEST(Dedup, ASecondPublishOfAnIdReturnsTheOriginalAndStoresNothing) {
  TemporaryDirectory directory;
  auto store = open_store(directory.path());
  ASSERT_TRUE(store->create_stream(stream_config("orders", {"orders.>"}, 3)).is_ok());
  auto first = store->publish(with_id("orders.created", "one", "id-1"));
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  ASSERT_EQ(first->size(), 1u);
  EXPECT_FALSE((*first)[0].duplicate);
  // Round robin would pick another partition; the duplicate answers with the original's.
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto again = store->publish(with_id("orders.created", "one (retry)", "id-1"));
    ASSERT_TRUE(again.is_ok()) << again.status().to_string();
    ASSERT_EQ(again->size(), 1u);
    EXPECT_TRUE((*again)[0].duplicate);
    EXPECT_EQ((*again)[0].partition, (*first)[0].partition);
    EXPECT_EQ((*again)[0].offset, (*first)[0].offset);
    EXPECT_EQ((*again)[0].stream, "orders");
  }
  // The id given as a header is the same id (names compare case-insensitively).
  const HeaderView header{"msgstore-message-id", "id-1"};
  OutgoingMessage by_header = message("orders.created", "by header");
  by_header.headers = std::span<const HeaderView>(&header, 1);
  auto via_header = store->publish(by_header);
  ASSERT_TRUE(via_header.is_ok());
  EXPECT_TRUE((*via_header)[0].duplicate);

  ASSERT_TRUE(store->publish(with_id("orders.created", "two", "id-2")).is_ok());
  std::size_t total = 0;
  for (std::uint32_t partition = 0; partition < 3; ++partition) {
    for (const Message& read : read_all(*store, "orders", partition)) {
      ++total;
      // The id is stored with the message, as the reserved header.
      EXPECT_EQ(header_of(read, message_id_header), read.payload == "one" ? "id-1" : "id-2");
    }
  }
  EXPECT_EQ(total, 2u);
}

TEST(Dedup, WindowZeroTurnsItOffAndStreamsAreIndependent) {
  TemporaryDirectory directory;
  auto store = open_store(directory.path());
  StreamConfig off = stream_config("off", {"ev.>"});
  off.dedup_window_ms = 0;
  ASSERT_TRUE(store->create_stream(off).is_ok());
  ASSERT_TRUE(store->publish(with_id("ev.a", "x", "same")).is_ok());
  auto second = store->publish(with_id("ev.a", "x", "same"));
  ASSERT_TRUE(second.is_ok());
  EXPECT_FALSE((*second)[0].duplicate);
  EXPECT_EQ(read_all(*store, "off", 0).size(), 2u);

  // A second stream capturing the subject has its own table: the id is new there.
  ASSERT_TRUE(store->create_stream(stream_config("on", {"ev.a"})).is_ok());
  auto third = store->publish(with_id("ev.a", "x", "same"));
  ASSERT_TRUE(third.is_ok());
  ASSERT_EQ(third->size(), 2u);
  for (const Position& position : *third) EXPECT_FALSE(position.duplicate) << position.stream;
  auto fourth = store->publish(with_id("ev.a", "x", "same"));
  ASSERT_TRUE(fourth.is_ok());
  ASSERT_EQ(fourth->size(), 2u);
  for (const Position& position : *fourth) {
    EXPECT_EQ(position.duplicate, position.stream == "on") << position.stream;  // "off" stores it again
  }
  EXPECT_EQ(read_all(*store, "on", 0).size(), 1u);
  EXPECT_EQ(read_all(*store, "off", 0).size(), 4u);

  // Turning it on later learns the ids already stored within the window.
  StreamConfig turned_on = off;
  turned_on.dedup_window_ms = 60'000;
  ASSERT_TRUE(store->update_stream(turned_on).is_ok());
  auto fifth = store->publish(with_id("ev.a", "x", "same"));
  ASSERT_TRUE(fifth.is_ok());
  for (const Position& position : *fifth) EXPECT_TRUE(position.duplicate) << position.stream;
  EXPECT_EQ(read_all(*store, "off", 0).size(), 4u);
}

TEST(Dedup, BatchesDropDuplicatesAndKeepTheRest) {
  TemporaryDirectory directory;
  auto store = open_store(directory.path());
  ASSERT_TRUE(store->create_stream(stream_config("orders", {"orders.>"})).is_ok());
  ASSERT_TRUE(store->publish(with_id("orders.a", "old", "a")).is_ok());  // offset 0
  std::vector<OutgoingMessage> batch = {with_id("orders.a", "b1", "b"), with_id("orders.a", "a again", "a"),
                                        message("orders.a", "no id"), with_id("orders.a", "b2", "b"),
                                        with_id("orders.a", "c", "c")};
  auto positions = store->publish_batch(batch);
  ASSERT_TRUE(positions.is_ok()) << positions.status().to_string();
  ASSERT_EQ(positions->size(), 5u);
  std::map<std::uint32_t, Position> by_index;
  for (const Position& position : *positions) by_index[position.message_index] = position;
  EXPECT_FALSE(by_index[0].duplicate);
  EXPECT_TRUE(by_index[1].duplicate);
  EXPECT_EQ(by_index[1].offset, 0u);  // the earlier publish
  EXPECT_FALSE(by_index[2].duplicate);
  EXPECT_TRUE(by_index[3].duplicate);  // an earlier message of the same batch
  EXPECT_EQ(by_index[3].offset, by_index[0].offset);
  EXPECT_FALSE(by_index[4].duplicate);
  // Stored in batch order, duplicates left out.
  EXPECT_EQ(payloads_of(read_all(*store, "orders", 0)), (std::vector<std::string>{"old", "b1", "no id", "c"}));
}

TEST(Dedup, AFailedPublishLeavesTheIdFreeAndARetryOfAConditionalPublishIsADuplicate) {
  TemporaryDirectory directory;
  auto store = open_store(directory.path());
  ASSERT_TRUE(store->create_stream(stream_config("events", {"ev.>"})).is_ok());
  OutgoingMessage outgoing = with_id("ev.a", "first", "event-1");
  outgoing.expected_offset = 7;  // wrong: the partition is empty
  auto failed = store->publish(outgoing);
  ASSERT_EQ(failed.status().code(), ErrorCode::expected_offset_mismatch);
  outgoing.expected_offset = expected_offset_empty;
  auto stored = store->publish(outgoing);
  ASSERT_TRUE(stored.is_ok()) << stored.status().to_string();
  EXPECT_FALSE((*stored)[0].duplicate);
  // The client did not see the answer and retries the same conditional publish: the id
  // answers first, so it gets its original position instead of a mismatch.
  auto retried = store->publish(outgoing);
  ASSERT_TRUE(retried.is_ok()) << retried.status().to_string();
  EXPECT_TRUE((*retried)[0].duplicate);
  EXPECT_EQ((*retried)[0].offset, 0u);
  EXPECT_EQ(read_all(*store, "events", 0).size(), 1u);
}

TEST(Dedup, IdsExpireWithTheWindow) {
  TemporaryDirectory directory;
  auto store = open_store(directory.path());
  StreamConfig config = stream_config("orders", {"orders.>"});
  config.dedup_window_ms = 200;
  ASSERT_TRUE(store->create_stream(config).is_ok());
  ASSERT_TRUE(store->publish(with_id("orders.a", "x", "short-lived")).is_ok());
  auto inside = store->publish(with_id("orders.a", "x", "short-lived"));
  ASSERT_TRUE(inside.is_ok());
  EXPECT_TRUE((*inside)[0].duplicate);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto after = store->publish(with_id("orders.a", "x", "short-lived"));
  ASSERT_TRUE(after.is_ok());
  EXPECT_FALSE((*after)[0].duplicate);
  EXPECT_EQ((*after)[0].offset, 1u);
  EXPECT_EQ(read_all(*store, "orders", 0).size(), 2u);
}

TEST(Dedup, InvalidIdsAndWindowsAreRefused) {
  TemporaryDirectory directory;
  auto store = open_store(directory.path());
  ASSERT_TRUE(store->create_stream(stream_config("orders", {"orders.>"})).is_ok());
  EXPECT_EQ(store->publish(with_id("orders.a", "x", "")).status().code(), ErrorCode::invalid_argument);
  const std::string too_long(limits::message_id_bytes_max + 1, 'i');
  EXPECT_EQ(store->publish(with_id("orders.a", "x", too_long)).status().code(), ErrorCode::invalid_argument);
  const std::string longest(limits::message_id_bytes_max, 'i');
  EXPECT_TRUE(store->publish(with_id("orders.a", "x", longest)).is_ok());
  // The field and the header at once, or the header twice.
  const HeaderView header{message_id_header, "h"};
  OutgoingMessage both = with_id("orders.a", "x", "f");
  both.headers = std::span<const HeaderView>(&header, 1);
  EXPECT_EQ(store->publish(both).status().code(), ErrorCode::invalid_argument);
  const HeaderView twice[] = {{"Msgstore-Message-Id", "a"}, {"MSGSTORE-MESSAGE-ID", "b"}};
  OutgoingMessage doubled = message("orders.a", "x");
  doubled.headers = twice;
  EXPECT_EQ(store->publish(doubled).status().code(), ErrorCode::invalid_argument);
  // A bad message in a batch stores nothing, not even the valid ids before it.
  std::vector<OutgoingMessage> batch = {with_id("orders.a", "x", "fine"), with_id("orders.a", "x", "")};
  EXPECT_EQ(store->publish_batch(batch).status().code(), ErrorCode::invalid_argument);
  auto fine = store->publish(with_id("orders.a", "x", "fine"));
  ASSERT_TRUE(fine.is_ok());
  EXPECT_FALSE((*fine)[0].duplicate);

  StreamConfig negative = stream_config("negative", {"n"});
  negative.dedup_window_ms = -1;
  EXPECT_EQ(store->create_stream(negative).code(), ErrorCode::invalid_argument);
  StreamConfig huge = stream_config("huge", {"h"});
  huge.dedup_window_ms = limits::dedup_window_ms_max + 1;
  EXPECT_EQ(store->create_stream(huge).code(), ErrorCode::invalid_argument);
}

TEST(Dedup, TheWindowSurvivesRestartAndOnlyIdsInsideItAreRemembered) {
  TemporaryDirectory directory;
  const TimestampMs now = log::system_clock_ms();
  {
    auto store = open_store(directory.path());
    StreamConfig config = stream_config("orders", {"orders.>"}, 2);
    config.segment_bytes = limits::segment_bytes_min;  // many segments: the rebuild uses the time index
    ASSERT_TRUE(store->create_stream(config).is_ok());
    // Stored long ago (explicit timestamps): outside the 2-minute window after a restart.
    const std::string old_payload(200, 'o');
    for (int i = 0; i < 100; ++i) {
      const std::string id = "old-" + std::to_string(i);
      OutgoingMessage old = with_id("orders.a", old_payload, id);
      old.timestamp_ms = now - 3'600'000;
      ASSERT_TRUE(store->publish(old).is_ok());
    }
    for (int i = 0; i < 100; ++i) {
      const std::string id = "new-" + std::to_string(i);
      ASSERT_TRUE(store->publish(with_id("orders.a", std::string(200, 'n'), id)).is_ok());
    }
  }
  auto store = open_store(directory.path());
  ASSERT_EQ(store->describe_stream("orders")->config.dedup_window_ms, limits::dedup_window_ms_default);
  std::map<std::pair<std::uint32_t, Offset>, int> originals;
  for (std::uint32_t partition = 0; partition < 2; ++partition) {
    for (const Message& read : read_all(*store, "orders", partition)) originals[{partition, read.offset}]++;
  }
  ASSERT_EQ(originals.size(), 200u);
  for (int i = 0; i < 100; ++i) {
    const std::string id = "new-" + std::to_string(i);
    auto again = store->publish(with_id("orders.a", "retry", id));
    ASSERT_TRUE(again.is_ok());
    EXPECT_TRUE((*again)[0].duplicate) << id;
    EXPECT_TRUE(originals.count({(*again)[0].partition, (*again)[0].offset})) << id;
  }
  for (int i = 0; i < 100; ++i) {
    auto again = store->publish(with_id("orders.a", "retry", "old-" + std::to_string(i)));
    ASSERT_TRUE(again.is_ok());
    EXPECT_FALSE((*again)[0].duplicate);
  }
}

TEST(Dedup, APowerLossLetsNoAcknowledgedIdThroughTwice) {
  for (std::uint64_t seed = 0; seed < 30; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    auto file_system = std::make_shared<FaultFileSystem>();
    auto store = open_store("/store", StoreOptions{.file_system = file_system});
    ASSERT_NE(store, nullptr);
    StreamConfig config = stream_config("orders", {"orders.>"}, 2);
    config.segment_bytes = limits::segment_bytes_min;
    ASSERT_TRUE(store->create_stream(config).is_ok());
    std::map<std::string, Position> acked;
    const int count = 20 + static_cast<int>(seed % 40);
    for (int i = 0; i < count; ++i) {
      const std::string id = "id-" + std::to_string(i);
      auto positions = store->publish(with_id("orders.a", std::string(100 + i, 'p'), id));
      ASSERT_TRUE(positions.is_ok()) << positions.status().to_string();
      acked[id] = (*positions)[0];
    }
    file_system->simulate_power_loss(seed, PowerLossMode::random);
    store.reset();
    store = open_store("/store", StoreOptions{.file_system = file_system});
    ASSERT_NE(store, nullptr);
    for (const auto& [id, original] : acked) {
      auto again = store->publish(with_id("orders.a", "retry", id));
      ASSERT_TRUE(again.is_ok()) << again.status().to_string();
      EXPECT_TRUE((*again)[0].duplicate) << id;
      EXPECT_EQ((*again)[0].partition, original.partition) << id;
      EXPECT_EQ((*again)[0].offset, original.offset) << id;
    }
    std::size_t total = read_all(*store, "orders", 0).size() + read_all(*store, "orders", 1).size();
    EXPECT_EQ(total, acked.size());
  }
}

// 16 publishers publish the same 300 ids (each in its own order, singly and in batches):
// every id is stored exactly once, and every publisher was told where.
TEST(Dedup, SixteenConcurrentPublishersOfTheSameIdsStoreEachOnce) {
  TemporaryDirectory directory;
  auto store = open_store(directory.path());
  ASSERT_TRUE(store->create_stream(stream_config("orders", {"orders.>"}, 4)).is_ok());
  ASSERT_TRUE(store->create_stream(stream_config("audit", {"orders.created"})).is_ok());
  constexpr int publishers = 16;
  constexpr int ids = 300;
  std::vector<std::map<std::pair<std::string, std::string>, std::pair<std::uint32_t, Offset>>> told(publishers);
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int publisher = 0; publisher < publishers; ++publisher) {
    threads.emplace_back([&, publisher] {
      std::vector<int> order(ids);
      for (int i = 0; i < ids; ++i) order[i] = i;
      std::mt19937 random(static_cast<unsigned>(publisher));
      std::shuffle(order.begin(), order.end(), random);
      for (std::size_t n = 0; n < order.size() && !failed;) {
        const std::size_t batch_size = std::min<std::size_t>(1 + random() % 4, order.size() - n);
        std::vector<std::string> names;
        std::vector<std::string> payloads;
        for (std::size_t j = 0; j < batch_size; ++j) {
          names.push_back("id-" + std::to_string(order[n + j]));
          payloads.push_back("payload of " + names.back());
        }
        std::vector<OutgoingMessage> batch;
        for (std::size_t j = 0; j < batch_size; ++j) batch.push_back(with_id("orders.created", payloads[j], names[j]));
        auto positions = store->publish_batch(batch);
        if (!positions) {
          failed = true;
          return;
        }
        for (const Position& position : *positions) {
          told[publisher][{position.stream, names[position.message_index]}] = {position.partition, position.offset};
        }
        n += batch_size;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_FALSE(failed.load());
  for (const std::string stream : {"orders", "audit"}) {
    std::map<std::string, std::pair<std::uint32_t, Offset>> stored;
    const std::uint32_t partitions = stream == "orders" ? 4 : 1;
    for (std::uint32_t partition = 0; partition < partitions; ++partition) {
      for (const Message& read : read_all(*store, stream, partition)) {
        const auto id = header_of(read, message_id_header);
        ASSERT_TRUE(id.has_value());
        EXPECT_EQ(read.payload, "payload of " + *id);
        EXPECT_TRUE(stored.emplace(*id, std::make_pair(partition, read.offset)).second) << stream << ": stored twice: " << *id;
      }
    }
    EXPECT_EQ(stored.size(), static_cast<std::size_t>(ids)) << stream;
    for (int publisher = 0; publisher < publishers; ++publisher) {
      for (const auto& [id, where] : stored) {
        auto found = told[publisher].find({stream, id});
        ASSERT_NE(found, told[publisher].end()) << stream << " " << id;
        EXPECT_EQ(found->second, where) << "publisher " << publisher << " was told another position for " << id;
      }
    }
  }
}

// Conditional appends and message ids together, 16 publishers: each publisher appends its
// own events to one aggregate with read-expect-retry, and re-sends each event once more
// after it was stored (a lost acknowledgement). Nothing is lost, nothing stored twice.
TEST(Dedup, SixteenPublishersWithIdsAndPreconditions) {
  TemporaryDirectory directory;
  auto store = open_store(directory.path());
  ASSERT_TRUE(store->create_stream(stream_config("events", {"ev.>"})).is_ok());
  constexpr int publishers = 16;
  constexpr int events_each = 25;
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int publisher = 0; publisher < publishers; ++publisher) {
    threads.emplace_back([&, publisher] {
      Offset last = expected_offset_empty;
      for (int event = 0; event < events_each && !failed; ++event) {
        const std::string id = "p" + std::to_string(publisher) + "e" + std::to_string(event);
        OutgoingMessage outgoing = with_id("ev.a", id, id);
        outgoing.expected_offset = last;
        std::optional<Offset> stored_at;
        for (int sends = 0; sends < 2;) {
          auto result = store->publish(outgoing);
          if (result.is_ok()) {
            if (stored_at && (!(*result)[0].duplicate || (*result)[0].offset != *stored_at)) failed = true;
            stored_at = (*result)[0].offset;
            last = *stored_at;
            ++sends;
            continue;
          }
          if (result.status().code() != ErrorCode::expected_offset_mismatch || stored_at) {
            failed = true;
            return;
          }
          outgoing.expected_offset = *result.status().actual_offset();
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_FALSE(failed.load());
  const auto all = read_all(*store, "events", 0);
  std::set<std::string> seen;
  for (const Message& read : all) EXPECT_TRUE(seen.insert(read.payload).second) << read.payload;
  EXPECT_EQ(all.size(), static_cast<std::size_t>(publishers * events_each));
}

TEST(DedupTable, BoundedExpiringAndWaitsForPendingClaims) {
  store::DedupTable table(3);
  using Outcome = store::DedupTable::Outcome;
  ASSERT_EQ(table.claim("a", 1000, 100).outcome, Outcome::claimed);
  table.complete("a", {0, 7}, 1000);
  auto duplicate = table.claim("a", 1050, 100);
  EXPECT_EQ(duplicate.outcome, Outcome::duplicate);
  EXPECT_EQ(duplicate.original.offset, 7u);
  ASSERT_EQ(table.claim("b", 1060, 100).outcome, Outcome::claimed);
  table.complete("b", {1, 8}, 1060);
  ASSERT_EQ(table.claim("c", 1070, 100).outcome, Outcome::claimed);
  // Full: three ids inside the window (one still pending).
  EXPECT_EQ(table.claim("d", 1080, 100).outcome, Outcome::table_full);
  table.abandon("c");
  EXPECT_EQ(table.size(), 2u);
  // "a" leaves the window at 1100: room again, and "a" is new.
  EXPECT_EQ(table.claim("a", 1100, 100).outcome, Outcome::claimed);
  table.complete("a", {0, 9}, 1100);
  EXPECT_EQ(table.claim("a", 1150, 100).original.offset, 9u);

  // A claim of a pending id waits for its outcome: abandon lets the waiter claim it.
  ASSERT_EQ(table.claim("e", 1150, 100).outcome, Outcome::claimed);
  std::atomic<int> waiter_outcome{-1};
  std::thread waiter([&] { waiter_outcome = static_cast<int>(table.claim("e", 1150, 100).outcome); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(waiter_outcome.load(), -1);  // still waiting
  table.complete("e", {2, 3}, 1150);
  waiter.join();
  EXPECT_EQ(waiter_outcome.load(), static_cast<int>(Outcome::duplicate));

  // Recovered ids: oldest first; the newest are kept when there are too many.
  store::DedupTable recovered(2);
  recovered.insert_recovered("x", {0, 1}, 10);
  recovered.insert_recovered("y", {0, 2}, 20);
  recovered.insert_recovered("z", {0, 3}, 30);
  EXPECT_EQ(recovered.size(), 2u);
  EXPECT_EQ(recovered.claim("z", 40, 100).outcome, Outcome::duplicate);
}

// ---- Time to live ---------------------------------------------------------------------------
OutgoingMessage with_ttl(std::string_view subject, std::string_view payload, std::int64_t ttl_ms, TimestampMs timestamp_ms) {
  OutgoingMessage result = message(subject, payload);
  result.ttl_ms = ttl_ms;
  result.timestamp_ms = timestamp_ms;
  return result;
}

TEST(TimeToLive, ExpiredMessagesAreGapsOnEveryReadPath) {
  TemporaryDirectory directory;
  auto store = open_store(directory.path());
  ASSERT_TRUE(store->create_stream(stream_config("cache", {"cache.>"})).is_ok());
  const TimestampMs now = log::system_clock_ms();
  const HeaderView ttl_by_header[] = {{"other", "kept"}, {"msgstore-ttl-ms", "1000"}};
  OutgoingMessage header_expired = message("cache.a", "expired by header");
  header_expired.headers = ttl_by_header;
  header_expired.timestamp_ms = now - 5000;
  std::vector<OutgoingMessage> batch = {message("cache.a", "zero"), with_ttl("cache.a", "expired", 1000, now - 10'000),
                                        with_ttl("cache.a", "alive", 3'600'000, now), header_expired,
                                        message("cache.a", "four")};
  ASSERT_TRUE(store->publish_batch(batch).is_ok());

  // read: expired offsets are skipped, next_offset moves past them.
  auto all = store->read("cache", 0, 0);
  ASSERT_TRUE(all.is_ok());
  EXPECT_EQ(payloads_of(all->messages), (std::vector<std::string>{"zero", "alive", "four"}));
  EXPECT_EQ(all->messages[1].offset, 2u);
  EXPECT_EQ(all->messages[2].offset, 4u);
  EXPECT_EQ(all->next_offset, 5u);
  EXPECT_EQ(all->high_watermark, 5u);
  // The surviving TTL message keeps its header.
  EXPECT_EQ(header_of(all->messages[1], ttl_header), "3600000");
  // Starting on an expired offset is not an error: the read starts at the next live one.
  auto from_expired = store->read("cache", 0, 1, ReadOptions{.max_messages = 1});
  ASSERT_TRUE(from_expired.is_ok());
  ASSERT_EQ(from_expired->messages.size(), 1u);
  EXPECT_EQ(from_expired->messages[0].offset, 2u);
  EXPECT_EQ(from_expired->next_offset, 3u);
  auto only_expired = store->read("cache", 0, 3, ReadOptions{.max_messages = 1});
  ASSERT_TRUE(only_expired.is_ok());
  EXPECT_EQ(only_expired->messages[0].offset, 4u);

  // scan (zero copy).
  std::vector<Offset> scanned;
  auto next = store->scan("cache", 0, 0, 100, [&](const MessageView& view) {
    scanned.push_back(view.offset);
    return ScanControl::proceed;
  });
  ASSERT_TRUE(next.is_ok());
  EXPECT_EQ(scanned, (std::vector<Offset>{0, 2, 4}));
  EXPECT_EQ(*next, 5u);

  // Subscriptions (replay, then live).
  std::mutex mutex;
  std::vector<std::string> delivered;
  auto subscription = store->subscribe(SubscribeOptions{.start = StartPosition::from_beginning()}, [&](const Delivery& delivery) {
    std::lock_guard lock(mutex);
    delivered.emplace_back(delivery.message.payload);
  });
  ASSERT_TRUE(subscription.is_ok()) << subscription.status().to_string();
  ASSERT_TRUE(store->publish(with_ttl("cache.a", "live expired", 1, now - 1000)).is_ok());
  ASSERT_TRUE(store->publish(message("cache.a", "live")).is_ok());
  ASSERT_TRUE((*subscription)->wait_for_delivered(4, std::chrono::seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  (*subscription)->cancel();
  std::lock_guard lock(mutex);
  EXPECT_EQ(delivered, (std::vector<std::string>{"zero", "alive", "four", "live"}));
}

TEST(TimeToLive, AMessageDisappearsWhenItsTimeToLivePasses) {
  TemporaryDirectory directory;
  auto store = open_store(directory.path());
  ASSERT_TRUE(store->create_stream(stream_config("cache", {"cache.>"})).is_ok());
  OutgoingMessage short_lived = message("cache.a", "short");
  short_lived.ttl_ms = 300;
  ASSERT_TRUE(store->publish(short_lived).is_ok());
  ASSERT_TRUE(store->publish(message("cache.a", "forever")).is_ok());
  EXPECT_EQ(payloads_of(store->read("cache", 0, 0)->messages), (std::vector<std::string>{"short", "forever"}));
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(payloads_of(store->read("cache", 0, 0)->messages), (std::vector<std::string>{"forever"}));
  // Still a gap after a restart.
  store.reset();
  store = open_store(directory.path());
  auto after = store->read("cache", 0, 0);
  ASSERT_TRUE(after.is_ok());
  EXPECT_EQ(payloads_of(after->messages), (std::vector<std::string>{"forever"}));
  EXPECT_EQ(after->messages[0].offset, 1u);
}

TEST(TimeToLive, RetentionDropsSealedSegmentsWhoseMessagesAllExpired) {
  TemporaryDirectory directory;
  auto store = open_store(directory.path());
  StreamConfig config = stream_config("cache", {"cache.>"});
  config.segment_bytes = limits::segment_bytes_min;
  ASSERT_TRUE(store->create_stream(config).is_ok());
  StreamConfig plain = config;
  plain.name = "plain";
  plain.subjects = {"plain.>"};
  ASSERT_TRUE(store->create_stream(plain).is_ok());
  const TimestampMs now = log::system_clock_ms();
  const std::string payload(500, 'x');
  // 40 expired messages (several segments), then one that expires in an hour, then plain ones.
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(store->publish(with_ttl("cache.a", payload, 1000, now - 60'000)).is_ok());
  ASSERT_TRUE(store->publish(with_ttl("cache.a", payload, 3'600'000, now)).is_ok());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(store->publish(message("cache.a", payload)).is_ok());
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(store->publish(message("plain.a", payload)).is_ok());
  const StreamInfo before = *store->describe_stream("cache");
  ASSERT_GT(before.partitions[0].segments, 5u);
  ASSERT_EQ(before.partitions[0].first_offset, 0u);

  ASSERT_TRUE(store->run_maintenance().is_ok());
  const StreamInfo after = *store->describe_stream("cache");
  // Every segment of expired messages went; the one holding offset 40 (alive) stays.
  EXPECT_GT(after.partitions[0].first_offset, 0u);
  EXPECT_LE(after.partitions[0].first_offset, 40u);
  EXPECT_LT(after.partitions[0].segments, before.partitions[0].segments);
  EXPECT_LT(after.bytes, before.bytes);
  auto read = store->read("cache", 0, after.partitions[0].first_offset);
  ASSERT_TRUE(read.is_ok());
  EXPECT_EQ(read->messages.front().offset, 40u);  // the expired rest of its segment is still a gap
  EXPECT_EQ(read->messages.size(), 21u);
  // Without TTLs nothing is dropped (no retention limits are set).
  ASSERT_TRUE(store->run_maintenance().is_ok());
  EXPECT_EQ(store->describe_stream("plain")->partitions[0].first_offset, 0u);
  EXPECT_EQ(store->describe_stream("cache")->partitions[0].first_offset, after.partitions[0].first_offset);
  // Reopening keeps the new log start.
  store.reset();
  store = open_store(directory.path());
  EXPECT_EQ(store->describe_stream("cache")->partitions[0].first_offset, after.partitions[0].first_offset);
}

TEST(TimeToLive, InvalidValuesAreRefused) {
  TemporaryDirectory directory;
  auto store = open_store(directory.path());
  ASSERT_TRUE(store->create_stream(stream_config("cache", {"cache.>"})).is_ok());
  const TimestampMs now = log::system_clock_ms();
  for (std::int64_t bad : {std::int64_t{0}, std::int64_t{-5}, limits::ttl_ms_max + 1}) {
    EXPECT_EQ(store->publish(with_ttl("cache.a", "x", bad, now)).status().code(), ErrorCode::invalid_argument) << bad;
  }
  EXPECT_TRUE(store->publish(with_ttl("cache.a", "x", limits::ttl_ms_max, now)).is_ok());
  for (std::string_view bad : {"", "abc", "-5", " 5", "5 ", "0", "+5", "99999999999999999999999"}) {
    const HeaderView header{ttl_header, bad};
    OutgoingMessage outgoing = message("cache.a", "x");
    outgoing.headers = std::span<const HeaderView>(&header, 1);
    EXPECT_EQ(store->publish(outgoing).status().code(), ErrorCode::invalid_argument) << "'" << bad << "'";
  }
  const HeaderView header{ttl_header, "5000"};
  OutgoingMessage both = with_ttl("cache.a", "x", 5000, now);
  both.headers = std::span<const HeaderView>(&header, 1);
  EXPECT_EQ(both.ttl_ms, 5000);
  EXPECT_EQ(store->publish(both).status().code(), ErrorCode::invalid_argument);
  EXPECT_EQ(store->read("cache", 0, 0)->messages.size(), 1u);
}

}  // namespace
}  // namespace msgstore
