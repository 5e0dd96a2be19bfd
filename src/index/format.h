// Constants of the message index file format, version 1. The grammar, rationale and a worked
// example are in docs/formats/index-files.md; keep the two in step.
#pragma once

#include <cstddef>
#include <cstdint>

namespace msgstore::index::format {

// ---- Index file: <segment base offset, 20 digits>.v1.message_index, beside the segment ----
inline constexpr std::uint32_t magic = 0x5849534Du;  // "MSIX" little-endian
inline constexpr std::uint16_t version = 1;
inline constexpr std::size_t header_bytes = 64;
// Header layout:
//   0 magic u32            4 version u16          6 flags u16 (0)
//   8 base_offset u64      (the segment's first offset; the file names it too)
//  16 log_bytes u64        (the segment's length when indexed: a file for any other length is stale)
//  24 next_offset u64      (one past the segment's last offset when indexed)
//  32 configuration_fingerprint u64 (term_hash of the indexed header names; stale if it differs)
//  40 term_count u32      44 bloom_words u32     48 posting_count u32
//  52 tables_crc32c u32    (CRC32C of the bloom filter and the term table)
//  56 reserved u32 (0)    60 header_crc32c u32 (of bytes 0..60)
inline constexpr std::size_t header_crc_position = 60;
// Then: bloom filter, bloom_words x u64 (bit i of the filter is bit i%64 of word i/64);
//       term table, term_count x term_entry_bytes, sorted by term_hash, strictly ascending:
//         term_hash u64 | first_posting u32 | posting_count u32 | postings_crc32c u32 | reserved u32
//       postings, posting_count x posting_bytes, each term's run ascending by relative offset:
//         relative_offset u32 | position u32 (byte position of the record's batch in the segment)
inline constexpr std::size_t term_entry_bytes = 24;
inline constexpr std::size_t posting_bytes = 8;
// Bloom filter: bloom_bits_per_term bits per term, rounded up to whole 64-bit words, at least
// one word; bloom_probes probes by double hashing of the 64-bit term hash.
inline constexpr std::uint32_t bloom_bits_per_term = 10;
inline constexpr std::uint32_t bloom_probes = 7;

// Term kinds, mixed into the term hash so a key never matches a subject or a header.
inline constexpr std::uint64_t term_seed_key = 0x6b65790000000001ull;
inline constexpr std::uint64_t term_seed_subject = 0x7375626a00000002ull;
inline constexpr std::uint64_t term_seed_header = 0x6864720000000003ull;
inline constexpr std::uint64_t term_seed_configuration = 0x636667000000004ull;

static_assert(header_crc_position + 4 == header_bytes);

}  // namespace msgstore::index::format
