#include "msgstore/status.h"

namespace msgstore {

const char* error_code_name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::ok: return "ok";
    case ErrorCode::invalid_argument: return "invalid_argument";
    case ErrorCode::invalid_name: return "invalid_name";
    case ErrorCode::stream_not_found: return "stream_not_found";
    case ErrorCode::stream_exists: return "stream_exists";
    case ErrorCode::no_matching_stream: return "no_matching_stream";
    case ErrorCode::message_too_large: return "message_too_large";
    case ErrorCode::offset_out_of_range: return "offset_out_of_range";
    case ErrorCode::corruption: return "corruption";
    case ErrorCode::io_error: return "io_error";
    case ErrorCode::no_space: return "no_space";
    case ErrorCode::store_locked: return "store_locked";
    case ErrorCode::closed: return "closed";
    case ErrorCode::log_failed: return "log_failed";
    case ErrorCode::unsupported_format: return "unsupported_format";
    case ErrorCode::limit_exceeded: return "limit_exceeded";
    case ErrorCode::partition_not_found: return "partition_not_found";
    case ErrorCode::timed_out: return "timed_out";
    case ErrorCode::expected_offset_mismatch: return "expected_offset_mismatch";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  return std::string(error_code_name(code_)) + ": " + message_;
}

}  // namespace msgstore
