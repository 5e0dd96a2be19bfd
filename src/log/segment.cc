#include "log/segment.h"

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>

#include "base/assert.h"
#include "base/coding.h"
#include "base/crc32c.h"
#include "log/format.h"
#include "log/sync_latency.h"
#include "msgstore/limits.h"

namespace msgstore::log {
namespace {

constexpr std::size_t scanner_buffer_bytes = 256 * 1024;

std::string index_header(std::uint32_t magic, Offset base_offset) {
  std::string header(format::index_header_bytes, '\0');
  base::store_u32(header.data(), magic);
  base::store_u16(header.data() + 4, format::index_version);
  base::store_u64(header.data() + 8, base_offset);
  base::store_u32(header.data() + format::index_header_crc_position,
                  base::crc32c(header.data(), format::index_header_crc_position));
  return header;
}

void encode_offset_entry(char* out, const OffsetIndexEntry& entry) {
  base::store_u32(out, entry.relative_offset);
  base::store_u32(out + 4, entry.position);
  base::store_u32(out + 8, 0);
  base::store_u32(out + format::index_entry_crc_position, base::crc32c(out, format::index_entry_crc_position));
}

void encode_time_entry(char* out, const TimeIndexEntry& entry) {
  base::store_i64(out, entry.max_timestamp_ms);
  base::store_u32(out + 8, entry.relative_offset);
  base::store_u32(out + format::index_entry_crc_position, base::crc32c(out, format::index_entry_crc_position));
}

bool entry_checksum_ok(const char* entry) {
  return base::crc32c(entry, format::index_entry_crc_position) == base::load_u32(entry + format::index_entry_crc_position);
}

// Reads an index file and checks its header; returns the entry bytes.
Result<std::string> read_index_file(FileSystem& file_system, const std::filesystem::path& path, std::uint32_t magic,
                                    Offset base_offset) {
  auto file = file_system.open(path, OpenMode::read_only);
  if (!file) return Status(ErrorCode::corruption, "index missing: " + path.string());
  auto size = (*file)->size();
  if (!size) return size.status();
  std::string content(*size, '\0');
  auto got = (*file)->read_at(0, content.data(), content.size());
  if (!got) return got.status();
  content.resize(*got);
  if (content.size() < format::index_header_bytes) return Status(ErrorCode::corruption, "index too short: " + path.string());
  const char* header = content.data();
  if (base::load_u32(header) != magic || base::load_u16(header + 4) != format::index_version ||
      base::load_u64(header + 8) != base_offset ||
      base::crc32c(header, format::index_header_crc_position) != base::load_u32(header + format::index_header_crc_position)) {
    return Status(ErrorCode::corruption, "index header damaged: " + path.string());
  }
  content.erase(0, format::index_header_bytes);
  // A torn final entry is dropped; the scan that follows re-derives it.
  content.resize(content.size() - content.size() % format::index_entry_bytes);
  return content;
}

}  // namespace

std::filesystem::path segment_file_path(const std::filesystem::path& directory, Offset base_offset, SegmentFileKind kind) {
  char name[64];
  const char* suffix = kind == SegmentFileKind::log            ? "log"
                       : kind == SegmentFileKind::offset_index ? "offset_index"
                                                                : "time_index";
  std::snprintf(name, sizeof name, "%020" PRIu64 ".v%u.%s", base_offset, unsigned{format::segment_version}, suffix);
  return directory / name;
}

std::string encode_segment_header(Offset base_offset, TimestampMs created_ms, bool rewritten) {
  std::string header(format::segment_header_bytes, '\0');
  base::store_u32(header.data(), format::segment_magic);
  base::store_u16(header.data() + 4, rewritten ? format::segment_version_rewritten : format::segment_version);
  base::store_u16(header.data() + 6, rewritten ? format::segment_flag_rewritten : 0);
  base::store_u64(header.data() + 8, base_offset);
  base::store_i64(header.data() + 16, created_ms);
  base::store_u32(header.data() + format::segment_header_crc_position,
                  base::crc32c(header.data(), format::segment_header_crc_position));
  return header;
}

std::optional<Offset> parse_segment_log_name(const std::string& name) {
  char expected_suffix[16];
  std::snprintf(expected_suffix, sizeof expected_suffix, ".v%u.log", unsigned{format::segment_version});
  return parse_segment_file_name(name, expected_suffix);
}

std::optional<Offset> parse_segment_file_name(const std::string& name, std::string_view suffix) {
  if (name.size() != 20 + suffix.size() || name.compare(20, std::string::npos, suffix) != 0) return std::nullopt;
  Offset value = 0;
  for (std::size_t i = 0; i < 20; ++i) {
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
    value = value * 10 + static_cast<Offset>(name[i] - '0');
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
BatchScanner::BatchScanner(const File& file, std::uint64_t position, std::uint64_t end_position)
    : file_(file), end_position_(end_position), next_position_(position) {}

bool BatchScanner::ensure(std::uint64_t position, std::size_t bytes) {
  if (position >= buffer_position_ && position + bytes <= buffer_position_ + buffer_bytes_) return true;
  std::size_t want = std::max(bytes, scanner_buffer_bytes);
  if (position + want > end_position_) want = static_cast<std::size_t>(end_position_ - position);
  if (want < bytes) want = bytes;  // the caller checked bytes fit before end_position
  if (buffer_capacity_ < want) {
    buffer_.reset(new char[want]);
    buffer_capacity_ = want;
  }
  auto got = file_.read_at(position, buffer_.get(), want);
  if (!got) {
    error_ = got.status();
    return false;
  }
  buffer_position_ = position;
  buffer_bytes_ = *got;
  return buffer_bytes_ >= bytes;
}

BatchScanner::Step BatchScanner::next(bool verify_body) {
  position_ = next_position_;
  if (position_ >= end_position_) return Step::end_of_log;
  const std::uint64_t available = end_position_ - position_;
  const std::size_t header_bytes =
      static_cast<std::size_t>(std::min<std::uint64_t>(available, format::batch_header_bytes));
  if (!ensure(position_, header_bytes)) return error_.is_ok() ? Step::damaged : Step::io_error;
  const char* data = buffer_.get() + (position_ - buffer_position_);
  switch (check_batch_header(data, static_cast<std::size_t>(std::min<std::uint64_t>(available, UINT32_MAX)), header_)) {
    case HeaderCheck::end_of_log: {
      // Zeros all the way? Only then is it the end; zeros followed by data are damage.
      return Step::end_of_log;
    }
    case HeaderCheck::damaged: return Step::damaged;
    case HeaderCheck::valid: break;
  }
  if (!ensure(position_, header_.batch_bytes)) return error_.is_ok() ? Step::damaged : Step::io_error;
  batch_ = buffer_.get() + (position_ - buffer_position_);
  if (verify_body && !check_batch_body(batch_, header_)) return Step::damaged;
  next_position_ = position_ + header_.batch_bytes;
  return Step::batch;
}

// ---------------------------------------------------------------------------------------------
std::uint64_t Segment::header_bytes() { return format::segment_header_bytes; }

Segment::Segment(FileSystem& file_system, std::filesystem::path directory, Offset base_offset,
                 std::unique_ptr<File> log_file, TimestampMs created_ms)
    : file_system_(file_system),
      directory_(std::move(directory)),
      base_offset_(base_offset),
      log_file_(std::move(log_file)),
      created_ms_(created_ms),
      size_bytes_(format::segment_header_bytes),
      next_offset_(base_offset) {}

Result<std::shared_ptr<Segment>> Segment::create(FileSystem& file_system, const std::filesystem::path& directory,
                                                 Offset base_offset, TimestampMs created_ms) {
  const auto path = segment_file_path(directory, base_offset, SegmentFileKind::log);
  // On failure (ENOSPC, typically) leave no half-made segment behind: the caller may go on
  // appending to the previous segment, and a stale segment file starting at this base would
  // make the next recovery reuse those offsets.
  auto abandon = [&](const Status& status) -> Status {
    Status removed = Status::ok();
    for (auto kind : {SegmentFileKind::log, SegmentFileKind::offset_index, SegmentFileKind::time_index}) {
      Status one = file_system.remove(segment_file_path(directory, base_offset, kind));
      if (removed.is_ok()) removed = one;
    }
    if (removed.is_ok()) removed = file_system.sync_directory(directory);
    if (!removed.is_ok()) {
      return Status(ErrorCode::io_error, status.message() + "; and removing the new segment failed: " + removed.message());
    }
    return status;
  };
  auto file = file_system.open(path, OpenMode::create_truncate);
  if (!file) return abandon(file.status());
  const std::string header = encode_segment_header(base_offset, created_ms, /*rewritten=*/false);
  Status written = (*file)->write_at(0, header.data(), header.size());
  if (written.is_ok()) written = (*file)->sync_data();
  if (!written.is_ok()) return abandon(written);
  std::shared_ptr<Segment> segment(new Segment(file_system, directory, base_offset, std::move(*file), created_ms));
  segment->indexes_loaded_ = true;
  Status indexed = segment->write_index_files();
  if (!indexed.is_ok()) {
    segment.reset();  // closes the files before they are removed
    return abandon(indexed);
  }
  return segment;
}

Result<std::shared_ptr<Segment>> Segment::open(FileSystem& file_system, const std::filesystem::path& directory,
                                               Offset base_offset) {
  const auto path = segment_file_path(directory, base_offset, SegmentFileKind::log);
  auto file = file_system.open(path, OpenMode::read_write);
  if (!file) return file.status();
  char header[format::segment_header_bytes] = {};
  auto got = (*file)->read_at(0, header, sizeof header);
  if (!got) return got.status();
  auto size = (*file)->size();
  if (!size) return size.status();
  if (*got < sizeof header || base::load_u32(header) != format::segment_magic ||
      base::crc32c(header, format::segment_header_crc_position) != base::load_u32(header + format::segment_header_crc_position) ||
      base::load_u64(header + 8) != base_offset) {
    return Status(ErrorCode::corruption, "segment header damaged: " + path.string());
  }
  const std::uint16_t version = base::load_u16(header + 4);
  const std::uint16_t flags = base::load_u16(header + 6);
  const bool rewritten = version == format::segment_version_rewritten && flags == format::segment_flag_rewritten;
  if (!(version == format::segment_version && flags == 0) && !rewritten) {
    return Status(ErrorCode::unsupported_format, "segment " + path.string() + " has format version " +
                                                     std::to_string(version) + " flags " + std::to_string(flags));
  }
  std::shared_ptr<Segment> segment(
      new Segment(file_system, directory, base_offset, std::move(*file), base::load_i64(header + 16)));
  segment->size_bytes_ = *size;
  segment->rewritten_ = rewritten;
  return segment;
}

Status Segment::load_indexes(std::uint64_t valid_bytes) {
  auto offset_bytes = read_index_file(file_system_, segment_file_path(directory_, base_offset_, SegmentFileKind::offset_index),
                                      format::offset_index_magic, base_offset_);
  if (!offset_bytes) return offset_bytes.status();
  auto time_bytes = read_index_file(file_system_, segment_file_path(directory_, base_offset_, SegmentFileKind::time_index),
                                    format::time_index_magic, base_offset_);
  if (!time_bytes) return time_bytes.status();

  std::vector<OffsetIndexEntry> offsets;
  for (std::size_t at = 0; at < offset_bytes->size(); at += format::index_entry_bytes) {
    const char* entry = offset_bytes->data() + at;
    if (!entry_checksum_ok(entry)) return Status(ErrorCode::corruption, "offset index entry checksum");
    OffsetIndexEntry decoded{base::load_u32(entry), base::load_u32(entry + 4)};
    if (decoded.position >= valid_bytes) break;  // describes an unsynced tail: rescanned
    if (decoded.position < format::segment_header_bytes ||
        (!offsets.empty() && (decoded.relative_offset <= offsets.back().relative_offset ||
                              decoded.position <= offsets.back().position))) {
      return Status(ErrorCode::corruption, "offset index entries out of order");
    }
    offsets.push_back(decoded);
  }
  std::vector<TimeIndexEntry> times;
  for (std::size_t at = 0; at < time_bytes->size(); at += format::index_entry_bytes) {
    const char* entry = time_bytes->data() + at;
    if (!entry_checksum_ok(entry)) return Status(ErrorCode::corruption, "time index entry checksum");
    TimeIndexEntry decoded{base::load_i64(entry), base::load_u32(entry + 8)};
    if (!times.empty() && (decoded.relative_offset < times.back().relative_offset ||
                           decoded.max_timestamp_ms < times.back().max_timestamp_ms)) {
      return Status(ErrorCode::corruption, "time index entries out of order");
    }
    times.push_back(decoded);
  }
  // Time entries pair with offset entries; a sealed segment has one more, final entry.
  const Offset known_next = next_offset_.load();
  const bool sealed = valid_bytes >= readable_bytes() && known_next > base_offset_;
  if (sealed) {
    // Its max timestamp is the segment's: without it the max would be understated and time
    // lookups would skip the segment. Missing (or pointing elsewhere): rebuild.
    const std::uint32_t last_relative = static_cast<std::uint32_t>(known_next - 1 - base_offset_);
    if (times.empty() || times.back().relative_offset != last_relative ||
        (!offsets.empty() && offsets.back().relative_offset > last_relative)) {
      return Status(ErrorCode::corruption, "time index has no final entry");
    }
  } else {
    // A tail (its end is not known yet): keep only what the kept offset entries, and so the
    // valid bytes, cover. Entries beyond describe bytes that are gone or about to be rescanned.
    const std::uint32_t limit = offsets.empty() ? 0 : offsets.back().relative_offset;
    while (!times.empty() && (offsets.empty() || times.back().relative_offset > limit)) times.pop_back();
  }
  std::unique_lock lock(index_mutex_);
  offset_index_ = std::move(offsets);
  time_index_ = std::move(times);
  any_indexed_ = !offset_index_.empty();
  last_indexed_position_ = any_indexed_ ? offset_index_.back().position : 0;
  if (!time_index_.empty()) max_timestamp_ms_ = time_index_.back().max_timestamp_ms;
  indexes_loaded_ = true;
  return Status::ok();
}

Status Segment::load_seal_summary(Offset next_offset) {
  next_offset_ = next_offset;
  const auto path = segment_file_path(directory_, base_offset_, SegmentFileKind::time_index);
  auto file = file_system_.open(path, OpenMode::read_only);
  if (!file) return Status(ErrorCode::corruption, "time index missing: " + path.string());
  auto size = (*file)->size();
  if (!size) return size.status();
  char header[format::index_header_bytes];
  auto got = (*file)->read_at(0, header, sizeof header);
  if (!got) return got.status();
  if (*got < sizeof header || base::load_u32(header) != format::time_index_magic ||
      base::load_u64(header + 8) != base_offset_ ||
      base::crc32c(header, format::index_header_crc_position) != base::load_u32(header + format::index_header_crc_position) ||
      (*size - format::index_header_bytes) % format::index_entry_bytes != 0) {
    return Status(ErrorCode::corruption, "time index damaged: " + path.string());
  }
  if (*size == format::index_header_bytes) {
    if (next_offset != base_offset_) return Status(ErrorCode::corruption, "time index empty: " + path.string());
    return Status::ok();
  }
  char entry[format::index_entry_bytes];
  got = (*file)->read_at(*size - format::index_entry_bytes, entry, sizeof entry);
  if (!got) return got.status();
  if (*got != sizeof entry || !entry_checksum_ok(entry) || next_offset <= base_offset_ ||
      base::load_u32(entry + 8) != next_offset - 1 - base_offset_) {
    return Status(ErrorCode::corruption, "time index has no final entry: " + path.string());
  }
  max_timestamp_ms_ = base::load_i64(entry);
  return Status::ok();
}

void Segment::reset_indexes() {
  std::unique_lock lock(index_mutex_);
  offset_index_.clear();
  time_index_.clear();
  any_indexed_ = false;
  last_indexed_position_ = 0;
  max_timestamp_ms_ = no_timestamp;
  first_timestamp_ms_ = no_timestamp;
  next_offset_ = base_offset_;
}

BatchScanner::Step Segment::scan_from(std::uint64_t position, Offset expected_offset, std::uint64_t& stop_position,
                                      Status& error) {
  auto file_size = log_file_->size();
  if (!file_size) {
    error = file_size.status();
    stop_position = position;
    return BatchScanner::Step::io_error;
  }
  BatchScanner scanner(*log_file_, position, *file_size);
  next_offset_ = expected_offset;
  // Resuming after damage (not at an indexed batch): index the first batch, so that reads of
  // the offsets from here on start here instead of running into the damage before it.
  bool force_index = any_indexed_ && position != last_indexed_position_;
  while (true) {
    BatchScanner::Step step = scanner.next(/*verify_body=*/true);
    if (step == BatchScanner::Step::batch && scanner.header().base_offset < expected_offset) {
      step = BatchScanner::Step::damaged;  // a stale or misplaced batch is not part of this log
    }
    if (step != BatchScanner::Step::batch) {
      stop_position = scanner.position();
      error = scanner.error();
      size_bytes_ = stop_position;
      // The entries up to here are re-derived from the log: the index files are not needed.
      if (step != BatchScanner::Step::io_error) indexes_loaded_ = true;
      return step;
    }
    index_batch(scanner.header(), scanner.position(), /*write_files=*/false, force_index);
    force_index = false;
    expected_offset = scanner.header().next_offset();
    next_offset_ = expected_offset;
    size_bytes_ = scanner.next_position();
  }
}

void Segment::retire() {
  std::lock_guard lock(lazy_load_mutex_);
  retired_ = true;
}

Status Segment::write_index_files() {
  if (retired_) return Status::ok();  // the paths belong to the replacement now
  std::string offsets = index_header(format::offset_index_magic, base_offset_);
  std::string times = index_header(format::time_index_magic, base_offset_);
  {
    std::shared_lock lock(index_mutex_);
    offsets.resize(format::index_header_bytes + offset_index_.size() * format::index_entry_bytes);
    for (std::size_t i = 0; i < offset_index_.size(); ++i) {
      encode_offset_entry(offsets.data() + format::index_header_bytes + i * format::index_entry_bytes, offset_index_[i]);
    }
    times.resize(format::index_header_bytes + time_index_.size() * format::index_entry_bytes);
    for (std::size_t i = 0; i < time_index_.size(); ++i) {
      encode_time_entry(times.data() + format::index_header_bytes + i * format::index_entry_bytes, time_index_[i]);
    }
  }
  index_files_healthy_ = false;
  auto offset_file = file_system_.open(segment_file_path(directory_, base_offset_, SegmentFileKind::offset_index),
                                       OpenMode::create_truncate);
  if (!offset_file) return offset_file.status();
  MSGSTORE_RETURN_IF_ERROR((*offset_file)->write_at(0, offsets.data(), offsets.size()));
  auto time_file = file_system_.open(segment_file_path(directory_, base_offset_, SegmentFileKind::time_index),
                                     OpenMode::create_truncate);
  if (!time_file) return time_file.status();
  MSGSTORE_RETURN_IF_ERROR((*time_file)->write_at(0, times.data(), times.size()));
  offset_index_file_ = std::move(*offset_file);
  time_index_file_ = std::move(*time_file);
  index_files_healthy_ = true;
  return Status::ok();
}

Status Segment::truncate_to(std::uint64_t position) {
  MSGSTORE_RETURN_IF_ERROR(log_file_->truncate(position));
  MSGSTORE_RETURN_IF_ERROR(log_file_->sync());
  size_bytes_ = position;
  std::unique_lock lock(index_mutex_);
  while (!offset_index_.empty() && offset_index_.back().position >= position) offset_index_.pop_back();
  const std::uint32_t limit = offset_index_.empty() ? 0 : offset_index_.back().relative_offset;
  while (!time_index_.empty() && (offset_index_.empty() || time_index_.back().relative_offset > limit)) time_index_.pop_back();
  any_indexed_ = !offset_index_.empty();
  last_indexed_position_ = any_indexed_ ? offset_index_.back().position : 0;
  return Status::ok();
}

void Segment::add_damaged_range(const DamagedRange& range) {
  std::unique_lock lock(index_mutex_);
  damaged_ranges_.push_back(range);
}

std::vector<DamagedRange> Segment::damaged_ranges() const {
  std::shared_lock lock(index_mutex_);
  return damaged_ranges_;
}

void Segment::index_batch(const BatchHeader& header, std::uint64_t position, bool write_files, bool force) {
  TimestampMs previous_max = max_timestamp_ms_.load(std::memory_order_relaxed);
  TimestampMs new_max = std::max(previous_max, header.max_timestamp_ms);
  if (first_timestamp_ms_.load(std::memory_order_relaxed) == no_timestamp) first_timestamp_ms_ = header.first_timestamp_ms;
  if (!any_indexed_ || force || position - last_indexed_position_ >= limits::index_interval_bytes) {
    OffsetIndexEntry offset_entry{static_cast<std::uint32_t>(header.base_offset - base_offset_),
                                  static_cast<std::uint32_t>(position)};
    TimeIndexEntry time_entry{new_max, offset_entry.relative_offset};
    {
      std::unique_lock lock(index_mutex_);
      offset_index_.push_back(offset_entry);
      time_index_.push_back(time_entry);
    }
    any_indexed_ = true;
    last_indexed_position_ = position;
    if (write_files && index_files_healthy_) {
      char entry[format::index_entry_bytes];
      const std::uint64_t at = format::index_header_bytes + (offset_index_.size() - 1) * format::index_entry_bytes;
      encode_offset_entry(entry, offset_entry);
      Status offset_written = offset_index_file_->write_at(at, entry, sizeof entry);
      encode_time_entry(entry, time_entry);
      Status time_written = time_index_file_->write_at(at, entry, sizeof entry);
      // Indexes are derived: a failed write only means a rebuild at the next open.
      if (!offset_written.is_ok() || !time_written.is_ok()) index_files_healthy_ = false;
    }
  }
  max_timestamp_ms_.store(new_max, std::memory_order_release);
}

namespace {

// Never written: the pages stay the kernel's shared zero page.
constexpr std::size_t zero_chunk_bytes = 1024 * 1024;
alignas(4096) const char zero_bytes[zero_chunk_bytes] = {};

}  // namespace

Status Segment::append(std::string_view batch, const BatchHeader& header, std::uint64_t preallocate_bytes) {
  const std::uint64_t position = size_bytes_.load(std::memory_order_relaxed);
  const std::uint64_t end = position + batch.size();
  // After a failed write: leave nothing past the data (no partial batch, no zeros). If even
  // that fails the caller must stop writing to this log.
  auto cut_back = [&](const Status& failure) -> Status {
    preallocated_end_ = 0;
    Status cut = log_file_->truncate(position);
    if (!cut.is_ok()) return Status(ErrorCode::io_error, failure.message() + "; and truncating back failed: " + cut.message());
    return failure;
  };
  // A batch larger than a step brings its own metadata change whatever we do; skip it.
  if (preallocate_bytes > 0 && !preallocation_failed_ && end > preallocated_end_ && batch.size() <= preallocate_bytes) {
    const std::uint64_t from = std::max(position, preallocated_end_);
    const std::uint64_t to = end + preallocate_bytes;
    Status zeroed = Status::ok();
    for (std::uint64_t at = from; at < to && zeroed.is_ok(); at += zero_chunk_bytes) {
      zeroed = log_file_->write_at(at, zero_bytes, static_cast<std::size_t>(std::min<std::uint64_t>(zero_chunk_bytes, to - at)));
    }
    if (zeroed.is_ok()) {
      preallocated_end_ = to;
    } else {
      // A full disk only costs the preallocation (this segment appends without zeros from now
      // on) and the batch's own write decides; any other failure is a failed append like a
      // failed write of the batch (the log stops).
      Status cut = cut_back(zeroed);
      if (cut.code() != ErrorCode::no_space) return cut;
      preallocation_failed_ = true;
    }
  }
  Status written = log_file_->write_at(position, batch.data(), batch.size());
  if (!written.is_ok()) return cut_back(written);
  index_batch(header, position, /*write_files=*/true);
  next_offset_.store(header.next_offset(), std::memory_order_release);
  size_bytes_.store(position + batch.size(), std::memory_order_release);
  return Status::ok();
}

Status Segment::trim_preallocation() {
  if (preallocated_end_ == 0) return Status::ok();
  preallocated_end_ = 0;
  MSGSTORE_RETURN_IF_ERROR(log_file_->truncate(size_bytes_.load(std::memory_order_relaxed)));
  return log_file_->sync();
}

void Segment::finish_sealing() {
  {
    // The final time entry lets a later open learn the segment's max timestamp cheaply.
    std::unique_lock lock(index_mutex_);
    const Offset next = next_offset_.load();
    if (next > base_offset_) {
      TimeIndexEntry final_entry{max_timestamp_ms_.load(), static_cast<std::uint32_t>(next - 1 - base_offset_)};
      if (time_index_.empty() || time_index_.back().relative_offset != final_entry.relative_offset ||
          time_index_.back().max_timestamp_ms != final_entry.max_timestamp_ms) {
        time_index_.push_back(final_entry);
        if (index_files_healthy_) {
          char entry[format::index_entry_bytes];
          encode_time_entry(entry, final_entry);
          const std::uint64_t at = format::index_header_bytes + (time_index_.size() - 1) * format::index_entry_bytes;
          if (!time_index_file_->write_at(at, entry, sizeof entry).is_ok()) index_files_healthy_ = false;
        }
      }
    }
  }
}

Status Segment::sync_index_files() {
  if (!index_files_healthy_) return Status::ok();
  MSGSTORE_RETURN_IF_ERROR(offset_index_file_->sync_data());
  return time_index_file_->sync_data();
}

LatencyHistogram& data_sync_latency() {
  static LatencyHistogram histogram;
  return histogram;
}

Status Segment::sync_data() {
  const auto started = std::chrono::steady_clock::now();
  Status synced = log_file_->sync_data();
  data_sync_latency().observe(std::chrono::steady_clock::now() - started);
  return synced;
}

Status Segment::sync_sealed() {
  MSGSTORE_RETURN_IF_ERROR(sync_data());
  if (!index_files_healthy_) {
    // Rewrite from memory so the sealed segment opens cheaply next time.
    if (!write_index_files().is_ok()) return Status::ok();
  }
  if (index_files_healthy_) {
    if (!offset_index_file_->sync_data().is_ok() || !time_index_file_->sync_data().is_ok()) index_files_healthy_ = false;
  }
  return Status::ok();
}

Status Segment::ensure_indexes() {
  if (indexes_loaded()) return Status::ok();
  std::lock_guard lock(lazy_load_mutex_);
  if (indexes_loaded()) return Status::ok();
  if (load_indexes(readable_bytes()).is_ok()) return Status::ok();
  // Damaged or missing: rebuild the entries from the log, which is the truth. Readers may be
  // using this sealed segment meanwhile, so the bounds recovery established (size, next
  // offset) stay as they are, and the max timestamp only grows.
  {
    std::unique_lock index_lock(index_mutex_);
    offset_index_.clear();
    time_index_.clear();
  }
  any_indexed_ = false;
  last_indexed_position_ = 0;
  const Offset sealed_next = next_offset_.load();
  const std::uint64_t end = readable_bytes();
  BatchScanner scanner(*log_file_, format::segment_header_bytes, end);
  Offset expected = base_offset_;
  while (true) {
    const BatchScanner::Step step = scanner.next(/*verify_body=*/true);
    if (step == BatchScanner::Step::io_error) return scanner.error();
    if (step != BatchScanner::Step::batch || scanner.header().base_offset < expected) break;
    index_batch(scanner.header(), scanner.position(), /*write_files=*/false);
    expected = scanner.header().next_offset();
  }
  const std::uint64_t stop = scanner.position();
  // A rewritten segment may end in a gap: its offsets run to the next segment's base.
  if (rewritten_ && stop >= end && expected < sealed_next) expected = sealed_next;
  if (stop < end || expected < sealed_next) {
    // Damaged, or shorter than the offsets it is known to hold: reads that reach the damage
    // get an error naming it, verify reports it, and nothing after it is served.
    add_damaged_range({stop, end, expected, std::max(expected, sealed_next)});
  } else if (expected > base_offset_) {
    // Whole: add the final time entry as seal() does, so the next open reads the max cheaply.
    std::unique_lock index_lock(index_mutex_);
    const TimeIndexEntry final_entry{max_timestamp_ms_.load(), static_cast<std::uint32_t>(expected - 1 - base_offset_)};
    if (time_index_.empty() || time_index_.back().relative_offset != final_entry.relative_offset ||
        time_index_.back().max_timestamp_ms != final_entry.max_timestamp_ms) {
      time_index_.push_back(final_entry);
    }
  }
  indexes_loaded_ = true;
  (void)write_index_files();
  return Status::ok();
}

std::uint64_t Segment::position_for_offset(Offset target) const {
  std::shared_lock lock(index_mutex_);
  if (target < base_offset_ || offset_index_.empty()) return format::segment_header_bytes;
  const std::uint64_t relative = target - base_offset_;
  auto after = std::upper_bound(offset_index_.begin(), offset_index_.end(), relative,
                                [](std::uint64_t value, const OffsetIndexEntry& entry) { return value < entry.relative_offset; });
  if (after == offset_index_.begin()) return format::segment_header_bytes;
  return std::prev(after)->position;
}

std::optional<std::uint64_t> Segment::batch_end_bound(std::uint64_t position) const {
  if (!indexes_loaded()) return std::nullopt;
  const std::uint64_t end = readable_bytes();
  std::shared_lock lock(index_mutex_);
  auto after = std::upper_bound(offset_index_.begin(), offset_index_.end(), position,
                                [](std::uint64_t value, const OffsetIndexEntry& entry) { return value < entry.position; });
  if (after == offset_index_.end()) return end;
  return std::min<std::uint64_t>(after->position, end);
}

std::uint64_t Segment::position_for_time(TimestampMs time_ms) const {
  Offset start_relative = 0;
  {
    std::shared_lock lock(index_mutex_);
    // The last entry whose cumulative max is still below time_ms: every record up to its batch
    // is older than time_ms, so the answer lies at or after that batch.
    auto first_reaching = std::lower_bound(time_index_.begin(), time_index_.end(), time_ms,
                                           [](const TimeIndexEntry& entry, TimestampMs value) { return entry.max_timestamp_ms < value; });
    if (first_reaching == time_index_.begin()) return format::segment_header_bytes;
    start_relative = std::prev(first_reaching)->relative_offset;
  }
  return position_for_offset(base_offset_ + start_relative);
}

std::size_t Segment::index_entry_count() const {
  std::shared_lock lock(index_mutex_);
  return offset_index_.size();
}

std::vector<OffsetIndexEntry> Segment::offset_index_snapshot() const {
  std::shared_lock lock(index_mutex_);
  return offset_index_;
}

std::vector<TimeIndexEntry> Segment::time_index_snapshot() const {
  std::shared_lock lock(index_mutex_);
  return time_index_;
}

}  // namespace msgstore::log
