// server/router.h: maps (method, path) to a route handler.
//
// Routes are path templates whose segments are literals or {parameters}:
//   router.add(http::verb::get, "/v1/streams/{stream}", describe_stream);
// A parameter matches one non-empty path segment, percent-decoded. Each feature file registers
// its routes in one function (register_stream_routes, register_consumer_routes, ...; see
// server/routes.h), so adding a feature is a new file plus one line in routes.cc.
//
// Matching prefers the route with the most literal segments first (so "/v1/streams/{stream}"
// and a later "/v1/streams/_special" do not depend on registration order). A path that
// matches some route but not with this method is 405 method_not_allowed (with Allow); a path
// that matches nothing is 404 not_found.
//
// Thread safety: add() only before the server starts; match() from any thread afterwards.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "server/http.h"

namespace msgstore::server {

using RouteHandler = std::function<asio::awaitable<HttpResponse>(RequestContext&)>;

class Router {
 public:
  // Registers a route. Aborts (MS_ASSERT) on a malformed template or a duplicate.
  void add(http::verb method, std::string_view path_template, RouteHandler handler);

  struct Match {
    const RouteHandler* handler = nullptr;  // null: no route for this method and path
    std::string_view route_template;        // the matched template (a metrics label)
    PathParameters path_parameters;
    bool path_known = false;                // some route matches the path with another method
    std::string allowed_methods;            // for 405: "GET, POST"
    bool bad_escape = false;                // a segment had an invalid percent escape
  };
  Match match(http::verb method, std::string_view path) const;

 private:
  struct Segment {
    std::string text;
    bool is_parameter = false;
  };
  struct Route {
    http::verb method;
    std::string path_template;
    std::vector<Segment> segments;
    std::size_t literal_count = 0;
    RouteHandler handler;
  };
  std::vector<Route> routes_;  // sorted: more literal segments first
};

}  // namespace msgstore::server
