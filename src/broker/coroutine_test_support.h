// Test support: run one coroutine to completion on a fresh io_context and return its value.
// (broker_test.cc has the same helper inline; it can switch to this one.)
#pragma once

#include <optional>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

namespace msgstore::broker::testing {

template <typename T>
boost::asio::awaitable<void> capture_result(boost::asio::awaitable<T> coroutine, std::optional<T>& value) {
  value.emplace(co_await std::move(coroutine));
}

// co_spawn's completion needs a default-constructible value; Status and Result<T> are not,
// hence the std::optional.
template <typename T>
T run_to_completion(boost::asio::awaitable<T> coroutine) {
  boost::asio::io_context loop;
  std::optional<T> value;
  boost::asio::co_spawn(loop, capture_result(std::move(coroutine), value), boost::asio::detached);
  loop.run();
  return std::move(*value);
}

}  // namespace msgstore::broker::testing
