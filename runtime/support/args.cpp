#include "runtime/support/args.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "fmt/format.h"
#include "runtime/support/status.h"

namespace tern::args {

namespace detail {

absl::Status notInteger(std::string_view flag, std::string_view text) {
  return absl::InvalidArgumentError(fmt::format("{}: '{}' is not an integer", flag, text));
}

absl::Status outOfRange(std::string_view flag, std::string_view value, std::string_view lo,
                        std::string_view hi) {
  return absl::InvalidArgumentError(
      fmt::format("{}: {} is out of range [{}, {}]", flag, value, lo, hi));
}

absl::Status notOneOf(std::string_view flag, std::string_view text,
                      const std::vector<std::string> &names) {
  return notOneOf(flag, text, fmt::format("{}", fmt::join(names, ", ")));
}

absl::Status notOneOf(std::string_view flag, std::string_view text, std::string_view choices) {
  return absl::InvalidArgumentError(fmt::format("{}: '{}' is not one of {}", flag, text, choices));
}

} // namespace detail

absl::StatusOr<double> parseNumber(std::string_view flag, std::string_view text, double lo,
                                   double hi) {
  const std::string s(text);
  char *end = nullptr;
  errno = 0;
  const double v = s.empty() ? 0.0 : std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || std::isspace(static_cast<unsigned char>(s[0])))
    return absl::InvalidArgumentError(fmt::format("{}: '{}' is not a number", flag, text));
  if (!std::isfinite(v) || errno == ERANGE || v < lo || v > hi)
    return detail::outOfRange(flag, text, fmt::format("{}", lo), fmt::format("{}", hi));
  return v;
}

absl::StatusOr<std::vector<int32_t>> parseIntList(std::string_view flag, std::string_view text,
                                                  int32_t lo, int32_t hi) {
  std::vector<int32_t> out;
  size_t i = 0;
  while (i <= text.size()) {
    size_t j = std::min(text.find(',', i), text.size());
    std::string_view item = text.substr(i, j - i);
    while (!item.empty() && item.front() == ' ')
      item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ')
      item.remove_suffix(1);
    if (!item.empty() || j < text.size()) {
      absl::StatusOr<int32_t> v = parseInt<int32_t>(flag, item, lo, hi);
      if (!v.ok())
        return v.status();
      out.push_back(*v);
    }
    i = j + 1;
  }
  if (out.empty())
    return absl::InvalidArgumentError(fmt::format("{}: no values given", flag));
  return out;
}

// ---------------------------------------------------------------------------
// Parser

Parser::Parser(std::string prog, std::string usage)
    : prog_(std::move(prog)), usage_(std::move(usage)), sections_{"options"} {}

Parser &Parser::add(std::string_view names, std::string_view metavar, std::string_view help,
                    bool takesValue, Handler handler) {
  Spec s;
  size_t i = 0;
  while (i < names.size()) {
    size_t j = std::min(names.find(',', i), names.size());
    std::string_view n = names.substr(i, j - i);
    if (!n.empty())
      s.names.emplace_back(n);
    i = j + 1;
  }
  s.metavar = metavar;
  s.help = help;
  s.takesValue = takesValue;
  s.handler = std::move(handler);
  s.section = currentSection_;
  specs_.push_back(std::move(s));
  return *this;
}

Parser &Parser::value(std::string_view names, std::string_view metavar, std::string_view help,
                      Handler handler) {
  return add(names, metavar, help, true, std::move(handler));
}

Parser &Parser::string(std::string_view names, std::string *dst, std::string_view metavar,
                       std::string_view help) {
  return value(names, metavar, help, [dst](std::string_view, const std::string &v) {
    *dst = v;
    return absl::OkStatus();
  });
}

namespace {
template <class T> Parser::Handler numberHandler(T *dst, double lo, double hi) {
  return [dst, lo, hi](std::string_view flag, const std::string &v) -> absl::Status {
    absl::StatusOr<double> n = parseNumber(flag, v, lo, hi);
    if (!n.ok())
      return n.status();
    *dst = T(*n);
    return absl::OkStatus();
  };
}
} // namespace

Parser &Parser::number(std::string_view names, double *dst, double lo, double hi,
                       std::string_view metavar, std::string_view help) {
  return value(names, metavar, help, numberHandler(dst, lo, hi));
}

Parser &Parser::number(std::string_view names, float *dst, double lo, double hi,
                       std::string_view metavar, std::string_view help) {
  return value(names, metavar, help, numberHandler(dst, lo, hi));
}

Parser &Parser::choice(std::string_view names, std::string *dst, std::vector<std::string> values,
                       std::string_view metavar, std::string_view help) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (std::string &v : values)
    pairs.emplace_back(v, v);
  return choice<std::string>(names, dst, std::move(pairs), metavar, help);
}

Parser &Parser::flag(std::string_view names, bool *dst, std::string_view help) {
  return flag(names, [dst] { *dst = true; }, help);
}

Parser &Parser::flag(std::string_view names, std::function<void()> onSet, std::string_view help) {
  return add(names, "", help, false,
             [onSet = std::move(onSet)](std::string_view, const std::string &) {
               onSet();
               return absl::OkStatus();
             });
}

Parser &Parser::positional(std::string_view metavar, std::string_view help, Handler handler) {
  Spec s;
  s.names = {std::string(metavar)};
  s.metavar = metavar;
  s.help = help;
  s.handler = std::move(handler);
  positionals_.push_back(std::move(s));
  return *this;
}

Parser &Parser::section(std::string_view title) {
  // An existing title goes back to that group (its flags are listed together).
  auto it = std::find(sections_.begin(), sections_.end(), title);
  currentSection_ = int(it - sections_.begin());
  if (it == sections_.end())
    sections_.emplace_back(title);
  return *this;
}

Parser &Parser::epilog(std::string_view text) {
  epilog_ = text;
  return *this;
}

Parser::Spec *Parser::find(std::string_view name) {
  for (Spec &s : specs_)
    if (std::find(s.names.begin(), s.names.end(), name) != s.names.end())
      return &s;
  return nullptr;
}

const Parser::Spec *Parser::find(std::string_view name) const {
  return const_cast<Parser *>(this)->find(name);
}

bool Parser::given(std::string_view name) const {
  const Spec *s = find(name);
  return s && s->given;
}

namespace {
size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1] ? 1u : 0u)});
      diag = up;
    }
  }
  return row[b.size()];
}
} // namespace

// The closest known spelling, if it is close (a typo), for "did you mean".
std::string Parser::suggest(std::string_view name) const {
  std::string best;
  size_t bestD = 3;
  for (const Spec &s : specs_)
    for (const std::string &n : s.names) {
      const size_t d = n.size() > 2 ? editDistance(name, n) : bestD;
      if (d < bestD) {
        bestD = d;
        best = n;
      }
    }
  return best;
}

absl::Status Parser::parse(const std::vector<std::string> &args) {
  size_t nextPositional = 0;
  bool flagsDone = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string &a = args[i];
    if (!flagsDone && a == "--") {
      flagsDone = true;
      continue;
    }
    if (flagsDone || a.size() < 2 || a[0] != '-') {
      if (nextPositional >= positionals_.size())
        return absl::InvalidArgumentError(fmt::format("unexpected argument '{}'", a));
      Spec &p = positionals_[nextPositional++];
      p.given = true;
      if (absl::Status st = p.handler(p.metavar, a); !st.ok())
        return st;
      continue;
    }
    if (a == "-h" || a == "--help") {
      help_ = true;
      return absl::OkStatus();
    }
    std::string name = a;
    std::optional<std::string> inlineValue;
    if (a.rfind("--", 0) == 0) {
      if (size_t eq = a.find('='); eq != std::string::npos) {
        name = a.substr(0, eq);
        inlineValue = a.substr(eq + 1);
      }
    }
    Spec *s = find(name);
    if (!s && a[1] != '-' && a.size() > 2) {
      // -O3, -n5: a one-letter short flag with its value attached.
      if (Spec *shortSpec = find(a.substr(0, 2)); shortSpec && shortSpec->takesValue) {
        s = shortSpec;
        name = a.substr(0, 2);
        inlineValue = a.substr(2);
      }
    }
    if (!s) {
      std::string hint = suggest(name);
      return absl::InvalidArgumentError(
          hint.empty() ? fmt::format("unknown option '{}'", name)
                       : fmt::format("unknown option '{}' (did you mean '{}'?)", name, hint));
    }
    s->given = true;
    std::string value;
    if (!s->takesValue) {
      if (inlineValue)
        return absl::InvalidArgumentError(fmt::format("{} takes no value", name));
    } else if (inlineValue) {
      value = *inlineValue;
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(fmt::format(
          "{} needs a value{}", name, s->metavar.empty() ? "" : " (" + s->metavar + ")"));
    }
    if (absl::Status st = s->handler(name, value); !st.ok())
      return st;
  }
  return absl::OkStatus();
}

std::optional<int> Parser::parseOrExit(const std::vector<std::string> &args, std::ostream &out,
                                       std::ostream &err) {
  absl::Status st = parse(args);
  if (help_) {
    out << help();
    return 0;
  }
  if (!st.ok()) {
    err << prog_ << ": error: " << statusMessage(st) << " (see '" << prog_ << " --help')\n";
    return 2;
  }
  return std::nullopt;
}

namespace {
constexpr size_t kHelpColumn = 26;

// "  -t, --threads N" padded to the help column (or on a line of its own),
// then the help text with continuation lines indented to the column.
void helpEntry(std::string &out, const std::vector<std::string> &names, const std::string &metavar,
               const std::string &help) {
  std::string left = "  ";
  const bool shortFirst = names.front().size() == 2 || names.front()[1] != '-';
  if (!shortFirst)
    left += "    ";
  left += fmt::format("{}", fmt::join(names, ", "));
  if (!metavar.empty())
    left += " " + metavar;
  out += left;
  if (help.empty()) {
    out += "\n";
    return;
  }
  if (left.size() + 1 > kHelpColumn)
    out += "\n" + std::string(kHelpColumn, ' ');
  else
    out += std::string(kHelpColumn - left.size(), ' ');
  for (char c : help) {
    out += c;
    if (c == '\n')
      out += std::string(kHelpColumn, ' ');
  }
  out += "\n";
}
} // namespace

std::string Parser::help() const {
  std::string out = usage_;
  bool anyPositionalHelp = false;
  for (const Spec &p : positionals_)
    anyPositionalHelp |= !p.help.empty();
  if (anyPositionalHelp) {
    out += "\narguments:\n";
    for (const Spec &p : positionals_)
      helpEntry(out, {p.metavar}, "", p.help);
  }
  for (size_t sec = 0; sec < sections_.size(); ++sec) {
    bool any = false;
    for (const Spec &s : specs_)
      any |= s.section == int(sec);
    if (!any && sec != 0)
      continue;
    out += "\n" + sections_[sec] + ":\n";
    for (const Spec &s : specs_)
      if (s.section == int(sec))
        helpEntry(out, s.names, s.metavar, s.help);
    if (sec == 0)
      helpEntry(out, {"-h", "--help"}, "", "print this help and exit");
  }
  if (!epilog_.empty())
    out += "\n" + epilog_;
  return out;
}

} // namespace tern::args
