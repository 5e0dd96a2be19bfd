// Store::publish_async: the same answers as publish, given only once the stream's fsync policy
// is met, from many threads at once; duplicates, errors and close.
#include <gtest/gtest.h>

#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "io/fault_file_system.h"
#include "msgstore/store.h"

namespace msgstore {
namespace {

using Positions = Result<std::vector<Position>>;

StreamConfig stream_config(std::string name, std::vector<std::string> subjects, std::uint32_t partitions, FsyncPolicy fsync) {
  StreamConfig config;
  config.name = std::move(name);
  config.subjects = std::move(subjects);
  config.partitions = partitions;
  config.fsync = fsync;
  config.segment_bytes = limits::segment_bytes_min;  // rolls while publishing
  return config;
}

std::unique_ptr<Store> open_store(std::shared_ptr<FaultFileSystem> file_system) {
  StoreOptions options;
  options.file_system = std::move(file_system);
  options.background_maintenance = false;
  auto store = Store::open("/store", std::move(options));
  EXPECT_TRUE(store.is_ok()) << store.status().to_string();
  if (!store) return nullptr;
  return std::move(*store);
}

// Publishes and waits for the answer (which may come inline or from a sync thread).
Positions publish_and_wait(Store& store, std::span<const OutgoingMessage> messages, std::string_view stream = {}) {
  std::promise<Positions> answer;
  auto future = answer.get_future();
  store.publish_async(messages, stream, [&answer](Positions positions) { answer.set_value(std::move(positions)); });
  return future.get();
}

TEST(PublishAsync, ConcurrentPublishersGetDurablePositionsThatSurvivePowerLoss) {
  auto file_system = std::make_shared<FaultFileSystem>();
  auto store = open_store(file_system);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_stream(stream_config("durable", {"ev.>"}, 4, FsyncPolicy::always)).is_ok());
  ASSERT_TRUE(store->create_stream(stream_config("lazy", {"ev.lazy"}, 1, FsyncPolicy::never)).is_ok());

  constexpr int publishers = 8;
  constexpr int publishes_each = 60;
  std::mutex mutex;
  std::map<std::pair<std::uint32_t, Offset>, std::string> acknowledged;  // durable stream only
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < publishers; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < publishes_each; ++i) {
        std::vector<std::string> payloads;
        std::vector<std::string> keys;
        const int count = 1 + (i % 3);
        for (int j = 0; j < count; ++j) {
          payloads.push_back("t" + std::to_string(t) + "i" + std::to_string(i) + "j" + std::to_string(j));
          keys.push_back("k" + std::to_string((t + j) % 5));
        }
        std::vector<OutgoingMessage> batch(count);
        for (int j = 0; j < count; ++j) {
          batch[j].subject = (i + j) % 2 ? "ev.lazy" : "ev.other";
          batch[j].key = keys[j];
          batch[j].payload = payloads[j];
        }
        auto positions = publish_and_wait(*store, batch);
        if (!positions) {
          failures.fetch_add(1);
          ADD_FAILURE() << positions.status().to_string();
          continue;
        }
        std::lock_guard lock(mutex);
        for (const Position& position : *positions) {
          if (position.stream != "durable") continue;
          EXPECT_FALSE(position.duplicate);
          EXPECT_TRUE(acknowledged.emplace(std::make_pair(position.partition, position.offset), payloads[position.message_index]).second);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_EQ(failures.load(), 0);
  ASSERT_EQ(acknowledged.size(), static_cast<std::size_t>(publishers * (publishes_each / 3) * (1 + 2 + 3)));

  // Power loss without a close: only what was synced survives, and every acknowledged message
  // of the fsync=always stream was synced before its answer.
  file_system->simulate_power_loss(11, PowerLossMode::drop_all_unsynced);
  store.reset();
  auto reopened = open_store(file_system);
  ASSERT_NE(reopened, nullptr);
  std::map<std::pair<std::uint32_t, Offset>, std::string> found;
  for (std::uint32_t partition = 0; partition < 4; ++partition) {
    auto read = reopened->read("durable", partition, 0, ReadOptions{.max_messages = 100000});
    ASSERT_TRUE(read.is_ok()) << read.status().to_string();
    for (const Message& message : read->messages) found.emplace(std::make_pair(partition, message.offset), message.payload);
  }
  for (const auto& [where, payload] : acknowledged) {
    auto hit = found.find(where);
    ASSERT_NE(hit, found.end()) << "acknowledged message lost: partition " << where.first << " offset " << where.second;
    EXPECT_EQ(hit->second, payload);
  }
}

TEST(PublishAsync, DuplicateAnswersWithTheOriginalOnceItIsDurable) {
  auto file_system = std::make_shared<FaultFileSystem>();
  auto store = open_store(file_system);
  ASSERT_NE(store, nullptr);
  StreamConfig config = stream_config("orders", {"orders.>"}, 1, FsyncPolicy::always);
  config.dedup_window_ms = 60'000;
  ASSERT_TRUE(store->create_stream(config).is_ok());
  OutgoingMessage message;
  message.subject = "orders.created";
  message.payload = "first";
  message.message_id = "id-1";
  auto first = publish_and_wait(*store, std::span(&message, 1));
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  ASSERT_EQ(first->size(), 1u);
  EXPECT_FALSE(first->front().duplicate);
  message.payload = "second";
  auto second = publish_and_wait(*store, std::span(&message, 1));
  ASSERT_TRUE(second.is_ok()) << second.status().to_string();
  ASSERT_EQ(second->size(), 1u);
  EXPECT_TRUE(second->front().duplicate);
  EXPECT_EQ(second->front().offset, first->front().offset);
  auto read = store->read("orders", 0, 0);
  ASSERT_TRUE(read.is_ok());
  ASSERT_EQ(read->messages.size(), 1u);
  EXPECT_EQ(read->messages.front().payload, "first");
}

TEST(PublishAsync, ErrorsAnswerInlineAndStoreNothing) {
  auto file_system = std::make_shared<FaultFileSystem>();
  auto store = open_store(file_system);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_stream(stream_config("orders", {"orders.>"}, 1, FsyncPolicy::always)).is_ok());
  OutgoingMessage message;
  message.subject = "payments.done";
  message.payload = "x";
  bool answered = false;
  store->publish_async(std::span(&message, 1), {}, [&](Positions positions) {
    answered = true;
    EXPECT_EQ(positions.status().code(), ErrorCode::no_matching_stream);
  });
  EXPECT_TRUE(answered);  // inline: nothing to wait for
  answered = false;
  store->publish_async(std::span(&message, 1), "missing", [&](Positions positions) {
    answered = true;
    EXPECT_EQ(positions.status().code(), ErrorCode::stream_not_found);
  });
  EXPECT_TRUE(answered);
  auto described = store->describe_stream("orders");
  ASSERT_TRUE(described.is_ok());
  EXPECT_EQ(described->partitions.at(0).next_offset, 0u);
}

TEST(PublishAsync, FailedSyncIsAnErrorNotAnAcknowledgement) {
  auto file_system = std::make_shared<FaultFileSystem>();
  auto store = open_store(file_system);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_stream(stream_config("orders", {"orders.>"}, 1, FsyncPolicy::always)).is_ok());
  OutgoingMessage message;
  message.subject = "orders.created";
  message.payload = "x";
  file_system->fail_after(FaultFileSystem::Operation::sync, 1);
  auto positions = publish_and_wait(*store, std::span(&message, 1));
  EXPECT_EQ(positions.status().code(), ErrorCode::log_failed) << positions.status().to_string();
  auto read = store->read("orders", 0, 0);
  ASSERT_TRUE(read.is_ok());
  EXPECT_TRUE(read->messages.empty());  // never acknowledged, never readable
}

TEST(PublishAsync, CloseAnswersEveryPublishStillWaiting) {
  auto file_system = std::make_shared<FaultFileSystem>();
  auto store = open_store(file_system);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_stream(stream_config("orders", {"orders.>"}, 2, FsyncPolicy::always)).is_ok());
  std::atomic<int> answered{0};
  std::atomic<int> succeeded{0};
  std::vector<std::string> payloads(200);
  std::vector<OutgoingMessage> messages(200);
  for (int i = 0; i < 200; ++i) {
    payloads[i] = "m" + std::to_string(i);
    messages[i].subject = "orders.created";
    messages[i].payload = payloads[i];
    store->publish_async(std::span(&messages[i], 1), {}, [&](Positions positions) {
      if (positions.is_ok()) succeeded.fetch_add(1);
      answered.fetch_add(1);
    });
  }
  ASSERT_TRUE(store->close().is_ok());
  EXPECT_EQ(answered.load(), 200);  // close synced and answered the rest before returning
  EXPECT_EQ(succeeded.load(), 200);
}

}  // namespace
}  // namespace msgstore
