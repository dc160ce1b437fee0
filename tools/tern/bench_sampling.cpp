// `tern bench --sampling`: the sampler alone on synthetic logits, through the
// C API (tern_sampler_create_vocab: a sampler without a model). Rates are
// per second of this thread's CPU time (as Google Benchmark's rate counters,
// tests/sampling/bench.cpp), so that other load on the machine does not
// count; wall-clock rates are printed next to them.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <random>
#include <thread>
#include <vector>

#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "runtime/support/status.h"
#include "tools/tern/commands.h"
#include "tools/tern/common.h"

namespace tern::cli {

namespace {

double threadCpuSeconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

struct Rate {
  double cpuPerS = 0, wallPerS = 0;
  int64_t samples = 0;
};

// Samples from `rows` in turn until at least `minCpu` s of CPU time passed;
// best of 3 such runs (by CPU rate).
absl::StatusOr<Rate> measure(const tern_sampler_params &p, int vocab,
                             const std::vector<std::vector<float>> &rows, double minCpu) {
  tern_sampler *raw = nullptr;
  if (tern_status st = tern_sampler_create_vocab(vocab, 0, &p, &raw))
    return apiStatus(st);
  SamplerHandle s(raw);
  int32_t t = 0;
  for (const auto &r : rows) // warm-up: scratch buffers sized, pages touched
    if (tern_status st = tern_sampler_sample(s.get(), r.data(), r.size(), &t))
      return apiStatus(st);
  Rate best;
  int64_t sink = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const double c0 = threadCpuSeconds();
    const auto w0 = std::chrono::steady_clock::now();
    int64_t n = 0;
    double c1 = c0;
    while (c1 - c0 < minCpu) {
      for (int i = 0; i < 64; ++i, ++n) {
        const std::vector<float> &r = rows[size_t(n) % rows.size()];
        if (tern_status st = tern_sampler_sample(s.get(), r.data(), r.size(), &t))
          return apiStatus(st);
        sink += t;
      }
      c1 = threadCpuSeconds();
    }
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
    Rate r{double(n) / std::max(c1 - c0, 1e-9), double(n) / std::max(wall, 1e-9), n};
    if (r.cpuPerS > best.cpuPerS)
      best = r;
  }
  volatile int64_t keep = sink;
  (void)keep;
  return best;
}

std::string cpuName() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0 || line.rfind("Model", 0) == 0)
      if (size_t c = line.find(':'); c != std::string::npos) {
        std::string v = line.substr(c + 1);
        v.erase(0, v.find_first_not_of(' '));
        return v;
      }
  return "unknown";
}

} // namespace

int benchSampling(int vocab, double minCpuSeconds, bool json, std::ostream &out,
                  std::ostream &err) {
  // Two rows of normal(0, 1) x 3 logits (the generator of
  // tests/sampling/bench.cpp), seeded, used in turn. Two, not more: in a
  // real run the row was just written by the lm_head, so it is in cache
  // (128256 floats = 513 KB; two rows fit a 2 MB L2).
  std::vector<std::vector<float>> rows(2, std::vector<float>(size_t(vocab)));
  std::mt19937_64 g(1);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (auto &r : rows)
    for (float &x : r)
      x = d(g) * 3.0f;
  struct Case {
    const char *key, *what;
    tern_sampler_params params;
  };
  // llama.cpp's defaults, seed 0.
  tern_sampler_params def;
  tern_sampler_params_init(&def);
  def.seed = 0;
  tern_sampler_params topK0 = def, greedy = def;
  topK0.top_k = 0;
  greedy.temperature = 0;
  const Case cases[] = {
      {"default_chain", "default chain (top-k 40, top-p 0.95, min-p 0.05, temp 0.8)", def},
      {"top_k0_chain", "top-k 0 (top-p 0.95 + min-p 0.05 over the whole vocabulary)", topK0},
      {"greedy", "greedy (--temp 0)", greedy},
  };
  std::vector<Rate> rates;
  for (const Case &c : cases) {
    absl::StatusOr<Rate> r = measure(c.params, vocab, rows, minCpuSeconds);
    if (!r.ok()) {
      err << "tern bench: error: " << c.key << ": " << statusMessage(r.status()) << "\n";
      return 1;
    }
    rates.push_back(*r);
  }
  const double chain = std::min(rates[0].cpuPerS, rates[1].cpuPerS);
  if (json) {
    nlohmann::ordered_json j;
    j["bench"] = "sampling";
    j["vocab"] = vocab;
    j["threads"] = 1;
    j["machine"] = {{"cpu", cpuName()}, {"hardware_threads", std::thread::hardware_concurrency()}};
    j["timing"] = fmt::format("samples per second of thread CPU time, best of 3 runs of >= {} s",
                              minCpuSeconds);
    j["chain_samples_per_s"] = chain;
    j["greedy_samples_per_s"] = rates[2].cpuPerS;
    for (size_t i = 0; i < rates.size(); ++i) {
      j[std::string(cases[i].key) + "_samples_per_s"] = rates[i].cpuPerS;
      j[std::string(cases[i].key) + "_wall_samples_per_s"] = rates[i].wallPerS;
    }
    out << j.dump() << "\n";
    return 0;
  }
  out << fmt::format("sampling on {} logits (normal x 3), 1 thread, {}\n", vocab, cpuName());
  for (size_t i = 0; i < rates.size(); ++i)
    out << fmt::format("{}: {:.0f} samples/s ({:.1f} us; wall-clock {:.0f}/s)\n", cases[i].what,
                       rates[i].cpuPerS, 1e6 / std::max(rates[i].cpuPerS, 1e-9), rates[i].wallPerS);
  out << fmt::format("chain (the slower of the two): {:.0f} samples/s; greedy: {:.0f} samples/s\n",
                     chain, rates[2].cpuPerS);
  return 0;
}

} // namespace tern::cli
