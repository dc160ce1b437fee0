// Command-line flags for every tern tool (tern, ternc, tern-synth), in
// llama.cpp's style: short and long spellings (`-t 2`, `--threads 2`,
// `--threads=2`), typed values with range checks, repeatable flags,
// positional arguments, generated `--help`, and one error naming the flag at
// fault for anything it refuses (never an abort). No MLIR, no LLVM, no
// Abseil flags (which cannot spell `--top-k`).
//
//   args::Parser p("tern eval", "usage: tern eval MODEL --tokens IDS [options]\n");
//   p.integer("-t,--threads", &threads, 0, 1024, "N", "thread pool size");
//   p.flag("--json", &json, "JSON output");
//   if (std::optional<int> rc = p.parseOrExit(args, out, err)) return *rc;
#pragma once

#include <charconv>
#include <concepts>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tern::args {

// `text` as an integer in [lo, hi]; the error names `flag`.
template <std::integral T>
absl::StatusOr<T> parseInt(std::string_view flag, std::string_view text,
                           T lo = std::numeric_limits<T>::min(),
                           T hi = std::numeric_limits<T>::max());
// `text` as a finite number in [lo, hi]; the error names `flag`.
absl::StatusOr<double> parseNumber(std::string_view flag, std::string_view text, double lo,
                                   double hi);
// "1,2, 3" -> {1, 2, 3}, each in [lo, hi]; at least one; the error names `flag`.
absl::StatusOr<std::vector<int32_t>> parseIntList(std::string_view flag, std::string_view text,
                                                  int32_t lo, int32_t hi);

class Parser {
public:
  // Called with the flag as the user spelled it and its value.
  using Handler = std::function<absl::Status(std::string_view flag, const std::string &value)>;

  // `prog` prefixes errors ("tern eval: error: ..."); `usage` starts the help
  // text (usage line and description, ending in a newline).
  Parser(std::string prog, std::string usage);

  // `names` is a comma-separated list of spellings, e.g. "-t,--threads"; the
  // help lists them in that order. A flag given twice: the handler runs twice
  // (scalar destinations keep the last value, as in llama.cpp).
  Parser &value(std::string_view names, std::string_view metavar, std::string_view help,
                Handler handler);
  Parser &string(std::string_view names, std::string *dst, std::string_view metavar,
                 std::string_view help);
  // Integral T, or std::optional of one (set only when given).
  template <std::integral T>
  Parser &integer(std::string_view names, T *dst, std::type_identity_t<T> lo,
                  std::type_identity_t<T> hi, std::string_view metavar, std::string_view help);
  template <std::integral T>
  Parser &integer(std::string_view names, std::optional<T> *dst, std::type_identity_t<T> lo,
                  std::type_identity_t<T> hi, std::string_view metavar, std::string_view help);
  Parser &number(std::string_view names, double *dst, double lo, double hi,
                 std::string_view metavar, std::string_view help);
  Parser &number(std::string_view names, float *dst, double lo, double hi, std::string_view metavar,
                 std::string_view help);
  // One of the named values (aliases allowed: several names, one value).
  template <class E>
  Parser &choice(std::string_view names, E *dst, std::vector<std::pair<std::string, E>> values,
                 std::string_view metavar, std::string_view help);
  Parser &choice(std::string_view names, std::string *dst, std::vector<std::string> values,
                 std::string_view metavar, std::string_view help);
  // A value `parse` turns into std::optional<T> (nullopt: refused, the
  // error lists `choices`). Dst is T or std::optional<T>.
  template <class Dst, class Parse>
  Parser &parsed(std::string_view names, Dst *dst, Parse parse, std::string_view choices,
                 std::string_view metavar, std::string_view help);
  // Switches: take no value (`--json=yes` is an error).
  Parser &flag(std::string_view names, bool *dst, std::string_view help);
  Parser &flag(std::string_view names, std::function<void()> onSet, std::string_view help);
  // Positional arguments, in the order given; `handler` sees the metavar as
  // its flag. More positionals than handlers is an error naming the extra one.
  Parser &positional(std::string_view metavar, std::string_view help, Handler handler);
  // Starts a group of flags in the help, under "title:" (the first group is
  // "options"; naming an existing group adds to it).
  Parser &section(std::string_view title);
  // Text printed after the flags.
  Parser &epilog(std::string_view text);

  // Parses `args` (without the program and subcommand names). Stops at
  // -h/--help (helpRequested()); `--` ends the flags.
  absl::Status parse(const std::vector<std::string> &args);
  // parse(), then: help -> help() on `out`, returns 0; error -> one line
  // "<prog>: error: <message>" and a pointer to --help on `err`, returns 2;
  // otherwise nullopt (carry on).
  std::optional<int> parseOrExit(const std::vector<std::string> &args, std::ostream &out,
                                 std::ostream &err);

  bool helpRequested() const { return help_; }
  // Whether the flag with this spelling (any of its names) was given.
  bool given(std::string_view name) const;
  std::string help() const;
  const std::string &prog() const { return prog_; }

private:
  struct Spec {
    std::vector<std::string> names;
    std::string metavar, help;
    bool takesValue = true;
    Handler handler;
    int section = 0;
    bool given = false;
  };
  Spec *find(std::string_view name);
  const Spec *find(std::string_view name) const;
  Parser &add(std::string_view names, std::string_view metavar, std::string_view help,
              bool takesValue, Handler handler);
  std::string suggest(std::string_view name) const;

  std::string prog_, usage_, epilog_;
  std::vector<std::string> sections_;
  int currentSection_ = 0;
  std::vector<Spec> specs_, positionals_;
  bool help_ = false;
};

// ---------------------------------------------------------------------------
// Templates

namespace detail {
absl::Status notInteger(std::string_view flag, std::string_view text);
absl::Status outOfRange(std::string_view flag, std::string_view value, std::string_view lo,
                        std::string_view hi);
absl::Status notOneOf(std::string_view flag, std::string_view text,
                      const std::vector<std::string> &names);
absl::Status notOneOf(std::string_view flag, std::string_view text, std::string_view choices);
} // namespace detail

template <std::integral T>
absl::StatusOr<T> parseInt(std::string_view flag, std::string_view text, T lo, T hi) {
  T v{};
  if (text.empty())
    return detail::notInteger(flag, text);
  const char *first = text.data(), *last = text.data() + text.size();
  if (*first == '+')
    ++first;
  auto [p, ec] = std::from_chars(first, last, v);
  if (ec == std::errc::result_out_of_range)
    return detail::outOfRange(flag, text, std::to_string(lo), std::to_string(hi));
  if (ec != std::errc() || p != last || first == last)
    return detail::notInteger(flag, text);
  if (v < lo || v > hi)
    return detail::outOfRange(flag, text, std::to_string(lo), std::to_string(hi));
  return v;
}

template <std::integral T, class Dst> Parser::Handler integerHandler(Dst *dst, T lo, T hi) {
  return [dst, lo, hi](std::string_view flag, const std::string &v) -> absl::Status {
    absl::StatusOr<T> n = parseInt<T>(flag, v, lo, hi);
    if (!n.ok())
      return n.status();
    *dst = *n;
    return absl::OkStatus();
  };
}

template <std::integral T>
Parser &Parser::integer(std::string_view names, T *dst, std::type_identity_t<T> lo,
                        std::type_identity_t<T> hi, std::string_view metavar,
                        std::string_view help) {
  return value(names, metavar, help, integerHandler<T>(dst, lo, hi));
}

template <std::integral T>
Parser &Parser::integer(std::string_view names, std::optional<T> *dst, std::type_identity_t<T> lo,
                        std::type_identity_t<T> hi, std::string_view metavar,
                        std::string_view help) {
  return value(names, metavar, help, integerHandler<T>(dst, lo, hi));
}

template <class E>
Parser &Parser::choice(std::string_view names, E *dst,
                       std::vector<std::pair<std::string, E>> values, std::string_view metavar,
                       std::string_view help) {
  return value(names, metavar, help,
               [dst, values = std::move(values)](std::string_view flag,
                                                 const std::string &v) -> absl::Status {
                 std::vector<std::string> known;
                 for (const auto &[name, e] : values) {
                   if (name == v) {
                     *dst = e;
                     return absl::OkStatus();
                   }
                   known.push_back(name);
                 }
                 return detail::notOneOf(flag, v, known);
               });
}

template <class Dst, class Parse>
Parser &Parser::parsed(std::string_view names, Dst *dst, Parse parse, std::string_view choices,
                       std::string_view metavar, std::string_view help) {
  return value(names, metavar, help,
               [dst, parse, choices = std::string(choices)](std::string_view flag,
                                                            const std::string &v) -> absl::Status {
                 auto r = parse(v);
                 if (!r)
                   return detail::notOneOf(flag, v, choices);
                 *dst = *r;
                 return absl::OkStatus();
               });
}

} // namespace tern::args
