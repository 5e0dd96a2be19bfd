// server/metrics.h: the server's Prometheus metrics, rendered in the text exposition format.
//
// Names follow Prometheus conventions: msgstore_ prefix, base units (seconds, bytes), counters
// end in _total. Request latency is a histogram per (method, route template) so label
// cardinality stays bounded by the route table, never by user input (paths and stream names
// are not labels, except per-stream store gauges, bounded by limits::streams_max).
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "broker/broker.h"
#include "msgstore/stream.h"

namespace msgstore::server {

// Why a request or connection was refused; a label of msgstore_http_rejected_total.
enum class RejectReason : std::uint8_t {
  max_connections,
  header_too_large,
  body_too_large,
  header_timeout,
  body_timeout,
  malformed_request,
  count_  // keep last
};
std::string_view reject_reason_name(RejectReason reason);

class Histogram {
 public:
  static constexpr std::array<double, 15> bucket_bounds_seconds = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};
  void observe(double seconds);
  // Appends the _bucket/_sum/_count lines; `labels` is "" or `a="x",b="y"`.
  void render(std::string& out, std::string_view name, std::string_view labels) const;

 private:
  std::array<std::atomic<std::uint64_t>, bucket_bounds_seconds.size() + 1> buckets_{};  // last = +Inf
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_nanoseconds_{0};
};

class Metrics {
 public:
  void connection_opened() { connections_open_.fetch_add(1); connections_accepted_.fetch_add(1); }
  void connection_closed() { connections_open_.fetch_sub(1); }
  std::uint64_t connections_open() const { return connections_open_.load(); }
  void rejected(RejectReason reason) { rejected_[static_cast<std::size_t>(reason)].fetch_add(1); }
  void request_bytes(std::uint64_t bytes) { request_bytes_.fetch_add(bytes); }
  void response_bytes(std::uint64_t bytes) { response_bytes_.fetch_add(bytes); }

  // One finished request: `route` is the route template ("unmatched" if none).
  void request_finished(std::string_view method, std::string_view route, unsigned status, double seconds);

  // The whole exposition: server metrics, broker statistics, and store gauges from `streams`.
  std::string render(const broker::BrokerStatistics& broker, const std::vector<StreamInfo>& streams) const;

 private:
  struct RouteMetrics {
    Histogram latency;
    std::map<unsigned, std::uint64_t> responses_by_status;  // guarded by mutex_
  };
  std::atomic<std::int64_t> connections_open_{0};
  std::atomic<std::uint64_t> connections_accepted_{0};
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(RejectReason::count_)> rejected_{};
  std::atomic<std::uint64_t> request_bytes_{0};
  std::atomic<std::uint64_t> response_bytes_{0};
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, RouteMetrics> routes_;  // (method, route)
};

}  // namespace msgstore::server
