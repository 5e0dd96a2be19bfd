// The message indexes of one partition: a LogObserver that indexes each appended batch in
// memory, writes the index file when a segment seals, deletes it when retention deletes the
// segment, and loads, checks and (when missing, damaged or stale) rebuilds sealed segments'
// index files for queries.
//
// Rules that keep the index derived data (docs/formats/index-files.md):
// * An index file is trusted only if its checksums hold and it describes exactly the segment
//   as it is now (same length, same configuration fingerprint); otherwise it is rebuilt from
//   the log. So recovery truncating a segment, a rewrite deleting an index file, or a crash
//   during a write never makes an index point past the log end.
// * The active segment's index lives only in memory. After a restart (or a configuration
//   change) the part of the active segment written before is indexed from the log on first use.
// * Index write errors never fail an append: the file is simply rebuilt later.
//
// Thread safety: every public method may be called from any thread. mutex_ guards the active
// segment's builders, the configuration and the cache; rebuild_mutex_ serialises loading and
// rebuilding of sealed segments' files (taken before mutex_, never inside it).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "index/segment_index.h"
#include "log/partition_log.h"
#include "msgstore/limits.h"
#include "msgstore/query.h"

namespace msgstore::index {

class PartitionIndex final : public log::LogObserver {
 public:
  // Attaches to a log that was just opened (before it is shared): removes index files of
  // segments that are gone or active, and registers itself as the log's observer.
  // `cache_bytes_max` bounds the parsed sealed indexes kept in memory (tests pass less).
  static Result<std::shared_ptr<PartitionIndex>> attach(FileSystem& file_system, log::PartitionLog& log,
                                                        IndexConfiguration configuration,
                                                        std::uint64_t cache_bytes_max = limits::message_index_cache_bytes_max);

  // A new configuration (update_stream): files with another fingerprint are rebuilt on use,
  // the active segment is re-indexed from the log on first use.
  void set_configuration(IndexConfiguration configuration);
  IndexConfiguration configuration() const;

  // The candidates for `term` in `segment`, ascending. `filter_terms` must all be present
  // in the segment or it is skipped (`skipped` set, nothing returned). Loads, checks or
  // rebuilds the segment's index as needed.
  Status lookup(const log::Segment& segment, std::uint64_t term, const std::vector<std::uint64_t>& filter_terms,
                std::vector<Posting>& out, bool& skipped, QueryStatistics& statistics);

  // The first step of a lookup, without reading postings: whether `segment` can hold `term`
  // with every filter term (`skipped` if not), and how many postings `term` has there
  // (`expected`; 0 for the active segment, whose postings are in memory). A sealed segment's
  // posting run is advised as wanted, so the later lookup's read can overlap others.
  Status probe(const log::Segment& segment, std::uint64_t term, const std::vector<std::uint64_t>& filter_terms, bool& skipped,
               std::size_t& expected, QueryStatistics& statistics);

  // Writes index files for sealed segments that have none or a stale one (maintenance).
  Status rebuild_missing(QueryStatistics& statistics);

  // LogObserver.
  void on_batch_appended(const log::Segment& segment, std::uint64_t position, std::string_view batch,
                         const log::BatchHeader& header) override;
  void on_segment_sealed(const log::Segment& segment) override;
  void on_segment_removed(Offset segment_base) override;
  Status on_segment_rewriting(Offset segment_base) override;

  // The parsed index files kept in memory (tests, statistics).
  std::size_t cached_segments() const;
  std::uint64_t cached_bytes() const;

 private:
  PartitionIndex(FileSystem& file_system, log::PartitionLog& log, IndexConfiguration configuration, std::uint64_t cache_bytes_max);
  // The checked index of a sealed segment: cached, loaded from its file, or rebuilt.
  // `distrust_file`: a posting run of the file failed its checksum, rebuild it regardless.
  Result<std::shared_ptr<SegmentIndexFile>> sealed_index(const log::Segment& segment, QueryStatistics& statistics,
                                                         bool distrust_file = false);
  // Replaces `path` with `image` (temporary file and rename; no sync, see the .cc).
  Status write_index_file(const std::filesystem::path& path, std::string_view image);
  // Indexes the active segment's offsets below live_from_ from the log, if not done yet.
  Status ensure_active_backfilled(const log::Segment& segment, QueryStatistics& statistics);
  // The cache of parsed sealed indexes (requires mutex_). An entry serves only the Segment
  // object it was built for, at the length and end it had: a rewritten segment is a new
  // object, so its old index can never answer for it.
  struct CachedIndex {
    std::shared_ptr<SegmentIndexFile> index;
    const log::Segment* segment = nullptr;
    std::uint64_t last_used = 0;
  };
  std::shared_ptr<SegmentIndexFile> cache_find_locked(const log::Segment& segment);
  void cache_insert_locked(const log::Segment& segment, std::shared_ptr<SegmentIndexFile> index);
  void cache_erase_locked(Offset segment_base);

  FileSystem& file_system_;
  log::PartitionLog& log_;

  mutable std::mutex mutex_;
  IndexConfiguration configuration_;
  // The active segment: offsets [active_base_, live_from_) in backfill_ (once backfilled_),
  // [live_from_, active_next_offset_) in live_.
  Offset active_base_ = 0;
  Offset live_from_ = 0;
  Offset active_next_offset_ = 0;
  bool backfilled_ = true;
  std::uint64_t generation_ = 0;  // moves when the active segment or the configuration changes
  SegmentIndexBuilder backfill_;
  SegmentIndexBuilder live_;
  log::RecordDecoder decoder_;  // for on_batch_appended (under the append lock and mutex_)
  const std::uint64_t cache_bytes_max_;
  std::map<Offset, CachedIndex> sealed_cache_;  // at most cache_bytes_max_ bytes of parsed tables
  std::uint64_t sealed_cache_bytes_ = 0;
  std::uint64_t sealed_cache_clock_ = 0;

  std::mutex rebuild_mutex_;
};

// Where the damaged range that recovery recorded at `position` ends, if there is one: such
// damage is never served, so queries and index builds step over it.
std::optional<std::uint64_t> recorded_damage_end(const log::Segment& segment, std::uint64_t position);

// Indexes the batches of `segment` whose offsets are below `end_offset` into `builder`,
// stepping over damaged ranges that recovery recorded. corruption for other damage.
Status index_segment_log(const log::Segment& segment, Offset end_offset, const IndexConfiguration& configuration,
                         SegmentIndexBuilder& builder, std::uint64_t& bytes_read);

}  // namespace msgstore::index
