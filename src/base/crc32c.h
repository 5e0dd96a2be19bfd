// CRC32C (Castagnoli), as used by iSCSI, ext4 and Kafka. Uses the SSE4.2 crc32 instruction
// when the processor has it, a table otherwise; both give identical results.
#pragma once

#include <cstddef>
#include <cstdint>

namespace msgstore::base {

// Extends `crc` (0 to start) over `size` bytes.
std::uint32_t crc32c_extend(std::uint32_t crc, const void* data, std::size_t size);
inline std::uint32_t crc32c(const void* data, std::size_t size) { return crc32c_extend(0, data, size); }

// The table implementation, exposed so tests can check the accelerated path against it.
std::uint32_t crc32c_extend_portable(std::uint32_t crc, const void* data, std::size_t size);

}  // namespace msgstore::base
