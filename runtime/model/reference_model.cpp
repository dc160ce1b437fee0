#include "runtime/model/reference_model.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <set>

#include "fmt/format.h"
#include "runtime/model/session.h"

namespace tern::model {

absl::StatusOr<std::unique_ptr<ReferenceModel>>
ReferenceModel::create(std::unique_ptr<gguf::File> file, const ModelOptions &options) {
  std::unique_ptr<ReferenceModel> m(new ReferenceModel());
  absl::StatusOr<ModelConfig> cfg = readModelConfig(*file);
  if (!cfg.ok())
    return cfg.status();
  m->config_ = std::move(*cfg);
  absl::StatusOr<ModelWeights> w = loadModelWeights(*file, m->config_, options.i2sLayout);
  if (!w.ok())
    return w.status();
  m->weights_ = std::move(*w);
  if (options.q8Head) // what ternc compile --head q8 packs, so compiled and reference agree
    m->weights_.output.quantizeQ8();
  m->file_ = std::move(file);
  m->options_ = options;
  ModelOptions &o = m->options_;
  if (o.contextLength == 0)
    o.contextLength = m->config_.nCtxTrain ? std::min<uint32_t>(m->config_.nCtxTrain, 4096) : 4096;
  absl::StatusOr<std::shared_ptr<KvPool>> pool =
      createModelPool(m->config_.nLayer, m->config_.kvDim(), o);
  if (!pool.ok())
    return pool.status();
  if (o.actQuant == ActQuant::Q8K)
    for (const LayerWeights &l : m->weights_.layers)
      for (const TernaryMatrix *t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.wGate, &l.wUp, &l.wDown})
        if (!bitLinearSupportsQ8K(*t))
          return absl::InvalidArgumentError(
              fmt::format("--act-quant q8k needs ternary tensors whose rows and scale "
                          "blocks are multiples of {} values; {} has {} columns in "
                          "blocks of {}",
                          kQ8KBlock, t->name, t->cols, t->blockCols()));
  m->pool_ = std::move(*pool);
  m->threads_ = std::make_unique<ThreadPool>(o.threads);
  o.threads = m->threads_->size();
  return m;
}

std::string ReferenceModel::describe() const {
  std::set<std::string> storages;
  for (const LayerWeights &l : weights_.layers)
    for (const TernaryMatrix *t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.wGate, &l.wUp, &l.wDown})
      storages.insert(t->storage);
  std::string s;
  for (const std::string &x : storages)
    s += (s.empty() ? "" : ",") + x;
  return fmt::format(
      "reference {} ({} layers, hidden {}, heads {}/{}, ffn {} {}, vocab {}), "
      "weights {}, act-quant {}, head {}, {} threads, ctx {}, KV {} pages x {} "
      "positions ({})",
      config_.arch, config_.nLayer, config_.nEmbd, config_.nHead, config_.nHeadKv, config_.nFf,
      ffnActivationName(config_.ffnAct), config_.nVocab, s, actQuantName(options_.actQuant),
      options_.q8Head ? "q8" : (weights_.output.isF16 ? "f16" : "f32"), threads_->size(),
      options_.contextLength, options_.kvPages, options_.pageSize, kvTypeName(options_.kvType));
}

absl::StatusOr<std::unique_ptr<Session>> ReferenceModel::newSession() {
  return std::unique_ptr<Session>(new PagedSession(this, pool_));
}

absl::Status ReferenceModel::truncate(Session &session, uint64_t positions) {
  return truncateSession(*this, session, positions);
}

absl::StatusOr<std::unique_ptr<Session>> ReferenceModel::fork(const Session &session) {
  std::unique_ptr<Session> s(new PagedSession(this, pool_));
  if (absl::Status st = forkInto(*this, session, *s); !st.ok())
    return st;
  return s;
}

KvUsage ReferenceModel::kvUsage() const { return kvUsageOf(*pool_); }

absl::Status ReferenceModel::decode(Session &session, std::span<const int32_t> tokens,
                                    std::span<float> logits) {
  if (logits.size() != config_.nVocab)
    return absl::InvalidArgumentError(fmt::format(
        "decode: logits buffer holds {} values, vocabulary is {}", logits.size(), config_.nVocab));
  BatchItem item{&session, tokens, logits, {}};
  if (absl::Status st = forward(std::span<BatchItem>(&item, 1)); !st.ok())
    return st;
  return item.status;
}

absl::Status ReferenceModel::forward(std::span<BatchItem> items) {
  absl::StatusOr<std::vector<PreparedItem>> work =
      prepareBatch(*this, items, {config_.nVocab, options_.contextLength, options_.prefixCache});
  if (!work.ok())
    return work.status();
  std::lock_guard<std::mutex> lock(runMutex_);
  for (const PreparedItem &p : *work) {
    run(p.session->kv, p.from, p.feed, p.logits);
    commitItem(p, items, options_.prefixCache);
  }
  return absl::OkStatus();
}

void ReferenceModel::run(KvSession &kv, uint64_t pos0, std::span<const int32_t> tokens,
                         std::span<float> logits) {
  const ModelConfig &c = config_;
  const uint32_t T = static_cast<uint32_t>(tokens.size());
  const uint32_t E = c.nEmbd, Q = c.qDim(), KV = c.kvDim(), F = c.nFf, D = c.headDim;
  const uint32_t group = c.nHead / c.nHeadKv;
  ThreadPool &pool = *threads_;
  ThreadPool::HotScope hot(pool); // workers spin between the ops of this call

  std::vector<float> x(uint64_t(T) * E), xn(uint64_t(T) * E);
  std::vector<float> q(uint64_t(T) * Q), k(uint64_t(T) * KV), v(uint64_t(T) * KV);
  std::vector<float> att(uint64_t(T) * Q), attn(uint64_t(T) * Q), o(uint64_t(T) * E);
  std::vector<float> g(uint64_t(T) * F), u(uint64_t(T) * F), h(uint64_t(T) * F);
  BitLinearInput in;

  for (uint32_t t = 0; t < T; ++t)
    weights_.tokEmbd.row(static_cast<uint32_t>(tokens[t]), x.data() + uint64_t(t) * E);

  const float attScale = 1.0f / std::sqrt(static_cast<float>(D));
  // Q8K (llama.cpp-compatible, for cross-checking) also follows llama.cpp's
  // CPU arithmetic around the ternary matmuls: K and V cached as f16, its
  // flash attention (one-row path, f16 accumulator) for batches under
  // kFlashTileQ rows, ggml's float rope and rms norm, the lm_head's input
  // rounded to f16. docs/reference-forward.md, "act-quant q8k".
  const bool q8k = options_.actQuant == ActQuant::Q8K;
  const bool faOneChunk = q8k && T < kFlashTileQ;
  // --kv-type f16: K/V stored as IEEE halves (tern_uk_attention_gqa_f16_ref's
  // cache, bit for bit); the arithmetic is the f32 cache's on the rounded
  // values.
  const bool f16Kv = options_.kvType == KvType::F16;
  auto norm = q8k ? rmsNormGgml : rmsNorm;
  auto rope = q8k ? ropeNeoxGgml : ropeNeox;
  auto f16 = [](float *p, uint64_t n) {
    for (uint64_t i = 0; i < n; ++i)
      p[i] = roundToF16(p[i]);
  };
  for (uint32_t li = 0; li < c.nLayer; ++li) {
    const LayerWeights &L = weights_.layers[li];
    // Attention block.
    for (uint32_t t = 0; t < T; ++t)
      norm(&x[uint64_t(t) * E], L.attnNorm.data(), E, c.rmsEps, &xn[uint64_t(t) * E]);
    quantizeActivations(xn.data(), T, E, options_.actQuant, in);
    bitLinear(L.wq, in, q.data(), pool);
    bitLinear(L.wk, in, k.data(), pool);
    bitLinear(L.wv, in, v.data(), pool);
    for (uint32_t t = 0; t < T; ++t) {
      const uint64_t pos = pos0 + t;
      for (uint32_t hh = 0; hh < c.nHead; ++hh)
        rope(&q[uint64_t(t) * Q + hh * D], c.nRot, pos, c.ropeFreqBase);
      for (uint32_t hh = 0; hh < c.nHeadKv; ++hh)
        rope(&k[uint64_t(t) * KV + hh * D], c.nRot, pos, c.ropeFreqBase);
      if (f16Kv) { // rounded to nearest even, as tern_uk_attention_gqa_f16_* writes them
        uint16_t *kd = kv.k<uint16_t>(li, pos), *vd = kv.v<uint16_t>(li, pos);
        for (uint32_t i = 0; i < KV; ++i) {
          kd[i] = half::f32_to_f16(k[uint64_t(t) * KV + i]);
          vd[i] = half::f32_to_f16(v[uint64_t(t) * KV + i]);
        }
        continue;
      }
      std::copy_n(&k[uint64_t(t) * KV], KV, kv.k(li, pos));
      std::copy_n(&v[uint64_t(t) * KV], KV, kv.v(li, pos));
      if (q8k) {
        f16(kv.k(li, pos), KV);
        f16(kv.v(li, pos), KV);
      }
    }
    // One (token, head) pair per work item; each reads the cache (elements
    // of type E) through the session's page table up to its own position
    // (causal).
    auto attend = [&]<class E>(size_t i0, size_t i1) {
      std::vector<float> scores;
      for (size_t i = i0; i < i1; ++i) {
        const uint32_t t = static_cast<uint32_t>(i / c.nHead);
        const uint32_t hh = static_cast<uint32_t>(i % c.nHead);
        const uint32_t kvh = hh / group;
        const uint64_t n = pos0 + t + 1;
        const float *qv = &q[uint64_t(t) * Q + hh * D];
        float *out = &att[uint64_t(t) * Q + hh * D];
        auto kAt = [&](uint64_t p) { return kv.k<E>(li, p) + kvh * D; };
        auto vAt = [&](uint64_t p) { return kv.v<E>(li, p) + kvh * D; };
        if (faOneChunk)
          flashAttnOneRowF16(qv, D, n, attScale, kAt, vAt, out);
        else
          attentionOneRow(qv, D, n, attScale, kAt, vAt, scores, out);
      }
    };
    pool.parallelFor(uint64_t(T) * c.nHead, [&](size_t i0, size_t i1) {
      if (f16Kv)
        attend.template operator()<uint16_t>(i0, i1);
      else
        attend.template operator()<float>(i0, i1);
    });
    for (uint32_t t = 0; t < T; ++t)
      norm(&att[uint64_t(t) * Q], L.attnSubNorm.data(), Q, c.rmsEps, &attn[uint64_t(t) * Q]);
    quantizeActivations(attn.data(), T, Q, options_.actQuant, in);
    bitLinear(L.wo, in, o.data(), pool);
    for (uint64_t i = 0; i < uint64_t(T) * E; ++i)
      x[i] += o[i];

    // FFN block.
    for (uint32_t t = 0; t < T; ++t)
      norm(&x[uint64_t(t) * E], L.ffnNorm.data(), E, c.rmsEps, &xn[uint64_t(t) * E]);
    quantizeActivations(xn.data(), T, E, options_.actQuant, in);
    bitLinear(L.wGate, in, g.data(), pool);
    bitLinear(L.wUp, in, u.data(), pool);
    for (uint32_t t = 0; t < T; ++t) {
      gatedActivation(&g[uint64_t(t) * F], &u[uint64_t(t) * F], F, c.ffnAct, &h[uint64_t(t) * F]);
      norm(&h[uint64_t(t) * F], L.ffnSubNorm.data(), F, c.rmsEps, &g[uint64_t(t) * F]);
    }
    quantizeActivations(g.data(), T, F, options_.actQuant, in);
    bitLinear(L.wDown, in, o.data(), pool);
    for (uint64_t i = 0; i < uint64_t(T) * E; ++i)
      x[i] += o[i];
  }

  if (logits.empty())
    return;
  std::vector<float> last(E);
  norm(&x[uint64_t(T - 1) * E], weights_.outputNorm.data(), E, c.rmsEps, last.data());
  if (q8k)
    f16(last.data(), E);
  lmHead(weights_.output, last.data(), logits.data(), pool);
}

absl::StatusOr<std::unique_ptr<Model>> openReferenceModel(const std::string &path,
                                                          const ModelOptions &options) {
  absl::StatusOr<std::unique_ptr<gguf::File>> file = gguf::File::open(path);
  if (!file.ok())
    return file.status();
  absl::StatusOr<std::unique_ptr<ReferenceModel>> m =
      ReferenceModel::create(std::move(*file), options);
  if (!m.ok())
    return absl::Status(m.status().code(),
                        fmt::format("{}: {}", path, std::string(m.status().message())));
  return std::unique_ptr<Model>(std::move(*m));
}

} // namespace tern::model
