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
// Off the publishing thread: with index threads (StoreOptions::index_threads), an appended
// batch is only copied into a queue under the append lock; an index thread adds the queued
// batches to the active segment's builders, in order. Everything that looks at the builders
// or the active segment (lookups, probes, seals, configuration changes) first adds whatever
// waits, on its own thread, so the result is exactly as if each batch had been indexed when
// it was appended: a query sees every message appended before it. The queue is bounded
// (limits::index_queue_bytes_max): past it the publisher indexes the waiting batches itself.
//
// Thread safety: every public method may be called from any thread. mutex_ guards the active
// segment's builders, the configuration and the cache, and only its holder takes batches off
// the queue (so they are indexed in order); queue_mutex_ guards the queue alone and is taken
// inside mutex_ or alone. rebuild_mutex_ serialises loading and rebuilding of sealed
// segments' files (taken before mutex_, never inside it).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "index/segment_index.h"
#include "log/partition_log.h"
#include "log/worker_threads.h"
#include "msgstore/limits.h"
#include "msgstore/query.h"

namespace msgstore::index {

class PartitionIndex final : public log::LogObserver,
                             public log::BackgroundJob,
                             public std::enable_shared_from_this<PartitionIndex> {
 public:
  // Attaches to a log that was just opened (before it is shared): removes index files of
  // segments that are gone or active, and registers itself as the log's observer.
  // `cache_bytes_max` bounds the parsed sealed indexes kept in memory (tests pass less).
  // With `index_threads`, appended batches are indexed there (held weakly: the owner keeps
  // them alive; once they are gone, batches are indexed on the publishing thread again).
  static Result<std::shared_ptr<PartitionIndex>> attach(FileSystem& file_system, log::PartitionLog& log,
                                                        IndexConfiguration configuration,
                                                        std::uint64_t cache_bytes_max = limits::message_index_cache_bytes_max,
                                                        const std::shared_ptr<log::WorkerThreads>& index_threads = nullptr);

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

  // Before the log closes (the store closing, `write_pending`) or is deleted (not): writes or
  // drops the pending seals' files; later ones are never written. Queued batches stay
  // indexable in memory. The index thread may still hold this object; it touches no file.
  void close(bool write_pending);

  // Writes index files for sealed segments that have none or a stale one (maintenance).
  Status rebuild_missing(QueryStatistics& statistics);

  // LogObserver.
  void on_batch_appended(const log::Segment& segment, std::uint64_t position, std::string_view batch,
                         const log::BatchHeader& header) override;
  void on_segment_sealed(const log::Segment& segment) override;
  void on_segment_removed(Offset segment_base) override;
  Status on_segment_rewriting(Offset segment_base) override;

  // BackgroundJob (the index thread): indexes the queued batches until none wait.
  void run_background_job() override;

  // The parsed index files kept in memory (tests, statistics).
  std::size_t cached_segments() const;
  std::uint64_t cached_bytes() const;
  // Bytes of appended batches waiting for the index thread (tests).
  std::uint64_t queued_bytes() const;

 private:
  PartitionIndex(FileSystem& file_system, log::PartitionLog& log, IndexConfiguration configuration, std::uint64_t cache_bytes_max);
  // The checked index of a sealed segment: cached, loaded from its file, or rebuilt.
  // `distrust_file`: a posting run of the file failed its checksum, rebuild it regardless.
  Result<std::shared_ptr<SegmentIndexFile>> sealed_index(const log::Segment& segment, QueryStatistics& statistics,
                                                         bool distrust_file = false);
  // Adds one appended batch to the active segment's builders (requires mutex_, and every
  // batch appended before it added).
  void index_batch_locked(Offset segment_base, std::uint64_t position, const char* batch, const log::BatchHeader& header);
  // Indexes every batch queued so far (requires mutex_). False if none was waiting.
  bool drain_locked();
  // Queues a batch for the index thread; false (nothing queued) when the queue is full or
  // batches are indexed inline. Sets `wake` when the index thread should be scheduled.
  bool try_queue(Offset segment_base, std::uint64_t position, std::string_view batch, const log::BatchHeader& header,
                 bool& wake);
  // Has the index thread run the job once more, or runs it here when there is none.
  void wake_index_thread();
  // Writes the index files of the pending seals, oldest first.
  // Takes rebuild_mutex_ (the _rebuild_locked form: the caller holds it), then mutex_.
  void finish_pending_seals();
  void finish_pending_seals_rebuild_locked();
  // Forgets the pending seal of a segment that retention or a rewrite removes (requires
  // rebuild_mutex_ and mutex_).
  void drop_pending_seal_locked(Offset segment_base);
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
  log::PartitionLog& log_;  // not used by the index thread, which may outlive the log
  const std::filesystem::path directory_;  // the log's
  bool closed_ = false;                    // guarded by mutex_: close() was called

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

  // The queue of appended batches for the index thread.
  struct QueuedBatch {
    Offset segment_base = 0;
    std::uint64_t position = 0;
    log::BatchHeader header;
    std::size_t begin = 0;  // of the batch's bytes in the queue's byte buffer
  };
  std::weak_ptr<log::WorkerThreads> index_threads_;
  std::atomic<bool> queue_batches_{false};  // index threads set and indexes enabled
  mutable std::mutex queue_mutex_;
  std::vector<QueuedBatch> queued_;  // guarded by queue_mutex_
  std::string queued_bytes_;         // guarded by queue_mutex_
  bool drain_scheduled_ = false;     // guarded by queue_mutex_: a run_background_job is pending or running
  std::vector<QueuedBatch> draining_;  // the batches being indexed, under mutex_ (capacity reused)
  std::string draining_bytes_;
  // Consecutive drains that used under a quarter of a large draining_bytes_ (under mutex_);
  // at small_drains_before_shrink the buffer is freed.
  std::uint32_t small_drains_ = 0;
  static constexpr std::uint32_t small_drains_before_shrink = 32;

  // Sealed segments whose index files are still to be written (under mutex_; taken off it
  // only under rebuild_mutex_ as well), oldest first, at most limits::index_pending_seals_max.
  struct PendingSeal {
    SegmentIndexBuilder backfill;
    SegmentIndexBuilder live;
    Offset base_offset = 0;
    std::uint64_t log_bytes = 0;
    Offset next_offset = 0;
    std::uint64_t fingerprint = 0;
  };
  std::deque<std::unique_ptr<PendingSeal>> pending_seals_;
  std::unique_ptr<PendingSeal> spare_builders_;  // a written seal's builders, kept for their memory
};

// Where the damaged range that recovery recorded at `position` ends, if there is one: such
// damage is never served, so queries and index builds step over it.
std::optional<std::uint64_t> recorded_damage_end(const log::Segment& segment, std::uint64_t position);

// Indexes the batches of `segment` whose offsets are below `end_offset` into `builder`,
// stepping over damaged ranges that recovery recorded. corruption for other damage.
Status index_segment_log(const log::Segment& segment, Offset end_offset, const IndexConfiguration& configuration,
                         SegmentIndexBuilder& builder, std::uint64_t& bytes_read);

}  // namespace msgstore::index
