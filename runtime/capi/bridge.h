// The C++ side door of the C API, for the `tern` tools and `tern serve`'s
// library only (not installed, not in libtern.so's exports). The tools run
// everything through tern.h; what only a tool needs stays C++ (docs/c-api.md,
// "The tools and the C API"): opening a model with tool-only options
// (--act-quant q8k, --kernel, --i2s-layout, --kv-pages and the .tern
// /--act-quant check are in tools/tern/common.cpp's openFor), the receipts
// printed after a run (ukernels run, scalar fallbacks, artifact facts) and
// `tern bench --profile`'s hook. adoptModel / borrowModel hand such a model to
// the C API; cxxModel reads the receipts back. Code that uses this header
// links tern_capi (the static twin of libtern.so), never libtern.so: one copy
// of the runtime per process.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "runtime/include/tern/tern.h"
#include "runtime/model/model.h"
#include "runtime/sampling/sampler.h"

namespace tern::capi {

// Wraps an opened C++ model in a handle that owns it, exactly as
// tern_model_open does after opening (tokenizer, info, describe). Free it
// with tern_model_free. TERN_ERR_INVALID_ARGUMENT for a null model or out.
tern_status adoptModel(std::unique_ptr<model::Model> m, tern_model **out);

// The same for a model the caller keeps owning (the C++ entry points of
// runtime/server that take a model::Model&): the handle must be freed
// (tern_model_free, which leaves `m` alone) before `m` goes.
tern_status borrowModel(model::Model &m, tern_model **out);

// The C++ model behind a handle (for receipts, and --profile's hook); `m`
// must not be NULL.
const model::Model &cxxModel(const tern_model *m);
model::Model &cxxModel(tern_model *m);

// A C API status and message as an absl::Status of the matching code
// (TERN_ERR_INVALID_ARGUMENT -> InvalidArgument, TERN_ERR_KV_EXHAUSTED and
// _CONTEXT_FULL -> ResourceExhausted, ...) with the message stripped of the
// entry point's name ("tern_decode: "), so that a tool's messages read as
// before. OkStatus for TERN_OK.
absl::Status toStatus(tern_status code, std::string_view message);
// toStatus of the calling thread's last C API error.
absl::Status lastStatus(tern_status code);
// The C API's sampler parameters for `s` (runtime/sampling/sampler.h): every
// field of `s` but its seed, which is `seed` (each caller's rule: `tern
// serve` passes the request's, TERN_SEED_RANDOM when it sent none or -1,
// docs/server.md; the CLI its --seed or TERN_SEED_RANDOM, docs/sampling.md),
// and `ignoreEos`. The params' logit_bias points into `bias` (refilled
// here), which must outlive them.
tern_sampler_params samplerParams(const sampling::SamplerParams &s, uint64_t seed, bool ignoreEos,
                                  std::vector<tern_logit_bias> &bias);

} // namespace tern::capi
