// LiveReader: positions, replay then live, filters, chunk bounds, resume, retention skips and
// waking on publish. Each test runs coroutines on a real io_context over a real Store.
#include "broker/live_reader.h"

#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "broker/coroutine_test_support.h"
#include "support/temporary_directory.h"

namespace msgstore::broker {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(LivePositionTest, FormatsAndParsesEveryPartition) {
  const std::map<std::uint32_t, Offset> cursors{{0, 16}, {1, 7}, {2, 0}};
  EXPECT_EQ(format_position_text(cursors), "0:16,1:7,2:0");
  auto parsed = parse_position_text("0:16,1:7,2:0");
  ASSERT_TRUE(parsed.is_ok());
  EXPECT_EQ(*parsed, cursors);
  for (const char* bad : {"", "0", "0:", ":1", "0:1,", "0:1,,1:2", "a:1", "0:x", "0:1,0:2", "0:-1", "1024:0", "0:1 "}) {
    EXPECT_EQ(parse_position_text(bad).status().code(), ErrorCode::invalid_argument) << bad;
  }
}

class LiveReaderTest : public ::testing::Test {
 protected:
  LiveReaderTest() {
    StoreOptions options;
    options.background_maintenance = false;
    store_ = Store::open(directory_.path() / "data", options).value();
    EXPECT_TRUE(store_->create_stream({.name = "orders", .subjects = {"orders.>"}, .partitions = 2}).is_ok());
    broker_ = std::make_unique<Broker>(*store_, BrokerOptions{.worker_threads = 2, .worker_queue_max = 64});
  }
  ~LiveReaderTest() override {
    broker_.reset();
    EXPECT_TRUE(store_->close().is_ok());
  }

  template <typename T>
  T run(asio::awaitable<T> coroutine) {
    return testing::run_to_completion(std::move(coroutine));
  }

  // No key: partitions are chosen round robin, so consecutive publishes alternate.
  void publish(std::string_view subject, std::string_view payload) {
    OutgoingMessage message{.subject = subject, .payload = payload};
    auto positions = store_->publish_to("orders", std::span<const OutgoingMessage>(&message, 1));
    ASSERT_TRUE(positions.is_ok()) << positions.status().to_string();
  }

  std::unique_ptr<LiveReader> open(LiveReaderOptions options) {
    auto reader = run(LiveReader::open(*broker_, std::move(options)));
    EXPECT_TRUE(reader.is_ok()) << reader.status().to_string();
    return reader.is_ok() ? std::move(*reader) : nullptr;
  }

  // Every message until `count` arrived or nothing came for 200 ms.
  std::vector<LiveMessage> drain(LiveReader& reader, std::size_t count, std::size_t chunk_messages = 1000) {
    std::vector<LiveMessage> all;
    while (all.size() < count) {
      auto chunk = run(reader.next_chunk(chunk_messages, 1 << 20, Clock::now() + 200ms));
      EXPECT_TRUE(chunk.is_ok()) << chunk.status().to_string();
      if (!chunk.is_ok() || chunk->messages.empty()) break;
      EXPECT_LE(chunk->messages.size(), chunk_messages);
      for (auto& message : chunk->messages) all.push_back(std::move(message));
    }
    return all;
  }

  msgstore::testing::TemporaryDirectory directory_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Broker> broker_;
};

TEST_F(LiveReaderTest, ReplaysThenFollowsWithoutGapOrDuplicate) {
  for (int index = 0; index < 30; ++index) publish("orders.created", "history " + std::to_string(index));
  auto reader = open({.stream = "orders", .start = StartPosition::from_beginning()});
  ASSERT_NE(reader, nullptr);
  auto replayed = drain(*reader, 30, 7);
  ASSERT_EQ(replayed.size(), 30u);
  // Live: a publisher on another thread; the reader waits on the broker's wake-ups.
  std::thread producer([this] {
    for (int index = 0; index < 20; ++index) {
      publish("orders.created", "live " + std::to_string(index));
      std::this_thread::sleep_for(2ms);
    }
  });
  auto live = drain(*reader, 20);
  producer.join();
  ASSERT_EQ(live.size(), 20u);
  std::map<std::uint32_t, std::vector<Offset>> offsets;
  for (const auto* part : {&replayed, &live}) {
    for (const LiveMessage& message : *part) offsets[message.partition].push_back(message.message.offset);
  }
  for (const auto& [partition, list] : offsets) {
    for (std::size_t index = 0; index < list.size(); ++index) EXPECT_EQ(list[index], index) << "partition " << partition;
  }
  EXPECT_EQ(offsets[0].size() + offsets[1].size(), 50u);
  EXPECT_EQ(reader->position_text(),
            "0:" + std::to_string(offsets[0].size()) + ",1:" + std::to_string(offsets[1].size()));
}

TEST_F(LiveReaderTest, WaitsUntilTheDeadlineThenReturnsEmpty) {
  auto reader = open({.stream = "orders"});
  ASSERT_NE(reader, nullptr);
  const auto started = Clock::now();
  auto chunk = run(reader->next_chunk(10, 1 << 20, Clock::now() + 150ms));
  ASSERT_TRUE(chunk.is_ok());
  EXPECT_TRUE(chunk->messages.empty());
  EXPECT_GE(Clock::now() - started, 140ms);
}

TEST_F(LiveReaderTest, FiltersBySubjectAndResumesFromAPosition) {
  publish("orders.eu.created", "a");
  publish("orders.us.created", "b");
  publish("orders.eu.paid", "c");
  publish("orders.eu.created", "d");
  auto filtered = open({.stream = "orders", .subject_pattern = "orders.eu.*", .start = StartPosition::from_beginning()});
  ASSERT_NE(filtered, nullptr);
  auto matching = drain(*filtered, 3);
  ASSERT_EQ(matching.size(), 3u);
  for (const LiveMessage& message : matching) EXPECT_NE(message.message.subject, "orders.us.created");

  auto first = open({.stream = "orders", .start = StartPosition::from_beginning()});
  ASSERT_NE(first, nullptr);
  auto one = run(first->next_chunk(1, 1 << 20, Clock::now() + 100ms));
  ASSERT_TRUE(one.is_ok());
  ASSERT_EQ(one->messages.size(), 1u);
  const std::string position = first->position_after(one->messages[0]);
  auto resumed = open({.stream = "orders", .resume = parse_position_text(position).value()});
  ASSERT_NE(resumed, nullptr);
  auto rest = drain(*resumed, 3);
  ASSERT_EQ(rest.size(), 3u);
  for (const LiveMessage& message : rest) {
    EXPECT_FALSE(message.partition == one->messages[0].partition && message.message.offset == one->messages[0].message.offset);
  }
}

TEST_F(LiveReaderTest, OnePartitionAndBadStarts) {
  publish("orders.a", "x");
  publish("orders.a", "y");
  auto single = open({.stream = "orders", .partition = 1, .start = StartPosition::from_beginning()});
  ASSERT_NE(single, nullptr);
  auto messages = drain(*single, 2);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].partition, 1u);
  EXPECT_EQ(single->position_text(), "1:1");

  EXPECT_EQ(run(LiveReader::open(*broker_, {.stream = "missing"})).status().code(), ErrorCode::stream_not_found);
  EXPECT_EQ(run(LiveReader::open(*broker_, {.stream = "orders", .partition = 2})).status().code(), ErrorCode::invalid_argument);
  EXPECT_EQ(run(LiveReader::open(*broker_, {.stream = "orders", .subject_pattern = "a..b"})).status().code(),
            ErrorCode::invalid_argument);
  EXPECT_EQ(run(LiveReader::open(*broker_, {.stream = "orders", .start = StartPosition::from_offset(5)})).status().code(),
            ErrorCode::offset_out_of_range);
  EXPECT_EQ(run(LiveReader::open(*broker_, {.stream = "orders", .resume = std::map<std::uint32_t, Offset>{{3, 0}}}))
                .status()
                .code(),
            ErrorCode::invalid_argument);
}

TEST_F(LiveReaderTest, EncodesOnTheWorkerWhenAskedTo) {
  publish("orders.a", "x");
  publish("orders.b", "y");
  LiveReaderOptions options{.stream = "orders", .start = StartPosition::from_beginning()};
  options.encode = [](std::string& out, std::uint32_t partition, const MessageView& message) {
    out += std::to_string(partition) + "/" + std::to_string(message.offset) + "/" + std::string(message.payload);
  };
  auto reader = open(std::move(options));
  ASSERT_NE(reader, nullptr);
  std::vector<LiveMessage> messages;
  std::set<std::string> payloads;
  while (messages.size() < 2) {
    auto chunk = run(reader->next_chunk(10, 1 << 20, Clock::now() + 200ms));
    ASSERT_TRUE(chunk.is_ok()) << chunk.status().to_string();
    ASSERT_FALSE(chunk->messages.empty());
    std::string joined;
    for (const LiveMessage& message : chunk->messages) {
      const std::string_view encoded = chunk->encoded_text(message);
      ASSERT_FALSE(encoded.empty());
      const std::string payload(encoded.substr(encoded.size() - 1));
      payloads.insert(payload);
      EXPECT_EQ(encoded, std::to_string(message.partition) + "/0/" + payload);  // partitions start round robin anywhere
      EXPECT_TRUE(message.message.payload.empty());
      EXPECT_EQ(message.offset, 0u);
      joined += encoded;
      messages.push_back(message);
    }
    EXPECT_EQ(chunk->encoded, joined);  // the messages' bytes back to back, nothing else
  }
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(payloads, (std::set<std::string>{"x", "y"}));
  EXPECT_NE(messages[0].partition, messages[1].partition);
}

TEST_F(LiveReaderTest, ADeletedStreamEndsTheFollowerWithAnError) {
  auto reader = open({.stream = "orders"});
  ASSERT_NE(reader, nullptr);
  ASSERT_TRUE(store_->delete_stream("orders").is_ok());
  auto chunk = run(reader->next_chunk(10, 1 << 20, Clock::now() + 100ms));
  EXPECT_EQ(chunk.status().code(), ErrorCode::stream_not_found);
}

}  // namespace
}  // namespace msgstore::broker
