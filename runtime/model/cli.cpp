#include "runtime/model/cli.h"

#include <charconv>
#include <chrono>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <thread>

#include "fmt/format.h"
#include "runtime/exec/artifact_model.h"
#include "runtime/exec/compile_cache.h"
#include "runtime/model/eval.h"
#include "runtime/model/model.h"
#include "runtime/model/thread_pool.h"
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
  help   this text

`tern <command> --help` describes each command's options.
MODEL is a compiled .tern artifact (see `ternc compile`), or a .gguf file,
which is compiled by `ternc` into the artifact cache first ($XDG_CACHE_HOME/
ternc) and run from there; where no ternc is found (a runtime-only install),
or with --reference, a .gguf runs on the scalar reference forward pass.
)";

constexpr const char *kCommonHelp = R"(
model options:
  -m, --model PATH        the model (also accepted as the first positional argument)
  -t, --threads N         thread pool size (default 1; 0 = all cores)
  -c, --ctx-size N        context length per session (default min(model's, 4096))
      --act-quant MODE    token (per-token int8 activations, BitNet's math; default)
                          or none (float activations against the ternary weights)
                          or q8k (llama.cpp-compatible, for cross-checking:
                          ggml's Q8_K blocks of 256 and f16 KV cache)
      --compile           .gguf only: compile with ternc into the artifact cache
                          ($TERN_CACHE_DIR, $XDG_CACHE_HOME/ternc or ~/.cache/ternc;
                          reused while the GGUF, target, flags and ternc version
                          match) and run the compiled code (the default when a
                          ternc is found: $TERNC, next to tern, or on $PATH);
                          with --compile a missing ternc is an error
      --reference         .gguf only: the scalar reference forward pass (the
                          default without ternc, and always for --act-quant q8k)
      --no-verify-weights .tern only: skip hashing the weights section on open
                          (every other check still runs)
      --target T          with --compile: ternc's --target (default native)
      --kernel K          when compiling: ternc's --kernel (e.g. ref); on the
                          reference path only `ref` is accepted
      --kv-page-size N    KV positions per page (default 16)
      --kv-pages N        KV pool size in pages (default: one full context)
      --i2s-layout L      I2_S packing: x86 (default, QK=128), arm (QK=64), x86-1x4
)";

constexpr const char *kEvalHelp =
    R"(usage: tern eval MODEL (--prompt TEXT | --tokens IDS)... [options]

Feeds each input, then takes N greedy steps; prints one JSON object per input
in the shape of shared/fixtures/golden/*.json:
  {"prompt", "tokens", "input", "steps": [{"token", "top": [[id, p], ...]}]}

input (repeatable, one run each):
  -p, --prompt TEXT       tokenize TEXT, add BOS as the model's metadata says
      --tokens IDS        feed exactly these comma-separated ids (no BOS added)
options:
      --greedy N          greedy steps after the input (default 8)
      --top K             probabilities listed per step (default 5)
      --json              JSON output, one object per line (default: readable text)
)";

constexpr const char *kRunHelp =
    R"(usage: tern run MODEL -p TEXT [-n N] [options]

Generates greedily (stops at end-of-generation or after N tokens), prints the
text to stdout and prompt/generation speed in tokens/s to stderr.

  -p, --prompt TEXT       the prompt (BOS added as the model's metadata says)
      --tokens IDS        or: feed these comma-separated ids (no BOS added)
  -n, --n-predict N       tokens to generate (default 64)
      --seed N            accepted for llama.cpp compatibility; greedy decoding
                          does not use it
      --ignore-eos        keep generating past end-of-generation tokens
)";

struct Args {
  std::vector<std::string> v;
  size_t i = 0;
  bool done() const { return i >= v.size(); }
};

struct Common {
  std::string modelPath;
  ModelOptions opts;
  bool compile = false, reference = false;
  bool actQuantGiven = false, i2sGiven = false;
  std::string kernel, target = "native", i2sName;
};

std::optional<std::string> splitEq(std::string &flag) {
  if (flag.rfind("--", 0) == 0) {
    size_t eq = flag.find('=');
    if (eq != std::string::npos) {
      std::string val = flag.substr(eq + 1);
      flag.resize(eq);
      return val;
    }
  }
  return std::nullopt;
}

template <typename T>
absl::StatusOr<T> parseInt(const std::string &flag, const std::string &s, T lo, T hi) {
  T v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty())
    return absl::InvalidArgumentError(fmt::format("{}: '{}' is not an integer", flag, s));
  if (v < lo || v > hi)
    return absl::InvalidArgumentError(
        fmt::format("{}: {} is out of range [{}, {}]", flag, v, lo, hi));
  return v;
}

absl::StatusOr<std::vector<int32_t>> parseIds(const std::string &flag, const std::string &s) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    while (!item.empty() && item.front() == ' ')
      item.erase(item.begin());
    while (!item.empty() && item.back() == ' ')
      item.pop_back();
    absl::StatusOr<int32_t> id = parseInt<int32_t>(flag, item, 0, INT32_MAX);
    if (!id.ok())
      return id.status();
    ids.push_back(*id);
  }
  if (ids.empty())
    return absl::InvalidArgumentError(fmt::format("{}: no token ids given", flag));
  return ids;
}

// Reads an integer flag's value into dst (parsed as T, range-checked).
template <typename T, typename Dst>
absl::Status intFlag(const std::string &flag,
                     const std::function<absl::StatusOr<std::string>()> &value, Dst &dst, T lo,
                     T hi) {
  absl::StatusOr<std::string> v = value();
  if (!v.ok())
    return v.status();
  absl::StatusOr<T> n = parseInt<T>(flag, *v, lo, hi);
  if (!n.ok())
    return n.status();
  dst = *n;
  return absl::OkStatus();
}

// Handles a flag shared by every command. Returns true if consumed.
absl::StatusOr<bool> commonFlag(const std::string &flag,
                                const std::function<absl::StatusOr<std::string>()> &value,
                                Common &c) {
  auto num = [&](auto &dst, auto lo, auto hi) -> absl::Status {
    using T = std::remove_reference_t<decltype(dst)>;
    return intFlag<T>(flag, value, dst, T(lo), T(hi));
  };
  absl::Status st;
  if (flag == "-m" || flag == "--model") {
    absl::StatusOr<std::string> v = value();
    if (!v.ok())
      return v.status();
    c.modelPath = *v;
  } else if (flag == "-t" || flag == "--threads") {
    st = num(c.opts.threads, 0, 1024);
  } else if (flag == "-c" || flag == "--ctx-size") {
    st = num(c.opts.contextLength, 1u, 1u << 24);
  } else if (flag == "--kv-page-size") {
    st = num(c.opts.pageSize, 1u, 1u << 16);
  } else if (flag == "--kv-pages") {
    st = num(c.opts.kvPages, 1u, 1u << 30);
  } else if (flag == "--act-quant") {
    absl::StatusOr<std::string> v = value();
    if (!v.ok())
      return v.status();
    c.actQuantGiven = true;
    if (*v == "token" || *v == "per-token")
      c.opts.actQuant = ActQuant::PerToken;
    else if (*v == "none")
      c.opts.actQuant = ActQuant::None;
    else if (*v == "q8k")
      c.opts.actQuant = ActQuant::Q8K;
    else
      return absl::InvalidArgumentError(
          fmt::format("--act-quant: '{}' is not one of token, none, q8k", *v));
  } else if (flag == "--kernel") {
    absl::StatusOr<std::string> v = value();
    if (!v.ok())
      return v.status();
    c.kernel = *v;
  } else if (flag == "--no-verify-weights") {
    c.opts.verifyWeightsHash = false;
  } else if (flag == "--compile") {
    c.compile = true;
  } else if (flag == "--reference") {
    c.reference = true;
  } else if (flag == "--target") {
    absl::StatusOr<std::string> v = value();
    if (!v.ok())
      return v.status();
    c.target = *v;
  } else if (flag == "--i2s-layout") {
    absl::StatusOr<std::string> v = value();
    if (!v.ok())
      return v.status();
    c.i2sGiven = true;
    c.i2sName = *v;
    if (*v == "x86")
      c.opts.i2sLayout = formats::I2SLayout::X86_QK128;
    else if (*v == "arm")
      c.opts.i2sLayout = formats::I2SLayout::ARM_QK64;
    else if (*v == "x86-1x4")
      c.opts.i2sLayout = formats::I2SLayout::X86_1x4;
    else
      return absl::InvalidArgumentError(
          fmt::format("--i2s-layout: '{}' is not one of x86, arm, x86-1x4", *v));
  } else {
    return false;
  }
  if (!st.ok())
    return st;
  return true;
}

// Generic parse loop: `specific` handles command flags (returns false if
// unknown).
absl::Status parseArgs(
    Args &a, Common &c, bool &help,
    const std::function<absl::StatusOr<bool>(
        const std::string &, const std::function<absl::StatusOr<std::string>()> &)> &specific) {
  while (!a.done()) {
    std::string flag = a.v[a.i++];
    if (flag == "-h" || flag == "--help") {
      help = true;
      return absl::OkStatus();
    }
    std::optional<std::string> inlineVal = splitEq(flag);
    bool used = false;
    auto value = [&]() -> absl::StatusOr<std::string> {
      used = true;
      if (inlineVal)
        return *inlineVal;
      if (a.done())
        return absl::InvalidArgumentError(fmt::format("{} needs a value", flag));
      return a.v[a.i++];
    };
    if (flag.size() > 1 && flag[0] == '-') {
      absl::StatusOr<bool> r = commonFlag(flag, value, c);
      if (!r.ok())
        return r.status();
      if (!*r) {
        r = specific(flag, value);
        if (!r.ok())
          return r.status();
        if (!*r)
          return absl::InvalidArgumentError(fmt::format("unknown option '{}'", flag));
      }
      if (inlineVal && !used)
        return absl::InvalidArgumentError(fmt::format("option '{}' takes no value", flag));
    } else if (c.modelPath.empty()) {
      c.modelPath = flag;
    } else {
      return absl::InvalidArgumentError(fmt::format("unexpected argument '{}'", flag));
    }
  }
  if (c.modelPath.empty())
    return absl::InvalidArgumentError("no model given (tern <command> MODEL ...)");
  return absl::OkStatus();
}

struct Input {
  std::optional<std::string> text;
  std::vector<int32_t> ids;
};

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
    absl::StatusOr<std::unique_ptr<model::Model>> m = model::openModel(c.modelPath, c.opts);
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
    return model::openModel(c.modelPath, c.opts);
  }
  exec::CompileRequest req;
  req.target = c.target;
  req.kernel = c.kernel;
  if (c.actQuantGiven && c.opts.actQuant == ActQuant::None)
    req.actQuant = "none";
  if (c.i2sGiven)
    req.i2sLayout = c.i2sName;
  absl::StatusOr<std::string> path = exec::compileToCache(c.modelPath, req, err);
  if (!path.ok())
    return path.status();
  return model::openModel(*path, c.opts);
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

int cmdEval(Args &a, std::ostream &out, std::ostream &err) {
  Common c;
  bool help = false, json = false;
  int steps = 8, top = 5;
  std::vector<Input> inputs;
  absl::Status st = parseArgs(
      a, c, help, [&](const std::string &flag, const auto &value) -> absl::StatusOr<bool> {
        if (flag == "--json") {
          json = true;
        } else if (flag == "-p" || flag == "--prompt") {
          absl::StatusOr<std::string> v = value();
          if (!v.ok())
            return v.status();
          inputs.push_back({*v, {}});
        } else if (flag == "--tokens") {
          absl::StatusOr<std::string> v = value();
          if (!v.ok())
            return v.status();
          absl::StatusOr<std::vector<int32_t>> ids = parseIds(flag, *v);
          if (!ids.ok())
            return ids.status();
          inputs.push_back({std::nullopt, std::move(*ids)});
        } else if (flag == "--greedy" || flag == "-n") {
          if (absl::Status st = intFlag<int>(flag, value, steps, 0, 1 << 20); !st.ok())
            return st;
        } else if (flag == "--top" || flag == "--top-k") {
          if (absl::Status st = intFlag<int>(flag, value, top, 0, 1 << 24); !st.ok())
            return st;
        } else {
          return false;
        }
        return true;
      });
  if (help) {
    out << kEvalHelp << kCommonHelp;
    return 0;
  }
  if (!st.ok())
    return fail(err, "eval", st);
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

int cmdRun(Args &a, std::ostream &out, std::ostream &err) {
  Common c;
  bool help = false, ignoreEos = false;
  int n = 64;
  std::optional<Input> input;
  absl::Status st = parseArgs(
      a, c, help, [&](const std::string &flag, const auto &value) -> absl::StatusOr<bool> {
        if (flag == "-p" || flag == "--prompt") {
          absl::StatusOr<std::string> v = value();
          if (!v.ok())
            return v.status();
          input = Input{*v, {}};
        } else if (flag == "--tokens") {
          absl::StatusOr<std::string> v = value();
          if (!v.ok())
            return v.status();
          absl::StatusOr<std::vector<int32_t>> ids = parseIds(flag, *v);
          if (!ids.ok())
            return ids.status();
          input = Input{std::nullopt, std::move(*ids)};
        } else if (flag == "-n" || flag == "--n-predict") {
          if (absl::Status st = intFlag<int>(flag, value, n, 0, 1 << 24); !st.ok())
            return st;
        } else if (flag == "--seed" || flag == "-s") {
          int64_t seed = 0; // accepted; greedy decoding does not use it yet
          if (absl::Status st = intFlag<int64_t>(flag, value, seed, INT64_MIN, INT64_MAX); !st.ok())
            return st;
        } else if (flag == "--ignore-eos") {
          ignoreEos = true;
        } else {
          return false;
        }
        return true;
      });
  if (help) {
    out << kRunHelp << kCommonHelp;
    return 0;
  }
  if (!st.ok())
    return fail(err, "run", st);
  if (!input)
    return fail(err, "run", absl::InvalidArgumentError("give a prompt: -p TEXT (or --tokens IDS)"));
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

constexpr const char *kBenchHelp =
    R"(usage: tern bench MODEL [--json] [-p N] [-n N] [-r N] [options]

Measures prompt processing (one N-token prompt into a fresh session) and
decode (N single-token steps after it), best of R repetitions, as tokens/s.
Token ids are deterministic (not a real text). Prints threads, machine, the
ukernels the compiled code ran, and decode's weight traffic (weights section
bytes x tokens/s) as a fraction of the machine's read bandwidth (measured by
summing a 256 MiB buffer with the same thread count).

  -p, --n-prompt N        prompt tokens (default 128, capped by the context)
  -n, --n-gen N           decode steps (default 32)
  -r, --repetitions N     repetitions, best kept (default 3)
      --json              one JSON object
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

int cmdBench(Args &a, std::ostream &out, std::ostream &err) {
  Common c;
  bool help = false, json = false;
  int nPrompt = 128, nGen = 32, reps = 3;
  absl::Status st = parseArgs(
      a, c, help, [&](const std::string &flag, const auto &value) -> absl::StatusOr<bool> {
        int *dst = nullptr;
        if (flag == "--json") {
          json = true;
          return true;
        }
        if (flag == "-p" || flag == "--n-prompt")
          dst = &nPrompt;
        else if (flag == "-n" || flag == "--n-gen")
          dst = &nGen;
        else if (flag == "-r" || flag == "--repetitions")
          dst = &reps;
        else
          return false;
        if (absl::Status st = intFlag<int>(flag, value, *dst, dst == &reps ? 1 : 0, 1 << 20);
            !st.ok())
          return st;
        return true;
      });
  if (help) {
    out << kBenchHelp << kCommonHelp;
    return 0;
  }
  if (!st.ok())
    return fail(err, "bench", st);
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
  Args a{std::vector<std::string>(args.begin() + 1, args.end())};
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
  err << fmt::format("tern: unknown command '{}' (try tern --help)\n", cmd);
  return 2;
}

} // namespace tern::cli
