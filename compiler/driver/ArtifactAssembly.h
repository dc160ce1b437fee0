// Assembling the .tern artifact from a module lowered by tern-lower-to-llvm,
// the source GGUF and the linked shared object.
//
// Sections, in file order (runtime/abi/tern_abi.h, runtime/artifact):
//   WEIGHTS    first, so that its offset is known before anything else is:
//              [0, packed_bytes) is written by tern-pack-weights while the
//              passes run (each matrix at its packed_offset, relative to the
//              section start); then every non-packed tensor the code reads
//              (norm vectors, the embedding table) copied byte for byte from
//              the GGUF at the 64-byte aligned offsets of the module's
//              tern.weights; zeros between; total tern.weights_bytes
//   METADATA   JSON (see docs/codegen.md "Artifact")
//   TOKENIZER  a GGUF with only the source's tokenizer.* keys and
//              general.architecture
//   CODE       the ELF shared object (tern_model_forward, tern_model_describe)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compiler/import/Source.h"
#include "compiler/target/TargetInfo.h"
#include "mlir/IR/BuiltinOps.h"
#include "runtime/artifact/artifact.h"

namespace tern::compiler {

inline constexpr uint32_t kArtifactSections = 4;
// cuda targets: + GPU_CODE (the kernels' PTX and cubins, docs/cuda.md).
inline constexpr uint32_t kCudaArtifactSections = 5;

struct ArtifactInputs {
  mlir::ModuleOp module;     // after tern-lower-to-llvm (reads its tern.* attributes)
  const SourceModel *source; // the GGUF, as opened for the import
  MachineTarget target;
  std::string kernelOption;  // --kernel as given
  std::vector<uint8_t> code; // the shared object
  std::string compilerVersion;
  // cuda targets: the PTX of target.gpuArch and, where ptxas made one, its
  // cubin (GPU_CODE section, metadata "gpu"); both empty for CPU targets.
  std::string ptx;
  std::vector<uint8_t> cubin;
};

// `out` (created with kArtifactSections) has the weights section open, its
// packed part already written by tern-pack-weights. Copies the raw tensors,
// ends the weights section, adds the other three and commits `out`.
bool writeArtifact(const ArtifactInputs &in, artifact::ArtifactOutput &out, std::string &err);

} // namespace tern::compiler
