// Tests of the index file format (src/index/segment_index.*) and the cursor codec: round
// trips, the filter, and that no single damaged byte yields a wrong answer.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "base/coding.h"
#include "index/format.h"
#include "index/query_engine.h"
#include "index/segment_index.h"
#include "log/format.h"

namespace msgstore::index {
namespace {

struct Built {
  SegmentIndexBuilder builder;
  std::map<std::uint64_t, std::vector<Posting>> expected;
};

void build(Built& built, std::mt19937_64& random, int postings) {
  std::uint32_t position = static_cast<std::uint32_t>(log::format::segment_header_bytes);
  for (int relative = 0; relative < postings; ++relative) {
    if (random() % 4 == 0) position += 100;
    for (std::uint64_t term : {key_term("k" + std::to_string(random() % 20)), subject_term("s" + std::to_string(random() % 3))}) {
      built.builder.add(term, {static_cast<std::uint32_t>(relative), position});
      built.expected[term].push_back({static_cast<std::uint32_t>(relative), position});
    }
  }
}

std::vector<std::pair<std::uint32_t, std::uint32_t>> pairs(const std::vector<Posting>& postings) {
  std::vector<std::pair<std::uint32_t, std::uint32_t>> result;
  for (const Posting& posting : postings) result.emplace_back(posting.relative_offset, posting.position);
  return result;
}

TEST(SegmentIndexFile, RoundTripsAndFilters) {
  std::mt19937_64 random(7);
  Built first;
  build(first, random, 300);
  const std::string image = SegmentIndexBuilder::encode({&first.builder}, 1000, 1u << 20, 1300, 42);
  std::uint64_t bytes_read = 0;
  auto file = SegmentIndexFile::open(memory_file(image), bytes_read);
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  EXPECT_EQ((*file)->header().base_offset, 1000u);
  EXPECT_EQ((*file)->header().next_offset, 1300u);
  EXPECT_EQ((*file)->header().fingerprint, 42u);
  for (const auto& [term, expected] : first.expected) {
    EXPECT_TRUE((*file)->might_contain(term));
    std::vector<Posting> postings;
    ASSERT_TRUE((*file)->postings(term, postings, bytes_read).is_ok());
    EXPECT_EQ(pairs(postings), pairs(expected));
  }
  EXPECT_FALSE((*file)->might_contain(key_term("absent")));
  std::vector<Posting> none;
  ASSERT_TRUE((*file)->postings(key_term("absent"), none, bytes_read).is_ok());
  EXPECT_TRUE(none.empty());
}

TEST(SegmentIndexFile, TwoPartsMergeInOffsetOrder) {
  SegmentIndexBuilder older;
  SegmentIndexBuilder newer;
  const std::uint64_t term = key_term("k");
  older.add(term, {0, 32});
  older.add(term, {1, 32});
  newer.add(term, {5, 200});
  newer.add(key_term("other"), {6, 300});
  const std::string image = SegmentIndexBuilder::encode({&older, &newer}, 0, 400, 7, 0);
  std::uint64_t bytes_read = 0;
  auto file = SegmentIndexFile::open(memory_file(image), bytes_read);
  ASSERT_TRUE(file.is_ok());
  std::vector<Posting> postings;
  ASSERT_TRUE((*file)->postings(term, postings, bytes_read).is_ok());
  EXPECT_EQ(pairs(postings), (std::vector<std::pair<std::uint32_t, std::uint32_t>>{{0, 32}, {1, 32}, {5, 200}}));
}

TEST(SegmentIndexFile, RepeatedTermInOneMessageIsOnePosting) {
  SegmentIndexBuilder builder;
  builder.add(7, {3, 40});
  builder.add(7, {3, 40});
  std::vector<Posting> postings;
  builder.postings(7, postings);
  EXPECT_EQ(postings.size(), 1u);
}

TEST(SegmentIndexFile, NoSingleByteFlipGivesAWrongAnswer) {
  std::mt19937_64 random(11);
  Built built;
  build(built, random, 40);
  const std::string image = SegmentIndexBuilder::encode({&built.builder}, 0, 10000, 40, 9);
  for (std::size_t at = 0; at < image.size(); ++at) {
    for (int bit : {0, 7}) {
      std::string damaged = image;
      damaged[at] = static_cast<char>(damaged[at] ^ (1 << bit));
      std::uint64_t bytes_read = 0;
      auto file = SegmentIndexFile::open(memory_file(damaged), bytes_read);
      if (!file) continue;
      // Only the postings area can be damaged without failing open: each run has its CRC.
      EXPECT_EQ((*file)->header().fingerprint, 9u);
      for (const auto& [term, expected] : built.expected) {
        std::vector<Posting> postings;
        Status status = (*file)->postings(term, postings, bytes_read);
        if (status.is_ok()) {
          EXPECT_EQ(pairs(postings), pairs(expected)) << "byte " << at;
        } else {
          EXPECT_EQ(status.code(), ErrorCode::corruption);
        }
      }
    }
  }
}

TEST(SegmentIndexFile, TruncatedOrUnknownVersionIsRefused) {
  SegmentIndexBuilder builder;
  builder.add(1, {0, 32});
  const std::string image = SegmentIndexBuilder::encode({&builder}, 0, 100, 1, 0);
  for (std::size_t size = 0; size < image.size(); ++size) {
    std::uint64_t bytes_read = 0;
    EXPECT_FALSE(SegmentIndexFile::open(memory_file(image.substr(0, size)), bytes_read).is_ok()) << size;
  }
}

TEST(IndexFileName, RoundTrips) {
  EXPECT_EQ(index_file_path("dir", 42).filename().string(), "00000000000000000042.v1.message_index");
  EXPECT_EQ(parse_index_file_name("00000000000000000042.v1.message_index"), Offset{42});
  EXPECT_FALSE(parse_index_file_name("00000000000000000042.v1.log").has_value());
  EXPECT_FALSE(parse_index_file_name("0000000000000000004x.v1.message_index").has_value());
}

TEST(Cursor, RoundTripsAndRefusesDamage) {
  QueryCursor cursor{0x1234567890abcdefull, "orders.eu", 17, 123456789};
  const std::string text = encode_cursor(cursor);
  auto decoded = decode_cursor(text);
  ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
  EXPECT_EQ(decoded->query_fingerprint, cursor.query_fingerprint);
  EXPECT_EQ(decoded->stream, cursor.stream);
  EXPECT_EQ(decoded->partition, cursor.partition);
  EXPECT_EQ(decoded->offset, cursor.offset);
  for (std::size_t size = 0; size < text.size(); ++size) EXPECT_FALSE(decode_cursor(text.substr(0, size)).is_ok());
  EXPECT_FALSE(decode_cursor(text + "A").is_ok());
  EXPECT_FALSE(decode_cursor(text + "=").is_ok());
  EXPECT_FALSE(decode_cursor("").is_ok());
  EXPECT_FALSE(decode_cursor(std::string(10000, 'A')).is_ok());
  auto status = decode_cursor("%%%").status();
  EXPECT_EQ(status.code(), ErrorCode::invalid_argument);
  EXPECT_NE(status.message().find("malformed cursor"), std::string::npos);
}

TEST(Terms, KindsDoNotCollide) {
  EXPECT_NE(key_term("a"), subject_term("a"));
  EXPECT_NE(header_term("a", "b"), header_term("ab", ""));
  EXPECT_NE(header_term("a", "b"), header_term("a", "c"));
  EXPECT_EQ(make_index_configuration(true, {"b", "a", "a"}).header_names, (std::vector<std::string>{"a", "b"}));
  EXPECT_NE(make_index_configuration(true, {"a"}).fingerprint, make_index_configuration(true, {"b"}).fingerprint);
}

}  // namespace
}  // namespace msgstore::index
