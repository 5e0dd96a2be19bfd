// How long the partition logs' fdatasync calls take: one histogram for the whole process.
//
// Segment::sync_data (group commit, interval syncs, seals, close) observes every log-file
// fdatasync through the file system seam, success or failure. Process-wide rather than per
// Store because it describes the disk, and so that the hot path is one steady_clock read pair and
// three relaxed atomic adds, with nothing to plumb through the log's constructors. The server
// exposes it as msgstore_fsync_duration_seconds.
#pragma once

#include "base/latency_histogram.h"

namespace msgstore::log {

LatencyHistogram& data_sync_latency();

}  // namespace msgstore::log
