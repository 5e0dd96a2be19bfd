#include "cli/server_url.h"

#include <gtest/gtest.h>

namespace msgstore::cli {
namespace {

TEST(ServerUrlTest, AcceptsHostAndPort) {
  auto url = parse_server_url("http://127.0.0.1:7480");
  ASSERT_TRUE(url) << url.status().to_string();
  EXPECT_EQ(url->host, "127.0.0.1");
  EXPECT_EQ(url->port, 7480);
  url = parse_server_url("HTTP://localhost/");
  ASSERT_TRUE(url) << url.status().to_string();
  EXPECT_EQ(url->host, "localhost");
  EXPECT_EQ(url->port, 80);
  url = parse_server_url("http://[::1]:9000");
  ASSERT_TRUE(url) << url.status().to_string();
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, 9000);
}

TEST(ServerUrlTest, RefusesHttpsAndMalformedUrls) {
  auto https = parse_server_url("https://127.0.0.1:7480");
  ASSERT_FALSE(https);
  EXPECT_EQ(https.status().code(), ErrorCode::invalid_argument);
  EXPECT_NE(https.status().message().find("https is not supported"), std::string::npos);
  for (const char* bad : {"127.0.0.1:7480", "ftp://host", "http://", "http://:80", "http://host:", "http://host:0",
                          "http://host:65536", "http://host:12x", "http://host/v1", "http://host?x=1", "http://[::1",
                          "http://[::1]x", "http://user@host"}) {
    auto url = parse_server_url(bad);
    EXPECT_FALSE(url) << bad;
    if (!url) {
      EXPECT_EQ(url.status().code(), ErrorCode::invalid_argument) << bad;
    }
  }
}

}  // namespace
}  // namespace msgstore::cli
