#include "log/partition_log.h"

#include "log/worker_threads.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

#include "base/assert.h"
#include "base/coding.h"
#include "io/metadata_file.h"
#include "log/format.h"
#include "log/message_policy.h"

namespace msgstore::log {
namespace {

constexpr const char* checkpoint_file_name = "partition.meta";
constexpr const char* checkpoint_kind = "partition";
constexpr std::uint32_t checkpoint_version = 1;
// The maintenance pass writes a fresh checkpoint once this much was appended since the last,
// which bounds the tail that recovery scans.
constexpr std::uint64_t checkpoint_distance_bytes = 16ull * 1024 * 1024;

struct ResyncPoint {
  std::uint64_t position = 0;
  BatchHeader header;
};

// Looks for the next fully valid batch at or after `from` whose base offset is at least
// `minimum_offset`, byte by byte. Used only to tell a torn tail (nothing valid follows) from
// corruption (valid data follows the damage).
std::optional<ResyncPoint> find_next_valid_batch(const File& file, std::uint64_t from, std::uint64_t end,
                                                 Offset minimum_offset) {
  constexpr std::size_t window_bytes = 1 << 20;
  std::vector<char> window;
  std::uint64_t window_start = from;
  while (window_start + 4 <= end) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(window_bytes, end - window_start));
    window.resize(want);
    auto got = file.read_at(window_start, window.data(), want);
    if (!got || *got < 4) return std::nullopt;
    char magic[4];
    base::store_u32(magic, format::batch_magic);
    // memchr for the magic's first byte skips long runs without it (the zeros a writer put
    // ahead of its data, most of all) at memory speed.
    for (std::size_t at = 0; at + 4 <= *got; ++at) {
      const void* first = std::memchr(window.data() + at, magic[0], *got - 3 - at);
      if (first == nullptr) break;
      at = static_cast<std::size_t>(static_cast<const char*>(first) - window.data());
      if (std::memcmp(window.data() + at, magic, 4) != 0) continue;
      const std::uint64_t candidate = window_start + at;
      BatchScanner scanner(file, candidate, end);
      if (scanner.next(/*verify_body=*/true) == BatchScanner::Step::batch && scanner.header().base_offset >= minimum_offset) {
        return ResyncPoint{candidate, scanner.header()};
      }
    }
    if (*got < want) break;
    window_start += want - 3;  // overlap so a magic across the window edge is seen
  }
  return std::nullopt;
}

}  // namespace

TimestampMs system_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

PartitionLog::PartitionLog(FileSystem& file_system, std::filesystem::path directory, std::string label,
                           LogOptions options, Clock clock)
    : file_system_(file_system),
      directory_(std::move(directory)),
      label_(std::move(label)),
      clock_(clock ? std::move(clock) : Clock(system_clock_ms)),
      options_(options) {}

PartitionLog::~PartitionLog() { (void)close(); }

Result<std::unique_ptr<PartitionLog>> PartitionLog::open(FileSystem& file_system, std::filesystem::path directory,
                                                         std::string label, LogOptions options, Clock clock,
                                                         RecoveryReport* report) {
  std::unique_ptr<PartitionLog> log(new PartitionLog(file_system, std::move(directory), std::move(label), options, std::move(clock)));
  RecoveryReport local;
  Status recovered = log->recover(report ? *report : local);
  if (!recovered.is_ok()) {
    log->closed_ = true;
    return Status(recovered.code(), log->label_ + ": " + recovered.message());
  }
  return log;
}

void PartitionLog::set_options(const LogOptions& options) {
  std::lock_guard lock(options_mutex_);
  options_ = options;
}

void PartitionLog::set_data_listener(std::function<void()> listener) {
  std::lock_guard lock(listener_mutex_);
  data_listener_ = std::move(listener);
}

Status PartitionLog::write_checkpoint(Offset segment_base, std::uint64_t position, Offset next_offset,
                                      std::optional<Offset> new_log_start) {
  std::lock_guard lock(meta_mutex_);
  // The checkpoint only moves forward. A caller that read the log's end before another thread
  // rolled the segment (maintenance, retention) must not take it back: the older segment may
  // have been rewritten since (a rewrite needs its segment behind the checkpoint), and recovery
  // would then find the checkpointed bytes gone and report them damaged.
  if (std::pair(segment_base, position) < std::pair(checkpoint_segment_, checkpoint_position_)) {
    segment_base = checkpoint_segment_;
    position = checkpoint_position_;
    next_offset = checkpoint_next_offset_;
  }
  io::MetadataFields fields;
  fields["log_start_offset"] = std::to_string(new_log_start.value_or(log_start_offset_.load()));
  fields["recovery_segment"] = std::to_string(segment_base);
  fields["recovery_position"] = std::to_string(position);
  fields["recovery_next_offset"] = std::to_string(next_offset);
  MSGSTORE_RETURN_IF_ERROR(io::write_metadata_file(file_system_, directory_ / checkpoint_file_name, checkpoint_kind,
                                                   checkpoint_version, fields));
  checkpoint_segment_ = segment_base;
  checkpoint_position_ = position;
  checkpoint_next_offset_ = next_offset;
  // Still under meta_mutex_, so no other checkpoint write can record the older start after this.
  if (new_log_start) log_start_offset_.store(*new_log_start, std::memory_order_release);
  return Status::ok();
}

Status PartitionLog::recover(RecoveryReport& report) {
  MSGSTORE_RETURN_IF_ERROR(file_system_.create_directories(directory_));
  auto names = file_system_.list_directory(directory_);
  if (!names) return names.status();
  std::vector<Offset> bases;
  for (const std::string& name : *names) {
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) {
      // An unfinished metadata write, or a segment rewrite that never reached its rename:
      // rolled back (the original segment is intact; see log/segment_rewrite.h).
      MSGSTORE_RETURN_IF_ERROR(file_system_.remove(directory_ / name));
      continue;
    }
    if (auto base = parse_segment_log_name(name)) bases.push_back(*base);
  }
  std::sort(bases.begin(), bases.end());

  // The checkpoint: where durable, checked data ends, and where the log starts.
  Offset log_start = bases.empty() ? 0 : bases.front();
  Offset recovery_segment = log_start;
  std::uint64_t recovery_position = format::segment_header_bytes;
  Offset recovery_next_offset = log_start;
  const auto checkpoint_path = directory_ / checkpoint_file_name;
  const bool have_checkpoint = file_system_.exists(checkpoint_path);
  if (have_checkpoint) {
    auto fields = io::read_metadata_file(file_system_, checkpoint_path, checkpoint_kind, checkpoint_version);
    if (!fields) return fields.status();
    auto start = io::metadata_u64(*fields, "log_start_offset");
    auto segment = io::metadata_u64(*fields, "recovery_segment");
    auto position = io::metadata_u64(*fields, "recovery_position");
    auto next = io::metadata_u64(*fields, "recovery_next_offset");
    if (!start || !segment || !position || !next) {
      return Status(ErrorCode::corruption, checkpoint_path.string() + " is missing a field");
    }
    log_start = *start;
    recovery_segment = *segment;
    recovery_position = *position;
    recovery_next_offset = *next;
  }

  // Finish a retention step a crash interrupted: segments wholly below the log start go.
  while (bases.size() > 1 && bases[1] <= log_start) {
    for (auto kind : {SegmentFileKind::log, SegmentFileKind::offset_index, SegmentFileKind::time_index}) {
      MSGSTORE_RETURN_IF_ERROR(file_system_.remove(segment_file_path(directory_, bases.front(), kind)));
    }
    bases.erase(bases.begin());
  }
  // A checkpoint naming a segment that is gone (its files were lost) cannot be trusted.
  if (!bases.empty() && std::find(bases.begin(), bases.end(), recovery_segment) == bases.end()) {
    if (recovery_segment > bases.back()) {
      return Status(ErrorCode::corruption, "checkpoint names segment " + std::to_string(recovery_segment) +
                                               " but the newest segment file is " + std::to_string(bases.back()));
    }
    recovery_segment = bases.front();
    recovery_position = format::segment_header_bytes;
    recovery_next_offset = bases.front();
  }
  log_start_offset_ = log_start;
  MSGSTORE_RETURN_IF_ERROR(load_erase_list());
  {
    // What is on disk now, until a new checkpoint is written (it may not be, on a full disk).
    std::lock_guard lock(meta_mutex_);
    checkpoint_segment_ = recovery_segment;
    checkpoint_position_ = recovery_position;
    checkpoint_next_offset_ = recovery_next_offset;
  }

  std::vector<std::shared_ptr<Segment>> opened;
  Offset expected = bases.empty() ? log_start : bases.front();
  bool need_new_segment = bases.empty();
  bool removed_files = false;
  for (std::size_t index = 0; index < bases.size(); ++index) {
    const Offset base = bases[index];
    auto segment = Segment::open(file_system_, directory_, base);
    if (!segment) {
      // A sealed segment, or the one a checkpoint names (its header was synced before the
      // checkpoint was written): never drop it silently.
      if (base < recovery_segment || (have_checkpoint && base == recovery_segment)) return segment.status();
      // A tail segment whose header never became durable holds nothing that was acked.
      for (auto kind : {SegmentFileKind::log, SegmentFileKind::offset_index, SegmentFileKind::time_index}) {
        MSGSTORE_RETURN_IF_ERROR(file_system_.remove(segment_file_path(directory_, base, kind)));
      }
      removed_files = true;
      continue;
    }
    std::shared_ptr<Segment> current = std::move(*segment);
    ++report.segments;

    if (base < recovery_segment) {
      // Sealed before the checkpoint: trusted, opened cheaply; checksums are verified on read.
      const Offset next_base = index + 1 < bases.size() ? bases[index + 1] : recovery_segment;
      if (!current->load_seal_summary(next_base).is_ok()) {
        ++report.indexes_rebuilt;
        report.bytes_scanned += current->readable_bytes();
        MSGSTORE_RETURN_IF_ERROR(current->ensure_indexes());
        // The rebuild records where the segment is damaged or ends before next_base.
        for (const DamagedRange& range : current->damaged_ranges()) {
          report.corruption.push_back(label_ + ": sealed segment " + std::to_string(base) + " is damaged from byte " +
                                      std::to_string(range.position_begin) + " (offsets " + std::to_string(range.offset_begin) +
                                      ".." + std::to_string(range.offset_end) + "), kept and not served");
        }
      }
      expected = next_base;
      opened.push_back(std::move(current));
      continue;
    }

    // The tail: scan from the recovery point (or the start of segments created after it).
    std::uint64_t scan_position = format::segment_header_bytes;
    Offset scan_offset = base;
    // Index entries at or past the file's end (if it was cut below the checkpoint) describe
    // bytes that are gone: load only what the file still holds.
    if (base == recovery_segment &&
        current->load_indexes(std::min<std::uint64_t>(recovery_position, current->readable_bytes())).is_ok()) {
      auto entries = current->offset_index_snapshot();
      if (!entries.empty()) {
        scan_position = entries.back().position;
        scan_offset = base + entries.back().relative_offset;
      }
    } else {
      if (base == recovery_segment) ++report.indexes_rebuilt;
      current->reset_indexes();
    }
    if (base > expected && expected != bases.front()) {
      // Offsets jumped between segments: a hole we cannot explain is reported, not hidden.
      report.corruption.push_back(label_ + ": offsets " + std::to_string(expected) + ".." + std::to_string(base) +
                                  " missing between segments");
    }
    while (true) {
      std::uint64_t stop = 0;
      Status error;
      const BatchScanner::Step step = current->scan_from(scan_position, scan_offset, stop, error);
      report.bytes_scanned += stop - scan_position;
      if (step == BatchScanner::Step::io_error) return error;
      auto file_size = current->log_file().size();
      if (!file_size) return file_size.status();
      if (stop >= *file_size) break;  // clean end
      // Something other than a batch at `stop`: torn write or corruption?
      std::optional<ResyncPoint> resume = find_next_valid_batch(current->log_file(), stop + 1, *file_size, current->next_offset());
      const bool below_recovery_point = base < recovery_segment || (base == recovery_segment && stop < recovery_position);
      // Valid batches after the damage say how far the log was synced when they were written.
      // If one says the damaged offsets were already synced, this is corruption (rule 6). If
      // none does, the damage and everything after it was never synced: a power loss kept
      // some unsynced writes and dropped others (rule 13), so it is all an unacknowledged tail.
      const Offset damaged_offset = current->next_offset();
      Offset synced_claim = 0;
      for (std::optional<ResyncPoint> point = resume; point;) {
        synced_claim = std::max(synced_claim, point->header.synced_before());
        point = find_next_valid_batch(current->log_file(), point->position + point->header.batch_bytes, *file_size,
                                      point->header.next_offset());
      }
      bool later_segments_exist = false;
      for (std::size_t later = index + 1; later < bases.size(); ++later) {
        auto other = Segment::open(file_system_, directory_, bases[later]);
        if (!other) continue;
        later_segments_exist = true;
        auto other_size = (*other)->log_file().size();
        const std::uint64_t other_end = other_size ? *other_size : 0;
        for (auto point = find_next_valid_batch((*other)->log_file(), format::segment_header_bytes, other_end, 0); point;) {
          synced_claim = std::max(synced_claim, point->header.synced_before());
          point = find_next_valid_batch((*other)->log_file(), point->position + point->header.batch_bytes, other_end,
                                        point->header.next_offset());
        }
      }
      const bool synced_data_damaged = below_recovery_point || synced_claim > damaged_offset;
      if (!synced_data_damaged && later_segments_exist) {
        // Unsynced segments after an unsynced hole hold nothing acknowledged: drop them too.
        for (std::size_t later = index + 1; later < bases.size(); ++later) {
          for (auto kind : {SegmentFileKind::log, SegmentFileKind::offset_index, SegmentFileKind::time_index}) {
            MSGSTORE_RETURN_IF_ERROR(file_system_.remove(segment_file_path(directory_, bases[later], kind)));
          }
        }
        bases.resize(index + 1);
        removed_files = true;
      }
      if (synced_data_damaged) {
        const std::uint64_t damage_end = resume ? resume->position : *file_size;
        const Offset offset_end = resume ? resume->header.base_offset : std::max(current->next_offset(), recovery_next_offset);
        current->add_damaged_range({stop, damage_end, current->next_offset(), offset_end});
        report.corruption.push_back(label_ + ": damaged bytes " + std::to_string(stop) + ".." + std::to_string(damage_end) +
                                    " in segment " + std::to_string(base) + " (offsets " +
                                    std::to_string(current->next_offset()) + ".." + std::to_string(offset_end) +
                                    "), kept and not served");
        if (!resume) {
          need_new_segment = true;  // never append behind damage we could not cut
          if (offset_end > current->next_offset()) expected = offset_end;
          break;
        }
        scan_position = resume->position;
        scan_offset = resume->header.base_offset;
        continue;
      }
      // A torn tail: nothing synced after it. Cut it off.
      report.torn_bytes_truncated += *file_size - stop;
      MSGSTORE_RETURN_IF_ERROR(current->truncate_to(stop));
      break;
    }
    if (base == recovery_segment && current->readable_bytes() < recovery_position) {
      // Synced, checkpointed bytes are gone (the file was cut short): the offsets they held
      // are never reused, so readers can never see two different messages at one offset.
      current->add_damaged_range({current->readable_bytes(), recovery_position, current->next_offset(), recovery_next_offset});
      report.corruption.push_back(label_ + ": segment " + std::to_string(base) + " ends at byte " +
                                  std::to_string(current->readable_bytes()) + " but bytes up to " +
                                  std::to_string(recovery_position) + " were synced (offsets " +
                                  std::to_string(current->next_offset()) + ".." + std::to_string(recovery_next_offset) + " lost)");
      need_new_segment = true;
      expected = std::max(expected, recovery_next_offset);
    }
    expected = std::max(expected, current->next_offset());
    opened.push_back(std::move(current));
  }
  if (removed_files) MSGSTORE_RETURN_IF_ERROR(file_system_.sync_directory(directory_));

  for (auto& segment : opened) segments_.emplace(segment->base_offset(), segment);

  if (opened.empty() || need_new_segment) {
    Offset base = opened.empty() ? std::max(log_start, expected) : std::max(expected, opened.back()->next_offset());
    auto segment = Segment::create(file_system_, directory_, base, clock_());
    if (!segment) return segment.status();
    MSGSTORE_RETURN_IF_ERROR(file_system_.sync_directory(directory_));
    segments_.emplace(base, *segment);
    opened.push_back(*segment);
  }
  active_ = opened.back();
  if (!active_->indexes_loaded()) MSGSTORE_RETURN_IF_ERROR(active_->ensure_indexes());
  // The tail's indexes were re-derived in memory: rewrite them so appends extend them.
  // Indexes are derived: on a full disk they stay in memory only and are rebuilt next time.
  // They are synced too: the previous durable copy may hold entries for a tail a power loss
  // cut off, and new batches will land at those positions (tests/crash/regression_test.cc).
  Status indexes_written = active_->write_index_files();
  if (indexes_written.is_ok()) indexes_written = active_->sync_index_files();
  if (!indexes_written.is_ok() && indexes_written.code() != ErrorCode::no_space) return indexes_written;
  next_offset_ = active_->next_offset();
  if (next_offset_ < log_start) next_offset_ = log_start;
  MSGSTORE_RETURN_IF_ERROR(active_->sync_data());
  durable_offset_ = next_offset_;
  synced_offset_hint_ = next_offset_;
  unsynced_from_ = next_offset_;
  high_watermark_ = next_offset_;
  // Erase-list entries at or past the recovered end named messages a power loss took (the list
  // is synced, an fsync=interval/never tail may not be): the next appends reuse those offsets,
  // and the list must not hide them (tests/crash/regression_test.cc).
  {
    const auto erased = erased_offsets();
    const std::vector<Offset> past_end(std::lower_bound(erased->begin(), erased->end(), next_offset_), erased->end());
    MSGSTORE_RETURN_IF_ERROR(retire_erased_offsets(past_end));
  }
  // Everything up to here is checked and synced: the next recovery starts from here, which
  // makes a second recovery a no-op.
  MSGSTORE_RETURN_IF_ERROR(advance_checkpoint(active_->base_offset(), active_->readable_bytes(), next_offset_));
  last_sync_ms_ = clock_();
  return Status::ok();
}

Status PartitionLog::fail(Status status) {
  // Fail-stop: after a write or sync error the state of the file is unknown (Linux may have
  // dropped dirty pages), so nothing more is written or acknowledged until a restart recovers.
  if (!failed_.exchange(true)) {
    failure_ = status;
    std::lock_guard lock(sync_mutex_);  // after append_mutex_ (held here), as everywhere
    stop_reason_ = status.message();
  }
  return Status(ErrorCode::log_failed, label_ + ": log stopped after an I/O error (restart to recover): " + status.message());
}

Status PartitionLog::roll_locked(TimestampMs now) {
  std::shared_ptr<Segment> old = active_;
  MSGSTORE_RETURN_IF_ERROR(old->seal());
  if (observer_) observer_->on_segment_sealed(*old);
  auto segment = Segment::create(file_system_, directory_, next_offset_, now);
  if (!segment) return segment.status();
  MSGSTORE_RETURN_IF_ERROR(file_system_.sync_directory(directory_));
  {
    std::unique_lock lock(segments_mutex_);
    segments_.emplace(next_offset_, *segment);
  }
  active_ = *segment;
  {
    std::lock_guard lock(sync_mutex_);
    durable_offset_ = std::max(durable_offset_, next_offset_);
    synced_offset_hint_ = durable_offset_;
  }
  last_sync_ms_ = now;
  unsynced_from_ = next_offset_;
  // No publish_high_watermark here: it calls the data listener, which must run outside this
  // log's locks (roll runs under append_mutex_). Every appender publishes its own batch once
  // its fsync policy is met, so nothing waits on this.
  return write_checkpoint(active_->base_offset(), active_->readable_bytes(), next_offset_);
}

void PartitionLog::publish_high_watermark(Offset offset) {
  Offset current = high_watermark_.load(std::memory_order_relaxed);
  while (offset > current && !high_watermark_.compare_exchange_weak(current, offset, std::memory_order_acq_rel)) {
  }
  if (offset > current) {
    std::function<void()> listener;
    {
      std::lock_guard lock(listener_mutex_);
      listener = data_listener_;
    }
    if (listener) listener();
  }
}

Result<Offset> PartitionLog::append(BatchBuilder& builder, const AppendPrecondition& precondition, Offset* durable_end) {
  MS_ASSERT(builder.record_count() > 0);
  builder.checksum_records();  // the costly part, outside the lock
  LogOptions options;
  {
    std::lock_guard lock(options_mutex_);
    options = options_;
  }
  Offset base;
  Offset end;
  {
    std::lock_guard lock(append_mutex_);
    if (closed_) return Status(ErrorCode::closed, label_ + ": log is closed");
    if (failed_) return Status(ErrorCode::log_failed, label_ + ": log stopped after an I/O error (restart to recover): " + failure_.message());
    // Under the append lock, so the check and the write are one step for other appenders.
    if (precondition) MSGSTORE_RETURN_IF_ERROR(precondition(next_offset_));
    const TimestampMs now = clock_();
    const bool too_big = !active_->empty() && active_->readable_bytes() + builder.bytes() > options.segment_bytes;
    const bool too_old = !active_->empty() && options.segment_age_ms > 0 && now - active_->created_ms() >= options.segment_age_ms;
    if (too_big || too_old) {
      Status rolled = roll_locked(now);
      if (!rolled.is_ok()) {
        // A full disk while starting a segment is ENOSPC like any other: nothing of this batch
        // was written, the log stays consistent, and writing resumes when space returns.
        if (rolled.code() == ErrorCode::no_space) {
          return Status(ErrorCode::no_space, label_ + ": disk full, message not stored: " + rolled.message());
        }
        return fail(rolled);
      }
    }
    base = next_offset_;
    std::string_view batch = builder.finish(base, synced_offset_hint_.load(std::memory_order_acquire));
    BatchHeader header;
    MS_ASSERT(check_batch_header(batch.data(), batch.size(), header) == HeaderCheck::valid);
    const std::uint64_t position = active_->readable_bytes();
    // Zeros ahead of the data, never more than a segment holds (small segments would write
    // many times their size in zeros otherwise).
    const std::uint64_t preallocate =
        options.fsync == FsyncPolicy::always ? std::min(options.preallocate_bytes, options.segment_bytes) : 0;
    Status written = active_->append(batch, header, preallocate);
    if (!written.is_ok()) {
      if (written.code() == ErrorCode::no_space) {
        // Nothing of the batch remains; writing resumes when space returns.
        return Status(ErrorCode::no_space, label_ + ": disk full, message not stored: " + written.message());
      }
      return fail(written);
    }
    if (observer_) observer_->on_batch_appended(*active_, position, batch, header);
    next_offset_ = header.next_offset();
    end = next_offset_;
  }
  if (options.fsync == FsyncPolicy::always) {
    if (durable_end != nullptr) {
      *durable_end = end;  // the caller waits with when_durable
      return base;
    }
    MSGSTORE_RETURN_IF_ERROR(wait_durable(end));
  } else {
    if (durable_end != nullptr) *durable_end = 0;
    publish_high_watermark(end);
  }
  return base;
}

Status PartitionLog::wait_durable(Offset target) {
  std::unique_lock lock(sync_mutex_);
  while (durable_offset_ < target) {
    if (!sync_failure_.is_ok()) return Status(ErrorCode::log_failed, label_ + ": " + sync_failure_.message());
    if (sync_in_progress_) {
      sync_finished_.wait(lock);
      continue;
    }
    // Become the syncer for everyone written so far.
    MSGSTORE_RETURN_IF_ERROR(sync_as_syncer(lock));
    lock.lock();
  }
  // Another appender's sync covered this batch, and that syncer may not have published the
  // high watermark yet: publish it here, so an acknowledged batch is always readable.
  lock.unlock();
  publish_high_watermark(target);
  return Status::ok();
}

Status PartitionLog::sync_written_locked(std::unique_lock<std::mutex>& lock) {
  MS_ASSERT(sync_in_progress_);
  lock.unlock();
  std::shared_ptr<Segment> segment;
  Offset goal;
  {
    std::lock_guard append_lock(append_mutex_);
    segment = active_;
    goal = next_offset_;
  }
  Status synced = segment->sync_data();
  if (!synced.is_ok()) {
    {
      std::lock_guard append_lock(append_mutex_);
      (void)fail(synced);
    }
    lock.lock();
    sync_failure_ = synced;
    sync_in_progress_ = false;
    sync_finished_.notify_all();
    return synced;
  }
  lock.lock();
  sync_in_progress_ = false;
  durable_offset_ = std::max(durable_offset_, goal);
  synced_offset_hint_ = durable_offset_;
  last_sync_ms_ = clock_();
  sync_finished_.notify_all();
  return Status::ok();
}

void PartitionLog::when_durable(Offset end, DurableCallback done) {
  std::unique_lock lock(sync_mutex_);
  durable_waiters_.push_back({end, std::move(done)});
  if (durable_offset_ >= end || !sync_failure_.is_ok() || failed_.load()) {
    complete_durable_waiters(lock, Status::ok());
    return;
  }
  if (sync_pass_scheduled_) return;  // a pass is scheduled or running: it covers this one
  std::shared_ptr<WorkerThreads> threads = sync_threads_.lock();
  if (!threads) {
    lock.unlock();
    run_sync_pass();
    return;
  }
  sync_pass_scheduled_ = true;
  lock.unlock();
  threads->schedule(shared_from_this());
}

void PartitionLog::run_sync_pass() {
  // A pass runs while it has callers: whoever registers during its fdatasync is covered by its
  // next round, on this thread, with no other thread woken (sync_pass_scheduled_ stays set
  // until the pass ends with nobody waiting).
  std::unique_lock lock(sync_mutex_);
  for (;;) {
    if (durable_waiters_.empty()) {
      sync_pass_scheduled_ = false;
      return;
    }
    Offset needed = 0;
    for (const DurableWaiter& waiter : durable_waiters_) needed = std::max(needed, waiter.end);
    if (durable_offset_ < needed && sync_failure_.is_ok() && !failed_.load()) {
      if (sync_in_progress_) {  // a blocking appender is syncing: its sync may cover everyone
        sync_finished_.wait(lock);
        continue;
      }
      sync_in_progress_ = true;
      (void)sync_written_locked(lock);  // a failure is sticky in sync_failure_
    }
    complete_durable_waiters(lock, Status::ok());
    lock.lock();
  }
}

void PartitionLog::complete_durable_waiters(std::unique_lock<std::mutex>& lock, const Status& undecided) {
  const Offset durable = durable_offset_;
  Status failure;
  if (!sync_failure_.is_ok()) {
    failure = Status(ErrorCode::log_failed, label_ + ": fdatasync failed, nothing after it is acknowledged: " + sync_failure_.message());
  } else if (failed_.load()) {
    // stop_reason_ is set just after failed_; a waiter decided in between gets no reason.
    failure = Status(ErrorCode::log_failed, label_ + ": log stopped after an I/O error (restart to recover)" +
                                                (stop_reason_.empty() ? std::string() : ": " + stop_reason_));
  } else {
    failure = undecided;
  }
  std::vector<DurableWaiter> decided;
  std::vector<DurableWaiter> waiting;
  Offset readable = 0;
  for (DurableWaiter& waiter : durable_waiters_) {
    if (waiter.end <= durable) {
      readable = std::max(readable, waiter.end);
      decided.push_back(std::move(waiter));
    } else if (!failure.is_ok()) {
      decided.push_back(std::move(waiter));
    } else {
      waiting.push_back(std::move(waiter));
    }
  }
  durable_waiters_ = std::move(waiting);
  lock.unlock();
  if (decided.empty()) return;
  // Acknowledged means readable: publish before any completion runs.
  if (readable > 0) publish_high_watermark(readable);
  for (DurableWaiter& waiter : decided) waiter.done(waiter.end <= durable ? Status::ok() : failure);
}

Status PartitionLog::sync() {
  {
    std::lock_guard lock(append_mutex_);
    if (failed_) return Status(ErrorCode::log_failed, label_ + ": " + failure_.message());
  }
  // The same sync as group commit's (one syncer at a time; a failure is sticky there too).
  std::unique_lock lock(sync_mutex_);
  while (sync_in_progress_) sync_finished_.wait(lock);
  if (!sync_failure_.is_ok()) return Status(ErrorCode::log_failed, label_ + ": " + sync_failure_.message());
  return sync_as_syncer(lock);
}

Status PartitionLog::sync_as_syncer(std::unique_lock<std::mutex>& lock) {
  sync_in_progress_ = true;
  Status synced = sync_written_locked(lock);
  if (!synced.is_ok()) {
    return Status(ErrorCode::log_failed, label_ + ": fdatasync failed, nothing after it is acknowledged: " + synced.message());
  }
  const Offset durable = durable_offset_;
  lock.unlock();
  publish_high_watermark(durable);
  return Status::ok();
}

std::vector<std::shared_ptr<Segment>> PartitionLog::segments_from(Offset offset) const {
  std::shared_lock lock(segments_mutex_);
  std::vector<std::shared_ptr<Segment>> result;
  auto it = segments_.upper_bound(offset);
  if (it != segments_.begin()) --it;
  for (; it != segments_.end(); ++it) result.push_back(it->second);
  return result;
}

Status PartitionLog::damaged_error(const Segment& segment, std::uint64_t position) const {
  for (const DamagedRange& range : segment.damaged_ranges()) {
    if (position >= range.position_begin && position < range.position_end) {
      return Status(ErrorCode::corruption, label_ + ": offsets " + std::to_string(range.offset_begin) + " to " +
                                               std::to_string(range.offset_end) +
                                               " are damaged and not served; read on from offset " +
                                               std::to_string(range.offset_end));
    }
  }
  return Status(ErrorCode::corruption, label_ + ": checksum mismatch in segment " +
                                           segment_file_path(segment.directory(), segment.base_offset(), SegmentFileKind::log).filename().string() +
                                           " at byte " + std::to_string(position) + "; the damaged batch is not served");
}

Result<Offset> PartitionLog::scan(Offset from, std::size_t max_messages, std::size_t max_bytes,
                                  const std::function<bool(const MessageView&)>& visit, ScanExpired expired) const {
  const TimestampMs now = expired == ScanExpired::skip ? clock_() : 0;
  const Offset high_watermark = high_watermark_.load(std::memory_order_acquire);
  const Offset log_start = log_start_offset_.load(std::memory_order_acquire);
  if (from < log_start || from > high_watermark) {
    return Status(ErrorCode::offset_out_of_range, label_ + ": offset " + std::to_string(from) + " is outside the log (" +
                                                      std::to_string(log_start) + " to " + std::to_string(high_watermark) + ")");
  }
  Offset next = from;
  std::size_t messages = 0;
  std::size_t bytes = 0;
  bool stop = false;
  RecordDecoder decoder;
  // Erased offsets (log/erase_list.h) are skipped like compaction gaps: never passed to `visit`.
  const std::shared_ptr<const std::vector<Offset>> erased = erased_offsets();
  auto is_erased = [&erased](Offset offset) {
    return !erased->empty() && std::binary_search(erased->begin(), erased->end(), offset);
  };
  // Offsets that recovery found damaged or lost are reported, never skipped silently (a damaged
  // range can end a segment, so the scanner alone would not see it).
  auto damaged_offsets = [&](const Segment& segment, Offset offset) -> std::optional<Status> {
    for (const DamagedRange& range : segment.damaged_ranges()) {
      if (offset >= range.offset_begin && offset < range.offset_end) {
        return Status(ErrorCode::corruption, label_ + ": offsets " + std::to_string(range.offset_begin) + " to " +
                                                 std::to_string(range.offset_end) +
                                                 " are damaged and not served; read on from offset " +
                                                 std::to_string(range.offset_end));
      }
    }
    return std::nullopt;
  };
  for (const std::shared_ptr<Segment>& segment : segments_from(from)) {
    if (stop || next >= high_watermark || messages >= max_messages) break;
    if (auto damaged = damaged_offsets(*segment, next)) {
      if (messages > 0) return next;
      return *damaged;
    }
    if (segment->next_offset() <= next && segment->base_offset() < next) continue;
    MSGSTORE_RETURN_IF_ERROR(segment->ensure_indexes());
    // Damage ranges recovery found: skip batches wholly before the request, refuse the rest.
    BatchScanner scanner(segment->log_file(), segment->position_for_offset(next), segment->readable_bytes());
    while (!stop && messages < max_messages) {
      const BatchScanner::Step step = scanner.next(/*verify_body=*/false);
      if (step == BatchScanner::Step::end_of_log) break;
      if (step == BatchScanner::Step::io_error) return scanner.error();
      const BatchHeader& header = scanner.header();
      if (step == BatchScanner::Step::batch && header.next_offset() <= next) continue;  // before the request
      if (step == BatchScanner::Step::batch && header.base_offset >= high_watermark) {
        stop = true;
        break;
      }
      // Every batch whose records are returned has its checksum verified.
      if (step == BatchScanner::Step::damaged || !check_batch_body(scanner.batch(), header)) {
        if (messages > 0) return next;  // hand over what is good; the next read reports the damage
        return damaged_error(*segment, scanner.position());
      }
      Status decoded = decoder.decode(scanner.batch(), header, [&](const MessageView& message) {
        if (message.offset < next) return true;
        if (message.offset >= high_watermark) {
          stop = true;
          return false;
        }
        if (is_erased(message.offset)) {
          next = message.offset + 1;
          return true;
        }
        if (messages >= max_messages || (messages > 0 && bytes >= max_bytes)) {
          stop = true;
          return false;
        }
        if (expired == ScanExpired::skip && is_expired(message, now)) {  // a gap for every reader
          next = message.offset + 1;
          return true;
        }
        bytes += message.payload.size() + message.subject.size() + 32;
        ++messages;
        next = message.offset + 1;
        if (!visit(message)) {
          stop = true;
          return false;
        }
        return true;
      });
      if (!decoded.is_ok()) {
        if (messages > 0) return next;
        return Status(ErrorCode::corruption, label_ + ": " + decoded.message());
      }
      if (!stop) next = std::max(next, header.next_offset());
    }
    if (!stop && messages < max_messages && next < high_watermark) {
      if (auto damaged = damaged_offsets(*segment, next)) {  // damage at the segment's end
        if (messages > 0) return next;
        return *damaged;
      }
    }
    if (!stop && messages < max_messages && next < segment->next_offset() && next < high_watermark &&
        segment->base_offset() <= next && segment->rewritten()) {
      next = std::min(segment->next_offset(), high_watermark);  // a rewritten segment may end in a gap
      continue;
    }
    if (!stop && messages < max_messages && next < segment->next_offset() && next < high_watermark &&
        segment->base_offset() <= next) {
      // The segment ended before the offsets it is known to hold: never skip them silently.
      if (messages > 0) return next;
      return Status(ErrorCode::corruption, label_ + ": offsets " + std::to_string(next) + " to " +
                                               std::to_string(segment->next_offset()) + " are missing from segment " +
                                               std::to_string(segment->base_offset()) + " (file cut short)");
    }
  }
  return std::min(next, high_watermark);
}

Result<Offset> PartitionLog::offset_for_time(TimestampMs time_ms) const {
  const Offset high_watermark = high_watermark_.load(std::memory_order_acquire);
  const Offset log_start = log_start_offset_.load(std::memory_order_acquire);
  RecordDecoder decoder;
  const std::shared_ptr<const std::vector<Offset>> erased = erased_offsets();
  for (const std::shared_ptr<Segment>& segment : segments_from(log_start)) {
    if (segment->base_offset() >= high_watermark) break;
    if (segment->empty() || segment->max_timestamp_ms() < time_ms) continue;
    MSGSTORE_RETURN_IF_ERROR(segment->ensure_indexes());
    BatchScanner scanner(segment->log_file(), segment->position_for_time(time_ms), segment->readable_bytes());
    std::optional<Offset> found;
    while (!found) {
      const BatchScanner::Step step = scanner.next(/*verify_body=*/true);
      if (step == BatchScanner::Step::end_of_log) break;
      if (step == BatchScanner::Step::io_error) return scanner.error();
      if (step == BatchScanner::Step::damaged) return damaged_error(*segment, scanner.position());
      const BatchHeader& header = scanner.header();
      if (header.base_offset >= high_watermark) break;
      if (header.max_timestamp_ms < time_ms || header.next_offset() <= log_start) continue;
      MSGSTORE_RETURN_IF_ERROR(decoder.decode(scanner.batch(), header, [&](const MessageView& message) {
        if (message.offset >= high_watermark) return false;
        if (message.offset >= log_start && message.timestamp_ms >= time_ms &&
            !std::binary_search(erased->begin(), erased->end(), message.offset)) {
          found = message.offset;
          return false;
        }
        return true;
      }));
    }
    if (found) return *found;
  }
  return high_watermark;
}

PartitionInfo PartitionLog::info(std::uint32_t partition) const {
  PartitionInfo info;
  info.partition = partition;
  info.first_offset = log_start_offset();
  info.next_offset = high_watermark();
  info.messages = info.next_offset - info.first_offset;
  std::shared_lock lock(segments_mutex_);
  info.segments = static_cast<std::uint32_t>(segments_.size());
  TimestampMs last = no_timestamp;
  bool first_seen = false;
  for (const auto& [base, segment] : segments_) {
    info.bytes += segment->readable_bytes();
    if (!first_seen && !segment->empty()) {
      // The oldest message's timestamp: known in memory for segments scanned since open,
      // read from the first batch header for sealed segments opened cheaply.
      first_seen = true;
      TimestampMs first = segment->first_timestamp_ms();
      if (first == no_timestamp) {
        BatchScanner scanner(segment->log_file(), Segment::header_bytes(), segment->readable_bytes());
        if (scanner.next(/*verify_body=*/false) == BatchScanner::Step::batch) first = scanner.header().first_timestamp_ms;
      }
      if (first != no_timestamp) info.first_timestamp_ms = first;
    }
    last = std::max(last, segment->max_timestamp_ms());
    for (const DamagedRange& range : segment->damaged_ranges()) {
      info.damage.push_back("offsets " + std::to_string(range.offset_begin) + " to " + std::to_string(range.offset_end) +
                            " (segment " + std::to_string(base) + ", bytes " + std::to_string(range.position_begin) +
                            " to " + std::to_string(range.position_end) + ")");
    }
  }
  info.last_timestamp_ms = last == no_timestamp ? 0 : last;
  return info;
}

Offset PartitionLog::ttl_retention_start_locked(TimestampMs now) {
  const Offset log_start = log_start_offset();
  std::vector<std::shared_ptr<Segment>> segments = segments_from(log_start);
  if (segments.size() < 2) return log_start;
  Offset start = log_start;
  RecordDecoder decoder;
  for (std::size_t i = 0; i + 1 < segments.size(); ++i) {  // the last (active) segment still grows
    const std::shared_ptr<Segment>& segment = segments[i];
    auto cached = segment_expiry_ms_.find(segment->base_offset());
    if (cached == segment_expiry_ms_.end()) {
      // Read the segment once; the first message without a TTL settles it (one batch for a
      // stream that does not use TTLs). Damaged or unreadable data keeps the segment.
      std::optional<TimestampMs> latest;
      bool never = false;
      bool unreadable = false;
      BatchScanner scanner(segment->log_file(), Segment::header_bytes(), segment->readable_bytes());
      while (!never && !unreadable) {
        const BatchScanner::Step step = scanner.next(/*verify_body=*/true);
        if (step == BatchScanner::Step::end_of_log) break;
        if (step == BatchScanner::Step::io_error) return start;  // try again next pass
        if (step != BatchScanner::Step::batch) {
          unreadable = true;
          break;
        }
        Status decoded = decoder.decode(scanner.batch(), scanner.header(), [&](const MessageView& message) {
          const std::optional<TimestampMs> expiry = message_expiry_ms(message);
          if (!expiry) {
            never = true;
            return false;
          }
          latest = std::max(latest.value_or(*expiry), *expiry);
          return true;
        });
        if (!decoded.is_ok()) unreadable = true;
      }
      if (unreadable || segment->empty() || !segment->damaged_ranges().empty()) never = true;
      cached = segment_expiry_ms_.emplace(segment->base_offset(), never ? std::nullopt : latest).first;
    }
    if (!cached->second || *cached->second > now) break;
    start = segments[i + 1]->base_offset();
  }
  return start;
}

Status PartitionLog::apply_retention(TimestampMs now) {
  std::lock_guard retention(retention_mutex_);
  LogOptions options;
  {
    std::lock_guard lock(options_mutex_);
    options = options_;
  }
  // Segments whose every message outlived its time to live go whatever the limits say.
  const Offset ttl_start = ttl_retention_start_locked(now);
  if (options.max_age_ms <= 0 && options.max_bytes == 0 && options.max_messages == 0 && ttl_start <= log_start_offset()) {
    return Status::ok();
  }
  std::vector<std::shared_ptr<Segment>> doomed;
  Offset new_start = log_start_offset();
  {
    std::shared_lock lock(segments_mutex_);
    std::uint64_t total_bytes = 0;
    for (const auto& [base, segment] : segments_) total_bytes += segment->readable_bytes();
    const Offset high_watermark = high_watermark_.load();
    for (auto it = segments_.begin(); it != segments_.end(); ++it) {
      auto following = std::next(it);
      if (following == segments_.end()) break;  // the active segment is never deleted here
      if (following->first > high_watermark) break;  // never delete what readers cannot see yet
      const Segment& segment = *it->second;
      // A sealed segment without records (a rewrite dropped them all) holds nothing to keep.
      const bool expired = options.max_age_ms > 0 && (segment.empty() || segment.max_timestamp_ms() < now - options.max_age_ms);
      // Size and count limits keep at least the limit: a segment goes only if what remains
      // after it still meets the limit. What remains is counted from the next segment's base,
      // not from a running total: a segment can lie below the log start (an earlier pass
      // could not persist its checkpoint), and it holds none of the messages counted from there.
      const bool over_bytes = options.max_bytes > 0 && total_bytes - segment.readable_bytes() >= options.max_bytes;
      const bool over_messages = options.max_messages > 0 && high_watermark - following->first >= options.max_messages;
      const bool ttl_expired = following->first <= ttl_start;
      if (!(expired || over_bytes || over_messages || ttl_expired)) break;
      doomed.push_back(it->second);
      total_bytes -= segment.readable_bytes();
      new_start = following->first;
    }
  }
  if (doomed.empty()) return Status::ok();
  // Persist the new log start first: a crash after this point finishes the deletion on open.
  // Readers (an erase's search among them) see it only once it is durable: until then a power
  // loss brings the segments back, and an erase that skipped their messages as already gone
  // would have returned ok with them readable again (tests/crash/regression_test.cc). If the
  // write fails (ENOSPC, typically) nothing was deleted and the log start stays as it was.
  {
    Offset segment;
    std::uint64_t position;
    Offset next;
    {
      std::lock_guard lock(meta_mutex_);
      segment = checkpoint_segment_;
      position = checkpoint_position_;
      next = checkpoint_next_offset_;
    }
    MSGSTORE_RETURN_IF_ERROR(write_checkpoint(segment, position, next, new_start));
  }
  {
    std::unique_lock lock(segments_mutex_);
    for (const auto& segment : doomed) segments_.erase(segment->base_offset());
  }
  for (const auto& segment : doomed) segment_expiry_ms_.erase(segment->base_offset());
  for (const auto& segment : doomed) {
    for (auto kind : {SegmentFileKind::log, SegmentFileKind::offset_index, SegmentFileKind::time_index}) {
      MSGSTORE_RETURN_IF_ERROR(file_system_.remove(segment_file_path(directory_, segment->base_offset(), kind)));
    }
    if (observer_) observer_->on_segment_removed(segment->base_offset());
  }
  MSGSTORE_RETURN_IF_ERROR(file_system_.sync_directory(directory_));
  for (const auto& segment : doomed) notify_segment_change(SegmentChange::removed, segment->base_offset());
  // Erase-list entries whose segments are gone have nothing left to hide.
  auto erased = erased_offsets();
  std::vector<Offset> below_start(erased->begin(), std::lower_bound(erased->begin(), erased->end(), new_start));
  return retire_erased_offsets(below_start);
}

Status PartitionLog::maintain() {
  if (failed_) return Status::ok();
  LogOptions options;
  {
    std::lock_guard lock(options_mutex_);
    options = options_;
  }
  const TimestampMs now = clock_();
  {
    std::lock_guard lock(append_mutex_);
    if (closed_ || failed_) return Status::ok();
    const bool too_old = !active_->empty() && options.segment_age_ms > 0 && now - active_->created_ms() >= options.segment_age_ms;
    const bool all_expired = !active_->empty() && options.max_age_ms > 0 && active_->max_timestamp_ms() < now - options.max_age_ms;
    if (too_old || all_expired) {
      Status rolled = roll_locked(now);
      if (!rolled.is_ok()) {
        if (rolled.code() == ErrorCode::no_space) return Status(ErrorCode::no_space, label_ + ": " + rolled.message());
        return fail(rolled);
      }
    }
  }
  if (options.fsync == FsyncPolicy::interval && now - last_sync_ms_.load() >= static_cast<TimestampMs>(options.fsync_interval_ms)) {
    Offset target;
    {
      std::lock_guard lock(append_mutex_);
      target = next_offset_;
    }
    if (unsynced_from_.load() < target) {
      MSGSTORE_RETURN_IF_ERROR(sync());
      unsynced_from_ = target;
    }
  }
  MSGSTORE_RETURN_IF_ERROR(apply_retention(now));
  // Move the checkpoint forward once enough has been appended, bounding the next recovery.
  std::shared_ptr<Segment> segment;
  Offset next;
  std::uint64_t position;
  {
    std::lock_guard lock(append_mutex_);
    segment = active_;
    next = next_offset_;
    position = active_->readable_bytes();
  }
  bool far = false;
  {
    std::lock_guard lock(meta_mutex_);
    far = checkpoint_segment_ != segment->base_offset() || position - checkpoint_position_ >= checkpoint_distance_bytes;
  }
  if (far) {
    Status synced = segment->sync_data();
    if (!synced.is_ok()) {
      std::lock_guard lock(append_mutex_);
      return fail(synced);
    }
    MSGSTORE_RETURN_IF_ERROR(advance_checkpoint(segment->base_offset(), position, next));
  }
  return Status::ok();
}

Status PartitionLog::close() {
  std::shared_ptr<Segment> segment;
  Offset next;
  {
    std::lock_guard lock(append_mutex_);
    if (closed_) return Status::ok();
    closed_ = true;
    segment = active_;
    next = next_offset_;
  }
  // Whoever still waits in when_durable learns the outcome now: nothing will sync for it later.
  auto finish_waiters = [this](const Status& outcome) {
    std::unique_lock lock(sync_mutex_);
    complete_durable_waiters(lock, outcome.is_ok() ? Status(ErrorCode::closed, label_ + ": log closed before the data was synced") : outcome);
  };
  if (failed_) {  // recovery will sort out the tail
    finish_waiters(Status::ok());
    return Status::ok();
  }
  // Zeros ahead of the data (Segment::append) go first, so a clean close leaves no tail.
  Status synced = segment->trim_preallocation();
  if (synced.is_ok()) synced = segment->sync_data();
  if (!synced.is_ok()) {
    {
      std::lock_guard lock(append_mutex_);
      (void)fail(synced);
    }
    finish_waiters(synced);
    return synced;
  }
  {
    std::lock_guard lock(sync_mutex_);
    durable_offset_ = std::max(durable_offset_, next);
    synced_offset_hint_ = durable_offset_;
  }
  publish_high_watermark(next);
  finish_waiters(Status::ok());
  return advance_checkpoint(segment->base_offset(), segment->readable_bytes(), next);
}

Status PartitionLog::advance_checkpoint(Offset segment_base, std::uint64_t position, Offset next_offset) {
  // Moving the checkpoint forward only shortens the next recovery; on a full disk the older
  // checkpoint stays and is still true, so this is not an error (reads must keep working).
  Status written = write_checkpoint(segment_base, position, next_offset);
  if (written.code() == ErrorCode::no_space) return Status::ok();
  return written;
}

void PartitionLog::verify(VerifyReport& report) const {
  RecordDecoder decoder;
  for (const std::shared_ptr<Segment>& segment : segments_from(0)) {
    ++report.segments_checked;
    const std::string file_name = segment_file_path(segment->directory(), segment->base_offset(), SegmentFileKind::log).filename().string();
    Status loaded = const_cast<Segment&>(*segment).ensure_indexes();
    if (!loaded.is_ok()) report.problems.push_back(label_ + " " + file_name + ": " + loaded.message());
    for (const DamagedRange& range : segment->damaged_ranges()) {
      report.problems.push_back(label_ + " " + file_name + ": damaged bytes " + std::to_string(range.position_begin) +
                                " to " + std::to_string(range.position_end) + " (offsets " +
                                std::to_string(range.offset_begin) + " to " + std::to_string(range.offset_end) + ")");
    }
    // Every index entry must point at the start of a batch with that base offset.
    std::map<std::uint64_t, Offset> batch_starts;
    std::optional<BatchScanner> scanner_storage;
    scanner_storage.emplace(segment->log_file(), Segment::header_bytes(), segment->readable_bytes());
    Offset expected = segment->base_offset();
    while (true) {
      BatchScanner& scanner = *scanner_storage;
      const BatchScanner::Step step = scanner.next(/*verify_body=*/true);
      if (step == BatchScanner::Step::end_of_log) break;
      if (step != BatchScanner::Step::batch) {
        bool known = false;
        for (const DamagedRange& range : segment->damaged_ranges()) {
          if (scanner.position() == range.position_begin) {
            known = true;
            expected = range.offset_end;
            scanner_storage.emplace(segment->log_file(), range.position_end, segment->readable_bytes());
            break;
          }
        }
        if (known) continue;
        report.problems.push_back(label_ + " " + file_name + ": " +
                                  (step == BatchScanner::Step::io_error ? scanner.error().message()
                                                                        : "checksum or framing error at byte " + std::to_string(scanner.position()) +
                                                                              " (offsets from " + std::to_string(expected) + ")"));
        break;
      }
      const BatchHeader& header = scanner.header();
      if (header.base_offset < expected) {
        report.problems.push_back(label_ + " " + file_name + ": batch at byte " + std::to_string(scanner.position()) +
                                  " has offset " + std::to_string(header.base_offset) + ", expected at least " + std::to_string(expected));
      }
      Status decoded = decoder.decode(scanner.batch(), header, [&](const MessageView&) {
        ++report.messages_checked;
        return true;
      });
      if (!decoded.is_ok()) report.problems.push_back(label_ + " " + file_name + ": " + decoded.message());
      batch_starts.emplace(scanner.position(), header.base_offset);
      ++report.batches_checked;
      report.bytes_checked += header.batch_bytes;
      expected = header.next_offset();
    }
    if (expected < segment->next_offset() && segment->damaged_ranges().empty() && !segment->rewritten()) {
      report.problems.push_back(label_ + " " + file_name + ": ends at offset " + std::to_string(expected) +
                                " but should hold offsets up to " + std::to_string(segment->next_offset()));
    }
    for (const OffsetIndexEntry& entry : segment->offset_index_snapshot()) {
      ++report.index_entries_checked;
      auto found = batch_starts.find(entry.position);
      if (found == batch_starts.end() || found->second != segment->base_offset() + entry.relative_offset) {
        report.problems.push_back(label_ + " " + file_name + ": offset index entry for offset " +
                                  std::to_string(segment->base_offset() + entry.relative_offset) + " points at byte " +
                                  std::to_string(entry.position) + ", which is not that batch");
      }
    }
  }
}

}  // namespace msgstore::log
