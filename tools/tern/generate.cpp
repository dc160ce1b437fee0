#include "tools/tern/generate.h"

#include <algorithm>
#include <limits>

#include "fmt/format.h"
#include "runtime/capi/bridge.h"

namespace tern::cli {

void addSamplingFlags(args::Parser &p, SamplingFlags &f, bool withStops) {
  sampling::SamplerParams &s = f.params;
  constexpr double kBig = 1e30;
  p.section("sampling (llama.cpp's chain and defaults; docs/sampling.md)");
  p.number("--temp", &s.temperature, -kBig, kBig, "T",
           fmt::format("temperature (default {:g}); <= 0 is greedy", s.temperature));
  p.integer("--top-k", &s.topK, 0, std::numeric_limits<int32_t>::max(), "N",
            fmt::format("keep the N most likely tokens (default {}; 0 = off)", s.topK));
  p.number(
      "--top-p", &s.topP, 0, 1, "P",
      fmt::format("keep the smallest set reaching probability P\n(default {:g}; 1 = off)", s.topP));
  p.number("--min-p", &s.minP, 0, 1, "P",
           fmt::format("keep tokens with probability >= P x the best's\n(default {:g}; 0 = off)",
                       s.minP));
  p.integer("--repeat-last-n", &s.repeatLastN, -1, std::numeric_limits<int32_t>::max(), "N",
            fmt::format("penalize the last N tokens, prompt included\n(default {}; 0 = off, -1 = "
                        "the context size)",
                        s.repeatLastN));
  p.number("--repeat-penalty", &s.repeatPenalty, -kBig, kBig, "X",
           fmt::format("divide repeated tokens' positive logits by X\n(multiply negative ones; "
                       "default {:g} = off)",
                       s.repeatPenalty));
  p.number("--presence-penalty", &s.presencePenalty, -kBig, kBig, "X",
           fmt::format("subtract X from repeated tokens' logits\n(default {:g} = off)",
                       s.presencePenalty));
  p.number("--frequency-penalty", &s.frequencyPenalty, -kBig, kBig, "X",
           fmt::format("subtract X x count from repeated tokens' logits\n(default {:g} = off)",
                       s.frequencyPenalty));
  p.value("-l,--logit-bias", "TOKEN(+|-)BIAS",
          "add BIAS to TOKEN's logit (repeatable; e.g. 15043+1,\n15043-inf bans the token)",
          [&s](std::string_view flag, const std::string &v) -> absl::Status {
            absl::StatusOr<sampling::LogitBias> b = sampling::parseLogitBias(v);
            if (!b.ok()) {
              // The library's message starts with "--logit-bias": say -l where
              // the user spelled it so.
              std::string m(b.status().message());
              if (m.rfind("--logit-bias", 0) == 0)
                m.replace(0, 12, flag);
              return absl::InvalidArgumentError(m);
            }
            s.logitBias.push_back(*b);
            return absl::OkStatus();
          });
  p.integer("-s,--seed", &f.seed, int64_t(-1), std::numeric_limits<int64_t>::max(), "N",
            "random seed (default -1: a random one, printed\nto stderr as `seed: N`)");
  p.flag("--ignore-eos", &f.ignoreEos,
         "never stop at end-of-generation tokens (they get a\n-inf logit bias, as in llama.cpp)");
  if (withStops)
    p.value("-r,--reverse-prompt,--stop", "TEXT",
            "stop generating when TEXT appears (repeatable);\nTEXT itself is not printed",
            [&f](std::string_view flag, const std::string &v) -> absl::Status {
              if (v.empty())
                return absl::InvalidArgumentError(fmt::format("{}: the text is empty", flag));
              f.stops.push_back(v);
              return absl::OkStatus();
            });
}

absl::StatusOr<SamplerHandle> makeSampler(const SamplingFlags &f, const tern_model *m,
                                          std::ostream &err) {
  const sampling::SamplerParams &s = f.params;
  // --seed N >= 0 as given; none (or a negative one) draws a random seed.
  const uint64_t seed = f.seed && *f.seed >= 0 ? uint64_t(*f.seed) : TERN_SEED_RANDOM;
  std::vector<tern_logit_bias> bias;
  const tern_sampler_params p = capi::samplerParams(s, seed, f.ignoreEos, bias);
  tern_sampler *out = nullptr;
  if (tern_status st = tern_sampler_create(m, &p, &out))
    return apiStatus(st);
  SamplerHandle h(out);
  if (p.seed == TERN_SEED_RANDOM && !s.greedy())
    err << "seed: " << tern_sampler_seed(out) << "\n";
  return h;
}

Sequence::Sequence(tern_model *m, bool contextShift) : model_(m), shift_(contextShift) {
  tern_model_info info;
  ctx_ = tern_model_get_info(m, &info) == TERN_OK ? info.n_ctx : 0;
}

absl::Status Sequence::start() {
  session_.reset(); // its KV pages go back to the pool first
  tokens_.clear();
  tern_session *s = nullptr;
  if (tern_status st = tern_session_create(model_, &s))
    return apiStatus(st);
  session_.reset(s);
  return absl::OkStatus();
}

absl::Status Sequence::decode(std::span<const int32_t> tokens) {
  if (tern_status st = tern_decode(session_.get(), tokens.data(), tokens.size()))
    return apiStatus(st);
  fed_ += tokens.size();
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  return absl::OkStatus();
}

std::span<const float> Sequence::logits() const {
  const float *l = nullptr;
  size_t n = 0;
  if (!session_ || tern_session_logits(session_.get(), &l, &n) != TERN_OK)
    return {};
  return {l, n};
}

absl::Status Sequence::shiftFor(size_t incoming) {
  const size_t keep = std::min(keep_, tokens_.size());
  if (keep + incoming > ctx_)
    return absl::ResourceExhaustedError(
        fmt::format("context full: {} new tokens do not fit behind the {} kept ones (--keep) in a "
                    "context of {} (raise -c)",
                    incoming, keep, ctx_));
  // llama.cpp: drop half of what follows the kept tokens, oldest first; here
  // as often as it takes to make room for `incoming`.
  size_t rest = tokens_.size() - keep, dropped = 0;
  while (keep + rest + incoming > ctx_) {
    const size_t d = std::max<size_t>(rest / 2, 1);
    rest -= d;
    dropped += d;
  }
  std::vector<int32_t> kept(tokens_.begin(), tokens_.begin() + keep);
  kept.insert(kept.end(), tokens_.begin() + keep + dropped, tokens_.end());
  if (absl::Status s = start(); !s.ok())
    return s;
  ++shifts_;
  if (kept.empty())
    return absl::OkStatus();
  return decode(kept);
}

absl::Status Sequence::feed(std::span<const int32_t> tokens) {
  if (!session_)
    if (absl::Status s = start(); !s.ok())
      return s;
  if (!fits(tokens.size())) {
    if (!shift_)
      return absl::FailedPreconditionError(
          fmt::format("context full: {} positions used + {} new > context length {} (raise -c, "
                      "or --context-shift)",
                      tokens_.size(), tokens.size(), ctx_));
    if (absl::Status s = shiftFor(tokens.size()); !s.ok())
      return s;
  }
  if (tokens.empty())
    return absl::OkStatus();
  return decode(tokens);
}

std::string contextFullNotice(const std::string &cmd, const Sequence &s) {
  return fmt::format("tern {}: context full ({} of {} positions): generation stopped "
                     "(raise -c, or --context-shift to drop the oldest tokens and go on)\n",
                     cmd, s.position(), s.contextLength());
}

} // namespace tern::cli
