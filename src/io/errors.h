// errno to Status, shared by every FileSystem implementation.
#pragma once

#include <filesystem>
#include <string_view>

#include "msgstore/status.h"

namespace msgstore::io {

// ENOSPC/EDQUOT -> no_space; anything else -> io_error. The message names the operation,
// the path and the system's text.
Status status_from_errno(int error_number, std::string_view operation, const std::filesystem::path& path);

}  // namespace msgstore::io
