// Tests of the C++ bridge the `tern` tools use (runtime/capi/bridge.h),
// linked statically (tern_capi): a model opened by the C++ layer and handed
// to the C API runs as one opened by tern_model_open, its receipts stay
// readable, and C API errors come back as absl::Status with their codes.
#include <string>
#include <vector>

#include "runtime/capi/bridge.h"
#include "runtime/exec/artifact_model.h"
#include "runtime/support/status.h"
#include "gtest/gtest.h"

namespace {

using namespace tern;

const std::string kTq2 = std::string(TERN_SHARED_DIR) + "/fixtures/models/tiny-bitnet-tq2.gguf";

TEST(CApiBridge, AdoptedModelRunsLikeAnOpenedOne) {
  model::ModelOptions o;
  o.contextLength = 64;
  absl::StatusOr<std::unique_ptr<model::Model>> cxx = exec::openModel(kTq2, o);
  ASSERT_TRUE(cxx.ok()) << cxx.status();
  const model::Model *raw = cxx->get();
  const std::string describe = raw->describe();
  tern_model *m = nullptr;
  ASSERT_EQ(capi::adoptModel(std::move(*cxx), &m), TERN_OK) << tern_last_error();
  EXPECT_EQ(&capi::cxxModel(m), raw); // the same object: receipts read it
  EXPECT_EQ(std::string(tern_model_describe(m)), describe);
  tern_model_info info;
  ASSERT_EQ(tern_model_get_info(m, &info), TERN_OK);
  EXPECT_EQ(info.n_ctx, 64u);
  EXPECT_EQ(info.has_tokenizer, 1);
  EXPECT_EQ(info.compiled, 0);

  // Same logits as tern_model_open on the same file and options.
  tern_model_options mo;
  tern_model_options_init(&mo);
  mo.path = TERN_PATH_REFERENCE;
  mo.ctx_size = 64;
  tern_model *opened = nullptr;
  ASSERT_EQ(tern_model_open(kTq2.c_str(), &mo, &opened), TERN_OK) << tern_last_error();
  const std::vector<int32_t> prompt = {354, 116, 262, 281, 101};
  std::vector<std::vector<float>> logits;
  for (tern_model *x : {m, opened}) {
    tern_session *s = nullptr;
    ASSERT_EQ(tern_session_create(x, &s), TERN_OK);
    ASSERT_EQ(tern_decode(s, prompt.data(), prompt.size()), TERN_OK) << tern_last_error();
    const float *l = nullptr;
    size_t n = 0;
    ASSERT_EQ(tern_session_logits(s, &l, &n), TERN_OK);
    logits.emplace_back(l, l + n);
    tern_session_free(s);
  }
  EXPECT_EQ(logits[0], logits[1]);
  tern_model_free(opened);
  tern_model_free(m);

  tern_model *none = reinterpret_cast<tern_model *>(0x1);
  EXPECT_EQ(capi::adoptModel(nullptr, &none), TERN_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(none, nullptr);
}

TEST(CApiBridge, LastStatusKeepsTheCodeAndDropsTheFunctionName) {
  int32_t token = 0;
  ASSERT_EQ(tern_logits_argmax(nullptr, 3, &token), TERN_ERR_INVALID_ARGUMENT);
  absl::Status s = capi::lastStatus(TERN_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(statusMessage(s), "logits is NULL"); // was "tern_logits_argmax: logits is NULL"
  EXPECT_TRUE(capi::lastStatus(TERN_OK).ok());
  const char *name = nullptr;
  ASSERT_EQ(tern_chat_template(nullptr, "gemma", &name), TERN_ERR_NOT_FOUND);
  s = capi::lastStatus(TERN_ERR_NOT_FOUND);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(statusMessage(s).find("gemma"), std::string::npos) << s;
  EXPECT_EQ(statusMessage(s).rfind("tern_", 0), std::string::npos) << s;
  EXPECT_EQ(capi::lastStatus(TERN_ERR_CONTEXT_FULL).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(capi::lastStatus(TERN_ERR_STATE).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(capi::lastStatus(TERN_ERR_UNSUPPORTED).code(), absl::StatusCode::kUnimplemented);
}

TEST(CApiBridge, BorrowedModelLeavesTheModelToItsOwner) {
  model::ModelOptions o;
  o.contextLength = 64;
  absl::StatusOr<std::unique_ptr<model::Model>> cxx = exec::openModel(kTq2, o);
  ASSERT_TRUE(cxx.ok()) << cxx.status();
  tern_model *m = nullptr;
  ASSERT_EQ(capi::borrowModel(**cxx, &m), TERN_OK) << tern_last_error();
  EXPECT_EQ(&capi::cxxModel(m), cxx->get());
  tern_session *s = nullptr;
  ASSERT_EQ(tern_session_create(m, &s), TERN_OK);
  const std::vector<int32_t> prompt = {354, 116, 262};
  ASSERT_EQ(tern_decode(s, prompt.data(), prompt.size()), TERN_OK) << tern_last_error();
  EXPECT_EQ((*cxx)->kvUsage().sessions, 1u); // the C API's session is the model's
  tern_session_free(s);
  EXPECT_EQ((*cxx)->kvUsage().sessions, 0u);
  tern_model_free(m); // leaves the model alone: it still runs
  absl::StatusOr<std::unique_ptr<model::Session>> again = (*cxx)->newSession();
  ASSERT_TRUE(again.ok()) << again.status();
  std::vector<float> logits((*cxx)->config().nVocab);
  EXPECT_TRUE((*cxx)->decode(**again, prompt, logits).ok());
}

TEST(CApiBridge, ToStatusTakesAnItemMessage) {
  absl::Status s = capi::toStatus(TERN_ERR_KV_EXHAUSTED, "the KV pool is full");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(statusMessage(s), "the KV pool is full");
  s = capi::toStatus(TERN_ERR_INVALID_ARGUMENT, "tern_forward: item 0: session is NULL");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(statusMessage(s), "item 0: session is NULL");
  EXPECT_TRUE(capi::toStatus(TERN_OK, "").ok());
}

} // namespace
