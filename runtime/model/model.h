// What the runtime runs: a Model (weights + graph, from some source) and
// Sessions (one sequence each, with its own pages of the shared KV pool).
//
// The source is pluggable: today a GGUF file run by the scalar reference
// forward pass (`--kernel=ref`); later a compiled `.tern` artifact. Tools
// and tests talk to this interface only.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fmt/format.h"
#include "runtime/formats/ternary.h"
#include "runtime/gguf/gguf.h"
#include "runtime/model/config.h"
#include "runtime/model/kernels_ref.h"

namespace tern::model {

struct ModelOptions {
  ActQuant actQuant = ActQuant::PerToken;
  int threads = 1;            // thread pool size (<= 0: all cores)
  uint32_t contextLength = 0; // positions per session; 0: min(model's, 4096)
  uint32_t pageSize = 16;     // KV positions per page
  uint32_t kvPages = 0;       // pool size in pages; 0: one full context
  formats::I2SLayout i2sLayout = formats::I2SLayout::X86_QK128;
  bool verifyWeightsHash = true; // .tern: hash the weights section on open
};

class Session {
public:
  virtual ~Session() = default;
  // Number of positions already fed (the next token's position).
  virtual uint64_t position() const = 0;
};

class Model {
public:
  virtual ~Model() = default;
  virtual const ModelConfig &config() const = 0;
  virtual const ModelOptions &options() const = 0;
  // One line: source, kernel path, storage formats.
  virtual std::string describe() const = 0;
  // Metadata for the tokenizer (nullptr where the source has no GGUF).
  virtual const gguf::File *ggufFile() const = 0;

  // A fresh sequence. Takes no KV pages until it is fed.
  virtual absl::StatusOr<std::unique_ptr<Session>> newSession() = 0;
  // Feeds `tokens` at the session's next positions and writes the logits of
  // the last one into `logits` (size nVocab). On error (bad token id,
  // context full, KV pool exhausted) the session is left as it was.
  virtual absl::Status decode(Session &session, std::span<const int32_t> tokens,
                              std::span<float> logits) = 0;
};

// The error every Model::decode returns when `fed` more tokens do not fit
// behind the `used` positions of a session's context of `contextLength`.
inline absl::Status contextFullError(uint64_t used, uint64_t fed, uint32_t contextLength) {
  return absl::ResourceExhaustedError(
      fmt::format("context full: {} positions used + {} new > context length {} (raise -c)", used,
                  fed, contextLength));
}

// The reference forward pass over a GGUF. Opening a model by path
// (`.tern` or `.gguf`) is exec::openModel (runtime/exec/artifact_model.h).
absl::StatusOr<std::unique_ptr<Model>> openReferenceModel(const std::string &path,
                                                          const ModelOptions &options);

} // namespace tern::model
