#include "base/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>
#endif

namespace msgstore::base {
namespace {

constexpr std::uint32_t castagnoli_polynomial_reflected = 0x82F63B78u;

constexpr std::array<std::uint32_t, 256> make_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t value = i;
    for (int bit = 0; bit < 8; ++bit) value = (value >> 1) ^ ((value & 1u) ? castagnoli_polynomial_reflected : 0u);
    table[i] = value;
  }
  return table;
}
constexpr std::array<std::uint32_t, 256> crc_table = make_table();

#if defined(__x86_64__)
constexpr std::size_t stripe_bytes = 1024;

// Advancing a CRC register over `stripe_bytes` zero bytes is linear over GF(2), so it is four
// table lookups: one table per register byte, built from the 32 single-bit images.
struct StripeShift {
  std::array<std::array<std::uint32_t, 256>, 4> tables{};
  StripeShift() {
    std::array<std::uint32_t, 32> bit_images{};
    for (int bit = 0; bit < 32; ++bit) {
      std::uint32_t state = 1u << bit;
      for (std::size_t i = 0; i < stripe_bytes; ++i) state = (state >> 8) ^ crc_table[state & 0xFFu];
      bit_images[bit] = state;
    }
    for (int byte = 0; byte < 4; ++byte) {
      for (std::uint32_t value = 0; value < 256; ++value) {
        std::uint32_t image = 0;
        for (int bit = 0; bit < 8; ++bit) {
          if (value & (1u << bit)) image ^= bit_images[byte * 8 + bit];
        }
        tables[byte][value] = image;
      }
    }
  }
  std::uint32_t apply(std::uint32_t state) const {
    return tables[0][state & 0xFFu] ^ tables[1][(state >> 8) & 0xFFu] ^ tables[2][(state >> 16) & 0xFFu] ^
           tables[3][state >> 24];
  }
};

const StripeShift& stripe_shift() {
  static const StripeShift instance;
  return instance;
}

__attribute__((target("sse4.2"))) std::uint32_t crc32c_extend_sse42(std::uint32_t crc, const void* data,
                                                                     std::size_t size) {
  const unsigned char* bytes = static_cast<const unsigned char*>(data);
  std::uint64_t value = ~crc;
  // The crc32 instruction has a latency of 3 cycles and a throughput of 1: three independent
  // streams over thirds of a block keep it busy, and their registers are joined with the
  // zero-shift tables (crc(A||B) = shift_|B|(crc(A)) ^ crc_from_zero(B)).
  const StripeShift& shift = stripe_shift();
  while (size >= 3 * stripe_bytes) {
    std::uint64_t crc_a = value, crc_b = 0, crc_c = 0;
    for (std::size_t i = 0; i < stripe_bytes; i += 8) {
      std::uint64_t word_a, word_b, word_c;
      std::memcpy(&word_a, bytes + i, 8);
      std::memcpy(&word_b, bytes + stripe_bytes + i, 8);
      std::memcpy(&word_c, bytes + 2 * stripe_bytes + i, 8);
      crc_a = _mm_crc32_u64(crc_a, word_a);
      crc_b = _mm_crc32_u64(crc_b, word_b);
      crc_c = _mm_crc32_u64(crc_c, word_c);
    }
    std::uint32_t joined = shift.apply(static_cast<std::uint32_t>(crc_a)) ^ static_cast<std::uint32_t>(crc_b);
    value = shift.apply(joined) ^ static_cast<std::uint32_t>(crc_c);
    bytes += 3 * stripe_bytes;
    size -= 3 * stripe_bytes;
  }
  while (size >= 8) {
    std::uint64_t word;
    std::memcpy(&word, bytes, 8);
    value = _mm_crc32_u64(value, word);
    bytes += 8;
    size -= 8;
  }
  std::uint32_t value32 = static_cast<std::uint32_t>(value);
  while (size > 0) {
    value32 = _mm_crc32_u8(value32, *bytes);
    ++bytes;
    --size;
  }
  return ~value32;
}

bool processor_has_sse42() {
  unsigned int eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  return (ecx & bit_SSE4_2) != 0;
}
#endif

}  // namespace

std::uint32_t crc32c_extend_portable(std::uint32_t crc, const void* data, std::size_t size) {
  const unsigned char* bytes = static_cast<const unsigned char*>(data);
  std::uint32_t value = ~crc;
  for (std::size_t i = 0; i < size; ++i) value = (value >> 8) ^ crc_table[(value ^ bytes[i]) & 0xFFu];
  return ~value;
}

std::uint32_t crc32c_extend(std::uint32_t crc, const void* data, std::size_t size) {
#if defined(__x86_64__)
  static const bool accelerated = processor_has_sse42();
  if (accelerated) return crc32c_extend_sse42(crc, data, size);
#endif
  return crc32c_extend_portable(crc, data, size);
}

}  // namespace msgstore::base
