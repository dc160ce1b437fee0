// Sessions on the pooled KV cache at the Model level, on the reference
// forward pass over a small generated model (tern-synth's library): pool
// accounting, exhaustion, truncation, fork, prefix sharing and the
// 10,000-operation churn (tests/model/session_suite.h). Runs in the
// sanitizer build too (no compiler needed); tests/exec/sessions_e2e_test.cpp
// runs the same suite on a compiled artifact.
#include <cstdio>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "runtime/model/model.h"
#include "tests/model/session_suite.h"
#include "tools/tern-synth/synth.h"
#include "gtest/gtest.h"

namespace tern::model {
namespace {

// hidden 32, one layer, 2 heads of 16 (one KV head), FFN 64, 258 tokens, F32
// weights: small enough for 10,000 operations under the sanitizers.
const std::string &smallModel() {
  static const std::string path = [] {
    synth::Config c;
    c.hidden = 32;
    c.layers = 1;
    c.heads = 2;
    c.kvHeads = 1;
    c.ffn = 64;
    c.ctx = 256;
    c.vocabSize = 258;
    c.storage = synth::Storage::F32;
    c.seed = 5;
    // One file per process: ctest runs these tests as parallel processes.
    const std::string p =
        ::testing::TempDir() + "/sessions-test-small-" + std::to_string(::getpid()) + ".gguf";
    absl::Status st = synth::writeModel(c, p);
    EXPECT_TRUE(st.ok()) << st;
    // Removed when the process exits (ctest runs many of them).
    static const struct Remove {
      std::string path;
      ~Remove() { std::remove(path.c_str()); }
    } remove{p};
    return p;
  }();
  return path;
}

std::unique_ptr<Model> openSmall(const ModelOptions &o) {
  auto m = openReferenceModel(smallModel(), o);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? std::move(*m) : nullptr;
}

TEST(ReferenceSessions, PoolAccountingForkAndTruncate) {
  suite::poolAccountingForkTruncate(openSmall, 1);
}

TEST(ReferenceSessions, PrefixSharing) { suite::prefixSharing(openSmall, 1); }

TEST(ReferenceSessions, ExhaustionFailsOnlyThatRequest) { suite::exhaustion(openSmall, 1); }

TEST(ReferenceSessions, ChurnOfTenThousandOperations) {
  suite::churn(openSmall, 1, 10000, 20261201);
}

} // namespace
} // namespace tern::model
