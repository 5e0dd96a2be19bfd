// netbench: a loopback load generator for msgstore's HTTP API and for Redis (RESP), so that
// both are driven by the same C++ client code in one run (bench/compare.sh).
//
//   netbench --protocol http --port 7480 --connections 50 --seconds 10 --payload-bytes 100
//   netbench --protocol http --port 7480 --batch 1000 --connections 50 ...   (JSON batches)
//   netbench --protocol resp --port 6399 --connections 50 --pipeline 64 ...  (Redis XADD)
//   netbench ... --rate 10000                                                 (fixed rate)
//
// Closed loop (no --rate): every connection keeps `pipeline` requests outstanding (HTTP/1.1
// has no pipelining here: 1), and throughput is the result. Open loop (--rate R): request k is
// due at start + k/R whatever happened before (sends are scheduled by time), it goes out on
// the first idle connection, and its latency runs from its due time, so a stall of the server
// shows up in the latency of every request that should have been sent during it (no
// coordinated omission). One thread, epoll, non-blocking sockets.
//
// Output: one JSON object on stdout: requests, messages, errors, seconds, messages_per_second,
// payload_megabytes_per_second, latency percentiles in microseconds.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string protocol = "http";  // http | resp
  std::string host = "127.0.0.1";
  int port = 7480;
  unsigned connections = 50;
  unsigned pipeline = 1;            // resp only: requests outstanding per connection
  unsigned batch = 1;               // http: messages per request (1 = raw single publish)
  std::size_t payload_bytes = 100;
  double seconds = 10;
  std::uint64_t requests_max = 100'000'000;
  double rate = 0;                  // requests per second; 0 = closed loop
  unsigned keys = 0;                // distinct keys cycled through (0 = no key)
  std::string stream = "bench";
  std::string subject = "bench.a";
  double warmup_seconds = 0;        // requests completing before this are not counted
};

// A connection with one outstanding window of requests.
struct Connection {
  int fd = -1;
  std::string out;                  // bytes still to send
  std::size_t out_sent = 0;
  std::string in;                   // bytes received, not yet parsed
  std::deque<Clock::time_point> outstanding;  // intended send time of each request in flight
  std::uint64_t sent = 0;
};

std::string payload_text(std::size_t bytes, std::uint64_t seed) {
  // Printable so it travels as text in JSON and RESP alike.
  std::string text(bytes, 'a');
  std::uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& character : text) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    character = static_cast<char>('a' + state % 26);
  }
  return text;
}

// Request bodies are prebuilt: kRequestVariants variants cycled through (different payloads
// and keys), so building a request costs a copy, as it would for a real producer.
constexpr std::size_t request_variants = 64;

std::vector<std::string> build_requests(const Options& options) {
  std::vector<std::string> requests;
  for (std::size_t variant = 0; variant < request_variants; ++variant) {
    std::string request;
    if (options.protocol == "resp") {
      // XADD <stream> * p <payload>, one per message, `batch` is ignored (use --pipeline).
      std::string payload = payload_text(options.payload_bytes, variant);
      std::string key = options.keys ? options.stream + ":" + std::to_string(variant % options.keys) : options.stream;
      auto bulk = [&](std::string_view text) {
        request += "$" + std::to_string(text.size()) + "\r\n";
        request.append(text);
        request += "\r\n";
      };
      request += "*5\r\n";
      bulk("XADD");
      bulk(key);
      bulk("*");
      bulk("p");
      bulk(payload);
    } else if (options.batch <= 1) {
      std::string payload = payload_text(options.payload_bytes, variant);
      request = "POST /v1/streams/" + options.stream + "/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n";
      request += "Content-Type: application/octet-stream\r\nMsgstore-Subject: " + options.subject + "\r\n";
      if (options.keys) request += "Msgstore-Key: k" + std::to_string(variant % options.keys) + "\r\n";
      request += "Content-Length: " + std::to_string(payload.size()) + "\r\n\r\n" + payload;
    } else {
      std::string body = "{\"messages\":[";
      for (unsigned index = 0; index < options.batch; ++index) {
        if (index) body += ',';
        body += "{\"subject\":\"" + options.subject + "\",";
        if (options.keys) body += "\"key\":\"k" + std::to_string((variant + index) % options.keys) + "\",";
        body += "\"payload\":\"" + payload_text(options.payload_bytes, variant * 7919 + index) + "\"}";
      }
      body += "]}";
      request = "POST /v1/streams/" + options.stream + "/batch HTTP/1.1\r\nHost: 127.0.0.1\r\n";
      request += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    }
    requests.push_back(std::move(request));
  }
  return requests;
}

// Parses one complete response from the front of `in`. Returns its length, 0 if incomplete,
// and sets `ok`; -1 on a protocol error.
long parse_http_response(std::string_view in, bool& ok) {
  const auto header_end = in.find("\r\n\r\n");
  if (header_end == std::string_view::npos) return in.size() > 64 * 1024 ? -1 : 0;
  if (in.size() < 12 || in.substr(0, 5) != "HTTP/") return -1;
  ok = in[9] == '2';
  // Content-Length as Beast and Redis-free servers spell it; other spellings are rarer, so
  // they are looked for (case-insensitively) only when the common one is missing.
  const std::string_view headers = in.substr(0, header_end);
  std::size_t found = headers.find("\r\nContent-Length:");
  if (found == std::string_view::npos) {
    std::string lower(headers);
    for (auto& character : lower) character = static_cast<char>(std::tolower(static_cast<unsigned char>(character)));
    found = lower.find("\r\ncontent-length:");
    if (found == std::string::npos) return -1;  // chunked or close-delimited: not produced for these requests
  }
  std::size_t content_length = 0;
  for (std::size_t position = found + 17; position < headers.size(); ++position) {
    const char character = headers[position];
    if (character == ' ') continue;
    if (character < '0' || character > '9') break;
    content_length = content_length * 10 + static_cast<std::size_t>(character - '0');
  }
  const std::size_t total = header_end + 4 + content_length;
  return in.size() >= total ? static_cast<long>(total) : 0;
}

// Skips one RESP value at `position`; returns the position after it, or npos if incomplete.
std::size_t skip_resp(std::string_view in, std::size_t position, bool& ok) {
  if (position >= in.size()) return std::string_view::npos;
  const auto line_end = in.find("\r\n", position);
  if (line_end == std::string_view::npos) return std::string_view::npos;
  const char type = in[position];
  long long number = 0;
  bool negative = false;
  for (std::size_t digit = position + 1; digit < line_end; ++digit) {
    if (in[digit] == '-') negative = true;
    else if (in[digit] >= '0' && in[digit] <= '9') number = number * 10 + (in[digit] - '0');
  }
  if (negative) number = -number;
  std::size_t next = line_end + 2;
  switch (type) {
    case '+': case ':': return next;
    case '-': ok = false; return next;
    case '$':
      if (number < 0) return next;
      return in.size() >= next + number + 2 ? next + number + 2 : std::string_view::npos;
    case '*':
      for (long long element = 0; element < number; ++element) {
        next = skip_resp(in, next, ok);
        if (next == std::string_view::npos) return next;
      }
      return next;
    default: ok = false; return in.size();
  }
}

int connect_to(const Options& options) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(options.port));
  if (::inet_pton(AF_INET, options.host.c_str(), &address.sin_addr) != 1) return -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  return fd;
}

double percentile(std::vector<double>& sorted, double fraction) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(fraction * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  CLI::App app{"netbench: loopback load for msgstore (HTTP) and Redis (RESP)"};
  app.add_option("--protocol", options.protocol, "http or resp")->check(CLI::IsMember({"http", "resp"}));
  app.add_option("--host", options.host, "IPv4 loopback address");
  app.add_option("--port", options.port, "server port")->required();
  app.add_option("--connections", options.connections, "connections");
  app.add_option("--pipeline", options.pipeline, "resp: requests outstanding per connection");
  app.add_option("--batch", options.batch, "http: messages per request (JSON batch when > 1)");
  app.add_option("--payload-bytes", options.payload_bytes, "payload size");
  app.add_option("--seconds", options.seconds, "time limit of the measured run");
  app.add_option("--requests-max", options.requests_max, "request count limit");
  app.add_option("--rate", options.rate, "requests per second, scheduled by time (0 = as fast as possible)");
  app.add_option("--keys", options.keys, "distinct keys (http) or stream keys (resp) cycled through; 0 = none");
  app.add_option("--stream", options.stream, "stream (http) or key prefix (resp)");
  app.add_option("--subject", options.subject, "http: message subject");
  app.add_option("--warmup-seconds", options.warmup_seconds, "not counted: requests completing before this");
  CLI11_PARSE(app, argc, argv);
  if (options.host.rfind("127.", 0) != 0) {
    std::fprintf(stderr, "netbench only talks to loopback (127.0.0.0/8)\n");
    return 2;
  }
  if (options.protocol == "http") options.pipeline = 1;
  if (options.connections == 0 || options.pipeline == 0) return 2;

  const std::vector<std::string> requests = build_requests(options);
  const unsigned messages_per_request = options.protocol == "http" ? std::max(1u, options.batch) : 1;

  const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<Connection> connections(options.connections);
  for (std::size_t index = 0; index < connections.size(); ++index) {
    connections[index].fd = connect_to(options);
    if (connections[index].fd < 0) {
      std::fprintf(stderr, "netbench: cannot connect to %s:%d\n", options.host.c_str(), options.port);
      return 2;
    }
    epoll_event event{};
    event.events = EPOLLIN | EPOLLOUT;
    event.data.u64 = index;
    ::epoll_ctl(epoll, EPOLL_CTL_ADD, connections[index].fd, &event);
  }

  std::vector<double> latencies_us;
  latencies_us.reserve(std::min<std::uint64_t>(options.requests_max, 4'000'000));
  std::uint64_t issued = 0, completed = 0, counted = 0, errors = 0;
  const auto start = Clock::now();
  const auto warmup_end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.warmup_seconds));
  const auto end = warmup_end + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.seconds));
  Clock::time_point measured_last = warmup_end;
  std::deque<Clock::time_point> due;  // open loop: requests due but not yet sent (no idle connection)
  std::uint64_t scheduled = 0;
  std::vector<std::size_t> idle;      // connections with room in their window

  auto enqueue = [&](Connection& connection, Clock::time_point intended) {
    connection.out += requests[issued % requests.size()];
    connection.outstanding.push_back(intended);
    ++issued;
    ++connection.sent;
  };
  auto flush = [&](Connection& connection) -> bool {
    while (connection.out_sent < connection.out.size()) {
      const ssize_t written = ::send(connection.fd, connection.out.data() + connection.out_sent,
                                     connection.out.size() - connection.out_sent, MSG_NOSIGNAL);
      if (written < 0) return errno == EAGAIN || errno == EINTR;
      connection.out_sent += static_cast<std::size_t>(written);
    }
    connection.out.clear();
    connection.out_sent = 0;
    return true;
  };
  // Closed loop: a connection sends a window of `pipeline` requests and refills it once every
  // reply is in (as redis-benchmark -P does). Open loop: any free slot takes the next due request.
  bool filling = false;
  auto has_room = [&](const Connection& connection) {
    if (options.rate > 0 || options.pipeline == 1) return connection.outstanding.size() < options.pipeline;
    return filling ? connection.outstanding.size() < options.pipeline : connection.outstanding.empty();
  };

  bool stop_issuing = false;
  for (std::size_t index = 0; index < connections.size(); ++index) idle.push_back(index);
  std::vector<epoll_event> events(connections.size());
  bool failed = false;
  while (!failed) {
    const auto now = Clock::now();
    if (now >= end || issued >= options.requests_max) stop_issuing = true;
    // Issue work.
    if (!stop_issuing) {
      if (options.rate > 0) {
        const double elapsed = std::chrono::duration<double>(now - start).count();
        const auto should = static_cast<std::uint64_t>(elapsed * options.rate) + 1;
        while (scheduled < should) {
          due.push_back(start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(scheduled / options.rate)));
          ++scheduled;
        }
      }
      std::vector<std::size_t> still_idle;
      for (std::size_t index : idle) {
        Connection& connection = connections[index];
        bool wrote = false;
        filling = true;
        while (has_room(connection)) {
          if (options.rate > 0) {
            if (due.empty()) break;
            enqueue(connection, due.front());
            due.pop_front();
          } else {
            enqueue(connection, Clock::now());
          }
          wrote = true;
        }
        filling = false;
        if (wrote && !flush(connection)) failed = true;
        if (has_room(connection)) still_idle.push_back(index);
      }
      idle.swap(still_idle);
    } else {
      bool any = false;
      for (const auto& connection : connections) any = any || !connection.outstanding.empty();
      if (!any) break;
      if (now >= end + std::chrono::seconds(10)) break;  // the server stopped answering; count what we have
    }
    // Sleep until a socket is ready or (open loop) the next request falls due.
    timespec timeout{0, 100'000'000};
    if (options.rate > 0 && !stop_issuing) {
      const auto next_due = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(scheduled / options.rate));
      const auto wait = std::max(Clock::duration::zero(), next_due - Clock::now());
      const auto wait_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
      timeout = {static_cast<time_t>(wait_ns / 1'000'000'000), static_cast<long>(wait_ns % 1'000'000'000)};
    }
    const int ready = ::epoll_pwait2(epoll, events.data(), static_cast<int>(events.size()), &timeout, nullptr);
    if (ready < 0 && errno != EINTR) break;
    for (int event_index = 0; event_index < ready; ++event_index) {
      const std::size_t index = events[event_index].data.u64;
      Connection& connection = connections[index];
      if (events[event_index].events & (EPOLLERR | EPOLLHUP)) {
        std::fprintf(stderr, "netbench: connection %zu closed by the server\n", index);
        failed = true;
        break;
      }
      if (events[event_index].events & EPOLLOUT) {
        if (!flush(connection)) failed = true;
      }
      if (!(events[event_index].events & EPOLLIN)) continue;
      char buffer[65536];
      for (;;) {
        const ssize_t received = ::recv(connection.fd, buffer, sizeof buffer, 0);
        if (received > 0) {
          connection.in.append(buffer, static_cast<std::size_t>(received));
          if (received < static_cast<ssize_t>(sizeof buffer)) break;
          continue;
        }
        if (received == 0) {
          std::fprintf(stderr, "netbench: connection %zu closed by the server\n", index);
          failed = true;
        }
        break;
      }
      std::size_t position = 0;
      const bool had_room = has_room(connection);
      while (!connection.outstanding.empty()) {
        bool ok = true;
        std::size_t consumed = 0;
        if (options.protocol == "http") {
          const long length = parse_http_response(std::string_view(connection.in).substr(position), ok);
          if (length < 0) {
            std::fprintf(stderr, "netbench: malformed HTTP response\n");
            failed = true;
            break;
          }
          if (length == 0) break;
          consumed = static_cast<std::size_t>(length);
          if (!ok && errors < 3) {
            std::fprintf(stderr, "netbench: error response: %.300s\n", connection.in.c_str() + position);
          }
        } else {
          const std::size_t next = skip_resp(connection.in, position, ok);
          if (next == std::string_view::npos) break;
          consumed = next - position;
          if (!ok && errors < 3) std::fprintf(stderr, "netbench: error reply: %.200s\n", connection.in.c_str() + position);
        }
        position += consumed;
        const auto finished = Clock::now();
        const auto intended = connection.outstanding.front();
        connection.outstanding.pop_front();
        ++completed;
        if (!ok) ++errors;
        if (finished >= warmup_end && intended >= warmup_end) {
          if (ok) {
            ++counted;
            latencies_us.push_back(std::chrono::duration<double, std::micro>(finished - intended).count());
          }
          measured_last = finished;
        }
      }
      connection.in.erase(0, position);
      if (!had_room && has_room(connection)) idle.push_back(index);
    }
  }
  for (auto& connection : connections) ::close(connection.fd);
  ::close(epoll);

  const double seconds = std::max(1e-9, std::chrono::duration<double>(measured_last - warmup_end).count());
  std::sort(latencies_us.begin(), latencies_us.end());
  const double messages = static_cast<double>(counted) * messages_per_request;
  std::printf(
      "{\"protocol\":\"%s\",\"connections\":%u,\"pipeline\":%u,\"batch\":%u,\"payload_bytes\":%zu,\"rate\":%.0f,"
      "\"requests\":%llu,\"messages\":%.0f,\"errors\":%llu,\"failed\":%s,\"seconds\":%.3f,"
      "\"messages_per_second\":%.0f,\"payload_megabytes_per_second\":%.2f,"
      "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f}}\n",
      options.protocol.c_str(), options.connections, options.pipeline, messages_per_request, options.payload_bytes,
      options.rate, static_cast<unsigned long long>(counted), messages, static_cast<unsigned long long>(errors),
      failed ? "true" : "false", seconds, messages / seconds, messages * options.payload_bytes / seconds / 1e6,
      percentile(latencies_us, 0.50), percentile(latencies_us, 0.90), percentile(latencies_us, 0.99),
      percentile(latencies_us, 0.999), latencies_us.empty() ? 0.0 : latencies_us.back());
  return failed || errors ? 1 : 0;
}
