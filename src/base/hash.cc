#include "base/hash.h"

#include <cstring>

namespace msgstore::base {

std::uint32_t murmur2(std::string_view data) {
  constexpr std::uint32_t seed = 0x9747b28cu;
  constexpr std::uint32_t multiplier = 0x5bd1e995u;
  constexpr int rotation = 24;
  const auto length = static_cast<std::uint32_t>(data.size());
  std::uint32_t hash = seed ^ length;
  const auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
  std::size_t index = 0;
  for (; index + 4 <= data.size(); index += 4) {
    std::uint32_t word = static_cast<std::uint32_t>(bytes[index]) | (static_cast<std::uint32_t>(bytes[index + 1]) << 8) |
                         (static_cast<std::uint32_t>(bytes[index + 2]) << 16) |
                         (static_cast<std::uint32_t>(bytes[index + 3]) << 24);
    word *= multiplier;
    word ^= word >> rotation;
    word *= multiplier;
    hash *= multiplier;
    hash ^= word;
  }
  switch (data.size() - index) {
    case 3: hash ^= static_cast<std::uint32_t>(bytes[index + 2]) << 16; [[fallthrough]];
    case 2: hash ^= static_cast<std::uint32_t>(bytes[index + 1]) << 8; [[fallthrough]];
    case 1:
      hash ^= static_cast<std::uint32_t>(bytes[index]);
      hash *= multiplier;
      break;
    default: break;
  }
  hash ^= hash >> 13;
  hash *= multiplier;
  hash ^= hash >> 15;
  return hash;
}

}  // namespace msgstore::base
