// Model weights decoded from GGUF into the reference (canonical) form.
//
// Ternary matrices are held as int8 codes {-1,0,+1} plus per-row block
// scales, whatever their storage format was (TQ2_0, TQ1_0, I2_S, or a float
// type holding ternary values). Dense tensors (embedding, norms) stay in the
// mapped file or are converted to f32 at load.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/formats/mapping.h"
#include "runtime/formats/ternary.h"
#include "runtime/gguf/gguf.h"
#include "runtime/model/config.h"

namespace tern::model {

// A ternary weight: formats::TernaryMatrix (codes + block scales, the
// storage format it came from and its tensor name), with scale blocks that
// divide a row or span whole rows. y[r] = sum over row r's scale blocks b of
// scale * sum_{c in b} code[r][c] * x[c] (kernels_ref.h, bitLinear).
using formats::TernaryMatrix;

// A dense 2-D matrix stored as F32 or F16 rows (e.g. the f16 embedding,
// which doubles as the tied lm_head). Points into the mapped GGUF.
struct DenseMatrix {
  std::string name;
  uint32_t rows = 0; // ne1 (vocab for the embedding)
  uint32_t cols = 0; // ne0 (hidden)
  bool isF16 = true; // else F32
  const uint8_t *data = nullptr;
  // Set by quantizeQ8(): int8 rows and their scales, which dotRowQ8 reads
  // (row() and dotRow still read the float rows of `data`).
  std::vector<int8_t> q8;      // [rows][cols]
  std::vector<float> q8Scales; // [rows]

  // Requantizes the rows to int8 with one f32 scale per row
  // (formats::quantizeRowQ8): the `--head q8` LM head.
  void quantizeQ8();

  // Row r converted to f32.
  void row(uint32_t r, float *out) const;
  // Dot product of row r with x (f32 accumulation in index order).
  float dotRow(uint32_t r, const float *x) const;
  // The q8 head's logit (after quantizeQ8()) for a token quantized per
  // token (quantizeActivations, PerToken: q[cols], qs): float(int32 sum of
  // q8 row r times q) * row scale / qs, as tern_uk_lm_head_q8_ref.
  float dotRowQ8(uint32_t r, const int8_t *q, float qs) const;
};

struct LayerWeights {
  std::vector<float> attnNorm;    // [nEmbd]
  TernaryMatrix wq, wk, wv;       // [qDim x nEmbd], [kvDim x nEmbd] x2
  std::vector<float> attnSubNorm; // [qDim]
  TernaryMatrix wo;               // [nEmbd x qDim]
  std::vector<float> ffnNorm;     // [nEmbd]
  TernaryMatrix wGate, wUp;       // [nFf x nEmbd]
  std::vector<float> ffnSubNorm;  // [nFf]
  TernaryMatrix wDown;            // [nEmbd x nFf]
};

struct ModelWeights {
  DenseMatrix tokEmbd; // [nVocab x nEmbd]
  DenseMatrix output;  // lm_head: output.weight, or tokEmbd when tied
  bool tiedOutput = true;
  std::vector<float> outputNorm; // [nEmbd]
  std::vector<LayerWeights> layers;
};

// Decodes one ternary weight tensor (TQ2_0, TQ1_0, I2_S x86 layout, or
// F32/F16/BF16 holding ternary values) into canonical codes + scales.
absl::StatusOr<TernaryMatrix> loadTernary(const gguf::File &file, const std::string &name,
                                          uint64_t expectRows, uint64_t expectCols,
                                          formats::I2SLayout i2sLayout,
                                          const formats::ModelMapping *mapping = nullptr);

// Loads every tensor the graph needs, checking names and shapes against the
// config. Errors name the tensor (missing, wrong shape, wrong type, not
// ternary). `file` must outlive the result (dense matrices point into it).
absl::StatusOr<ModelWeights>
loadModelWeights(const gguf::File &file, const ModelConfig &config,
                 formats::I2SLayout i2sLayout = formats::I2SLayout::X86_QK128);

} // namespace tern::model
