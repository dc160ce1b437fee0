// ArtifactWriter and hash64. See artifact.h.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include "fmt/format.h"
#include "runtime/artifact/artifact.h"

namespace tern::artifact {

uint64_t hash64(std::span<const uint8_t> bytes) {
  Hasher h;
  h.update(bytes);
  return h.value();
}

void Hasher::update(std::span<const uint8_t> bytes) {
  uint64_t h = h_;
  for (uint8_t b : bytes) {
    h ^= b;
    h *= kFnvPrime;
  }
  h_ = h;
}

absl::StatusOr<uint64_t> hashFile(const std::string &path, uint64_t *bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return absl::NotFoundError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  Hasher h;
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
  return h.value();
}

uint64_t headerHash(const tern_artifact_header &h) {
  tern_artifact_header c;
  std::memcpy(&c, &h, sizeof c);
  c.header_hash = 0;
  return hash64(std::span<const uint8_t>(reinterpret_cast<const uint8_t *>(&c), sizeof c));
}

const char *sectionKindName(uint32_t kind) {
  switch (kind) {
  case TERN_SECTION_METADATA:
    return "metadata";
  case TERN_SECTION_TOKENIZER:
    return "tokenizer";
  case TERN_SECTION_WEIGHTS:
    return "weights";
  case TERN_SECTION_CODE:
    return "code";
  default:
    return "unknown";
  }
}

ArtifactWriter::ArtifactWriter(HeaderFields fields) : fields_(std::move(fields)) {}

void ArtifactWriter::addSection(uint32_t kind, std::span<const uint8_t> bytes) {
  sections_.push_back({kind, bytes.size(), std::vector<uint8_t>(bytes.begin(), bytes.end()), {}});
}

void ArtifactWriter::addSection(uint32_t kind, std::string_view bytes) {
  addSection(kind, std::span<const uint8_t>(reinterpret_cast<const uint8_t *>(bytes.data()),
                                            bytes.size()));
}

void ArtifactWriter::addSection(uint32_t kind, std::vector<uint8_t> &&bytes) {
  const uint64_t n = bytes.size();
  sections_.push_back({kind, n, std::move(bytes), {}});
}

void ArtifactWriter::addSection(uint32_t kind, uint64_t size, Producer produce) {
  sections_.push_back({kind, size, {}, std::move(produce)});
}

namespace {

uint64_t alignUp(uint64_t x) {
  return (x + TERN_ARTIFACT_ALIGN - 1) / TERN_ARTIFACT_ALIGN * TERN_ARTIFACT_ALIGN;
}

absl::Status copyField(char *dst, size_t cap, const std::string &v, const char *field) {
  if (v.size() >= cap)
    return absl::InvalidArgumentError(
        fmt::format("artifact header field {} ('{}') is {} bytes; at most {} fit", field, v,
                    v.size(), cap - 1));
  if (v.find('\0') != std::string::npos)
    return absl::InvalidArgumentError(
        fmt::format("artifact header field {} contains a NUL", field));
  std::memset(dst, 0, cap);
  std::memcpy(dst, v.data(), v.size());
  return absl::OkStatus();
}

} // namespace

absl::Status
ArtifactWriter::emit(const std::function<absl::Status(uint64_t, std::span<const uint8_t>)> &out,
                     uint64_t &fileBytes) const {
  tern_artifact_header h;
  std::memset(&h, 0, sizeof h);
  std::memcpy(h.magic, TERN_ARTIFACT_MAGIC, 8);
  h.format_version = TERN_ARTIFACT_FORMAT_VERSION;
  h.header_bytes = sizeof(tern_artifact_header);
  h.abi_version = fields_.abiVersion;
  h.section_count = static_cast<uint32_t>(sections_.size());
  h.section_table_offset = sizeof(tern_artifact_header);
  if (absl::Status s =
          copyField(h.target_triple, sizeof h.target_triple, fields_.targetTriple, "target_triple");
      !s.ok())
    return s;
  if (absl::Status s = copyField(h.cpu, sizeof h.cpu, fields_.cpu, "cpu"); !s.ok())
    return s;
  if (absl::Status s =
          copyField(h.cpu_features, sizeof h.cpu_features, fields_.cpuFeatures, "cpu_features");
      !s.ok())
    return s;
  if (absl::Status s = copyField(h.compiler_version, sizeof h.compiler_version,
                                 fields_.compilerVersion, "compiler_version");
      !s.ok())
    return s;
  h.source_hash = fields_.sourceHash;
  h.source_bytes = fields_.sourceBytes;

  std::vector<tern_artifact_section> table(sections_.size());
  uint64_t off = alignUp(h.section_table_offset + sizeof(tern_artifact_section) * sections_.size());
  static const uint8_t zeros[TERN_ARTIFACT_ALIGN] = {};
  uint64_t cursor = h.section_table_offset + sizeof(tern_artifact_section) * sections_.size();
  for (size_t i = 0; i < sections_.size(); ++i) {
    const Section &s = sections_[i];
    // Zero padding up to the section.
    if (off > cursor)
      if (absl::Status st = out(cursor, std::span<const uint8_t>(zeros, off - cursor)); !st.ok())
        return st;
    Hasher hasher;
    uint64_t written = 0;
    if (s.produce) {
      Sink sink = [&](std::span<const uint8_t> chunk) -> absl::Status {
        if (written + chunk.size() > s.size)
          return absl::InvalidArgumentError(
              fmt::format("section {} ({}): the producer wrote more than the declared {} bytes", i,
                          sectionKindName(s.kind), s.size));
        hasher.update(chunk);
        absl::Status st = out(off + written, chunk);
        written += chunk.size();
        return st;
      };
      if (absl::Status st = s.produce(sink); !st.ok())
        return st;
      if (written != s.size)
        return absl::InvalidArgumentError(
            fmt::format("section {} ({}): the producer wrote {} bytes, {} declared", i,
                        sectionKindName(s.kind), written, s.size));
    } else {
      hasher.update(s.bytes);
      if (!s.bytes.empty())
        if (absl::Status st = out(off, s.bytes); !st.ok())
          return st;
    }
    table[i].kind = s.kind;
    table[i].flags = 0;
    table[i].offset = off;
    table[i].size = s.size;
    table[i].hash = hasher.value();
    cursor = off + s.size;
    off = alignUp(cursor);
  }
  h.file_bytes = cursor;
  h.header_hash = headerHash(h);
  if (!table.empty())
    if (absl::Status st =
            out(h.section_table_offset,
                std::span<const uint8_t>(reinterpret_cast<const uint8_t *>(table.data()),
                                         table.size() * sizeof(table[0])));
        !st.ok())
      return st;
  if (absl::Status st =
          out(0, std::span<const uint8_t>(reinterpret_cast<const uint8_t *>(&h), sizeof h));
      !st.ok())
    return st;
  fileBytes = cursor;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint8_t>> ArtifactWriter::writeToBuffer() const {
  std::vector<uint8_t> buf;
  uint64_t n = 0;
  absl::Status s = emit(
      [&](uint64_t off, std::span<const uint8_t> b) {
        if (buf.size() < off + b.size())
          buf.resize(off + b.size());
        std::memcpy(buf.data() + off, b.data(), b.size());
        return absl::OkStatus();
      },
      n);
  if (!s.ok())
    return s;
  buf.resize(n);
  return buf;
}

absl::Status ArtifactWriter::write(const std::string &path) const {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return absl::PermissionDeniedError(
        fmt::format("{}: cannot create: {}", tmp, std::strerror(errno)));
  uint64_t n = 0;
  absl::Status s = emit(
      [&](uint64_t off, std::span<const uint8_t> b) -> absl::Status {
        size_t done = 0;
        while (done < b.size()) {
          ssize_t w = ::pwrite(fd, b.data() + done, b.size() - done, off_t(off + done));
          if (w < 0) {
            if (errno == EINTR)
              continue;
            return absl::InternalError(fmt::format("{}: write at byte {} failed: {}", tmp,
                                                   off + done, std::strerror(errno)));
          }
          done += size_t(w);
        }
        return absl::OkStatus();
      },
      n);
  if (s.ok() && ::ftruncate(fd, off_t(n)) != 0)
    s = absl::InternalError(fmt::format("{}: truncate failed: {}", tmp, std::strerror(errno)));
  if (::close(fd) != 0 && s.ok())
    s = absl::InternalError(fmt::format("{}: close failed: {}", tmp, std::strerror(errno)));
  if (s.ok() && std::rename(tmp.c_str(), path.c_str()) != 0)
    s = absl::InternalError(
        fmt::format("cannot rename {} to {}: {}", tmp, path, std::strerror(errno)));
  if (!s.ok())
    ::unlink(tmp.c_str());
  return s;
}

} // namespace tern::artifact
