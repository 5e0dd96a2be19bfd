// Subjects and subject patterns.
//
// A subject is a '.'-separated list of non-empty tokens ("orders.eu.created"). A pattern may
// use '*' as a whole token to match exactly one token, and '>' as the last token to match one
// or more remaining tokens ("orders.>" matches "orders.eu" and "orders.eu.created", not
// "orders").
#pragma once

#include <string_view>

#include "msgstore/status.h"

namespace msgstore::base {

Status validate_subject(std::string_view subject);
Status validate_subject_pattern(std::string_view pattern);
// Requires both to be valid.
bool subject_matches(std::string_view pattern, std::string_view subject);

}  // namespace msgstore::base
