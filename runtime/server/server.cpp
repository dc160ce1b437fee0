#include "runtime/server/server.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "fmt/format.h"
#include "httplib.h"
#include "runtime/capi/bridge.h"
#include "runtime/chat/chat.h"
#include "runtime/server/api.h"
#include "runtime/server/scheduler.h"
#include "runtime/support/status.h"

namespace tern::server {

namespace {

constexpr const char *kJson = "application/json";

int64_t unixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string randomId(const char *prefix) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t base = std::random_device{}();
  return fmt::format("{}{:016x}", prefix, base * 0x9E3779B97F4A7C15ull + counter.fetch_add(1));
}

void sendError(httplib::Response &res, const ApiError &e) {
  res.status = e.status;
  res.set_content(dumpJson(errorBody(e)), kJson);
}

// The HTTP status for a scheduler / model error.
ApiError fromStatus(const absl::Status &s) {
  ApiError e;
  e.message = statusMessage(s);
  switch (s.code()) {
  case absl::StatusCode::kInvalidArgument:
  case absl::StatusCode::kOutOfRange:
  case absl::StatusCode::kFailedPrecondition:
    e.status = 400;
    if (e.message.find("context") != std::string::npos)
      e.code = "context_length_exceeded";
    break;
  case absl::StatusCode::kResourceExhausted:
    e.status = 429;
    e.type = "rate_limit_error";
    e.code = "queue_full";
    break;
  case absl::StatusCode::kUnavailable:
    e.status = 503;
    e.type = "unavailable_error";
    break;
  case absl::StatusCode::kCancelled:
    e.status = 499;
    e.type = "cancelled";
    break;
  default:
    e.status = 500;
    e.type = "server_error";
  }
  return e;
}

std::string reasonPhrase(int status) {
  switch (status) {
  case 400:
    return "bad request";
  case 401:
    return "unauthorized";
  case 404:
    return "not found";
  case 405:
    return "method not allowed";
  case 408:
    return "request timeout";
  case 413:
    return "request body too large";
  case 414:
    return "request target too long";
  case 415:
    return "unsupported media type";
  case 431:
    return "request header fields too large";
  default:
    return status >= 500 ? "server error" : "request refused";
  }
}

// Calls a C API function that fills a buffer of `T` (capacity, size out)
// with a first guess of `guess` entries, and again with the size it asked
// for when that was too small.
template <class T, class F> absl::StatusOr<std::vector<T>> fill(size_t guess, F &&call) {
  std::vector<T> buf(std::max<size_t>(guess, 1));
  size_t n = 0;
  tern_status st = call(buf.data(), buf.size(), &n);
  if (st == TERN_ERR_BUFFER_TOO_SMALL) {
    buf.resize(n + 1);
    st = call(buf.data(), buf.size(), &n);
  }
  if (st != TERN_OK)
    return capi::lastStatus(st);
  buf.resize(n);
  return buf;
}

json bytesOf(std::string_view s) {
  json b = json::array();
  for (unsigned char c : s)
    b.push_back(int(c));
  return b;
}

} // namespace

struct Server::Impl {
  ServerOptions opts;
  httplib::Server http;
  std::thread thread;
  std::atomic<bool> ready{false};
  int boundPort = -1;

  // Set once by attach(), read-only afterwards (published by `ready`).
  // Everything below runs through the C API (tern.h); the model handle is
  // used concurrently only as tern.h allows (tokenizing, kv usage, the
  // scheduler's forward calls).
  Owned<tern_model> model;
  std::unique_ptr<Scheduler> scheduler;
  std::string templ;        // the chat template's name (tern_chat_apply_template)
  std::string endOfTurn;    // its end-of-turn text, a stop string of every chat
  std::vector<int32_t> eog; // end-of-generation token ids
  int32_t nVocab = 0;
  int64_t created = unixNow();

  std::mutex metricsMu;
  std::map<std::pair<std::string, int>, uint64_t> requests; // (route, status) -> count

  explicit Impl(ServerOptions o) : opts(std::move(o)) {}

  // -------------------------------------------------------------------------
  void routes();
  bool authorized(const httplib::Request &req, httplib::Response &res);
  bool checkReady(httplib::Response &res);
  void generate(Endpoint endpoint, const httplib::Request &req, httplib::Response &res);
  std::string metricsText();
  std::string piece(int32_t token) const;
  absl::StatusOr<std::vector<int32_t>> promptTokens(std::string_view text) const;
  json logprobsJson(Endpoint ep, const std::vector<TokenLogprob> &lp, size_t textOffset);
};

namespace {
// Known routes for the metrics label (anything else counts as "other").
std::string routeLabel(const std::string &path) {
  static const char *known[] = {
      "/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics", "/tokenize",
      "/detokenize"};
  for (const char *k : known)
    if (path == k)
      return path;
  return "other";
}
} // namespace

bool Server::Impl::authorized(const httplib::Request &req, httplib::Response &res) {
  if (opts.apiKey.empty() || req.path == "/health" || req.path == "/metrics")
    return true;
  if (req.get_header_value("Authorization") == "Bearer " + opts.apiKey)
    return true;
  ApiError e;
  e.status = 401;
  e.type = "invalid_request_error";
  e.code = "invalid_api_key";
  e.message = req.has_header("Authorization")
                  ? "invalid API key (Authorization: Bearer KEY must match --api-key)"
                  : "missing API key (send Authorization: Bearer KEY; the server runs with "
                    "--api-key)";
  sendError(res, e);
  res.set_header("WWW-Authenticate", "Bearer");
  return false;
}

bool Server::Impl::checkReady(httplib::Response &res) {
  if (ready.load())
    return true;
  ApiError e;
  e.status = 503;
  e.type = "unavailable_error";
  e.message = "the model is loading";
  sendError(res, e);
  res.set_header("Retry-After", "1");
  return false;
}

// The text of one token (control tokens: nothing), as tern_token_to_piece.
std::string Server::Impl::piece(int32_t token) const {
  absl::StatusOr<std::vector<char>> p = fill<char>(32, [&](char *buf, size_t cap, size_t *n) {
    return tern_token_to_piece(model.get(), token, 0, buf, cap, n);
  });
  return p.ok() ? std::string(p->begin(), p->end()) : std::string();
}

// Prompt text as tokens: special tokens parsed, BOS as the model says.
absl::StatusOr<std::vector<int32_t>> Server::Impl::promptTokens(std::string_view text) const {
  return fill<int32_t>(text.size() + 8, [&](int32_t *buf, size_t cap, size_t *n) {
    return tern_chat_tokenize(model.get(), text.data(), text.size(), 1, buf, cap, n);
  });
}

json Server::Impl::logprobsJson(Endpoint ep, const std::vector<TokenLogprob> &lp,
                                size_t textOffset) {
  if (ep == Endpoint::Chat) {
    json content = json::array();
    for (const TokenLogprob &t : lp) {
      const std::string piece = this->piece(t.token);
      json top = json::array();
      for (const auto &[id, l] : t.top) {
        const std::string p = this->piece(id);
        top.push_back({{"token", std::string(p)}, {"logprob", l}, {"bytes", bytesOf(p)}});
      }
      content.push_back({{"token", std::string(piece)},
                         {"logprob", t.logprob},
                         {"bytes", bytesOf(piece)},
                         {"top_logprobs", std::move(top)}});
    }
    return {{"content", std::move(content)}, {"refusal", nullptr}};
  }
  json tokens = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
  for (const TokenLogprob &t : lp) {
    const std::string piece = this->piece(t.token);
    tokens.push_back(piece);
    lps.push_back(t.logprob);
    json top = json::object();
    for (const auto &[id, l] : t.top)
      top[this->piece(id)] = l;
    tops.push_back(std::move(top));
    offs.push_back(textOffset);
    textOffset += piece.size();
  }
  return {{"tokens", std::move(tokens)},
          {"token_logprobs", std::move(lps)},
          {"top_logprobs", std::move(tops)},
          {"text_offset", std::move(offs)}};
}

void Server::Impl::generate(Endpoint ep, const httplib::Request &req, httplib::Response &res) {
  if (!checkReady(res))
    return;
  ApiResult<GenerationRequest> parsed = parseGenerationRequest(ep, req.body);
  if (auto *e = std::get_if<ApiError>(&parsed))
    return sendError(res, *e);
  GenerationRequest &r = std::get<GenerationRequest>(parsed);

  Work work;
  absl::StatusOr<std::vector<int32_t>> prompt;
  if (ep == Endpoint::Chat) {
    std::vector<tern_chat_message> msgs;
    size_t bytes = 0;
    for (const chat::Message &m : r.messages) {
      msgs.push_back({chat::roleName(m.role).data(), m.content.c_str()});
      bytes += m.content.size();
    }
    absl::StatusOr<std::vector<char>> text =
        fill<char>(bytes + 64 * msgs.size() + 256, [&](char *buf, size_t cap, size_t *n) {
          return tern_chat_apply_template(model.get(), templ.c_str(), msgs.data(), msgs.size(),
                                          /*add_generation_prompt=*/1, buf, cap, n);
        });
    prompt = text.ok() ? promptTokens(std::string_view(text->data(), text->size())) : text.status();
    // Where the template's end-of-turn text is no single token, stop on the text.
    work.stop.push_back(endOfTurn);
  } else if (r.promptTokens) {
    prompt = std::move(*r.promptTokens);
  } else {
    prompt = promptTokens(r.prompt);
  }
  if (!prompt.ok())
    return sendError(res, fromStatus(prompt.status()));
  work.prompt = std::move(*prompt);
  for (std::string &s : r.stop)
    work.stop.push_back(std::move(s));
  work.maxTokens = r.maxTokens.value_or(-1);
  work.sampler = r.sampler;
  if (!r.seedGiven)
    work.sampler.seed = TERN_SEED_RANDOM;
  work.ignoreEos = r.ignoreEos;
  if (!r.ignoreEos)
    work.stopTokens = eog;
  work.topLogprobs = r.logprobs ? r.topLogprobs : -1;

  absl::StatusOr<std::shared_ptr<Handle>> submitted = scheduler->submit(std::move(work));
  if (!submitted.ok()) {
    ApiError e = fromStatus(submitted.status());
    if (e.status == 429)
      res.set_header("Retry-After", "1");
    return sendError(res, e);
  }
  std::shared_ptr<Handle> h = *submitted;
  const std::string id = randomId(ep == Endpoint::Chat ? "chatcmpl-" : "cmpl-");
  const int64_t now = unixNow();
  const std::string modelName = opts.modelId;
  const bool wantLogprobs = r.logprobs;

  auto usageJson = [](const Output &o) {
    return json{{"prompt_tokens", o.promptTokens},
                {"completion_tokens", o.completionTokens},
                {"total_tokens", o.promptTokens + o.completionTokens}};
  };

  if (!r.stream) {
    std::string text;
    std::vector<TokenLogprob> lps;
    Output o;
    for (;;) {
      o = h->take(std::chrono::milliseconds(500));
      text += o.text;
      for (TokenLogprob &t : o.logprobs)
        lps.push_back(std::move(t));
      if (o.finished)
        break;
    }
    if (o.reason == FinishReason::Error || o.reason == FinishReason::Cancelled)
      return sendError(res, fromStatus(o.error));
    json choice = json::object();
    choice["index"] = 0;
    if (ep == Endpoint::Chat)
      choice["message"] = {{"role", "assistant"}, {"content", text}};
    else
      choice["text"] = text;
    choice["logprobs"] = wantLogprobs ? logprobsJson(ep, lps, 0) : json(nullptr);
    choice["finish_reason"] = finishReasonName(o.reason);
    json body = {{"id", id},
                 {"object", ep == Endpoint::Chat ? "chat.completion" : "text_completion"},
                 {"created", now},
                 {"model", modelName},
                 {"choices", json::array({std::move(choice)})},
                 {"usage", usageJson(o)}};
    res.set_content(dumpJson(body), kJson);
    return;
  }

  // Server-sent events: one `data: {json}\n\n` per chunk, then `data: [DONE]`.
  struct StreamState {
    bool started = false, finished = false;
    size_t textOffset = 0;
  };
  auto state = std::make_shared<StreamState>();
  const bool includeUsage = r.includeUsage;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no"); // nginx: pass chunks through unbuffered
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, h, state, ep, id, now, modelName, wantLogprobs, includeUsage,
       usageJson](size_t, httplib::DataSink &sink) -> bool {
        auto chunk = [&](json delta, json logprobs, json finish) {
          json choice = json::object();
          choice["index"] = 0;
          if (ep == Endpoint::Chat)
            choice["delta"] = std::move(delta);
          else
            choice["text"] = std::move(delta);
          choice["logprobs"] = std::move(logprobs);
          choice["finish_reason"] = std::move(finish);
          return json{
              {"id", id},
              {"object", ep == Endpoint::Chat ? "chat.completion.chunk" : "text_completion"},
              {"created", now},
              {"model", modelName},
              {"choices", json::array({std::move(choice)})}};
        };
        auto send = [&](const std::string &payload) {
          const std::string ev = "data: " + payload + "\n\n";
          if (!sink.write(ev.data(), ev.size())) {
            h->cancel(); // the client is gone: free its pages
            return false;
          }
          return true;
        };
        if (state->finished) {
          sink.done();
          return true;
        }
        if (!state->started) {
          state->started = true;
          if (ep == Endpoint::Chat &&
              !send(dumpJson(chunk({{"role", "assistant"}, {"content", ""}}, nullptr, nullptr))))
            return false;
        }
        Output o = h->take(std::chrono::milliseconds(250));
        if (!o.text.empty() || !o.logprobs.empty()) {
          json lp = wantLogprobs ? logprobsJson(ep, o.logprobs, state->textOffset) : json(nullptr);
          state->textOffset += o.text.size();
          json delta = ep == Endpoint::Chat ? json{{"content", o.text}} : json(o.text);
          if (!send(dumpJson(chunk(std::move(delta), std::move(lp), nullptr))))
            return false;
        }
        if (!o.finished)
          return true;
        state->finished = true;
        if (o.reason == FinishReason::Error || o.reason == FinishReason::Cancelled) {
          if (!send(dumpJson(errorBody(fromStatus(o.error)))))
            return false;
        } else {
          json delta = ep == Endpoint::Chat ? json::object() : json("");
          if (!send(dumpJson(chunk(std::move(delta), nullptr, finishReasonName(o.reason)))))
            return false;
          if (includeUsage) {
            json u = chunk(json::object(), nullptr, nullptr);
            u["choices"] = json::array();
            u["usage"] = usageJson(o);
            if (!send(dumpJson(u)))
              return false;
          }
        }
        if (!send("[DONE]"))
          return false;
        sink.done();
        return true;
      },
      [h](bool) { h->cancel(); });
}

std::string Server::Impl::metricsText() {
  std::string out;
  auto metric = [&](const char *name, const char *type, const char *help, auto value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
  };
  {
    std::lock_guard lock(metricsMu);
    out += "# HELP tern_http_requests_total HTTP requests answered, by route and status.\n"
           "# TYPE tern_http_requests_total counter\n";
    for (const auto &[key, n] : requests)
      out += fmt::format("tern_http_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", key.first,
                         key.second, n);
  }
  metric("tern_model_loaded", "gauge", "1 once the model is loaded and requests are served.",
         ready.load() ? 1 : 0);
  if (!ready.load())
    return out;
  const SchedulerStats s = scheduler->stats();
  tern_kv_usage kv{};
  tern_model_kv_usage(model.get(), &kv);
  metric("tern_prompt_tokens_total", "counter", "Prompt tokens fed to the model (prefill).",
         s.promptTokens);
  metric("tern_generated_tokens_total", "counter", "Tokens generated.", s.generatedTokens);
  metric("tern_generated_tokens_per_second", "gauge",
         "Generated tokens per second over the last 5 seconds.", s.tokensPerSecond);
  metric("tern_requests_queued", "gauge", "Requests waiting for a slot or KV pages.", s.queued);
  metric("tern_requests_active", "gauge", "Requests generating now.", s.active);
  metric("tern_requests_finished_total", "counter", "Requests that ran to an end.", s.finished);
  metric("tern_requests_cancelled_total", "counter", "Requests cancelled (client gone).",
         s.cancelled);
  metric("tern_forward_steps_total", "counter", "Batched forward calls.", s.steps);
  metric("tern_kv_block_positions", "gauge", "Positions per KV block (--kv-page-size).",
         kv.page_size);
  metric("tern_kv_blocks_total", "gauge",
         "KV pool size in blocks (--kv-page-size positions of all layers).", kv.total_blocks);
  metric("tern_kv_blocks_used", "gauge",
         "KV blocks in use (held by sessions or kept by the prefix cache).", kv.used_blocks);
  metric("tern_kv_blocks_free", "gauge", "KV blocks free.", kv.free_blocks);
  metric("tern_kv_blocks_cached", "gauge",
         "KV blocks in the prefix cache, held by a session or not (counted in used; unheld "
         "ones are evicted when blocks run out).",
         kv.cached_blocks);
  metric("tern_kv_sessions", "gauge", "Live sessions on the KV pool.", kv.sessions);
  metric("tern_prefix_cache_hit_tokens_total", "counter",
         "Prompt positions not computed thanks to the prefix cache.", kv.prefix_hit_positions);
  return out;
}

void Server::Impl::routes() {
  http.set_pre_routing_handler([this](const httplib::Request &req, httplib::Response &res) {
    return authorized(req, res) ? httplib::Server::HandlerResponse::Unhandled
                                : httplib::Server::HandlerResponse::Handled;
  });
  // httplib's own refusals (404, 413, 400 on a malformed request) get an
  // OpenAI error object too.
  http.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request &req, httplib::Response &res) {
        if (!res.body.empty())
          return httplib::Server::HandlerResponse::Unhandled;
        ApiError e;
        e.status = res.status;
        e.type = res.status >= 500 ? "server_error" : "invalid_request_error";
        if (res.status == 404)
          e.message = fmt::format("no such endpoint: {} {}", req.method, req.path);
        else
          e.message = reasonPhrase(res.status);
        res.set_content(dumpJson(errorBody(e)), kJson);
        return httplib::Server::HandlerResponse::Handled;
      }));
  http.set_exception_handler(
      [](const httplib::Request &, httplib::Response &res, std::exception_ptr ep) {
        ApiError e;
        e.status = 500;
        e.type = "server_error";
        e.message = "internal error";
        try {
          if (ep)
            std::rethrow_exception(ep);
        } catch (const std::exception &x) {
          e.message = fmt::format("internal error: {}", x.what());
        } catch (...) {
        }
        sendError(res, e);
      });
  http.set_logger([this](const httplib::Request &req, const httplib::Response &res) {
    std::lock_guard lock(metricsMu);
    ++requests[{routeLabel(req.path), res.status}];
  });

  http.Get("/health", [this](const httplib::Request &, httplib::Response &res) {
    if (ready.load()) {
      res.set_content(R"({"status":"ok"})", kJson);
    } else {
      res.status = 503;
      res.set_header("Retry-After", "1");
      res.set_content(R"({"status":"loading"})", kJson);
    }
  });
  http.Get("/metrics", [this](const httplib::Request &, httplib::Response &res) {
    res.set_content(metricsText(), "text/plain; version=0.0.4");
  });
  http.Get("/v1/models", [this](const httplib::Request &, httplib::Response &res) {
    if (!checkReady(res))
      return;
    json m = {
        {"id", opts.modelId}, {"object", "model"}, {"created", created}, {"owned_by", "tern"}};
    m["meta"] = {{"n_ctx", scheduler->contextLength()},
                 {"n_vocab", nVocab},
                 {"description", tern_model_describe(model.get())}};
    res.set_content(dumpJson({{"object", "list"}, {"data", json::array({m})}}), kJson);
  });
  http.Post("/v1/chat/completions", [this](const httplib::Request &req, httplib::Response &res) {
    generate(Endpoint::Chat, req, res);
  });
  http.Post("/v1/completions", [this](const httplib::Request &req, httplib::Response &res) {
    generate(Endpoint::Completion, req, res);
  });
  http.Post("/tokenize", [this](const httplib::Request &req, httplib::Response &res) {
    if (!checkReady(res))
      return;
    ApiResult<TokenizeRequest> r = parseTokenizeRequest(req.body);
    if (auto *e = std::get_if<ApiError>(&r))
      return sendError(res, *e);
    const TokenizeRequest &t = std::get<TokenizeRequest>(r);
    const unsigned flags = (t.addSpecial ? TERN_TOKENIZE_ADD_SPECIAL : 0u) |
                           (t.parseSpecial ? TERN_TOKENIZE_PARSE_SPECIAL : 0u);
    absl::StatusOr<std::vector<int32_t>> ids =
        fill<int32_t>(t.content.size() + 8, [&](int32_t *buf, size_t cap, size_t *n) {
          return tern_tokenize(model.get(), t.content.data(), t.content.size(), flags, buf, cap, n);
        });
    if (!ids.ok())
      return sendError(res, fromStatus(ids.status()));
    res.set_content(dumpJson({{"tokens", *ids}}), kJson);
  });
  http.Post("/detokenize", [this](const httplib::Request &req, httplib::Response &res) {
    if (!checkReady(res))
      return;
    ApiResult<std::vector<int32_t>> r = parseDetokenizeRequest(req.body);
    if (auto *e = std::get_if<ApiError>(&r))
      return sendError(res, *e);
    const std::vector<int32_t> &ids = std::get<std::vector<int32_t>>(r);
    for (size_t i = 0; i < ids.size(); ++i)
      if (ids[i] < 0 || ids[i] >= nVocab)
        return sendError(res, ApiError{400,
                                       fmt::format("tokens[{}]: {} is outside the vocabulary [0, "
                                                   "{})",
                                                   i, ids[i], nVocab),
                                       "invalid_request_error", "tokens", ""});
    absl::StatusOr<std::vector<char>> text =
        fill<char>(ids.size() * 8 + 16, [&](char *buf, size_t cap, size_t *n) {
          return tern_detokenize(model.get(), ids.data(), ids.size(), 0, buf, cap, n);
        });
    if (!text.ok())
      return sendError(res, fromStatus(text.status()));
    res.set_content(dumpJson({{"content", std::string(text->begin(), text->end())}}), kJson);
  });
}

Server::Server(ServerOptions opts) : impl_(std::make_unique<Impl>(std::move(opts))) {
  Impl &s = *impl_;
  // Every stream (running or queued) holds a thread while it waits for
  // tokens; a few more keep /health and /metrics answering.
  const size_t threads = size_t(s.opts.parallel) + s.opts.maxQueue + 4;
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s.http.set_payload_max_length(size_t(s.opts.maxBodyBytes));
  s.http.set_read_timeout(s.opts.readTimeoutSeconds, 0);
  s.http.set_keep_alive_timeout(5);
  s.routes();
}

Server::~Server() { stop(); }

absl::Status Server::bind() {
  Impl &s = *impl_;
  if (s.opts.port == 0) {
    s.boundPort = s.http.bind_to_any_port(s.opts.host);
    if (s.boundPort <= 0)
      return absl::UnavailableError(fmt::format("cannot bind {}:<any port>", s.opts.host));
  } else {
    if (!s.http.bind_to_port(s.opts.host, s.opts.port))
      return absl::UnavailableError(fmt::format("cannot bind {}:{} (in use, or not an address of "
                                                "this machine?)",
                                                s.opts.host, s.opts.port));
    s.boundPort = s.opts.port;
  }
  return absl::OkStatus();
}

int Server::port() const { return impl_->boundPort; }

void Server::start() {
  Impl &s = *impl_;
  s.thread = std::thread([&s] { s.http.listen_after_bind(); });
  for (int i = 0; i < 5000 && !s.http.is_running(); ++i) // httplib 0.11 has no wait_until_ready
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

absl::Status Server::attach(tern_model *handle) {
  Impl &s = *impl_;
  Owned<tern_model> m(handle);
  if (!m)
    return absl::InvalidArgumentError("no model");
  tern_model_info info;
  if (tern_status st = tern_model_get_info(m.get(), &info); st != TERN_OK)
    return capi::lastStatus(st);
  // The template: --chat-template names a built-in (a bad name is the
  // flag's fault), else the model's tokenizer.chat_template picks one.
  const char *name = s.opts.chatTemplate.empty() ? nullptr : s.opts.chatTemplate.c_str();
  if (name) {
    const char *resolved = nullptr;
    if (tern_status st = tern_chat_template(nullptr, name, &resolved); st != TERN_OK)
      return absl::InvalidArgumentError(capi::lastStatus(st).message());
  }
  tern_chat *c = nullptr;
  if (tern_status st = tern_chat_create(m.get(), name, &c); st != TERN_OK)
    return capi::lastStatus(st);
  Owned<tern_chat> chat(c);
  tern_chat_info ci;
  if (tern_status st = tern_chat_get_info(chat.get(), &ci); st != TERN_OK)
    return capi::lastStatus(st);
  s.templ = ci.template_name;
  s.endOfTurn = ci.end_of_turn;
  s.nVocab = info.n_vocab;
  for (int32_t id = 0; id < info.n_vocab; ++id)
    if (tern_token_is_eog(m.get(), id))
      s.eog.push_back(id);
  s.model = std::move(m);
  SchedulerOptions so;
  so.maxActive = s.opts.parallel;
  so.maxQueue = s.opts.maxQueue;
  so.prefillChunk = s.opts.prefillChunk;
  s.scheduler = std::make_unique<Scheduler>(s.model.get(), so);
  s.ready.store(true);
  return absl::OkStatus();
}

absl::Status Server::attach(std::unique_ptr<model::Model> m) {
  tern_model *h = nullptr;
  if (tern_status st = capi::adoptModel(std::move(m), &h); st != TERN_OK)
    return capi::lastStatus(st);
  return attach(h);
}

void Server::stop() {
  Impl &s = *impl_;
  // Running and queued requests end first (their handlers then return), so
  // httplib's pool can join; the scheduler object lives until then because
  // a handler may still be submitting.
  if (s.scheduler)
    s.scheduler->shutdown();
  if (s.http.is_running() || s.thread.joinable())
    s.http.stop();
  if (s.thread.joinable())
    s.thread.join();
  s.ready.store(false);
  s.scheduler.reset();
  s.model.reset(); // after the scheduler: its sessions and samplers are gone
}

void Server::wait() {
  Impl &s = *impl_;
  if (s.thread.joinable())
    s.thread.join();
}

} // namespace tern::server
