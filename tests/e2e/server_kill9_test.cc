// Crash test of the real server: `msgstore serve` under HTTP load is killed with SIGKILL at a
// random moment, restarted on the same data directory, over and over, in every fsync mode
// (always, interval:50, never). SIGKILL keeps the page cache, so no mode may lose anything
// the server acknowledged.
//
// Each cycle starts the server on 127.0.0.1:0 and runs, each on its own keep-alive connection
// (tests/e2e/http_client.h):
//   - 3 publishers: single publishes (POST /messages, some keyed) and JSON batches of 2-20
//     (POST /batch); every message carries a unique (producer, sequence) payload
//     (tests/crash/checker.h), attempted before it is sent and acked with the position the
//     200 reply names;
//   - 1 or 2 fetchers of one durable consumer: fetch, then ack most deliveries (about 1 in 10
//     is left for redelivery after ack_wait_ms); an ack the server confirmed (200, or ok in a
//     409's per-token results) is recorded, as is every ack sent.
// After a random 150-800 ms the server gets SIGKILL. With it dead, the test opens the store
// itself and checks:
//   - the crash checker (Event::process_crash): 0 acked publishes lost, moved (inconsistent
//     offsets) or duplicated, 0 unexpected messages, 0 per-producer order violations, verify
//     clean, time index equal to a full scan;
//   - the consumer's cursors: ack floor and delivered offset never past the partition's log end,
//     and the ack floor never goes back from one kill to the next;
// and across the whole run: a message whose ack the server confirmed is never delivered again
// (to a fetch sent after the confirmation). At the end the last server drains the consumer
// (fetching and acking until nothing is left, redeliveries included) and every stored message
// must have been acked by then: confirmed, sent while the server died (its outcome unknown),
// or drained. The last server is stopped with SIGTERM and must exit 0.
//
// SERVER_KILL_CYCLES (default 5) sets the kills per fsync mode; SERVER_KILL_SEED replays a run
// (the seed is printed at the start; every mode uses it). A failure prints the replay command.
// The figures line "SERVER-KILL9-FIGURES ..." sums what was checked.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "crash/checker.h"
#include "e2e/http_client.h"
#include "e2e/process.h"
#include "msgstore/consumer.h"
#include "msgstore/store.h"
#include "support/temporary_directory.h"

namespace msgstore::e2e {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t partition_count = 3;
constexpr int publishers_per_cycle = 3;
constexpr std::size_t filler_bytes = 40;
const std::string stream_name = "crash";
const std::string consumer_name = "reader";

std::uint64_t environment_number(const char* name, std::uint64_t fallback) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  return std::strtoull(value, nullptr, 10);
}

std::optional<json::value> parse_json(const std::string& text) {
  boost::system::error_code error;
  json::value value = json::parse(text, error);
  if (error) return std::nullopt;
  return value;
}

using PartitionOffset = std::pair<std::uint32_t, Offset>;

// `msgstore serve` on a free loopback port; stopped by PID (SIGKILL or SIGTERM).
class ServerProcess {
 public:
  ServerProcess(const std::string& binary, const std::string& data) {
    const auto started = Clock::now();
    process_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{binary, "serve", "--data", data, "--listen", "127.0.0.1:0", "--worker-threads", "16"});
    const std::regex port_pattern("\"port\":([0-9]+)");
    while (Clock::now() - started < 20s) {
      auto line = process_->read_line(500ms);
      if (!line) continue;
      std::smatch match;
      if (line->find("\"listening\"") != std::string::npos && std::regex_search(*line, match, port_pattern)) {
        port_ = std::stoi(match[1]);
        startup_ms_ = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
        return;
      }
    }
  }
  int port() const { return port_; }
  double startup_ms() const { return startup_ms_; }
  void kill_hard() {
    process_->send_signal(SIGKILL);
    const int status = process_->wait();
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  }
  int stop() {
    process_->send_signal(SIGTERM);
    const int status = process_->wait();
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  std::unique_ptr<ChildProcess> process_;
  int port_ = 0;
  double startup_ms_ = 0;
};

// What the consumer side saw, shared by the fetcher threads of every cycle of one mode.
class ConsumerLedger {
 public:
  std::uint64_t confirmation_count() const { return confirmations_.load(); }
  void sent(const PartitionOffset& place) {
    std::lock_guard lock(mutex_);
    ack_sent_.insert(place);
  }
  void confirmed(const PartitionOffset& place) {
    std::lock_guard lock(mutex_);
    confirmed_.emplace(place, confirmations_.fetch_add(1) + 1);
  }
  // A delivery to a fetch sent when `confirmations_before` acks had been confirmed.
  void delivered(const PartitionOffset& place, std::uint64_t confirmations_before, std::uint32_t attempt) {
    std::lock_guard lock(mutex_);
    ++deliveries_;
    if (attempt > 1) ++redeliveries_;
    auto found = confirmed_.find(place);
    if (found != confirmed_.end() && found->second <= confirmations_before) {
      problems_.push_back("partition " + std::to_string(place.first) + " offset " + std::to_string(place.second) +
                          " delivered again (attempt " + std::to_string(attempt) + ") after its ack was confirmed");
    }
  }
  void problem(std::string text) {
    std::lock_guard lock(mutex_);
    problems_.push_back(std::move(text));
  }
  bool acked_somehow(const PartitionOffset& place) const {
    std::lock_guard lock(mutex_);
    return confirmed_.count(place) != 0 || ack_sent_.count(place) != 0;
  }
  std::vector<std::string> problems() const {
    std::lock_guard lock(mutex_);
    return problems_;
  }
  std::uint64_t confirmed_count() const {
    std::lock_guard lock(mutex_);
    return confirmed_.size();
  }
  std::uint64_t deliveries() const {
    std::lock_guard lock(mutex_);
    return deliveries_;
  }
  std::uint64_t redeliveries() const {
    std::lock_guard lock(mutex_);
    return redeliveries_;
  }

 private:
  mutable std::mutex mutex_;
  std::atomic<std::uint64_t> confirmations_{0};
  std::map<PartitionOffset, std::uint64_t> confirmed_;  // -> confirmation number
  std::set<PartitionOffset> ack_sent_;
  std::vector<std::string> problems_;
  std::uint64_t deliveries_ = 0;
  std::uint64_t redeliveries_ = 0;
};

struct Figures {
  std::uint64_t kills = 0;
  std::uint64_t publish_requests = 0;
  std::uint64_t acked_messages = 0;
  std::uint64_t acked_checked = 0;
  std::uint64_t messages_read = 0;
  std::uint64_t consumer_deliveries = 0;
  std::uint64_t consumer_redeliveries = 0;
  std::uint64_t consumer_acks_confirmed = 0;
  std::uint64_t violations = 0;
  double restart_ms_max = 0;
};

// One publisher: runs until `stop` or until the server is gone.
void publish_loop(int port, std::uint32_t producer, std::uint64_t seed, crash::Checker& checker, std::atomic<bool>& stop,
                  std::atomic<std::uint64_t>& requests, ConsumerLedger& ledger) {
  HttpConnection connection(port);
  std::mt19937_64 random(seed);
  std::uint64_t sequence = 0;
  while (!stop.load()) {
    const bool batch = random() % 3 == 0;
    const std::size_t count = batch ? 2 + random() % 19 : 1;
    std::vector<crash::MessageId> ids;
    for (std::size_t i = 0; i < count; ++i) {
      ids.push_back({producer, sequence++});
      checker.attempted(ids.back());
    }
    std::optional<HttpReply> reply;
    if (!batch) {
      std::vector<std::pair<std::string, std::string>> headers = {{"Msgstore-Subject", stream_name + ".single"}};
      if (random() % 2 == 0) headers.emplace_back("Msgstore-Key", "key-" + std::to_string(random() % 16));
      reply = connection.request("POST", "/v1/streams/" + stream_name + "/messages", crash::make_payload(ids[0], filler_bytes),
                                 headers);
    } else {
      json::array messages;
      for (const crash::MessageId& id : ids) {
        json::object message{{"subject", stream_name + ".batch"}, {"payload", crash::make_payload(id, filler_bytes)}};
        if (random() % 2 == 0) message["key"] = "key-" + std::to_string(random() % 16);
        messages.push_back(std::move(message));
      }
      reply = connection.request("POST", "/v1/streams/" + stream_name + "/batch",
                                 json::serialize(json::object{{"messages", std::move(messages)}}),
                                 {{"Content-Type", "application/json"}});
    }
    if (!reply) return;  // the server is gone: the outcome of this publish is unknown
    requests.fetch_add(1);
    if (reply->status != 200) {
      ledger.problem("publish answered " + std::to_string(reply->status) + ": " + reply->body.substr(0, 200));
      continue;
    }
    auto body = parse_json(reply->body);
    if (!body || !body->is_object()) {
      ledger.problem("publish reply is not JSON: " + reply->body.substr(0, 200));
      continue;
    }
    const json::object& object = body->as_object();
    std::vector<Position> positions;
    if (!batch) {
      positions.push_back({stream_name, static_cast<std::uint32_t>(object.at("partition").to_number<std::uint64_t>()),
                           object.at("offset").to_number<std::uint64_t>()});
    } else {
      for (const json::value& result : object.at("results").as_array()) {
        positions.push_back({stream_name, static_cast<std::uint32_t>(result.at("partition").to_number<std::uint64_t>()),
                             result.at("offset").to_number<std::uint64_t>()});
      }
    }
    if (positions.size() != ids.size()) {
      ledger.problem("publish of " + std::to_string(ids.size()) + " messages acked " + std::to_string(positions.size()));
      continue;
    }
    for (std::size_t i = 0; i < ids.size(); ++i) checker.acked(positions[i], ids[i]);
  }
}

// One fetcher of the durable consumer. With `drain`, it stops after `empty_fetches_to_stop`
// empty fetches in a row and acks everything; otherwise it runs until `stop` or the server
// is gone and leaves about 1 delivery in 10 unacked. Returns the number of deliveries it
// acked with a confirmation.
void consume_loop(int port, std::uint64_t seed, ConsumerLedger& ledger, std::atomic<bool>& stop, bool drain,
                  std::uint64_t wait_ms, int empty_fetches_to_stop = 0) {
  HttpConnection connection(port);
  std::mt19937_64 random(seed);
  const std::string base = "/v1/streams/" + stream_name + "/consumers/" + consumer_name;
  int empty_in_a_row = 0;
  while (!stop.load()) {
    const std::uint64_t confirmations_before = ledger.confirmation_count();
    auto reply = connection.request("POST", base + "/fetch",
                                    "{\"max_messages\":" + std::to_string(1 + random() % 40) + ",\"wait_ms\":" +
                                        std::to_string(wait_ms) + "}",
                                    {{"Content-Type", "application/json"}});
    if (!reply) return;
    auto body = parse_json(reply->body);
    if (reply->status != 200 || !body) {
      ledger.problem("fetch answered " + std::to_string(reply->status) + ": " + reply->body.substr(0, 200));
      return;
    }
    const json::array& messages = body->at("messages").as_array();
    if (messages.empty()) {
      if (drain && ++empty_in_a_row >= empty_fetches_to_stop) return;
      continue;
    }
    empty_in_a_row = 0;
    json::array tokens;
    std::vector<PartitionOffset> places;
    for (const json::value& message : messages) {
      const PartitionOffset place{static_cast<std::uint32_t>(message.at("partition").to_number<std::uint64_t>()),
                                  message.at("offset").to_number<std::uint64_t>()};
      const std::string payload(message.at("payload").as_string());
      if (!crash::parse_payload(payload)) {
        ledger.problem("consumer got a payload no publisher sent: " + payload.substr(0, 60));
      }
      ledger.delivered(place, confirmations_before, static_cast<std::uint32_t>(message.at("deliveries").to_number<std::uint64_t>()));
      if (!drain && random() % 10 == 0) continue;  // left for redelivery
      tokens.push_back(message.at("delivery"));
      places.push_back(place);
    }
    if (tokens.empty()) continue;
    for (const PartitionOffset& place : places) ledger.sent(place);
    auto acked = connection.request("POST", base + "/ack", json::serialize(json::object{{"deliveries", tokens}}),
                                    {{"Content-Type", "application/json"}});
    if (!acked) return;  // unknown: the ack may or may not have been applied
    if (acked->status == 200) {
      for (const PartitionOffset& place : places) ledger.confirmed(place);
      continue;
    }
    // 409 stale_delivery: some tokens were redelivered meanwhile; the accepted ones are applied.
    auto failure = parse_json(acked->body);
    const json::value* results = nullptr;
    if (failure && failure->is_object()) {
      if (const json::value* error = failure->as_object().if_contains("error"); error && error->is_object()) {
        if (const json::value* details = error->as_object().if_contains("details"); details && details->is_object()) {
          results = details->as_object().if_contains("results");
        }
      }
    }
    if (acked->status != 409 || results == nullptr || !results->is_array() || results->as_array().size() != places.size()) {
      ledger.problem("ack answered " + std::to_string(acked->status) + ": " + acked->body.substr(0, 200));
      continue;
    }
    for (std::size_t i = 0; i < places.size(); ++i) {
      const json::value& outcome = results->as_array()[i];
      if (outcome.as_object().contains("ok")) ledger.confirmed(places[i]);
    }
  }
}

FsyncPolicy policy_of(const std::string& mode) {
  if (mode == "always") return FsyncPolicy::always;
  if (mode == "never") return FsyncPolicy::never;
  return FsyncPolicy::interval;
}

void run_mode(const std::string& binary, const std::string& mode, std::uint64_t seed, std::uint64_t cycles, Figures& figures) {
  testing::TemporaryDirectory directory;
  const std::string data = (directory.path() / "data").string();
  crash::Checker checker;
  checker.expect_stream(stream_name, {policy_of(mode), 0});
  ConsumerLedger ledger;
  std::mt19937_64 random(seed ^ std::hash<std::string>()(mode));
  std::map<std::uint32_t, Offset> ack_floor_seen;
  std::atomic<std::uint64_t> publish_requests{0};

  for (std::uint64_t cycle = 0; cycle < cycles; ++cycle) {
    ServerProcess server(binary, data);
    ASSERT_NE(server.port(), 0) << "fsync=" << mode << " cycle " << cycle << ": the server did not report its port";
    if (cycle > 0) figures.restart_ms_max = std::max(figures.restart_ms_max, server.startup_ms());
    if (cycle == 0) {
      HttpConnection setup(server.port());
      auto stream = setup.request("POST", "/v1/streams",
                                  R"({"name":"crash","subjects":["crash.>"],"partitions":3,"segment_bytes":16384,"fsync":")" +
                                      mode + "\"}",
                                  {{"Content-Type", "application/json"}});
      ASSERT_TRUE(stream && stream->status == 201) << (stream ? stream->body : "no reply");
      auto consumer = setup.request("POST", "/v1/streams/crash/consumers", R"({"name":"reader","ack_wait_ms":400})",
                                    {{"Content-Type", "application/json"}});
      ASSERT_TRUE(consumer && consumer->status == 201) << (consumer ? consumer->body : "no reply");
    }
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int publisher = 0; publisher < publishers_per_cycle; ++publisher) {
      const auto producer = static_cast<std::uint32_t>(cycle * publishers_per_cycle + static_cast<std::uint64_t>(publisher));
      threads.emplace_back(publish_loop, server.port(), producer, random(), std::ref(checker), std::ref(stop),
                           std::ref(publish_requests), std::ref(ledger));
    }
    const int fetchers = 1 + static_cast<int>(random() % 2);
    for (int fetcher = 0; fetcher < fetchers; ++fetcher) {
      threads.emplace_back(consume_loop, server.port(), random(), std::ref(ledger), std::ref(stop), false, 50, 0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + random() % 650));
    server.kill_hard();
    stop.store(true);
    for (std::thread& thread : threads) thread.join();
    ++figures.kills;

    const auto reopen_started = Clock::now();
    auto store = Store::open(data);
    ASSERT_TRUE(store) << "fsync=" << mode << " cycle " << cycle << ": reopen failed: " << store.status().to_string();
    const double reopen_ms = std::chrono::duration<double, std::milli>(Clock::now() - reopen_started).count();
    const crash::CheckReport report = checker.check(**store, crash::Event::process_crash, reopen_ms);
    EXPECT_TRUE(report.ok()) << "fsync=" << mode << " cycle " << cycle << ": " << report.summary();
    figures.acked_checked += report.acked_checked;
    figures.messages_read += report.messages_read;
    if (!report.ok()) ++figures.violations;
    auto info = (*store)->describe_stream(stream_name);
    ASSERT_TRUE(info) << info.status().to_string();
    auto consumer = (*store)->consumers().describe(stream_name, consumer_name);
    ASSERT_TRUE(consumer) << consumer.status().to_string();
    for (const ConsumerPartitionInfo& position : consumer->partitions) {
      ASSERT_LT(position.partition, info->partitions.size());
      const Offset end = info->partitions[position.partition].next_offset;
      const std::string where = "fsync=" + mode + " cycle " + std::to_string(cycle) + " partition " + std::to_string(position.partition);
      EXPECT_LE(position.ack_floor, end) << where << ": the consumer's ack floor is past the log end";
      EXPECT_LE(position.delivered_offset, end) << where << ": the consumer's delivered offset is past the log end";
      EXPECT_GE(position.ack_floor, ack_floor_seen[position.partition]) << where << ": the ack floor went back";
      if (position.ack_floor > end || position.delivered_offset > end || position.ack_floor < ack_floor_seen[position.partition]) {
        ++figures.violations;
      }
      ack_floor_seen[position.partition] = position.ack_floor;
    }
    ASSERT_TRUE((*store)->close());
  }

  // The last server drains the consumer: every stored message must end up acked.
  ServerProcess server(binary, data);
  ASSERT_NE(server.port(), 0);
  std::atomic<bool> never{false};
  consume_loop(server.port(), random(), ledger, never, true, 300, 4);
  HttpConnection connection(server.port());
  auto described = connection.request("GET", "/v1/streams/" + stream_name);
  ASSERT_TRUE(described && described->status == 200);
  auto description = parse_json(described->body);
  ASSERT_TRUE(description);
  std::uint64_t not_acked = 0;
  for (const json::value& partition : description->at("partitions").as_array()) {
    const auto number = static_cast<std::uint32_t>(partition.at("partition").to_number<std::uint64_t>());
    const Offset end = partition.at("next_offset").to_number<std::uint64_t>();
    for (Offset offset = partition.at("first_offset").to_number<std::uint64_t>(); offset < end; ++offset) {
      if (!ledger.acked_somehow({number, offset})) {
        if (++not_acked <= 5) ADD_FAILURE() << "fsync=" << mode << ": partition " << number << " offset " << offset << " was never acked";
      }
    }
  }
  auto consumer = connection.request("GET", "/v1/streams/" + stream_name + "/consumers/" + consumer_name);
  ASSERT_TRUE(consumer && consumer->status == 200);
  auto consumer_json = parse_json(consumer->body);
  ASSERT_TRUE(consumer_json);
  EXPECT_EQ(consumer_json->at("pending").to_number<std::uint64_t>(), 0u) << consumer->body;
  EXPECT_EQ(consumer_json->at("lag").to_number<std::uint64_t>(), 0u) << consumer->body;
  connection.close();
  EXPECT_EQ(server.stop(), 0) << "the last server did not exit cleanly after SIGTERM";

  for (const std::string& problem : ledger.problems()) ADD_FAILURE() << "fsync=" << mode << ": " << problem;
  figures.violations += ledger.problems().size() + not_acked;
  figures.publish_requests += publish_requests.load();
  figures.acked_messages += checker.acked_total();
  figures.consumer_deliveries += ledger.deliveries();
  figures.consumer_redeliveries += ledger.redeliveries();
  figures.consumer_acks_confirmed += ledger.confirmed_count();
}

TEST(ServerKill9, AckedPublishesAndConsumerAcksSurviveSigkillInEveryFsyncMode) {
  const std::string binary = binary_from_environment("MSGSTORE_BINARY");
  const std::uint64_t seed = environment_number("SERVER_KILL_SEED", std::random_device()());
  const std::uint64_t cycles = environment_number("SERVER_KILL_CYCLES", 5);
  const std::string replay = "SERVER_KILL_SEED=" + std::to_string(seed) + " SERVER_KILL_CYCLES=" + std::to_string(cycles) +
                             " ctest --preset release -R server_kill9_test --output-on-failure";
  std::printf("server_kill9_test: seed %llu, %llu kills per fsync mode (replay: %s)\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(cycles), replay.c_str());
  Figures figures;
  for (const std::string mode : {"always", "interval:50", "never"}) {
    run_mode(binary, mode, seed, cycles, figures);
    if (::testing::Test::HasFailure()) break;
  }
  std::printf(
      "SERVER-KILL9-FIGURES seed=%llu kills=%llu publish_requests=%llu acked_messages=%llu acked_checked=%llu "
      "messages_read=%llu consumer_deliveries=%llu consumer_redeliveries=%llu consumer_acks_confirmed=%llu "
      "restart_ms_max=%.1f violations=%llu\n",
      static_cast<unsigned long long>(seed), static_cast<unsigned long long>(figures.kills),
      static_cast<unsigned long long>(figures.publish_requests), static_cast<unsigned long long>(figures.acked_messages),
      static_cast<unsigned long long>(figures.acked_checked), static_cast<unsigned long long>(figures.messages_read),
      static_cast<unsigned long long>(figures.consumer_deliveries), static_cast<unsigned long long>(figures.consumer_redeliveries),
      static_cast<unsigned long long>(figures.consumer_acks_confirmed), figures.restart_ms_max,
      static_cast<unsigned long long>(figures.violations));
  if (::testing::Test::HasFailure()) std::printf("server_kill9_test: FAILED; replay with:\n  %s\n", replay.c_str());
}

}  // namespace
}  // namespace msgstore::e2e
