// The .tern artifact: writer (used by the compiler) and validating reader
// (used by the runtime). The byte layout is defined in runtime/abi/tern_abi.h:
//   [tern_artifact_header][tern_artifact_section x N][sections...]
// every section 64-byte aligned, little-endian, each section hashed with
// hash64 (FNV-1a 64), the header hashed with its header_hash field zeroed.
//
// The reader validates everything before anything is used: a bad file is an
// absl::Status naming the field or section and its byte offset, never a
// crash. See docs/runtime.md.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/abi/tern_abi.h"
#include "runtime/gguf/gguf.h"

namespace tern::artifact {

// ---- hashing --------------------------------------------------------------

inline constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;
inline constexpr uint64_t kFnvPrime = 0x100000001b3ull;

// FNV-1a 64 of `bytes` (the artifact's hash64).
uint64_t hash64(std::span<const uint8_t> bytes);

// Incremental hash64: Hasher h; h.update(a); h.update(b); h.value() ==
// hash64(a ++ b).
class Hasher {
public:
  void update(std::span<const uint8_t> bytes);
  uint64_t value() const { return h_; }

private:
  uint64_t h_ = kFnvOffset;
};

// hash64 of a whole file, read in chunks (for source_hash / cache keys).
absl::StatusOr<uint64_t> hashFile(const std::string &path, uint64_t *bytes = nullptr);

// hash64 of a header with its header_hash field taken as 0.
uint64_t headerHash(const tern_artifact_header &h);

const char *sectionKindName(uint32_t kind); // "metadata", ... or "unknown"

// ---- writer ---------------------------------------------------------------

struct HeaderFields {
  std::string targetTriple;    // e.g. "x86_64-unknown-linux-gnu" (< 64 bytes)
  std::string cpu;             // e.g. "x86-64-v3", "generic" (< 32 bytes)
  std::string cpuFeatures;     // required, comma-separated "+avx2,+fma" (< 256)
  std::string compilerVersion; // "ternc 0.1.0" (< 32 bytes)
  uint64_t sourceHash = 0;     // hash64 of the source GGUF
  uint64_t sourceBytes = 0;    // its size
  uint32_t abiVersion = TERN_ABI_VERSION;
};

// Builds an artifact. Sections are written in the order added; the writer
// computes offsets (64-byte aligned, zero padding), hashes and the header.
//
//   ArtifactWriter w(fields);
//   w.addSection(TERN_SECTION_METADATA, jsonText);
//   w.addSection(TERN_SECTION_WEIGHTS, bytes, [&](auto write) { ... });
//   absl::Status s = w.write("model.tern");
class ArtifactWriter {
public:
  // A streamed section's producer: calls `write` with consecutive chunks
  // whose sizes add up to exactly the size declared in addSection.
  using Sink = std::function<absl::Status(std::span<const uint8_t>)>;
  using Producer = std::function<absl::Status(const Sink &write)>;

  explicit ArtifactWriter(HeaderFields fields);

  // Copies the bytes.
  void addSection(uint32_t kind, std::span<const uint8_t> bytes);
  void addSection(uint32_t kind, std::string_view bytes);
  void addSection(uint32_t kind, std::vector<uint8_t> &&bytes);
  // Streams `size` bytes from `produce` at write time (big weights).
  void addSection(uint32_t kind, uint64_t size, Producer produce);

  // Writes the file (to PATH.tmp, then renamed onto PATH). Errors name the
  // field that does not fit, a producer that wrote the wrong size, or the
  // I/O failure.
  absl::Status write(const std::string &path) const;
  // The same bytes in memory (tests, small artifacts).
  absl::StatusOr<std::vector<uint8_t>> writeToBuffer() const;

private:
  struct Section {
    uint32_t kind;
    uint64_t size;
    std::vector<uint8_t> bytes; // when not streamed
    Producer produce;           // when streamed
  };
  absl::Status emit(const std::function<absl::Status(uint64_t off, std::span<const uint8_t>)> &out,
                    uint64_t &fileBytes) const;

  HeaderFields fields_;
  std::vector<Section> sections_;
};

// ---- host CPU -------------------------------------------------------------

// Whether this machine (and OS) supports the named feature, in LLVM's
// spelling without the sign ("avx2", "avx512vnni", "amx-tile", "dotprod").
// Unknown names are an error: the runtime will not run code it cannot check.
absl::StatusOr<bool> hostHasCpuFeature(std::string_view name);
// Checks a comma-separated required list ("+avx2,+fma,-avx512f"); entries
// with '-' are ignored. The error names the first missing feature.
absl::Status checkCpuFeatures(std::string_view features);
// The ELF e_machine of this build's host (EM_X86_64, EM_AARCH64).
uint16_t hostElfMachine();
// Checks that `code` is a 64-bit little-endian ELF shared object for
// `machine`. `sectionOffset` only decorates the error messages.
absl::Status checkElfSharedObject(std::span<const uint8_t> code, uint16_t machine,
                                  uint64_t sectionOffset = 0);

// ---- reader ---------------------------------------------------------------

struct OpenOptions {
  // Hash the weights section too (the biggest one). Other sections are always
  // hashed.
  bool verifyWeightsHash = true;
  // Check the required CPU features against this machine.
  bool checkCpuFeatures = true;
  // The ELF machine the code section must be for (0: this host's).
  uint16_t elfMachine = 0;
};

class Artifact {
public:
  // Maps the file read-only and validates it (see validate()).
  static absl::StatusOr<std::unique_ptr<Artifact>> open(const std::string &path,
                                                        const OpenOptions &options = {});
  // Validates a caller-owned buffer (must outlive the Artifact; its start
  // should be 64-byte aligned for the weights to be).
  static absl::StatusOr<std::unique_ptr<Artifact>> fromBuffer(std::span<const uint8_t> bytes,
                                                              const OpenOptions &options = {});
  ~Artifact();
  Artifact(const Artifact &) = delete;
  Artifact &operator=(const Artifact &) = delete;

  const std::string &path() const { return path_; }
  std::span<const uint8_t> bytes() const { return bytes_; }
  const tern_artifact_header &header() const { return header_; }
  const std::vector<tern_artifact_section> &sections() const { return table_; }

  std::string targetTriple() const;
  std::string cpu() const;
  std::string cpuFeatures() const;
  std::string compilerVersion() const;

  // The bytes of a section (empty if absent; all four kinds are required, so
  // a valid artifact has them).
  std::span<const uint8_t> section(uint32_t kind) const;
  std::span<const uint8_t> metadataBytes() const { return section(TERN_SECTION_METADATA); }
  std::span<const uint8_t> weights() const { return section(TERN_SECTION_WEIGHTS); }
  std::span<const uint8_t> code() const { return section(TERN_SECTION_CODE); }
  std::span<const uint8_t> tokenizerBytes() const { return section(TERN_SECTION_TOKENIZER); }

  // The metadata section, parsed (a JSON object).
  const nlohmann::json &metadata() const { return metadata_; }
  // The tokenizer section as a GGUF (points into the mapping).
  const gguf::File &tokenizer() const { return *tokenizer_; }

private:
  Artifact() = default;
  absl::Status validate(const OpenOptions &options);

  std::string path_;
  void *map_ = nullptr;
  size_t mapBytes_ = 0;
  std::span<const uint8_t> bytes_;
  tern_artifact_header header_{};
  std::vector<tern_artifact_section> table_;
  nlohmann::json metadata_;
  std::unique_ptr<gguf::File> tokenizer_;
};

} // namespace tern::artifact
