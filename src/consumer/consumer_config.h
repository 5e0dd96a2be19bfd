// Consumer configuration on disk (streams/<stream>/consumers/<name>/consumer.meta, a metadata
// file of kind "consumer", docs/formats/consumer-state.md).
#pragma once

#include "io/metadata_file.h"
#include "msgstore/consumer.h"

namespace msgstore::consumer {

inline constexpr const char* config_kind = "consumer";
inline constexpr std::uint32_t config_version = 1;

io::MetadataFields encode_consumer_config(std::string_view stream, const ConsumerConfig& config);
// Also checks that the file belongs to `stream`.
Result<ConsumerConfig> decode_consumer_config(const io::MetadataFields& fields, std::string_view stream);

}  // namespace msgstore::consumer
