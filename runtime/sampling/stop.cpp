#include "runtime/sampling/stop.h"

#include <algorithm>

namespace tern::sampling {

EndOfGeneration::EndOfGeneration(std::span<const int32_t> ids) {
  for (int32_t id : ids)
    if (id >= 0)
      ids_.push_back(id);
  std::sort(ids_.begin(), ids_.end());
  ids_.erase(std::unique(ids_.begin(), ids_.end()), ids_.end());
}

bool EndOfGeneration::contains(int32_t token) const {
  return std::binary_search(ids_.begin(), ids_.end(), token);
}

StopStrings::StopStrings(std::vector<std::string> stops) {
  for (std::string &s : stops)
    if (!s.empty())
      stops_.push_back(std::move(s));
}

void StopStrings::reset() {
  pending_.clear();
  stopped_ = false;
}

StopStrings::Step StopStrings::push(std::string_view piece) {
  Step out;
  if (stopped_) {
    out.stopped = true;
    return out;
  }
  pending_.append(piece.data(), piece.size());
  // Earliest complete match of any stop string. Everything before pending_
  // was released only because no stop string could start there.
  size_t first = std::string::npos;
  for (const std::string &s : stops_)
    first = std::min(first, pending_.find(s));
  if (first != std::string::npos) {
    out.text = pending_.substr(0, first);
    out.stopped = stopped_ = true;
    pending_.clear();
    return out;
  }
  // Withhold the longest suffix that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string &s : stops_) {
    const size_t maxLen = std::min(s.size() - 1, pending_.size());
    for (size_t len = maxLen; len > hold; --len)
      if (std::string_view(pending_).substr(pending_.size() - len) ==
          std::string_view(s).substr(0, len)) {
        hold = len;
        break;
      }
  }
  out.text = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopStrings::flush() {
  std::string t;
  if (!stopped_)
    t.swap(pending_);
  pending_.clear();
  return t;
}

} // namespace tern::sampling
