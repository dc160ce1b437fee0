#include "compiler/target/TargetInfo.h"

#include <algorithm>
#include <cmath>

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

double TargetInfo::lutCyclesPerK(KernelLayout l) const {
  // Building one table per activation group: TL1 a 9-entry table per pair,
  // TL2 a 16-entry one per triple, a few vector ops each.
  if (l == KernelLayout::TL1)
    return 4.0 / 2;
  if (l == KernelLayout::TL2)
    return 6.0 / 3;
  return 0;
}

std::vector<int64_t> TargetInfo::tileMChoices() const { return {8, 16, 32, 64, 128}; }

bool TargetInfo::supports(KernelLayout l) const {
  if (!ir::isTernaryLayout(l))
    return true;
  auto ls = ternaryLayouts();
  return std::find(ls.begin(), ls.end(), l) != ls.end();
}

std::string KernelEstimate::describe() const {
  return llvm::formatv("{0} tile_m={1} tile_k={2}: decode {3:f2} us (memory {4:f2}, compute "
                       "{5:f2}), prefill {6:f3} us/token, padding {7:f1}%, score {8:f3}",
                       ir::stringifyKernelLayout(layout), tileM, tileK, decodeUs, memoryUs,
                       computeUs, prefillUs, paddedFraction * 100, score)
      .str();
}

KernelEstimate TargetInfo::estimate(KernelLayout layout, int64_t m, int64_t k, int64_t tileM,
                                    int64_t tileK) const {
  KernelEstimate e;
  e.layout = layout;
  e.tileM = tileM;
  e.tileK = tileK;
  const int64_t mp = (m + tileM - 1) / tileM * tileM;
  const int64_t kp = (k + tileK - 1) / tileK * tileK;
  const double weights = double(mp) * double(kp);
  e.paddedFraction = weights / (double(m) * double(k)) - 1.0;
  const double bytes = weights * layoutBitsPerWeight(layout) / 8.0;
  const double hz = clockGHz() * 1e9;

  // Work is split over cores by row tiles; few tiles leave cores idle.
  const int64_t rowTiles = mp / tileM;
  const double busy = std::min<double>(cores(), double(rowTiles));
  // Too big a tile spills L1 (weights of the tile + the activation slice).
  const double tileBytes = tileM * tileK * layoutBitsPerWeight(layout) / 8.0 + tileK;
  const double spill = tileBytes > l1Bytes() / 2 ? 1.0 + tileBytes / double(l2Bytes()) * 4 : 1.0;
  // Small tiles pay loop and reduction overhead.
  const double overhead = 1.0 + 8.0 / tileM + 64.0 / tileK;

  auto computeSeconds = [&](int64_t tokens) {
    double macs = weights * double(tokens);
    double cycles = macs / macsPerCycle(layout) * overhead * spill;
    // Lookup tables are built per token over all of K, by every busy core.
    cycles += double(tokens) * double(kp) * lutCyclesPerK(layout) * busy;
    return cycles / (busy * hz);
  };
  const double memSeconds = bytes / (bandwidthGBs() * 1e9);
  e.memoryUs = memSeconds * 1e6;
  e.computeUs = computeSeconds(1) * 1e6;
  e.decodeUs = std::max(e.memoryUs, e.computeUs);
  const double prefill = std::max(memSeconds, computeSeconds(kPrefillTokens));
  e.prefillUs = prefill * 1e6 / kPrefillTokens;
  // Decode dominates generation; prefill weighs as one more decode step.
  e.score = e.decodeUs + e.prefillUs;
  return e;
}

std::vector<KernelEstimate> TargetInfo::candidates(int64_t m, int64_t k, ir::WeightFormat format,
                                                   bool ternaryRole) const {
  std::vector<KernelLayout> layouts;
  if (ternaryRole)
    layouts = ternaryLayouts();
  else
    layouts = {denseLayoutFor(format)};
  std::vector<KernelEstimate> out;
  for (KernelLayout l : layouts)
    for (int64_t tm : tileMChoices())
      for (int64_t tk : tileKChoices(l, k))
        out.push_back(estimate(l, m, k, tm, tk));
  std::stable_sort(out.begin(), out.end(), [](const KernelEstimate &a, const KernelEstimate &b) {
    return a.score < b.score;
  });
  return out;
}

namespace {

class Avx2Target : public TargetInfo {
public:
  Isa isa() const override { return Isa::AVX2; }
  int vectorBits() const override { return 256; }
  int cores() const override { return 8; }
  double clockGHz() const override { return 3.5; }
  int64_t l1Bytes() const override { return 32 << 10; }
  int64_t l2Bytes() const override { return 1 << 20; }
  double bandwidthGBs() const override { return 50; }
  std::vector<KernelLayout> ternaryLayouts() const override {
    return {KernelLayout::TL2, KernelLayout::I2S, KernelLayout::TQ2, KernelLayout::TQ1};
  }
  double macsPerCycle(KernelLayout l) const override {
    switch (l) {
    case KernelLayout::I2S:
      return 48; // unpack 2-bit codes + vpmaddubsw, 2 ports
    case KernelLayout::TL2:
      // One pshufb covers 32 triples in theory; our tl2_avx2 ukernel measured
      // about half of i2s_avx2's throughput (docs/codegen.md, tern bench on a
      // 2560-hidden model: prefill 99 vs 199 tok/s, decode 67 vs 88).
      return 24;
    case KernelLayout::TQ2:
      return 40;
    case KernelLayout::TQ1:
      return 16; // base-3 decode by multiplies
    default:
      return 16;
    }
  }
};

class Avx512VnniTarget : public TargetInfo {
public:
  Isa isa() const override { return Isa::AVX512VNNI; }
  int vectorBits() const override { return 512; }
  int cores() const override { return 16; }
  double clockGHz() const override { return 3.0; }
  int64_t l1Bytes() const override { return 48 << 10; }
  int64_t l2Bytes() const override { return 2 << 20; }
  double bandwidthGBs() const override { return 120; }
  std::vector<KernelLayout> ternaryLayouts() const override {
    return {KernelLayout::I2S, KernelLayout::TL2, KernelLayout::TQ2, KernelLayout::TQ1};
  }
  double macsPerCycle(KernelLayout l) const override {
    switch (l) {
    case KernelLayout::I2S:
      return 192; // vpdpbusd, 64 MACs x 2 ports after a cheap unpack
    case KernelLayout::TL2:
      return 160;
    case KernelLayout::TQ2:
      return 160;
    case KernelLayout::TQ1:
      return 48;
    default:
      return 32;
    }
  }
  std::vector<int64_t> tileMChoices() const override { return {16, 32, 64, 128}; }
};

class NeonTarget : public TargetInfo {
public:
  explicit NeonTarget(bool dotprod) : dotprod(dotprod) {}
  Isa isa() const override { return dotprod ? Isa::NEONDotprod : Isa::NEON; }
  int vectorBits() const override { return 128; }
  int cores() const override { return 8; }
  double clockGHz() const override { return 2.4; }
  int64_t l1Bytes() const override { return 64 << 10; }
  int64_t l2Bytes() const override { return 1 << 20; }
  double bandwidthGBs() const override { return dotprod ? 60 : 30; }
  std::vector<KernelLayout> ternaryLayouts() const override {
    return {KernelLayout::TL1, KernelLayout::I2S, KernelLayout::TQ2, KernelLayout::TQ1};
  }
  double macsPerCycle(KernelLayout l) const override {
    switch (l) {
    case KernelLayout::I2S:
      return dotprod ? 48 : 16; // sdot vs smull+sadalp
    case KernelLayout::TL1:
      return 40; // tbl over 16 rows x 2 weights, no multiplies
    case KernelLayout::TQ2:
      return dotprod ? 40 : 14;
    case KernelLayout::TQ1:
      return dotprod ? 16 : 8;
    default:
      return 8;
    }
  }

private:
  bool dotprod;
};

class CudaTarget : public TargetInfo {
public:
  Isa isa() const override { return Isa::CUDA; }
  int vectorBits() const override { return 1024; } // a warp of 32-bit lanes
  int cores() const override { return 132; }       // SMs
  double clockGHz() const override { return 1.7; }
  int64_t l1Bytes() const override { return 228 << 10; } // shared memory per SM
  int64_t l2Bytes() const override { return 50 << 20; }
  double bandwidthGBs() const override { return 3000; }
  std::vector<KernelLayout> ternaryLayouts() const override {
    // TQ1's base-3 decode costs more ALU than its 16% smaller reads save
    // once launch and tail effects are counted; no LUT kernels on GPUs.
    return {KernelLayout::I2S, KernelLayout::TQ2};
  }
  double macsPerCycle(KernelLayout l) const override {
    switch (l) {
    case KernelLayout::I2S:
      return 4096; // dp4a / int8 mma per SM
    case KernelLayout::TQ2:
      return 3072;
    case KernelLayout::TQ1:
      return 1024;
    default:
      return 512;
    }
  }
  std::vector<int64_t> tileMChoices() const override { return {32, 64, 128, 256}; }
};

} // namespace

const char *targetNames() {
  return "avx2, x86-64-v3, avx512_vnni, x86-64-v4, neon, aarch64, neon_dotprod, aarch64-dotprod, "
         "cuda, native";
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
  } else if (name == "cuda") {
    m = {m.name, "cuda", "", "", "", ""};
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
      m.kernelTarget = has("dotprod") ? "neon_dotprod" : "neon";
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

std::unique_ptr<TargetInfo> createTargetInfo(llvm::StringRef name) {
  if (name == "native" || name == "x86-64-v3" || name == "x86-64-v4") {
    std::optional<MachineTarget> m = resolveMachineTarget(name);
    return createTargetInfo(m->kernelTarget);
  }
  if (name == "avx2" || name == "x86-64-avx2")
    return std::make_unique<Avx2Target>();
  if (name == "avx512_vnni" || name == "avx512" || name == "avx512-vnni")
    return std::make_unique<Avx512VnniTarget>();
  if (name == "neon" || name == "aarch64")
    return std::make_unique<NeonTarget>(false);
  if (name == "neon_dotprod" || name == "neon-dotprod" || name == "aarch64-dotprod")
    return std::make_unique<NeonTarget>(true);
  if (name == "cuda")
    return std::make_unique<CudaTarget>();
  return nullptr;
}

} // namespace tern::compiler
