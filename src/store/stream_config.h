// Stream configuration on disk (streams/<name>/stream.meta, docs/formats/metadata-files.md)
// and its translation into log options.
#pragma once

#include "io/metadata_file.h"
#include "log/partition_log.h"
#include "msgstore/stream.h"

namespace msgstore::store {

inline constexpr const char* stream_meta_kind = "stream";
inline constexpr std::uint32_t stream_meta_version = 1;

io::MetadataFields encode_stream_config(const StreamConfig& config);
Result<StreamConfig> decode_stream_config(const io::MetadataFields& fields);
log::LogOptions log_options_for(const StreamConfig& config);

}  // namespace msgstore::store
