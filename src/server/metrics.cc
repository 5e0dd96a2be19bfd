#include "server/metrics.h"

#include <cstdio>

#include "log/sync_latency.h"

namespace msgstore::server {
namespace {

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, std::string_view name, std::string_view labels, std::uint64_t value) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += std::to_string(value);
  out += '\n';
}

void single(std::string& out, std::string_view name, std::string_view type, std::string_view help, std::uint64_t value) {
  header(out, name, type, help);
  sample(out, name, "", value);
}

std::string format_bound(double bound) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", bound);
  return text;
}

// Label values: escape backslash, quote and newline (stream names cannot contain them, but
// the rule is cheap).
std::string label_value(std::string_view value) {
  std::string out;
  for (const char character : value) {
    if (character == '\\' || character == '"') out += '\\';
    if (character == '\n') {
      out += "\\n";
      continue;
    }
    out += character;
  }
  return out;
}

}  // namespace

std::string_view reject_reason_name(RejectReason reason) {
  switch (reason) {
    case RejectReason::max_connections: return "max_connections";
    case RejectReason::header_too_large: return "header_too_large";
    case RejectReason::body_too_large: return "body_too_large";
    case RejectReason::header_timeout: return "header_timeout";
    case RejectReason::body_timeout: return "body_timeout";
    case RejectReason::malformed_request: return "malformed_request";
    case RejectReason::count_: break;
  }
  return "unknown";
}

void render_histogram(std::string& out, std::string_view name, std::string_view labels, const Histogram& histogram) {
  const Histogram::Snapshot snapshot = histogram.snapshot();
  const std::string prefix = labels.empty() ? std::string() : std::string(labels) + ",";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < Histogram::bucket_bounds_seconds.size(); ++i) {
    cumulative += snapshot.buckets[i];
    sample(out, std::string(name) + "_bucket", prefix + "le=\"" + format_bound(Histogram::bucket_bounds_seconds[i]) + "\"",
           cumulative);
  }
  cumulative += snapshot.buckets.back();
  sample(out, std::string(name) + "_bucket", prefix + "le=\"+Inf\"", cumulative);
  char sum[64];
  std::snprintf(sum, sizeof sum, "%.9f", static_cast<double>(snapshot.sum_nanoseconds) / 1e9);
  out += std::string(name) + "_sum" + (labels.empty() ? "" : "{" + std::string(labels) + "}") + " " + sum + "\n";
  // The count is the buckets' total, so _count always equals the +Inf bucket.
  sample(out, std::string(name) + "_count", labels, cumulative);
}

void Metrics::request_finished(std::string_view method, std::string_view route, unsigned status, double seconds) {
  RouteMetrics* metrics = nullptr;
  {
    std::lock_guard lock(mutex_);
    metrics = &routes_[{std::string(method), std::string(route)}];  // std::map nodes never move
    ++metrics->responses_by_status[status];
  }
  metrics->latency.observe_seconds(seconds);
}

std::string Metrics::render(const broker::BrokerStatistics& broker, const std::vector<StreamInfo>& streams,
                            const std::vector<ConsumerInfo>& consumers) const {
  std::string out;
  header(out, "msgstore_http_connections", "gauge", "Open client connections.");
  sample(out, "msgstore_http_connections", "", static_cast<std::uint64_t>(std::max<std::int64_t>(0, connections_open_.load())));
  single(out, "msgstore_http_connections_accepted_total", "counter", "Client connections accepted.",
         connections_accepted_.load());
  header(out, "msgstore_http_rejected_total", "counter",
         "Connections and requests refused by a limit or for malformed input, by reason.");
  for (std::size_t i = 0; i < rejected_.size(); ++i) {
    sample(out, "msgstore_http_rejected_total",
           "reason=\"" + std::string(reject_reason_name(static_cast<RejectReason>(i))) + "\"", rejected_[i].load());
  }
  single(out, "msgstore_http_request_body_bytes_total", "counter", "Bytes of request bodies received.",
         request_bytes_.load());
  single(out, "msgstore_http_response_body_bytes_total", "counter", "Bytes of response bodies sent.",
         response_bytes_.load());
  {
    std::lock_guard lock(mutex_);
    header(out, "msgstore_http_responses_total", "counter", "HTTP responses by method, route template and status.");
    for (const auto& entry : routes_) {
      for (const auto& status_count : entry.second.responses_by_status) {
        sample(out, "msgstore_http_responses_total",
               "method=\"" + entry.first.first + "\",route=\"" + label_value(entry.first.second) + "\",status=\"" +
                   std::to_string(status_count.first) + "\"",
               status_count.second);
      }
    }
    header(out, "msgstore_http_request_duration_seconds", "histogram",
           "Time from a request's last header byte to its response being sent, by method and route template.");
    for (const auto& entry : routes_) {
      render_histogram(out, "msgstore_http_request_duration_seconds",
                       "method=\"" + entry.first.first + "\",route=\"" + label_value(entry.first.second) + "\"",
                       entry.second.latency);
    }
  }
  header(out, "msgstore_live_subscribers", "gauge", "Open live subscribers (Server-Sent Events and WebSocket), by protocol.");
  sample(out, "msgstore_live_subscribers", "protocol=\"sse\"",
         static_cast<std::uint64_t>(std::max<std::int64_t>(0, live_subscribers(LiveProtocol::server_sent_events))));
  sample(out, "msgstore_live_subscribers", "protocol=\"websocket\"",
         static_cast<std::uint64_t>(std::max<std::int64_t>(0, live_subscribers(LiveProtocol::websocket))));
  header(out, "msgstore_publish_duration_seconds", "histogram",
         "Publish calls (all front ends) from entering the worker queue to the store's answer, fsync included.");
  render_histogram(out, "msgstore_publish_duration_seconds", "", broker.publish_latency);
  header(out, "msgstore_fsync_duration_seconds", "histogram",
         "fdatasync calls on partition log segments (group commit, interval syncs, segment seals), whole process.");
  render_histogram(out, "msgstore_fsync_duration_seconds", "", log::data_sync_latency());
  single(out, "msgstore_published_messages_total", "counter", "Messages published (all front ends).",
         broker.published_messages.load());
  single(out, "msgstore_published_payload_bytes_total", "counter", "Payload bytes published.", broker.published_bytes.load());
  single(out, "msgstore_publish_failures_total", "counter", "Publish calls that failed.", broker.publish_failures.load());
  single(out, "msgstore_publish_store_appends_total", "counter",
         "Store appends made for publishes (fewer than publishes when one event loop pass combined several).",
         broker.store_appends.load());
  single(out, "msgstore_fetch_requests_total", "counter", "Read (fetch) requests.", broker.fetch_requests.load());
  single(out, "msgstore_fetched_messages_total", "counter", "Messages returned by reads.", broker.fetched_messages.load());
  single(out, "msgstore_fetched_payload_bytes_total", "counter", "Payload bytes returned by reads.",
         broker.fetched_bytes.load());
  single(out, "msgstore_long_poll_waits_total", "counter", "Reads that waited for new data.", broker.long_poll_waits.load());
  single(out, "msgstore_queries_total", "counter", "Query calls (failed ones included).", broker.queries.load());
  single(out, "msgstore_queried_messages_total", "counter", "Messages returned by queries.", broker.queried_messages.load());
  single(out, "msgstore_worker_calls_in_flight", "gauge", "Blocking store calls queued or running.",
         broker.worker_in_flight.load());
  single(out, "msgstore_worker_rejections_total", "counter", "Blocking store calls refused because the queue was full.",
         broker.worker_rejections.load());

  single(out, "msgstore_streams", "gauge", "Streams in the store.", streams.size());
  header(out, "msgstore_stream_messages", "gauge", "Messages stored per stream (log end minus log start).");
  for (const StreamInfo& info : streams) sample(out, "msgstore_stream_messages", "stream=\"" + label_value(info.config.name) + "\"", info.messages);
  header(out, "msgstore_stream_bytes", "gauge", "Bytes of segment files per stream.");
  for (const StreamInfo& info : streams) sample(out, "msgstore_stream_bytes", "stream=\"" + label_value(info.config.name) + "\"", info.bytes);
  header(out, "msgstore_stream_segments", "gauge", "Segment files per stream.");
  for (const StreamInfo& info : streams) {
    std::uint64_t segments = 0;
    for (const PartitionInfo& partition : info.partitions) segments += partition.segments;
    sample(out, "msgstore_stream_segments", "stream=\"" + label_value(info.config.name) + "\"", segments);
  }
  header(out, "msgstore_stream_partitions", "gauge", "Partitions per stream.");
  for (const StreamInfo& info : streams) sample(out, "msgstore_stream_partitions", "stream=\"" + label_value(info.config.name) + "\"", info.partitions.size());

  const auto consumer_labels = [](const ConsumerInfo& info) {
    return "stream=\"" + label_value(info.stream) + "\",consumer=\"" + label_value(info.config.name) + "\"";
  };
  header(out, "msgstore_consumer_pending_messages", "gauge",
         "Messages a durable consumer delivered and not yet acked (out now or waiting for redelivery).");
  for (const ConsumerInfo& info : consumers) sample(out, "msgstore_consumer_pending_messages", consumer_labels(info), info.pending);
  header(out, "msgstore_consumer_lag_messages", "gauge",
         "Messages after a durable consumer's delivered position up to the high watermark (not yet delivered).");
  for (const ConsumerInfo& info : consumers) sample(out, "msgstore_consumer_lag_messages", consumer_labels(info), info.lag);
  header(out, "msgstore_consumer_redelivered_messages", "gauge", "Pending messages of a durable consumer delivered more than once.");
  for (const ConsumerInfo& info : consumers) {
    sample(out, "msgstore_consumer_redelivered_messages", consumer_labels(info), info.redelivered);
  }
  header(out, "msgstore_consumer_dead_lettered_total", "counter",
         "Messages a durable consumer moved to its dead-letter stream since the store opened.");
  for (const ConsumerInfo& info : consumers) {
    sample(out, "msgstore_consumer_dead_lettered_total", consumer_labels(info), info.dead_lettered);
  }
  return out;
}

}  // namespace msgstore::server
