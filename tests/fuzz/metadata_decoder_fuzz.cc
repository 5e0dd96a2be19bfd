// libFuzzer target: arbitrary bytes as a metadata file (docs/formats/metadata-files.md) and,
// when they decode, as a stream configuration.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "io/metadata_file.h"
#include "store/stream_config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto fields = msgstore::io::decode_metadata("stream", 1, text);
  if (fields) (void)msgstore::store::decode_stream_config(*fields);
  (void)msgstore::io::decode_metadata("partition", 1, text);
  return 0;
}
