// Small helpers around absl::Status. Debian's Abseil has its own
// absl::string_view (not std::string_view), which fmt cannot format: use
// statusMessage() to get a std::string.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace tern {

inline std::string statusMessage(const absl::Status &s) {
  return std::string(s.message().data(), s.message().size());
}

// The same status with "prefix: " in front of its message.
inline absl::Status withContext(const absl::Status &s, std::string_view prefix) {
  if (s.ok())
    return s;
  std::string m(prefix);
  m += ": ";
  m += statusMessage(s);
  return absl::Status(s.code(), m);
}

} // namespace tern
