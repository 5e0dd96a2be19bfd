#include "cli/json.h"

#include "base/text_encoding.h"

namespace msgstore::cli {
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
