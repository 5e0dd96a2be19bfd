// server/batch_write_stream.h: the stream layer under a WebSocket that lets the live send loop
// write a whole chunk of ready-made frames with one write.
//
// Beast writes one frame per async_write, each a composed operation and a send() of its own:
// about 5,000 instructions and a system call per 100 B message in a replay. The live endpoint
// instead builds each message's frame on the worker thread (one text frame per message, the
// documented protocol) and hands the chunk to write_batch(): one async_write for up to
// limits::subscription_read_messages_max frames.
//
// Beast still owns the connection: it reads through this layer, and writes its own frames
// through it (pongs and keep-alive pings from its reader, close frames, error messages).
// Frames never interleave:
// - With no batch in progress, Beast's writes go straight through to the TCP stream (one full
//   write per call, so a Beast frame is never split) and complete when the bytes are written.
// - A batch first waits for a Beast write that went straight through to finish; from the
//   moment write_batch() is called until the batch and everything queued behind it are
//   written, Beast's writes are appended to a queue and reported complete at once (Beast sees
//   a control frame as sent; it is written, in order, right after the batch).
// So the bytes on the wire are whole frames, in the order they were handed over.
//
// Lifetime: the layer is Beast's next layer (held in Beast's stream). Its state is shared with
// the completion handlers of straight-through writes, so a late completion never touches a
// destroyed layer; detach() (when the WebSocket handler ends) makes later writes fail without
// touching the TCP stream, which the HTTP session may destroy next.
//
// Thread safety: one event loop (the connection's), like the streams under it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/teardown.hpp>

namespace msgstore::server {

// A server-to-client WebSocket frame header (RFC 6455 section 5.2: FIN, opcode, unmasked
// length) is at most this long: 2 bytes, 2 + 2 from 126 bytes of payload, 2 + 8 from 65536.
inline constexpr std::size_t websocket_frame_header_bytes_max = 10;

// Writes the header of a final, unmasked text frame of `payload_bytes` to `header` (room for
// websocket_frame_header_bytes_max) and returns its length. Server frames are never masked, and
// the live endpoint never negotiates permessage-deflate, so header + payload is the frame.
std::size_t websocket_text_frame_header(std::uint64_t payload_bytes, unsigned char* header);

class BatchWriteStream {
 public:
  using next_layer_type = boost::beast::tcp_stream;
  using executor_type = next_layer_type::executor_type;

  explicit BatchWriteStream(next_layer_type& next) : next_(&next), state_(std::make_shared<State>(next.get_executor())) {}

  executor_type get_executor() noexcept { return next_->get_executor(); }
  next_layer_type& next_layer() noexcept { return *next_; }
  const next_layer_type& next_layer() const noexcept { return *next_; }

  template <typename MutableBuffers, typename ReadToken>
  auto async_read_some(const MutableBuffers& buffers, ReadToken&& token) {
    return next_->async_read_some(buffers, std::forward<ReadToken>(token));
  }

  template <typename ConstBuffers, typename WriteToken>
  auto async_write_some(const ConstBuffers& buffers, WriteToken&& token) {
    return boost::asio::async_initiate<WriteToken, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& data) { start_write(std::move(handler), data); }, token, buffers);
  }

  // Writes `frames` (whole WebSocket frames) with one write, ordered with Beast's own writes as
  // described above. At most one write_batch at a time; `frames` must stay valid until it
  // completes. Returns the write's error (the connection is then unusable).
  boost::asio::awaitable<boost::system::error_code> write_batch(std::string_view frames);

  // No write reaches the TCP stream after this (they fail with operation_aborted).
  void detach() { state_->detached = true; }

 private:
  struct State {
    explicit State(const executor_type& executor) : straight_through_done(executor) {}
    bool detached = false;
    bool batch_in_progress = false;
    std::size_t straight_through_writes = 0;  // Beast writes on the TCP stream now
    boost::asio::steady_timer straight_through_done;  // cancelled when the count drops to 0
    std::string queued;   // Beast's frames that arrived during a batch, in order
    std::string sending;  // the queued frames being written
  };

  template <typename Handler, typename ConstBuffers>
  void start_write(Handler handler, const ConstBuffers& buffers) {
    State& state = *state_;
    const std::size_t size = boost::asio::buffer_size(buffers);
    if (state.detached) {
      boost::asio::post(get_executor(), boost::asio::append(std::move(handler),
                                                            boost::system::error_code(boost::asio::error::operation_aborted),
                                                            std::size_t{0}));
      return;
    }
    if (state.batch_in_progress) {
      for (auto buffer = boost::asio::buffer_sequence_begin(buffers); buffer != boost::asio::buffer_sequence_end(buffers);
           ++buffer) {
        const boost::asio::const_buffer bytes(*buffer);
        state.queued.append(static_cast<const char*>(bytes.data()), bytes.size());
      }
      boost::asio::post(get_executor(), boost::asio::append(std::move(handler), boost::system::error_code(), size));
      return;
    }
    ++state.straight_through_writes;
    boost::asio::async_write(*next_, buffers,
                             [shared = state_, handler = std::move(handler)](boost::system::error_code error,
                                                                             std::size_t bytes) mutable {
                               if (--shared->straight_through_writes == 0) shared->straight_through_done.cancel();
                               std::move(handler)(error, bytes);
                             });
  }

  next_layer_type* next_;
  std::shared_ptr<State> state_;
};

// Beast's close handshake ends with a teardown of the layer under the WebSocket: the TCP one's.
void teardown(boost::beast::role_type role, BatchWriteStream& stream, boost::system::error_code& error);

template <typename TeardownHandler>
void async_teardown(boost::beast::role_type role, BatchWriteStream& stream, TeardownHandler&& handler) {
  using boost::beast::async_teardown;
  async_teardown(role, stream.next_layer(), std::forward<TeardownHandler>(handler));
}

}  // namespace msgstore::server
