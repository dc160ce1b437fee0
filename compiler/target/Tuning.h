// Measured kernel rates of one host: the tuning file `ternc tune` writes
// and `ternc compile --tuning` (tern-select-kernels tuning=) reads instead of
// the built-in cost table (docs/cost-model.md, "Tuning file").
//
// A file holds, for the ISA and CPU it was measured on, one entry per
// (layout, act-quant, ukernel variant, matrix shape, tile) with the rate at
// each batch size measured, and the f16 LM head's rate. JSON, versioned:
//
//   {"format": "tern-tuning", "version": 1, "isa": "avx512_vnni",
//    "cpu": "sapphirerapids", "cpu_model": "Intel(R) Xeon(R) ...",
//    "threads": 1, "budget_s": 3, "rows": 512, "model": "m.gguf",
//    "kernels": [{"layout": "i2s", "act": "token", "variant": "avx512_vnni",
//                 "m": 2560, "k": 2560, "tile_m": 32, "tile_k": 256,
//                 "rates": [[1, 24.1], [64, 76.2]]}, ...],
//    "heads": [{"format": "f16", "variant": "avx512_vnni", "m": 128256,
//               "k": 2560, "tile_m": 64, "tile_k": 512, "rates": [[1, 9.5]]}]}
//
// Rates are G weight x token multiply-adds per CPU second on one thread, as
// in the built-in table.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "compiler/target/TargetInfo.h"

namespace tern::compiler {

// (batch size n, rate), n ascending, each n once.
using TunedRates = std::vector<std::pair<int64_t, double>>;

struct TunedKernel {
  ir::KernelLayout layout = ir::KernelLayout::I2S;
  ActQuant act = ActQuant::Token;
  std::string variant;  // ukernel ISA suffix that ran: the target's ISA or "ref"
  int64_t m = 0, k = 0; // the matrix shape measured (rows may be capped: "rows")
  int64_t tileM = 0, tileK = 0;
  TunedRates rates;
};

struct TunedHead {
  std::string format = "f16"; // weight format of the head
  std::string variant;
  int64_t m = 0, k = 0, tileM = 0, tileK = 0;
  TunedRates rates;
};

struct Tuning {
  static constexpr int kVersion = 1;
  std::string path;     // where it was read from (for messages; not stored)
  std::string isa;      // kernel target it was measured for (TargetInfo name)
  std::string cpu;      // llvm host CPU name
  std::string cpuModel; // /proc/cpuinfo "model name" (informative)
  int threads = 1;
  double budgetS = 0;
  int64_t rows = 0; // matrices were cut to this many rows (0: whole matrices)
  std::string model;
  std::vector<TunedKernel> kernels;
  std::vector<TunedHead> heads;
};

// Parses and checks a tuning file's text; errors name `path` and the field.
absl::StatusOr<Tuning> parseTuning(std::string_view text, const std::string &path);
absl::StatusOr<Tuning> loadTuning(const std::string &path);
std::string tuningToJson(const Tuning &t);

// Empty when `t` may drive kernel selection for target `ti`: the file must
// have been measured for the same kernel ISA, and for `--target native`
// (hostCpu non-empty) on a CPU of the same name.
std::string tuningMismatch(const Tuning &t, const TargetInfo &ti, const std::string &hostCpu);

// The rate at decode (n = 1, else the smallest n) and for a prefill batch of
// up to maxBatch tokens (the largest measured n > 1 that is <= maxBatch,
// else the smallest n > 1, else the decode rate).
double tunedDecodeRate(const TunedRates &r);
double tunedPrefillRate(const TunedRates &r, int64_t maxBatch);

// A dense matrix's estimate `e` (memory only) with the head rate of the
// nearest measured head of the same format: compute time on `cores` cores,
// decode = max(memory, compute). Unchanged when the file has no such head.
void applyTunedHead(const Tuning &t, int cores, int64_t m, int64_t k, KernelEstimate &e);

} // namespace tern::compiler
