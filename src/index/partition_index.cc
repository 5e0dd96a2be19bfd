#include "index/partition_index.h"

#include <algorithm>

#include "log/format.h"

namespace msgstore::index {

std::optional<std::uint64_t> recorded_damage_end(const log::Segment& segment, std::uint64_t position) {
  for (const log::DamagedRange& range : segment.damaged_ranges()) {
    if (range.position_begin == position && range.position_end > range.position_begin) return range.position_end;
  }
  return std::nullopt;
}

Status index_segment_log(const log::Segment& segment, Offset end_offset, const IndexConfiguration& configuration,
                         SegmentIndexBuilder& builder, std::uint64_t& bytes_read) {
  const std::uint64_t end = segment.readable_bytes();
  std::optional<log::BatchScanner> scanner;
  scanner.emplace(segment.log_file(), log::Segment::header_bytes(), end);
  log::RecordDecoder decoder;
  std::uint64_t scanned_from = log::Segment::header_bytes();
  while (true) {
    const log::BatchScanner::Step step = scanner->next(/*verify_body=*/true);
    if (step == log::BatchScanner::Step::end_of_log) break;
    if (step == log::BatchScanner::Step::io_error) return scanner->error();
    if (step == log::BatchScanner::Step::damaged) {
      // Damage recovery recorded is never served; index around it. Anything else is news.
      if (auto damage_end = recorded_damage_end(segment, scanner->position())) {
        bytes_read += scanner->position() - scanned_from;
        scanned_from = *damage_end;
        scanner.emplace(segment.log_file(), *damage_end, end);
        continue;
      }
      return Status(ErrorCode::corruption, "segment " + std::to_string(segment.base_offset()) + " is damaged at byte " +
                                               std::to_string(scanner->position()) + "; cannot index it");
    }
    const log::BatchHeader& header = scanner->header();
    if (header.base_offset >= end_offset) break;
    MSGSTORE_RETURN_IF_ERROR(
        builder.add_batch(configuration, segment.base_offset(), scanner->position(), scanner->batch(), header, decoder));
  }
  bytes_read += scanner->position() - scanned_from;
  return Status::ok();
}

Status PartitionIndex::write_index_file(const std::filesystem::path& path, std::string_view image) {
  // Written whole under a temporary name, then renamed, so a reader never sees a partial
  // file; not synced: the file is checked against its checksums and the segment on every
  // load, so one a crash garbled or lost is rebuilt, and the append path saves two fsyncs.
  auto temporary = path;
  temporary += ".tmp";
  auto file = file_system_.open(temporary, OpenMode::create_truncate);
  if (!file) return file.status();
  Status written = (*file)->write_at(0, image.data(), image.size());
  file->reset();
  if (written.is_ok()) written = file_system_.rename(temporary, path);
  if (!written.is_ok()) (void)file_system_.remove(temporary);
  return written;
}

PartitionIndex::PartitionIndex(FileSystem& file_system, log::PartitionLog& log, IndexConfiguration configuration,
                               std::uint64_t cache_bytes_max)
    : file_system_(file_system),
      log_(log),
      directory_(log.directory()),
      configuration_(std::move(configuration)),
      cache_bytes_max_(cache_bytes_max) {}

Result<std::shared_ptr<PartitionIndex>> PartitionIndex::attach(FileSystem& file_system, log::PartitionLog& log,
                                                               IndexConfiguration configuration, std::uint64_t cache_bytes_max,
                                                               const std::shared_ptr<log::WorkerThreads>& index_threads) {
  std::shared_ptr<PartitionIndex> index(new PartitionIndex(file_system, log, std::move(configuration), cache_bytes_max));
  index->index_threads_ = index_threads;
  index->queue_batches_ = index_threads != nullptr && index->configuration_.enabled;
  const auto segments = log.segments_snapshot();
  if (!segments.empty()) {
    const auto& active = segments.back();
    index->active_base_ = active->base_offset();
    index->live_from_ = active->next_offset();
    index->active_next_offset_ = active->next_offset();
    index->backfilled_ = index->live_from_ == index->active_base_;
  }
  // Index files of segments that are gone (retention or recovery deleted them, and a crash
  // came before the index file went) or of the active segment (it grows: never trusted).
  auto names = file_system.list_directory(log.directory());
  if (!names) return names.status();
  bool removed = false;
  for (const std::string& name : *names) {
    auto base = parse_index_file_name(name);
    if (!base) continue;
    const bool sealed_segment_exists =
        std::any_of(segments.begin(), segments.end(), [&](const auto& segment) { return segment->base_offset() == *base; }) &&
        *base != index->active_base_;
    if (sealed_segment_exists) continue;
    MSGSTORE_RETURN_IF_ERROR(file_system.remove(log.directory() / name));
    removed = true;
  }
  if (removed) MSGSTORE_RETURN_IF_ERROR(file_system.sync_directory(log.directory()));
  log.set_observer(index);
  return index;
}

void PartitionIndex::set_configuration(IndexConfiguration configuration) {
  std::lock_guard lock(mutex_);
  drain_locked();
  if (configuration.enabled == configuration_.enabled && configuration.fingerprint == configuration_.fingerprint) return;
  configuration_ = std::move(configuration);
  // A batch queued after this under the old setting is indexed under the new one, as if it
  // had been appended after this call (it is: the queue is drained in append order).
  queue_batches_ = !index_threads_.expired() && configuration_.enabled;
  sealed_cache_.clear();
  sealed_cache_bytes_ = 0;
  backfill_.clear();
  live_.clear();
  live_from_ = active_next_offset_;
  backfilled_ = live_from_ == active_base_;
  ++generation_;
}

IndexConfiguration PartitionIndex::configuration() const {
  std::lock_guard lock(mutex_);
  return configuration_;
}

void PartitionIndex::on_batch_appended(const log::Segment& segment, std::uint64_t position, std::string_view batch,
                                       const log::BatchHeader& header) {
  bool wake = false;
  if (queue_batches_.load(std::memory_order_relaxed) && try_queue(segment.base_offset(), position, batch, header, wake)) {
    if (wake) wake_index_thread();
    return;
  }
  // Inline: indexes off, no index threads, or the queue is full (the publisher catches up).
  std::lock_guard lock(mutex_);
  drain_locked();
  index_batch_locked(segment.base_offset(), position, batch.data(), header);
}

bool PartitionIndex::try_queue(Offset segment_base, std::uint64_t position, std::string_view batch,
                               const log::BatchHeader& header, bool& wake) {
  std::lock_guard queue_lock(queue_mutex_);
  if (queued_bytes_.size() + batch.size() > limits::index_queue_bytes_max) return false;
  queued_.push_back(QueuedBatch{segment_base, position, header, queued_bytes_.size()});
  queued_bytes_.append(batch);
  if (!drain_scheduled_ && queued_bytes_.size() >= limits::index_queue_wake_bytes) wake = drain_scheduled_ = true;
  return true;
}

bool PartitionIndex::drain_locked() {
  {
    std::lock_guard queue_lock(queue_mutex_);
    if (queued_.empty()) return false;
    queued_.swap(draining_);
    queued_bytes_.swap(draining_bytes_);
  }
  for (const QueuedBatch& queued : draining_) {
    index_batch_locked(queued.segment_base, queued.position, draining_bytes_.data() + queued.begin, queued.header);
  }
  draining_.clear();
  // Under steady load the two buffers take turns at their working size: freeing one after
  // each drain would make the publisher grow the next from nothing, copying and faulting in
  // the pages again (measured: about 5% of the CPU of publishing 100 B messages). A buffer
  // larger than the wake size that many drains in a row used less than a quarter of (a burst
  // that has passed) is freed; the queue's bound (index_queue_bytes_max) bounds the rest.
  const std::size_t drained_bytes = draining_bytes_.size();
  draining_bytes_.clear();
  if (draining_bytes_.capacity() <= 4 * limits::index_queue_wake_bytes || drained_bytes * 4 >= draining_bytes_.capacity()) {
    small_drains_ = 0;
  } else if (++small_drains_ >= small_drains_before_shrink) {
    std::string().swap(draining_bytes_);
    small_drains_ = 0;
  }
  return true;
}

void PartitionIndex::run_background_job() {
  for (;;) {
    finish_pending_seals();
    std::lock_guard lock(mutex_);
    if (drain_locked() || !pending_seals_.empty()) continue;
    // Nothing waits. Decided under queue_mutex_ (and mutex_ for the seals), so the next batch
    // that reaches the wake size, or the next seal, schedules a new run.
    std::lock_guard queue_lock(queue_mutex_);
    if (!queued_.empty()) continue;
    drain_scheduled_ = false;
    return;
  }
}

std::uint64_t PartitionIndex::queued_bytes() const {
  std::lock_guard queue_lock(queue_mutex_);
  return queued_bytes_.size();
}

void PartitionIndex::index_batch_locked(Offset segment_base, std::uint64_t position, const char* batch,
                                        const log::BatchHeader& header) {
  if (segment_base != active_base_) {
    // The first batch of a new segment (the previous one was sealed).
    active_base_ = segment_base;
    live_from_ = header.base_offset;
    backfilled_ = live_from_ == active_base_;
    backfill_.clear();
    live_.clear();
    ++generation_;
  }
  active_next_offset_ = header.next_offset();
  if (!configuration_.enabled) return;
  Status added = live_.add_batch(configuration_, active_base_, position, batch, header, decoder_);
  if (!added.is_ok()) {
    // Cannot happen for a batch this process just built; if it does, re-index from the log.
    live_.clear();
    backfill_.clear();
    live_from_ = active_next_offset_;
    backfilled_ = false;
    ++generation_;
  }
}

void PartitionIndex::on_segment_sealed(const log::Segment& segment) {
  bool too_many_pending = false;
  {
    std::lock_guard lock(mutex_);
    too_many_pending = pending_seals_.size() >= limits::index_pending_seals_max;
  }
  // The index thread is behind: the publisher writes the waiting files itself (as without one).
  if (too_many_pending) finish_pending_seals();
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    drain_locked();  // every batch of the segment is in the builders before they are handed on
    if (segment.base_offset() == active_base_ && configuration_.enabled && backfilled_ && segment.next_offset() > active_base_ &&
        !closed_) {
      // The builders go to a pending seal, whose file is written off this thread (the encoding
      // and the write are most of what indexing costs a publisher); until it is, lookups of the
      // segment finish it themselves (sealed_index). The next segment gets the spare builders.
      std::unique_ptr<PendingSeal> seal = spare_builders_ ? std::move(spare_builders_) : std::make_unique<PendingSeal>();
      std::swap(seal->backfill, backfill_);
      std::swap(seal->live, live_);
      seal->base_offset = active_base_;
      seal->log_bytes = segment.readable_bytes();
      seal->next_offset = segment.next_offset();
      seal->fingerprint = configuration_.fingerprint;
      pending_seals_.push_back(std::move(seal));
      std::lock_guard queue_lock(queue_mutex_);
      if (!drain_scheduled_) wake = drain_scheduled_ = true;
    }
    // The next segment starts where this one ended; its first append resets the builders.
    backfill_.clear();
    live_.clear();
    active_base_ = segment.next_offset();
    live_from_ = active_base_;
    active_next_offset_ = active_base_;
    backfilled_ = true;
    ++generation_;
  }
  if (wake) wake_index_thread();
}

void PartitionIndex::wake_index_thread() {
  // Called with no lock of this index held: after stop(), schedule() runs the job right here.
  if (auto threads = index_threads_.lock()) {
    threads->schedule(shared_from_this());
    return;
  }
  // No index threads (inline indexing), or they are gone (the store is closing): do the job
  // here, and index every later batch inline.
  queue_batches_ = false;
  run_background_job();
}

void PartitionIndex::finish_pending_seals() {
  std::lock_guard rebuilding(rebuild_mutex_);
  finish_pending_seals_rebuild_locked();
}

void PartitionIndex::finish_pending_seals_rebuild_locked() {
  for (;;) {
    std::unique_ptr<PendingSeal> seal;
    {
      std::lock_guard lock(mutex_);
      if (pending_seals_.empty()) return;
      seal = std::move(pending_seals_.front());
      pending_seals_.pop_front();
    }
    // Until the file is written, a lookup of this segment waits on rebuild_mutex_ (held here),
    // and retention or a rewrite of it waits too (they drop pending seals under
    // rebuild_mutex_), so the segment is still there and unchanged.
    std::string image = SegmentIndexBuilder::encode({&seal->backfill, &seal->live}, seal->base_offset, seal->log_bytes,
                                                    seal->next_offset, seal->fingerprint);
    // Derived data: if this fails (full disk, I/O error) the file is rebuilt when needed.
    // Not cached from memory: the file is read on first use like any other (the cache's
    // budget counts parsed tables, not whole images).
    (void)write_index_file(index_file_path(directory_, seal->base_offset), image);
    seal->backfill.clear();
    seal->live.clear();
    std::lock_guard lock(mutex_);
    if (!spare_builders_) spare_builders_ = std::move(seal);
  }
}

void PartitionIndex::close(bool write_pending) {
  std::lock_guard rebuilding(rebuild_mutex_);
  if (write_pending) finish_pending_seals_rebuild_locked();
  std::lock_guard lock(mutex_);
  pending_seals_.clear();
  closed_ = true;
}

void PartitionIndex::drop_pending_seal_locked(Offset segment_base) {
  for (auto it = pending_seals_.begin(); it != pending_seals_.end(); ++it) {
    if ((*it)->base_offset == segment_base) {
      pending_seals_.erase(it);
      return;
    }
  }
}

void PartitionIndex::on_segment_removed(Offset segment_base) {
  {
    // Under rebuild_mutex_: a pending seal of the segment being written finishes first.
    std::lock_guard rebuilding(rebuild_mutex_);
    std::lock_guard lock(mutex_);
    drop_pending_seal_locked(segment_base);
    cache_erase_locked(segment_base);
  }
  (void)file_system_.remove(index_file_path(directory_, segment_base));
}

Status PartitionIndex::on_segment_rewriting(Offset segment_base) {
  // Under rebuild_mutex_: a rebuild of the old segment in progress finishes (and writes its
  // file) before the file is removed here; one that starts later sees the segment retired
  // (the rewrite retires it before this call) and writes nothing. The file may hold the terms
  // of erased messages; the replacement's file is rebuilt from the new log on first use.
  std::lock_guard rebuilding(rebuild_mutex_);
  {
    std::lock_guard lock(mutex_);
    drop_pending_seal_locked(segment_base);
    cache_erase_locked(segment_base);
  }
  const auto path = index_file_path(directory_, segment_base);
  auto temporary = path;
  temporary += ".tmp";
  MSGSTORE_RETURN_IF_ERROR(file_system_.remove(temporary));
  return file_system_.remove(path);
}

std::shared_ptr<SegmentIndexFile> PartitionIndex::cache_find_locked(const log::Segment& segment) {
  auto found = sealed_cache_.find(segment.base_offset());
  if (found == sealed_cache_.end()) return nullptr;
  const IndexFileHeader& header = found->second.index->header();
  if (found->second.segment != &segment || header.log_bytes != segment.readable_bytes() ||
      header.next_offset != segment.next_offset()) {
    return nullptr;  // built for another Segment object (a rewrite replaced it) or length
  }
  found->second.last_used = ++sealed_cache_clock_;
  return found->second.index;
}

void PartitionIndex::cache_erase_locked(Offset segment_base) {
  auto found = sealed_cache_.find(segment_base);
  if (found == sealed_cache_.end()) return;
  sealed_cache_bytes_ -= found->second.index->memory_bytes();
  sealed_cache_.erase(found);
}

void PartitionIndex::cache_insert_locked(const log::Segment& segment, std::shared_ptr<SegmentIndexFile> index) {
  cache_erase_locked(segment.base_offset());
  const std::uint64_t bytes = index->memory_bytes();
  if (bytes > cache_bytes_max_) return;  // never cached; loaded per query
  // Least recently used first, until the new entry fits (a linear pass: one entry per segment).
  while (sealed_cache_bytes_ + bytes > cache_bytes_max_ && !sealed_cache_.empty()) {
    auto oldest = sealed_cache_.begin();
    for (auto it = sealed_cache_.begin(); it != sealed_cache_.end(); ++it) {
      if (it->second.last_used < oldest->second.last_used) oldest = it;
    }
    cache_erase_locked(oldest->first);
  }
  sealed_cache_[segment.base_offset()] = CachedIndex{std::move(index), &segment, ++sealed_cache_clock_};
  sealed_cache_bytes_ += bytes;
}

std::size_t PartitionIndex::cached_segments() const {
  std::lock_guard lock(mutex_);
  return sealed_cache_.size();
}

std::uint64_t PartitionIndex::cached_bytes() const {
  std::lock_guard lock(mutex_);
  return sealed_cache_bytes_;
}

Status PartitionIndex::ensure_active_backfilled(const log::Segment& segment, QueryStatistics& statistics) {
  IndexConfiguration configuration;
  Offset live_from;
  std::uint64_t generation;
  {
    std::lock_guard lock(mutex_);
    drain_locked();
    if (backfilled_ || segment.base_offset() != active_base_) return Status::ok();
    configuration = configuration_;
    live_from = live_from_;
    generation = generation_;
  }
  SegmentIndexBuilder builder;
  MSGSTORE_RETURN_IF_ERROR(index_segment_log(segment, live_from, configuration, builder, statistics.bytes_read));
  std::lock_guard lock(mutex_);
  drain_locked();
  if (generation == generation_ && !backfilled_) {
    backfill_ = std::move(builder);
    backfilled_ = true;
  }
  return Status::ok();
}

Result<std::shared_ptr<SegmentIndexFile>> PartitionIndex::sealed_index(const log::Segment& segment, QueryStatistics& statistics,
                                                                      bool distrust_file) {
  std::lock_guard rebuilding(rebuild_mutex_);
  finish_pending_seals_rebuild_locked();  // the file of a segment sealed moments ago, say
  IndexConfiguration configuration;
  {
    std::lock_guard lock(mutex_);
    if (distrust_file) {
      cache_erase_locked(segment.base_offset());
    } else if (auto cached = cache_find_locked(segment)) {
      return cached;
    }
    configuration = configuration_;
  }
  const Offset base = segment.base_offset();
  const auto path = index_file_path(directory_, base);
  std::shared_ptr<SegmentIndexFile> loaded;
  if (auto file = distrust_file ? Result<std::unique_ptr<File>>(Status(ErrorCode::corruption, "distrusted"))
                                : file_system_.open(path, OpenMode::read_only)) {
    auto opened = SegmentIndexFile::open(std::move(*file), statistics.bytes_read);
    if (opened) {
      const IndexFileHeader& header = (*opened)->header();
      if (header.base_offset == base && header.log_bytes == segment.readable_bytes() &&
          header.next_offset == segment.next_offset() && header.fingerprint == configuration.fingerprint) {
        loaded = std::move(*opened);
      }
    } else if (opened.status().code() == ErrorCode::io_error) {
      return opened.status();
    }
  }
  if (!loaded) {
    // Missing, damaged, stale or written for another configuration: rebuild from the log.
    SegmentIndexBuilder builder;
    MSGSTORE_RETURN_IF_ERROR(index_segment_log(segment, segment.next_offset(), configuration, builder, statistics.bytes_read));
    std::string image = SegmentIndexBuilder::encode({&builder}, base, segment.readable_bytes(), segment.next_offset(),
                                                    configuration.fingerprint);
    ++statistics.index_files_rebuilt;
    // Only for a segment the log still has (retention may have removed it meanwhile).
    const auto segments = log_.segments_snapshot();
    const bool still_there = std::any_of(segments.begin(), segments.end(), [&](const auto& other) { return other.get() == &segment; });
    // Never for a retired segment: its path belongs to the rewrite's replacement now.
    if (still_there && segments.back().get() != &segment && !segment.retired()) (void)write_index_file(path, image);
    std::uint64_t ignored = 0;
    auto opened = SegmentIndexFile::open(memory_file(std::move(image)), ignored);
    if (!opened) return opened.status();
    loaded = std::move(*opened);
  }
  std::lock_guard lock(mutex_);
  if (configuration_.fingerprint == configuration.fingerprint && configuration_.enabled == configuration.enabled &&
      !segment.retired()) {
    cache_insert_locked(segment, loaded);
  }
  return loaded;
}

Status PartitionIndex::lookup(const log::Segment& segment, std::uint64_t term, const std::vector<std::uint64_t>& filter_terms,
                              std::vector<Posting>& out, bool& skipped, QueryStatistics& statistics) {
  skipped = false;
  ++statistics.index_lookups;
  bool active = false;
  {
    std::lock_guard lock(mutex_);
    drain_locked();
    active = segment.base_offset() == active_base_;
  }
  if (active) {
    MSGSTORE_RETURN_IF_ERROR(ensure_active_backfilled(segment, statistics));
    std::lock_guard lock(mutex_);
    drain_locked();
    if (segment.base_offset() == active_base_ && backfilled_) {
      for (std::uint64_t filter : filter_terms) {
        if (!backfill_.contains(filter) && !live_.contains(filter)) {
          skipped = true;
          return Status::ok();
        }
      }
      backfill_.postings(term, out);
      live_.postings(term, out);
      return Status::ok();
    }
    // The segment was sealed (or the configuration changed) meanwhile: use its file.
  }
  for (bool distrust_file : {false, true}) {
    auto sealed = sealed_index(segment, statistics, distrust_file);
    if (!sealed) return sealed.status();
    for (std::uint64_t filter : filter_terms) {
      if (!(*sealed)->might_contain(filter)) {
        skipped = true;
        return Status::ok();
      }
    }
    const std::size_t start = out.size();
    Status read = (*sealed)->postings(term, out, statistics.bytes_read);
    if (read.code() != ErrorCode::corruption) return read;
    out.resize(start);  // a damaged posting run: rebuild the file from the log, once
  }
  return Status(ErrorCode::corruption, "index of segment " + std::to_string(segment.base_offset()) + " stays damaged after a rebuild");
}

Status PartitionIndex::probe(const log::Segment& segment, std::uint64_t term, const std::vector<std::uint64_t>& filter_terms,
                             bool& skipped, std::size_t& expected, QueryStatistics& statistics) {
  skipped = false;
  expected = 0;
  {
    std::lock_guard lock(mutex_);
    drain_locked();
    if (segment.base_offset() == active_base_) return Status::ok();  // lookup() decides, from memory
  }
  auto sealed = sealed_index(segment, statistics);
  if (!sealed) return sealed.status();
  for (std::uint64_t filter : filter_terms) {
    if (!(*sealed)->might_contain(filter)) {
      skipped = true;
      return Status::ok();
    }
  }
  expected = (*sealed)->expect_postings(term);
  return Status::ok();
}

Status PartitionIndex::rebuild_missing(QueryStatistics& statistics) {
  {
    std::lock_guard lock(mutex_);
    if (!configuration_.enabled) return Status::ok();
  }
  const auto segments = log_.segments_snapshot();
  for (std::size_t index = 0; index + 1 < segments.size(); ++index) {
    if (segments[index]->empty()) continue;
    auto sealed = sealed_index(*segments[index], statistics);
    if (!sealed && sealed.status().code() == ErrorCode::io_error) return sealed.status();
  }
  return Status::ok();
}

}  // namespace msgstore::index
