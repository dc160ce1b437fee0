// `tern serve`'s library: request parsing and validation (api.h), the
// scheduler on the fixture model's reference forward pass (batch invariance,
// cancellation freeing pages, admission limits), and the HTTP layer in-process
// on a loopback port (status codes, error objects, SSE framing).
#include <chrono>
#include <string>
#include <thread>

#include "httplib.h"
#include "runtime/model/model.h"
#include "runtime/server/api.h"
#include "runtime/server/scheduler.h"
#include "runtime/server/server.h"
#include "runtime/tokenizer/tokenizer.h"
#include "gtest/gtest.h"

namespace tern::server {
namespace {

const std::string kTq2 = std::string(TERN_SHARED_DIR) + "/fixtures/models/tiny-bitnet-tq2.gguf";

// ---------------------------------------------------------------------------
// Parsing

ApiError errorOf(Endpoint ep, std::string_view body) {
  ApiResult<GenerationRequest> r = parseGenerationRequest(ep, body);
  EXPECT_TRUE(std::holds_alternative<ApiError>(r)) << body;
  return std::holds_alternative<ApiError>(r) ? std::get<ApiError>(r) : ApiError{};
}

TEST(ServerApi, ParsesAChatRequest) {
  ApiResult<GenerationRequest> r = parseGenerationRequest(Endpoint::Chat, R"({
    "model": "m", "messages": [{"role": "system", "content": "be brief"},
                               {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 3, "min_p": 0.1,
    "frequency_penalty": 0.5, "presence_penalty": -0.5, "seed": 42, "stop": ["a", "b"],
    "stream": true, "stream_options": {"include_usage": true}, "logprobs": true,
    "top_logprobs": 2, "logit_bias": {"5": -100, "6": 2}})");
  ASSERT_TRUE(std::holds_alternative<GenerationRequest>(r)) << std::get<ApiError>(r).message;
  const GenerationRequest &g = std::get<GenerationRequest>(r);
  ASSERT_EQ(g.messages.size(), 2u);
  EXPECT_EQ(g.messages[0].role, chat::Role::System);
  EXPECT_EQ(g.messages[1].content, "hi");
  EXPECT_EQ(g.maxTokens, 7);
  EXPECT_FLOAT_EQ(g.sampler.temperature, 0.5f);
  EXPECT_FLOAT_EQ(g.sampler.topP, 0.9f);
  EXPECT_EQ(g.sampler.topK, 3);
  EXPECT_FLOAT_EQ(g.sampler.minP, 0.1f);
  EXPECT_FLOAT_EQ(g.sampler.presencePenalty, -0.5f);
  EXPECT_EQ(g.sampler.seed, 42u);
  EXPECT_TRUE(g.seedGiven && g.stream && g.includeUsage && g.logprobs);
  EXPECT_EQ(g.topLogprobs, 2);
  EXPECT_EQ(g.stop, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(g.sampler.logitBias.size(), 2u);
  EXPECT_TRUE(std::isinf(g.sampler.logitBias[0].bias));
}

TEST(ServerApi, ParsesCompletionPrompts) {
  auto ok = [](std::string_view body) {
    ApiResult<GenerationRequest> r = parseGenerationRequest(Endpoint::Completion, body);
    EXPECT_TRUE(std::holds_alternative<GenerationRequest>(r)) << body;
    return std::holds_alternative<GenerationRequest>(r) ? std::get<GenerationRequest>(r)
                                                        : GenerationRequest{};
  };
  EXPECT_EQ(ok(R"({"prompt": "abc"})").prompt, "abc");
  EXPECT_EQ(ok(R"({"prompt": ["abc"]})").prompt, "abc");
  EXPECT_EQ(*ok(R"({"prompt": [1, 2, 3], "logprobs": 2})").promptTokens,
            (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(ok(R"({"prompt": "x", "logprobs": 2})").topLogprobs, 2);
}

TEST(ServerApi, RefusesBadRequestsNamingTheField) {
  struct Case {
    Endpoint ep;
    const char *body, *param;
  };
  const Case cases[] = {
      {Endpoint::Chat, "", ""},
      {Endpoint::Chat, "{", ""},
      {Endpoint::Chat, "[]", ""},
      {Endpoint::Chat, "{}", "messages"},
      {Endpoint::Chat, R"({"messages": []})", "messages"},
      {Endpoint::Chat, R"({"messages": "hi"})", "messages"},
      {Endpoint::Chat, R"({"messages": [1]})", "messages[0]"},
      {Endpoint::Chat, R"({"messages": [{"role": "tool", "content": "x"}]})", "messages[0].role"},
      {Endpoint::Chat, R"({"messages": [{"role": "user"}]})", "messages[0].content"},
      {Endpoint::Chat, R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
       "messages[0].content"},
      {Endpoint::Chat, R"({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"})",
       "temperature"},
      {Endpoint::Chat, R"({"messages": [{"role": "user", "content": "x"}], "temperature": -1})",
       "temperature"},
      {Endpoint::Chat, R"({"messages": [{"role": "user", "content": "x"}], "top_p": 0})", "top_p"},
      {Endpoint::Chat, R"({"messages": [{"role": "user", "content": "x"}], "top_k": 1.5})",
       "top_k"},
      {Endpoint::Chat, R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0})",
       "max_tokens"},
      {Endpoint::Chat, R"({"messages": [{"role": "user", "content": "x"}], "n": 2})", "n"},
      {Endpoint::Chat, R"({"messages": [{"role": "user", "content": "x"}], "stream": 1})",
       "stream"},
      {Endpoint::Chat, R"({"messages": [{"role": "user", "content": "x"}], "stop": [1]})", "stop"},
      {Endpoint::Chat, R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})",
       "top_logprobs"},
      {Endpoint::Chat,
       R"({"messages": [{"role": "user", "content": "x"}], "logit_bias": {"x": 1}})", "logit_bias"},
      {Endpoint::Chat,
       R"({"messages": [{"role": "user", "content": "x"}], "frequency_penalty": 3})",
       "frequency_penalty"},
      {Endpoint::Completion, "{}", "prompt"},
      {Endpoint::Completion, R"({"prompt": 5})", "prompt"},
      {Endpoint::Completion, R"({"prompt": [1, -2]})", "prompt"},
      {Endpoint::Completion, R"({"prompt": [1, 99999999999]})", "prompt"},
      {Endpoint::Completion, R"({"prompt": "x", "logprobs": 9})", "logprobs"},
      {Endpoint::Completion, R"({"prompt": "x", "echo": true})", "echo"},
  };
  for (const Case &c : cases) {
    ApiError e = errorOf(c.ep, c.body);
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body << ": " << e.message;
    EXPECT_FALSE(e.message.empty());
    if (*c.param) {
      EXPECT_NE(e.message.find(c.param), std::string::npos) << e.message;
    }
  }
}

TEST(ServerApi, DeepNestingIsRefusedBeforeParsing) {
  std::string deep(100000, '[');
  ApiError e = errorOf(Endpoint::Chat, deep);
  EXPECT_NE(e.message.find("nests deeper"), std::string::npos) << e.message;
  // Brackets inside strings do not count.
  std::string s =
      R"({"messages": [{"role": "user", "content": ")" + std::string(1000, '[') + R"("}]})";
  EXPECT_TRUE(std::holds_alternative<GenerationRequest>(parseGenerationRequest(Endpoint::Chat, s)));
}

TEST(ServerApi, ErrorBodyHasOpenAiShape) {
  ApiError e{400, "temperature: bad", "invalid_request_error", "temperature", ""};
  json j = errorBody(e);
  EXPECT_EQ(j["error"]["message"], "temperature: bad");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "temperature");
  EXPECT_TRUE(j["error"]["code"].is_null());
  // Invalid UTF-8 in a message never throws.
  EXPECT_NO_THROW(dumpJson(json{{"x", std::string("\xff\xfe")}}));
}

TEST(ServerApi, TokenizeBodies) {
  auto t = parseTokenizeRequest(R"({"content": "hi", "add_special": false})");
  ASSERT_TRUE(std::holds_alternative<TokenizeRequest>(t));
  EXPECT_FALSE(std::get<TokenizeRequest>(t).addSpecial);
  EXPECT_TRUE(std::holds_alternative<ApiError>(parseTokenizeRequest(R"({"content": 1})")));
  EXPECT_TRUE(std::holds_alternative<ApiError>(parseDetokenizeRequest(R"({"tokens": ["a"]})")));
  auto d = parseDetokenizeRequest(R"({"tokens": [1, 2]})");
  ASSERT_TRUE(std::holds_alternative<std::vector<int32_t>>(d));
}

// ---------------------------------------------------------------------------
// Scheduler on the fixture model (reference forward pass)

struct Fixture {
  std::unique_ptr<model::Model> model;
  std::unique_ptr<tokenizer::Tokenizer> tok;
};

Fixture open(uint32_t ctx, uint32_t parallel) {
  model::ModelOptions o;
  o.contextLength = ctx;
  o.parallel = parallel;
  Fixture f;
  absl::StatusOr<std::unique_ptr<model::Model>> m = model::openReferenceModel(kTq2, o);
  EXPECT_TRUE(m.ok()) << m.status();
  f.model = std::move(*m);
  absl::StatusOr<tokenizer::Tokenizer> t = tokenizer::Tokenizer::fromGGUF(*f.model->ggufFile());
  EXPECT_TRUE(t.ok());
  f.tok = std::make_unique<tokenizer::Tokenizer>(std::move(*t));
  return f;
}

struct Result {
  std::string text;
  FinishReason reason = FinishReason::None;
  int32_t completionTokens = 0;
  std::vector<int32_t> tokens;
};

Result drain(Handle &h) {
  Result r;
  for (;;) {
    Output o = h.take(std::chrono::milliseconds(1000));
    r.text += o.text;
    for (const TokenLogprob &t : o.logprobs)
      r.tokens.push_back(t.token);
    if (o.finished) {
      r.reason = o.reason;
      r.completionTokens = o.completionTokens;
      EXPECT_TRUE(o.error.ok()) << o.error;
      return r;
    }
  }
}

Work workFor(const tokenizer::Tokenizer &tok, const std::string &prompt, int32_t maxTokens,
             float temp, uint64_t seed) {
  Work w;
  w.prompt = tok.encode(prompt, true);
  w.maxTokens = maxTokens;
  w.sampler.temperature = temp;
  w.sampler.seed = seed;
  w.topLogprobs = 0; // report the tokens
  return w;
}

TEST(Scheduler, GreedyMatchesAPlainDecodeLoop) {
  Fixture f = open(64, 2);
  std::vector<int32_t> prompt = f.tok->encode("Hello world", true);
  // Direct: decode + argmax.
  std::vector<int32_t> expect;
  {
    auto s = f.model->newSession();
    ASSERT_TRUE(s.ok());
    std::vector<float> logits(f.model->config().nVocab);
    ASSERT_TRUE(f.model->decode(**s, prompt, logits).ok());
    for (int i = 0; i < 10; ++i) {
      int32_t best = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      expect.push_back(best);
      ASSERT_TRUE(f.model->decode(**s, std::span(&best, 1), logits).ok());
    }
  }
  Scheduler sch(*f.model, *f.tok, {});
  Work w = workFor(*f.tok, "Hello world", 10, 0.0f, 1);
  auto h = sch.submit(w);
  ASSERT_TRUE(h.ok()) << h.status();
  Result r = drain(**h);
  EXPECT_EQ(r.reason, FinishReason::Length);
  EXPECT_EQ(r.completionTokens, 10);
  EXPECT_EQ(r.tokens, expect);
  tokenizer::StreamDecoder dec(*f.tok);
  std::string text;
  for (int32_t t : expect)
    text += dec.push(t);
  EXPECT_EQ(r.text, text + dec.flush());
}

TEST(Scheduler, ConcurrentRequestsGiveWhatEachGivesAlone) {
  Fixture f = open(96, 4);
  const std::vector<std::string> prompts = {"one", "two words", "a somewhat longer prompt here",
                                            "x",   "Hello",     "seeds differ"};
  std::vector<Result> alone;
  {
    Scheduler sch(*f.model, *f.tok, {.maxActive = 1, .maxQueue = 16});
    for (size_t i = 0; i < prompts.size(); ++i) {
      auto h = sch.submit(workFor(*f.tok, prompts[i], 12, i % 2 ? 0.0f : 0.9f, 100 + i));
      ASSERT_TRUE(h.ok());
      alone.push_back(drain(**h));
    }
  }
  // Several at once, with a small prefill chunk so that prompts are split
  // and prefill mixes with decode steps.
  Scheduler sch(*f.model, *f.tok, {.maxActive = 4, .maxQueue = 16, .prefillChunk = 3});
  std::vector<std::shared_ptr<Handle>> hs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto h = sch.submit(workFor(*f.tok, prompts[i], 12, i % 2 ? 0.0f : 0.9f, 100 + i));
    ASSERT_TRUE(h.ok());
    hs.push_back(*h);
  }
  for (size_t i = 0; i < hs.size(); ++i) {
    Result r = drain(*hs[i]);
    EXPECT_EQ(r.tokens, alone[i].tokens) << prompts[i];
    EXPECT_EQ(r.text, alone[i].text) << prompts[i];
  }
  SchedulerStats s = sch.stats();
  EXPECT_EQ(s.finished, prompts.size());
  EXPECT_LT(s.steps, 6u * 12u); // batched: fewer steps than one request after another
}

TEST(Scheduler, CancelFreesPages) {
  Fixture f = open(256, 2);
  Scheduler sch(*f.model, *f.tok, {});
  auto h = sch.submit(workFor(*f.tok, "cancel me please", 200, 0.9f, 5));
  ASSERT_TRUE(h.ok());
  (*h)->take(std::chrono::milliseconds(2000)); // some output arrived
  EXPECT_GT(f.model->kvUsage().usedBlocks, 0u);
  (*h)->cancel();
  Output o;
  for (int i = 0; i < 50 && !o.finished; ++i)
    o = (*h)->take(std::chrono::milliseconds(200));
  ASSERT_TRUE(o.finished);
  EXPECT_EQ(o.reason, FinishReason::Cancelled);
  EXPECT_EQ(f.model->kvUsage().sessions, 0u);
  EXPECT_EQ(f.model->kvUsage().usedBlocks, 0u);
  EXPECT_EQ(sch.stats().cancelled, 1u);
}

TEST(Scheduler, StopStringsAndEndOfGeneration) {
  Fixture f = open(64, 1);
  Scheduler sch(*f.model, *f.tok, {});
  Work w = workFor(*f.tok, "Hello world", 16, 0.0f, 1);
  auto h = sch.submit(w);
  ASSERT_TRUE(h.ok());
  Result full = drain(**h);
  ASSERT_GE(full.text.size(), 4u);
  // Stop on a piece of the greedy output: the text ends right before it.
  Work s = w;
  s.stop = {full.text.substr(2, 2)};
  auto hs = sch.submit(s);
  ASSERT_TRUE(hs.ok());
  Result r = drain(**hs);
  EXPECT_EQ(r.reason, FinishReason::Stop);
  EXPECT_EQ(r.text, full.text.substr(0, full.text.find(s.stop[0])));
  // The first greedy token as an end-of-generation token: nothing is emitted.
  Work e = w;
  e.stopTokens = {full.tokens[0]};
  auto he = sch.submit(e);
  ASSERT_TRUE(he.ok());
  Result re = drain(**he);
  EXPECT_EQ(re.reason, FinishReason::Stop);
  EXPECT_EQ(re.text, "");
  EXPECT_EQ(re.completionTokens, 1);
}

TEST(Scheduler, AdmissionLimits) {
  Fixture f = open(32, 1);
  Scheduler sch(*f.model, *f.tok, {.maxActive = 1, .maxQueue = 1});
  Work big;
  big.prompt.assign(32, 1);
  EXPECT_EQ(sch.submit(big).status().code(), absl::StatusCode::kInvalidArgument);
  Work bad;
  bad.prompt = {1, -1};
  EXPECT_EQ(sch.submit(bad).status().code(), absl::StatusCode::kInvalidArgument);
  Work badTemp = workFor(*f.tok, "x", 4, 0.5f, 1);
  badTemp.sampler.topP = 0;
  EXPECT_EQ(sch.submit(badTemp).status().code(), absl::StatusCode::kInvalidArgument);
  // One running + one queued; the third is refused (429) until they end.
  std::vector<std::shared_ptr<Handle>> hs;
  absl::Status third;
  for (int i = 0; i < 3; ++i) {
    auto h = sch.submit(workFor(*f.tok, "abc", 20, 0.0f, 1));
    if (h.ok())
      hs.push_back(*h);
    else
      third = h.status();
  }
  EXPECT_EQ(hs.size(), 2u);
  EXPECT_EQ(third.code(), absl::StatusCode::kResourceExhausted);
  for (auto &h : hs)
    drain(*h);
}

// ---------------------------------------------------------------------------
// HTTP, in-process on a loopback port

struct Live {
  Server srv;
  httplib::Client cli;
  explicit Live(ServerOptions o, bool attach = true)
      : srv((o.port = 0, o)), cli("127.0.0.1", (srv.bind().IgnoreError(), srv.port())) {
    srv.start();
    if (attach) {
      model::ModelOptions mo;
      mo.contextLength = 64;
      mo.parallel = 2;
      auto m = model::openReferenceModel(kTq2, mo);
      EXPECT_TRUE(m.ok());
      EXPECT_TRUE(srv.attach(std::move(*m)).ok());
    }
  }
};

json bodyOf(const httplib::Result &r) {
  return json::parse(r->body, nullptr, /*allow_exceptions=*/false);
}

TEST(ServerHttp, HealthIs503UntilTheModelIsAttached) {
  ServerOptions o;
  o.modelId = "tiny";
  Live l(o, /*attach=*/false);
  auto r = l.cli.Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  auto c = l.cli.Post("/v1/completions", R"({"prompt": "x"})", "application/json");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->status, 503);
  EXPECT_TRUE(bodyOf(c)["error"].is_object());
}

TEST(ServerHttp, StatusCodesAndErrorObjects) {
  ServerOptions o;
  o.modelId = "tiny";
  o.apiKey = "sekret";
  o.maxBodyBytes = 4096;
  Live l(o);
  httplib::Headers auth = {{"Authorization", "Bearer sekret"}};
  EXPECT_EQ(l.cli.Get("/health")->status, 200);
  EXPECT_EQ(l.cli.Get("/metrics")->status, 200);
  auto noKey = l.cli.Get("/v1/models");
  EXPECT_EQ(noKey->status, 401);
  EXPECT_EQ(bodyOf(noKey)["error"]["code"], "invalid_api_key");
  auto models = l.cli.Get("/v1/models", auth);
  EXPECT_EQ(models->status, 200);
  EXPECT_EQ(bodyOf(models)["data"][0]["id"], "tiny");
  auto missing = l.cli.Get("/v1/nothing", auth);
  EXPECT_EQ(missing->status, 404);
  EXPECT_TRUE(bodyOf(missing)["error"]["message"].is_string());
  auto big = l.cli.Post("/v1/completions", auth, std::string(10000, ' '), "application/json");
  EXPECT_EQ(big->status, 413);
  EXPECT_TRUE(bodyOf(big)["error"].is_object());
  auto badJson = l.cli.Post("/v1/completions", auth, "{nope", "application/json");
  EXPECT_EQ(badJson->status, 400);
  auto tooLong =
      l.cli.Post("/v1/completions", auth, R"({"prompt": ")" + std::string(300, 'z') + R"("})",
                 "application/json");
  EXPECT_EQ(tooLong->status, 400);
  EXPECT_EQ(bodyOf(tooLong)["error"]["code"], "context_length_exceeded");
  auto ok =
      l.cli.Post("/v1/completions", auth,
                 R"({"prompt": "Hello", "max_tokens": 5, "temperature": 0})", "application/json");
  ASSERT_EQ(ok->status, 200) << ok->body;
  json j = bodyOf(ok);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);
  auto tk = l.cli.Post("/tokenize", auth, R"({"content": "Hello"})", "application/json");
  ASSERT_EQ(tk->status, 200);
  auto dt = l.cli.Post("/detokenize", auth, dumpJson({{"tokens", bodyOf(tk)["tokens"]}}),
                       "application/json");
  ASSERT_EQ(dt->status, 200);
  EXPECT_EQ(bodyOf(dt)["content"], "Hello");
}

TEST(ServerHttp, StreamEndsWithDone) {
  ServerOptions o;
  o.modelId = "tiny";
  Live l(o);
  auto r = l.cli.Post(
      "/v1/chat/completions",
      R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "stream": true,
          "temperature": 0})",
      "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  const std::string &b = r->body;
  ASSERT_GE(b.size(), 14u);
  EXPECT_EQ(b.substr(b.size() - 14), "data: [DONE]\n\n");
  size_t pos = 0, events = 0;
  std::string finish;
  while ((pos = b.find("data: ", pos)) != std::string::npos) {
    const size_t end = b.find("\n\n", pos);
    ASSERT_NE(end, std::string::npos);
    const std::string payload = b.substr(pos + 6, end - pos - 6);
    pos = end + 2;
    if (payload == "[DONE]")
      break;
    json c = json::parse(payload, nullptr, false);
    ASSERT_FALSE(c.is_discarded()) << payload;
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    if (c["choices"][0]["finish_reason"].is_string())
      finish = c["choices"][0]["finish_reason"];
    ++events;
  }
  EXPECT_GE(events, 2u);
  EXPECT_TRUE(finish == "length" || finish == "stop") << finish;
}

} // namespace
} // namespace tern::server
