#include "io/metadata_file.h"

#include <charconv>
#include <cstdio>

#include "base/assert.h"
#include "base/crc32c.h"

namespace msgstore::io {

std::string encode_metadata(std::string_view kind, std::uint32_t version, const MetadataFields& fields) {
  std::string text = "msgstore " + std::string(kind) + " v" + std::to_string(version) + "\n";
  for (const auto& [key, value] : fields) {
    MS_ASSERT(key.find('=') == std::string::npos && key.find('\n') == std::string::npos);
    MS_ASSERT(value.find('\n') == std::string::npos);
    text += key;
    text += '=';
    text += value;
    text += '\n';
  }
  char checksum[32];
  std::snprintf(checksum, sizeof checksum, "crc32c=%08x\n", base::crc32c(text.data(), text.size()));
  text += checksum;
  return text;
}

Result<MetadataFields> decode_metadata(std::string_view kind, std::uint32_t version, std::string_view text) {
  const std::string prefix = "msgstore " + std::string(kind) + " v";
  if (text.substr(0, prefix.size()) != prefix) {
    return Status(ErrorCode::corruption, "not a msgstore " + std::string(kind) + " file");
  }
  const std::size_t checksum_line = text.rfind("crc32c=");
  if (checksum_line == std::string_view::npos || text.size() != checksum_line + 16 || text.back() != '\n') {
    return Status(ErrorCode::corruption, std::string(kind) + " file has no checksum line (torn or truncated)");
  }
  // Exactly 8 lowercase hex digits: from_chars would also take uppercase, which would let a
  // flipped case bit pass unnoticed.
  char expected[9];
  std::snprintf(expected, sizeof expected, "%08x", base::crc32c(text.data(), checksum_line));
  if (text.substr(checksum_line + 7, 8) != std::string_view(expected, 8)) {
    return Status(ErrorCode::corruption, std::string(kind) + " file checksum mismatch");
  }
  std::string_view body = text.substr(0, checksum_line);
  std::size_t first_newline = body.find('\n');
  std::string_view version_text = body.substr(prefix.size(), first_newline - prefix.size());
  if (version_text != std::to_string(version)) {
    return Status(ErrorCode::unsupported_format, std::string(kind) + " file version v" + std::string(version_text) +
                                                     " is not supported (this build reads v" + std::to_string(version) + ")");
  }
  MetadataFields fields;
  std::size_t position = first_newline + 1;
  while (position < body.size()) {
    std::size_t newline = body.find('\n', position);
    std::string_view line = body.substr(position, newline - position);
    std::size_t equals = line.find('=');
    if (equals == std::string_view::npos) return Status(ErrorCode::corruption, std::string(kind) + " file has a malformed line");
    fields.emplace(std::string(line.substr(0, equals)), std::string(line.substr(equals + 1)));
    position = newline + 1;
  }
  return fields;
}

Status write_file_atomically(FileSystem& file_system, const std::filesystem::path& path, std::string_view content) {
  std::filesystem::path temporary = path;
  temporary += ".tmp";
  {
    auto file = file_system.open(temporary, OpenMode::create_truncate);
    if (!file) return file.status();
    MSGSTORE_RETURN_IF_ERROR((*file)->write_at(0, content.data(), content.size()));
    MSGSTORE_RETURN_IF_ERROR((*file)->sync());
  }
  MSGSTORE_RETURN_IF_ERROR(file_system.rename(temporary, path));
  return file_system.sync_directory(path.parent_path());
}

Result<std::string> read_whole_file(FileSystem& file_system, const std::filesystem::path& path) {
  auto file = file_system.open(path, OpenMode::read_only);
  if (!file) return file.status();
  auto size = (*file)->size();
  if (!size) return size.status();
  std::string content(*size, '\0');
  auto got = (*file)->read_at(0, content.data(), content.size());
  if (!got) return got.status();
  content.resize(*got);
  return content;
}

Status write_metadata_file(FileSystem& file_system, const std::filesystem::path& path, std::string_view kind,
                           std::uint32_t version, const MetadataFields& fields) {
  return write_file_atomically(file_system, path, encode_metadata(kind, version, fields));
}

Result<MetadataFields> read_metadata_file(FileSystem& file_system, const std::filesystem::path& path,
                                          std::string_view kind, std::uint32_t version) {
  auto text = read_whole_file(file_system, path);
  if (!text) return text.status();
  auto fields = decode_metadata(kind, version, *text);
  if (!fields) return Status(fields.status().code(), path.string() + ": " + fields.status().message());
  return fields;
}

namespace {
template <typename Integer>
Result<Integer> parse_field(const MetadataFields& fields, const std::string& key) {
  auto found = fields.find(key);
  if (found == fields.end()) return Status(ErrorCode::corruption, "metadata field '" + key + "' is missing");
  Integer value{};
  const std::string& text = found->second;
  auto parsed = std::from_chars(text.data(), text.data() + text.size(), value);
  if (parsed.ec != std::errc() || parsed.ptr != text.data() + text.size()) {
    return Status(ErrorCode::corruption, "metadata field '" + key + "' is not a number: " + text);
  }
  return value;
}
}  // namespace

Result<std::uint64_t> metadata_u64(const MetadataFields& fields, const std::string& key) {
  return parse_field<std::uint64_t>(fields, key);
}
Result<std::int64_t> metadata_i64(const MetadataFields& fields, const std::string& key) {
  return parse_field<std::int64_t>(fields, key);
}

}  // namespace msgstore::io
