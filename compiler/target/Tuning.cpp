#include "compiler/target/Tuning.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"

namespace tern::compiler {

namespace {

using Json = nlohmann::ordered_json;

// Errors name the file and the field: "tuning file 'F': field 'kernels[2].tile_m': ...".
struct Reader {
  const std::string &path;

  absl::Status error(const std::string &field, const std::string &msg) const {
    return absl::InvalidArgumentError(
        fmt::format("tuning file '{}': field '{}': {}", path, field, msg));
  }
  // Every key of `o` must be one of `known`: a misspelt field is an error,
  // not a silently ignored one.
  absl::Status onlyKnown(const Json &o, const std::string &where,
                         std::initializer_list<const char *> known) const {
    for (const auto &[key, v] : o.items())
      if (std::none_of(known.begin(), known.end(), [&](const char *k) { return key == k; }))
        return error(where.empty() ? key : where + "." + key, "unknown field");
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> str(const Json &o, const std::string &where, const char *key,
                                  bool required = true) const {
    const std::string field = where.empty() ? key : where + "." + key;
    auto it = o.find(key);
    if (it == o.end()) {
      if (required)
        return error(field, "missing");
      return std::string();
    }
    if (!it->is_string() || (required && it->get<std::string>().empty()))
      return error(field, "expected a non-empty string");
    return it->get<std::string>();
  }
  absl::StatusOr<int64_t> integer(const Json &o, const std::string &where, const char *key,
                                  int64_t min, std::optional<int64_t> dflt = std::nullopt) const {
    const std::string field = where.empty() ? key : where + "." + key;
    auto it = o.find(key);
    if (it == o.end()) {
      if (dflt)
        return *dflt;
      return error(field, "missing");
    }
    if (!it->is_number_integer() || it->get<int64_t>() < min)
      return error(field, fmt::format("expected an integer >= {}, got {}", min, it->dump()));
    return it->get<int64_t>();
  }
  absl::StatusOr<TunedRates> rates(const Json &o, const std::string &where) const {
    const std::string field = where + ".rates";
    auto it = o.find("rates");
    if (it == o.end())
      return error(field, "missing");
    if (!it->is_array() || it->empty())
      return error(field, "expected a non-empty array of [batch size, G weights/s]");
    TunedRates r;
    for (size_t i = 0; i < it->size(); ++i) {
      const Json &e = (*it)[i];
      const std::string f = fmt::format("{}[{}]", field, i);
      if (!e.is_array() || e.size() != 2 || !e[0].is_number_integer() || !e[1].is_number())
        return error(f, "expected [batch size, G weights/s], got " + e.dump());
      const int64_t n = e[0].get<int64_t>();
      const double g = e[1].get<double>();
      if (n < 1)
        return error(f, fmt::format("batch size must be >= 1, got {}", n));
      if (!std::isfinite(g) || g <= 0)
        return error(f, fmt::format("rate must be a positive number, got {}", e[1].dump()));
      if (!r.empty() && n <= r.back().first)
        return error(f,
                     fmt::format("batch sizes must be ascending, {} after {}", n, r.back().first));
      r.push_back({n, g});
    }
    return r;
  }
};

#define TRY_ASSIGN(lhs, expr)                                                                      \
  do {                                                                                             \
    auto _v = (expr);                                                                              \
    if (!_v.ok())                                                                                  \
      return _v.status();                                                                          \
    lhs = std::move(*_v);                                                                          \
  } while (0)

} // namespace

absl::StatusOr<Tuning> parseTuning(std::string_view text, const std::string &path) {
  Reader rd{path};
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return absl::InvalidArgumentError(fmt::format("tuning file '{}': not valid JSON", path));
  if (!j.is_object())
    return absl::InvalidArgumentError(
        fmt::format("tuning file '{}': expected a JSON object at the top", path));
  if (absl::Status s = rd.onlyKnown(j, "",
                                    {"format", "version", "isa", "cpu", "cpu_model", "threads",
                                     "budget_s", "rows", "model", "kernels", "heads"});
      !s.ok())
    return s;
  Tuning t;
  t.path = path;
  std::string format;
  TRY_ASSIGN(format, rd.str(j, "", "format"));
  if (format != "tern-tuning")
    return rd.error("format", "expected \"tern-tuning\", got \"" + format + "\"");
  int64_t version = 0;
  TRY_ASSIGN(version, rd.integer(j, "", "version", 1));
  if (version != Tuning::kVersion)
    return rd.error("version", fmt::format("version {} is not supported (this ternc reads {})",
                                           version, Tuning::kVersion));
  TRY_ASSIGN(t.isa, rd.str(j, "", "isa"));
  std::unique_ptr<TargetInfo> ti = createTargetInfo(t.isa);
  if (!ti || t.isa == "native" || ti->name() != t.isa)
    return rd.error("isa", fmt::format("'{}' is not a kernel target (avx2, avx512_vnni, neon, "
                                       "neon_dotprod, neon_i8mm, cuda)",
                                       t.isa));
  TRY_ASSIGN(t.cpu, rd.str(j, "", "cpu"));
  TRY_ASSIGN(t.cpuModel, rd.str(j, "", "cpu_model", false));
  int64_t threads = 1;
  TRY_ASSIGN(threads, rd.integer(j, "", "threads", 1, 1));
  t.threads = int(threads);
  if (auto it = j.find("budget_s"); it != j.end()) {
    if (!it->is_number() || it->get<double>() < 0)
      return rd.error("budget_s", "expected a number >= 0, got " + it->dump());
    t.budgetS = it->get<double>();
  }
  TRY_ASSIGN(t.rows, rd.integer(j, "", "rows", 0, 0));
  TRY_ASSIGN(t.model, rd.str(j, "", "model", false));

  auto ks = j.find("kernels");
  if (ks == j.end())
    return rd.error("kernels", "missing");
  if (!ks->is_array())
    return rd.error("kernels", "expected an array");
  for (size_t i = 0; i < ks->size(); ++i) {
    const Json &e = (*ks)[i];
    const std::string w = fmt::format("kernels[{}]", i);
    if (!e.is_object())
      return rd.error(w, "expected an object");
    if (absl::Status s =
            rd.onlyKnown(e, w, {"layout", "act", "variant", "m", "k", "tile_m", "tile_k", "rates"});
        !s.ok())
      return s;
    TunedKernel k;
    std::string layout, act;
    TRY_ASSIGN(layout, rd.str(e, w, "layout"));
    std::optional<ir::KernelLayout> l = ir::symbolizeKernelLayout(layout);
    if (!l || !ir::isTernaryLayout(*l))
      return rd.error(w + ".layout", "'" + layout +
                                         "' is not a ternary layout (i2s, tl1, tl2, tl2v, "
                                         "tq2, tq1)");
    k.layout = *l;
    TRY_ASSIGN(act, rd.str(e, w, "act"));
    std::optional<ActQuant> a = parseActQuant(act);
    if (!a)
      return rd.error(w + ".act", "'" + act + "' is not an act-quant (token or none)");
    k.act = *a;
    TRY_ASSIGN(k.variant, rd.str(e, w, "variant"));
    TRY_ASSIGN(k.m, rd.integer(e, w, "m", 1));
    TRY_ASSIGN(k.k, rd.integer(e, w, "k", 1));
    TRY_ASSIGN(k.tileM, rd.integer(e, w, "tile_m", 1));
    TRY_ASSIGN(k.tileK, rd.integer(e, w, "tile_k", 1));
    if (std::string why = ir::kernelTileError(k.layout, ti->isa(), k.tileM, k.tileK); !why.empty())
      return rd.error(w + ".tile_m", why);
    TRY_ASSIGN(k.rates, rd.rates(e, w));
    t.kernels.push_back(std::move(k));
  }
  if (auto hs = j.find("heads"); hs != j.end()) {
    if (!hs->is_array())
      return rd.error("heads", "expected an array");
    for (size_t i = 0; i < hs->size(); ++i) {
      const Json &e = (*hs)[i];
      const std::string w = fmt::format("heads[{}]", i);
      if (!e.is_object())
        return rd.error(w, "expected an object");
      if (absl::Status s =
              rd.onlyKnown(e, w, {"format", "variant", "m", "k", "tile_m", "tile_k", "rates"});
          !s.ok())
        return s;
      TunedHead h;
      TRY_ASSIGN(h.format, rd.str(e, w, "format"));
      std::optional<ir::KernelLayout> l = ir::symbolizeKernelLayout(h.format);
      if (!l || ir::isTernaryLayout(*l))
        return rd.error(w + ".format", "'" + h.format + "' is not a dense head format (f16)");
      TRY_ASSIGN(h.variant, rd.str(e, w, "variant"));
      TRY_ASSIGN(h.m, rd.integer(e, w, "m", 1));
      TRY_ASSIGN(h.k, rd.integer(e, w, "k", 1));
      TRY_ASSIGN(h.tileM, rd.integer(e, w, "tile_m", 1));
      TRY_ASSIGN(h.tileK, rd.integer(e, w, "tile_k", 1));
      TRY_ASSIGN(h.rates, rd.rates(e, w));
      t.heads.push_back(std::move(h));
    }
  }
  return t;
}

absl::StatusOr<Tuning> loadTuning(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::NotFoundError(fmt::format("tuning file '{}': cannot be read", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return parseTuning(ss.str(), path);
}

// One entry per line: a file of hundreds of entries stays readable (and
// diffable) while remaining plain JSON. Rates keep 4 significant digits
// (timing noise is larger), so writing what was parsed gives the same text.
static double round4(double g) {
  if (g <= 0)
    return g;
  const double scale = std::pow(10.0, 3 - std::floor(std::log10(g)));
  return std::round(g * scale) / scale;
}

static Json roundedRates(const TunedRates &r) {
  Json a = Json::array();
  for (auto [n, g] : r)
    a.push_back(Json::array({n, round4(g)}));
  return a;
}

std::string tuningToJson(const Tuning &t) {
  Json head = Json::object();
  head["format"] = "tern-tuning";
  head["version"] = Tuning::kVersion;
  head["isa"] = t.isa;
  head["cpu"] = t.cpu;
  head["cpu_model"] = t.cpuModel;
  head["threads"] = t.threads;
  head["budget_s"] = t.budgetS;
  head["rows"] = t.rows;
  head["model"] = t.model;
  std::string out = "{\n";
  for (const auto &[key, v] : head.items())
    out += " " + Json(key).dump() + ": " + v.dump() + ",\n";
  out += " \"kernels\": [";
  for (size_t i = 0; i < t.kernels.size(); ++i) {
    const TunedKernel &k = t.kernels[i];
    Json e = {{"layout", ir::stringifyKernelLayout(k.layout).str()},
              {"act", actQuantName(k.act).str()},
              {"variant", k.variant},
              {"m", k.m},
              {"k", k.k},
              {"tile_m", k.tileM},
              {"tile_k", k.tileK},
              {"rates", roundedRates(k.rates)}};
    out += (i ? ",\n  " : "\n  ") + e.dump();
  }
  out += t.kernels.empty() ? "],\n" : "\n ],\n";
  out += " \"heads\": [";
  for (size_t i = 0; i < t.heads.size(); ++i) {
    const TunedHead &h = t.heads[i];
    Json e = {{"format", h.format},
              {"variant", h.variant},
              {"m", h.m},
              {"k", h.k},
              {"tile_m", h.tileM},
              {"tile_k", h.tileK},
              {"rates", roundedRates(h.rates)}};
    out += (i ? ",\n  " : "\n  ") + e.dump();
  }
  out += t.heads.empty() ? "]\n}\n" : "\n ]\n}\n";
  return out;
}

std::string tuningMismatch(const Tuning &t, const TargetInfo &ti, const std::string &hostCpu) {
  if (t.isa != ti.name())
    return fmt::format("tuning file '{}': field 'isa' is '{}', but target {} runs {} kernels "
                       "(tune with --target {}, or compile for {})",
                       t.path, t.isa, ti.name().str(), ti.name().str(), ti.name().str(), t.isa);
  if (!hostCpu.empty() && t.cpu != hostCpu)
    return fmt::format("tuning file '{}': field 'cpu' is '{}', but this host (--target native) "
                       "is '{}': run ternc tune on this host",
                       t.path, t.cpu, hostCpu);
  for (size_t i = 0; i < t.kernels.size(); ++i) {
    const TunedKernel &k = t.kernels[i];
    std::optional<KernelCost> row = ti.cost(k.layout, k.act);
    const std::string layout = ir::stringifyKernelLayout(k.layout).str();
    if (!row)
      return fmt::format("tuning file '{}': field 'kernels[{}].layout': target {} has no {} "
                         "kernel with act-quant {}",
                         t.path, i, ti.name().str(), layout, actQuantName(k.act).str());
    if (k.variant != row->variant)
      return fmt::format("tuning file '{}': field 'kernels[{}].variant' is '{}', but target {} "
                         "runs {} (act-quant {}) with the '{}' kernel",
                         t.path, i, k.variant, ti.name().str(), layout, actQuantName(k.act).str(),
                         row->variant);
  }
  return "";
}

double tunedDecodeRate(const TunedRates &r) { return r.front().second; }

double tunedPrefillRate(const TunedRates &r, int64_t maxBatch) {
  double best = 0, smallest = 0;
  for (auto [n, g] : r) {
    if (n <= 1)
      continue;
    if (smallest == 0)
      smallest = g;
    if (n <= maxBatch)
      best = g;
  }
  return best ? best : smallest ? smallest : r.front().second;
}

void applyTunedHead(const Tuning &t, int cores, int64_t m, int64_t k, KernelEstimate &e) {
  const std::string format = ir::stringifyKernelLayout(e.layout).str();
  const TunedHead *best = nullptr;
  auto dist = [&](const TunedHead &h) {
    return std::fabs(std::log(double(m) / double(h.m))) +
           std::fabs(std::log(double(k) / double(h.k)));
  };
  for (const TunedHead &h : t.heads)
    if (h.format == format && (!best || dist(h) < dist(*best)))
      best = &h;
  if (!best)
    return;
  const double busy = std::max<double>(1, std::min<double>(cores, double((m + 63) / 64)));
  e.decodeGs = tunedDecodeRate(best->rates);
  e.variant = best->variant;
  e.measured = true;
  e.computeUs = double(m) * double(k) / (e.decodeGs * 1e3 * busy);
  e.decodeUs = e.score = std::max(e.memoryUs, e.computeUs);
  e.tunedBy = t.path;
}

} // namespace tern::compiler
