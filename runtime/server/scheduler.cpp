#include "runtime/server/scheduler.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include <stdexcept>

#include "fmt/format.h"
#include "runtime/capi/bridge.h"

namespace tern::server {

const char *finishReasonName(FinishReason r) {
  switch (r) {
  case FinishReason::Stop:
    return "stop";
  case FinishReason::Length:
    return "length";
  case FinishReason::Cancelled:
    return "cancelled";
  case FinishReason::Error:
    return "error";
  case FinishReason::None:
    break;
  }
  return "";
}

// ---------------------------------------------------------------------------
// Handle

Output Handle::take(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (delivered_)
    return {};
  cv_.wait_for(lock, timeout, [&] { return !pending_.text.empty() || pending_.finished; });
  Output out = std::move(pending_);
  pending_ = Output();
  pending_.promptTokens = out.promptTokens;
  pending_.completionTokens = out.completionTokens;
  if (out.finished)
    delivered_ = true;
  return out;
}

void Handle::cancel() { cancelled_.store(true); }

void Handle::publish(std::string text, std::vector<TokenLogprob> lp) {
  {
    std::lock_guard lock(mu_);
    pending_.text += text;
    for (TokenLogprob &t : lp)
      pending_.logprobs.push_back(std::move(t));
  }
  cv_.notify_all();
}

void Handle::finish(FinishReason reason, absl::Status error) {
  {
    std::lock_guard lock(mu_);
    pending_.finished = true;
    pending_.reason = reason;
    pending_.error = std::move(error);
  }
  cv_.notify_all();
}

// ---------------------------------------------------------------------------
// Scheduler

namespace {

// The C API's answer as a status: its code kept, its message without the
// entry point's name (capi::toStatus).
absl::Status apiStatus(tern_status code) { return capi::lastStatus(code); }

} // namespace

struct Scheduler::Active {
  std::shared_ptr<Handle> h;
  Owned<tern_session> session;
  Owned<tern_sampler> sampler;
  Owned<tern_detokenizer> dec;
  Owned<tern_stop_matcher> stops;
  size_t fed = 0;    // prompt tokens fed
  int32_t next = -1; // the sampled token to feed next
  int32_t generated = 0;
};

Scheduler::Scheduler(tern_model *model, SchedulerOptions opts) : model_(model), opts_(opts) {
  start();
}

Scheduler::Scheduler(model::Model &model, const tokenizer::Tokenizer & /*the model's*/,
                     SchedulerOptions opts)
    : opts_(opts) {
  tern_model *h = nullptr;
  if (tern_status st = capi::borrowModel(model, &h); st != TERN_OK)
    throw std::runtime_error(std::string(apiStatus(st).message()));
  borrowed_.reset(h);
  model_ = h;
  start();
}

void Scheduler::start() {
  opts_.maxActive = std::max<uint32_t>(1, opts_.maxActive);
  opts_.prefillChunk = std::max<uint32_t>(1, opts_.prefillChunk);
  tern_model_info info;
  tern_kv_usage u;
  if (tern_model_get_info(model_, &info) != TERN_OK || tern_model_kv_usage(model_, &u) != TERN_OK)
    throw std::runtime_error(fmt::format("tern serve: scheduler: {}", tern_last_error()));
  nVocab_ = info.n_vocab;
  ctx_ = info.n_ctx;
  totalBlocks_ = u.total_blocks;
  pageSize_ = std::max<uint32_t>(1, u.page_size);
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() { shutdown(); }

void Scheduler::shutdown() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    for (auto &h : queue_) {
      h->sampler_.reset();
      h->finish(FinishReason::Cancelled, absl::UnavailableError("the server is shutting down"));
    }
    queue_.clear();
  }
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

uint32_t Scheduler::contextLength() const { return ctx_; }

absl::StatusOr<std::shared_ptr<Handle>> Scheduler::submit(Work work) {
  const uint32_t ctx = contextLength();
  const int32_t nVocab = nVocab_;
  if (work.prompt.empty())
    return absl::InvalidArgumentError("the prompt is empty (0 tokens)");
  for (size_t i = 0; i < work.prompt.size(); ++i)
    if (work.prompt[i] < 0 || work.prompt[i] >= nVocab)
      return absl::InvalidArgumentError(
          fmt::format("prompt token {} (position {}) is outside the vocabulary [0, {})",
                      work.prompt[i], i, nVocab));
  if (work.prompt.size() >= ctx)
    return absl::InvalidArgumentError(
        fmt::format("the prompt is {} tokens; the context holds {} (the server's -c), leaving no "
                    "room to generate",
                    work.prompt.size(), ctx));
  const int32_t room = int32_t(ctx - work.prompt.size());
  work.maxTokens = work.maxTokens < 0 ? room : std::min(work.maxTokens, room);
  // The request's sampler, made now so that bad parameters are refused here.
  std::vector<tern_logit_bias> bias;
  // The request's seed as parsed (TERN_SEED_RANDOM when none was sent:
  // server.cpp).
  const tern_sampler_params sp =
      capi::samplerParams(work.sampler, work.sampler.seed, work.ignoreEos, bias);
  tern_sampler *smp = nullptr;
  if (tern_status st = tern_sampler_create(model_, &sp, &smp); st != TERN_OK)
    return apiStatus(st);
  Owned<tern_sampler> sampler(smp);
  const uint64_t positions = work.prompt.size() + uint64_t(work.maxTokens);
  const uint32_t need = uint32_t((positions + pageSize_ - 1) / pageSize_);
  if (need > totalBlocks_)
    return absl::UnavailableError(fmt::format(
        "the request needs {} KV pages ({} positions) but the pool holds {} (raise --kv-mem, or "
        "lower max_tokens)",
        need, positions, totalBlocks_));
  auto h = std::make_shared<Handle>();
  h->work_ = std::move(work);
  h->sampler_ = std::move(sampler);
  h->needBlocks_ = need;
  h->pending_.promptTokens = int32_t(h->work_.prompt.size());
  {
    std::lock_guard lock(mu_);
    if (stop_)
      return absl::UnavailableError("the server is shutting down");
    if (stats_.active + queue_.size() >= uint64_t(opts_.maxActive) + opts_.maxQueue)
      return absl::ResourceExhaustedError(
          fmt::format("the server is busy: {} requests running and {} queued (--max-queue {})",
                      stats_.active, queue_.size(), opts_.maxQueue));
    queue_.push_back(h);
    stats_.queued = uint32_t(queue_.size());
  }
  cv_.notify_all();
  return h;
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard lock(mu_);
  SchedulerStats s = stats_;
  const auto now = std::chrono::steady_clock::now();
  uint64_t n = 0;
  for (const auto &[t, k] : recent_)
    if (now - t <= std::chrono::seconds(5))
      n += k;
  s.tokensPerSecond = double(n) / 5.0;
  return s;
}

void Scheduler::loop() {
  std::vector<std::unique_ptr<Active>> active;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      // Requests cancelled while queued leave without running.
      for (auto it = queue_.begin(); it != queue_.end();)
        if ((*it)->cancelled()) {
          (*it)->sampler_.reset();
          (*it)->finish(FinishReason::Cancelled, absl::CancelledError("cancelled"));
          ++stats_.cancelled;
          it = queue_.erase(it);
        } else {
          ++it;
        }
      // Admission: in order, while a slot and the request's pages are free.
      while (!stop_ && !queue_.empty() && active.size() < opts_.maxActive &&
             reservedBlocks_ + queue_.front()->needBlocks_ <= totalBlocks_) {
        std::shared_ptr<Handle> h = std::move(queue_.front());
        queue_.pop_front();
        auto a = std::make_unique<Active>();
        a->sampler = std::move(h->sampler_);
        tern_session *s = nullptr;
        tern_detokenizer *d = nullptr;
        tern_stop_matcher *m = nullptr;
        std::vector<const char *> stops;
        for (const std::string &x : h->work_.stop)
          stops.push_back(x.c_str());
        tern_status st = tern_session_create(model_, &s);
        a->session.reset(s);
        if (st == TERN_OK) {
          st = tern_detokenizer_create(model_, 0, &d);
          a->dec.reset(d);
        }
        if (st == TERN_OK) {
          st = tern_stop_matcher_create(stops.data(), stops.size(), &m);
          a->stops.reset(m);
        }
        // llama.cpp's server lets the penalties see the prompt.
        for (size_t i = 0; st == TERN_OK && i < h->work_.prompt.size(); ++i)
          st = tern_sampler_accept(a->sampler.get(), h->work_.prompt[i]);
        if (st != TERN_OK) {
          h->finish(FinishReason::Error, apiStatus(st));
          continue;
        }
        reservedBlocks_ += h->needBlocks_;
        a->h = std::move(h);
        active.push_back(std::move(a));
      }
      stats_.queued = uint32_t(queue_.size());
      stats_.active = uint32_t(active.size());
      if (stop_)
        break;
      if (active.empty()) {
        cv_.wait_for(lock, std::chrono::milliseconds(200));
        continue;
      }
    }
    step(active);
  }
  for (auto &a : active) {
    a->session.reset();
    a->sampler.reset();
    a->h->finish(FinishReason::Cancelled, absl::UnavailableError("the server is shutting down"));
  }
}

namespace {

// log-softmax of the chosen token and the best `top` alternatives.
TokenLogprob logprobOf(std::span<const float> logits, int32_t token, int32_t top) {
  float mx = -INFINITY;
  for (float x : logits)
    mx = std::max(mx, x);
  double sum = 0;
  for (float x : logits)
    sum += std::exp(double(x) - mx);
  const double lse = double(mx) + std::log(sum);
  TokenLogprob t;
  t.token = token;
  t.logprob = float(double(logits[size_t(token)]) - lse);
  if (top > 0) {
    std::vector<int32_t> ids(logits.size());
    for (size_t i = 0; i < ids.size(); ++i)
      ids[i] = int32_t(i);
    const size_t k = std::min<size_t>(size_t(top), ids.size());
    std::partial_sort(ids.begin(), ids.begin() + ptrdiff_t(k), ids.end(),
                      [&](int32_t a, int32_t b) {
                        return logits[size_t(a)] > logits[size_t(b)] ||
                               (logits[size_t(a)] == logits[size_t(b)] && a < b);
                      });
    for (size_t i = 0; i < k; ++i)
      t.top.emplace_back(ids[i], float(double(logits[size_t(ids[i])]) - lse));
  }
  return t;
}

// The stop matcher fed `text`: what is safe to show is appended to *out.
tern_status stopPush(tern_stop_matcher *m, const char *text, size_t len, std::string *out,
                     bool *stopped) {
  const char *o = nullptr;
  size_t n = 0;
  int st = 0;
  if (tern_status s = tern_stop_matcher_push(m, text, len, &o, &n, &st); s != TERN_OK)
    return s;
  out->append(o, n);
  *stopped = st != 0;
  return TERN_OK;
}

} // namespace

void Scheduler::step(std::vector<std::unique_ptr<Active>> &active) {
  // Cancelled requests leave first: their sessions (and pages) go now.
  uint32_t released = 0;
  std::vector<std::shared_ptr<Handle>> gone;
  for (auto it = active.begin(); it != active.end();) {
    if ((*it)->h->cancelled()) {
      (*it)->session.reset();
      released += (*it)->h->needBlocks_;
      gone.push_back((*it)->h);
      it = active.erase(it);
    } else {
      ++it;
    }
  }
  if (!gone.empty()) {
    {
      std::lock_guard lock(mu_);
      reservedBlocks_ -= released;
      stats_.cancelled += gone.size();
      stats_.active = uint32_t(active.size());
    }
    for (auto &h : gone)
      h->finish(FinishReason::Cancelled, absl::CancelledError("cancelled"));
  }
  if (active.empty())
    return;

  // One forward call: a prompt chunk or the last sampled token per request.
  std::vector<tern_batch_item> items;
  std::vector<Active *> owner;
  std::vector<size_t> prefill; // prompt tokens in the item (0: decode)
  uint32_t budget = opts_.prefillChunk;
  for (auto &a : active) {
    const std::vector<int32_t> &prompt = a->h->work_.prompt;
    tern_batch_item it{};
    it.session = a->session.get();
    size_t n = 0;
    if (a->fed < prompt.size()) {
      const size_t left = prompt.size() - a->fed;
      // A fresh session takes its whole prompt in one go when it fits a
      // step, so the prefix cache sees all of it.
      if (a->fed == 0 && left <= opts_.prefillChunk && left > budget)
        continue;
      n = std::min<size_t>(left, budget);
      if (n == 0)
        continue;
      budget -= uint32_t(n);
      it.tokens = prompt.data() + a->fed;
      it.n_tokens = n;
      it.want_logits = a->fed + n == prompt.size() ? 1 : 0;
    } else {
      it.tokens = &a->next;
      it.n_tokens = 1;
      it.want_logits = 1;
    }
    items.push_back(it);
    owner.push_back(a.get());
    prefill.push_back(n);
  }
  if (items.empty())
    return;
  tern_forward(model_, items.data(), items.size());
  // Each item's result, read before any other call can reuse its message.
  std::vector<absl::Status> results;
  results.reserve(items.size());
  for (const tern_batch_item &it : items)
    results.push_back(capi::toStatus(it.status, it.message ? it.message : ""));

  uint64_t promptTokens = 0, generated = 0;
  std::vector<Active *> done;
  // Handles are told they finished after the pages are freed and the
  // counters updated, so what a client sees next (/metrics) already shows it.
  struct Ending {
    std::shared_ptr<Handle> h;
    FinishReason reason;
    absl::Status status;
  };
  std::vector<Ending> endings;
  auto fail = [&](Active &a, absl::Status s) {
    endings.push_back({a.h, FinishReason::Error, std::move(s)});
    done.push_back(&a);
  };
  for (size_t i = 0; i < items.size(); ++i) {
    Active &a = *owner[i];
    Handle &h = *a.h;
    if (!results[i].ok()) {
      fail(a, results[i]);
      continue;
    }
    if (prefill[i]) {
      a.fed += prefill[i];
      promptTokens += prefill[i];
      if (a.fed < h.work_.prompt.size())
        continue;
    }
    const float *logits = nullptr;
    size_t nLogits = 0;
    int32_t tok = -1;
    if (tern_status st = tern_session_logits(a.session.get(), &logits, &nLogits); st != TERN_OK) {
      fail(a, apiStatus(st));
      continue;
    }
    if (tern_status st = tern_sampler_sample(a.sampler.get(), logits, nLogits, &tok);
        st != TERN_OK) {
      fail(a, apiStatus(st));
      continue;
    }
    tern_sampler_accept(a.sampler.get(), tok); // a valid id: it was just drawn
    ++a.generated;
    ++generated;
    {
      std::lock_guard lock(h.mu_);
      h.pending_.completionTokens = a.generated;
    }
    const bool eog = std::find(h.work_.stopTokens.begin(), h.work_.stopTokens.end(), tok) !=
                     h.work_.stopTokens.end();
    std::vector<TokenLogprob> lp;
    if (h.work_.topLogprobs >= 0 && !eog)
      lp.push_back(logprobOf(std::span<const float>(logits, nLogits), tok, h.work_.topLogprobs));
    std::string text;
    bool stopped = false;
    tern_status st = TERN_OK;
    const char *piece = nullptr;
    size_t pieceLen = 0;
    if (!eog) {
      st = tern_detokenizer_push(a.dec.get(), tok, &piece, &pieceLen);
      if (st == TERN_OK)
        st = stopPush(a.stops.get(), piece, pieceLen, &text, &stopped);
    }
    const bool length = a.generated >= h.work_.maxTokens;
    if (st == TERN_OK && (eog || length) && !stopped) {
      // End of output: release what the decoder and the stop matcher hold.
      st = tern_detokenizer_flush(a.dec.get(), &piece, &pieceLen);
      if (st == TERN_OK)
        st = stopPush(a.stops.get(), piece, pieceLen, &text, &stopped);
      if (st == TERN_OK && !stopped) {
        const char *rest = nullptr;
        size_t restLen = 0;
        st = tern_stop_matcher_flush(a.stops.get(), &rest, &restLen);
        if (st == TERN_OK)
          text.append(rest, restLen);
      }
    }
    if (st != TERN_OK) {
      fail(a, apiStatus(st));
      continue;
    }
    if (!text.empty() || !lp.empty())
      h.publish(std::move(text), std::move(lp));
    if (eog || stopped || length) {
      endings.push_back(
          {a.h, eog || stopped ? FinishReason::Stop : FinishReason::Length, absl::OkStatus()});
      done.push_back(&a);
    } else {
      a.next = tok;
    }
  }

  uint32_t freed = 0;
  for (Active *d : done) {
    d->session.reset(); // frees its pages now
    freed += d->h->needBlocks_;
  }
  std::erase_if(active, [&](const std::unique_ptr<Active> &a) {
    return std::find(done.begin(), done.end(), a.get()) != done.end();
  });
  {
    std::lock_guard lock(mu_);
    reservedBlocks_ -= freed;
    stats_.promptTokens += promptTokens;
    stats_.generatedTokens += generated;
    stats_.finished += done.size();
    stats_.active = uint32_t(active.size());
    ++stats_.steps;
    const auto now = std::chrono::steady_clock::now();
    if (generated)
      recent_.emplace_back(now, uint32_t(generated));
    while (!recent_.empty() && now - recent_.front().first > std::chrono::seconds(5))
      recent_.pop_front();
  }
  for (Ending &e : endings)
    e.h->finish(e.reason, std::move(e.status));
}

} // namespace tern::server
