// End-to-end tests of `msgstore serve`: each test starts the real binary (MSGSTORE_BINARY) on
// 127.0.0.1:0 with its own data directory, reads the bound port from the JSON "listening" log
// line, drives it with real curl (and raw sockets for the misbehaving clients), and stops it
// by PID with SIGTERM, checking the exit status.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "e2e/json_fields.h"
#include "e2e/process.h"
#include "support/temporary_directory.h"

namespace msgstore::e2e {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = boost::json;

// The full path of a tool on PATH (run_process uses execve, which does not search PATH).
std::string tool(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string_view directories = path != nullptr ? path : "/usr/bin:/bin";
  while (!directories.empty()) {
    const std::size_t colon = directories.find(':');
    const fs::path candidate = fs::path(std::string(directories.substr(0, colon))) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    if (colon == std::string_view::npos) break;
    directories.remove_prefix(colon + 1);
  }
  return name;
}

struct HttpResult {
  int status = 0;
  std::string body;
  json::value json() const {
    boost::system::error_code error;
    json::value value = json::parse(body, error);
    return error ? json::value() : value;
  }
  std::string error_code() const {
    const json::value value = json();
    if (!value.is_object() || !value.as_object().contains("error")) return "";
    return std::string(value.at("error").at("code").as_string());
  }
};

// A running `msgstore serve`.
class Server {
 public:
  Server(const std::string& binary, const fs::path& data, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {binary, "--data", data.string(), "serve", "--listen", "127.0.0.1:0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    child_ = std::make_unique<ChildProcess>(argv);
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto line = child_->read_line(1s);
      if (!line) continue;
      log_ += *line + "\n";
      if (json_text(*line, "message") == "listening") {
        port_ = static_cast<int>(json_number(*line, "port").value_or(0));
        break;
      }
    }
    if (port_ == 0) ADD_FAILURE() << "the server did not log a listening line; log so far:\n" << log_;
  }
  ~Server() {
    if (!stopped_) (void)stop();
  }

  int port() const { return port_; }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  pid_t pid() const { return child_->pid(); }

  // SIGTERM, then wait; returns the exit status (or -signal).
  int stop() {
    stopped_ = true;
    child_->send_signal(SIGTERM);
    const int status = child_->wait();
    for (const std::string& line : child_->drain_lines()) log_ += line + "\n";
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  }
  const std::string& log() const { return log_; }

 private:
  std::unique_ptr<ChildProcess> child_;
  int port_ = 0;
  bool stopped_ = false;
  std::string log_;
};

// curl ARGS... URL; the status code comes from -w on the last line.
HttpResult curl(std::vector<std::string> args, const std::string& url, const std::string& input = {}) {
  std::vector<std::string> argv = {tool("curl"), "-sS", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(url);
  const ProcessResult result = run_process(argv, input, {}, 40s);
  HttpResult http;
  const std::size_t newline = result.out.rfind('\n');
  if (newline == std::string::npos) return http;
  http.body = result.out.substr(0, newline);
  http.status = std::atoi(result.out.c_str() + newline + 1);
  return http;
}

HttpResult get(const Server& server, const std::string& path) { return curl({}, server.url(path)); }

HttpResult post_json(const Server& server, const std::string& path, const std::string& body,
                     const std::string& content_type = "application/json") {
  return curl({"-X", "POST", "-H", "Content-Type: " + content_type, "--data-binary", "@-"}, server.url(path), body);
}

// A raw TCP connection to the server, for clients curl cannot imitate.
class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }
  bool send(std::string_view data) { return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size()); }
  // Reads until the peer closes or `timeout`; returns what arrived and whether it closed.
  std::pair<std::string, bool> read_until_closed(std::chrono::milliseconds timeout) {
    std::string received;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd descriptor{fd_, POLLIN, 0};
      const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
      if (::poll(&descriptor, 1, std::max(left, 1)) <= 0) continue;
      char buffer[4096];
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) return {received, true};
      received.append(buffer, static_cast<std::size_t>(n));
    }
    return {received, false};
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

std::uint64_t metric_value(const std::string& metrics, const std::string& series) {
  const std::size_t at = metrics.find("\n" + series + " ");
  if (at == std::string::npos) return UINT64_MAX;
  return std::strtoull(metrics.c_str() + at + series.size() + 2, nullptr, 10);
}

class ServerTest : public ::testing::Test {
 protected:
  ServerTest() : binary_(binary_from_environment("MSGSTORE_BINARY")), data_(directory_.path() / "data") {}

  void create_stream(const Server& server, const std::string& body) {
    const HttpResult created = post_json(server, "/v1/streams", body);
    ASSERT_EQ(created.status, 201) << created.body;
  }

  msgstore::testing::TemporaryDirectory directory_;
  std::string binary_;
  fs::path data_;
};

TEST_F(ServerTest, HealthReadinessAndUnknownEndpoints) {
  Server server(binary_, data_);
  EXPECT_EQ(get(server, "/healthz").status, 200);
  const HttpResult ready = get(server, "/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.json().at("status").as_string(), "ready");
  const HttpResult unknown = get(server, "/v1/nothing");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.error_code(), "not_found");
  const HttpResult method = curl({"-X", "PUT"}, server.url("/v1/streams"));
  EXPECT_EQ(method.status, 405);
  EXPECT_EQ(method.error_code(), "method_not_allowed");
  EXPECT_EQ(server.stop(), 0) << server.log();
}

TEST_F(ServerTest, StreamsCreateListDescribeUpdateDelete) {
  Server server(binary_, data_);
  create_stream(server, R"({"name":"orders","subjects":["orders.>"],"partitions":2})");
  const HttpResult duplicate = post_json(server, "/v1/streams", R"({"name":"orders","subjects":["orders.>"]})");
  EXPECT_EQ(duplicate.status, 409);
  EXPECT_EQ(duplicate.error_code(), "stream_exists");

  const HttpResult list = get(server, "/v1/streams");
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.json().at("streams").as_array().size(), 1u);
  EXPECT_EQ(list.json().at("streams").at(0).at("name").as_string(), "orders");

  const HttpResult described = get(server, "/v1/streams/orders");
  ASSERT_EQ(described.status, 200);
  EXPECT_EQ(described.json().at("partitions").as_array().size(), 2u);
  EXPECT_EQ(described.json().at("config").at("fsync").as_string(), "always");

  const HttpResult updated = curl({"-X", "PATCH", "-H", "Content-Type: application/json", "--data-binary",
                                   R"({"partitions":3,"max_age_ms":3600000})"},
                                  server.url("/v1/streams/orders"));
  ASSERT_EQ(updated.status, 200) << updated.body;
  EXPECT_EQ(updated.json().at("config").at("partitions").as_int64(), 3);
  EXPECT_EQ(updated.json().at("config").at("max_age_ms").as_int64(), 3600000);
  const HttpResult shrink = curl({"-X", "PATCH", "-H", "Content-Type: application/json", "--data-binary", R"({"partitions":1})"},
                                 server.url("/v1/streams/orders"));
  EXPECT_EQ(shrink.status, 400) << shrink.body;
  const HttpResult rename = curl({"-X", "PATCH", "-H", "Content-Type: application/json", "--data-binary", R"({"name":"x"})"},
                                 server.url("/v1/streams/orders"));
  EXPECT_EQ(rename.status, 400);

  EXPECT_EQ(post_json(server, "/v1/streams", R"({"name":"bad name!","subjects":["a"]})").status, 400);
  EXPECT_EQ(post_json(server, "/v1/streams", R"({"name":"x","subjects":["a"],"colour":1})").status, 400);
  EXPECT_EQ(post_json(server, "/v1/streams", R"({"name":"x",)").status, 400);
  EXPECT_EQ(post_json(server, "/v1/streams", R"({"name":"x"})", "text/plain").status, 415);

  const HttpResult deleted = curl({"-X", "DELETE"}, server.url("/v1/streams/orders"));
  EXPECT_EQ(deleted.status, 200);
  const HttpResult gone = get(server, "/v1/streams/orders");
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(gone.error_code(), "stream_not_found");
  EXPECT_EQ(curl({"-X", "DELETE"}, server.url("/v1/streams/orders")).status, 404);
  EXPECT_EQ(server.stop(), 0);
}

// The index, dedup and compaction settings travel over HTTP like the rest of the config.
TEST_F(ServerTest, StreamPolicyFieldsRoundTrip) {
  Server server(binary_, data_);
  create_stream(server, R"({"name":"accounts","cleanup":"compact","tombstone_retention_ms":60000,)"
                        R"("indexed_headers":["tenant","region"],"dedup_window_ms":5000,"indexes_enabled":true})");
  const HttpResult described = get(server, "/v1/streams/accounts");
  ASSERT_EQ(described.status, 200) << described.body;
  const auto description = described.json();
  const auto& config = description.at("config");
  EXPECT_EQ(config.at("cleanup").as_string(), "compact");
  EXPECT_EQ(config.at("tombstone_retention_ms").as_int64(), 60000);
  EXPECT_EQ(config.at("dedup_window_ms").as_int64(), 5000);
  EXPECT_TRUE(config.at("indexes_enabled").as_bool());
  ASSERT_EQ(config.at("indexed_headers").as_array().size(), 2u);
  EXPECT_EQ(config.at("indexed_headers").at(1).as_string(), "region");

  const HttpResult updated = curl({"-X", "PATCH", "-H", "Content-Type: application/json", "--data-binary",
                                   R"({"indexed_headers":["tenant"],"cleanup":"delete"})"},
                                  server.url("/v1/streams/accounts"));
  ASSERT_EQ(updated.status, 200) << updated.body;
  EXPECT_EQ(updated.json().at("config").at("cleanup").as_string(), "delete");
  EXPECT_EQ(updated.json().at("config").at("indexed_headers").as_array().size(), 1u);

  const HttpResult bad_cleanup = post_json(server, "/v1/streams", R"({"name":"x1","cleanup":"sometimes"})");
  EXPECT_EQ(bad_cleanup.status, 400) << bad_cleanup.body;
  EXPECT_NE(bad_cleanup.body.find("cleanup"), std::string::npos) << bad_cleanup.body;
  EXPECT_EQ(post_json(server, "/v1/streams", R"({"name":"x2","indexes_enabled":"yes"})").status, 400);
  EXPECT_EQ(post_json(server, "/v1/streams", R"({"name":"x3","indexed_headers":[1]})").status, 400);
  EXPECT_EQ(get(server, "/v1/streams/x1").status, 404);
}

TEST_F(ServerTest, PublishSingleBatchBySubjectAndRead) {
  Server server(binary_, data_);
  create_stream(server, R"({"name":"orders","subjects":["orders.>"]})");
  create_stream(server, R"({"name":"audit","subjects":[">"]})");

  const HttpResult single = curl({"-X", "POST", "-H", "Msgstore-Subject: orders.created", "-H", "Msgstore-Key: customer-7",
                                  "-H", "Msgstore-Header-Trace-Id: abc", "-H", "Msgstore-Timestamp-Ms: 1700000000000",
                                  "--data-binary", "hello"},
                                 server.url("/v1/streams/orders/messages"));
  ASSERT_EQ(single.status, 200) << single.body;
  EXPECT_EQ(single.json().at("stream").as_string(), "orders");
  EXPECT_EQ(single.json().at("offset").as_int64(), 0);

  const HttpResult batch = post_json(server, "/v1/streams/orders/batch",
                                     R"({"messages":[{"subject":"orders.a","payload":"one"},{"payload_base64":"AP8=","key":"k"}]})");
  ASSERT_EQ(batch.status, 200) << batch.body;
  ASSERT_EQ(batch.json().at("results").as_array().size(), 2u);
  EXPECT_EQ(batch.json().at("results").at(1).at("offset").as_int64(), 2);

  const HttpResult ndjson = post_json(server, "/v1/streams/orders/batch",
                                      "{\"payload\":\"three\"}\n{\"payload\":\"four\",\"headers\":{\"h\":\"v\"}}\n",
                                      "application/x-ndjson");
  ASSERT_EQ(ndjson.status, 200) << ndjson.body;
  EXPECT_EQ(ndjson.json().at("results").at(1).at("offset").as_int64(), 4);

  const HttpResult routed = curl({"-X", "POST", "--data-binary", "routed"}, server.url("/v1/publish/orders.shipped"));
  ASSERT_EQ(routed.status, 200) << routed.body;
  EXPECT_EQ(routed.json().at("positions").as_array().size(), 2u);  // orders and audit capture it
  const HttpResult unrouted = curl({"-X", "POST", "--data-binary", "x"}, server.url("/v1/publish/nobody"));
  EXPECT_EQ(unrouted.status, 200);  // audit captures ">"
  EXPECT_EQ(curl({"-X", "DELETE"}, server.url("/v1/streams/audit")).status, 200);
  const HttpResult none = curl({"-X", "POST", "--data-binary", "x"}, server.url("/v1/publish/nobody"));
  EXPECT_EQ(none.status, 404);
  EXPECT_EQ(none.error_code(), "no_matching_stream");

  const HttpResult all = get(server, "/v1/streams/orders/partitions/0/messages?offset=0");
  ASSERT_EQ(all.status, 200) << all.body;
  const json::value all_json = all.json();
  const json::array& messages = all_json.at("messages").as_array();
  ASSERT_EQ(messages.size(), 6u);
  EXPECT_EQ(messages[0].at("subject").as_string(), "orders.created");
  EXPECT_EQ(messages[0].at("key").as_string(), "customer-7");
  EXPECT_EQ(messages[0].at("headers").at("Trace-Id").as_string(), "abc");
  EXPECT_EQ(messages[0].at("timestamp_ms").as_int64(), 1700000000000);
  EXPECT_EQ(messages[0].at("payload").as_string(), "hello");
  EXPECT_EQ(messages[2].at("payload_base64").as_string(), "AP8=");
  EXPECT_EQ(messages[2].at("subject").as_string(), "orders");  // the default subject is the stream name
  EXPECT_EQ(messages[4].at("headers").at("h").as_string(), "v");
  EXPECT_EQ(messages[5].at("payload").as_string(), "routed");
  EXPECT_EQ(all.json().at("next_offset").as_int64(), 6);
  EXPECT_EQ(all.json().at("high_watermark").as_int64(), 6);
  EXPECT_EQ(all.json().at("log_start_offset").as_int64(), 0);

  // Paging.
  const HttpResult page = get(server, "/v1/streams/orders/partitions/0/messages?offset=1&max_messages=2");
  ASSERT_EQ(page.status, 200);
  ASSERT_EQ(page.json().at("messages").as_array().size(), 2u);
  EXPECT_EQ(page.json().at("messages").at(0).at("offset").as_int64(), 1);
  EXPECT_EQ(page.json().at("next_offset").as_int64(), 3);
  // By time: only the first message has the old timestamp.
  const HttpResult by_time = get(server, "/v1/streams/orders/partitions/0/messages?time_ms=1700000000001&max_messages=1");
  ASSERT_EQ(by_time.status, 200);
  EXPECT_EQ(by_time.json().at("messages").at(0).at("offset").as_int64(), 1);
  // At the end: empty, not an error.
  const HttpResult end = get(server, "/v1/streams/orders/partitions/0/messages?offset=6");
  ASSERT_EQ(end.status, 200);
  EXPECT_TRUE(end.json().at("messages").as_array().empty());

  // Bad reads.
  const HttpResult past = get(server, "/v1/streams/orders/partitions/0/messages?offset=99");
  EXPECT_EQ(past.status, 400);
  EXPECT_EQ(past.error_code(), "offset_out_of_range");
  EXPECT_EQ(past.json().at("error").at("details").at("high_watermark").as_int64(), 6);
  EXPECT_EQ(get(server, "/v1/streams/orders/partitions/0/messages?offset=-1").status, 400);
  EXPECT_EQ(get(server, "/v1/streams/orders/partitions/0/messages?offset=abc").status, 400);
  EXPECT_EQ(get(server, "/v1/streams/orders/partitions/0/messages?offset=1&time_ms=5").status, 400);
  EXPECT_EQ(get(server, "/v1/streams/orders/partitions/x/messages").status, 400);
  const HttpResult no_partition = get(server, "/v1/streams/orders/partitions/9/messages");
  EXPECT_EQ(no_partition.status, 404);
  EXPECT_EQ(no_partition.error_code(), "partition_not_found");
  EXPECT_EQ(get(server, "/v1/streams/nope/partitions/0/messages").error_code(), "stream_not_found");
  EXPECT_EQ(server.stop(), 0);
}

TEST_F(ServerTest, BadPublishInput) {
  Server server(binary_, data_,
                {"--request-body-bytes-max", "4096", "--request-header-bytes-max", "4096", "--batch-messages-max", "3"});
  create_stream(server, R"({"name":"orders","subjects":["orders.>"]})");
  const HttpResult malformed = post_json(server, "/v1/streams/orders/batch", R"({"messages":[{"payload":"a"},)");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(malformed.error_code(), "invalid_argument");
  const HttpResult wrong_type = post_json(server, "/v1/streams/orders/batch", R"({"messages":[]})", "text/csv");
  EXPECT_EQ(wrong_type.status, 415);
  EXPECT_EQ(wrong_type.error_code(), "unsupported_media_type");
  const HttpResult base64 = post_json(server, "/v1/streams/orders/batch",
                                      R"({"messages":[{"payload":"ok"},{"payload_base64":"not base64!"}]})");
  EXPECT_EQ(base64.status, 400);
  EXPECT_EQ(base64.json().at("error").at("details").at("index").as_int64(), 1);
  const HttpResult too_many = post_json(server, "/v1/streams/orders/batch", R"({"messages":[{},{},{},{}]})");
  EXPECT_EQ(too_many.status, 413);
  EXPECT_EQ(too_many.error_code(), "limit_exceeded");
  const HttpResult oversize = curl({"-X", "POST", "--data-binary", "@-"}, server.url("/v1/streams/orders/messages"),
                                   std::string(10000, 'x'));
  EXPECT_EQ(oversize.status, 413);
  EXPECT_EQ(oversize.error_code(), "limit_exceeded");
  const HttpResult unknown = curl({"-X", "POST", "--data-binary", "x"}, server.url("/v1/streams/nope/messages"));
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.error_code(), "stream_not_found");
  const HttpResult bad_subject = curl({"-X", "POST", "-H", "Msgstore-Subject: a..b", "--data-binary", "x"},
                                      server.url("/v1/streams/orders/messages"));
  EXPECT_EQ(bad_subject.status, 400);
  const HttpResult bad_timestamp = curl({"-X", "POST", "-H", "Msgstore-Timestamp-Ms: yesterday", "--data-binary", "x"},
                                        server.url("/v1/streams/orders/messages"));
  EXPECT_EQ(bad_timestamp.status, 400);
  const HttpResult huge_header = curl({"-H", "X-Filler: " + std::string(8000, 'h')}, server.url("/healthz"));
  EXPECT_EQ(huge_header.status, 431);
  // Nothing above was stored, and the server still serves.
  const HttpResult read = get(server, "/v1/streams/orders/partitions/0/messages");
  ASSERT_EQ(read.status, 200);
  EXPECT_TRUE(read.json().at("messages").as_array().empty());
  EXPECT_EQ(server.stop(), 0);
}

TEST_F(ServerTest, LongPollWakesOnPublishAndEndsAtItsDeadline) {
  Server server(binary_, data_);
  create_stream(server, R"({"name":"orders","subjects":["orders.>"]})");
  const auto started = std::chrono::steady_clock::now();
  auto waiting = std::async(std::launch::async, [&] {
    return get(server, "/v1/streams/orders/partitions/0/messages?offset=0&wait_ms=20000");
  });
  std::this_thread::sleep_for(500ms);
  ASSERT_EQ(curl({"-X", "POST", "--data-binary", "wake up"}, server.url("/v1/streams/orders/messages")).status, 200);
  const HttpResult woken = waiting.get();
  const auto elapsed = std::chrono::steady_clock::now() - started;
  ASSERT_EQ(woken.status, 200) << woken.body;
  ASSERT_EQ(woken.json().at("messages").as_array().size(), 1u);
  EXPECT_EQ(woken.json().at("messages").at(0).at("payload").as_string(), "wake up");
  EXPECT_LT(elapsed, 10s);

  const auto empty_started = std::chrono::steady_clock::now();
  const HttpResult empty = get(server, "/v1/streams/orders/partitions/0/messages?offset=1&wait_ms=400");
  const auto empty_elapsed = std::chrono::steady_clock::now() - empty_started;
  ASSERT_EQ(empty.status, 200);
  EXPECT_TRUE(empty.json().at("messages").as_array().empty());
  EXPECT_GE(empty_elapsed, 390ms);
  EXPECT_LT(empty_elapsed, 5s);
  EXPECT_EQ(server.stop(), 0);
}

TEST_F(ServerTest, GracefulShutdownKeepsDataAndEndsLongPolls) {
  {
    Server server(binary_, data_);
    create_stream(server, R"({"name":"orders","subjects":["orders.>"]})");
    for (int i = 0; i < 5; ++i) {
      ASSERT_EQ(curl({"-X", "POST", "--data-binary", "m" + std::to_string(i)}, server.url("/v1/streams/orders/messages")).status, 200);
    }
    auto waiting = std::async(std::launch::async, [&] {
      return get(server, "/v1/streams/orders/partitions/0/messages?offset=5&wait_ms=60000");
    });
    std::this_thread::sleep_for(500ms);
    const auto stopping = std::chrono::steady_clock::now();
    EXPECT_EQ(server.stop(), 0) << server.log();
    EXPECT_LT(std::chrono::steady_clock::now() - stopping, 8s);
    const HttpResult ended = waiting.get();
    EXPECT_EQ(ended.status, 200);  // the long poll is answered (empty), not cut
    EXPECT_NE(server.log().find("\"message\":\"store closed\""), std::string::npos) << server.log();
  }
  Server restarted(binary_, data_);
  const HttpResult read = get(restarted, "/v1/streams/orders/partitions/0/messages");
  ASSERT_EQ(read.status, 200);
  ASSERT_EQ(read.json().at("messages").as_array().size(), 5u);
  EXPECT_EQ(read.json().at("messages").at(4).at("payload").as_string(), "m4");
  EXPECT_EQ(restarted.stop(), 0);
}

TEST_F(ServerTest, SecondServerOnTheSameDataDirectoryIsRefused) {
  Server first(binary_, data_);
  const ProcessResult second = run_process({binary_, "--data", data_.string(), "serve", "--listen", "127.0.0.1:0"}, {}, {}, 20s);
  EXPECT_EQ(second.exit_code, 3) << second.err;
  EXPECT_EQ(second.err.rfind("msgstore: store_locked: ", 0), 0u) << second.err;
  EXPECT_NE(second.err.find("in use by another msgstore process"), std::string::npos) << second.err;
  EXPECT_EQ(get(first, "/healthz").status, 200);  // the first one is unaffected
  EXPECT_EQ(first.stop(), 0);
}

TEST_F(ServerTest, ConfigurationFileFlagsAndHelp) {
  const ProcessResult help = run_process({binary_, "serve", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* flag : {"--listen", "--config", "--max-connections", "--request-body-bytes-max", "--batch-messages-max",
                           "--connection-in-flight-bytes-max", "--header-read-timeout-ms", "--idle-timeout-ms",
                           "--worker-threads", "MSGSTORE_MAX_CONNECTIONS"}) {
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag;
  }
  const fs::path config = directory_.path() / "msgstore.toml";
  std::ofstream(config) << "[server]\nbatch_messages_max = 2\n";
  {
    Server server(binary_, data_, {"--config", config.string()});
    create_stream(server, R"({"name":"orders","subjects":["orders.>"]})");
    EXPECT_EQ(post_json(server, "/v1/streams/orders/batch", R"({"messages":[{},{},{}]})").status, 413);
    EXPECT_EQ(post_json(server, "/v1/streams/orders/batch", R"({"messages":[{},{}]})").status, 200);
    EXPECT_EQ(server.stop(), 0);
  }
  {
    // A flag overrides the file.
    Server server(binary_, data_, {"--config", config.string(), "--batch-messages-max", "5"});
    EXPECT_EQ(post_json(server, "/v1/streams/orders/batch", R"({"messages":[{},{},{}]})").status, 200);
    EXPECT_EQ(server.stop(), 0);
  }
  std::ofstream(config) << "max_conections = 2\n";
  const ProcessResult typo = run_process({binary_, "--data", data_.string(), "serve", "--config", config.string()});
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_NE(typo.err.find("max_conections"), std::string::npos) << typo.err;
  const ProcessResult bad_listen = run_process({binary_, "--data", data_.string(), "serve", "--listen", "nowhere"});
  EXPECT_EQ(bad_listen.exit_code, 2);
  // Environment variables are read (and named in the error when wrong).
  const ProcessResult bad_environment = run_process({binary_, "--data", data_.string(), "serve"}, {},
                                                    {{"MSGSTORE_IDLE_TIMEOUT_MS", "soon"}});
  EXPECT_EQ(bad_environment.exit_code, 2);
  EXPECT_NE(bad_environment.err.find("MSGSTORE_IDLE_TIMEOUT_MS"), std::string::npos) << bad_environment.err;
  const ProcessResult zero_workers = run_process({binary_, "--data", data_.string(), "serve"}, {},
                                                 {{"MSGSTORE_WORKER_THREADS", "0"}});
  EXPECT_EQ(zero_workers.exit_code, 2);
  EXPECT_NE(zero_workers.err.find("worker_threads"), std::string::npos) << zero_workers.err;
}

TEST_F(ServerTest, SlowlorisIsCutWhileOthersAreServed) {
  Server server(binary_, data_, {"--header-read-timeout-ms", "1000"});
  RawConnection slow(server.port());
  ASSERT_TRUE(slow.connected());
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
  const auto started = std::chrono::steady_clock::now();
  bool cut = false;
  for (std::size_t i = 0; i < request.size(); ++i) {
    if (!slow.send(request.substr(i, 1))) {
      cut = true;
      break;
    }
    if (i == 5) {
      // Meanwhile a normal client is served at once.
      const auto normal_started = std::chrono::steady_clock::now();
      EXPECT_EQ(get(server, "/healthz").status, 200);
      EXPECT_LT(std::chrono::steady_clock::now() - normal_started, 2s);
    }
    std::this_thread::sleep_for(100ms);
    if (std::chrono::steady_clock::now() - started > 3s) break;
  }
  auto [received, closed] = slow.read_until_closed(3s);
  EXPECT_TRUE(cut || closed) << "the slow client was never cut off";
  if (!received.empty()) {
    EXPECT_NE(received.find("408"), std::string::npos) << received;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, 6s);
  const HttpResult metrics = get(server, "/metrics");
  EXPECT_GE(metric_value(metrics.body, "msgstore_http_rejected_total{reason=\"header_timeout\"}"), 1u) << metrics.body;
  EXPECT_EQ(server.stop(), 0);
}

TEST_F(ServerTest, HalfOpenConnectionsAreReclaimed) {
  Server server(binary_, data_, {"--header-read-timeout-ms", "500", "--idle-timeout-ms", "800"});
  std::vector<std::unique_ptr<RawConnection>> abandoned;
  for (int i = 0; i < 5; ++i) {
    abandoned.push_back(std::make_unique<RawConnection>(server.port()));
    ASSERT_TRUE(abandoned.back()->connected());
    abandoned.back()->send("GET /healthz HTTP/1.1\r\nHost: x\r\n");  // never finished, never closed
  }
  std::this_thread::sleep_for(300ms);
  EXPECT_GE(metric_value(get(server, "/metrics").body, "msgstore_http_connections"), 5u);
  std::this_thread::sleep_for(1500ms);
  // Only the /metrics request's own connection is left.
  EXPECT_EQ(metric_value(get(server, "/metrics").body, "msgstore_http_connections"), 1u);
  EXPECT_EQ(server.stop(), 0);
}

TEST_F(ServerTest, ConnectionFloodBeyondTheLimitIsRefusedAndRecovers) {
  Server server(binary_, data_, {"--max-connections", "8", "--header-read-timeout-ms", "1000"});
  std::vector<std::unique_ptr<RawConnection>> flood;
  for (int i = 0; i < 40; ++i) {
    flood.push_back(std::make_unique<RawConnection>(server.port()));
  }
  // The connections beyond the limit get a 503 limit_exceeded and are closed.
  int refused = 0;
  for (auto& connection : flood) {
    auto [received, closed] = connection->read_until_closed(50ms);
    if (closed && received.find("503") != std::string::npos && received.find("limit_exceeded") != std::string::npos) ++refused;
  }
  EXPECT_GE(refused, 20);
  // A normal client gets through once the silent flood connections time out (no crash,
  // no hang), well within a few seconds.
  const auto started = std::chrono::steady_clock::now();
  HttpResult served;
  while (std::chrono::steady_clock::now() - started < 8s) {
    served = get(server, "/healthz");
    if (served.status == 200) break;
    EXPECT_EQ(served.status, 503);
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_EQ(served.status, 200);
  flood.clear();
  const HttpResult metrics = get(server, "/metrics");
  EXPECT_GE(metric_value(metrics.body, "msgstore_http_rejected_total{reason=\"max_connections\"}"), 20u) << metrics.body;
  EXPECT_EQ(server.stop(), 0);
}

TEST_F(ServerTest, MetricsPassPromtoolAndCount) {
  Server server(binary_, data_);
  create_stream(server, R"({"name":"orders","subjects":["orders.>"]})");
  ASSERT_EQ(curl({"-X", "POST", "--data-binary", "12345"}, server.url("/v1/streams/orders/messages")).status, 200);
  ASSERT_EQ(get(server, "/v1/streams/orders/partitions/0/messages").status, 200);
  EXPECT_EQ(get(server, "/v1/nowhere").status, 404);
  EXPECT_EQ(curl({"-X", "BREW"}, server.url("/v1/streams")).status, 405);  // any token is a method
  const HttpResult metrics = get(server, "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_EQ(metric_value(metrics.body, "msgstore_published_messages_total"), 1u) << metrics.body;
  EXPECT_EQ(metric_value(metrics.body, "msgstore_published_payload_bytes_total"), 5u);
  EXPECT_EQ(metric_value(metrics.body, "msgstore_fetched_messages_total"), 1u);
  EXPECT_EQ(metric_value(metrics.body, "msgstore_stream_messages{stream=\"orders\"}"), 1u);
  EXPECT_EQ(metric_value(metrics.body, "msgstore_stream_segments{stream=\"orders\"}"), 1u);
  EXPECT_NE(metrics.body.find("msgstore_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/streams/{stream}/messages\",le=\"+Inf\"} 1"),
            std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("msgstore_http_responses_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("method=\"other\""), std::string::npos);  // never the raw token
  EXPECT_EQ(metrics.body.find("BREW"), std::string::npos);
  const ProcessResult promtool = run_process({tool("promtool"), "check", "metrics"}, metrics.body);
  EXPECT_EQ(promtool.exit_code, 0) << promtool.out << promtool.err;
  EXPECT_EQ(server.stop(), 0);
}

// The series the operations side asks for: fsync and publish latency histograms, per-consumer
// pending and lag, live subscribers; all accepted by promtool.
TEST_F(ServerTest, MetricsHaveFsyncPublishAndConsumerSeries) {
  Server server(binary_, data_);
  create_stream(server, R"({"name":"orders","subjects":["orders.>"]})");
  for (int i = 0; i < 4; ++i) ASSERT_EQ(curl({"-X", "POST", "--data-binary", "x"}, server.url("/v1/streams/orders/messages")).status, 200);
  ASSERT_EQ(post_json(server, "/v1/streams/orders/consumers", R"({"name":"billing"})").status, 201);
  const HttpResult fetched = post_json(server, "/v1/streams/orders/consumers/billing/fetch", R"({"max_messages":3})");
  ASSERT_EQ(fetched.status, 200) << fetched.body;
  const HttpResult metrics = get(server, "/metrics");
  ASSERT_EQ(metrics.status, 200);
  const std::string& text = metrics.body;
  // fsync=always: every publish waited for an fdatasync (stream creation syncs too).
  const std::uint64_t fsyncs = metric_value(text, "msgstore_fsync_duration_seconds_count");
  EXPECT_GE(fsyncs, 4u) << text;
  EXPECT_NE(fsyncs, UINT64_MAX);
  EXPECT_EQ(metric_value(text, "msgstore_fsync_duration_seconds_bucket{le=\"+Inf\"}"), fsyncs);
  EXPECT_EQ(metric_value(text, "msgstore_publish_duration_seconds_count"), 4u);
  EXPECT_EQ(metric_value(text, "msgstore_consumer_pending_messages{stream=\"orders\",consumer=\"billing\"}"), 3u);
  EXPECT_EQ(metric_value(text, "msgstore_consumer_lag_messages{stream=\"orders\",consumer=\"billing\"}"), 1u);
  EXPECT_EQ(metric_value(text, "msgstore_consumer_redelivered_messages{stream=\"orders\",consumer=\"billing\"}"), 0u);
  EXPECT_EQ(metric_value(text, "msgstore_live_subscribers{protocol=\"sse\"}"), 0u);
  EXPECT_EQ(metric_value(text, "msgstore_live_subscribers{protocol=\"websocket\"}"), 0u);
  EXPECT_NE(text.find("msgstore_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/streams/{stream}/consumers/{name}/fetch\"} 1"),
            std::string::npos);
  const ProcessResult promtool = run_process({tool("promtool"), "check", "metrics"}, text);
  EXPECT_EQ(promtool.exit_code, 0) << promtool.out << promtool.err;
  EXPECT_EQ(server.stop(), 0);
}

// GET /v1/query and /v1/streams/{stream}/query over curl: every predicate, paging, order,
// explain, and each bad input as the JSON error shape.
TEST_F(ServerTest, QueryEndpoint) {
  Server server(binary_, data_);
  create_stream(server, R"({"name":"orders","subjects":["orders.>"],"partitions":2,"indexed_headers":["region"]})");
  std::string batch = "{\"messages\":[";
  for (int i = 0; i < 40; ++i) {
    if (i > 0) batch += ',';
    batch += "{\"subject\":\"orders." + std::string(i % 4 == 0 ? "refunded" : "created") + "\",\"key\":\"customer-" +
             std::to_string(i % 8) + "\",\"headers\":{\"region\":\"" + (i % 2 == 0 ? "eu" : "us") +
             "\"},\"timestamp_ms\":" + std::to_string(1'700'000'000'000 + i * 1000) + ",\"payload\":\"order " +
             std::to_string(i) + "\"}";
  }
  batch += "]}";
  ASSERT_EQ(post_json(server, "/v1/streams/orders/batch", batch).status, 200);
  const auto query = [&](const std::string& parameters) {
    return curl({"-G"}, server.url("/v1/streams/orders/query?" + parameters));
  };
  const auto count = [](const HttpResult& result) { return result.json().at("messages").as_array().size(); };

  const HttpResult by_key = query("key=customer-3&explain=true");
  ASSERT_EQ(by_key.status, 200) << by_key.body;
  EXPECT_EQ(count(by_key), 5u);
  const json::value key_body = by_key.json();
  for (const auto& message : key_body.at("messages").as_array()) EXPECT_EQ(message.at("key").as_string(), "customer-3");
  EXPECT_EQ(by_key.json().at("statistics").at("plan").as_string(), "key index");
  EXPECT_TRUE(by_key.json().at("next_cursor").is_null());

  const HttpResult by_header = query("header.region=us");
  EXPECT_EQ(count(by_header), 20u);
  const HttpResult refunded = query("subject=orders.refunded");
  EXPECT_EQ(count(refunded), 10u);
  const json::value refunded_body = refunded.json();
  for (const auto& message : refunded_body.at("messages").as_array()) EXPECT_EQ(message.at("subject").as_string(), "orders.refunded");

  // Time: RFC 3339 through curl's URL encoding; [from, to) covers messages 10..19.
  const HttpResult window = curl({"-G", "--data-urlencode", "from_time=2023-11-14T22:13:30Z", "--data-urlencode",
                                  "to_time=2023-11-14T22:13:40Z"},
                                 server.url("/v1/streams/orders/query"));
  ASSERT_EQ(window.status, 200) << window.body;
  EXPECT_EQ(count(window), 10u);
  EXPECT_EQ(count(query("from_time_ms=1700000010000&to_time_ms=1700000020000")), 10u);

  // Paging with the cursor until it is exhausted returns exactly the full scan.
  const HttpResult full = curl({"-G"}, server.url("/v1/query?limit=1000"));
  ASSERT_EQ(count(full), 40u);
  std::vector<std::string> paged;
  std::string cursor;
  for (int page = 0; page < 50; ++page) {
    const HttpResult result = curl({"-G"}, server.url("/v1/query?limit=6" + (cursor.empty() ? "" : "&cursor=" + cursor)));
    ASSERT_EQ(result.status, 200) << result.body;
    const json::value body = result.json();
    for (const auto& message : body.at("messages").as_array()) paged.push_back(json::serialize(message));
    if (body.at("next_cursor").is_null()) break;
    cursor = std::string(body.at("next_cursor").as_string());
  }
  std::vector<std::string> all;
  const json::value full_body = full.json();
  for (const auto& message : full_body.at("messages").as_array()) all.push_back(json::serialize(message));
  EXPECT_EQ(paged, all);

  const HttpResult newest = query("partition=0&order=newest&limit=5");
  ASSERT_EQ(count(newest), 5u);
  const json::value newest_body = newest.json();
  const auto& newest_messages = newest_body.at("messages").as_array();
  for (std::size_t i = 1; i < newest_messages.size(); ++i) {
    EXPECT_GT(newest_messages[i - 1].at("offset").as_int64(), newest_messages[i].at("offset").as_int64());
  }
  EXPECT_FALSE(newest.json().at("next_cursor").is_null());

  const auto expect_error = [&](const std::string& path, int status, const std::string& code) {
    const HttpResult result = curl({"-G"}, server.url(path));
    EXPECT_EQ(result.status, status) << path << " " << result.body;
    EXPECT_EQ(result.error_code(), code) << path;
  };
  expect_error("/v1/streams/ghost/query?key=a", 404, "stream_not_found");
  expect_error("/v1/streams/orders/query?cursor=AAAA", 400, "invalid_argument");
  expect_error("/v1/streams/orders/query?from_offset=9&to_offset=2", 400, "invalid_argument");
  expect_error("/v1/streams/orders/query?subject=orders..x", 400, "invalid_argument");
  expect_error("/v1/streams/orders/query?header.colour=red", 400, "invalid_argument");
  expect_error("/v1/streams/orders/query?limt=3", 400, "invalid_argument");
  EXPECT_EQ(count(query("header.colour=red&scan=true")), 0u);
  EXPECT_EQ(server.stop(), 0) << server.log();
}

}  // namespace
}  // namespace msgstore::e2e
