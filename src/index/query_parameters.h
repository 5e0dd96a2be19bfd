// The query model's text form: named parameters -> Query, and the statistics as named fields.
//
// One translation for every front end. The CLI's `msgstore query` flags and the HTTP API's
// query parameters (GET /v1/query, GET /v1/streams/{stream}/query) are the same names, so a
// flag and a parameter can never disagree on syntax, limits or errors:
//
//   partition=N            from_offset=N  to_offset=N       (offset ranges are [from, to))
//   from_time=T  to_time=T  (T: milliseconds or RFC 3339 / ISO 8601; see base/text_parse.h)
//   from_time_ms=MS  to_time_ms=MS  (milliseconds only; give from_time or from_time_ms, not both)
//   subject=PATTERN  key=KEY  header.NAME=VALUE (repeatable; AND)  contains=TEXT
//   order=oldest|newest  limit=N (1..limits::query_results_max, default 100)  cursor=TEXT
//   scan=true|false (Query::allow_scan)  explain=true|false (report statistics)
//
// Every error is invalid_argument and names the parameter in the caller's spelling
// ("--from-time" or "query parameter from_time"). The predicates themselves (ranges, patterns,
// cursors, indexed headers) are checked by Store::query, with the same code.
//
// Thread safety: plain functions.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "msgstore/query.h"
#include "msgstore/status.h"

namespace msgstore::index {

// How a parameter is named in error messages.
enum class ParameterSpelling : std::uint8_t {
  command_line,  // from_time -> "--from-time", header.x -> "--header"
  http_query,    // from_time -> "query parameter from_time"
};

// Parameters as (name, value) pairs, in the order given; repeats are kept.
using QueryParameterList = std::vector<std::pair<std::string, std::string>>;

// The prefix of header equality parameters: "header.region=eu".
inline constexpr std::string_view header_parameter_prefix = "header.";

struct QueryRequest {
  Query query;
  bool explain = false;  // report QueryStatistics with the result
};

// `stream` may be empty (every stream). Unknown names and a repeated name (other than
// header.NAME) are errors: a typo must not silently widen a query.
Result<QueryRequest> parse_query_parameters(std::string stream, const QueryParameterList& parameters,
                                            ParameterSpelling spelling);

// The statistics' numeric fields, in a fixed order, by their stable names ("segments_read",
// ...); `plan` is QueryStatistics::plan. Every front end renders these names.
void for_each_query_statistic(const QueryStatistics& statistics,
                              const std::function<void(std::string_view name, std::uint64_t value)>& visit);

}  // namespace msgstore::index
