// `tern chat MODEL`: a conversation in the model's chat template, kept in one
// session across turns (each turn feeds only its own tokens), replies
// streamed token by token. docs/cli.md, "tern chat".
#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "runtime/chat/chat.h"
#include "runtime/sampling/sampler.h"
#include "runtime/sampling/stop.h"
#include "runtime/support/status.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tools/tern/commands.h"
#include "tools/tern/common.h"
#include "tools/tern/generate.h"

namespace tern::cli {

namespace {

constexpr const char *kChatUsage =
    R"(usage: tern chat MODEL [--system TEXT] [--chat-template NAME] [options]

Chats with MODEL: reads one user turn per line from stdin (a "> " prompt is
shown only when stdin is a terminal; end with EOF, Ctrl-D), renders it in the
model's chat template and streams the reply to stdout. The template is the
one --chat-template names (bitnet, llama3, chatml), else the one the GGUF's
tokenizer.chat_template is recognised as, else BitNet b1.58 2B4T's. The
conversation stays in one session: each turn feeds only its own tokens. A
reply ends at the template's end-of-turn token (or its text), an
end-of-generation token, a stop string, after -n tokens, or at the end of the
context (the chat then ends with a notice; --context-shift drops the oldest
tokens after the system prompt and goes on). Sampling as in `tern run`.
)";

// Joins ids as "1,2,3".
std::string joinIds(std::span<const int32_t> ids) {
  std::string s;
  for (int32_t id : ids) {
    if (!s.empty())
      s += ',';
    s += std::to_string(id);
  }
  return s;
}

} // namespace

int cmdChat(const std::vector<std::string> &a, std::istream &in, bool inIsTerminal,
            std::ostream &out, std::ostream &err) {
  Common c;
  int n = -1;
  bool contextShift = false, verbosePrompt = false;
  std::string system, templateOverride;
  SamplingFlags sf;
  args::Parser p("tern chat", kChatUsage);
  p.string("--system,--system-prompt", &system, "TEXT", "the system message");
  p.string("--chat-template", &templateOverride, "NAME",
           fmt::format("the chat template: {}\n(default: the GGUF's "
                       "tokenizer.chat_template,\nelse bitnet)",
                       chat::supportedTemplateNames()));
  p.integer("-n,--n-predict", &n, -1, 1 << 30, "N",
            "tokens per reply at most (default -1: until the\nend of the turn)");
  p.flag("--context-shift", &contextShift,
         "at the end of the context, drop the oldest half of\nthe tokens after the system "
         "prompt and go on\n(default: end the chat with a notice)");
  p.flag("--verbose-prompt", &verbosePrompt,
         "print on stderr, per turn, the token ids fed to the\nsession with their positions, "
         "and the reply's ids");
  addSamplingFlags(p, sf, /*withStops=*/true);
  addModelFlags(p, c);
  if (std::optional<int> rc = parseCommand(p, c, a, out, err))
    return *rc;
  if (!templateOverride.empty())
    if (absl::StatusOr<chat::TemplateKind> k = chat::templateByName(templateOverride); !k.ok())
      return fail(err, "chat", withContext(k.status(), "--chat-template"));

  absl::StatusOr<std::unique_ptr<model::Model>> m = openFor(c, err);
  if (!m.ok())
    return fail(err, "chat", m.status());
  const model::ModelConfig &cfg = (*m)->config();
  absl::StatusOr<TokenizerPtr> tok = loadTokenizer(**m);
  if (!tok.ok())
    return fail(err, "chat", withContext(tok.status(), "tokenizer (chat needs one)"));
  const tokenizer::Tokenizer &t = **tok;

  chat::Selection sel;
  if (const gguf::File *f = (*m)->ggufFile()) {
    absl::StatusOr<chat::Selection> s = chat::selectTemplate(*f, templateOverride);
    if (!s.ok())
      return fail(err, "chat", s.status());
    sel = *s;
  } else if (!templateOverride.empty()) {
    sel.kind = *chat::templateByName(templateOverride);
    sel.source = chat::TemplateSource::Override;
  }
  err << (*m)->describe() << "\n";
  err << fmt::format("chat template: {} ({})\n", chat::templateName(sel.kind),
                     chat::templateSourceName(sel.source));
  if (!sel.exact && sel.source == chat::TemplateSource::Gguf)
    err << "tern chat: note: " << sel.reason << "\n";

  const std::vector<int32_t> eogIds = endOfGenerationIds(&t, cfg);
  absl::StatusOr<sampling::Sampler> sampler = makeSampler(sf, **m, eogIds, err);
  if (!sampler.ok())
    return fail(err, "chat", sampler.status());
  const sampling::EndOfGeneration eog(eogIds);
  const std::string_view eotText = chat::endOfTurn(sel.kind);
  const std::optional<int32_t> eotId = t.findToken(eotText);

  chat::RenderOptions ro = chat::specialTokenText(t);
  chat::Conversation conv(sel.kind, ro);
  Sequence seq(**m, contextShift);
  // What a context shift keeps: the system prompt (with the BOS), else the BOS.
  if (!system.empty()) {
    if (absl::Status s = conv.addSystem(system); !s.ok())
      return fail(err, "chat", s);
    chat::RenderOptions sysOpts = ro;
    sysOpts.addGenerationPrompt = false;
    const chat::Message sys{chat::Role::System, system};
    seq.setKeep(chat::tokenizePrompt(t, chat::render(sel.kind, std::span(&sys, 1), sysOpts),
                                     /*startOfSession=*/true)
                    .size());
  } else {
    seq.setKeep(chat::shouldAddBos(t, "", true) || chat::templateEmitsBos(sel.kind) ? 1 : 0);
  }

  std::vector<float> logits(cfg.nVocab);
  std::vector<int32_t> pending; // sampled, not fed yet: starts the next turn's feed
  int turns = 0, replyTokens = 0;
  bool ended = false;
  const auto t0 = std::chrono::steady_clock::now();
  std::string line;
  while (!ended) {
    if (inIsTerminal)
      out << "> " << std::flush;
    if (!std::getline(in, line))
      break;
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos)
      continue;
    ++turns;
    absl::StatusOr<chat::Conversation::Turn> turn = conv.addUser(line);
    if (!turn.ok())
      return fail(err, "chat", turn.status());
    std::vector<int32_t> ids = pending;
    const std::vector<int32_t> turnIds = chat::tokenizePrompt(t, turn->text, turn->startOfSession);
    ids.insert(ids.end(), turnIds.begin(), turnIds.end());
    if (!seq.fits(ids.size()) && !contextShift) {
      err << fmt::format("tern chat: context full: this turn's {} tokens do not fit behind the {} "
                         "positions used of {}: chat ended (raise -c, or --context-shift)\n",
                         ids.size(), seq.position(), seq.contextLength());
      break;
    }
    const int shifts = seq.shifts();
    if (absl::Status s = seq.feed(ids, logits); !s.ok())
      return fail(err, "chat", s);
    pending.clear();
    for (int32_t id : turnIds) // the penalties see the user's tokens, as in llama.cpp
      sampler->accept(id);
    if (seq.shifts() != shifts)
      err << fmt::format("tern chat: context shift: kept the first {} positions, dropped the "
                         "oldest after them\n",
                         seq.keep());
    if (verbosePrompt)
      err << fmt::format("turn {}: fed {} tokens at positions {}..{}: {}\n", turns, ids.size(),
                         seq.position() - ids.size(), seq.position() - 1, joinIds(ids));

    // The reply, streamed: token -> UTF-8-safe text -> end-of-turn text ->
    // the user's stop strings -> stdout.
    tokenizer::StreamDecoder stream(t);
    sampling::StopStrings turnEnd({std::string(eotText)}), stops(sf.stops);
    std::string content;
    std::vector<int32_t> replyIds;
    bool endOfTurnFed = false, stopped = false;
    auto emit = [&](const std::string &piece) {
      sampling::StopStrings::Step e = turnEnd.push(piece);
      sampling::StopStrings::Step s = stops.push(e.text);
      if (e.stopped && !s.stopped)
        s.text += stops.flush();
      out << s.text << std::flush;
      content += s.text;
      if (e.stopped && !s.stopped)
        endOfTurnFed = true; // once the last token is fed, the session holds the text
      return e.stopped || s.stopped;
    };
    for (int i = 0; n < 0 || i < n; ++i) {
      absl::StatusOr<int32_t> next = sampler->sampleAndAccept(logits);
      if (!next.ok())
        return fail(err, "chat", next.status());
      if (eog.contains(*next)) {
        // The template's end-of-turn token is fed with the next turn; another
        // end-of-generation token (EOS) is not, the template's text is.
        if (eotId && *next == *eotId) {
          pending.push_back(*next);
          endOfTurnFed = true;
        }
        break;
      }
      replyIds.push_back(*next);
      ++replyTokens;
      if (emit(stream.push(*next))) {
        stopped = true;
        pending.push_back(*next);
        break;
      }
      if (i + 1 == n) {
        pending.push_back(*next);
        break;
      }
      if (!seq.fits(1) && !contextShift) {
        err << contextFullNotice("chat", seq);
        pending.push_back(*next);
        ended = true;
        break;
      }
      const int sh = seq.shifts();
      if (absl::Status s = seq.feed(std::span<const int32_t>(&*next, 1), logits); !s.ok())
        return fail(err, "chat", s);
      if (seq.shifts() != sh)
        err << fmt::format("\ntern chat: context shift: kept the first {} positions, dropped "
                           "the oldest after them\n",
                           seq.keep());
    }
    if (!stopped && !emit(stream.flush())) {
      const std::string rest = stops.push(turnEnd.flush()).text + stops.flush();
      out << rest;
      content += rest;
    }
    out << "\n" << std::flush;
    if (verbosePrompt)
      err << fmt::format("reply {}: {} tokens: {}\n", turns, replyIds.size(), joinIds(replyIds));
    if (absl::Status s = conv.addReply(content, endOfTurnFed); !s.ok())
      return fail(err, "chat", s);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  err << fmt::format("chat: {} turns, {} reply tokens; session holds {} of {} positions, {} "
                     "positions fed in all ({} context shifts); {:.3f} s\n",
                     turns, replyTokens, seq.position(), seq.contextLength(), seq.positionsFed(),
                     seq.shifts(), secs);
  return 0;
}

} // namespace tern::cli
