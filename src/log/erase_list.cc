#include "log/erase_list.h"

#include <algorithm>
#include <iterator>

#include "base/coding.h"
#include "base/crc32c.h"

namespace msgstore::log {

// Layout: magic u32 | version u16 | reserved u16 (0) | entry_count u64 |
//         entry_count x offset u64 (strictly increasing) | crc32c u32 of every byte before it.
std::string encode_erase_list(const std::vector<Offset>& offsets) {
  std::string bytes(erase_list_header_bytes + offsets.size() * 8 + erase_list_trailer_bytes, '\0');
  char* out = bytes.data();
  base::store_u32(out, erase_list_magic);
  base::store_u16(out + 4, erase_list_version);
  base::store_u64(out + 8, offsets.size());
  for (std::size_t i = 0; i < offsets.size(); ++i) base::store_u64(out + erase_list_header_bytes + i * 8, offsets[i]);
  const std::size_t covered = bytes.size() - erase_list_trailer_bytes;
  base::store_u32(out + covered, base::crc32c(out, covered));
  return bytes;
}

Result<std::vector<Offset>> decode_erase_list(std::string_view bytes) {
  if (bytes.size() < erase_list_header_bytes + erase_list_trailer_bytes) {
    return Status(ErrorCode::corruption, "erase list is " + std::to_string(bytes.size()) + " bytes, too short");
  }
  const char* in = bytes.data();
  if (base::load_u32(in) != erase_list_magic) return Status(ErrorCode::corruption, "erase list has a bad magic");
  const std::size_t covered = bytes.size() - erase_list_trailer_bytes;
  if (base::crc32c(in, covered) != base::load_u32(in + covered)) {
    return Status(ErrorCode::corruption, "erase list checksum mismatch");
  }
  if (base::load_u16(in + 4) != erase_list_version) {
    return Status(ErrorCode::unsupported_format, "erase list has version " + std::to_string(base::load_u16(in + 4)));
  }
  if (base::load_u16(in + 6) != 0) return Status(ErrorCode::corruption, "erase list reserved field is not zero");
  const std::uint64_t count = base::load_u64(in + 8);
  if ((covered - erase_list_header_bytes) % 8 != 0 || count != (covered - erase_list_header_bytes) / 8) {
    return Status(ErrorCode::corruption, "erase list length does not match its entry count");
  }
  std::vector<Offset> offsets;
  offsets.reserve(count);
  for (std::uint64_t i = 0; i < count; ++i) {
    const Offset offset = base::load_u64(in + erase_list_header_bytes + i * 8);
    if (!offsets.empty() && offset <= offsets.back()) {
      return Status(ErrorCode::corruption, "erase list offsets are not strictly increasing");
    }
    offsets.push_back(offset);
  }
  return offsets;
}

std::vector<Offset> merge_offsets(const std::vector<Offset>& left, const std::vector<Offset>& right) {
  std::vector<Offset> merged;
  merged.reserve(left.size() + right.size());
  std::set_union(left.begin(), left.end(), right.begin(), right.end(), std::back_inserter(merged));
  return merged;
}

std::vector<Offset> subtract_offsets(const std::vector<Offset>& from, const std::vector<Offset>& remove) {
  std::vector<Offset> remaining;
  remaining.reserve(from.size());
  std::set_difference(from.begin(), from.end(), remove.begin(), remove.end(), std::back_inserter(remaining));
  return remaining;
}

}  // namespace msgstore::log
