#include "tools/tern/cli.h"
#include "tools/tern/serve_cmd.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include "fmt/format.h"
#include "runtime/capi/bridge.h"
#include "runtime/exec/artifact_model.h"
#include "runtime/model/eval.h"
#include "runtime/model/kv_cache.h"
#include "runtime/model/model.h"
#include "runtime/model/thread_pool.h"
#include "runtime/sampling/sampler.h"
#include "runtime/sampling/stop.h"
#include "runtime/support/args.h"
#include "runtime/support/status.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tools/tern/commands.h"
#include "tools/tern/common.h"
#include "tools/tern/generate.h"

namespace tern::cli {

namespace {

constexpr const char *kMainHelp = R"(tern: run ternary (BitNet b1.58) models

usage: tern <command> [options]

commands:
  eval   evaluate prompts and print per-step probabilities (greedy by default)
  run    generate text from a prompt (llama.cpp's sampling chain)
  chat   chat with a model (its chat template), one user turn per line
  bench  prompt-processing and decode speed (tokens/s); --sampling: the sampler
  serve  OpenAI-compatible HTTP server (docs/server.md)
  compare `tern eval --json` output against a golden file (the fixtures' rule)
  help   this text

`tern <command> --help` describes each command's options.
MODEL is a compiled .tern artifact (see `ternc compile`), or a .gguf file,
which is compiled by `ternc` into the artifact cache first ($XDG_CACHE_HOME/
ternc) and run from there; where no ternc is found (a runtime-only install),
or with --reference, a .gguf runs on the scalar reference forward pass.
)";

constexpr const char *kEvalUsage =
    R"(usage: tern eval MODEL (--prompt TEXT | --tokens IDS)... [options]

Feeds each input, then takes N steps; prints one JSON object per input in the
shape of shared/fixtures/golden/*.json:
  {"prompt", "tokens", "input", "steps": [{"token", "top": [[id, p], ...]}]}
"top" lists the model's own probabilities (softmax of the logits). The steps
are greedy unless --temp > 0 (eval's default temperature is 0, unlike run's):
then "token" is drawn by the sampling chain the sampling flags describe.
--top-k is that chain's top-k (llama.cpp's meaning); --top N / --n-probs N
sets how many probabilities are listed.
)";

constexpr const char *kRunUsage =
    R"(usage: tern run MODEL -p TEXT [-n N] [options]

Generates from the prompt with llama.cpp's sampling chain and defaults (temp
0.8, top-k 40, top-p 0.95, min-p 0.05, repeat-last-n 64, repeat-penalty 1;
--temp 0 is greedy; without --seed the seed is random and printed to stderr).
Stops at end-of-generation, a stop string, after N tokens, or at the end of
the context (with a notice; --context-shift drops old tokens and goes on).
Prints the text to stdout and prompt/generation speed to stderr.
)";

using model::ActQuant;

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

// The sampler changes nothing against model::argmax: greedy, no bias, no
// penalty.
bool plainGreedy(const sampling::SamplerParams &p, bool ignoreEos) {
  return p.greedy() && !ignoreEos && p.logitBias.empty() && p.repeatPenalty == 1.0f &&
         p.frequencyPenalty == 0.0f && p.presencePenalty == 0.0f;
}

// One input in the goldens' form, through the C API: feeds `input` to a
// fresh session, then takes `steps` picks, listing the `top` most probable
// tokens at each; the picks are greedy (the lowest id of the highest logit,
// as model::greedyEval) without a sampler, else drawn by `sampler` (which
// sees the input tokens in its penalty window first).
absl::StatusOr<std::vector<model::EvalStep>> evalSteps(tern_model *m,
                                                       std::span<const int32_t> input, int steps,
                                                       int top, tern_sampler *sampler) {
  if (input.empty())
    return absl::InvalidArgumentError("eval: the input holds no tokens");
  tern_session *raw = nullptr;
  if (tern_status st = tern_session_create(m, &raw))
    return apiStatus(st);
  SessionHandle session(raw);
  if (tern_status st = tern_decode(session.get(), input.data(), input.size()))
    return apiStatus(st);
  if (sampler)
    for (int32_t t : input)
      if (tern_status st = tern_sampler_accept(sampler, t))
        return apiStatus(st);
  std::vector<int32_t> ids(static_cast<size_t>(top));
  std::vector<double> probs(static_cast<size_t>(top));
  std::vector<model::EvalStep> out;
  for (int i = 0; i < steps; ++i) {
    const float *logits = nullptr;
    size_t nl = 0, k = 0;
    if (tern_status st = tern_session_logits(session.get(), &logits, &nl))
      return apiStatus(st);
    if (tern_status st =
            tern_logits_top_probs(logits, nl, size_t(top), ids.data(), probs.data(), &k))
      return apiStatus(st);
    model::EvalStep st;
    for (size_t j = 0; j < k; ++j)
      st.top.emplace_back(ids[j], probs[j]);
    tern_status r = sampler ? tern_sampler_sample(sampler, logits, nl, &st.token)
                            : tern_logits_argmax(logits, nl, &st.token);
    if (r == TERN_OK && sampler)
      r = tern_sampler_accept(sampler, st.token);
    if (r != TERN_OK)
      return apiStatus(r);
    const int32_t next = st.token;
    out.push_back(std::move(st));
    if (i + 1 == steps)
      break;
    if (tern_status e = tern_decode(session.get(), &next, 1))
      return apiStatus(e);
  }
  return out;
}

int cmdEval(const std::vector<std::string> &a, std::ostream &out, std::ostream &err) {
  Common c;
  bool json = false;
  int steps = 8, top = 5;
  SamplingFlags sf;
  sf.params.temperature = 0; // the goldens' form: greedy unless asked
  std::vector<Input> inputs;
  args::Parser p("tern eval", kEvalUsage);
  p.integer("-n,--greedy,--n-predict", &steps, 0, 1 << 20, "N",
            "steps after the input (default 8; greedy unless\n--temp > 0)");
  p.integer("--top,--n-probs", &top, 0, 1 << 24, "N", "probabilities listed per step (default 5)");
  p.flag("--json", &json, "JSON output, one object per line (default: readable text)");
  p.section("input (repeatable, one run each)");
  addInputFlags(p, inputs, "tokenize TEXT, add BOS as the model's metadata says",
                "feed exactly these comma-separated ids (no BOS added)");
  addSamplingFlags(p, sf, /*withStops=*/false);
  addModelFlags(p, c);
  if (std::optional<int> rc = parseCommand(p, c, a, out, err))
    return *rc;
  if (inputs.empty())
    return fail(err, "eval", absl::InvalidArgumentError("give --prompt TEXT or --tokens IDS"));
  if (p.given("--top-k") && sf.params.greedy())
    err << "tern eval: note: --top-k is the sampling chain's top-k (as in llama.cpp); with greedy "
           "picks (--temp 0, eval's default) it changes nothing. --top N / --n-probs N sets how "
           "many probabilities are listed\n";

  absl::StatusOr<ModelHandle> m = openHandle(c, err);
  if (!m.ok())
    return fail(err, "eval", m.status());
  SamplerHandle sampler;
  if (!plainGreedy(sf.params, sf.ignoreEos)) {
    absl::StatusOr<SamplerHandle> s = makeSampler(sf, m->get(), err);
    if (!s.ok())
      return fail(err, "eval", s.status());
    sampler = std::move(*s);
  }
  for (Input &in : inputs) {
    model::EvalResult r;
    r.prompt = in.text;
    if (in.text) {
      absl::StatusOr<std::vector<int32_t>> tokens = tokenize(m->get(), *in.text, false);
      if (!tokens.ok())
        return fail(err, "eval", tokens.status());
      r.tokens = std::move(*tokens);
      r.input = *tokenize(m->get(), *in.text, true);
    } else {
      r.tokens = in.ids;
      r.input = in.ids;
    }
    // Each input starts from the same sampler state (same seed).
    SamplerHandle fresh;
    if (sampler) {
      tern_sampler *clone = nullptr;
      if (tern_status st = tern_sampler_clone(sampler.get(), &clone))
        return fail(err, "eval", apiStatus(st));
      fresh.reset(clone);
    }
    absl::StatusOr<std::vector<model::EvalStep>> s =
        evalSteps(m->get(), r.input, steps, top, fresh.get());
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
  int n = 64, keep = 0;
  bool contextShift = false;
  SamplingFlags sf;
  std::vector<Input> inputs;
  args::Parser p("tern run", kRunUsage);
  addInputFlags(p, inputs, "the prompt (BOS added as the model's metadata says)",
                "or: feed these comma-separated ids (no BOS added)");
  p.integer("-n,--n-predict", &n, -1, 1 << 30, "N",
            "tokens to generate (default 64; -1 = until\nend-of-generation or the context's end)");
  p.flag("--context-shift", &contextShift,
         "at the end of the context, drop the oldest half of\nthe tokens after --keep and go on "
         "(default: stop\nwith a notice)");
  p.integer("--keep", &keep, -1, INT32_MAX, "N",
            "prompt tokens a context shift keeps (default 0;\n-1 = the whole prompt); a "
            "leading BOS is always kept");
  addSamplingFlags(p, sf, /*withStops=*/true);
  addModelFlags(p, c);
  if (std::optional<int> rc = parseCommand(p, c, a, out, err))
    return *rc;
  if (inputs.size() != 1)
    return fail(err, "run",
                absl::InvalidArgumentError(inputs.empty()
                                               ? "give a prompt: -p TEXT (or --tokens IDS)"
                                               : "give one prompt: one -p TEXT or --tokens IDS"));
  const Input *input = &inputs.front();
  absl::StatusOr<ModelHandle> m = openHandle(c, err);
  if (!m.ok())
    return fail(err, "run", m.status());
  tern_model_info info;
  if (tern_status st = tern_model_get_info(m->get(), &info))
    return fail(err, "run", apiStatus(st));

  std::vector<int32_t> ids = input->ids;
  if (input->text) {
    absl::StatusOr<std::vector<int32_t>> t = tokenize(m->get(), *input->text, true);
    if (!t.ok())
      return fail(err, "run", t.status());
    ids = std::move(*t);
  }
  if (ids.empty())
    return fail(err, "run", absl::InvalidArgumentError("the prompt tokenized to nothing"));
  absl::StatusOr<SamplerHandle> sampler = makeSampler(sf, m->get(), err);
  if (!sampler.ok())
    return fail(err, "run", sampler.status());
  Sequence seq(m->get(), contextShift);
  if (ids.size() > seq.contextLength())
    return fail(err, "run",
                absl::InvalidArgumentError(
                    fmt::format("the prompt has {} tokens; the context holds {} (raise -c)",
                                ids.size(), seq.contextLength())));
  // llama.cpp: --keep counts prompt tokens after the BOS, which is always kept.
  const int32_t bos = info.bos;
  size_t nKeep = keep < 0 || size_t(keep) > ids.size() ? ids.size() : size_t(keep);
  if (keep >= 0 && bos >= 0 && ids.front() == bos)
    nKeep = std::min(ids.size(), nKeep + 1);
  seq.setKeep(nKeep);
  err << tern_model_describe(m->get()) << "\n";

  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  if (absl::Status s = seq.feed(ids); !s.ok())
    return fail(err, "run", s);
  for (int32_t t : ids) // the penalties see the prompt, as in llama.cpp
    if (tern_status st = tern_sampler_accept(sampler->get(), t))
      return fail(err, "run", apiStatus(st));
  auto t1 = Clock::now();
  if (input->text)
    out << *input->text;
  // Text out: token -> UTF-8-safe text (tern_detokenizer; ids where the
  // model has no vocabulary) -> stop strings -> stdout.
  std::vector<const char *> stopPtrs;
  for (const std::string &st : sf.stops)
    stopPtrs.push_back(st.c_str());
  tern_stop_matcher *rawStops = nullptr;
  if (tern_status st = tern_stop_matcher_create(stopPtrs.data(), stopPtrs.size(), &rawStops))
    return fail(err, "run", apiStatus(st));
  StopHandle stops(rawStops);
  DetokenizerHandle stream;
  if (info.has_tokenizer) {
    tern_detokenizer *d = nullptr;
    if (tern_status st = tern_detokenizer_create(m->get(), 0, &d))
      return fail(err, "run", apiStatus(st));
    stream.reset(d);
  }
  bool stopped = false;
  // Pushes text through the stop strings to `out`.
  auto emit = [&](const char *text, size_t len) -> absl::Status {
    const char *o = nullptr;
    size_t n = 0;
    int hit = 0;
    if (tern_status st = tern_stop_matcher_push(stops.get(), text, len, &o, &n, &hit))
      return apiStatus(st);
    out.write(o, std::streamsize(n));
    stopped = stopped || hit;
    return absl::OkStatus();
  };
  int generated = 0;
  absl::Status failed;
  for (int i = 0; n < 0 || i < n; ++i) {
    int32_t next = -1;
    const std::span<const float> logits = seq.logits();
    tern_status st = tern_sampler_sample(sampler->get(), logits.data(), logits.size(), &next);
    if (st == TERN_OK)
      st = tern_sampler_accept(sampler->get(), next);
    if (st != TERN_OK) {
      failed = apiStatus(st);
      break;
    }
    ++generated;
    if (tern_token_is_eog(m->get(), next))
      break; // --ignore-eos banned these
    if (stream) {
      const char *piece = nullptr;
      size_t len = 0;
      if (tern_status e = tern_detokenizer_push(stream.get(), next, &piece, &len)) {
        failed = apiStatus(e);
        break;
      }
      failed = emit(piece, len);
    } else {
      const std::string piece = " " + std::to_string(next);
      failed = emit(piece.data(), piece.size());
    }
    out.flush();
    if (!failed.ok() || stopped || i + 1 == n)
      break;
    if (!seq.fits(1) && !contextShift) {
      err << (stream ? "\n" : "") << contextFullNotice("run", seq);
      break;
    }
    const int shifts = seq.shifts();
    if (absl::Status s = seq.feed(std::span<const int32_t>(&next, 1)); !s.ok()) {
      failed = s;
      break;
    }
    if (seq.shifts() != shifts)
      err << fmt::format("\ntern run: context shift: kept {} + {} of {} positions\n", seq.keep(),
                         seq.position() - 1 - seq.keep(), seq.contextLength());
  }
  if (stream) {
    const char *rest = nullptr;
    size_t len = 0;
    if (tern_detokenizer_flush(stream.get(), &rest, &len) == TERN_OK)
      (void)emit(rest, len);
  }
  if (!stopped) {
    const char *rest = nullptr;
    size_t len = 0;
    if (tern_stop_matcher_flush(stops.get(), &rest, &len) == TERN_OK)
      out.write(rest, std::streamsize(len));
  }
  out << "\n";
  auto t2 = Clock::now();
  const double prefill = std::chrono::duration<double>(t1 - t0).count();
  const double gen = std::chrono::duration<double>(t2 - t1).count();
  err << fmt::format("prompt: {} tokens in {:.3f} s ({:.2f} tokens/s)\n", ids.size(), prefill,
                     ids.size() / std::max(prefill, 1e-9));
  err << fmt::format("generated: {} tokens in {:.3f} s ({:.2f} tokens/s)\n", generated, gen,
                     generated / std::max(gen, 1e-9));
  printKernels(m->get(), err);
  if (!failed.ok())
    return fail(err, "run", failed);
  return 0;
}

constexpr const char *kBenchUsage =
    R"(usage: tern bench MODEL [--json] [--profile] [-p N] [-n N] [-r N] [options]
       tern bench --sampling [--json] [--vocab N]

Measures prompt processing (one N-token prompt into a fresh session) and
decode (N single-token steps after it), best of R repetitions, as tokens/s.
With --parallel N (N > 1) each repetition then runs N sessions at once:
their prompts prefilled in shared forward calls, then one forward call per
decode step with one token of each session (the weights read once per
step); it reports the aggregate and per-session decode tokens/s (best of R)
and the aggregate's ratio to the single-session decode of the same run.
The prefix cache is off: every repetition computes its prompt.
Token ids are deterministic (not a real text). Prints threads, machine, the
ukernels the compiled code ran, and the bytes one decode step reads (every
matrix and the head once, one row of an untied embedding table, the K and V
attention reads) x tokens/s as achieved GB/s, beside the machine's read
bandwidth (measured by summing a 256 MiB buffer with the same thread count).

--profile (compiled artifacts) adds one more repetition, after the timed
ones, with the ukernels' profiling hook on, and prints the time per op kind
of its prefill and of its decode (per token): the matmuls by role (qkv, o,
gate_up, down), head, embed, norm, quantize, rope, attention, add, act_mul,
"other" (forward-call time outside every ukernel: the generated glue and the
runtime's batch bookkeeping), and the time the forward thread waited for
the pool's workers (part of the ops' times). With --json: key "profile".

--versus MODEL2 (A/B): opens MODEL2 with the same options beside MODEL and
runs both in the same repetitions, alternately: the two prompts one after
the other, then one decode step of each in turn (the order swapped every
repetition and step), each step timed on its own. A machine whose read
bandwidth wanders by tens of percent within seconds cannot resolve a 10 %
difference between two separate runs; alternating steps of ~30 ms can.
Prints both engines' tokens/s (median over the repetitions) and MODEL2 /
MODEL per repetition (median, min, max). With --json: key "versus".

--sampling measures the sampler alone (no model), one thread, on synthetic
logits (normal(0, 1) x 3, seeded) over a 128256-entry vocabulary: the default
chain, the chain with top-k 0 (top-p 0.95 + min-p 0.05 over the whole
vocabulary) and greedy, in samples per second of CPU time; `chain_samples_per_s`
is the slower of the two chains.
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

// The first failed item of a tern_forward call as a status (every item's
// status is set), else the call's own.
absl::Status forwardStatus(tern_status r, const std::vector<tern_batch_item> &items) {
  if (r == TERN_ERR_BATCH)
    for (const tern_batch_item &it : items)
      if (it.status != TERN_OK)
        return capi::toStatus(it.status, it.message ? it.message : "");
  return apiStatus(r);
}

// N sessions decoding at once through tern_forward (one item per session
// per step), best of `reps`: aggregate and per-session decode tokens/s.
struct ParallelBench {
  double aggregateTg = 0;
  std::vector<double> perSessionTg;
};
absl::StatusOr<ParallelBench> benchParallel(tern_model *m, int nSessions, size_t promptLen,
                                            int nGen, int reps) {
  using Clock = std::chrono::steady_clock;
  tern_model_info info;
  if (tern_status st = tern_model_get_info(m, &info))
    return apiStatus(st);
  const uint32_t V = uint32_t(info.n_vocab);
  ParallelBench best;
  for (int r = 0; r < reps; ++r) {
    std::vector<SessionHandle> ss;
    const size_t ns = static_cast<size_t>(nSessions);
    std::vector<std::vector<int32_t>> prompts(ns, std::vector<int32_t>(promptLen));
    std::vector<tern_batch_item> items;
    for (int s = 0; s < nSessions; ++s) {
      tern_session *n = nullptr;
      if (tern_status st = tern_session_create(m, &n))
        return apiStatus(st);
      ss.emplace_back(n);
      // Distinct prompts: no prefix cache hits between the sessions.
      for (size_t i = 0; i < promptLen; ++i)
        prompts[size_t(s)][i] = int32_t((i * 7919 + 13 + size_t(s) * 104729) % V);
      tern_batch_item it{};
      it.session = n;
      it.tokens = prompts[size_t(s)].data();
      it.n_tokens = promptLen;
      it.want_logits = 1;
      items.push_back(it);
    }
    if (tern_status st = tern_forward(m, items.data(), items.size()))
      return forwardStatus(st, items);
    std::vector<int32_t> next(ns);
    std::vector<uint64_t> done(ns, 0);
    const auto t0 = Clock::now();
    for (int step = 0; step < nGen; ++step) {
      for (size_t s = 0; s < ns; ++s) {
        const float *logits = nullptr;
        size_t n = 0;
        if (tern_status st = tern_session_logits(ss[s].get(), &logits, &n))
          return apiStatus(st);
        if (tern_status st = tern_logits_argmax(logits, n, &next[s]))
          return apiStatus(st);
        items[s].tokens = &next[s];
        items[s].n_tokens = 1;
      }
      if (tern_status st = tern_forward(m, items.data(), items.size()))
        return forwardStatus(st, items);
      for (uint64_t &d : done)
        ++d;
    }
    const double dt = std::max(1e-9, std::chrono::duration<double>(Clock::now() - t0).count());
    double aggregate = 0;
    std::vector<double> per(ns);
    for (int s = 0; s < nSessions; ++s) {
      per[size_t(s)] = double(done[size_t(s)]) / dt;
      aggregate += per[size_t(s)];
    }
    if (aggregate > best.aggregateTg) {
      best.aggregateTg = aggregate;
      best.perSessionTg = std::move(per);
    }
  }
  return best;
}

// One greedy decode step: the session's argmax token decoded.
absl::Status greedyStep(tern_session *s) {
  const float *logits = nullptr;
  size_t n = 0;
  int32_t next = 0;
  if (tern_status st = tern_session_logits(s, &logits, &n))
    return apiStatus(st);
  if (tern_status st = tern_logits_argmax(logits, n, &next))
    return apiStatus(st);
  if (tern_status st = tern_decode(s, &next, 1))
    return apiStatus(st);
  return absl::OkStatus();
}

// The run's keys every `tern bench MODEL --json` object starts with.
void addRunJson(nlohmann::ordered_json &j, int threads, size_t nPrompt, int nGen, int reps) {
  j["threads"] = threads;
  j["machine"] = {{"cpu", cpuModelName()},
                  {"hardware_threads", std::thread::hardware_concurrency()}};
  j["n_prompt"] = nPrompt;
  j["n_gen"] = nGen;
  j["repetitions"] = reps;
}

// A new session of m in *s with the prompt decoded, the prompt's time
// (seconds) in *secs; `hook` runs between the session's creation and the
// timed prompt.
absl::Status timedPrompt(tern_model *m, const std::vector<int32_t> &prompt, SessionHandle *s,
                         double *secs, const std::function<void()> &hook = {}) {
  tern_session *raw = nullptr;
  if (tern_status st = tern_session_create(m, &raw))
    return apiStatus(st);
  s->reset(raw);
  if (hook)
    hook();
  const auto t0 = std::chrono::steady_clock::now();
  if (tern_status st = tern_decode(s->get(), prompt.data(), prompt.size()))
    return apiStatus(st);
  *secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return absl::OkStatus();
}

// One session: the prompt, then nGen greedy single-token steps. The times of
// the prompt and of the steps go to *pp and *tg (seconds) when not NULL;
// `prefillHook` / `decodeHook` run before each phase (--profile). The
// session goes to *keep, for the caller to free: a repetition keeps its
// single session (and its KV pages) until after its --parallel run, so the
// pool hands out pages in the same order in every repetition.
absl::Status benchSession(tern_model *m, const std::vector<int32_t> &prompt, int nGen,
                          SessionHandle *keep, double *pp, double *tg,
                          const std::function<void()> &prefillHook = {},
                          const std::function<void()> &decodeHook = {}) {
  double promptS = 0;
  if (absl::Status e = timedPrompt(m, prompt, keep, &promptS, prefillHook); !e.ok())
    return e;
  const auto t1 = std::chrono::steady_clock::now();
  if (decodeHook)
    decodeHook();
  for (int i = 0; i < nGen; ++i)
    if (absl::Status e = greedyStep(keep->get()); !e.ok())
      return e;
  if (pp)
    *pp = promptS;
  if (tg)
    *tg = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  return absl::OkStatus();
}

// One model of an A/B run: its session of the current repetition and the
// times of that repetition's prompt and steps.
struct VersusSide {
  tern_model *m = nullptr;
  SessionHandle s;
  double pp = 0, tg = 0;
};

// One greedy decode step of one side (its time added to side.tg).
absl::Status versusStep(VersusSide &side) {
  const auto t0 = std::chrono::steady_clock::now();
  if (absl::Status e = greedyStep(side.s.get()); !e.ok())
    return e;
  side.tg += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return absl::OkStatus();
}

// Median, min and max of a non-empty list.
struct Spread {
  double median, min, max;
};
Spread spread(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return {n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v.front(), v.back()};
}

// tern bench MODEL --versus MODEL2: both models' prompts and decode steps
// alternated within every repetition (see kBenchUsage).
int benchVersus(tern_model *a, tern_model *b, const std::string &pathA, const std::string &pathB,
                const std::vector<int32_t> &prompt, int nGen, int reps, int threads, bool json,
                std::ostream &out, std::ostream &err) {
  std::vector<double> ppA, ppB, tgA, tgB, ppRatio, tgRatio;
  VersusSide sa, sb;
  sa.m = a;
  sb.m = b;
  // Who goes first: A on even turns, B on odd ones.
  auto inTurn = [&](int turn) {
    return turn % 2 ? std::array<VersusSide *, 2>{&sb, &sa} : std::array<VersusSide *, 2>{&sa, &sb};
  };
  for (int r = 0; r < reps; ++r) {
    for (VersusSide *side : inTurn(r)) {
      side->tg = 0;
      if (absl::Status e = timedPrompt(side->m, prompt, &side->s, &side->pp); !e.ok())
        return fail(err, "bench --versus", e);
    }
    for (int i = 0; i < nGen; ++i)
      for (VersusSide *side : inTurn(i + r))
        if (absl::Status e = versusStep(*side); !e.ok())
          return fail(err, "bench --versus", e);
    ppA.push_back(double(prompt.size()) / std::max(1e-9, sa.pp));
    ppB.push_back(double(prompt.size()) / std::max(1e-9, sb.pp));
    ppRatio.push_back(ppB.back() / ppA.back());
    if (nGen > 0) {
      tgA.push_back(nGen / std::max(1e-9, sa.tg));
      tgB.push_back(nGen / std::max(1e-9, sb.tg));
      tgRatio.push_back(tgB.back() / tgA.back());
    }
    sa.s.reset();
    sb.s.reset();
  }
  const Spread pa = spread(ppA), pb = spread(ppB), pr = spread(ppRatio);
  const Spread ta = nGen > 0 ? spread(tgA) : Spread{}, tb = nGen > 0 ? spread(tgB) : Spread{},
               tr = nGen > 0 ? spread(tgRatio) : Spread{};
  if (json) {
    auto side = [](const std::string &path, const Spread &pp, const Spread &tg) {
      return nlohmann::ordered_json{
          {"model", path}, {"pp_tokens_per_s", pp.median}, {"tg_tokens_per_s", tg.median}};
    };
    nlohmann::ordered_json j;
    addRunJson(j, threads, prompt.size(), nGen, reps);
    j["versus"] = {{"a", side(pathA, pa, ta)},
                   {"b", side(pathB, pb, tb)},
                   {"pp_b_over_a", {{"median", pr.median}, {"min", pr.min}, {"max", pr.max}}},
                   {"tg_b_over_a", {{"median", tr.median}, {"min", tr.min}, {"max", tr.max}}},
                   {"pp_b_over_a_runs", ppRatio},
                   {"tg_b_over_a_runs", tgRatio}};
    out << j.dump() << "\n";
    return 0;
  }
  out << fmt::format("A: {}\n   {}\n", pathA, tern_model_describe(a));
  out << fmt::format("B: {}\n   {}\n", pathB, tern_model_describe(b));
  out << fmt::format("machine: {} ({} hardware threads), {} threads; {} repetitions, prompts and "
                     "decode steps alternated\n",
                     cpuModelName(), std::thread::hardware_concurrency(), threads, reps);
  out << fmt::format("prompt processing: {} tokens: A {:.2f}, B {:.2f} tokens/s (medians); B / A "
                     "{:.3f}x (median; min {:.3f}, max {:.3f})\n",
                     prompt.size(), pa.median, pb.median, pr.median, pr.min, pr.max);
  if (nGen > 0)
    out << fmt::format("decode: {} tokens: A {:.2f}, B {:.2f} tokens/s (medians); B / A {:.3f}x "
                       "(median; min {:.3f}, max {:.3f})\n",
                       nGen, ta.median, tb.median, tr.median, tr.min, tr.max);
  out << "ukernels run, A: " << kernelsLine(capi::cxxModel(a)) << "\n";
  out << "ukernels run, B: " << kernelsLine(capi::cxxModel(b)) << "\n";
  return 0;
}

int cmdBench(const std::vector<std::string> &a, std::ostream &out, std::ostream &err) {
  Common c;
  bool json = false, sampling = false, profile = false;
  double minTime = 0.25;
  int nPrompt = 128, nGen = 32, reps = 3, vocab = 128256;
  args::Parser p("tern bench", kBenchUsage);
  p.flag("--sampling", &sampling, "measure the sampler (no MODEL; see above)");
  p.integer("--vocab", &vocab, 1, 1 << 24, "N", "--sampling: vocabulary size (default 128256)");
  p.number("--min-time", &minTime, 0, 60, "S",
           "--sampling: CPU seconds per measurement, best of 3\n(default 0.25)");
  p.integer("-p,--n-prompt", &nPrompt, 0, 1 << 20, "N",
            "prompt tokens (default 128, capped by the context)");
  p.integer("-n,--n-gen", &nGen, 0, 1 << 20, "N", "decode steps (default 32)");
  p.integer("-r,--repetitions", &reps, 1, 1 << 20, "N", "repetitions, best kept (default 3)");
  p.flag("--json", &json, "one JSON object");
  p.flag("--profile", &profile, "time per op kind of prefill and decode (see above)");
  std::string versus;
  p.string("--versus", &versus, "MODEL2", "A/B: MODEL2 alternated with MODEL (see above)");
  addModelFlags(p, c);
  if (std::optional<int> rc = parseCommand(p, c, a, out, err, /*needModel=*/false))
    return *rc;
  if (!sampling && c.modelPath.empty()) {
    err << "tern bench: error: no model given (tern bench MODEL ..., or tern bench --sampling)\n";
    return 2;
  }
  if (sampling) {
    if (!c.modelPath.empty())
      return fail(
          err, "bench",
          absl::InvalidArgumentError(fmt::format(
              "--sampling measures the sampler alone; it takes no model (got '{}')", c.modelPath)));
    return benchSampling(vocab, minTime, json, out, err);
  }
  if (!versus.empty())
    for (const char *f : {"--profile", "--parallel"})
      if (p.given(f))
        return fail(err, "bench",
                    absl::InvalidArgumentError(
                        fmt::format("{} and --versus: measure one model at a time with {}", f, f)));
  for (const char *f : {"--vocab", "--min-time"}) // (--profile: checked after the model opens)
    if (p.given(f))
      return fail(err, "bench",
                  absl::InvalidArgumentError(fmt::format("{} applies to --sampling only", f)));
  // Every repetition prefills the same prompt: with the prefix cache on,
  // the second one would be served from the cache, not computed.
  c.opts.prefixCache = false;
  absl::StatusOr<ModelHandle> m = openHandle(c, err);
  if (!m.ok())
    return fail(err, "bench", m.status());
  // The receipts, --profile's hook and the weight bytes are the compiled
  // artifact's, read through the bridge (docs/c-api.md); the runs themselves
  // go through tern.h.
  auto *profiled = dynamic_cast<exec::ArtifactModel *>(&capi::cxxModel(m->get()));
  if (profile && !profiled)
    return fail(err, "bench --profile",
                absl::InvalidArgumentError(fmt::format(
                    "'{}' runs on the reference forward pass; --profile times the ukernels of a "
                    "compiled artifact (.tern, or --compile)",
                    c.modelPath)));
  tern_model_info info;
  if (tern_status st = tern_model_get_info(m->get(), &info))
    return fail(err, "bench", apiStatus(st));
  const int64_t ctx = info.n_ctx
                          ? info.n_ctx
                          : std::min<uint32_t>(info.n_ctx_train ? info.n_ctx_train : 4096, 4096);
  if (nPrompt + nGen > ctx) {
    nPrompt = int(std::max<int64_t>(1, ctx - nGen));
    if (nPrompt + nGen > ctx)
      nGen = int(ctx - nPrompt);
  }
  std::vector<int32_t> prompt(size_t(std::max(nPrompt, 1)));
  for (size_t i = 0; i < prompt.size(); ++i)
    prompt[i] = int32_t((i * 7919 + 13) % uint32_t(info.n_vocab));
  const int threads =
      info.threads > 0 ? int(info.threads) : int(std::thread::hardware_concurrency());
  if (!versus.empty()) {
    Common c2 = c;
    c2.modelPath = versus;
    absl::StatusOr<ModelHandle> m2 = openHandle(c2, err);
    if (!m2.ok())
      return fail(err, "bench --versus", m2.status());
    tern_model_info info2;
    if (tern_status st = tern_model_get_info(m2->get(), &info2))
      return fail(err, "bench --versus", apiStatus(st));
    if (info2.n_vocab != info.n_vocab)
      return fail(err, "bench --versus",
                  absl::InvalidArgumentError(fmt::format(
                      "'{}' has a vocabulary of {} tokens, '{}' one of {}: the prompt ids must "
                      "mean the same in both",
                      c.modelPath, info.n_vocab, versus, info2.n_vocab)));
    return benchVersus(m->get(), m2->get(), c.modelPath, versus, prompt, nGen, reps, threads, json,
                       out, err);
  }
  double bestPp = 0, bestTg = 0;
  const int nParallel = int(c.opts.parallel);
  ParallelBench par;
  for (int r = 0; r < reps; ++r) {
    double ppS = 0, tgS = 0;
    SessionHandle single; // freed after the --parallel run
    if (absl::Status e = benchSession(m->get(), prompt, nGen, &single, &ppS, &tgS); !e.ok())
      return fail(err, "bench", e);
    const double pp = prompt.size() / std::max(1e-9, ppS);
    const double tg = nGen / std::max(1e-9, tgS);
    bestPp = std::max(bestPp, pp);
    bestTg = std::max(bestTg, tg);
    // The parallel run right after the single one, so that both see the same
    // machine load.
    if (nParallel > 1) {
      absl::StatusOr<ParallelBench> pb = benchParallel(m->get(), nParallel, prompt.size(), nGen, 1);
      if (!pb.ok())
        return fail(err, "bench --parallel", pb.status());
      if (pb->aggregateTg > par.aggregateTg)
        par = std::move(*pb);
    }
  }
  // --profile: one more repetition with the ukernels' hook on (the timed
  // ones above ran without it).
  std::optional<exec::OpProfile> profPrefill, profDecode;
  if (profile) {
    const model::ModelConfig &cfg = profiled->config();
    profPrefill.emplace(cfg);
    profDecode.emplace(cfg);
    SessionHandle session;
    absl::Status e = benchSession(
        m->get(), prompt, nGen, &session, nullptr, nullptr,
        [&] { profiled->setProfile(&*profPrefill); }, [&] { profiled->setProfile(&*profDecode); });
    profiled->setProfile(nullptr);
    if (!e.ok())
      return fail(err, "bench --profile", e);
  }
  const std::string kernels = kernelsLine(capi::cxxModel(m->get()));
  const exec::ArtifactModel *am = profiled;
  // Decode reads every weight once per token: effective weight bandwidth vs
  // what this machine reads (DESIGN.md, performance model).
  const double bw = measureReadBandwidth(threads);
  const double weightBytes = am ? double(am->artifact().weights().size()) : 0.0;
  const double decodeGbps = weightBytes * bestTg / 1e9;
  const DecodeBytes readPerToken =
      am ? decodeBytesPerToken(*am, prompt.size(), uint64_t(nGen)) : DecodeBytes{};
  const double achievedGbps = readPerToken.total * bestTg / 1e9;
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
    addRunJson(j, threads, prompt.size(), nGen, reps);
    j["pp_tokens_per_s"] = bestPp;
    j["tg_tokens_per_s"] = bestTg;
    if (nParallel > 1) {
      j["parallel"] = nParallel;
      j["aggregate_tg_tokens_per_s"] = par.aggregateTg;
      j["per_session_tg_tokens_per_s"] = par.perSessionTg;
      j["parallel_speedup"] = bestTg > 0 ? par.aggregateTg / bestTg : 0.0;
    }
    j["read_bandwidth_gbps"] = bw;
    if (am) {
      j["weights_memory"] = {{"mode", am->artifact().memoryName()},
                             {"huge_page_bytes", am->artifact().hugePageBytes()}};
      j["weights_bytes"] = am->artifact().weights().size();
      j["decode_weight_gbps"] = decodeGbps;
      j["decode_bytes_per_token"] = readPerToken.total;
      j["decode_weight_bytes_per_token"] = readPerToken.weights;
      j["decode_kv_bytes_per_token"] = readPerToken.kv;
      j["decode_gbps"] = achievedGbps;
      j["decode_bandwidth_fraction"] = bw > 0 ? achievedGbps / bw : 0.0;
    }
    if (profiled) {
      const model::ThreadPool::Stats ps = profiled->threadPool().stats();
      j["pool"] = {
          {"jobs", ps.jobs}, {"wakes", ps.wakes}, {"sleeps", ps.sleeps}, {"late", ps.late}};
    }
    if (profile)
      j["profile"] = {{"prefill", profileJson(*profPrefill, prompt.size())},
                      {"decode", profileJson(*profDecode, uint64_t(nGen))}};
    out << j.dump() << "\n";
  } else {
    out << tern_model_describe(m->get()) << "\n";
    out << fmt::format("machine: {} ({} hardware threads), {} threads\n", cpuModelName(),
                       std::thread::hardware_concurrency(), threads);
    out << fmt::format("prompt processing: {} tokens: {:.2f} tokens/s (best of {})\n",
                       prompt.size(), bestPp, reps);
    out << fmt::format("decode: {} tokens: {:.2f} tokens/s (best of {})\n", nGen, bestTg, reps);
    if (nParallel > 1) {
      std::string per;
      for (double v : par.perSessionTg)
        per += fmt::format("{}{:.2f}", per.empty() ? "" : ", ", v);
      out << fmt::format("parallel decode: {} sessions x {} tokens: {:.2f} tokens/s aggregate "
                         "({:.2f}x single-session decode), per session [{}] (best of {})\n",
                         nParallel, nGen, par.aggregateTg,
                         bestTg > 0 ? par.aggregateTg / bestTg : 0.0, per, reps);
    }
    if (am)
      out << fmt::format("decode reads {:.1f} MB per token ({:.1f} MB weights{}, {:.1f} MB KV): "
                         "{:.2f} GB/s achieved, {:.0f}% of the measured {:.2f} GB/s read "
                         "bandwidth ({} threads)\n",
                         readPerToken.total / 1e6, readPerToken.weights / 1e6,
                         readPerToken.embedRowOnly ? " with one embedding row" : "",
                         readPerToken.kv / 1e6, achievedGbps,
                         bw > 0 ? 100.0 * achievedGbps / bw : 0.0, bw, threads);
    else
      out << fmt::format("measured read bandwidth: {:.2f} GB/s ({} threads)\n", bw, threads);
    out << "ukernels run: " << (kernels.empty() ? "none (scalar reference forward pass)" : kernels)
        << "\n";
    if (am)
      out << fmt::format("weights in memory: {} ({:.0f} of {:.0f} MiB in huge pages)\n",
                         am->artifact().memoryName(), am->artifact().hugePageBytes() / 1048576.0,
                         am->artifact().bytes().size() / 1048576.0);
    warnFallbacks(capi::cxxModel(m->get()), out);
    if (profiled) {
      const model::ThreadPool::Stats ps = profiled->threadPool().stats();
      out << fmt::format("thread pool: {} parallel ops, {} woke sleeping workers, {} worker "
                         "sleeps, {} late pick-ups (whole run)\n",
                         ps.jobs, ps.wakes, ps.sleeps, ps.late);
    }
    if (profile) {
      printProfile(*profPrefill, "prefill", prompt.size(), /*perToken=*/false, out);
      printProfile(*profDecode, "decode", uint64_t(nGen), /*perToken=*/true, out);
    }
  }
  return 0;
}

} // namespace

int ternMain(const std::vector<std::string> &args, std::istream &in, bool inIsTerminal,
             std::ostream &out, std::ostream &err) {
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
  if (cmd == "chat")
    return cmdChat(a, in, inIsTerminal, out, err);
  if (cmd == "bench")
    return cmdBench(a, out, err);
  if (cmd == "serve")
    return cmdServe(a, out, err);
  if (cmd == "compare")
    return cmdCompare(a, out, err);
  err << fmt::format("tern: unknown command '{}' (try tern --help)\n", cmd);
  return 2;
}

int ternMain(const std::vector<std::string> &args, std::ostream &out, std::ostream &err) {
  return ternMain(args, std::cin, ::isatty(STDIN_FILENO) != 0, out, err);
}

} // namespace tern::cli
