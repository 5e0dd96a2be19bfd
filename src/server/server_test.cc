// Unit tests of the server's pure parts: configuration, router, JSON codec, error mapping.
// (The sockets, limits and shutdown are covered end to end in tests/e2e/server_test.cc.)
#include <sstream>

#include <boost/beast/http/write.hpp>
#include <set>
#include <tuple>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "base/text_encoding.h"
#include "server/config.h"
#include "server/http.h"
#include "server/json_codec.h"
#include "log/sync_latency.h"
#include "server/router.h"
#include "server/routes.h"
#include "server/server_context.h"
#include "support/temporary_directory.h"

namespace msgstore::server {
namespace {

// The session writes responses with serialize_response; it must produce exactly what Beast's
// own serializer writes for the same message.
TEST(SerializeResponseTest, SameBytesAsBeastsSerializer) {
  struct Case {
    http::status status;
    unsigned version;
    bool keep_alive;
    std::string body;
  };
  const Case cases[] = {{http::status::ok, 11, true, "{\"offset\":1}\n"},
                        {http::status::not_found, 11, false, "{\"error\":{}}\n"},
                        {http::status::created, 10, true, ""},
                        {http::status::payload_too_large, 10, false, std::string(70000, 'x')},
                        {static_cast<http::status>(299), 11, true, "unusual status"}};
  for (const Case& item : cases) {
    http::response<http::string_body> message{item.status, item.version};
    message.set(http::field::content_type, "application/json");
    message.set("Msgstore-Custom", "value with spaces");
    message.keep_alive(item.keep_alive);
    message.body() = item.body;
    message.prepare_payload();
    std::ostringstream beast_bytes;
    beast_bytes << message;
    EXPECT_EQ(serialize_response(message), beast_bytes.str()) << static_cast<int>(item.status);
  }
}

TEST(ServerConfigTest, DefaultsAreValid) {
  const ServerConfig config;
  EXPECT_TRUE(validate_server_config(config).is_ok());
  EXPECT_EQ(config.listen, "127.0.0.1:7480");
  EXPECT_EQ(config.data_directory, "./data");
}

TEST(ServerConfigTest, TomlTopLevelAndServerTable) {
  ServerConfig config;
  ASSERT_TRUE(apply_toml_text(config, "listen = \"0.0.0.0:9000\"\n[server]\nmax_connections = 7\nlog_requests = true\n", "t.toml").is_ok());
  EXPECT_EQ(config.listen, "0.0.0.0:9000");
  EXPECT_EQ(config.max_connections, 7u);
  EXPECT_TRUE(config.log_requests);
}

TEST(ServerConfigTest, TomlErrorsNameTheProblem) {
  ServerConfig config;
  Status unknown = apply_toml_text(config, "max_conections = 3\n", "t.toml");
  EXPECT_EQ(unknown.code(), ErrorCode::invalid_argument);
  EXPECT_NE(unknown.message().find("max_conections"), std::string::npos);
  Status wrong_type = apply_toml_text(config, "max_connections = \"many\"\n", "t.toml");
  EXPECT_NE(wrong_type.message().find("max_connections"), std::string::npos);
  Status negative = apply_toml_text(config, "idle_timeout_ms = -1\n", "t.toml");
  EXPECT_FALSE(negative.is_ok());
  Status syntax = apply_toml_text(config, "listen = \n", "t.toml");
  EXPECT_NE(syntax.message().find("t.toml:1"), std::string::npos) << syntax.message();
}

TEST(ServerConfigTest, EnvironmentOverridesAndNames) {
  ServerConfig config;
  const auto lookup = [](const char* name) -> const char* {
    if (std::string_view(name) == "MSGSTORE_MAX_CONNECTIONS") return "12";
    if (std::string_view(name) == "MSGSTORE_DATA") return "/srv/msgstore";
    return nullptr;
  };
  ASSERT_TRUE(apply_environment(config, lookup).is_ok());
  EXPECT_EQ(config.max_connections, 12u);
  EXPECT_EQ(config.data_directory, "/srv/msgstore");
  EXPECT_EQ(setting_flag_name("request_body_bytes_max"), "request-body-bytes-max");
  EXPECT_EQ(setting_environment_name("request_body_bytes_max"), "MSGSTORE_REQUEST_BODY_BYTES_MAX");
  const auto bad = [](const char* name) -> const char* {
    return std::string_view(name) == "MSGSTORE_IDLE_TIMEOUT_MS" ? "soon" : nullptr;
  };
  Status failed = apply_environment(config, bad);
  EXPECT_NE(failed.message().find("MSGSTORE_IDLE_TIMEOUT_MS"), std::string::npos);
}

TEST(ServerConfigTest, EverySettingRoundTripsThroughItsText) {
  const ServerConfig defaults;
  for (const Setting& setting : server_settings()) {
    ServerConfig config;
    EXPECT_TRUE(setting.assign(config, setting.show(defaults)).is_ok()) << setting.name;
    EXPECT_EQ(setting.show(config), setting.show(defaults)) << setting.name;
    EXPECT_FALSE(setting.description.empty()) << setting.name;
  }
}

TEST(ServerConfigTest, Validation) {
  ServerConfig config;
  config.worker_threads = 0;
  EXPECT_FALSE(validate_server_config(config).is_ok());
  config = {};
  config.connection_in_flight_bytes_max = config.request_body_bytes_max - 1;
  EXPECT_FALSE(validate_server_config(config).is_ok());
  config = {};
  config.listen = "nonsense";
  EXPECT_FALSE(validate_server_config(config).is_ok());
}

TEST(ServerConfigTest, ListenAddresses) {
  auto v4 = parse_listen_address("127.0.0.1:0");
  ASSERT_TRUE(v4.is_ok());
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 0);
  auto v6 = parse_listen_address("[::1]:7480");
  ASSERT_TRUE(v6.is_ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 7480);
  EXPECT_FALSE(parse_listen_address("127.0.0.1").is_ok());
  EXPECT_FALSE(parse_listen_address("127.0.0.1:65536").is_ok());
  EXPECT_FALSE(parse_listen_address(":80").is_ok());
  EXPECT_FALSE(parse_listen_address("::1:80").is_ok());
  EXPECT_FALSE(parse_listen_address("[::1]80").is_ok());
}

asio::awaitable<HttpResponse> unused_handler(RequestContext&) { co_return HttpResponse{}; }

TEST(RouterTest, MatchesTemplatesAndDecodesParameters) {
  Router router;
  router.add(http::verb::get, "/v1/streams", unused_handler);
  router.add(http::verb::get, "/v1/streams/{stream}", unused_handler);
  router.add(http::verb::delete_, "/v1/streams/{stream}", unused_handler);
  router.add(http::verb::get, "/v1/streams/{stream}/partitions/{partition}/messages", unused_handler);

  auto list = router.match(http::verb::get, "/v1/streams");
  ASSERT_NE(list.handler, nullptr);
  EXPECT_EQ(list.route_template, "/v1/streams");

  auto read = router.match(http::verb::get, "/v1/streams/a%2Eb/partitions/3/messages");
  ASSERT_NE(read.handler, nullptr);
  EXPECT_EQ(read.path_parameters.at("stream"), "a.b");
  EXPECT_EQ(read.path_parameters.at("partition"), "3");
  EXPECT_EQ(read.route_template, "/v1/streams/{stream}/partitions/{partition}/messages");
}

TEST(RouterTest, UnknownPathsMethodsAndBadEscapes) {
  Router router;
  router.add(http::verb::get, "/v1/streams/{stream}", unused_handler);
  router.add(http::verb::delete_, "/v1/streams/{stream}", unused_handler);
  auto wrong_method = router.match(http::verb::put, "/v1/streams/orders");
  EXPECT_EQ(wrong_method.handler, nullptr);
  EXPECT_TRUE(wrong_method.path_known);
  EXPECT_EQ(wrong_method.allowed_methods, "GET, DELETE");
  auto unknown = router.match(http::verb::get, "/v1/nothing/here");
  EXPECT_EQ(unknown.handler, nullptr);
  EXPECT_FALSE(unknown.path_known);
  EXPECT_EQ(router.match(http::verb::get, "/v1/streams/").handler, nullptr);  // empty parameter
  EXPECT_EQ(router.match(http::verb::get, "/v1/streams/orders/extra").handler, nullptr);
  EXPECT_TRUE(router.match(http::verb::get, "/v1/streams/bad%zz").bad_escape);
}

TEST(RouterTest, LiteralSegmentsWinOverParameters) {
  Router router;
  router.add(http::verb::get, "/v1/streams/{stream}", unused_handler);
  router.add(http::verb::get, "/v1/streams/_all", unused_handler);
  EXPECT_EQ(router.match(http::verb::get, "/v1/streams/_all").route_template, "/v1/streams/_all");
  EXPECT_EQ(router.match(http::verb::get, "/v1/streams/x").route_template, "/v1/streams/{stream}");
}

TEST(HttpTest, PercentDecoding) {
  EXPECT_EQ(percent_decode("a%20b+c", true), "a b c");
  EXPECT_EQ(percent_decode("a%20b+c", false), "a b+c");
  EXPECT_EQ(percent_decode("%41%4a", false), "AJ");
  EXPECT_FALSE(percent_decode("%4", false).has_value());
  EXPECT_FALSE(percent_decode("%", false).has_value());
  EXPECT_FALSE(percent_decode("%g0", false).has_value());
}

TEST(HttpTest, ErrorCodesMapToHttpStatuses) {
  EXPECT_EQ(http_status_for(ErrorCode::invalid_argument), http::status::bad_request);
  EXPECT_EQ(http_status_for(ErrorCode::stream_not_found), http::status::not_found);
  EXPECT_EQ(http_status_for(ErrorCode::stream_exists), http::status::conflict);
  EXPECT_EQ(http_status_for(ErrorCode::message_too_large), http::status::payload_too_large);
  EXPECT_EQ(http_status_for(ErrorCode::no_space), http::status::insufficient_storage);
  EXPECT_EQ(http_status_for(ErrorCode::limit_exceeded), http::status::too_many_requests);
  EXPECT_EQ(http_status_for(ErrorCode::corruption), http::status::internal_server_error);
  EXPECT_EQ(http_status_for(ErrorCode::internal_error), http::status::internal_server_error);
  const json::value body = json::parse(error_body(Status(ErrorCode::stream_not_found, "no 'x'"), {{"stream", "x"}}));
  EXPECT_EQ(body.at("error").at("code").as_string(), "stream_not_found");
  EXPECT_EQ(body.at("error").at("message").as_string(), "no 'x'");
  EXPECT_EQ(body.at("error").at("details").at("stream").as_string(), "x");
}

TEST(JsonCodecTest, StreamConfigRoundTripAndUpdateRules) {
  StreamConfig config;
  ASSERT_TRUE(apply_stream_config_json(json::parse(R"({"name":"orders","subjects":["orders.>"],"partitions":4,"fsync":"interval:50","max_age_ms":1000})"),
                                       config, false).is_ok());
  EXPECT_EQ(config.name, "orders");
  EXPECT_EQ(config.partitions, 4u);
  EXPECT_EQ(config.fsync, FsyncPolicy::interval);
  EXPECT_EQ(config.fsync_interval_ms, 50u);
  StreamConfig again;
  ASSERT_TRUE(apply_stream_config_json(stream_config_to_json(config), again, false).is_ok());
  EXPECT_EQ(again, config);
  EXPECT_FALSE(apply_stream_config_json(json::parse(R"({"name":"other"})"), config, true).is_ok());
  EXPECT_FALSE(apply_stream_config_json(json::parse(R"({"partitions":-1})"), config, true).is_ok());
  EXPECT_FALSE(apply_stream_config_json(json::parse(R"({"partitions":"4"})"), config, true).is_ok());
  EXPECT_FALSE(apply_stream_config_json(json::parse(R"({"colour":"red"})"), config, true).is_ok());
  EXPECT_FALSE(apply_stream_config_json(json::parse(R"({"fsync":"sometimes"})"), config, true).is_ok());
  EXPECT_FALSE(apply_stream_config_json(json::parse(R"([1,2])"), config, true).is_ok());
  ASSERT_TRUE(apply_stream_config_json(json::parse(R"({"indexed_headers":["region"],"indexes_enabled":true})"), config, true).is_ok());
  EXPECT_EQ(config.indexed_headers, std::vector<std::string>{"region"});
  EXPECT_FALSE(apply_stream_config_json(json::parse(R"({"indexed_headers":"region"})"), config, true).is_ok());
  EXPECT_FALSE(apply_stream_config_json(json::parse(R"({"indexes_enabled":1})"), config, true).is_ok());
}

TEST(JsonCodecTest, MessagesUseTextOrBase64) {
  Message message{.offset = 7, .timestamp_ms = 1000, .subject = "s", .key = std::string("\xff", 1),
                  .headers = {{"ok", "v"}, {"bin", std::string("\xfe\x00", 2)}}, .payload = std::string("\x00\x9f", 2)};
  const json::object object = message_to_json(message);
  EXPECT_EQ(object.at("offset").as_uint64(), 7u);
  EXPECT_EQ(object.at("key_base64").as_string(), "/w==");
  EXPECT_EQ(object.at("headers").at("ok").as_string(), "v");
  EXPECT_EQ(object.at("headers_base64").at("bin").as_string(), "/gA=");
  EXPECT_EQ(object.at("payload_base64").as_string(), "AJ8=");
  EXPECT_FALSE(object.contains("payload"));
  message.payload = "caf\xC3\xA9";
  EXPECT_EQ(message_to_json(message).at("payload").as_string(), "caf\xC3\xA9");
}

TEST(JsonCodecTest, BatchBodies) {
  std::optional<std::size_t> index;
  auto json_batch = decode_batch(R"({"messages":[{"payload":"a","key":"k","headers":{"h":"v"}},{"subject":"x.y","payload_base64":"AAE="}]})",
                                 false, "orders", 10, &index);
  ASSERT_TRUE(json_batch.is_ok()) << json_batch.status().to_string();
  ASSERT_EQ(json_batch->size(), 2u);
  EXPECT_EQ((*json_batch)[0].subject, "orders");
  EXPECT_EQ((*json_batch)[0].key, "k");
  EXPECT_EQ((*json_batch)[0].headers.at(0).second, "v");
  EXPECT_EQ((*json_batch)[1].subject, "x.y");
  EXPECT_EQ((*json_batch)[1].payload, std::string("\x00\x01", 2));

  auto ndjson = decode_batch("{\"payload\":\"a\"}\r\n\n{\"payload\":\"b\",\"timestamp_ms\":5}\n", true, "orders", 10, &index);
  ASSERT_TRUE(ndjson.is_ok()) << ndjson.status().to_string();
  ASSERT_EQ(ndjson->size(), 2u);
  EXPECT_EQ((*ndjson)[1].timestamp_ms, 5);

  std::vector<std::vector<HeaderView>> header_views;
  auto views = outgoing_views(*json_batch, header_views);
  ASSERT_EQ(views.size(), 2u);
  EXPECT_EQ(views[0].headers.size(), 1u);
  EXPECT_EQ(views[0].headers[0].name, "h");
  EXPECT_EQ(*views[0].key, "k");
  EXPECT_FALSE(views[1].key.has_value());
}

TEST(JsonCodecTest, BatchErrorsNameTheMessage) {
  std::optional<std::size_t> index;
  auto bad_base64 = decode_batch(R"({"messages":[{"payload":"a"},{"payload_base64":"***"}]})", false, "s", 10, &index);
  EXPECT_EQ(bad_base64.status().code(), ErrorCode::invalid_argument);
  EXPECT_EQ(index, 1u);
  index.reset();
  auto both = decode_batch(R"({"messages":[{"payload":"a","payload_base64":"YQ=="}]})", false, "s", 10, &index);
  EXPECT_FALSE(both.is_ok());
  EXPECT_EQ(index, 0u);
  EXPECT_FALSE(decode_batch(R"({"messages":[]})", false, "s", 10, &index).is_ok());
  EXPECT_FALSE(decode_batch(R"({"messages":[{}],"extra":1})", false, "s", 10, &index).is_ok());
  EXPECT_FALSE(decode_batch("{not json", false, "s", 10, &index).is_ok());
  EXPECT_FALSE(decode_batch("{\"payload\":\"a\"}\n{broken\n", true, "s", 10, &index).is_ok());
  EXPECT_FALSE(decode_batch(R"({"messages":[{"payload":1}]})", false, "s", 10, &index).is_ok());
  EXPECT_FALSE(decode_batch(R"({"messages":[{"timestamp_ms":-5}]})", false, "s", 10, &index).is_ok());
  auto too_many = decode_batch(R"({"messages":[{},{},{}]})", false, "s", 2, &index);
  EXPECT_EQ(too_many.status().code(), ErrorCode::limit_exceeded);
  auto too_many_lines = decode_batch("{}\n{}\n{}\n", true, "s", 2, &index);
  EXPECT_EQ(too_many_lines.status().code(), ErrorCode::limit_exceeded);
  // A malformed line past the limit is one too many; an error index never points past the batch
  // (found by json_body_fuzz).
  index.reset();
  auto malformed_past_the_limit = decode_batch("{}\n{}\n{broken\n", true, "s", 2, &index);
  EXPECT_EQ(malformed_past_the_limit.status().code(), ErrorCode::limit_exceeded);
  EXPECT_FALSE(index.has_value());
}


// ---------------------------------------------------------------------------------------------
// Handlers in process: the real routes over a real Store and Broker, called as the session
// calls them (route match, path and query parameters), without sockets.

class InProcessServerTest : public ::testing::Test {
 protected:
  InProcessServerTest() {
    StoreOptions options;
    options.background_maintenance = false;
    store_ = Store::open(directory_.path() / "data", options).value();
    broker_ = std::make_unique<broker::Broker>(*store_, broker::BrokerOptions{.worker_threads = 4, .worker_queue_max = 64});
    context_ = std::make_unique<ServerContext>(config_, *store_, *broker_, metrics_);
    register_all_routes(router_, *context_);
  }
  ~InProcessServerTest() override {
    context_.reset();
    broker_.reset();
    EXPECT_TRUE(store_->close().is_ok());
  }

  struct Reply {
    unsigned status = 0;
    std::string body;
    json::value json() const { return json::parse(body); }
  };

  Reply call(http::verb method, std::string target, std::string body = {}, std::string content_type = "application/json") {
    HttpRequest request{method, target, 11};
    request.body() = std::move(body);
    request.set(http::field::content_type, content_type);
    request.prepare_payload();
    asio::io_context loop;
    beast::tcp_stream stream(loop);
    beast::flat_buffer buffer;
    const std::string_view path = std::string_view(target).substr(0, target.find('?'));
    Router::Match match = router_.match(method, path);
    EXPECT_NE(match.handler, nullptr) << target;
    if (match.handler == nullptr) return {};
    RequestContext context{request, path, std::move(match.path_parameters), {}, stream, buffer, *context_};
    const auto pairs = query_pairs(target);
    EXPECT_TRUE(pairs.has_value()) << target;
    if (pairs) {
      for (const auto& pair : *pairs) context.query[pair.first] = pair.second;
    }
    std::optional<HttpResponse> response;
    asio::co_spawn(loop, [&]() -> asio::awaitable<void> { response.emplace(co_await (*match.handler)(context)); }, asio::detached);
    loop.run();
    EXPECT_TRUE(response.has_value());
    return {response->message.result_int(), response->message.body()};
  }
  Reply get(std::string target) { return call(http::verb::get, std::move(target)); }

  // 60 messages in "orders" (3 partitions by key k0..k9; subjects alternate created/paid;
  // region eu/us; timestamps 1000..1059) and 5 in "audit", which has the same keys.
  void publish_fixture() {
    ASSERT_EQ(call(http::verb::post, "/v1/streams",
                   R"({"name":"orders","subjects":["orders.>"],"partitions":3,"indexed_headers":["region"]})").status, 201u);
    ASSERT_EQ(call(http::verb::post, "/v1/streams", R"({"name":"audit","subjects":["audit.>"]})").status, 201u);
    json::array messages;
    for (int i = 0; i < 60; ++i) {
      messages.push_back(json::object{{"subject", i % 2 == 0 ? "orders.created" : "orders.paid"},
                                      {"key", "k" + std::to_string(i % 10)},
                                      {"headers", json::object{{"region", i % 3 == 0 ? "eu" : "us"}, {"colour", "red"}}},
                                      {"timestamp_ms", 1000 + i},
                                      {"payload", "order " + std::to_string(i)}});
    }
    ASSERT_EQ(call(http::verb::post, "/v1/streams/orders/batch", json::serialize(json::object{{"messages", messages}})).status, 200u);
    json::array audit;
    for (int i = 0; i < 5; ++i) audit.push_back(json::object{{"subject", "audit.entry"}, {"key", "k" + std::to_string(i)}, {"payload", "a"}});
    ASSERT_EQ(call(http::verb::post, "/v1/streams/audit/batch", json::serialize(json::object{{"messages", audit}})).status, 200u);
  }

  // The error code of a 4xx/5xx reply, or "" if the body is not the error shape.
  static std::string error_code(const Reply& reply) {
    const json::value body = reply.json();
    if (!body.is_object() || !body.as_object().contains("error")) return "";
    return std::string(body.at("error").at("code").as_string());
  }

  using Location = std::tuple<std::string, std::uint64_t, std::uint64_t>;  // stream, partition, offset
  static std::vector<Location> locations(const json::value& body) {
    std::vector<Location> out;
    for (const json::value& message : body.at("messages").as_array()) {
      out.emplace_back(std::string(message.at("stream").as_string()), message.at("partition").to_number<std::uint64_t>(),
                       message.at("offset").to_number<std::uint64_t>());
    }
    return out;
  }

  msgstore::testing::TemporaryDirectory directory_;
  ServerConfig config_;
  Metrics metrics_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<broker::Broker> broker_;
  std::unique_ptr<ServerContext> context_;
  Router router_;
};

TEST_F(InProcessServerTest, QueryByKeyHeaderSubjectAndTime) {
  publish_fixture();
  const Reply by_key = get("/v1/streams/orders/query?key=k3&explain=true");
  ASSERT_EQ(by_key.status, 200u) << by_key.body;
  const json::value key_body = by_key.json();
  ASSERT_EQ(key_body.at("messages").as_array().size(), 6u);
  for (const json::value& message : key_body.at("messages").as_array()) {
    EXPECT_EQ(message.at("key").as_string(), "k3");
    EXPECT_EQ(message.at("stream").as_string(), "orders");
  }
  EXPECT_TRUE(key_body.at("next_cursor").is_null());
  EXPECT_EQ(key_body.at("statistics").at("plan").as_string(), "key index");
  EXPECT_EQ(key_body.at("statistics").at("messages_matched").to_number<std::uint64_t>(), 6u);

  const json::value by_header = get("/v1/streams/orders/query?header.region=eu&explain=1").json();
  EXPECT_EQ(by_header.at("messages").as_array().size(), 20u);
  for (const json::value& message : by_header.at("messages").as_array()) EXPECT_EQ(message.at("headers").at("region").as_string(), "eu");
  EXPECT_NE(std::string(by_header.at("statistics").at("plan").as_string()).find("header index"), std::string::npos);

  const json::value two_headers = get("/v1/streams/orders/query?header.region=eu&header.colour=red&scan=true").json();
  EXPECT_EQ(two_headers.at("messages").as_array().size(), 20u);
  EXPECT_FALSE(two_headers.as_object().contains("statistics"));

  const json::value paid = get("/v1/streams/orders/query?subject=orders.paid").json();
  EXPECT_EQ(paid.at("messages").as_array().size(), 30u);
  for (const json::value& message : paid.at("messages").as_array()) EXPECT_EQ(message.at("subject").as_string(), "orders.paid");
  EXPECT_EQ(get("/v1/streams/orders/query?subject=orders.*").json().at("messages").as_array().size(), 60u);

  const json::value window = get("/v1/streams/orders/query?from_time_ms=1010&to_time_ms=1020").json();
  ASSERT_EQ(window.at("messages").as_array().size(), 10u);
  for (const json::value& message : window.at("messages").as_array()) {
    const auto timestamp = message.at("timestamp_ms").to_number<std::int64_t>();
    EXPECT_GE(timestamp, 1010);
    EXPECT_LT(timestamp, 1020);
  }
  // RFC 3339 names the same window.
  const json::value rfc3339 = get("/v1/streams/orders/query?from_time=1970-01-01T00:00:01.010Z&to_time=1970-01-01T00:00:01.020Z").json();
  EXPECT_EQ(locations(rfc3339), locations(window));
  // Every stream: the key is in both.
  const json::value everywhere = get("/v1/query?key=k3").json();
  std::set<std::string> streams;
  for (const json::value& message : everywhere.at("messages").as_array()) streams.insert(std::string(message.at("stream").as_string()));
  EXPECT_EQ(everywhere.at("messages").as_array().size(), 7u);
  EXPECT_EQ(streams, (std::set<std::string>{"audit", "orders"}));
}

TEST_F(InProcessServerTest, QueryPagesWithCursorUntilExhaustedEqualTheFullScan) {
  publish_fixture();
  const std::vector<Location> full = locations(get("/v1/query?subject=>&limit=1000").json());
  ASSERT_EQ(full.size(), 65u);
  std::vector<Location> paged;
  std::string cursor;
  for (int page = 0; page < 100; ++page) {
    const Reply reply = get("/v1/query?subject=%3E&limit=7" + (cursor.empty() ? std::string() : "&cursor=" + cursor));
    ASSERT_EQ(reply.status, 200u) << reply.body;
    const json::value body = reply.json();
    const auto found = locations(body);
    EXPECT_LE(found.size(), 7u);
    paged.insert(paged.end(), found.begin(), found.end());
    if (body.at("next_cursor").is_null()) break;
    cursor = std::string(body.at("next_cursor").as_string());  // base64url: safe in a query string
  }
  EXPECT_EQ(paged, full);

  // Newest first: one partition, offsets descending; the cursor pages the same way.
  const json::value newest = get("/v1/streams/orders/query?partition=1&order=newest&limit=3").json();
  const auto first_page = locations(newest);
  ASSERT_EQ(first_page.size(), 3u);
  EXPECT_GT(std::get<2>(first_page[0]), std::get<2>(first_page[1]));
  EXPECT_GT(std::get<2>(first_page[1]), std::get<2>(first_page[2]));
  const json::value next = get("/v1/streams/orders/query?partition=1&order=newest&limit=3&cursor=" +
                               std::string(newest.at("next_cursor").as_string())).json();
  EXPECT_LT(std::get<2>(locations(next).front()), std::get<2>(first_page.back()));
}

TEST_F(InProcessServerTest, QueryBadInputIsAClearError) {
  publish_fixture();
  const auto expect_error = [&](const std::string& target, unsigned status, std::string_view code, std::string_view mentions) {
    const Reply reply = get(target);
    EXPECT_EQ(reply.status, status) << target << " " << reply.body;
    EXPECT_EQ(error_code(reply), code) << target;
    EXPECT_NE(reply.body.find(mentions), std::string::npos) << target << " " << reply.body;
  };
  expect_error("/v1/streams/nowhere/query?key=a", 404, "stream_not_found", "nowhere");
  expect_error("/v1/streams/orders/query?cursor=not-a-cursor", 400, "invalid_argument", "malformed cursor");
  const std::string other_cursor =
      std::string(get("/v1/streams/orders/query?limit=1").json().at("next_cursor").as_string());
  expect_error("/v1/streams/orders/query?limit=1&key=k1&cursor=" + other_cursor, 400, "invalid_argument", "different query");
  expect_error("/v1/streams/orders/query?from_offset=5&to_offset=5", 400, "invalid_argument", "offset range");
  expect_error("/v1/streams/orders/query?from_time_ms=9&to_time_ms=3", 400, "invalid_argument", "time range");
  expect_error("/v1/streams/orders/query?subject=orders.%3E.x", 400, "invalid_argument", "subject pattern");
  expect_error("/v1/streams/orders/query?header.colour=red", 400, "invalid_argument", "not indexed");
  expect_error("/v1/streams/orders/query?keys=a", 400, "invalid_argument", "unknown query parameter keys");
  expect_error("/v1/streams/orders/query?key=a&key=b", 400, "invalid_argument", "more than once");
  expect_error("/v1/streams/orders/query?limit=0", 400, "invalid_argument", "limit");
  expect_error("/v1/streams/orders/query?limit=100001", 400, "invalid_argument", "limit");
  expect_error("/v1/streams/orders/query?order=sideways", 400, "invalid_argument", "order");
  expect_error("/v1/streams/orders/query?from_time=yesterday", 400, "invalid_argument", "from_time");
  expect_error("/v1/streams/orders/query?from_time=1&from_time_ms=1", 400, "invalid_argument", "not both");
  expect_error("/v1/streams/orders/query?partition=7", 404, "partition_not_found", "partition");
  expect_error("/v1/streams/orders/query?scan=maybe", 400, "invalid_argument", "scan");
  // The same header with scan allowed is a scan, not an error.
  EXPECT_EQ(get("/v1/streams/orders/query?header.colour=red&scan=true").json().at("messages").as_array().size(), 60u);
}

TEST_F(InProcessServerTest, MetricsHaveFsyncPublishConsumerAndLiveSeries) {
  const std::uint64_t syncs_before = log::data_sync_latency().snapshot().count;
  ASSERT_EQ(call(http::verb::post, "/v1/streams", R"({"name":"orders","subjects":["orders.>"]})").status, 201u);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(call(http::verb::post, "/v1/streams/orders/messages", "x", "text/plain").status, 200u);
  ASSERT_TRUE(store_->consumers().create("orders", {.name = "billing"}).is_ok());
  auto fetched = store_->consumers().fetch("orders", "billing", {.max_messages = 2});
  ASSERT_TRUE(fetched.is_ok());
  ASSERT_EQ(fetched->size(), 2u);
  const Metrics::LiveSubscriber live(metrics_, LiveProtocol::websocket);
  EXPECT_GE(log::data_sync_latency().snapshot().count, syncs_before + 3);  // fsync=always: one per publish at least

  const Reply reply = get("/metrics");
  ASSERT_EQ(reply.status, 200u);
  const std::string& text = reply.body;
  const auto value_of = [&](const std::string& series) -> std::optional<double> {
    const std::size_t at = text.find("\n" + series + " ");
    if (at == std::string::npos) return std::nullopt;
    return std::stod(text.substr(at + series.size() + 2));
  };
  EXPECT_GE(value_of("msgstore_fsync_duration_seconds_count").value_or(0), 3.0);
  EXPECT_GT(value_of("msgstore_fsync_duration_seconds_sum").value_or(0), 0.0);
  EXPECT_EQ(value_of("msgstore_fsync_duration_seconds_bucket{le=\"+Inf\"}"), value_of("msgstore_fsync_duration_seconds_count"));
  EXPECT_EQ(value_of("msgstore_publish_duration_seconds_count"), 3.0);
  EXPECT_EQ(value_of("msgstore_consumer_pending_messages{stream=\"orders\",consumer=\"billing\"}"), 2.0);
  EXPECT_EQ(value_of("msgstore_consumer_lag_messages{stream=\"orders\",consumer=\"billing\"}"), 1.0);
  EXPECT_EQ(value_of("msgstore_consumer_redelivered_messages{stream=\"orders\",consumer=\"billing\"}"), 0.0);
  EXPECT_EQ(value_of("msgstore_live_subscribers{protocol=\"websocket\"}"), 1.0);
  EXPECT_EQ(value_of("msgstore_live_subscribers{protocol=\"sse\"}"), 0.0);
}

}  // namespace
}  // namespace msgstore::server

namespace msgstore::server {
namespace {

// Regression: the WebSocket reader compared `credit + grant` against the maximum, so a grant
// near 2^64 with credit outstanding wrapped around and was accepted as a tiny credit.
TEST(JsonCodecTest, CreditGrantsAreCheckedWithoutWrapAround) {
  constexpr std::uint64_t credit_max = 1'000'000'000;
  auto granted = apply_credit_grant(R"({"credit": 10})", 5, credit_max);
  ASSERT_TRUE(granted.is_ok());
  EXPECT_EQ(*granted, 15u);
  EXPECT_EQ(apply_credit_grant(R"({"credit": 18446744073709551615})", 1, credit_max).status().code(), ErrorCode::limit_exceeded);
  EXPECT_EQ(apply_credit_grant(R"({"credit": 18446744073709551615})", 0, credit_max).status().code(), ErrorCode::limit_exceeded);
  EXPECT_EQ(apply_credit_grant(R"({"credit": 1})", credit_max, credit_max).status().code(), ErrorCode::limit_exceeded);
  ASSERT_TRUE(apply_credit_grant(R"({"credit": 1})", credit_max - 1, credit_max).is_ok());
  for (const char* invalid : {R"({"credit": 0})", R"({"credit": -3})", R"({"credit": "5"})", R"({"credit": 1, "x": 2})", "[1]", "{"}) {
    EXPECT_EQ(apply_credit_grant(invalid, 0, credit_max).status().code(), ErrorCode::invalid_argument) << invalid;
  }
}

TEST(JsonCodecTest, ConsumerBodies) {
  auto body = parse_json_object(R"({"name":"billing","start_offset":5,"ack_wait_ms":300,"backoff_ms":[1,2]})");
  ASSERT_TRUE(body.is_ok());
  auto config = decode_consumer_config(*body);
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_EQ(config->name, "billing");
  EXPECT_EQ(config->ack_wait_ms, 300);
  EXPECT_EQ(config->backoff_ms, (std::vector<std::int64_t>{1, 2}));
  EXPECT_FALSE(decode_consumer_config(*parse_json_object(R"({"name":"x","start":"end","start_offset":1})")).is_ok());
  EXPECT_FALSE(decode_consumer_config(*parse_json_object(R"({"ack_wait_ms":1})")).is_ok());  // no name
  EXPECT_FALSE(parse_json_object("[1]").is_ok());
  EXPECT_FALSE(parse_json_object("{").is_ok());

  auto fetch = decode_fetch_body(*parse_json_object(R"({"max_messages":30,"wait_ms":2000})"));
  ASSERT_TRUE(fetch.is_ok());
  EXPECT_EQ(fetch->max_messages, 30u);
  EXPECT_EQ(fetch->wait_ms, 2000u);
  EXPECT_FALSE(fetch->max_bytes.has_value());
  EXPECT_FALSE(decode_fetch_body(*parse_json_object(R"({"max_messages":-1})")).is_ok());
  EXPECT_FALSE(decode_fetch_body(*parse_json_object(R"({"colour":1})")).is_ok());

  auto settle = decode_settle_body(*parse_json_object(R"({"deliveries":["s/0/1/1"],"delay_ms":5})"), true);
  ASSERT_TRUE(settle.is_ok());
  EXPECT_EQ(settle->tokens, (std::vector<std::string>{"s/0/1/1"}));
  EXPECT_EQ(settle->delay, std::chrono::milliseconds(5));
  EXPECT_FALSE(decode_settle_body(*parse_json_object(R"({"deliveries":["s/0/1/1"],"delay_ms":5})"), false).is_ok());
  EXPECT_FALSE(decode_settle_body(*parse_json_object(R"({"deliveries":[]})"), false).is_ok());
  EXPECT_FALSE(decode_settle_body(*parse_json_object(R"({"deliveries":[1]})"), false).is_ok());
}

}  // namespace
}  // namespace msgstore::server

namespace msgstore::server {
namespace {

// Regression (found by http_request_fuzz): "GET /v1/s\x88..." was answered 404 with the raw
// path bytes inside the JSON error message, which made the body invalid UTF-8, i.e. not JSON.
TEST(HttpErrorTest, ErrorBodiesAreValidJsonWhateverBytesTheyEcho) {
  const std::string body = error_body(Status(ErrorCode::not_found, "no such endpoint: /v1/s\x88\x8d\x9a"),
                                      {{"stream", "bad\xff"}, {"nested", json::object{{"key\xfe", json::array{"\xc3"}}}}});
  EXPECT_TRUE(is_valid_utf8(body));
  boost::system::error_code error;
  const json::value parsed = json::parse(body, error);
  ASSERT_FALSE(error) << body;
  EXPECT_EQ(parsed.at("error").at("message").as_string(), "no such endpoint: /v1/s\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(parsed.at("error").at("details").at("stream").as_string(), "bad\xEF\xBF\xBD");
}

}  // namespace
}  // namespace msgstore::server
