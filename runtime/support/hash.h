// Content hashes: XXH3-64 (xxHash >= 0.8, seed 0; its output is frozen
// since 0.8.0) of a byte string. The one hash for content in ternc: the
// artifact's section, header and source hashes, the compile cache's keys,
// the ukernel bitcode hashes in `ternc --version` and tern-pack-weights'
// checksums. ~10 GB/s and more per core (AVX2/AVX-512 chosen at run time on
// x86-64), where the byte-serial hash it replaced ran at ~1 GB/s.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tern {

uint64_t contentHash(std::span<const uint8_t> bytes);
uint64_t contentHash(std::string_view bytes);

// Incremental: h.update(a); h.update(b); h.digest() == contentHash(a ++ b).
class ContentHasher {
public:
  ContentHasher();
  ~ContentHasher();
  ContentHasher(const ContentHasher &) = delete;
  ContentHasher &operator=(const ContentHasher &) = delete;

  void update(std::span<const uint8_t> bytes);
  uint64_t digest() const;

private:
  struct State;
  std::unique_ptr<State> state_;
};

// contentHash of a whole file, read with read(2) in 1 MiB chunks (no
// mapping, so the caller's resident memory does not grow with the file).
// `bytes`, when given, receives the file's size.
absl::StatusOr<uint64_t> hashFileContents(const std::string &path, uint64_t *bytes = nullptr);

} // namespace tern
