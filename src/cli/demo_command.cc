// demo: a guided tour of the embedded API on the real data directory.
//
// Creates stream "demo" (subjects demo.>) if missing, publishes a handful of messages (with a
// key, headers, UTF-8, binary and empty payloads), reads each back by its position, replays
// them through a subscription, verifies the stream, and exits 0 only if every check matched.
#include <chrono>
#include <map>
#include <memory>
#include <mutex>

#include "cli/command.h"
#include "cli/json.h"

namespace msgstore::cli {
namespace {

constexpr const char* demo_stream = "demo";

struct DemoMessage {
  std::string subject;
  std::optional<std::string> key;
  std::vector<Header> headers;
  std::string payload;
};

std::vector<DemoMessage> demo_messages() {
  return {
      {"demo.greeting", std::nullopt, {}, "hello, msgstore"},
      {"demo.orders.created", "customer-42", {{"content-type", "application/json"}, {"trace-id", "abc123"}},
       R"({"order":1234,"total_cents":1999})"},
      {"demo.orders.shipped", "customer-42", {}, "order 1234 shipped"},
      {"demo.unicode", std::nullopt, {}, "gr\xC3\xBC\xC3\x9F" "e \xE2\x9C\x93"},
      {"demo.binary", std::nullopt, {{"encoding", "raw"}}, std::string("\x00\x01\xFF\xFE\n", 5)},
      {"demo.empty", std::nullopt, {}, ""},
  };
}

// Describes the first difference, or returns empty when the message matches.
std::string difference(const DemoMessage& expected, const Message& actual) {
  if (actual.subject != expected.subject) return "subject " + json_string(actual.subject) + " != " + json_string(expected.subject);
  if (actual.key != expected.key) return "key differs";
  if (actual.headers != expected.headers) return "headers differ";
  if (actual.payload != expected.payload) return "payload differs (" + std::to_string(actual.payload.size()) + " bytes read, " +
                                                 std::to_string(expected.payload.size()) + " expected)";
  return {};
}

std::string describe(const Position& position) {
  return position.stream + "/" + std::to_string(position.partition) + "@" + std::to_string(position.offset);
}

int run_demo(const GlobalOptions& global) {
  bool all_matched = true;
  auto mismatch = [&](const std::string& what) {
    all_matched = false;
    print_line("  MISMATCH: " + what, true);
  };

  print_line("1. opening data directory " + global.data_directory, true);
  auto opened = open_store(global, /*create_if_missing=*/true);
  if (!opened) return fail(opened.status());
  Store& store = **opened;

  if (auto info = store.describe_stream(demo_stream)) {
    std::string subjects;
    for (const std::string& pattern : info->config.subjects) subjects += (subjects.empty() ? "" : ",") + pattern;
    print_line("2. stream 'demo' exists (subjects " + subjects + ", " + std::to_string(info->messages) + " messages stored)", true);
  } else {
    StreamConfig config;
    config.name = demo_stream;
    config.subjects = {"demo.>"};
    Status created = store.create_stream(config);
    if (!created.is_ok()) return fail(created);
    print_line("2. created stream 'demo' capturing demo.> (1 partition, fsync always)", true);
  }

  const std::vector<DemoMessage> messages = demo_messages();
  std::vector<std::vector<HeaderView>> header_views(messages.size());
  std::vector<OutgoingMessage> outgoing(messages.size());
  for (std::size_t i = 0; i < messages.size(); ++i) {
    for (const Header& header : messages[i].headers) header_views[i].push_back({header.name, header.value});
    outgoing[i].subject = messages[i].subject;
    if (messages[i].key) outgoing[i].key = *messages[i].key;
    outgoing[i].headers = header_views[i];
    outgoing[i].payload = messages[i].payload;
  }
  auto published = store.publish_batch(outgoing);
  if (!published) return fail(published.status());
  std::vector<Position> positions;  // ours: other streams may capture demo.> too
  for (const Position& position : *published) {
    if (position.stream == demo_stream) positions.push_back(position);
  }
  print_line("3. published " + std::to_string(messages.size()) + " messages in one batch:", true);
  for (const Position& position : positions) {
    print_line("   " + messages[position.message_index].subject + " -> " + describe(position), true);
  }
  if (positions.size() != messages.size()) mismatch("expected one position in 'demo' per message");

  print_line("4. reading each message back by its position", true);
  for (const Position& position : positions) {
    ReadOptions options;
    options.max_messages = 1;
    auto read = store.read(demo_stream, position.partition, position.offset, options);
    if (!read) return fail(read.status());
    if (read->messages.empty() || read->messages.front().offset != position.offset) {
      mismatch("nothing at " + describe(position));
      continue;
    }
    const std::string different = difference(messages[position.message_index], read->messages.front());
    if (!different.empty()) mismatch(describe(position) + ": " + different);
  }
  if (all_matched) print_line("   all " + std::to_string(positions.size()) + " match what was published", true);

  // Replay through a subscription: history and live delivery are the same loop in the store.
  std::map<std::pair<std::uint32_t, Offset>, std::size_t> wanted;  // position -> message index
  Offset first_offset = UINT64_MAX;
  for (const Position& position : positions) {
    wanted[{position.partition, position.offset}] = position.message_index;
    first_offset = std::min(first_offset, position.offset);
  }
  auto info = store.describe_stream(demo_stream);
  if (!info) return fail(info.status());
  SubscribeOptions options;
  options.stream = demo_stream;
  options.subject_pattern = "demo.>";
  options.start = info->partitions.size() == 1 ? StartPosition::from_offset(first_offset) : StartPosition::from_beginning();
  std::mutex mutex;
  std::map<std::pair<std::uint32_t, Offset>, Message> replayed;
  auto subscription = store.subscribe(options, [&](const Delivery& delivery) {
    std::lock_guard lock(mutex);
    if (wanted.count({delivery.partition, delivery.message.offset})) {
      replayed.emplace(std::make_pair(delivery.partition, delivery.message.offset), delivery.message.to_message());
    }
  });
  if (!subscription) return fail(subscription.status());
  print_line("5. subscribed to demo.> " +
                 std::string(options.start.kind == StartPosition::Kind::offset ? "from offset " + std::to_string(first_offset)
                                                                               : "from the beginning") +
                 "; waiting for the replay",
             true);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard lock(mutex);
      if (replayed.size() == wanted.size()) break;
    }
    if (!(*subscription)->status().is_ok()) break;
    (*subscription)->wait_for_delivered((*subscription)->delivered() + 1, std::chrono::milliseconds(100));
  }
  (*subscription)->cancel();
  if (!(*subscription)->status().is_ok()) return fail((*subscription)->status());
  {
    std::lock_guard lock(mutex);
    for (const auto& [where, index] : wanted) {
      auto found = replayed.find(where);
      if (found == replayed.end()) {
        mismatch("the subscription did not replay " + std::string(demo_stream) + "/" + std::to_string(where.first) + "@" +
                 std::to_string(where.second));
        continue;
      }
      const std::string different = difference(messages[index], found->second);
      if (!different.empty()) mismatch("replayed " + std::to_string(where.second) + ": " + different);
    }
    print_line("   replayed " + std::to_string(replayed.size()) + " of " + std::to_string(wanted.size()) + " messages", true);
  }

  auto report = store.verify(demo_stream);
  if (!report) return fail(report.status());
  print_line("6. verify: " + std::to_string(report->batches_checked) + " batches, " +
                 std::to_string(report->messages_checked) + " messages checked, " +
                 (report->clean() ? std::string("clean") : std::to_string(report->problems.size()) + " problem(s)"),
             true);
  for (const std::string& problem : report->problems) mismatch(problem);

  if (int closed = close_store(store)) return closed;
  if (!all_matched) return fail(Status(ErrorCode::corruption, "demo: what was read back did not match what was published"));
  print_line("demo OK: everything read back and replayed matched what was published", true);
  return exit_success;
}

}  // namespace

void add_demo_command(CLI::App& app, const GlobalOptions& global, Commands& commands) {
  CLI::App* demo = app.add_subcommand(
      "demo", "Create stream 'demo', publish, read back, replay through a subscription and verify; exit 0 if all matched");
  commands.push_back({demo, [&global] { return run_demo(global); }});
}

}  // namespace msgstore::cli
