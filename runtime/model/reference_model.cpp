#include "runtime/model/reference_model.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <set>

#include "fmt/format.h"

namespace tern::model {

namespace {

class ReferenceSession final : public Session {
public:
  ReferenceSession(const ReferenceModel *owner, std::shared_ptr<KvPool> pool)
      : owner(owner), kv(std::move(pool)) {}
  uint64_t position() const override { return pos; }

  const ReferenceModel *owner;
  KvSession kv;
  uint64_t pos = 0;
};

} // namespace

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
  m->file_ = std::move(file);
  m->options_ = options;
  ModelOptions &o = m->options_;
  if (o.contextLength == 0)
    o.contextLength = m->config_.nCtxTrain ? std::min<uint32_t>(m->config_.nCtxTrain, 4096) : 4096;
  if (o.pageSize == 0)
    return absl::InvalidArgumentError("KV page size must be positive");
  KvPoolOptions po;
  po.nLayer = m->config_.nLayer;
  po.kvDim = m->config_.kvDim();
  po.pageSize = o.pageSize;
  const uint64_t pagesPerContext =
      uint64_t(o.contextLength + o.pageSize - 1) / o.pageSize * m->config_.nLayer;
  if (o.kvPages == 0) {
    if (pagesPerContext > UINT32_MAX)
      return absl::InvalidArgumentError(
          fmt::format("context length {} needs too many KV pages", o.contextLength));
    o.kvPages = static_cast<uint32_t>(pagesPerContext);
  }
  po.numPages = o.kvPages;
  absl::StatusOr<std::shared_ptr<KvPool>> pool = KvPool::create(po);
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
  return fmt::format("reference {} ({} layers, hidden {}, heads {}/{}, ffn {} {}, vocab {}), "
                     "weights {}, act-quant {}, {} threads, ctx {}, KV {} pages x {} "
                     "positions",
                     config_.arch, config_.nLayer, config_.nEmbd, config_.nHead, config_.nHeadKv,
                     config_.nFf, ffnActivationName(config_.ffnAct), config_.nVocab, s,
                     actQuantName(options_.actQuant), threads_->size(), options_.contextLength,
                     options_.kvPages, options_.pageSize);
}

absl::StatusOr<std::unique_ptr<Session>> ReferenceModel::newSession() {
  return std::unique_ptr<Session>(new ReferenceSession(this, pool_));
}

absl::Status ReferenceModel::decode(Session &session, std::span<const int32_t> tokens,
                                    std::span<float> logits) {
  auto *s = dynamic_cast<ReferenceSession *>(&session);
  if (!s || s->owner != this)
    return absl::InvalidArgumentError("session does not belong to this model");
  const ModelConfig &c = config_;
  if (tokens.empty())
    return absl::InvalidArgumentError("decode: no tokens to feed");
  if (logits.size() != c.nVocab)
    return absl::InvalidArgumentError(fmt::format(
        "decode: logits buffer holds {} values, vocabulary is {}", logits.size(), c.nVocab));
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || uint32_t(tokens[i]) >= c.nVocab)
      return absl::InvalidArgumentError(
          fmt::format("token id {} (input position {}) is outside the vocabulary [0, {})",
                      tokens[i], i, c.nVocab));
  const uint64_t pos0 = s->pos;
  const uint32_t T = static_cast<uint32_t>(tokens.size());
  if (pos0 + T > options_.contextLength)
    return contextFullError(pos0, T, options_.contextLength);
  if (absl::Status st = s->kv.reserve(pos0 + T); !st.ok())
    return st;

  const uint32_t E = c.nEmbd, Q = c.qDim(), KV = c.kvDim(), F = c.nFf, D = c.headDim;
  const uint32_t group = c.nHead / c.nHeadKv;
  ThreadPool &pool = *threads_;

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
      std::copy_n(&k[uint64_t(t) * KV], KV, s->kv.k(li, pos));
      std::copy_n(&v[uint64_t(t) * KV], KV, s->kv.v(li, pos));
      if (q8k) {
        f16(s->kv.k(li, pos), KV);
        f16(s->kv.v(li, pos), KV);
      }
    }
    // One (token, head) pair per work item; each reads the cache through
    // the session's page table up to its own position (causal).
    pool.parallelFor(uint64_t(T) * c.nHead, [&](size_t i0, size_t i1) {
      std::vector<float> scores;
      for (size_t i = i0; i < i1; ++i) {
        const uint32_t t = static_cast<uint32_t>(i / c.nHead);
        const uint32_t hh = static_cast<uint32_t>(i % c.nHead);
        const uint32_t kvh = hh / group;
        const uint64_t n = pos0 + t + 1;
        const float *qv = &q[uint64_t(t) * Q + hh * D];
        float *out = &att[uint64_t(t) * Q + hh * D];
        if (faOneChunk) {
          flashAttnOneRowF16(
              qv, D, n, attScale, [&](uint64_t p) { return s->kv.k(li, p) + kvh * D; },
              [&](uint64_t p) { return s->kv.v(li, p) + kvh * D; }, out);
          continue;
        }
        scores.resize(n);
        float mx = -INFINITY;
        for (uint64_t p = 0; p < n; ++p) {
          const float *kp = s->kv.k(li, p) + kvh * D;
          float dot = 0.0f;
          for (uint32_t d = 0; d < D; ++d)
            dot += qv[d] * kp[d];
          scores[p] = dot * attScale;
          mx = std::max(mx, scores[p]);
        }
        double sum = 0.0;
        for (uint64_t p = 0; p < n; ++p) {
          scores[p] = std::exp(scores[p] - mx);
          sum += scores[p];
        }
        const float inv = static_cast<float>(1.0 / sum);
        std::fill_n(out, D, 0.0f);
        for (uint64_t p = 0; p < n; ++p) {
          const float *vp = s->kv.v(li, p) + kvh * D;
          const float w = scores[p] * inv;
          for (uint32_t d = 0; d < D; ++d)
            out[d] += w * vp[d];
        }
      }
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

  std::vector<float> last(E);
  norm(&x[uint64_t(T - 1) * E], weights_.outputNorm.data(), E, c.rmsEps, last.data());
  if (q8k)
    f16(last.data(), E);
  lmHead(weights_.output, last.data(), logits.data(), pool);
  s->pos = pos0 + T;
  return absl::OkStatus();
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
