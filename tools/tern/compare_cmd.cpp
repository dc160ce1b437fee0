// `tern compare GOLDEN RESULTS`: `tern eval --json` output held against a
// golden file by the fixtures' rule (model::compareWithGolden). The results
// come from another machine (scripts/cuda-device.sh: a GPU run fetched back),
// so the rule is applied here, in the same C++ the tests use.
#include <algorithm>
#include <fstream>
#include <sstream>

#include "fmt/format.h"
#include "runtime/model/eval.h"
#include "runtime/support/args.h"
#include "runtime/support/status.h"
#include "tools/tern/commands.h"
#include "tools/tern/common.h"

namespace tern::cli {

namespace {

constexpr const char *kCompareUsage =
    R"(usage: tern compare GOLDEN RESULTS [--tolerance P] [--gap G] [--brief]

Compares the results of `tern eval --json` (one object per line, or a JSON
array) with a golden file in the shape of shared/fixtures/golden/*.json, entry
by entry in order, by the fixtures' rule: at each step, dp = the largest
|p_ours(id) - p_golden(id)| over the golden's listed ids, from step 0 up to
the first step whose greedy picks part; every dp must be within the tolerance,
and a parting is an error only where the golden's top two differ by more than
the gap. The results must list each golden id's probability at each step
(`tern eval --top N` with N the vocabulary size lists them all) and be fed the
golden's input. Greedy results need no forced picks: up to the first parting
they fed the golden's own tokens, and no later step is compared. Exit status: 0 all entries within tolerance, 1 a mismatch,
2 unreadable files or results that cannot be compared.
)";

// A JSON array of entries, or one entry per non-empty line.
absl::StatusOr<std::vector<model::EvalResult>> readResults(const std::string &path) {
  std::ifstream in(path);
  if (!in)
    return absl::NotFoundError(fmt::format("cannot open results file {}", path));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[')
    return model::readGoldenFile(path);
  std::vector<model::EvalResult> out;
  std::istringstream lines(text);
  std::string line;
  for (int no = 1; std::getline(lines, line); ++no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object())
      return absl::InvalidArgumentError(fmt::format("{} line {}: not a JSON object", path, no));
    absl::StatusOr<model::EvalResult> r = model::evalFromJson(j);
    if (!r.ok())
      return absl::InvalidArgumentError(
          fmt::format("{} line {}: {}", path, no, std::string(r.status().message())));
    out.push_back(std::move(*r));
  }
  return out;
}

// `ours`' listed probabilities as the full distributions compareWithGolden
// reads; every id of the golden's top lists must be among them.
absl::Status fillProbs(const model::EvalResult &golden, model::EvalResult &ours, size_t entry) {
  for (size_t i = 0; i < ours.steps.size(); ++i) {
    model::EvalStep &s = ours.steps[i];
    int32_t maxId = -1;
    for (const auto &[id, p] : s.top)
      maxId = std::max(maxId, id);
    s.probs.assign(size_t(maxId + 1), -1.0);
    for (const auto &[id, p] : s.top)
      if (id >= 0)
        s.probs[size_t(id)] = p;
    if (i >= golden.steps.size())
      continue;
    for (const auto &[id, p] : golden.steps[i].top)
      if (id < 0 || size_t(id) >= s.probs.size() || s.probs[size_t(id)] < 0)
        return absl::InvalidArgumentError(fmt::format(
            "entry {} step {}: the results list no probability for the golden's id {} ({} listed; "
            "run tern eval with --top N, N the vocabulary size)",
            entry, i, id, s.top.size()));
  }
  return absl::OkStatus();
}

} // namespace

int cmdCompare(const std::vector<std::string> &a, std::ostream &out, std::ostream &err) {
  std::string goldenPath, resultsPath;
  double tolerance = 0.05, gap = 0.03;
  bool brief = false;
  args::Parser p("tern compare", kCompareUsage);
  p.positional("GOLDEN", "golden file (JSON array of entries)",
               [&](std::string_view, const std::string &v) {
                 goldenPath = v;
                 return absl::OkStatus();
               });
  p.positional("RESULTS", "tern eval --json output", [&](std::string_view, const std::string &v) {
    resultsPath = v;
    return absl::OkStatus();
  });
  p.number("--tolerance", &tolerance, 0, 1, "P", "largest dp allowed (default 0.05)");
  p.number("--gap", &gap, 0, 1, "G",
           "a parted pick is an error where the golden's top two\ndiffer by more (default 0.03)");
  p.flag("--brief", &brief, "one summary line (no line per entry)");
  if (std::optional<int> rc = p.parseOrExit(a, out, err))
    return *rc;
  if (goldenPath.empty() || resultsPath.empty())
    return fail(err, "compare", absl::InvalidArgumentError("give GOLDEN and RESULTS (see --help)"));
  absl::StatusOr<std::vector<model::EvalResult>> golden = model::readGoldenFile(goldenPath);
  if (!golden.ok())
    return fail(err, "compare", absl::InvalidArgumentError(statusMessage(golden.status())));
  absl::StatusOr<std::vector<model::EvalResult>> ours = readResults(resultsPath);
  if (!ours.ok())
    return fail(err, "compare", absl::InvalidArgumentError(statusMessage(ours.status())));
  if (golden->empty())
    return fail(err, "compare",
                absl::InvalidArgumentError(fmt::format("{}: no entries", goldenPath)));
  if (ours->size() != golden->size())
    return fail(
        err, "compare",
        absl::InvalidArgumentError(fmt::format("{} holds {} entries, {} holds {}", resultsPath,
                                               ours->size(), goldenPath, golden->size())));
  double worst = 0;
  size_t passed = 0;
  std::string failures;
  for (size_t e = 0; e < golden->size(); ++e) {
    const model::EvalResult &g = (*golden)[e];
    model::EvalResult &o = (*ours)[e];
    if (o.input != g.input)
      return fail(err, "compare",
                  absl::InvalidArgumentError(fmt::format(
                      "entry {}: the results were fed another input than the golden's", e)));
    if (absl::Status s = fillProbs(g, o, e); !s.ok())
      return fail(err, "compare", s);
    const model::GoldenComparison c = model::compareWithGolden(g, o.steps, tolerance, gap);
    worst = std::max(worst, c.maxDeltaP);
    passed += c.ok ? 1 : 0;
    if (!c.ok)
      failures += fmt::format("entry {}: {}", e, c.detail);
    if (!brief)
      out << fmt::format(
          "entry {} ({} input tokens): {} steps compared, max dp {:.5f} at step {}, {}, {}\n", e,
          g.input.size(), c.comparedSteps, c.maxDeltaP, c.maxDeltaStep,
          c.partedStep < 0 ? std::string("picks agree")
                           : fmt::format("picks part at step {} (golden margin {:.4f})",
                                         c.partedStep, c.partedMargin),
          c.ok ? "ok" : "MISMATCH: " + c.detail);
  }
  const bool ok = passed == golden->size();
  out << fmt::format("{} {}/{} entries within tolerance, max dp {:.5f} (tolerance {}, gap {}){}\n",
                     ok ? "ok" : "MISMATCH", passed, golden->size(), worst, tolerance, gap,
                     ok || !brief ? "" : ": " + failures);
  return ok ? 0 : 1;
}

} // namespace tern::cli
