// libFuzzer target: arbitrary bytes as a record batch. The decoder must never read out of
// bounds, and a batch that passes both checksums must decode or report corruption cleanly;
// the same for the point decoder (decode_offsets).
#include <cstddef>
#include <cstdint>

#include "log/record_batch.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace msgstore::log;
  const char* bytes = reinterpret_cast<const char*>(data);
  BatchHeader header;
  if (check_batch_header(bytes, size, header) != HeaderCheck::valid) return 0;
  // Decode even without the body CRC: the decoder's own bounds checks are what is fuzzed.
  (void)check_batch_body(bytes, header);
  RecordDecoder decoder;
  std::size_t total = 0;
  (void)decoder.decode(bytes, header, [&](const msgstore::MessageView& message) {
    total += message.payload.size() + message.subject.size();
    for (const auto& item : message.headers) total += item.name.size() + item.value.size();
    return true;
  });
  // The point decoder over the same bytes: the first, a middle and the last offset.
  const msgstore::Offset wanted[] = {header.base_offset, header.base_offset + header.last_offset_delta / 2,
                                     header.base_offset + header.last_offset_delta};
  (void)decoder.decode_offsets(bytes, header, wanted, [&](const msgstore::MessageView& message) {
    total += message.payload.size() + message.subject.size();
    return true;
  });
  return 0;
}
