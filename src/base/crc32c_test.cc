#include "base/crc32c.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace msgstore::base {
namespace {

std::uint32_t crc_of(const std::string& text) { return crc32c(text.data(), text.size()); }

// Bit-at-a-time reference, independent of both implementations under test.
std::uint32_t reference_crc32c(const unsigned char* data, std::size_t size) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1u) ? 0x82F63B78u : 0u);
  }
  return ~crc;
}

TEST(Crc32c, CheckValue) {
  // The standard check value of CRC-32C (Castagnoli).
  EXPECT_EQ(crc_of("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c_extend_portable(0, "123456789", 9), 0xE3069283u);
}

TEST(Crc32c, Rfc3720Vectors) {
  // iSCSI (RFC 3720, appendix B.4) test vectors.
  std::vector<unsigned char> bytes(32, 0x00);
  EXPECT_EQ(crc32c(bytes.data(), bytes.size()), 0x8A9136AAu);
  std::fill(bytes.begin(), bytes.end(), 0xFF);
  EXPECT_EQ(crc32c(bytes.data(), bytes.size()), 0x62A8AB43u);
  for (int i = 0; i < 32; ++i) bytes[i] = static_cast<unsigned char>(i);
  EXPECT_EQ(crc32c(bytes.data(), bytes.size()), 0x46DD794Eu);
  for (int i = 0; i < 32; ++i) bytes[i] = static_cast<unsigned char>(31 - i);
  EXPECT_EQ(crc32c(bytes.data(), bytes.size()), 0x113FDB5Cu);
}

TEST(Crc32c, EmptyAndSingleByte) {
  EXPECT_EQ(crc32c(nullptr, 0), 0u);
  EXPECT_EQ(crc32c_extend(0x12345678u, nullptr, 0), 0x12345678u);
  EXPECT_EQ(crc_of("a"), 0xC1D04330u);
}

TEST(Crc32c, ExtendEqualsWholeAtEverySplit) {
  const std::string text = "The quick brown fox jumps over the lazy dog, twice: the quick brown fox.";
  const std::uint32_t whole = crc_of(text);
  for (std::size_t split = 0; split <= text.size(); ++split) {
    std::uint32_t crc = crc32c_extend(0, text.data(), split);
    crc = crc32c_extend(crc, text.data() + split, text.size() - split);
    EXPECT_EQ(crc, whole) << "split at " << split;
    std::uint32_t portable = crc32c_extend_portable(0, text.data(), split);
    portable = crc32c_extend_portable(portable, text.data() + split, text.size() - split);
    EXPECT_EQ(portable, whole) << "split at " << split;
  }
}

TEST(Crc32c, AcceleratedEqualsPortableOnRandomBuffers) {
  std::mt19937_64 random(42);
  std::vector<unsigned char> storage(4096 + 64);
  for (auto& byte : storage) byte = static_cast<unsigned char>(random());
  for (std::size_t length = 0; length <= 600; ++length) {
    for (std::size_t alignment = 0; alignment < 8; ++alignment) {
      const unsigned char* data = storage.data() + alignment;
      const std::uint32_t seed = (length % 3 == 0) ? 0 : static_cast<std::uint32_t>(random());
      const std::uint32_t fast = crc32c_extend(seed, data, length);
      const std::uint32_t portable = crc32c_extend_portable(seed, data, length);
      ASSERT_EQ(fast, portable) << "length " << length << " alignment " << alignment;
      if (seed == 0) { ASSERT_EQ(portable, reference_crc32c(data, length)) << "length " << length; }
    }
  }
  for (std::size_t length : {1023u, 1024u, 1025u, 4095u, 4096u}) {
    for (std::size_t alignment = 0; alignment < 64; alignment += 7) {
      const unsigned char* data = storage.data() + alignment;
      ASSERT_EQ(crc32c(data, length), crc32c_extend_portable(0, data, length));
      ASSERT_EQ(crc32c(data, length), reference_crc32c(data, length));
    }
  }
}

TEST(Crc32c, DetectsEverySingleBitFlip) {
  std::mt19937_64 random(7);
  std::vector<unsigned char> data(256);
  for (auto& byte : data) byte = static_cast<unsigned char>(random());
  const std::uint32_t original = crc32c(data.data(), data.size());
  for (std::size_t bit = 0; bit < data.size() * 8; ++bit) {
    data[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
    ASSERT_NE(crc32c(data.data(), data.size()), original) << "bit " << bit;
    data[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
  }
  EXPECT_EQ(crc32c(data.data(), data.size()), original);
}

}  // namespace
}  // namespace msgstore::base

namespace msgstore::base {
namespace {

// Lengths around the three-stream stripes of the accelerated path (3 x 1024 bytes), at every
// alignment, with a non-zero starting CRC: the joined registers must equal the portable CRC.
TEST(Crc32c, StripedPathEqualsPortableAcrossStripeBoundaries) {
  std::mt19937_64 random(11);
  std::vector<unsigned char> data(4 * 3072 + 64);
  for (auto& byte : data) byte = static_cast<unsigned char>(random());
  for (std::size_t length : {3071u, 3072u, 3073u, 3080u, 6143u, 6144u, 6151u, 9216u, 12288u, 12300u}) {
    for (std::size_t alignment = 0; alignment < 8; ++alignment) {
      ASSERT_EQ(crc32c_extend(0xDEADBEEFu, data.data() + alignment, length),
                crc32c_extend_portable(0xDEADBEEFu, data.data() + alignment, length))
          << "length " << length << " alignment " << alignment;
    }
  }
}

}  // namespace
}  // namespace msgstore::base
