// server/server_context.h: what every route handler can reach.
//
// One ServerContext per server, created before the listeners start and destroyed after every
// connection has ended. Handlers get it through RequestContext::server.
#pragma once

#include "broker/broker.h"
#include "msgstore/store.h"
#include "server/config.h"
#include "server/metrics.h"

namespace msgstore::server {

class ServerContext {
 public:
  ServerContext(const ServerConfig& config, Store& store, broker::Broker& broker, Metrics& metrics)
      : config_(config), store_(store), broker_(broker), metrics_(metrics) {}

  const ServerConfig& config() const { return config_; }
  // The embedded store. Its calls block: call it only through broker().run_blocking.
  Store& store() { return store_; }
  broker::Broker& broker() { return broker_; }
  Metrics& metrics() { return metrics_; }
  // True once shutdown began (SIGTERM/SIGINT): /readyz fails, long-running handlers
  // (long polls, live streams) should finish promptly.
  bool shutting_down() const { return broker_.stopping(); }

 private:
  const ServerConfig& config_;
  Store& store_;
  broker::Broker& broker_;
  Metrics& metrics_;
};

}  // namespace msgstore::server
