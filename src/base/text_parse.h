// Parsers for the textual values every front end accepts (CLI flags, HTTP query parameters):
// unsigned integers and points in time.
//
// Each returns invalid_argument with a message that names the input (`what`: "--from-time",
// "query parameter from_time") and shows the accepted syntax.
//
// Thread safety: plain functions.
#pragma once

#include <cstdint>
#include <string_view>

#include "msgstore/message.h"
#include "msgstore/status.h"

namespace msgstore {

// A decimal integer 0..max (no sign, no spaces, no trailing text).
Result<std::uint64_t> parse_unsigned(std::string_view text, std::string_view what, std::uint64_t max = UINT64_MAX);

// Milliseconds since the epoch, or ISO 8601 / RFC 3339: "2024-05-01", "2024-05-01T12:30:00",
// "2024-05-01T12:30:00.250Z", "2024-05-01 12:30:00+02:00". No zone means UTC.
Result<TimestampMs> parse_time_ms(std::string_view text, std::string_view what);

}  // namespace msgstore
