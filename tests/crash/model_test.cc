// Seeded model-based test: a random sequence of operations on the Store, compared after every
// step with a simple in-memory model (per partition: the messages by offset, the log start,
// and how much of it is known durable).
//
// Operations: publish (single and batch; keys, headers, explicit and store-stamped timestamps;
// subjects captured by one or two streams, or by none), read by offset (in and out of range,
// with message and byte limits), read by time, retention changes (update_stream of
// max_messages / max_bytes / partitions) and maintenance, stream create and delete, process
// crash, power loss, clean restart. Segments roll all the time (segment_bytes 4-12 KiB).
//
// The model predicts everything except where retention puts the log start (segment
// boundaries) and what a power loss keeps of an fsync=interval/never partition's unsynced tail:
// there it accepts the store's answer if it is legal (retention keeps at least its limit and
// only advances on maintenance; a power loss keeps a prefix that holds everything durable),
// then follows it. On any divergence the failure names the seed and step; CRASH_SEED replays it.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <map>
#include <random>

#include "base/hash.h"
#include "base/subject.h"
#include "crash/checker.h"
#include "crash/harness.h"
#include "log/partition_log.h"

namespace msgstore::crash {
namespace {

const std::filesystem::path data_directory = "/data";
const char* const stream_names[] = {"m0", "m1", "m2", "m3"};

struct ModelMessage {
  std::string subject;
  std::optional<std::string> key;
  std::vector<Header> headers;
  std::string payload;
  std::optional<TimestampMs> timestamp_ms;  // nullopt: stamped by the store within [low, high]
  TimestampMs low = 0;
  TimestampMs high = 0;
};

struct ModelPartition {
  std::vector<ModelMessage> messages;  // index = offset
  Offset log_start = 0;
  Offset durable_end = 0;  // everything below was read back after a restart, or synced
};

struct ModelStream {
  StreamConfig config;
  std::vector<ModelPartition> partitions;
};

struct Tally {
  std::uint64_t steps = 0;
  std::uint64_t compared = 0;
  std::uint64_t publishes = 0;
  std::uint64_t reads = 0;
  std::uint64_t time_reads = 0;
  std::uint64_t power_losses = 0;
  std::uint64_t process_crashes = 0;
  std::uint64_t restarts = 0;
  std::uint64_t retention_moves = 0;
  std::uint64_t lost_unsynced = 0;
};

class ModelTest {
 public:
  ModelTest(std::uint64_t seed, Tally& tally, Figures& figures)
      : seed_(seed), random_(seed), tally_(tally), figures_(figures) {}

  void run(int steps) {
    disk_->make_all_durable();
    ASSERT_NO_FATAL_FAILURE(open());
    for (int step = 0; step < steps; ++step) {
      step_ = step;
      std::string description;
      ASSERT_NO_FATAL_FAILURE(one_step(description));
      SCOPED_TRACE("seed " + std::to_string(seed_) + " step " + std::to_string(step) + ": " + description);
      ASSERT_NO_FATAL_FAILURE(compare_all());
      ++tally_.steps;
    }
  }

 private:
  // ---- Operations ----
  void one_step(std::string& description) {
    SCOPED_TRACE("seed " + std::to_string(seed_) + " step " + std::to_string(step_));
    const int choice = static_cast<int>(random_() % 100);
    if (model_.empty() || choice < 6) {
      description = "create stream";
      create_stream();
    } else if (choice < 40) {
      description = "publish";
      publish(random_() % 2 == 0 ? 1 : 2 + random_() % 24);
    } else if (choice < 50) {
      description = "publish to a subject no stream captures";
      OutgoingMessage message;
      message.subject = "nowhere.x";
      message.payload = "x";
      auto positions = store_->publish(message);
      ASSERT_FALSE(positions.is_ok());
      EXPECT_EQ(positions.status().code(), ErrorCode::no_matching_stream);
    } else if (choice < 62) {
      description = "read by offset";
      read_by_offset();
    } else if (choice < 68) {
      description = "read by time";
      read_by_time();
    } else if (choice < 75) {
      description = "update retention";
      update_stream();
    } else if (choice < 82) {
      description = "maintenance";
      maintenance();
    } else if (choice < 85) {
      description = "delete stream";
      delete_stream();
    } else if (choice < 90) {
      description = "process crash";
      ++tally_.process_crashes;
      process_->process_crash();
      ASSERT_NO_FATAL_FAILURE(reopen(Event::process_crash));
    } else if (choice < 96) {
      description = "power loss";
      ++tally_.power_losses;
      process_->power_loss(seed_ * 100003 + static_cast<std::uint64_t>(step_), PowerLossMode::random);
      ASSERT_NO_FATAL_FAILURE(reopen(Event::power_loss));
    } else {
      description = "clean restart";
      ++tally_.restarts;
      ASSERT_TRUE(store_->close().is_ok());
      ASSERT_NO_FATAL_FAILURE(reopen(Event::clean_restart));
    }
  }

  void open() {
    double open_ms = 0;
    process_ = std::make_shared<ProcessFileSystem>(disk_);
    auto opened = open_timed(data_directory, process_, open_ms);
    ASSERT_TRUE(opened.is_ok()) << "seed " << seed_ << " step " << step_ << ": reopen failed: " << opened.status().to_string();
    store_ = std::move(*opened);
    figures_.add_recovery(open_ms);
  }

  void reopen(Event event) {
    store_.reset();
    ASSERT_NO_FATAL_FAILURE(open());
    auto verified = store_->verify();
    ASSERT_TRUE(verified.is_ok());
    EXPECT_TRUE(verified->clean()) << "verify after " << event_name(event) << ": " << verified->problems.front();
    // What a power loss may take: the unsynced tail of fsync=interval/never partitions.
    for (auto& [name, stream] : model_) {
      for (std::uint32_t p = 0; p < stream.partitions.size(); ++p) {
        ModelPartition& partition = stream.partitions[p];
        auto end = store_->resolve_start(name, p, StartPosition::new_only());
        ASSERT_TRUE(end.is_ok()) << end.status().to_string();
        const Offset high_watermark = *end;
        if (high_watermark < partition.messages.size()) {
          ASSERT_EQ(event, Event::power_loss) << name << "/" << p << " lost offsets " << high_watermark << ".."
                                              << partition.messages.size() << " at a " << event_name(event);
          ASSERT_NE(stream.config.fsync, FsyncPolicy::always)
              << name << "/" << p << " (fsync=always) lost acknowledged offsets " << high_watermark << ".." << partition.messages.size();
          ASSERT_GE(high_watermark, partition.durable_end)
              << name << "/" << p << " lost durable offsets " << high_watermark << ".." << partition.durable_end;
          tally_.lost_unsynced += partition.messages.size() - high_watermark;
          figures_.lost_allowed += partition.messages.size() - high_watermark;
          partition.messages.resize(high_watermark);
        }
        ASSERT_LE(high_watermark, partition.messages.size()) << name << "/" << p << " has offsets nobody wrote";
        partition.durable_end = partition.messages.size();
      }
    }
  }

  StreamConfig random_config(const std::string& name) {
    StreamConfig config;
    config.name = name;
    config.subjects = {name + ".>"};
    if (random_() % 2 == 0) config.subjects.push_back("shared.*");
    config.partitions = 1 + static_cast<std::uint32_t>(random_() % 3);
    const int policy = static_cast<int>(random_() % 10);
    config.fsync = policy < 6 ? FsyncPolicy::always : policy < 8 ? FsyncPolicy::interval : FsyncPolicy::never;
    if (config.fsync == FsyncPolicy::interval) config.fsync_interval_ms = 1 + static_cast<std::uint32_t>(random_() % 50);
    config.segment_bytes = limits::segment_bytes_min * (1 + random_() % 3);
    if (random_() % 2 == 0) config.max_messages = 5 + random_() % 80;
    if (random_() % 3 == 0) config.max_bytes = 4096 + random_() % 20000;
    return config;
  }

  void create_stream() {
    const std::string name = stream_names[random_() % 4];
    StreamConfig config = random_config(name);
    Status created = store_->create_stream(config);
    if (model_.count(name)) {
      EXPECT_EQ(created.code(), ErrorCode::stream_exists) << created.to_string();
      return;
    }
    ASSERT_TRUE(created.is_ok()) << created.to_string();
    ModelStream& stream = model_[name];
    stream.config = config;
    stream.partitions.resize(config.partitions);
  }

  void delete_stream() {
    const std::string name = stream_names[random_() % 4];
    Status deleted = store_->delete_stream(name);
    if (!model_.count(name)) {
      EXPECT_EQ(deleted.code(), ErrorCode::stream_not_found) << deleted.to_string();
      return;
    }
    ASSERT_TRUE(deleted.is_ok()) << deleted.to_string();
    model_.erase(name);
  }

  void update_stream() {
    if (model_.empty()) return;
    auto it = std::next(model_.begin(), static_cast<long>(random_() % model_.size()));
    StreamConfig config = it->second.config;
    switch (random_() % 4) {
      case 0: config.max_messages = random_() % 2 ? 5 + random_() % 60 : 0; break;
      case 1: config.max_bytes = random_() % 2 ? 4096 + random_() % 20000 : 0; break;
      case 2: config.partitions += static_cast<std::uint32_t>(random_() % 2); break;
      default: config.segment_bytes = limits::segment_bytes_min * (1 + random_() % 3); break;
    }
    ASSERT_TRUE(store_->update_stream(config).is_ok());
    it->second.config = config;
    it->second.partitions.resize(config.partitions);
    if (random_() % 2 == 0) maintenance();
  }

  void maintenance() {
    ASSERT_TRUE(store_->run_maintenance().is_ok());
    // Retention: the store decides where (segment boundaries); the model checks it is legal.
    for (auto& [name, stream] : model_) {
      auto info = store_->describe_stream(name);
      ASSERT_TRUE(info.is_ok());
      for (std::uint32_t p = 0; p < stream.partitions.size(); ++p) {
        ModelPartition& partition = stream.partitions[p];
        const PartitionInfo& actual = info->partitions[p];
        const Offset start = actual.first_offset;
        ASSERT_GE(start, partition.log_start) << name << "/" << p << ": the log start went back";
        ASSERT_LE(start, partition.messages.size()) << name << "/" << p << ": the log start passed the end";
        if (start == partition.log_start) continue;
        ++tally_.retention_moves;
        const std::uint64_t remaining = partition.messages.size() - start;
        const bool kept_messages = stream.config.max_messages > 0 && remaining >= stream.config.max_messages;
        const bool kept_bytes = stream.config.max_bytes > 0 && actual.bytes >= stream.config.max_bytes;
        EXPECT_TRUE(kept_messages || kept_bytes)
            << name << "/" << p << ": retention moved the log start " << partition.log_start << " -> " << start << ", leaving "
            << remaining << " messages and " << actual.bytes << " bytes (max_messages " << stream.config.max_messages
            << ", max_bytes " << stream.config.max_bytes << ")";
        partition.log_start = start;
      }
    }
  }

  std::string random_subject(const std::string& stream) {
    switch (random_() % 4) {
      case 0: return "shared.s";
      case 1: return stream + ".a.b";
      default: return stream + ".x";
    }
  }

  void publish(std::size_t count) {
    if (model_.empty()) return;
    auto target = std::next(model_.begin(), static_cast<long>(random_() % model_.size()));
    std::vector<ModelMessage> outgoing(count);
    std::vector<std::vector<HeaderView>> header_views(count);
    std::vector<OutgoingMessage> messages(count);
    const TimestampMs low = log::system_clock_ms();
    for (std::size_t i = 0; i < count; ++i) {
      ModelMessage& m = outgoing[i];
      m.subject = random_subject(target->first);
      // Keys whenever a route has several partitions, so round robin (which starts at a random
      // partition) never makes the run irreproducible.
      bool needs_key = random_() % 2 == 0;
      for (const auto& [name, stream] : model_) {
        for (const std::string& pattern : stream.config.subjects) {
          if (base::subject_matches(pattern, m.subject) && stream.config.partitions > 1) needs_key = true;
        }
      }
      if (needs_key) m.key = "key" + std::to_string(random_() % 7);
      const std::size_t header_count = random_() % 4 == 0 ? 1 + random_() % 3 : 0;
      for (std::size_t h = 0; h < header_count; ++h) {
        m.headers.push_back(Header{"h" + std::to_string(h), std::string(random_() % 20, static_cast<char>('a' + random_() % 26))});
      }
      m.payload = make_payload(MessageId{0, sequence_++}, random_() % 400);
      if (random_() % 5 != 0) m.timestamp_ms = 1'600'000'000'000 + static_cast<TimestampMs>(sequence_ * 10) - static_cast<TimestampMs>(random_() % 500);
    }
    for (std::size_t i = 0; i < count; ++i) {
      for (const Header& header : outgoing[i].headers) header_views[i].push_back(HeaderView{header.name, header.value});
      messages[i].subject = outgoing[i].subject;
      if (outgoing[i].key) messages[i].key = *outgoing[i].key;
      messages[i].headers = header_views[i];
      messages[i].payload = outgoing[i].payload;
      messages[i].timestamp_ms = outgoing[i].timestamp_ms.value_or(timestamp_now);
    }
    auto positions = count == 1 ? store_->publish(messages[0]) : store_->publish_batch(messages);
    const TimestampMs high = log::system_clock_ms();
    ++tally_.publishes;
    // Where each message must land: every stream whose pattern matches its subject.
    std::map<std::pair<std::string, std::uint32_t>, std::vector<std::size_t>> expected;
    for (std::size_t i = 0; i < count; ++i) {
      for (const auto& [name, stream] : model_) {
        bool matches = false;
        for (const std::string& pattern : stream.config.subjects) matches = matches || base::subject_matches(pattern, outgoing[i].subject);
        if (!matches) continue;
        ASSERT_TRUE(outgoing[i].key.has_value() || stream.config.partitions == 1);
        const std::uint32_t partition = outgoing[i].key ? base::partition_for_key(*outgoing[i].key, stream.config.partitions) : 0;
        expected[{name, partition}].push_back(i);
      }
    }
    bool every_message_routed = true;
    for (std::size_t i = 0; i < count; ++i) {
      bool routed = false;
      for (const auto& [where, indexes] : expected) routed = routed || std::find(indexes.begin(), indexes.end(), i) != indexes.end();
      every_message_routed = every_message_routed && routed;
    }
    if (!every_message_routed) {
      // A batch is validated whole: one message no stream captures refuses all of it.
      ASSERT_FALSE(positions.is_ok()) << "a publish with an uncaptured subject was accepted";
      EXPECT_EQ(positions.status().code(), ErrorCode::no_matching_stream) << positions.status().to_string();
      return;
    }
    ASSERT_TRUE(positions.is_ok()) << positions.status().to_string();
    std::map<std::pair<std::string, std::uint32_t>, std::vector<std::size_t>> actual;
    for (const Position& position : *positions) {
      ModelStream& stream = model_.at(position.stream);
      ASSERT_LT(position.partition, stream.partitions.size());
      ModelPartition& partition = stream.partitions[position.partition];
      ASSERT_EQ(position.offset, partition.messages.size()) << "offset of " << position.stream << "/" << position.partition;
      ModelMessage stored = outgoing[position.message_index];
      stored.low = low;
      stored.high = high;
      partition.messages.push_back(std::move(stored));
      actual[{position.stream, position.partition}].push_back(position.message_index);
      ++figures_.acked;
      if (stream.config.fsync == FsyncPolicy::always) partition.durable_end = partition.messages.size();
    }
    EXPECT_EQ(actual, expected) << "routing or partitioning differs from the model";
  }

  ModelPartition* random_partition(std::string& name, std::uint32_t& p) {
    if (model_.empty()) return nullptr;
    auto it = std::next(model_.begin(), static_cast<long>(random_() % model_.size()));
    name = it->first;
    p = static_cast<std::uint32_t>(random_() % it->second.partitions.size());
    return &it->second.partitions[p];
  }

  void read_by_offset() {
    std::string name;
    std::uint32_t p = 0;
    ModelPartition* partition = random_partition(name, p);
    if (partition == nullptr) return;
    ++tally_.reads;
    const Offset end = partition->messages.size();
    const std::uint64_t span = end - partition->log_start + 1;
    Offset from = partition->log_start + random_() % span;
    const int edge = static_cast<int>(random_() % 10);
    if (edge == 0 && partition->log_start > 0) from = partition->log_start - 1 - random_() % partition->log_start;
    if (edge == 1) from = end + 1 + random_() % 5;
    ReadOptions options;
    options.max_messages = 1 + random_() % 60;
    options.max_bytes = random_() % 2 ? 1 + random_() % 3000 : 1 << 20;
    auto result = store_->read(name, p, from, options);
    if (from < partition->log_start || from > end) {
      ASSERT_FALSE(result.is_ok()) << "read " << name << "/" << p << " at " << from << " outside " << partition->log_start << ".." << end;
      EXPECT_EQ(result.status().code(), ErrorCode::offset_out_of_range);
      return;
    }
    ASSERT_TRUE(result.is_ok()) << result.status().to_string();
    EXPECT_EQ(result->log_start_offset, partition->log_start);
    EXPECT_EQ(result->high_watermark, end);
    const std::size_t count = result->messages.size();
    EXPECT_EQ(result->next_offset, from + count);
    ASSERT_LE(count, options.max_messages);
    ASSERT_LE(from + count, end);
    if (from < end) {
      ASSERT_GE(count, 1u) << "a read returned nothing before the end";
    }
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < count; ++i) {
      ASSERT_NO_FATAL_FAILURE(compare(name, p, from + i, partition->messages[from + i], result->messages[i]));
      bytes += result->messages[i].payload.size() + result->messages[i].subject.size() + 32;
    }
    if (count < options.max_messages && from + count < end) {
      EXPECT_GE(bytes, options.max_bytes) << "a read stopped early without reaching a limit";
    }
  }

  void read_by_time() {
    std::string name;
    std::uint32_t p = 0;
    ModelPartition* partition = random_partition(name, p);
    if (partition == nullptr) return;
    ++tally_.time_reads;
    const Offset end = partition->messages.size();
    TimestampMs time = 1'600'000'000'000 + static_cast<TimestampMs>(random_() % (sequence_ * 10 + 1000));
    if (random_() % 4 == 0 && end > partition->log_start) {
      time = *partition->messages[partition->log_start + random_() % (end - partition->log_start)].timestamp_ms;
    }
    if (random_() % 10 == 0) time = std::numeric_limits<TimestampMs>::max();
    Offset expected = end;
    for (Offset offset = partition->log_start; offset < end; ++offset) {
      if (*partition->messages[offset].timestamp_ms >= time) {
        expected = offset;
        break;
      }
    }
    auto answer = store_->resolve_start(name, p, StartPosition::from_time(time));
    ASSERT_TRUE(answer.is_ok()) << answer.status().to_string();
    ++figures_.index_checks;
    if (*answer != expected) ++figures_.index_mismatches;
    EXPECT_EQ(*answer, expected) << "resolve_start(" << name << "/" << p << ", time " << time << ")";
  }

  // ---- Comparison ----
  void compare(const std::string& name, std::uint32_t p, Offset offset, ModelMessage& expected, const Message& actual) {
    ASSERT_EQ(actual.offset, offset);
    EXPECT_EQ(actual.subject, expected.subject) << name << "/" << p << "@" << offset;
    EXPECT_EQ(actual.key, expected.key) << name << "/" << p << "@" << offset;
    EXPECT_EQ(actual.headers, expected.headers) << name << "/" << p << "@" << offset;
    ASSERT_EQ(actual.payload, expected.payload) << name << "/" << p << "@" << offset;
    if (!expected.timestamp_ms) {
      EXPECT_TRUE(actual.timestamp_ms >= expected.low && actual.timestamp_ms <= expected.high)
          << "store-stamped timestamp " << actual.timestamp_ms << " outside " << expected.low << ".." << expected.high;
      expected.timestamp_ms = actual.timestamp_ms;
    }
    EXPECT_EQ(actual.timestamp_ms, *expected.timestamp_ms) << name << "/" << p << "@" << offset;
  }

  void compare_all() {
    std::vector<StreamConfig> listed = store_->list_streams();
    ASSERT_EQ(listed.size(), model_.size()) << "the store lists another set of streams";
    for (const StreamConfig& config : listed) {
      auto found = model_.find(config.name);
      ASSERT_NE(found, model_.end()) << "unexpected stream " << config.name;
      EXPECT_EQ(config, found->second.config) << "stream " << config.name << " configuration";
    }
    for (auto& entry : model_) {
      const std::string& name = entry.first;  // not a structured binding: the lambda below captures it
      ModelStream& stream = entry.second;
      for (std::uint32_t p = 0; p < stream.partitions.size(); ++p) {
        ModelPartition& partition = stream.partitions[p];
        auto start = store_->resolve_start(name, p, StartPosition::from_beginning());
        auto end = store_->resolve_start(name, p, StartPosition::new_only());
        ASSERT_TRUE(start.is_ok() && end.is_ok());
        ASSERT_EQ(*start, partition.log_start) << name << "/" << p << " log start";
        ASSERT_EQ(*end, partition.messages.size()) << name << "/" << p << " high watermark";
        Offset next = partition.log_start;
        auto scanned = store_->scan(name, p, next, limits::read_messages_max, [&](const MessageView& view) {
          if (next < partition.messages.size()) compare(name, p, next, partition.messages[next], view.to_message());
          ++next;
          return ScanControl::proceed;
        });
        ASSERT_TRUE(scanned.is_ok()) << name << "/" << p << ": " << scanned.status().to_string();
        ASSERT_EQ(next, partition.messages.size()) << name << "/" << p << " scan ended early";
        tally_.compared += next - partition.log_start;
        figures_.messages_checked += next - partition.log_start;
      }
    }
  }

  std::uint64_t seed_;
  std::mt19937_64 random_;
  Tally& tally_;
  Figures& figures_;
  int step_ = 0;
  std::uint64_t sequence_ = 0;
  std::shared_ptr<FaultFileSystem> disk_ = std::make_shared<FaultFileSystem>();
  std::shared_ptr<ProcessFileSystem> process_;
  std::unique_ptr<Store> store_;
  std::map<std::string, ModelStream> model_;
};

TEST(Model, RandomOperationsMatchTheModel) {
  Figures figures("model");
  Tally tally;
  const int steps = static_cast<int>(environment_u64("CRASH_MODEL_STEPS", 250));
  for_each_seed(100, figures, [&](std::uint64_t seed) {
    ModelTest test(seed, tally, figures);
    test.run(steps);
  });
  figures.cycles = tally.steps;
  std::printf("model: %llu steps, %llu messages compared, %llu publishes, %llu reads by offset, %llu by time, %llu power "
              "losses (%llu unsynced messages lost), %llu process crashes, %llu clean restarts, %llu retention moves\n",
              static_cast<unsigned long long>(tally.steps), static_cast<unsigned long long>(tally.compared),
              static_cast<unsigned long long>(tally.publishes), static_cast<unsigned long long>(tally.reads),
              static_cast<unsigned long long>(tally.time_reads), static_cast<unsigned long long>(tally.power_losses),
              static_cast<unsigned long long>(tally.lost_unsynced), static_cast<unsigned long long>(tally.process_crashes),
              static_cast<unsigned long long>(tally.restarts), static_cast<unsigned long long>(tally.retention_moves));
  figures.print();
}

}  // namespace
}  // namespace msgstore::crash
