#include "cli/json.h"

namespace msgstore::cli {
namespace {

// Length of the valid UTF-8 sequence starting at text[at], or 0 if it is not valid.
std::size_t utf8_sequence_bytes(std::string_view text, std::size_t at) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(at);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  std::uint32_t minimum = 0;
  std::uint32_t code_point = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    minimum = 0x80;
    code_point = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    minimum = 0x800;
    code_point = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    minimum = 0x10000;
    code_point = lead & 0x07;
  } else {
    return 0;  // a continuation byte, an overlong lead (C0, C1) or F5..FF
  }
  if (at + length > text.size()) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(at + i) & 0xC0) != 0x80) return 0;
    code_point = (code_point << 6) | (byte(at + i) & 0x3F);
  }
  if (code_point < minimum || code_point > 0x10FFFF || (code_point >= 0xD800 && code_point <= 0xDFFF)) return 0;
  return length;
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t length = utf8_sequence_bytes(text, at);
    if (length == 0) return false;
    at += length;
  }
  return true;
}

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  out.reserve(out.size() + text.size() + 2);
  out += '"';
  for (std::size_t at = 0; at < text.size();) {
    const unsigned char character = static_cast<unsigned char>(text[at]);
    if (character >= 0x80) {
      const std::size_t length = utf8_sequence_bytes(text, at);
      if (length == 0) {
        out += "\\ufffd";  // not UTF-8: JSON strings cannot carry raw bytes
        ++at;
      } else {
        out.append(text.substr(at, length));
        at += length;
      }
      continue;
    }
    switch (character) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (character < 0x20 || character == 0x7F) {
          out += "\\u00";
          out += hex[character >> 4];
          out += hex[character & 0xF];
        } else {
          out += static_cast<char>(character);
        }
    }
    ++at;
  }
  out += '"';
}

std::string json_string(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t at = 0;
  const auto byte = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])); };
  for (; at + 3 <= bytes.size(); at += 3) {
    const std::uint32_t group = (byte(at) << 16) | (byte(at + 1) << 8) | byte(at + 2);
    out += alphabet[(group >> 18) & 63];
    out += alphabet[(group >> 12) & 63];
    out += alphabet[(group >> 6) & 63];
    out += alphabet[group & 63];
  }
  const std::size_t rest = bytes.size() - at;
  if (rest == 1) {
    const std::uint32_t group = byte(at) << 16;
    out += alphabet[(group >> 18) & 63];
    out += alphabet[(group >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    const std::uint32_t group = (byte(at) << 16) | (byte(at + 1) << 8);
    out += alphabet[(group >> 18) & 63];
    out += alphabet[(group >> 12) & 63];
    out += alphabet[(group >> 6) & 63];
    out += '=';
  }
  return out;
}

void JsonObject::name(std::string_view name) {
  if (!empty_) text_ += ',';
  empty_ = false;
  append_json_string(text_, name);
  text_ += ':';
}

JsonObject& JsonObject::add(std::string_view field, std::string_view value) {
  name(field);
  append_json_string(text_, value);
  return *this;
}

JsonObject& JsonObject::add(std::string_view field, std::uint64_t value) {
  name(field);
  text_ += std::to_string(value);
  return *this;
}

JsonObject& JsonObject::add(std::string_view field, std::int64_t value) {
  name(field);
  text_ += std::to_string(value);
  return *this;
}

JsonObject& JsonObject::add(std::string_view field, bool value) {
  name(field);
  text_ += value ? "true" : "false";
  return *this;
}

JsonObject& JsonObject::add_null(std::string_view field) {
  name(field);
  text_ += "null";
  return *this;
}

JsonObject& JsonObject::add_raw(std::string_view field, std::string_view json) {
  name(field);
  text_ += json;
  return *this;
}

std::string JsonObject::finish() {
  text_ += '}';
  return std::move(text_);
}

}  // namespace msgstore::cli
