// Verifiers of the tern ops: every shape and format invariant.
#include "dialect/TernDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace tern::ir;

#define GET_OP_CLASSES
#include "dialect/TernOps.cpp.inc"

namespace {

RankedTensorType rt(Value v) { return cast<RankedTensorType>(v.getType()); }

// Feature width (dim 1) of an activation; must be static.
LogicalResult staticWidth(Operation *op, Value v, StringRef what, int64_t &width) {
  width = rt(v).getDimSize(1);
  if (ShapedType::isDynamic(width))
    return op->emitOpError() << what << " must have a static feature width";
  return success();
}

// Two token counts agree unless one is dynamic.
bool sameTokens(Value a, Value b) {
  int64_t x = rt(a).getDimSize(0), y = rt(b).getDimSize(0);
  return ShapedType::isDynamic(x) || ShapedType::isDynamic(y) || x == y;
}

LogicalResult checkMatrix(Operation *op, WeightAttr w, StringRef role) {
  if (w.getRank() != 2)
    return op->emitOpError() << role << " weight '" << w.getName()
                             << "' must be a matrix, got rank " << w.getRank();
  return success();
}

LogicalResult checkKernel(Operation *op, WeightFormat format, KernelAttr kernel, bool ternaryRole) {
  if (!kernel)
    return success();
  if (ternaryRole != isTernaryLayout(kernel.getLayout()))
    return op->emitOpError() << "kernel layout " << stringifyKernelLayout(kernel.getLayout())
                             << " cannot serve a " << (ternaryRole ? "ternary" : "non-ternary")
                             << " matrix";
  if (!ternaryRole) {
    // Dense kernels read the stored format as is (or f16 from f32/bf16);
    // q8 requantizes a float weight.
    bool ok = kernel.getLayout() == KernelLayout::Q8
                  ? isFloatFormat(format)
                  : (kernel.getLayout() == KernelLayout::Q8_0) == (format == WeightFormat::Q8_0);
    if (!ok)
      return op->emitOpError() << "kernel layout " << stringifyKernelLayout(kernel.getLayout())
                               << " cannot read a " << stringifyWeightFormat(format) << " weight";
  }
  return success();
}

LogicalResult checkPacked(Operation *op, KernelAttr kernel, PackedAttr packed) {
  if (!packed)
    return success();
  if (!kernel)
    return op->emitOpError() << "has a packed weight but no kernel";
  if (packed.getLayout() != kernel.getLayout())
    return op->emitOpError() << "packed layout " << stringifyKernelLayout(packed.getLayout())
                             << " differs from kernel layout "
                             << stringifyKernelLayout(kernel.getLayout());
  return success();
}

// The decode copy (ternc --decode-layout): a ternary layout other than the
// main kernel's, packed in that layout when packed.
LogicalResult checkDecode(Operation *op, KernelAttr kernel, KernelAttr decode,
                          PackedAttr decodePacked) {
  if (!decode)
    return decodePacked ? op->emitOpError() << "has a decode_packed weight but no decode_kernel"
                        : success();
  if (!kernel)
    return op->emitOpError() << "has a decode_kernel but no kernel";
  if (!isTernaryLayout(decode.getLayout()))
    return op->emitOpError() << "decode_kernel layout " << stringifyKernelLayout(decode.getLayout())
                             << " is not a ternary layout";
  if (decode.getLayout() == kernel.getLayout())
    return op->emitOpError() << "decode_kernel layout " << stringifyKernelLayout(decode.getLayout())
                             << " is the kernel's own layout";
  if (decodePacked && decodePacked.getLayout() != decode.getLayout())
    return op->emitOpError() << "decode_packed layout "
                             << stringifyKernelLayout(decodePacked.getLayout())
                             << " differs from decode_kernel layout "
                             << stringifyKernelLayout(decode.getLayout());
  return success();
}

bool ternaryCapable(WeightFormat f) { return isTernaryFormat(f) || isFloatFormat(f); }

} // namespace

LogicalResult EmbedOp::verify() {
  WeightAttr w = getWeight();
  if (failed(checkMatrix(*this, w, "embedding")))
    return failure();
  if (isTernaryFormat(w.getFormat()))
    return emitOpError() << "embedding weight '" << w.getName() << "' in "
                         << stringifyWeightFormat(w.getFormat())
                         << " is not supported (float or q8_0 expected)";
  int64_t width;
  if (failed(staticWidth(*this, getResult(), "result", width)))
    return failure();
  if (width != w.getCols())
    return emitOpError() << "result width " << width << " does not match embedding width "
                         << w.getCols() << " of '" << w.getName() << "'";
  int64_t n = rt(getTokens()).getDimSize(0), t = rt(getResult()).getDimSize(0);
  if (!ShapedType::isDynamic(n) && !ShapedType::isDynamic(t) && n != t)
    return emitOpError() << "has " << n << " tokens but " << t << " result rows";
  return success();
}

LogicalResult RmsNormOp::verify() {
  WeightAttr w = getWeight();
  if (w.getRank() != 1)
    return emitOpError() << "norm weight '" << w.getName() << "' must be a vector";
  if (w.getFormat() != WeightFormat::F32)
    return emitOpError() << "norm weight '" << w.getName() << "' must be f32, got "
                         << stringifyWeightFormat(w.getFormat());
  int64_t width;
  if (failed(staticWidth(*this, getInput(), "input", width)))
    return failure();
  if (width != w.getRows())
    return emitOpError() << "input width " << width << " does not match norm weight '"
                         << w.getName() << "' of size " << w.getRows();
  if (!(getEps().convertToFloat() > 0.0f))
    return emitOpError() << "eps must be positive";
  return success();
}

LogicalResult BitLinearOp::verify() {
  WeightAttr w = getWeight();
  if (failed(checkMatrix(*this, w, "bitlinear")))
    return failure();
  if (!ternaryCapable(w.getFormat()))
    return emitOpError() << "bitlinear weight '" << w.getName() << "' in "
                         << stringifyWeightFormat(w.getFormat()) << " cannot hold ternary values";
  int64_t k, m;
  if (failed(staticWidth(*this, getInput(), "input", k)) ||
      failed(staticWidth(*this, getResult(), "result", m)))
    return failure();
  if (k != w.getCols())
    return emitOpError() << "input width " << k << " does not match K = " << w.getCols()
                         << " of weight '" << w.getName() << "'";
  if (m != w.getRows())
    return emitOpError() << "result width " << m << " does not match M = " << w.getRows()
                         << " of weight '" << w.getName() << "'";
  if (!sameTokens(getInput(), getResult()))
    return emitOpError() << "input and result token counts differ";
  if (failed(checkKernel(*this, w.getFormat(), getKernelAttr(), /*ternaryRole=*/true)) ||
      failed(checkDecode(*this, getKernelAttr(), getDecodeKernelAttr(), getDecodePackedAttr())))
    return failure();
  return checkPacked(*this, getKernelAttr(), getPackedAttr());
}

LogicalResult RopeOp::verify() {
  int64_t width;
  if (failed(staticWidth(*this, getInput(), "input", width)))
    return failure();
  int64_t nh = getNHeads(), hd = getHeadDim(), rd = getRotDim();
  if (nh <= 0 || hd <= 0)
    return emitOpError() << "n_heads and head_dim must be positive";
  if (nh * hd != width)
    return emitOpError() << "input width " << width << " is not n_heads * head_dim = " << nh
                         << " * " << hd;
  if (rd <= 0 || rd > hd || rd % 2 != 0)
    return emitOpError() << "rot_dim " << rd << " must be even and in (0, head_dim = " << hd << "]";
  if (!(getFreqBase().convertToFloat() > 0.0f))
    return emitOpError() << "freq_base must be positive";
  if (!sameTokens(getInput(), getPositions()))
    return emitOpError() << "input and positions token counts differ";
  return success();
}

LogicalResult AttentionOp::verify() {
  int64_t nh = getNHeads(), nkv = getNKvHeads(), hd = getHeadDim();
  if (nh <= 0 || nkv <= 0 || hd <= 0)
    return emitOpError() << "n_heads, n_kv_heads and head_dim must be positive";
  if (nh % nkv != 0)
    return emitOpError() << "n_heads " << nh << " is not a multiple of n_kv_heads " << nkv;
  if (static_cast<int64_t>(getLayer()) < 0)
    return emitOpError() << "layer must be non-negative";
  if (static_cast<int64_t>(getMaxCtx()) <= 0)
    return emitOpError() << "max_ctx must be positive";
  int64_t qw, kw, vw;
  if (failed(staticWidth(*this, getQuery(), "query", qw)) ||
      failed(staticWidth(*this, getKey(), "key", kw)) ||
      failed(staticWidth(*this, getValue(), "value", vw)))
    return failure();
  if (qw != nh * hd)
    return emitOpError() << "query width " << qw << " is not n_heads * head_dim = " << nh * hd;
  if (kw != nkv * hd)
    return emitOpError() << "key width " << kw << " is not n_kv_heads * head_dim = " << nkv * hd;
  if (vw != nkv * hd)
    return emitOpError() << "value width " << vw << " is not n_kv_heads * head_dim = " << nkv * hd;
  if (!sameTokens(getQuery(), getKey()) || !sameTokens(getQuery(), getValue()) ||
      !sameTokens(getQuery(), getPositions()))
    return emitOpError() << "query, key, value and positions token counts differ";
  if (!(getScale().convertToFloat() > 0.0f))
    return emitOpError() << "scale must be positive";
  return success();
}

LogicalResult LmHeadOp::verify() {
  WeightAttr w = getWeight();
  if (failed(checkMatrix(*this, w, "lm_head")))
    return failure();
  int64_t h, v;
  if (failed(staticWidth(*this, getInput(), "input", h)) ||
      failed(staticWidth(*this, getResult(), "result", v)))
    return failure();
  if (h != w.getCols())
    return emitOpError() << "input width " << h << " does not match hidden size " << w.getCols()
                         << " of '" << w.getName() << "'";
  if (v != w.getRows())
    return emitOpError() << "result width " << v << " does not match vocabulary size "
                         << w.getRows() << " of '" << w.getName() << "'";
  if (!sameTokens(getInput(), getResult()))
    return emitOpError() << "input and result token counts differ";
  bool ternary = isTernaryFormat(w.getFormat());
  if (failed(checkKernel(*this, w.getFormat(), getKernelAttr(), ternary)))
    return failure();
  return checkPacked(*this, getKernelAttr(), getPackedAttr());
}

static LogicalResult verifyQuantResults(Operation *op, Value input, Value q, Value s) {
  if (rt(input).getShape() != rt(q).getShape())
    return op->emitOpError() << "quantized result shape must match the input shape";
  if (!sameTokens(input, s))
    return op->emitOpError() << "scales must have one entry per token";
  return success();
}

LogicalResult QuantizeOp::verify() {
  int64_t width;
  if (failed(staticWidth(*this, getInput(), "input", width)))
    return failure();
  return verifyQuantResults(*this, getInput(), getQuantized(), getScales());
}

LogicalResult RmsNormQuantizeOp::verify() {
  WeightAttr w = getWeight();
  if (w.getRank() != 1 || w.getFormat() != WeightFormat::F32)
    return emitOpError() << "norm weight '" << w.getName() << "' must be an f32 vector";
  int64_t width;
  if (failed(staticWidth(*this, getInput(), "input", width)))
    return failure();
  if (width != w.getRows())
    return emitOpError() << "input width " << width << " does not match norm weight '"
                         << w.getName() << "' of size " << w.getRows();
  if (!(getEps().convertToFloat() > 0.0f))
    return emitOpError() << "eps must be positive";
  return verifyQuantResults(*this, getInput(), getQuantized(), getScales());
}

int64_t TernaryMatmulOp::getTotalRows() {
  int64_t rows = 0;
  for (Attribute a : getWeights())
    rows += cast<WeightAttr>(a).getRows();
  return rows;
}

LogicalResult TernaryMatmulOp::verify() {
  ArrayAttr weights = getWeights();
  if (weights.empty())
    return emitOpError() << "needs at least one weight";
  if (weights.size() != getResults().size())
    return emitOpError() << "has " << weights.size() << " weights but " << getResults().size()
                         << " results";
  int64_t k;
  if (failed(staticWidth(*this, getInput(), "input", k)))
    return failure();
  if (!sameTokens(getInput(), getScales()))
    return emitOpError() << "scales must have one entry per token";
  std::optional<WeightFormat> format;
  for (auto [attr, result] : llvm::zip(weights, getResults())) {
    auto w = cast<WeightAttr>(attr);
    if (failed(checkMatrix(*this, w, "ternary_matmul")))
      return failure();
    if (!ternaryCapable(w.getFormat()))
      return emitOpError() << "weight '" << w.getName() << "' in "
                           << stringifyWeightFormat(w.getFormat()) << " cannot hold ternary values";
    if (format && *format != w.getFormat())
      return emitOpError() << "weights must share one storage format, '" << w.getName() << "' is "
                           << stringifyWeightFormat(w.getFormat());
    format = w.getFormat();
    if (w.getCols() != k)
      return emitOpError() << "input width " << k << " does not match K = " << w.getCols()
                           << " of weight '" << w.getName() << "'";
    int64_t m = rt(result).getDimSize(1);
    if (m != w.getRows())
      return emitOpError() << "result width " << m << " does not match M = " << w.getRows()
                           << " of weight '" << w.getName() << "'";
    if (!sameTokens(getInput(), result))
      return emitOpError() << "input and result token counts differ";
  }
  if (failed(checkKernel(*this, *format, getKernelAttr(), /*ternaryRole=*/true)) ||
      failed(checkDecode(*this, getKernelAttr(), getDecodeKernelAttr(), getDecodePackedAttr())))
    return failure();
  return checkPacked(*this, getKernelAttr(), getPackedAttr());
}

LogicalResult UKernelCallOp::verify() {
  if (getCallee().empty())
    return emitOpError() << "needs a callee name";
  for (NamedAttribute a : getStaticArgs())
    if (!isa<IntegerAttr, FloatAttr, StringAttr>(a.getValue()))
      return emitOpError() << "static argument '" << a.getName().getValue()
                           << "' must be an integer, float or string";
  for (Value v : getResults())
    if (cast<RankedTensorType>(v.getType()).getNumDynamicDims() > 1)
      return emitOpError() << "results may have at most one dynamic dimension (tokens)";
  return success();
}
