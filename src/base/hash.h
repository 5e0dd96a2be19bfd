// Key hashing for partition selection: murmur2, the function Java Kafka clients and kafkajs
// use, so a key lands in the same partition whichever front end published it.
#pragma once

#include <cstdint>
#include <string_view>

namespace msgstore::base {

std::uint32_t murmur2(std::string_view data);

// The partition for a key among `partitions`: (murmur2(key) & 0x7fffffff) % partitions.
inline std::uint32_t partition_for_key(std::string_view key, std::uint32_t partitions) {
  return (murmur2(key) & 0x7fffffffu) % partitions;
}

}  // namespace msgstore::base
