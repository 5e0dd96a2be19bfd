#include "cli/remote_backend.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "base/subject.h"
#include "base/text_encoding.h"
#include "cli/json.h"
#include "server/json_codec.h"

namespace msgstore::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

// A request whose answer does not start within this long fails with timed_out (a server
// answers ordinary requests at once; long polls are not used by the client).
constexpr int response_timeout_ms = 60'000;
// The largest response body accepted (a read page is at most 64 MiB of messages, as JSON).
constexpr std::uint64_t response_body_bytes_max = 512ull * 1024 * 1024;
// Messages per read request (the server's default page).
constexpr std::size_t read_page_messages = 1000;
// How long follow waits on the event stream socket before asking stop_wait again.
constexpr int follow_poll_interval_ms = 50;
constexpr std::size_t event_stream_read_bytes = 64 * 1024;

std::string describe_error(const boost::system::error_code& error) {
  return error.message();
}

ErrorCode error_code_from_name(std::string_view name) {
  for (std::uint16_t value = 1; value <= static_cast<std::uint16_t>(ErrorCode::expected_offset_mismatch); ++value) {
    const auto code = static_cast<ErrorCode>(value);
    if (name == error_code_name(code)) return code;
  }
  return ErrorCode::internal_error;
}

// The server's error shape as a Status of the same code (with the actual offset of a failed
// conditional append), or a description of an answer that is not that shape.
Status error_from_reply(unsigned status, std::string_view body) {
  boost::system::error_code parse_error;
  const json::value value = json::parse(body, parse_error);
  const json::object* outer = parse_error ? nullptr : value.if_object();
  const json::value* error = outer != nullptr ? outer->if_contains("error") : nullptr;
  if (error != nullptr && error->is_object() && error->as_object().contains("code") && error->at("code").is_string()) {
    const json::object& fields = error->as_object();
    const std::string_view name = fields.at("code").as_string();
    std::string message = fields.contains("message") && fields.at("message").is_string()
                              ? std::string(fields.at("message").as_string())
                              : "HTTP " + std::to_string(status);
    const ErrorCode code = error_code_from_name(name);
    if (code == ErrorCode::internal_error && name != "internal_error") message = std::string(name) + ": " + message;
    if (const json::value* details = fields.if_contains("details"); details != nullptr && details->is_object()) {
      if (const json::value* actual = details->as_object().if_contains("actual_offset")) {
        if (actual->is_string() && actual->as_string() == "empty") return Status(code, message, expected_offset_empty);
        if (actual->is_uint64()) return Status(code, message, actual->as_uint64());
        if (actual->is_int64() && actual->as_int64() >= 0) return Status(code, message, static_cast<std::uint64_t>(actual->as_int64()));
      }
    }
    return Status(code, message);
  }
  std::string excerpt(body.substr(0, 200));
  return Status(ErrorCode::io_error, "the server answered HTTP " + std::to_string(status) +
                                         " without a msgstore error body: '" + excerpt + "'");
}

Status unexpected_answer(std::string_view what) {
  return Status(ErrorCode::io_error, "unexpected answer from the server: " + std::string(what));
}

// Characters other than unreserved ones are %XX-encoded (subjects carry '>' and '*').
std::string percent_encode(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string encoded;
  for (const char character : text) {
    const auto byte = static_cast<unsigned char>(character);
    if ((byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z') || (byte >= '0' && byte <= '9') || byte == '-' ||
        byte == '.' || byte == '_' || byte == '~') {
      encoded += character;
    } else {
      encoded += '%';
      encoded += hex[byte >> 4];
      encoded += hex[byte & 0x0f];
    }
  }
  return encoded;
}

std::string stream_path(std::string_view stream) { return "/v1/streams/" + percent_encode(stream); }

// Reading answers: typed fields of a JSON object, each failing with a message naming it.
Result<std::uint64_t> unsigned_field(const json::object& object, std::string_view name) {
  const json::value* value = object.if_contains(name);
  if (value != nullptr && value->is_uint64()) return value->as_uint64();
  if (value != nullptr && value->is_int64() && value->as_int64() >= 0) return static_cast<std::uint64_t>(value->as_int64());
  return unexpected_answer("field \"" + std::string(name) + "\" is not a non-negative integer");
}

Result<std::int64_t> signed_field(const json::object& object, std::string_view name) {
  const json::value* value = object.if_contains(name);
  if (value != nullptr && value->is_int64()) return value->as_int64();
  if (value != nullptr && value->is_uint64() && value->as_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
    return static_cast<std::int64_t>(value->as_uint64());
  }
  return unexpected_answer("field \"" + std::string(name) + "\" is not an integer");
}

Result<std::string> bytes_field(const json::object& object, std::string_view text_name, std::string_view base64_name,
                                bool* present) {
  *present = true;
  if (const json::value* text = object.if_contains(text_name); text != nullptr && text->is_string()) {
    return std::string(text->as_string());
  }
  if (const json::value* encoded = object.if_contains(base64_name); encoded != nullptr && encoded->is_string()) {
    auto bytes = base64_decode(encoded->as_string());
    if (!bytes) return unexpected_answer("field \"" + std::string(base64_name) + "\" is not base64");
    return std::move(*bytes);
  }
  *present = false;
  return std::string();
}

// A message of a read page, an event or a query answer, owning its bytes, viewable as the
// MessageView the local commands print.
struct ReceivedMessage {
  std::string stream;
  std::uint32_t partition = 0;
  Message message;
  std::vector<HeaderView> header_views;

  MessageView view() { return view_of(message, header_views); }
};

// {"stream"?,"partition"?,"offset","timestamp_ms","subject","key"|"key_base64","headers",
//  "headers_base64"?,"payload"|"payload_base64"} (server/json_codec.h message_to_json).
Result<ReceivedMessage> decode_message(const json::value& value, std::string_view default_stream,
                                       std::uint32_t default_partition) {
  if (!value.is_object()) return unexpected_answer("a message is not a JSON object");
  const json::object& object = value.as_object();
  ReceivedMessage received;
  received.stream = std::string(default_stream);
  received.partition = default_partition;
  if (const json::value* stream = object.if_contains("stream"); stream != nullptr && stream->is_string()) {
    received.stream = std::string(stream->as_string());
  }
  if (object.contains("partition")) {
    auto partition = unsigned_field(object, "partition");
    if (!partition) return partition.status();
    received.partition = static_cast<std::uint32_t>(*partition);
  }
  auto offset = unsigned_field(object, "offset");
  if (!offset) return offset.status();
  received.message.offset = *offset;
  auto timestamp_ms = signed_field(object, "timestamp_ms");
  if (!timestamp_ms) return timestamp_ms.status();
  received.message.timestamp_ms = *timestamp_ms;
  if (const json::value* subject = object.if_contains("subject"); subject != nullptr && subject->is_string()) {
    received.message.subject = std::string(subject->as_string());
  }
  bool present = false;
  auto key = bytes_field(object, "key", "key_base64", &present);
  if (!key) return key.status();
  if (present) received.message.key = std::move(*key);
  for (const char* group : {"headers", "headers_base64"}) {
    const json::value* headers = object.if_contains(group);
    if (headers == nullptr) continue;
    if (!headers->is_object()) return unexpected_answer(std::string("\"") + group + "\" is not an object");
    for (const auto& header : headers->as_object()) {
      if (!header.value().is_string()) return unexpected_answer("a header value is not a string");
      std::string header_value(header.value().as_string());
      if (std::string_view(group) == "headers_base64") {
        auto decoded = base64_decode(header_value);
        if (!decoded) return unexpected_answer("a headers_base64 value is not base64");
        header_value = std::move(*decoded);
      }
      received.message.headers.push_back({std::string(header.key()), std::move(header_value)});
    }
  }
  auto payload = bytes_field(object, "payload", "payload_base64", &present);
  if (!payload) return payload.status();
  received.message.payload = std::move(*payload);
  return received;
}

// A stream configuration as the server reports it, decoded by the server's own decoder, and
// the names of the fields it carried.
Status decode_config(const json::value& value, StreamConfig& config, StreamConfigFields* fields) {
  if (!value.is_object()) return unexpected_answer("a stream configuration is not a JSON object");
  Status applied = server::apply_stream_config_json(value, config, false);
  if (!applied.is_ok()) return unexpected_answer(applied.message());
  if (fields != nullptr) {
    std::vector<std::string> names;
    for (const auto& field : value.as_object()) names.emplace_back(field.key());
    *fields = std::move(names);
  }
  return Status::ok();
}

Result<StreamInfo> decode_stream_info(const json::value& value, StreamConfigFields* fields) {
  const json::object* object = value.if_object();
  if (object == nullptr || !object->contains("config")) return unexpected_answer("a stream description has no \"config\"");
  StreamInfo info;
  MSGSTORE_RETURN_IF_ERROR(decode_config(object->at("config"), info.config, fields));
  auto bytes = unsigned_field(*object, "bytes");
  if (!bytes) return bytes.status();
  info.bytes = *bytes;
  auto messages = unsigned_field(*object, "messages");
  if (!messages) return messages.status();
  info.messages = *messages;
  const json::value* partitions = object->if_contains("partitions");
  if (partitions == nullptr || !partitions->is_array()) return unexpected_answer("a stream description has no \"partitions\"");
  for (const json::value& item : partitions->as_array()) {
    const json::object* fields_of_partition = item.if_object();
    if (fields_of_partition == nullptr) return unexpected_answer("a partition is not a JSON object");
    PartitionInfo partition;
    const auto read = [&](std::string_view name, auto& out) -> Status {
      auto number = unsigned_field(*fields_of_partition, name);
      if (!number) return number.status();
      out = static_cast<std::remove_reference_t<decltype(out)>>(*number);
      return Status::ok();
    };
    MSGSTORE_RETURN_IF_ERROR(read("partition", partition.partition));
    MSGSTORE_RETURN_IF_ERROR(read("first_offset", partition.first_offset));
    MSGSTORE_RETURN_IF_ERROR(read("next_offset", partition.next_offset));
    MSGSTORE_RETURN_IF_ERROR(read("bytes", partition.bytes));
    MSGSTORE_RETURN_IF_ERROR(read("messages", partition.messages));
    MSGSTORE_RETURN_IF_ERROR(read("segments", partition.segments));
    auto first_time = signed_field(*fields_of_partition, "first_timestamp_ms");
    if (!first_time) return first_time.status();
    partition.first_timestamp_ms = *first_time;
    auto last_time = signed_field(*fields_of_partition, "last_timestamp_ms");
    if (!last_time) return last_time.status();
    partition.last_timestamp_ms = *last_time;
    if (const json::value* damage = fields_of_partition->if_contains("damage"); damage != nullptr && damage->is_array()) {
      for (const json::value& problem : damage->as_array()) {
        if (problem.is_string()) partition.damage.emplace_back(problem.as_string());
      }
    }
    info.partitions.push_back(std::move(partition));
  }
  return info;
}

// One message as a batch line: {"subject","key"|"key_base64","headers","payload"|"payload_base64","timestamp_ms"}.
Result<std::string> batch_line(const OutgoingMessage& message) {
  JsonObject object;
  object.add("subject", message.subject);
  if (message.key) {
    if (is_valid_utf8(*message.key)) {
      object.add("key", *message.key);
    } else {
      object.add("key_base64", base64_encode(*message.key));
    }
  }
  std::string headers = "{";
  for (const HeaderView& header : message.headers) {
    if (!is_valid_utf8(header.name) || !is_valid_utf8(header.value)) {
      return Status(ErrorCode::invalid_argument, "header '" + std::string(header.name) +
                                                     "': the HTTP API takes UTF-8 header names and values only");
    }
    if (headers.size() > 1) headers += ',';
    append_json_string(headers, header.name);
    headers += ':';
    append_json_string(headers, header.value);
  }
  object.add_raw("headers", headers + "}");
  if (is_valid_utf8(message.payload)) {
    object.add("payload", message.payload);
  } else {
    object.add("payload_base64", base64_encode(message.payload));
  }
  if (message.timestamp_ms != timestamp_now) object.add("timestamp_ms", std::int64_t{message.timestamp_ms});
  return object.finish();
}

bool has_policies(const OutgoingMessage& message) {
  return message.message_id || message.expected_offset || message.expected_key_offset || message.ttl_ms;
}

std::string offset_or_empty(Offset offset) { return offset == expected_offset_empty ? "empty" : std::to_string(offset); }

struct Reply {
  unsigned status = 0;
  std::string body;
  bool success() const { return status >= 200 && status < 300; }
};

// One HTTP/1.1 connection, kept alive between requests and reopened when the server closed it.
class Connection {
 public:
  explicit Connection(ServerUrl url) : url_(std::move(url)) {}

  Status connect() {
    close();
    boost::system::error_code error;
    tcp::resolver resolver(io_);
    const auto endpoints = resolver.resolve(url_.host, std::to_string(url_.port), error);
    if (error) return Status(ErrorCode::io_error, "cannot resolve server " + url_.text + ": " + describe_error(error));
    asio::connect(socket_, endpoints, error);
    if (error) return Status(ErrorCode::io_error, "cannot connect to server " + url_.text + ": " + describe_error(error));
    const timeval timeout{response_timeout_ms / 1000, (response_timeout_ms % 1000) * 1000};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    socket_.set_option(tcp::no_delay(true), error);
    buffer_.clear();
    return Status::ok();
  }

  void close() {
    boost::system::error_code ignored;
    if (socket_.is_open()) socket_.close(ignored);
  }

  tcp::socket& socket() { return socket_; }
  beast::flat_buffer& buffer() { return buffer_; }
  const ServerUrl& url() const { return url_; }

  // Sends one request and reads the whole answer.
  Result<Reply> request(http::verb verb, const std::string& target, std::string body = {}, std::string_view content_type = {},
                        const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    if (!socket_.is_open() || closed_by_server()) MSGSTORE_RETURN_IF_ERROR(connect());
    http::request<http::string_body> request{verb, target, 11};
    request.set(http::field::host, url_.host + ":" + std::to_string(url_.port));
    request.set(http::field::user_agent, "msgstore-cli");
    request.keep_alive(true);
    if (!content_type.empty()) request.set(http::field::content_type, content_type);
    for (const auto& [name, value] : headers) request.set(name, value);
    request.body() = std::move(body);
    request.prepare_payload();
    boost::system::error_code error;
    http::write(socket_, request, error);
    if (error) return transfer_failed(target, error);
    http::response_parser<http::string_body> parser;
    parser.body_limit(response_body_bytes_max);
    http::read(socket_, buffer_, parser, error);
    if (error) return transfer_failed(target, error);
    Reply reply;
    reply.status = parser.get().result_int();
    reply.body = std::move(parser.get().body());
    if (!parser.get().keep_alive()) close();
    return reply;
  }

  // Sends a request and reads the answer's head only: what an event stream needs.
  Result<unsigned> request_head(const std::string& target, std::string* error_body) {
    MSGSTORE_RETURN_IF_ERROR(connect());
    http::request<http::empty_body> request{http::verb::get, target, 11};
    request.set(http::field::host, url_.host + ":" + std::to_string(url_.port));
    request.set(http::field::user_agent, "msgstore-cli");
    request.set(http::field::accept, "text/event-stream");
    boost::system::error_code error;
    http::write(socket_, request, error);
    if (error) return transfer_failed(target, error);
    http::response_parser<http::string_body> parser;
    parser.body_limit(response_body_bytes_max);
    http::read_header(socket_, buffer_, parser, error);
    if (error) return transfer_failed(target, error);
    const unsigned status = parser.get().result_int();
    if (status != 200) {
      http::read(socket_, buffer_, parser, error);
      *error_body = parser.get().body();
      close();
      return status;
    }
    if (parser.chunked()) return unexpected_answer("the event stream is chunked");
    return status;
  }

 private:
  // True if the server closed the kept connection (a readable idle socket: end of file).
  bool closed_by_server() {
    pollfd descriptor{socket_.native_handle(), POLLIN, 0};
    return ::poll(&descriptor, 1, 0) != 0;
  }

  Status transfer_failed(const std::string& target, const boost::system::error_code& error) {
    close();
    const bool timed_out = error == asio::error::would_block || error == asio::error::try_again ||
                           error == asio::error::timed_out;
    return Status(timed_out ? ErrorCode::timed_out : ErrorCode::io_error,
                  "request " + target + " to server " + url_.text + " failed: " + describe_error(error));
  }

  ServerUrl url_;
  asio::io_context io_;
  tcp::socket socket_{io_};
  beast::flat_buffer buffer_;
};

Result<json::value> parse_answer(const Reply& reply) {
  boost::system::error_code error;
  json::value value = json::parse(reply.body, error);
  if (error) return unexpected_answer("the body is not JSON: " + error.message());
  return value;
}

// Sends and returns the answer's JSON, or the server's error as a Status.
Result<json::value> call(Connection& connection, http::verb verb, const std::string& target, std::string body = {},
                         std::string_view content_type = {},
                         const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  auto reply = connection.request(verb, target, std::move(body), content_type, headers);
  if (!reply) return reply.status();
  if (!reply->success()) return error_from_reply(reply->status, reply->body);
  return parse_answer(*reply);
}

class RemoteBackend final : public Backend {
 public:
  explicit RemoteBackend(const ServerUrl& url) : connection_(url) {}

  Status connect() { return connection_.connect(); }

  Status create_stream(const StreamConfig& config, const std::vector<std::string>& fields) override {
    std::vector<std::string> sent = fields;
    sent.insert(sent.begin(), "name");
    auto created = call(connection_, http::verb::post, "/v1/streams", stream_config_json(config, sent), "application/json");
    return created.status();
  }

  Status update_stream(const StreamConfig& config, const std::vector<std::string>& fields) override {
    auto updated = call(connection_, http::verb::patch, stream_path(config.name), stream_config_json(config, fields),
                        "application/json");
    return updated.status();
  }

  Result<std::vector<StreamConfig>> list_streams(StreamConfigFields* fields) override {
    auto answer = call(connection_, http::verb::get, "/v1/streams");
    if (!answer) return answer.status();
    const json::object* object = answer->if_object();
    const json::value* streams = object != nullptr ? object->if_contains("streams") : nullptr;
    if (streams == nullptr || !streams->is_array()) return unexpected_answer("no \"streams\" array");
    std::vector<StreamConfig> configs;
    for (const json::value& item : streams->as_array()) {
      StreamConfig config;
      MSGSTORE_RETURN_IF_ERROR(decode_config(item, config, fields));
      configs.push_back(std::move(config));
    }
    return configs;
  }

  Result<StreamInfo> describe_stream(std::string_view name, StreamConfigFields* fields) override {
    auto answer = call(connection_, http::verb::get, stream_path(name));
    if (!answer) return answer.status();
    return decode_stream_info(*answer, fields);
  }

  Status delete_stream(std::string_view name) override {
    return call(connection_, http::verb::delete_, stream_path(name)).status();
  }

  // Routes by subject here, as the store does (base::subject_matches over every stream's
  // patterns, streams in name order), then sends each capturing stream its messages: one
  // NDJSON batch request, or one request per message when a message carries a policy (message
  // id, expected offsets, time to live), which the batch format has no fields for.
  Result<std::vector<Position>> publish_batch(std::span<const OutgoingMessage> messages) override {
    std::vector<Position> positions;
    std::size_t first = 0;
    while (first < messages.size()) {
      std::size_t end = first + 1;
      while (end < messages.size() && messages[end].subject == messages[first].subject) ++end;
      auto streams = streams_for(messages[first].subject);
      if (!streams) return streams.status();
      for (const std::string& stream : *streams) {
        MSGSTORE_RETURN_IF_ERROR(publish_to(stream, messages, first, end, positions));
      }
      first = end;
    }
    return positions;  // per stream (in name order), each in message order: as the store answers
  }

  Status read_partition(std::string_view stream, std::uint32_t partition, const StartPosition& start,
                        const MessageCallback& callback) override {
    if (start.kind == StartPosition::Kind::end) return Status::ok();  // nothing stored is after the end
    const std::string path = stream_path(stream) + "/partitions/" + std::to_string(partition) +
                             "/messages?max_messages=" + std::to_string(read_page_messages);
    std::string position;
    if (start.kind == StartPosition::Kind::offset) position = "&offset=" + std::to_string(start.offset);
    if (start.kind == StartPosition::Kind::time) position = "&time_ms=" + std::to_string(start.time_ms);
    while (true) {
      auto answer = call(connection_, http::verb::get, path + position);
      if (!answer) return answer.status();
      const json::object* object = answer->if_object();
      const json::value* items = object != nullptr ? object->if_contains("messages") : nullptr;
      if (items == nullptr || !items->is_array()) return unexpected_answer("a read page has no \"messages\" array");
      for (const json::value& item : items->as_array()) {
        auto received = decode_message(item, stream, partition);
        if (!received) return received.status();
        if (callback(received->view()) == ScanControl::stop) return Status::ok();
      }
      auto next_offset = unsigned_field(*object, "next_offset");
      if (!next_offset) return next_offset.status();
      auto high_watermark = unsigned_field(*object, "high_watermark");
      if (!high_watermark) return high_watermark.status();
      if (items->as_array().empty() || *next_offset >= *high_watermark) return Status::ok();
      position = "&offset=" + std::to_string(*next_offset);
    }
  }

  // Server-Sent Events (GET /v1/streams/{stream}/events) on a connection of its own.
  Status follow(const FollowRequest& request, const DeliveryCallback& deliver, const StopWait& stop_wait) override {
    std::string target = stream_path(request.stream) + "/events?";
    switch (request.start.kind) {
      case StartPosition::Kind::beginning: target += "from=beginning"; break;
      case StartPosition::Kind::end: target += "from=end"; break;
      case StartPosition::Kind::offset: target += "offset=" + std::to_string(request.start.offset); break;
      case StartPosition::Kind::time: target += "time_ms=" + std::to_string(request.start.time_ms); break;
    }
    if (request.partition) target += "&partition=" + std::to_string(*request.partition);
    Connection events(connection_.url());
    std::string error_body;
    auto status = events.request_head(target, &error_body);
    if (!status) return status.status();
    if (*status != 200) return error_from_reply(*status, error_body);
    std::string pending = beast::buffers_to_string(events.buffer().data());
    std::string event_type, data, position;
    std::size_t consumed = 0;
    std::vector<char> chunk(event_stream_read_bytes);
    while (true) {
      // One line at a time: "event: T", "data: D", "id: P", ": comment", "" ends an event.
      while (true) {
        const std::size_t newline = pending.find('\n', consumed);
        if (newline == std::string::npos) break;
        std::string_view line(pending.data() + consumed, newline - consumed);
        consumed = newline + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) {
          if (!data.empty()) {
            if (event_type == "error") return error_from_reply(500, data);
            if (event_type.empty() || event_type == "message") {
              boost::system::error_code parse_error;
              const json::value value = json::parse(data, parse_error);
              if (parse_error) return unexpected_answer("an event is not JSON: " + parse_error.message());
              auto received = decode_message(value, request.stream, 0);
              if (!received) return received.status();
              const MessageView view = received->view();
              if (deliver(received->stream, received->partition, view) == ScanControl::stop) return Status::ok();
            }
          }
          event_type.clear();
          data.clear();
          continue;
        }
        if (line.front() == ':') continue;
        const std::size_t colon = line.find(':');
        const std::string_view field = line.substr(0, colon);
        std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        if (field == "event") {
          event_type = std::string(value);
        } else if (field == "data") {
          if (!data.empty()) data += '\n';
          data += value;
        } else if (field == "id") {
          position = std::string(value);
        }
      }
      pending.erase(0, consumed);
      consumed = 0;
      if (stop_wait(std::chrono::milliseconds(0))) return Status::ok();
      pollfd descriptor{events.socket().native_handle(), POLLIN, 0};
      const int ready = ::poll(&descriptor, 1, follow_poll_interval_ms);
      if (ready < 0 && errno != EINTR) return Status(ErrorCode::io_error, std::string("poll failed: ") + std::strerror(errno));
      if (ready <= 0) continue;
      const ssize_t got = ::read(descriptor.fd, chunk.data(), chunk.size());
      if (got < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return Status(ErrorCode::io_error, "reading the event stream from " + connection_.url().text +
                                               " failed: " + std::strerror(errno));
      }
      if (got == 0) {
        return Status(ErrorCode::closed, "the server " + connection_.url().text + " ended the event stream" +
                                             (position.empty() ? std::string() : " after position " + position));
      }
      pending.append(chunk.data(), static_cast<std::size_t>(got));
    }
  }

  // GET /v1/streams/{stream}/query or GET /v1/query (docs/http-api.md, "Query").
  Result<QueryResult> query(const Query& query, const QueryCallback& callback) override {
    std::string target = (query.stream.empty() ? std::string("/v1/query") : stream_path(query.stream) + "/query") + "?";
    std::string parameters;
    const auto add = [&](std::string_view name, std::string_view value) {
      if (!parameters.empty()) parameters += '&';
      parameters += percent_encode(name) + "=" + percent_encode(value);
    };
    if (query.partition) add("partition", std::to_string(*query.partition));
    if (query.from_time_ms) add("from_time_ms", std::to_string(*query.from_time_ms));
    if (query.to_time_ms) add("to_time_ms", std::to_string(*query.to_time_ms));
    if (query.from_offset) add("from_offset", std::to_string(*query.from_offset));
    if (query.to_offset) add("to_offset", std::to_string(*query.to_offset));
    if (!query.subject_pattern.empty()) add("subject", query.subject_pattern);
    if (query.key) add("key", *query.key);
    for (const Header& header : query.header_equals) add("header." + header.name, header.value);
    if (query.payload_contains) add("contains", *query.payload_contains);
    add("order", query.order == QueryOrder::newest_first ? "newest" : "oldest");
    add("limit", std::to_string(query.limit));
    if (!query.cursor.empty()) add("cursor", query.cursor);
    if (query.allow_scan) add("scan", "true");
    add("explain", "true");  // the statistics are printed with --explain; they cost nothing extra
    auto answer = call(connection_, http::verb::get, target + parameters);
    if (!answer) return answer.status();
    const json::object* object = answer->if_object();
    const json::value* items = object != nullptr ? object->if_contains("messages") : nullptr;
    if (items == nullptr || !items->is_array()) return unexpected_answer("a query answer has no \"messages\" array");
    for (const json::value& item : items->as_array()) {
      auto received = decode_message(item, query.stream, 0);
      if (!received) return received.status();
      const MessageView view = received->view();
      if (callback(QueryMatch{received->stream, received->partition, view}) == ScanControl::stop) break;
    }
    QueryResult result;
    if (const json::value* cursor = object->if_contains("next_cursor"); cursor != nullptr && cursor->is_string()) {
      result.next_cursor = std::string(cursor->as_string());
    }
    if (const json::value* statistics = object->if_contains("statistics"); statistics != nullptr && statistics->is_object()) {
      const json::object& fields = statistics->as_object();
      if (const json::value* plan = fields.if_contains("plan"); plan != nullptr && plan->is_string()) {
        result.statistics.plan = std::string(plan->as_string());
      }
      const std::pair<const char*, std::uint64_t*> counters[] = {
          {"partitions_considered", &result.statistics.partitions_considered},
          {"segments_considered", &result.statistics.segments_considered},
          {"segments_skipped_by_range", &result.statistics.segments_skipped_by_range},
          {"segments_skipped_by_filter", &result.statistics.segments_skipped_by_filter},
          {"segments_read", &result.statistics.segments_read},
          {"index_lookups", &result.statistics.index_lookups},
          {"index_files_rebuilt", &result.statistics.index_files_rebuilt},
          {"bytes_read", &result.statistics.bytes_read},
          {"messages_examined", &result.statistics.messages_examined},
          {"messages_matched", &result.statistics.messages_matched}};
      for (const auto& [name, out] : counters) {
        if (auto value = unsigned_field(fields, name)) *out = *value;
      }
    }
    return result;
  }

  Status close() override {
    connection_.close();
    return Status::ok();
  }

 private:
  // The streams whose patterns capture `subject`, looked up once per subject.
  Result<std::vector<std::string>> streams_for(std::string_view subject) {
    if (const auto found = routes_.find(std::string(subject)); found != routes_.end()) return found->second;
    auto configs = list_streams(nullptr);
    if (!configs) return configs.status();
    std::vector<std::string> streams;
    for (const StreamConfig& config : *configs) {
      for (const std::string& pattern : config.subjects) {
        if (base::subject_matches(pattern, subject)) {
          streams.push_back(config.name);
          break;
        }
      }
    }
    std::sort(streams.begin(), streams.end());
    if (streams.empty()) {
      return Status(ErrorCode::no_matching_stream, "no stream captures subject '" + std::string(subject) + "'");
    }
    routes_[std::string(subject)] = streams;
    return streams;
  }

  Status publish_to(const std::string& stream, std::span<const OutgoingMessage> messages, std::size_t first, std::size_t end,
                    std::vector<Position>& positions) {
    const bool one_by_one = std::any_of(messages.begin() + first, messages.begin() + end, has_policies);
    if (!one_by_one) {
      std::string body;
      for (std::size_t i = first; i < end; ++i) {
        auto line = batch_line(messages[i]);
        if (!line) return Status(line.status().code(), "message " + std::to_string(i) + ": " + line.status().message());
        body += *line;
        body += '\n';
      }
      auto answer = call(connection_, http::verb::post, stream_path(stream) + "/batch", std::move(body), "application/x-ndjson");
      if (!answer) return renumbered(answer.status(), first);
      const json::object* object = answer->if_object();
      const json::value* results = object != nullptr ? object->if_contains("results") : nullptr;
      if (results == nullptr || !results->is_array() || results->as_array().size() != end - first) {
        return unexpected_answer("a batch answer has no \"results\" for every message");
      }
      std::uint32_t index = static_cast<std::uint32_t>(first);
      for (const json::value& result : results->as_array()) {
        if (!result.is_object()) return unexpected_answer("a batch result is not an object");
        auto partition = unsigned_field(result.as_object(), "partition");
        if (!partition) return partition.status();
        auto offset = unsigned_field(result.as_object(), "offset");
        if (!offset) return offset.status();
        positions.push_back({stream, static_cast<std::uint32_t>(*partition), *offset, index++, false});
      }
      return Status::ok();
    }
    for (std::size_t i = first; i < end; ++i) {
      const OutgoingMessage& message = messages[i];
      std::vector<std::pair<std::string, std::string>> headers = {{"Msgstore-Subject", std::string(message.subject)}};
      if (message.key) headers.emplace_back("Msgstore-Key", std::string(*message.key));
      for (const HeaderView& header : message.headers) {
        headers.emplace_back("Msgstore-Header-" + std::string(header.name), std::string(header.value));
      }
      if (message.timestamp_ms != timestamp_now) headers.emplace_back("Msgstore-Timestamp-Ms", std::to_string(message.timestamp_ms));
      if (message.message_id) headers.emplace_back("Msgstore-Message-Id", std::string(*message.message_id));
      if (message.expected_offset) headers.emplace_back("Msgstore-Expected-Offset", offset_or_empty(*message.expected_offset));
      if (message.expected_key_offset) {
        headers.emplace_back("Msgstore-Expected-Key-Offset", offset_or_empty(*message.expected_key_offset));
      }
      if (message.ttl_ms) headers.emplace_back("Msgstore-TTL-Ms", std::to_string(*message.ttl_ms));
      auto answer = call(connection_, http::verb::post, stream_path(stream) + "/messages", std::string(message.payload),
                         "application/octet-stream", headers);
      if (!answer) return renumbered(answer.status(), i);
      if (!answer->is_object()) return unexpected_answer("a publish answer is not an object");
      auto partition = unsigned_field(answer->as_object(), "partition");
      if (!partition) return partition.status();
      auto offset = unsigned_field(answer->as_object(), "offset");
      if (!offset) return offset.status();
      const json::value* duplicate = answer->as_object().if_contains("duplicate");
      positions.push_back({stream, static_cast<std::uint32_t>(*partition), *offset, static_cast<std::uint32_t>(i),
                           duplicate != nullptr && duplicate->is_bool() && duplicate->as_bool()});
    }
    return Status::ok();
  }

  // The server numbers messages within one request ("message 2: ..."); the caller numbers them
  // within its whole batch, as the store would.
  static Status renumbered(const Status& status, std::size_t first) {
    constexpr std::string_view prefix = "message ";
    const std::string& message = status.message();
    std::size_t digits = prefix.size();
    while (digits < message.size() && message[digits] >= '0' && message[digits] <= '9') ++digits;
    std::string text = message;
    if (first > 0 && message.rfind(prefix, 0) == 0 && digits > prefix.size() && digits < message.size() && message[digits] == ':') {
      text = std::string(prefix) + std::to_string(std::stoull(message.substr(prefix.size(), digits - prefix.size())) + first) +
             message.substr(digits);
    }
    return status.actual_offset() ? Status(status.code(), text, *status.actual_offset()) : Status(status.code(), text);
  }

  Connection connection_;
  std::map<std::string, std::vector<std::string>> routes_;
};

}  // namespace

Result<std::unique_ptr<Backend>> open_remote_backend(const ServerUrl& url) {
  auto backend = std::make_unique<RemoteBackend>(url);
  MSGSTORE_RETURN_IF_ERROR(backend->connect());
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace msgstore::cli
