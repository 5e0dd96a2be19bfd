#include "server/batch_write_stream.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace msgstore::server {

std::size_t websocket_text_frame_header(std::uint64_t payload_bytes, unsigned char* header) {
  std::size_t length = 0;
  header[length++] = 0x81;  // FIN, opcode 1 (text)
  if (payload_bytes < 126) {
    header[length++] = static_cast<unsigned char>(payload_bytes);
  } else if (payload_bytes <= 0xFFFF) {
    header[length++] = 126;
    header[length++] = static_cast<unsigned char>(payload_bytes >> 8);
    header[length++] = static_cast<unsigned char>(payload_bytes);
  } else {
    header[length++] = 127;
    for (int shift = 56; shift >= 0; shift -= 8) header[length++] = static_cast<unsigned char>(payload_bytes >> shift);
  }
  return length;
}

boost::asio::awaitable<boost::system::error_code> BatchWriteStream::write_batch(std::string_view frames) {
  constexpr auto use_tuple = boost::asio::as_tuple(boost::asio::use_awaitable);
  const std::shared_ptr<State> state = state_;
  if (state->detached) co_return boost::asio::error::operation_aborted;
  // From here on Beast's writes queue behind the batch.
  state->batch_in_progress = true;
  // A Beast frame already on its way to the socket goes first (it is written whole; see
  // start_write). If the peer stalls, Beast's idle timeout closes the socket and ends it.
  while (state->straight_through_writes > 0) {
    state->straight_through_done.expires_at(boost::asio::steady_timer::time_point::max());
    (void)co_await state->straight_through_done.async_wait(use_tuple);
  }
  auto [error, bytes] = co_await boost::asio::async_write(*next_, boost::asio::buffer(frames.data(), frames.size()), use_tuple);
  // Beast's frames that came meanwhile, in order, before Beast gets the socket back.
  while (!error && !state->queued.empty() && !state->detached) {
    state->sending.clear();
    state->sending.swap(state->queued);
    auto [queued_error, queued_bytes] = co_await boost::asio::async_write(*next_, boost::asio::buffer(state->sending), use_tuple);
    error = queued_error;
  }
  if (!error && state->detached) error = boost::asio::error::operation_aborted;
  state->queued.clear();
  state->batch_in_progress = false;
  co_return error;
}

void teardown(boost::beast::role_type role, BatchWriteStream& stream, boost::system::error_code& error) {
  using boost::beast::teardown;
  teardown(role, stream.next_layer(), error);
}

}  // namespace msgstore::server
