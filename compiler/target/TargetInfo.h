// Targets and the kernel cost model behind tern-select-kernels.
//
// One TargetInfo per backend (x86-64 AVX2, x86-64 AVX-512 VNNI, AArch64 NEON
// with and without dotprod, CUDA): machine facts (cores, memory bandwidth,
// cache sizes) and a cost table with one row per (layout, act-quant) the
// target can run. Every row names the ukernel variant that runs it (the
// target's own ISA when variants.def lists one, else the scalar `ref`) and
// that variant's single-core throughput at decode (1 token) and prefill
// (64 and 128 tokens), measured with ukernels_bench on the 2B4T shapes
// (docs/cost-model.md says where each number comes from). The estimate of
// one matrix [M, K] is: decode = max(weight bytes / bandwidth, weights /
// (decode rate x busy cores)); prefill per token = weights / (prefill rate x
// busy cores); both scaled by a tile factor relative to the measured tile.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dialect/TernDialect.h"
#include "llvm/ADT/StringRef.h"

namespace tern::compiler {

struct Tuning; // compiler/target/Tuning.h

// How activations reach the matmuls (--act-quant): int8 per token, or f32.
enum class ActQuant { Token, None };
std::optional<ActQuant> parseActQuant(llvm::StringRef s); // "token" | "none"
llvm::StringRef actQuantName(ActQuant a);

// The LM head's kernel (--head): the exact f16 (or f32) rows as stored, or
// int8 rows with one f32 scale per row (q8, runtime/formats/q8_rows.h).
enum class HeadType { F16, Q8 };
std::optional<HeadType> parseHeadType(llvm::StringRef s); // "f16" | "q8"
llvm::StringRef headTypeName(HeadType h);

// One row of a target's cost table.
struct KernelCost {
  ir::KernelLayout layout;
  ActQuant act;
  const char *variant; // ukernel ISA suffix: the target's ISA, or "ref"
  // Single-core throughput in G weight x token multiply-adds per second at
  // the measured tile (kMeasuredTileM x kMeasuredTileK; tl2 tile_k 240):
  double decodeGs;     // n = 1
  double prefill64Gs;  // n = 64
  double prefill128Gs; // n = 128
  bool measured;       // false: an estimate (no such CPU here), see docs
};

struct KernelEstimate {
  ir::KernelLayout layout;
  int64_t tileM = 0, tileK = 0;
  std::string variant;       // the ukernel ISA suffix that runs it ("ref" if scalar)
  bool measured = false;     // the row's rates were measured (else estimated)
  double decodeGs = 0;       // the row's rates used (G/s per core)
  double prefillGs = 0;      //   (prefill: the column for max_batch)
  double decodeUs = 0;       // one token
  double prefillUs = 0;      // per token of a prefill batch (max_batch > 1)
  double memoryUs = 0;       // weight bytes / bandwidth (decode)
  double computeUs = 0;      // arithmetic of one decode step
  double paddedFraction = 0; // weights added by M/K padding to whole tiles
  double score = 0;          // what the choice minimises (TargetInfo::score)
  // Where the rates come from: empty = the built-in table, else the path of
  // the tuning file that measured this (layout, act, tile) on this host.
  std::string tunedBy;
  std::string describe() const;
};

class TargetInfo {
public:
  static constexpr int64_t kMeasuredTileM = 32, kMeasuredTileK = 256;
  // The default score (max_batch > 1) prices a request as llama-bench's defaults
  // do: pp512 + tg128, i.e. 4 prompt tokens per generated token.
  static constexpr double kPromptTokensPerGenerated = 4.0;

  virtual ~TargetInfo() = default;
  virtual ir::Isa isa() const = 0;
  llvm::StringRef name() const { return ir::stringifyIsa(isa()); }
  virtual int vectorBits() const = 0;
  virtual int cores() const = 0;       // threads the kernel is split over
  virtual int64_t l1Bytes() const = 0; // per core
  virtual int64_t l2Bytes() const = 0; // per core
  virtual double bandwidthGBs() const = 0;
  // The cost table: every (layout, act) this target can run, best-known
  // first, with the variant that runs it and its rates.
  virtual std::vector<KernelCost> costTable() const = 0;
  virtual std::vector<int64_t> tileMChoices() const;
  // The tile_k values tried for a ternary layout and row length K (default:
  // the free tileKChoices; cuda: one K tile per row, docs/cuda.md).
  virtual std::vector<int64_t> ternaryTileKChoices(ir::KernelLayout layout, int64_t k) const;

  // Rates measured on the host (`ternc tune`) that replace the built-in
  // table for every (layout, act) the file has entries for: those layouts'
  // candidates are the measured tiles, at the rates of the nearest measured
  // shape; other layouts keep their built-in row. Null: built-in only.
  void setTuning(std::shared_ptr<const Tuning> t) { tuning_ = std::move(t); }
  const Tuning *tuning() const { return tuning_.get(); }

  // Ternary layouts with a row for `act`, in table order.
  std::vector<ir::KernelLayout> ternaryLayouts(ActQuant act = ActQuant::Token) const;
  std::optional<KernelCost> cost(ir::KernelLayout layout, ActQuant act) const;
  bool supports(ir::KernelLayout layout, ActQuant act = ActQuant::Token) const;

  // Every candidate for an [M, K] matrix stored as `format` (sorted, best
  // first). Ternary roles get the ternary rows for `act`; other matrices get
  // the dense layout that reads their format (q8 for a float matrix when
  // `head` is Q8: only the LM head goes through here). `maxBatch` is the most
  // tokens one forward call takes (score rule: docs/cost-model.md).
  std::vector<KernelEstimate> candidates(int64_t m, int64_t k, ir::WeightFormat format,
                                         bool ternaryRole, ActQuant act = ActQuant::Token,
                                         int64_t maxBatch = 512,
                                         HeadType head = HeadType::F16) const;
  // Null when the layout has no row for `act` on this target.
  std::optional<KernelEstimate> estimate(ir::KernelLayout layout, int64_t m, int64_t k,
                                         int64_t tileM, int64_t tileK,
                                         ActQuant act = ActQuant::Token,
                                         int64_t maxBatch = 512) const;

private:
  KernelEstimate estimateRow(const KernelCost &row, int64_t m, int64_t k, int64_t tileM,
                             int64_t tileK, int64_t maxBatch) const;
  KernelEstimate estimateRates(ir::KernelLayout layout, const std::string &variant, bool measured,
                               double decodeGs, double prefillGs, double tileF, int64_t m,
                               int64_t k, int64_t tileM, int64_t tileK, int64_t maxBatch) const;
  // The tuned estimate of (layout, act) at this tile (nearest measured
  // shape); null when the tuning file did not measure that tile.
  std::optional<KernelEstimate> tunedEstimate(ir::KernelLayout layout, ActQuant act, int64_t m,
                                              int64_t k, int64_t tileM, int64_t tileK,
                                              int64_t maxBatch) const;
  std::shared_ptr<const Tuning> tuning_;
};

// What code generation needs for a --target name: the LLVM triple, CPU and
// features, and the kernel target (TargetInfo name) whose ukernels it calls.
//   avx2 | x86-64-v3          x86_64, cpu x86-64-v3, avx2 kernels
//   avx512_vnni | avx512      x86_64, cpu x86-64-v4 +avx512vnni, avx512_vnni kernels
//   x86-64-v4                 x86_64, cpu x86-64-v4 (no VNNI in v4), avx2 kernels
//   neon | aarch64            aarch64, +neon
//   neon_dotprod | aarch64-dotprod   aarch64, +neon,+dotprod
//   neon_i8mm | aarch64-i8mm  aarch64, +neon,+dotprod,+i8mm (smmla i2s GEMM)
//   native                    the host (getHostCPUName / getHostCPUFeatures)
//   cuda:sm_80 | cuda:sm_90   GPU kernels (PTX, cubins) for that architecture plus
//                             host code (build host's arch, baseline CPU) calling
//                             their launchers, docs/cuda.md; `cuda` = cuda:sm_90
struct MachineTarget {
  std::string name;         // as asked
  std::string kernelTarget; // createTargetInfo name: avx2, avx512_vnni, neon, ...
  std::string triple;       // cuda: the host code's (build host arch)
  std::string cpu;
  std::string features;       // for the TargetMachine (may be long for native)
  std::string headerFeatures; // the ones the code may rely on, for the artifact header
  // native on an x86 host without AVX2/FMA (or an arm host without NEON):
  // no ISA ukernel may run there, so every callee must be `_ref`.
  bool refOnly = false;
  std::string gpuArch;      // cuda: "sm_80" | "sm_90"; empty otherwise
  std::string arch() const; // "x86_64" | "aarch64" | ""
};
std::optional<MachineTarget> resolveMachineTarget(llvm::StringRef name);

// "avx2", "avx512_vnni" (alias "avx512"), "neon", "neon_dotprod", "neon_i8mm", "cuda:sm_80",
// "cuda:sm_90" (alias "cuda"),
// "native" (the host). Null for an unknown name.
std::unique_ptr<TargetInfo> createTargetInfo(llvm::StringRef name);
// The avx512_vnni target for a CPU with or without AMX-INT8 (the i2s prefill
// GEMM's engine: its rate decides i2s vs tl2v). createTargetInfo gives the
// named target `amx` = true and `native` the host's answer.
std::unique_ptr<TargetInfo> createAvx512VnniTargetInfo(bool amx);
// Names accepted by createTargetInfo, for messages.
const char *targetNames();

// Bits per weight a layout stores (codes only, scales excluded).
double layoutBitsPerWeight(ir::KernelLayout layout);
// Allowed tile_k values of a layout for a row length K (multiples of the
// layout's group, up to K rounded up).
std::vector<int64_t> tileKChoices(ir::KernelLayout layout, int64_t k);
// The dense layout that reads a non-ternary format.
ir::KernelLayout denseLayoutFor(ir::WeightFormat format);
// Bytes a dense layout stores for an [m, k] matrix (q8: + one f32 per row).
double denseBytes(ir::KernelLayout layout, int64_t m, int64_t k);

} // namespace tern::compiler
