#include "compiler/target/TargetInfo.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "compiler/target/Tuning.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/TargetParser/Host.h"

namespace tern::compiler {

using ir::Isa;
using ir::KernelLayout;

double layoutBitsPerWeight(KernelLayout l) {
  switch (l) {
  case KernelLayout::I2S:
  case KernelLayout::TL1:
    return 2.0;
  case KernelLayout::TL2:
  case KernelLayout::TL2V: // + 16 bytes per row for a K tail not a multiple of 192
    return 5.0 / 3.0;
  case KernelLayout::TQ2:
    return 66.0 * 8 / 256;
  case KernelLayout::TQ1:
    return 54.0 * 8 / 256;
  case KernelLayout::F16:
    return 16;
  case KernelLayout::F32:
    return 32;
  case KernelLayout::Q8_0:
    return 34.0 * 8 / 32;
  case KernelLayout::Q8:
    return 8; // + one f32 per row (headBytes counts it)
  }
  return 32;
}

static int64_t layoutKGroup(KernelLayout l) {
  switch (l) {
  case KernelLayout::I2S:
    return 128;
  case KernelLayout::TL1:
    return 64;
  case KernelLayout::TL2:
    return 96; // 32 triples: one 32-byte pshufb lane of magnitudes per row pair
  case KernelLayout::TL2V:
    return 64; // K is not tiled: the one tile_k is K rounded up to 64
  case KernelLayout::TQ1:
  case KernelLayout::TQ2:
    return 256;
  case KernelLayout::Q8_0:
    return 32;
  default:
    return 64;
  }
}

std::vector<int64_t> tileKChoices(KernelLayout l, int64_t k) {
  int64_t g = layoutKGroup(l);
  int64_t kMax = (k + g - 1) / g * g;
  if (l == KernelLayout::TL2V)
    return {kMax};
  std::vector<int64_t> out;
  for (int64_t t = g; t <= std::min<int64_t>(kMax, 16 * g); t *= 2)
    out.push_back(t);
  return out;
}

ir::KernelLayout denseLayoutFor(ir::WeightFormat f) {
  switch (f) {
  case ir::WeightFormat::F16:
    return KernelLayout::F16;
  case ir::WeightFormat::Q8_0:
    return KernelLayout::Q8_0;
  default:
    return KernelLayout::F32;
  }
}

std::optional<HeadType> parseHeadType(llvm::StringRef s) {
  if (s == "f16")
    return HeadType::F16;
  if (s == "q8")
    return HeadType::Q8;
  return std::nullopt;
}

llvm::StringRef headTypeName(HeadType h) { return h == HeadType::Q8 ? "q8" : "f16"; }

double denseBytes(KernelLayout l, int64_t m, int64_t k) {
  const double b = double(m) * double(k) * layoutBitsPerWeight(l) / 8.0;
  return l == KernelLayout::Q8 ? b + 4.0 * double(m) : b;
}

std::optional<ActQuant> parseActQuant(llvm::StringRef s) {
  if (s == "token")
    return ActQuant::Token;
  if (s == "none")
    return ActQuant::None;
  return std::nullopt;
}

llvm::StringRef actQuantName(ActQuant a) { return a == ActQuant::Token ? "token" : "none"; }

std::vector<int64_t> TargetInfo::tileMChoices() const { return {16, 32, 64, 128}; }

std::vector<int64_t> TargetInfo::ternaryTileKChoices(KernelLayout layout, int64_t k) const {
  return tileKChoices(layout, k);
}

std::vector<KernelLayout> TargetInfo::ternaryLayouts(ActQuant act) const {
  std::vector<KernelLayout> out;
  for (const KernelCost &c : costTable())
    if (c.act == act && ir::isTernaryLayout(c.layout))
      out.push_back(c.layout);
  return out;
}

std::optional<KernelCost> TargetInfo::cost(KernelLayout l, ActQuant act) const {
  for (const KernelCost &c : costTable())
    if (c.layout == l && c.act == act)
      return c;
  return std::nullopt;
}

bool TargetInfo::supports(KernelLayout l, ActQuant act) const {
  return !ir::isTernaryLayout(l) || cost(l, act).has_value();
}

std::string KernelEstimate::describe() const {
  return llvm::formatv("{0} tile_m={1} tile_k={2} ({3} kernel, {4} {5:f1}/{6:f1} G/s per core "
                       "decode/prefill): decode {7:f2} us (memory {8:f2}, compute {9:f2}), "
                       "prefill {10:f3} us/token, padding {11:f1}%, score {12:f3}",
                       ir::stringifyKernelLayout(layout), tileM, tileK, variant,
                       !tunedBy.empty() ? "tuned"
                       : measured       ? "measured"
                                        : "estimated",
                       decodeGs, prefillGs, decodeUs, memoryUs, computeUs, prefillUs,
                       paddedFraction * 100, score)
      .str();
}

// Loop and reduction overhead of a tile relative to the measured one, and
// the slowdown of a tile whose weights and activations spill L1.
static double tileFactor(const TargetInfo &t, KernelLayout layout, int64_t tileM, int64_t tileK) {
  auto overhead = [](double tm, double tk) { return 1.0 + 8.0 / tm + 64.0 / tk; };
  // tl2v streams whole rows (tile_k is K, nothing is reused across a tile):
  // only tile_m's share of the overhead changes.
  if (layout == KernelLayout::TL2V)
    return overhead(tileM, TargetInfo::kMeasuredTileK) /
           overhead(TargetInfo::kMeasuredTileM, TargetInfo::kMeasuredTileK);
  const double tileBytes = tileM * tileK * layoutBitsPerWeight(layout) / 8.0 + tileK;
  const double spill =
      tileBytes > t.l1Bytes() / 2 ? 1.0 + tileBytes / double(t.l2Bytes()) * 4 : 1.0;
  return overhead(tileM, tileK) / overhead(TargetInfo::kMeasuredTileM, TargetInfo::kMeasuredTileK) *
         spill;
}

KernelEstimate TargetInfo::estimateRow(const KernelCost &row, int64_t m, int64_t k, int64_t tileM,
                                       int64_t tileK, int64_t maxBatch) const {
  return estimateRates(row.layout, row.variant, row.measured, row.decodeGs,
                       maxBatch >= 128 ? row.prefill128Gs : row.prefill64Gs,
                       tileFactor(*this, row.layout, tileM, tileK), m, k, tileM, tileK, maxBatch);
}

KernelEstimate TargetInfo::estimateRates(KernelLayout layout, const std::string &variant,
                                         bool measured, double decodeGs, double prefillGs, double f,
                                         int64_t m, int64_t k, int64_t tileM, int64_t tileK,
                                         int64_t maxBatch) const {
  KernelEstimate e;
  e.layout = layout;
  e.tileM = tileM;
  e.tileK = tileK;
  e.variant = variant;
  e.measured = measured;
  e.decodeGs = decodeGs;
  e.prefillGs = prefillGs;
  const int64_t mp = (m + tileM - 1) / tileM * tileM;
  const int64_t kp = (k + tileK - 1) / tileK * tileK;
  const double weights = double(mp) * double(kp);
  e.paddedFraction = weights / (double(m) * double(k)) - 1.0;
  const double bytes = weights * layoutBitsPerWeight(layout) / 8.0;
  // Work is split over cores by row tiles; few tiles leave cores idle.
  const double busy = std::min<double>(cores(), double(mp / tileM));
  e.memoryUs = bytes / (bandwidthGBs() * 1e3);
  e.computeUs = weights / (e.decodeGs * 1e3 * busy) * f;
  e.decodeUs = std::max(e.memoryUs, e.computeUs);
  e.prefillUs = weights / (e.prefillGs * 1e3 * busy) * f;
  // Score (docs/cost-model.md): llama-bench's default workload, a 512-token
  // prompt and 128 generated tokens, i.e. one generated token plus
  // kPromptTokensPerGenerated prompt tokens. With max_batch 1 every prompt
  // token is a decode step, so decode alone decides.
  e.score = maxBatch <= 1 ? e.decodeUs : e.decodeUs + kPromptTokensPerGenerated * e.prefillUs;
  return e;
}

// Distance between two matrix shapes, for picking the nearest measured one.
static double shapeDistance(int64_t m, int64_t k, int64_t m2, int64_t k2) {
  return std::fabs(std::log(double(m) / double(m2))) + std::fabs(std::log(double(k) / double(k2)));
}

std::optional<KernelEstimate> TargetInfo::tunedEstimate(KernelLayout layout, ActQuant act,
                                                        int64_t m, int64_t k, int64_t tileM,
                                                        int64_t tileK, int64_t maxBatch) const {
  if (!tuning_)
    return std::nullopt;
  const TunedKernel *best = nullptr;
  for (const TunedKernel &t : tuning_->kernels)
    if (t.layout == layout && t.act == act && t.tileM == tileM && t.tileK == tileK &&
        (!best || shapeDistance(m, k, t.m, t.k) < shapeDistance(m, k, best->m, best->k)))
      best = &t;
  if (!best)
    return std::nullopt;
  // Measured at this very tile: no tile factor.
  KernelEstimate e =
      estimateRates(layout, best->variant, true, tunedDecodeRate(best->rates),
                    tunedPrefillRate(best->rates, maxBatch), 1.0, m, k, tileM, tileK, maxBatch);
  e.tunedBy = tuning_->path;
  return e;
}

std::optional<KernelEstimate> TargetInfo::estimate(KernelLayout layout, int64_t m, int64_t k,
                                                   int64_t tileM, int64_t tileK, ActQuant act,
                                                   int64_t maxBatch) const {
  if (!ir::isTernaryLayout(layout)) {
    // Dense matrices (the LM head, a float embedding) have one kernel: only
    // their memory traffic is estimated, to report it.
    KernelEstimate e;
    e.layout = layout;
    e.tileM = tileM;
    e.tileK = tileK;
    e.variant = name().str();
    e.memoryUs = denseBytes(layout, m, k) / (bandwidthGBs() * 1e3);
    e.decodeUs = e.score = e.memoryUs;
    if (tuning_)
      applyTunedHead(*tuning_, cores(), m, k, e);
    return e;
  }
  std::optional<KernelCost> row = cost(layout, act);
  if (!row)
    return std::nullopt;
  if (std::optional<KernelEstimate> t = tunedEstimate(layout, act, m, k, tileM, tileK, maxBatch))
    return t;
  return estimateRow(*row, m, k, tileM, tileK, maxBatch);
}

std::vector<KernelEstimate> TargetInfo::candidates(int64_t m, int64_t k, ir::WeightFormat format,
                                                   bool ternaryRole, ActQuant act, int64_t maxBatch,
                                                   HeadType head) const {
  std::vector<KernelEstimate> out;
  if (!ternaryRole) {
    // One dense kernel per format (or q8 for a float head when asked); its
    // tiles only split the work (64 rows per item; tile_k up to 512).
    KernelLayout l = denseLayoutFor(format);
    if (head == HeadType::Q8 && ir::isFloatFormat(format))
      l = KernelLayout::Q8;
    int64_t tk = 0;
    for (int64_t c : tileKChoices(l, k))
      if (tk == 0 || c <= 512)
        tk = c;
    out.push_back(*estimate(l, m, k, 64, tk, act, maxBatch));
    return out;
  }
  for (const KernelCost &row : costTable()) {
    if (row.act != act || !ir::isTernaryLayout(row.layout))
      continue;
    // A layout the tuning file measured: its measured tiles only.
    std::set<std::pair<int64_t, int64_t>> tuned;
    if (tuning_)
      for (const TunedKernel &t : tuning_->kernels)
        if (t.layout == row.layout && t.act == act &&
            ir::kernelTileError(row.layout, isa(), t.tileM, t.tileK).empty())
          tuned.insert({t.tileM, t.tileK});
    for (auto [tm, tk] : tuned)
      out.push_back(*tunedEstimate(row.layout, act, m, k, tm, tk, maxBatch));
    if (!tuned.empty())
      continue;
    for (int64_t tm : tileMChoices())
      for (int64_t tk : ternaryTileKChoices(row.layout, k))
        if (ir::kernelTileError(row.layout, isa(), tm, tk).empty())
          out.push_back(estimateRow(row, m, k, tm, tk, maxBatch));
  }
  std::stable_sort(out.begin(), out.end(), [](const KernelEstimate &a, const KernelEstimate &b) {
    return a.score < b.score;
  });
  return out;
}

namespace {

// Rates measured with build/bin/ukernels_bench (docs/cost-model.md):
// medians over the 2B4T shapes, single core, G weight x token MACs / s.
struct Rates {
  double decode, prefill64, prefill128;
};
// x86, measured 2026-12-01 on an Intel Xeon (Emerald Rapids, AVX-512 VNNI,
// AMX) KVM guest by scripts/cost-table.py; docs/cost-model.md has the
// per-shape table. G weight x token MACs / s, one core: decode, n=64, n=128.
// i2s avx2 prefill: the AVX2 GEMM (x86_avx2.h), measured 2026-12-02.
// Decode rates (n = 1) of i2s, tl2, tl2v on avx2 and avx512_vnni remeasured
// 2026-12-02 08:03 UTC on the quiet machine after the prefetching decode
// bodies (docs/cost-model.md, "Decode rates remeasured").
constexpr Rates kI2sAvx2{43.7, 61.7, 60.6}, kTl2Avx2{14.9, 14.0, 11.8};
// The avx2 i2s rates before that remeasure, the basis the NEON rows are
// scaled from (no NEON hardware here: kept as they were, not remeasured).
constexpr Rates kNeonBasis{17.1, 61.7, 60.6};
// The AVX2 one-row kernel before the GEMM (decode and prefill alike: it
// blocked 4 tokens per decoded block), the basis of the NEON estimates of
// the kernels that have no GEMM (plain neon i2s, tl1).
constexpr Rates kI2sAvx2Rowwise{17.1, 36.8, 37.1};
// Remeasured 2026-12-02 in one run (docs/cost-model.md): i2s VNNI (n >= 6
// tokens run the AMX GEMM: the old 76/81 G/s predate it) and tl2v VNNI.
constexpr Rates kI2sVnni{71.1, 377.0, 315.4}, kTl2vVnni{62.9, 76.7, 78.8};
// i2s VNNI on a CPU without AMX-INT8 (--target native on e.g. AMD Zen 4/5):
// batches of 6+ tokens run the VNNI body, not the AMX GEMM. Not measured
// on Intel (AMX always runs there); on AMD EPYC Zen 5 (2026-12-02, in cache,
// 2560x2560 and 13824x2560) the VNNI body prefills at 0.87x tl2v's rate at
// n = 64 (137.7 / 158.1 G/s) and 0.85x at n = 128 (141.0 / 165.5), decodes
// level with it (117.6 / 116.6): entered as those prefill ratios times
// kTl2vVnni's, decode as kI2sVnni's (docs/cost-model.md, "Hosts without AMX").
constexpr Rates kI2sVnniNoAmx{kI2sVnni.decode, 0.87 * kTl2vVnni.prefill64,
                              0.85 * kTl2vVnni.prefill128};
// tl2v avx2 (Tl2vAvx2): decode remeasured with the others above; prefill
// (loaded machine, one run with i2s avx2: tl2v / i2s = 53.6 / 68.4 G/s at
// n = 64, 54.2 / 67.0 at n = 128) entered as those ratios times kI2sAvx2's.
constexpr Rates kTl2vAvx2{30.7, 48.3, 49.0};
constexpr Rates kI2sF32Avx2{6.1, 14.9, 13.9}, kI2sF32Avx512{9.9, 28.5, 26.6};
// Scalar twins, measured at 2560x2560 (n = 64 stands for 128 too).
constexpr Rates kTl2Ref{0.29, 1.65, 1.65}, kTq2Ref{4.08, 4.84, 4.84}, kTq1Ref{0.65, 2.67, 2.67},
    kTl2vRef{0.10, 0.85, 0.85}, kTl2vF32Ref{0.12, 0.43, 0.43};
constexpr Rates kI2sF32Ref{1.11, 1.13, 1.13}, kTl1F32Ref{0.45, 0.56, 0.56},
    kTl2F32Ref{0.25, 0.92, 0.92}, kTq2F32Ref{0.94, 1.08, 1.08}, kTq1F32Ref{0.42, 0.67, 0.67};

KernelCost row(KernelLayout l, ActQuant a, const char *variant, Rates r, bool measured) {
  return {l, a, variant, r.decode, r.prefill64, r.prefill128, measured};
}

// The x86 rows: the ISA's own kernels, and the scalar twins for layouts
// that have no kernel with this ISA's instructions. tl2 on avx512_vnni is
// the scalar twin: the tl2 kernel is an AVX2 pshufb body, and #tern.kernel's
// ISA names the callee (a VNNI target never calls an avx2 variant).
std::vector<KernelCost> x86Table(llvm::StringRef isa, bool amx = true) {
  const ActQuant T = ActQuant::Token, N = ActQuant::None;
  const KernelLayout I2S = KernelLayout::I2S, TL2 = KernelLayout::TL2, TQ2 = KernelLayout::TQ2,
                     TQ1 = KernelLayout::TQ1, TL2V = KernelLayout::TL2V;
  std::vector<KernelCost> t;
  if (isa == "avx2")
    t = {row(TL2, T, "avx2", kTl2Avx2, true), row(I2S, T, "avx2", kI2sAvx2, true),
         row(I2S, N, "avx2", kI2sF32Avx2, true), row(TL2V, T, "avx2", kTl2vAvx2, true)};
  else
    t = {amx ? row(I2S, T, "avx512_vnni", kI2sVnni, true)
             : row(I2S, T, "avx512_vnni", kI2sVnniNoAmx, false),
         row(TL2V, T, "avx512_vnni", kTl2vVnni, true), row(TL2, T, "ref", kTl2Ref, true),
         row(I2S, N, "avx512_vnni", kI2sF32Avx512, true)};
  for (KernelCost c :
       {row(TQ2, T, "ref", kTq2Ref, true), row(TQ1, T, "ref", kTq1Ref, true),
        row(TL2, N, "ref", kTl2F32Ref, true), row(TQ2, N, "ref", kTq2F32Ref, true),
        row(TQ1, N, "ref", kTq1F32Ref, true), row(TL2V, N, "ref", kTl2vF32Ref, true)})
    t.push_back(c);
  return t;
}

// NEON: not measured (no AArch64 CPU here; qemu checks correctness only).
// Estimates from the measured AVX2 i2s rates and the vector widths: sdot on
// 128-bit vectors ~ half of pmaddubsw on 256-bit (the neon_dotprod i2s
// kernel is a GEMM for batches like the AVX2 one: scaled from the AVX2 GEMM
// rates), smull + sadalp ~ a quarter and the tl1 tbl kernels in between,
// scaled from the AVX2 one-row kernel (they do not block rows x tokens)
// (docs/cost-model.md). The i8mm i2s kernel decodes like the sdot one (the
// same one-row kernel for n = 1) and for batches runs the smmla GEMM: per
// 16-column chunk, 8 rows x 4 tokens, it issues 24 non-load vector
// instructions per 256 MACs where the sdot GEMM (4 x 4) issues 26: the
// weight decode (shift, and, sub per row) dominates both, and the smmla's
// doubled MACs per instruction go to the row and token zips. So its prefill
// is priced at 1.1x the sdot GEMM's (26 / 24). Its tl1 is the dotprod body. The
// scalar twins use the x86 measurements, also marked as estimates.
enum class NeonLevel { Base, Dotprod, I8mm };
std::vector<KernelCost> neonTable(NeonLevel level) {
  const ActQuant T = ActQuant::Token, N = ActQuant::None;
  const bool dotprod = level != NeonLevel::Base;
  const char *isa = level == NeonLevel::I8mm ? "neon_i8mm" : dotprod ? "neon_dotprod" : "neon";
  auto scaled = [](Rates r, double f, double prefill = 1.0) {
    return Rates{r.decode * f, r.prefill64 * f * prefill, r.prefill128 * f * prefill};
  };
  const Rates i2s = level == NeonLevel::I8mm ? scaled(kNeonBasis, 0.5, 1.1)
                    : dotprod                ? scaled(kNeonBasis, 0.5)
                                             : scaled(kI2sAvx2Rowwise, 0.25);
  return {row(KernelLayout::TL1, T, isa, scaled(kI2sAvx2Rowwise, dotprod ? 0.35 : 0.3), false),
          row(KernelLayout::I2S, T, isa, i2s, false),
          row(KernelLayout::TQ2, T, "ref", kTq2Ref, false),
          row(KernelLayout::TQ1, T, "ref", kTq1Ref, false),
          row(KernelLayout::I2S, N, "ref", kI2sF32Ref, false),
          row(KernelLayout::TL1, N, "ref", kTl1F32Ref, false),
          row(KernelLayout::TQ2, N, "ref", kTq2F32Ref, false),
          row(KernelLayout::TQ1, N, "ref", kTq1F32Ref, false)};
}

class Avx2Target : public TargetInfo {
public:
  Isa isa() const override { return Isa::AVX2; }
  int vectorBits() const override { return 256; }
  int cores() const override { return 8; }
  int64_t l1Bytes() const override { return 32 << 10; }
  int64_t l2Bytes() const override { return 1 << 20; }
  double bandwidthGBs() const override { return 50; }
  std::vector<KernelCost> costTable() const override { return x86Table("avx2"); }
};

// `amx`: whether the target CPU has AMX-INT8, which the i2s entry's prefill
// GEMM uses (the named target avx512_vnni assumes it; --target native asks
// the host).
class Avx512VnniTarget : public TargetInfo {
public:
  explicit Avx512VnniTarget(bool amx = true) : amx_(amx) {}
  Isa isa() const override { return Isa::AVX512VNNI; }
  int vectorBits() const override { return 512; }
  int cores() const override { return 16; }
  int64_t l1Bytes() const override { return 48 << 10; }
  int64_t l2Bytes() const override { return 2 << 20; }
  double bandwidthGBs() const override { return 120; }
  std::vector<KernelCost> costTable() const override { return x86Table("avx512_vnni", amx_); }

private:
  bool amx_;
};

class NeonTarget : public TargetInfo {
public:
  explicit NeonTarget(NeonLevel level) : level(level) {}
  Isa isa() const override {
    return level == NeonLevel::I8mm      ? Isa::NEONI8mm
           : level == NeonLevel::Dotprod ? Isa::NEONDotprod
                                         : Isa::NEON;
  }
  int vectorBits() const override { return 128; }
  int cores() const override { return 8; }
  int64_t l1Bytes() const override { return 64 << 10; }
  int64_t l2Bytes() const override { return 1 << 20; }
  double bandwidthGBs() const override { return level == NeonLevel::Base ? 30 : 60; }
  std::vector<KernelCost> costTable() const override { return neonTable(level); }

private:
  NeonLevel level;
};

// The GPU targets (docs/cuda.md): one row, i2s with int8 activations (the
// dp4a kernel of runtime/cuda/kernels.h), with one K tile per row so that a
// row's codes are contiguous for a warp's coalesced loads; the f32-activation
// row is priced for the plan only (no GPU kernel runs it yet). Rates per SM
// are estimates (no GPU here): dp4a peak / 4 for GEMV-shaped work.
class CudaTarget : public TargetInfo {
public:
  explicit CudaTarget(int sm) : sm(sm) {}
  Isa isa() const override { return Isa::CUDA; }
  int vectorBits() const override { return 1024; }            // a warp of 32-bit lanes
  int cores() const override { return sm >= 90 ? 132 : 108; } // SMs: H100/H200, A100
  int64_t l1Bytes() const override { return (sm >= 90 ? 228 : 164) << 10; } // shared memory / SM
  int64_t l2Bytes() const override { return (sm >= 90 ? 50 : 40) << 20; }
  double bandwidthGBs() const override { return sm >= 90 ? 4800 : 2039; } // H200, A100 40GB
  std::vector<KernelCost> costTable() const override {
    return {{KernelLayout::I2S, ActQuant::Token, "cuda", 7000, 7000, 7000, false},
            {KernelLayout::I2S, ActQuant::None, "cuda", 1700, 1700, 1700, false}};
  }
  std::vector<int64_t> tileMChoices() const override { return {32, 64, 128, 256}; }
  std::vector<int64_t> ternaryTileKChoices(KernelLayout, int64_t k) const override {
    return {(k + 127) / 128 * 128};
  }

private:
  int sm;
};

} // namespace

const char *targetNames() {
  return "avx2, x86-64-v3, avx512_vnni, x86-64-v4, neon, aarch64, neon_dotprod, aarch64-dotprod, "
         "neon_i8mm, aarch64-i8mm, cuda:sm_80, cuda:sm_90 (alias cuda), native";
}

std::string MachineTarget::arch() const {
  llvm::StringRef t(triple);
  if (t.starts_with("x86_64"))
    return "x86_64";
  if (t.starts_with("aarch64"))
    return "aarch64";
  return "";
}

std::optional<MachineTarget> resolveMachineTarget(llvm::StringRef name) {
  MachineTarget m;
  m.name = name.str();
  const std::string x86 = "x86_64-unknown-linux-gnu", arm = "aarch64-unknown-linux-gnu";
  const char *v3 = "+avx,+avx2,+bmi,+bmi2,+f16c,+fma,+lzcnt,+movbe,+popcnt,+sse4.2,+xsave";
  const char *v4 = "+avx,+avx2,+bmi,+bmi2,+f16c,+fma,+lzcnt,+movbe,+popcnt,+sse4.2,+xsave,"
                   "+avx512f,+avx512bw,+avx512cd,+avx512dq,+avx512vl";
  if (name == "avx2" || name == "x86-64-v3" || name == "x86-64-avx2") {
    m = {m.name, "avx2", x86, "x86-64-v3", "", v3};
  } else if (name == "avx512_vnni" || name == "avx512" || name == "avx512-vnni") {
    m = {m.name, "avx512_vnni", x86, "x86-64-v4", "+avx512vnni", std::string(v4) + ",+avx512vnni"};
  } else if (name == "x86-64-v4") {
    m = {m.name, "avx2", x86, "x86-64-v4", "", v4};
  } else if (name == "neon" || name == "aarch64") {
    m = {m.name, "neon", arm, "generic", "+neon", "+neon"};
  } else if (name == "neon_dotprod" || name == "neon-dotprod" || name == "aarch64-dotprod") {
    m = {m.name, "neon_dotprod", arm, "generic", "+neon,+dotprod", "+neon,+dotprod"};
  } else if (name == "neon_i8mm" || name == "neon-i8mm" || name == "aarch64-i8mm") {
    m = {m.name, "neon_i8mm", arm, "generic", "+neon,+dotprod,+i8mm", "+neon,+dotprod,+i8mm"};
  } else if (name == "cuda" || name == "cuda:sm_90" || name == "cuda:sm_80") {
    // The host side of a cuda artifact (docs/cuda.md): the CPU code that
    // validates the batch and calls the launchers, for the build host's arch
    // at its baseline (no ISA ukernel runs on the host).
    const bool armHost = llvm::StringRef(llvm::sys::getProcessTriple()).starts_with("aarch64");
    const std::string gpu = name == "cuda:sm_80" ? "sm_80" : "sm_90";
    m = {m.name, "cuda:" + gpu, armHost ? arm : x86, armHost ? "generic" : "x86-64", "", ""};
    m.gpuArch = gpu;
  } else if (name == "native") {
    llvm::StringMap<bool> f = llvm::sys::getHostCPUFeatures();
    std::string triple = llvm::sys::getProcessTriple();
    m.cpu = llvm::sys::getHostCPUName().str();
    std::vector<std::string> all;
    for (const auto &kv : f)
      if (kv.getValue())
        all.push_back("+" + kv.getKey().str());
    std::sort(all.begin(), all.end());
    for (const std::string &x : all)
      m.features += (m.features.empty() ? "" : ",") + x;
    auto has = [&](const char *k) { return f.lookup(k); };
    std::vector<const char *> key;
    if (llvm::StringRef(triple).starts_with("aarch64")) {
      m.triple = arm;
      m.kernelTarget = has("dotprod") && has("i8mm") ? "neon_i8mm"
                       : has("dotprod")              ? "neon_dotprod"
                                                     : "neon";
      m.refOnly = !has("neon");
      key = {"neon", "dotprod", "i8mm", "sve"};
    } else {
      m.triple = x86;
      m.kernelTarget = has("avx512f") && has("avx512vnni") ? "avx512_vnni" : "avx2";
      m.refOnly = !(has("avx2") && has("fma") && has("f16c"));
      key = {"avx",      "avx2",     "fma",        "f16c",    "bmi2",    "avx512f",
             "avx512bw", "avx512vl", "avx512vnni", "avxvnni", "amx-int8"};
    }
    for (const char *k : key)
      if (has(k))
        m.headerFeatures += std::string(m.headerFeatures.empty() ? "" : ",") + "+" + k;
  } else {
    return std::nullopt;
  }
  return m;
}

std::unique_ptr<TargetInfo> createAvx512VnniTargetInfo(bool amx) {
  return std::make_unique<Avx512VnniTarget>(amx);
}

std::unique_ptr<TargetInfo> createTargetInfo(llvm::StringRef name) {
  if (name == "native" || name == "x86-64-v3" || name == "x86-64-v4") {
    std::optional<MachineTarget> m = resolveMachineTarget(name);
    if (name == "native" && m->kernelTarget == "avx512_vnni")
      return createAvx512VnniTargetInfo(llvm::StringRef(m->headerFeatures).contains("+amx-int8"));
    return createTargetInfo(m->kernelTarget);
  }
  if (name == "avx2" || name == "x86-64-avx2")
    return std::make_unique<Avx2Target>();
  if (name == "avx512_vnni" || name == "avx512" || name == "avx512-vnni")
    return std::make_unique<Avx512VnniTarget>();
  if (name == "neon" || name == "aarch64")
    return std::make_unique<NeonTarget>(NeonLevel::Base);
  if (name == "neon_dotprod" || name == "neon-dotprod" || name == "aarch64-dotprod")
    return std::make_unique<NeonTarget>(NeonLevel::Dotprod);
  if (name == "neon_i8mm" || name == "neon-i8mm" || name == "aarch64-i8mm")
    return std::make_unique<NeonTarget>(NeonLevel::I8mm);
  if (name == "cuda" || name == "cuda:sm_90")
    return std::make_unique<CudaTarget>(90);
  if (name == "cuda:sm_80")
    return std::make_unique<CudaTarget>(80);
  return nullptr;
}

} // namespace tern::compiler
