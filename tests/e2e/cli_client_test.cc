// End-to-end tests of the CLI's client mode (--server URL): each test prepares data with the
// CLI in local mode, records what the local commands print, starts the real `msgstore serve`
// on that directory (127.0.0.1:0, port from its "listening" log line), runs the same commands
// with --server and compares. Servers are stopped by PID with SIGTERM.
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <memory>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "e2e/json_fields.h"
#include "e2e/process.h"
#include "support/temporary_directory.h"

namespace msgstore::e2e {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace json = boost::json;

// A running `msgstore serve` on a data directory.
class ServeProcess {
 public:
  ServeProcess(const std::string& binary, const fs::path& data) {
    child_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{binary, "--data", data.string(), "serve", "--listen", "127.0.0.1:0"});
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (port_ == 0 && std::chrono::steady_clock::now() < deadline) {
      auto line = child_->read_line(1s);
      if (line && json_text(*line, "message") == "listening") port_ = static_cast<int>(json_number(*line, "port").value_or(0));
    }
    if (port_ == 0) ADD_FAILURE() << "the server did not log a listening line";
  }
  ~ServeProcess() {
    if (!stopped_) (void)stop();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // SIGTERM, then wait; the exit status (or -signal).
  int stop() {
    stopped_ = true;
    child_->send_signal(SIGTERM);
    const int status = child_->wait();
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  }

 private:
  std::unique_ptr<ChildProcess> child_;
  int port_ = 0;
  bool stopped_ = false;
};

class CliClientTest : public ::testing::Test {
 protected:
  CliClientTest() : binary_(binary_from_environment("MSGSTORE_BINARY")), data_(directory_.path() / "data") {}

  ProcessResult local(std::vector<std::string> args, const std::string& input = {}) {
    args.insert(args.begin(), {binary_, "--data", data_.string()});
    return run_process(args, input);
  }
  ProcessResult remote(const std::string& url, std::vector<std::string> args, const std::string& input = {}) {
    args.insert(args.begin(), {binary_, "--server", url});
    return run_process(args, input);
  }
  // Expects exit 0 and nothing on stderr.
  static const ProcessResult& ok(const ProcessResult& result) {
    EXPECT_EQ(result.exit_code, 0) << result.err;
    EXPECT_EQ(result.err, "");
    return result;
  }
  // Expects `exit_code` and one stderr line "msgstore: <code>: ...".
  static void expect_error(const ProcessResult& result, int exit_code, const std::string& code) {
    EXPECT_EQ(result.exit_code, exit_code) << result.err;
    EXPECT_EQ(result.err.rfind("msgstore: " + code + ": ", 0), 0u) << result.err;
    EXPECT_EQ(result.err_lines().size(), 1u) << result.err;
  }

  // Two partitions; keyed, headered, binary, empty and multi-line payloads.
  void prepare_orders() {
    ok(local({"stream", "create", "orders", "--subjects", "orders.>", "--partitions", "2"}));
    ok(local({"publish", "orders.created", "--key", "customer-7", "--header", "trace=abc", "--timestamp-ms", "1700000000000",
              "one", "two"}));
    ok(local({"publish", "orders.paid", "--key", "customer-9", "--timestamp-ms", "1700000005000"}, "three\n\xff\xfe\n\nline\\n\n"));
    ok(local({"publish", "orders.shipped", "a", "b", "c"}));
  }

  std::string binary_;
  testing::TemporaryDirectory directory_{"msgstore-cli-client-test"};
  fs::path data_;
};

// Every key of `remote` has the same value in `local`, and only the keys of the stream
// configuration may be missing (the server's API reports fewer configuration fields).
void expect_same_but_config_subset(const std::string& local_line, const std::string& remote_line) {
  const json::value local = json::parse(local_line);
  const json::value remote = json::parse(remote_line);
  ASSERT_TRUE(local.is_object() && remote.is_object()) << remote_line;
  const json::object& local_object = local.as_object();
  const json::object& remote_object = remote.as_object();
  const bool is_description = local_object.contains("config");
  const json::object& local_config = is_description ? local_object.at("config").as_object() : local_object;
  const json::object& remote_config = is_description ? remote_object.at("config").as_object() : remote_object;
  for (const auto& field : remote_config) {
    ASSERT_TRUE(local_config.contains(field.key())) << field.key();
    EXPECT_EQ(local_config.at(field.key()), field.value()) << field.key();
  }
  for (const char* always : {"name", "subjects", "partitions", "fsync", "max_message_bytes"}) {
    EXPECT_TRUE(remote_config.contains(always)) << always << " in " << remote_line;
  }
  if (is_description) {
    for (const char* field : {"bytes", "messages", "partitions"}) EXPECT_EQ(local_object.at(field), remote_object.at(field)) << field;
  }
}

TEST_F(CliClientTest, ReadAndStreamInfoMatchLocalMode) {
  prepare_orders();
  const std::vector<std::vector<std::string>> reads = {
      {"read", "orders"},
      {"read", "orders", "--partition", "1", "--from-offset", "1"},
      {"read", "orders", "--limit", "4"},
      {"read", "orders", "--from-time", "1700000004000"},
      {"read", "orders", "--format", "text"},
      {"read", "orders", "--from-end"},
      {"tail", "orders", "--from-beginning", "--limit", "2", "--partition", "1"},
      {"read", "orders", "--follow", "--limit", "5", "--partition", "1", "--from-offset", "2"},
  };
  std::vector<ProcessResult> expected;
  for (const auto& args : reads) expected.push_back(ok(local(args)));
  const ProcessResult info = ok(local({"stream", "info", "orders"}));
  const ProcessResult list = ok(local({"stream", "list"}));
  const ProcessResult plain = ok(local({"stream", "list", "--plain"}));
  ASSERT_GE(expected[0].out_lines().size(), 9u) << expected[0].out;

  ServeProcess server(binary_, data_);
  for (std::size_t i = 0; i < reads.size(); ++i) {
    const ProcessResult result = ok(remote(server.url(), reads[i]));
    EXPECT_EQ(result.out, expected[i].out) << "command " << i;
  }
  const ProcessResult remote_info = ok(remote(server.url(), {"stream", "info", "orders"}));
  expect_same_but_config_subset(info.out, remote_info.out);
  const ProcessResult remote_list = ok(remote(server.url(), {"stream", "list"}));
  ASSERT_EQ(remote_list.out_lines().size(), 1u);
  expect_same_but_config_subset(list.out_lines()[0], remote_list.out_lines()[0]);
  EXPECT_EQ(ok(remote(server.url(), {"stream", "list", "--plain"})).out, plain.out);
  // The environment variable selects client mode too.
  const ProcessResult from_environment =
      run_process({binary_, "read", "orders"}, {}, {{"MSGSTORE_SERVER", server.url()}});
  EXPECT_EQ(from_environment.exit_code, 0) << from_environment.err;
  EXPECT_EQ(from_environment.out, expected[0].out);
  EXPECT_EQ(server.stop(), 0);
}

TEST_F(CliClientTest, PublishAcksMatchLocalModeAndSurvive) {
  ok(local({"stream", "create", "events", "--subjects", "events.>"}));
  const fs::path other = directory_.path() / "other";
  std::string input;
  constexpr int line_count = 2500;
  for (int i = 0; i < line_count; ++i) input += "message " + std::to_string(i) + "\n";
  // What local mode prints for the same input on a fresh copy of the stream.
  ASSERT_EQ(run_process({binary_, "--data", other.string(), "stream", "create", "events", "--subjects", "events.>"}).exit_code, 0);
  const ProcessResult expected =
      run_process({binary_, "--data", other.string(), "publish", "events.created", "--batch", "500"}, input);
  ASSERT_EQ(expected.exit_code, 0) << expected.err;

  ServeProcess server(binary_, data_);
  const ProcessResult published = ok(remote(server.url(), {"publish", "events.created"}, input));
  EXPECT_EQ(published.out, expected.out);
  EXPECT_EQ(published.out_lines().size(), static_cast<std::size_t>(line_count));
  // Arguments, a second stream capturing the subject, and the ack line shape.
  ok(remote(server.url(), {"stream", "create", "all", "--subjects", ">"}));
  const ProcessResult both = ok(remote(server.url(), {"publish", "events.updated", "x", "y"}));
  EXPECT_EQ(both.out,
            "{\"stream\":\"all\",\"partition\":0,\"offset\":0,\"index\":0}\n"
            "{\"stream\":\"all\",\"partition\":0,\"offset\":1,\"index\":1}\n"
            "{\"stream\":\"events\",\"partition\":0,\"offset\":2500,\"index\":0}\n"
            "{\"stream\":\"events\",\"partition\":0,\"offset\":2501,\"index\":1}\n");
  EXPECT_EQ(server.stop(), 0);
  // Everything acked over HTTP is in the directory.
  const ProcessResult read = ok(local({"read", "events", "--format", "text"}));
  ASSERT_EQ(read.out_lines().size(), static_cast<std::size_t>(line_count + 2));
  EXPECT_EQ(read.out_lines()[0], "message 0");
  EXPECT_EQ(read.out_lines()[line_count - 1], "message " + std::to_string(line_count - 1));
}

TEST_F(CliClientTest, PoliciesAndPublishErrorsMatchLocalMode) {
  ok(local({"stream", "create", "accounts", "--subjects", "accounts.>"}));
  ServeProcess server(binary_, data_);
  const std::string url = server.url();
  ok(remote(url, {"publish", "accounts.opened", "--message-id", "m-1", "first"}));
  const ProcessResult duplicate = ok(remote(url, {"publish", "accounts.opened", "--message-id", "m-1", "first"}));
  EXPECT_EQ(duplicate.out, "{\"stream\":\"accounts\",\"partition\":0,\"offset\":0,\"index\":0,\"duplicate\":true}\n");
  ok(remote(url, {"publish", "accounts.opened", "--expected-offset", "0", "second"}));
  const ProcessResult mismatch = remote(url, {"publish", "accounts.opened", "--expected-offset", "0", "third"});
  expect_error(mismatch, 1, "expected_offset_mismatch");
  EXPECT_NE(mismatch.err.find("(actual_offset=1)"), std::string::npos) << mismatch.err;
  expect_error(remote(url, {"publish", "nobody.listens", "x"}), 1, "no_matching_stream");
  ok(remote(url, {"publish", "accounts.opened", "--ttl", "1h", "with ttl"}));
  const ProcessResult read = ok(remote(url, {"read", "accounts"}));
  ASSERT_EQ(read.out_lines().size(), 3u) << read.out;
  EXPECT_NE(read.out_lines()[2].find("\"Msgstore-TTL-Ms\":\"3600000\""), std::string::npos) << read.out;
  EXPECT_EQ(server.stop(), 0);
  // The same mistakes in local mode give the same codes and exit statuses.
  const ProcessResult local_mismatch = local({"publish", "accounts.opened", "--expected-offset", "0", "third"});
  expect_error(local_mismatch, 1, "expected_offset_mismatch");
  EXPECT_NE(local_mismatch.err.find("(actual_offset=2)"), std::string::npos) << local_mismatch.err;
  expect_error(local({"publish", "nobody.listens", "x"}), 1, "no_matching_stream");
}

TEST_F(CliClientTest, StreamCommandsMatchLocalMode) {
  const fs::path other = directory_.path() / "other";
  const std::vector<std::string> create = {"stream", "create", "orders", "--subjects", "orders.*,orders.>", "--partitions", "2",
                                           "--max-age", "7d", "--fsync", "interval:100", "--segment-bytes", "1MiB"};
  std::vector<std::string> local_create = create;
  local_create.insert(local_create.begin(), {binary_, "--data", other.string()});
  const ProcessResult expected = run_process(local_create);
  ASSERT_EQ(expected.exit_code, 0) << expected.err;
  std::vector<std::string> local_update = {binary_, "--data", other.string(), "stream", "update", "orders", "--max-age", "1h",
                                           "--partitions", "3"};
  const ProcessResult expected_update = run_process(local_update);
  ASSERT_EQ(expected_update.exit_code, 0) << expected_update.err;

  ServeProcess server(binary_, data_);
  const std::string url = server.url();
  EXPECT_EQ(ok(remote(url, create)).out, expected.out);
  expect_error(remote(url, create), 1, "stream_exists");
  const ProcessResult updated = ok(remote(url, {"stream", "update", "orders", "--max-age", "1h", "--partitions", "3"}));
  expect_same_but_config_subset(expected_update.out, updated.out);
  EXPECT_EQ(json_number(updated.out, "max_age_ms"), 3'600'000u);
  // Invalid input is refused before anything is sent, as in local mode.
  expect_error(remote(url, {"stream", "update", "orders", "--max-age", "7x"}), 2, "invalid_argument");
  expect_error(remote(url, {"stream", "create", "../x", "--subjects", "x"}), 2, "invalid_name");
  EXPECT_EQ(ok(remote(url, {"stream", "delete", "orders"})).out, "{\"deleted\":\"orders\"}\n");
  expect_error(remote(url, {"stream", "info", "orders"}), 1, "stream_not_found");
  expect_error(remote(url, {"stream", "delete", "orders"}), 1, "stream_not_found");
  expect_error(remote(url, {"read", "orders"}), 1, "stream_not_found");
  expect_error(remote(url, {"tail", "orders"}), 1, "stream_not_found");
  EXPECT_EQ(server.stop(), 0);
  expect_error(local({"stream", "info", "orders"}), 1, "stream_not_found");
}

TEST_F(CliClientTest, TailFollowsPublishesFromOtherClientsUntilSignalled) {
  ok(local({"stream", "create", "orders", "--subjects", "orders.>", "--partitions", "2"}));
  ServeProcess server(binary_, data_);
  const ProcessResult before = ok(remote(server.url(), {"publish", "orders.old", "--key", "k", "before"}));
  const std::string partition = std::to_string(json_number(before.out, "partition").value_or(0));
  ChildProcess tail({binary_, "--server", server.url(), "tail", "orders"});
  // tail starts at the end: publish until it shows up (the subscription may start a bit later).
  std::optional<std::string> line;
  for (int attempt = 0; attempt < 50 && !line; ++attempt) {
    ok(remote(server.url(), {"publish", "orders.new", "--key", "k", "live"}));
    line = tail.read_line(200ms);
  }
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ(json_text(*line, "payload"), "live");
  EXPECT_EQ(json_text(*line, "stream"), "orders");
  tail.send_signal(SIGTERM);
  const int status = tail.wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  for (const std::string& rest : tail.drain_lines()) EXPECT_EQ(json_text(rest, "payload"), "live");

  // --limit ends it on its own, with the same lines a local follow prints.
  const std::vector<std::string> follow = {"read",        "orders", "--follow",      "--limit", "2",
                                           "--partition", partition, "--from-offset", "0",       "--format", "text"};
  const ProcessResult limited = ok(remote(server.url(), follow));
  EXPECT_EQ(limited.out_lines().size(), 2u) << limited.out;
  EXPECT_EQ(server.stop(), 0);
  const ProcessResult expected = ok(local(follow));
  EXPECT_EQ(limited.out, expected.out);
}

TEST_F(CliClientTest, ConnectionAndUsageErrors) {
  ok(local({"stream", "create", "orders", "--subjects", "orders.>"}));
  std::string stopped_url;
  {
    ServeProcess server(binary_, data_);
    stopped_url = server.url();
    for (const char* command : {"verify", "demo", "compact", "serve"}) {
      expect_error(remote(server.url(), {command}), 2, "invalid_argument");
    }
    expect_error(remote(server.url(), {"dump", "x.log"}), 2, "invalid_argument");
    expect_error(remote(server.url(), {"erase", "--stream", "orders", "--key", "k", "--actor", "me"}), 2, "invalid_argument");
    const ProcessResult both = run_process({binary_, "--data", data_.string(), "--server", server.url(), "read", "orders"});
    expect_error(both, 2, "invalid_argument");
    EXPECT_EQ(server.stop(), 0);
  }
  // Nobody listens there any more.
  const ProcessResult down = remote(stopped_url, {"read", "orders"});
  expect_error(down, 1, "io_error");
  EXPECT_NE(down.err.find("cannot connect"), std::string::npos) << down.err;
  expect_error(remote(stopped_url, {"publish", "orders.x", "y"}), 1, "io_error");
  const ProcessResult https = remote("https://127.0.0.1:7480", {"read", "orders"});
  expect_error(https, 2, "invalid_argument");
  EXPECT_NE(https.err.find("https is not supported"), std::string::npos) << https.err;
  for (const char* bad : {"127.0.0.1:7480", "http://", "http://127.0.0.1:99999", "http://127.0.0.1:7480/v1"}) {
    expect_error(remote(bad, {"read", "orders"}), 2, "invalid_argument");
  }
  // $MSGSTORE_SERVER does not take local-only commands away from the data directory.
  const ProcessResult verify =
      run_process({binary_, "--data", data_.string(), "verify"}, {}, {{"MSGSTORE_SERVER", stopped_url}});
  EXPECT_EQ(verify.exit_code, 0) << verify.err;
  // An explicit --data wins over $MSGSTORE_SERVER.
  const ProcessResult read = run_process({binary_, "--data", data_.string(), "read", "orders"}, {}, {{"MSGSTORE_SERVER", stopped_url}});
  EXPECT_EQ(read.exit_code, 0) << read.err;
}

// GET /v1/streams/{stream}/query and /v1/query. Skipped (with the reason) only while the
// server answers 404 not_found for the route itself.
TEST_F(CliClientTest, QueryMatchesLocalMode) {
  prepare_orders();
  const std::vector<std::vector<std::string>> queries = {
      {"query", "--stream", "orders", "--key", "customer-7"},
      {"query", "--stream", "orders", "--subject", "orders.paid", "--newest-first"},
      {"query", "--stream", "orders", "--contains", "t", "--limit", "2"},
      {"query", "--key", "customer-9"},
  };
  std::vector<ProcessResult> expected;
  for (const auto& args : queries) expected.push_back(ok(local(args)));
  ServeProcess server(binary_, data_);
  for (std::size_t i = 0; i < queries.size(); ++i) {
    const ProcessResult result = ok(remote(server.url(), queries[i]));
    EXPECT_EQ(result.out, expected[i].out) << "query " << i;
  }
  const ProcessResult explained = ok(remote(server.url(), {"query", "--stream", "orders", "--key", "customer-7", "--explain"}));
  ASSERT_FALSE(explained.out_lines().empty());
  EXPECT_EQ(explained.out_lines().back().rfind("{\"explain\":{\"plan\":", 0), 0u) << explained.out;
  expect_error(remote(server.url(), {"query", "--stream", "nope", "--key", "k"}), 1, "stream_not_found");
  EXPECT_EQ(server.stop(), 0);
}

}  // namespace
}  // namespace msgstore::e2e
