// /healthz, /readyz and /metrics.
#include "server/routes.h"

namespace msgstore::server {
namespace {

// Liveness: the event loop answers. Never touches the store, so a slow disk does not get the
// process restarted by an orchestrator.
asio::awaitable<HttpResponse> healthz(RequestContext& context) {
  co_return json_response(context, http::status::ok, json::object{{"status", "ok"}});
}

// Readiness: not shutting down, and a store call completes through the worker pool (so a
// saturated pool or a closed store shows as not ready).
asio::awaitable<HttpResponse> readyz(RequestContext& context) {
  if (context.server.shutting_down()) {
    co_return error_response(context, Status(ErrorCode::closed, "the server is shutting down"), {},
                             http::status::service_unavailable);
  }
  auto streams = co_await context.server.broker().list_streams();
  if (!streams) co_return error_response(context, streams.status(), {}, http::status::service_unavailable);
  co_return json_response(context, http::status::ok, json::object{{"status", "ready"}, {"streams", streams->size()}});
}

// What /metrics reads from the store, in one worker call.
struct StoreGauges {
  std::vector<StreamInfo> streams;
  std::vector<ConsumerInfo> consumers;
};

asio::awaitable<HttpResponse> metrics(RequestContext& context) {
  Store& store = context.server.store();
  auto gauges = co_await context.server.broker().run_blocking([&store] {
    StoreGauges gauges;
    for (const StreamConfig& config : store.list_streams()) {
      auto info = store.describe_stream(config.name);
      if (!info) continue;  // deleted meanwhile: skip it
      gauges.streams.push_back(std::move(*info));
      auto consumers = store.consumers().list(config.name);
      if (!consumers) continue;  // the stream went meanwhile
      for (ConsumerInfo& consumer : *consumers) gauges.consumers.push_back(std::move(consumer));
    }
    return Result<StoreGauges>(std::move(gauges));
  });
  if (!gauges) co_return error_response(context, gauges.status());
  co_return text_response(context, http::status::ok,
                          context.server.metrics().render(context.server.broker().statistics(), gauges->streams, gauges->consumers),
                          "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace

void register_system_routes(Router& router, ServerContext&) {
  router.add(http::verb::get, "/healthz", healthz);
  router.add(http::verb::get, "/readyz", readyz);
  router.add(http::verb::get, "/metrics", metrics);
}

}  // namespace msgstore::server
