#include "runtime/server/api.h"

#include <charconv>
#include <cmath>
#include <limits>

#include "fmt/format.h"

namespace tern::server {

namespace {

ApiError bad(std::string param, std::string message) {
  ApiError e;
  e.status = 400;
  e.param = std::move(param);
  e.message = std::move(message);
  return e;
}

std::string typeName(const json &v) { return v.type_name(); }

// Nesting depth of a JSON text, counted over brackets outside strings. Stops
// counting once `limit` is passed.
int jsonDepth(std::string_view s, int limit) {
  int depth = 0, maxDepth = 0;
  bool inString = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (inString) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        inString = false;
      continue;
    }
    if (c == '"')
      inString = true;
    else if (c == '[' || c == '{') {
      maxDepth = std::max(maxDepth, ++depth);
      if (maxDepth > limit)
        return maxDepth;
    } else if (c == ']' || c == '}')
      --depth;
  }
  return maxDepth;
}

// Typed field readers: absent or null -> nullopt; wrong type -> error.
struct Fields {
  const json &obj;
  std::optional<ApiError> error;

  const json *get(const char *key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null())
      return nullptr;
    return &*it;
  }
  void fail(const char *key, std::string msg) {
    if (!error)
      error = bad(key, fmt::format("{}: {}", key, msg));
  }
  std::optional<double> number(const char *key, double lo, double hi) {
    const json *v = get(key);
    if (!v)
      return std::nullopt;
    if (!v->is_number()) {
      fail(key, fmt::format("expected a number, got {}", typeName(*v)));
      return std::nullopt;
    }
    const double d = v->get<double>();
    if (!std::isfinite(d) || d < lo || d > hi) {
      fail(key, fmt::format("must be in [{}, {}], got {}", lo, hi, d));
      return std::nullopt;
    }
    return d;
  }
  std::optional<int64_t> integer(const char *key, int64_t lo, int64_t hi) {
    const json *v = get(key);
    if (!v)
      return std::nullopt;
    if (!v->is_number_integer()) {
      fail(key, fmt::format("expected an integer, got {}",
                            v->is_number() ? "a fraction" : typeName(*v)));
      return std::nullopt;
    }
    int64_t i;
    if (v->is_number_unsigned()) {
      const uint64_t u = v->get<uint64_t>();
      i = u > uint64_t(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                            : int64_t(u);
    } else {
      i = v->get<int64_t>();
    }
    if (i < lo || i > hi) {
      fail(key, fmt::format("must be in [{}, {}], got {}", lo, hi, v->dump()));
      return std::nullopt;
    }
    return i;
  }
  std::optional<bool> boolean(const char *key) {
    const json *v = get(key);
    if (!v)
      return std::nullopt;
    if (!v->is_boolean()) {
      fail(key, fmt::format("expected a boolean, got {}", typeName(*v)));
      return std::nullopt;
    }
    return v->get<bool>();
  }
  std::optional<std::string> string(const char *key) {
    const json *v = get(key);
    if (!v)
      return std::nullopt;
    if (!v->is_string()) {
      fail(key, fmt::format("expected a string, got {}", typeName(*v)));
      return std::nullopt;
    }
    return v->get<std::string>();
  }
};

// Message content: a string, or an array of {"type": "text", "text": ...} parts.
std::optional<std::string> contentText(const json &c, size_t index, std::optional<ApiError> &err) {
  const std::string param = fmt::format("messages[{}].content", index);
  if (c.is_string())
    return c.get<std::string>();
  if (c.is_null())
    return std::string();
  if (!c.is_array()) {
    err = bad(param, fmt::format("{}: expected a string or an array of text parts, got {}", param,
                                 typeName(c)));
    return std::nullopt;
  }
  std::string text;
  for (size_t i = 0; i < c.size(); ++i) {
    const json &part = c[i];
    const auto type = part.is_object() ? part.find("type") : part.end();
    const auto t = part.is_object() ? part.find("text") : part.end();
    if (!part.is_object() || type == part.end() || !type->is_string() ||
        type->get<std::string>() != "text" || t == part.end() || !t->is_string()) {
      err = bad(param, fmt::format("{}[{}]: only {{\"type\": \"text\", \"text\": STRING}} parts "
                                   "are supported",
                                   param, i));
      return std::nullopt;
    }
    text += t->get<std::string>();
  }
  return text;
}

std::optional<std::vector<int32_t>> tokenArray(const json &a, const char *param, size_t maxLen,
                                               std::optional<ApiError> &err) {
  if (a.size() > maxLen) {
    err = bad(param, fmt::format("{}: more than {} tokens", param, maxLen));
    return std::nullopt;
  }
  std::vector<int32_t> ids;
  ids.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const json &v = a[i];
    if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0) ||
        (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(INT32_MAX)
                                : v.get<int64_t>() > INT32_MAX)) {
      err = bad(param, fmt::format("{}[{}]: expected a token id (integer >= 0), got {}", param, i,
                                   v.dump(-1, ' ', false, json::error_handler_t::replace)));
      return std::nullopt;
    }
    ids.push_back(int32_t(v.get<int64_t>()));
  }
  return ids;
}

} // namespace

json errorBody(const ApiError &e) {
  json err = json::object();
  err["message"] = e.message;
  err["type"] = e.type;
  err["param"] = e.param.empty() ? json(nullptr) : json(e.param);
  err["code"] = e.code.empty() ? json(nullptr) : json(e.code);
  json body = json::object();
  body["error"] = std::move(err);
  return body;
}

std::string dumpJson(const json &j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

ApiResult<json> parseJsonObject(std::string_view body) {
  if (body.empty())
    return bad("", "the request body is empty (expected a JSON object)");
  if (jsonDepth(body, kMaxJsonDepth) > kMaxJsonDepth)
    return bad("", fmt::format("the request body nests deeper than {} levels", kMaxJsonDepth));
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return bad("", "the request body is not valid JSON");
  if (!j.is_object())
    return bad("", fmt::format("the request body must be a JSON object, got {}", typeName(j)));
  return j;
}

ApiResult<GenerationRequest> parseGenerationRequest(Endpoint endpoint, std::string_view body) {
  ApiResult<json> parsed = parseJsonObject(body);
  if (auto *e = std::get_if<ApiError>(&parsed))
    return *e;
  const json &j = std::get<json>(parsed);
  GenerationRequest r;
  r.endpoint = endpoint;
  Fields f{j, std::nullopt};
  std::optional<ApiError> err;

  if (auto m = f.string("model"))
    r.model = *m;
  if (auto s = f.boolean("stream"))
    r.stream = *s;
  if (const json *so = f.get("stream_options")) {
    if (!so->is_object())
      f.fail("stream_options", fmt::format("expected an object, got {}", typeName(*so)));
    else {
      Fields g{*so, std::nullopt};
      if (auto u = g.boolean("include_usage"))
        r.includeUsage = *u;
      if (g.error)
        return bad("stream_options", "stream_options." + g.error->message);
    }
  }

  if (endpoint == Endpoint::Chat) {
    const json *msgs = f.get("messages");
    if (!msgs)
      return bad("messages", "messages: required (an array of {role, content} objects)");
    if (!msgs->is_array() || msgs->empty())
      return bad("messages", fmt::format("messages: expected a non-empty array, got {}",
                                         msgs->is_array() ? "an empty array" : typeName(*msgs)));
    for (size_t i = 0; i < msgs->size(); ++i) {
      const json &m = (*msgs)[i];
      const std::string param = fmt::format("messages[{}]", i);
      if (!m.is_object())
        return bad(param, fmt::format("{}: expected an object, got {}", param, typeName(m)));
      const auto role = m.find("role");
      if (role == m.end() || !role->is_string())
        return bad(param + ".role", param + ".role: required string (system, user, assistant)");
      absl::StatusOr<chat::Role> parsedRole = chat::parseRole(role->get<std::string>());
      if (!parsedRole.ok()) {
        // "developer" is OpenAI's newer name for the system role.
        if (role->get<std::string>() == "developer")
          parsedRole = chat::Role::System;
        else
          return bad(param + ".role",
                     fmt::format("{}.role: unsupported role (system, user, assistant)", param));
      }
      const auto content = m.find("content");
      if (content == m.end())
        return bad(param + ".content", param + ".content: required");
      std::optional<std::string> text = contentText(*content, i, err);
      if (!text)
        return *err;
      r.messages.push_back({*parsedRole, std::move(*text)});
    }
  } else {
    const json *p = f.get("prompt");
    if (!p)
      return bad("prompt", "prompt: required (a string, or an array of token ids)");
    if (p->is_string()) {
      r.prompt = p->get<std::string>();
    } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
      r.prompt = (*p)[0].get<std::string>();
    } else if (p->is_array() && !p->empty() && (*p)[0].is_number()) {
      r.promptTokens = tokenArray(*p, "prompt", 1u << 24, err);
      if (!r.promptTokens)
        return *err;
    } else {
      return bad("prompt", fmt::format("prompt: expected a string, an array of one string or a "
                                       "non-empty array of token ids, got {}",
                                       p->is_array() ? "another array" : typeName(*p)));
    }
  }

  // max_completion_tokens is the newer chat name; either is accepted.
  if (auto n = f.integer("max_tokens", 1, INT32_MAX))
    r.maxTokens = int32_t(*n);
  if (auto n = f.integer("max_completion_tokens", 1, INT32_MAX))
    r.maxTokens = int32_t(*n);
  (void)f.integer("n", 1, 1); // only one choice per request
  sampling::SamplerParams &s = r.sampler;
  if (auto v = f.number("temperature", 0, 100))
    s.temperature = float(*v);
  if (auto v = f.number("top_p", 0, 1)) {
    if (*v <= 0)
      f.fail("top_p", "must be in (0, 1], got 0");
    s.topP = float(*v);
  }
  if (auto v = f.integer("top_k", 0, INT32_MAX))
    s.topK = int32_t(*v);
  if (auto v = f.number("min_p", 0, 1))
    s.minP = float(*v);
  if (auto v = f.number("frequency_penalty", -2, 2))
    s.frequencyPenalty = float(*v);
  if (auto v = f.number("presence_penalty", -2, 2))
    s.presencePenalty = float(*v);
  if (auto v = f.number("repeat_penalty", 1e-6, 100))
    s.repeatPenalty = float(*v);
  if (auto v = f.integer("repeat_last_n", 0, INT32_MAX))
    s.repeatLastN = int32_t(*v);
  if (auto v = f.integer("seed", INT64_MIN, INT64_MAX)) {
    s.seed = uint64_t(*v);
    r.seedGiven = true;
  }
  if (auto v = f.boolean("ignore_eos"))
    r.ignoreEos = *v;
  if (const json *lb = f.get("logit_bias")) {
    if (!lb->is_object())
      f.fail("logit_bias",
             fmt::format("expected an object of token id -> bias, got {}", typeName(*lb)));
    else
      for (const auto &[key, val] : lb->items()) {
        int64_t id = -1;
        auto [ptr, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
        if (ec != std::errc() || ptr != key.data() + key.size() || id < 0 || id > INT32_MAX ||
            !val.is_number() || !std::isfinite(val.get<double>()) || val.get<double>() < -100 ||
            val.get<double>() > 100) {
          f.fail("logit_bias", "keys must be token ids and values numbers in [-100, 100]");
          break;
        }
        const double b = val.get<double>();
        // OpenAI: -100 effectively bans the token.
        s.logitBias.push_back(
            {int32_t(id), b <= -100 ? -std::numeric_limits<float>::infinity() : float(b)});
      }
  }
  if (const json *st = f.get("stop")) {
    if (st->is_string()) {
      r.stop.push_back(st->get<std::string>());
    } else if (st->is_array()) {
      if (st->size() > size_t(kMaxStopStrings))
        f.fail("stop", fmt::format("at most {} stop strings", kMaxStopStrings));
      for (const json &x : *st) {
        if (!x.is_string()) {
          f.fail("stop", fmt::format("expected strings, got {}", typeName(x)));
          break;
        }
        r.stop.push_back(x.get<std::string>());
      }
    } else {
      f.fail("stop",
             fmt::format("expected a string or an array of strings, got {}", typeName(*st)));
    }
  }
  if (endpoint == Endpoint::Chat) {
    if (auto v = f.boolean("logprobs"))
      r.logprobs = *v;
    if (auto v = f.integer("top_logprobs", 0, kMaxTopLogprobs)) {
      r.topLogprobs = int32_t(*v);
      if (!r.logprobs && !f.error)
        f.fail("top_logprobs", "requires logprobs: true");
    }
  } else {
    if (auto v = f.integer("logprobs", 0, 5)) {
      r.logprobs = true;
      r.topLogprobs = int32_t(*v);
    }
    if (auto v = f.boolean("echo"); v && *v)
      f.fail("echo", "echo is not supported");
    if (auto v = f.string("suffix"); v && !v->empty())
      f.fail("suffix", "suffix is not supported");
  }
  if (f.error)
    return *f.error;
  return r;
}

ApiResult<TokenizeRequest> parseTokenizeRequest(std::string_view body) {
  ApiResult<json> parsed = parseJsonObject(body);
  if (auto *e = std::get_if<ApiError>(&parsed))
    return *e;
  Fields f{std::get<json>(parsed), std::nullopt};
  TokenizeRequest r;
  std::optional<std::string> c = f.string("content");
  if (f.error)
    return *f.error;
  if (!c)
    return bad("content", "content: required string");
  r.content = std::move(*c);
  if (auto v = f.boolean("add_special"))
    r.addSpecial = *v;
  if (auto v = f.boolean("parse_special"))
    r.parseSpecial = *v;
  if (f.error)
    return *f.error;
  return r;
}

ApiResult<std::vector<int32_t>> parseDetokenizeRequest(std::string_view body) {
  ApiResult<json> parsed = parseJsonObject(body);
  if (auto *e = std::get_if<ApiError>(&parsed))
    return *e;
  const json &j = std::get<json>(parsed);
  auto t = j.find("tokens");
  if (t == j.end() || !t->is_array())
    return bad("tokens", "tokens: required array of token ids");
  std::optional<ApiError> err;
  std::optional<std::vector<int32_t>> ids = tokenArray(*t, "tokens", 1u << 24, err);
  if (!ids)
    return *err;
  return *ids;
}

} // namespace tern::server
