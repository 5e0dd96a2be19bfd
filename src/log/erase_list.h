// The erase list of one partition: offsets whose messages were erased (Store::erase) but whose
// bytes may still be in a segment until the segment rewrite removes them. Reads skip every
// listed offset (PartitionLog::scan, the lowest read layer), so an erase is in force as soon as
// the list is durable. Format: docs/formats/erase-list.md.
//
// File: <partition directory>/erase_list.v1, replaced atomically (io::write_file_atomically:
// tmp, fsync, rename, fsync directory). A missing file is an empty list.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "msgstore/message.h"
#include "msgstore/status.h"

namespace msgstore::log {

inline constexpr const char* erase_list_file_name = "erase_list.v1";
inline constexpr std::uint32_t erase_list_magic = 0x4C45534Du;  // "MSEL" little-endian
inline constexpr std::uint16_t erase_list_version = 1;
inline constexpr std::size_t erase_list_header_bytes = 16;
inline constexpr std::size_t erase_list_trailer_bytes = 4;

// `offsets` must be sorted and unique.
std::string encode_erase_list(const std::vector<Offset>& offsets);
// corruption on a bad magic, length, order or checksum; unsupported_format on another version.
Result<std::vector<Offset>> decode_erase_list(std::string_view bytes);

// Sorted union / difference of two sorted, unique lists.
std::vector<Offset> merge_offsets(const std::vector<Offset>& left, const std::vector<Offset>& right);
std::vector<Offset> subtract_offsets(const std::vector<Offset>& from, const std::vector<Offset>& remove);

}  // namespace msgstore::log
