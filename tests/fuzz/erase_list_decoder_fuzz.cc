// libFuzzer target: arbitrary bytes as a partition's erase list (docs/formats/erase-list.md).
// A list that decodes must be strictly increasing and must encode back to the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "log/erase_list.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto offsets = msgstore::log::decode_erase_list(bytes);
  if (!offsets) return 0;
  for (std::size_t i = 1; i < offsets->size(); ++i) {
    if ((*offsets)[i] <= (*offsets)[i - 1]) std::abort();
  }
  if (msgstore::log::encode_erase_list(*offsets) != bytes) std::abort();
  return 0;
}
