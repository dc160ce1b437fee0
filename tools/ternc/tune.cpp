#include "tools/ternc/tune.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "compiler/import/Importer.h"
#include "compiler/import/Source.h"
#include "compiler/pack/Pack.h"
#include "compiler/pipeline/Registration.h"
#include "compiler/target/TargetInfo.h"
#include "compiler/target/Tuning.h"
#include "fmt/format.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "passes/Common.h"
#include "passes/Passes.h"
#include "runtime/support/args.h"
#include "runtime/ukernels/ukernels.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/TargetParser/Host.h"

namespace tern::tune {
namespace {

using compiler::ActQuant;
using compiler::TargetInfo;
using ir::KernelLayout;

using MatmulI8 = void (*)(TERN_UK_MATMUL_I8_ARGS);
using MatmulF32 = void (*)(TERN_UK_MATMUL_F32_ARGS);
using LmHead = void (*)(TERN_UK_LM_HEAD_ARGS);

// The ukernels of this host's library, by name: variants.def's matmuls
// ("i2s_i8_avx2") and f16 heads ("head_avx2"). Another architecture's ISA
// files are not in the library: those entries are absent.
#if defined(__x86_64__)
#define TUNE_PTR_avx2(f) reinterpret_cast<void *>(&f)
#define TUNE_PTR_avx512_vnni(f) reinterpret_cast<void *>(&f)
#define TUNE_PTR_neon(f) nullptr
#define TUNE_PTR_neon_dotprod(f) nullptr
#define TUNE_PTR_neon_i8mm(f) nullptr
#elif defined(__aarch64__)
#define TUNE_PTR_avx2(f) nullptr
#define TUNE_PTR_avx512_vnni(f) nullptr
#define TUNE_PTR_neon(f) reinterpret_cast<void *>(&f)
#define TUNE_PTR_neon_dotprod(f) reinterpret_cast<void *>(&f)
#define TUNE_PTR_neon_i8mm(f) reinterpret_cast<void *>(&f)
#else
#define TUNE_PTR_avx2(f) nullptr
#define TUNE_PTR_avx512_vnni(f) nullptr
#define TUNE_PTR_neon(f) nullptr
#define TUNE_PTR_neon_dotprod(f) nullptr
#define TUNE_PTR_neon_i8mm(f) nullptr
#endif
#define TUNE_PTR_ref(f) reinterpret_cast<void *>(&f)
#define TUNE_FN_i8(layout, isa) TUNE_PTR_##isa(tern_uk_matmul_##layout##_##isa)
#define TUNE_FN_f32(layout, isa) TUNE_PTR_##isa(tern_uk_matmul_##layout##_f32act_##isa)

const std::map<std::string, void *> &ukernels() {
  static const std::map<std::string, void *> m = [] {
    std::map<std::string, void *> out;
#define TERN_UK_VARIANT(layout, act, isa)                                                          \
  out[#layout "_" #act "_" #isa] = TUNE_FN_##act(layout, isa);
#define TERN_UK_HEAD_VARIANT(isa) out["head_" #isa] = TUNE_PTR_##isa(tern_uk_lm_head_f16_##isa);
#include "runtime/ukernels/variants.def"
#undef TERN_UK_HEAD_VARIANT
#undef TERN_UK_VARIANT
    return out;
  }();
  return m;
}

void *ukernel(const std::string &name) {
  auto it = ukernels().find(name);
  return it == ukernels().end() ? nullptr : it->second;
}

// Whether this CPU runs a variant's ISA (the ukernels' own requirements,
// runtime/ukernels/ukernels.h).
bool hostRuns(const std::string &isa) {
  static const llvm::StringMap<bool> f = llvm::sys::getHostCPUFeatures();
  auto has = [&](const char *k) { return f.lookup(k); };
  if (isa == "ref")
    return true;
  if (isa == "avx2")
    return has("avx2") && has("fma") && has("f16c");
  if (isa == "avx512_vnni")
    return has("avx2") && has("fma") && has("f16c") && has("avx512f") && has("avx512bw") &&
           has("avx512vl") && has("avx512vnni");
  if (isa == "neon")
    return has("neon");
  if (isa == "neon_dotprod")
    return has("neon") && has("dotprod");
  if (isa == "neon_i8mm")
    return has("neon") && has("dotprod") && has("i8mm");
  return false;
}

std::string cpuModelName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0)
      if (size_t c = line.find(':'); c != std::string::npos)
        return line.substr(line.find_first_not_of(" \t", c + 1));
  return "";
}

double threadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

struct Shape {
  int64_t m, k;
  bool operator<(const Shape &o) const { return m != o.m ? m < o.m : k < o.k; }
};

// The matrix shapes the compiler sees: ternary matrices after tern-fuse
// (act-quant token) or without it (none), and the f16 head.
struct ModelShapes {
  std::set<Shape> fused, unfused, heads;
};

std::optional<ModelShapes> modelShapes(const std::string &path, std::string &err) {
  mlir::DialectRegistry registry;
  compiler::registerTernDialects(registry);
  mlir::MLIRContext ctx(registry, mlir::MLIRContext::Threading::DISABLED);
  ctx.loadAllAvailableDialects();
  llvm::SourceMgr sm;
  mlir::SourceMgrDiagnosticHandler diag(sm, &ctx);
  auto source = compiler::openSourceModel(path, formats::I2SLayout::X86_QK128);
  if (!source.ok()) {
    err = std::string(source.status().message());
    return std::nullopt;
  }
  ModelShapes out;
  for (bool fuse : {false, true}) {
    mlir::OwningOpRef<mlir::ModuleOp> module = compiler::importGGUF(ctx, **source);
    if (!module) {
      err = "cannot import " + path;
      return std::nullopt;
    }
    mlir::PassManager pm(&ctx);
    passes::WeightsIO io;
    io.source = *source;
    pm.addPass(passes::createVerifyQuantMappingPass({}, io));
    if (fuse)
      pm.addPass(passes::createFusePass());
    if (mlir::failed(pm.run(*module))) {
      err = "the model's quant mapping is refused (ternc inspect says why)";
      return std::nullopt;
    }
    module->walk([&](mlir::Operation *op) {
      std::optional<passes::MatrixInfo> info = passes::matrixInfo(op);
      if (!info)
        return;
      if (info->ternaryRole)
        (fuse ? out.fused : out.unfused).insert({info->rows, info->cols});
      else if (info->weights.front().getFormat() == ir::WeightFormat::F16)
        out.heads.insert({info->rows, info->cols});
    });
  }
  return out;
}

struct Options {
  std::string model, out, target = "native", act = "token";
  double budget = 3;
  int64_t rows = 512;
  std::vector<int32_t> batches{1, 4, 16, 64, 128};
  bool allTilesForRef = false;
};

// One timing: a kernel variant at one tile on one shape, for every batch.
struct Job {
  KernelLayout layout;
  ActQuant act;
  std::string variant;
  Shape shape;
  int64_t tileM, tileK;
  std::vector<int32_t> batches;
};

// Runs `call()` for about `slice` seconds of wall time (at least once),
// returns the least thread CPU time of one call (the least disturbed on a
// shared machine; the packed weights were just written, so caches are warm).
template <class F> double timeCall(F &&call, double slice) {
  const auto start = std::chrono::steady_clock::now();
  double best = 1e30;
  do {
    const double t0 = threadCpuSeconds();
    call();
    best = std::min(best, std::max(threadCpuSeconds() - t0, 1e-9));
  } while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < slice);
  return best;
}

// Random ternary weights packed for the job's tile (rows cut to `rows`).
absl::StatusOr<std::vector<uint8_t>> packedRandom(const Job &j, int64_t rows) {
  formats::TernaryMatrix w;
  w.rows = uint64_t(rows);
  w.cols = uint64_t(j.shape.k);
  w.codes.resize(w.rows * w.cols);
  std::mt19937 rng(7);
  for (int8_t &c : w.codes)
    c = int8_t(int(rng() % 3) - 1);
  w.blockElems = w.rows * w.cols;
  w.scales = {1.0f};
  const int64_t seg[] = {rows};
  return compiler::pack::packTernary(w, seg, {j.layout, j.tileM, j.tileK});
}

int runTune(const Options &o) {
  std::optional<compiler::MachineTarget> machine = compiler::resolveMachineTarget(o.target);
  std::unique_ptr<TargetInfo> ti = compiler::createTargetInfo(o.target);
  if (!machine || !ti || machine->triple.empty() || !machine->gpuArch.empty()) {
    std::cerr << fmt::format("ternc tune: error: --target {}: not a CPU target (known: {})\n",
                             o.target, compiler::targetNames());
    return 2;
  }
  const std::string hostArch =
      llvm::StringRef(llvm::sys::getProcessTriple()).starts_with("aarch64") ? "aarch64" : "x86_64";
  if (machine->arch() != hostArch || !hostRuns(ti->name().str()) ||
      !ukernel("i2s_i8_" + ti->name().str())) {
    std::cerr << fmt::format("ternc tune: error: --target {}: this host cannot run {} kernels "
                             "(tune measures on the machine that will run the model)\n",
                             o.target, ti->name().str());
    return 2;
  }
  std::string err;
  std::optional<ModelShapes> shapes = modelShapes(o.model, err);
  if (!shapes) {
    std::cerr << "ternc tune: error: " << o.model << ": " << err << "\n";
    return 1;
  }

  // The jobs: every row of the target's table for the act-quants asked,
  // at every tile the compiler may pick (scalar `ref` rows: at the tile
  // nearest the built-in table's 32x256 only, unless --long), on every
  // shape. Scalar rows are timed at the smallest and largest batch only.
  std::vector<Job> jobs;
  for (ActQuant act : {ActQuant::Token, ActQuant::None}) {
    if (o.act != "both" && o.act != compiler::actQuantName(act))
      continue;
    const std::set<Shape> &ss = act == ActQuant::Token ? shapes->fused : shapes->unfused;
    for (const compiler::KernelCost &row : ti->costTable()) {
      if (row.act != act || !ir::isTernaryLayout(row.layout))
        continue;
      const std::string actName = act == ActQuant::Token ? "i8" : "f32";
      const std::string fnName = fmt::format(
          "{}_{}_{}", ir::stringifyKernelLayout(row.layout).str(), actName, row.variant);
      if (!ukernel(fnName))
        continue;
      const bool ref = std::string(row.variant) == "ref";
      for (const Shape &s : ss) {
        std::vector<std::pair<int64_t, int64_t>> tiles;
        for (int64_t tm : ti->tileMChoices())
          for (int64_t tk : compiler::tileKChoices(row.layout, s.k))
            if (ir::kernelTileError(row.layout, ti->isa(), tm, tk).empty())
              tiles.push_back({tm, tk});
        if (tiles.empty())
          continue;
        if (ref && !o.allTilesForRef) {
          auto dist = [](std::pair<int64_t, int64_t> t) {
            return std::abs(std::log(t.first / 32.0)) + std::abs(std::log(t.second / 256.0));
          };
          auto best = *std::min_element(tiles.begin(), tiles.end(),
                                        [&](auto a, auto b) { return dist(a) < dist(b); });
          tiles = {best};
        }
        // Scalar rows: n = 1 and the first prefill batch of at least 16
        // (their rate hardly depends on the batch; larger ones cost seconds).
        std::vector<int32_t> bs = o.batches;
        if (ref && !o.allTilesForRef && bs.size() > 2) {
          auto it = std::find_if(bs.begin() + 1, bs.end(), [](int32_t n) { return n >= 16; });
          bs = {bs.front(), it == bs.end() ? bs.back() : *it};
        }
        for (auto [tm, tk] : tiles)
          jobs.push_back({row.layout, act, row.variant, s, tm, tk, bs});
      }
    }
  }
  size_t timings = shapes->heads.size();
  for (const Job &j : jobs)
    timings += j.batches.size();
  const double slice = timings ? o.budget / double(timings) : 0;
  std::cerr << fmt::format("ternc tune: {} on {} ({}): {} kernel x tile x shape jobs, {} timings, "
                           "~{:.3f} s each\n",
                           o.model, ti->name().str(), llvm::sys::getHostCPUName().str(),
                           jobs.size(), timings, slice);
  const auto t0 = std::chrono::steady_clock::now();

  compiler::Tuning t;
  t.isa = ti->name().str();
  t.cpu = llvm::sys::getHostCPUName().str();
  t.cpuModel = cpuModelName();
  t.threads = 1;
  t.budgetS = o.budget;
  t.rows = o.rows;
  t.model = o.model;
  const int32_t nMax = *std::max_element(o.batches.begin(), o.batches.end());
  for (const Job &j : jobs) {
    // Scalar rows: at most 128 rows (a few row tiles) unless --long.
    const int64_t cap =
        j.variant == "ref" && !o.allTilesForRef ? std::min<int64_t>(o.rows, 128) : o.rows;
    const int64_t rows =
        cap ? std::min(j.shape.m, (cap + j.tileM - 1) / j.tileM * j.tileM) : j.shape.m;
    absl::StatusOr<std::vector<uint8_t>> packed = packedRandom(j, rows);
    if (!packed.ok()) {
      std::cerr << "ternc tune: error: packing " << ir::stringifyKernelLayout(j.layout).str()
                << ": " << packed.status().message() << "\n";
      return 1;
    }
    std::mt19937 rng(3);
    std::vector<int8_t> q(size_t(nMax) * j.shape.k);
    for (int8_t &x : q)
      x = int8_t(int(rng() % 255) - 127);
    std::vector<float> qs(nMax, 10.0f), x(size_t(nMax) * j.shape.k, 0.5f), out(size_t(nMax) * rows);
    const bool f32 = j.act == ActQuant::None;
    void *fn = ukernel(fmt::format("{}_{}_{}", ir::stringifyKernelLayout(j.layout).str(),
                                   f32 ? "f32" : "i8", j.variant));
    compiler::TunedKernel tk;
    tk.layout = j.layout;
    tk.act = j.act;
    tk.variant = j.variant;
    tk.m = j.shape.m;
    tk.k = j.shape.k;
    tk.tileM = j.tileM;
    tk.tileK = j.tileK;
    for (int32_t n : j.batches) {
      const double s = timeCall(
          [&] {
            if (f32)
              reinterpret_cast<MatmulF32>(fn)(nullptr, n, x.data(), packed->data(), rows, j.shape.k,
                                              j.tileM, j.tileK, out.data(), rows, nullptr, 0,
                                              nullptr, 0);
            else
              reinterpret_cast<MatmulI8>(fn)(nullptr, n, q.data(), qs.data(), packed->data(), rows,
                                             j.shape.k, j.tileM, j.tileK, out.data(), rows, nullptr,
                                             0, nullptr, 0);
          },
          slice);
      tk.rates.push_back({n, double(rows) * double(j.shape.k) * n / s / 1e9});
    }
    t.kernels.push_back(std::move(tk));
  }

  // The f16 LM head at decode (one token): the variant the compiler calls.
  for (const Shape &s : shapes->heads) {
    std::string variant = ti->name().str();
    LmHead fn = reinterpret_cast<LmHead>(ukernel("head_" + variant));
    if (!fn) {
      variant = "ref";
      fn = &tern_uk_lm_head_f16_ref;
    }
    const compiler::KernelEstimate e = ti->candidates(s.m, s.k, ir::WeightFormat::F16, false)[0];
    const int64_t rows = o.rows ? std::min(s.m, std::max<int64_t>(o.rows, 4096)) : s.m;
    std::vector<uint16_t> w(size_t(rows) * s.k, 0x2c00); // f16 1/16
    std::vector<float> x(s.k, 0.25f), logits(rows);
    const double sec = timeCall(
        [&] { fn(nullptr, 1, x.data(), w.data(), logits.data(), s.k, rows, e.tileM, e.tileK); },
        slice);
    t.heads.push_back({"f16",
                       variant,
                       s.m,
                       s.k,
                       e.tileM,
                       e.tileK,
                       {{1, double(rows) * double(s.k) / sec / 1e9}}});
  }

  const std::string text = compiler::tuningToJson(t);
  if (o.out == "-") {
    std::cout << text;
  } else {
    std::ofstream f(o.out, std::ios::binary | std::ios::trunc);
    f << text;
    f.close();
    if (!f) {
      std::cerr << "ternc tune: error: cannot write '" << o.out << "'\n";
      return 1;
    }
  }
  std::cerr << fmt::format(
      "ternc tune: wrote {} ({} kernel entries, {} heads) in {:.1f} s\n",
      o.out == "-" ? "stdout" : o.out, t.kernels.size(), t.heads.size(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return 0;
}

int checkTuningFile(const std::string &path, const std::string &target, const std::string &out) {
  absl::StatusOr<compiler::Tuning> t = compiler::loadTuning(path);
  if (!t.ok()) {
    std::cerr << "ternc tune: error: " << t.status().message() << "\n";
    return 1;
  }
  if (!target.empty()) {
    std::unique_ptr<TargetInfo> ti = compiler::createTargetInfo(target);
    if (!ti) {
      std::cerr << fmt::format("ternc tune: error: --target: unknown target '{}' (known: {})\n",
                               target, compiler::targetNames());
      return 2;
    }
    std::string why = compiler::tuningMismatch(
        *t, *ti, target == "native" ? llvm::sys::getHostCPUName().str() : "");
    if (!why.empty()) {
      std::cerr << "ternc tune: error: " << why << "\n";
      return 1;
    }
  }
  if (!out.empty()) {
    const std::string text = compiler::tuningToJson(*t);
    if (out == "-") {
      std::cout << text;
    } else {
      std::ofstream f(out, std::ios::binary | std::ios::trunc);
      f << text;
      f.close();
      if (!f) {
        std::cerr << "ternc tune: error: cannot write '" << out << "'\n";
        return 1;
      }
    }
  }
  std::cerr << fmt::format("ternc tune: {}: ok (isa {}, cpu {}, {} kernel entries, {} heads)\n",
                           path, t->isa, t->cpu, t->kernels.size(), t->heads.size());
  return 0;
}

} // namespace

int runTuneCommand(int argc, char **argv) {
  Options o;
  bool longRun = false, batchesGiven = false, targetGiven = false;
  std::string check;
  double budget = -1;
  std::optional<int64_t> rows;
  args::Parser p("ternc tune", R"(usage: ternc tune MODEL.gguf -o TUNING.json [options]

Times, on this host and one thread, every ukernel variant the cost model of
--target may choose (layouts x tiles x act-quant), on the model's matrix
shapes as the compiler sees them, at several batch sizes (decode and prefill
chunks), and the f16 LM head; writes the rates as a tuning file for
`ternc compile --tuning TUNING.json` (docs/cost-model.md). Short by default
(--budget seconds of timing in all); --long for a thorough run.
)");
  p.positional("MODEL.gguf", "", [&](std::string_view, const std::string &v) -> absl::Status {
    if (!o.model.empty())
      return absl::InvalidArgumentError(
          fmt::format("more than one model given ('{}', '{}')", o.model, v));
    o.model = v;
    return absl::OkStatus();
  });
  p.string("-o,--output", &o.out, "OUT", "the tuning file to write ('-' = stdout)");
  p.value("--target", "T",
          "native (default) or the host's kernel ISA: avx2 | avx512_vnni |\n"
          "neon | neon_dotprod | neon_i8mm",
          [&](std::string_view, const std::string &v) {
            o.target = v;
            targetGiven = true;
            return absl::OkStatus();
          });
  p.choice("--act-quant", &o.act, {"token", "none", "both"}, "A",
           "measure the int8 (token, default), f32 (none) kernels or both");
  p.number("--budget", &budget, 0, 36000, "S",
           "seconds of timing spread over all measurements (default 3;\n"
           "each timing still runs at least one call)");
  p.integer("--rows", &rows, int64_t(0), int64_t(1) << 30, "N",
            "time at most N rows of each matrix (default 512; 0 = whole\n"
            "matrices: then decode rates include the memory stalls)");
  p.value("--batches", "LIST", "batch sizes to time (default 1,4,16,64,128)",
          [&](std::string_view flag, const std::string &v) -> absl::Status {
            absl::StatusOr<std::vector<int32_t>> l = args::parseIntList(flag, v, 1, 4096);
            if (!l.ok())
              return l.status();
            std::vector<int32_t> s = *l;
            std::sort(s.begin(), s.end());
            s.erase(std::unique(s.begin(), s.end()), s.end());
            o.batches = s;
            batchesGiven = true;
            return absl::OkStatus();
          });
  p.flag("--long", &longRun,
         "thorough: --budget 60, whole matrices, batches up to 512, scalar\n"
         "kernels at every tile and batch");
  p.string("--check", &check, "FILE",
           "measure nothing: read and check the tuning file FILE (against\n"
           "--target when given) and, with -o, write it back in canonical form");
  if (std::optional<int> rc =
          p.parseOrExit(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr))
    return *rc;
  if (!check.empty())
    return checkTuningFile(check, targetGiven ? o.target : "", o.out);
  if (o.model.empty() || o.out.empty()) {
    std::cerr << "ternc tune: error: " << (o.model.empty() ? "no model given" : "no -o OUT given")
              << " (see 'ternc tune --help')\n";
    return 2;
  }
  if (longRun) {
    o.budget = 60;
    o.rows = 0;
    o.allTilesForRef = true;
    if (!batchesGiven)
      o.batches = {1, 2, 4, 8, 16, 64, 128, 256, 512};
  }
  if (budget >= 0)
    o.budget = budget;
  if (rows)
    o.rows = *rows;
  return runTune(o);
}

} // namespace tern::tune
