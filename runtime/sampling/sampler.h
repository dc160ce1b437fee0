// Token sampling: a chain of logit processors in llama.cpp's default order,
//
//   logit bias -> penalties -> top-k -> top-p -> min-p -> temperature -> draw
//
// then a seeded random draw, or greedy argmax when the temperature is <= 0.
// Semantics follow llama.cpp's samplers (docs/sampling.md has the details):
//
//  * logit bias: logit[t] += bias for every entry (entries for the same token
//    add up); a bias of -inf bans the token.
//  * penalties over the last `repeatLastN` accepted tokens: for a token seen
//    c > 0 times, logit /= repeatPenalty when logit > 0, logit *= repeatPenalty
//    otherwise; then logit -= c * frequencyPenalty + presencePenalty.
//  * top-k keeps the k highest logits (k = 0: off; k >= vocabulary: no-op).
//  * top-p keeps the smallest prefix (highest first) whose probability,
//    normalised over what top-k kept, reaches p (p = 1: off).
//  * min-p keeps tokens whose probability is >= p times the highest one, i.e.
//    logit >= max + ln(p) (p = 0: off).
//  * temperature divides the surviving logits; the draw is from their softmax.
//    top-p and min-p therefore see the untempered distribution, as in
//    llama.cpp's default chain.
//
// Ordering is by logit, highest first, ties broken by the lower token id, so
// every filter and the greedy choice are deterministic.
//
// Selection is O(V): no sort of the vocabulary. The chain is evaluated fused
// (one vectorised pass for the max and per-block maxima, which bound top-k and
// min-p so that only a few blocks are scanned; a weighted quickselect when
// top-p must cut a large set), and only the few survivors are sorted. The
// result is the same as applying the processors one after the other
// (tests/sampling checks it against a naive sorted chain). docs/sampling.md.
//
// Determinism: the random generator is per Sampler (std::mt19937_64, seeded
// explicitly, uniform doubles made from its bits by this code, not by the
// standard library's distributions), and a Sampler never uses threads: the
// same seed and logits give the same tokens whatever the thread count of the
// forward pass. A Sampler is a value: copying it (e.g. when a session forks)
// copies the penalty window and the generator state.
//
// Errors are values (absl::Status) naming the parameter (by its CLI flag) or
// the logit at fault; nothing here throws or aborts on bad input.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tern::sampling {

// One `--logit-bias TOKEN(+|-)BIAS` entry.
struct LogitBias {
  int32_t token = 0;
  float bias = 0; // finite, or -inf (ban)
};

// llama.cpp's defaults. Flags named as in llama.cpp.
struct SamplerParams {
  float temperature = 0.8f;      // --temp; <= 0: greedy
  int32_t topK = 40;             // --top-k; 0: off
  float topP = 0.95f;            // --top-p; in (0, 1], 1: off
  float minP = 0.05f;            // --min-p; in [0, 1], 0: off
  int32_t repeatLastN = 64;      // --repeat-last-n; 0: off, -1: the context size
  float repeatPenalty = 1.0f;    // --repeat-penalty; > 0, 1: off
  float frequencyPenalty = 0.0f; // --frequency-penalty; 0: off
  float presencePenalty = 0.0f;  // --presence-penalty; 0: off
  std::vector<LogitBias> logitBias;
  uint64_t seed = 0; // --seed; see randomSeed()

  bool greedy() const { return temperature <= 0.0f; }
};

// Parses the value of `-l` / `--logit-bias`: TOKEN_ID followed by + or - and
// a non-negative number or `inf` ("15043+1", "15043-0.5", "15043-inf").
// The token id is range-checked later, against the vocabulary (validate()).
absl::StatusOr<LogitBias> parseLogitBias(std::string_view value);

// Checks every parameter; `contextSize` resolves repeatLastN = -1 (0: unknown,
// then -1 is an error). The message names the flag and the value.
absl::Status validate(const SamplerParams &params, int32_t vocabSize, int32_t contextSize = 0);

// A seed from std::random_device, for when the user gives none. It fits in 32
// bits (as llama.cpp's seeds do), so the value the CLI prints can be passed
// back as --seed.
uint64_t randomSeed();

// A token with its probability after the whole chain (temperature included).
struct TokenProb {
  int32_t token;
  float prob;
};

class Sampler {
public:
  // Validates `params` (see validate()).
  static absl::StatusOr<Sampler> create(SamplerParams params, int32_t vocabSize,
                                        int32_t contextSize = 0);

  // Draws the next token from `logits` ([vocabSize]) through the chain. Does
  // not record it: call accept() for the tokens the penalties should see
  // (llama.cpp's tools accept the prompt tokens and every generated one).
  // Errors: wrong logits size, a NaN or +inf logit, every token banned.
  absl::StatusOr<int32_t> sample(std::span<const float> logits);
  // sample() then accept() of the result.
  absl::StatusOr<int32_t> sampleAndAccept(std::span<const float> logits);

  // Pushes a token into the penalty window (the last repeatLastN tokens).
  // Tokens outside the vocabulary are ignored.
  void accept(int32_t token);
  // Forgets the penalty window (the generator keeps its state).
  void resetHistory();
  // Restarts the generator from `seed`.
  void reseed(uint64_t seed);

  // The distribution the draw uses: every token the chain keeps with its
  // probability after temperature (0 where it underflows), highest first
  // (ties: lower id first). Greedy: the argmax with probability 1. Consumes no
  // randomness. Sorts the survivors: with every filter off that is the whole
  // vocabulary (an inspection API; sample() never sorts more than the few).
  absl::Status distribution(std::span<const float> logits, std::vector<TokenProb> &out);

  const SamplerParams &params() const { return params_; }
  int32_t vocabSize() const { return vocab_; }
  // The tokens in the penalty window, oldest first.
  std::vector<int32_t> history() const;

private:
  struct Cand {
    float logit;
    int32_t id;
  };
  Sampler(SamplerParams params, int32_t vocabSize, int32_t lastN);

  // Runs bias, penalties and the filters; leaves the survivors in cand_ with
  // their untempered logits (sorted when `sorted`), and the max logit in max_.
  // Greedy: cand_ holds just the argmax.
  // `dense`: when the chain would keep every finite logit, leave cand_ empty
  // and set dense_ (sample() then draws straight from the logits).
  absl::Status filter(std::span<const float> logits, bool sorted, bool dense);
  int32_t drawDense(float invTemp);
  // The logits after bias and penalties: `logits` itself when neither applies.
  std::span<const float> adjusted(std::span<const float> logits);
  // The top k (ties by id) among logits >= floor into cand_, unsorted.
  void selectTopK(std::span<const float> w, int32_t k, float floor);
  void collectAtLeast(std::span<const float> w, float threshold);
  void topP(double target);
  bool topPCannotCut(float minThr);
  double uniform(); // [0, 1)

  SamplerParams params_;
  int32_t vocab_ = 0;
  int32_t lastN_ = 0;
  std::vector<LogitBias> bias_;                  // merged per token, -inf kept
  std::vector<int32_t> ring_;                    // [lastN_] penalty window
  size_t ringHead_ = 0, ringSize_ = 0;           // next write slot, tokens held
  absl::flat_hash_map<int32_t, int32_t> counts_; // token -> count in the window
  std::mt19937_64 rng_;

  // Scratch reused across calls (no allocation per token after warm-up).
  std::vector<float> work_;     // [vocab_] adjusted logits, when bias/penalties apply
  std::vector<Cand> cand_;      // survivors
  std::vector<float> prob_;     // weights of cand_
  std::vector<double> blocks_;  // dense draw: mass per block of the vocabulary
  std::vector<float> blockMax_; // max logit per block of 64
  std::vector<float> blockTmp_;
  std::span<const float> w_; // the adjusted logits of the current call
  float max_ = 0;
  int32_t argmax_ = 0;
  bool dense_ = false;
};

// Convenience for --ignore-eos: bans `tokens` through the logit bias.
void banTokens(SamplerParams &params, std::span<const int32_t> tokens);

} // namespace tern::sampling
