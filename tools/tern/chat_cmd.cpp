// `tern chat MODEL`: a conversation in the model's chat template, kept in one
// session across turns (each turn feeds only its own tokens: tern_chat_*),
// replies streamed token by token. Runs on the C API (tern.h).
// docs/cli.md, "tern chat".
#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fmt/format.h"
#include "runtime/support/status.h"
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

// Text through a chain of stop matchers (the template's end-of-turn text,
// then the user's stop strings).
struct Stops {
  StopHandle h;
  static absl::StatusOr<Stops> make(const std::vector<std::string> &stops) {
    std::vector<const char *> p;
    for (const std::string &s : stops)
      p.push_back(s.c_str());
    tern_stop_matcher *m = nullptr;
    if (tern_status st = tern_stop_matcher_create(p.data(), p.size(), &m))
      return apiStatus(st);
    return Stops{StopHandle(m)};
  }
  // The text safe to show; *stopped turns true on a match.
  std::string push(std::string_view text, bool *stopped) {
    const char *o = nullptr;
    size_t n = 0;
    int hit = 0;
    if (tern_stop_matcher_push(h.get(), text.data(), text.size(), &o, &n, &hit) != TERN_OK)
      return {};
    *stopped = *stopped || hit;
    return std::string(o, n);
  }
  std::string flush() {
    const char *o = nullptr;
    size_t n = 0;
    if (tern_stop_matcher_flush(h.get(), &o, &n) != TERN_OK)
      return {};
    return std::string(o, n);
  }
};

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
                       tern_chat_template_names()));
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
  const char *templateName = templateOverride.empty() ? nullptr : templateOverride.c_str();
  if (templateName) {
    const char *name = nullptr;
    if (tern_status st = tern_chat_template(nullptr, templateName, &name))
      return fail(err, "chat",
                  absl::InvalidArgumentError(
                      fmt::format("--chat-template: {}", statusMessage(apiStatus(st)))));
  }

  absl::StatusOr<ModelHandle> m = openHandle(c, err);
  if (!m.ok())
    return fail(err, "chat", m.status());
  tern_chat *rawChat = nullptr;
  if (tern_status st = tern_chat_create(m->get(), templateName, &rawChat))
    return fail(err, "chat",
                st == TERN_ERR_UNSUPPORTED
                    ? withContext(apiStatus(st), "tokenizer (chat needs one)")
                    : apiStatus(st));
  ChatHandle conv(rawChat);
  tern_chat_info sel;
  if (tern_status st = tern_chat_get_info(conv.get(), &sel))
    return fail(err, "chat", apiStatus(st));
  err << tern_model_describe(m->get()) << "\n";
  err << fmt::format("chat template: {} ({})\n", sel.template_name, sel.source_name);
  if (!sel.exact && sel.source == TERN_CHAT_TEMPLATE_GGUF)
    err << "tern chat: note: " << sel.reason << "\n";

  absl::StatusOr<SamplerHandle> sampler = makeSampler(sf, m->get(), err);
  if (!sampler.ok())
    return fail(err, "chat", sampler.status());
  const std::string_view eotText = sel.end_of_turn;
  const int32_t eotId = sel.end_of_turn_token;

  Sequence seq(m->get(), contextShift);
  if (!system.empty())
    if (tern_status st = tern_chat_add_system(conv.get(), system.data(), system.size()))
      return fail(err, "chat", apiStatus(st));
  // What a context shift keeps: the system prompt (with the BOS), else the BOS.
  size_t prefix = 0;
  if (tern_status st = tern_chat_prefix_tokens(conv.get(), &prefix))
    return fail(err, "chat", apiStatus(st));
  seq.setKeep(prefix);

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
    const int32_t *turnPtr = nullptr;
    size_t turnLen = 0;
    if (tern_status st =
            tern_chat_add_user(conv.get(), line.data(), line.size(), &turnPtr, &turnLen))
      return fail(err, "chat", apiStatus(st));
    const std::vector<int32_t> turnIds(turnPtr, turnPtr + turnLen);
    std::vector<int32_t> ids = pending;
    ids.insert(ids.end(), turnIds.begin(), turnIds.end());
    if (!seq.fits(ids.size()) && !contextShift) {
      err << fmt::format("tern chat: context full: this turn's {} tokens do not fit behind the {} "
                         "positions used of {}: chat ended (raise -c, or --context-shift)\n",
                         ids.size(), seq.position(), seq.contextLength());
      break;
    }
    const int shifts = seq.shifts();
    if (absl::Status s = seq.feed(ids); !s.ok())
      return fail(err, "chat", s);
    pending.clear();
    for (int32_t id : turnIds) // the penalties see the user's tokens, as in llama.cpp
      if (tern_status st = tern_sampler_accept(sampler->get(), id))
        return fail(err, "chat", apiStatus(st));
    if (seq.shifts() != shifts)
      err << fmt::format("tern chat: context shift: kept the first {} positions, dropped the "
                         "oldest after them\n",
                         seq.keep());
    if (verbosePrompt)
      err << fmt::format("turn {}: fed {} tokens at positions {}..{}: {}\n", turns, ids.size(),
                         seq.position() - ids.size(), seq.position() - 1, joinIds(ids));

    // The reply, streamed: token -> UTF-8-safe text -> end-of-turn text ->
    // the user's stop strings -> stdout.
    tern_detokenizer *rawStream = nullptr;
    if (tern_status st = tern_detokenizer_create(m->get(), 0, &rawStream))
      return fail(err, "chat", apiStatus(st));
    DetokenizerHandle stream(rawStream);
    absl::StatusOr<Stops> turnEnd = Stops::make({std::string(eotText)});
    if (!turnEnd.ok())
      return fail(err, "chat", turnEnd.status());
    absl::StatusOr<Stops> stops = Stops::make(sf.stops);
    if (!stops.ok())
      return fail(err, "chat", stops.status());
    std::string content;
    std::vector<int32_t> replyIds;
    bool endOfTurnFed = false, stopped = false, turnEndHit = false, stopHit = false;
    auto emit = [&](std::string_view piece) {
      std::string text = stops->push(turnEnd->push(piece, &turnEndHit), &stopHit);
      const bool e = turnEndHit;
      if (e && !stopHit)
        text += stops->flush();
      out << text << std::flush;
      content += text;
      if (e && !stopHit)
        endOfTurnFed = true; // once the last token is fed, the session holds the text
      return e || stopHit;
    };
    auto pushToken = [&](int32_t id) {
      const char *piece = nullptr;
      size_t len = 0;
      if (tern_detokenizer_push(stream.get(), id, &piece, &len) != TERN_OK)
        return std::string_view();
      return std::string_view(piece, len);
    };
    for (int i = 0; n < 0 || i < n; ++i) {
      int32_t next = -1;
      const std::span<const float> logits = seq.logits();
      tern_status st = tern_sampler_sample(sampler->get(), logits.data(), logits.size(), &next);
      if (st == TERN_OK)
        st = tern_sampler_accept(sampler->get(), next);
      if (st != TERN_OK)
        return fail(err, "chat", apiStatus(st));
      if (tern_token_is_eog(m->get(), next)) {
        // The template's end-of-turn token is fed with the next turn; another
        // end-of-generation token (EOS) is not, the template's text is.
        if (next == eotId) {
          pending.push_back(next);
          endOfTurnFed = true;
        }
        break;
      }
      replyIds.push_back(next);
      ++replyTokens;
      if (emit(pushToken(next))) {
        stopped = true;
        pending.push_back(next);
        break;
      }
      if (i + 1 == n) {
        pending.push_back(next);
        break;
      }
      if (!seq.fits(1) && !contextShift) {
        err << contextFullNotice("chat", seq);
        pending.push_back(next);
        ended = true;
        break;
      }
      const int sh = seq.shifts();
      if (absl::Status s = seq.feed(std::span<const int32_t>(&next, 1)); !s.ok())
        return fail(err, "chat", s);
      if (seq.shifts() != sh)
        err << fmt::format("\ntern chat: context shift: kept the first {} positions, dropped "
                           "the oldest after them\n",
                           seq.keep());
    }
    if (!stopped) {
      const char *rest = nullptr;
      size_t len = 0;
      if (tern_detokenizer_flush(stream.get(), &rest, &len) != TERN_OK)
        len = 0;
      if (!emit(std::string_view(rest, len))) {
        const std::string tail = stops->push(turnEnd->flush(), &stopHit) + stops->flush();
        out << tail;
        content += tail;
      }
    }
    out << "\n" << std::flush;
    if (verbosePrompt)
      err << fmt::format("reply {}: {} tokens: {}\n", turns, replyIds.size(), joinIds(replyIds));
    if (tern_status st =
            tern_chat_add_reply(conv.get(), content.data(), content.size(), endOfTurnFed))
      return fail(err, "chat", apiStatus(st));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  err << fmt::format("chat: {} turns, {} reply tokens; session holds {} of {} positions, {} "
                     "positions fed in all ({} context shifts); {:.3f} s\n",
                     turns, replyTokens, seq.position(), seq.contextLength(), seq.positionsFed(),
                     seq.shifts(), secs);
  return 0;
}

} // namespace tern::cli
