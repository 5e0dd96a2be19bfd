// Small metadata files (stream configuration, partition checkpoints, store identity), written
// by the only crash-safe recipe: write "<name>.tmp", fsync it, rename over "<name>", fsync the
// directory. Their format (docs/formats/metadata-files.md) is text, one "key=value" per line,
// framed by a "msgstore <kind> v<version>" first line and a final "crc32c=<8 hex digits>"
// line that covers every byte before it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "msgstore/file_system.h"
#include "msgstore/status.h"

namespace msgstore::io {

using MetadataFields = std::map<std::string, std::string>;

// Values may not contain '\n'; keys may not contain '=' or '\n' (asserted).
std::string encode_metadata(std::string_view kind, std::uint32_t version, const MetadataFields& fields);
// corruption on a bad frame or checksum; unsupported_format on an unknown version.
Result<MetadataFields> decode_metadata(std::string_view kind, std::uint32_t version, std::string_view text);

Status write_file_atomically(FileSystem& file_system, const std::filesystem::path& path, std::string_view content);
Result<std::string> read_whole_file(FileSystem& file_system, const std::filesystem::path& path);

Status write_metadata_file(FileSystem& file_system, const std::filesystem::path& path, std::string_view kind,
                           std::uint32_t version, const MetadataFields& fields);
Result<MetadataFields> read_metadata_file(FileSystem& file_system, const std::filesystem::path& path,
                                          std::string_view kind, std::uint32_t version);

// Helpers for typed fields; invalid_argument-free: a missing or malformed field is corruption.
Result<std::uint64_t> metadata_u64(const MetadataFields& fields, const std::string& key);
Result<std::int64_t> metadata_i64(const MetadataFields& fields, const std::string& key);

}  // namespace msgstore::io
