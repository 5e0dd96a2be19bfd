// The segment rewrite (see segment_rewrite.h for the steps and the recovery rule), and the
// PartitionLog members that drive it.
#include "log/segment_rewrite.h"

#include <algorithm>
#include <cstring>

#include "base/assert.h"
#include "base/coding.h"
#include "base/crc32c.h"
#include "log/format.h"
#include "log/partition_log.h"

namespace msgstore::log {
namespace {

// Output is written in pieces of about this size.
constexpr std::size_t rewrite_write_bytes = 1 << 20;

// Builds one output batch from the kept records of one input batch. Records are re-encoded
// with their original offset (relative to the input's base offset) and a timestamp delta
// relative to the first kept record; their fields (subject to payload) are copied verbatim.
class KeptBatch {
 public:
  void start(const BatchHeader& input) {
    input_ = input;
    records_.clear();
    record_count_ = 0;
  }
  // `raw_fields` are the record's bytes after its two delta varints.
  void add(Offset offset, TimestampMs timestamp_ms, std::string_view raw_fields) {
    if (record_count_ == 0) {
      first_timestamp_ms_ = timestamp_ms;
      max_timestamp_ms_ = timestamp_ms;
    }
    max_timestamp_ms_ = std::max(max_timestamp_ms_, timestamp_ms);
    const std::uint64_t offset_delta = offset - input_.base_offset;
    const std::uint64_t timestamp_delta =
        base::zigzag_encode(static_cast<std::int64_t>(static_cast<std::uint64_t>(timestamp_ms) -
                                                      static_cast<std::uint64_t>(first_timestamp_ms_)));
    const std::size_t body =
        base::varint_length(offset_delta) + base::varint_length(timestamp_delta) + raw_fields.size();
    char prefix[3 * base::varint64_bytes_max];
    char* out = base::encode_varint(prefix, body);
    out = base::encode_varint(out, offset_delta);
    out = base::encode_varint(out, timestamp_delta);
    records_.append(prefix, static_cast<std::size_t>(out - prefix));
    records_.append(raw_fields);
    ++record_count_;
  }
  std::uint32_t record_count() const { return record_count_; }
  // Appends the finished batch (header with checksums, then records) to `out`.
  void finish_into(std::string& out) const {
    char header[format::batch_header_bytes] = {};
    base::store_u32(header, format::batch_magic);
    base::store_u16(header + 4, format::batch_version);
    base::store_u32(header + 8, static_cast<std::uint32_t>(format::batch_header_bytes + records_.size()));
    base::store_u32(header + 12, record_count_);
    base::store_u64(header + 16, input_.base_offset);
    base::store_u32(header + 24, input_.last_offset_delta);  // the batch keeps its offset range
    base::store_u32(header + 28, input_.synced_offset_lag);
    base::store_i64(header + 32, first_timestamp_ms_);
    base::store_i64(header + 40, max_timestamp_ms_);
    std::uint32_t body_crc = base::crc32c(records_.data(), records_.size());
    body_crc = base::crc32c_extend(body_crc, header + format::batch_body_crc_covered_begin,
                                   format::batch_body_crc_position - format::batch_body_crc_covered_begin);
    base::store_u32(header + format::batch_body_crc_position, body_crc);
    base::store_u32(header + format::batch_header_crc_position, base::crc32c(header, format::batch_header_crc_position));
    out.append(header, sizeof header);
    out.append(records_);
  }

 private:
  BatchHeader input_;
  std::string records_;
  std::uint32_t record_count_ = 0;
  TimestampMs first_timestamp_ms_ = 0;
  TimestampMs max_timestamp_ms_ = 0;
};

// The fields of the record at `cursor` (already validated by RecordDecoder): skips the length
// and the two delta varints. Returns the record's end.
const char* raw_record_fields(const char* cursor, const char* end, std::string_view& fields) {
  std::uint64_t record_bytes = 0;
  cursor = base::decode_varint(cursor, end, record_bytes);
  MS_ASSERT(cursor != nullptr);
  const char* record_end = cursor + record_bytes;
  std::uint64_t ignored = 0;
  cursor = base::decode_varint(cursor, record_end, ignored);
  MS_ASSERT(cursor != nullptr);
  cursor = base::decode_varint(cursor, record_end, ignored);
  MS_ASSERT(cursor != nullptr);
  fields = std::string_view(cursor, static_cast<std::size_t>(record_end - cursor));
  return record_end;
}

}  // namespace

std::filesystem::path segment_rewrite_path(const std::filesystem::path& directory, Offset base_offset) {
  std::filesystem::path path = segment_file_path(directory, base_offset, SegmentFileKind::log);
  path += ".rewrite.tmp";  // recovery removes every "*.tmp" in a partition directory
  return path;
}

Status write_rewritten_segment(FileSystem& file_system, const Segment& source, const RecordFilter& keep,
                               RewriteResult& result) {
  result.base_offset = source.base_offset();
  result.bytes_before = source.readable_bytes();
  std::string output = encode_segment_header(source.base_offset(), source.created_ms(), /*rewritten=*/true);
  std::unique_ptr<File> file;
  std::uint64_t written = 0;
  auto flush = [&]() -> Status {
    if (!file) {
      auto opened = file_system.open(segment_rewrite_path(source.directory(), source.base_offset()), OpenMode::create_truncate);
      if (!opened) return opened.status();
      file = std::move(*opened);
    }
    MSGSTORE_RETURN_IF_ERROR(file->write_at(written, output.data(), output.size()));
    written += output.size();
    output.clear();
    return Status::ok();
  };

  BatchScanner scanner(source.log_file(), Segment::header_bytes(), source.readable_bytes());
  RecordDecoder decoder;
  KeptBatch kept;
  while (true) {
    const BatchScanner::Step step = scanner.next(/*verify_body=*/true);
    if (step == BatchScanner::Step::end_of_log) break;
    if (step == BatchScanner::Step::io_error) return scanner.error();
    if (step == BatchScanner::Step::damaged) {
      // Never rewrite around damage: the damaged bytes would be dropped silently.
      return Status(ErrorCode::corruption, "segment " + std::to_string(source.base_offset()) + " is damaged at byte " +
                                               std::to_string(scanner.position()) + "; not rewritten");
    }
    const BatchHeader& header = scanner.header();
    kept.start(header);
    const char* cursor = scanner.batch() + format::batch_header_bytes;
    const char* end = scanner.batch() + header.batch_bytes;
    MSGSTORE_RETURN_IF_ERROR(decoder.decode(scanner.batch(), header, [&](const MessageView& message) {
      std::string_view fields;
      cursor = raw_record_fields(cursor, end, fields);
      if (keep(message)) {
        kept.add(message.offset, message.timestamp_ms, fields);
        ++result.records_kept;
      } else {
        ++result.records_dropped;
      }
      return true;
    }));
    if (kept.record_count() > 0) kept.finish_into(output);
    if (output.size() >= rewrite_write_bytes && result.records_dropped > 0) MSGSTORE_RETURN_IF_ERROR(flush());
  }
  if (result.records_dropped == 0) {
    if (file) {
      file.reset();
      return file_system.remove(segment_rewrite_path(source.directory(), source.base_offset()));
    }
    return Status::ok();
  }
  MSGSTORE_RETURN_IF_ERROR(flush());
  result.bytes_after = written;
  return file->sync();
}

// ---- PartitionLog: the rewrite and its hooks -------------------------------------------------

void PartitionLog::set_segment_listener(SegmentListener listener) {
  std::lock_guard lock(listener_mutex_);
  segment_listener_ = std::move(listener);
}

void PartitionLog::notify_segment_change(SegmentChange change, Offset base_offset) {
  SegmentListener listener;
  {
    std::lock_guard lock(listener_mutex_);
    listener = segment_listener_;
  }
  if (listener) listener(change, base_offset);
}

std::vector<SegmentSummary> PartitionLog::segment_summaries() const {
  Offset active_base;
  {
    std::lock_guard lock(append_mutex_);
    active_base = active_ ? active_->base_offset() : 0;
  }
  std::shared_lock lock(segments_mutex_);
  std::vector<SegmentSummary> summaries;
  for (auto it = segments_.begin(); it != segments_.end(); ++it) {
    auto following = std::next(it);
    SegmentSummary summary;
    summary.base_offset = it->first;
    summary.next_offset = following == segments_.end() ? it->second->next_offset() : following->first;
    summary.bytes = it->second->readable_bytes();
    summary.active = it->first >= active_base;
    summary.rewritten = it->second->rewritten();
    summaries.push_back(summary);
  }
  return summaries;
}

Status PartitionLog::seal_through(Offset offset) {
  std::lock_guard lock(append_mutex_);
  if (closed_) return Status(ErrorCode::closed, label_ + ": log is closed");
  if (failed_) return Status(ErrorCode::log_failed, label_ + ": " + failure_.message());
  if (active_->empty() || active_->base_offset() >= offset) return Status::ok();
  Status rolled = roll_locked(clock_());
  if (!rolled.is_ok() && rolled.code() != ErrorCode::no_space) return fail(rolled);
  return rolled;
}

Result<RewriteResult> PartitionLog::rewrite_segment(Offset base_offset, const RecordFilter& keep) {
  std::lock_guard structural(retention_mutex_);  // no retention pass or other rewrite meanwhile
  std::shared_ptr<Segment> source;
  Offset next_base = 0;
  {
    std::lock_guard append(append_mutex_);
    if (closed_) return Status(ErrorCode::closed, label_ + ": log is closed");
    if (base_offset >= active_->base_offset()) {
      return Status(ErrorCode::invalid_argument, label_ + ": segment " + std::to_string(base_offset) +
                                                     " is the active segment; roll it first (seal_through)");
    }
    std::shared_lock lock(segments_mutex_);
    auto found = segments_.find(base_offset);
    if (found == segments_.end()) {
      return Status(ErrorCode::offset_out_of_range, label_ + ": no segment starts at " + std::to_string(base_offset));
    }
    source = found->second;
    next_base = std::next(found)->first;
  }
  {
    // Recovery scans the checkpoint's segment as a tail and expects its checkpointed bytes: a
    // segment is rewritten only once the checkpoint has moved past it (a roll whose checkpoint
    // write met a full disk leaves it behind until maintenance moves it).
    std::lock_guard lock(meta_mutex_);
    if (base_offset >= checkpoint_segment_) {
      return Status(ErrorCode::no_space, label_ + ": segment " + std::to_string(base_offset) +
                                             " is not behind the checkpoint yet (it could not be written); retry later");
    }
  }
  if (!source->damaged_ranges().empty()) {
    return Status(ErrorCode::corruption, label_ + ": segment " + std::to_string(base_offset) + " holds damaged data; not rewritten");
  }
  // Load the old segment's indexes now: once the files are replaced it must never read them.
  MSGSTORE_RETURN_IF_ERROR(source->ensure_indexes());
  const std::shared_ptr<const std::vector<Offset>> erased = erased_offsets();
  RewriteResult result;
  auto filter = [&](const MessageView& message) {
    if (std::binary_search(erased->begin(), erased->end(), message.offset)) {
      result.dropped_erased.push_back(message.offset);
      return false;
    }
    return keep(message);
  };
  // Step 1: the new segment, written and synced under a temporary name.
  Status written = write_rewritten_segment(file_system_, *source, filter, result);
  if (!written.is_ok()) {
    (void)file_system_.remove(segment_rewrite_path(directory_, base_offset));
    return Status(written.code(), label_ + ": rewrite of segment " + std::to_string(base_offset) + ": " + written.message());
  }
  // Every listed offset of this segment's range is now known to be absent from the new
  // file (or from the old one, if nothing was dropped, e.g. after a crash between the rename
  // and the retirement): those entries are retired once the file is durable.
  std::vector<Offset> retired(std::lower_bound(erased->begin(), erased->end(), base_offset),
                              std::lower_bound(erased->begin(), erased->end(), next_base));
  if (result.records_dropped == 0) {
    MSGSTORE_RETURN_IF_ERROR(retire_erased_offsets(retired));
    return result;
  }

  // Step 2: the old segment's derived index files go first, so no crash can pair them with
  // the new log. The old Segment object keeps its loaded indexes and never writes files again.
  source->retire();
  for (auto kind : {SegmentFileKind::offset_index, SegmentFileKind::time_index}) {
    MSGSTORE_RETURN_IF_ERROR(file_system_.remove(segment_file_path(directory_, base_offset, kind)));
  }
  if (observer_) MSGSTORE_RETURN_IF_ERROR(observer_->on_segment_rewriting(base_offset));  // the message index file too
  MSGSTORE_RETURN_IF_ERROR(file_system_.sync_directory(directory_));
  // Step 3, the commit point: the new log replaces the old in one rename, made durable.
  MSGSTORE_RETURN_IF_ERROR(file_system_.rename(segment_rewrite_path(directory_, base_offset),
                                               segment_file_path(directory_, base_offset, SegmentFileKind::log)));
  MSGSTORE_RETURN_IF_ERROR(file_system_.sync_directory(directory_));
  // Step 4: open it as recovery would (its index files are missing, so they are rebuilt).
  auto replacement = Segment::open(file_system_, directory_, base_offset);
  if (!replacement) return replacement.status();
  (void)(*replacement)->load_seal_summary(next_base);  // fails (no index yet) but records the end
  MSGSTORE_RETURN_IF_ERROR((*replacement)->ensure_indexes());
  (void)(*replacement)->sync_sealed();
  if (!(*replacement)->damaged_ranges().empty()) {
    return Status(ErrorCode::corruption, label_ + ": rewritten segment " + std::to_string(base_offset) + " does not read back");
  }
  // Step 5: readers from now on see the new segment; those holding the old one finish on it.
  {
    std::unique_lock lock(segments_mutex_);
    segments_[base_offset] = *replacement;
  }
  result.replaced = true;
  MSGSTORE_RETURN_IF_ERROR(retire_erased_offsets(retired));
  notify_segment_change(SegmentChange::replaced, base_offset);
  return result;
}

}  // namespace msgstore::log
