#include "server/routes.h"

namespace msgstore::server {

void register_all_routes(Router& router, ServerContext& context) {
  register_system_routes(router, context);
  register_stream_routes(router, context);
  register_consumer_routes(router, context);
  register_live_routes(router, context);
  register_query_routes(router, context);
}

}  // namespace msgstore::server
