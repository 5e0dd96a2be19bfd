#include "base/hash.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace msgstore::base {
namespace {

// Kafka's own test vectors (clients/src/test/.../utils/UtilsTest.java, testMurmur2), as signed
// Java ints; re-derived independently from the Java reference algorithm.
TEST(Murmur2, KafkaReferenceVectors) {
  const std::vector<std::pair<std::string, std::int32_t>> cases = {
      {"21", -973932308},
      {"foobar", -790332482},
      {"a-little-bit-long-string", -985981536},
      {"a-little-bit-longer-string", -1486304829},
      {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
      {"abc", 479470107},
  };
  for (const auto& [key, expected] : cases) {
    EXPECT_EQ(static_cast<std::int32_t>(murmur2(key)), expected) << key;
  }
}

TEST(Murmur2, TailLengthsAndEmpty) {
  // Values computed with the Java algorithm (seed 0x9747b28c), covering the empty input and
  // each tail length 1..3 on top of whole words.
  EXPECT_EQ(murmur2(""), 0x106E08D9u);
  EXPECT_EQ(murmur2("a"), 0xA2D0B27Cu);
  EXPECT_EQ(murmur2("abc"), 0x1C94221Bu);
  EXPECT_EQ(murmur2("21"), 0xC5F2F8ECu);
}

TEST(Murmur2, BytesAbove0x7FAreUnsigned) {
  // Java masks each byte with 0xff; a sign-extending port would differ on these. Values from
  // the Java algorithm.
  EXPECT_EQ(murmur2("\xFF\xFE\x80\x81\xC3"), 0x86DA3E72u);
  EXPECT_EQ(murmur2("\xFF"), 0xED6F615Bu);
  EXPECT_EQ(murmur2("\x80\x80\x80\x80"), 0xFA4E6E04u);
}

TEST(Murmur2, KafkaPartitionChoice) {
  // Kafka's default partitioner: toPositive(murmur2(key)) % partitions.
  EXPECT_EQ(partition_for_key("21", 3), (0xC5F2F8ECu & 0x7FFFFFFFu) % 3);
  EXPECT_EQ(partition_for_key("21", 3), 0u);
  EXPECT_EQ(partition_for_key("foobar", 10), 6u);
  EXPECT_EQ(partition_for_key("a-little-bit-longer-string", 10), 9u);
  EXPECT_EQ(partition_for_key("abc", 10), 7u);
  EXPECT_EQ(partition_for_key("a", 10), 4u);
  EXPECT_EQ(partition_for_key("anything", 1), 0u);
}

TEST(Murmur2, DeterministicAndInRange) {
  std::mt19937_64 random(11);
  for (int i = 0; i < 2000; ++i) {
    std::string key(random() % 40, '\0');
    for (char& c : key) c = static_cast<char>(random());
    const std::uint32_t partitions = 1 + static_cast<std::uint32_t>(random() % 1024);
    const std::uint32_t partition = partition_for_key(key, partitions);
    EXPECT_LT(partition, partitions);
    EXPECT_EQ(partition, partition_for_key(std::string(key), partitions));
    EXPECT_EQ(murmur2(key), murmur2(key));
  }
}

TEST(Murmur2, SpreadsKeysEvenlyAcrossPartitions) {
  constexpr std::uint32_t partitions = 16;
  constexpr int keys = 64000;
  std::vector<int> counts(partitions, 0);
  for (int i = 0; i < keys; ++i) ++counts[partition_for_key("user-" + std::to_string(i), partitions)];
  const double expected = static_cast<double>(keys) / partitions;
  double chi_square = 0;
  for (int count : counts) {
    EXPECT_GT(count, expected * 0.9);
    EXPECT_LT(count, expected * 1.1);
    chi_square += (count - expected) * (count - expected) / expected;
  }
  // 15 degrees of freedom: p = 0.001 at 37.7.
  EXPECT_LT(chi_square, 37.7);
}

TEST(Murmur2, SmallChangesChangeTheHash) {
  std::map<std::uint32_t, std::string> seen;
  for (int i = 0; i < 10000; ++i) {
    const std::string key = "key" + std::to_string(i);
    auto [it, inserted] = seen.emplace(murmur2(key), key);
    EXPECT_TRUE(inserted) << key << " collides with " << it->second;
  }
}

}  // namespace
}  // namespace msgstore::base
