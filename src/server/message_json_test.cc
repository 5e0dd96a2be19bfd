// The live endpoints' hand-written message JSON against the Boost.JSON object it replaces: the
// same bytes for random messages (control bytes, quotes, multi-byte and malformed UTF-8, keys,
// repeated and undecodable header names), and the result parses back to the same values.
#include <limits>
#include <random>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "server/json_codec.h"
#include "server/message_json.h"

namespace msgstore::server {
namespace {

// What the live endpoints sent before the hand-written encoder (json::serialize of this object).
std::string boost_json_text(std::string_view stream, std::uint32_t partition, const MessageView& message) {
  json::object object{{"stream", stream}, {"partition", partition}};
  json::object fields = message_to_json(message.to_message());
  for (auto& field : fields) object.emplace(field.key(), std::move(field.value()));
  return json::serialize(object);
}

std::string written_text(std::string_view stream, std::uint32_t partition, const MessageView& message) {
  std::string out = "prefix";  // appends, never overwrites
  append_live_message_json(out, stream, partition, message);
  EXPECT_EQ(out.substr(0, 6), "prefix");
  return out.substr(6);
}

// Random bytes biased towards what escaping and the UTF-8 check must get right.
std::string random_bytes(std::mt19937_64& random, std::size_t length_max) {
  static const std::string pieces[] = {
      "a", "Z", "0", " ", "\"", "\\", "/", "\x7f", "\x01", "\x1f", "\b", "\f", "\n", "\r", "\t", std::string(1, '\0'),
      "\xc3\xa9",          // é
      "\xe2\x82\xac",      // €
      "\xf0\x9f\x98\x80",  // U+1F600
      "\x80",              // stray continuation byte
      "\xc0\xaf",          // overlong
      "\xed\xa0\x80",      // surrogate
      "\xf4\x90\x80\x80",  // above U+10FFFF
      "\xe2\x82",          // truncated
      "\xff"};
  std::uniform_int_distribution<std::size_t> length(0, length_max);
  std::uniform_int_distribution<std::size_t> piece(0, std::size(pieces) - 1);
  std::bernoulli_distribution plain(0.7);
  std::string bytes;
  const std::size_t count = length(random);
  for (std::size_t i = 0; i < count; ++i) {
    if (plain(random)) {
      bytes.push_back(static_cast<char>(0x20 + random() % 0x5f));
    } else {
      bytes += pieces[piece(random)];
    }
  }
  return bytes;
}

TEST(MessageJsonTest, SameBytesAsBoostJsonOnRandomMessages) {
  std::mt19937_64 random(20240607);
  const std::string names[] = {"trace", "Content-Type", "x\"y", "caf\xc3\xa9", "bad\xff", ""};
  for (int round = 0; round < 20000; ++round) {
    const std::string stream = round % 7 == 0 ? random_bytes(random, 8) : "orders";
    const std::string subject = round % 5 == 0 ? random_bytes(random, 12) : "orders.created";
    std::optional<std::string> key;
    if (random() % 3 != 0) key = random_bytes(random, 10);
    std::vector<std::string> header_names;
    std::vector<std::string> header_values;
    const std::size_t header_count = random() % 6;
    for (std::size_t i = 0; i < header_count; ++i) {
      header_names.push_back(random() % 4 == 0 ? random_bytes(random, 6) : names[random() % std::size(names)]);
      header_values.push_back(random_bytes(random, 8));
    }
    std::vector<HeaderView> headers;
    for (std::size_t i = 0; i < header_count; ++i) headers.push_back(HeaderView{header_names[i], header_values[i]});
    const std::string payload = random_bytes(random, 120);
    MessageView message;
    message.offset = random() >> (random() % 64);
    message.timestamp_ms = static_cast<std::int64_t>(random()) >> (random() % 64);
    message.subject = subject;
    if (key) message.key = std::string_view(*key);
    message.headers = headers;
    message.payload = payload;
    const auto partition = static_cast<std::uint32_t>(random() >> (32 + random() % 32));
    const std::string expected = boost_json_text(stream, partition, message);
    ASSERT_EQ(written_text(stream, partition, message), expected) << "round " << round;
  }
}

TEST(MessageJsonTest, PositionSameBytesAsBoostJson) {
  std::mt19937_64 random(17);
  for (int i = 0; i < 1000; ++i) {
    Position position;
    position.stream = "stream-" + std::to_string(random() % 1000) + (i % 2 ? "._x" : "");
    position.partition = static_cast<std::uint32_t>(i < 3 ? i : random());
    position.offset = i == 4 ? std::numeric_limits<Offset>::max() : random() >> (random() % 64);
    position.duplicate = i % 3 == 0;
    json::object object{{"stream", position.stream}, {"partition", position.partition}, {"offset", position.offset}};
    if (position.duplicate) object["duplicate"] = true;
    std::string written;
    append_position_json(written, position);
    ASSERT_EQ(written, json::serialize(object));
  }
}

TEST(MessageJsonTest, EveryControlByteAndBase64Payload) {
  std::string all_bytes;
  for (int byte = 0; byte < 256; ++byte) all_bytes.push_back(static_cast<char>(byte));
  std::string controls;
  for (int byte = 0; byte < 0x20; ++byte) controls.push_back(static_cast<char>(byte));
  controls += "\"\\\x7f";
  const HeaderView headers[] = {{"a", controls}, {"b", all_bytes}, {"a", "second"}, {"\xff", "dropped"}, {"b", "text"}};
  for (const std::string& payload : {std::string(), controls, all_bytes, std::string("\xc3")}) {
    MessageView message;
    message.offset = UINT64_MAX;
    message.timestamp_ms = INT64_MIN;
    message.subject = "s";
    message.key = std::string_view(all_bytes);
    message.headers = headers;
    message.payload = payload;
    const std::string text = written_text("s", 4294967295u, message);
    EXPECT_EQ(text, boost_json_text("s", 4294967295u, message));
    const json::value parsed = json::parse(text);
    if (payload == all_bytes || payload == "\xc3") {
      EXPECT_TRUE(parsed.as_object().contains("payload_base64"));
    } else {
      EXPECT_EQ(parsed.at("payload").as_string(), payload);
    }
    EXPECT_EQ(parsed.at("headers").at("a").as_string(), "second");
    EXPECT_EQ(parsed.at("headers").at("b").as_string(), "text");
    EXPECT_TRUE(parsed.at("headers_base64").as_object().contains("b"));
  }
}

// Plain text is checked 8 bytes per step: every byte value at every position of a word must
// still be found.
TEST(MessageJsonTest, EveryByteAtEveryPositionOfAWord) {
  for (int byte = 0; byte < 256; ++byte) {
    for (std::size_t position = 0; position < 17; ++position) {
      std::string payload = "abcdefghijklmnopq";
      payload[position] = static_cast<char>(byte);
      MessageView message;
      message.subject = payload;
      message.payload = payload;
      ASSERT_EQ(written_text("s", 0, message), boost_json_text("s", 0, message)) << byte << " at " << position;
    }
  }
}

}  // namespace
}  // namespace msgstore::server
