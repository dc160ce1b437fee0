// Tests of the tools' flag parser (runtime/support/args.h).
#include "runtime/support/args.h"

#include <sstream>

#include "runtime/support/status.h"
#include "gtest/gtest.h"

namespace tern::args {
namespace {

enum class Mode { A, B };

struct Flags {
  int threads = 1;
  std::optional<uint64_t> seed;
  double eps = 1e-5;
  float base = 0;
  std::string model, out;
  bool json = false;
  int verbose = 0;
  Mode mode = Mode::A;
  std::vector<std::vector<int32_t>> tokens;
  int opt = 3;
};

Parser makeParser(Flags &f) {
  Parser p("demo", "usage: demo MODEL [options]\n");
  p.positional("MODEL", "the model", [&f](std::string_view, const std::string &v) {
    if (!f.model.empty())
      return absl::InvalidArgumentError("unexpected argument '" + v + "'");
    f.model = v;
    return absl::OkStatus();
  });
  p.integer("-t,--threads", &f.threads, 0, 64, "N", "threads\nsecond line");
  p.integer("-s,--seed", &f.seed, 0, UINT64_MAX, "N", "seed");
  p.number("--eps", &f.eps, 0.0, 1.0, "X", "epsilon");
  p.number("--rope-base", &f.base, 1e-3, 1e9, "X", "rope base");
  p.string("-o,--output", &f.out, "OUT", "output");
  p.flag("--json", &f.json, "json");
  p.flag("-v,--verbose", [&f] { ++f.verbose; }, "more");
  p.choice("--mode", &f.mode, {{"a", Mode::A}, {"b", Mode::B}, {"bee", Mode::B}}, "M", "mode");
  p.section("inputs");
  p.value("--tokens", "IDS", "ids (repeatable)",
          [&f](std::string_view flag, const std::string &v) -> absl::Status {
            absl::StatusOr<std::vector<int32_t>> ids = parseIntList(flag, v, 0, 1000);
            if (!ids.ok())
              return ids.status();
            f.tokens.push_back(*ids);
            return absl::OkStatus();
          });
  p.section("options");
  p.integer("-O", &f.opt, 0, 3, "N", "opt level");
  return p;
}

absl::Status parse(Flags &f, std::vector<std::string> args, Parser *out = nullptr) {
  Parser p = makeParser(f);
  absl::Status st = p.parse(args);
  if (out)
    *out = std::move(p);
  return st;
}

TEST(Args, ShortLongAndInlineSpellings) {
  Flags f;
  Parser p("", "");
  ASSERT_TRUE(parse(f,
                    {"m.gguf", "-t", "2", "--seed=7", "--eps", "0.5", "--rope-base=1e4", "-o",
                     "x.tern", "--json", "-v", "--verbose", "--mode", "bee", "--tokens", "1, 2,3",
                     "--tokens=4", "-O2"},
                    &p)
                  .ok());
  EXPECT_EQ(f.model, "m.gguf");
  EXPECT_EQ(f.threads, 2);
  EXPECT_EQ(f.seed, 7u);
  EXPECT_DOUBLE_EQ(f.eps, 0.5);
  EXPECT_FLOAT_EQ(f.base, 1e4f);
  EXPECT_EQ(f.out, "x.tern");
  EXPECT_TRUE(f.json);
  EXPECT_EQ(f.verbose, 2);
  EXPECT_EQ(f.mode, Mode::B);
  EXPECT_EQ(f.tokens, (std::vector<std::vector<int32_t>>{{1, 2, 3}, {4}}));
  EXPECT_EQ(f.opt, 2);
  EXPECT_TRUE(p.given("--threads"));
  EXPECT_TRUE(p.given("-t"));
  EXPECT_TRUE(p.given("--output"));
  EXPECT_FALSE(p.helpRequested());
}

TEST(Args, UnsetOptionalsStayUnset) {
  Flags f;
  Parser p("", "");
  ASSERT_TRUE(parse(f, {"m"}, &p).ok());
  EXPECT_FALSE(f.seed.has_value());
  EXPECT_FALSE(p.given("--seed"));
}

TEST(Args, LastValueWinsAndDashDashEndsFlags) {
  Flags f;
  ASSERT_TRUE(parse(f, {"-t", "2", "--threads", "3", "--", "-weird-name"}).ok());
  EXPECT_EQ(f.threads, 3);
  EXPECT_EQ(f.model, "-weird-name");
  Flags g;
  ASSERT_TRUE(parse(g, {"-o", "-"}).ok()); // "-" is a value like any other
  EXPECT_EQ(g.out, "-");
}

TEST(Args, ErrorsNameTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  for (const Case &c : std::vector<Case>{
           {{"--bogus"}, "unknown option '--bogus'"},
           {{"--thread", "2"}, "unknown option '--thread' (did you mean '--threads'?)"},
           {{"-t"}, "-t needs a value (N)"},
           {{"--threads", "x"}, "--threads: 'x' is not an integer"},
           {{"-t", "2x"}, "-t: '2x' is not an integer"},
           {{"-t", ""}, "-t: '' is not an integer"},
           {{"-t", "-3"}, "-t: -3 is out of range [0, 64]"},
           {{"-t", "99999999999999999999"}, "-t: 99999999999999999999 is out of range [0, 64]"},
           {{"--seed", "-1"}, "--seed: '-1' is not an integer"},
           {{"--eps", "abc"}, "--eps: 'abc' is not a number"},
           {{"--eps", "2"}, "--eps: 2 is out of range [0, 1]"},
           {{"--eps", "nan"}, "--eps: nan is out of range [0, 1]"},
           {{"--json=yes"}, "--json takes no value"},
           {{"--mode", "c"}, "--mode: 'c' is not one of a, b, bee"},
           {{"--tokens", "1,x"}, "--tokens: 'x' is not an integer"},
           {{"--tokens", "1,,2"}, "--tokens: '' is not an integer"},
           {{"--tokens", ""}, "--tokens: no values given"},
           {{"--tokens", "1001"}, "--tokens: 1001 is out of range [0, 1000]"},
           {{"-O9"}, "-O: 9 is out of range [0, 3]"},
           {{"a", "b"}, "unexpected argument 'b'"},
       }) {
    Flags f;
    absl::Status st = parse(f, c.args);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.args[0];
    EXPECT_EQ(statusMessage(st), c.message) << c.args[0];
  }
}

TEST(Args, ParseOrExitPrintsHelpOrOneError) {
  Flags f;
  Parser p = makeParser(f);
  std::ostringstream out, err;
  EXPECT_EQ(p.parseOrExit({"m", "--help", "--bogus"}, out, err), 0);
  EXPECT_TRUE(err.str().empty());
  const std::string h = out.str();
  EXPECT_EQ(h.rfind("usage: demo MODEL [options]\n", 0), 0u) << h;
  EXPECT_NE(h.find("\narguments:\n  MODEL"), std::string::npos) << h;
  // Help text starts in column 26; continuation lines are indented to it.
  EXPECT_NE(h.find("  -t, --threads N         threads\n"
                   "                          second line\n"),
            std::string::npos)
      << h;
  EXPECT_NE(h.find("      --json              json\n"), std::string::npos) << h;
  EXPECT_NE(h.find("  -h, --help              print this help and exit\n"), std::string::npos) << h;
  EXPECT_NE(h.find("\ninputs:\n      --tokens IDS"), std::string::npos) << h;
  EXPECT_NE(h.find("      --mode M            mode\n"
                   "  -O N                    opt level\n"
                   "  -h, --help              print this help and exit\n"),
            std::string::npos)
      << h;

  Flags g;
  Parser q = makeParser(g);
  std::ostringstream out2, err2;
  EXPECT_EQ(q.parseOrExit({"--greedy"}, out2, err2), 2);
  EXPECT_TRUE(out2.str().empty());
  EXPECT_EQ(err2.str(), "demo: error: unknown option '--greedy' (see 'demo --help')\n");

  Flags k;
  Parser r = makeParser(k);
  std::ostringstream out3, err3;
  EXPECT_EQ(r.parseOrExit({"m", "-t", "4"}, out3, err3), std::nullopt);
  EXPECT_EQ(k.threads, 4);
}

std::optional<int> parseColour(std::string_view s) {
  if (s == "red")
    return 1;
  if (s == "blue")
    return 2;
  return std::nullopt;
}

TEST(Args, ParsedValuesUseTheirParser) {
  int colour = 0;
  std::optional<int> maybe;
  Parser p("demo", "");
  p.parsed("--colour", &colour, parseColour, "red, blue", "C", "");
  p.parsed("--maybe", &maybe, parseColour, "red, blue", "C", "");
  ASSERT_TRUE(p.parse({"--colour", "blue"}).ok());
  EXPECT_EQ(colour, 2);
  EXPECT_FALSE(maybe.has_value());
  ASSERT_TRUE(p.parse({"--maybe=red"}).ok());
  EXPECT_EQ(maybe, 1);
  EXPECT_EQ(statusMessage(p.parse({"--colour", "green"})),
            "--colour: 'green' is not one of red, blue");
}

TEST(Args, ParseIntEdges) {
  EXPECT_EQ(*parseInt<int>("-n", "+5"), 5);
  EXPECT_EQ(*parseInt<int64_t>("-n", "-9223372036854775808"), INT64_MIN);
  EXPECT_FALSE(parseInt<int>("-n", "+").ok());
  EXPECT_FALSE(parseInt<int>("-n", " 5").ok());
  EXPECT_FALSE(parseInt<uint8_t>("-n", "256").ok());
  EXPECT_FALSE(parseNumber("-x", " 1", 0, 2).ok());
  EXPECT_FALSE(parseNumber("-x", "1e999", 0, 1e300).ok());
  EXPECT_DOUBLE_EQ(*parseNumber("-x", "1.5", 0, 2), 1.5);
}

} // namespace
} // namespace tern::args
