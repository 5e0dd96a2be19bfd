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

}  // namespace msgstore
