// Unit tests of the server's pure parts: configuration, router, JSON codec, error mapping.
// (The sockets, limits and shutdown are covered end to end in tests/e2e/server_test.cc.)
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "base/text_encoding.h"
#include "server/config.h"
#include "server/http.h"
#include "server/json_codec.h"
#include "server/router.h"

namespace msgstore::server {
namespace {

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
