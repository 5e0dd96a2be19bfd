// bench/msgstore_workloads.h: the msgstore side of every workload, through the public API only.
//
// Every store is fresh, in an empty directory the caller removes afterwards, with one stream
// of one partition capturing "bench.>". Opening, stream creation and closing are outside the
// timed region.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>

#include "harness.h"
#include "msgstore/stream.h"

namespace msgstore::bench {

// How a replay reads the log back.
enum class ReplayShape : std::uint8_t {
  single_scan,    // one Store::scan call over everything
  pages_of_1000,  // Store::scan calls of 1000 messages each, like a polling consumer
};

struct MsgstorePublishRun {
  RunResult publish;
  RunResult replay_single_scan;     // only with replay_after
  RunResult replay_pages_of_1000;   // only with replay_after
  std::uint64_t batches = 0;        // publish_batch calls that succeeded
};

// One thread publishes limits.messages_max messages in publish_batch calls of `batch_messages`.
// With `replay_after` it then replays everything twice (single scan, then pages of 1000), each
// replay summing one byte of every payload.
MsgstorePublishRun msgstore_publish(const std::filesystem::path& directory, const PayloadSource& payloads,
                                    std::size_t batch_messages, FsyncPolicy fsync, const RunLimits& limits,
                                    bool replay_after, const RunLimits& replay_limits);

// Whether the streams of every later msgstore run keep msgstore's key and subject indexes
// (StreamConfig::indexes_enabled). Off by default here: the SQLite table the goals compare with
// has no index on its key column, so off is like for like; `msgstore_bench --indexes` turns
// them on (the default of a real stream) to show what they cost.
void set_msgstore_indexes(bool enabled);

// Sessions for run_interleaved (harness.h); `payloads` must outlive them.
// publish_batch calls of `batch_messages` from the driving thread.
std::unique_ptr<PublishSession> make_msgstore_batch_session(const PayloadSource& payloads, std::size_t batch_messages,
                                                            FsyncPolicy fsync);
// `threads` threads each publishing single messages (Store::publish); a slice ends when the
// threads have published its messages between them or its time is up.
std::unique_ptr<PublishSession> make_msgstore_concurrent_session(const PayloadSource& payloads, unsigned threads,
                                                                 FsyncPolicy fsync);

}  // namespace msgstore::bench
