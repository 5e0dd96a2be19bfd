// Tests of the publish policies (src/store/store.cc, "Policies" in docs/ARCHITECTURE.md):
// conditional append on the partition's last offset, duplicate suppression by message id, and
// per-message time to live. Concurrency tests read everything back: nothing lost, nothing twice.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/hash.h"
#include "io/fault_file_system.h"
#include "msgstore/store.h"
#include "support/temporary_directory.h"

namespace msgstore {
namespace {

using testing::TemporaryDirectory;

StreamConfig stream_config(std::string name, std::vector<std::string> subjects, std::uint32_t partitions = 1) {
  StreamConfig config;
  config.name = std::move(name);
  config.subjects = std::move(subjects);
  config.partitions = partitions;
  return config;
}

OutgoingMessage message(std::string_view subject, std::string_view payload) {
  OutgoingMessage result;
  result.subject = subject;
  result.payload = payload;
  return result;
}

OutgoingMessage expecting(std::string_view subject, std::string_view payload, Offset expected_offset) {
  OutgoingMessage result = message(subject, payload);
  result.expected_offset = expected_offset;
  return result;
}

std::unique_ptr<Store> open_store(const std::filesystem::path& directory, StoreOptions options = {}) {
  options.background_maintenance = false;
  auto store = Store::open(directory, std::move(options));
  EXPECT_TRUE(store.is_ok()) << store.status().to_string();
  if (!store) return nullptr;
  return std::move(*store);
}

// Every readable message of one partition, from the log start to the high watermark.
std::vector<Message> read_all(const Store& store, std::string_view stream, std::uint32_t partition) {
  std::vector<Message> all;
  auto start = store.resolve_start(stream, partition, StartPosition::from_beginning());
  if (!start) {
    ADD_FAILURE() << start.status().to_string();
    return all;
  }
  Offset next = *start;
  while (true) {
    auto result = store.read(stream, partition, next, ReadOptions{.max_messages = 500});
    if (!result) {
      ADD_FAILURE() << "read " << stream << "/" << partition << " at " << next << ": " << result.status().to_string();
      break;
    }
    for (Message& read : result->messages) all.push_back(std::move(read));
    if (result->next_offset >= result->high_watermark) break;
    if (result->next_offset == next) {
      ADD_FAILURE() << "read made no progress at " << next;
      break;
    }
    next = result->next_offset;
  }
  return all;
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

}  // namespace
}  // namespace msgstore
