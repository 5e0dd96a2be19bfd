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

// Past one chunk of entries (the builder stores them in chunks of 16,384), and again after
// clear() reuses the chunks: the in-memory postings and the encoded file both hold exactly
// what was added, in order.
TEST(SegmentIndexFile, ManyChunksOfEntriesAndReuseAfterClear) {
  Built built;
  for (int round = 0; round < 2; ++round) {
    std::mt19937_64 random(11 + round);
    built.builder.clear();
    built.expected.clear();
    build(built, random, 40'000 - 7'000 * round);  // 80,000 then 66,000 postings
    EXPECT_EQ(built.builder.posting_count(), round == 0 ? 80'000u : 66'000u);
    const std::string image = SegmentIndexBuilder::encode({&built.builder}, 0, 1u << 30, 40'000, 0);
    std::uint64_t bytes_read = 0;
    auto file = SegmentIndexFile::open(memory_file(image), bytes_read);
    ASSERT_TRUE(file.is_ok()) << file.status().to_string();
    EXPECT_EQ((*file)->header().posting_count, built.builder.posting_count());
    for (const auto& [term, expected] : built.expected) {
      std::vector<Posting> in_memory;
      built.builder.postings(term, in_memory);
      EXPECT_EQ(pairs(in_memory), pairs(expected));
      std::vector<Posting> from_file;
      ASSERT_TRUE((*file)->postings(term, from_file, bytes_read).is_ok());
      EXPECT_EQ(pairs(from_file), pairs(expected));
    }
  }
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

// The builder's table grows far past its first size and is reused after clear(): every term
// answers exactly its postings, in memory and from the encoded file, and nothing survives a clear.
TEST(SegmentIndexBuilder, GrowsAndClearsWithoutLosingOrKeepingPostings) {
  std::mt19937_64 random(13);
  SegmentIndexBuilder builder;
  for (int round = 0; round < 3; ++round) {
    std::map<std::uint64_t, std::vector<Posting>> expected;
    const int distinct = round == 1 ? 50 : 20000;  // the middle round stays small in a large table
    std::uint32_t position = 64;
    for (std::uint32_t relative = 0; relative < 30000; ++relative) {
      if (relative % 7 == 0) position += 200;
      const std::uint64_t term = key_term("round" + std::to_string(round) + "-" + std::to_string(random() % distinct));
      builder.add(term, {relative, position});
      builder.add(term, {relative, position});  // the same term twice in one message: one posting
      expected[term].push_back({relative, position});
    }
    EXPECT_EQ(builder.term_count(), expected.size());
    EXPECT_EQ(builder.posting_count(), 30000u);
    const std::string image = SegmentIndexBuilder::encode({&builder}, 0, 1u << 30, 30000, 0);
    std::uint64_t bytes_read = 0;
    auto file = SegmentIndexFile::open(memory_file(image), bytes_read);
    ASSERT_TRUE(file.is_ok()) << file.status().to_string();
    EXPECT_EQ((*file)->header().term_count, expected.size());
    for (const auto& [term, postings] : expected) {
      std::vector<Posting> in_memory;
      builder.postings(term, in_memory);
      ASSERT_EQ(pairs(in_memory), pairs(postings));
      std::vector<Posting> from_file;
      ASSERT_TRUE((*file)->postings(term, from_file, bytes_read).is_ok());
      ASSERT_EQ(pairs(from_file), pairs(postings));
    }
    const std::uint64_t earlier_round_term = key_term("round" + std::to_string(round) + "-0");
    builder.clear();
    EXPECT_FALSE(builder.contains(earlier_round_term));
    EXPECT_EQ(builder.posting_count(), 0u);
    std::vector<Posting> none;
    builder.postings(earlier_round_term, none);
    EXPECT_TRUE(none.empty());
  }
}

// Terms whose hashes agree in many low and high bits (as chosen keys could) still index
// correctly: the table salts its slot positions and the sort falls back per bucket.
TEST(SegmentIndexBuilder, CrowdedHashesStayCorrect) {
  SegmentIndexBuilder older;
  SegmentIndexBuilder newer;
  std::vector<std::uint64_t> terms;
  for (std::uint64_t i = 0; i < 3000; ++i) terms.push_back((i << 20) | 0xABCDEull);  // same low 20 and top 42 bits
  for (std::uint32_t relative = 0; relative < 6000; ++relative) {
    (relative < 3000 ? older : newer).add(terms[relative % terms.size()], {relative, 64});
  }
  const std::string image = SegmentIndexBuilder::encode({&older, &newer}, 0, 1000, 6000, 0);
  std::uint64_t bytes_read = 0;
  auto file = SegmentIndexFile::open(memory_file(image), bytes_read);
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();
  for (std::size_t i = 0; i < terms.size(); ++i) {
    std::vector<Posting> postings;
    ASSERT_TRUE((*file)->postings(terms[i], postings, bytes_read).is_ok());
    ASSERT_EQ(pairs(postings), (std::vector<std::pair<std::uint32_t, std::uint32_t>>{
                                   {static_cast<std::uint32_t>(i), 64}, {static_cast<std::uint32_t>(i + 3000), 64}}));
  }
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

// Pinned values of hash_bytes (computed with the implementation the format was released with):
// every index file depends on every bit of it, so an optimisation must not move any of them.
TEST(Terms, HashIsTheFormatsHashForEveryLength) {
  char bytes[41];
  for (int i = 0; i < 41; ++i) bytes[i] = static_cast<char>(i * 37 + 200);
  std::uint64_t folded = 0;
  for (std::size_t length = 0; length <= 40; ++length) {
    for (std::uint64_t seed : {0ull, 0x0123456789abcdefull}) folded = folded * 31 + hash_bytes(std::string_view(bytes, length), seed);
  }
  EXPECT_EQ(folded, 0x54f666c2c1dd7b2full);
  EXPECT_EQ(key_term(""), 0xf5715a8d721e8bbaull);
  EXPECT_EQ(key_term("order-1234"), 0xf1f4faa198f458a4ull);
  EXPECT_EQ(subject_term("orders.created"), 0xc27cafd9edd68b3eull);
  EXPECT_EQ(header_term("region", "eu"), 0x43df528f33a136d5ull);
}

// The bloom bits of a written file are the format's: bit i of a term is
// (low32(term) + i * (high32(term) | 1)) mod (64 * bloom_words), for i < bloom_probes.
TEST(SegmentIndexFile, BloomBitsFollowTheFormula) {
  std::mt19937_64 random(3);
  for (int terms : {1, 7, 64, 1000}) {
    SegmentIndexBuilder builder;
    std::vector<std::uint64_t> added;
    for (int i = 0; i < terms; ++i) {
      added.push_back(random());
      builder.add(added.back(), {static_cast<std::uint32_t>(i), 64});
    }
    const std::string image = SegmentIndexBuilder::encode({&builder}, 0, 1000, static_cast<Offset>(terms), 0);
    const std::uint32_t bloom_words = base::load_u32(image.data() + 44);
    std::vector<std::uint64_t> expected(bloom_words, 0);
    const std::uint64_t bits = std::uint64_t{bloom_words} * 64;
    for (std::uint64_t term : added) {
      for (std::uint64_t probe = 0; probe < format::bloom_probes; ++probe) {
        const std::uint64_t bit = ((term & 0xFFFFFFFFu) + probe * ((term >> 32) | 1)) % bits;
        expected[bit / 64] |= std::uint64_t{1} << (bit % 64);
      }
    }
    for (std::uint32_t word = 0; word < bloom_words; ++word) {
      ASSERT_EQ(base::load_u64(image.data() + format::header_bytes + word * 8), expected[word]) << terms << " terms, word " << word;
    }
    std::uint64_t bytes_read = 0;
    auto file = SegmentIndexFile::open(memory_file(image), bytes_read);
    ASSERT_TRUE(file.is_ok());
    for (std::uint64_t term : added) EXPECT_TRUE((*file)->might_contain(term));
  }
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
