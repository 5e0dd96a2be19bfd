// One partition's log: an ordered set of segments, the append path with group commit, the
// read path with checksum verification, recovery on open, and retention.
//
// Durability (docs/ARCHITECTURE.md, "Append path"): an append writes its batch with one
// pwrite under the append lock. With FsyncPolicy::always the appender then waits until an
// fdatasync that started after its write has returned; one appender at a time runs the sync
// and every appender whose batch it covers returns with it (group commit). Or, without a
// blocked thread: append(..., &durable_end) returns after the write and when_durable() runs a
// completion once a sync pass (log/worker_threads.h) covered the batch. Readers only see
// offsets below the high watermark, which under `always` is the durable end, so nothing a
// reader saw can vanish at a power loss.
//
// Thread safety: all public methods are safe to call concurrently.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "log/record_batch.h"
#include "log/segment.h"
#include "log/segment_rewrite.h"
#include "log/worker_threads.h"
#include "msgstore/file_system.h"
#include "msgstore/store.h"
#include "msgstore/stream.h"

namespace msgstore::log {

struct LogOptions {
  FsyncPolicy fsync = FsyncPolicy::always;
  std::uint32_t fsync_interval_ms = 0;
  std::uint64_t segment_bytes = limits::segment_bytes_default;
  std::int64_t segment_age_ms = limits::segment_age_ms_default;
  std::int64_t max_age_ms = 0;
  std::uint64_t max_bytes = 0;
  std::uint64_t max_messages = 0;
  // fsync=always only: extend the active segment with this many zero bytes ahead of the data
  // (Segment::append), so most fdatasyncs rewrite blocks the file already has; at most
  // segment_bytes at a time. 0 = off (the default here; the Store turns it on,
  // StoreOptions::preallocation_bytes).
  std::uint64_t preallocate_bytes = 0;
};

// What recovery found and did, for logs, the CLI and tests.
struct RecoveryReport {
  std::uint64_t segments = 0;
  std::uint64_t bytes_scanned = 0;          // bytes read by the tail scan and index rebuilds
  std::uint64_t torn_bytes_truncated = 0;   // a torn tail cut off
  std::uint64_t indexes_rebuilt = 0;
  std::vector<std::string> corruption;      // damaged ranges kept and never served
};

// Derived data kept beside the log (the message indexes of src/index) follows the log through
// these calls. Callbacks must not fail the log and must not call back into it.
class LogObserver {
 public:
  virtual ~LogObserver() = default;
  // Under the append lock, after `batch` was written at byte `position` of the active segment.
  virtual void on_batch_appended(const Segment& segment, std::uint64_t position, std::string_view batch,
                                 const BatchHeader& header) = 0;
  // Under the append lock, after `segment` was sealed and synced, before the next one starts.
  virtual void on_segment_sealed(const Segment& segment) = 0;
  // After retention deleted the segment's files.
  virtual void on_segment_removed(Offset segment_base) = 0;
  // During a segment rewrite (compaction, erase), after the old segment was retired and
  // before the directory sync that precedes the commit rename: derived files describing the
  // old bytes must go now (the rewrite syncs the directory next), so no crash leaves them
  // beside the new log, and erased content leaves no trace in them.
  // An error stops the rewrite before its commit point.
  virtual Status on_segment_rewriting(Offset segment_base) = 0;
};
// A check run under the partition's append lock, with the offset the batch would start at,
// just before it is written (conditional append: OutgoingMessage::expected_offset). A non-ok
// Status rejects the append and nothing is written. It must be quick and must not call this log.
using AppendPrecondition = std::function<Status(Offset next_offset)>;

// Whether PartitionLog::scan passes messages whose time to live has passed.
enum class ScanExpired : bool { skip, include };

// The partition's current clock; injectable for retention tests.
using Clock = std::function<TimestampMs()>;
TimestampMs system_clock_ms();

// Called once the offsets a when_durable() call waits for are durable (ok), or never will be
// (log_failed after a sync error, closed). Runs on a sync thread or inline; must be quick.
using DurableCallback = std::function<void(Status)>;

class PartitionLog : public std::enable_shared_from_this<PartitionLog>, public BackgroundJob {
 public:
  // `label` names the partition in messages ("orders/0").
  static Result<std::unique_ptr<PartitionLog>> open(FileSystem& file_system, std::filesystem::path directory,
                                                    std::string label, LogOptions options, Clock clock,
                                                    RecoveryReport* report);
  ~PartitionLog();

  void set_options(const LogOptions& options);
  // Set once, right after open and before the log is shared with other threads.
  void set_observer(std::shared_ptr<LogObserver> observer) { observer_ = std::move(observer); }
  // The segments, oldest first: a snapshot; a segment stays readable while referenced.
  std::vector<std::shared_ptr<Segment>> segments_snapshot() const { return segments_from(0); }
  // Called (outside any lock of this log) whenever the high watermark advances.
  void set_data_listener(std::function<void()> listener);

  // Appends a batch built by the caller; returns the base offset once the fsync policy is met.
  // `precondition`, if set, is checked atomically with the append (see AppendPrecondition):
  // of concurrent appenders expecting the same next offset, exactly one passes.
  // With `durable_end` (asynchronous durability), an fsync=always append does not wait: it
  // returns once the batch is written, sets *durable_end to the end of the batch, and the
  // caller must not acknowledge it before when_durable(*durable_end, ...) reports ok. Under
  // other policies it sets *durable_end to 0 (nothing to wait for).
  Result<Offset> append(BatchBuilder& builder, const AppendPrecondition& precondition = {},
                        Offset* durable_end = nullptr);

  // Calls `done` once every offset below `end` is durable and readable (high watermark
  // published), or with an error once it never will be. Inline when already decided;
  // otherwise after the next sync pass, run by the WorkerThreads set with set_sync_threads (all
  // waiters registered before a pass starts share its one fdatasync), or on this thread when
  // none are set.
  void when_durable(Offset end, DurableCallback done);
  // Set once, right after open and before the log is shared (the log must be owned by a
  // std::shared_ptr then). Held weakly: the owner (the store) keeps the threads alive, and a
  // log a sync thread releases last never destroys them on that thread. Once they are gone,
  // when_durable syncs on the calling thread.
  void set_sync_threads(const std::shared_ptr<WorkerThreads>& threads) { sync_threads_ = threads; }
  // One sync pass for the registered when_durable callers (run_background_job, on a sync thread).
  void run_sync_pass();
  void run_background_job() override { run_sync_pass(); }

  // Calls `visit` for each message from `from` until it returns false, `max_messages` or
  // roughly `max_bytes` are reached, or the high watermark. Returns the next offset to read.
  // Errors: offset_out_of_range, corruption (damaged data is never passed to `visit`).
  // Messages whose time to live (Msgstore-TTL-Ms, log/message_policy.h) has passed by this
  // log's clock are skipped like gaps: not visited, not counted, and the returned offset moves
  // past them. ScanExpired::include visits them too (rebuilding the dedup table).
  Result<Offset> scan(Offset from, std::size_t max_messages, std::size_t max_bytes,
                      const std::function<bool(const MessageView&)>& visit,
                      ScanExpired expired = ScanExpired::skip) const;
  // The first offset whose timestamp is >= time_ms (the high watermark if none).
  Result<Offset> offset_for_time(TimestampMs time_ms) const;

  Offset log_start_offset() const { return log_start_offset_.load(std::memory_order_acquire); }
  Offset high_watermark() const { return high_watermark_.load(std::memory_order_acquire); }
  // Everything below this offset is on stable storage (synced, or in a sealed segment). Under
  // fsync=interval/never it may lag the high watermark: a power loss can take what lies between.
  Offset durable_offset() const { return synced_offset_hint_.load(std::memory_order_acquire); }
  PartitionInfo info(std::uint32_t partition) const;

  // Maintenance: retention, age-based roll, interval fsync, checkpoint. Called periodically.
  Status maintain();
  // Syncs now (interval policy, shutdown).
  Status sync();
  // Checks every checksum and every index entry against the log.
  void verify(VerifyReport& report) const;
  // Syncs, writes the checkpoint and refuses further appends.
  Status close();

  const std::filesystem::path& directory() const { return directory_; }

  // ---- Erase list (log/erase_list.h): offsets reads skip until a rewrite removes them ----
  // Adds `offsets` (sorted, unique) to the list, fsyncs it, then applies it to reads.
  Status add_erased_offsets(const std::vector<Offset>& offsets);
  // The current list (sorted); never null.
  std::shared_ptr<const std::vector<Offset>> erased_offsets() const;

  // ---- Segment rewrite (implemented in log/segment_rewrite.cc) ----
  // Notified after a segment was replaced by a rewrite or removed (retention), with the
  // segment's base offset, holding only retention_mutex_ (so calls never overlap): derived per-segment data (indexes kept by
  // other modules) must be rebuilt or dropped for it.
  void set_segment_listener(SegmentListener listener);
  std::vector<SegmentSummary> segment_summaries() const;
  // Rolls the active segment if it holds any offset below `offset`, so that all of them are
  // in sealed segments that a rewrite may replace.
  Status seal_through(Offset offset);
  // Replaces sealed segment `base_offset` by one holding the records `keep` accepts (erased
  // offsets are always dropped), at their original offsets, by the crash-safe steps in
  // docs/formats/segment-log.md ("Segment rewrite"). Erase-list entries the rewrite removed
  // are retired once the new segment is durable. No-op (replaced = false) if nothing is dropped.
  Result<RewriteResult> rewrite_segment(Offset base_offset, const RecordFilter& keep);

 private:
  PartitionLog(FileSystem& file_system, std::filesystem::path directory, std::string label, LogOptions options, Clock clock);
  Status recover(RecoveryReport& report);
  Status roll_locked(TimestampMs now);  // requires append_mutex_
  // Writes partition.meta (tmp, fsync, rename, directory fsync). With `new_log_start` (retention)
  // it records that log start and only then makes it the one readers see, under meta_mutex_:
  // the in-memory log start never runs ahead of the durable one.
  Status write_checkpoint(Offset segment_base, std::uint64_t position, Offset next_offset,
                          std::optional<Offset> new_log_start = std::nullopt);
  // write_checkpoint where an older checkpoint may stay (open, close, maintenance): ENOSPC is ok.
  Status advance_checkpoint(Offset segment_base, std::uint64_t position, Offset next_offset);
  Status wait_durable(Offset target);
  // The fdatasync step shared by wait_durable and run_sync_pass: with sync_in_progress_ set by
  // the caller and sync_mutex_ held in `lock` (released during the sync), syncs everything
  // written so far and advances durable_offset_, or records the sticky sync failure.
  Status sync_written_locked(std::unique_lock<std::mutex>& lock);
  // wait_durable's and sync()'s turn as the syncer: with sync_mutex_ held in `lock` and no sync
  // in progress, sets sync_in_progress_, runs sync_written_locked and publishes the new high
  // watermark with the mutex released. Ok: returns with `lock` released. A failure (log_failed,
  // sticky) returns with it held.
  Status sync_as_syncer(std::unique_lock<std::mutex>& lock);
  // Completes the when_durable callers `durable_offset_` or a failure decides (`undecided`, if
  // not ok, fails the rest: the log is closing). Requires
  // sync_mutex_ held in `lock`; releases it to run the callbacks.
  void complete_durable_waiters(std::unique_lock<std::mutex>& lock, const Status& undecided);
  void publish_high_watermark(Offset offset);
  Status fail(Status status);
  Status apply_retention(TimestampMs now);
  // The oldest sealed segments may hold only messages whose time to live has passed:
  // retention may move the log start up to the returned offset (the base of the first
  // segment that does not qualify). Requires retention_mutex_.
  Offset ttl_retention_start_locked(TimestampMs now);
  std::vector<std::shared_ptr<Segment>> segments_from(Offset offset) const;
  Status damaged_error(const Segment& segment, std::uint64_t position) const;

  FileSystem& file_system_;
  const std::filesystem::path directory_;
  const std::string label_;
  Clock clock_;

  mutable std::mutex options_mutex_;
  LogOptions options_;

  // Segment list: readers take it shared, roll and retention exclusive.
  mutable std::shared_mutex segments_mutex_;
  std::map<Offset, std::shared_ptr<Segment>> segments_;

  // Append path.
  mutable std::mutex append_mutex_;
  std::shared_ptr<Segment> active_;
  Offset next_offset_ = 0;
  bool closed_ = false;
  std::atomic<bool> failed_{false};
  Status failure_;  // guarded by append_mutex_; the first write or sync error, sticky

  // Group commit.
  std::mutex sync_mutex_;
  std::condition_variable sync_finished_;
  bool sync_in_progress_ = false;
  Offset durable_offset_ = 0;       // guarded by sync_mutex_
  Status sync_failure_;             // guarded by sync_mutex_
  std::string stop_reason_;         // guarded by sync_mutex_: failure_'s message, for durable waiters
  std::atomic<TimestampMs> last_sync_ms_{0};
  // Asynchronous durability (when_durable).
  struct DurableWaiter {
    Offset end;
    DurableCallback done;
  };
  std::vector<DurableWaiter> durable_waiters_;  // guarded by sync_mutex_
  bool sync_pass_scheduled_ = false;            // a pass is queued or running; guarded by sync_mutex_
  std::weak_ptr<WorkerThreads> sync_threads_;     // set before the log is shared
  std::atomic<Offset> unsynced_from_{0};

  std::atomic<Offset> high_watermark_{0};
  // A lock-free copy of durable_offset_ for the append path, stamped into each batch header.
  std::atomic<Offset> synced_offset_hint_{0};
  std::atomic<Offset> log_start_offset_{0};

  // Serialises retention passes and segment rewrites (maintenance may be called from several
  // threads): two passes must not pick the same segments, and a rewrite's segment must not
  // vanish under it.
  // Taken with no other lock held.
  std::mutex retention_mutex_;
  // Per sealed segment (by base offset): when its last message expires by its TTL, or empty
  // if one has no TTL. Sealed segments do not change, so each is read once. Guarded by
  // retention_mutex_.
  std::map<Offset, std::optional<TimestampMs>> segment_expiry_ms_;

  // Checkpoint (partition.meta), serialised by meta_mutex_.
  std::mutex meta_mutex_;
  Offset checkpoint_segment_ = 0;
  std::uint64_t checkpoint_position_ = 0;
  Offset checkpoint_next_offset_ = 0;

  std::mutex listener_mutex_;
  std::function<void()> data_listener_;
  SegmentListener segment_listener_;  // guarded by listener_mutex_
  void notify_segment_change(SegmentChange change, Offset base_offset);

  // Erase list: erase_list_write_mutex_ serialises file updates (taken before erased_mutex_);
  // erased_mutex_ guards the pointer readers copy.
  Status load_erase_list();
  Status write_erase_list(std::shared_ptr<const std::vector<Offset>> offsets);
  Status retire_erased_offsets(const std::vector<Offset>& retired);
  std::mutex erase_list_write_mutex_;
  mutable std::mutex erased_mutex_;
  std::shared_ptr<const std::vector<Offset>> erased_ = std::make_shared<const std::vector<Offset>>();
  std::shared_ptr<LogObserver> observer_;  // set before the log is shared; then read-only
};

}  // namespace msgstore::log
