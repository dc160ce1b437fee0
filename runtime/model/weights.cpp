#include "runtime/model/weights.h"

#include <cstring>

#include "absl/status/status.h"
#include "fmt/format.h"
#include "runtime/formats/ggml_types.h"
#include "runtime/formats/mapping.h"
#include "runtime/formats/q8_rows.h"
#include "runtime/support/status.h"

namespace tern::model {

namespace {

// GGML type ids this loader understands (the quant-mapping verifier will
// take this decision over once it lands).
constexpr uint32_t kF32 = 0, kF16 = 1, kBF16 = 30, kTQ1_0 = 34, kTQ2_0 = 35, kI2_S = 36;

absl::StatusOr<const gguf::TensorInfo *> findShaped(const gguf::File &f, const std::string &name,
                                                    std::vector<uint64_t> dims) {
  const gguf::TensorInfo *t = f.findTensor(name);
  if (!t)
    return absl::NotFoundError(fmt::format("tensor '{}' is missing from {}", name, f.path()));
  std::vector<uint64_t> have = t->dims;
  while (have.size() > dims.size() && have.back() == 1)
    have.pop_back();
  if (have != dims) {
    std::string want = "[";
    for (size_t i = 0; i < dims.size(); ++i)
      want += fmt::format("{}{}", i ? ", " : "", dims[i]);
    want += "]";
    return absl::InvalidArgumentError(
        fmt::format("tensor '{}' has shape {}, expected {}", name, t->shapeString(), want));
  }
  return t;
}

absl::Status needBytes(const gguf::TensorInfo &t, uint64_t bytes, const char *fmtName) {
  if (t.extent < bytes || t.data == nullptr)
    return absl::InvalidArgumentError(
        fmt::format("tensor '{}' ({} {}) needs {} bytes but only {} are available", t.name, fmtName,
                    t.shapeString(), bytes, t.extent));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> loadVector(const gguf::File &f, const std::string &name,
                                              uint64_t n) {
  absl::StatusOr<const gguf::TensorInfo *> t = findShaped(f, name, {n});
  if (!t.ok())
    return t.status();
  const gguf::TensorInfo &ti = **t;
  std::vector<float> out(n);
  if (ti.typeId == kF32) {
    if (absl::Status s = needBytes(ti, n * 4, "F32"); !s.ok())
      return s;
    std::memcpy(out.data(), ti.data, n * 4);
  } else if (ti.typeId == kF16 || ti.typeId == kBF16) {
    if (absl::Status s = needBytes(ti, n * 2, "F16"); !s.ok())
      return s;
    for (uint64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, ti.data + 2 * i, 2);
      out[i] = ti.typeId == kF16 ? formats::f16ToF32(h) : formats::bf16ToF32(h);
    }
  } else {
    return absl::InvalidArgumentError(fmt::format(
        "tensor '{}' has type id {}; a norm weight must be F32, F16 or BF16", name, ti.typeId));
  }
  return out;
}

absl::StatusOr<DenseMatrix> loadDense(const gguf::File &f, const std::string &name, uint64_t rows,
                                      uint64_t cols) {
  absl::StatusOr<const gguf::TensorInfo *> t = findShaped(f, name, {cols, rows});
  if (!t.ok())
    return t.status();
  const gguf::TensorInfo &ti = **t;
  DenseMatrix m;
  m.name = name;
  m.rows = static_cast<uint32_t>(rows);
  m.cols = static_cast<uint32_t>(cols);
  if (ti.typeId == kF16)
    m.isF16 = true;
  else if (ti.typeId == kF32)
    m.isF16 = false;
  else
    return absl::UnimplementedError(
        fmt::format("tensor '{}' has type id {}; the reference path reads "
                    "embeddings/lm_head only as F16 or "
                    "F32",
                    name, ti.typeId));
  if (absl::Status s = needBytes(ti, rows * cols * (m.isF16 ? 2 : 4), m.isF16 ? "F16" : "F32");
      !s.ok())
    return s;
  m.data = ti.data;
  return m;
}

// f16 -> f32 for all 65536 halves, built once.
const float *halfTable() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t i = 0; i < 65536; ++i)
      t[i] = formats::f16ToF32(static_cast<uint16_t>(i));
    return t;
  }();
  return table.data();
}

} // namespace

void DenseMatrix::row(uint32_t r, float *out) const {
  if (isF16) {
    const float *tab = halfTable();
    const uint8_t *p = data + uint64_t(r) * cols * 2;
    for (uint32_t c = 0; c < cols; ++c) {
      uint16_t h;
      std::memcpy(&h, p + 2 * c, 2);
      out[c] = tab[h];
    }
  } else {
    std::memcpy(out, data + uint64_t(r) * cols * 4, uint64_t(cols) * 4);
  }
}

void DenseMatrix::quantizeQ8() {
  q8.resize(uint64_t(rows) * cols);
  q8Scales.resize(rows);
  std::vector<float> f(cols);
  for (uint32_t r = 0; r < rows; ++r) {
    row(r, f.data());
    formats::quantizeRowQ8(f.data(), cols, q8.data() + uint64_t(r) * cols, &q8Scales[r]);
  }
}

float DenseMatrix::dotRowQ8(uint32_t r, const int8_t *q, float qs) const {
  const int8_t *w = q8.data() + uint64_t(r) * cols;
  int32_t acc = 0;
  for (uint32_t c = 0; c < cols; ++c)
    acc += int32_t(w[c]) * int32_t(q[c]);
  return float(acc) * q8Scales[r] / qs;
}

float DenseMatrix::dotRow(uint32_t r, const float *x) const {
  float acc = 0.0f;
  if (isF16) {
    const float *tab = halfTable();
    const uint8_t *p = data + uint64_t(r) * cols * 2;
    for (uint32_t c = 0; c < cols; ++c) {
      uint16_t h;
      std::memcpy(&h, p + 2 * c, 2);
      acc += tab[h] * x[c];
    }
  } else {
    const uint8_t *p = data + uint64_t(r) * cols * 4;
    for (uint32_t c = 0; c < cols; ++c) {
      float w;
      std::memcpy(&w, p + 4 * c, 4);
      acc += w * x[c];
    }
  }
  return acc;
}

absl::StatusOr<TernaryMatrix> loadTernary(const gguf::File &f, const std::string &name,
                                          uint64_t rows, uint64_t cols,
                                          formats::I2SLayout i2sLayout,
                                          const formats::ModelMapping *mapping) {
  absl::StatusOr<const gguf::TensorInfo *> t = findShaped(f, name, {cols, rows});
  if (!t.ok())
    return t.status();
  const gguf::TensorInfo &ti = **t;
  absl::StatusOr<formats::TernaryMatrix> m = absl::InternalError("unset");
  std::string storage;
  const uint64_t n = rows * cols;
  // The quant-mapping verifier decides what the bytes are (type ids 36..39
  // collide between ggml and bitnet.cpp); without one, trust the id.
  uint32_t typeId = ti.typeId;
  if (mapping) {
    const formats::TensorMapping *tm = mapping->find(name);
    if (!tm || !tm->ok || !tm->resolved)
      return absl::InvalidArgumentError(
          fmt::format("tensor '{}': quant mapping refused it: {}", name,
                      tm ? tm->reason : std::string("not in the mapping")));
    if (!tm->ternary && !tm->resolved->isFloat)
      return absl::InvalidArgumentError(fmt::format("tensor '{}' is {} but not ternary: {}", name,
                                                    tm->resolved->name, tm->reason));
    switch (tm->resolved->format) {
    case formats::Format::F32:
    case formats::Format::F16:
    case formats::Format::BF16:
    case formats::Format::TQ1_0:
    case formats::Format::TQ2_0:
      break;
    case formats::Format::I2_S:
      if (tm->i2sLayout)
        i2sLayout = *tm->i2sLayout;
      break;
    default:
      return absl::UnimplementedError(
          fmt::format("tensor '{}' is stored as {}, which the reference path "
                      "does not decode",
                      name, tm->resolved->name));
    }
    typeId = tm->resolved->id; // the table's id of the format the mapping chose
  }
  switch (typeId) {
  case kTQ2_0: {
    storage = "TQ2_0";
    uint64_t bytes = formats::tq2_0Bytes(rows, cols);
    if (absl::Status s = needBytes(ti, bytes, "TQ2_0"); !s.ok())
      return s;
    m = formats::unpackTQ2_0({ti.data, bytes}, rows, cols);
    break;
  }
  case kTQ1_0: {
    storage = "TQ1_0";
    uint64_t bytes = formats::tq1_0Bytes(rows, cols);
    if (absl::Status s = needBytes(ti, bytes, "TQ1_0"); !s.ok())
      return s;
    m = formats::unpackTQ1_0({ti.data, bytes}, rows, cols);
    break;
  }
  case kI2_S: {
    storage = fmt::format("I2_S/{}", formats::i2sLayoutName(i2sLayout));
    uint64_t bytes = formats::i2sBytes(rows, cols);
    if (absl::Status s = needBytes(ti, bytes, "I2_S"); !s.ok())
      return s;
    m = formats::unpackI2S({ti.data, bytes}, rows, cols, i2sLayout);
    break;
  }
  case kF32: {
    storage = "F32";
    if (absl::Status s = needBytes(ti, n * 4, "F32"); !s.ok())
      return s;
    std::vector<float> v(n);
    std::memcpy(v.data(), ti.data, n * 4);
    m = formats::ternaryFromF32(v, rows, cols);
    break;
  }
  case kF16:
  case kBF16: {
    storage = ti.typeId == kF16 ? "F16" : "BF16";
    if (absl::Status s = needBytes(ti, n * 2, storage.c_str()); !s.ok())
      return s;
    std::vector<uint16_t> v(n);
    std::memcpy(v.data(), ti.data, n * 2);
    m = ti.typeId == kF16 ? formats::ternaryFromF16(v, rows, cols)
                          : formats::ternaryFromBF16(v, rows, cols);
    break;
  }
  default: {
    std::string names;
    for (const formats::TypeInfo *info : formats::lookupId(ti.typeId))
      names += fmt::format("{}{}", names.empty() ? "" : " or ", info->name);
    return absl::UnimplementedError(
        fmt::format("tensor '{}' has type id {} ({}); a ternary weight must be "
                    "TQ2_0, TQ1_0, I2_S, or a "
                    "float type holding ternary values",
                    name, ti.typeId, names.empty() ? "unknown" : names));
  }
  }
  if (!m.ok())
    return absl::Status(m.status().code(),
                        fmt::format("tensor '{}': {}", name, std::string(m.status().message())));

  const uint64_t be = m->blockElems;
  if (be == 0 || m->codes.size() != n || m->scales.size() * be != n)
    return absl::InternalError(
        fmt::format("tensor '{}': decoder returned an inconsistent matrix", name));
  // bitLinear reads scales per row: a block either divides a row or spans
  // whole rows.
  if (!m->rowBlocksOk())
    return absl::UnimplementedError(
        fmt::format("tensor '{}': scale blocks of {} elements {} rows of {}", name, be,
                    be >= cols ? "straddle" : "do not divide", cols));
  m->name = name;
  m->storage = storage;
  return std::move(*m);
}

absl::StatusOr<ModelWeights> loadModelWeights(const gguf::File &f, const ModelConfig &c,
                                              formats::I2SLayout i2sLayout) {
  ModelWeights w;
  formats::MappingOptions mo;
  mo.i2sLayout = i2sLayout;
  // Float weights are checked for {-s,0,+s} while decoding; skip the scan here.
  mo.checkFloatValues = false;
  const formats::ModelMapping mapping = formats::verifyMapping(f, mo);
  if (!mapping.ok())
    return absl::InvalidArgumentError(
        fmt::format("{}: quant mapping: {}", f.path(), mapping.errors.front()));
#define TERN_ASSIGN(lhs, expr)                                                                     \
  do {                                                                                             \
    auto _r = (expr);                                                                              \
    if (!_r.ok())                                                                                  \
      return _r.status();                                                                          \
    lhs = std::move(*_r);                                                                          \
  } while (0)
  TERN_ASSIGN(w.tokEmbd, loadDense(f, "token_embd.weight", c.nVocab, c.nEmbd));
  if (f.findTensor("output.weight")) {
    TERN_ASSIGN(w.output, loadDense(f, "output.weight", c.nVocab, c.nEmbd));
    w.tiedOutput = false;
  } else {
    w.output = w.tokEmbd;
    w.tiedOutput = true;
  }
  TERN_ASSIGN(w.outputNorm, loadVector(f, "output_norm.weight", c.nEmbd));
  w.layers.resize(c.nLayer);
  for (uint32_t i = 0; i < c.nLayer; ++i) {
    LayerWeights &l = w.layers[i];
    const std::string p = fmt::format("blk.{}.", i);
    TERN_ASSIGN(l.attnNorm, loadVector(f, p + "attn_norm.weight", c.nEmbd));
    TERN_ASSIGN(l.wq, loadTernary(f, p + "attn_q.weight", c.qDim(), c.nEmbd, i2sLayout, &mapping));
    TERN_ASSIGN(l.wk, loadTernary(f, p + "attn_k.weight", c.kvDim(), c.nEmbd, i2sLayout, &mapping));
    TERN_ASSIGN(l.wv, loadTernary(f, p + "attn_v.weight", c.kvDim(), c.nEmbd, i2sLayout, &mapping));
    TERN_ASSIGN(l.attnSubNorm, loadVector(f, p + "attn_sub_norm.weight", c.qDim()));
    TERN_ASSIGN(l.wo,
                loadTernary(f, p + "attn_output.weight", c.nEmbd, c.qDim(), i2sLayout, &mapping));
    TERN_ASSIGN(l.ffnNorm, loadVector(f, p + "ffn_norm.weight", c.nEmbd));
    TERN_ASSIGN(l.wGate,
                loadTernary(f, p + "ffn_gate.weight", c.nFf, c.nEmbd, i2sLayout, &mapping));
    TERN_ASSIGN(l.wUp, loadTernary(f, p + "ffn_up.weight", c.nFf, c.nEmbd, i2sLayout, &mapping));
    TERN_ASSIGN(l.ffnSubNorm, loadVector(f, p + "ffn_sub_norm.weight", c.nFf));
    TERN_ASSIGN(l.wDown,
                loadTernary(f, p + "ffn_down.weight", c.nEmbd, c.nFf, i2sLayout, &mapping));
  }
#undef TERN_ASSIGN
  return w;
}

} // namespace tern::model
