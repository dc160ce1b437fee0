// XXH3-64 through libxxhash (runtime/support/hash.h).
#include "runtime/support/hash.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>
#include <vector>

#include "fmt/format.h"

#define XXH_STATIC_LINKING_ONLY // XXH3_state_t by value
#if defined(__x86_64__)
#include "xxh_x86dispatch.h" // XXH3_64bits* -> the best of SSE2/AVX2/AVX-512 for this CPU
#endif
#include "xxhash.h"

namespace tern {

uint64_t contentHash(std::span<const uint8_t> bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

uint64_t contentHash(std::string_view bytes) { return XXH3_64bits(bytes.data(), bytes.size()); }

struct ContentHasher::State {
  XXH3_state_t xxh;
};

ContentHasher::ContentHasher() : state_(std::make_unique<State>()) {
  XXH3_INITSTATE(&state_->xxh);
  XXH3_64bits_reset(&state_->xxh);
}

ContentHasher::~ContentHasher() = default;

void ContentHasher::update(std::span<const uint8_t> bytes) {
  XXH3_64bits_update(&state_->xxh, bytes.data(), bytes.size());
}

uint64_t ContentHasher::digest() const { return XXH3_64bits_digest(&state_->xxh); }

absl::StatusOr<uint64_t> hashFileContents(const std::string &path, uint64_t *bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return absl::NotFoundError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  ContentHasher h;
  std::vector<uint8_t> buf(1 << 20);
  uint64_t total = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      int e = errno;
      ::close(fd);
      return absl::InternalError(fmt::format("{}: read failed: {}", path, std::strerror(e)));
    }
    if (n == 0)
      break;
    h.update(std::span<const uint8_t>(buf.data(), size_t(n)));
    total += uint64_t(n);
  }
  ::close(fd);
  if (bytes)
    *bytes = total;
  return h.digest();
}

} // namespace tern
