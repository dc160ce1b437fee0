// Assembling the .tern artifact from a module lowered by tern-lower-to-llvm,
// the packed-weight blob, the source GGUF and the linked shared object.
//
// Sections, in this order (runtime/abi/tern_abi.h, runtime/artifact):
//   METADATA   JSON (see docs/codegen.md "Artifact")
//   TOKENIZER  a GGUF with only the source's tokenizer.* keys and
//              general.architecture
//   WEIGHTS    [0, packed_bytes): the packed blob of tern-pack-weights
//              (every packed_offset is relative to the section start);
//              then every non-packed tensor the code reads (norm vectors,
//              the embedding table) copied byte for byte from the GGUF at
//              the 64-byte aligned offsets of the module's tern.weights;
//              zero padding between; total tern.weights_bytes
//   CODE       the ELF shared object (tern_model_forward, tern_model_describe)
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "compiler/target/TargetInfo.h"
#include "mlir/IR/BuiltinOps.h"

namespace tern::compiler {

struct ArtifactInputs {
  mlir::ModuleOp module;      // after tern-lower-to-llvm (reads its tern.* attributes)
  std::string sourcePath;     // the GGUF
  std::string packedBlobPath; // tern-pack-weights out=
  MachineTarget target;
  std::string kernelOption;  // --kernel as given
  std::vector<uint8_t> code; // the shared object
  std::string compilerVersion;
};

// Writes OUT (via PATH.tmp + rename). `progress` gets one line per step.
bool writeArtifact(const ArtifactInputs &in, const std::string &outPath, std::string &err);

} // namespace tern::compiler
