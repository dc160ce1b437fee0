#include "tools/tern/common.h"

#include <algorithm>

#include "fmt/format.h"
#include "runtime/capi/bridge.h"
#include "runtime/exec/artifact_model.h"
#include "runtime/exec/compile_cache.h"
#include "runtime/model/kv_cache.h"
#include "runtime/support/status.h"

namespace tern::cli {

using model::ActQuant;

void addModelFlags(args::Parser &p, Common &c) {
  p.positional("MODEL", "", [&c](std::string_view, const std::string &v) -> absl::Status {
    if (!c.modelPath.empty())
      return absl::InvalidArgumentError(
          fmt::format("unexpected argument '{}' (the model is '{}')", v, c.modelPath));
    c.modelPath = v;
    return absl::OkStatus();
  });
  p.section("model options");
  p.string("-m,--model", &c.modelPath, "PATH",
           "the model (also accepted as the first positional argument)");
  p.integer("-t,--threads", &c.opts.threads, 0, 1024, "N",
            "thread pool size (default 1; 0 = all cores)");
  p.integer("-c,--ctx-size", &c.opts.contextLength, 1, 1u << 24, "N",
            "context length per session (default min(model's, 4096))");
  p.choice("--act-quant", &c.opts.actQuant,
           {{"token", ActQuant::PerToken},
            {"per-token", ActQuant::PerToken},
            {"none", ActQuant::None},
            {"q8k", ActQuant::Q8K}},
           "MODE",
           "token (per-token int8 activations, BitNet's math; default)\n"
           "or none (float activations against the ternary weights)\n"
           "or q8k (llama.cpp-compatible, for cross-checking:\n"
           "ggml's Q8_K blocks of 256 and f16 KV cache)");
  p.choice("--head", &c.opts.q8Head, {{"f16", false}, {"q8", true}}, "H",
           ".gguf: the LM head, f16 (as stored, exact; default) or q8\n"
           "(int8 rows + f32 row scales, ternc compile --head q8),\n"
           "compiled and reference alike; a .tern keeps its own");
  p.choice("--kv-type", &c.opts.kvType, {{"f16", model::KvType::F16}, {"f32", model::KvType::F32}},
           "T",
           ".gguf: the KV cache's element type, f16 (default; half\n"
           "the bytes) or f32 (ternc compile --kv-type), compiled and\n"
           "reference alike; a .tern keeps its own");
  p.flag("--compile", &c.compile,
         ".gguf only: compile with ternc into the artifact cache\n"
         "($TERN_CACHE_DIR, $XDG_CACHE_HOME/ternc or ~/.cache/ternc;\n"
         "reused while the GGUF, target, flags and ternc version\n"
         "match) and run the compiled code (the default when a\n"
         "ternc is found: $TERNC, next to tern, or on $PATH);\n"
         "with --compile a missing ternc is an error");
  p.flag("--reference", &c.reference,
         ".gguf only: the scalar reference forward pass (the\n"
         "default without ternc, and always for --act-quant q8k)");
  p.flag(
      "--no-verify-weights", [&c] { c.opts.verifyWeightsHash = false; },
      ".tern only: skip hashing the weights section on open\n"
      "(every other check still runs)");
  p.flag(
      "--no-mmap", [&c] { c.opts.weightsMemory = model::ModelOptions::WeightsMemory::Copy; },
      "compiled model: read the artifact into anonymous memory\n"
      "(huge pages where the kernel gives them; page-cache\n"
      "reclaim cannot drop it). Default when it takes at most\n"
      "half the available memory");
  p.flag(
      "--mmap", [&c] { c.opts.weightsMemory = model::ModelOptions::WeightsMemory::Map; },
      "compiled model: map the artifact (shares the page cache\n"
      "with other processes; opens faster; the kernel may drop\n"
      "and re-read weight pages). Default when it does not fit");
  p.flag(
      "--mlock", [&c] { c.opts.weightsMemory = model::ModelOptions::WeightsMemory::Mlock; },
      "compiled model: map the artifact and lock it in memory\n"
      "(needs `ulimit -l` or CAP_IPC_LOCK)");
  p.string("--device", &c.opts.device, "D",
           "where a compiled model runs: cpu, cuda (the CUDA driver's\n"
           "GPU; UNTESTED ON HARDWARE) or cuda-emulated (the GPU\n"
           "kernels' code on the CPU, for tests); default: what the\n"
           "artifact was compiled for (ternc --target cuda:sm_XX)");
  p.string("--target", &c.target, "T",
           "when compiling: ternc's --target (default native; cuda\nwith --device cuda or "
           "cuda-emulated)");
  p.string("--kernel", &c.kernel, "K",
           "when compiling: ternc's --kernel (e.g. ref); on the\n"
           "reference path only `ref` is accepted");
  p.integer("--kv-page-size", &c.opts.pageSize, 1, 1u << 16, "N",
            "KV positions per page (default 16)");
  p.integer("--kv-pages", &c.opts.kvPages, 1, 1u << 30, "N",
            "KV pool size in pages (blocks x layers; default:\n"
            "-c x --parallel, or --kv-mem)");
  p.integer("-np,--parallel", &c.opts.parallel, 1, 1u << 16, "N",
            "sessions the KV pool holds at full context (default 1)");
  p.value("--kv-mem", "BYTES",
          "KV pool size in bytes, e.g. 512M, 2G (wins over -c x\n"
          "--parallel)",
          [&c](std::string_view flag, const std::string &v) -> absl::Status {
            absl::StatusOr<uint64_t> b = model::parseByteSize(v);
            if (!b.ok())
              return absl::InvalidArgumentError(
                  fmt::format("{}: {}", flag, std::string(b.status().message())));
            c.opts.kvMemBytes = *b;
            return absl::OkStatus();
          });
  p.flag(
      "--no-prefix-cache", [&c] { c.opts.prefixCache = false; },
      "do not share KV pages of common prompt prefixes\n"
      "between sessions");
  p.parsed("--i2s-layout", &c.opts.i2sLayout, formats::parseI2SLayout, formats::i2sLayoutChoices(),
           "L",
           "I2_S packing: x86-qk128 (default; alias x86), arm-qk64\n"
           "(alias arm), x86-1x4");
}

std::optional<int> parseCommand(args::Parser &p, Common &c, const std::vector<std::string> &a,
                                std::ostream &out, std::ostream &err, bool needModel) {
  if (std::optional<int> rc = p.parseOrExit(a, out, err))
    return rc;
  c.actQuantGiven = p.given("--act-quant");
  c.i2sGiven = p.given("--i2s-layout");
  c.headGiven = p.given("--head");
  c.kvTypeGiven = p.given("--kv-type");
  if (needModel && c.modelPath.empty()) {
    err << p.prog() << ": error: no model given (" << p.prog() << " MODEL ...)\n";
    return 2;
  }
  return std::nullopt;
}

absl::Status apiStatus(tern_status s) { return capi::lastStatus(s); }

absl::StatusOr<std::vector<int32_t>> tokenize(const tern_model *m, const std::string &text,
                                              bool addSpecial) {
  const unsigned flags = addSpecial ? TERN_TOKENIZE_ADD_SPECIAL : 0;
  std::vector<int32_t> ids(text.size() + 2);
  size_t n = 0;
  tern_status st = tern_tokenize(m, text.data(), text.size(), flags, ids.data(), ids.size(), &n);
  if (st == TERN_ERR_BUFFER_TOO_SMALL) {
    ids.resize(n);
    st = tern_tokenize(m, text.data(), text.size(), flags, ids.data(), ids.size(), &n);
  }
  if (st != TERN_OK)
    return withContext(apiStatus(st), "tokenizer");
  ids.resize(n);
  return ids;
}

int fail(std::ostream &err, const std::string &cmd, const absl::Status &s) {
  err << "tern " << cmd << ": error: " << statusMessage(s) << "\n";
  return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

namespace {
bool endsWith(const std::string &s, const char *suf) {
  const size_t n = std::char_traits<char>::length(suf);
  return s.size() >= n && s.compare(s.size() - n, n, suf) == 0;
}
} // namespace

absl::StatusOr<std::unique_ptr<model::Model>> openFor(Common &c, std::ostream &err) {
  if (c.compile && c.reference)
    return absl::InvalidArgumentError("--compile and --reference exclude each other");
  if (endsWith(c.modelPath, ".tern")) {
    if (c.compile || c.reference)
      return absl::InvalidArgumentError(
          "--compile / --reference apply to a .gguf; this model is already compiled");
    absl::StatusOr<std::unique_ptr<model::Model>> m = exec::openModel(c.modelPath, c.opts);
    if (m.ok() && c.actQuantGiven && (*m)->options().actQuant != c.opts.actQuant)
      return absl::InvalidArgumentError(fmt::format(
          "--act-quant {}: {} was compiled with --act-quant {} (activation quantization is "
          "fixed at compile time; recompile with ternc compile --act-quant {})",
          model::actQuantName(c.opts.actQuant), c.modelPath,
          model::actQuantName((*m)->options().actQuant), model::actQuantName(c.opts.actQuant)));
    if (m.ok() && c.headGiven && (*m)->options().q8Head != c.opts.q8Head)
      return absl::InvalidArgumentError(fmt::format(
          "--head {}: {} was compiled with a different LM head (the head is packed at compile "
          "time; recompile with ternc compile --head {})",
          c.opts.q8Head ? "q8" : "f16", c.modelPath, c.opts.q8Head ? "q8" : "f16"));
    if (m.ok() && c.kvTypeGiven && (*m)->options().kvType != c.opts.kvType)
      return absl::InvalidArgumentError(fmt::format(
          "--kv-type {}: {} was compiled with --kv-type {} (the KV cache's type is fixed at "
          "compile time; recompile with ternc compile --kv-type {})",
          model::kvTypeName(c.opts.kvType), c.modelPath, model::kvTypeName((*m)->options().kvType),
          model::kvTypeName(c.opts.kvType)));
    return m;
  }
  bool compile = c.compile;
  if (c.opts.actQuant == ActQuant::Q8K) {
    if (c.compile)
      return absl::InvalidArgumentError(
          "--act-quant q8k exists only on the reference path (llama.cpp-compatible "
          "cross-checking); it cannot be compiled");
  } else if (!c.compile && !c.reference) {
    // `tern run MODEL.gguf` compiles into the cache first (DESIGN.md), where
    // a compiler is installed; a runtime-only install runs the reference.
    compile = exec::findTernc().ok();
    if (!compile)
      err << "tern: note: no ternc found ($TERNC, next to tern, $PATH): running " << c.modelPath
          << " on the scalar reference forward pass\n";
  }
  const bool gpuDevice = c.opts.device == "cuda" || c.opts.device == "cuda-emulated";
  if (!compile) {
    if (gpuDevice)
      return absl::InvalidArgumentError(
          fmt::format("--device {} runs compiled code only: compile the model with ternc "
                      "--target cuda:sm_80|cuda:sm_90 (or pass --compile)",
                      c.opts.device));
    if (!c.kernel.empty() && c.kernel != "ref")
      return absl::InvalidArgumentError(
          fmt::format("--kernel: '{}' needs --compile; the reference path runs only the reference "
                      "kernels (ref)",
                      c.kernel));
    return exec::openModel(c.modelPath, c.opts);
  }
  exec::CompileRequest req;
  req.target = c.target;
  if (gpuDevice && (req.target.empty() || req.target == "native"))
    req.target = "cuda"; // native is the CPU; a GPU device needs the cuda target
  req.kernel = c.kernel;
  if (c.actQuantGiven && c.opts.actQuant == ActQuant::None)
    req.actQuant = "none";
  if (c.i2sGiven)
    req.i2sLayout = formats::i2sLayoutName(c.opts.i2sLayout);
  if (c.opts.q8Head)
    req.head = "q8";
  if (c.opts.kvType != model::KvType::F16)
    req.kvType = model::kvTypeName(c.opts.kvType);
  absl::StatusOr<std::string> path = exec::compileToCache(c.modelPath, req, err);
  if (!path.ok())
    return path.status();
  return exec::openModel(*path, c.opts);
}

absl::StatusOr<ModelHandle> openHandle(Common &c, std::ostream &err) {
  absl::StatusOr<std::unique_ptr<model::Model>> m = openFor(c, err);
  if (!m.ok())
    return m.status();
  tern_model *h = nullptr;
  if (tern_status st = capi::adoptModel(std::move(*m), &h))
    return apiStatus(st);
  return ModelHandle(h);
}

void warnFallbacks(const model::Model &m, std::ostream &err) {
  auto *a = dynamic_cast<const exec::ArtifactModel *>(&m);
  if (!a)
    return;
  for (const auto &[what, n] : a->fallbacks())
    err << fmt::format("note: {} op(s) run a scalar fallback: {} (no fast variant of that "
                       "layout for this target; expect it to be slow)\n",
                       n, what);
}

std::string kernelsLine(const model::Model &m) {
  if (auto *a = dynamic_cast<const exec::ArtifactModel *>(&m))
    return a->kernelSummary();
  return "";
}

void printKernels(const model::Model &m, std::ostream &err) {
  if (std::string k = kernelsLine(m); !k.empty()) {
    err << "ukernels run: " << k << "\n";
    warnFallbacks(m, err);
  } else {
    err << "ukernels run: none (scalar reference forward pass)\n";
  }
}

void printKernels(const tern_model *m, std::ostream &err) { printKernels(capi::cxxModel(m), err); }

} // namespace tern::cli
