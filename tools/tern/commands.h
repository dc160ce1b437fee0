// The `tern` commands that live in their own files (cli.cpp dispatches).
// Internal to tools/tern (library tern_cli).
#pragma once

#include <istream>
#include <ostream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "runtime/exec/artifact_model.h"
#include "runtime/exec/op_profile.h"

namespace tern::cli {

// `tern chat MODEL`: user turns from `in` (one per line; a "> " prompt on
// `out` only when `inIsTerminal`). chat_cmd.cpp.
int cmdChat(const std::vector<std::string> &args, std::istream &in, bool inIsTerminal,
            std::ostream &out, std::ostream &err);

// `tern compare GOLDEN RESULTS`: `tern eval --json` output against a
// golden file by model::compareWithGolden's rule. compare_cmd.cpp.
int cmdCompare(const std::vector<std::string> &args, std::ostream &out, std::ostream &err);

// `tern bench --sampling`: samples/s of the sampling chain on synthetic
// logits over `vocab` tokens, each rate the best of 3 runs of at least
// `minCpuSeconds`. bench_sampling.cpp.
int benchSampling(int vocab, double minCpuSeconds, bool json, std::ostream &out, std::ostream &err);

// What one decode step reads (bench_model.cpp): every byte of the weights
// section (each matrix and the head once) -- less the untied embedding
// table, of which one row is read -- plus the f32 K and V of every position
// attention reads, averaged over decode steps at positions nPrompt ..
// nPrompt + nGen - 1.
struct DecodeBytes {
  double weights = 0, kv = 0, total = 0;
  bool embedRowOnly = false; // an untied embedding counted as one row
};
DecodeBytes decodeBytesPerToken(const exec::ArtifactModel &m, uint64_t nPrompt, uint64_t nGen);

// `tern bench --profile`: one phase's time per op kind as text (per token
// when perToken) and as JSON (totals). bench_model.cpp.
void printProfile(const exec::OpProfile &p, const char *phase, uint64_t tokens, bool perToken,
                  std::ostream &out);
nlohmann::ordered_json profileJson(const exec::OpProfile &p, uint64_t tokens);

} // namespace tern::cli
