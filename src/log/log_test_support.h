// Helpers for the log module's tests (partition_log_test.cc, recovery_test.cc): a model of
// appended records, appending and reading through PartitionLog, brute-force time lookups.
// Test-only; not part of any library.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "log/partition_log.h"
#include "log/record_batch.h"
#include "log/segment.h"

namespace msgstore::log {


// One message as appended; the model of the log is a vector of these indexed by offset.
struct Record {
  TimestampMs timestamp_ms = 0;
  std::string subject;
  std::optional<std::string> key;
  std::vector<Header> headers;
  std::string payload;
};

inline Message to_owned(const MessageView& view) { return view.to_message(); }

inline bool same(const Message& message, const Record& record) {
  return message.timestamp_ms == record.timestamp_ms && message.subject == record.subject && message.key == record.key &&
         message.headers == record.headers && message.payload == record.payload;
}

inline Record make_record(std::mt19937_64& random, std::uint64_t id, TimestampMs timestamp_ms, std::size_t payload_max = 200) {
  Record record;
  record.timestamp_ms = timestamp_ms;
  record.subject = "orders." + std::to_string(id % 7);
  if (id % 3 == 1) record.key = "key-" + std::to_string(id);
  if (id % 5 == 2) record.key = "";
  if (id % 4 == 3) record.headers = {{"id", std::to_string(id)}, {"bin", std::string("\0\xFF", 2)}};
  record.payload = "message-" + std::to_string(id) + ":";
  const std::size_t extra = payload_max == 0 ? 0 : random() % payload_max;
  for (std::size_t i = 0; i < extra; ++i) record.payload.push_back(static_cast<char>(random()));
  return record;
}

// Fills `builder` with `records` (the views stay valid only during this call, which is all
// the builder needs: add() copies).
inline void fill(BatchBuilder& builder, const std::vector<Record>& records) {
  builder.reset();
  for (const Record& record : records) {
    std::vector<HeaderView> headers;
    for (const Header& header : record.headers) headers.push_back({header.name, header.value});
    OutgoingMessage message;
    message.subject = record.subject;
    if (record.key) message.key = std::string_view(*record.key);
    message.headers = headers;
    message.payload = record.payload;
    message.timestamp_ms = record.timestamp_ms;
    builder.add(message, record.timestamp_ms);
  }
}

// Appends `records` as one batch; on success adds them to `model`.
inline Result<Offset> append(PartitionLog& log, const std::vector<Record>& records, std::vector<Record>* model = nullptr,
                      std::size_t* batch_bytes = nullptr) {
  BatchBuilder builder;
  fill(builder, records);
  Result<Offset> base = log.append(builder);
  if (base.is_ok()) {
    if (batch_bytes) *batch_bytes = builder.bytes();
    if (model) {
      EXPECT_EQ(*base, model->size());
      model->insert(model->end(), records.begin(), records.end());
    }
  }
  return base;
}

// Reads [from, until) with repeated scans.
inline Result<std::vector<Message>> read_range(const PartitionLog& log, Offset from, Offset until,
                                        std::size_t max_messages = 1000) {
  std::vector<Message> out;
  Offset next = from;
  while (next < until) {
    const std::size_t want = static_cast<std::size_t>(std::min<Offset>(max_messages, until - next));
    auto scanned = log.scan(next, want, 1 << 20, [&](const MessageView& view) {
      out.push_back(to_owned(view));
      return true;
    });
    if (!scanned.is_ok()) return scanned.status();
    if (*scanned <= next) return Status(ErrorCode::invalid_argument, "scan made no progress at " + std::to_string(next));
    next = *scanned;
  }
  return out;
}

inline Result<std::vector<Message>> read_all(const PartitionLog& log) {
  return read_range(log, log.log_start_offset(), log.high_watermark());
}

// Checks that `messages` are exactly model[from, from + size) at consecutive offsets.
inline ::testing::AssertionResult matches_model(const std::vector<Message>& messages, const std::vector<Record>& model,
                                         Offset from) {
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const Offset offset = from + i;
    if (messages[i].offset != offset) {
      return ::testing::AssertionFailure() << "message " << i << " has offset " << messages[i].offset << ", expected " << offset;
    }
    if (offset >= model.size()) return ::testing::AssertionFailure() << "offset " << offset << " is past the model";
    if (!same(messages[i], model[offset])) {
      return ::testing::AssertionFailure() << "message at offset " << offset << " differs from what was appended";
    }
  }
  return ::testing::AssertionSuccess();
}

// The brute-force answer to offset_for_time over model[log_start, high_watermark).
inline Offset brute_force_offset_for_time(const std::vector<Record>& model, Offset log_start, Offset high_watermark,
                                   TimestampMs time_ms) {
  for (Offset offset = log_start; offset < high_watermark; ++offset) {
    if (model[offset].timestamp_ms >= time_ms) return offset;
  }
  return high_watermark;
}

inline std::vector<TimestampMs> time_queries(const std::vector<Record>& model, std::mt19937_64& random, std::size_t extra = 20) {
  std::vector<TimestampMs> queries = {std::numeric_limits<TimestampMs>::min() + 1, std::numeric_limits<TimestampMs>::max(),
                                      0, -1};
  for (const Record& record : model) {
    queries.push_back(record.timestamp_ms);
    if (record.timestamp_ms > std::numeric_limits<TimestampMs>::min() + 1) queries.push_back(record.timestamp_ms - 1);
    if (record.timestamp_ms < std::numeric_limits<TimestampMs>::max()) queries.push_back(record.timestamp_ms + 1);
  }
  std::sort(queries.begin(), queries.end());
  queries.erase(std::unique(queries.begin(), queries.end()), queries.end());
  if (!model.empty()) {
    for (std::size_t i = 0; i < extra; ++i) {
      const TimestampMs base = model[random() % model.size()].timestamp_ms;
      const TimestampMs delta = static_cast<TimestampMs>(random() % 7) - 3;
      TimestampMs query;
      if (__builtin_add_overflow(base, delta, &query)) query = base;  // bogus extremes: no nudge
      queries.push_back(query);
    }
  }
  return queries;
}

inline ::testing::AssertionResult time_lookups_match(const PartitionLog& log, const std::vector<Record>& model,
                                              std::mt19937_64& random, std::size_t max_queries = 100000) {
  std::vector<TimestampMs> queries = time_queries(model, random);
  if (queries.size() > max_queries) {
    std::shuffle(queries.begin(), queries.end(), random);
    queries.resize(max_queries);
  }
  for (TimestampMs query : queries) {
    auto found = log.offset_for_time(query);
    if (!found.is_ok()) return ::testing::AssertionFailure() << "offset_for_time(" << query << "): " << found.status().to_string();
    const Offset expected = brute_force_offset_for_time(model, log.log_start_offset(), log.high_watermark(), query);
    if (*found != expected) {
      return ::testing::AssertionFailure() << "offset_for_time(" << query << ") = " << *found << ", a full scan says " << expected;
    }
  }
  return ::testing::AssertionSuccess();
}

inline Result<std::unique_ptr<PartitionLog>> open_log(FileSystem& file_system, const std::filesystem::path& directory,
                                               LogOptions options = {}, Clock clock = nullptr,
                                               RecoveryReport* report = nullptr) {
  return PartitionLog::open(file_system, directory, "test/0", options, std::move(clock), report);
}

inline std::string describe(const RecoveryReport& report) {
  std::string text = "segments=" + std::to_string(report.segments) + " torn=" + std::to_string(report.torn_bytes_truncated) +
                     " rebuilt=" + std::to_string(report.indexes_rebuilt);
  for (const std::string& line : report.corruption) text += "\n  corruption: " + line;
  return text;
}

inline std::string describe(const VerifyReport& report) {
  std::string text = "batches=" + std::to_string(report.batches_checked) + " messages=" + std::to_string(report.messages_checked);
  for (const std::string& line : report.problems) text += "\n  problem: " + line;
  return text;
}

inline std::vector<Offset> segment_bases(FileSystem& file_system, const std::filesystem::path& directory) {
  std::vector<Offset> bases;
  auto names = file_system.list_directory(directory);
  EXPECT_TRUE(names.is_ok());
  if (!names.is_ok()) return bases;
  for (const std::string& name : *names) {
    if (auto base = parse_segment_log_name(name)) bases.push_back(*base);
  }
  std::sort(bases.begin(), bases.end());
  return bases;
}

}  // namespace msgstore::log
