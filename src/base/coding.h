// Little-endian fixed-width and varint encoding used by every on-disk format.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace msgstore::base {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "msgstore's formats are little-endian; add byte swaps to port");

inline void store_u16(char* out, std::uint16_t value) { std::memcpy(out, &value, 2); }
inline void store_u32(char* out, std::uint32_t value) { std::memcpy(out, &value, 4); }
inline void store_u64(char* out, std::uint64_t value) { std::memcpy(out, &value, 8); }
inline void store_i64(char* out, std::int64_t value) { std::memcpy(out, &value, 8); }
inline std::uint16_t load_u16(const char* in) { std::uint16_t value; std::memcpy(&value, in, 2); return value; }
inline std::uint32_t load_u32(const char* in) { std::uint32_t value; std::memcpy(&value, in, 4); return value; }
inline std::uint64_t load_u64(const char* in) { std::uint64_t value; std::memcpy(&value, in, 8); return value; }
inline std::int64_t load_i64(const char* in) { std::int64_t value; std::memcpy(&value, in, 8); return value; }

inline constexpr std::size_t varint64_bytes_max = 10;

// Writes `value` as a LEB128 varint at `out`; returns the byte after it.
inline char* encode_varint(char* out, std::uint64_t value) {
  while (value >= 0x80) {
    *out++ = static_cast<char>((value & 0x7F) | 0x80);
    value >>= 7;
  }
  *out++ = static_cast<char>(value);
  return out;
}

inline std::size_t varint_length(std::uint64_t value) {
  std::size_t length = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++length;
  }
  return length;
}

// Reads a varint from [in, end); returns nullptr if it is truncated, longer than 10 bytes, or
// larger than 2^64 - 1.
inline const char* decode_varint(const char* in, const char* end, std::uint64_t& value) {
  if (in < end && static_cast<unsigned char>(*in) < 0x80) [[likely]] {
    value = static_cast<unsigned char>(*in);
    return in + 1;
  }
  // Two bytes (128..16383: record lengths of small messages), the same value the loop gives.
  if (end - in >= 2 && static_cast<unsigned char>(in[1]) < 0x80) {
    value = (static_cast<unsigned char>(in[0]) & 0x7Fu) | (std::uint64_t{static_cast<unsigned char>(in[1])} << 7);
    return in + 2;
  }
  std::uint64_t result = 0;
  for (unsigned shift = 0; shift < 64 && in < end; shift += 7) {
    std::uint64_t byte = static_cast<unsigned char>(*in++);
    // The tenth byte holds only bit 63: anything more does not fit in 64 bits (or goes on).
    if (shift == 63 && byte > 1) return nullptr;
    result |= (byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) {
      value = result;
      return in;
    }
  }
  return nullptr;
}

inline std::uint64_t zigzag_encode(std::int64_t value) {
  return (static_cast<std::uint64_t>(value) << 1) ^ static_cast<std::uint64_t>(value >> 63);
}
inline std::int64_t zigzag_decode(std::uint64_t value) {
  return static_cast<std::int64_t>(value >> 1) ^ -static_cast<std::int64_t>(value & 1);
}

}  // namespace msgstore::base
