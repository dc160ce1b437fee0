// The OpenAI-compatible request side of `tern serve`: parsing and validating
// request bodies into plain structs, and OpenAI's error object. No HTTP and
// no model here, so tests and the fuzz target call it directly.
//
// Every refusal is an ApiError with the HTTP status to send and a message
// naming the field at fault ("temperature: expected a number, got string").
// Nothing here throws: JSON is parsed without exceptions, every field is
// type-checked before it is read, and nesting deeper than kMaxJsonDepth is
// refused before parsing (so a hostile body cannot exhaust the stack).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "nlohmann/json.hpp"
#include "runtime/chat/chat.h"
#include "runtime/sampling/sampler.h"

namespace tern::server {

using json = nlohmann::ordered_json;

inline constexpr int kMaxJsonDepth = 64;
inline constexpr int kMaxStopStrings = 16;
inline constexpr int kMaxTopLogprobs = 20;

// An error response: the HTTP status and OpenAI's error object
//   {"error": {"message", "type", "param", "code"}}
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param; // the field at fault ("" -> null)
  std::string code;  // "" -> null
};
json errorBody(const ApiError &e);
// The body as text (invalid UTF-8 replaced, never throws).
std::string dumpJson(const json &j);

template <class T> using ApiResult = std::variant<T, ApiError>;

enum class Endpoint : uint8_t { Chat, Completion };

// One generation request, as the scheduler needs it plus what the response
// echoes.
struct GenerationRequest {
  Endpoint endpoint = Endpoint::Chat;
  std::string model; // as sent ("" when absent)
  bool stream = false;
  bool includeUsage = false; // stream_options.include_usage
  // Chat: the conversation. Completion: the prompt as text, or as token ids.
  std::vector<chat::Message> messages;
  std::string prompt;
  std::optional<std::vector<int32_t>> promptTokens;
  std::optional<int32_t> maxTokens; // max_tokens / max_completion_tokens
  sampling::SamplerParams sampler;  // llama.cpp's defaults for fields not sent
  bool seedGiven = false;
  std::vector<std::string> stop;
  bool ignoreEos = false;
  // Chat: logprobs (bool) + top_logprobs (0..20); completion: logprobs N (0..5).
  bool logprobs = false;
  int32_t topLogprobs = 0;
};

// Parses a POST /v1/chat/completions or /v1/completions body.
ApiResult<GenerationRequest> parseGenerationRequest(Endpoint endpoint, std::string_view body);

// POST /tokenize: {"content": TEXT, "add_special": bool=true, "parse_special": bool=true}
struct TokenizeRequest {
  std::string content;
  bool addSpecial = true;
  bool parseSpecial = true;
};
ApiResult<TokenizeRequest> parseTokenizeRequest(std::string_view body);
// POST /detokenize: {"tokens": [ids]}
ApiResult<std::vector<int32_t>> parseDetokenizeRequest(std::string_view body);

// The body parsed as a JSON object (depth-checked), or a 400.
ApiResult<json> parseJsonObject(std::string_view body);

} // namespace tern::server
