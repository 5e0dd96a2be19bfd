// msgstore/limits.h: every named limit in one place (units last).
//
// A limit that a stream can configure has its default and its hard maximum here; the hard
// maximum bounds what any configuration may ask for.
#pragma once

#include <cstddef>
#include <cstdint>

namespace msgstore::limits {

inline constexpr std::size_t stream_name_bytes_max = 255;
inline constexpr std::size_t subject_bytes_max = 1024;
inline constexpr std::size_t subject_tokens_max = 64;
inline constexpr std::size_t stream_subject_patterns_max = 64;
inline constexpr std::size_t key_bytes_max = 64 * 1024;
inline constexpr std::size_t header_name_bytes_max = 256;
inline constexpr std::size_t header_value_bytes_max = 64 * 1024;
inline constexpr std::size_t headers_per_message_max = 256;
inline constexpr std::uint32_t partitions_per_stream_max = 1024;
inline constexpr std::size_t streams_max = 10000;

// Message size counts subject, key, headers and payload as encoded.
inline constexpr std::size_t message_bytes_default = 1024 * 1024;
inline constexpr std::size_t message_bytes_max = 64 * 1024 * 1024;

// One record batch on disk never exceeds this; a publish batch bigger than this is split.
inline constexpr std::size_t batch_bytes_max = 128 * 1024 * 1024;
inline constexpr std::size_t messages_per_publish_max = 1'000'000;

inline constexpr std::uint64_t segment_bytes_default = 128ull * 1024 * 1024;
inline constexpr std::uint64_t segment_bytes_min = 4 * 1024;
inline constexpr std::uint64_t segment_bytes_max = 2ull * 1024 * 1024 * 1024;  // positions are u32, plus one batch
inline constexpr std::int64_t segment_age_ms_default = 7ll * 24 * 3600 * 1000;

// One sparse index entry per this many log bytes.
inline constexpr std::uint32_t index_interval_bytes = 4096;

inline constexpr std::uint32_t fsync_interval_ms_max = 3'600'000;

// A subscription reads at most this much per step, so a slow handler holds a bounded buffer.
inline constexpr std::size_t subscription_read_messages_max = 1024;
inline constexpr std::size_t subscription_read_bytes_max = 4 * 1024 * 1024;
inline constexpr std::size_t subscriptions_max = 4096;

// Duplicate suppression (StreamConfig::dedup_window_ms, OutgoingMessage::message_id). The
// dedup table of a stream holds at most dedup_entries_max ids still inside the window; a
// publish of a new id beyond it fails with limit_exceeded rather than forgetting an id early.
inline constexpr std::size_t message_id_bytes_max = 256;
inline constexpr std::int64_t dedup_window_ms_default = 2 * 60 * 1000;
inline constexpr std::int64_t dedup_window_ms_max = 7ll * 24 * 3600 * 1000;
inline constexpr std::size_t dedup_entries_max = 1'000'000;

// Per-message time to live (OutgoingMessage::ttl_ms, the Msgstore-TTL-Ms header).
inline constexpr std::int64_t ttl_ms_max = 100ll * 365 * 24 * 3600 * 1000;
// Compaction and erase (segment rewrites).
inline constexpr std::int64_t tombstone_retention_ms_default = 24ll * 3600 * 1000;
// A background maintenance pass rewrites at most this many segments per partition, so it
// never holds up the rest of maintenance for long; the remainder waits for the next pass.
inline constexpr std::size_t rewrite_segments_per_pass_max = 4;
// One erase may match at most this many messages (its offsets are kept in memory and in the
// partition's erase list until the rewrite removes them).
inline constexpr std::size_t erase_matches_max = 10'000'000;
inline constexpr std::size_t erase_actor_bytes_max = 256;

// Reads: one call returns at most this much.
inline constexpr std::size_t read_messages_max = 100'000;
inline constexpr std::size_t read_bytes_max = 64 * 1024 * 1024;

// Durable consumers (msgstore/consumer.h).
inline constexpr std::size_t consumers_per_stream_max = 1024;
inline constexpr std::int64_t consumer_ack_wait_ms_max = 24ll * 3600 * 1000;
inline constexpr std::size_t consumer_backoff_steps_max = 64;
inline constexpr std::uint32_t consumer_ack_pending_max = 100'000;
// Offsets between a consumer's ack floor and its delivered position that it tracks one by one
// (pending, or done above the floor): new messages stop beyond it, bounding its memory.
inline constexpr std::uint64_t consumer_window_messages_max = 1'000'000;
// The state log is compacted into a snapshot once it grows past this.
inline constexpr std::uint64_t consumer_state_log_compact_bytes = 1024 * 1024;
// One fetch returns at most this many messages.
inline constexpr std::size_t consumer_fetch_messages_max = 10'000;
// Message indexes and queries (src/index, include/msgstore/query.h).
inline constexpr std::size_t indexed_headers_max = 16;    // header names one stream may index
inline constexpr std::size_t query_results_max = 100'000; // one query page returns at most this
inline constexpr std::size_t query_header_equals_max = 64;
inline constexpr std::size_t query_cursor_bytes_max = 4096;
// An index query looks segments up ahead of the one it reads and advises their posting runs
// and candidate batches as wanted (posix_fadvise), so reads from disk overlap: at most this
// many segments and batches ahead, and at most this many bytes per batch. Where a sealed
// segment's offset index is not loaded, a batch's end is guessed: the last batch the query read,
// or this many bytes before the first.
inline constexpr std::size_t query_prefetch_segments_max = 64;
inline constexpr std::size_t query_prefetch_batches_max = 64;
inline constexpr std::uint64_t query_prefetch_unknown_batch_bytes = 32 * 1024;
inline constexpr std::uint64_t query_prefetch_batch_bytes_max = 256 * 1024;
// Checked, parsed index files of sealed segments (bloom filter and term table) kept in memory
// per partition, least recently used dropped first. About 3.8 MiB per segment of 156k messages
// with four terms each, so the newest ~16 such segments of a partition stay parsed.
inline constexpr std::uint64_t message_index_cache_bytes_max = 64ull * 1024 * 1024;
// Appended batches wait in a per-partition queue for the store's index thread (copies of their
// bytes): the thread is woken once this many bytes wait, and past the maximum the publisher
// indexes them itself (so a lagging index thread slows publishers instead of growing memory).
// Queries and segment seals index whatever waits first, so waiting never hides a message.
inline constexpr std::uint64_t index_queue_wake_bytes = 64 * 1024;
inline constexpr std::uint64_t index_queue_bytes_max = 1024 * 1024;
// A sealed segment's index file is encoded and written by the index thread too; past this many
// waiting, the publisher sealing the next segment writes them itself.
inline constexpr std::size_t index_pending_seals_max = 2;

}  // namespace msgstore::limits
