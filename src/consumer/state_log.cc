#include "consumer/state_log.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "msgstore/limits.h"

#include "base/assert.h"
#include "base/coding.h"
#include "base/crc32c.h"

namespace msgstore::consumer {

// ---- Records ----------------------------------------------------------------------------------
void encode_record(const StateRecord& record, std::string& out) {
  MS_ASSERT(record.type != RecordType::reserved);
  char body[1 + 3 * base::varint64_bytes_max];
  char* end = body;
  *end++ = static_cast<char>(record.type);
  end = base::encode_varint(end, record.partition);
  end = base::encode_varint(end, record.offset);
  if (record.type != RecordType::ack) end = base::encode_varint(end, record.value);
  const auto body_bytes = static_cast<std::uint32_t>(end - body - 1);
  char frame[record_frame_bytes];
  base::store_u32(frame, body_bytes);
  base::store_u32(frame + 4, base::crc32c(body, static_cast<std::size_t>(end - body)));
  out.append(frame, record_frame_bytes);
  out.append(body, static_cast<std::size_t>(end - body));
}

std::string encode_state_log_header() {
  std::string header(state_log_header_bytes, '\0');
  std::memcpy(header.data(), state_log_magic, sizeof state_log_magic);
  base::store_u32(header.data() + 8, state_log_version);
  base::store_u32(header.data() + 12, base::crc32c(header.data(), 12));
  return header;
}

namespace {
// Decodes one body (type byte first); false if it is not a well-formed record.
bool decode_body(const char* body, std::size_t size, StateRecord& record) {
  if (size < 1) return false;
  const auto type = static_cast<std::uint8_t>(body[0]);
  if (type < 1 || type > 3) return false;
  record.type = static_cast<RecordType>(type);
  const char* in = body + 1;
  const char* end = body + size;
  std::uint64_t partition = 0;
  in = base::decode_varint(in, end, partition);
  if (in == nullptr || partition > UINT32_MAX) return false;
  record.partition = static_cast<std::uint32_t>(partition);
  in = base::decode_varint(in, end, record.offset);
  if (in == nullptr) return false;
  record.value = 0;
  if (record.type != RecordType::ack) {
    in = base::decode_varint(in, end, record.value);
    if (in == nullptr) return false;
    if (record.type == RecordType::delivery && (record.value == 0 || record.value > UINT32_MAX)) return false;
    if (record.type == RecordType::position && record.value < record.offset) return false;  // floor <= delivered
  }
  return in == end;  // no trailing bytes
}
}  // namespace

Result<StateLogScan> decode_state_log(std::string_view file, const std::function<void(const StateRecord&)>& visit) {
  if (file.size() < state_log_header_bytes) return Status(ErrorCode::corruption, "consumer state log header is truncated");
  if (std::memcmp(file.data(), state_log_magic, sizeof state_log_magic) != 0) {
    return Status(ErrorCode::corruption, "not a consumer state log (bad magic)");
  }
  if (base::load_u32(file.data() + 12) != base::crc32c(file.data(), 12)) {
    return Status(ErrorCode::corruption, "consumer state log header checksum mismatch");
  }
  const std::uint32_t version = base::load_u32(file.data() + 8);
  if (version != state_log_version) {
    return Status(ErrorCode::unsupported_format, "consumer state log version " + std::to_string(version) + " (this build reads " +
                                                     std::to_string(state_log_version) + ")");
  }
  StateLogScan scan;
  std::size_t position = state_log_header_bytes;
  while (position + record_frame_bytes <= file.size()) {
    const std::uint32_t body_bytes = base::load_u32(file.data() + position);
    const std::uint32_t checksum = base::load_u32(file.data() + position + 4);
    // The type byte is counted apart from body_bytes, so a zero frame is never a valid record.
    if (body_bytes == 0 || body_bytes > record_body_bytes_max) break;
    const std::size_t whole = record_frame_bytes + 1 + body_bytes;
    if (position + whole > file.size()) break;
    const char* body = file.data() + position + record_frame_bytes;
    if (base::crc32c(body, 1 + body_bytes) != checksum) break;
    StateRecord record;
    if (!decode_body(body, 1 + body_bytes, record)) break;
    visit(record);
    ++scan.records;
    position += whole;
  }
  scan.valid_bytes = position;
  scan.dropped_bytes = file.size() - position;
  return scan;
}

// ---- Cursors ----------------------------------------------------------------------------------
bool PartitionCursor::advance_floor() {
  const Offset before = ack_floor;
  const Offset lowest_pending = pending.empty() ? delivered_offset : std::min(delivered_offset, pending.begin()->first);
  while (ack_floor < lowest_pending) {
    auto found = done.find(ack_floor);
    if (found == done.end()) break;
    done.erase(found);
    ++ack_floor;
  }
  return ack_floor != before;
}

void PartitionCursor::apply(const StateRecord& record) {
  switch (record.type) {
    case RecordType::ack:
      if (record.offset < ack_floor) return;
      pending.erase(record.offset);
      done.insert(record.offset);
      if (record.offset >= delivered_offset) delivered_offset = record.offset + 1;
      return;
    case RecordType::delivery: {
      if (record.offset < ack_floor || done.count(record.offset)) return;
      Pending& entry = pending[record.offset];
      entry.attempts = std::max(entry.attempts, static_cast<std::uint32_t>(record.value));
      if (record.offset >= delivered_offset) delivered_offset = record.offset + 1;
      return;
    }
    case RecordType::position:
      if (record.offset > ack_floor) {
        ack_floor = record.offset;
        pending.erase(pending.begin(), pending.lower_bound(ack_floor));
        done.erase(done.begin(), done.lower_bound(ack_floor));
      }
      delivered_offset = std::max({delivered_offset, record.value, ack_floor});
      return;
    case RecordType::reserved: return;
  }
}

// ---- Snapshot ---------------------------------------------------------------------------------
namespace {
std::string partition_key(std::size_t partition, const char* field) {
  return "p" + std::to_string(partition) + "." + field;
}

template <typename Integer>
bool parse_integer(std::string_view text, Integer& value) {
  auto parsed = std::from_chars(text.data(), text.data() + text.size(), value);
  return parsed.ec == std::errc() && parsed.ptr == text.data() + text.size();
}
}  // namespace

io::MetadataFields encode_snapshot(std::uint64_t generation, const std::vector<PartitionCursor>& cursors) {
  io::MetadataFields fields;
  fields["generation"] = std::to_string(generation);
  fields["partitions"] = std::to_string(cursors.size());
  for (std::size_t partition = 0; partition < cursors.size(); ++partition) {
    const PartitionCursor& cursor = cursors[partition];
    fields[partition_key(partition, "ack_floor")] = std::to_string(cursor.ack_floor);
    fields[partition_key(partition, "delivered")] = std::to_string(cursor.delivered_offset);
    std::string done;
    for (Offset offset : cursor.done) {
      if (!done.empty()) done += ',';
      done += std::to_string(offset);
    }
    fields[partition_key(partition, "done")] = done;
    std::string attempts;
    for (const auto& [offset, entry] : cursor.pending) {
      if (entry.attempts == 0) continue;
      if (!attempts.empty()) attempts += ',';
      attempts += std::to_string(offset) + ":" + std::to_string(entry.attempts);
    }
    fields[partition_key(partition, "attempts")] = attempts;
  }
  return fields;
}

Result<std::vector<PartitionCursor>> decode_snapshot(const io::MetadataFields& fields, std::uint64_t& generation) {
  auto generation_field = io::metadata_u64(fields, "generation");
  if (!generation_field) return generation_field.status();
  auto partitions = io::metadata_u64(fields, "partitions");
  if (!partitions) return partitions.status();
  if (*partitions > limits::partitions_per_stream_max) return Status(ErrorCode::corruption, "consumer snapshot: too many partitions");
  generation = *generation_field;
  std::vector<PartitionCursor> cursors(*partitions);
  for (std::size_t partition = 0; partition < cursors.size(); ++partition) {
    PartitionCursor& cursor = cursors[partition];
    auto floor = io::metadata_u64(fields, partition_key(partition, "ack_floor"));
    if (!floor) return floor.status();
    auto delivered = io::metadata_u64(fields, partition_key(partition, "delivered"));
    if (!delivered) return delivered.status();
    if (*delivered < *floor) return Status(ErrorCode::corruption, "consumer snapshot: delivered offset below the ack floor");
    cursor.ack_floor = *floor;
    cursor.delivered_offset = *delivered;
    auto list = [&](const char* field) -> Result<std::vector<std::string_view>> {
      auto found = fields.find(partition_key(partition, field));
      if (found == fields.end()) return Status(ErrorCode::corruption, "consumer snapshot: field " + partition_key(partition, field) + " is missing");
      std::vector<std::string_view> items;
      std::string_view text = found->second;
      while (!text.empty()) {
        const std::size_t comma = text.find(',');
        items.push_back(text.substr(0, comma));
        if (comma == std::string_view::npos) break;
        text.remove_prefix(comma + 1);
      }
      return items;
    };
    auto bad = [&](const char* field) { return Status(ErrorCode::corruption, "consumer snapshot: malformed " + partition_key(partition, field)); };
    auto done = list("done");
    if (!done) return done.status();
    for (std::string_view item : *done) {
      Offset offset = 0;
      if (!parse_integer(item, offset) || offset < cursor.ack_floor || offset >= cursor.delivered_offset) return bad("done");
      cursor.done.insert(offset);
    }
    auto attempts = list("attempts");
    if (!attempts) return attempts.status();
    for (std::string_view item : *attempts) {
      const std::size_t colon = item.find(':');
      Offset offset = 0;
      std::uint32_t count = 0;
      if (colon == std::string_view::npos || !parse_integer(item.substr(0, colon), offset) ||
          !parse_integer(item.substr(colon + 1), count) || offset < cursor.ack_floor || offset >= cursor.delivered_offset ||
          count == 0 || cursor.done.count(offset)) {
        return bad("attempts");
      }
      cursor.pending[offset].attempts = count;
    }
  }
  return cursors;
}

std::string state_log_name(std::uint64_t generation) {
  char name[64];
  std::snprintf(name, sizeof name, "state-%020llu.log", static_cast<unsigned long long>(generation));
  return name;
}

// ---- StateLog ---------------------------------------------------------------------------------
StateLog::StateLog(std::unique_ptr<File> file, std::filesystem::path path, std::uint64_t size)
    : file_(std::move(file)), path_(std::move(path)), end_(size), durable_(size) {}

Result<std::shared_ptr<StateLog>> StateLog::create(FileSystem& file_system, const std::filesystem::path& path) {
  auto file = file_system.open(path, OpenMode::create_truncate);
  if (!file) return file.status();
  const std::string header = encode_state_log_header();
  MSGSTORE_RETURN_IF_ERROR((*file)->write_at(0, header.data(), header.size()));
  MSGSTORE_RETURN_IF_ERROR((*file)->sync_data());
  return std::shared_ptr<StateLog>(new StateLog(std::move(*file), path, header.size()));
}

Result<std::uint64_t> StateLog::append(std::string_view records) {
  std::lock_guard lock(append_mutex_);
  if (!failure_.is_ok()) return failure_;
  if (records.empty()) return end_;
  Status written = file_->write_at(end_, records.data(), records.size());
  if (!written.is_ok()) {
    // A partial write may have reached the file; nothing after it can be trusted to follow it.
    failure_ = Status(written.code() == ErrorCode::no_space ? ErrorCode::no_space : ErrorCode::log_failed,
                      "consumer state log " + path_.string() + ": " + written.message());
    return failure_;
  }
  end_ += records.size();
  return end_;
}

Status StateLog::sync_to(std::uint64_t position) {
  std::unique_lock lock(sync_mutex_);
  while (true) {
    if (!sync_failure_.is_ok()) return sync_failure_;
    if (durable_ >= position) return Status::ok();
    if (!sync_in_progress_) break;
    sync_finished_.wait(lock);
  }
  // Become the syncer: everything written before this point is covered.
  sync_in_progress_ = true;
  std::uint64_t target = 0;
  {
    std::lock_guard append(append_mutex_);
    target = end_;
  }
  lock.unlock();
  Status synced = file_->sync_data();
  lock.lock();
  sync_in_progress_ = false;
  if (synced.is_ok()) {
    durable_ = std::max(durable_, target);
  } else {
    sync_failure_ = Status(ErrorCode::log_failed, "consumer state log " + path_.string() + ": " + synced.message());
    std::lock_guard append(append_mutex_);
    if (failure_.is_ok()) failure_ = sync_failure_;
  }
  sync_finished_.notify_all();
  if (!sync_failure_.is_ok()) return sync_failure_;
  // `position` came from append(), so target (the end when the sync started) covers it.
  MS_ASSERT(durable_ >= position);
  return Status::ok();
}

Status StateLog::sync_all() { return sync_to(size()); }

std::uint64_t StateLog::size() const {
  std::lock_guard lock(append_mutex_);
  return end_;
}

bool StateLog::has_unsynced() const {
  const std::uint64_t end = size();
  std::lock_guard lock(sync_mutex_);
  return durable_ < end;
}

}  // namespace msgstore::consumer
