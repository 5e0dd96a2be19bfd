// Always-on assertions for programmer errors and broken invariants (never for bad input,
// which gets a Status). A failed assertion prints where and why, then aborts.
#pragma once

namespace msgstore::base {
[[noreturn]] void assertion_failed(const char* expression, const char* file, int line, const char* message);
}

#define MS_ASSERT(condition)                                                                \
  do {                                                                                      \
    if (!(condition)) [[unlikely]]                                                          \
      ::msgstore::base::assertion_failed(#condition, __FILE__, __LINE__, "");               \
  } while (false)

#define MS_ASSERT_MESSAGE(condition, message)                                               \
  do {                                                                                      \
    if (!(condition)) [[unlikely]]                                                          \
      ::msgstore::base::assertion_failed(#condition, __FILE__, __LINE__, (message));        \
  } while (false)
