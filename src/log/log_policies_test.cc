// Tests of the policy hooks of the log layer: PartitionLog::append's precondition (conditional
// append), the TTL filter of PartitionLog::scan, TTL retention, and log/message_policy.h.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "io/fault_file_system.h"
#include "log/log_test_support.h"
#include "log/message_policy.h"
#include "log/partition_log.h"

namespace msgstore::log {
namespace {

struct ManualClock {
  std::shared_ptr<std::atomic<TimestampMs>> now = std::make_shared<std::atomic<TimestampMs>>(1'700'000'000'000);
  Clock clock() const {
    auto shared = now;
    return [shared] { return shared->load(); };
  }
};

Record record_with_ttl(std::string payload, TimestampMs timestamp_ms, std::optional<std::int64_t> ttl_ms) {
  Record record;
  record.timestamp_ms = timestamp_ms;
  record.subject = "cache.a";
  if (ttl_ms) record.headers = {{std::string(ttl_header), std::to_string(*ttl_ms)}};
  record.payload = std::move(payload);
  return record;
}

TEST(LogPolicies, ARejectingPreconditionWritesNothing) {
  FaultFileSystem file_system;
  auto log = open_log(file_system, "/p");
  ASSERT_TRUE(log.is_ok());
  std::vector<Record> model;
  ASSERT_TRUE(append(**log, {record_with_ttl("zero", 1000, std::nullopt)}, &model).is_ok());
  const auto bytes_before = (*log)->info(0).bytes;

  BatchBuilder builder;
  fill(builder, {record_with_ttl("refused", 1000, std::nullopt)});
  Offset seen = 0;
  auto refused = (*log)->append(builder, [&](Offset next_offset) {
    seen = next_offset;
    return Status(ErrorCode::expected_offset_mismatch, "no", next_offset - 1);
  });
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::expected_offset_mismatch);
  EXPECT_EQ(refused.status().actual_offset(), std::optional<std::uint64_t>(0));  // passed through as is
  EXPECT_EQ(seen, 1u);
  EXPECT_EQ((*log)->high_watermark(), 1u);
  EXPECT_EQ((*log)->info(0).bytes, bytes_before);

  fill(builder, {record_with_ttl("one", 1000, std::nullopt)});
  auto accepted = (*log)->append(builder, [](Offset next_offset) {
    return next_offset == 1 ? Status::ok() : Status(ErrorCode::expected_offset_mismatch, "no");
  });
  ASSERT_TRUE(accepted.is_ok()) << accepted.status().to_string();
  EXPECT_EQ(*accepted, 1u);
  auto all = read_all(**log);
  ASSERT_TRUE(all.is_ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[1].payload, "one");
}

TEST(LogPolicies, ConcurrentPreconditionsOnTheSameOffsetHaveOneWinner) {
  FaultFileSystem file_system;
  auto log = open_log(file_system, "/p");  // fsync=always: group commit runs between the appends
  ASSERT_TRUE(log.is_ok());
  constexpr int appenders = 8;
  for (Offset round = 0; round < 25; ++round) {
    std::atomic<int> winners{0};
    std::vector<std::thread> threads;
    for (int appender = 0; appender < appenders; ++appender) {
      threads.emplace_back([&] {
        BatchBuilder builder;
        fill(builder, {record_with_ttl("r" + std::to_string(round), 1000, std::nullopt)});
        auto result = (*log)->append(builder, [round](Offset next_offset) {
          return next_offset == round ? Status::ok() : Status(ErrorCode::expected_offset_mismatch, "taken");
        });
        if (result.is_ok()) ++winners;
      });
    }
    for (auto& thread : threads) thread.join();
    ASSERT_EQ(winners.load(), 1) << "round " << round;
  }
  EXPECT_EQ((*log)->high_watermark(), 25u);
}

TEST(LogPolicies, ScanSkipsExpiredMessagesByTheLogsClock) {
  FaultFileSystem file_system;
  ManualClock clock;
  const TimestampMs now = clock.now->load();
  auto log = open_log(file_system, "/p", {}, clock.clock());
  ASSERT_TRUE(log.is_ok());
  ASSERT_TRUE(append(**log, {record_with_ttl("plain", now, std::nullopt), record_with_ttl("ttl 1s", now, 1000),
                             record_with_ttl("ttl 1h", now, 3'600'000), record_with_ttl("plain too", now, std::nullopt)})
                  .is_ok());
  auto payloads = [&](ScanExpired expired) {
    std::vector<std::string> result;
    auto next = (*log)->scan(0, 100, 1 << 20, [&](const MessageView& view) {
      result.emplace_back(view.payload);
      return true;
    }, expired);
    EXPECT_TRUE(next.is_ok());
    if (next.is_ok()) {
      EXPECT_EQ(*next, 4u);
    }
    return result;
  };
  EXPECT_EQ(payloads(ScanExpired::skip), (std::vector<std::string>{"plain", "ttl 1s", "ttl 1h", "plain too"}));
  clock.now->store(now + 999);
  EXPECT_EQ(payloads(ScanExpired::skip).size(), 4u);
  clock.now->store(now + 1000);  // expiry = timestamp + TTL: gone from that millisecond on
  EXPECT_EQ(payloads(ScanExpired::skip), (std::vector<std::string>{"plain", "ttl 1h", "plain too"}));
  EXPECT_EQ(payloads(ScanExpired::include).size(), 4u);
  clock.now->store(now + 3'600'000);
  EXPECT_EQ(payloads(ScanExpired::skip), (std::vector<std::string>{"plain", "plain too"}));
  // max_messages counts only what is returned.
  std::vector<Offset> offsets;
  auto next = (*log)->scan(1, 1, 1 << 20, [&](const MessageView& view) {
    offsets.push_back(view.offset);
    return true;
  });
  ASSERT_TRUE(next.is_ok());
  EXPECT_EQ(offsets, (std::vector<Offset>{3}));
  EXPECT_EQ(*next, 4u);
}

TEST(LogPolicies, RetentionDropsSealedSegmentsOnceAllTheirMessagesExpired) {
  FaultFileSystem file_system;
  ManualClock clock;
  const TimestampMs now = clock.now->load();
  LogOptions options;
  options.segment_bytes = limits::segment_bytes_min;  // no retention limits at all
  auto log = open_log(file_system, "/p", options, clock.clock());
  ASSERT_TRUE(log.is_ok());
  const std::string payload(600, 'x');
  // Segments of messages expiring at now+1000, then at now+2000, then one without a TTL.
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(append(**log, {record_with_ttl(payload, now, 1000)}).is_ok());
  const Offset second_group = (*log)->high_watermark();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(append(**log, {record_with_ttl(payload, now, 2000)}).is_ok());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(append(**log, {record_with_ttl(payload, now, std::nullopt)}).is_ok());
  const auto before = segment_bases(file_system, "/p");
  ASSERT_GT(before.size(), 6u);

  ASSERT_TRUE((*log)->maintain().is_ok());
  EXPECT_EQ((*log)->log_start_offset(), 0u);  // nothing expired yet
  clock.now->store(now + 1000);
  ASSERT_TRUE((*log)->maintain().is_ok());
  const Offset first_start = (*log)->log_start_offset();
  EXPECT_GT(first_start, 0u);
  EXPECT_LE(first_start, second_group);  // the segment holding both groups waits for the later expiry
  clock.now->store(now + 2000);
  ASSERT_TRUE((*log)->maintain().is_ok());
  const Offset second_start = (*log)->log_start_offset();
  EXPECT_GT(second_start, first_start);
  EXPECT_LE(second_start, 40u);  // the segment with the first message without a TTL stays
  const auto after = segment_bases(file_system, "/p");
  EXPECT_EQ(after.front(), second_start);
  auto rest = read_all(**log);
  ASSERT_TRUE(rest.is_ok());
  EXPECT_EQ(rest->size(), 20u);  // expired ones left in a kept segment are gaps
  clock.now->store(now + 1'000'000);
  ASSERT_TRUE((*log)->maintain().is_ok());
  EXPECT_EQ((*log)->log_start_offset(), second_start);
}

TEST(MessagePolicy, HeaderLookupAndTtlParsing) {
  EXPECT_TRUE(header_name_equals("msgstore-ttl-ms", ttl_header));
  EXPECT_TRUE(header_name_equals("MSGSTORE-MESSAGE-ID", message_id_header));
  EXPECT_FALSE(header_name_equals("Msgstore-TTL-M", ttl_header));
  EXPECT_EQ(parse_ttl_ms("1"), std::optional<std::int64_t>(1));
  EXPECT_EQ(parse_ttl_ms(std::to_string(limits::ttl_ms_max)), std::optional<std::int64_t>(limits::ttl_ms_max));
  for (std::string_view bad : {"", "0", "-1", "+1", " 1", "1 ", "1.5", "abc", "99999999999999999999"}) {
    EXPECT_FALSE(parse_ttl_ms(bad).has_value()) << "'" << bad << "'";
  }
  EXPECT_FALSE(parse_ttl_ms(std::to_string(limits::ttl_ms_max + 1)).has_value());
  const HeaderView headers[] = {{"a", "1"}, {"Msgstore-TTL-Ms", "250"}};
  MessageView view;
  view.timestamp_ms = 1000;
  view.headers = headers;
  EXPECT_EQ(message_expiry_ms(view), std::optional<TimestampMs>(1250));
  EXPECT_FALSE(is_expired(view, 1249));
  EXPECT_TRUE(is_expired(view, 1250));
  view.timestamp_ms = std::numeric_limits<TimestampMs>::max() - 10;  // saturates
  EXPECT_EQ(message_expiry_ms(view), std::optional<TimestampMs>(std::numeric_limits<TimestampMs>::max()));
  const HeaderView malformed[] = {{"msgstore-ttl-ms", "soon"}};
  view.headers = malformed;
  EXPECT_FALSE(message_expiry_ms(view).has_value());
}

}  // namespace
}  // namespace msgstore::log
