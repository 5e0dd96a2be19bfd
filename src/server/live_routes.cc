// Live endpoints: Server-Sent Events and WebSocket, both replay-then-live over one
// broker::LiveReader per client (docs/http-api.md, "Live streaming").
//
// Both take the connection over from the HTTP session and run on its event loop until the
// client leaves, an error ends the stream, or the server shuts down. Memory per client is
// bounded by one chunk: the follower reads at most subscriber_queue_bytes_max (and
// limits::subscription_read_messages_max messages) and reads the next chunk only after the
// previous one was written to the socket (SSE) or granted credit and written (WebSocket), so a
// slow or stalled client pauses its own follower and never holds more; a write that stalls
// longer than write_timeout_ms (SSE) or a peer silent for websocket_idle_timeout_ms (WebSocket)
// ends the connection. Producers never wait for live clients.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <variant>


#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/json/serialize.hpp>

#include "base/assert.h"
#include "broker/live_reader.h"
#include "msgstore/limits.h"
#include "server/batch_write_stream.h"
#include "server/json_codec.h"
#include "server/message_json.h"
#include "server/routes.h"

namespace msgstore::server {
namespace {

using namespace boost::asio::experimental::awaitable_operators;
namespace websocket = boost::beast::websocket;
using Clock = std::chrono::steady_clock;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// A client's text frame ({"credit": N}) is tiny; anything larger is a protocol error.
constexpr std::size_t websocket_client_message_bytes_max = 4096;
// Credit a client may hold at once (the sum of its grants minus messages sent).
constexpr std::uint64_t websocket_credit_max = 1'000'000'000;
// How often a WebSocket writer with credit but no data re-checks for shutdown (the broker's
// stop also wakes it at once).
constexpr std::chrono::milliseconds websocket_wait_slice{5000};
// How often a WebSocket writer without credit re-checks for shutdown (nothing else wakes it
// but a grant; a timer per idle connection per second costs nothing measurable).
constexpr std::chrono::milliseconds websocket_credit_wait_slice{1000};

// Query parameters the live endpoints accept; any other name is an error (a typo must not
// silently start from the wrong place).
constexpr std::string_view live_parameters[] = {"offset", "time_ms", "from", "subject", "partition", "position"};

// One message as one final text frame, header and JSON appended to the chunk's buffer on the
// worker thread that read it (LiveReaderOptions::encode), so the send loop writes a whole chunk
// at once (BatchWriteStream). The JSON goes in after room for the longest header; the header
// is then written just before it and the unused room removed.
void append_websocket_text_frame(std::string& out, const std::string& stream, std::uint32_t partition,
                                 const MessageView& message) {
  const std::size_t frame_begin = out.size();
  out.append(websocket_frame_header_bytes_max, '\0');
  append_live_message_json(out, stream, partition, message);
  unsigned char header[websocket_frame_header_bytes_max];
  const std::size_t header_bytes =
      websocket_text_frame_header(out.size() - frame_begin - websocket_frame_header_bytes_max, header);
  const std::size_t unused = websocket_frame_header_bytes_max - header_bytes;
  std::memcpy(out.data() + frame_begin + unused, header, header_bytes);
  out.erase(frame_begin, unused);
}

// Decodes the start position, filters and resume position shared by SSE and WebSocket.
// `last_event_id` (the SSE header) overrides `position`, which overrides the start parameters.
Result<broker::LiveReaderOptions> parse_live_options(const RequestContext& context,
                                                     std::optional<std::string_view> last_event_id) {
  for (const auto& entry : context.query) {
    if (std::find(std::begin(live_parameters), std::end(live_parameters), entry.first) == std::end(live_parameters)) {
      return Status(ErrorCode::invalid_argument, "unknown query parameter '" + entry.first +
                                                     "' (accepted: offset, time_ms, from, subject, partition, position)");
    }
  }
  broker::LiveReaderOptions options;
  options.stream = context.parameter("stream");
  const int starts = static_cast<int>(context.query_value("offset").has_value()) +
                     static_cast<int>(context.query_value("time_ms").has_value()) +
                     static_cast<int>(context.query_value("from").has_value());
  if (starts > 1) return Status(ErrorCode::invalid_argument, "give at most one of offset, time_ms and from");
  if (context.query_value("offset")) {
    auto offset = query_unsigned(context, "offset", 0, std::numeric_limits<std::uint64_t>::max());
    if (!offset) return offset.status();
    options.start = StartPosition::from_offset(*offset);
  } else if (context.query_value("time_ms")) {
    auto time_ms = query_signed(context, "time_ms", 0);
    if (!time_ms) return time_ms.status();
    options.start = StartPosition::from_time(*time_ms);
  } else if (const auto from = context.query_value("from")) {
    if (*from == "beginning") {
      options.start = StartPosition::from_beginning();
    } else if (*from == "end") {
      options.start = StartPosition::new_only();
    } else {
      return Status(ErrorCode::invalid_argument, "query parameter from: '" + std::string(*from) + "' is not beginning or end");
    }
  } else {
    options.start = StartPosition::new_only();
  }
  if (const auto subject = context.query_value("subject")) options.subject_pattern = std::string(*subject);
  if (context.query_value("partition")) {
    auto partition = query_unsigned(context, "partition", 0, limits::partitions_per_stream_max - 1);
    if (!partition) return partition.status();
    options.partition = static_cast<std::uint32_t>(*partition);
  }
  std::optional<std::string_view> position = context.query_value("position");
  if (last_event_id && !last_event_id->empty()) position = last_event_id;
  if (position) {
    auto parsed = broker::parse_position_text(*position);
    if (!parsed) return parsed.status();
    options.resume = std::move(*parsed);
  }
  return options;
}

// The error shape on one line (error_body ends with a newline for terminals; an SSE data line
// and a WebSocket frame carry it without).
std::string error_text(const Status& error, const json::object& details) {
  std::string body = error_body(error, details);
  while (!body.empty() && body.back() == '\n') body.pop_back();
  return body;
}

json::object error_details(const broker::LiveReader* reader, const std::string& stream) {
  json::object details{{"stream", stream}};
  if (reader != nullptr) details["position"] = reader->position_text();
  return details;
}

std::size_t chunk_bytes_max(const ServerContext& server) {
  return static_cast<std::size_t>(std::max<std::uint64_t>(1, server.config().subscriber_queue_bytes_max));
}

// ---------------------------------------------------------------------------------------------
// Server-Sent Events

// Completes when the client closes its side (or sends anything: an SSE client never does).
asio::awaitable<void> watch_for_close(beast::tcp_stream& stream) {
  (void)co_await stream.socket().async_wait(asio::ip::tcp::socket::wait_read, use_tuple);
}

asio::awaitable<void> stream_events(RequestContext& context, broker::LiveReader& reader) {
  ServerContext& server = context.server;
  beast::tcp_stream& stream = context.stream;
  const auto heartbeat = std::chrono::milliseconds(std::max<std::uint32_t>(1, server.config().live_heartbeat_interval_ms));
  const auto write_timeout = std::chrono::milliseconds(server.config().write_timeout_ms);
  const auto write_text = [&](const std::string& text) -> asio::awaitable<bool> {
    stream.expires_after(write_timeout);
    auto [error, bytes] = co_await asio::async_write(stream, asio::buffer(text), use_tuple);
    co_return !error;
  };
  // Tells EventSource clients to reconnect after 1 s, and curl users that the stream is open.
  if (!co_await write_text("retry: 1000\n: position " + reader.position_text() + "\n\n")) co_return;
  std::string text;
  while (!server.shutting_down()) {
    auto chunk = co_await reader.next_chunk(limits::subscription_read_messages_max, chunk_bytes_max(server),
                                            Clock::now() + heartbeat);
    text.clear();
    if (!chunk) {
      text = "event: error\ndata: " + error_text(chunk.status(), error_details(&reader, reader.stream())) + "\n\n";
      (void)co_await write_text(text);
      co_return;
    }
    if (chunk->messages.empty()) {
      text = ": heartbeat\n\n";
    } else {
      for (const broker::LiveMessage& message : chunk->messages) {
        text += "id: ";
        text += reader.position_after(message);
        text += "\nevent: message\ndata: ";
        text += chunk->encoded_text(message);
        text += "\n\n";
      }
      server.broker().statistics().fetched_messages.fetch_add(chunk->messages.size());
      server.broker().statistics().fetched_bytes.fetch_add(chunk->payload_bytes);
    }
    // The follower reads nothing more until this write completes: the pause for slow readers.
    if (!co_await write_text(text)) co_return;
  }
}

asio::awaitable<HttpResponse> server_sent_events(RequestContext& context) {
  std::optional<std::string_view> last_event_id;
  if (const auto found = context.request.find("Last-Event-ID"); found != context.request.end()) {
    last_event_id = found->value();
  }
  auto options = parse_live_options(context, last_event_id);
  if (!options) co_return error_response(context, options.status(), {{"stream", context.parameter("stream")}});
  options->encode = [stream = options->stream](std::string& out, std::uint32_t partition, const MessageView& message) {
    append_live_message_json(out, stream, partition, message);
  };
  auto opened = co_await broker::LiveReader::open(context.server.broker(), std::move(*options));
  if (!opened) co_return error_response(context, opened.status(), {{"stream", context.parameter("stream")}});
  broker::LiveReader& reader = **opened;

  http::response<http::empty_body> head{http::status::ok, context.request.version()};
  head.set(http::field::content_type, "text/event-stream; charset=utf-8");
  head.set(http::field::cache_control, "no-cache");
  head.set("X-Accel-Buffering", "no");
  head.keep_alive(false);  // the body ends when the connection closes
  http::response_serializer<http::empty_body> serializer{head};
  context.stream.expires_after(std::chrono::milliseconds(context.server.config().write_timeout_ms));
  HttpResponse taken;
  taken.connection_taken_over = true;
  auto [error, bytes] = co_await http::async_write_header(context.stream, serializer, use_tuple);
  if (error) co_return taken;
  const Metrics::LiveSubscriber counted(context.server.metrics(), LiveProtocol::server_sent_events);
  (void)co_await (stream_events(context, reader) || watch_for_close(context.stream));
  boost::system::error_code ignored;
  context.stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  co_return taken;
}

// ---------------------------------------------------------------------------------------------
// WebSocket

// Beast over the batching layer: Beast reads and writes its own frames through it, the send
// loop writes whole chunks of frames built by append_websocket_text_frame.
using WebSocket = websocket::stream<BatchWriteStream>;

// What the reader and the writer coroutines of one WebSocket share (one event loop, no locks).
struct WebSocketState {
  explicit WebSocketState(const asio::any_io_executor& executor) : wake(executor) {}
  std::uint64_t credit = 0;
  bool peer_gone = false;            // the reader ended: closed, timed out or failed
  std::optional<Status> protocol_error;  // the client sent something invalid
  asio::steady_timer wake;           // cancelled by the reader to wake a waiting writer
};

// The close code for an error: 4000 + its HTTP status (4400 bad request, 4404 unknown stream...).
websocket::close_reason close_reason_for(const Status& error) {
  return websocket::close_reason(static_cast<websocket::close_code>(4000 + static_cast<unsigned>(http_status_for(error.code()))),
                                 std::string(error_code_name(error.code())));
}

asio::awaitable<void> websocket_reader(WebSocket& socket, WebSocketState& state) {
  beast::flat_buffer buffer;
  for (;;) {
    buffer.clear();
    auto [error, bytes] = co_await socket.async_read(buffer, use_tuple);
    if (error) break;  // closed by the peer, idle timeout (no pong), or shutdown
    if (state.protocol_error) continue;  // already failing: wait for the close handshake
    Result<std::uint64_t> credit =
        socket.got_binary()
            ? Result<std::uint64_t>(Status(ErrorCode::invalid_argument, "binary frames are not accepted; send {\"credit\": N}"))
            : apply_credit_grant(beast::buffers_to_string(buffer.data()), state.credit, websocket_credit_max);
    if (!credit) {
      state.protocol_error = credit.status();
      state.wake.cancel();
      // Keep reading: the writer sends the error and the close frame, and the close handshake
      // completes this read.
      continue;
    }
    state.credit = *credit;
    state.wake.cancel();
  }
  state.peer_gone = true;
  state.wake.cancel();
}

asio::awaitable<void> websocket_send_loop(RequestContext& context, WebSocket& socket, WebSocketState& state,
                                          broker::LiveReader* reader, std::optional<Status> open_error) {
  ServerContext& server = context.server;
  const auto close_with = [&](const Status& error) -> asio::awaitable<void> {
    socket.text(true);
    const std::string body = error_text(error, error_details(reader, context.parameter("stream")));
    auto [write_error, bytes] = co_await socket.async_write(asio::buffer(body), use_tuple);
    if (!write_error) (void)co_await socket.async_close(close_reason_for(error), use_tuple);
  };
  if (open_error) {
    co_await close_with(*open_error);
    co_return;
  }
  for (;;) {
    if (state.protocol_error && !state.peer_gone) {
      co_await close_with(*state.protocol_error);
      co_return;
    }
    if (state.peer_gone) co_return;
    if (server.shutting_down()) {
      (void)co_await socket.async_close(websocket::close_reason(websocket::close_code::going_away, "server shutting down"),
                                        use_tuple);
      co_return;
    }
    if (state.credit == 0) {
      // Nothing may be sent: wait for a grant (the reader cancels the timer) or re-check
      // shutdown after a while. The follower reads nothing meanwhile.
      state.wake.expires_after(websocket_credit_wait_slice);
      (void)co_await state.wake.async_wait(use_tuple);
      continue;
    }
    const std::size_t messages_max =
        static_cast<std::size_t>(std::min<std::uint64_t>(state.credit, limits::subscription_read_messages_max));
    // The read is never raced with the wake-up timer: its messages are consumed from the
    // follower's cursors when it returns, so it must run to completion and be sent.
    auto chunk = co_await reader->read_available(messages_max, chunk_bytes_max(server));
    if (!chunk) {
      co_await close_with(chunk.status());
      co_return;
    }
    if (chunk->messages.empty()) {
      if (state.peer_gone || state.protocol_error) continue;  // news that came during the read
      // At the end of the log: wait for data, or for the reader's news (credit, errors, close).
      state.wake.expires_at(Clock::time_point::max());
      (void)co_await (reader->wait_for_data(Clock::now() + websocket_wait_slice) || state.wake.async_wait(use_tuple));
      continue;
    }
    // One frame per message, built on the worker; the whole chunk goes out in one write. The
    // chunk holds at most `credit` messages (messages_max above), so credit never goes negative.
    MS_ASSERT(chunk->messages.size() <= state.credit);
    if (co_await socket.next_layer().write_batch(chunk->encoded)) co_return;
    state.credit -= chunk->messages.size();
    server.broker().statistics().fetched_messages.fetch_add(chunk->messages.size());
    server.broker().statistics().fetched_bytes.fetch_add(chunk->payload_bytes);
  }
}

// The writer: the send loop, then (whatever ended it) the socket is closed if the reader still
// waits on it, so the reader ends too and nothing outlives the handler.
asio::awaitable<void> websocket_writer(RequestContext& context, WebSocket& socket, WebSocketState& state,
                                       broker::LiveReader* reader, std::optional<Status> open_error) {
  co_await websocket_send_loop(context, socket, state, reader, std::move(open_error));
  if (!state.peer_gone) {
    boost::system::error_code ignored;
    beast::get_lowest_layer(socket).socket().close(ignored);
  }
}

asio::awaitable<HttpResponse> websocket_stream(RequestContext& context) {
  if (!websocket::is_upgrade(context.request)) {
    auto response = error_response(context,
                                   Status(ErrorCode::invalid_argument,
                                          "this endpoint speaks WebSocket: send an Upgrade: websocket request"),
                                   {}, http::status::upgrade_required);
    response.message.set(http::field::upgrade, "websocket");
    co_return response;
  }
  // Parameter and stream errors are reported after the upgrade, as a JSON error frame and a
  // close frame, because WebSocket clients (browsers) cannot read a refused handshake's body.
  std::optional<Status> open_error;
  std::unique_ptr<broker::LiveReader> reader;
  auto options = parse_live_options(context, std::nullopt);
  if (!options) {
    open_error = options.status();
  } else {
    options->encode = [stream = options->stream](std::string& out, std::uint32_t partition, const MessageView& message) {
      append_websocket_text_frame(out, stream, partition, message);
    };
    auto opened = co_await broker::LiveReader::open(context.server.broker(), std::move(*options));
    if (opened) {
      reader = std::move(*opened);
    } else {
      open_error = opened.status();
    }
  }

  HttpResponse taken;
  taken.connection_taken_over = true;
  context.stream.expires_never();  // the WebSocket's own timeouts apply from here
  WebSocket socket(context.stream);
  websocket::stream_base::timeout timeouts;
  timeouts.handshake_timeout = std::chrono::milliseconds(context.server.config().write_timeout_ms);
  // A ping goes out after half of this with nothing received; no frame (or pong) within it
  // closes the connection (half-open or stalled peers).
  timeouts.idle_timeout = std::chrono::milliseconds(std::max<std::uint32_t>(2, context.server.config().websocket_idle_timeout_ms));
  timeouts.keep_alive_pings = true;
  socket.set_option(timeouts);
  socket.read_message_max(websocket_client_message_bytes_max);
  socket.auto_fragment(false);
  // The send loop's frames are built by hand, uncompressed: no permessage-deflate.
  websocket::permessage_deflate no_compression;
  no_compression.server_enable = false;
  socket.set_option(no_compression);
  socket.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& response) { response.set(http::field::server, "msgstore"); }));
  auto [error] = co_await socket.async_accept(context.request, use_tuple);
  if (error) co_return taken;

  WebSocketState state(co_await asio::this_coro::executor);
  std::optional<Metrics::LiveSubscriber> counted;
  if (reader) counted.emplace(context.server.metrics(), LiveProtocol::websocket);
  co_await (websocket_reader(socket, state) && websocket_writer(context, socket, state, reader.get(), open_error));
  socket.next_layer().detach();  // Beast's late operations must not reach the session's stream
  co_return taken;
}

}  // namespace

void register_live_routes(Router& router, ServerContext& /*context*/) {
  router.add(http::verb::get, "/v1/streams/{stream}/events", server_sent_events);
  router.add(http::verb::get, "/v1/streams/{stream}/ws", websocket_stream);
}

}  // namespace msgstore::server
