#include "msgstore/message.h"

namespace msgstore {

Message MessageView::to_message() const {
  Message message;
  message.offset = offset;
  message.timestamp_ms = timestamp_ms;
  message.subject = std::string(subject);
  if (key) message.key = std::string(*key);
  message.headers.reserve(headers.size());
  for (const HeaderView& header : headers) message.headers.push_back({std::string(header.name), std::string(header.value)});
  message.payload = std::string(payload);
  return message;
}

MessageView view_of(const Message& message, std::vector<HeaderView>& header_views) {
  header_views.clear();
  header_views.reserve(message.headers.size());
  for (const Header& header : message.headers) header_views.push_back({header.name, header.value});
  MessageView view;
  view.offset = message.offset;
  view.timestamp_ms = message.timestamp_ms;
  view.subject = message.subject;
  if (message.key) view.key = std::string_view(*message.key);
  view.headers = header_views;
  view.payload = message.payload;
  return view;
}

}  // namespace msgstore
