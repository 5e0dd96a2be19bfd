// Just enough JSON reading for the end-to-end tests to check the CLI's one-line objects.
// Looks up a top-level-looking "name": field by text; fine for the flat objects msgstore
// prints (and deliberately independent of the CLI's own JSON code).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace msgstore::e2e {

// The unsigned integer value of "name": in `json`.
inline std::optional<std::uint64_t> json_number(std::string_view json, std::string_view name) {
  const std::string pattern = "\"" + std::string(name) + "\":";
  const std::size_t at = json.find(pattern);
  if (at == std::string_view::npos) return std::nullopt;
  std::size_t cursor = at + pattern.size();
  if (cursor >= json.size() || json[cursor] < '0' || json[cursor] > '9') return std::nullopt;
  std::uint64_t value = 0;
  while (cursor < json.size() && json[cursor] >= '0' && json[cursor] <= '9') value = value * 10 + (json[cursor++] - '0');
  return value;
}

// The string value of "name": in `json`, with the escapes msgstore emits decoded
// (\uXXXX only below U+0080, which is all the tests need).
inline std::optional<std::string> json_text(std::string_view json, std::string_view name) {
  const std::string pattern = "\"" + std::string(name) + "\":\"";
  const std::size_t at = json.find(pattern);
  if (at == std::string_view::npos) return std::nullopt;
  std::string value;
  for (std::size_t cursor = at + pattern.size(); cursor < json.size(); ++cursor) {
    const char character = json[cursor];
    if (character == '"') return value;
    if (character != '\\') {
      value += character;
      continue;
    }
    if (++cursor >= json.size()) return std::nullopt;
    switch (json[cursor]) {
      case 'n': value += '\n'; break;
      case 't': value += '\t'; break;
      case 'r': value += '\r'; break;
      case 'b': value += '\b'; break;
      case 'f': value += '\f'; break;
      case 'u': {
        if (cursor + 4 >= json.size()) return std::nullopt;
        value += static_cast<char>(std::stoi(std::string(json.substr(cursor + 1, 4)), nullptr, 16));
        cursor += 4;
        break;
      }
      default: value += json[cursor];
    }
  }
  return std::nullopt;
}

}  // namespace msgstore::e2e
