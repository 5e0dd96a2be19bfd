// The query engine behind Store::query (include/msgstore/query.h): validation, the plan
// (which index drives the query, which terms filter segments), the per-partition walk in
// either direction, and the cursor codec. docs/query.md describes the behaviour.
//
// Thread safety: run_query only reads; it may run concurrently with appends, retention and
// other queries on the same partitions.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "index/partition_index.h"
#include "log/partition_log.h"
#include "msgstore/query.h"
#include "msgstore/store.h"

namespace msgstore::index {

// One stream as the query sees it (a snapshot of the store's table entry).
struct QueryStream {
  std::string name;
  IndexConfiguration configuration;
  std::vector<std::shared_ptr<log::PartitionLog>> partitions;
  std::vector<std::shared_ptr<PartitionIndex>> indexes;  // same length as partitions
};

// Checks what can be checked without the streams: ranges, limit, pattern, cursor syntax.
Status validate_query(const Query& query);

// `streams` holds the streams in scope, sorted by name.
Result<QueryResult> run_query(const Query& query, const std::vector<QueryStream>& streams, const QueryCallback& callback);

// The offset of the newest message with `key` in one partition, or nullopt if none, counting
// messages appended but not yet acknowledged (for expected_key_offset, under the partition's
// append lock). Served by the key index; candidates are checked against the messages.
Result<std::optional<Offset>> last_offset_for_key(const log::PartitionLog& log, PartitionIndex& index, std::string_view key);

// The cursor: where a query continues. Opaque to users; versioned and checksummed.
struct QueryCursor {
  std::uint64_t query_fingerprint = 0;  // of the predicates: a cursor only continues its own query
  std::string stream;
  std::uint32_t partition = 0;
  Offset offset = 0;  // oldest_first: the next offset to consider; newest_first: one past it
};
std::string encode_cursor(const QueryCursor& cursor);
// invalid_argument "malformed cursor: ..." for anything but an untouched encode_cursor output.
Result<QueryCursor> decode_cursor(std::string_view text);
std::uint64_t query_fingerprint(const Query& query);

}  // namespace msgstore::index
