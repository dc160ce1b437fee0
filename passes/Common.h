// Helpers shared by the tern passes.
#pragma once

#include <string>

#include "dialect/TernDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "runtime/formats/ternary.h"

namespace tern::passes {

// The pass option if set, else the module's tern.source attribute, else "".
std::string sourcePath(mlir::ModuleOp module, llvm::StringRef option);
// The module's tern.i2s_layout (formats::parseI2SLayout; x86-qk128 when
// absent); an unknown name is an error on the module.
mlir::FailureOr<formats::I2SLayout> i2sLayoutOf(mlir::ModuleOp module);
std::string shapeString(llvm::ArrayRef<int64_t> shape);

// Matrix operands of an op: its weights and whether they play a ternary role.
struct MatrixInfo {
  llvm::SmallVector<ir::WeightAttr> weights;
  int64_t rows = 0, cols = 0;
  bool ternaryRole = true;
  std::string names() const;
};
// For bitlinear, ternary_matmul and lm_head; nullopt for other ops.
std::optional<MatrixInfo> matrixInfo(mlir::Operation *op);
ir::KernelAttr kernelOf(mlir::Operation *op);
ir::PackedAttr packedOf(mlir::Operation *op);

// Whether runtime/ukernels implements the matmul variant (variants.def):
// layout "i2s"..., act "i8" or "f32", isa "avx2"... ("ref" always exists).
bool hasUkernelVariant(llvm::StringRef layout, llvm::StringRef act, llvm::StringRef isa);
// Calls of fewer tokens than this read a matrix's decode copy
// (select-kernels decode-layout=, ternc --decode-layout) unless the module's
// tern.decode_below says otherwise: 6, where the i2s AVX-512 entry's AMX
// GEMM starts (kAmxMinTokens); below it tl2v beat the i2s VNNI body at every
// n measured (docs/cost-model.md "Two layouts").
constexpr int64_t kDefaultDecodeBelow = 6;

// The ISAs (not "ref") with that variant, comma-separated ("" if none).
std::string ukernelIsas(llvm::StringRef layout, llvm::StringRef act);
ir::KernelAttr decodeKernelOf(mlir::Operation *op);
ir::PackedAttr decodePackedOf(mlir::Operation *op);

} // namespace tern::passes
