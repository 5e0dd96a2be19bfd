#include "log/record_batch.h"

#include <algorithm>
#include <cstring>

#include "base/assert.h"
#include "base/coding.h"
#include "base/crc32c.h"
#include "log/format.h"

namespace msgstore::log {

using base::decode_varint;
using base::encode_varint;
using base::varint_length;

static_assert(format::batch_header_bytes == 56, "RecordDecoder::decode hard-codes the header size");

namespace {
// Bytes of a record after its length varint, without the two delta varints.
std::size_t record_fields_bytes(const OutgoingMessage& message) {
  std::size_t bytes = varint_length(message.subject.size()) + message.subject.size();
  bytes += message.key ? varint_length(message.key->size() + 1) + message.key->size() : 1;
  bytes += varint_length(message.headers.size());
  for (const HeaderView& header : message.headers) {
    bytes += varint_length(header.name.size()) + header.name.size();
    bytes += varint_length(header.value.size()) + header.value.size();
  }
  return bytes + varint_length(message.payload.size()) + message.payload.size();
}
}  // namespace

std::size_t encoded_record_bytes(const OutgoingMessage& message) {
  // Upper bound: both deltas at their longest.
  const std::size_t body = 2 * base::varint64_bytes_max + record_fields_bytes(message);
  return varint_length(body) + body;
}

BatchBuilder::BatchBuilder() { reset(); }

void BatchBuilder::grow(std::size_t bytes) {
  if (size_ + bytes <= capacity_) return;
  const std::size_t capacity = std::max({size_ + bytes, 2 * capacity_, std::size_t{4096}});
  std::unique_ptr<char[]> larger(new char[capacity]);  // default-initialised: not zeroed
  if (size_ > 0) std::memcpy(larger.get(), buffer_.get(), size_);
  buffer_ = std::move(larger);
  capacity_ = capacity;
}

void BatchBuilder::reset() {
  size_ = 0;
  grow(format::batch_header_bytes);
  std::memset(buffer_.get(), 0, format::batch_header_bytes);
  size_ = format::batch_header_bytes;
  record_count_ = 0;
  records_checksummed_ = false;
  first_timestamp_ms_ = 0;
  max_timestamp_ms_ = 0;
}

std::size_t BatchBuilder::add(const OutgoingMessage& message, TimestampMs timestamp_ms) {
  if (record_count_ == 0) {
    first_timestamp_ms_ = timestamp_ms;
    max_timestamp_ms_ = timestamp_ms;
  } else if (timestamp_ms > max_timestamp_ms_) {
    max_timestamp_ms_ = timestamp_ms;
  }
  const std::uint64_t offset_delta = record_count_;
  // Wrapping subtraction keeps far-apart bogus timestamps well defined.
  const std::int64_t timestamp_delta = static_cast<std::int64_t>(
      static_cast<std::uint64_t>(timestamp_ms) - static_cast<std::uint64_t>(first_timestamp_ms_));

  const std::size_t fields = record_fields_bytes(message);
  const std::size_t body = varint_length(offset_delta) + varint_length(base::zigzag_encode(timestamp_delta)) + fields;

  const std::size_t record_bytes = varint_length(body) + body;
  grow(record_bytes);
  char* out = buffer_.get() + size_;
  size_ += record_bytes;
  out = encode_varint(out, body);
  out = encode_varint(out, offset_delta);
  out = encode_varint(out, base::zigzag_encode(timestamp_delta));
  auto put_bytes = [&out](std::string_view bytes) {
    out = encode_varint(out, bytes.size());
    if (!bytes.empty()) std::memcpy(out, bytes.data(), bytes.size());
    out += bytes.size();
  };
  put_bytes(message.subject);
  if (message.key) {
    out = encode_varint(out, message.key->size() + 1);
    if (!message.key->empty()) std::memcpy(out, message.key->data(), message.key->size());
    out += message.key->size();
  } else {
    out = encode_varint(out, 0);
  }
  out = encode_varint(out, message.headers.size());
  for (const HeaderView& header : message.headers) {
    put_bytes(header.name);
    put_bytes(header.value);
  }
  put_bytes(message.payload);
  MS_ASSERT(out == buffer_.get() + size_);
  ++record_count_;
  records_checksummed_ = false;
  const std::size_t bound = 2 * base::varint64_bytes_max + fields;  // as encoded_record_bytes
  return varint_length(bound) + bound;
}

void BatchBuilder::checksum_records() {
  records_crc_ = base::crc32c(buffer_.get() + format::batch_header_bytes, size_ - format::batch_header_bytes);
  records_checksummed_ = true;
}

std::string_view BatchBuilder::finish(Offset base_offset, Offset synced_offset) {
  MS_ASSERT(record_count_ > 0);
  MS_ASSERT(size_ <= UINT32_MAX);
  char* header = buffer_.get();
  base::store_u32(header + 0, format::batch_magic);
  base::store_u16(header + 4, format::batch_version);
  base::store_u16(header + 6, 0);
  base::store_u32(header + 8, static_cast<std::uint32_t>(size_));
  base::store_u32(header + 12, record_count_);
  base::store_u64(header + 16, base_offset);
  base::store_u32(header + 24, record_count_ - 1);
  const Offset lag = synced_offset >= base_offset ? 0 : base_offset - synced_offset;
  base::store_u32(header + 28, static_cast<std::uint32_t>(std::min<Offset>(lag, UINT32_MAX)));
  base::store_i64(header + 32, first_timestamp_ms_);
  base::store_i64(header + 40, max_timestamp_ms_);
  if (!records_checksummed_) checksum_records();
  std::uint32_t body_crc = base::crc32c_extend(records_crc_, header + format::batch_body_crc_covered_begin,
                                 format::batch_body_crc_position - format::batch_body_crc_covered_begin);
  base::store_u32(header + format::batch_body_crc_position, body_crc);
  base::store_u32(header + format::batch_header_crc_position, base::crc32c(header, format::batch_header_crc_position));
  return std::string_view(buffer_.get(), size_);
}

HeaderCheck check_batch_header(const char* data, std::size_t available, BatchHeader& header) {
  if (available < format::batch_header_bytes) {
    // A short tail of zeros is unwritten space; anything else is a torn header.
    for (std::size_t i = 0; i < available; ++i) {
      if (data[i] != 0) return HeaderCheck::damaged;
    }
    return HeaderCheck::end_of_log;
  }
  const std::uint32_t magic = base::load_u32(data);
  if (magic == 0) {
    // Zero-filled space decodes as end of log only if the whole header is zero.
    for (std::size_t i = 0; i < format::batch_header_bytes; ++i) {
      if (data[i] != 0) return HeaderCheck::damaged;
    }
    return HeaderCheck::end_of_log;
  }
  if (magic != format::batch_magic) return HeaderCheck::damaged;
  if (base::crc32c(data, format::batch_header_crc_position) != base::load_u32(data + format::batch_header_crc_position)) {
    return HeaderCheck::damaged;
  }
  if (base::load_u16(data + 4) != format::batch_version) return HeaderCheck::damaged;
  header.attributes = base::load_u16(data + 6);
  header.batch_bytes = base::load_u32(data + 8);
  header.record_count = base::load_u32(data + 12);
  header.base_offset = base::load_u64(data + 16);
  header.last_offset_delta = base::load_u32(data + 24);
  header.synced_offset_lag = base::load_u32(data + 28);
  header.first_timestamp_ms = base::load_i64(data + 32);
  header.max_timestamp_ms = base::load_i64(data + 40);
  if (header.batch_bytes < format::batch_header_bytes || header.record_count == 0 ||
      header.last_offset_delta + 1ull < header.record_count || header.attributes != 0) {
    return HeaderCheck::damaged;
  }
  if (header.batch_bytes > available) return HeaderCheck::damaged;
  return HeaderCheck::valid;
}

bool check_batch_body(const char* batch, const BatchHeader& header) {
  std::uint32_t crc = base::crc32c(batch + format::batch_header_bytes, header.batch_bytes - format::batch_header_bytes);
  crc = base::crc32c_extend(crc, batch + format::batch_body_crc_covered_begin,
                            format::batch_body_crc_position - format::batch_body_crc_covered_begin);
  return crc == base::load_u32(batch + format::batch_body_crc_position);
}

const char* RecordDecoder::record_extent(const char* cursor, const char* end, const BatchHeader& header, Offset& offset,
                                         const char*& after_offset) {
  std::uint64_t record_bytes;
  cursor = decode_varint(cursor, end, record_bytes);
  if (cursor == nullptr || record_bytes > static_cast<std::uint64_t>(end - cursor)) return nullptr;
  const char* record_end = cursor + record_bytes;
  std::uint64_t offset_delta;
  after_offset = decode_varint(cursor, record_end, offset_delta);
  if (after_offset == nullptr || offset_delta > header.last_offset_delta) return nullptr;
  offset = header.base_offset + offset_delta;
  return record_end;
}

const char* RecordDecoder::decode_one(const char* cursor, const char* end, const BatchHeader& header, MessageView& view) {
  const char* record_end = record_extent(cursor, end, header, view.offset, cursor);
  if (record_end == nullptr) return nullptr;
  std::uint64_t timestamp_delta;
  cursor = decode_varint(cursor, record_end, timestamp_delta);
  if (cursor == nullptr) return nullptr;
  view.timestamp_ms = static_cast<TimestampMs>(static_cast<std::uint64_t>(header.first_timestamp_ms) +
                                               static_cast<std::uint64_t>(base::zigzag_decode(timestamp_delta)));
  auto get_bytes = [&cursor, record_end](std::string_view& out) {
    std::uint64_t length;
    cursor = decode_varint(cursor, record_end, length);
    if (cursor == nullptr || length > static_cast<std::uint64_t>(record_end - cursor)) return false;
    out = std::string_view(cursor, length);
    cursor += length;
    return true;
  };
  if (!get_bytes(view.subject)) return nullptr;
  std::uint64_t key_bytes_plus_one;
  cursor = decode_varint(cursor, record_end, key_bytes_plus_one);
  if (cursor == nullptr) return nullptr;
  if (key_bytes_plus_one == 0) {
    view.key.reset();
  } else {
    const std::uint64_t key_bytes = key_bytes_plus_one - 1;
    if (key_bytes > static_cast<std::uint64_t>(record_end - cursor)) return nullptr;
    view.key = std::string_view(cursor, key_bytes);
    cursor += key_bytes;
  }
  std::uint64_t header_count;
  cursor = decode_varint(cursor, record_end, header_count);
  // Each header takes at least two bytes, which bounds the count before any allocation.
  if (cursor == nullptr || header_count > static_cast<std::uint64_t>(record_end - cursor) / 2) return nullptr;
  header_storage_.resize(header_count);
  for (std::uint64_t index = 0; index < header_count; ++index) {
    if (!get_bytes(header_storage_[index].name) || !get_bytes(header_storage_[index].value)) return nullptr;
  }
  view.headers = std::span<const HeaderView>(header_storage_.data(), header_count);
  if (!get_bytes(view.payload)) return nullptr;
  if (cursor != record_end) return nullptr;
  return cursor;
}

}  // namespace msgstore::log
