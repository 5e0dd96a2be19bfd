#include "io/errors.h"

#include <cerrno>
#include <cstring>
#include <string>

namespace msgstore::io {

Status status_from_errno(int error_number, std::string_view operation, const std::filesystem::path& path) {
  std::string message = std::string(operation) + " " + path.string() + ": " + std::strerror(error_number);
  if (error_number == ENOSPC || error_number == EDQUOT) return Status(ErrorCode::no_space, message);
  return Status(ErrorCode::io_error, message);
}

}  // namespace msgstore::io
