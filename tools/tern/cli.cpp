#include "tools/tern/cli.h"
#include "tools/tern/serve_cmd.h"

#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "fmt/format.h"
#include "runtime/exec/artifact_model.h"
#include "runtime/exec/compile_cache.h"
#include "runtime/model/eval.h"
#include "runtime/model/kv_cache.h"
#include "runtime/model/model.h"
#include "runtime/model/thread_pool.h"
#include "runtime/support/args.h"
#include "runtime/support/status.h"
#ifdef TERN_HAVE_TOKENIZER
#include "runtime/tokenizer/tokenizer.h"
#endif

namespace tern::cli {

namespace {

using model::ActQuant;
using model::ModelOptions;

constexpr const char *kMainHelp = R"(tern: run ternary (BitNet b1.58) models

usage: tern <command> [options]

commands:
  eval   evaluate prompts greedily and print per-step top-k probabilities
  run    generate text greedily from a prompt
  bench  prompt-processing and decode speed (tokens/s)
  serve  OpenAI-compatible HTTP server (docs/server.md)
  help   this text

`tern <command> --help` describes each command's options.
MODEL is a compiled .tern artifact (see `ternc compile`), or a .gguf file,
which is compiled by `ternc` into the artifact cache first ($XDG_CACHE_HOME/
ternc) and run from there; where no ternc is found (a runtime-only install),
or with --reference, a .gguf runs on the scalar reference forward pass.
)";

constexpr const char *kEvalUsage =
    R"(usage: tern eval MODEL (--prompt TEXT | --tokens IDS)... [options]

Feeds each input, then takes N greedy steps; prints one JSON object per input
in the shape of shared/fixtures/golden/*.json:
  {"prompt", "tokens", "input", "steps": [{"token", "top": [[id, p], ...]}]}
)";

constexpr const char *kRunUsage =
    R"(usage: tern run MODEL -p TEXT [-n N] [options]

Generates greedily (stops at end-of-generation or after N tokens), prints the
text to stdout and prompt/generation speed in tokens/s to stderr.
)";

struct Common {
  std::string modelPath;
  ModelOptions opts;
  bool compile = false, reference = false;
  bool actQuantGiven = false, i2sGiven = false;
  std::string kernel, target = "native";
};

// MODEL and the model options every command takes.
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
  p.string("--target", &c.target, "T", "when compiling: ternc's --target (default native)");
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

// Parses a command's flags: nullopt to go on, else the exit code (help
// printed, or an error naming the flag).
std::optional<int> parseCommand(args::Parser &p, Common &c, const std::vector<std::string> &a,
                                std::ostream &out, std::ostream &err) {
  if (std::optional<int> rc = p.parseOrExit(a, out, err))
    return rc;
  c.actQuantGiven = p.given("--act-quant");
  c.i2sGiven = p.given("--i2s-layout");
  if (c.modelPath.empty()) {
    err << p.prog() << ": error: no model given (" << p.prog() << " MODEL ...)\n";
    return 2;
  }
  return std::nullopt;
}

struct Input {
  std::optional<std::string> text;
  std::vector<int32_t> ids;
};

// -p/--prompt and --tokens: each occurrence adds one input (eval runs them
// all, run takes one).
void addInputFlags(args::Parser &p, std::vector<Input> &inputs, std::string_view promptHelp,
                   std::string_view tokensHelp) {
  p.value("-p,--prompt", "TEXT", promptHelp, [&inputs](std::string_view, const std::string &v) {
    inputs.push_back({v, {}});
    return absl::OkStatus();
  });
  p.value("--tokens", "IDS", tokensHelp,
          [&inputs](std::string_view flag, const std::string &v) -> absl::Status {
            absl::StatusOr<std::vector<int32_t>> ids = args::parseIntList(flag, v, 0, INT32_MAX);
            if (!ids.ok())
              return ids.status();
            inputs.push_back({std::nullopt, std::move(*ids)});
            return absl::OkStatus();
          });
}

#ifdef TERN_HAVE_TOKENIZER
using TokenizerPtr = std::unique_ptr<tokenizer::Tokenizer>;
absl::StatusOr<TokenizerPtr> loadTokenizer(const model::Model &m) {
  if (!m.ggufFile())
    return absl::UnimplementedError("this model source carries no tokenizer");
  absl::StatusOr<tokenizer::Tokenizer> t = tokenizer::Tokenizer::fromGGUF(*m.ggufFile());
  if (!t.ok())
    return t.status();
  return std::make_unique<tokenizer::Tokenizer>(std::move(*t));
}
#endif

int fail(std::ostream &err, const std::string &cmd, const absl::Status &s) {
  err << "tern " << cmd << ": error: " << statusMessage(s) << "\n";
  return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

bool endsWith(const std::string &s, const char *suf) {
  const size_t n = std::char_traits<char>::length(suf);
  return s.size() >= n && s.compare(s.size() - n, n, suf) == 0;
}

// Opens the model the flags ask for: a .tern as is; a .gguf on the
// reference path, or (--compile) through ternc and the artifact cache.
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
  if (!compile) {
    if (!c.kernel.empty() && c.kernel != "ref")
      return absl::InvalidArgumentError(
          fmt::format("--kernel: '{}' needs --compile; the reference path runs only the reference "
                      "kernels (ref)",
                      c.kernel));
    return exec::openModel(c.modelPath, c.opts);
  }
  exec::CompileRequest req;
  req.target = c.target;
  req.kernel = c.kernel;
  if (c.actQuantGiven && c.opts.actQuant == ActQuant::None)
    req.actQuant = "none";
  if (c.i2sGiven)
    req.i2sLayout = formats::i2sLayoutName(c.opts.i2sLayout);
  absl::StatusOr<std::string> path = exec::compileToCache(c.modelPath, req, err);
  if (!path.ok())
    return path.status();
  return exec::openModel(*path, c.opts);
}

// Scalar fallbacks compiled in place of a missing fast ukernel (a warning).
void warnFallbacks(const model::Model &m, std::ostream &err) {
  auto *a = dynamic_cast<const exec::ArtifactModel *>(&m);
  if (!a)
    return;
  for (const auto &[what, n] : a->fallbacks())
    err << fmt::format("note: {} op(s) run a scalar fallback: {} (no fast variant of that "
                       "layout for this target; expect it to be slow)\n",
                       n, what);
}

// The ukernels the compiled code runs ("" for the reference path).
std::string kernelsLine(const model::Model &m) {
  if (auto *a = dynamic_cast<const exec::ArtifactModel *>(&m))
    return a->kernelSummary();
  return "";
}

int cmdEval(const std::vector<std::string> &a, std::ostream &out, std::ostream &err) {
  Common c;
  bool json = false;
  int steps = 8, top = 5;
  std::vector<Input> inputs;
  args::Parser p("tern eval", kEvalUsage);
  p.integer("-n,--greedy", &steps, 0, 1 << 20, "N", "greedy steps after the input (default 8)");
  p.integer("--top,--top-k", &top, 0, 1 << 24, "K", "probabilities listed per step (default 5)");
  p.flag("--json", &json, "JSON output, one object per line (default: readable text)");
  p.section("input (repeatable, one run each)");
  addInputFlags(p, inputs, "tokenize TEXT, add BOS as the model's metadata says",
                "feed exactly these comma-separated ids (no BOS added)");
  addModelFlags(p, c);
  if (std::optional<int> rc = parseCommand(p, c, a, out, err))
    return *rc;
  if (inputs.empty())
    return fail(err, "eval", absl::InvalidArgumentError("give --prompt TEXT or --tokens IDS"));

  absl::StatusOr<std::unique_ptr<model::Model>> m = openFor(c, err);
  if (!m.ok())
    return fail(err, "eval", m.status());
#ifdef TERN_HAVE_TOKENIZER
  TokenizerPtr tok;
#endif
  for (Input &in : inputs) {
    model::EvalResult r;
    r.prompt = in.text;
    if (in.text) {
#ifdef TERN_HAVE_TOKENIZER
      if (!tok) {
        absl::StatusOr<TokenizerPtr> t = loadTokenizer(**m);
        if (!t.ok())
          return fail(err, "eval", withContext(t.status(), "tokenizer"));
        tok = std::move(*t);
      }
      r.tokens = tok->encode(*in.text, /*addSpecial=*/false);
      r.input = tok->encode(*in.text, /*addSpecial=*/true);
#else
      return fail(err, "eval",
                  absl::UnimplementedError("--prompt needs the tokenizer, which this build "
                                           "lacks; use --tokens"));
#endif
    } else {
      r.tokens = in.ids;
      r.input = in.ids;
    }
    model::GreedyOptions go;
    go.steps = steps;
    go.topK = top;
    absl::StatusOr<std::vector<model::EvalStep>> s = model::greedyEval(**m, r.input, go);
    if (!s.ok())
      return fail(err, "eval", s.status());
    r.steps = std::move(*s);
    if (json) {
      out << model::toJson(r).dump() << "\n";
    } else {
      out << "input:";
      for (int32_t id : r.input)
        out << " " << id;
      out << "\n";
      for (size_t i = 0; i < r.steps.size(); ++i) {
        out << fmt::format("step {}: pick {:>6}  top:", i, r.steps[i].token);
        for (const auto &[id, p] : r.steps[i].top)
          out << fmt::format(" {}={:.4f}", id, p);
        out << "\n";
      }
    }
  }
  return 0;
}

int cmdRun(const std::vector<std::string> &a, std::ostream &out, std::ostream &err) {
  Common c;
  bool ignoreEos = false;
  int n = 64;
  int64_t seed = 0; // accepted; greedy decoding does not use it
  std::vector<Input> inputs;
  args::Parser p("tern run", kRunUsage);
  addInputFlags(p, inputs, "the prompt (BOS added as the model's metadata says)",
                "or: feed these comma-separated ids (no BOS added)");
  p.integer("-n,--n-predict", &n, 0, 1 << 24, "N", "tokens to generate (default 64)");
  p.integer("-s,--seed", &seed, INT64_MIN, INT64_MAX, "N",
            "accepted for llama.cpp compatibility; greedy decoding\n"
            "does not use it");
  p.flag("--ignore-eos", &ignoreEos, "keep generating past end-of-generation tokens");
  addModelFlags(p, c);
  if (std::optional<int> rc = parseCommand(p, c, a, out, err))
    return *rc;
  if (inputs.size() != 1)
    return fail(err, "run",
                absl::InvalidArgumentError(inputs.empty()
                                               ? "give a prompt: -p TEXT (or --tokens IDS)"
                                               : "give one prompt: one -p TEXT or --tokens IDS"));
  const Input *input = &inputs.front();
  absl::StatusOr<std::unique_ptr<model::Model>> m = openFor(c, err);
  if (!m.ok())
    return fail(err, "run", m.status());
  const model::ModelConfig &cfg = (*m)->config();

  std::vector<int32_t> ids = input->ids;
#ifdef TERN_HAVE_TOKENIZER
  TokenizerPtr tok;
  {
    absl::StatusOr<TokenizerPtr> t = loadTokenizer(**m);
    if (t.ok())
      tok = std::move(*t);
    else if (input->text)
      return fail(err, "run", withContext(t.status(), "tokenizer"));
  }
  if (input->text)
    ids = tok->encode(*input->text, /*addSpecial=*/true);
  std::optional<tokenizer::StreamDecoder> stream;
  if (tok)
    stream.emplace(*tok);
  auto isEog = [&](int32_t id) {
    return tok ? tok->isEog(id) : (id == cfg.eosId || id == cfg.eotId);
  };
#else
  if (input->text)
    return fail(
        err, "run",
        absl::UnimplementedError("-p needs the tokenizer, which this build lacks; use --tokens"));
  auto isEog = [&](int32_t id) { return id == cfg.eosId || id == cfg.eotId; };
#endif
  if (ids.empty())
    return fail(err, "run", absl::InvalidArgumentError("the prompt tokenized to nothing"));
  err << (*m)->describe() << "\n";

  absl::StatusOr<std::unique_ptr<model::Session>> session = (*m)->newSession();
  if (!session.ok())
    return fail(err, "run", session.status());
  std::vector<float> logits(cfg.nVocab);
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  if (absl::Status s = (*m)->decode(**session, ids, logits); !s.ok())
    return fail(err, "run", s);
  auto t1 = Clock::now();
  if (input->text)
    out << *input->text;
  std::vector<int32_t> generated;
  absl::Status stopped;
  for (int i = 0; i < n; ++i) {
    const int32_t next = model::argmax(logits);
    generated.push_back(next);
    if (!ignoreEos && isEog(next))
      break;
#ifdef TERN_HAVE_TOKENIZER
    if (stream)
      out << stream->push(next);
    else
      out << " " << next;
#else
    out << " " << next;
#endif
    out.flush();
    if (i + 1 == n)
      break;
    if (absl::Status s = (*m)->decode(**session, std::span<const int32_t>(&next, 1), logits);
        !s.ok()) {
      stopped = s;
      break;
    }
  }
#ifdef TERN_HAVE_TOKENIZER
  if (stream)
    out << stream->flush();
#endif
  out << "\n";
  auto t2 = Clock::now();
  const double prefill = std::chrono::duration<double>(t1 - t0).count();
  const double gen = std::chrono::duration<double>(t2 - t1).count();
  err << fmt::format("prompt: {} tokens in {:.3f} s ({:.2f} tokens/s)\n", ids.size(), prefill,
                     ids.size() / std::max(prefill, 1e-9));
  err << fmt::format("generated: {} tokens in {:.3f} s ({:.2f} tokens/s)\n", generated.size(), gen,
                     generated.size() / std::max(gen, 1e-9));
  if (std::string k = kernelsLine(**m); !k.empty()) {
    err << "ukernels run: " << k << "\n";
    warnFallbacks(**m, err);
  } else
    err << "ukernels run: none (scalar reference forward pass)\n";
  if (!stopped.ok())
    return fail(err, "run", stopped);
  return 0;
}

constexpr const char *kBenchUsage =
    R"(usage: tern bench MODEL [--json] [-p N] [-n N] [-r N] [options]

Measures prompt processing (one N-token prompt into a fresh session) and
decode (N single-token steps after it), best of R repetitions, as tokens/s.
Token ids are deterministic (not a real text). Prints threads, machine, the
ukernels the compiled code ran, and decode's weight traffic (weights section
bytes x tokens/s) as a fraction of the machine's read bandwidth (measured by
summing a 256 MiB buffer with the same thread count).
)";

std::string cpuModelName() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0 || line.rfind("Model", 0) == 0) {
      size_t c = line.find(':');
      if (c != std::string::npos) {
        std::string v = line.substr(c + 1);
        while (!v.empty() && v.front() == ' ')
          v.erase(v.begin());
        return v;
      }
    }
  }
  return "unknown";
}

// Read bandwidth of this machine with `threads` threads: best of 3 passes
// summing a 256 MiB buffer (GB/s).
double measureReadBandwidth(int threads) {
  const size_t n = (256u << 20) / sizeof(uint64_t);
  std::unique_ptr<uint64_t[]> buf(new (std::nothrow) uint64_t[n]);
  if (!buf)
    return 0;
  for (size_t i = 0; i < n; ++i)
    buf[i] = i;
  model::ThreadPool pool(threads);
  double best = 0;
  std::vector<uint64_t> sums(size_t(pool.size()) * 8 + 64);
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    const size_t chunks = 64;
    pool.parallelFor(chunks, [&](size_t b, size_t e) {
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (size_t c = b; c < e; ++c) {
        const uint64_t *p = buf.get() + c * (n / chunks);
        for (size_t i = 0; i < n / chunks; i += 4) {
          s0 += p[i];
          s1 += p[i + 1];
          s2 += p[i + 2];
          s3 += p[i + 3];
        }
      }
      sums[b] = s0 + s1 + s2 + s3;
    });
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(n * sizeof(uint64_t)) / std::max(dt, 1e-9) / 1e9);
  }
  volatile uint64_t sink = sums[0];
  (void)sink;
  return best;
}

int cmdBench(const std::vector<std::string> &a, std::ostream &out, std::ostream &err) {
  Common c;
  bool json = false;
  int nPrompt = 128, nGen = 32, reps = 3;
  args::Parser p("tern bench", kBenchUsage);
  p.integer("-p,--n-prompt", &nPrompt, 0, 1 << 20, "N",
            "prompt tokens (default 128, capped by the context)");
  p.integer("-n,--n-gen", &nGen, 0, 1 << 20, "N", "decode steps (default 32)");
  p.integer("-r,--repetitions", &reps, 1, 1 << 20, "N", "repetitions, best kept (default 3)");
  p.flag("--json", &json, "one JSON object");
  addModelFlags(p, c);
  if (std::optional<int> rc = parseCommand(p, c, a, out, err))
    return *rc;
  absl::StatusOr<std::unique_ptr<model::Model>> m = openFor(c, err);
  if (!m.ok())
    return fail(err, "bench", m.status());
  const model::ModelConfig &cfg = (*m)->config();
  const int64_t ctx = (*m)->options().contextLength
                          ? (*m)->options().contextLength
                          : std::min<uint32_t>(cfg.nCtxTrain ? cfg.nCtxTrain : 4096, 4096);
  if (nPrompt + nGen > ctx) {
    nPrompt = int(std::max<int64_t>(1, ctx - nGen));
    if (nPrompt + nGen > ctx)
      nGen = int(ctx - nPrompt);
  }
  std::vector<int32_t> prompt(size_t(std::max(nPrompt, 1)));
  for (size_t i = 0; i < prompt.size(); ++i)
    prompt[i] = int32_t((i * 7919 + 13) % cfg.nVocab);
  std::vector<float> logits(cfg.nVocab);
  using Clock = std::chrono::steady_clock;
  double bestPp = 0, bestTg = 0;
  for (int r = 0; r < reps; ++r) {
    absl::StatusOr<std::unique_ptr<model::Session>> s = (*m)->newSession();
    if (!s.ok())
      return fail(err, "bench", s.status());
    auto t0 = Clock::now();
    if (absl::Status e = (*m)->decode(**s, prompt, logits); !e.ok())
      return fail(err, "bench", e);
    auto t1 = Clock::now();
    for (int i = 0; i < nGen; ++i) {
      const int32_t next = model::argmax(logits);
      if (absl::Status e = (*m)->decode(**s, std::span<const int32_t>(&next, 1), logits); !e.ok())
        return fail(err, "bench", e);
    }
    auto t2 = Clock::now();
    const double pp =
        prompt.size() / std::max(1e-9, std::chrono::duration<double>(t1 - t0).count());
    const double tg = nGen / std::max(1e-9, std::chrono::duration<double>(t2 - t1).count());
    bestPp = std::max(bestPp, pp);
    bestTg = std::max(bestTg, tg);
  }
  const int threads = (*m)->options().threads > 0 ? (*m)->options().threads
                                                  : int(std::thread::hardware_concurrency());
  const std::string kernels = kernelsLine(**m);
  auto *am = dynamic_cast<const exec::ArtifactModel *>(m->get());
  // Decode reads every weight once per token: effective weight bandwidth vs
  // what this machine reads (DESIGN.md, performance model).
  const double bw = measureReadBandwidth(threads);
  const double weightBytes = am ? double(am->artifact().weights().size()) : 0.0;
  const double decodeGbps = weightBytes * bestTg / 1e9;
  if (json) {
    nlohmann::ordered_json j;
    j["model"] = c.modelPath;
    j["path"] = am ? "compiled" : "reference";
    if (am) {
      j["target"] = am->artifact().targetTriple();
      j["cpu"] = am->artifact().cpu();
      j["cpu_features"] = am->artifact().cpuFeatures();
      j["compiler"] = am->artifact().compilerVersion();
      j["max_batch"] = am->desc().max_batch;
      nlohmann::ordered_json k = nlohmann::ordered_json::object();
      for (const auto &[name, n] : am->kernelUse())
        k[name] = n;
      j["kernels"] = k;
      nlohmann::ordered_json fb = nlohmann::ordered_json::object();
      for (const auto &[what, n] : am->fallbacks())
        fb[what] = n;
      j["fallbacks"] = fb;
    }
    j["threads"] = threads;
    j["machine"] = {{"cpu", cpuModelName()},
                    {"hardware_threads", std::thread::hardware_concurrency()}};
    j["n_prompt"] = prompt.size();
    j["n_gen"] = nGen;
    j["repetitions"] = reps;
    j["pp_tokens_per_s"] = bestPp;
    j["tg_tokens_per_s"] = bestTg;
    j["read_bandwidth_gbps"] = bw;
    if (am) {
      j["weights_bytes"] = am->artifact().weights().size();
      j["decode_weight_gbps"] = decodeGbps;
      j["decode_bandwidth_fraction"] = bw > 0 ? decodeGbps / bw : 0.0;
    }
    out << j.dump() << "\n";
  } else {
    out << (*m)->describe() << "\n";
    out << fmt::format("machine: {} ({} hardware threads), {} threads\n", cpuModelName(),
                       std::thread::hardware_concurrency(), threads);
    out << fmt::format("prompt processing: {} tokens: {:.2f} tokens/s (best of {})\n",
                       prompt.size(), bestPp, reps);
    out << fmt::format("decode: {} tokens: {:.2f} tokens/s (best of {})\n", nGen, bestTg, reps);
    if (am)
      out << fmt::format("decode reads {:.1f} MB of weights per token: {:.2f} GB/s, {:.0f}% of "
                         "the measured {:.2f} GB/s read bandwidth ({} threads)\n",
                         weightBytes / 1e6, decodeGbps, bw > 0 ? 100.0 * decodeGbps / bw : 0.0, bw,
                         threads);
    else
      out << fmt::format("measured read bandwidth: {:.2f} GB/s ({} threads)\n", bw, threads);
    out << "ukernels run: " << (kernels.empty() ? "none (scalar reference forward pass)" : kernels)
        << "\n";
    warnFallbacks(**m, out);
  }
  return 0;
}

} // namespace

int ternMain(const std::vector<std::string> &args, std::ostream &out, std::ostream &err) {
  if (args.empty()) {
    err << kMainHelp;
    return 2;
  }
  const std::string &cmd = args[0];
  const std::vector<std::string> a(args.begin() + 1, args.end());
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    out << kMainHelp;
    return 0;
  }
  if (cmd == "eval")
    return cmdEval(a, out, err);
  if (cmd == "run")
    return cmdRun(a, out, err);
  if (cmd == "bench")
    return cmdBench(a, out, err);
  if (cmd == "serve")
    return cmdServe(a, out, err);
  err << fmt::format("tern: unknown command '{}' (try tern --help)\n", cmd);
  return 2;
}

} // namespace tern::cli
