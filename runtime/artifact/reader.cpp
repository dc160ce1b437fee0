// Artifact::open: map and validate a .tern file. See artifact.h.
#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fmt/format.h"
#include "runtime/artifact/artifact.h"

namespace tern::artifact {

namespace {

absl::Status bad(const std::string &where, const std::string &msg) {
  return absl::InvalidArgumentError(fmt::format("{}: {}", where, msg));
}

// A NUL-terminated header string field.
absl::Status checkString(const char *field, size_t cap, const char *name, size_t offset) {
  if (std::memchr(field, 0, cap) == nullptr)
    return absl::InvalidArgumentError(
        fmt::format("artifact header field {} (byte {}) is not NUL-terminated within its {} bytes",
                    name, offset, cap));
  return absl::OkStatus();
}

std::string fieldString(const char *field, size_t cap) {
  return std::string(field, strnlen(field, cap));
}

// MemAvailable of /proc/meminfo in bytes (0 when unreadable).
uint64_t memAvailable() {
  std::FILE *f = std::fopen("/proc/meminfo", "r");
  if (!f)
    return 0;
  char line[256];
  uint64_t kb = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "MemAvailable: %" SCNu64 " kB", &kb) == 1)
      break;
  std::fclose(f);
  return kb * 1024;
}

// The file's n bytes in memory, as OpenOptions::memory says (Auto already
// resolved); munmap frees it.
absl::StatusOr<void *> holdFile(const std::string &path, int fd, size_t n,
                                OpenOptions::Memory how) {
  if (how != OpenOptions::Memory::Copy) {
    void *m = ::mmap(nullptr, n, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED)
      return absl::InternalError(fmt::format("{}: cannot mmap: {}", path, std::strerror(errno)));
    if (how == OpenOptions::Memory::Mlock && ::mlock(m, n) != 0) {
      const int e = errno;
      ::munmap(m, n);
      return absl::ResourceExhaustedError(
          fmt::format("{}: --mlock: cannot lock {} bytes in memory: {} (raise `ulimit -l`, or drop "
                      "--mlock)",
                      path, n, std::strerror(e)));
    }
    return m;
  }
  void *m = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED)
    return absl::ResourceExhaustedError(
        fmt::format("{}: --no-mmap: cannot allocate {} bytes to read the file into: {}", path, n,
                    std::strerror(errno)));
  ::madvise(m, n, MADV_HUGEPAGE); // advice only: fewer TLB misses where THP is available
  for (size_t done = 0; done < n;) {
    const ssize_t r = ::pread(fd, static_cast<uint8_t *>(m) + done, n - done, off_t(done));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      const int e = r < 0 ? errno : 0;
      ::munmap(m, n);
      return absl::DataLossError(fmt::format("{}: --no-mmap: read failed at byte {} of {}: {}",
                                             path, done, n,
                                             e ? std::strerror(e) : "unexpected end of file"));
    }
    done += size_t(r);
  }
  ::mprotect(m, n, PROT_READ); // the weights are read-only, as when mapped
  return m;
}

} // namespace

Artifact::~Artifact() {
  if (map_)
    ::munmap(map_, mapBytes_);
}

const char *Artifact::memoryName() const {
  switch (memory_) {
  case OpenOptions::Memory::Mlock:
    return "mlock";
  case OpenOptions::Memory::Copy:
    return "copy";
  default:
    return "map";
  }
}

uint64_t Artifact::hugePageBytes() const {
  if (!map_)
    return 0;
  std::FILE *f = std::fopen("/proc/self/smaps", "r");
  if (!f)
    return 0;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(map_), hi = lo + mapBytes_;
  char line[512];
  bool inside = false;
  uint64_t total = 0;
  while (std::fgets(line, sizeof line, f)) {
    uintptr_t a = 0, b = 0;
    if (std::sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &a, &b) == 2) {
      inside = a < hi && b > lo; // a mapping of ours (the kernel may split it)
      continue;
    }
    uint64_t kb = 0;
    if (inside && (std::sscanf(line, "AnonHugePages: %" SCNu64 " kB", &kb) == 1 ||
                   std::sscanf(line, "FilePmdMapped: %" SCNu64 " kB", &kb) == 1))
      total += kb * 1024;
  }
  std::fclose(f);
  return total;
}

absl::StatusOr<std::unique_ptr<Artifact>> Artifact::open(const std::string &path,
                                                         const OpenOptions &options) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return absl::NotFoundError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return absl::InternalError(fmt::format("{}: cannot stat: {}", path, std::strerror(e)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(fmt::format("{}: not a regular file", path));
  }
  std::unique_ptr<Artifact> a(new Artifact());
  a->path_ = path;
  const size_t n = size_t(st.st_size);
  OpenOptions::Memory how = options.memory;
  if (how == OpenOptions::Memory::Auto) {
    const uint64_t avail = memAvailable();
    how = avail > 0 && uint64_t(n) <= avail / 2 ? OpenOptions::Memory::Copy
                                                : OpenOptions::Memory::Map;
  }
  a->memory_ = how;
  if (n > 0) {
    absl::StatusOr<void *> m = holdFile(path, fd, n, how);
    if (!m.ok()) {
      ::close(fd);
      return m.status();
    }
    a->map_ = *m;
    a->mapBytes_ = n;
    a->bytes_ = std::span<const uint8_t>(static_cast<const uint8_t *>(*m), n);
  }
  ::close(fd);
  if (absl::Status s = a->validate(options); !s.ok())
    return absl::Status(s.code(), fmt::format("{}: {}", path, std::string(s.message())));
  return a;
}

absl::StatusOr<std::unique_ptr<Artifact>> Artifact::fromBuffer(std::span<const uint8_t> bytes,
                                                               const OpenOptions &options) {
  std::unique_ptr<Artifact> a(new Artifact());
  a->path_ = "<buffer>";
  a->bytes_ = bytes;
  if (absl::Status s = a->validate(options); !s.ok())
    return s;
  return a;
}

absl::Status Artifact::validate(const OpenOptions &options) {
  const uint64_t size = bytes_.size();
  if (size < sizeof(tern_artifact_header))
    return absl::InvalidArgumentError(fmt::format(
        "file is {} bytes, shorter than the {}-byte artifact header (truncated, or not a .tern)",
        size, sizeof(tern_artifact_header)));
  std::memcpy(&header_, bytes_.data(), sizeof header_);
  const tern_artifact_header &h = header_;
  if (std::memcmp(h.magic, TERN_ARTIFACT_MAGIC, 8) != 0)
    return absl::InvalidArgumentError(
        "bad magic at byte 0: not a .tern artifact (expected \"TERNART\\x01\")");
  if (h.format_version != TERN_ARTIFACT_FORMAT_VERSION)
    return absl::FailedPreconditionError(fmt::format(
        "header field format_version (byte {}) is {}; this runtime reads version {}{}: recompile "
        "the model with this ternc (ternc compile MODEL.gguf -o OUT.tern)",
        offsetof(tern_artifact_header, format_version), h.format_version,
        TERN_ARTIFACT_FORMAT_VERSION,
        h.format_version < TERN_ARTIFACT_FORMAT_VERSION
            ? " (the artifact was made by an older ternc)"
            : ""));
  if (h.header_bytes != sizeof(tern_artifact_header))
    return absl::InvalidArgumentError(
        fmt::format("header field header_bytes (byte {}) is {}, expected {}",
                    offsetof(tern_artifact_header, header_bytes), h.header_bytes,
                    sizeof(tern_artifact_header)));
  const uint64_t hh = headerHash(h);
  if (hh != h.header_hash)
    return absl::DataLossError(fmt::format(
        "header_hash mismatch (byte {}): stored {:#018x}, computed {:#018x} — the header is "
        "corrupt",
        offsetof(tern_artifact_header, header_hash), h.header_hash, hh));
  if (h.abi_version != TERN_ABI_VERSION)
    return absl::FailedPreconditionError(fmt::format(
        "header field abi_version (byte {}) is {}; this runtime implements ABI {} — recompile "
        "the model with a matching ternc",
        offsetof(tern_artifact_header, abi_version), h.abi_version, TERN_ABI_VERSION));
  if (h.file_bytes != size)
    return absl::DataLossError(fmt::format(
        "header field file_bytes (byte {}) says {} bytes, the file has {} (truncated or "
        "appended to)",
        offsetof(tern_artifact_header, file_bytes), h.file_bytes, size));
  if (absl::Status s = checkString(h.target_triple, sizeof h.target_triple, "target_triple",
                                   offsetof(tern_artifact_header, target_triple));
      !s.ok())
    return s;
  if (absl::Status s = checkString(h.cpu, sizeof h.cpu, "cpu", offsetof(tern_artifact_header, cpu));
      !s.ok())
    return s;
  if (absl::Status s = checkString(h.cpu_features, sizeof h.cpu_features, "cpu_features",
                                   offsetof(tern_artifact_header, cpu_features));
      !s.ok())
    return s;
  if (absl::Status s =
          checkString(h.compiler_version, sizeof h.compiler_version, "compiler_version",
                      offsetof(tern_artifact_header, compiler_version));
      !s.ok())
    return s;

  // Section table.
  constexpr uint32_t kMaxSections = 64;
  if (h.section_count == 0 || h.section_count > kMaxSections)
    return absl::InvalidArgumentError(
        fmt::format("header field section_count (byte {}) is {}; expected 1..{}",
                    offsetof(tern_artifact_header, section_count), h.section_count, kMaxSections));
  const uint64_t tableBytes = uint64_t(h.section_count) * sizeof(tern_artifact_section);
  if (h.section_table_offset < sizeof(tern_artifact_header) || h.section_table_offset % 8 != 0 ||
      h.section_table_offset > size || tableBytes > size - h.section_table_offset)
    return absl::InvalidArgumentError(fmt::format(
        "section table at byte {} ({} entries, {} bytes) is misplaced or past the end of the "
        "{}-byte file",
        h.section_table_offset, h.section_count, tableBytes, size));
  table_.resize(h.section_count);
  std::memcpy(table_.data(), bytes_.data() + h.section_table_offset, tableBytes);
  const uint64_t tableEnd = h.section_table_offset + tableBytes;

  int seen[6] = {-1, -1, -1, -1, -1, -1};
  for (uint32_t i = 0; i < h.section_count; ++i) {
    const tern_artifact_section &s = table_[i];
    const uint64_t entryOff = h.section_table_offset + uint64_t(i) * sizeof(tern_artifact_section);
    const std::string where = fmt::format("section {} ({}, table entry at byte {})", i,
                                          sectionKindName(s.kind), entryOff);
    if (s.kind < TERN_SECTION_METADATA || s.kind > TERN_SECTION_GPU_CODE)
      return bad(where, fmt::format("unknown section kind {}", s.kind));
    if (seen[s.kind] >= 0)
      return bad(where, fmt::format("a second {} section (the first is section {})",
                                    sectionKindName(s.kind), seen[s.kind]));
    seen[s.kind] = int(i);
    if (s.flags != 0)
      return bad(where, fmt::format("flags = {:#x}, expected 0", s.flags));
    if (s.offset % TERN_ARTIFACT_ALIGN != 0)
      return bad(where,
                 fmt::format("offset {} is not a multiple of {}", s.offset, TERN_ARTIFACT_ALIGN));
    if (s.offset < tableEnd)
      return bad(where, fmt::format("offset {} overlaps the header or section table (which end "
                                    "at byte {})",
                                    s.offset, tableEnd));
    if (s.offset > size || s.size > size - s.offset)
      return absl::DataLossError(
          fmt::format("{}: bytes [{}, {}) run past the end of the {}-byte file", where, s.offset,
                      s.offset + s.size, size));
  }
  for (uint32_t k = TERN_SECTION_METADATA; k <= TERN_SECTION_CODE; ++k)
    if (seen[k] < 0)
      return absl::InvalidArgumentError(
          fmt::format("the required {} section is missing", sectionKindName(k)));
  // Non-overlapping.
  std::vector<uint32_t> order(h.section_count);
  for (uint32_t i = 0; i < h.section_count; ++i)
    order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](uint32_t a, uint32_t b) { return table_[a].offset < table_[b].offset; });
  for (size_t i = 1; i < order.size(); ++i) {
    const tern_artifact_section &p = table_[order[i - 1]], &c = table_[order[i]];
    if (p.offset + p.size > c.offset)
      return absl::InvalidArgumentError(fmt::format(
          "section {} ({}, bytes [{}, {})) overlaps section {} ({}, starting at byte {})",
          order[i - 1], sectionKindName(p.kind), p.offset, p.offset + p.size, order[i],
          sectionKindName(c.kind), c.offset));
  }
  // Hashes.
  for (uint32_t i = 0; i < h.section_count; ++i) {
    const tern_artifact_section &s = table_[i];
    if (s.kind == TERN_SECTION_WEIGHTS && !options.verifyWeightsHash)
      continue;
    const uint64_t got = contentHash(bytes_.subspan(s.offset, s.size));
    if (got != s.hash)
      return absl::DataLossError(fmt::format(
          "section {} ({}, bytes [{}, {})): hash mismatch: table says {:#018x}, contents hash to "
          "{:#018x} — the file is corrupt",
          i, sectionKindName(s.kind), s.offset, s.offset + s.size, s.hash, got));
  }

  // Contents.
  {
    std::span<const uint8_t> m = metadataBytes();
    metadata_ = nlohmann::json::parse(m.begin(), m.end(), nullptr, /*allow_exceptions=*/false);
    if (metadata_.is_discarded() || !metadata_.is_object())
      return absl::InvalidArgumentError(
          fmt::format("metadata section (byte {}) is not a JSON object",
                      table_[seen[TERN_SECTION_METADATA]].offset));
  }
  {
    absl::StatusOr<std::unique_ptr<gguf::File>> t = gguf::File::fromBuffer(tokenizerBytes());
    if (!t.ok())
      return absl::Status(t.status().code(),
                          fmt::format("tokenizer section (byte {}) is not a valid GGUF: {}",
                                      table_[seen[TERN_SECTION_TOKENIZER]].offset,
                                      std::string(t.status().message())));
    tokenizer_ = std::move(*t);
  }
  if (absl::Status s =
          checkElfSharedObject(code(), options.elfMachine ? options.elfMachine : hostElfMachine(),
                               table_[seen[TERN_SECTION_CODE]].offset);
      !s.ok())
    return s;
  if (options.checkCpuFeatures)
    if (absl::Status s = checkCpuFeatures(cpuFeatures()); !s.ok())
      return s;
  return absl::OkStatus();
}

std::string Artifact::targetTriple() const {
  return fieldString(header_.target_triple, sizeof header_.target_triple);
}
std::string Artifact::cpu() const { return fieldString(header_.cpu, sizeof header_.cpu); }
std::string Artifact::cpuFeatures() const {
  return fieldString(header_.cpu_features, sizeof header_.cpu_features);
}
std::string Artifact::compilerVersion() const {
  return fieldString(header_.compiler_version, sizeof header_.compiler_version);
}

std::span<const uint8_t> Artifact::section(uint32_t kind) const {
  for (const tern_artifact_section &s : table_)
    if (s.kind == kind)
      return bytes_.subspan(s.offset, s.size);
  return {};
}

} // namespace tern::artifact
