#include "server/message_json.h"

#include <array>
#include <charconv>
#include <cstring>
#include <span>
#include <vector>

#include "base/text_encoding.h"

namespace msgstore::server {
namespace {

// Bytes a JSON string cannot hold as they are: control bytes, '"', '\\', and every byte of a
// multi-byte UTF-8 sequence (checked for well-formedness, then copied).
constexpr std::array<bool, 256> needs_care_table() {
  std::array<bool, 256> table{};
  for (int byte = 0; byte < 256; ++byte) table[byte] = byte < 0x20 || byte == '"' || byte == '\\' || byte >= 0x80;
  return table;
}
constexpr std::array<bool, 256> needs_care = needs_care_table();

// True if any of the 8 bytes needs care (the same bytes as the table; SWAR zero-byte tests:
// a byte below 0x20, equal to '"' or '\\', or with its top bit set). Plain text is then checked
// 8 bytes per step rather than 1.
constexpr bool word_needs_care(std::uint64_t word) {
  constexpr std::uint64_t ones = 0x0101010101010101ull;
  constexpr std::uint64_t high_bits = 0x8080808080808080ull;
  const auto has_zero_byte = [](std::uint64_t value) { return ((value - ones) & ~value & high_bits) != 0; };
  const bool below_space = ((word - 0x20 * ones) & ~word & high_bits) != 0;
  return (word & high_bits) != 0 || below_space || has_zero_byte(word ^ ('"' * ones)) || has_zero_byte(word ^ ('\\' * ones));
}

// Appends "text", quoted and escaped as Boost.JSON's serializer does. With `require_utf8`, text
// that is not well-formed UTF-8 leaves `out` as it was and returns false; without it, bytes
// above 0x7F are copied unchecked (what the serializer does with any string).
bool append_escaped(std::string& out, std::string_view text, bool require_utf8) {
  static constexpr char hex_digits[] = "0123456789abcdef";
  const std::size_t start = out.size();
  out.push_back('"');
  const char* const data = text.data();
  std::size_t run_start = 0;
  std::size_t at = 0;
  while (at < text.size()) {
    if (at + sizeof(std::uint64_t) <= text.size()) {
      std::uint64_t word;
      std::memcpy(&word, data + at, sizeof word);
      if (!word_needs_care(word)) {
        at += sizeof word;
        continue;
      }
    }
    const auto byte = static_cast<unsigned char>(data[at]);
    if (!needs_care[byte]) {
      ++at;
      continue;
    }
    out.append(data + run_start, at - run_start);
    if (byte >= 0x80) {
      const std::size_t length = require_utf8 ? utf8_sequence_bytes(text, at) : 1;
      if (length == 0) {
        out.resize(start);
        return false;
      }
      out.append(data + at, length);
      at += length;
    } else {
      out.push_back('\\');
      switch (byte) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '\b': out.push_back('b'); break;
        case '\f': out.push_back('f'); break;
        case '\n': out.push_back('n'); break;
        case '\r': out.push_back('r'); break;
        case '\t': out.push_back('t'); break;
        default:
          out.append("u00", 3);
          out.push_back(hex_digits[byte >> 4]);
          out.push_back(hex_digits[byte & 0xF]);
      }
      ++at;
    }
    run_start = at;
  }
  out.append(data + run_start, text.size() - run_start);
  out.push_back('"');
  return true;
}

bool append_string_if_utf8(std::string& out, std::string_view text) { return append_escaped(out, text, true); }

// Stream names, subjects (validated text) and header names already found to be UTF-8.
void append_string(std::string& out, std::string_view text) { append_escaped(out, text, false); }

template <typename Integer>
void append_integer(std::string& out, Integer value) {
  char digits[24];
  const auto result = std::to_chars(std::begin(digits), std::end(digits), value);
  out.append(digits, result.ptr);
}

// ,"name":"text" when `bytes` is UTF-8, else ,"base64_name":"base64".
void append_bytes_field(std::string& out, std::string_view text_name, std::string_view base64_name,
                        std::string_view bytes) {
  const std::size_t start = out.size();
  out.append(",\"").append(text_name).append("\":");
  if (append_string_if_utf8(out, bytes)) return;
  out.resize(start);
  out.append(",\"").append(base64_name).append("\":\"");
  base64_append(out, bytes);
  out.push_back('"');
}

// Where message_to_json puts each header: in "headers" (name and value UTF-8), in
// "headers_base64" (name UTF-8, value not), or nowhere (name not UTF-8).
enum class HeaderPlace : unsigned char { text, base64, dropped };

// One of the two header objects, as json::object::operator[] builds it: each name once, at the
// position of its first occurrence, with the value of its last.
void append_header_object(std::string& out, std::span<const HeaderView> headers, std::span<const HeaderPlace> places,
                          HeaderPlace wanted) {
  out.push_back('{');
  bool first = true;
  for (std::size_t index = 0; index < headers.size(); ++index) {
    if (places[index] != wanted) continue;
    bool repeated = false;
    for (std::size_t earlier = 0; earlier < index && !repeated; ++earlier) {
      repeated = places[earlier] == wanted && headers[earlier].name == headers[index].name;
    }
    if (repeated) continue;
    std::size_t last = index;
    for (std::size_t later = index + 1; later < headers.size(); ++later) {
      if (places[later] == wanted && headers[later].name == headers[index].name) last = later;
    }
    if (!first) out.push_back(',');
    first = false;
    append_string(out, headers[index].name);
    out.push_back(':');
    if (wanted == HeaderPlace::text) {
      append_string(out, headers[last].value);
    } else {
      out.push_back('"');
      base64_append(out, headers[last].value);
      out.push_back('"');
    }
  }
  out.push_back('}');
}

void append_headers(std::string& out, std::span<const HeaderView> headers) {
  if (headers.empty()) {
    out.append(",\"headers\":{}");
    return;
  }
  // Sorting headers into places once keeps the UTF-8 checks linear; messages within the
  // limits (headers_per_message_max) use the stack.
  std::array<HeaderPlace, 256> place_storage;
  std::vector<HeaderPlace> place_heap;
  std::span<HeaderPlace> places;
  if (headers.size() <= place_storage.size()) {
    places = std::span<HeaderPlace>(place_storage.data(), headers.size());
  } else {
    place_heap.resize(headers.size());
    places = place_heap;
  }
  bool any_base64 = false;
  for (std::size_t index = 0; index < headers.size(); ++index) {
    if (!is_valid_utf8(headers[index].name)) {
      places[index] = HeaderPlace::dropped;
    } else if (is_valid_utf8(headers[index].value)) {
      places[index] = HeaderPlace::text;
    } else {
      places[index] = HeaderPlace::base64;
      any_base64 = true;
    }
  }
  out.append(",\"headers\":");
  append_header_object(out, headers, places, HeaderPlace::text);
  if (any_base64) {
    out.append(",\"headers_base64\":");
    append_header_object(out, headers, places, HeaderPlace::base64);
  }
}

}  // namespace

void append_position_json(std::string& out, const Position& position) {
  out.append("{\"stream\":");
  append_string(out, position.stream);  // stream names are validated text
  out.append(",\"partition\":");
  append_integer(out, position.partition);
  out.append(",\"offset\":");
  append_integer(out, position.offset);
  if (position.duplicate) out.append(",\"duplicate\":true");
  out.push_back('}');
}

void append_live_message_json(std::string& out, std::string_view stream, std::uint32_t partition,
                              const MessageView& message) {
  out.append("{\"stream\":");
  append_string(out, stream);
  out.append(",\"partition\":");
  append_integer(out, partition);
  out.append(",\"offset\":");
  append_integer(out, message.offset);
  out.append(",\"timestamp_ms\":");
  append_integer(out, message.timestamp_ms);
  out.append(",\"subject\":");
  append_string(out, message.subject);  // subjects are validated text
  if (message.key) append_bytes_field(out, "key", "key_base64", *message.key);
  append_headers(out, message.headers);
  append_bytes_field(out, "payload", "payload_base64", message.payload);
  out.push_back('}');
}

}  // namespace msgstore::server
