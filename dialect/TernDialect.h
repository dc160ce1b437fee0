// The tern dialect: attributes, enums and ops (generated from TernOps.td),
// plus the format facts the verifiers need.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialect/TernEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialect/TernAttrs.h.inc"

#include "dialect/TernDialect.h.inc"

#define GET_OP_CLASSES
#include "dialect/TernOps.h.inc"

namespace tern::ir {

// A ternary storage format (codes in {-1, 0, +1} plus scales).
bool isTernaryFormat(WeightFormat f);
// F32 / F16 / BF16.
bool isFloatFormat(WeightFormat f);
// Byte size of a row-major tensor of `shape` (outer first) in format `f`, or
// nullopt when the shape cannot be stored in it (row length not a multiple
// of the block). TL2's size depends on the producing build's tiles: nullopt.
std::optional<uint64_t> formatByteSize(WeightFormat f, llvm::ArrayRef<int64_t> shape);
// Elements per block along the row (1 for plain types).
int64_t formatBlockElems(WeightFormat f);

// Which layouts can serve a weight stored as `f`: every ternary layout for
// ternary formats and floats holding ternary values (repacked at compile
// time); the dense layouts only for non-ternary roles.
bool isTernaryLayout(KernelLayout l);

// Why a (layout, isa, tile_m, tile_k) kernel cannot be, or "" when it can:
// the rules #tern.kernel's verifier enforces (positive tiles, tile_k a
// multiple of the layout's K group, the lookup-table layouts on their ISA
// family, and tile_m a multiple of the 16 rows the tl1/tl2 kernels process
// per vector, tl2 at most 1024: their fast kernels have no scalar fallback).
std::string kernelTileError(KernelLayout layout, Isa isa, int64_t tileM, int64_t tileK);

} // namespace tern::ir
