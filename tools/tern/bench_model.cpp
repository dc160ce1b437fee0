// `tern bench MODEL` helpers: the bytes one decode step reads and the
// --profile report (time per op kind, exec::OpProfile).
#include <algorithm>

#include "fmt/format.h"
#include "tools/tern/commands.h"

namespace tern::cli {

DecodeBytes decodeBytesPerToken(const exec::ArtifactModel &m, uint64_t nPrompt, uint64_t nGen) {
  DecodeBytes b;
  const model::ModelConfig &c = m.config();
  b.weights = double(m.artifact().weights().size());
  // An embedding table that is not also the head (untied, or tied but the
  // head packed separately as q8) is read one row per token, not whole.
  if (!c.tiedOutput || m.options().q8Head) {
    const nlohmann::json &meta = m.artifact().metadata();
    auto w = meta.find("weights");
    if (w != meta.end() && w->is_object())
      if (auto ts = w->find("tensors"); ts != w->end() && ts->is_array())
        for (const nlohmann::json &t : *ts)
          if (t.value("name", "") == "token_embd.weight" && c.nVocab > 0) {
            const double bytes = double(t.value("bytes", int64_t(0)));
            b.weights += bytes / c.nVocab - bytes;
            b.embedRowOnly = true;
          }
  }
  // ternc --decode-layout: a matrix packed twice is read in its decode copy
  // alone by a one-token step; its main copy (the record's packed_bytes) is
  // not read.
  if (auto ks = m.artifact().metadata().find("kernels");
      ks != m.artifact().metadata().end() && ks->is_array())
    for (const nlohmann::json &k : *ks)
      if (auto d = k.find("decode"); d != k.end() && d->is_object() && d->value("below", 0) > 1)
        b.weights -= double(k.value("packed_bytes", int64_t(0)));
  // Attention reads K and V (of the artifact's KV type: f16 or f32) of every
  // position up to the new one, in every layer: the mean over the decode
  // steps at positions nPrompt .. nPrompt + nGen - 1.
  const double meanPositions = double(nPrompt) + double(nGen + 1) / 2.0;
  b.kv = meanPositions * 2.0 * c.kvDim() * model::kvTypeBytes(m.options().kvType) * c.nLayer;
  b.total = b.weights + b.kv;
  return b;
}

namespace {
double ms(uint64_t ns) { return double(ns) / 1e6; }
} // namespace

nlohmann::ordered_json profileJson(const exec::OpProfile &p, uint64_t tokens) {
  nlohmann::ordered_json j;
  j["tokens"] = tokens;
  j["forward_calls"] = p.forwardCalls();
  j["wall_ms"] = ms(p.forwardNs());
  nlohmann::ordered_json ops = nlohmann::ordered_json::object();
  for (int k = 0; k < exec::OpProfile::kOpKinds; ++k) {
    const exec::OpProfile::Entry &e = p.ops()[size_t(k)];
    ops[exec::OpProfile::name(k)] = {
        {"ms", ms(e.ns)}, {"calls", e.calls}, {"wait_ms", ms(e.waitNs)}};
  }
  j["ops"] = ops;
  j["ops_ms"] = ms(p.opsNs());
  j["other_ms"] = ms(p.otherNs());
  j["wait_ms"] = ms(p.waitNs());
  return j;
}

void printProfile(const exec::OpProfile &p, const char *phase, uint64_t tokens, bool perToken,
                  std::ostream &out) {
  const double div = perToken && tokens ? double(tokens) : 1.0;
  const double wall = ms(p.forwardNs()) / div;
  out << fmt::format("profile, {}: {} tokens in {} forward calls, {:.3f} ms{}\n", phase, tokens,
                     p.forwardCalls(), wall, perToken ? " per token" : "");
  auto row = [&](const char *name, uint64_t ns, uint64_t calls, uint64_t waitNs) {
    const double v = ms(ns) / div;
    out << fmt::format("  {:<16} {:>10.3f} ms {:>5.1f}%", name, v,
                       wall > 0 ? 100.0 * v / wall : 0.0);
    if (calls)
      out << fmt::format("  ({} calls", calls);
    if (calls && waitNs)
      out << fmt::format(", {:.3f} ms waiting", ms(waitNs) / div);
    if (calls)
      out << ")";
    out << "\n";
  };
  for (int k = 0; k < exec::OpProfile::kOpKinds; ++k)
    if (const exec::OpProfile::Entry &e = p.ops()[size_t(k)]; e.calls)
      row(exec::OpProfile::name(k), e.ns, e.calls, e.waitNs);
  row("other (glue)", p.otherNs(), 0, 0);
  const double wait = ms(p.waitNs()) / div;
  out << fmt::format("  waiting for workers (part of the ops above): {:.3f} ms {:.1f}%\n", wait,
                     wall > 0 ? 100.0 * wait / wall : 0.0);
}

} // namespace tern::cli
