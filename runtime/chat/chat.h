// Chat templates: which built-in template a model's `tokenizer.chat_template`
// is, and rendering a conversation to prompt text exactly as Hugging Face's
// Jinja renderer (`@huggingface/jinja`) renders the real template strings.
//
// Like llama.cpp, there is no Jinja interpreter here: a template string is
// recognised by distinctive substrings and rendered by built-in code for its
// family. Built-ins (names for `--chat-template NAME`):
//
//   bitnet  BitNet b1.58 2B4T      `System: …<|eot_id|>User: …<|eot_id|>Assistant: `
//   llama3  Meta LLaMA-3 Instruct
//   `<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n…<|eot_id|>` chatml  ChatML
//   `<|im_start|>user\n…<|im_end|>\n`
//
// Each built-in reproduces one reference template string byte for byte
// (../shared/fixtures/chat-templates/; `referenceTemplate()`); other strings
// of the same family are rendered like the reference (`Recognition::exact`
// says which case it is). docs/chat.md has the rules (recognition, BOS,
// incremental rendering) and how the oracle test checks them.
//
// Errors are values (absl::Status) naming the thing at fault; nothing here
// throws or aborts on bad input.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tern::gguf {
class File;
}
namespace tern::tokenizer {
class Tokenizer;
}

namespace tern::chat {

enum class Role : uint8_t { System, User, Assistant };
std::string_view roleName(Role role); // "system", "user", "assistant"
// Parses "system" / "user" / "assistant" (exactly); the error names `name`.
absl::StatusOr<Role> parseRole(std::string_view name);

struct Message {
  Role role = Role::User;
  std::string content; // any bytes; UTF-8 expected (see trimContent)
};

enum class TemplateKind : uint8_t { Bitnet, Llama3, Chatml };
// The template used when the GGUF names none: BitNet b1.58 2B4T's.
inline constexpr TemplateKind kDefaultTemplate = TemplateKind::Bitnet;
inline constexpr std::string_view kChatTemplateKey = "tokenizer.chat_template";

std::string_view templateName(TemplateKind kind); // "bitnet", "llama3", "chatml"
std::span<const TemplateKind> allTemplates();
std::string supportedTemplateNames(); // "bitnet, llama3, chatml"
// By name (as for --chat-template); the error lists the supported names.
absl::StatusOr<TemplateKind> templateByName(std::string_view name);
// The template string this built-in reproduces exactly (the fixture's).
std::string_view referenceTemplate(TemplateKind kind);

// ---------------------------------------------------------------------------
// Recognition.
struct Recognition {
  TemplateKind kind = kDefaultTemplate;
  // The text is the built-in's reference string (or a built-in's name), so
  // the rendering is exactly Hugging Face's for it; false when the family
  // was recognised by substrings and details may differ.
  bool exact = false;
  std::string reason; // one line: what was recognised, by which substring
};

// Decides which built-in a `tokenizer.chat_template` string is. In order:
// the string is a built-in's name; contains "<|im_start|>" (and not Phi-4's
// "<|im_sep|>" nor SmolVLM's "<end_of_utterance>") -> chatml; contains
// "<|start_header_id|>" and "<|end_header_id|>" -> llama3; contains
// "BITNETAssistant" (the template Microsoft's GGUF conversion script writes
// for 2B4T) -> bitnet, not exact; contains "<|eot_id|>" and "Assistant: "
// -> bitnet. Anything else is an InvalidArgument error that quotes the start
// of the text and lists the supported names and the --chat-template flag.
absl::StatusOr<Recognition> recognizeTemplate(std::string_view text);

enum class TemplateSource : uint8_t {
  Override, // --chat-template NAME
  Gguf,     // recognised from tokenizer.chat_template
  Default,  // the GGUF names none (missing or empty key): kDefaultTemplate
};
std::string_view templateSourceName(TemplateSource source); // "override", "gguf", "default"

struct Selection {
  TemplateKind kind = kDefaultTemplate;
  TemplateSource source = TemplateSource::Default;
  bool exact = false;
  std::string reason;
};

// The template for a model: `overrideName` (non-empty: --chat-template) wins
// and the GGUF's string is not looked at; else tokenizer.chat_template
// recognised as above; else the 2B4T template. Errors: an unknown override
// name, a chat_template key that is not a string, an unrecognised string
// (all name the flag or key at fault).
absl::StatusOr<Selection> selectTemplate(const gguf::File &file,
                                         std::string_view overrideName = {});

// ---------------------------------------------------------------------------
// Rendering.
struct RenderOptions {
  // The text of the model's BOS / EOS tokens, given to the template as
  // `bos_token` / `eos_token` (only llama3 uses bos_token; no built-in uses
  // eos_token). `specialTokenText` fills them from a tokenizer.
  std::string bosToken;
  std::string eosToken;
  // Hugging Face's add_generation_prompt: end with the assistant header.
  bool addGenerationPrompt = true;
};

// The text of `tok`'s BOS and EOS tokens ("" where the model has none).
RenderOptions specialTokenText(const tokenizer::Tokenizer &tok);

// The prompt text for `messages`, byte for byte what @huggingface/jinja
// renders from referenceTemplate(kind) with messages, bos_token, eos_token
// and add_generation_prompt.
std::string render(TemplateKind kind, std::span<const Message> messages, const RenderOptions &opts);

// Incremental rendering. The text to append to render(history) made with
// addGenerationPrompt = false to obtain render(history + added) with
// opts.addGenerationPrompt:
//   render(history + added, opts) == render(history, {.., false}) + renderDelta(...)
// for every built-in and every history (each message renders on its own;
// llama3's BOS comes only with the very first message).
std::string renderDelta(TemplateKind kind, std::span<const Message> history,
                        std::span<const Message> added, const RenderOptions &opts);

// What the generation prompt writes: "Assistant: ",
// "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|im_start|>assistant\n".
std::string_view generationPrompt(TemplateKind kind);
// The text of the token that ends an assistant turn, where generation stops:
// "<|eot_id|>" (bitnet, llama3), "<|im_end|>" (chatml).
std::string_view endOfTurn(TemplateKind kind);
// What the template writes after an assistant's content: endOfTurn() plus
// whatever follows it ("<|im_end|>\n" for chatml).
std::string_view assistantSuffix(TemplateKind kind);
// True when the template writes bos_token itself (llama3): the tokenizer
// must then not add a second BOS (see tokenizePrompt).
bool templateEmitsBos(TemplateKind kind);

// For a chat session that keeps its KV cache across turns. The session holds
// render(history without the last reply, addGenerationPrompt = true) followed
// by the model's reply `historyWithReply.back()` (an Assistant message).
// Returns the text to feed next so that the session holds
// render(historyWithReply + added, opts): the rest of the assistant turn
// (assistantSuffix, without endOfTurn when `endOfTurnInSession`, i.e. the
// stop token was already fed) followed by renderDelta(historyWithReply,
// added). Exact when the reply is what the template makes of it (bitnet and
// llama3 trim message content: a reply with leading or trailing whitespace
// stays in the session as generated).
std::string continueAfterReply(TemplateKind kind, std::span<const Message> historyWithReply,
                               std::span<const Message> added, bool endOfTurnInSession,
                               const RenderOptions &opts);

// The text side of a chat that keeps one KV session across turns (what
// `tern chat` needs): records the conversation and hands out exactly the text
// to feed next, so that after every user turn the session holds
// render(messages(), addGenerationPrompt = true) -- see continueAfterReply
// for the one caveat (whitespace around replies).
class Conversation {
public:
  // opts: bos/eos text (specialTokenText); opts.addGenerationPrompt is ignored
  // (a user turn always ends with the generation prompt).
  Conversation(TemplateKind kind, RenderOptions opts);

  TemplateKind kind() const { return kind_; }
  const std::vector<Message> &messages() const { return messages_; }
  // Nothing fed yet: the next text starts the session (tokenizePrompt's
  // startOfSession, i.e. BOS handling).
  bool startOfSession() const { return !started_; }
  // A user turn was fed and its reply is not recorded yet.
  bool awaitingReply() const { return awaitingReply_; }

  // A system message; only before the first user turn (FailedPrecondition
  // otherwise).
  absl::Status addSystem(std::string content);
  // What to feed for a user turn: the whole prompt for the first turn
  // (startOfSession: tokenize with tokenizePrompt(tok, text, true)),
  // afterwards the rest of the previous assistant turn and the new user turn.
  struct Turn {
    std::string text;
    bool startOfSession = false;
  };
  // The user's next message. FailedPrecondition while a reply is awaited.
  absl::StatusOr<Turn> addUser(std::string content);
  // The model's reply to the last user turn, as generated (without the stop
  // token's text); endOfTurnInSession: the stop token was fed to the session.
  // FailedPrecondition when no reply is awaited.
  absl::Status addReply(std::string content, bool endOfTurnInSession);

private:
  TemplateKind kind_;
  RenderOptions opts_;
  std::vector<Message> messages_;
  bool started_ = false;
  bool awaitingReply_ = false;
  bool endOfTurnInSession_ = false;
};

// Content as the bitnet and llama3 templates use it (`message['content'] |
// trim`): @huggingface/jinja's trim is JavaScript's String.prototype.trim,
// which strips U+0009-U+000D, U+0020, U+00A0, U+1680, U+2000-U+200A,
// U+2028, U+2029, U+202F, U+205F, U+3000 and U+FEFF at both ends. (Python
// Jinja's trim, str.strip, differs only on U+001C-U+001F and U+0085, which
// it strips, and U+FEFF, which it keeps.) Bytes that are not well-formed
// UTF-8 are never stripped.
std::string_view trimContent(std::string_view content);

// ---------------------------------------------------------------------------
// Tokenizing rendered text (the BOS rule).
//
// Rendered text is tokenized with special-token parsing (so "<|eot_id|>" is
// one token). At the start of a session a BOS token is put in front when the
// tokenizer adds one (tokenizer.ggml.add_bos_token / the model default) and
// the text does not already begin with the BOS token's text (llama3 writes
// it itself); a delta (startOfSession = false) never gets one. Never an EOS.
bool shouldAddBos(const tokenizer::Tokenizer &tok, std::string_view text, bool startOfSession);
std::vector<int32_t> tokenizePrompt(const tokenizer::Tokenizer &tok, std::string_view text,
                                    bool startOfSession);

} // namespace tern::chat
