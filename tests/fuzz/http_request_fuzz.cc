// libFuzzer target: arbitrary bytes as the HTTP/1.1 byte stream of one keep-alive connection,
// through the server's real request path without a socket: Beast's request parser with the
// server's limits (limit_request_parser, as the session uses it), then Dispatcher::dispatch
// (query parsing, routing, every handler: streams, publish, batch, read, consumers, live
// endpoints) over a Broker and a Store on the in-memory FaultFileSystem.
//
// Each input gets a fresh store holding a stream "s" (2 partitions, subjects "s" and "s.>")
// with a few messages and a durable consumer "c", so most requests reach real work. Requests
// are answered in order until the bytes end or one is malformed (the session would answer 400
// and close). Handlers that take the connection over (Server-Sent Events, WebSocket) find the
// socket closed and end. Long polls are bounded by long_poll_wait_ms_max = 2 ms.
//
// What must hold (std::abort otherwise, so libFuzzer reports it):
//   - every response that is not a takeover has a status in 100..599 and, when it says JSON,
//     a body that parses as JSON; an error status carries {"error":{"code":"...",...}};
//   - no 500 internal_error (a handler threw or an invariant broke);
//   - afterwards the store is consistent: Store::verify is clean; in every partition the
//     messages read from the log start are dense up to next_offset; every consumer's ack floor
//     and delivered offset are at most the partition's next offset;
//   - after a clean close and a reopen the same streams hold the same offsets.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/json/parse.hpp>

#include "broker/broker.h"
#include "io/fault_file_system.h"
#include "msgstore/consumer.h"
#include "msgstore/store.h"
#include "server/config.h"
#include "server/dispatcher.h"
#include "server/metrics.h"
#include "server/server_context.h"

namespace {

using namespace msgstore;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace json = boost::json;

// Requests answered per input: a keep-alive connection has no limit, but a fuzz input of
// 64 KiB holds at most a few hundred tiny requests and each costs a store call.
constexpr std::size_t requests_per_input_max = 64;
const std::filesystem::path data_directory = "/data";

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "http_request_fuzz: %s\n", what);
  std::abort();
}

server::ServerConfig fuzz_config() {
  server::ServerConfig config;
  config.worker_threads = 2;
  config.worker_queue_max = 64;
  config.request_body_bytes_max = 64 * 1024;
  config.request_header_bytes_max = 16 * 1024;
  config.batch_messages_max = 100;
  config.connection_in_flight_bytes_max = 1024 * 1024;
  config.long_poll_wait_ms_max = 2;
  config.write_timeout_ms = 100;
  config.log_requests = false;
  return config;
}

std::unique_ptr<Store> open_store(const std::shared_ptr<FaultFileSystem>& file_system) {
  StoreOptions options;
  options.file_system = file_system;
  options.background_maintenance = false;
  auto store = Store::open(data_directory, options);
  if (!store) finding("the store did not open on the in-memory file system");
  return std::move(*store);
}

void seed_store(Store& store) {
  StreamConfig config;
  config.name = "s";
  config.subjects = {"s", "s.>"};
  config.partitions = 2;
  config.segment_bytes = 4096;
  if (!store.create_stream(config)) finding("seed stream not created");
  for (int i = 0; i < 6; ++i) {
    const std::string payload = "seed-" + std::to_string(i);
    const std::string key = "k" + std::to_string(i % 3);
    OutgoingMessage message;
    message.subject = i % 2 == 0 ? "s" : "s.x";
    message.key = std::string_view(key);
    message.payload = payload;
    if (!store.publish_to("s", std::span<const OutgoingMessage>(&message, 1))) finding("seed publish failed");
  }
  ConsumerConfig consumer;
  consumer.name = "c";
  if (!store.consumers().create("s", consumer)) finding("seed consumer not created");
}

void check_response(const server::HttpResponse& response) {
  if (response.connection_taken_over) return;
  const unsigned status = response.message.result_int();
  if (status < 100 || status > 599) finding("response status out of range");
  const auto content_type = response.message[http::field::content_type];
  if (content_type.substr(0, 16) != "application/json") return;
  boost::system::error_code error;
  const json::value body = json::parse(response.message.body(), error);
  if (error) finding("a JSON response body does not parse");
  if (status >= 400) {
    const json::object* object = body.if_object();
    const json::value* error_object = object ? object->if_contains("error") : nullptr;
    const json::value* code = error_object && error_object->is_object() ? error_object->as_object().if_contains("code") : nullptr;
    if (code == nullptr || !code->is_string()) finding("an error response without {\"error\":{\"code\"}}");
    if (code->as_string() == "internal_error") finding("500 internal_error");
  }
}

// True if the input may have set a time to live (the Msgstore-TTL-Ms header; names compare
// case-insensitively): such a message expires while the input runs (a TTL of 1 ms is enough) and
// is then a gap for every reader, scans included.
bool may_set_time_to_live(std::string_view input) {
  for (std::size_t at = 0; at + 3 <= input.size(); ++at) {
    if ((input[at] | 0x20) == 't' && (input[at + 1] | 0x20) == 't' && (input[at + 2] | 0x20) == 'l') return true;
  }
  return false;
}

// Stream name -> next offset per partition; aborts on an inconsistent partition. Offsets must
// be dense from the log start to the log end, except where expired messages are gaps
// (`expiry_possible`): then only strictly increasing, ending at the log end.
std::map<std::string, std::vector<Offset>> check_store(Store& store, bool expiry_possible) {
  auto verified = store.verify();
  if (!verified || !verified->clean()) finding("Store::verify is not clean");
  std::map<std::string, std::vector<Offset>> ends;
  for (const StreamConfig& config : store.list_streams()) {
    auto info = store.describe_stream(config.name);
    if (!info) finding("a listed stream cannot be described");
    std::vector<Offset>& stream_ends = ends[config.name];
    for (const PartitionInfo& partition : info->partitions) {
      if (partition.first_offset > partition.next_offset) finding("log start past the log end");
      Offset expected = partition.first_offset;
      bool dense = true;
      auto scanned = store.scan(config.name, partition.partition, partition.first_offset, 100000,
                                [&](const MessageView& message) {
                                  if (message.offset < expected || (message.offset != expected && !expiry_possible)) dense = false;
                                  expected = message.offset + 1;
                                  return ScanControl::proceed;
                                });
      if (!scanned) finding("a partition cannot be scanned");
      if (!dense || (expected != partition.next_offset && !expiry_possible) || expected > partition.next_offset ||
          *scanned != partition.next_offset) {
        std::fprintf(stderr, "http_request_fuzz: stream %s partition %u: log start %llu, log end %llu, scan ended at %llu (returned %llu)%s\n",
                     config.name.c_str(), partition.partition, static_cast<unsigned long long>(partition.first_offset),
                     static_cast<unsigned long long>(partition.next_offset), static_cast<unsigned long long>(expected),
                     static_cast<unsigned long long>(*scanned), expiry_possible ? ", expiry possible" : "");
        finding("a partition's messages are not dense up to next_offset");
      }
      stream_ends.push_back(partition.next_offset);
    }
    auto consumers = store.consumers().list(config.name);
    if (!consumers) finding("consumers cannot be listed");
    for (const ConsumerInfo& consumer : *consumers) {
      for (const ConsumerPartitionInfo& position : consumer.partitions) {
        if (position.partition >= info->partitions.size()) finding("a consumer position for a partition that does not exist");
        const Offset end = info->partitions[position.partition].next_offset;
        if (position.ack_floor > end || position.delivered_offset > end) finding("a consumer cursor past the log end");
      }
    }
  }
  return ends;
}

// Answers the requests in `input` in order; returns when the bytes end, a request is
// malformed or over a limit, or requests_per_input_max were answered.
void serve_bytes(server::ServerContext& context, server::Dispatcher& dispatcher, std::string_view input) {
  asio::io_context loop(1);
  beast::tcp_stream stream(loop);  // never connected: takeover handlers fail their first write
  beast::flat_buffer connection_buffer;
  for (std::size_t answered = 0; answered < requests_per_input_max && !input.empty(); ++answered) {
    http::request_parser<http::string_body> parser;
    server::limit_request_parser(parser, context.config());
    parser.eager(true);
    boost::system::error_code error;
    while (!input.empty() && !parser.is_done()) {
      const std::size_t used = parser.put(asio::buffer(input.data(), input.size()), error);
      input.remove_prefix(used);
      if (error == http::error::need_more) {
        if (used == 0) break;  // the rest is an incomplete request
        error = {};
        continue;
      }
      if (error) return;  // malformed or over a limit: the session answers 4xx and closes
    }
    if (!parser.is_done()) {
      parser.put_eof(error);  // the peer closed: a body delimited by the end of the connection
      if (error || !parser.is_done()) return;
    }
    const server::HttpRequest request = parser.release();
    std::optional<server::HttpResponse> response;
    asio::co_spawn(loop, dispatcher.dispatch(request, stream, connection_buffer),
                   [&response](std::exception_ptr exception, server::HttpResponse result) {
                     if (exception) finding("dispatch threw");
                     response = std::move(result);
                   });
    loop.run();
    loop.restart();
    if (!response) finding("dispatch did not finish");
    check_response(*response);
    if (response->connection_taken_over || !response->message.keep_alive()) return;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto file_system = std::make_shared<FaultFileSystem>();
  std::map<std::string, std::vector<Offset>> ends;
  {
    std::unique_ptr<Store> store = open_store(file_system);
    seed_store(*store);
    const server::ServerConfig config = fuzz_config();
    server::Metrics metrics;
    {
      broker::Broker broker(*store, broker::BrokerOptions{config.worker_threads, config.worker_queue_max});
      server::ServerContext context(config, *store, broker, metrics);
      server::Dispatcher dispatcher(context);
      serve_bytes(context, dispatcher, input);
      broker.stop();
      broker.join();
    }
    ends = check_store(*store, may_set_time_to_live(input));
    if (!store->close()) finding("Store::close failed");
  }
  std::unique_ptr<Store> reopened = open_store(file_system);
  if (check_store(*reopened, may_set_time_to_live(input)) != ends) finding("the reopened store differs from the closed one");
  return 0;
}
