// Targets and the kernel cost model behind tern-select-kernels.
//
// One TargetInfo per backend (x86-64 AVX2, x86-64 AVX-512 VNNI, AArch64 NEON
// with and without dotprod, CUDA): ISA facts (vector width, cores, clock,
// cache sizes, memory bandwidth, int8 throughput per layout) and a cost
// model that estimates, for one matrix [M, K], the time of one decode step
// (a single token: memory bound) and of a prefill batch (integer-throughput
// bound) for every (layout, tile_m, tile_k) the target can run.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dialect/TernDialect.h"
#include "llvm/ADT/StringRef.h"

namespace tern::compiler {

struct KernelEstimate {
  ir::KernelLayout layout;
  int64_t tileM = 0, tileK = 0;
  double decodeUs = 0;       // one token
  double prefillUs = 0;      // per token, in a batch of kPrefillTokens
  double memoryUs = 0;       // weight bytes / bandwidth (decode)
  double computeUs = 0;      // arithmetic of one decode step
  double paddedFraction = 0; // weights added by M/K padding to whole tiles
  double score = 0;          // what the choice minimises
  std::string describe() const;
};

class TargetInfo {
public:
  static constexpr int64_t kPrefillTokens = 64;

  virtual ~TargetInfo() = default;
  virtual ir::Isa isa() const = 0;
  llvm::StringRef name() const { return ir::stringifyIsa(isa()); }
  virtual int vectorBits() const = 0;
  virtual int cores() const = 0; // threads the kernel is split over
  virtual double clockGHz() const = 0;
  virtual int64_t l1Bytes() const = 0; // per core
  virtual int64_t l2Bytes() const = 0; // per core
  virtual double bandwidthGBs() const = 0;
  // Ternary layouts this target has kernels for, best-known first.
  virtual std::vector<ir::KernelLayout> ternaryLayouts() const = 0;
  // Weight x token multiply-adds per cycle per core of a layout's kernel.
  virtual double macsPerCycle(ir::KernelLayout layout) const = 0;
  // Per-token cost (cycles per K element) of building lookup tables (TL*).
  virtual double lutCyclesPerK(ir::KernelLayout layout) const;
  virtual std::vector<int64_t> tileMChoices() const;

  // Every candidate for an [M, K] matrix stored as `format` (sorted, best
  // first). Ternary roles get ternary layouts; other matrices get the
  // dense layout that reads their format.
  std::vector<KernelEstimate> candidates(int64_t m, int64_t k, ir::WeightFormat format,
                                         bool ternaryRole) const;
  KernelEstimate estimate(ir::KernelLayout layout, int64_t m, int64_t k, int64_t tileM,
                          int64_t tileK) const;
  bool supports(ir::KernelLayout layout) const;
};

// What code generation needs for a --target name: the LLVM triple, CPU and
// features, and the kernel target (TargetInfo name) whose ukernels it calls.
//   avx2 | x86-64-v3          x86_64, cpu x86-64-v3, avx2 kernels
//   avx512_vnni | avx512      x86_64, cpu x86-64-v4 +avx512vnni, avx512_vnni kernels
//   x86-64-v4                 x86_64, cpu x86-64-v4 (no VNNI in v4), avx2 kernels
//   neon | aarch64            aarch64, +neon
//   neon_dotprod | aarch64-dotprod   aarch64, +neon,+dotprod
//   native                    the host (getHostCPUName / getHostCPUFeatures)
//   cuda                      no CPU code generation (kernels only)
struct MachineTarget {
  std::string name;         // as asked
  std::string kernelTarget; // createTargetInfo name: avx2, avx512_vnni, neon, ...
  std::string triple;       // empty for cuda
  std::string cpu;
  std::string features;       // for the TargetMachine (may be long for native)
  std::string headerFeatures; // the ones the code may rely on, for the artifact header
  // native on an x86 host without AVX2/FMA (or an arm host without NEON):
  // no ISA ukernel may run there, so every callee must be `_ref`.
  bool refOnly = false;
  std::string arch() const; // "x86_64" | "aarch64" | ""
};
std::optional<MachineTarget> resolveMachineTarget(llvm::StringRef name);

// "avx2", "avx512_vnni" (alias "avx512"), "neon", "neon_dotprod", "cuda",
// "native" (the host). Null for an unknown name.
std::unique_ptr<TargetInfo> createTargetInfo(llvm::StringRef name);
// Names accepted by createTargetInfo, for messages.
const char *targetNames();

// Bits per weight a layout stores (codes only, scales excluded).
double layoutBitsPerWeight(ir::KernelLayout layout);
// Allowed tile_k values of a layout for a row length K (multiples of the
// layout's group, up to K rounded up).
std::vector<int64_t> tileKChoices(ir::KernelLayout layout, int64_t k);
// The dense layout that reads a non-ternary format.
ir::KernelLayout denseLayoutFor(ir::WeightFormat format);

} // namespace tern::compiler
