// msgstore/status.h: errors as values.
//
// Every fallible operation in msgstore returns a Status or a Result<T>. The ErrorCode values
// form the error catalogue shared by the embedded API, the CLI and (later) every network
// front end; their names (error_code_name) are stable strings that clients may match on.
//
// Thread safety: Status and Result are plain values; copy them freely.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace msgstore {

// Stable error catalogue. Never renumber or rename an existing entry; add new ones at the end.
enum class ErrorCode : std::uint16_t {
  ok = 0,
  invalid_argument = 1,     // a malformed parameter (bad pattern, bad option value, ...)
  invalid_name = 2,         // a stream name that is empty, too long, or has forbidden characters
  stream_not_found = 3,
  stream_exists = 4,
  no_matching_stream = 5,   // a publish to a subject that no stream captures
  message_too_large = 6,
  offset_out_of_range = 7,  // below the log start or past the log end
  corruption = 8,           // checksums failed: damaged data is reported, never served
  io_error = 9,             // the operating system failed an I/O call
  no_space = 10,            // the disk is full (ENOSPC); retry after freeing space
  store_locked = 11,        // another process has this data directory open
  closed = 12,              // the store or subscription was closed
  log_failed = 13,          // an earlier write or sync failed: the log refuses writes until restart
  unsupported_format = 14,  // a file written by an unknown format version
  limit_exceeded = 15,      // a named limit (include/msgstore/limits.h) was exceeded
  partition_not_found = 16,
  timed_out = 17,
  // A conditional append (OutgoingMessage::expected_offset) found another last offset; the
  // Status carries the actual one in actual_offset(). Nothing was stored.
  expected_offset_mismatch = 18,
};

// The stable snake_case name of a code, e.g. "stream_not_found".
const char* error_code_name(ErrorCode code) noexcept;

class [[nodiscard]] Status {
 public:
  Status() noexcept = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  // An error with a machine-readable offset detail (see actual_offset()).
  Status(ErrorCode code, std::string message, std::uint64_t actual_offset)
      : code_(code), message_(std::move(message)), actual_offset_(actual_offset) {}

  static Status ok() noexcept { return Status(); }

  bool is_ok() const noexcept { return code_ == ErrorCode::ok; }
  explicit operator bool() const noexcept { return is_ok(); }
  ErrorCode code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  // For expected_offset_mismatch: the partition's (or key's) actual last offset, or
  // msgstore::expected_offset_empty (message.h) when there is none. Empty for other errors.
  const std::optional<std::uint64_t>& actual_offset() const noexcept { return actual_offset_; }

  // "code_name: message", for logs and the CLI.
  std::string to_string() const;

 private:
  ErrorCode code_ = ErrorCode::ok;
  std::string message_;
  std::optional<std::uint64_t> actual_offset_;
};

// Result<T>: either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool is_ok() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return is_ok(); }
  const Status& status() const noexcept { return status_; }

  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace msgstore

// Propagate a non-ok Status from an expression returning Status.
#define MSGSTORE_RETURN_IF_ERROR(expression)                 \
  do {                                                       \
    ::msgstore::Status msgstore_status_ = (expression);      \
    if (!msgstore_status_.is_ok()) return msgstore_status_;  \
  } while (false)
