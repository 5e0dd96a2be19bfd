// Conditional append per key (OutgoingMessage::expected_key_offset), served by the key index:
// single-threaded rules, restarts, and 16 concurrent publishers racing on a few keys (nothing
// lost, nothing duplicated, exactly one winner per expected version).
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "io/fault_file_system.h"
#include "msgstore/store.h"

namespace msgstore {
namespace {

class ConditionalAppendTest : public testing::Test {
 protected:
  void SetUp() override {
    file_system_ = std::make_shared<FaultFileSystem>();
    open();
    StreamConfig config;
    config.name = "events";
    config.subjects = {"events.>"};
    config.partitions = 2;
    config.segment_bytes = 4096;  // many seals: sealed and active indexes both answer
    ASSERT_TRUE(store_->create_stream(config).is_ok());
  }
  void open() {
    StoreOptions options;
    options.file_system = file_system_;
    options.background_maintenance = false;
    store_ = std::move(Store::open("/data", options).value());
  }
  Result<std::vector<Position>> append(std::string_view key, std::optional<Offset> expected, std::string_view payload = "e") {
    OutgoingMessage message;
    message.subject = "events.happened";
    message.key = key;
    message.payload = payload;
    message.expected_key_offset = expected;
    return store_->publish(message);
  }

  std::shared_ptr<FaultFileSystem> file_system_;
  std::unique_ptr<Store> store_;
};

TEST_F(ConditionalAppendTest, ChecksTheKeysLastOffset) {
  auto first = append("order-1", expected_offset_empty);
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  const Offset first_offset = first->at(0).offset;
  // Other keys in the same partition move the partition, not this key.
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(append("other-" + std::to_string(i), std::nullopt).is_ok());
  auto stale = append("order-1", expected_offset_empty);
  ASSERT_FALSE(stale.is_ok());
  EXPECT_EQ(stale.status().code(), ErrorCode::expected_offset_mismatch);
  ASSERT_TRUE(stale.status().actual_offset().has_value());
  EXPECT_EQ(*stale.status().actual_offset(), first_offset);
  auto second = append("order-1", first_offset);
  ASSERT_TRUE(second.is_ok()) << second.status().to_string();
  // An absent key reports expected_offset_empty.
  auto absent = append("never-seen", 5);
  ASSERT_FALSE(absent.is_ok());
  EXPECT_EQ(absent.status().actual_offset(), std::optional<std::uint64_t>(expected_offset_empty));
  // After a restart the active segment is re-indexed from the log.
  ASSERT_TRUE(store_->close().is_ok());
  store_.reset();
  open();
  auto after_restart = append("order-1", first_offset);
  ASSERT_FALSE(after_restart.is_ok());
  EXPECT_EQ(*after_restart.status().actual_offset(), second->at(0).offset);
  EXPECT_TRUE(append("order-1", second->at(0).offset).is_ok());
}

TEST_F(ConditionalAppendTest, BatchesSeeTheirOwnEarlierMessages) {
  auto first = append("agg", expected_offset_empty);
  ASSERT_TRUE(first.is_ok());
  const Offset base = first->at(0).offset;
  std::vector<OutgoingMessage> batch(3);
  for (auto& message : batch) {
    message.subject = "events.happened";
    message.key = "agg";
  }
  batch[0].expected_key_offset = base;
  batch[1].expected_key_offset = base + 1;
  batch[2].expected_key_offset = base + 2;
  auto appended = store_->publish_batch(batch);
  ASSERT_TRUE(appended.is_ok()) << appended.status().to_string();
  batch[0].expected_key_offset = base + 3;
  batch[1].expected_key_offset = base + 3;  // wrong: message 0 of this batch comes between
  auto refused = store_->publish_batch(batch);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(*refused.status().actual_offset(), base + 4);
  Query query;
  query.stream = "events";
  query.key = "agg";
  std::size_t count = 0;
  ASSERT_TRUE(store_->query(query, [&](const QueryMatch&) {
    ++count;
    return ScanControl::proceed;
  }).is_ok());
  EXPECT_EQ(count, 4u) << "the refused batch stored nothing";
}

TEST_F(ConditionalAppendTest, NeedsAKeyAndIndexes) {
  OutgoingMessage message;
  message.subject = "events.happened";
  message.expected_key_offset = 1;
  auto refused = store_->publish(message);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::invalid_argument);
  StreamConfig config = store_->describe_stream("events")->config;
  config.indexes_enabled = false;
  ASSERT_TRUE(store_->update_stream(config).is_ok());
  refused = append("k", expected_offset_empty);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::invalid_argument);
}

TEST_F(ConditionalAppendTest, SixteenPublishersOneWinnerPerVersion) {
  constexpr int publishers = 16;
  constexpr int keys = 4;
  constexpr int wins_per_publisher = 25;
  std::atomic<std::uint64_t> mismatches{0};
  std::mutex acks_mutex;
  std::map<std::pair<std::uint32_t, Offset>, std::string> acks;  // (partition, offset) -> payload
  std::vector<std::thread> threads;
  for (int publisher = 0; publisher < publishers; ++publisher) {
    threads.emplace_back([&, publisher] {
      std::map<std::string, Offset> believed;  // key -> last offset this publisher believes
      int wins = 0;
      int attempt = 0;
      while (wins < wins_per_publisher) {
        const std::string key = "aggregate-" + std::to_string((publisher + attempt++) % keys);
        const Offset expected = believed.count(key) ? believed[key] : expected_offset_empty;
        const std::string payload = key + " p" + std::to_string(publisher) + " after " +
                                    (expected == expected_offset_empty ? std::string("none") : std::to_string(expected));
        auto result = append(key, expected, payload);
        if (result.is_ok()) {
          ++wins;
          believed[key] = result->at(0).offset;
          std::lock_guard lock(acks_mutex);
          EXPECT_TRUE(acks.emplace(std::make_pair(result->at(0).partition, result->at(0).offset), payload).second);
        } else {
          ASSERT_EQ(result.status().code(), ErrorCode::expected_offset_mismatch) << result.status().to_string();
          ++mismatches;
          believed[key] = *result.status().actual_offset();
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_GT(mismatches.load(), 0u) << "the publishers did race";
  // Every ack is in the log with its payload; nothing else is; per key, each message names the
  // offset of the one before it (one winner per expected version, no gaps in the chain).
  std::size_t stored = 0;
  std::map<std::string, Offset> last_by_key;
  for (std::uint32_t partition = 0; partition < 2; ++partition) {
    Offset from = 0;
    while (true) {
      auto read = store_->read("events", partition, from);
      ASSERT_TRUE(read.is_ok());
      if (read->messages.empty()) break;
      for (const Message& message : read->messages) {
        ++stored;
        auto ack = acks.find({partition, message.offset});
        ASSERT_NE(ack, acks.end()) << "unacknowledged message at " << message.offset;
        EXPECT_EQ(ack->second, message.payload);
        auto previous = last_by_key.find(*message.key);
        const std::string expected_suffix =
            previous == last_by_key.end() ? " after none" : " after " + std::to_string(previous->second);
        EXPECT_TRUE(message.payload.size() >= expected_suffix.size() &&
                    message.payload.compare(message.payload.size() - expected_suffix.size(), expected_suffix.size(),
                                            expected_suffix) == 0)
            << message.payload << " does not follow " << expected_suffix;
        last_by_key[*message.key] = message.offset;
      }
      from = read->next_offset;
    }
  }
  EXPECT_EQ(stored, acks.size());
  EXPECT_EQ(stored, static_cast<std::size_t>(publishers * wins_per_publisher));
}

}  // namespace
}  // namespace msgstore
