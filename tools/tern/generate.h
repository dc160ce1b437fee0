// Generation pieces shared by `tern run`, `tern chat` and `tern eval`: the
// sampling flags (llama.cpp's spellings and defaults) and a session's token
// stream with llama.cpp's end-of-context behaviour (stop, or --context-shift).
// Sessions, sampling and logits go through the C API (tern.h). Internal to
// tools/tern (library tern_cli). docs/cli.md, "Generation".
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/include/tern/tern.h"
#include "runtime/sampling/sampler.h"
#include "runtime/support/args.h"
#include "tools/tern/common.h"

namespace tern::cli {

struct SamplingFlags {
  sampling::SamplerParams params; // llama.cpp's defaults unless a flag says otherwise
  std::optional<int64_t> seed;    // -s/--seed; absent or -1: random (printed)
  bool ignoreEos = false;         // --ignore-eos: end-of-generation ids banned (-inf bias)
  std::vector<std::string> stops; // -r/--reverse-prompt, --stop (when the command takes them)
};

// --temp --top-k --top-p --min-p --repeat-last-n --repeat-penalty
// --presence-penalty --frequency-penalty -l/--logit-bias -s/--seed
// --ignore-eos, and (withStops) -r/--reverse-prompt/--stop, in a "sampling"
// section of the help, which shows the values `f` holds as the defaults
// (eval sets temperature 0 before calling this).
void addSamplingFlags(args::Parser &p, SamplingFlags &f, bool withStops);

// The sampler the flags describe for `m` (tern_sampler_create): the seed
// (random when not given: "seed: N" is printed on `err` unless greedy),
// --ignore-eos as bans on the model's end-of-generation ids, then the
// sampler's checks (errors name the flag).
absl::StatusOr<SamplerHandle> makeSampler(const SamplingFlags &f, const tern_model *m,
                                          std::ostream &err);

// One session's token stream. Tracks every token the session holds, so that
// when the context is full it can do what llama.cpp does with
// --context-shift: keep the first `keep` tokens (BOS, system prompt), drop
// half of the rest (the oldest), and continue. The shift is implemented by
// starting a new session and re-feeding the kept tokens (the KV cache cannot
// move positions in place), which costs a prefill of up to half a context.
class Sequence {
public:
  Sequence(tern_model *m, bool contextShift);

  // A fresh session (also drops what the previous one held).
  absl::Status start();
  // Feeds `tokens` at the next positions; logits() is then the last one's.
  // When they do not fit: with context shift, shifts first (error when even
  // that cannot make room); without, FailedPrecondition (check fits() first
  // to stop with a notice instead).
  absl::Status feed(std::span<const int32_t> tokens);
  // The logits of the last token fed (n_vocab floats; valid until the next feed).
  std::span<const float> logits() const;
  bool fits(size_t n) const { return tokens_.size() + n <= ctx_; }

  // Tokens kept at the start by a shift (clamped to what the session holds).
  void setKeep(size_t n) { keep_ = n; }
  size_t keep() const { return keep_; }
  bool contextShift() const { return shift_; }
  uint32_t contextLength() const { return ctx_; }
  // Positions the session holds (the next token's position).
  uint64_t position() const { return tokens_.size(); }
  const std::vector<int32_t> &tokens() const { return tokens_; }
  // Positions computed so far, re-fed ones included (prefill work).
  uint64_t positionsFed() const { return fed_; }
  int shifts() const { return shifts_; }

private:
  absl::Status shiftFor(size_t incoming);
  absl::Status decode(std::span<const int32_t> tokens);

  tern_model *model_;
  bool shift_;
  uint32_t ctx_;
  size_t keep_ = 0;
  SessionHandle session_;
  std::vector<int32_t> tokens_; // what the session holds, in position order
  uint64_t fed_ = 0;
  int shifts_ = 0;
};

// The notice printed when generation stops at the end of the context.
std::string contextFullNotice(const std::string &cmd, const Sequence &s);

} // namespace tern::cli
