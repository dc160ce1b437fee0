// Stopping generation: end-of-generation token ids and stop strings.
//
// StopStrings watches the detokenized output (the pieces a StreamDecoder
// returns, in order) for any of a set of stop strings. A stop string may span
// several tokens, so text that could still become the start of a stop string
// is withheld until the next piece decides it; push() returns only text that
// is safe to show. On a match, the text before the stop string is released,
// the stop string and everything after it are dropped (as llama.cpp's server
// does), and stopped() turns true. Matching is on bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tern::sampling {

// The token ids that end generation (EOS, EOT, ...): negative ids (absent
// from the model's metadata) are ignored, duplicates collapse.
class EndOfGeneration {
public:
  EndOfGeneration() = default;
  explicit EndOfGeneration(std::span<const int32_t> ids);
  bool contains(int32_t token) const;
  std::span<const int32_t> ids() const { return ids_; }

private:
  std::vector<int32_t> ids_; // sorted, unique
};

class StopStrings {
public:
  // Empty strings are ignored; no strings at all means nothing ever stops.
  explicit StopStrings(std::vector<std::string> stops = {});

  struct Step {
    std::string text;     // safe to show now
    bool stopped = false; // a stop string matched (now or before)
  };
  // Feeds the next decoded piece. After a stop, returns empty text.
  Step push(std::string_view piece);
  // End of generation without a stop: releases the withheld text.
  std::string flush();

  bool stopped() const { return stopped_; }
  // Bytes currently withheld (a possible stop-string prefix).
  size_t withheld() const { return pending_.size(); }
  // Back to the initial state (same stop strings).
  void reset();

private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

} // namespace tern::sampling
