// UTF-8 validation and base64 are exercised through the CLI's JSON tests too
// (src/cli/json_test.cc); these cover the decoder, which only the HTTP server uses.
#include "base/text_encoding.h"

#include <gtest/gtest.h>

namespace msgstore {
namespace {

TEST(TextEncodingTest, Base64DecodeIsStrict) {
  EXPECT_EQ(base64_decode(""), "");
  EXPECT_EQ(base64_decode("Zm9vYmFy"), "foobar");
  EXPECT_EQ(base64_decode("Zm9vYg=="), "foob");
  EXPECT_EQ(base64_decode("Zm9vYg"), "foob");  // unpadded
  EXPECT_EQ(base64_decode("Zm9vYmE="), "fooba");
  EXPECT_EQ(base64_decode("AAH//go="), std::string("\x00\x01\xFF\xFE\n", 5));
  EXPECT_FALSE(base64_decode("Zm9vY").has_value());    // a lone 6-bit group
  EXPECT_FALSE(base64_decode("Zm9vYh==").has_value());  // non-zero trailing bits
  EXPECT_FALSE(base64_decode("Zm9v Yg==").has_value());
  EXPECT_FALSE(base64_decode("Zm9v-_==").has_value());  // URL-safe alphabet
  EXPECT_FALSE(base64_decode("Zg=").has_value());       // padded but not a multiple of 4
  EXPECT_FALSE(base64_decode("=").has_value());
}

TEST(TextEncodingTest, Base64RoundTripsEveryByte) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  for (std::size_t length = 0; length <= bytes.size(); length += 37) {
    const std::string prefix = bytes.substr(0, length);
    EXPECT_EQ(base64_decode(base64_encode(prefix)), prefix) << length;
  }
}

}  // namespace
}  // namespace msgstore

namespace msgstore {
namespace {

TEST(TextEncodingTest, ToValidUtf8ReplacesEachBadByte) {
  EXPECT_EQ(to_valid_utf8("plain caf\xC3\xA9"), "plain caf\xC3\xA9");
  EXPECT_EQ(to_valid_utf8("/v1/s\x88\x8dx"), "/v1/s\xEF\xBF\xBD\xEF\xBF\xBDx");
  EXPECT_EQ(to_valid_utf8("\xC3"), "\xEF\xBF\xBD");  // truncated sequence
  EXPECT_EQ(to_valid_utf8(std::string_view("a\0b", 3)), std::string("a\0b", 3));
  EXPECT_TRUE(is_valid_utf8(to_valid_utf8("\xFF\xFE\xED\xA0\x80\xF4\x90\x80\x80")));
}

}  // namespace
}  // namespace msgstore
