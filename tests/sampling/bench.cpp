// Samples/s of the chain on a 128256-entry vocabulary (LLaMA-3 / BitNet
// b1.58 2B4T), logits normal(0, 1) * 3. One thread. Results go to
// docs/performance.md, section "Sampling".
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include "runtime/sampling/sampler.h"

namespace {

using tern::sampling::Sampler;
using tern::sampling::SamplerParams;

constexpr int32_t kVocab = 128256;

const std::vector<float> &logits() {
  static const std::vector<float> l = [] {
    std::mt19937_64 g(1);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(kVocab);
    for (float &x : v)
      x = d(g) * 3.0f;
    return v;
  }();
  return l;
}

void run(benchmark::State &state, SamplerParams p, int history) {
  absl::StatusOr<Sampler> s = Sampler::create(p, kVocab);
  if (!s.ok()) {
    state.SkipWithError("bad params");
    return;
  }
  std::mt19937 g(2);
  for (int i = 0; i < history; ++i)
    s->accept(static_cast<int32_t>(g() % kVocab));
  const std::vector<float> &l = logits();
  for (auto _ : state) {
    absl::StatusOr<int32_t> t = s->sample(l);
    benchmark::DoNotOptimize(t);
  }
  state.counters["samples_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// llama.cpp's defaults: top-k 40, top-p 0.95, min-p 0.05, temp 0.8.
void BM_DefaultChain(benchmark::State &state) { run(state, SamplerParams{}, 0); }
// top-k 0: top-p 0.95 + min-p 0.05 over the whole vocabulary.
void BM_TopK0(benchmark::State &state) {
  SamplerParams p;
  p.topK = 0;
  run(state, p, 0);
}
// Defaults plus repeat/frequency/presence penalties over 64 tokens.
void BM_DefaultChainPenalties(benchmark::State &state) {
  SamplerParams p;
  p.repeatPenalty = 1.1f;
  p.frequencyPenalty = 0.1f;
  p.presencePenalty = 0.1f;
  run(state, p, 64);
}
// top-p 0.95 alone over the whole vocabulary (min-p and top-k off): the
// weighted quickselect path.
void BM_TopPOnly(benchmark::State &state) {
  SamplerParams p;
  p.topK = 0;
  p.minP = 0;
  run(state, p, 0);
}
// Every filter off: softmax draw over all 128256 tokens.
void BM_TemperatureOnly(benchmark::State &state) {
  SamplerParams p;
  p.topK = 0;
  p.minP = 0;
  p.topP = 1;
  run(state, p, 0);
}
void BM_Greedy(benchmark::State &state) {
  SamplerParams p;
  p.temperature = 0;
  run(state, p, 0);
}

BENCHMARK(BM_DefaultChain);
BENCHMARK(BM_TopK0);
BENCHMARK(BM_DefaultChainPenalties);
BENCHMARK(BM_TopPOnly);
BENCHMARK(BM_TemperatureOnly);
BENCHMARK(BM_Greedy);

} // namespace

BENCHMARK_MAIN();
