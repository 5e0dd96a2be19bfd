#include "server/router.h"

#include <algorithm>

#include "base/assert.h"

namespace msgstore::server {
namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> segments;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  while (true) {
    const std::size_t slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return segments;
}

}  // namespace

void Router::add(http::verb method, std::string_view path_template, RouteHandler handler) {
  MS_ASSERT(!path_template.empty() && path_template.front() == '/');
  Route route{method, std::string(path_template), {}, 0, std::move(handler)};
  for (std::string_view segment : split_path(path_template)) {
    MS_ASSERT(!segment.empty());
    if (segment.front() == '{') {
      MS_ASSERT(segment.size() > 2 && segment.back() == '}');
      route.segments.push_back({std::string(segment.substr(1, segment.size() - 2)), true});
    } else {
      route.segments.push_back({std::string(segment), false});
      ++route.literal_count;
    }
  }
  for (const Route& existing : routes_) {
    MS_ASSERT(!(existing.method == method && existing.path_template == route.path_template));
  }
  routes_.push_back(std::move(route));
  std::stable_sort(routes_.begin(), routes_.end(),
                   [](const Route& a, const Route& b) { return a.literal_count > b.literal_count; });
}

Router::Match Router::match(http::verb method, std::string_view path) const {
  Match result;
  const std::vector<std::string_view> segments = split_path(path);
  for (const Route& route : routes_) {
    if (route.segments.size() != segments.size()) continue;
    // Literal segments first: most routes fail here, before anything is decoded or allocated.
    bool matches = true;
    for (std::size_t i = 0; i < segments.size() && matches; ++i) {
      const Segment& segment = route.segments[i];
      matches = segment.is_parameter ? !segments[i].empty() : segment.text == segments[i];
    }
    if (!matches) continue;
    PathParameters parameters;
    for (std::size_t i = 0; i < segments.size(); ++i) {
      if (!route.segments[i].is_parameter) continue;
      auto decoded = percent_decode(segments[i], false);
      if (!decoded) {
        result.bad_escape = true;
        return result;
      }
      parameters.emplace(route.segments[i].text, std::move(*decoded));
    }
    if (route.method != method) {
      if (result.path_known) result.allowed_methods += ", ";
      result.allowed_methods += std::string(http::to_string(route.method));
      result.path_known = true;
      continue;
    }
    // The first route that matches path and method wins; the allowed methods only matter when
    // none does.
    result.handler = &route.handler;
    result.route_template = route.path_template;
    result.path_parameters = std::move(parameters);
    return result;
  }
  return result;
}

}  // namespace msgstore::server
