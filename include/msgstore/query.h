// msgstore/query.h: the query model, shared by the embedded API, the CLI and the HTTP front end.
//
//   msgstore::Query query;
//   query.stream = "orders";
//   query.key = "order-1234";
//   query.from_time_ms = tuesday_ms;
//   query.order = msgstore::QueryOrder::newest_first;
//   query.limit = 20;
//   auto result = store->query(query, [](const msgstore::QueryMatch& match) {
//     ...  // match.message is valid only during this call
//     return msgstore::ScanControl::proceed;
//   });
//   // result->next_cursor: pass it as query.cursor to fetch the next page.
//
// Predicates combine with AND. Ranges are half-open: [from, to). Results come out per stream
// (by name), per partition (by number), and within a partition by offset, ascending for
// oldest_first and descending for newest_first; they stream through the callback, so a query
// never holds more than one read buffer of the log in memory.
//
// Key, header and exact-subject predicates are answered from per-segment indexes (see
// docs/query.md): their cost grows with the matches and the segments touched, not with the
// size of the log. A header equality on a header the stream does not index is an error unless
// `allow_scan` is set; a payload `contains` is always a scan, limited by the other predicates.
//
// Consistency: a query reads each partition up to its high watermark when the query reached
// that partition; index files are replaced atomically, so a query never sees a half-written
// index, and segments deleted by retention during a query stay readable until it is done.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "msgstore/message.h"
#include "msgstore/status.h"

namespace msgstore {

enum class QueryOrder : std::uint8_t { oldest_first, newest_first };

struct Query {
  std::string stream;                    // empty: every stream (each must satisfy the predicates)
  std::optional<std::uint32_t> partition;
  std::optional<TimestampMs> from_time_ms;  // timestamp >= from_time_ms
  std::optional<TimestampMs> to_time_ms;    // timestamp < to_time_ms
  std::optional<Offset> from_offset;        // offset >= from_offset
  std::optional<Offset> to_offset;          // offset < to_offset
  std::string subject_pattern;           // empty: any subject; "*" and ">" wildcards allowed
  std::optional<std::string> key;
  std::vector<Header> header_equals;     // every one must be present with that value
  std::optional<std::string> payload_contains;  // substring of the payload bytes
  QueryOrder order = QueryOrder::oldest_first;
  std::size_t limit = 100;               // 1 to limits::query_results_max
  std::string cursor;                    // from a previous result's next_cursor; empty to start
  // Allow header equalities on headers the stream does not index (a scan) instead of an error.
  bool allow_scan = false;
};

// Where a query's work went: `msgstore query --explain`.
struct QueryStatistics {
  std::string plan;                          // "key index", "header index (name)", "subject index", "scan"
  std::uint64_t partitions_considered = 0;
  std::uint64_t segments_considered = 0;
  std::uint64_t segments_skipped_by_range = 0;   // outside the offset or time range
  std::uint64_t segments_skipped_by_filter = 0;  // the segment's filter says no term can match
  std::uint64_t segments_read = 0;
  std::uint64_t index_lookups = 0;
  std::uint64_t index_files_rebuilt = 0;     // missing, damaged or stale index files rebuilt from the log
  std::uint64_t bytes_read = 0;              // log and index bytes read from files
  std::uint64_t messages_examined = 0;
  std::uint64_t messages_matched = 0;
};

struct QueryMatch {
  std::string_view stream;
  std::uint32_t partition = 0;
  const MessageView& message;
};

struct QueryResult {
  // Set when the limit was reached or the callback stopped: the query continues from here.
  // Empty when every match was delivered.
  std::string next_cursor;
  QueryStatistics statistics;
};

// What a MessageView callback (a scan's, a query's) returns: keep going or stop.
enum class ScanControl : bool { stop = false, proceed = true };

using QueryCallback = std::function<ScanControl(const QueryMatch&)>;

}  // namespace msgstore
