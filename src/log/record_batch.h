// Encoding and decoding of record batches (docs/formats/segment-log.md).
//
// BatchBuilder encodes messages into one batch in a reusable buffer. The decoder validates a
// header (magic, version, header CRC) before trusting its length, validates the body CRC
// before decoding any record, and checks every record bound while decoding, so arbitrary bytes
// never read out of range (the fuzz target in tests/fuzz drives exactly these functions).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "msgstore/message.h"
#include "msgstore/status.h"

namespace msgstore::log {

struct BatchHeader {
  std::uint32_t batch_bytes = 0;  // header + body
  std::uint32_t record_count = 0;
  Offset base_offset = 0;
  std::uint32_t last_offset_delta = 0;
  // How far below base_offset the log was known durable when this batch was written
  // (saturating). Recovery uses it to tell an unsynced hole from damage to synced data.
  std::uint32_t synced_offset_lag = 0;
  TimestampMs first_timestamp_ms = 0;
  TimestampMs max_timestamp_ms = 0;
  std::uint16_t attributes = 0;

  Offset last_offset() const { return base_offset + last_offset_delta; }
  Offset next_offset() const { return base_offset + last_offset_delta + 1; }
  // Every offset below this was synced before this batch was written.
  Offset synced_before() const { return base_offset - std::min<Offset>(synced_offset_lag, base_offset); }
};

// Bytes one message takes as a record (its contribution to a batch and to max_message_bytes).
std::size_t encoded_record_bytes(const OutgoingMessage& message);

class BatchBuilder {
 public:
  BatchBuilder();
  // Starts a new batch; keeps the buffer's capacity.
  void reset();
  // Appends one record; its offset will be base_offset + record_count() at finish time.
  // Returns encoded_record_bytes(message), computed along the way (for size limits).
  std::size_t add(const OutgoingMessage& message, TimestampMs timestamp_ms);
  std::uint32_t record_count() const { return record_count_; }
  std::size_t bytes() const { return size_; }
  // Checksums the records (the costly part of finish) so a writer can do it before taking
  // its append lock; finish() does it if this was not called after the last add().
  void checksum_records();
  // Fills in the header for `base_offset` and returns the encoded batch, valid until reset().
  // `synced_offset` is the log's durable end when the batch is written (see BatchHeader).
  std::string_view finish(Offset base_offset, Offset synced_offset = 0);
  TimestampMs max_timestamp_ms() const { return max_timestamp_ms_; }

 private:
  // Grows without zero-filling (unlike std::string::resize): every byte is written by add().
  void grow(std::size_t bytes);
  std::unique_ptr<char[]> buffer_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
  std::uint32_t record_count_ = 0;
  std::uint32_t records_crc_ = 0;
  bool records_checksummed_ = false;
  TimestampMs first_timestamp_ms_ = 0;
  TimestampMs max_timestamp_ms_ = 0;
};

enum class HeaderCheck : std::uint8_t {
  valid,
  end_of_log,  // fewer than header bytes, or zero magic: nothing was ever written here
  damaged,     // bytes are present but do not form a valid header
};

// Checks the header at `data`. `available` is how many bytes follow `data` in the file; a
// header whose batch_bytes exceeds it is reported as damaged (a torn tail).
HeaderCheck check_batch_header(const char* data, std::size_t available, BatchHeader& header);

// Checks the body CRC of a whole batch (header already valid, all batch_bytes present).
bool check_batch_body(const char* batch, const BatchHeader& header);

// Decodes the records of a checked batch, calling `visit(const MessageView&)` for each; the
// callback returns false to stop early. Returns corruption if a record is malformed (only
// possible when the CRC matched by chance or the batch was built by a buggy writer).
class RecordDecoder {
 public:
  template <typename Visitor>
  Status decode(const char* batch, const BatchHeader& header, Visitor&& visit);
  // Like decode, but decodes and visits only the records whose offsets are in `wanted`
  // (ascending); the others are stepped over by their length prefix, reading only their
  // offset. Stops after the last wanted offset. Point reads through an index use this: a
  // candidate is usually one record of a batch of many.
  template <typename Visitor>
  Status decode_offsets(const char* batch, const BatchHeader& header, std::span<const Offset> wanted, Visitor&& visit);

 private:
  // The record at `cursor`: its end (after the length prefix and body), its offset and where
  // its fields after the offset delta start; nullptr if the prefix or the delta is malformed.
  static const char* record_extent(const char* cursor, const char* end, const BatchHeader& header, Offset& offset,
                                   const char*& after_offset);
  // Decodes one record at `cursor`; returns nullptr if malformed.
  const char* decode_one(const char* cursor, const char* end, const BatchHeader& header, MessageView& view);
  std::vector<HeaderView> header_storage_;
};

template <typename Visitor>
Status RecordDecoder::decode(const char* batch, const BatchHeader& header, Visitor&& visit) {
  const char* cursor = batch + 56;  // format::batch_header_bytes, static_asserted in the .cc
  const char* end = batch + header.batch_bytes;
  MessageView view;
  for (std::uint32_t index = 0; index < header.record_count; ++index) {
    cursor = decode_one(cursor, end, header, view);
    if (cursor == nullptr) {
      return Status(ErrorCode::corruption, "malformed record " + std::to_string(index) + " in batch at offset " +
                                               std::to_string(header.base_offset));
    }
    if (!visit(static_cast<const MessageView&>(view))) return Status::ok();
  }
  if (cursor != end) {
    return Status(ErrorCode::corruption, "trailing bytes in batch at offset " + std::to_string(header.base_offset));
  }
  return Status::ok();
}

template <typename Visitor>
Status RecordDecoder::decode_offsets(const char* batch, const BatchHeader& header, std::span<const Offset> wanted, Visitor&& visit) {
  const char* cursor = batch + 56;  // format::batch_header_bytes, static_asserted in the .cc
  const char* end = batch + header.batch_bytes;
  MessageView view;
  std::size_t next = 0;
  for (std::uint32_t index = 0; index < header.record_count && next < wanted.size(); ++index) {
    Offset offset = 0;
    const char* fields = nullptr;
    const char* record_end = record_extent(cursor, end, header, offset, fields);
    if (record_end == nullptr) {
      return Status(ErrorCode::corruption, "malformed record " + std::to_string(index) + " in batch at offset " +
                                               std::to_string(header.base_offset));
    }
    while (next < wanted.size() && wanted[next] < offset) ++next;
    if (next < wanted.size() && wanted[next] == offset) {
      if (decode_one(cursor, end, header, view) != record_end) {
        return Status(ErrorCode::corruption, "malformed record " + std::to_string(index) + " in batch at offset " +
                                                 std::to_string(header.base_offset));
      }
      ++next;
      if (!visit(static_cast<const MessageView&>(view))) return Status::ok();
    }
    cursor = record_end;
  }
  return Status::ok();
}

}  // namespace msgstore::log
