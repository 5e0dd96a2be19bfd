// libFuzzer target: arbitrary bytes as a consumer state log (docs/formats/consumer-state.md),
// each decoded record replayed into cursors; and the same bytes as a consumer snapshot and
// consumer configuration (metadata files).
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "base/assert.h"
#include "consumer/consumer_config.h"
#include "consumer/state_log.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace msgstore;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::vector<consumer::PartitionCursor> cursors(4);
  auto scan = consumer::decode_state_log(bytes, [&](const consumer::StateRecord& record) {
    if (record.partition < cursors.size()) cursors[record.partition].apply(record);
  });
  if (scan) {
    MS_ASSERT(scan->valid_bytes + scan->dropped_bytes == size);
    for (consumer::PartitionCursor& cursor : cursors) {
      cursor.advance_floor();
      MS_ASSERT(cursor.ack_floor <= cursor.delivered_offset || cursor.pending.empty());
    }
  }
  if (auto fields = io::decode_metadata(consumer::snapshot_kind, consumer::snapshot_version, bytes)) {
    std::uint64_t generation = 0;
    if (auto decoded = consumer::decode_snapshot(*fields, generation)) {
      // What decodes must encode back to the same cursors.
      std::uint64_t again = 0;
      auto round_trip = consumer::decode_snapshot(consumer::encode_snapshot(generation, *decoded), again);
      MS_ASSERT(round_trip.is_ok() && again == generation && round_trip->size() == decoded->size());
    }
  }
  if (auto fields = io::decode_metadata(consumer::config_kind, consumer::config_version, bytes)) {
    (void)consumer::decode_consumer_config(*fields, "orders");
  }
  return 0;
}
