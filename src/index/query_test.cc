// Property tests of Store::query (src/index): every query, over random logs and random
// predicates, answers exactly what a full scan of the log answers, page by page through its
// cursors, after restarts, power losses (FaultFileSystem), retention, deleted and damaged
// index files, and changes of the indexed headers. Plus the bad-input errors.
//
// Seeds: MSGSTORE_INDEX_SEEDS (default 24) seeds starting at MSGSTORE_INDEX_SEED_BASE.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "index/query_engine.h"
#include "index/segment_index.h"
#include "io/fault_file_system.h"
#include "msgstore/query.h"
#include "msgstore/store.h"

namespace msgstore {
namespace {

std::uint64_t environment_number(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);
  return text != nullptr && *text != '\0' ? std::strtoull(text, nullptr, 10) : fallback;
}

struct Found {
  std::string stream;
  std::uint32_t partition = 0;
  Message message;
  bool operator==(const Found&) const = default;
};

std::string describe(const Found& found) {
  return found.stream + "/" + std::to_string(found.partition) + "@" + std::to_string(found.message.offset);
}

bool has_header(const Message& message, const Header& wanted) {
  return std::any_of(message.headers.begin(), message.headers.end(), [&](const Header& field) { return field == wanted; });
}

bool oracle_matches(const Query& query, const Message& message) {
  if (query.from_offset && message.offset < *query.from_offset) return false;
  if (query.to_offset && message.offset >= *query.to_offset) return false;
  if (query.from_time_ms && message.timestamp_ms < *query.from_time_ms) return false;
  if (query.to_time_ms && message.timestamp_ms >= *query.to_time_ms) return false;
  if (query.key && message.key != query.key) return false;
  if (!query.subject_pattern.empty()) {
    // The oracle's own matcher for the patterns the generator uses.
    const std::string& pattern = query.subject_pattern;
    const std::string& subject = message.subject;
    bool match = false;
    if (pattern.find('*') == std::string::npos && pattern.find('>') == std::string::npos) {
      match = pattern == subject;
    } else if (pattern.size() >= 2 && pattern.compare(pattern.size() - 2, 2, ".>") == 0) {
      const std::string prefix = pattern.substr(0, pattern.size() - 1);
      match = subject.size() > prefix.size() && subject.compare(0, prefix.size(), prefix) == 0;
    } else if (pattern.size() >= 2 && pattern.compare(pattern.size() - 2, 2, ".*") == 0) {
      const std::string prefix = pattern.substr(0, pattern.size() - 1);
      match = subject.size() > prefix.size() && subject.compare(0, prefix.size(), prefix) == 0 &&
              subject.find('.', prefix.size()) == std::string::npos;
    } else if (pattern.compare(0, 2, "*.") == 0) {
      const std::string suffix = pattern.substr(1);
      const std::size_t dot = subject.find('.');
      match = dot != std::string::npos && dot > 0 && subject.substr(dot) == suffix;
    }
    if (!match) return false;
  }
  for (const Header& wanted : query.header_equals) {
    if (!has_header(message, wanted)) return false;
  }
  if (query.payload_contains && message.payload.find(*query.payload_contains) == std::string::npos) return false;
  return true;
}

// The full scan: every readable message of every partition in scope, through Store::read.
std::vector<Found> full_scan(const Store& store, const Query& query) {
  std::vector<Found> result;
  auto streams = store.list_streams();
  std::sort(streams.begin(), streams.end(), [](const StreamConfig& a, const StreamConfig& b) { return a.name < b.name; });
  for (const StreamConfig& config : streams) {
    if (!query.stream.empty() && config.name != query.stream) continue;
    for (std::uint32_t partition = 0; partition < config.partitions; ++partition) {
      if (query.partition && *query.partition != partition) continue;
      std::vector<Found> partition_matches;
      Offset from = store.resolve_start(config.name, partition, StartPosition::from_beginning()).value();
      while (true) {
        auto read = store.read(config.name, partition, from, ReadOptions{1000, 64 * 1024 * 1024});
        EXPECT_TRUE(read.is_ok()) << read.status().to_string();
        if (!read || read->messages.empty()) break;
        for (Message& message : read->messages) {
          if (oracle_matches(query, message)) partition_matches.push_back({config.name, partition, std::move(message)});
        }
        from = read->next_offset;
      }
      if (query.order == QueryOrder::newest_first) std::reverse(partition_matches.begin(), partition_matches.end());
      result.insert(result.end(), partition_matches.begin(), partition_matches.end());
    }
  }
  return result;
}

// Runs the query page by page through its cursors.
Result<std::vector<Found>> run_all_pages(const Store& store, Query query, QueryStatistics* last_statistics = nullptr) {
  std::vector<Found> result;
  for (int page = 0; page < 100000; ++page) {
    std::size_t page_count = 0;
    auto ran = store.query(query, [&](const QueryMatch& match) {
      result.push_back({std::string(match.stream), match.partition, match.message.to_message()});
      ++page_count;
      return ScanControl::proceed;
    });
    if (!ran) return ran.status();
    EXPECT_LE(page_count, query.limit);
    if (last_statistics != nullptr) *last_statistics = ran->statistics;
    if (ran->next_cursor.empty()) return result;
    EXPECT_EQ(page_count, query.limit) << "a page with a cursor is full";
    query.cursor = ran->next_cursor;
  }
  ADD_FAILURE() << "too many pages";
  return result;
}

const std::vector<std::string> subjects = {"a.x", "a.y", "a.y.z", "b.q", "b.r"};
const std::vector<std::string> patterns = {"", "", "a.x", "a.>", "b.*", "*.x", "b.q", "a.y.z"};
const std::vector<std::string> keys = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "", "order-1234"};
const std::vector<std::string> words = {"lorem", "ipsum", "dolor", "sit", "amet", "x1", "needle"};

class Fixture {
 public:
  explicit Fixture(std::uint64_t seed) : random_(seed), file_system_(std::make_shared<FaultFileSystem>()) {}

  bool open() {
    StoreOptions options;
    options.file_system = file_system_;
    options.background_maintenance = false;
    auto opened = Store::open("/data", options);
    EXPECT_TRUE(opened.is_ok()) << opened.status().to_string();
    if (!opened) return false;
    store_ = std::move(*opened);
    return true;
  }
  Store& store() { return *store_; }
  FaultFileSystem& file_system() { return *file_system_; }
  std::mt19937_64& random() { return random_; }
  void close() {
    if (store_) {
      EXPECT_TRUE(store_->close().is_ok());
    }
    store_.reset();
  }
  void crash(std::uint64_t seed) {
    store_.reset();  // no close: a power loss right now (destruction only releases handles first)
    file_system_->simulate_power_loss(seed, PowerLossMode::random);
  }

  void create_streams() {
    StreamConfig first;
    first.name = "s";
    first.subjects = {"a.>", "b.*"};
    first.partitions = 1 + random_() % 3;
    first.segment_bytes = 4096 + random_() % 8192;
    first.fsync = random_() % 2 ? FsyncPolicy::always : FsyncPolicy::never;
    first.indexed_headers = {"h1", "h2"};
    ASSERT_TRUE(store_->create_stream(first).is_ok());
    StreamConfig second;
    second.name = "t";
    second.subjects = {"b.>"};
    second.partitions = 1 + random_() % 2;
    second.segment_bytes = 4096 + random_() % 4096;
    second.fsync = FsyncPolicy::always;
    second.indexed_headers = {"h1"};
    ASSERT_TRUE(store_->create_stream(second).is_ok());
  }

  void publish(std::size_t count) {
    std::vector<std::string> payloads;
    std::vector<std::vector<HeaderView>> headers;
    std::vector<std::string> header_values;
    header_values.reserve(count * 3);
    std::vector<OutgoingMessage> batch;
    for (std::size_t i = 0; i < count; ++i) {
      std::string payload;
      const std::size_t word_count = random_() % 6;
      for (std::size_t w = 0; w < word_count; ++w) payload += words[random_() % words.size()] + " ";
      payload += std::string(random_() % 40, 'p');
      payloads.push_back(std::move(payload));
    }
    for (std::size_t i = 0; i < count; ++i) {
      std::vector<HeaderView> fields;
      if (random_() % 3) {
        header_values.push_back("v" + std::to_string(random_() % 4));
        fields.push_back({"h1", header_values.back()});
      }
      if (random_() % 2) {
        header_values.push_back("w" + std::to_string(random_() % 3));
        fields.push_back({"h2", header_values.back()});
      }
      if (random_() % 4 == 0) {
        header_values.push_back("u" + std::to_string(random_() % 2));
        fields.push_back({"h3", header_values.back()});
      }
      if (random_() % 10 == 0 && !fields.empty()) fields.push_back(fields.front());  // a repeated header
      headers.push_back(std::move(fields));
    }
    std::size_t at = 0;
    while (at < count) {
      const std::size_t batch_size = std::min<std::size_t>(count - at, 1 + random_() % 8);
      batch.clear();
      for (std::size_t i = at; i < at + batch_size; ++i) {
        OutgoingMessage message;
        message.subject = subjects[random_() % subjects.size()];
        if (random_() % 5) message.key = keys[random_() % keys.size()];
        message.headers = headers[i];
        message.payload = payloads[i];
        // Timestamps move forward with jitter, so they are not monotonic.
        clock_ms_ += random_() % 5;
        message.timestamp_ms = clock_ms_ - static_cast<TimestampMs>(random_() % 8);
        batch.push_back(message);
      }
      auto published = store_->publish_batch(batch);
      ASSERT_TRUE(published.is_ok()) << published.status().to_string();
      at += batch_size;
    }
  }

  Query random_query() {
    Query query;
    const int scope = static_cast<int>(random_() % 5);
    query.stream = scope < 3 ? "s" : scope == 3 ? "t" : "";
    if (random_() % 4 == 0) query.partition = static_cast<std::uint32_t>(random_() % 2);
    if (random_() % 4 == 0) query.from_time_ms = 1'000'000 + static_cast<TimestampMs>(random_() % (clock_ms_ - 1'000'000 + 10));
    if (random_() % 4 == 0) {
      query.to_time_ms = 1'000'000 + static_cast<TimestampMs>(random_() % (clock_ms_ - 1'000'000 + 10));
      if (query.from_time_ms && *query.to_time_ms <= *query.from_time_ms) query.to_time_ms = *query.from_time_ms + 1 + random_() % 500;
    }
    if (random_() % 5 == 0) query.from_offset = random_() % 200;
    if (random_() % 5 == 0) query.to_offset = (query.from_offset ? *query.from_offset : 0) + 1 + random_() % 300;
    query.subject_pattern = patterns[random_() % patterns.size()];
    if (random_() % 2) query.key = keys[random_() % keys.size()];
    if (random_() % 3 == 0) query.header_equals.push_back({"h1", "v" + std::to_string(random_() % 4)});
    if (random_() % 4 == 0) query.header_equals.push_back({"h2", "w" + std::to_string(random_() % 3)});
    if (random_() % 8 == 0) query.header_equals.push_back({"h3", "u" + std::to_string(random_() % 2)});
    if (random_() % 4 == 0) query.payload_contains = words[random_() % words.size()];
    query.order = random_() % 2 ? QueryOrder::newest_first : QueryOrder::oldest_first;
    query.limit = 1 + random_() % 40;
    query.allow_scan = random_() % 3 == 0;
    return query;
  }

  // Compares `rounds` random queries with the full scan.
  void check_queries(int rounds, const std::string& phase) {
    for (int round = 0; round < rounds; ++round) {
      Query query = random_query();
      const bool partition_missing = query.partition && !query.stream.empty() &&
                                     *query.partition >= store_->describe_stream(query.stream)->config.partitions;
      bool unindexed_header = false;
      for (const StreamConfig& config : store_->list_streams()) {
        if (!query.stream.empty() && config.name != query.stream) continue;
        for (const Header& wanted : query.header_equals) {
          if (std::find(config.indexed_headers.begin(), config.indexed_headers.end(), wanted.name) == config.indexed_headers.end()) {
            unindexed_header = true;
          }
        }
      }
      QueryStatistics statistics;
      auto answered = run_all_pages(*store_, query, &statistics);
      if (partition_missing) {
        ASSERT_FALSE(answered.is_ok());
        EXPECT_EQ(answered.status().code(), ErrorCode::partition_not_found);
        continue;
      }
      if (unindexed_header && !query.allow_scan) {
        ASSERT_FALSE(answered.is_ok()) << phase;
        EXPECT_EQ(answered.status().code(), ErrorCode::invalid_argument);
        EXPECT_NE(answered.status().message().find("not indexed"), std::string::npos) << answered.status().message();
        continue;
      }
      ASSERT_TRUE(answered.is_ok()) << phase << ": " << answered.status().to_string();
      const std::vector<Found> expected = full_scan(*store_, query);
      ASSERT_EQ(answered->size(), expected.size()) << phase << " round " << round << " plan " << statistics.plan;
      for (std::size_t i = 0; i < expected.size(); ++i) {
        ASSERT_EQ((*answered)[i], expected[i]) << phase << " result " << i << ": " << describe((*answered)[i]) << " vs "
                                               << describe(expected[i]);
      }
      // A lone key lookup examines only its candidates: it does not scan.
      if (query.key && query.header_equals.empty() && query.subject_pattern.empty() && !query.payload_contains &&
          !query.from_time_ms && !query.to_time_ms && query.stream == "s") {
        EXPECT_EQ(statistics.plan, "key index");
      }
    }
  }

  // Damages or deletes index files of partition 0 of stream "s".
  int tamper_index_files(bool damage) {
    int touched = 0;
    const std::filesystem::path directory = "/data/streams/s/partition-0";
    auto names = file_system_->list_directory(directory);
    if (!names) return 0;
    for (const std::string& name : *names) {
      if (!index::parse_index_file_name(name) || random_() % 2) continue;
      if (!damage) {
        EXPECT_TRUE(file_system_->remove(directory / name).is_ok());
      } else {
        auto file = file_system_->open(directory / name, OpenMode::read_write);
        if (!file) continue;
        const std::uint64_t size = (*file)->size().value();
        const std::uint64_t at = random_() % size;
        char byte = 0;
        (void)(*file)->read_at(at, &byte, 1);
        byte = static_cast<char>(byte ^ (1 << (random_() % 8)));
        EXPECT_TRUE((*file)->write_at(at, &byte, 1).is_ok());
      }
      ++touched;
    }
    return touched;
  }

 private:
  std::mt19937_64 random_;
  std::shared_ptr<FaultFileSystem> file_system_;
  std::unique_ptr<Store> store_;
  TimestampMs clock_ms_ = 1'000'000;
};

TEST(QueryProperty, EveryIndexAnswersWhatAFullScanAnswers) {
  const std::uint64_t seeds = environment_number("MSGSTORE_INDEX_SEEDS", 24);
  const std::uint64_t first_seed = environment_number("MSGSTORE_INDEX_SEED_BASE", 1);
  for (std::uint64_t seed = first_seed; seed < first_seed + seeds; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Fixture fixture(seed);
    ASSERT_TRUE(fixture.open());
    fixture.create_streams();
    fixture.publish(150 + fixture.random()() % 250);
    fixture.check_queries(30, "fresh");
    if (testing::Test::HasFatalFailure()) return;

    fixture.close();
    ASSERT_TRUE(fixture.open());
    fixture.check_queries(15, "after restart");
    fixture.publish(100);
    fixture.check_queries(15, "restart then appends");
    if (testing::Test::HasFatalFailure()) return;

    fixture.crash(seed);
    ASSERT_TRUE(fixture.open());
    fixture.check_queries(15, "after power loss");
    fixture.publish(80);
    fixture.check_queries(10, "power loss then appends");
    if (testing::Test::HasFatalFailure()) return;

    // Retention drops segments and their index files together.
    StreamConfig config = fixture.store().describe_stream("s")->config;
    config.max_messages = 120;
    ASSERT_TRUE(fixture.store().update_stream(config).is_ok());
    ASSERT_TRUE(fixture.store().run_maintenance().is_ok());
    fixture.check_queries(15, "after retention");
    if (testing::Test::HasFatalFailure()) return;

    fixture.close();
    fixture.tamper_index_files(/*damage=*/false);
    ASSERT_TRUE(fixture.open());
    fixture.check_queries(10, "after index files were deleted");
    fixture.close();
    fixture.tamper_index_files(/*damage=*/true);
    ASSERT_TRUE(fixture.open());
    fixture.check_queries(10, "after index files were damaged");
    if (testing::Test::HasFatalFailure()) return;

    // Another header set: files are rebuilt for it; the active segment re-indexed.
    config = fixture.store().describe_stream("s")->config;
    config.indexed_headers = {"h2", "h3"};
    ASSERT_TRUE(fixture.store().update_stream(config).is_ok());
    fixture.check_queries(10, "after indexed headers changed");
    fixture.publish(60);
    fixture.check_queries(10, "changed headers then appends");
    fixture.close();
    ASSERT_TRUE(fixture.open());
    fixture.check_queries(10, "changed headers after restart");
    if (testing::Test::HasFatalFailure()) return;
  }
}

// ---- Specific behaviour ---------------------------------------------------------------------
class QueryTest : public testing::Test {
 protected:
  void SetUp() override {
    file_system_ = std::make_shared<FaultFileSystem>();
    StoreOptions options;
    options.file_system = file_system_;
    options.background_maintenance = false;
    store_ = std::move(Store::open("/data", options).value());
    StreamConfig config;
    config.name = "orders";
    config.subjects = {"orders.>"};
    config.segment_bytes = 4096;
    config.indexed_headers = {"customer"};
    ASSERT_TRUE(store_->create_stream(config).is_ok());
  }

  void publish(int count, int first = 0) {
    for (int i = first; i < first + count; ++i) {
      const std::string key = "order-" + std::to_string(i % 50);
      const std::string customer = "c" + std::to_string(i % 7);
      const std::string payload = "payload " + std::to_string(i) + (i % 100 == 0 ? " needle" : "");
      HeaderView fields[] = {{"customer", customer}};
      OutgoingMessage message;
      message.subject = i % 2 ? "orders.created" : "orders.paid";
      message.key = key;
      message.headers = fields;
      message.payload = payload;
      message.timestamp_ms = 1000 + i;
      ASSERT_TRUE(store_->publish(message).is_ok());
    }
  }

  static Query newest_of_key(const std::string& key, std::size_t limit) {
    Query query;
    query.stream = "orders";
    query.key = key;
    query.order = QueryOrder::newest_first;
    query.limit = limit;
    return query;
  }

  Result<QueryResult> run(const Query& query, std::vector<Offset>* offsets = nullptr) {
    return store_->query(query, [&](const QueryMatch& match) {
      if (offsets) offsets->push_back(match.message.offset);
      return ScanControl::proceed;
    });
  }

  std::shared_ptr<FaultFileSystem> file_system_;
  std::unique_ptr<Store> store_;
};

TEST_F(QueryTest, KeyLookupReadsOnlySegmentsThatHoldTheKey) {
  publish(2000);
  Query query = newest_of_key("order-7", 20);
  std::vector<Offset> offsets;
  auto result = run(query, &offsets);
  ASSERT_TRUE(result.is_ok()) << result.status().to_string();
  ASSERT_EQ(offsets.size(), 20u);
  for (std::size_t i = 0; i < offsets.size(); ++i) EXPECT_EQ(offsets[i], 1957 - 50 * i);
  EXPECT_EQ(result->statistics.plan, "key index");
  EXPECT_EQ(result->statistics.messages_examined, 20u);
  EXPECT_FALSE(result->next_cursor.empty());
  // A key absent from most segments: the filters skip them without reading postings.
  query.key = "order-none";
  result = run(query);
  ASSERT_TRUE(result.is_ok());
  EXPECT_EQ(result->statistics.messages_examined, 0u);
  EXPECT_EQ(result->statistics.segments_read, 0u);
  EXPECT_GT(result->statistics.segments_skipped_by_filter, 10u);
  // Sealed segments have index files; one deleted is rebuilt once, with the same answer.
  query.key = "order-7";
  query.limit = 1000;
  std::vector<Offset> before;
  ASSERT_TRUE(run(query, &before).is_ok());
  ASSERT_TRUE(store_->close().is_ok());
  const std::filesystem::path directory = "/data/streams/orders/partition-0";
  ASSERT_TRUE(file_system_->exists(index::index_file_path(directory, 0)));
  ASSERT_TRUE(file_system_->remove(index::index_file_path(directory, 0)).is_ok());
  StoreOptions options;
  options.file_system = file_system_;
  options.background_maintenance = false;
  store_ = std::move(Store::open("/data", options).value());
  std::vector<Offset> after;
  result = run(query, &after);
  ASSERT_TRUE(result.is_ok());
  EXPECT_EQ(after, before);
  EXPECT_EQ(result->statistics.index_files_rebuilt, 1u);
  after.clear();
  result = run(query, &after);
  EXPECT_EQ(after, before);
  EXPECT_EQ(result->statistics.index_files_rebuilt, 0u);
  EXPECT_TRUE(file_system_->exists(index::index_file_path(directory, 0)));
}

TEST_F(QueryTest, KeyLookupAdvisesItsReadsAheadOnAColdPageCache) {
  publish(2000);  // one batch per message; segments of 4 KiB hold about 50, one of each key
  Query query = newest_of_key("order-7", 20);
  std::vector<Offset> warm;
  ASSERT_TRUE(run(query, &warm).is_ok());
  ASSERT_EQ(warm.size(), 20u);

  // Cold: sealed segments are probed until their postings cover the limit (each key has one
  // message per segment here: 20 segments), each advising its posting run; the first batch
  // read misses the cache, so the 20 candidate batches are advised too. Nothing beyond.
  file_system_->set_cold_reads(true);
  file_system_->reset_counters();
  std::vector<Offset> offsets;
  auto result = run(query, &offsets);
  ASSERT_TRUE(result.is_ok()) << result.status().to_string();
  EXPECT_EQ(offsets, warm);
  FaultFileSystem::Counters counters = file_system_->counters();
  EXPECT_EQ(counters.will_need_hints, 40u);
  EXPECT_EQ(counters.cold_reads, 20u);
  // A batch's hint is bounded by the next indexed batch or the segment's end.
  EXPECT_LE(counters.will_need_bytes, counters.will_need_hints * 4096);
  // The statistics count only segments the query reached, as without lookahead.
  EXPECT_EQ(result->statistics.segments_read, 20u);
  EXPECT_EQ(result->statistics.messages_examined, 20u);

  // Every match (40 in 40 segments): all advised, at most limits::query_prefetch_batches_max
  // batches at a time.
  query.limit = 1000;
  file_system_->reset_counters();
  offsets.clear();
  ASSERT_TRUE(run(query, &offsets).is_ok());
  EXPECT_EQ(offsets.size(), 40u);
  EXPECT_EQ(file_system_->counters().will_need_hints, 80u);

  // Oldest first, from an offset: the same, in the other direction, only within the range.
  query.order = QueryOrder::oldest_first;
  query.from_offset = 1000;
  query.limit = 5;
  file_system_->reset_counters();
  offsets.clear();
  ASSERT_TRUE(run(query, &offsets).is_ok());
  ASSERT_EQ(offsets.size(), 5u);
  EXPECT_EQ(offsets.front(), 1007u);
  EXPECT_EQ(file_system_->counters().will_need_hints, 10u);

  // A key no segment holds: nothing is read and nothing advised.
  query.key = "order-none";
  query.limit = 20;
  file_system_->reset_counters();
  ASSERT_TRUE(run(query).is_ok());
  EXPECT_EQ(file_system_->counters().will_need_hints, 0u);

  // Warm (every read hits the cache): only the posting runs are advised, no batch.
  file_system_->set_cold_reads(false);
  query.key = "order-7";
  query.order = QueryOrder::newest_first;
  query.from_offset.reset();
  file_system_->reset_counters();
  offsets.clear();
  ASSERT_TRUE(run(query, &offsets).is_ok());
  EXPECT_EQ(offsets, warm);
  EXPECT_EQ(file_system_->counters().will_need_hints, 20u);
}

TEST_F(QueryTest, BadInputIsAClearError) {
  publish(10);
  auto expect_invalid = [&](Query query, const std::string& words) {
    auto result = run(query);
    ASSERT_FALSE(result.is_ok()) << words;
    EXPECT_EQ(result.status().code(), ErrorCode::invalid_argument) << result.status().to_string();
    EXPECT_NE(result.status().message().find(words), std::string::npos) << result.status().message();
  };
  Query base;
  base.stream = "orders";
  Query query = base;
  query.header_equals = {{"region", "eu"}};
  expect_invalid(query, "not indexed");
  query.allow_scan = true;
  EXPECT_TRUE(run(query).is_ok());
  query = base;
  query.cursor = "not a cursor!";
  expect_invalid(query, "malformed cursor");
  query.cursor = "AAAA";
  expect_invalid(query, "malformed cursor");
  query = base;
  query.from_time_ms = 10;
  query.to_time_ms = 5;
  expect_invalid(query, "time range");
  query = base;
  query.from_offset = 7;
  query.to_offset = 7;
  expect_invalid(query, "offset range");
  query = base;
  query.subject_pattern = "orders.>.x";
  expect_invalid(query, "subject pattern");
  query = base;
  query.limit = 0;
  expect_invalid(query, "limit");
  // A cursor of one query does not continue another.
  query = base;
  query.limit = 1;
  auto first = run(query);
  ASSERT_TRUE(first.is_ok());
  Query other = base;
  other.key = "order-1";
  other.cursor = first->next_cursor;
  expect_invalid(other, "different query");
  // Every single-character change of a cursor is refused or decodes to the same cursor.
  for (std::size_t at = 0; at < first->next_cursor.size(); ++at) {
    std::string changed = first->next_cursor;
    changed[at] = changed[at] == 'A' ? 'B' : 'A';
    auto decoded = index::decode_cursor(changed);
    EXPECT_FALSE(decoded.is_ok()) << "position " << at;
  }
  query = base;
  query.stream = "missing";
  auto missing = run(query);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::stream_not_found);
}

TEST_F(QueryTest, PayloadContainsScansOnlyTheRange) {
  publish(1000);
  Query query;
  query.stream = "orders";
  query.payload_contains = "needle";
  query.from_offset = 500;
  std::vector<Offset> offsets;
  auto result = run(query, &offsets);
  ASSERT_TRUE(result.is_ok());
  EXPECT_EQ(offsets, (std::vector<Offset>{500, 600, 700, 800, 900}));
  EXPECT_EQ(result->statistics.plan, "scan");
  EXPECT_GT(result->statistics.segments_skipped_by_range, 0u);
  EXPECT_LE(result->statistics.messages_examined, 520u);
}

TEST_F(QueryTest, ConcurrentAppendsAndRetentionKeepAnswersConsistent) {
  publish(200);
  StreamConfig config = store_->describe_stream("orders")->config;
  config.max_messages = 300;
  ASSERT_TRUE(store_->update_stream(config).is_ok());
  std::atomic<bool> done{false};
  std::thread writer([&] {
    publish(600, 200);
    done = true;
  });
  int rounds = 0;
  while (!done || rounds < 3) {
    ASSERT_TRUE(store_->run_maintenance().is_ok());
    Query query;
    query.stream = "orders";
    query.header_equals = {{"customer", "c3"}};
    std::vector<Offset> offsets;
    query.limit = 10000;
    auto result = store_->query(query, [&](const QueryMatch& match) {
      // Every answer is a real match, in order, without duplicates.
      EXPECT_EQ(match.message.headers.size(), 1u);
      EXPECT_EQ(match.message.headers[0].value, "c3");
      if (!offsets.empty()) {
        EXPECT_GT(match.message.offset, offsets.back());
      }
      offsets.push_back(match.message.offset);
      return ScanControl::proceed;
    });
    ASSERT_TRUE(result.is_ok()) << result.status().to_string();
    for (Offset offset : offsets) EXPECT_EQ(offset % 7, 3u);
    ++rounds;
  }
  writer.join();
}

}  // namespace
}  // namespace msgstore
