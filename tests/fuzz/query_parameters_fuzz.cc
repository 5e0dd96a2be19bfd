// libFuzzer target: arbitrary text as a query string ("name=value&name=value", no escapes) for
// the shared query parameters (index/query_parameters.h, the CLI flags and the HTTP query
// endpoint). Parsing must return a value or invalid_argument, never crash; what it accepts
// goes on to the query validation (cursor decode, ranges, patterns) the store runs first.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "index/query_engine.h"
#include "index/query_parameters.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  msgstore::index::QueryParameterList parameters;
  while (!text.empty()) {
    const std::size_t ampersand = text.find('&');
    const std::string_view pair = text.substr(0, ampersand);
    text = ampersand == std::string_view::npos ? std::string_view() : text.substr(ampersand + 1);
    const std::size_t equals = pair.find('=');
    parameters.emplace_back(std::string(pair.substr(0, equals)),
                            equals == std::string_view::npos ? std::string() : std::string(pair.substr(equals + 1)));
  }
  for (const auto spelling : {msgstore::index::ParameterSpelling::http_query, msgstore::index::ParameterSpelling::command_line}) {
    auto request = msgstore::index::parse_query_parameters("orders", parameters, spelling);
    if (!request) {
      if (request.status().code() != msgstore::ErrorCode::invalid_argument) std::abort();
      continue;
    }
    const msgstore::Status valid = msgstore::index::validate_query(request->query);
    if (!valid.is_ok() && valid.code() != msgstore::ErrorCode::invalid_argument) std::abort();
  }
  return 0;
}
