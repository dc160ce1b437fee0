// tern-synth: synthetic BitNet GGUF models of any shape (library behind the
// `tern-synth` tool; tests use it directly).
//
// Models look like ../shared/fixtures/models/*.gguf: llama.cpp tensor names,
// random ternary weights {-s, 0, +s} (about 35% zeros, one scale s per tensor,
// s exactly representable in f16 so every storage format holds the same
// weights), f32 norm weights in [0.8, 1.2], f16 tied token_embd (no
// output.weight), attn_sub_norm / ffn_sub_norm. Everything is a pure function
// of the Config (seed included): each tensor has its own random stream
// derived from the seed and its name, so tensors can be generated lazily and
// in any order.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/formats/ternary.h"
#include "runtime/gguf/gguf.h"
#include "runtime/gguf/writer.h"

namespace tern::synth {

// How the ternary projection weights are stored.
enum class Storage : uint8_t { TQ1_0, TQ2_0, I2_S, F16, F32 };
const char *storageName(Storage s);                         // "tq1_0", ...
std::optional<Storage> parseStorage(std::string_view name); // case-insensitive
uint32_t storageTypeId(Storage s);   // GGUF tensor type id (34, 35, 36, 1, 0)
uint32_t storageFileType(Storage s); // general.file_type (36, 37, 40, 1, 0)

struct Config {
  std::string arch = "bitnet"; // "bitnet" (SiLU FFN) or "bitnet-b1.58" (relu² FFN)
  std::string name;            // general.name; empty: "synthetic-<arch>-<hidden>x<layers>"
  uint64_t hidden = 256;
  uint64_t layers = 2;
  uint64_t heads = 4;
  uint64_t kvHeads = 2;
  uint64_t ffn = 512;
  uint64_t ctx = 4096;
  // Token count. 0: what the vocabulary gives (356 for the built-in one, the
  // source's count with vocabFrom). With the built-in vocabulary a value
  // >= 258 picks the number of merges (vocabSize - 258).
  uint64_t vocabSize = 0;
  float ropeFreqBase = 500000.0f;
  float rmsEps = 1e-5f;
  Storage storage = Storage::TQ2_0;
  formats::I2SLayout i2sLayout = formats::I2SLayout::X86_QK128;
  uint64_t seed = 1;
  std::string vocabFrom; // GGUF whose tokenizer.* keys are copied
  double zeroFraction = 0.35;
};

// "tiny" (fixture-like) and "2b4t" (BitNet b1.58 2B4T shapes; needs vocabFrom).
absl::StatusOr<Config> preset(std::string_view name);
// Shape / arch / format consistency; the message names the flag at fault.
absl::Status validate(const Config &c);

enum class TensorKind : uint8_t { Embedding, Norm, Ternary };
struct TensorSpec {
  std::string name;
  std::vector<uint64_t> dims; // ne0 first: [K, M] for matrices
  TensorKind kind;
};
// Every tensor, in file order (the fixtures' order). With vocabFrom and
// vocabSize 0 the embedding's vocab dim is unknown here: pass Model::config.
std::vector<TensorSpec> tensorList(const Config &c);

// Deterministic contents of one tensor.
formats::TernaryMatrix ternaryWeight(const Config &c, const TensorSpec &t); // one scale
std::vector<float> normWeight(const Config &c, const TensorSpec &t);
std::vector<uint16_t> embeddingF16(const Config &c, const TensorSpec &t); // f16 bits
// Bytes of one tensor as stored in the file for c.storage.
absl::StatusOr<std::vector<uint8_t>> tensorBytes(const Config &c, const TensorSpec &t);

// The tokenizer.* metadata (built-in byte-level BPE, or copied from vocabFrom).
absl::StatusOr<std::vector<std::pair<std::string, gguf::Value>>> tokenizerMetadata(const Config &c);
// All metadata, in file order.
absl::StatusOr<std::vector<std::pair<std::string, gguf::Value>>> metadata(const Config &c);

// A fully built model in memory (small shapes only): what round-trip tests
// compare a file against.
struct TensorData {
  TensorSpec spec;
  std::optional<formats::TernaryMatrix> ternary; // Ternary
  std::vector<float> f32;                        // Norm
  std::vector<uint16_t> f16;                     // Embedding
};
struct Model {
  Config config;
  std::vector<std::pair<std::string, gguf::Value>> metadata;
  std::vector<TensorData> tensors;
};
absl::StatusOr<Model> generate(const Config &c);

// A writer whose tensor data is generated lazily while writing.
absl::StatusOr<gguf::Writer> makeWriter(const Config &c);
absl::Status writeModel(const Config &c, const std::string &path);

// The command line: `tern-synth [--preset P] [flags] -o out.gguf`. Returns
// the exit status; messages go to stdout (--help) / stderr.
int runMain(int argc, char **argv);

} // namespace tern::synth
