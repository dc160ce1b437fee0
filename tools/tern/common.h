// What every `tern` command shares: MODEL and the model flags, opening the
// model (a .tern, or a .gguf compiled into the cache or run on the reference
// path), the tokenizer, errors, and the ukernel receipts printed after a run.
// Internal to tools/tern (library tern_cli).
#pragma once

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/model/model.h"
#include "runtime/support/args.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tern::cli {

struct Common {
  std::string modelPath;
  model::ModelOptions opts;
  bool compile = false, reference = false;
  bool actQuantGiven = false, i2sGiven = false, headGiven = false;
  std::string kernel, target = "native";
};

// MODEL and the model options every command takes.
void addModelFlags(args::Parser &p, Common &c);

// Parses a command's flags: nullopt to go on, else the exit code (help
// printed, or an error naming the flag). `needModel`: no MODEL is an error.
std::optional<int> parseCommand(args::Parser &p, Common &c, const std::vector<std::string> &a,
                                std::ostream &out, std::ostream &err, bool needModel = true);

// "tern CMD: error: MESSAGE" on err; exit code 2 for InvalidArgument, else 1.
int fail(std::ostream &err, const std::string &cmd, const absl::Status &s);

// Opens the model the flags ask for: a .tern as is; a .gguf on the
// reference path, or (--compile / a ternc found) through ternc and the
// artifact cache.
absl::StatusOr<std::unique_ptr<model::Model>> openFor(Common &c, std::ostream &err);

using TokenizerPtr = std::unique_ptr<tokenizer::Tokenizer>;
// The model's tokenizer (from its GGUF metadata); an error where the source
// carries none.
absl::StatusOr<TokenizerPtr> loadTokenizer(const model::Model &m);

// The context length of the model's sessions (options().contextLength as the
// model resolved it).
uint32_t contextLength(const model::Model &m);

// Scalar fallbacks compiled in place of a missing fast ukernel (a warning).
void warnFallbacks(const model::Model &m, std::ostream &err);
// The ukernels the compiled code runs ("" for the reference path).
std::string kernelsLine(const model::Model &m);
// "ukernels run: ..." (and fallback warnings) on err.
void printKernels(const model::Model &m, std::ostream &err);

} // namespace tern::cli
