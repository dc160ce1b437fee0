// The scheduler of `tern serve`: one thread runs the model for every request.
// It runs on the public C API (runtime/include/tern/tern.h) only: sessions,
// tern_forward, samplers, the streaming detokenizer and stop matchers.
//
// Each step it gathers the next work of every active request -- a chunk of
// its prompt (prefill) or the one token it sampled last (decode) -- into ONE
// tern_forward call (continuous batching), then samples each request's next
// token from its own logits with its own tern_sampler (so a request's tokens
// do not depend on what else ran: the model is batch-invariant and the
// sampler state is per request). Requests join and leave between steps.
//
// Every request has its own tern_session, with a context of up to the
// model's ctx_size (-c) out of the shared KV pool; nothing divides the context
// by --parallel. Admission reserves the pages a request can use at most
// (prompt + max tokens, in pages) against the pool, so a running request
// never runs out of pages because of another; a request that does not fit
// now waits in the queue, one that could never fit is refused (Unavailable).
// A fresh session's first feed goes through the prefix cache, so a prompt
// that starts like an earlier one reuses its pages.
//
// A consumer (an HTTP handler thread) reads a request's output through its
// Handle; cancel() (client gone) drops the request at the start of the next
// step and destroys its session, which frees its pages.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/include/tern/tern.h"
#include "runtime/model/model.h"
#include "runtime/sampling/sampler.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tern::server {

// C API handles the server owns, freed by their tern_*_free.
struct ApiFree {
  void operator()(tern_model *p) const { tern_model_free(p); }
  void operator()(tern_session *p) const { tern_session_free(p); }
  void operator()(tern_sampler *p) const { tern_sampler_free(p); }
  void operator()(tern_detokenizer *p) const { tern_detokenizer_free(p); }
  void operator()(tern_stop_matcher *p) const { tern_stop_matcher_free(p); }
  void operator()(tern_chat *p) const { tern_chat_free(p); }
};
template <class T> using Owned = std::unique_ptr<T, ApiFree>;

// What a request asks the scheduler for: already tokenized.
struct Work {
  std::vector<int32_t> prompt;
  int32_t maxTokens = -1; // < 0: up to the end of the context
  // The chain's parameters (a tern_sampler_params is made of them); seed
  // UINT64_MAX (TERN_SEED_RANDOM) draws a random seed.
  sampling::SamplerParams sampler;
  bool ignoreEos = false; // ban every end-of-generation token (tern_sampler_params.ignore_eos)
  std::vector<std::string> stop;
  std::vector<int32_t> stopTokens; // end of generation (EOS/EOT); not emitted
  int32_t topLogprobs = -1;        // < 0: no logprobs; else that many alternatives per token
};

enum class FinishReason : uint8_t { None, Stop, Length, Cancelled, Error };
const char *finishReasonName(FinishReason r); // "stop", "length", ...

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top; // best alternatives, highest first
};

// Output taken from a Handle: what was produced since the last take().
struct Output {
  std::string text;                   // safe-to-show text (stop strings held back / cut)
  std::vector<TokenLogprob> logprobs; // the tokens behind `text` (when asked)
  bool finished = false;
  FinishReason reason = FinishReason::None;
  absl::Status error; // reason == Error
  int32_t promptTokens = 0, completionTokens = 0;
};

class Scheduler;

// A submitted request, shared by the scheduler and its consumer.
class Handle {
public:
  // Waits up to `timeout` for output; returns whatever arrived (maybe
  // nothing). After a take() that returned finished, nothing more comes.
  Output take(std::chrono::milliseconds timeout);
  // The consumer is gone: stop generating and free the pages.
  void cancel();
  bool cancelled() const { return cancelled_.load(); }

private:
  friend class Scheduler;
  void publish(std::string text, std::vector<TokenLogprob> lp);
  void finish(FinishReason reason, absl::Status error);

  Work work_;
  Owned<tern_sampler> sampler_; // made (and the parameters checked) by submit()
  uint32_t needBlocks_ = 0;
  std::atomic<bool> cancelled_{false};

  std::mutex mu_;
  std::condition_variable cv_;
  Output pending_; // guarded by mu_
  bool delivered_ = false;
};

struct SchedulerOptions {
  uint32_t maxActive = 1;       // requests generating at once (--parallel)
  uint32_t maxQueue = 64;       // requests waiting beyond those (--max-queue)
  uint32_t prefillChunk = 1024; // prompt tokens per step, over all requests
};

// Counters for /metrics (monotonic totals and current gauges).
struct SchedulerStats {
  uint64_t promptTokens = 0, generatedTokens = 0;
  uint64_t steps = 0, cancelled = 0, finished = 0;
  uint32_t queued = 0, active = 0;
  double tokensPerSecond = 0; // generated tokens/s over the last few seconds
};

class Scheduler {
public:
  // Runs requests on `model` (not owned: it outlives the scheduler; it needs
  // a tokenizer).
  Scheduler(tern_model *model, SchedulerOptions opts);
  // For C++ callers: the same on a C API handle that borrows `model`
  // (capi::borrowModel; the handle reads the model's own tokenizer, which
  // `tok` must be).
  Scheduler(model::Model &model, const tokenizer::Tokenizer &tok, SchedulerOptions opts);
  ~Scheduler(); // shutdown()
  Scheduler(const Scheduler &) = delete;
  Scheduler &operator=(const Scheduler &) = delete;

  // Queues a request. Errors: InvalidArgument (prompt empty or longer than
  // the context, a token outside the vocabulary, bad sampler parameters),
  // ResourceExhausted (the queue is full: retry later), Unavailable (the
  // request can never fit the KV pool).
  absl::StatusOr<std::shared_ptr<Handle>> submit(Work work);

  // Ends every request (Cancelled) and the thread; submit() then answers
  // Unavailable. Idempotent.
  void shutdown();

  SchedulerStats stats() const;
  const SchedulerOptions &options() const { return opts_; }
  uint32_t contextLength() const;

private:
  friend class Handle;
  struct Active;
  void loop();
  void start();
  void step(std::vector<std::unique_ptr<Active>> &active);

  Owned<tern_model> borrowed_; // the handle of the C++ constructor
  tern_model *model_ = nullptr;
  int32_t nVocab_ = 0;
  uint32_t ctx_ = 0;
  SchedulerOptions opts_;
  uint32_t totalBlocks_ = 0, pageSize_ = 16;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Handle>> queue_; // guarded by mu_
  uint32_t reservedBlocks_ = 0;               // by active requests; guarded by mu_
  bool stop_ = false;
  SchedulerStats stats_;                                                          // guarded by mu_
  std::deque<std::pair<std::chrono::steady_clock::time_point, uint32_t>> recent_; // tokens/s window
  std::thread thread_;
};

} // namespace tern::server
