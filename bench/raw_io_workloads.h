// bench/raw_io_workloads.h: the floor under every durable log, a bare append + fdatasync loop.
//
// No framing, no checksums, no index: one write() of the batch's bytes to the end of one file,
// then fdatasync(), repeated. msgstore publishing the same messages writes the same number of
// bytes per batch (the caller measures it from msgstore's segment files), so the ratio of the
// two says what the log's own work costs on top of the disk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "harness.h"

namespace msgstore::bench {

// A session for run_interleaved (harness.h): appends `batch_bytes` per batch to one file and
// syncs after each batch. RunResult::messages counts batches x messages_per_batch, so the rate
// compares directly with a message rate; slice sizes are in messages too.
// preallocate_bytes 0: write() with O_APPEND, so every fdatasync also commits a new file size.
// Otherwise the loop does what msgstore's fsync=always segments do: it keeps up to that many
// bytes of zeros written ahead of the data and overwrites them, so most syncs commit data
// blocks only (the cheapest durable commit of the same bytes this file system offers).
std::unique_ptr<PublishSession> make_raw_append_session(const PayloadSource& payloads, std::size_t batch_bytes,
                                                        std::size_t messages_per_batch, std::uint64_t preallocate_bytes);

// fdatasync latency after a 4 KiB append, as the machine shows it right now: the figure that
// bounds every fsync=always workload and that moves most when the machine is shared.
struct SyncLatency {
  std::string error;
  std::size_t samples = 0;
  double p50_microseconds = 0;
  double p99_microseconds = 0;
};
SyncLatency probe_sync_latency(const std::filesystem::path& directory, std::size_t samples, double seconds_max);

}  // namespace msgstore::bench
