// libFuzzer target: arbitrary text as a query cursor. Decoding must refuse anything that is not
// an untouched encode_cursor output, and what it accepts must encode back to the same text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "index/query_engine.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cursor = msgstore::index::decode_cursor(text);
  if (cursor && msgstore::index::encode_cursor(*cursor) != text) std::abort();
  return 0;
}
