#include "cli/json.h"

#include <gtest/gtest.h>

namespace msgstore::cli {
namespace {

TEST(JsonTest, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(json_string("plain"), "\"plain\"");
  EXPECT_EQ(json_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_string("line\nnext\ttab\rcr"), "\"line\\nnext\\ttab\\rcr\"");
  EXPECT_EQ(json_string(std::string("\x00\x01\x1f\x7f", 4)), "\"\\u0000\\u0001\\u001f\\u007f\"");
  EXPECT_EQ(json_string("\b\f"), "\"\\b\\f\"");
}

TEST(JsonTest, KeepsValidUtf8AndReplacesInvalidBytes) {
  EXPECT_EQ(json_string("gr\xC3\xBC\xC3\x9F" "e \xE2\x9C\x93 \xF0\x9F\x98\x80"), "\"gr\xC3\xBC\xC3\x9F" "e \xE2\x9C\x93 \xF0\x9F\x98\x80\"");
  EXPECT_EQ(json_string("a\xFF" "b"), "\"a\\ufffdb\"");
  EXPECT_EQ(json_string("\xC3"), "\"\\ufffd\"");  // truncated sequence
}

TEST(JsonTest, Utf8Validation) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("ascii"));
  EXPECT_TRUE(is_valid_utf8("\xC3\xA9"));
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));      // U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));             // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xE0\x80\xAF"));         // overlong
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));         // surrogate U+D800
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));     // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\x80"));                 // lone continuation
  EXPECT_FALSE(is_valid_utf8("\xE2\x9C"));             // truncated
  EXPECT_FALSE(is_valid_utf8(std::string("\x00\xFF", 2)));
}

TEST(JsonTest, Base64MatchesRfc4648Vectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode(std::string("\x00\x01\xFF\xFE\n", 5)), "AAH//go=");
}

TEST(JsonTest, ObjectBuilder) {
  EXPECT_EQ(JsonObject().finish(), "{}");
  EXPECT_EQ(JsonObject()
                .add("s", "x\"y")
                .add("u", std::uint64_t{18446744073709551615ull})
                .add("i", std::int64_t{-5})
                .add("b", true)
                .add_null("n")
                .add_raw("r", "[1,2]")
                .finish(),
            "{\"s\":\"x\\\"y\",\"u\":18446744073709551615,\"i\":-5,\"b\":true,\"n\":null,\"r\":[1,2]}");
}

}  // namespace
}  // namespace msgstore::cli
