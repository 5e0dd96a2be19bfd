#include "base/coding.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace msgstore::base {
namespace {

std::string encode(std::uint64_t value) {
  char buffer[varint64_bytes_max];
  char* end = encode_varint(buffer, value);
  return std::string(buffer, end);
}

// Decodes `bytes` whole; nullopt when rejected or when bytes are left over.
std::optional<std::uint64_t> decode_all(const std::string& bytes) {
  std::uint64_t value = 0xDEADBEEF;
  const char* end = decode_varint(bytes.data(), bytes.data() + bytes.size(), value);
  if (end == nullptr) return std::nullopt;
  if (end != bytes.data() + bytes.size()) return std::nullopt;
  return value;
}

std::vector<std::uint64_t> interesting_values() {
  std::vector<std::uint64_t> values = {0, 1, 2, 0x7F, 0x80, 0x81, 0x3FFF, 0x4000, 0x1FFFFF, 0x200000,
                                       0xFFFFFFFFull, 0x100000000ull, std::numeric_limits<std::uint64_t>::max(),
                                       std::numeric_limits<std::uint64_t>::max() - 1};
  for (int bits = 1; bits < 64; ++bits) {
    values.push_back((std::uint64_t{1} << bits) - 1);
    values.push_back(std::uint64_t{1} << bits);
  }
  return values;
}

TEST(Varint, KnownEncodings) {
  EXPECT_EQ(encode(0), std::string("\x00", 1));
  EXPECT_EQ(encode(1), "\x01");
  EXPECT_EQ(encode(127), "\x7F");
  EXPECT_EQ(encode(128), "\x80\x01");
  EXPECT_EQ(encode(300), "\xAC\x02");
  EXPECT_EQ(encode(16384), std::string("\x80\x80\x01", 3));
  EXPECT_EQ(encode(std::numeric_limits<std::uint64_t>::max()), "\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x01");
}

TEST(Varint, RoundTripAndLength) {
  std::mt19937_64 random(1);
  std::vector<std::uint64_t> values = interesting_values();
  for (int i = 0; i < 10000; ++i) values.push_back(random() >> (random() % 64));
  for (std::uint64_t value : values) {
    const std::string bytes = encode(value);
    ASSERT_EQ(bytes.size(), varint_length(value)) << value;
    ASSERT_LE(bytes.size(), varint64_bytes_max);
    auto decoded = decode_all(bytes);
    ASSERT_TRUE(decoded.has_value()) << value;
    EXPECT_EQ(*decoded, value);
    // Decoding stops at the end of the varint and leaves following bytes alone.
    const std::string followed = bytes + "\x05rest";
    std::uint64_t out = 0;
    const char* end = decode_varint(followed.data(), followed.data() + followed.size(), out);
    ASSERT_EQ(end, followed.data() + bytes.size());
    EXPECT_EQ(out, value);
  }
}

TEST(Varint, TruncatedIsRejected) {
  for (std::uint64_t value : interesting_values()) {
    const std::string bytes = encode(value);
    for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
      std::uint64_t out = 0;
      EXPECT_EQ(decode_varint(bytes.data(), bytes.data() + cut, out), nullptr)
          << "value " << value << " cut to " << cut;
    }
  }
  std::uint64_t out = 0;
  const std::string continuation_only = "\x80\x80\x80";
  EXPECT_EQ(decode_varint(continuation_only.data(), continuation_only.data() + continuation_only.size(), out), nullptr);
}

TEST(Varint, OverlongIsRejected) {
  // Eleven bytes: longer than any 64-bit varint.
  std::string eleven(10, '\x80');
  eleven.push_back('\x01');
  EXPECT_FALSE(decode_all(eleven).has_value());
  std::string many(20, '\xFF');
  many.push_back('\x00');
  EXPECT_FALSE(decode_all(many).has_value());
  // Ten bytes whose last byte carries bits beyond 2^64: the value does not fit.
  for (int last = 2; last < 0x80; ++last) {
    std::string ten(9, '\xFF');
    ten.push_back(static_cast<char>(last));
    EXPECT_FALSE(decode_all(ten).has_value()) << "last byte " << last;
  }
  // The largest ten-byte varint is still accepted.
  std::string largest(9, '\xFF');
  largest.push_back('\x01');
  ASSERT_TRUE(decode_all(largest).has_value());
  EXPECT_EQ(*decode_all(largest), std::numeric_limits<std::uint64_t>::max());
}

TEST(Varint, EmptyInputIsRejected) {
  std::uint64_t out = 0;
  const char byte = 0;
  EXPECT_EQ(decode_varint(&byte, &byte, out), nullptr);
}

TEST(Zigzag, KnownValues) {
  EXPECT_EQ(zigzag_encode(0), 0u);
  EXPECT_EQ(zigzag_encode(-1), 1u);
  EXPECT_EQ(zigzag_encode(1), 2u);
  EXPECT_EQ(zigzag_encode(-2), 3u);
  EXPECT_EQ(zigzag_encode(2), 4u);
  EXPECT_EQ(zigzag_encode(std::numeric_limits<std::int64_t>::max()), std::numeric_limits<std::uint64_t>::max() - 1);
  EXPECT_EQ(zigzag_encode(std::numeric_limits<std::int64_t>::min()), std::numeric_limits<std::uint64_t>::max());
}

TEST(Zigzag, RoundTrip) {
  std::mt19937_64 random(2);
  std::vector<std::int64_t> values = {0, 1, -1, 63, -64, 64, -65, std::numeric_limits<std::int64_t>::max(),
                                      std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::min() + 1};
  for (int i = 0; i < 10000; ++i) values.push_back(static_cast<std::int64_t>(random()) >> (random() % 64));
  for (std::int64_t value : values) {
    EXPECT_EQ(zigzag_decode(zigzag_encode(value)), value);
    // Small magnitudes stay small on the wire.
    if (value >= -64 && value < 64) { EXPECT_EQ(varint_length(zigzag_encode(value)), 1u) << value; }
  }
  for (int i = 0; i < 10000; ++i) {
    const std::uint64_t encoded = random();
    EXPECT_EQ(zigzag_encode(zigzag_decode(encoded)), encoded);
  }
}

TEST(FixedWidth, LittleEndianRoundTrip) {
  char buffer[8];
  store_u16(buffer, 0x0102);
  EXPECT_EQ(std::string(buffer, 2), "\x02\x01");
  EXPECT_EQ(load_u16(buffer), 0x0102);
  store_u32(buffer, 0x01020304u);
  EXPECT_EQ(std::string(buffer, 4), "\x04\x03\x02\x01");
  EXPECT_EQ(load_u32(buffer), 0x01020304u);
  store_u64(buffer, 0x0102030405060708ull);
  EXPECT_EQ(std::string(buffer, 8), "\x08\x07\x06\x05\x04\x03\x02\x01");
  EXPECT_EQ(load_u64(buffer), 0x0102030405060708ull);
  store_i64(buffer, -2);
  EXPECT_EQ(std::string(buffer, 8), "\xFE\xFF\xFF\xFF\xFF\xFF\xFF\xFF");
  EXPECT_EQ(load_i64(buffer), -2);
  store_i64(buffer, std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(load_i64(buffer), std::numeric_limits<std::int64_t>::min());
  // Unaligned access works.
  char unaligned[16] = {};
  store_u64(unaligned + 3, 0xA1B2C3D4E5F60718ull);
  EXPECT_EQ(load_u64(unaligned + 3), 0xA1B2C3D4E5F60718ull);
}

}  // namespace
}  // namespace msgstore::base
