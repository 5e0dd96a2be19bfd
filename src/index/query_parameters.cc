#include "index/query_parameters.h"

#include <algorithm>

#include "base/text_parse.h"
#include "msgstore/limits.h"

namespace msgstore::index {
namespace {

constexpr std::string_view known_names[] = {"partition", "from_time", "from_time_ms", "to_time",  "to_time_ms",
                                            "from_offset", "to_offset", "subject",    "key",      "contains",
                                            "order",      "limit",     "cursor",      "scan",     "explain"};

std::string spelled(std::string_view name, ParameterSpelling spelling) {
  if (spelling == ParameterSpelling::http_query) return "query parameter " + std::string(name);
  if (name.starts_with(header_parameter_prefix)) return "--header";
  if (name == "order") return "--newest-first";
  std::string flag = "--" + std::string(name);
  std::replace(flag.begin() + 2, flag.end(), '_', '-');
  return flag;
}

Status invalid(std::string_view name, ParameterSpelling spelling, std::string_view problem) {
  return Status(ErrorCode::invalid_argument, spelled(name, spelling) + ": " + std::string(problem));
}

Result<bool> parse_boolean(std::string_view name, std::string_view text, ParameterSpelling spelling) {
  if (text == "true" || text == "1" || text.empty()) return true;  // "?explain" alone means true
  if (text == "false" || text == "0") return false;
  return invalid(name, spelling, "'" + std::string(text) + "' is not true or false");
}

}  // namespace

Result<QueryRequest> parse_query_parameters(std::string stream, const QueryParameterList& parameters,
                                            ParameterSpelling spelling) {
  QueryRequest request;
  Query& query = request.query;
  query.stream = std::move(stream);
  std::vector<std::string_view> seen;
  for (const auto& [name, value] : parameters) {
    const std::string described = spelled(name, spelling);
    if (name.starts_with(header_parameter_prefix)) {
      std::string header_name = name.substr(header_parameter_prefix.size());
      if (header_name.empty()) return invalid(name, spelling, "the header name is empty (header.NAME=VALUE)");
      query.header_equals.push_back({std::move(header_name), value});
      continue;
    }
    if (std::find(std::begin(known_names), std::end(known_names), name) == std::end(known_names)) {
      std::string accepted;
      for (const std::string_view known : known_names) accepted += std::string(known) + ", ";
      return Status(ErrorCode::invalid_argument,
                    "unknown " + described + " (accepted: " + accepted + "header.NAME)");
    }
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) return invalid(name, spelling, "given more than once");
    seen.push_back(name);
    if (name == "partition") {
      auto partition = parse_unsigned(value, described, limits::partitions_per_stream_max - 1);
      if (!partition) return partition.status();
      query.partition = static_cast<std::uint32_t>(*partition);
    } else if (name == "from_time" || name == "to_time" || name == "from_time_ms" || name == "to_time_ms") {
      const bool from = name.starts_with("from_");
      std::optional<TimestampMs>& bound = from ? query.from_time_ms : query.to_time_ms;
      if (bound) {
        return invalid(name, spelling, from ? "give from_time or from_time_ms, not both" : "give to_time or to_time_ms, not both");
      }
      if (name.ends_with("_ms")) {
        auto time_ms = parse_unsigned(value, described, static_cast<std::uint64_t>(INT64_MAX));
        if (!time_ms) return time_ms.status();
        bound = static_cast<TimestampMs>(*time_ms);
      } else {
        auto time_ms = parse_time_ms(value, described);
        if (!time_ms) return time_ms.status();
        bound = *time_ms;
      }
    } else if (name == "from_offset" || name == "to_offset") {
      auto offset = parse_unsigned(value, described);
      if (!offset) return offset.status();
      (name == "from_offset" ? query.from_offset : query.to_offset) = *offset;
    } else if (name == "subject") {
      query.subject_pattern = value;
    } else if (name == "key") {
      query.key = value;
    } else if (name == "contains") {
      query.payload_contains = value;
    } else if (name == "order") {
      if (value == "oldest") query.order = QueryOrder::oldest_first;
      else if (value == "newest") query.order = QueryOrder::newest_first;
      else return invalid(name, spelling, "'" + value + "' is not oldest or newest");
    } else if (name == "limit") {
      auto limit = parse_unsigned(value, described, limits::query_results_max);
      if (!limit) return limit.status();
      if (*limit == 0) return invalid(name, spelling, "must be at least 1");
      query.limit = static_cast<std::size_t>(*limit);
    } else if (name == "cursor") {
      query.cursor = value;
    } else if (name == "scan") {
      auto scan = parse_boolean(name, value, spelling);
      if (!scan) return scan.status();
      query.allow_scan = *scan;
    } else if (name == "explain") {
      auto explain = parse_boolean(name, value, spelling);
      if (!explain) return explain.status();
      request.explain = *explain;
    }
  }
  return request;
}

void for_each_query_statistic(const QueryStatistics& statistics,
                              const std::function<void(std::string_view name, std::uint64_t value)>& visit) {
  visit("partitions_considered", statistics.partitions_considered);
  visit("segments_considered", statistics.segments_considered);
  visit("segments_skipped_by_range", statistics.segments_skipped_by_range);
  visit("segments_skipped_by_filter", statistics.segments_skipped_by_filter);
  visit("segments_read", statistics.segments_read);
  visit("index_lookups", statistics.index_lookups);
  visit("index_files_rebuilt", statistics.index_files_rebuilt);
  visit("bytes_read", statistics.bytes_read);
  visit("messages_examined", statistics.messages_examined);
  visit("messages_matched", statistics.messages_matched);
}

}  // namespace msgstore::index
