// Durable consumers over HTTP, end to end: the real `msgstore serve` on a free loopback port,
// driven with curl. Create/list/describe/delete, fetch and ack with delivery tokens, the error
// shape, long polls woken by a publish and by a redelivery falling due, nak with delay, term,
// redelivery and dead-lettering with real timers, and consumer state across kill -9.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "e2e/process.h"
#include "support/temporary_directory.h"

namespace msgstore::e2e {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

struct HttpReply {
  int status = 0;
  std::string body;
  json::value json() const {
    boost::system::error_code error;
    json::value value = json::parse(body, error);
    EXPECT_FALSE(error) << "not JSON: " << body;
    return value;
  }
};

// run_process executes a path (execve), so curl is looked up in PATH here.
std::string curl_path() {
  static const std::string path = [] {
    const char* search = std::getenv("PATH");
    std::string_view rest = search ? search : "";
    while (!rest.empty()) {
      const std::size_t colon = rest.find(':');
      const std::filesystem::path candidate = std::filesystem::path(std::string(rest.substr(0, colon))) / "curl";
      if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
    return std::string("curl");  // not in PATH: the test fails with curl's exit code 127
  }();
  return path;
}

std::vector<std::string> curl_arguments(const std::string& method, const std::string& url, const std::string& content_type) {
  std::vector<std::string> argv = {curl_path(), "--silent", "--show-error", "--max-time", "30", "--request", method,
                                   "--output", "-", "--write-out", "\n%{http_code}", url};
  if (!content_type.empty()) {
    argv.insert(argv.end(), {"--header", "Content-Type: " + content_type, "--data-binary", "@-"});
  }
  return argv;
}

HttpReply parse_curl_output(const std::string& out) {
  HttpReply reply;
  const std::size_t newline = out.rfind('\n');
  if (newline == std::string::npos) return reply;
  reply.status = std::atoi(out.c_str() + newline + 1);
  reply.body = out.substr(0, newline);
  return reply;
}

// One `msgstore serve` process on 127.0.0.1, any free port.
class Server {
 public:
  explicit Server(const std::filesystem::path& data) {
    process_ = std::make_unique<ChildProcess>(std::vector<std::string>{binary_from_environment("MSGSTORE_BINARY"), "serve",
                                                                       "--data", data.string(), "--listen", "127.0.0.1:0"});
    const std::regex port_pattern("\"port\":([0-9]+)");
    const auto start = Clock::now();
    while (Clock::now() - start < std::chrono::seconds(20)) {
      auto line = process_->read_line(milliseconds(500));
      if (!line) continue;
      std::smatch match;
      if (line->find("\"listening\"") != std::string::npos && std::regex_search(*line, match, port_pattern)) {
        port_ = std::stoi(match[1]);
        return;
      }
    }
    ADD_FAILURE() << "the server did not report its port";
  }
  ~Server() {
    if (process_ && !stopped_) {
      process_->send_signal(SIGTERM);
      (void)process_->wait();
    }
  }
  int port() const { return port_; }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

  HttpReply request(const std::string& method, const std::string& path, const std::string& body = {},
                    const std::string& content_type = "application/json") {
    const bool has_body = method == "POST" || method == "PATCH";
    auto result = run_process(curl_arguments(method, url(path), has_body ? content_type : ""), body, {}, std::chrono::seconds(40));
    EXPECT_EQ(result.exit_code, 0) << "curl failed: " << result.err;
    return parse_curl_output(result.out);
  }

  // kill -9: nothing is flushed or synced by the server on the way out.
  void kill_hard() {
    process_->send_signal(SIGKILL);
    const int status = process_->wait();
    EXPECT_TRUE(WIFSIGNALED(status));
    stopped_ = true;
  }

 private:
  std::unique_ptr<ChildProcess> process_;
  int port_ = 0;
  bool stopped_ = false;
};

// A request run in the background (a long poll), read when it finishes.
class BackgroundRequest {
 public:
  BackgroundRequest(const Server& server, const std::string& path, const std::string& body)
      : process_(curl_arguments("POST", server.url(path), "application/json")) {
    process_.write_input(body);
    process_.close_input();
  }
  HttpReply finish() {
    (void)process_.wait();
    std::string tail;
    std::string out;
    for (const std::string& line : process_.drain_lines(&tail)) out += line + "\n";
    out += tail;
    return parse_curl_output(out);
  }

 private:
  ChildProcess process_;
};

std::int64_t elapsed_ms(Clock::time_point since) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - since).count();
}

void create_stream(Server& server, const std::string& name) {
  auto reply = server.request("POST", "/v1/streams", R"({"name":")" + name + R"(","subjects":[")" + name + R"(.>"]})");
  ASSERT_EQ(reply.status, 201) << reply.body;
}

void publish(Server& server, const std::string& stream, const std::string& payload) {
  auto reply = server.request("POST", "/v1/streams/" + stream + "/messages", payload, "application/octet-stream");
  ASSERT_EQ(reply.status, 200) << reply.body;
}

std::string error_code(const HttpReply& reply) {
  const json::value body = reply.json();
  if (!body.is_object() || !body.as_object().contains("error")) return "";
  return std::string(body.at("error").at("code").as_string());
}

json::array fetch(Server& server, const std::string& path, const std::string& body) {
  auto reply = server.request("POST", path, body);
  EXPECT_EQ(reply.status, 200) << reply.body;
  if (reply.status != 200) return {};
  return reply.json().at("messages").as_array();
}

std::string tokens_body(const std::vector<std::string>& tokens, const std::string& extra = "") {
  json::array array;
  for (const std::string& token : tokens) array.push_back(json::string(token));
  json::object body{{"deliveries", array}};
  std::string text = json::serialize(body);
  if (!extra.empty()) text.insert(text.size() - 1, "," + extra);
  return text;
}

TEST(ConsumerHttp, CreateFetchAckDescribeListDeleteAndErrors) {
  testing::TemporaryDirectory directory;
  Server server(directory.path() / "data");
  ASSERT_NE(server.port(), 0);
  create_stream(server, "orders");
  for (int i = 0; i < 5; ++i) publish(server, "orders", "order-" + std::to_string(i));

  auto created = server.request("POST", "/v1/streams/orders/consumers",
                                R"({"name":"billing","subject_filter":"orders","ack_wait_ms":30000,"max_deliveries":3,"backoff_ms":[100,200]})");
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.json().at("name").as_string(), "billing");
  EXPECT_EQ(created.json().at("lag").to_number<std::uint64_t>(), 5u);
  auto duplicate = server.request("POST", "/v1/streams/orders/consumers", R"({"name":"billing"})");
  EXPECT_EQ(duplicate.status, 409);
  EXPECT_EQ(error_code(duplicate), "consumer_exists");
  auto unknown_field = server.request("POST", "/v1/streams/orders/consumers", R"({"name":"x","colour":"red"})");
  EXPECT_EQ(unknown_field.status, 400);
  EXPECT_EQ(error_code(unknown_field), "invalid_argument");
  EXPECT_EQ(server.request("POST", "/v1/streams/orders/consumers", "{broken").status, 400);
  EXPECT_EQ(server.request("POST", "/v1/streams/orders/consumers", R"({"name":"x"})", "text/plain").status, 415);
  EXPECT_EQ(server.request("POST", "/v1/streams/nope/consumers", R"({"name":"x"})").status, 404);

  const json::array batch = fetch(server, "/v1/streams/orders/consumers/billing/fetch", R"({"max_messages":3})");
  ASSERT_EQ(batch.size(), 3u);
  std::vector<std::string> tokens;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    EXPECT_EQ(batch[i].at("payload").as_string(), "order-" + std::to_string(i));
    EXPECT_EQ(batch[i].at("deliveries").to_number<int>(), 1);
    EXPECT_EQ(batch[i].at("partition").to_number<int>(), 0);
    tokens.emplace_back(batch[i].at("delivery").as_string());
  }
  EXPECT_EQ(tokens[0], "orders/0/0/1");
  auto acked = server.request("POST", "/v1/streams/orders/consumers/billing/ack", tokens_body({tokens[0], tokens[1]}));
  ASSERT_EQ(acked.status, 200) << acked.body;
  EXPECT_EQ(acked.json().at("settled").to_number<int>(), 2);
  // Acking one again: 409 stale_delivery, with each token's outcome; the fresh one is applied.
  auto stale = server.request("POST", "/v1/streams/orders/consumers/billing/ack", tokens_body({tokens[2], tokens[0]}));
  EXPECT_EQ(stale.status, 409) << stale.body;
  EXPECT_EQ(error_code(stale), "stale_delivery");
  const json::value stale_body = stale.json();
  EXPECT_EQ(stale_body.at("error").at("details").at("settled").to_number<int>(), 1);
  EXPECT_TRUE(stale_body.at("error").at("details").at("results").as_array()[0].at("ok").as_bool());
  EXPECT_EQ(server.request("POST", "/v1/streams/orders/consumers/billing/ack", tokens_body({"garbage"})).status, 400);
  EXPECT_EQ(server.request("POST", "/v1/streams/orders/consumers/billing/ack", R"({"deliveries":[]})").status, 400);

  auto described = server.request("GET", "/v1/streams/orders/consumers/billing");
  ASSERT_EQ(described.status, 200) << described.body;
  const json::value info = described.json();
  EXPECT_EQ(info.at("pending").to_number<int>(), 0);
  EXPECT_EQ(info.at("lag").to_number<int>(), 2);
  EXPECT_EQ(info.at("partitions").as_array()[0].at("ack_floor").to_number<int>(), 3);
  EXPECT_EQ(info.at("backoff_ms").as_array().size(), 2u);

  auto listed = server.request("GET", "/v1/streams/orders/consumers");
  ASSERT_EQ(listed.status, 200);
  EXPECT_EQ(listed.json().at("consumers").as_array().size(), 1u);
  auto missing = server.request("GET", "/v1/streams/orders/consumers/nobody");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(error_code(missing), "consumer_not_found");
  EXPECT_EQ(server.request("DELETE", "/v1/streams/orders/consumers/billing").status, 200);
  EXPECT_EQ(server.request("GET", "/v1/streams/orders/consumers/billing").status, 404);
  EXPECT_EQ(server.request("POST", "/v1/streams/orders/consumers/billing/fetch", "{}").status, 404);
}

TEST(ConsumerHttp, LongPollsRedeliveryNakTermAndDeadLettersWithRealTimers) {
  testing::TemporaryDirectory directory;
  Server server(directory.path() / "data");
  ASSERT_NE(server.port(), 0);
  create_stream(server, "orders");
  create_stream(server, "dead");
  auto created = server.request("POST", "/v1/streams/orders/consumers",
                                R"({"name":"billing","ack_wait_ms":400,"max_deliveries":2,"dead_letter_stream":"dead"})");
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string base = "/v1/streams/orders/consumers/billing";

  // A long poll returns when a message is published.
  auto start = Clock::now();
  BackgroundRequest waiting(server, base + "/fetch", R"({"max_messages":10,"wait_ms":10000})");
  std::this_thread::sleep_for(milliseconds(300));
  const auto published = Clock::now();  // the delivery happens after this, so its ack wait ends after published + 400 ms
  publish(server, "orders", "first");
  HttpReply woke = waiting.finish();
  ASSERT_EQ(woke.status, 200) << woke.body;
  json::array messages = woke.json().at("messages").as_array();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_GE(elapsed_ms(start), 250);
  EXPECT_LT(elapsed_ms(start), 8000);
  const std::string first_token(messages[0].at("delivery").as_string());

  // Not acked: redelivered once the ack wait ends, to a long poll that was already waiting.
  start = Clock::now();
  messages = fetch(server, base + "/fetch", R"({"wait_ms":10000})");
  ASSERT_EQ(messages.size(), 1u);
  // Measured from the publish: the first reply may reach this thread late on a loaded machine,
  // after part of the ack wait has already passed.
  EXPECT_GE(elapsed_ms(published), 390);
  EXPECT_LT(elapsed_ms(start), 8000);
  EXPECT_EQ(messages[0].at("deliveries").to_number<int>(), 2);
  EXPECT_EQ(server.request("POST", base + "/ack", tokens_body({first_token})).status, 409);  // stale now

  // Still not acked after the second (last) delivery: dead-lettered by the timer, nobody fetching.
  auto dead = server.request("GET", "/v1/streams/dead/partitions/0/messages?offset=0&wait_ms=10000");
  ASSERT_EQ(dead.status, 200) << dead.body;
  json::array letters = dead.json().at("messages").as_array();
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(letters[0].at("payload").as_string(), "first");
  const json::object& headers = letters[0].at("headers").as_object();
  EXPECT_EQ(headers.at("Msgstore-Dead-Letter-Reason").as_string(), "max_deliveries");
  EXPECT_EQ(headers.at("Msgstore-Dead-Letter-Stream").as_string(), "orders");
  EXPECT_EQ(headers.at("Msgstore-Dead-Letter-Offset").as_string(), "0");
  EXPECT_EQ(headers.at("Msgstore-Dead-Letter-Deliveries").as_string(), "2");

  // nak with a delay: back after the delay.
  publish(server, "orders", "second");
  messages = fetch(server, base + "/fetch", R"({"wait_ms":5000})");
  ASSERT_EQ(messages.size(), 1u);
  start = Clock::now();
  auto nak = server.request("POST", base + "/nak", tokens_body({std::string(messages[0].at("delivery").as_string())}, R"("delay_ms":300)"));
  ASSERT_EQ(nak.status, 200) << nak.body;
  messages = fetch(server, base + "/fetch", R"({"wait_ms":5000})");
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_GE(elapsed_ms(start), 250);
  EXPECT_EQ(messages[0].at("payload").as_string(), "second");
  // in_progress, then term: dead-lettered before the answer, reason "term".
  const std::string token(messages[0].at("delivery").as_string());
  EXPECT_EQ(server.request("POST", base + "/in_progress", tokens_body({token})).status, 200);
  auto term = server.request("POST", base + "/term", tokens_body({token}));
  ASSERT_EQ(term.status, 200) << term.body;
  dead = server.request("GET", "/v1/streams/dead/partitions/0/messages?offset=1");
  ASSERT_EQ(dead.status, 200);
  letters = dead.json().at("messages").as_array();
  ASSERT_EQ(letters.size(), 1u);
  EXPECT_EQ(letters[0].at("headers").at("Msgstore-Dead-Letter-Reason").as_string(), "term");

  auto info = server.request("GET", base).json();
  EXPECT_EQ(info.at("pending").to_number<int>(), 0);
  EXPECT_EQ(info.at("dead_lettered").to_number<int>(), 2);
  // An empty long poll lasts its wait.
  start = Clock::now();
  EXPECT_TRUE(fetch(server, base + "/fetch", R"({"wait_ms":500})").empty());
  EXPECT_GE(elapsed_ms(start), 450);
}

TEST(ConsumerHttp, AckedPositionsSurviveKillMinusNine) {
  testing::TemporaryDirectory directory;
  std::set<std::string> acked;
  std::set<std::string> unacked;
  {
    Server server(directory.path() / "data");
    ASSERT_NE(server.port(), 0);
    auto stream = server.request("POST", "/v1/streams", R"({"name":"orders","subjects":["orders.>"],"partitions":3})");
    ASSERT_EQ(stream.status, 201) << stream.body;
    ASSERT_EQ(server.request("POST", "/v1/streams/orders/consumers", R"({"name":"billing","ack_wait_ms":300})").status, 201);
    for (int i = 0; i < 30; ++i) publish(server, "orders", "m" + std::to_string(i));
    const json::array batch = fetch(server, "/v1/streams/orders/consumers/billing/fetch", R"({"max_messages":30})");
    ASSERT_EQ(batch.size(), 30u);
    std::vector<std::string> tokens;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const std::string payload(batch[i].at("payload").as_string());
      if (i % 3 == 0) {
        unacked.insert(payload);
      } else {
        acked.insert(payload);
        tokens.emplace_back(batch[i].at("delivery").as_string());
      }
    }
    ASSERT_EQ(server.request("POST", "/v1/streams/orders/consumers/billing/ack", tokens_body(tokens)).status, 200);
    server.kill_hard();
  }
  Server server(directory.path() / "data");
  ASSERT_NE(server.port(), 0);
  auto info = server.request("GET", "/v1/streams/orders/consumers/billing");
  ASSERT_EQ(info.status, 200) << info.body;
  EXPECT_EQ(info.json().at("pending").to_number<std::size_t>(), unacked.size());
  std::set<std::string> redelivered;
  const auto start = Clock::now();
  while (redelivered.size() < unacked.size() && elapsed_ms(start) < 15000) {
    const json::array batch = fetch(server, "/v1/streams/orders/consumers/billing/fetch", R"({"max_messages":30,"wait_ms":2000})");
    std::vector<std::string> tokens;
    for (const json::value& message : batch) {
      const std::string payload(message.at("payload").as_string());
      EXPECT_FALSE(acked.count(payload)) << "acked message " << payload << " delivered again after kill -9";
      EXPECT_EQ(message.at("deliveries").to_number<int>(), 2);
      redelivered.insert(payload);
      tokens.emplace_back(message.at("delivery").as_string());
    }
    if (!tokens.empty()) {
      EXPECT_EQ(server.request("POST", "/v1/streams/orders/consumers/billing/ack", tokens_body(tokens)).status, 200);
    }
  }
  EXPECT_EQ(redelivered, unacked);
  auto after = server.request("GET", "/v1/streams/orders/consumers/billing").json();
  EXPECT_EQ(after.at("pending").to_number<int>(), 0);
  EXPECT_EQ(after.at("lag").to_number<int>(), 0);
}

}  // namespace
}  // namespace msgstore::e2e
