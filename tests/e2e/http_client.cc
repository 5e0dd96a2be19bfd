#include "e2e/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <strings.h>

namespace msgstore::e2e {

HttpConnection::~HttpConnection() { close(); }

void HttpConnection::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buffer_.clear();
}

bool HttpConnection::connect_now() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return false;
  timeval timeout{};
  timeout.tv_sec = static_cast<time_t>(timeout_.count() / 1000);
  timeout.tv_usec = static_cast<suseconds_t>((timeout_.count() % 1000) * 1000);
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port_));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close();
    return false;
  }
  return true;
}

bool HttpConnection::send_all(const std::string& data) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

bool HttpConnection::fill() {
  char chunk[16384];
  for (;;) {
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }
}

std::optional<HttpReply> HttpConnection::request(const std::string& method, const std::string& target, const std::string& body,
                                                 const std::vector<std::pair<std::string, std::string>>& headers) {
  if (fd_ < 0 && !connect_now()) return std::nullopt;
  std::string text = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const auto& [name, value] : headers) text += name + ": " + value + "\r\n";
  text += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  text += body;
  if (!send_all(text)) {
    close();
    return std::nullopt;
  }
  std::size_t head_end;
  while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill()) {
      close();
      return std::nullopt;
    }
  }
  HttpReply reply;
  const std::string head = buffer_.substr(0, head_end);
  if (head.rfind("HTTP/1.", 0) != 0 || head.size() < 12) {
    close();
    return std::nullopt;
  }
  reply.status = std::atoi(head.c_str() + 9);
  std::size_t content_length = 0;
  bool closes = false;
  std::size_t line_start = head.find("\r\n");
  while (line_start != std::string::npos) {
    line_start += 2;
    const std::size_t line_end = head.find("\r\n", line_start);
    const std::string line = head.substr(line_start, line_end == std::string::npos ? std::string::npos : line_end - line_start);
    if (::strncasecmp(line.c_str(), "content-length:", 15) == 0) content_length = std::strtoull(line.c_str() + 15, nullptr, 10);
    if (::strncasecmp(line.c_str(), "connection:", 11) == 0 && line.find("close") != std::string::npos) closes = true;
    line_start = line_end;
  }
  const std::size_t body_start = head_end + 4;
  while (buffer_.size() < body_start + content_length) {
    if (!fill()) {
      close();
      return std::nullopt;
    }
  }
  reply.body = buffer_.substr(body_start, content_length);
  buffer_.erase(0, body_start + content_length);
  if (closes) close();
  return reply;
}

}  // namespace msgstore::e2e
