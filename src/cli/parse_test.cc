#include "cli/parse.h"

#include <gtest/gtest.h>

namespace msgstore::cli {
namespace {

TEST(ParseTest, Unsigned) {
  EXPECT_EQ(*parse_unsigned("0", "n"), 0u);
  EXPECT_EQ(*parse_unsigned("18446744073709551615", "n"), UINT64_MAX);
  EXPECT_EQ(*parse_unsigned("7", "n", 7), 7u);
  for (const char* bad : {"", "-1", "+1", "1x", " 1", "18446744073709551616", "0x10"}) {
    auto parsed = parse_unsigned(bad, "--n");
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.status().code(), ErrorCode::invalid_argument);
    EXPECT_NE(parsed.status().message().find("--n"), std::string::npos);
  }
  EXPECT_FALSE(parse_unsigned("8", "n", 7));
}

TEST(ParseTest, Durations) {
  EXPECT_EQ(*parse_duration_ms("0", "d"), 0);
  EXPECT_EQ(*parse_duration_ms("500ms", "d"), 500);
  EXPECT_EQ(*parse_duration_ms("3600s", "d"), 3'600'000);
  EXPECT_EQ(*parse_duration_ms("15m", "d"), 900'000);
  EXPECT_EQ(*parse_duration_ms("2h", "d"), 7'200'000);
  EXPECT_EQ(*parse_duration_ms("7d", "d"), 604'800'000);
  EXPECT_EQ(*parse_duration_ms("1w", "d"), 604'800'000);
  for (const char* bad : {"", "7", "7x", "d", "-1s", "1.5h", "7 d", "99999999999999999999d", "9999999999999999w"}) {
    EXPECT_FALSE(parse_duration_ms(bad, "--max-age")) << bad;
  }
}

TEST(ParseTest, Bytes) {
  EXPECT_EQ(*parse_bytes("4096", "b"), 4096u);
  EXPECT_EQ(*parse_bytes("512B", "b"), 512u);
  EXPECT_EQ(*parse_bytes("64KiB", "b"), 65536u);
  EXPECT_EQ(*parse_bytes("1gib", "b"), 1ull << 30);
  EXPECT_EQ(*parse_bytes("1GiB", "b"), 1ull << 30);
  EXPECT_EQ(*parse_bytes("10KB", "b"), 10'000u);
  EXPECT_EQ(*parse_bytes("1MB", "b"), 1'000'000u);
  EXPECT_EQ(*parse_bytes("2TiB", "b"), 2ull << 40);
  for (const char* bad : {"", "GiB", "1XB", "1 GiB", "-1", "1.5GiB", "99999999999TiB"}) {
    EXPECT_FALSE(parse_bytes(bad, "--max-bytes")) << bad;
  }
}

TEST(ParseTest, Times) {
  EXPECT_EQ(*parse_time_ms("0", "t"), 0);
  EXPECT_EQ(*parse_time_ms("1714566600250", "t"), 1714566600250);
  EXPECT_EQ(*parse_time_ms("1970-01-01", "t"), 0);
  EXPECT_EQ(*parse_time_ms("2024-05-01", "t"), 1714521600000);
  EXPECT_EQ(*parse_time_ms("2024-05-01T12:30:00Z", "t"), 1714566600000);
  EXPECT_EQ(*parse_time_ms("2024-05-01T12:30:00", "t"), 1714566600000);  // no zone: UTC
  EXPECT_EQ(*parse_time_ms("2024-05-01 12:30:00.250Z", "t"), 1714566600250);
  EXPECT_EQ(*parse_time_ms("2024-05-01T12:30:00.25Z", "t"), 1714566600250);
  EXPECT_EQ(*parse_time_ms("2024-05-01T12:30:00.123456Z", "t"), 1714566600123);
  EXPECT_EQ(*parse_time_ms("2024-05-01T14:30:00+02:00", "t"), 1714566600000);
  EXPECT_EQ(*parse_time_ms("2024-05-01T07:30:00-0500", "t"), 1714566600000);
  EXPECT_EQ(*parse_time_ms("2024-05-01T12:30Z", "t"), 1714566600000);
  EXPECT_EQ(*parse_time_ms("2024-02-29T00:00:00Z", "t"), 1709164800000);
  for (const char* bad : {"", "yesterday", "2024-13-01", "2023-02-29", "2024-05-01T25:00:00Z", "2024-05-01T12:30:00X",
                          "2024-05-01T12:30:00.Z", "2024-5-1", "1969-12-31", "-5", "2024-05-01T12:30:00+2"}) {
    EXPECT_FALSE(parse_time_ms(bad, "--from-time")) << bad;
  }
}

TEST(ParseTest, FormatTimeRoundTrips) {
  EXPECT_EQ(format_time_iso(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_time_iso(1714566600250), "2024-05-01T12:30:00.250Z");
  EXPECT_EQ(*parse_time_ms(format_time_iso(1714566600250), "t"), 1714566600250);
  EXPECT_EQ(format_time_iso(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(format_time_iso(INT64_MAX), "(out of range)");
  EXPECT_EQ(format_time_iso(INT64_MIN), "(out of range)");
}

TEST(ParseTest, SplitList) {
  EXPECT_EQ(split_list("orders.*,orders.>"), (std::vector<std::string>{"orders.*", "orders.>"}));
  EXPECT_EQ(split_list("a,,b,"), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(split_list("").empty());
}

}  // namespace
}  // namespace msgstore::cli
