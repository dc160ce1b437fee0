// Builds small valid .tern artifacts for the artifact and exec tests: the
// code section is the hand-written tiny_model.c shared object.
#pragma once

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "runtime/artifact/artifact.h"
#include "runtime/gguf/writer.h"

namespace tern::artifact::testing {

inline std::vector<uint8_t> readFile(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

inline std::vector<uint8_t> tinyTokenizerGguf() {
  gguf::Writer w;
  w.setString("tokenizer.ggml.model", "gpt2");
  w.setU32("tokenizer.ggml.bos_token_id", 1);
  w.setU32("tokenizer.ggml.eos_token_id", 2);
  return *w.toBytes();
}

inline std::vector<uint8_t> tinyWeights(size_t n = 256) {
  std::vector<uint8_t> w(n);
  for (size_t i = 0; i < n; ++i)
    w[i] = uint8_t(i * 3 + 1);
  return w;
}

inline HeaderFields tinyFields() {
  HeaderFields f;
#if defined(__x86_64__)
  f.targetTriple = "x86_64-unknown-linux-gnu";
  f.cpu = "x86-64";
  f.cpuFeatures = "+sse2,+cx8";
#elif defined(__aarch64__)
  f.targetTriple = "aarch64-unknown-linux-gnu";
  f.cpu = "generic";
  f.cpuFeatures = "+neon";
#endif
  f.compilerVersion = "ternc-test 0.0.1";
  f.sourceHash = 0x1234;
  f.sourceBytes = 999;
  return f;
}

inline std::string tinyMetadata() {
  return R"({"arch": "bitnet-b1.58", "abi_version": 5, "act_quant": "token",
             "hparams": {"hidden": 8, "n_layer": 2, "n_head": 2, "n_kv_head": 1,
                         "head_dim": 4, "ffn": 16, "vocab": 32, "max_ctx": 64},
             "model_config": {"arch": "bitnet-b1.58", "name": "tiny", "ffn_act": "relu2",
                              "vocab": 32, "hidden": 8, "layers": 2, "heads": 2,
                              "kv_heads": 1, "head_dim": 4, "ffn": 16, "rot_dim": 4,
                              "context_train": 64, "rms_eps": 1e-5, "rope_freq_base": 10000.0,
                              "tied_output": true, "bos_id": 1, "eos_id": 2, "eot_id": -1},
             "kernels": {"blk.0.attn_qkv": "tern_uk_matmul_i2s_ref"}})";
}

// A complete valid artifact around the shared object at `soPath`.
inline ArtifactWriter tinyWriter(const std::string &soPath, HeaderFields f = tinyFields()) {
  ArtifactWriter w(std::move(f));
  w.addSection(TERN_SECTION_METADATA, tinyMetadata());
  w.addSection(TERN_SECTION_TOKENIZER, tinyTokenizerGguf());
  w.addSection(TERN_SECTION_WEIGHTS, tinyWeights());
  w.addSection(TERN_SECTION_CODE, readFile(soPath));
  return w;
}

} // namespace tern::artifact::testing
