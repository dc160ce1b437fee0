#include "dialect/TernDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace tern::ir;

#include "dialect/TernDialect.cpp.inc"
#include "dialect/TernEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialect/TernAttrs.cpp.inc"

void TernDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialect/TernAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "dialect/TernOps.cpp.inc"
      >();
}

namespace tern::ir {

bool isTernaryFormat(WeightFormat f) {
  switch (f) {
  case WeightFormat::TQ1_0:
  case WeightFormat::TQ2_0:
  case WeightFormat::I2_S:
  case WeightFormat::TL1:
  case WeightFormat::TL2:
    return true;
  default:
    return false;
  }
}

bool isFloatFormat(WeightFormat f) {
  return f == WeightFormat::F32 || f == WeightFormat::F16 || f == WeightFormat::BF16;
}

bool isTernaryLayout(KernelLayout l) {
  switch (l) {
  case KernelLayout::I2S:
  case KernelLayout::TL1:
  case KernelLayout::TL2:
  case KernelLayout::TL2V:
  case KernelLayout::TQ1:
  case KernelLayout::TQ2:
    return true;
  default:
    return false;
  }
}

int64_t formatBlockElems(WeightFormat f) {
  switch (f) {
  case WeightFormat::Q8_0:
    return 32;
  case WeightFormat::TQ1_0:
  case WeightFormat::TQ2_0:
    return 256;
  default:
    return 1;
  }
}

std::optional<uint64_t> formatByteSize(WeightFormat f, llvm::ArrayRef<int64_t> shape) {
  if (shape.empty())
    return std::nullopt;
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d <= 0)
      return std::nullopt;
    n *= static_cast<uint64_t>(d);
  }
  const uint64_t row = static_cast<uint64_t>(shape.back());
  const auto blocked = [&](uint64_t elems, uint64_t bytes) -> std::optional<uint64_t> {
    if (row % elems != 0)
      return std::nullopt;
    return n / elems * bytes;
  };
  switch (f) {
  case WeightFormat::F32:
    return n * 4;
  case WeightFormat::F16:
  case WeightFormat::BF16:
    return n * 2;
  case WeightFormat::Q8_0:
    return blocked(32, 34);
  case WeightFormat::TQ1_0:
    return blocked(256, 54);
  case WeightFormat::TQ2_0:
    return blocked(256, 66);
  case WeightFormat::I2_S:
    // 2-bit codes, then one f32 scale padded to 32 bytes.
    if (n % 4 != 0)
      return std::nullopt;
    return n / 4 + 32;
  case WeightFormat::TL1:
    if (n % 4 != 0)
      return std::nullopt;
    return n / 4;
  case WeightFormat::TL2:
    return std::nullopt;
  }
  return std::nullopt;
}

} // namespace tern::ir

//===----------------------------------------------------------------------===//
// Attribute verifiers
//===----------------------------------------------------------------------===//

LogicalResult WeightAttr::verify(function_ref<InFlightDiagnostic()> emitError, StringRef name,
                                 ArrayRef<int64_t> shape, WeightFormat format, uint64_t offset,
                                 uint64_t bytes) {
  if (name.empty())
    return emitError() << "weight has an empty name";
  if (shape.empty() || shape.size() > 2)
    return emitError() << "weight '" << name << "' must be a vector or a matrix, got rank "
                       << shape.size();
  for (int64_t d : shape)
    if (d <= 0)
      return emitError() << "weight '" << name << "' has a non-positive dimension " << d;
  if (format == WeightFormat::TL2) {
    if (bytes == 0)
      return emitError() << "weight '" << name << "' has zero bytes";
    return success();
  }
  std::optional<uint64_t> expected = formatByteSize(format, shape);
  if (!expected)
    return emitError() << "weight '" << name << "': row length " << shape.back()
                       << " is not a multiple of the " << stringifyWeightFormat(format)
                       << " block (" << formatBlockElems(format) << ")";
  if (*expected != bytes)
    return emitError() << "weight '" << name << "' in " << stringifyWeightFormat(format)
                       << " needs " << *expected << " bytes, attribute says " << bytes;
  return success();
}

std::string tern::ir::kernelTileError(KernelLayout layout, Isa isa, int64_t tileM, int64_t tileK) {
  auto str = [](auto &&...parts) {
    std::string out;
    llvm::raw_string_ostream os(out);
    (os << ... << parts);
    return out;
  };
  if (tileM <= 0 || tileK <= 0)
    return str("kernel tiles must be positive, got tile_m = ", tileM, ", tile_k = ", tileK);
  // Layout constraints on the K tile, from how each layout groups weights.
  int64_t kQuantum = 1;
  switch (layout) {
  case KernelLayout::I2S:
    kQuantum = 128;
    break;
  case KernelLayout::TL1:
    kQuantum = 4; // two pairs per byte
    break;
  case KernelLayout::TL2:
    kQuantum = 48; // 16 triples share a sign word
    break;
  case KernelLayout::TL2V:
    kQuantum = 64; // K is not tiled (rows contiguous); tile_k only rounds K up to 64
    break;
  case KernelLayout::TQ1:
  case KernelLayout::TQ2:
    kQuantum = 256;
    break;
  case KernelLayout::Q8_0:
    kQuantum = 32;
    break;
  default:
    break;
  }
  if (tileK % kQuantum != 0)
    return str("kernel layout ", stringifyKernelLayout(layout).str(),
               " needs tile_k to be a multiple of ", kQuantum, ", got ", tileK);
  if (layout == KernelLayout::TL1 && isa != Isa::NEON && isa != Isa::NEONDotprod &&
      isa != Isa::NEONI8mm)
    return str("kernel layout tl1 (tbl lookup) needs an AArch64 target, got ",
               stringifyIsa(isa).str());
  if (layout == KernelLayout::TL2 && isa != Isa::AVX2 && isa != Isa::AVX512VNNI)
    return str("kernel layout tl2 (pshufb lookup) needs an x86-64 target, got ",
               stringifyIsa(isa).str());
  if (layout == KernelLayout::TL2V && isa != Isa::AVX2 && isa != Isa::AVX512VNNI)
    return str("kernel layout tl2v (pshufb digit tables) needs an x86-64 target, got ",
               stringifyIsa(isa).str());
  // The lookup-table kernels process 16 rows per vector (tl2 keeps up to
  // 1024 row sums on the stack); other tiles would need a scalar path.
  if (layout == KernelLayout::TL1 && tileM % 16 != 0)
    return str("kernel tile ", tileM, "x", tileK,
               " is refused: tl1 needs tile_m to be a multiple of 16 (16 rows per vector), got ",
               tileM);
  if (layout == KernelLayout::TL2 && (tileM % 16 != 0 || tileM > 1024))
    return str("kernel tile ", tileM, "x", tileK,
               " is refused: tl2 needs tile_m to be a multiple of 16 (16 rows per vector) "
               "and at most 1024, got ",
               tileM);
  return "";
}

LogicalResult KernelAttr::verify(function_ref<InFlightDiagnostic()> emitError, KernelLayout layout,
                                 Isa isa, int64_t tileM, int64_t tileK) {
  std::string why = kernelTileError(layout, isa, tileM, tileK);
  if (!why.empty())
    return emitError() << why;
  return success();
}
