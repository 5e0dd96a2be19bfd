#include "base/assert.h"

#include <cstdio>
#include <cstdlib>

namespace msgstore::base {

void assertion_failed(const char* expression, const char* file, int line, const char* message) {
  std::fprintf(stderr, "msgstore: assertion failed: %s at %s:%d %s\n", expression, file, line, message);
  std::fflush(stderr);
  std::abort();
}

}  // namespace msgstore::base
