// libFuzzer target: arbitrary bytes as a partition's erase list (docs/formats/erase-list.md).
// A list that decodes must be strictly increasing and must encode back to the same bytes.
// Each input is decoded as it is, and again with its trailing CRC32C recomputed, so that the
// checks behind the checksum (version, length, count, order) are reached too.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "base/coding.h"
#include "base/crc32c.h"
#include "log/erase_list.h"

namespace {

void decode_and_check(std::string_view bytes) {
  auto offsets = msgstore::log::decode_erase_list(bytes);
  if (!offsets) return;
  for (std::size_t i = 1; i < offsets->size(); ++i) {
    if ((*offsets)[i] <= (*offsets)[i - 1]) std::abort();
  }
  if (msgstore::log::encode_erase_list(*offsets) != bytes) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  decode_and_check(bytes);
  if (bytes.size() >= msgstore::log::erase_list_trailer_bytes) {
    const std::size_t covered = bytes.size() - msgstore::log::erase_list_trailer_bytes;
    msgstore::base::store_u32(bytes.data() + covered, msgstore::base::crc32c(bytes.data(), covered));
    decode_and_check(bytes);
  }
  return 0;
}
