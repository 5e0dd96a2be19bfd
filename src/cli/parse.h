// Parsing of the CLI's value syntaxes: counts, durations, byte sizes, points in time.
//
// Every parser returns invalid_argument with a message that names the option (`what`) and
// shows the accepted syntax, so the CLI can print it as it is.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/text_parse.h"
#include "msgstore/message.h"
#include "msgstore/status.h"

namespace msgstore::cli {

// parse_unsigned (0..max) and parse_time_ms (milliseconds or ISO 8601) live in
// base/text_parse.h: the HTTP server's query parameters share them.
using msgstore::parse_time_ms;
using msgstore::parse_unsigned;

// "500ms", "3600s", "15m", "2h", "7d", "1w", or "0" (unlimited). Returns milliseconds.
Result<std::int64_t> parse_duration_ms(std::string_view text, std::string_view what);

// "1048576", "512B", "64KiB", "1MiB", "1GiB", "1TiB" (powers of 1024) or "10KB", "1MB", "1GB",
// "1TB" (powers of 1000). Unit letters are case-insensitive.
Result<std::uint64_t> parse_bytes(std::string_view text, std::string_view what);

// "2024-05-01T12:30:00.250Z".
std::string format_time_iso(TimestampMs time_ms);

// "name=value" (the value may be empty, the name may not; the first '=' splits), as a view
// into `text`, for --header flags.
Result<HeaderView> parse_header_assignment(std::string_view text, std::string_view what);

// Splits "a,b,,c" into {"a","b","c"} (empty items are dropped).
std::vector<std::string> split_list(std::string_view text, char separator = ',');

}  // namespace msgstore::cli
