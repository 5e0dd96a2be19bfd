// Constants of the segment, batch and index formats, version 1. The grammar, rationale and a
// worked example are in docs/formats/segment-log.md; keep the two in step.
#pragma once

#include <cstddef>
#include <cstdint>

namespace msgstore::log::format {

// ---- Segment file: <base offset, 20 digits>.v1.log ----
inline constexpr std::uint32_t segment_magic = 0x4753534Du;  // "MSSG" little-endian
inline constexpr std::uint16_t segment_version = 1;
// Version 2 headers are written only by the segment rewrite (compaction, erase): same layout,
// flags bit 0 set. Such a segment may have offset gaps anywhere, including at its end (its
// last offset is then the next segment's base minus one). Readers accept 1 and 2; the file
// name keeps ".v1" (the name's version is the file family; batches and indexes are unchanged).
inline constexpr std::uint16_t segment_version_rewritten = 2;
inline constexpr std::uint16_t segment_flag_rewritten = 1;
inline constexpr std::size_t segment_header_bytes = 32;
// Layout: magic u32 | version u16 | flags u16 | base_offset u64 | created_ms i64 |
//         reserved u32 | header_crc32c u32 (over bytes 0..28)
inline constexpr std::size_t segment_header_crc_position = 28;

// ---- Record batch (inside a segment, back to back after the header) ----
inline constexpr std::uint32_t batch_magic = 0x4253534Du;  // "MSSB"; 0 is never a magic, so zeros end the log
inline constexpr std::uint16_t batch_version = 1;
inline constexpr std::size_t batch_header_bytes = 56;
// Layout:
//   0 magic u32            4 version u16         6 attributes u16 (0; bits 0-2 reserved for compression)
//   8 batch_bytes u32 (header + body)           12 record_count u32
//  16 base_offset u64      24 last_offset_delta u32    28 synced_offset_lag u32 (see below)
//  32 first_timestamp_ms i64                    40 max_timestamp_ms i64
//  48 body_crc32c u32: CRC32C of the body (all records) followed by header bytes 8..48
//     (covers length, count, offsets, timestamps and records). Body first, so a writer
//     can checksum the records before it knows the base offset.
//  52 header_crc32c u32: CRC32C of bytes 0..52; checked before batch_bytes is trusted.
// synced_offset_lag: base_offset minus the log's durable end when the batch was written,
// saturating at 2^32-1. Recovery reads it from batches that follow damage: damage at offsets a
// later batch says were already synced is corruption; anything else is an unsynced hole.
inline constexpr std::size_t batch_body_crc_position = 48;
inline constexpr std::size_t batch_header_crc_position = 52;
inline constexpr std::size_t batch_body_crc_covered_begin = 8;

// Each record in the body:
//   varint record_bytes (bytes that follow in this record)
//   varint offset_delta          (offset - base_offset; dense on append, gaps after compaction)
//   zigzag varint timestamp_delta (timestamp_ms - first_timestamp_ms)
//   varint subject_bytes, subject
//   varint key_bytes_plus_one (0 = no key), key
//   varint header_count, then per header: varint name_bytes, name, varint value_bytes, value
//   varint payload_bytes, payload

// ---- Sparse indexes: <base>.v1.offset_index and <base>.v1.time_index ----
inline constexpr std::uint32_t offset_index_magic = 0x4F53534Du;  // "MSSO"
inline constexpr std::uint32_t time_index_magic = 0x5453534Du;    // "MSST"
inline constexpr std::uint16_t index_version = 1;
inline constexpr std::size_t index_header_bytes = 24;
// Header: magic u32 | version u16 | reserved u16 | base_offset u64 | reserved u32 | header_crc32c u32
inline constexpr std::size_t index_header_crc_position = 20;
inline constexpr std::size_t index_entry_bytes = 16;
// Offset index entry: relative_offset u32 | position u32 | reserved u32 | crc32c u32 (of bytes 0..12)
// Time index entry:   max_timestamp_ms i64 | relative_offset u32 | crc32c u32 (of bytes 0..12)
// An entry is written for the first batch of a segment and then for the first batch after
// every index_interval_bytes of log. Entries point at batch starts.
inline constexpr std::size_t index_entry_crc_position = 12;

static_assert(batch_header_bytes % 8 == 0);
static_assert(batch_header_crc_position + 4 == batch_header_bytes);
static_assert(segment_header_crc_position + 4 == segment_header_bytes);
static_assert(index_header_crc_position + 4 == index_header_bytes);

}  // namespace msgstore::log::format
