// ArtifactOutput and ArtifactWriter. See artifact.h.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include "fmt/format.h"
#include "runtime/artifact/artifact.h"

namespace tern::artifact {

uint64_t headerHash(const tern_artifact_header &h) {
  tern_artifact_header c;
  std::memcpy(&c, &h, sizeof c);
  c.header_hash = 0;
  return contentHash(std::span<const uint8_t>(reinterpret_cast<const uint8_t *>(&c), sizeof c));
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
  case TERN_SECTION_GPU_CODE:
    return "gpu_code";
  default:
    return "unknown";
  }
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

// ---- ArtifactOutput ----------------------------------------------------------

absl::StatusOr<std::unique_ptr<ArtifactOutput>> ArtifactOutput::create(const std::string &path,
                                                                       uint32_t sectionCount) {
  std::unique_ptr<ArtifactOutput> o(new ArtifactOutput());
  o->path_ = path;
  o->tmp_ = path + ".tmp";
  o->fd_ = ::open(o->tmp_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (o->fd_ < 0)
    return absl::PermissionDeniedError(
        fmt::format("{}: cannot create: {}", o->tmp_, std::strerror(errno)));
  o->sectionCount_ = sectionCount;
  o->cursor_ =
      sizeof(tern_artifact_header) + uint64_t(sectionCount) * sizeof(tern_artifact_section);
  return o;
}

std::unique_ptr<ArtifactOutput> ArtifactOutput::inMemory(uint32_t sectionCount) {
  std::unique_ptr<ArtifactOutput> o(new ArtifactOutput());
  o->sectionCount_ = sectionCount;
  o->cursor_ =
      sizeof(tern_artifact_header) + uint64_t(sectionCount) * sizeof(tern_artifact_section);
  return o;
}

ArtifactOutput::~ArtifactOutput() {
  if (fd_ >= 0)
    ::close(fd_);
  if (!tmp_.empty() && !committed_)
    ::unlink(tmp_.c_str());
}

absl::Status ArtifactOutput::put(uint64_t off, std::span<const uint8_t> b) {
  if (fd_ < 0) {
    std::lock_guard<std::mutex> lock(memMutex_);
    if (mem_.size() < off + b.size())
      mem_.resize(off + b.size());
    if (!b.empty())
      std::memcpy(mem_.data() + off, b.data(), b.size());
    return absl::OkStatus();
  }
  size_t done = 0;
  while (done < b.size()) {
    ssize_t w = ::pwrite(fd_, b.data() + done, b.size() - done, off_t(off + done));
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return absl::InternalError(
          fmt::format("{}: write at byte {} failed: {}", tmp_, off + done, std::strerror(errno)));
    }
    done += size_t(w);
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ArtifactOutput::hashRange(uint64_t off, uint64_t size) {
  if (fd_ < 0) {
    if (mem_.size() < off + size)
      mem_.resize(off + size);
    return contentHash(std::span<const uint8_t>(mem_.data() + off, size));
  }
  ContentHasher h;
  std::vector<uint8_t> buf(std::min<uint64_t>(size, 4u << 20));
  for (uint64_t at = 0; at < size;) {
    const size_t want = size_t(std::min<uint64_t>(buf.size(), size - at));
    ssize_t n = ::pread(fd_, buf.data(), want, off_t(off + at));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return absl::InternalError(
          fmt::format("{}: read at byte {} failed: {}", tmp_, off + at, std::strerror(errno)));
    if (n == 0) { // a hole at the end of the file: zeros
      std::fill(buf.begin(), buf.begin() + want, 0);
      n = ssize_t(want);
    }
    h.update(std::span<const uint8_t>(buf.data(), size_t(n)));
    at += uint64_t(n);
  }
  return h.digest();
}

absl::StatusOr<uint64_t> ArtifactOutput::beginSection(uint32_t kind) {
  if (open_)
    return absl::FailedPreconditionError("artifact: a section is already open");
  if (committed_ || table_.size() >= sectionCount_)
    return absl::FailedPreconditionError(
        fmt::format("artifact: more sections than the {} declared", sectionCount_));
  tern_artifact_section s{};
  s.kind = kind;
  s.offset = alignUp(cursor_);
  table_.push_back(s);
  open_ = true;
  openExtent_ = 0;
  return s.offset;
}

absl::Status ArtifactOutput::writeAt(uint64_t offset, std::span<const uint8_t> bytes) {
  if (!open_)
    return absl::FailedPreconditionError("artifact: writeAt with no open section");
  const uint64_t end = offset + bytes.size();
  uint64_t seen = openExtent_.load(std::memory_order_relaxed);
  while (seen < end && !openExtent_.compare_exchange_weak(seen, end, std::memory_order_relaxed)) {
  }
  return put(table_.back().offset + offset, bytes);
}

absl::Status ArtifactOutput::endSection(uint64_t size) {
  if (!open_)
    return absl::FailedPreconditionError("artifact: endSection with no open section");
  tern_artifact_section &s = table_.back();
  if (openExtent_ > size)
    return absl::InvalidArgumentError(
        fmt::format("section {} ({}): {} bytes written, more than its declared size {}",
                    table_.size() - 1, sectionKindName(s.kind), openExtent_.load(), size));
  s.size = size;
  absl::StatusOr<uint64_t> h = hashRange(s.offset, size);
  if (!h.ok())
    return h.status();
  s.hash = *h;
  cursor_ = s.offset + size;
  open_ = false;
  return absl::OkStatus();
}

absl::Status ArtifactOutput::addSection(uint32_t kind, std::span<const uint8_t> bytes) {
  absl::StatusOr<uint64_t> off = beginSection(kind);
  if (!off.ok())
    return off.status();
  if (absl::Status s = put(*off, bytes); !s.ok())
    return s;
  tern_artifact_section &s = table_.back();
  s.size = bytes.size();
  s.hash = contentHash(bytes);
  cursor_ = s.offset + s.size;
  open_ = false;
  return absl::OkStatus();
}

absl::Status ArtifactOutput::commit(const HeaderFields &fields) {
  if (open_ || table_.size() != sectionCount_)
    return absl::FailedPreconditionError(fmt::format("artifact: {} of {} sections written{}",
                                                     table_.size(), sectionCount_,
                                                     open_ ? ", the last still open" : ""));
  tern_artifact_header h;
  std::memset(&h, 0, sizeof h);
  std::memcpy(h.magic, TERN_ARTIFACT_MAGIC, 8);
  h.format_version = TERN_ARTIFACT_FORMAT_VERSION;
  h.header_bytes = sizeof(tern_artifact_header);
  h.abi_version = fields.abiVersion;
  h.section_count = sectionCount_;
  h.section_table_offset = sizeof(tern_artifact_header);
  if (absl::Status s =
          copyField(h.target_triple, sizeof h.target_triple, fields.targetTriple, "target_triple");
      !s.ok())
    return s;
  if (absl::Status s = copyField(h.cpu, sizeof h.cpu, fields.cpu, "cpu"); !s.ok())
    return s;
  if (absl::Status s =
          copyField(h.cpu_features, sizeof h.cpu_features, fields.cpuFeatures, "cpu_features");
      !s.ok())
    return s;
  if (absl::Status s = copyField(h.compiler_version, sizeof h.compiler_version,
                                 fields.compilerVersion, "compiler_version");
      !s.ok())
    return s;
  h.source_hash = fields.sourceHash;
  h.source_bytes = fields.sourceBytes;
  h.file_bytes = cursor_;
  h.header_hash = headerHash(h);
  if (!table_.empty())
    if (absl::Status s =
            put(h.section_table_offset,
                std::span<const uint8_t>(reinterpret_cast<const uint8_t *>(table_.data()),
                                         table_.size() * sizeof(table_[0])));
        !s.ok())
      return s;
  if (absl::Status s =
          put(0, std::span<const uint8_t>(reinterpret_cast<const uint8_t *>(&h), sizeof h));
      !s.ok())
    return s;
  if (fd_ < 0) {
    mem_.resize(cursor_);
    committed_ = true;
    return absl::OkStatus();
  }
  absl::Status s;
  if (::ftruncate(fd_, off_t(cursor_)) != 0)
    s = absl::InternalError(fmt::format("{}: truncate failed: {}", tmp_, std::strerror(errno)));
  if (::close(fd_) != 0 && s.ok())
    s = absl::InternalError(fmt::format("{}: close failed: {}", tmp_, std::strerror(errno)));
  fd_ = -1;
  if (s.ok() && std::rename(tmp_.c_str(), path_.c_str()) != 0)
    s = absl::InternalError(
        fmt::format("cannot rename {} to {}: {}", tmp_, path_, std::strerror(errno)));
  committed_ = s.ok();
  return s;
}

std::vector<uint8_t> ArtifactOutput::takeBytes() { return std::move(mem_); }

// ---- ArtifactWriter ----------------------------------------------------------

ArtifactWriter::ArtifactWriter(HeaderFields fields) : fields_(std::move(fields)) {}

void ArtifactWriter::addSection(uint32_t kind, std::span<const uint8_t> bytes) {
  sections_.push_back({kind, std::vector<uint8_t>(bytes.begin(), bytes.end())});
}

void ArtifactWriter::addSection(uint32_t kind, std::string_view bytes) {
  addSection(kind, std::span<const uint8_t>(reinterpret_cast<const uint8_t *>(bytes.data()),
                                            bytes.size()));
}

void ArtifactWriter::addSection(uint32_t kind, std::vector<uint8_t> &&bytes) {
  sections_.push_back({kind, std::move(bytes)});
}

absl::Status ArtifactWriter::writeTo(ArtifactOutput &out) const {
  for (const Section &s : sections_)
    if (absl::Status st = out.addSection(s.kind, s.bytes); !st.ok())
      return st;
  return out.commit(fields_);
}

absl::StatusOr<std::vector<uint8_t>> ArtifactWriter::writeToBuffer() const {
  std::unique_ptr<ArtifactOutput> out = ArtifactOutput::inMemory(uint32_t(sections_.size()));
  if (absl::Status s = writeTo(*out); !s.ok())
    return s;
  return out->takeBytes();
}

absl::Status ArtifactWriter::write(const std::string &path) const {
  absl::StatusOr<std::unique_ptr<ArtifactOutput>> out =
      ArtifactOutput::create(path, uint32_t(sections_.size()));
  if (!out.ok())
    return out.status();
  return writeTo(**out);
}

} // namespace tern::artifact
