#include "server/metrics.h"

#include <cstdio>

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

void Histogram::observe(double seconds) {
  std::size_t bucket = 0;
  while (bucket < bucket_bounds_seconds.size() && seconds > bucket_bounds_seconds[bucket]) ++bucket;
  buckets_[bucket].fetch_add(1);
  count_.fetch_add(1);
  sum_nanoseconds_.fetch_add(static_cast<std::uint64_t>(seconds * 1e9));
}

void Histogram::render(std::string& out, std::string_view name, std::string_view labels) const {
  const std::string prefix = labels.empty() ? std::string() : std::string(labels) + ",";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bucket_bounds_seconds.size(); ++i) {
    cumulative += buckets_[i].load();
    sample(out, std::string(name) + "_bucket", prefix + "le=\"" + format_bound(bucket_bounds_seconds[i]) + "\"", cumulative);
  }
  cumulative += buckets_.back().load();
  sample(out, std::string(name) + "_bucket", prefix + "le=\"+Inf\"", cumulative);
  char sum[64];
  std::snprintf(sum, sizeof sum, "%.9f", static_cast<double>(sum_nanoseconds_.load()) / 1e9);
  out += std::string(name) + "_sum" + (labels.empty() ? "" : "{" + std::string(labels) + "}") + " " + sum + "\n";
  sample(out, std::string(name) + "_count", labels, cumulative);
}

void Metrics::request_finished(std::string_view method, std::string_view route, unsigned status, double seconds) {
  RouteMetrics* metrics = nullptr;
  {
    std::lock_guard lock(mutex_);
    metrics = &routes_[{std::string(method), std::string(route)}];  // std::map nodes never move
    ++metrics->responses_by_status[status];
  }
  metrics->latency.observe(seconds);
}

std::string Metrics::render(const broker::BrokerStatistics& broker, const std::vector<StreamInfo>& streams) const {
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
      entry.second.latency.render(out, "msgstore_http_request_duration_seconds",
                                  "method=\"" + entry.first.first + "\",route=\"" + label_value(entry.first.second) + "\"");
    }
  }
  single(out, "msgstore_published_messages_total", "counter", "Messages published (all front ends).",
         broker.published_messages.load());
  single(out, "msgstore_published_payload_bytes_total", "counter", "Payload bytes published.", broker.published_bytes.load());
  single(out, "msgstore_publish_failures_total", "counter", "Publish calls that failed.", broker.publish_failures.load());
  single(out, "msgstore_fetch_requests_total", "counter", "Read (fetch) requests.", broker.fetch_requests.load());
  single(out, "msgstore_fetched_messages_total", "counter", "Messages returned by reads.", broker.fetched_messages.load());
  single(out, "msgstore_fetched_payload_bytes_total", "counter", "Payload bytes returned by reads.",
         broker.fetched_bytes.load());
  single(out, "msgstore_long_poll_waits_total", "counter", "Reads that waited for new data.", broker.long_poll_waits.load());
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
  return out;
}

}  // namespace msgstore::server
