// libFuzzer target: every JSON body decoder of the HTTP server (src/server/json_codec.*), fed
// arbitrary text. The first input byte picks the decoder, the rest is the body:
//   0 batch publish, application/json {"messages":[...]} (text and base64 payloads, keys, headers)
//   1 batch publish, application/x-ndjson
//   2 stream config for a create, 3 for an update of an existing config
//   4 consumer config, 5 consumer fetch body, 6 ack body, 7 nak body (with delay_ms)
//   8 WebSocket credit frame, 9 a delivery token (the text clients send back in settle bodies)
// Decoders must return a value or an error Status, never crash, leak or hang, and what they
// accept must satisfy the properties checked below (std::abort otherwise):
//   - a decoded batch has 1..messages_max messages; re-encoded (payload and key as base64,
//     headers as text) and decoded again it gives the same messages; a failure names an index
//     only inside the batch;
//   - an accepted stream config survives stream_config_to_json -> apply_stream_config_json;
//     an update never renames;
//   - fetch/settle/credit results stay inside their documented limits, and an accepted credit
//     grant increases the outstanding credit without passing the maximum (no wrap-around);
//   - a parsed delivery token prints back to text that parses to the same token.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "base/text_encoding.h"
#include "msgstore/limits.h"
#include "server/json_codec.h"

namespace {

using namespace msgstore;
using namespace msgstore::server;

constexpr std::size_t batch_messages_max = 64;
constexpr std::uint64_t credit_max = 1'000'000'000;

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "json_body_fuzz: %s\n", what);
  std::abort();
}

bool same_messages(const std::vector<DecodedMessage>& a, const std::vector<DecodedMessage>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].subject != b[i].subject || a[i].key != b[i].key || a[i].headers != b[i].headers ||
        a[i].payload != b[i].payload || a[i].timestamp_ms != b[i].timestamp_ms) {
      return false;
    }
  }
  return true;
}

void fuzz_batch(std::string_view body, bool ndjson) {
  std::optional<std::size_t> error_index;
  auto messages = decode_batch(body, ndjson, "default.subject", batch_messages_max, &error_index);
  if (!messages) {
    if (messages.status().code() != ErrorCode::invalid_argument && messages.status().code() != ErrorCode::limit_exceeded) {
      finding("a batch error other than invalid_argument or limit_exceeded");
    }
    if (error_index && *error_index >= batch_messages_max) finding("a batch error index past messages_max");
    return;
  }
  if (messages->empty() || messages->size() > batch_messages_max) finding("a decoded batch outside 1..messages_max");
  json::array array;
  for (const DecodedMessage& message : *messages) {
    json::object object{{"subject", message.subject}, {"payload_base64", base64_encode(message.payload)}};
    if (message.key) object["key_base64"] = base64_encode(*message.key);
    // Headers are a JSON object: a repeated name keeps one value, so only unique names round-trip.
    json::object headers;
    for (const auto& header : message.headers) headers[header.first] = header.second;
    if (headers.size() == message.headers.size()) object["headers"] = std::move(headers);
    if (message.timestamp_ms != timestamp_now) object["timestamp_ms"] = message.timestamp_ms;
    array.push_back(std::move(object));
  }
  const std::string again_text = json::serialize(json::object{{"messages", std::move(array)}});
  auto again = decode_batch(again_text, false, "default.subject", batch_messages_max, &error_index);
  if (!again) finding("a re-encoded batch does not decode");
  std::vector<DecodedMessage> expected = *messages;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    json::object headers;
    for (const auto& header : expected[i].headers) headers[header.first] = header.second;
    if (headers.size() != expected[i].headers.size()) expected[i].headers.clear();
  }
  if (!same_messages(*again, expected)) finding("a re-encoded batch decodes to other messages");
  std::vector<std::vector<HeaderView>> header_views;
  if (outgoing_views(*messages, header_views).size() != messages->size()) finding("outgoing_views lost messages");
}

void fuzz_stream_config(std::string_view body, bool for_update) {
  boost::system::error_code error;
  const json::value value = json::parse(body, error);
  if (error) return;
  StreamConfig config;
  config.name = "existing";
  const StreamConfig before = config;
  if (!apply_stream_config_json(value, config, for_update)) return;
  if (for_update && config.name != before.name) finding("an update renamed the stream");
  StreamConfig again;
  if (!apply_stream_config_json(stream_config_to_json(config), again, false)) finding("an encoded config does not decode");
  if (!(again == config)) finding("a stream config does not round-trip");
}

void fuzz_consumer_body(std::string_view body, int kind) {
  auto object = parse_json_object(body);
  if (!object) return;
  if (kind == 4) {
    auto config = decode_consumer_config(*object);
    if (config && config->name.empty()) finding("a consumer config without a name");
    if (config && config->ack_wait_ms > limits::consumer_ack_wait_ms_max) finding("ack_wait_ms above its limit");
  } else if (kind == 5) {
    auto fetch = decode_fetch_body(*object);
    if (fetch && (fetch->max_messages > limits::consumer_fetch_messages_max || fetch->wait_ms > UINT32_MAX)) {
      finding("a fetch body outside its limits");
    }
  } else {
    auto settle = decode_settle_body(*object, kind == 7);
    if (settle && (settle->tokens.empty() || settle->tokens.size() > limits::consumer_fetch_messages_max)) {
      finding("a settle body with a token count outside 1..consumer_fetch_messages_max");
    }
    if (settle && kind != 7 && settle->delay) finding("a delay accepted outside nak");
  }
}

void fuzz_credit(std::string_view text) {
  for (const std::uint64_t outstanding : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{999'999'999}, credit_max}) {
    auto credit = apply_credit_grant(text, outstanding, credit_max);
    if (credit && (*credit <= outstanding || *credit > credit_max)) finding("a credit grant wrapped or passed the maximum");
  }
}

void fuzz_delivery_token(std::string_view text) {
  auto token = DeliveryToken::parse(text);
  if (!token) return;
  auto again = DeliveryToken::parse(token->to_string());
  if (!again || !(*again == *token)) finding("a delivery token does not round-trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const int kind = data[0] % 10;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (kind) {
    case 0: fuzz_batch(body, false); break;
    case 1: fuzz_batch(body, true); break;
    case 2: fuzz_stream_config(body, false); break;
    case 3: fuzz_stream_config(body, true); break;
    case 4: case 5: case 6: case 7: fuzz_consumer_body(body, kind); break;
    case 8: fuzz_credit(body); break;
    default: fuzz_delivery_token(body); break;
  }
  return 0;
}
