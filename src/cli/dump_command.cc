// dump PATH: a human-readable listing of one segment log file or index file
// (docs/formats/segment-log.md).
//
// The file is recognised by its magic number (by its name if the magic is damaged). Every
// length is checked before it is trusted: the batch framing comes from log/record_batch.h,
// which validates a header's CRC before its length and never reads out of range. A damaged
// batch header ends the listing (nothing after it can be framed); a batch whose body CRC is bad
// is reported and skipped (its header, and so its length, is intact). Exit 1 if anything was
// damaged.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <memory>

#include "base/coding.h"
#include "base/crc32c.h"
#include "cli/command.h"
#include "cli/json.h"
#include "cli/output.h"
#include "cli/parse.h"
#include "io/metadata_file.h"
#include "log/erase_list.h"
#include "log/format.h"
#include "log/record_batch.h"
#include "log/segment.h"
#include "msgstore/file_system.h"

namespace msgstore::cli {
namespace {

namespace format = log::format;

struct DumpFlags {
  std::string path;
  bool records = false;
};

std::string hex32(std::uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08" PRIx32, value);
  return text;
}

std::string time_text(TimestampMs time_ms) { return format_time_iso(time_ms) + " (" + std::to_string(time_ms) + ")"; }

std::string crc_text(bool ok) { return ok ? "crc ok" : "crc BAD"; }

// Reads up to `size` bytes at `position`; fewer only at end of file.
Result<std::string> read_bytes(const File& file, std::uint64_t position, std::size_t size) {
  std::string bytes(size, '\0');
  auto got = file.read_at(position, bytes.data(), size);
  if (!got) return got.status();
  bytes.resize(*got);
  return bytes;
}

// True if every byte from `position` to `end` is zero; `nonzero_at` is the first that is not.
Result<bool> all_zero(const File& file, std::uint64_t position, std::uint64_t end, std::uint64_t& nonzero_at) {
  constexpr std::size_t chunk_bytes = 1 << 20;
  while (position < end) {
    auto chunk = read_bytes(file, position, static_cast<std::size_t>(std::min<std::uint64_t>(chunk_bytes, end - position)));
    if (!chunk) return chunk.status();
    if (chunk->empty()) break;
    for (std::size_t i = 0; i < chunk->size(); ++i) {
      if ((*chunk)[i] != 0) {
        nonzero_at = position + i;
        return false;
      }
    }
    position += chunk->size();
  }
  return true;
}

// Explains why the batch header at `position` did not check out.
std::string diagnose_batch_header(const File& file, std::uint64_t position, std::uint64_t file_size) {
  const std::uint64_t available = file_size - position;
  if (available < format::batch_header_bytes) {
    return "only " + std::to_string(available) + " bytes left, fewer than a batch header (" +
           std::to_string(format::batch_header_bytes) + "), and not all zero: a torn write";
  }
  auto bytes = read_bytes(file, position, format::batch_header_bytes);
  if (!bytes || bytes->size() < format::batch_header_bytes) return "header could not be read";
  const char* data = bytes->data();
  const std::uint32_t magic = base::load_u32(data);
  if (magic == 0) return "zero magic but non-zero header bytes";
  if (magic != format::batch_magic) {
    return "magic " + hex32(magic) + ", expected " + hex32(format::batch_magic);
  }
  const std::uint32_t stored_crc = base::load_u32(data + format::batch_header_crc_position);
  const std::uint32_t computed_crc = base::crc32c(data, format::batch_header_crc_position);
  if (stored_crc != computed_crc) {
    return "header crc BAD (stored " + hex32(stored_crc) + ", computed " + hex32(computed_crc) + ")";
  }
  const std::uint16_t version = base::load_u16(data + 4);
  if (version != format::batch_version) return "batch version " + std::to_string(version) + " is not supported";
  const std::uint32_t batch_bytes = base::load_u32(data + 8);
  const std::uint32_t record_count = base::load_u32(data + 12);
  if (batch_bytes > available) {
    return "batch_bytes " + std::to_string(batch_bytes) + " runs past the end of the file (" + std::to_string(available) +
           " bytes left): a torn write";
  }
  return "invalid fields (batch_bytes " + std::to_string(batch_bytes) + ", record_count " + std::to_string(record_count) +
         ", attributes " + std::to_string(base::load_u16(data + 6)) + ")";
}

int dump_segment(const File& file, std::uint64_t file_size, bool show_records, const std::vector<Offset>& erased) {
  std::uint64_t damage = 0;
  print_line("segment log, " + std::to_string(file_size) + " bytes");
  if (file_size < format::segment_header_bytes) {
    print_line("DAMAGE: the file is shorter than a segment header (" + std::to_string(format::segment_header_bytes) + " bytes)");
    return fail(Status(ErrorCode::corruption, "segment header truncated"));
  }
  auto header_bytes = read_bytes(file, 0, format::segment_header_bytes);
  if (!header_bytes) return fail(header_bytes.status());
  if (header_bytes->size() < format::segment_header_bytes) return fail(Status(ErrorCode::io_error, "short read of the segment header"));
  const char* header = header_bytes->data();
  const std::uint32_t magic = base::load_u32(header);
  const std::uint16_t version = base::load_u16(header + 4);
  const Offset segment_base = base::load_u64(header + 8);
  const bool header_ok = base::crc32c(header, format::segment_header_crc_position) ==
                         base::load_u32(header + format::segment_header_crc_position);
  print_line("header: magic " + hex32(magic) + (magic == format::segment_magic ? " (MSSG)" : " (expected MSSG)") +
             ", version " + std::to_string(version) + ", flags " + std::to_string(base::load_u16(header + 6)) +
             ", base_offset " + std::to_string(segment_base) + ", created " + time_text(base::load_i64(header + 16)) +
             ", " + crc_text(header_ok));
  if (magic != format::segment_magic || !header_ok) {
    print_line("DAMAGE: segment header is not valid; stopping");
    return fail(Status(ErrorCode::corruption, "segment header damaged"));
  }
  if (version != format::segment_version && version != format::segment_version_rewritten) {
    return fail(Status(ErrorCode::unsupported_format, "segment format version " + std::to_string(version)));
  }
  if (version == format::segment_version_rewritten) print_line("rewritten segment (compaction or erase): offsets may have gaps");

  log::BatchScanner scanner(file, format::segment_header_bytes, file_size);
  log::RecordDecoder decoder;
  std::uint64_t batches = 0;
  std::uint64_t records = 0;
  std::optional<Offset> expected_offset = segment_base;
  std::uint64_t valid_end = format::segment_header_bytes;
  while (true) {
    const log::BatchScanner::Step step = scanner.next(/*verify_body=*/false);
    if (step == log::BatchScanner::Step::io_error) return fail(scanner.error());
    if (step == log::BatchScanner::Step::end_of_log) {
      if (scanner.position() < file_size) {
        std::uint64_t nonzero_at = 0;
        auto zeros = all_zero(file, scanner.position(), file_size, nonzero_at);
        if (!zeros) return fail(zeros.status());
        if (*zeros) {
          print_line("end of log at byte " + std::to_string(scanner.position()) + "; " +
                     std::to_string(file_size - scanner.position()) + " zero bytes follow (unwritten space)");
        } else {
          ++damage;
          print_line("DAMAGE at byte " + std::to_string(scanner.position()) + ": zero bytes, then non-zero data at byte " +
                     std::to_string(nonzero_at) + "; stopping");
        }
      }
      break;
    }
    if (step == log::BatchScanner::Step::damaged) {
      ++damage;
      print_line("DAMAGE at byte " + std::to_string(scanner.position()) + ": " +
                 diagnose_batch_header(file, scanner.position(), file_size) + "; stopping (" +
                 std::to_string(file_size - scanner.position()) + " bytes not listed)");
      break;
    }
    const log::BatchHeader& batch = scanner.header();
    const bool body_ok = log::check_batch_body(scanner.batch(), batch);
    ++batches;
    std::string line = "batch at byte " + std::to_string(scanner.position()) + ": base_offset " +
                       std::to_string(batch.base_offset) + ", last_offset " + std::to_string(batch.last_offset()) + ", " +
                       std::to_string(batch.record_count) + " record(s), " + std::to_string(batch.batch_bytes) +
                       " bytes, timestamps " + time_text(batch.first_timestamp_ms) + " to " +
                       time_text(batch.max_timestamp_ms) + ", " + crc_text(body_ok);
    if (expected_offset && batch.base_offset != *expected_offset) {
      line += batch.base_offset < *expected_offset ? " [offset goes back: expected " + std::to_string(*expected_offset) + "]"
                                                   : " [gap: expected " + std::to_string(*expected_offset) + "]";
    }
    print_line(line);
    expected_offset = batch.next_offset();
    valid_end = scanner.next_position();
    if (!body_ok) {
      ++damage;
      print_line("  DAMAGE: body checksum mismatch; records not decoded");
      continue;
    }
    records += batch.record_count;
    if (show_records) {
      Status decoded = decoder.decode(scanner.batch(), batch, [&](const MessageView& message) {
        // Erased messages are never shown, even while their bytes await the rewrite.
        if (std::binary_search(erased.begin(), erased.end(), message.offset)) {
          print_line("  record offset " + std::to_string(message.offset) + ": erased");
        } else {
          print_line("  record " + record_json(message));
        }
        return true;
      });
      if (!decoded.is_ok()) {
        ++damage;
        print_line("  DAMAGE: " + decoded.message());
      }
    }
  }
  print_line("summary: " + std::to_string(batches) + " batch(es), " + std::to_string(records) + " record(s) in good batches, " +
             "framed bytes " + std::to_string(format::segment_header_bytes) + ".." + std::to_string(valid_end) + ", " +
             (damage == 0 ? std::string("no damage") : std::to_string(damage) + " damaged place(s)"));
  if (!flush_output()) return fail(Status(ErrorCode::io_error, "writing to stdout failed"));
  if (damage > 0) return fail(Status(ErrorCode::corruption, "the segment is damaged (" + std::to_string(damage) + " place(s))"));
  return exit_success;
}

int dump_index(const File& file, std::uint64_t file_size, bool offset_index) {
  std::uint64_t damage = 0;
  const std::uint32_t expected_magic = offset_index ? format::offset_index_magic : format::time_index_magic;
  print_line(std::string(offset_index ? "offset index" : "time index") + ", " + std::to_string(file_size) + " bytes");
  if (file_size < format::index_header_bytes) {
    print_line("DAMAGE: the file is shorter than an index header (" + std::to_string(format::index_header_bytes) + " bytes)");
    return fail(Status(ErrorCode::corruption, "index header truncated"));
  }
  auto header_bytes = read_bytes(file, 0, format::index_header_bytes);
  if (!header_bytes) return fail(header_bytes.status());
  if (header_bytes->size() < format::index_header_bytes) return fail(Status(ErrorCode::io_error, "short read of the index header"));
  const char* header = header_bytes->data();
  const std::uint32_t magic = base::load_u32(header);
  const Offset base_offset = base::load_u64(header + 8);
  const bool header_ok =
      base::crc32c(header, format::index_header_crc_position) == base::load_u32(header + format::index_header_crc_position);
  print_line("header: magic " + hex32(magic) + (magic == expected_magic ? "" : " (expected " + hex32(expected_magic) + ")") +
             ", version " + std::to_string(base::load_u16(header + 4)) + ", base_offset " + std::to_string(base_offset) +
             ", " + crc_text(header_ok));
  if (magic != expected_magic || !header_ok) {
    print_line("DAMAGE: index header is not valid; stopping");
    return fail(Status(ErrorCode::corruption, "index header damaged"));
  }
  constexpr std::size_t chunk_entries = 4096;
  std::uint64_t entries = 0;
  for (std::uint64_t position = format::index_header_bytes; position + format::index_entry_bytes <= file_size;) {
    const std::uint64_t whole = (file_size - position) / format::index_entry_bytes;
    const std::size_t count = static_cast<std::size_t>(std::min<std::uint64_t>(whole, chunk_entries));
    auto chunk = read_bytes(file, position, count * format::index_entry_bytes);
    if (!chunk) return fail(chunk.status());
    if (chunk->size() < format::index_entry_bytes) break;
    for (std::size_t at = 0; at + format::index_entry_bytes <= chunk->size(); at += format::index_entry_bytes) {
      const char* entry = chunk->data() + at;
      const bool entry_ok = base::crc32c(entry, format::index_entry_crc_position) ==
                            base::load_u32(entry + format::index_entry_crc_position);
      if (!entry_ok) ++damage;
      std::string line = "entry " + std::to_string(entries) + " at byte " + std::to_string(position + at) + ": ";
      if (offset_index) {
        const std::uint32_t relative = base::load_u32(entry);
        line += "relative_offset " + std::to_string(relative) + " (offset " + std::to_string(base_offset + relative) +
                "), position " + std::to_string(base::load_u32(entry + 4));
      } else {
        const std::uint32_t relative = base::load_u32(entry + 8);
        line += "max_timestamp " + time_text(base::load_i64(entry)) + ", relative_offset " + std::to_string(relative) +
                " (offset " + std::to_string(base_offset + relative) + ")";
      }
      print_line(line + ", " + crc_text(entry_ok));
      ++entries;
    }
    position += chunk->size() - chunk->size() % format::index_entry_bytes;
  }
  const std::uint64_t trailing = (file_size - format::index_header_bytes) % format::index_entry_bytes;
  if (trailing != 0) print_line(std::to_string(trailing) + " trailing byte(s): a torn final entry (ignored by the store)");
  print_line("summary: " + std::to_string(entries) + " entries, " +
             (damage == 0 ? std::string("no damage") : std::to_string(damage) + " bad entr" + (damage == 1 ? "y" : "ies")));
  if (!flush_output()) return fail(Status(ErrorCode::io_error, "writing to stdout failed"));
  if (damage > 0) return fail(Status(ErrorCode::corruption, "the index has " + std::to_string(damage) + " bad entries"));
  return exit_success;
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

int run_dump(const DumpFlags& flags) {
  auto file_system = posix_file_system();
  if (file_system->is_directory(flags.path)) {
    return usage_error("dump: '" + flags.path + "' is a directory; give a .log, .offset_index or .time_index file");
  }
  auto file = file_system->open(flags.path, OpenMode::read_only);
  if (!file) return fail(file.status());
  auto size = (*file)->size();
  if (!size) return fail(size.status());
  print_line("file " + flags.path);
  auto magic_bytes = read_bytes(**file, 0, 4);
  if (!magic_bytes) return fail(magic_bytes.status());
  if (magic_bytes->size() < 4 && !ends_with(flags.path, ".log") && !ends_with(flags.path, "_index")) {
    return fail(Status(ErrorCode::unsupported_format, "'" + flags.path + "' is " + std::to_string(*size) +
                                                          " bytes, too short to be a msgstore segment or index file"));
  }
  const std::uint32_t magic = magic_bytes->size() == 4 ? base::load_u32(magic_bytes->data()) : 0;
  // The partition's erase list (log/erase_list.h), beside a segment file.
  std::vector<Offset> erased;
  const auto erase_list_path = std::filesystem::path(flags.path).parent_path() / log::erase_list_file_name;
  if (flags.records && file_system->exists(erase_list_path)) {
    auto bytes = io::read_whole_file(*file_system, erase_list_path);
    auto decoded = bytes ? log::decode_erase_list(*bytes) : Result<std::vector<Offset>>(bytes.status());
    if (!decoded) {
      return fail(Status(decoded.status().code(), "the erase list beside this file is unreadable, so records are not shown: " +
                                                      decoded.status().message()));
    }
    erased = std::move(*decoded);
  }
  if (magic == format::segment_magic) return dump_segment(**file, *size, flags.records, erased);
  if (magic == format::offset_index_magic) return dump_index(**file, *size, /*offset_index=*/true);
  if (magic == format::time_index_magic) return dump_index(**file, *size, /*offset_index=*/false);
  // Unknown magic: trust the name so the listing can say what is wrong with the header.
  if (ends_with(flags.path, ".log")) return dump_segment(**file, *size, flags.records, erased);
  if (ends_with(flags.path, ".offset_index")) return dump_index(**file, *size, /*offset_index=*/true);
  if (ends_with(flags.path, ".time_index")) return dump_index(**file, *size, /*offset_index=*/false);
  return fail(Status(ErrorCode::unsupported_format, "'" + flags.path + "' is not a msgstore segment or index file (magic " +
                                                        hex32(magic) + ")"));
}

}  // namespace

void add_dump_command(CLI::App& app, const GlobalOptions& /*global*/, Commands& commands) {
  auto flags = std::make_shared<DumpFlags>();
  CLI::App* dump = app.add_subcommand(
      "dump", "List a segment .log file (header, batches, CRC checks) or an .offset_index/.time_index file");
  dump->add_option("path", flags->path, "Segment or index file")->required();
  dump->add_flag("--records,-r", flags->records, "Also list every record of every batch");
  commands.push_back({dump, [flags] { return run_dump(*flags); }});
}

}  // namespace msgstore::cli
