// Compaction (cleanup=compact) against a model over many seeds, and erase: unreadable at once
// through every read path, then gone from every byte of the data directory.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "base/coding.h"
#include "index/segment_index.h"
#include "io/fault_file_system.h"
#include "log/partition_log.h"
#include "msgstore/store.h"
#include "support/temporary_directory.h"

namespace msgstore {
namespace {

constexpr std::int64_t hour_ms = 3'600'000;

std::unique_ptr<Store> open_on(std::shared_ptr<FileSystem> file_system, const std::filesystem::path& directory) {
  auto store = Store::open(directory, StoreOptions{.file_system = std::move(file_system), .background_maintenance = false});
  EXPECT_TRUE(store.is_ok()) << store.status().to_string();
  return store ? std::move(*store) : nullptr;
}

// A stream capturing "<name>.>" with the smallest segments, so a few messages fill several.
StreamConfig small_stream(std::string name, std::uint32_t partitions = 1) {
  StreamConfig config;
  config.subjects = {name + ".>"};
  config.name = std::move(name);
  config.partitions = partitions;
  config.segment_bytes = limits::segment_bytes_min;
  return config;
}

// Every readable message of a stream, by (partition, offset).
std::map<std::pair<std::uint32_t, Offset>, Message> read_stream(const Store& store, std::string_view stream) {
  std::map<std::pair<std::uint32_t, Offset>, Message> all;
  auto info = store.describe_stream(stream);
  EXPECT_TRUE(info.is_ok());
  if (!info) return all;
  for (std::uint32_t partition = 0; partition < info->partitions.size(); ++partition) {
    Offset next = *store.resolve_start(stream, partition, StartPosition::from_beginning());
    while (true) {
      auto result = store.read(stream, partition, next, ReadOptions{.max_messages = 97});
      if (!result) {
        ADD_FAILURE() << result.status().to_string();
        return all;
      }
      for (Message& message : result->messages) {
        EXPECT_TRUE(all.emplace(std::make_pair(partition, message.offset), message).second) << "offset read twice";
      }
      if (result->next_offset >= result->high_watermark) break;
      EXPECT_GT(result->next_offset, next);
      next = result->next_offset;
    }
  }
  return all;
}

struct Published {
  std::uint32_t partition = 0;
  Offset offset = 0;
  std::optional<std::string> key;
  std::string payload;
  TimestampMs timestamp_ms = 0;
  bool tombstone = false;
};

// What compaction must leave: per key the latest message, unless it is a tombstone older
// than the retention; every message without a key.
std::set<std::pair<std::uint32_t, Offset>> expected_after_compaction(const std::vector<Published>& published, TimestampMs now,
                                                                     std::int64_t tombstone_retention_ms) {
  std::map<std::string, const Published*> latest;
  std::set<std::pair<std::uint32_t, Offset>> kept;
  for (const Published& message : published) {
    if (!message.key) {
      kept.emplace(message.partition, message.offset);
      continue;
    }
    latest[*message.key] = &message;  // published in offset order per key (one partition per key)
  }
  for (const auto& [key, message] : latest) {
    if (message->tombstone && message->timestamp_ms <= now - tombstone_retention_ms) continue;
    kept.emplace(message->partition, message->offset);
  }
  return kept;
}

TEST(Compaction, KeepsExactlyTheLatestPerKeyAndDropsExpiredTombstonesOverManySeeds) {
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 random(seed);
    auto disk = std::make_shared<FaultFileSystem>();
    auto store = open_on(disk, "/data");
    ASSERT_NE(store, nullptr);
    StreamConfig config = small_stream("accounts", 1 + static_cast<std::uint32_t>(seed % 3));
    config.cleanup = CleanupPolicy::compact;
    config.tombstone_retention_ms = hour_ms;
    ASSERT_TRUE(store->create_stream(config).is_ok());
    const TimestampMs now = log::system_clock_ms();
    std::vector<Published> published;
    std::map<std::pair<std::uint32_t, Offset>, std::size_t> by_position;
    const std::size_t count = 150 + random() % 250;
    const std::size_t keys = 3 + random() % 15;
    for (std::size_t i = 0; i < count; ++i) {
      Published entry;
      const auto dice = random() % 100;
      if (dice >= 10) entry.key = "key-" + std::to_string(random() % keys);
      entry.tombstone = entry.key && dice < 22;
      // Tombstones are fresh (kept) or two hours old (expired); others any time.
      entry.timestamp_ms = entry.tombstone && random() % 2 == 0 ? now - 2 * hour_ms : now - static_cast<TimestampMs>(random() % 1000);
      if (!entry.tombstone) entry.payload = "value-" + std::to_string(i) + std::string(random() % 150, 'x');
      const HeaderView tombstone_header[] = {{tombstone_header_name, "1"}};
      OutgoingMessage message;
      message.subject = "accounts.update";
      if (entry.key) message.key = std::string_view(*entry.key);
      if (entry.tombstone) message.headers = tombstone_header;
      message.payload = entry.payload;
      message.timestamp_ms = entry.timestamp_ms;
      auto positions = store->publish(message);
      ASSERT_TRUE(positions.is_ok()) << positions.status().to_string();
      entry.partition = positions->front().partition;
      entry.offset = positions->front().offset;
      by_position[{entry.partition, entry.offset}] = published.size();
      published.push_back(entry);
      if (random() % 60 == 0) {
        ASSERT_TRUE(store->run_maintenance().is_ok());
      }
    }
    const auto expected = expected_after_compaction(published, now, config.tombstone_retention_ms);
    auto check_readable = [&](bool complete) {
      const auto readable = read_stream(*store, "accounts");
      std::set<std::pair<std::uint32_t, Offset>> positions;
      for (const auto& [position, message] : readable) {
        positions.insert(position);
        auto found = by_position.find(position);
        ASSERT_NE(found, by_position.end()) << "an offset that was never published";
        const Published& original = published[found->second];
        EXPECT_EQ(message.payload, original.payload) << "offset " << position.second << " changed content";
        EXPECT_EQ(message.key, original.key);
      }
      // Never lost: what compaction must keep is always there.
      for (const auto& position : expected) EXPECT_TRUE(positions.count(position)) << "lost offset " << position.second;
      if (complete) {
        EXPECT_EQ(positions, expected);
      }
    };
    // The background share (bounded per pass) never loses what must stay...
    ASSERT_TRUE(store->run_maintenance().is_ok());
    ASSERT_NO_FATAL_FAILURE(check_readable(false));
    // ... and on demand everything is compacted, the active segments included.
    auto report = store->compact("accounts");
    ASSERT_TRUE(report.is_ok()) << report.status().to_string();
    ASSERT_NO_FATAL_FAILURE(check_readable(true));
    auto verified = store->verify();
    ASSERT_TRUE(verified.is_ok());
    EXPECT_TRUE(verified->clean()) << verified->problems.front();
    // Offsets go on where they were, and everything holds after a restart.
    ASSERT_TRUE(store->close().is_ok());
    store = open_on(disk, "/data");
    ASSERT_NE(store, nullptr);
    ASSERT_NO_FATAL_FAILURE(check_readable(true));
    auto info = store->describe_stream("accounts");
    for (const PartitionInfo& partition : info->partitions) {
      Offset published_end = 0;
      for (const Published& entry : published) {
        if (entry.partition == partition.partition) published_end = std::max(published_end, entry.offset + 1);
      }
      EXPECT_EQ(partition.next_offset, published_end);
    }
    // A second compaction has nothing left to do.
    auto again = store->compact("accounts");
    ASSERT_TRUE(again.is_ok());
    EXPECT_EQ(again->messages_removed, 0u);
  }
}

TEST(Compaction, AlsoDropsMessagesWhoseTimeToLiveHasPassed) {
  auto disk = std::make_shared<FaultFileSystem>();
  auto store = open_on(disk, "/data");
  StreamConfig config = small_stream("ttl");
  config.cleanup = CleanupPolicy::compact;
  ASSERT_TRUE(store->create_stream(config).is_ok());
  auto publish = [&](std::string_view key, std::string_view payload, std::optional<std::int64_t> ttl_ms) {
    OutgoingMessage message;
    message.subject = "ttl.a";
    message.key = key;
    message.payload = payload;
    message.ttl_ms = ttl_ms;
    ASSERT_TRUE(store->publish(message).is_ok());
  };
  publish("short-lived", "gone soon", 1);
  publish("kept", "first value", std::nullopt);
  publish("kept", "second value", std::nullopt);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto report = store->compact("ttl");
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  // The expired message and the superseded first value.
  EXPECT_EQ(report->messages_removed, 2u);
  auto remaining = read_stream(*store, "ttl");
  ASSERT_EQ(remaining.size(), 1u);
  EXPECT_EQ(remaining.begin()->second.payload, "second value");
}

TEST(Compaction, ReadersDuringCompactionAndEraseSeeConsistentAnswers) {
  auto disk = std::make_shared<FaultFileSystem>();
  auto store = open_on(disk, "/data");
  StreamConfig config = small_stream("kv");
  config.cleanup = CleanupPolicy::compact;
  ASSERT_TRUE(store->create_stream(config).is_ok());
  std::map<Offset, std::string> published;
  std::map<std::string, Offset> latest;
  for (int i = 0; i < 600; ++i) {
    const std::string key = "key-" + std::to_string(i % 10);
    const std::string payload = "value-" + std::to_string(i) + "-" + key + std::string(static_cast<std::size_t>(i % 30), 'x');
    OutgoingMessage message;
    message.subject = "kv.set";
    message.key = key;
    message.payload = payload;
    auto positions = store->publish(message);
    ASSERT_TRUE(positions.is_ok());
    published[positions->front().offset] = payload;
    latest[key] = positions->front().offset;
  }
  // Readers scan the whole partition over and over while compaction and an erase rewrite it:
  // every answer holds only published messages at their offsets, in order, once each, and
  // always the latest value of every key that was not erased.
  std::atomic<bool> stop{false};
  std::atomic<int> scans{0};
  std::atomic<bool> erase_returned{false};
  std::vector<std::thread> readers;
  for (int reader = 0; reader < 2; ++reader) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        const bool erased_before = erase_returned.load();
        Offset previous = 0;
        bool first = true;
        std::set<Offset> seen;
        auto scanned = store->scan("kv", 0, 0, 1'000'000, [&](const MessageView& message) {
          EXPECT_TRUE(first || message.offset > previous) << "out of order";
          first = false;
          previous = message.offset;
          seen.insert(message.offset);
          auto found = published.find(message.offset);
          EXPECT_TRUE(found != published.end() && found->second == message.payload) << "offset " << message.offset;
          if (erased_before) {
            EXPECT_NE(message.key, std::optional<std::string_view>("key-3"));
          }
          return ScanControl::proceed;
        });
        EXPECT_TRUE(scanned.is_ok()) << scanned.status().to_string();
        for (const auto& [key, offset] : latest) {
          if (key != "key-3") {
            EXPECT_TRUE(seen.count(offset)) << "a scan missed the latest value of " << key;
          }
        }
        ++scans;
      }
    });
  }
  while (scans.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto compacted = store->compact("kv");
  ASSERT_TRUE(compacted.is_ok()) << compacted.status().to_string();
  const int scans_during_compaction = scans.load();
  auto erased = store->erase(EraseRequest{.stream = "kv", .criteria = {.key = "key-3"}, .actor = "test", .remove_now = true});
  ASSERT_TRUE(erased.is_ok()) << erased.status().to_string();
  erase_returned = true;
  while (scans.load() < scans_during_compaction + 20) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  stop = true;
  for (std::thread& reader : readers) reader.join();
  EXPECT_EQ(read_stream(*store, "kv").size(), latest.size() - 1);
}

TEST(Compaction, RefusedForDeleteStreamsAndConfigRoundTrips) {
  auto disk = std::make_shared<FaultFileSystem>();
  auto store = open_on(disk, "/data");
  StreamConfig config = small_stream("plain");
  ASSERT_TRUE(store->create_stream(config).is_ok());
  EXPECT_EQ(store->compact("plain").status().code(), ErrorCode::invalid_argument);
  config.cleanup = CleanupPolicy::compact;
  config.tombstone_retention_ms = 1234;
  ASSERT_TRUE(store->update_stream(config).is_ok());
  ASSERT_TRUE(store->close().is_ok());
  store = open_on(disk, "/data");
  auto info = store->describe_stream("plain");
  ASSERT_TRUE(info.is_ok());
  EXPECT_EQ(info->config, config);
  config.tombstone_retention_ms = -1;
  EXPECT_EQ(store->update_stream(config).code(), ErrorCode::invalid_argument);
}

// ---- Erase ----

std::string file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

TEST(Erase, UnreadableAtOnceThenNoTraceInAnyFile) {
  testing::TemporaryDirectory directory;
  auto store = open_on(nullptr, directory.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->create_stream(small_stream("people", 2)).is_ok());
  std::vector<std::string> erased_payloads;
  std::vector<std::string> kept_payloads;
  for (int i = 0; i < 400; ++i) {
    const std::string user = "user-" + std::to_string(i % 9);
    const bool victim = i % 9 == 4;
    const bool header_victim = i % 13 == 5;  // erased by header below
    const std::string payload = (victim ? "SECRET-of-user-4-" : header_victim ? "HEADER-SECRET-" : "ordinary-") + std::to_string(i) +
                                "-" + std::string(static_cast<std::size_t>(i % 40), 'p');
    const std::string session = header_victim ? "s-erase-me" : "s-" + std::to_string(i);
    const HeaderView headers[] = {{"session", session}};
    OutgoingMessage message;
    message.subject = "people.update";
    message.key = user;
    message.headers = headers;
    message.payload = payload;
    ASSERT_TRUE(store->publish(message).is_ok());
    (victim || header_victim ? erased_payloads : kept_payloads).push_back(payload);
  }
  auto contains_erased = [&](std::string_view text) {
    return std::any_of(erased_payloads.begin(), erased_payloads.end(),
                       [&](const std::string& payload) { return text.find(payload) != std::string_view::npos; });
  };
  // The erased key and header value, as bytes and as the index terms the message index files
  // hold (8 bytes little-endian): after the rewrite no file may hold either.
  std::vector<std::string> erased_identifiers = {"user-4", "s-erase-me"};
  for (std::uint64_t term : {index::key_term("user-4"), index::header_term("session", "s-erase-me")}) {
    std::string bytes(8, '\0');
    base::store_u64(bytes.data(), term);
    erased_identifiers.push_back(bytes);
  }
  // Newest-first key queries, answered from the message indexes; loads their caches before the
  // erase, so the answers after it also check that no cached index outlives a rewrite.
  auto query_key = [&](const std::string& key) {
    std::vector<std::string> payloads;
    Query query;
    query.stream = "people";
    query.key = key;
    query.order = QueryOrder::newest_first;
    auto result = store->query(query, [&](const QueryMatch& match) {
      payloads.emplace_back(match.message.payload);
      return ScanControl::proceed;
    });
    EXPECT_TRUE(result.is_ok()) << result.status().to_string();
    return payloads;
  };
  EXPECT_EQ(query_key("user-4").size(), 44u);
  const std::vector<std::string> user_1_before = query_key("user-1");
  ASSERT_FALSE(user_1_before.empty());
  // A subscription that is already running when the erase happens.
  std::atomic<int> live_erased{0};
  // Erase by key (in the background) and by header (now).
  auto by_key = store->erase(EraseRequest{.stream = "people", .criteria = {.key = "user-4"}, .actor = "dpo@example.com"});
  ASSERT_TRUE(by_key.is_ok()) << by_key.status().to_string();
  EXPECT_EQ(by_key->matched_messages, 44u);  // i % 9 == 4 for i < 400
  EXPECT_GT(by_key->segments_to_rewrite, 0u);
  auto by_header = store->erase(EraseRequest{
      .stream = "people", .criteria = {.header = Header{"session", "s-erase-me"}}, .actor = "dpo@example.com"});
  ASSERT_TRUE(by_header.is_ok()) << by_header.status().to_string();
  EXPECT_GT(by_header->matched_messages, 0u);

  // Unreadable at once: read, scan, subscriptions, time lookups; verify still clean.
  const auto readable = read_stream(*store, "people");
  EXPECT_EQ(readable.size(), kept_payloads.size());
  for (const auto& [position, message] : readable) EXPECT_FALSE(contains_erased(message.payload));
  for (std::uint32_t partition = 0; partition < 2; ++partition) {
    auto scanned = store->scan("people", partition, 0, 100000, [&](const MessageView& message) {
      EXPECT_FALSE(contains_erased(message.payload));
      return ScanControl::proceed;
    });
    ASSERT_TRUE(scanned.is_ok());
  }
  std::atomic<int> delivered{0};
  auto subscription = store->subscribe(SubscribeOptions{.stream = "people", .start = StartPosition::from_beginning()},
                                       [&](const Delivery& delivery) {
                                         if (contains_erased(delivery.message.payload)) ++live_erased;
                                         ++delivered;
                                       });
  ASSERT_TRUE(subscription.is_ok());
  ASSERT_TRUE((*subscription)->wait_for_delivered(kept_payloads.size(), std::chrono::seconds(10)));
  (*subscription)->cancel();
  EXPECT_EQ(live_erased.load(), 0);
  EXPECT_EQ(delivered.load(), static_cast<int>(kept_payloads.size()));
  auto verified = store->verify("people");
  ASSERT_TRUE(verified.is_ok());
  EXPECT_TRUE(verified->clean()) << verified->problems.front();

  // The audit stream says who, what, when and how many, never the content.
  const auto audit = read_stream(*store, audit_stream_name);
  ASSERT_EQ(audit.size(), 2u);
  const std::string& first_audit = audit.begin()->second.payload;
  EXPECT_NE(first_audit.find("\"actor\":\"dpo@example.com\""), std::string::npos) << first_audit;
  EXPECT_NE(first_audit.find("\"criteria\":\"key=user-4\""), std::string::npos) << first_audit;
  EXPECT_NE(first_audit.find("\"matched_messages\":44"), std::string::npos) << first_audit;
  EXPECT_NE(first_audit.find("\"time_ms\":"), std::string::npos) << first_audit;
  for (const auto& [position, message] : audit) EXPECT_FALSE(contains_erased(message.payload));

  // The background removes the bytes, a bounded share per pass, and reports progress.
  auto pending = store->erase_progress("people");
  ASSERT_TRUE(pending.is_ok());
  EXPECT_GT(pending->offsets_pending, 0u);
  for (int pass = 0; pass < 100; ++pass) {
    ASSERT_TRUE(store->run_maintenance().is_ok());
    pending = store->erase_progress("people");
    if (pending->offsets_pending == 0) break;
  }
  EXPECT_EQ(pending->offsets_pending, 0u);
  EXPECT_EQ(pending->segments_pending, 0u);
  // Still exactly the kept messages, through reads and through the rewritten segments' indexes.
  EXPECT_EQ(read_stream(*store, "people").size(), kept_payloads.size());
  EXPECT_TRUE(query_key("user-4").empty());
  std::vector<std::string> user_1_expected;
  for (const std::string& payload : user_1_before) {
    if (!contains_erased(payload)) user_1_expected.push_back(payload);
  }
  EXPECT_EQ(query_key("user-1"), user_1_expected);
  ASSERT_TRUE(store->close().is_ok());
  store.reset();

  // No file of the data directory holds an erased payload; the kept ones are still there.
  std::size_t files = 0;
  std::size_t index_files = 0;
  std::string everything;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(directory.path())) {
    if (!entry.is_regular_file()) continue;
    ++files;
    const std::string bytes = file_bytes(entry.path());
    EXPECT_FALSE(contains_erased(bytes)) << entry.path() << " still holds erased bytes";
    // The audit stream names the erase criteria on purpose (who erased what); nothing else may.
    const bool audit = entry.path().string().find(std::string(audit_stream_name)) != std::string::npos;
    for (std::size_t i = 0; i < erased_identifiers.size() && !audit; ++i) {
      EXPECT_EQ(bytes.find(erased_identifiers[i]), std::string::npos)
          << entry.path() << " still holds erased identifier " << i << (i >= 2 ? " (as an index term)" : "");
    }
    if (entry.path().string().ends_with(".message_index")) ++index_files;
    everything += bytes;
  }
  EXPECT_GT(files, 5u);
  EXPECT_GT(index_files, 0u);  // the search covered message index files
  for (const std::string& payload : kept_payloads) EXPECT_NE(everything.find(payload), std::string::npos);
  // And after a restart, the same view.
  store = open_on(nullptr, directory.path());
  EXPECT_EQ(read_stream(*store, "people").size(), kept_payloads.size());
}

TEST(Erase, RemoveNowReportsProgressAndRejectsBadRequests) {
  auto disk = std::make_shared<FaultFileSystem>();
  auto store = open_on(disk, "/data");
  ASSERT_TRUE(store->create_stream(small_stream("s")).is_ok());
  for (int i = 0; i < 100; ++i) {
    OutgoingMessage message;
    message.subject = "s.x";
    const std::string key = "k" + std::to_string(i % 4);
    message.key = key;
    const std::string payload = "payload-" + std::to_string(i) + std::string(60, 'z');
    message.payload = payload;
    ASSERT_TRUE(store->publish(message).is_ok());
  }
  EXPECT_EQ(store->erase(EraseRequest{.stream = "s", .criteria = {}, .actor = "a"}).status().code(), ErrorCode::invalid_argument);
  EXPECT_EQ(store->erase(EraseRequest{.stream = "s", .criteria = {.key = "k1"}, .actor = ""}).status().code(),
            ErrorCode::invalid_argument);
  EXPECT_EQ(store->erase(EraseRequest{.stream = "nope", .criteria = {.key = "k1"}, .actor = "a"}).status().code(),
            ErrorCode::stream_not_found);
  auto report = store->erase(EraseRequest{.stream = "s", .criteria = {.key = "k1"}, .actor = "a", .remove_now = true});
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  EXPECT_EQ(report->matched_messages, 25u);
  EXPECT_EQ(report->progress.offsets_pending, 0u);
  EXPECT_EQ(report->progress.segments_rewritten, report->segments_to_rewrite);
  for (const auto& path : disk->all_files()) {
    auto content = disk->current_contents(path);
    for (int i = 1; i < 100; i += 4) {
      EXPECT_EQ(content->find("payload-" + std::to_string(i) + "zzz"), std::string::npos) << path;
    }
  }
  // Erasing again finds nothing more (and is audited again).
  auto again = store->erase(EraseRequest{.stream = "s", .criteria = {.key = "k1"}, .actor = "a"});
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(again->matched_messages, 0u);
}

}  // namespace
}  // namespace msgstore
