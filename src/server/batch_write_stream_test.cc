// BatchWriteStream over a real loopback connection: a Beast WebSocket client pings the server
// and sends it text while the server writes large batches of hand-built frames, so Beast's pongs
// arrive during batches. The client must read every message whole and in order (frame lengths
// across the 126 and 65536 header boundaries) and get every pong, and the close handshake must
// complete through the layer.
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <gtest/gtest.h>

#include "server/batch_write_stream.h"

namespace msgstore::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using namespace asio::experimental::awaitable_operators;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

constexpr int batch_count = 40;
constexpr int frames_per_batch = 50;
constexpr int ping_count = 200;

// Message j of batch i: its index in text, padded to a length that walks across the header
// size boundaries (125/126 and 65535/65536 bytes).
std::string message_text(int batch, int frame) {
  static const std::size_t lengths[] = {1, 125, 126, 127, 1000, 65535, 65536, 70000, 300, 40};
  const std::size_t length = lengths[(batch * frames_per_batch + frame) % std::size(lengths)];
  std::string text = std::to_string(batch) + "/" + std::to_string(frame) + ":";
  text.resize(std::max(length, text.size()), 'x');
  return text;
}

TEST(BatchWriteStreamTest, BatchesAndBeastFramesStayWholeAndOrdered) {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  const auto endpoint = acceptor.local_endpoint();
  std::vector<std::string> received;
  int pongs = 0;
  int server_reads = 0;
  bool server_done = false;
  bool client_done = false;

  auto server = [&]() -> asio::awaitable<void> {
    auto [accept_error, socket] = co_await acceptor.async_accept(use_tuple);
    EXPECT_FALSE(accept_error);
    beast::tcp_stream tcp(std::move(socket));
    websocket::stream<BatchWriteStream> ws(tcp);
    auto [handshake_error] = co_await ws.async_accept(use_tuple);
    EXPECT_FALSE(handshake_error);
    // The reader answers pings (through the layer) and counts the client's text messages.
    auto reader = [&]() -> asio::awaitable<void> {
      beast::flat_buffer buffer;
      for (;;) {
        auto [error, bytes] = co_await ws.async_read(buffer, use_tuple);
        if (error) break;
        buffer.clear();
        ++server_reads;
      }
    };
    auto writer = [&]() -> asio::awaitable<void> {
      for (int batch = 0; batch < batch_count; ++batch) {
        std::string frames;
        for (int frame = 0; frame < frames_per_batch; ++frame) {
          const std::string text = message_text(batch, frame);
          unsigned char header[websocket_frame_header_bytes_max];
          frames.append(reinterpret_cast<const char*>(header), websocket_text_frame_header(text.size(), header));
          frames += text;
        }
        EXPECT_FALSE(co_await ws.next_layer().write_batch(frames));
      }
      // The client closes once it has everything; the reader sees the close and Beast answers.
    };
    co_await (reader() && writer());
    ws.next_layer().detach();
    server_done = true;
  };

  auto client = [&]() -> asio::awaitable<void> {
    websocket::stream<beast::tcp_stream> ws(io);
    auto [connect_error] = co_await beast::get_lowest_layer(ws).async_connect(endpoint, use_tuple);
    EXPECT_FALSE(connect_error);
    auto [handshake_error] = co_await ws.async_handshake("127.0.0.1", "/", use_tuple);
    EXPECT_FALSE(handshake_error);
    ws.control_callback([&](websocket::frame_type kind, beast::string_view payload) {
      if (kind == websocket::frame_type::pong) {
        EXPECT_EQ(std::string(payload), "p" + std::to_string(pongs));  // in order, each exactly once
        ++pongs;
      }
    });
    auto reader = [&]() -> asio::awaitable<void> {
      beast::flat_buffer buffer;
      while (received.size() < static_cast<std::size_t>(batch_count * frames_per_batch)) {
        auto [error, bytes] = co_await ws.async_read(buffer, use_tuple);
        if (error) {
          ADD_FAILURE() << "client read: " << error.message();
          co_return;
        }
        received.push_back(beast::buffers_to_string(buffer.data()));
        buffer.clear();
      }
    };
    // Pings and text frames interleaved, so the server's Beast writes pongs during batches.
    auto pinger = [&]() -> asio::awaitable<void> {
      for (int ping = 0; ping < ping_count; ++ping) {
        auto [ping_error] = co_await ws.async_ping(websocket::ping_data(("p" + std::to_string(ping)).c_str()), use_tuple);
        if (ping_error) co_return;
        auto [write_error, bytes] = co_await ws.async_write(asio::buffer(std::string("{\"credit\":1}")), use_tuple);
        if (write_error) co_return;
      }
    };
    co_await (reader() && pinger());
    // Pongs still on their way arrive while the close handshake reads.
    auto [close_error] = co_await ws.async_close(websocket::close_code::normal, use_tuple);
    EXPECT_FALSE(close_error) << close_error.message();
    client_done = true;
  };

  asio::co_spawn(io, server(), asio::detached);
  asio::co_spawn(io, client(), asio::detached);
  io.run_for(std::chrono::seconds(20));  // bounded: a failure must not hang the suite
  EXPECT_TRUE(server_done);
  EXPECT_TRUE(client_done);
  ASSERT_EQ(received.size(), static_cast<std::size_t>(batch_count * frames_per_batch));
  for (int batch = 0; batch < batch_count; ++batch) {
    for (int frame = 0; frame < frames_per_batch; ++frame) {
      ASSERT_EQ(received[batch * frames_per_batch + frame], message_text(batch, frame)) << batch << "/" << frame;
    }
  }
  EXPECT_EQ(pongs, ping_count);
  EXPECT_EQ(server_reads, ping_count);
}

TEST(BatchWriteStreamTest, TextFrameHeaders) {
  unsigned char header[websocket_frame_header_bytes_max];
  ASSERT_EQ(websocket_text_frame_header(125, header), 2u);
  EXPECT_EQ(header[0], 0x81);
  EXPECT_EQ(header[1], 125);
  ASSERT_EQ(websocket_text_frame_header(126, header), 4u);
  EXPECT_EQ(header[1], 126);
  EXPECT_EQ(header[2], 0);
  EXPECT_EQ(header[3], 126);
  ASSERT_EQ(websocket_text_frame_header(65535, header), 4u);
  ASSERT_EQ(websocket_text_frame_header(65536, header), 10u);
  EXPECT_EQ(header[1], 127);
  EXPECT_EQ(header[7], 1);  // 0x10000, big-endian
  EXPECT_EQ(header[9], 0);
}

}  // namespace
}  // namespace msgstore::server
