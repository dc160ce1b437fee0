// The source GGUF of a compile, opened once: one mmap of the file and one
// quant-mapping verification (runtime/formats/mapping.h), shared by the
// importer, tern-verify-quant-mapping, tern-pack-weights and the artifact
// assembly. (tern-opt, which runs passes on their own, has none: those
// passes then open the module's tern.source themselves.)
#pragma once

#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/formats/mapping.h"
#include "runtime/gguf/gguf.h"

namespace tern::compiler {

struct SourceModel {
  std::string path;
  std::unique_ptr<gguf::File> file; // a read-only mapping of the whole file
  formats::ModelMapping mapping;
  formats::I2SLayout i2sLayout = formats::I2SLayout::X86_QK128; // the mapping was verified for it

  // Drops the pages of `bytes` (a range of file->bytes()) from this
  // process's resident memory. The mapping stays valid: a later read faults
  // them back in from the page cache. A compile reads every weight once, so
  // without this the whole GGUF would stay resident until the end.
  void release(std::span<const uint8_t> bytes) const;
};

// Opens, maps and parses `path` and verifies its quant mapping for the I2_S
// layout `i2sLayout` (names are parsed once, by formats::parseI2SLayout, at
// the flag). Errors ("cannot read GGUF: ...") name the file.
absl::StatusOr<std::shared_ptr<const SourceModel>> openSourceModel(const std::string &path,
                                                                   formats::I2SLayout i2sLayout);

} // namespace tern::compiler
