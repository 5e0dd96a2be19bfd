// Seeded model-based test: a random sequence of operations on the Store, compared after every
// step with a simple in-memory model (per partition: the messages by offset, the log start,
// how much of it is known durable, and which messages are gone for good).
//
// Operations: publish (single and batch; keys, headers, explicit and store-stamped timestamps;
// subjects captured by one or two streams, or by none; time to live, already expired or not;
// message ids, repeated to provoke duplicate suppression; tombstones on compacted streams),
// read by offset (in and out of range, with message and byte limits), read by time, queries
// (random predicates, both orders, paged by cursor to exhaustion, and bad queries), retention
// changes (update_stream of max_messages / max_bytes / partitions / indexed headers) and
// maintenance, compaction (Store::compact and the background share), erase (by key or header,
// removed now or later), durable consumers (create, fetch, ack, nak, drain, remove), message
// index files deleted or damaged on disk, stream create and delete, process crash, power
// loss, clean restart. Segments roll all the time (segment_bytes 4-12 KiB).
//
// The model predicts everything except where retention puts the log start (segment
// boundaries), what a power loss keeps of an fsync=interval/never partition's unsynced tail,
// and which superseded messages a background compaction pass has removed yet: there it accepts
// the store's answer if it is legal (retention keeps at least its limit and only advances on
// maintenance; a power loss keeps a prefix that holds everything durable; compaction removes
// only what the policy allows, only when it runs, and Store::compact removes all of it), then
// follows it. Erased messages never come back. On any divergence the failure names the seed
// and step; CRASH_SEED replays it.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <map>
#include <random>
#include <set>

#include "base/hash.h"
#include "base/subject.h"
#include "crash/checker.h"
#include "crash/harness.h"
#include "log/partition_log.h"
#include "msgstore/consumer.h"

namespace msgstore::crash {
namespace {

const std::filesystem::path data_directory = "/data";
const char* const stream_names[] = {"m0", "m1", "m2", "m3"};
const char* const header_names[] = {"h0", "h1", "h2"};
constexpr std::int64_t hour_ms = 3600 * 1000;
// A TTL that expires tens of years after the test's explicit timestamps (2020): never during a run.
constexpr std::int64_t lasting_ttl_ms = 50ll * 365 * 24 * hour_ms;
constexpr std::int64_t consumer_ack_wait_ms = hour_ms;  // no redelivery by timeout during a run
constexpr std::size_t drain_rounds_max = 50;

struct ModelMessage {
  std::string subject;
  std::optional<std::string> key;
  std::vector<Header> headers;
  std::string payload;
  std::optional<TimestampMs> timestamp_ms;  // nullopt: stamped by the store within [low, high]
  TimestampMs low = 0;
  TimestampMs high = 0;
  bool expired = false;  // its time to live had passed when it was published
  bool gone = false;     // erased or compacted away: never readable again
  bool erased = false;

  bool visible() const { return !gone && !expired; }
  std::optional<std::string> header(std::string_view name) const {
    for (const Header& header : headers) {
      if (header.name == name) return header.value;
    }
    return std::nullopt;
  }
  bool tombstone() const { return payload.empty() && header(tombstone_header_name).has_value(); }
  TimestampMs time_or_low() const { return timestamp_ms.value_or(low); }
};

struct ModelPartition {
  std::vector<ModelMessage> messages;  // index = offset
  Offset log_start = 0;
  Offset durable_end = 0;  // everything below was read back after a restart, or synced
};

// Where a stream stored a message id: a duplicate must answer with it. `this_session`: stored
// since the last open (the in-memory window certainly holds it); after a restart the table is
// rebuilt from the log by time, so an older id may or may not be remembered.
struct DedupRecord {
  std::uint32_t partition = 0;
  Offset offset = 0;
  bool this_session = true;
};

struct ModelStream {
  StreamConfig config;
  std::vector<ModelPartition> partitions;
  std::map<std::string, DedupRecord> dedup;
  bool erased_any = false;  // an erase ran: segment rewrites may shrink it
};

// A durable consumer, per partition: what was acked (certainly, or perhaps: an ack a power loss
// may have taken), what is out to us (token -> offset), what must come again (nak'd), and what
// may or may not come again (deliveries a restart made uncertain).
struct ModelConsumerPartition {
  std::set<Offset> acked;
  std::set<Offset> maybe_acked;
  std::map<Offset, std::string> out;  // offset -> current token
  std::set<Offset> due;
  std::set<Offset> unsure;
};

struct ModelConsumer {
  std::string filter;
  std::vector<ModelConsumerPartition> partitions;
};

struct Tally {
  std::uint64_t steps = 0;
  std::uint64_t compared = 0;
  std::uint64_t publishes = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t expired = 0;
  std::uint64_t reads = 0;
  std::uint64_t time_reads = 0;
  std::uint64_t queries = 0;
  std::uint64_t query_pages = 0;
  std::uint64_t query_matches = 0;
  std::uint64_t query_errors = 0;
  std::uint64_t compactions = 0;
  std::uint64_t compacted_messages = 0;
  std::uint64_t erases = 0;
  std::uint64_t erased_messages = 0;
  std::uint64_t index_files_damaged = 0;
  std::uint64_t fetched = 0;
  std::uint64_t acks = 0;
  std::uint64_t naks = 0;
  std::uint64_t drains = 0;
  std::uint64_t power_losses = 0;
  std::uint64_t process_crashes = 0;
  std::uint64_t restarts = 0;
  std::uint64_t retention_moves = 0;
  std::uint64_t lost_unsynced = 0;
};

// What a step may have done to superseded messages of compacted streams.
enum class Vanish : std::uint8_t { none, allowed, required };

class ModelTest {
 public:
  ModelTest(std::uint64_t seed, Tally& tally, Figures& figures)
      : seed_(seed), random_(seed), tally_(tally), figures_(figures) {}

  void run(int steps) {
    disk_->make_all_durable();
    ASSERT_NO_FATAL_FAILURE(open());
    for (int step = 0; step < steps; ++step) {
      step_ = step;
      compaction_ran_ = false;
      compacted_stream_.clear();
      std::string description;
      detail_.clear();
      const int failures_before = failures_so_far();
      one_step(description);
      description += detail_;
      if (trace_) std::fprintf(stderr, "seed %llu step %d: %s\n", static_cast<unsigned long long>(seed_), step, description.c_str());
      ASSERT_EQ(failures_so_far(), failures_before) << "seed " << seed_ << " step " << step << " failed: " << description;
      SCOPED_TRACE("seed " + std::to_string(seed_) + " step " + std::to_string(step) + ": " + description);
      ASSERT_NO_FATAL_FAILURE(compare_all());
      ASSERT_NO_FATAL_FAILURE(check_consumers());
      ++tally_.steps;
    }
  }

 private:
  // ---- Operations ----
  void one_step(std::string& description) {
    SCOPED_TRACE("seed " + std::to_string(seed_) + " step " + std::to_string(step_));
    const int choice = static_cast<int>(random_() % 120);
    if (model_.empty() || choice < 6) {
      description = "create stream";
      create_stream();
    } else if (choice < 38) {
      description = "publish";
      publish(random_() % 2 == 0 ? 1 : 2 + random_() % 24);
    } else if (choice < 41) {
      description = "publish to a subject no stream captures";
      OutgoingMessage message;
      message.subject = "nowhere.x";
      message.payload = "x";
      auto positions = store_->publish(message);
      ASSERT_FALSE(positions.is_ok());
      EXPECT_EQ(positions.status().code(), ErrorCode::no_matching_stream);
    } else if (choice < 49) {
      description = "read by offset";
      read_by_offset();
    } else if (choice < 53) {
      description = "read by time";
      read_by_time();
    } else if (choice < 66) {
      description = "query";
      query();
    } else if (choice < 71) {
      description = "update stream";
      update_stream();
    } else if (choice < 77) {
      description = "maintenance";
      maintenance();
    } else if (choice < 80) {
      description = "compact";
      compact();
    } else if (choice < 83) {
      description = "erase";
      erase();
    } else if (choice < 86) {
      description = "damage or delete a message index file";
      damage_index_file();
    } else if (choice < 88) {
      description = "create or remove a consumer";
      random_() % 4 == 0 ? remove_consumer() : create_consumer();
    } else if (choice < 95) {
      description = "fetch and settle";
      fetch_and_settle();
    } else if (choice < 97) {
      description = "drain a consumer";
      drain();
    } else if (choice < 99) {
      description = "delete stream";
      delete_stream();
    } else if (choice < 106) {
      description = "process crash";
      ++tally_.process_crashes;
      process_->process_crash();
      ASSERT_NO_FATAL_FAILURE(reopen(Event::process_crash));
    } else if (choice < 114) {
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
      // Ids whose message a power loss took are forgotten; the rest may or may not be
      // remembered (the table is rebuilt from the log by time).
      for (auto it = stream.dedup.begin(); it != stream.dedup.end();) {
        if (it->second.offset >= stream.partitions[it->second.partition].messages.size()) {
          it = stream.dedup.erase(it);
        } else {
          it->second.this_session = false;
          ++it;
        }
      }
    }
    for (auto& [where, consumer] : consumers_) {
      const ModelStream& stream = model_.at(where.first);
      for (std::uint32_t p = 0; p < consumer.partitions.size(); ++p) {
        ModelConsumerPartition& cursor = consumer.partitions[p];
        const Offset end = stream.partitions[p].messages.size();
        auto drop_from_end = [end](auto& container) { container.erase(container.lower_bound(end), container.end()); };
        drop_from_end(cursor.acked);
        drop_from_end(cursor.maybe_acked);
        drop_from_end(cursor.out);
        drop_from_end(cursor.due);
        drop_from_end(cursor.unsure);
        // A nak'd message is pending again after a restart: it gets a fresh ack wait.
        cursor.unsure.insert(cursor.due.begin(), cursor.due.end());
        cursor.due.clear();
        if (event != Event::power_loss) continue;
        // Deliveries are not synced on their own; acks only as the stream's fsync policy says.
        for (const auto& [offset, token] : cursor.out) cursor.unsure.insert(offset);
        cursor.out.clear();
        if (stream.config.fsync != FsyncPolicy::always) {
          cursor.maybe_acked.insert(cursor.acked.begin(), cursor.acked.end());
          cursor.acked.clear();
        }
      }
    }
  }

  // A stream to publish to, change or erase in: one of the test's own (not the audit stream).
  ModelStream* random_user_stream(std::string& name) {
    std::vector<std::string> names;
    for (const auto& entry : model_) {
      if (entry.first != audit_stream_name) names.push_back(entry.first);
    }
    if (names.empty()) return nullptr;
    name = names[random_() % names.size()];
    return &model_.at(name);
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
    config.indexes_enabled = random_() % 8 != 0;
    config.indexed_headers = random_indexed_headers();
    if (random_() % 5 == 0) config.dedup_window_ms = 0;
    if (random_() % 3 == 0) {
      config.cleanup = CleanupPolicy::compact;
      // Store-stamped tombstones stay (the delay is at least an hour); explicit 2020 ones expire.
      if (random_() % 2 == 0) config.tombstone_retention_ms = hour_ms * static_cast<std::int64_t>(1 + random_() % 48);
    }
    return config;
  }

  std::vector<std::string> random_indexed_headers() {
    std::vector<std::string> names;
    for (const char* header : header_names) {
      if (random_() % 2 == 0) names.push_back(header);
    }
    return names;
  }

  void create_stream() {
    const std::string name = stream_names[random_() % 4];
    StreamConfig config = random_config(name);
    detail_ = " " + name + " partitions=" + std::to_string(config.partitions) + " fsync=" +
              fsync_policy_to_string(config.fsync, config.fsync_interval_ms) + " cleanup=" + cleanup_policy_to_string(config.cleanup) +
              " segment_bytes=" + std::to_string(config.segment_bytes) + " max_messages=" + std::to_string(config.max_messages) +
              " max_bytes=" + std::to_string(config.max_bytes);
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
    for (auto it = consumers_.begin(); it != consumers_.end();) {
      it = it->first.first == name ? consumers_.erase(it) : std::next(it);
    }
  }

  void update_stream() {
    std::string name;
    ModelStream* stream = random_user_stream(name);
    if (stream == nullptr) return;
    StreamConfig config = stream->config;
    const char* const fields[] = {" max_messages", " max_bytes", " partitions", " indexed_headers", " segment_bytes"};
    const std::size_t field = random_() % 5;
    switch (field) {
      case 0: config.max_messages = random_() % 2 ? 5 + random_() % 60 : 0; break;
      case 1: config.max_bytes = random_() % 2 ? 4096 + random_() % 20000 : 0; break;
      case 2: config.partitions += static_cast<std::uint32_t>(random_() % 2); break;
      case 3: config.indexed_headers = random_indexed_headers(); break;
      default: config.segment_bytes = limits::segment_bytes_min * (1 + random_() % 3); break;
    }
    detail_ = " " + name + fields[field];
    ASSERT_TRUE(store_->update_stream(config).is_ok());
    stream->config = config;
    stream->partitions.resize(config.partitions);
    for (auto& [where, consumer] : consumers_) {
      if (where.first == name) consumer.partitions.resize(config.partitions);
    }
    if (random_() % 2 == 0) maintenance();
  }

  void maintenance() {
    // Partition sizes before the pass: compaction and erase rewrites in the same pass may shrink
    // what retention by bytes left, so for those streams the size before counts.
    std::map<std::pair<std::string, std::uint32_t>, std::uint64_t> bytes_before;
    for (const auto& entry : model_) {
      auto info = store_->describe_stream(entry.first);
      ASSERT_TRUE(info.is_ok());
      for (const PartitionInfo& partition : info->partitions) bytes_before[{entry.first, partition.partition}] = partition.bytes;
    }
    ASSERT_TRUE(store_->run_maintenance().is_ok());
    compaction_ran_ = true;
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
        const bool rewrites = stream.config.cleanup == CleanupPolicy::compact || stream.erased_any;
        const std::uint64_t bytes = rewrites ? std::max(actual.bytes, bytes_before[{name, p}]) : actual.bytes;
        const bool kept_bytes = stream.config.max_bytes > 0 && bytes >= stream.config.max_bytes;
        // Retention also moves past front segments with nothing readable left (expired, erased
        // or compacted away, also by this pass's compaction).
        const std::vector<bool> removable = compactable(stream, partition);
        bool nothing_readable = true;
        for (Offset offset = partition.log_start; offset < start; ++offset) {
          nothing_readable = nothing_readable && (!partition.messages[offset].visible() || removable[offset]);
        }
        EXPECT_TRUE(kept_messages || kept_bytes || nothing_readable)
            << name << "/" << p << ": retention moved the log start " << partition.log_start << " -> " << start << ", leaving "
            << remaining << " messages and " << actual.bytes << " bytes (max_messages " << stream.config.max_messages
            << ", max_bytes " << stream.config.max_bytes << ")";
        partition.log_start = start;
      }
    }
  }

  void compact() {
    std::string name;
    ModelStream* stream = random_user_stream(name);
    if (stream == nullptr) return;
    detail_ = " " + name;
    auto report = store_->compact(name);
    if (stream->config.cleanup != CleanupPolicy::compact) {
      ASSERT_FALSE(report.is_ok()) << "compact() of a cleanup=delete stream";
      EXPECT_EQ(report.status().code(), ErrorCode::invalid_argument) << report.status().to_string();
      return;
    }
    ASSERT_TRUE(report.is_ok()) << report.status().to_string();
    ++tally_.compactions;
    compacted_stream_ = name;
  }

  void erase() {
    std::string name;
    ModelStream* stream = random_user_stream(name);
    if (stream == nullptr) return;
    EraseRequest request;
    request.stream = name;
    request.actor = "auditor-" + std::to_string(random_() % 3);
    request.remove_now = random_() % 2 == 0;
    if (random_() % 2 == 0) {
      request.criteria.key = "key" + std::to_string(random_() % 8);
    } else {
      request.criteria.header = Header{header_names[random_() % 3], random_header_value(*stream)};
    }
    auto matches = [&request](const ModelMessage& message) {
      if (request.criteria.key) return message.key == request.criteria.key;
      return std::any_of(message.headers.begin(), message.headers.end(), [&request](const Header& header) {
        return header == *request.criteria.header;
      });
    };
    detail_ = " " + name + " " + (request.criteria.key ? "key=" + *request.criteria.key : request.criteria.header->name + "=" +
                                  request.criteria.header->value) + (request.remove_now ? " now" : "");
    auto report = store_->erase(request);
    ASSERT_TRUE(report.is_ok()) << report.status().to_string();
    stream->erased_any = true;
    ++tally_.erases;
    std::uint64_t matched = 0;
    for (ModelPartition& partition : stream->partitions) {
      for (Offset offset = partition.log_start; offset < partition.messages.size(); ++offset) {
        ModelMessage& message = partition.messages[offset];
        if (!message.visible() || !matches(message)) continue;
        message.gone = true;
        message.erased = true;
        ++matched;
      }
    }
    tally_.erased_messages += matched;
    EXPECT_EQ(report->matched_messages, matched) << "erase of " << name << " matched another number of messages";
    if (request.remove_now) {
      EXPECT_EQ(report->progress.offsets_pending, 0u) << "erase with remove_now left erased offsets in segments";
    }
    // The audit record: in the audit stream (created on demand), naming who and what, never the content.
    if (!model_.count(std::string(audit_stream_name))) {
      ModelStream& audit = model_[std::string(audit_stream_name)];
      audit.config.name = std::string(audit_stream_name);
      audit.config.subjects = {std::string(audit_stream_name) + ".>"};
      audit.partitions.resize(1);
    }
    ModelPartition& audit = model_.at(std::string(audit_stream_name)).partitions[0];
    ASSERT_EQ(report->audit_offset, audit.messages.size()) << "audit record offset";
    auto read = store_->read(audit_stream_name, 0, report->audit_offset, ReadOptions{.max_messages = 1});
    ASSERT_TRUE(read.is_ok() && read->messages.size() == 1) << "the audit record is not readable";
    const Message& record = read->messages.front();
    const std::string criteria =
        request.criteria.key ? "key=" + *request.criteria.key : "header " + request.criteria.header->name + "=" + request.criteria.header->value;
    const std::string payload = "{\"action\":\"erase\",\"actor\":\"" + request.actor + "\",\"stream\":\"" + name + "\",\"criteria\":\"" +
                                criteria + "\",\"time_ms\":" + std::to_string(record.timestamp_ms) +
                                ",\"matched_messages\":" + std::to_string(matched) + "}";
    EXPECT_EQ(record.payload, payload);
    ModelMessage expected;
    expected.subject = "_audit.erase";
    expected.headers = {{"actor", request.actor}, {"stream", name}, {"matched_messages", std::to_string(matched)}};
    expected.payload = payload;
    expected.timestamp_ms = record.timestamp_ms;
    audit.messages.push_back(std::move(expected));
  }

  // Message index files are derived data: deleted or damaged, they are rebuilt from the log.
  void damage_index_file() {
    std::vector<std::filesystem::path> index_files;
    for (const std::filesystem::path& path : disk_->all_files()) {
      if (path.extension() == ".message_index") index_files.push_back(path);
    }
    if (index_files.empty()) return;
    const std::filesystem::path& path = index_files[random_() % index_files.size()];
    ++tally_.index_files_damaged;
    const std::size_t size = disk_->current_contents(path).value_or("").size();
    const std::size_t how = random_() % 3;
    detail_ = " " + path.string() + (how == 0 ? " deleted" : how == 1 ? " bit flipped" : " overwritten");
    switch (how) {
      case 0: ASSERT_TRUE(disk_->remove(path).is_ok()); break;
      case 1:
        if (size > 0) {
          ASSERT_TRUE(disk_->flip_bit(path, random_() % size, static_cast<unsigned>(random_() % 8)).is_ok());
        }
        break;
      default:
        if (size > 0) {
          ASSERT_TRUE(disk_->corrupt(path, random_() % size, std::string(1 + random_() % 16, '\x5a')).is_ok());
        }
        break;
    }
  }

  std::string random_subject(const std::string& stream) {
    switch (random_() % 4) {
      case 0: return "shared.s";
      case 1: return stream + ".a.b";
      default: return stream + ".x";
    }
  }

  // A value some message carries (so equality queries and erases hit), or a random one.
  std::string random_header_value(const ModelStream& stream) {
    if (random_() % 4 != 0) {
      for (int attempt = 0; attempt < 8; ++attempt) {
        const ModelPartition& partition = stream.partitions[random_() % stream.partitions.size()];
        if (partition.messages.empty()) continue;
        const ModelMessage& message = partition.messages[random_() % partition.messages.size()];
        if (!message.headers.empty()) return message.headers[random_() % message.headers.size()].value;
      }
    }
    return std::string(random_() % 20, static_cast<char>('a' + random_() % 26));
  }

  void publish(std::size_t count) {
    std::string target;
    ModelStream* target_stream = random_user_stream(target);
    if (target_stream == nullptr) return;
    detail_ = " " + target + " x" + std::to_string(count);
    const bool target_compacts = target_stream->config.cleanup == CleanupPolicy::compact;
    std::vector<ModelMessage> outgoing(count);
    std::vector<std::vector<HeaderView>> header_views(count);
    std::vector<OutgoingMessage> messages(count);
    const TimestampMs low = log::system_clock_ms();
    for (std::size_t i = 0; i < count; ++i) {
      ModelMessage& m = outgoing[i];
      m.subject = random_subject(target);
      // Keys whenever a route has several partitions, so round robin (which starts at a random
      // partition) never makes the run irreproducible.
      bool needs_key = random_() % 2 == 0 || target_compacts;
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
      if (m.key && target_compacts && random_() % 6 == 0) {
        m.payload.clear();
        m.headers.push_back(Header{std::string(tombstone_header_name), ""});
      }
      if (random_() % 8 == 0) {
        // Time to live: already passed (explicit 2020 timestamps), or far beyond the run.
        std::int64_t ttl_ms = lasting_ttl_ms;
        if (!m.timestamp_ms) {
          ttl_ms = 24 * hour_ms;
        } else if (random_() % 2 == 0) {
          ttl_ms = 1 + static_cast<std::int64_t>(random_() % 1000);
          m.expired = true;
        }
        m.headers.push_back(Header{std::string(ttl_header), std::to_string(ttl_ms)});
      }
      if (random_() % 6 == 0) m.headers.push_back(Header{std::string(message_id_header), "id" + std::to_string(random_() % 24)});
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
    std::vector<std::map<std::string, std::uint32_t>> expected(count);
    bool every_message_routed = true;
    for (std::size_t i = 0; i < count; ++i) {
      for (const auto& [name, stream] : model_) {
        bool matches = false;
        for (const std::string& pattern : stream.config.subjects) matches = matches || base::subject_matches(pattern, outgoing[i].subject);
        if (!matches) continue;
        ASSERT_TRUE(outgoing[i].key.has_value() || stream.config.partitions == 1);
        expected[i][name] = outgoing[i].key ? base::partition_for_key(*outgoing[i].key, stream.config.partitions) : 0;
      }
      every_message_routed = every_message_routed && !expected[i].empty();
    }
    if (!every_message_routed) {
      // A batch is validated whole: one message no stream captures refuses all of it.
      ASSERT_FALSE(positions.is_ok()) << "a publish with an uncaptured subject was accepted";
      EXPECT_EQ(positions.status().code(), ErrorCode::no_matching_stream) << positions.status().to_string();
      return;
    }
    ASSERT_TRUE(positions.is_ok()) << positions.status().to_string();
    std::vector<std::vector<Position>> by_message(count);
    for (const Position& position : *positions) {
      ASSERT_LT(position.message_index, count);
      by_message[position.message_index].push_back(position);
    }
    for (std::size_t i = 0; i < count; ++i) {
      // A duplicate answers with its original's position, which another key may have put elsewhere.
      std::map<std::string, std::uint32_t> actual;
      for (const Position& position : by_message[i]) {
        actual[position.stream] = position.duplicate ? expected[i][position.stream] : position.partition;
      }
      ASSERT_EQ(actual, expected[i]) << "routing or partitioning of message " << i << " differs from the model";
      ASSERT_EQ(by_message[i].size(), expected[i].size()) << "message " << i << " landed twice in one stream";
      const std::optional<std::string> id = outgoing[i].header(message_id_header);
      for (const Position& position : by_message[i]) {
        ModelStream& stream = model_.at(position.stream);
        ModelPartition& partition = stream.partitions[position.partition];
        const bool dedup_on = id.has_value() && stream.config.dedup_window_ms > 0;
        auto record = dedup_on ? stream.dedup.find(*id) : stream.dedup.end();
        const bool remembered = record != stream.dedup.end() && record->second.this_session;
        if (position.duplicate) {
          ASSERT_TRUE(dedup_on) << "message " << i << " answered duplicate without an id or with dedup off in " << position.stream;
          ++tally_.duplicates;
          if (remembered) {
            EXPECT_EQ(position.partition, record->second.partition) << "duplicate of " << *id << " in " << position.stream;
            EXPECT_EQ(position.offset, record->second.offset) << "duplicate of " << *id << " in " << position.stream;
          } else {
            // After a restart: it must at least point at a message of ours with that id.
            ASSERT_LT(position.offset, partition.messages.size()) << "duplicate of " << *id << " points past the end";
            EXPECT_EQ(partition.messages[position.offset].header(message_id_header), id)
                << "duplicate of " << *id << " points at " << position.stream << "/" << position.partition << "@" << position.offset;
          }
          continue;
        }
        ASSERT_FALSE(remembered) << "id " << *id << " stored again in " << position.stream << " within the dedup window (first at "
                                 << record->second.partition << "@" << record->second.offset << ")";
        ASSERT_EQ(position.offset, partition.messages.size()) << "offset of " << position.stream << "/" << position.partition;
        ModelMessage stored = outgoing[i];
        stored.low = low;
        stored.high = high;
        partition.messages.push_back(std::move(stored));
        if (dedup_on) stream.dedup[*id] = DedupRecord{position.partition, position.offset, true};
        if (outgoing[i].expired) ++tally_.expired;
        ++figures_.acked;
        if (stream.config.fsync == FsyncPolicy::always) partition.durable_end = partition.messages.size();
      }
    }
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
    // The readable messages from `from`: gaps (erased, compacted, expired) are skipped.
    std::vector<Offset> readable;
    for (Offset offset = from; offset < end && readable.size() <= options.max_messages; ++offset) {
      if (partition->messages[offset].visible()) readable.push_back(offset);
    }
    const std::size_t count = result->messages.size();
    ASSERT_LE(count, options.max_messages);
    ASSERT_LE(count, readable.size()) << "a read returned more than the readable messages";
    if (!readable.empty()) {
      ASSERT_GE(count, 1u) << "a read returned nothing before the end";
    }
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < count; ++i) {
      ASSERT_EQ(result->messages[i].offset, readable[i]) << "read " << name << "/" << p << " from " << from << ", message " << i;
      ASSERT_NO_FATAL_FAILURE(compare(name, p, readable[i], partition->messages[readable[i]], result->messages[i]));
      bytes += result->messages[i].payload.size() + result->messages[i].subject.size() + 32;
    }
    const Offset next_low = count > 0 ? readable[count - 1] + 1 : from;
    const Offset next_high = count < readable.size() ? readable[count] : end;
    EXPECT_TRUE(result->next_offset >= next_low && result->next_offset <= next_high)
        << "next_offset " << result->next_offset << " outside " << next_low << ".." << next_high;
    if (count < options.max_messages && count < readable.size()) {
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
      time = partition->messages[partition->log_start + random_() % (end - partition->log_start)].time_or_low();
    }
    if (random_() % 10 == 0) time = std::numeric_limits<TimestampMs>::max();
    // The first readable message at or after `time`. Expired messages are hidden from reads but
    // may still be in their segment, so a lookup may also stop at one of them before it.
    Offset expected = end;
    std::set<Offset> also_legal;
    for (Offset offset = partition->log_start; offset < end; ++offset) {
      const ModelMessage& message = partition->messages[offset];
      if (message.gone || *message.timestamp_ms < time) continue;
      if (message.expired) {
        also_legal.insert(offset);
        continue;
      }
      expected = offset;
      break;
    }
    auto answer = store_->resolve_start(name, p, StartPosition::from_time(time));
    ASSERT_TRUE(answer.is_ok()) << answer.status().to_string();
    ++figures_.index_checks;
    const bool legal = *answer == expected || also_legal.count(*answer) > 0;
    if (!legal) ++figures_.index_mismatches;
    EXPECT_TRUE(legal) << "resolve_start(" << name << "/" << p << ", time " << time << ") = " << *answer << ", expected " << expected;
  }

  // ---- Queries: the answer must be what a full scan of the model finds ----
  struct ExpectedMatch {
    std::string stream;
    std::uint32_t partition = 0;
    Offset offset = 0;
  };

  Query random_query(bool& expect_invalid) {
    Query query;
    expect_invalid = false;
    const ModelStream* scope_stream = nullptr;
    if (random_() % 5 != 0) {
      auto it = std::next(model_.begin(), static_cast<long>(random_() % model_.size()));
      query.stream = it->first;
      scope_stream = &it->second;
    }
    if (random_() % 4 == 0) {
      const std::uint32_t partitions = scope_stream ? scope_stream->config.partitions : 3;
      query.partition = static_cast<std::uint32_t>(random_() % (partitions + 1));
    }
    const TimestampMs time_base = 1'600'000'000'000;
    const TimestampMs time_span = static_cast<TimestampMs>(sequence_ * 10 + 1000);
    if (random_() % 4 == 0) {
      if (random_() % 2) query.from_time_ms = time_base + static_cast<TimestampMs>(random_() % time_span);
      if (random_() % 2) query.to_time_ms = query.from_time_ms.value_or(time_base) + static_cast<TimestampMs>(random_() % time_span);
      if (random_() % 8 == 0) query.to_time_ms = std::numeric_limits<TimestampMs>::max();
    }
    if (random_() % 4 == 0) {
      const Offset high = sequence_ + 2;
      if (random_() % 2) query.from_offset = random_() % high;
      if (random_() % 2) query.to_offset = query.from_offset.value_or(0) + random_() % high;
    }
    if (random_() % 3 == 0) {
      const std::string name = query.stream.empty() || query.stream == audit_stream_name ? stream_names[random_() % 4] : query.stream;
      const char* const patterns[] = {"shared.s", "shared.*", ">", "*.x", "_audit.erase"};
      switch (random_() % 4) {
        case 0: query.subject_pattern = patterns[random_() % 5]; break;
        case 1: query.subject_pattern = name + ".x"; break;
        case 2: query.subject_pattern = name + ".a.b"; break;
        default: query.subject_pattern = name + (random_() % 2 ? ".*" : ".>"); break;
      }
    }
    if (random_() % 3 == 0) query.key = "key" + std::to_string(random_() % 8);
    if (random_() % 4 == 0) {
      const ModelStream& source = scope_stream ? *scope_stream : std::next(model_.begin(), static_cast<long>(random_() % model_.size()))->second;
      for (std::size_t count = 1 + random_() % 2; count > 0; --count) {
        query.header_equals.push_back(Header{header_names[random_() % 3], random_header_value(source)});
      }
    }
    if (random_() % 6 == 0) {
      // A piece of a payload ("p0-s000000123|..."), or text no payload holds.
      query.payload_contains = random_() % 4 == 0 ? std::string("no-such-text") : "s" + std::to_string(random_() % (sequence_ + 1));
    }
    query.order = random_() % 2 ? QueryOrder::newest_first : QueryOrder::oldest_first;
    query.limit = random_() % 4 == 0 ? 1000 : 1 + random_() % 20;
    query.allow_scan = random_() % 3 == 0;
    // Bad queries: clear errors.
    if (random_() % 25 == 0) {
      query.from_offset = 10;
      query.to_offset = random_() % 11;
      expect_invalid = true;
    }
    if (random_() % 25 == 0) {
      query.from_time_ms = time_base + 100;
      query.to_time_ms = time_base + static_cast<TimestampMs>(random_() % 101);
      expect_invalid = true;
    }
    if (random_() % 25 == 0) {
      query.cursor = random_() % 2 ? "not a cursor!" : "AAAAAAAAAAAAAAAAAAAAAAAAAAAA";
      expect_invalid = true;
    }
    return query;
  }

  // What the model knows of one message, for failure messages.
  std::string state_of(const std::string& name, std::uint32_t p, Offset offset) const {
    auto found = model_.find(name);
    if (found == model_.end() || p >= found->second.partitions.size()) return "no such partition in the model";
    const ModelPartition& partition = found->second.partitions[p];
    if (offset >= partition.messages.size()) return "past the model's end";
    if (offset < partition.log_start) return "below the log start";
    const ModelMessage& message = partition.messages[offset];
    return message.erased ? "erased" : message.gone ? "compacted away" : message.expired ? "expired" : "readable";
  }

  static std::string describe(const Query& query) {
    std::string text = "stream=" + query.stream;
    if (query.partition) text += " partition=" + std::to_string(*query.partition);
    if (query.from_time_ms) text += " from_time=" + std::to_string(*query.from_time_ms);
    if (query.to_time_ms) text += " to_time=" + std::to_string(*query.to_time_ms);
    if (query.from_offset) text += " from_offset=" + std::to_string(*query.from_offset);
    if (query.to_offset) text += " to_offset=" + std::to_string(*query.to_offset);
    if (!query.subject_pattern.empty()) text += " subject=" + query.subject_pattern;
    if (query.key) text += " key=" + *query.key;
    for (const Header& header : query.header_equals) text += " header:" + header.name + "=" + header.value;
    if (query.payload_contains) text += " contains=" + *query.payload_contains;
    text += query.order == QueryOrder::newest_first ? " newest_first" : " oldest_first";
    text += " limit=" + std::to_string(query.limit) + (query.allow_scan ? " allow_scan" : "");
    if (!query.cursor.empty()) text += " cursor=" + query.cursor;
    return text;
  }

  // The status a query must end with before delivering anything; ok when it must run.
  ErrorCode expected_query_error(const Query& query, bool expect_invalid) {
    if (expect_invalid) return ErrorCode::invalid_argument;
    if (query.from_offset && query.to_offset && *query.from_offset >= *query.to_offset) return ErrorCode::invalid_argument;
    if (query.from_time_ms && query.to_time_ms && *query.from_time_ms >= *query.to_time_ms) return ErrorCode::invalid_argument;
    if (!query.stream.empty() && query.partition && *query.partition >= model_.at(query.stream).partitions.size()) {
      return ErrorCode::partition_not_found;
    }
    for (const auto& [name, stream] : model_) {
      if (!query.stream.empty() && name != query.stream) continue;
      const auto& indexed = stream.config.indexed_headers;
      for (const Header& wanted : query.header_equals) {
        const bool is_indexed = stream.config.indexes_enabled && std::find(indexed.begin(), indexed.end(), wanted.name) != indexed.end();
        if (!is_indexed && !query.allow_scan) return ErrorCode::invalid_argument;
      }
      if (!stream.config.indexes_enabled && query.key && !query.allow_scan) return ErrorCode::invalid_argument;
    }
    return ErrorCode::ok;
  }

  static bool query_matches(const Query& query, Offset offset, const ModelMessage& message) {
    if (!message.visible()) return false;
    const TimestampMs time = *message.timestamp_ms;
    if (query.from_time_ms && time < *query.from_time_ms) return false;
    if (query.to_time_ms && time >= *query.to_time_ms) return false;
    if (query.from_offset && offset < *query.from_offset) return false;
    if (query.to_offset && offset >= *query.to_offset) return false;
    if (!query.subject_pattern.empty() && !base::subject_matches(query.subject_pattern, message.subject)) return false;
    if (query.key && message.key != query.key) return false;
    for (const Header& wanted : query.header_equals) {
      if (std::find(message.headers.begin(), message.headers.end(), wanted) == message.headers.end()) return false;
    }
    if (query.payload_contains && message.payload.find(*query.payload_contains) == std::string::npos) return false;
    return true;
  }

  std::vector<ExpectedMatch> model_answer(const Query& query) {
    std::vector<ExpectedMatch> answer;
    for (const auto& [name, stream] : model_) {
      if (!query.stream.empty() && name != query.stream) continue;
      for (std::uint32_t p = 0; p < stream.partitions.size(); ++p) {
        if (query.partition && p != *query.partition) continue;
        const ModelPartition& partition = stream.partitions[p];
        std::vector<ExpectedMatch> here;
        for (Offset offset = partition.log_start; offset < partition.messages.size(); ++offset) {
          if (query_matches(query, offset, partition.messages[offset])) here.push_back({name, p, offset});
        }
        if (query.order == QueryOrder::newest_first) std::reverse(here.begin(), here.end());
        answer.insert(answer.end(), here.begin(), here.end());
      }
    }
    return answer;
  }

  void query() {
    bool expect_invalid = false;
    Query query = random_query(expect_invalid);
    ++tally_.queries;
    detail_ = " " + describe(query);
    const ErrorCode error = expected_query_error(query, expect_invalid);
    const std::vector<ExpectedMatch> expected = error == ErrorCode::ok ? model_answer(query) : std::vector<ExpectedMatch>{};
    // Page to exhaustion; sometimes the callback stops early and the cursor continues.
    std::size_t delivered = 0;
    const int failures_before = failures_so_far();
    for (std::size_t page = 0;; ++page) {
      ASSERT_LE(page, expected.size() + 2) << "query paging does not end";
      const std::size_t stop_after = random_() % 5 == 0 ? 1 + random_() % query.limit : 0;
      std::size_t on_page = 0;
      auto result = store_->query(query, [&](const QueryMatch& match) {
        ++on_page;
        if (delivered < expected.size()) {
          const ExpectedMatch& want = expected[delivered];
          EXPECT_TRUE(match.stream == want.stream && match.partition == want.partition && match.message.offset == want.offset)
              << "query match " << delivered << " is " << match.stream << "/" << match.partition << "@" << match.message.offset
              << ", the model's full scan says " << want.stream << "/" << want.partition << "@" << want.offset << " ("
              << state_of(std::string(match.stream), match.partition, match.message.offset) << ")";
          if (match.stream == want.stream && match.partition == want.partition && match.message.offset == want.offset) {
            compare(want.stream, want.partition, want.offset, model_.at(want.stream).partitions[want.partition].messages[want.offset],
                    match.message.to_message());
          }
        }
        ++delivered;
        return stop_after > 0 && on_page >= stop_after ? ScanControl::stop : ScanControl::proceed;
      });
      ++tally_.query_pages;
      if (error != ErrorCode::ok) {
        ++tally_.query_errors;
        ASSERT_FALSE(result.is_ok()) << "a query that must fail with " << error_code_name(error) << " ran";
        EXPECT_EQ(result.status().code(), error) << result.status().to_string();
        EXPECT_EQ(on_page, 0u) << "a failing query delivered matches";
        return;
      }
      ASSERT_TRUE(result.is_ok()) << result.status().to_string();
      ASSERT_LE(on_page, query.limit) << "a page exceeded the limit";
      if (failures_so_far() != failures_before) return;
      const bool stopped = on_page == query.limit || (stop_after > 0 && on_page >= stop_after);
      if (stopped) {
        ASSERT_FALSE(result->next_cursor.empty()) << "no cursor after a full or stopped page";
      } else {
        EXPECT_TRUE(result->next_cursor.empty()) << "a cursor after a short page";
      }
      if (result->next_cursor.empty()) break;
      query.cursor = result->next_cursor;
    }
    tally_.query_matches += delivered;
    figures_.index_checks += 1;
    if (delivered != expected.size()) ++figures_.index_mismatches;
    EXPECT_EQ(delivered, expected.size()) << "the query delivered another number of matches than a full scan of the model finds";
  }

  // ---- Durable consumers ----
  void create_consumer() {
    std::string name;
    ModelStream* stream = random_user_stream(name);
    if (stream == nullptr) return;
    ConsumerConfig config;
    config.name = "c" + std::to_string(random_() % 2);
    const char* const filters[] = {">", "shared.*", "x"};
    config.subject_filter = filters[random_() % 3];
    if (config.subject_filter == "x") config.subject_filter = name + ".x";
    config.ack_wait_ms = consumer_ack_wait_ms;
    config.max_ack_pending = limits::consumer_ack_pending_max;
    Status created = store_->consumers().create(name, config);
    const auto where = std::make_pair(name, config.name);
    if (consumers_.count(where)) {
      EXPECT_EQ(created.code(), ErrorCode::consumer_exists) << created.to_string();
      return;
    }
    ASSERT_TRUE(created.is_ok()) << created.to_string();
    ModelConsumer& consumer = consumers_[where];
    consumer.filter = config.subject_filter;
    consumer.partitions.resize(stream->partitions.size());
    // It starts at each partition's log start: what is below was never deliverable.
  }

  void remove_consumer() {
    if (consumers_.empty()) return;
    auto it = std::next(consumers_.begin(), static_cast<long>(random_() % consumers_.size()));
    ASSERT_TRUE(store_->consumers().remove(it->first.first, it->first.second).is_ok());
    consumers_.erase(it);
  }

  // One fetch; every message must be deliverable: readable, the model's bytes, matching the
  // filter, not acked, not out to someone else.
  void fetch_once(const std::pair<std::string, std::string>& where, std::size_t max_messages, std::size_t& returned) {
    ModelConsumer& consumer = consumers_.at(where);
    ModelStream& stream = model_.at(where.first);
    auto batch = store_->consumers().fetch(where.first, where.second, FetchOptions{.max_messages = max_messages});
    ASSERT_TRUE(batch.is_ok()) << batch.status().to_string();
    returned = batch->size();
    for (const ConsumedMessage& consumed : *batch) {
      ++tally_.fetched;
      const std::uint32_t p = consumed.delivery.partition;
      const Offset offset = consumed.delivery.offset;
      ASSERT_EQ(consumed.delivery.stream, where.first);
      ASSERT_LT(p, stream.partitions.size());
      ModelPartition& partition = stream.partitions[p];
      ModelConsumerPartition& cursor = consumer.partitions[p];
      ASSERT_LT(offset, partition.messages.size()) << "consumer delivered " << where.first << "/" << p << "@" << offset << " past the log end";
      ModelMessage& message = partition.messages[offset];
      ASSERT_TRUE(message.visible()) << "consumer delivered an erased, compacted or expired message " << p << "@" << offset;
      ASSERT_TRUE(base::subject_matches(consumer.filter, message.subject)) << "consumer delivered a message its filter excludes";
      ASSERT_EQ(cursor.acked.count(offset), 0u) << "consumer " << where.second << " redelivered acked " << where.first << "/" << p << "@"
                                               << offset;
      ASSERT_EQ(cursor.out.count(offset), 0u) << "consumer delivered " << p << "@" << offset << " while it is out";
      ASSERT_NO_FATAL_FAILURE(compare(where.first, p, offset, message, consumed.message));
      cursor.maybe_acked.erase(offset);
      cursor.unsure.erase(offset);
      cursor.due.erase(offset);
      cursor.out[offset] = consumed.delivery.to_string();
    }
  }

  std::pair<std::string, std::string> random_consumer() {
    return std::next(consumers_.begin(), static_cast<long>(random_() % consumers_.size()))->first;
  }

  void fetch_and_settle() {
    if (consumers_.empty()) return;
    const auto where = random_consumer();
    std::size_t returned = 0;
    ASSERT_NO_FATAL_FAILURE(fetch_once(where, 1 + random_() % 20, returned));
    ModelConsumer& consumer = consumers_.at(where);
    const ModelStream& stream = model_.at(where.first);
    // Settle a random share of what is out: ack most, nak some (due again at once).
    const AckKind kind = random_() % 4 == 0 ? AckKind::nak : AckKind::ack;
    std::vector<std::string> tokens;
    std::vector<std::pair<std::uint32_t, Offset>> settled;
    for (std::uint32_t p = 0; p < consumer.partitions.size(); ++p) {
      for (const auto& [offset, token] : consumer.partitions[p].out) {
        if (random_() % 3 == 0) continue;
        tokens.push_back(token);
        settled.emplace_back(p, offset);
      }
    }
    if (tokens.empty()) return;
    auto results = store_->consumers().settle(where.first, where.second, kind, tokens,
                                              kind == AckKind::nak ? std::optional<std::chrono::milliseconds>(0) : std::nullopt);
    ASSERT_TRUE(results.is_ok()) << results.status().to_string();
    ASSERT_EQ(results->size(), tokens.size());
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      const auto [p, offset] = settled[i];
      ModelConsumerPartition& cursor = consumer.partitions[p];
      const ModelPartition& partition = stream.partitions[p];
      const bool removed = offset < partition.log_start || !partition.messages[offset].visible();
      const Status& status = (*results)[i];
      cursor.out.erase(offset);
      if (!status.is_ok()) {
        // A message retention, compaction or erase removed is done: its token may be stale.
        ASSERT_TRUE(removed && status.code() == ErrorCode::stale_delivery) << tokens[i] << ": " << status.to_string();
        continue;
      }
      if (kind == AckKind::ack) {
        ++tally_.acks;
        cursor.acked.insert(offset);
      } else {
        ++tally_.naks;
        if (!removed) cursor.due.insert(offset);
      }
    }
  }

  // Fetches until nothing comes: everything deliverable must have come.
  void drain() {
    if (consumers_.empty()) return;
    const auto where = random_consumer();
    ++tally_.drains;
    ModelConsumer& consumer = consumers_.at(where);
    // What must come: readable, matching, not acked (perhaps), not out, not uncertain.
    std::set<std::pair<std::uint32_t, Offset>> required;
    const ModelStream& stream = model_.at(where.first);
    for (std::uint32_t p = 0; p < consumer.partitions.size(); ++p) {
      const ModelPartition& partition = stream.partitions[p];
      const ModelConsumerPartition& cursor = consumer.partitions[p];
      for (Offset offset = partition.log_start; offset < partition.messages.size(); ++offset) {
        const ModelMessage& message = partition.messages[offset];
        if (!message.visible() || !base::subject_matches(consumer.filter, message.subject)) continue;
        if (cursor.acked.count(offset) || cursor.maybe_acked.count(offset) || cursor.out.count(offset) || cursor.unsure.count(offset)) continue;
        required.insert({p, offset});
      }
    }
    for (std::size_t round = 0;; ++round) {
      ASSERT_LT(round, drain_rounds_max) << "a drain does not end";
      std::size_t returned = 0;
      ASSERT_NO_FATAL_FAILURE(fetch_once(where, limits::consumer_fetch_messages_max, returned));
      if (returned == 0) break;
    }
    for (const auto& [p, offset] : required) {
      EXPECT_TRUE(consumer.partitions[p].out.count(offset))
          << "consumer " << where.first << "/" << where.second << " never delivered " << p << "@" << offset;
    }
  }

  // After every step: each consumer's floor never passes an unacked deliverable message, and
  // neither it nor the delivered position passes the log end.
  void check_consumers() {
    for (auto& [where, consumer] : consumers_) {
      auto info = store_->consumers().describe(where.first, where.second);
      ASSERT_TRUE(info.is_ok()) << where.first << "/" << where.second << ": " << info.status().to_string();
      const ModelStream& stream = model_.at(where.first);
      ASSERT_EQ(info->partitions.size(), stream.partitions.size());
      for (const ConsumerPartitionInfo& actual : info->partitions) {
        const std::uint32_t p = actual.partition;
        const ModelPartition& partition = stream.partitions[p];
        const ModelConsumerPartition& cursor = consumer.partitions[p];
        const Offset end = partition.messages.size();
        ASSERT_LE(actual.ack_floor, end) << "consumer " << where.second << " ack floor past the log end of " << where.first << "/" << p;
        ASSERT_LE(actual.delivered_offset, end) << "consumer " << where.second << " delivered position past the log end of " << where.first
                                                << "/" << p;
        for (Offset offset = partition.log_start; offset < actual.ack_floor; ++offset) {
          const ModelMessage& message = partition.messages[offset];
          if (!message.visible() || !base::subject_matches(consumer.filter, message.subject)) continue;
          ASSERT_TRUE(cursor.acked.count(offset) || cursor.maybe_acked.count(offset))
              << "consumer " << where.second << " ack floor " << actual.ack_floor << " passed unacked " << where.first << "/" << p << "@"
              << offset;
        }
      }
    }
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

  // Which messages compaction may remove now: keyed ones a later readable message of the same
  // key supersedes, and latest-per-key tombstones older than the tombstone delay.
  std::vector<bool> compactable(const ModelStream& stream, const ModelPartition& partition) const {
    std::vector<bool> removable(partition.messages.size(), false);
    if (stream.config.cleanup != CleanupPolicy::compact) return removable;
    std::map<std::string, Offset> latest;
    for (Offset offset = partition.log_start; offset < partition.messages.size(); ++offset) {
      const ModelMessage& message = partition.messages[offset];
      if (message.visible() && message.key) latest[*message.key] = offset;
    }
    const TimestampMs expired_before = log::system_clock_ms() - stream.config.tombstone_retention_ms;
    for (Offset offset = partition.log_start; offset < partition.messages.size(); ++offset) {
      const ModelMessage& message = partition.messages[offset];
      if (!message.visible() || !message.key) continue;
      if (latest.at(*message.key) != offset) removable[offset] = true;
      if (message.tombstone() && message.time_or_low() <= expired_before) removable[offset] = true;
    }
    return removable;
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
      const Vanish vanish = name == compacted_stream_ ? Vanish::required : compaction_ran_ ? Vanish::allowed : Vanish::none;
      for (std::uint32_t p = 0; p < stream.partitions.size(); ++p) {
        ModelPartition& partition = stream.partitions[p];
        auto start = store_->resolve_start(name, p, StartPosition::from_beginning());
        auto end = store_->resolve_start(name, p, StartPosition::new_only());
        ASSERT_TRUE(start.is_ok() && end.is_ok());
        ASSERT_EQ(*start, partition.log_start) << name << "/" << p << " log start";
        ASSERT_EQ(*end, partition.messages.size()) << name << "/" << p << " high watermark";
        const std::vector<bool> removable = vanish == Vanish::none ? std::vector<bool>(partition.messages.size(), false)
                                                                   : compactable(stream, partition);
        // A message the store did not return: legal if the model says it is gone (or hidden),
        // or if compaction may have removed it in this step; then it is gone for good.
        auto absent = [&](Offset offset) {
          ModelMessage& message = partition.messages[offset];
          if (!message.visible()) return;
          EXPECT_TRUE(removable[offset]) << name << "/" << p << "@" << offset << " vanished"
                                         << (stream.config.cleanup == CleanupPolicy::compact ? " (compaction may not remove it)" : "");
          message.gone = true;
          ++tally_.compacted_messages;
        };
        Offset next = partition.log_start;
        const int failures_before = failures_so_far();
        auto scanned = store_->scan(name, p, next, limits::read_messages_max, [&](const MessageView& view) {
          if (view.offset < next || view.offset >= partition.messages.size()) {
            ADD_FAILURE() << name << "/" << p << ": scan returned offset " << view.offset << " after " << next;
            return ScanControl::stop;
          }
          for (Offset skipped = next; skipped < view.offset; ++skipped) absent(skipped);
          ModelMessage& message = partition.messages[view.offset];
          EXPECT_TRUE(message.visible()) << name << "/" << p << "@" << view.offset << " is readable but was "
                                         << (message.erased ? "erased" : message.expired ? "expired" : "compacted away");
          EXPECT_FALSE(vanish == Vanish::required && removable[view.offset])
              << name << "/" << p << "@" << view.offset << ": compact() kept a superseded message or an expired tombstone";
          compare(name, p, view.offset, message, view.to_message());
          next = view.offset + 1;
          ++tally_.compared;
          ++figures_.messages_checked;
          return ScanControl::proceed;
        });
        ASSERT_TRUE(scanned.is_ok()) << name << "/" << p << ": " << scanned.status().to_string();
        ASSERT_EQ(failures_so_far(), failures_before) << name << "/" << p << " differs from the model";
        for (Offset skipped = next; skipped < partition.messages.size(); ++skipped) absent(skipped);
        ASSERT_EQ(*scanned, partition.messages.size()) << name << "/" << p << " scan ended early";
      }
    }
  }

  std::uint64_t seed_;
  std::mt19937_64 random_;
  Tally& tally_;
  Figures& figures_;
  int step_ = 0;
  std::uint64_t sequence_ = 0;
  const bool trace_ = environment_u64("CRASH_MODEL_TRACE", 0) != 0;  // print every step (replays)
  std::string detail_;  // what the step's operation chose (stream, criteria, ...), for the trace
  bool compaction_ran_ = false;   // this step ran maintenance: background compaction may have removed messages
  std::string compacted_stream_;  // this step ran Store::compact on it: everything removable is gone
  std::shared_ptr<FaultFileSystem> disk_ = std::make_shared<FaultFileSystem>();
  std::shared_ptr<ProcessFileSystem> process_;
  std::unique_ptr<Store> store_;
  std::map<std::string, ModelStream> model_;
  std::map<std::pair<std::string, std::string>, ModelConsumer> consumers_;  // (stream, consumer)
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
  auto count = [](std::uint64_t value) { return static_cast<unsigned long long>(value); };
  std::printf("model: %llu steps, %llu messages compared, %llu publishes (%llu duplicates answered, %llu already expired), "
              "%llu reads by offset, %llu by time, %llu queries (%llu pages, %llu matches, %llu refused), %llu compactions "
              "(%llu messages seen removed), %llu erases (%llu messages), %llu index files damaged or deleted, %llu consumer "
              "deliveries, %llu acks, %llu naks, %llu drains, %llu power losses (%llu unsynced messages lost), %llu process "
              "crashes, %llu clean restarts, %llu retention moves\n",
              count(tally.steps), count(tally.compared), count(tally.publishes), count(tally.duplicates), count(tally.expired),
              count(tally.reads), count(tally.time_reads), count(tally.queries), count(tally.query_pages),
              count(tally.query_matches), count(tally.query_errors), count(tally.compactions), count(tally.compacted_messages),
              count(tally.erases), count(tally.erased_messages), count(tally.index_files_damaged), count(tally.fetched),
              count(tally.acks), count(tally.naks), count(tally.drains), count(tally.power_losses), count(tally.lost_unsynced),
              count(tally.process_crashes), count(tally.restarts), count(tally.retention_moves));
  figures.print();
}

}  // namespace
}  // namespace msgstore::crash
