// order_events: the classic in-process message store pattern (publish a message on a subject;
// every handler subscribed to that subject runs), made durable with msgstore.
//
//   order_events [DATA_DIRECTORY]      (default ./data/example)
//
// 1. Opens the store and creates stream "orders" capturing "order.>" if it is missing.
// 2. Subscribes two handlers to "order.created": a log handler and an alert handler.
// 3. Publishes order.created "Order #1234" and order.shipped "Order #5678"; both handlers run
//    for the created order, neither for the shipped one.
// 4. Closes the store, reopens it, and replays the stream from the beginning with a new
//    subscriber: the orders are still there, in order, at the offsets publish returned.
//
// Exits 0 only if everything happened as described; run it twice and the replay grows.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "msgstore/store.h"

namespace {

using namespace std::chrono_literals;

constexpr auto delivery_timeout = 10s;

// Handlers run on their subscription's thread: serialise printing and what the checks read.
std::mutex output_mutex;

void say(const std::string& line) {
  std::lock_guard lock(output_mutex);
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

bool expect(bool condition, const std::string& what) {
  if (!condition) say("FAILED: " + what);
  return condition;
}

std::string uppercase(std::string_view text) {
  std::string upper(text);
  std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return upper;
}

std::string where(std::string_view stream, std::uint32_t partition, msgstore::Offset offset) {
  return std::string(stream) + "/" + std::to_string(partition) + "@" + std::to_string(offset);
}

struct Published {
  std::string subject;
  std::string payload;
  msgstore::Position position;
};

int run(const std::filesystem::path& directory) {
  bool ok = true;

  // ---- 1. Open and make sure the stream exists ------------------------------------------------
  auto opened = msgstore::Store::open(directory);
  if (!opened) {
    say("cannot open " + directory.string() + ": " + opened.status().to_string());
    return 1;
  }
  std::unique_ptr<msgstore::Store> store = std::move(*opened);
  say("opened store at " + directory.string());
  if (auto info = store->describe_stream("orders")) {
    say("stream 'orders' already exists (" + std::to_string(info->messages) + " messages)");
  } else {
    msgstore::StreamConfig config;
    config.name = "orders";
    config.subjects = {"order.>"};
    if (msgstore::Status created = store->create_stream(config); !created.is_ok()) {
      say("create_stream failed: " + created.to_string());
      return 1;
    }
    say("stream 'orders' created (captures order.>)");
  }

  // ---- 2. Two handlers on order.created --------------------------------------------------------
  std::vector<std::string> logged;   // what the log handler saw
  std::vector<std::string> alerted;  // what the alert handler saw
  auto log_handler = [&](const msgstore::Delivery& delivery) {
    say("[log] " + std::string(delivery.message.subject) + ": " + std::string(delivery.message.payload) + " (" +
        where(delivery.stream, delivery.partition, delivery.message.offset) + ")");
    std::lock_guard lock(output_mutex);
    logged.emplace_back(delivery.message.payload);
  };
  auto alert_handler = [&](const msgstore::Delivery& delivery) {
    say("[ALERT] " + uppercase(delivery.message.subject) + ": " + uppercase(delivery.message.payload));
    std::lock_guard lock(output_mutex);
    alerted.emplace_back(delivery.message.payload);
  };
  msgstore::SubscribeOptions created_only;
  created_only.subject_pattern = "order.created";
  created_only.stream = "orders";
  created_only.start = msgstore::StartPosition::new_only();  // only what is published from now on
  auto log_subscription = store->subscribe(created_only, log_handler);
  auto alert_subscription = store->subscribe(created_only, alert_handler);
  if (!log_subscription || !alert_subscription) {
    say("subscribe failed: " + (log_subscription ? alert_subscription.status() : log_subscription.status()).to_string());
    return 1;
  }
  say("subscribed 2 handlers (log, alert) to order.created");

  // ---- 3. Publish two orders -------------------------------------------------------------------
  std::vector<Published> published = {{"order.created", "Order #1234", {}}, {"order.shipped", "Order #5678", {}}};
  for (Published& order : published) {
    msgstore::OutgoingMessage message;
    message.subject = order.subject;
    message.payload = order.payload;
    auto positions = store->publish(message);
    if (!positions) {
      say("publish failed: " + positions.status().to_string());
      return 1;
    }
    if (!expect(positions->size() == 1 && positions->front().stream == "orders",
                order.subject + " should land in stream 'orders' only")) {
      return 1;
    }
    order.position = positions->front();
    say("published " + order.subject + " \"" + order.payload + "\" -> " +
        where(order.position.stream, order.position.partition, order.position.offset));
  }
  ok &= expect((*log_subscription)->wait_for_delivered(1, delivery_timeout), "the log handler ran for order.created");
  ok &= expect((*alert_subscription)->wait_for_delivered(1, delivery_timeout), "the alert handler ran for order.created");
  // The shipped order matches no handler's subject: give it a moment to be (wrongly) delivered.
  ok &= expect(!(*log_subscription)->wait_for_delivered(2, 200ms), "the log handler must not run for order.shipped");
  ok &= expect(!(*alert_subscription)->wait_for_delivered(2, 200ms), "the alert handler must not run for order.shipped");
  (*log_subscription)->cancel();
  (*alert_subscription)->cancel();
  bool saw_only_created = false;
  {
    std::lock_guard lock(output_mutex);
    saw_only_created = logged == std::vector<std::string>{"Order #1234"} && alerted == std::vector<std::string>{"Order #1234"};
  }
  ok &= expect(saw_only_created, "each handler saw exactly one message, Order #1234");
  if (ok) say("both handlers ran for order.created; neither ran for order.shipped");

  // Subscriptions must go before their store.
  log_subscription->reset();
  alert_subscription->reset();
  if (msgstore::Status closed = store->close(); !closed.is_ok()) {
    say("close failed: " + closed.to_string());
    return 1;
  }
  store.reset();
  say("closed store");

  // ---- 4. Reopen and replay from the beginning -------------------------------------------------
  auto reopened = msgstore::Store::open(directory);
  if (!reopened) {
    say("cannot reopen " + directory.string() + ": " + reopened.status().to_string());
    return 1;
  }
  store = std::move(*reopened);
  auto info = store->describe_stream("orders");
  if (!info) {
    say("describe_stream failed after reopening: " + info.status().to_string());
    return 1;
  }
  const std::uint64_t stored = info->messages;
  say("reopened store: stream 'orders' holds " + std::to_string(stored) + " messages");

  struct Replayed {
    std::uint32_t partition;
    msgstore::Offset offset;
    std::string subject;
    std::string payload;
  };
  std::vector<Replayed> replayed;
  msgstore::SubscribeOptions everything;
  everything.subject_pattern = "order.>";
  everything.stream = "orders";
  everything.start = msgstore::StartPosition::from_beginning();
  auto replay = store->subscribe(everything, [&](const msgstore::Delivery& delivery) {
    say("[replay] " + where(delivery.stream, delivery.partition, delivery.message.offset) + " " +
        std::string(delivery.message.subject) + ": " + std::string(delivery.message.payload));
    std::lock_guard lock(output_mutex);
    replayed.push_back({delivery.partition, delivery.message.offset, std::string(delivery.message.subject),
                        std::string(delivery.message.payload)});
  });
  if (!replay) {
    say("subscribe failed: " + replay.status().to_string());
    return 1;
  }
  ok &= expect((*replay)->wait_for_delivered(stored, delivery_timeout),
               "the new subscriber replays all " + std::to_string(stored) + " stored messages");
  (*replay)->cancel();
  {
    std::lock_guard lock(output_mutex);
    for (const Published& order : published) {
      const bool found = std::any_of(replayed.begin(), replayed.end(), [&](const Replayed& message) {
        return message.partition == order.position.partition && message.offset == order.position.offset &&
               message.subject == order.subject && message.payload == order.payload;
      });
      if (!found) {
        ok = false;
        std::printf("FAILED: %s \"%s\" is not at %s after reopening\n", order.subject.c_str(), order.payload.c_str(),
                    where("orders", order.position.partition, order.position.offset).c_str());
        std::fflush(stdout);
      }
    }
  }
  if (ok) {
    say("replayed " + std::to_string(stored) + " messages from the beginning, including " + published[0].payload +
        " (created) and " + published[1].payload + " (shipped)");
  }
  replay->reset();
  if (msgstore::Status closed = store->close(); !closed.is_ok()) {
    say("close failed: " + closed.to_string());
    return 1;
  }
  say(ok ? "OK: all expectations met" : "FAILED: see above");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 2) {
    std::fprintf(stderr, "usage: order_events [DATA_DIRECTORY]   (default ./data/example)\n");
    return 2;
  }
  const std::filesystem::path directory = argc == 2 ? argv[1] : "data/example";
  return run(directory);
}
