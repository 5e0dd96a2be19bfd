// server/routes.h: one registration function per feature file; register_all_routes calls
// them all. Adding a feature = a new *_routes.cc file, its declaration here, one line in
// routes.cc, one in src/CMakeLists.txt.
#pragma once

#include "server/router.h"
#include "server/server_context.h"

namespace msgstore::server {

void register_system_routes(Router& router, ServerContext& context);  // healthz, readyz, metrics
void register_stream_routes(Router& router, ServerContext& context);  // streams, publish, read
void register_consumer_routes(Router& router, ServerContext& context);  // durable consumers

void register_live_routes(Router& router, ServerContext& context);    // SSE and WebSocket live streams
void register_query_routes(Router& router, ServerContext& context);   // queries (key, subject, headers, time)

void register_all_routes(Router& router, ServerContext& context);

}  // namespace msgstore::server
