// Unit tests of the server's pure parts: configuration, router, codec, error mapping.
#include <gtest/gtest.h>

#include "server/config.h"
#include "server/http.h"
#include "server/router.h"

namespace msgstore::server {
namespace {

TEST(ServerConfigTest, Placeholder) { EXPECT_TRUE(validate_server_config(ServerConfig{}).is_ok()); }

}  // namespace
}  // namespace msgstore::server
