// One segment's message index: terms (key, subject, indexed header values) to postings
// (relative offset, batch position), built in memory while the segment is active and kept in
// an index file once it is sealed. Format: docs/formats/index-files.md (constants in format.h).
//
// Terms are 64-bit hashes, so two values can share a term: every lookup is a candidate list
// that the query engine checks against the message itself. The index never answers alone.
//
// Thread safety: SegmentIndexBuilder is not synchronised (its owner, PartitionIndex, locks it).
// SegmentIndexFile is immutable after open and safe to use from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <optional>
#include <vector>

#include "log/record_batch.h"
#include "msgstore/file_system.h"
#include "msgstore/message.h"
#include "msgstore/status.h"

namespace msgstore::index {

// Stable 64-bit hash (part of the file format: never change it without a format version).
std::uint64_t hash_bytes(std::string_view bytes, std::uint64_t seed);
std::uint64_t key_term(std::string_view key);
std::uint64_t subject_term(std::string_view subject);
std::uint64_t header_term(std::string_view name, std::string_view value);

// What one stream indexes: keys and subjects when enabled, and the named headers' values.
struct IndexConfiguration {
  bool enabled = true;
  std::vector<std::string> header_names;  // sorted, unique
  std::uint64_t fingerprint = 0;          // of header_names; set by make_index_configuration
  // hash_bytes(name, term_seed_header) per header name, so the append path hashes each
  // indexed header value once (header_term(name, value) == hash_bytes(value, seed)).
  std::vector<std::uint64_t> header_seeds;
  bool indexes_header(std::string_view name) const;
  // The seed of `name`'s terms, or nullopt if the header is not indexed. A linear pass over
  // at most limits::indexed_headers_max names, lengths compared first (the append path).
  std::optional<std::uint64_t> header_seed(std::string_view name) const;
};
IndexConfiguration make_index_configuration(bool enabled, std::vector<std::string> header_names);

struct Posting {
  std::uint32_t relative_offset = 0;  // offset - segment base offset
  std::uint32_t position = 0;         // byte position of the record's batch in the segment file
};

// The index file of a segment: <base offset, 20 digits>.v1.message_index in its directory.
std::filesystem::path index_file_path(const std::filesystem::path& directory, Offset base_offset);
std::optional<Offset> parse_index_file_name(const std::string& name);

// The index of the active segment, filled on the append path. Flat and allocation-free in
// the steady state (capacity is kept across clear()): per posting one probe of an
// open-addressing table keyed by the term hash and one entry appended to a chunked array
// (growing never copies the entries already there); the entries of a term are chained
// newest first for lookups, and encode() lays them out as the file's runs with one
// sequential pass (a counting sort), not by walking the chains.
class SegmentIndexBuilder {
 public:
  // Decodes a checked batch at `position` of a segment based at `base_offset` and adds the
  // terms of each record. corruption if a record does not decode.
  Status add_batch(const IndexConfiguration& configuration, Offset base_offset, std::uint64_t position,
                   const char* batch, const log::BatchHeader& header, log::RecordDecoder& decoder);
  // REQUIRES: postings are added in ascending relative offset (one message's terms together).
  void add(std::uint64_t term, Posting posting);
  bool contains(std::uint64_t term) const { return find(term) != nullptr; }
  // Appends the postings of `term` to `out`, ascending by offset.
  void postings(std::uint64_t term, std::vector<Posting>& out) const;
  // Forgets every term; keeps the memory for the next segment.
  void clear();
  std::size_t posting_count() const { return entry_count_; }
  std::size_t term_count() const { return term_count_; }

  // The file image of `parts` (consecutive offset ranges, oldest first) as one index.
  static std::string encode(const std::vector<const SegmentIndexBuilder*>& parts, Offset base_offset,
                            std::uint64_t log_bytes, Offset next_offset, std::uint64_t fingerprint);

 private:
  struct Entry {
    Posting posting;
    std::uint32_t previous;  // index of the term's previous entry, or no_entry
    std::uint32_t term_id;   // dense id of the entry's term (its slot's id)
  };
  // One term. count == 0 marks an empty slot.
  struct Slot {
    std::uint64_t term;
    std::uint32_t id;
    std::uint32_t head;  // newest entry
    std::uint32_t count;
    std::uint32_t last_relative_offset;  // of the newest entry (a repeated term in one message)
  };
  static_assert(sizeof(Slot) == 24);
  static constexpr std::uint32_t no_entry = 0xFFFFFFFFu;
  static constexpr std::size_t initial_slots = 1024;  // a power of two
  struct PendingTerm {
    std::uint64_t term;
    Posting posting;
    std::size_t slot;  // slot_index(term), once there is room for every pending term
  };
  const Slot* find(std::uint64_t term) const;
  std::size_t slot_index(std::uint64_t term) const;
  void grow();
  // Adds a posting, probing from slot `index`. REQUIRES: a free slot for a new term.
  void insert(std::uint64_t term, std::size_t index, Posting posting);
  // Adds pending_ in order, prefetching slots a few terms ahead: with many distinct terms
  // (keys) most probes miss the cache, and this lets the misses overlap.
  void add_pending();
  // The entries, in chunks of entry_chunk_size: a segment of 100 B messages holds millions,
  // and one doubling vector would copy them all on each growth and fault in the new pages
  // twice. The first chunk grows as a vector does (small indexes stay small); the others are
  // allocated whole. Every chunk's capacity is kept across clear().
  static constexpr std::uint32_t entry_chunk_bits = 14;  // 16,384 entries (256 KiB) per chunk
  static constexpr std::uint32_t entry_chunk_size = 1u << entry_chunk_bits;
  const Entry& entry(std::uint32_t index) const {
    return entry_chunks_[index >> entry_chunk_bits][index & (entry_chunk_size - 1)];
  }
  void append_entry(const Entry& entry);
  std::vector<PendingTerm> pending_;  // the terms of one batch (add_batch), reused
  std::vector<std::vector<Entry>> entry_chunks_;
  std::uint32_t entry_count_ = 0;
  std::vector<Slot> slots_;  // open addressing, linear probing, at most 3/4 full
  std::size_t term_count_ = 0;
};

struct IndexFileHeader {
  Offset base_offset = 0;
  std::uint64_t log_bytes = 0;
  Offset next_offset = 0;
  std::uint64_t fingerprint = 0;
  std::uint32_t term_count = 0;
  std::uint32_t bloom_words = 0;
  std::uint32_t posting_count = 0;
};

// A checked index file. Opening reads and checks the header, the bloom filter and the term
// table (CRC32C, sizes, order); each posting run is checked against its own CRC when read.
class SegmentIndexFile {
 public:
  // corruption for damage, unsupported_format for an unknown version. `bytes_read` grows by
  // what was read.
  static Result<std::shared_ptr<SegmentIndexFile>> open(std::unique_ptr<File> file, std::uint64_t& bytes_read);
  const IndexFileHeader& header() const { return header_; }
  // Memory held by the parsed tables (what the partition's index cache counts).
  std::uint64_t memory_bytes() const { return bloom_.size() * sizeof(std::uint64_t) + terms_.size() * sizeof(TermEntry); }
  // False if no posting of `term` is in this segment (the bloom filter and the term table).
  bool might_contain(std::uint64_t term) const;
  // How many postings `term` has here (0 if none), advising its posting run as wanted so that
  // the read postings() makes next can overlap other reads.
  std::size_t expect_postings(std::uint64_t term) const;
  // Appends the postings of `term` to `out`, ascending. corruption if the run is damaged.
  Status postings(std::uint64_t term, std::vector<Posting>& out, std::uint64_t& bytes_read) const;

 private:
  struct TermEntry {
    std::uint64_t term;
    std::uint32_t first_posting;
    std::uint32_t posting_count;
    std::uint32_t postings_crc;
  };
  const TermEntry* find(std::uint64_t term) const;
  IndexFileHeader header_;
  std::vector<std::uint64_t> bloom_;
  std::vector<TermEntry> terms_;
  std::unique_ptr<File> file_;
  std::uint64_t postings_position_ = 0;
};

// A read-only File over bytes in memory (a rebuilt index, the fuzz target).
std::unique_ptr<File> memory_file(std::string bytes);

}  // namespace msgstore::index
