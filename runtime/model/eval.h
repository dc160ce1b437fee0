// Greedy evaluation in the shape of ../shared/fixtures/golden/*.json, and
// the fixtures' comparison rule (README: Δp over the golden's top-5 up to the
// first step where the greedy picks part).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/model/model.h"

namespace tern::model {

struct EvalStep {
  int32_t token = -1;                          // greedy pick
  std::vector<std::pair<int32_t, double>> top; // best k (id, probability)
  std::vector<double> probs;                   // full distribution (when asked for)
};

struct EvalResult {
  std::optional<std::string> prompt; // absent when fed ids directly
  std::vector<int32_t> tokens;       // prompt ids without BOS
  std::vector<int32_t> input;        // what was fed (BOS + tokens, or the given ids)
  std::vector<EvalStep> steps;
};

// Softmax in double over the whole vocabulary.
std::vector<double> softmax(std::span<const float> logits);
// Highest logit; the lowest id wins ties.
int32_t argmax(std::span<const float> logits);
// The k most probable ids, by probability descending then id ascending.
std::vector<std::pair<int32_t, double>> topK(std::span<const double> probs, int k);

struct GreedyOptions {
  int steps = 8;
  int topK = 5;
  bool keepProbs = false;
  // When non-empty, step i feeds forced[i] instead of its own pick (the
  // pick recorded is still this model's own argmax).
  std::span<const int32_t> forced;
};

// Feeds `input` to a fresh session, then `steps` greedy steps.
absl::StatusOr<std::vector<EvalStep>> greedyEval(Model &model, std::span<const int32_t> input,
                                                 const GreedyOptions &options);

// Keys in the goldens' order: prompt, tokens, input, steps.
nlohmann::ordered_json toJson(const EvalResult &r);
absl::StatusOr<EvalResult> evalFromJson(const nlohmann::json &j);
// A golden file: a JSON array of entries.
absl::StatusOr<std::vector<EvalResult>> readGoldenFile(const std::string &path);

struct GoldenComparison {
  double maxDeltaP = 0.0; // over the compared steps
  int maxDeltaStep = -1;
  int comparedSteps = 0;   // steps 0..partedStep (inclusive) or all
  int partedStep = -1;     // first step whose greedy picks differ, -1 if none
  double partedMargin = 0; // golden's top1 - top2 at the parted step
  bool ok = true;          // Δp within tolerance and any parting allowed by the gap
  std::string detail;      // human-readable summary of a failure
};

// The fixtures' rule: Δp at a step = max over the golden's top-5 ids of
// |p_ours(id) - p_golden(id)|, compared from step 0 up to and including the
// first step whose picks differ; that parting is an error only where the
// golden's top two differ by more than `gap`. `ours` must hold full
// distributions (GreedyOptions::keepProbs).
GoldenComparison compareWithGolden(const EvalResult &golden, std::span<const EvalStep> ours,
                                   double tolerance, double gap);

} // namespace tern::model
