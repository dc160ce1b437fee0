// The .tern artifact: writer (used by the compiler) and validating reader
// (used by the runtime). The byte layout is defined in runtime/abi/tern_abi.h:
//   [tern_artifact_header][tern_artifact_section x N][sections...]
// every section 64-byte aligned, little-endian, each section hashed with
// tern::contentHash (XXH3-64), the header hashed with its header_hash field
// zeroed.
//
// The reader validates everything before anything is used: a bad file is an
// absl::Status naming the field or section and its byte offset, never a
// crash. See docs/runtime.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/abi/tern_abi.h"
#include "runtime/gguf/gguf.h"
#include "runtime/support/hash.h"

namespace tern::artifact {

// ---- hashing --------------------------------------------------------------

// Every hash in the file is tern::contentHash (XXH3-64, runtime/support/hash.h).
// The header's: of the header with its header_hash field taken as 0.
uint64_t headerHash(const tern_artifact_header &h);

const char *sectionKindName(uint32_t kind); // "metadata", ... or "unknown"

// ---- writer ---------------------------------------------------------------

struct HeaderFields {
  std::string targetTriple;    // e.g. "x86_64-unknown-linux-gnu" (< 64 bytes)
  std::string cpu;             // e.g. "x86-64-v3", "generic" (< 32 bytes)
  std::string cpuFeatures;     // required, comma-separated "+avx2,+fma" (< 256)
  std::string compilerVersion; // "ternc 0.1.0" (< 32 bytes)
  uint64_t sourceHash = 0;     // contentHash of the source GGUF
  uint64_t sourceBytes = 0;    // its size
  uint32_t abiVersion = TERN_ABI_VERSION;
};

// Writes an artifact section by section, in file order (offsets 64-byte
// aligned, zero padding). A section is either given whole (addSection) or
// written in place by the caller between beginSection and endSection:
// writeAt is thread-safe, so the compiler packs weight matrices in parallel
// straight to their final offsets with no staging copy; bytes of a section
// never written read as zero. endSection hashes the section (reading a file
// back in chunks, so no mapping of it grows the caller's resident memory).
// The section count is fixed up front so that the first section's offset is
// known before anything else is.
//
// A file output is written to PATH.tmp and renamed onto PATH by commit();
// one destroyed before commit() removes PATH.tmp.
//
//   auto out = ArtifactOutput::create("model.tern", 4);
//   uint64_t at = *(*out)->beginSection(TERN_SECTION_WEIGHTS);
//   (*out)->writeAt(0, matrix0); (*out)->writeAt(4096, matrix1); // any thread
//   (*out)->endSection(weightsBytes);
//   (*out)->addSection(TERN_SECTION_METADATA, json); ...
//   (*out)->commit(headerFields);
class ArtifactOutput {
public:
  static absl::StatusOr<std::unique_ptr<ArtifactOutput>> create(const std::string &path,
                                                                uint32_t sectionCount);
  static std::unique_ptr<ArtifactOutput> inMemory(uint32_t sectionCount);
  ~ArtifactOutput();
  ArtifactOutput(const ArtifactOutput &) = delete;
  ArtifactOutput &operator=(const ArtifactOutput &) = delete;

  // Starts the next section; returns its offset in the file.
  absl::StatusOr<uint64_t> beginSection(uint32_t kind);
  // Writes `bytes` at `offset` from the start of the open section.
  // Thread-safe; ranges written concurrently must not overlap.
  absl::Status writeAt(uint64_t offset, std::span<const uint8_t> bytes);
  // Ends the open section at `size` bytes (an error if anything was written
  // past it) and hashes it.
  absl::Status endSection(uint64_t size);
  // beginSection + writeAt + endSection, hashed from `bytes`.
  absl::Status addSection(uint32_t kind, std::span<const uint8_t> bytes);
  // After the last section: writes the section table and the header (errors
  // name a header field that does not fit), then (files) renames PATH.tmp
  // onto PATH.
  absl::Status commit(const HeaderFields &fields);
  // inMemory() outputs: the artifact's bytes, after commit().
  std::vector<uint8_t> takeBytes();

private:
  ArtifactOutput() = default;
  absl::Status put(uint64_t fileOffset, std::span<const uint8_t> bytes);
  absl::StatusOr<uint64_t> hashRange(uint64_t fileOffset, uint64_t size);

  std::string path_, tmp_; // empty for in-memory outputs
  int fd_ = -1;
  std::vector<uint8_t> mem_;
  std::mutex memMutex_;
  uint32_t sectionCount_ = 0;
  std::vector<tern_artifact_section> table_;
  bool open_ = false, committed_ = false;
  uint64_t cursor_ = 0;                 // end of the last section
  std::atomic<uint64_t> openExtent_{0}; // furthest byte written in the open section
};

// Builds a small artifact from whole sections (tests, tools): sections are
// laid out in the order added.
//
//   ArtifactWriter w(fields);
//   w.addSection(TERN_SECTION_METADATA, jsonText);
//   absl::Status s = w.write("model.tern");
class ArtifactWriter {
public:
  explicit ArtifactWriter(HeaderFields fields);

  // Copies the bytes.
  void addSection(uint32_t kind, std::span<const uint8_t> bytes);
  void addSection(uint32_t kind, std::string_view bytes);
  void addSection(uint32_t kind, std::vector<uint8_t> &&bytes);

  // Writes the file (to PATH.tmp, then renamed onto PATH). Errors name the
  // field that does not fit or the I/O failure.
  absl::Status write(const std::string &path) const;
  // The same bytes in memory.
  absl::StatusOr<std::vector<uint8_t>> writeToBuffer() const;

private:
  struct Section {
    uint32_t kind;
    std::vector<uint8_t> bytes;
  };
  absl::Status writeTo(ArtifactOutput &out) const;

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
  // How the file's bytes are held (docs/runtime.md "Weights in memory"):
  // Map shares the page cache (this reader's default: inspection and
  // validation touch little of the file); Mlock maps and locks the pages so
  // the kernel cannot drop them; Copy reads the file into anonymous memory
  // (advised for transparent huge pages) that page-cache reclaim cannot
  // touch (llama.cpp's --no-mmap); Auto is Copy when the file takes at most
  // half of the memory the kernel reports available, else Map (what a model
  // opened to run uses).
  enum class Memory { Map, Mlock, Copy, Auto };
  Memory memory = Memory::Map;
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
  // How the bytes are held: Map, Mlock or Copy (Auto resolved; a buffer: Map).
  OpenOptions::Memory memory() const { return memory_; }
  // "map" | "mlock" | "copy".
  const char *memoryName() const;
  // Bytes of the file's memory that the kernel backs with huge pages now
  // (/proc/self/smaps; 0 where unknown).
  uint64_t hugePageBytes() const;
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
  // cuda artifacts only (empty otherwise): the GPU kernels, as metadata "gpu" describes.
  std::span<const uint8_t> gpuCode() const { return section(TERN_SECTION_GPU_CODE); }
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
  OpenOptions::Memory memory_ = OpenOptions::Memory::Map;
  std::span<const uint8_t> bytes_;
  tern_artifact_header header_{};
  std::vector<tern_artifact_section> table_;
  nlohmann::json metadata_;
  std::unique_ptr<gguf::File> tokenizer_;
};

} // namespace tern::artifact
