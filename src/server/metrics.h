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

#include "base/latency_histogram.h"
#include "broker/broker.h"
#include "msgstore/consumer.h"
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

// Request, publish and fsync latencies: fixed buckets, atomics only (base/latency_histogram.h).
using Histogram = LatencyHistogram;

// Appends a histogram's _bucket/_sum/_count lines; `labels` is "" or `a="x",b="y"`.
void render_histogram(std::string& out, std::string_view name, std::string_view labels, const Histogram& histogram);

// The live endpoints, a label of msgstore_live_subscribers.
enum class LiveProtocol : std::uint8_t { server_sent_events, websocket, count_ };  // count_ last

class Metrics {
 public:
  void connection_opened() { connections_open_.fetch_add(1); connections_accepted_.fetch_add(1); }
  void connection_closed() { connections_open_.fetch_sub(1); }
  std::uint64_t connections_open() const { return connections_open_.load(); }
  void rejected(RejectReason reason) { rejected_[static_cast<std::size_t>(reason)].fetch_add(1); }
  void request_bytes(std::uint64_t bytes) { request_bytes_.fetch_add(bytes); }
  void response_bytes(std::uint64_t bytes) { response_bytes_.fetch_add(bytes); }

  // An open live subscriber (SSE or WebSocket), counted while the guard lives.
  class LiveSubscriber {
   public:
    LiveSubscriber(Metrics& metrics, LiveProtocol protocol) : metrics_(metrics), protocol_(protocol) {
      metrics_.live_subscribers_[static_cast<std::size_t>(protocol_)].fetch_add(1);
    }
    ~LiveSubscriber() { metrics_.live_subscribers_[static_cast<std::size_t>(protocol_)].fetch_sub(1); }
    LiveSubscriber(const LiveSubscriber&) = delete;
    LiveSubscriber& operator=(const LiveSubscriber&) = delete;

   private:
    Metrics& metrics_;
    LiveProtocol protocol_;
  };
  std::uint64_t live_subscribers(LiveProtocol protocol) const {
    return live_subscribers_[static_cast<std::size_t>(protocol)].load();
  }

  // One finished request: `route` is the route template ("unmatched" if none).
  void request_finished(std::string_view method, std::string_view route, unsigned status, double seconds);

  // The whole exposition: server metrics, broker statistics, the log's fsync latency
  // (log/sync_latency.h), store gauges from `streams` and per-consumer gauges from `consumers`
  // (stream and consumer labels: bounded by limits::streams_max x consumers_per_stream_max).
  std::string render(const broker::BrokerStatistics& broker, const std::vector<StreamInfo>& streams,
                     const std::vector<ConsumerInfo>& consumers) const;

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
  std::array<std::atomic<std::int64_t>, static_cast<std::size_t>(LiveProtocol::count_)> live_subscribers_{};
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, RouteMetrics> routes_;  // (method, route)
};

}  // namespace msgstore::server
