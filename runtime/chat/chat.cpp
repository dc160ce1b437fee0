#include "runtime/chat/chat.h"

#include <array>

#include <fmt/format.h>

#include "runtime/gguf/gguf.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tern::chat {
namespace {

constexpr std::array<TemplateKind, 3> kAll = {TemplateKind::Bitnet, TemplateKind::Llama3,
                                              TemplateKind::Chatml};

// The reference strings, byte for byte as in ../shared/fixtures/chat-templates
// (tests compare them with the files).
constexpr std::string_view kBitnetRef =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "message['role'] | capitalize + ': '+ message['content'] | trim + '<|eot_id|>' %}{{ content "
    "}}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}";
constexpr std::string_view kLlama3Ref =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% "
    "endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
constexpr std::string_view kChatmlRef =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\n' }}{% endif %}";

bool contains(std::string_view text, std::string_view needle) {
  return text.find(needle) != std::string_view::npos;
}

// Decodes one well-formed UTF-8 sequence at the start of `s` (shortest form,
// no surrogates, <= U+10FFFF). Returns its length, 0 when ill-formed.
size_t decodeFirst(std::string_view s, char32_t *cp) {
  if (s.empty())
    return 0;
  const auto b = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t b0 = b(0);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t len;
  char32_t c;
  char32_t min;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, c = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, c = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, c = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() < len)
    return 0;
  for (size_t i = 1; i < len; ++i) {
    if ((b(i) & 0xC0) != 0x80)
      return 0;
    c = (c << 6) | (b(i) & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
    return 0;
  *cp = c;
  return len;
}

// The well-formed UTF-8 sequence that ends `s`; 0 when there is none.
size_t decodeLast(std::string_view s, char32_t *cp) {
  for (size_t len = 1; len <= 4 && len <= s.size(); ++len) {
    const uint8_t lead = static_cast<uint8_t>(s[s.size() - len]);
    if ((lead & 0xC0) == 0x80)
      continue; // continuation byte: look further back
    return decodeFirst(s.substr(s.size() - len), cp) == len ? len : 0;
  }
  return 0;
}

// ECMAScript WhiteSpace + LineTerminator (what String.prototype.trim strips).
bool isJsWhitespace(char32_t c) {
  switch (c) {
  case 0x09:
  case 0x0A:
  case 0x0B:
  case 0x0C:
  case 0x0D:
  case 0x20:
  case 0xA0:
  case 0x1680:
  case 0x2028:
  case 0x2029:
  case 0x202F:
  case 0x205F:
  case 0x3000:
  case 0xFEFF:
    return true;
  default:
    return c >= 0x2000 && c <= 0x200A;
  }
}

// The start of `text`, printable on one line, for error messages.
std::string snippet(std::string_view text, size_t maxBytes = 60) {
  std::string out;
  size_t i = 0;
  while (i < text.size() && i < maxBytes) {
    char32_t cp;
    size_t n = decodeFirst(text.substr(i), &cp);
    if (n == 0) {
      out += fmt::format("\\x{:02x}", static_cast<uint8_t>(text[i]));
      ++i;
      continue;
    }
    if (cp == '\n')
      out += "\\n";
    else if (cp == '\t')
      out += "\\t";
    else if (cp == '"' || cp == '\\')
      out += '\\', out += static_cast<char>(cp);
    else if (cp < 0x20 || cp == 0x7F)
      out += fmt::format("\\x{:02x}", static_cast<unsigned>(cp));
    else
      out.append(text.substr(i, n));
    i += n;
  }
  return i < text.size() ? out + "..." : out;
}

std::string capitalizeRole(Role role) {
  std::string s(roleName(role));
  s[0] = static_cast<char>(s[0] - 'a' + 'A'); // roles are lower-case ASCII
  return s;
}

// One message as the template writes it; `index` is its position in the
// whole conversation (llama3 puts bos_token before message 0).
void renderMessage(TemplateKind kind, const Message &m, size_t index, const RenderOptions &opts,
                   std::string &out) {
  switch (kind) {
  case TemplateKind::Bitnet:
    out += capitalizeRole(m.role);
    out += ": ";
    out += trimContent(m.content);
    out += "<|eot_id|>";
    return;
  case TemplateKind::Llama3:
    if (index == 0)
      out += opts.bosToken;
    out += "<|start_header_id|>";
    out += roleName(m.role);
    out += "<|end_header_id|>\n\n";
    out += trimContent(m.content);
    out += "<|eot_id|>";
    return;
  case TemplateKind::Chatml:
    out += "<|im_start|>";
    out += roleName(m.role);
    out += '\n';
    out += m.content;
    out += "<|im_end|>\n";
    return;
  }
}

void renderFrom(TemplateKind kind, std::span<const Message> messages, size_t firstIndex,
                const RenderOptions &opts, std::string &out) {
  for (size_t i = 0; i < messages.size(); ++i)
    renderMessage(kind, messages[i], firstIndex + i, opts, out);
  if (opts.addGenerationPrompt)
    out += generationPrompt(kind);
}

} // namespace

std::string_view roleName(Role role) {
  switch (role) {
  case Role::System:
    return "system";
  case Role::User:
    return "user";
  case Role::Assistant:
    return "assistant";
  }
  return "user";
}

absl::StatusOr<Role> parseRole(std::string_view name) {
  for (Role r : {Role::System, Role::User, Role::Assistant})
    if (name == roleName(r))
      return r;
  return absl::InvalidArgumentError(
      fmt::format("chat message role \"{}\" is not one of system, user, assistant", snippet(name)));
}

std::string_view templateName(TemplateKind kind) {
  switch (kind) {
  case TemplateKind::Bitnet:
    return "bitnet";
  case TemplateKind::Llama3:
    return "llama3";
  case TemplateKind::Chatml:
    return "chatml";
  }
  return "bitnet";
}

std::span<const TemplateKind> allTemplates() { return kAll; }

std::string supportedTemplateNames() {
  std::string s;
  for (TemplateKind k : kAll) {
    if (!s.empty())
      s += ", ";
    s += templateName(k);
  }
  return s;
}

absl::StatusOr<TemplateKind> templateByName(std::string_view name) {
  for (TemplateKind k : kAll)
    if (name == templateName(k))
      return k;
  return absl::InvalidArgumentError(
      fmt::format("--chat-template: unknown chat template \"{}\"; supported: {}", snippet(name),
                  supportedTemplateNames()));
}

std::string_view referenceTemplate(TemplateKind kind) {
  switch (kind) {
  case TemplateKind::Bitnet:
    return kBitnetRef;
  case TemplateKind::Llama3:
    return kLlama3Ref;
  case TemplateKind::Chatml:
    return kChatmlRef;
  }
  return kBitnetRef;
}

absl::StatusOr<Recognition> recognizeTemplate(std::string_view text) {
  for (TemplateKind k : kAll) {
    if (text == templateName(k))
      return Recognition{k, true, fmt::format("the template is named \"{}\"", templateName(k))};
    if (text == referenceTemplate(k))
      return Recognition{k, true,
                         fmt::format("the reference {} template, byte for byte", templateName(k))};
  }
  if (contains(text, "<|im_start|>") && !contains(text, "<|im_sep|>") &&
      !contains(text, "<end_of_utterance>"))
    return Recognition{TemplateKind::Chatml, false,
                       "a ChatML template (contains \"<|im_start|>\")"};
  if (contains(text, "<|start_header_id|>") && contains(text, "<|end_header_id|>"))
    return Recognition{
        TemplateKind::Llama3, false,
        "a LLaMA-3 template (contains \"<|start_header_id|>\" and \"<|end_header_id|>\")"};
  if (contains(text, "BITNETAssistant"))
    return Recognition{TemplateKind::Bitnet, false,
                       "the template Microsoft's GGUF conversion writes for BitNet b1.58 2B4T "
                       "(\"Human: \"/\"BITNETAssistant: \"), which is not the one the model "
                       "was trained with; rendering the 2B4T reference template instead"};
  if (contains(text, "<|eot_id|>") && contains(text, "Assistant: "))
    return Recognition{
        TemplateKind::Bitnet, false,
        "a BitNet b1.58 2B4T template (contains \"<|eot_id|>\" and \"Assistant: \")"};
  return absl::InvalidArgumentError(fmt::format(
      "{}: chat template ({} bytes, \"{}\") is none of the built-in ones ({}: recognised by "
      "\"User: ...<|eot_id|>Assistant: \", \"<|start_header_id|>\", \"<|im_start|>\"); choose "
      "one with --chat-template NAME",
      kChatTemplateKey, text.size(), snippet(text), supportedTemplateNames()));
}

std::string_view templateSourceName(TemplateSource source) {
  switch (source) {
  case TemplateSource::Override:
    return "override";
  case TemplateSource::Gguf:
    return "gguf";
  case TemplateSource::Default:
    return "default";
  }
  return "default";
}

absl::StatusOr<Selection> selectTemplate(const gguf::File &file, std::string_view overrideName) {
  if (!overrideName.empty()) {
    absl::StatusOr<TemplateKind> k = templateByName(overrideName);
    if (!k.ok())
      return k.status();
    return Selection{*k, TemplateSource::Override, true,
                     fmt::format("--chat-template {}", templateName(*k))};
  }
  const gguf::Value *v = file.find(kChatTemplateKey);
  if (v == nullptr)
    return Selection{
        kDefaultTemplate, TemplateSource::Default, true,
        fmt::format("the GGUF has no {}; using the BitNet b1.58 2B4T template", kChatTemplateKey)};
  const std::string *text = v->asString();
  if (text == nullptr)
    return absl::InvalidArgumentError(fmt::format("{}: {} is of type {}, expected a string",
                                                  file.path(), kChatTemplateKey,
                                                  gguf::valueTypeName(v->type)));
  if (text->empty())
    return Selection{kDefaultTemplate, TemplateSource::Default, true,
                     fmt::format("the GGUF's {} is empty; using the BitNet b1.58 2B4T template",
                                 kChatTemplateKey)};
  absl::StatusOr<Recognition> r = recognizeTemplate(*text);
  if (!r.ok()) {
    std::string m(r.status().message().data(), r.status().message().size());
    return absl::InvalidArgumentError(fmt::format("{}: {}", file.path(), m));
  }
  return Selection{r->kind, TemplateSource::Gguf, r->exact, std::move(r->reason)};
}

RenderOptions specialTokenText(const tokenizer::Tokenizer &tok) {
  RenderOptions o;
  if (tok.bos() >= 0)
    o.bosToken = std::string(tok.tokenText(tok.bos()));
  if (tok.eos() >= 0)
    o.eosToken = std::string(tok.tokenText(tok.eos()));
  return o;
}

std::string render(TemplateKind kind, std::span<const Message> messages,
                   const RenderOptions &opts) {
  std::string out;
  renderFrom(kind, messages, 0, opts, out);
  return out;
}

std::string renderDelta(TemplateKind kind, std::span<const Message> history,
                        std::span<const Message> added, const RenderOptions &opts) {
  std::string out;
  renderFrom(kind, added, history.size(), opts, out);
  return out;
}

std::string_view generationPrompt(TemplateKind kind) {
  switch (kind) {
  case TemplateKind::Bitnet:
    return "Assistant: ";
  case TemplateKind::Llama3:
    return "<|start_header_id|>assistant<|end_header_id|>\n\n";
  case TemplateKind::Chatml:
    return "<|im_start|>assistant\n";
  }
  return "";
}

std::string_view endOfTurn(TemplateKind kind) {
  return kind == TemplateKind::Chatml ? "<|im_end|>" : "<|eot_id|>";
}

std::string_view assistantSuffix(TemplateKind kind) {
  return kind == TemplateKind::Chatml ? "<|im_end|>\n" : "<|eot_id|>";
}

bool templateEmitsBos(TemplateKind kind) { return kind == TemplateKind::Llama3; }

std::string continueAfterReply(TemplateKind kind, std::span<const Message> historyWithReply,
                               std::span<const Message> added, bool endOfTurnInSession,
                               const RenderOptions &opts) {
  std::string out(assistantSuffix(kind).substr(endOfTurnInSession ? endOfTurn(kind).size() : 0));
  renderFrom(kind, added, historyWithReply.size(), opts, out);
  return out;
}

Conversation::Conversation(TemplateKind kind, RenderOptions opts)
    : kind_(kind), opts_(std::move(opts)) {
  opts_.addGenerationPrompt = true;
}

absl::Status Conversation::addSystem(std::string content) {
  if (started_)
    return absl::FailedPreconditionError(
        "chat: a system message can only come before the first user turn");
  messages_.push_back({Role::System, std::move(content)});
  return absl::OkStatus();
}

absl::StatusOr<Conversation::Turn> Conversation::addUser(std::string content) {
  if (awaitingReply_)
    return absl::FailedPreconditionError(
        "chat: the reply to the previous user turn was not recorded (addReply)");
  std::vector<Message> added = {{Role::User, std::move(content)}};
  std::string text = started_
                         ? continueAfterReply(kind_, messages_, added, endOfTurnInSession_, opts_)
                         : renderDelta(kind_, messages_, added, opts_);
  if (!started_) {
    // The first text is the whole prompt: the system message (if any) too.
    RenderOptions noGen = opts_;
    noGen.addGenerationPrompt = false;
    text = render(kind_, messages_, noGen) + text;
  }
  messages_.push_back(std::move(added[0]));
  const bool first = !started_;
  started_ = true;
  awaitingReply_ = true;
  return Turn{std::move(text), first};
}

absl::Status Conversation::addReply(std::string content, bool endOfTurnInSession) {
  if (!awaitingReply_)
    return absl::FailedPreconditionError("chat: a reply without a user turn to answer");
  messages_.push_back({Role::Assistant, std::move(content)});
  awaitingReply_ = false;
  endOfTurnInSession_ = endOfTurnInSession;
  return absl::OkStatus();
}

std::string_view trimContent(std::string_view content) {
  char32_t cp;
  while (size_t n = decodeFirst(content, &cp)) {
    if (!isJsWhitespace(cp))
      break;
    content.remove_prefix(n);
  }
  while (size_t n = decodeLast(content, &cp)) {
    if (!isJsWhitespace(cp))
      break;
    content.remove_suffix(n);
  }
  return content;
}

bool shouldAddBos(const tokenizer::Tokenizer &tok, std::string_view text, bool startOfSession) {
  if (!startOfSession || !tok.addBos() || tok.bos() < 0)
    return false;
  std::string_view bosText = tok.tokenText(tok.bos());
  return bosText.empty() || !text.starts_with(bosText);
}

std::vector<int32_t> tokenizePrompt(const tokenizer::Tokenizer &tok, std::string_view text,
                                    bool startOfSession) {
  std::vector<int32_t> ids;
  if (shouldAddBos(tok, text, startOfSession))
    ids.push_back(tok.bos());
  std::vector<int32_t> body = tok.encode(text, /*addSpecial=*/false, /*parseSpecial=*/true);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

} // namespace tern::chat
