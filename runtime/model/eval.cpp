#include "runtime/model/eval.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "fmt/format.h"

namespace tern::model {

std::vector<double> softmax(std::span<const float> logits) {
  std::vector<double> p(logits.size());
  if (logits.empty())
    return p;
  const double mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (size_t i = 0; i < logits.size(); ++i)
    sum += (p[i] = std::exp(double(logits[i]) - mx));
  for (double &x : p)
    x /= sum;
  return p;
}

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best])
      best = static_cast<int32_t>(i);
  return best;
}

std::vector<std::pair<int32_t, double>> topK(std::span<const double> probs, int k) {
  std::vector<int32_t> ids(probs.size());
  for (size_t i = 0; i < ids.size(); ++i)
    ids[i] = static_cast<int32_t>(i);
  const size_t n = std::min<size_t>(std::max(k, 0), ids.size());
  std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [&](int32_t a, int32_t b) {
    return probs[a] != probs[b] ? probs[a] > probs[b] : a < b;
  });
  std::vector<std::pair<int32_t, double>> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i)
    out.emplace_back(ids[i], probs[ids[i]]);
  return out;
}

absl::StatusOr<std::vector<EvalStep>> greedyEval(Model &model, std::span<const int32_t> input,
                                                 const GreedyOptions &o) {
  if (input.empty())
    return absl::InvalidArgumentError("eval: the input holds no tokens");
  if (!o.forced.empty() && o.forced.size() < size_t(std::max(o.steps - 1, 0)))
    return absl::InvalidArgumentError(
        fmt::format("eval: {} forced picks for {} steps", o.forced.size(), o.steps));
  absl::StatusOr<std::unique_ptr<Session>> session = model.newSession();
  if (!session.ok())
    return session.status();
  std::vector<float> logits(model.config().nVocab);
  if (absl::Status s = model.decode(**session, input, logits); !s.ok())
    return s;
  std::vector<EvalStep> steps;
  for (int i = 0; i < o.steps; ++i) {
    EvalStep st;
    st.token = argmax(logits);
    std::vector<double> p = softmax(logits);
    st.top = topK(p, o.topK);
    if (o.keepProbs)
      st.probs = std::move(p);
    const int32_t next = o.forced.empty() ? st.token : o.forced[i];
    steps.push_back(std::move(st));
    if (i + 1 == o.steps)
      break;
    if (absl::Status s = model.decode(**session, std::span<const int32_t>(&next, 1), logits);
        !s.ok())
      return s;
  }
  return steps;
}

nlohmann::ordered_json toJson(const EvalResult &r) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  j["prompt"] = r.prompt ? nlohmann::ordered_json(*r.prompt) : nlohmann::ordered_json(nullptr);
  j["tokens"] = r.tokens;
  j["input"] = r.input;
  nlohmann::ordered_json steps = nlohmann::ordered_json::array();
  for (const EvalStep &s : r.steps) {
    nlohmann::ordered_json top = nlohmann::ordered_json::array();
    for (const auto &[id, p] : s.top)
      top.push_back(nlohmann::ordered_json::array({id, p}));
    steps.push_back({{"token", s.token}, {"top", top}});
  }
  j["steps"] = steps;
  return j;
}

absl::StatusOr<EvalResult> evalFromJson(const nlohmann::json &j) {
  try {
    EvalResult r;
    if (j.contains("prompt") && j["prompt"].is_string())
      r.prompt = j["prompt"].get<std::string>();
    r.tokens = j.at("tokens").get<std::vector<int32_t>>();
    r.input = j.at("input").get<std::vector<int32_t>>();
    for (const nlohmann::json &s : j.at("steps")) {
      EvalStep st;
      st.token = s.at("token").get<int32_t>();
      for (const nlohmann::json &t : s.at("top"))
        st.top.emplace_back(t.at(0).get<int32_t>(), t.at(1).get<double>());
      r.steps.push_back(std::move(st));
    }
    return r;
  } catch (const nlohmann::json::exception &e) {
    return absl::InvalidArgumentError(fmt::format("eval JSON: {}", e.what()));
  }
}

absl::StatusOr<std::vector<EvalResult>> readGoldenFile(const std::string &path) {
  std::ifstream in(path);
  if (!in)
    return absl::NotFoundError(fmt::format("cannot open golden file {}", path));
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_array())
    return absl::InvalidArgumentError(fmt::format("{}: not a JSON array", path));
  std::vector<EvalResult> out;
  for (size_t i = 0; i < j.size(); ++i) {
    absl::StatusOr<EvalResult> r = evalFromJson(j[i]);
    if (!r.ok())
      return absl::InvalidArgumentError(
          fmt::format("{} entry {}: {}", path, i, std::string(r.status().message())));
    out.push_back(std::move(*r));
  }
  return out;
}

GoldenComparison compareWithGolden(const EvalResult &golden, std::span<const EvalStep> ours,
                                   double tolerance, double gap) {
  GoldenComparison c;
  const size_t n = std::min(golden.steps.size(), ours.size());
  if (ours.size() < golden.steps.size()) {
    c.ok = false;
    c.detail = fmt::format("{} steps computed, golden has {}", ours.size(), golden.steps.size());
  }
  for (size_t i = 0; i < n; ++i) {
    const EvalStep &g = golden.steps[i];
    const EvalStep &o = ours[i];
    double d = 0.0;
    for (const auto &[id, p] : g.top) {
      const double mine = (id >= 0 && size_t(id) < o.probs.size()) ? o.probs[id] : 0.0;
      d = std::max(d, std::fabs(mine - p));
    }
    ++c.comparedSteps;
    if (d > c.maxDeltaP) {
      c.maxDeltaP = d;
      c.maxDeltaStep = static_cast<int>(i);
    }
    if (o.token != g.token) {
      c.partedStep = static_cast<int>(i);
      c.partedMargin = g.top.size() >= 2 ? g.top[0].second - g.top[1].second : 1.0;
      if (c.partedMargin > gap) {
        c.ok = false;
        c.detail += fmt::format("step {}: picked {} but golden picked {} with a margin {:.4f} > "
                                "gap {}; ",
                                i, o.token, g.token, c.partedMargin, gap);
      }
      break;
    }
  }
  if (c.maxDeltaP > tolerance) {
    c.ok = false;
    c.detail += fmt::format("max Δp {:.4f} at step {} exceeds {}; ", c.maxDeltaP, c.maxDeltaStep,
                            tolerance);
  }
  return c;
}

} // namespace tern::model
