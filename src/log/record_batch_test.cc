#include "log/record_batch.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "base/coding.h"
#include "base/crc32c.h"
#include "log/format.h"

namespace msgstore::log {
namespace {

// An owned message to publish; OutgoingMessage views into it.
struct TestMessage {
  std::string subject;
  std::optional<std::string> key;
  std::vector<Header> headers;
  std::string payload;
  TimestampMs timestamp_ms = 0;

  std::vector<HeaderView> header_views;
  OutgoingMessage outgoing() {
    header_views.clear();
    for (const Header& header : headers) header_views.push_back({header.name, header.value});
    OutgoingMessage message;
    message.subject = subject;
    if (key) message.key = std::string_view(*key);
    message.headers = header_views;
    message.payload = payload;
    message.timestamp_ms = timestamp_ms;
    return message;
  }
};

std::string random_bytes(std::mt19937_64& random, std::size_t size) {
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  return bytes;
}

TestMessage random_message(std::mt19937_64& random) {
  TestMessage message;
  message.subject = "subject." + std::to_string(random() % 1000);
  switch (random() % 3) {
    case 0: break;
    case 1: message.key = ""; break;
    default: message.key = random_bytes(random, 1 + random() % 40); break;
  }
  const std::size_t headers = random() % 4;
  for (std::size_t i = 0; i < headers; ++i) {
    message.headers.push_back({random_bytes(random, random() % 10), random_bytes(random, random() % 50)});
  }
  const std::size_t payload = random() % 8 == 0 ? 0 : random() % 300;
  message.payload = random_bytes(random, payload);
  message.timestamp_ms = static_cast<TimestampMs>(1'700'000'000'000 + static_cast<std::int64_t>(random() % 100000) - 50000);
  return message;
}

std::string build(BatchBuilder& builder, std::vector<TestMessage>& messages, Offset base_offset) {
  builder.reset();
  for (TestMessage& message : messages) builder.add(message.outgoing(), message.timestamp_ms);
  return std::string(builder.finish(base_offset));
}

// MessageView::to_message lives in the store library; log_test links only the log.
Message to_owned(const MessageView& view) {
  Message message;
  message.offset = view.offset;
  message.timestamp_ms = view.timestamp_ms;
  message.subject = std::string(view.subject);
  if (view.key) message.key = std::string(*view.key);
  for (const HeaderView& header : view.headers) message.headers.push_back({std::string(header.name), std::string(header.value)});
  message.payload = std::string(view.payload);
  return message;
}

// Decodes a whole batch into owned messages, checking the header and body first.
Result<std::vector<Message>> decode_all(const std::string& batch) {
  BatchHeader header;
  if (check_batch_header(batch.data(), batch.size(), header) != HeaderCheck::valid) {
    return Status(ErrorCode::corruption, "header");
  }
  if (!check_batch_body(batch.data(), header)) return Status(ErrorCode::corruption, "body");
  std::vector<Message> out;
  RecordDecoder decoder;
  Status status = decoder.decode(batch.data(), header, [&](const MessageView& view) {
    out.push_back(to_owned(view));
    return true;
  });
  if (!status.is_ok()) return status;
  return out;
}

void expect_same(const Message& got, const TestMessage& want, Offset offset) {
  EXPECT_EQ(got.offset, offset);
  EXPECT_EQ(got.timestamp_ms, want.timestamp_ms);
  EXPECT_EQ(got.subject, want.subject);
  EXPECT_EQ(got.key, want.key);
  EXPECT_EQ(got.headers, want.headers);
  EXPECT_EQ(got.payload, want.payload);
}

// Recomputes both checksums of a batch whose bytes a test edited on purpose.
void reseal(std::string& batch) {
  char* header = batch.data();
  std::uint32_t crc = base::crc32c(header + format::batch_header_bytes, batch.size() - format::batch_header_bytes);
  crc = base::crc32c_extend(crc, header + format::batch_body_crc_covered_begin,
                            format::batch_body_crc_position - format::batch_body_crc_covered_begin);
  base::store_u32(header + format::batch_body_crc_position, crc);
  base::store_u32(header + format::batch_header_crc_position, base::crc32c(header, format::batch_header_crc_position));
}

TEST(RecordBatch, RoundTripVariedMessages) {
  std::vector<TestMessage> messages(6);
  messages[0].subject = "a";
  messages[0].payload = "hello";
  messages[0].timestamp_ms = 1000;
  messages[1].subject = "orders.created";
  messages[1].key = "";
  messages[1].payload = "";
  messages[1].timestamp_ms = 1001;
  messages[2].subject = "orders.updated";
  messages[2].key = std::string("k\0e\xFFy", 5);
  messages[2].headers = {{"h1", "v1"}, {"", ""}, {std::string("\0n", 2), std::string("\x80\x00\x7F", 3)}};
  messages[2].payload = std::string("bin\0ary\xFF\xFE", 9);
  messages[2].timestamp_ms = 999;  // non-monotonic
  messages[3].subject = "x.y.z";
  messages[3].payload = std::string(100000, 'P');
  messages[3].timestamp_ms = 5000;
  messages[4].subject = "nokey";
  messages[4].headers = {{"only", std::string(70000, 'v')}};
  messages[4].timestamp_ms = 1001;
  messages[5].subject = "last";
  messages[5].key = std::string(300, 'K');
  messages[5].timestamp_ms = 2000;

  BatchBuilder builder;
  const Offset base_offset = 1234567;
  const std::string batch = build(builder, messages, base_offset);

  BatchHeader header;
  ASSERT_EQ(check_batch_header(batch.data(), batch.size(), header), HeaderCheck::valid);
  EXPECT_EQ(header.batch_bytes, batch.size());
  EXPECT_EQ(header.record_count, messages.size());
  EXPECT_EQ(header.base_offset, base_offset);
  EXPECT_EQ(header.last_offset_delta, messages.size() - 1);
  EXPECT_EQ(header.last_offset(), base_offset + messages.size() - 1);
  EXPECT_EQ(header.next_offset(), base_offset + messages.size());
  EXPECT_EQ(header.first_timestamp_ms, 1000);
  EXPECT_EQ(header.max_timestamp_ms, 5000);
  EXPECT_EQ(header.attributes, 0);
  EXPECT_EQ(builder.max_timestamp_ms(), 5000);
  EXPECT_EQ(builder.record_count(), messages.size());
  EXPECT_EQ(builder.bytes(), batch.size());

  auto decoded = decode_all(batch);
  ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
  ASSERT_EQ(decoded->size(), messages.size());
  for (std::size_t i = 0; i < messages.size(); ++i) {
    SCOPED_TRACE(i);
    expect_same((*decoded)[i], messages[i], base_offset + i);
  }
  // No key and an empty key stay distinct.
  EXPECT_FALSE((*decoded)[0].key.has_value());
  ASSERT_TRUE((*decoded)[1].key.has_value());
  EXPECT_TRUE((*decoded)[1].key->empty());
}

TEST(RecordBatch, RoundTripRandomBatches) {
  std::mt19937_64 random(99);
  BatchBuilder builder;  // reused: reset must leave nothing behind
  for (int round = 0; round < 300; ++round) {
    std::vector<TestMessage> messages(1 + random() % 20);
    for (auto& message : messages) message = random_message(random);
    const Offset base_offset = random() % 3 == 0 ? random() >> 1 : random() % 100000;
    const std::string batch = build(builder, messages, base_offset);
    auto decoded = decode_all(batch);
    ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
    ASSERT_EQ(decoded->size(), messages.size());
    for (std::size_t i = 0; i < messages.size(); ++i) expect_same((*decoded)[i], messages[i], base_offset + i);

    // encoded_record_bytes is an upper bound of each record's share of the batch.
    std::size_t bound = 0;
    for (auto& message : messages) bound += encoded_record_bytes(message.outgoing());
    EXPECT_LE(batch.size() - format::batch_header_bytes, bound);
  }
}

TEST(RecordBatch, EncodedRecordBytesBoundsSingleRecord) {
  std::mt19937_64 random(5);
  BatchBuilder builder;
  for (int round = 0; round < 500; ++round) {
    TestMessage message = random_message(random);
    builder.reset();
    builder.add(message.outgoing(), message.timestamp_ms);
    const std::size_t record = builder.bytes() - format::batch_header_bytes;
    EXPECT_LE(record, encoded_record_bytes(message.outgoing()));
    EXPECT_GE(record + 2 * base::varint64_bytes_max, encoded_record_bytes(message.outgoing()));
  }
}

TEST(RecordBatch, ExtremeAndNonMonotonicTimestamps) {
  const TimestampMs min1 = std::numeric_limits<TimestampMs>::min() + 1;
  const TimestampMs max = std::numeric_limits<TimestampMs>::max();
  const std::vector<std::vector<TimestampMs>> cases = {
      {min1, max, min1, 0, -1, max},
      {max, min1},
      {0, -5, 3, -1000000, 1000000},
      {-1},
      {max},
      {min1},
      {4102444800000, 946684800000, 0},  // 2100, 2000, 1970
  };
  BatchBuilder builder;
  for (const auto& timestamps : cases) {
    std::vector<TestMessage> messages(timestamps.size());
    for (std::size_t i = 0; i < timestamps.size(); ++i) {
      messages[i].subject = "t";
      messages[i].payload = std::to_string(i);
      messages[i].timestamp_ms = timestamps[i];
    }
    const std::string batch = build(builder, messages, 7);
    BatchHeader header;
    ASSERT_EQ(check_batch_header(batch.data(), batch.size(), header), HeaderCheck::valid);
    EXPECT_EQ(header.first_timestamp_ms, timestamps.front());
    EXPECT_EQ(header.max_timestamp_ms, *std::max_element(timestamps.begin(), timestamps.end()));
    auto decoded = decode_all(batch);
    ASSERT_TRUE(decoded.is_ok());
    ASSERT_EQ(decoded->size(), timestamps.size());
    for (std::size_t i = 0; i < timestamps.size(); ++i) EXPECT_EQ((*decoded)[i].timestamp_ms, timestamps[i]);
  }
}

TEST(RecordBatch, ChecksummingEarlyGivesTheSameBatch) {
  std::mt19937_64 random(8);
  std::vector<TestMessage> messages(5);
  for (auto& message : messages) message = random_message(random);
  BatchBuilder late;
  const std::string expected = build(late, messages, 42);
  BatchBuilder early;
  for (auto& message : messages) early.add(message.outgoing(), message.timestamp_ms);
  early.checksum_records();
  EXPECT_EQ(std::string(early.finish(42)), expected);
  // Adding after an early checksum must invalidate it.
  BatchBuilder stale;
  stale.add(messages[0].outgoing(), messages[0].timestamp_ms);
  stale.checksum_records();
  for (std::size_t i = 1; i < messages.size(); ++i) stale.add(messages[i].outgoing(), messages[i].timestamp_ms);
  EXPECT_EQ(std::string(stale.finish(42)), expected);
  // finish() again with another base offset re-stamps the header correctly.
  const std::string moved(stale.finish(43));
  auto decoded = decode_all(moved);
  ASSERT_TRUE(decoded.is_ok());
  EXPECT_EQ(decoded->front().offset, 43u);
}

TEST(RecordBatch, DecodeStopsWhenVisitorSaysSo) {
  std::mt19937_64 random(4);
  std::vector<TestMessage> messages(10);
  for (auto& message : messages) message = random_message(random);
  BatchBuilder builder;
  const std::string batch = build(builder, messages, 0);
  BatchHeader header;
  ASSERT_EQ(check_batch_header(batch.data(), batch.size(), header), HeaderCheck::valid);
  RecordDecoder decoder;
  int seen = 0;
  Status status = decoder.decode(batch.data(), header, [&](const MessageView&) { return ++seen < 3; });
  EXPECT_TRUE(status.is_ok());
  EXPECT_EQ(seen, 3);
}

// decode_offsets visits exactly the wanted records that exist, in order, each equal to the
// message that was encoded.
TEST(RecordBatch, DecodeOffsetsVisitsOnlyTheWantedRecords) {
  std::mt19937_64 random(8);
  BatchBuilder builder;
  for (int round = 0; round < 200; ++round) {
    std::vector<TestMessage> messages(1 + random() % 30);
    for (auto& message : messages) message = random_message(random);
    const Offset base_offset = random() % 100000;
    const std::string batch = build(builder, messages, base_offset);
    BatchHeader header;
    ASSERT_EQ(check_batch_header(batch.data(), batch.size(), header), HeaderCheck::valid);
    std::vector<Offset> wanted;
    for (Offset offset = base_offset - std::min<Offset>(base_offset, 2); offset < base_offset + messages.size() + 2; ++offset) {
      if (random() % 3 == 0) wanted.push_back(offset);
    }
    RecordDecoder decoder;
    std::vector<Offset> visited;
    ASSERT_TRUE(decoder.decode_offsets(batch.data(), header, wanted, [&](const MessageView& message) {
      expect_same(message.to_message(), messages[message.offset - base_offset], message.offset);
      visited.push_back(message.offset);
      return true;
    }).is_ok());
    std::vector<Offset> expected;
    for (Offset offset : wanted) {
      if (offset >= base_offset && offset < base_offset + messages.size()) expected.push_back(offset);
    }
    EXPECT_EQ(visited, expected);
  }
}

TEST(RecordBatch, DecodeOffsetsStopsAndReportsMalformedRecords) {
  std::mt19937_64 random(9);
  std::vector<TestMessage> messages(6);
  for (auto& message : messages) message = random_message(random);
  BatchBuilder builder;
  std::string batch = build(builder, messages, 100);
  BatchHeader header;
  ASSERT_EQ(check_batch_header(batch.data(), batch.size(), header), HeaderCheck::valid);
  RecordDecoder decoder;
  const std::vector<Offset> all{100, 101, 102, 103, 104, 105};
  int seen = 0;
  ASSERT_TRUE(decoder.decode_offsets(batch.data(), header, all, [&](const MessageView&) { return ++seen < 2; }).is_ok());
  EXPECT_EQ(seen, 2);
  // A record length pointing past the batch (checksums are not what is tested here).
  batch[format::batch_header_bytes] = static_cast<char>(0xFF);
  batch[format::batch_header_bytes + 1] = static_cast<char>(0xFF);
  batch[format::batch_header_bytes + 2] = static_cast<char>(0x7F);
  const std::vector<Offset> last{105};
  EXPECT_EQ(decoder.decode_offsets(batch.data(), header, last, [](const MessageView&) { return true; }).code(), ErrorCode::corruption);
}

class BatchDamage : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937_64 random(17);
    messages_.resize(8);
    for (auto& message : messages_) message = random_message(random);
    batch_ = build(builder_, messages_, 500);
  }
  BatchBuilder builder_;
  std::vector<TestMessage> messages_;
  std::string batch_;
};

TEST_F(BatchDamage, EveryHeaderByteChangeIsCaught) {
  for (std::size_t at = 0; at < format::batch_header_bytes; ++at) {
    for (int value = 0; value < 256; ++value) {
      if (static_cast<char>(value) == batch_[at]) continue;
      std::string damaged = batch_;
      damaged[at] = static_cast<char>(value);
      BatchHeader header;
      const HeaderCheck check = check_batch_header(damaged.data(), damaged.size(), header);
      ASSERT_NE(check, HeaderCheck::end_of_log) << "byte " << at;
      if (check == HeaderCheck::valid) {
        ASSERT_LE(header.batch_bytes, damaged.size());
        ASSERT_FALSE(check_batch_body(damaged.data(), header)) << "byte " << at << " value " << value;
      }
    }
  }
}

TEST_F(BatchDamage, EverySingleBitFlipIsCaught) {
  for (std::size_t bit = 0; bit < batch_.size() * 8; ++bit) {
    std::string damaged = batch_;
    damaged[bit / 8] = static_cast<char>(damaged[bit / 8] ^ (1 << (bit % 8)));
    BatchHeader header;
    const HeaderCheck check = check_batch_header(damaged.data(), damaged.size(), header);
    ASSERT_NE(check, HeaderCheck::end_of_log) << "bit " << bit;
    if (check == HeaderCheck::valid) {
      ASSERT_FALSE(check_batch_body(damaged.data(), header)) << "bit " << bit;
    }
  }
}

TEST_F(BatchDamage, ZerosAreEndOfLog) {
  const std::string zeros(format::batch_header_bytes * 3, '\0');
  BatchHeader header;
  for (std::size_t available = 0; available <= zeros.size(); ++available) {
    EXPECT_EQ(check_batch_header(zeros.data(), available, header), HeaderCheck::end_of_log) << available;
  }
  // A zero magic with anything else in the header is damage, not the end.
  for (std::size_t at = 4; at < format::batch_header_bytes; ++at) {
    std::string almost = zeros;
    almost[at] = 1;
    EXPECT_EQ(check_batch_header(almost.data(), almost.size(), header), HeaderCheck::damaged) << at;
  }
  // A short tail holding non-zero bytes is a torn header.
  for (std::size_t available = 1; available < format::batch_header_bytes; ++available) {
    std::string tail(available, '\0');
    tail[available - 1] = 'x';
    EXPECT_EQ(check_batch_header(tail.data(), tail.size(), header), HeaderCheck::damaged) << available;
  }
}

TEST_F(BatchDamage, TruncatedBatchIsDamaged) {
  BatchHeader header;
  for (std::size_t length = 1; length < batch_.size(); ++length) {
    ASSERT_EQ(check_batch_header(batch_.data(), length, header), HeaderCheck::damaged) << length;
  }
  EXPECT_EQ(check_batch_header(batch_.data(), batch_.size(), header), HeaderCheck::valid);
  // More bytes available than the batch: fine, the batch says where it ends.
  std::string longer = batch_ + std::string(100, 'z');
  ASSERT_EQ(check_batch_header(longer.data(), longer.size(), header), HeaderCheck::valid);
  EXPECT_EQ(header.batch_bytes, batch_.size());
  EXPECT_TRUE(check_batch_body(longer.data(), header));
}

TEST_F(BatchDamage, BogusHeaderFieldsWithValidChecksumsAreDamaged) {
  auto with_field = [&](std::size_t at, std::uint32_t value) {
    std::string edited = batch_;
    base::store_u32(edited.data() + at, value);
    reseal(edited);
    return edited;
  };
  BatchHeader header;
  // batch_bytes smaller than a header, zero records, offsets fewer than records, attributes.
  for (const std::string& edited : {with_field(8, 10), with_field(12, 0), with_field(24, 2)}) {
    EXPECT_EQ(check_batch_header(edited.data(), edited.size(), header), HeaderCheck::damaged);
  }
  std::string attributes = batch_;
  base::store_u16(attributes.data() + 6, 1);
  reseal(attributes);
  EXPECT_EQ(check_batch_header(attributes.data(), attributes.size(), header), HeaderCheck::damaged);
  std::string version = batch_;
  base::store_u16(version.data() + 4, 2);
  reseal(version);
  EXPECT_EQ(check_batch_header(version.data(), version.size(), header), HeaderCheck::damaged);
  // batch_bytes beyond what is available: damaged (torn), never trusted.
  std::string huge = with_field(8, 0xFFFFFFF0u);
  EXPECT_EQ(check_batch_header(huge.data(), huge.size(), header), HeaderCheck::damaged);
}

TEST_F(BatchDamage, MalformedRecordsWithValidChecksumsAreCorruptionNotCrashes) {
  // A buggy writer (or a checksum collision) could produce records that do not parse: the
  // decoder must say so, stay in bounds (ASan checks this), and hand out only in-range views.
  std::mt19937_64 random(23);
  int corrupt = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string edited = batch_;
    const int edits = 1 + static_cast<int>(random() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = format::batch_header_bytes + random() % (edited.size() - format::batch_header_bytes);
      edited[at] = static_cast<char>(random() % 4 == 0 ? 0xFF : random());
    }
    if (random() % 5 == 0) {
      // Claim more or fewer records than the body holds.
      base::store_u32(edited.data() + 12, 1 + static_cast<std::uint32_t>(random() % 12));
      base::store_u32(edited.data() + 24, 20);
    }
    reseal(edited);
    BatchHeader header;
    ASSERT_EQ(check_batch_header(edited.data(), edited.size(), header), HeaderCheck::valid);
    ASSERT_TRUE(check_batch_body(edited.data(), header));
    RecordDecoder decoder;
    const char* begin = edited.data();
    const char* end = edited.data() + edited.size();
    auto inside = [&](std::string_view bytes) {
      return bytes.empty() || (bytes.data() >= begin && bytes.data() + bytes.size() <= end);
    };
    Status status = decoder.decode(edited.data(), header, [&](const MessageView& view) {
      EXPECT_TRUE(inside(view.subject));
      EXPECT_TRUE(inside(view.payload));
      if (view.key) { EXPECT_TRUE(inside(*view.key)); }
      for (const HeaderView& h : view.headers) {
        EXPECT_TRUE(inside(h.name));
        EXPECT_TRUE(inside(h.value));
      }
      EXPECT_GE(view.offset, header.base_offset);
      EXPECT_LE(view.offset, header.last_offset());
      return true;
    });
    if (!status.is_ok()) {
      EXPECT_EQ(status.code(), ErrorCode::corruption);
      ++corrupt;
    }
  }
  EXPECT_GT(corrupt, 1000);
}

TEST_F(BatchDamage, RecordCountMismatchIsCorruption) {
  // One record fewer than claimed leaves trailing bytes; one more runs off the end.
  for (std::uint32_t claimed : {7u, 9u}) {
    std::string edited = batch_;
    base::store_u32(edited.data() + 12, claimed);
    base::store_u32(edited.data() + 24, claimed - 1);
    reseal(edited);
    BatchHeader header;
    ASSERT_EQ(check_batch_header(edited.data(), edited.size(), header), HeaderCheck::valid);
    RecordDecoder decoder;
    int seen = 0;
    Status status = decoder.decode(edited.data(), header, [&](const MessageView&) {
      ++seen;
      return true;
    });
    EXPECT_EQ(status.code(), ErrorCode::corruption) << claimed;
    EXPECT_LE(seen, 8);
  }
}

}  // namespace
}  // namespace msgstore::log
