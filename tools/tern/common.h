// What every `tern` command shares: MODEL and the model flags, opening the
// model (a .tern, or a .gguf compiled into the cache or run on the reference
// path) and handing it to the C API (tern.h), the C API's handles and
// errors, and the ukernel receipts printed after a run. Internal to
// tools/tern (library tern_cli). docs/c-api.md, "The tools and the C API".
#pragma once

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/include/tern/tern.h"
#include "runtime/model/model.h"
#include "runtime/support/args.h"

namespace tern::cli {

struct Common {
  std::string modelPath;
  model::ModelOptions opts;
  bool compile = false, reference = false;
  bool actQuantGiven = false, i2sGiven = false, headGiven = false;
  bool kvTypeGiven = false; // --kv-type given (a .tern must agree)
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

// C API handles, freed by their tern_*_free.
struct ApiFree {
  void operator()(tern_model *p) const { tern_model_free(p); }
  void operator()(tern_session *p) const { tern_session_free(p); }
  void operator()(tern_sampler *p) const { tern_sampler_free(p); }
  void operator()(tern_detokenizer *p) const { tern_detokenizer_free(p); }
  void operator()(tern_stop_matcher *p) const { tern_stop_matcher_free(p); }
  void operator()(tern_chat *p) const { tern_chat_free(p); }
};
using ModelHandle = std::unique_ptr<tern_model, ApiFree>;
using SessionHandle = std::unique_ptr<tern_session, ApiFree>;
using SamplerHandle = std::unique_ptr<tern_sampler, ApiFree>;
using DetokenizerHandle = std::unique_ptr<tern_detokenizer, ApiFree>;
using StopHandle = std::unique_ptr<tern_stop_matcher, ApiFree>;
using ChatHandle = std::unique_ptr<tern_chat, ApiFree>;

// A failed C API call as a status (capi::lastStatus): its code kept
// (InvalidArgument stays exit code 2), its message without the C function's
// name.
absl::Status apiStatus(tern_status s);

// openFor, then the model handed to the C API (capi::adoptModel): the tools
// run through tern.h; the tool-only options were applied while opening.
absl::StatusOr<ModelHandle> openHandle(Common &c, std::ostream &err);

// The model's text tokenizer (TERN_TOKENIZE_ADD_SPECIAL: BOS as the model's
// metadata says); an error naming the tokenizer where the model has none.
absl::StatusOr<std::vector<int32_t>> tokenize(const tern_model *m, const std::string &text,
                                              bool addSpecial);

// Scalar fallbacks compiled in place of a missing fast ukernel (a warning).
void warnFallbacks(const model::Model &m, std::ostream &err);
// The ukernels the compiled code runs ("" for the reference path).
std::string kernelsLine(const model::Model &m);
// "ukernels run: ..." (and fallback warnings) on err.
void printKernels(const model::Model &m, std::ostream &err);
// The same for a model opened through openHandle (capi::cxxModel).
void printKernels(const tern_model *m, std::ostream &err);

} // namespace tern::cli
